//! `L1Unstructured`: prune the entries of smallest magnitude.

use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn};

use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::count_bits;
use crate::mask::{flat, flat_mut, Mask, MaskState};
use crate::select::{count_candidates, prune_smallest, MaskSlot};
use crate::{Amount, PruneError, PruneFloat, PruningStep, TieBreak};

/// Prunes the `amount` entries of smallest absolute importance among those
/// still unpruned (PyTorch's `L1Unstructured`). Ties: see [`crate::select`].
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let method = L1Unstructured::new(Amount::Fraction(0.5))?;
/// let t = array![0.3f32, -0.1, 2.0, -4.0].into_dyn();
/// let mask = method.compute_mask(t.view(), ndarray::ArrayD::ones(vec![4]).view())?;
/// assert_eq!(mask, array![0.0f32, 0.0, 1.0, 1.0].into_dyn());
/// assert!(L1Unstructured::new(Amount::Fraction(1.5)).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct L1Unstructured {
    amount: Amount,
    ties: TieBreak,
}

impl L1Unstructured {
    /// The method for `amount`; fails for a fraction outside `[0, 1]` (a NaN
    /// fraction fails in the pruning call: see [`Amount::validate`]).
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured};
    /// assert!(L1Unstructured::new(Amount::Count(3)).is_ok());
    /// assert!(L1Unstructured::new(Amount::Fraction(-0.1)).is_err());
    /// ```
    pub fn new(amount: Amount) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(L1Unstructured {
            amount,
            ties: TieBreak::Torch,
        })
    }

    /// The same method with another rule for equal magnitudes at the cut
    /// (default [`TieBreak::Torch`]).
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, TieBreak};
    /// let fast = L1Unstructured::new(Amount::Fraction(0.5)).unwrap().with_tie_break(TieBreak::LowestIndex);
    /// # let _ = fast;
    /// ```
    pub fn with_tie_break(self, ties: TieBreak) -> Self {
        L1Unstructured { ties, ..self }
    }
}

/// The data of an array made standard by `as_standard_layout`.
fn standard_slice<'a, T>(a: &'a CowArray<'_, T, IxDyn>) -> &'a [T] {
    a.as_slice()
        .expect("as_standard_layout gives contiguous row-major data")
}

/// Importance scores in standard layout, checked against the mask's shape.
pub(super) fn standard<'a, T: PruneFloat>(
    importance: &'a ArrayViewD<'a, T>,
    shape: &[usize],
) -> Result<CowArray<'a, T, IxDyn>, PruneError> {
    super::ln::check_scores_shape(importance.shape(), shape)?;
    Ok(importance.as_standard_layout())
}

impl L1Unstructured {
    /// Global pruning over masks held as bits (fresh targets, and pruned
    /// ones held so), dense or per channel (made bits: same values).
    fn joint_compact<T: PruneFloat>(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [Mask<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        let scores = importances
            .iter()
            .zip(masks.iter())
            .map(|(imp, m)| standard(imp, m.shape()))
            .collect::<Result<Vec<_>, _>>()?;
        let fresh = |i: usize| states.get(i) == Some(&MaskState::Fresh);
        let mut open = 0;
        for (i, (m, s)) in masks.iter_mut().zip(&scores).enumerate() {
            if let Mask::Channels { shape, .. } = m {
                let shape = shape.clone();
                let bits = m.to_bits();
                *m = Mask::Bits { shape, bits };
            }
            open += match m {
                _ if fresh(i) => s.len(),
                Mask::Bits { bits, .. } => count_bits(bits, s.len()),
                Mask::Dense(d) => count_candidates(flat(d)),
                Mask::Channels { .. } => unreachable!("made bits just above"),
            };
        }
        let k = self.amount.count_of(open)?;
        let score_slices: Vec<&[T]> = scores.iter().map(|s| standard_slice(s)).collect();
        let mut slots = Vec::with_capacity(masks.len());
        for (i, m) in masks.iter_mut().enumerate() {
            slots.push(match (fresh(i), m) {
                (true, Mask::Bits { bits, .. }) => MaskSlot::FreshBits(bits),
                (false, Mask::Bits { bits, .. }) => MaskSlot::ExistingBits(bits),
                (true, Mask::Dense(d)) => MaskSlot::Fresh(flat_mut(d)),
                (false, Mask::Dense(d)) => MaskSlot::Existing(flat_mut(d)),
                (_, Mask::Channels { .. }) => unreachable!("made bits above"),
            });
        }
        prune_smallest(&score_slices, &mut slots, k, self.ties);
        Ok(())
    }
}

impl<T: PruneFloat> PruningMethod<T> for L1Unstructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        // PyTorch ranks every entry of `t` here, whatever `default_mask` says.
        Ok(self.fresh_mask(t)?.into_dense() * &default_mask)
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for L1Unstructured {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        PruningStep::L1Unstructured {
            amount: self.amount,
            tie_break: self.ties,
            importance_scores,
        }
    }

    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let scores = importance.as_standard_layout();
        let k = self.amount.count_of(scores.len())?;
        // One bit an entry: the store writes the dense mask only on request.
        let mut bits = vec![0u64; scores.len().div_ceil(64)];
        prune_smallest(
            &[standard_slice(&scores)],
            &mut [MaskSlot::FreshBits(&mut bits)],
            k,
            self.ties,
        );
        Ok(Mask::Bits {
            shape: scores.shape().to_vec(),
            bits,
        })
    }

    fn update_compact(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut Mask<T>,
    ) -> Option<Result<(), PruneError>> {
        if let Mask::Dense(_) = mask {
            return None;
        }
        if let Mask::Channels { shape, .. } = mask {
            // Same 0/1 values, held as bits from now on.
            let shape = shape.clone();
            let bits = mask.to_bits();
            *mask = Mask::Bits { shape, bits };
        }
        let Mask::Bits { bits, .. } = mask else {
            return None;
        };
        let scores = importance.as_standard_layout();
        let k = match self.amount.count_of(count_bits(bits, scores.len())) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        prune_smallest(
            &[standard_slice(&scores)],
            &mut [MaskSlot::ExistingBits(bits)],
            k,
            self.ties,
        );
        Some(Ok(()))
    }

    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        // A fresh mask here is already all ones: update it as it stands.
        let existing = [MaskState::Existing];
        self.update_masks_jointly(&[importance], std::slice::from_mut(mask), &existing)
    }

    fn update_masks_jointly_compact(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [Mask<T>],
        states: &[MaskState],
    ) -> Option<Result<(), PruneError>> {
        Some(self.joint_compact(importances, masks, states))
    }

    fn update_masks_jointly(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        // The same selection on the dense masks, moved in and out (no copy).
        let mut held: Vec<Mask<T>> = masks
            .iter_mut()
            .map(|m| Mask::Dense(std::mem::replace(m, ArrayD::zeros(vec![0]))))
            .collect();
        let outcome = self.joint_compact(importances, &mut held, states);
        for (m, h) in masks.iter_mut().zip(held) {
            if let Mask::Dense(d) = h {
                *m = d;
            }
        }
        outcome
    }
}
