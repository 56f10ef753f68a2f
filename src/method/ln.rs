//! `LnStructured`: prune the channels of smallest Lₙ norm.

use ndarray::{ArrayD, ArrayViewD};

use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::channels::{open_channels, write_channels};
use crate::mask::{Mask, MaskState};
use crate::select::channels_to_keep;
use crate::{Amount, Dim, Norm, PruneError, PruneErrorKind, PruneFloat, PruningStep, TieBreak};

/// Prunes the `amount` channels along `dim` of smallest norm `n` among the
/// channels not yet pruned (PyTorch's `LnStructured`). Norms are taken over
/// all other dims of the importance scores; NaN norms rank largest; ties:
/// see [`crate::select`].
///
/// The seed example of `torch.nn.utils.prune`'s documentation: the input
/// channels (`dim=1`) of a `Conv2d(5, 3, 2)` weight, 30 % of them, by the
/// `-inf` norm (the smallest magnitude in each channel).
///
/// ```
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut conv = Layer::<f32>::conv2d(5, 3, 2, &mut rng);
/// prune::ln_structured(&mut conv, "weight", Amount::Fraction(0.3), Norm::NegInf, Dim(1), None)?;
///
/// let mask = conv.buffer("weight_mask").unwrap();
/// assert_eq!(mask.shape(), &[3, 5, 2, 2]);
/// // round(0.3 × 5) = 2 input channels pruned, each entirely.
/// let pruned: Vec<usize> = (0..5)
///     .filter(|&c| mask.index_axis(ndarray::Axis(1), c).iter().all(|&m| m == 0.0))
///     .collect();
/// assert_eq!(pruned.len(), 2);
/// assert_eq!(mask.sum(), 3.0 * 3.0 * 4.0);
/// // They are the two channels whose smallest magnitude is smallest.
/// let orig = conv.parameter("weight_orig").unwrap();
/// let min_abs: Vec<f32> = (0..5)
///     .map(|c| orig.index_axis(ndarray::Axis(1), c).iter().fold(f32::INFINITY, |a, x| a.min(x.abs())))
///     .collect();
/// let mut order: Vec<usize> = (0..5).collect();
/// order.sort_by(|&a, &b| min_abs[a].total_cmp(&min_abs[b]));
/// let mut expected = order[..2].to_vec();
/// expected.sort();
/// assert_eq!(pruned, expected);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LnStructured {
    amount: Amount,
    n: Norm,
    dim: Dim,
    ties: TieBreak,
}

impl LnStructured {
    /// The method for `amount` of the channels along `dim`, ranked by norm
    /// `n`; fails for a fraction outside `[0, 1]` or `Norm::L(NaN)` (a NaN
    /// fraction fails when the pruning call turns it into a count, as in
    /// PyTorch: see [`Amount::validate`]).
    ///
    /// ```
    /// use ndprune::{Amount, Dim, LnStructured, Norm};
    /// assert!(LnStructured::new(Amount::Fraction(0.5), Norm::L(2.0), Dim(0)).is_ok());
    /// assert!(LnStructured::new(Amount::Fraction(0.5), Norm::L(f64::NAN), Dim(0)).is_err());
    /// ```
    pub fn new(amount: Amount, n: Norm, dim: Dim) -> Result<Self, PruneError> {
        amount.validate()?;
        if let Norm::L(p) = n {
            if p.is_nan() {
                return Err(PruneErrorKind::InvalidNorm { p }.into());
            }
        }
        Ok(LnStructured {
            amount,
            n,
            dim,
            ties: TieBreak::Torch,
        })
    }

    /// The same method with another rule for equal norms at the cut
    /// (default [`TieBreak::Torch`]).
    ///
    /// ```
    /// use ndprune::{Amount, Dim, LnStructured, Norm, TieBreak};
    /// let m = LnStructured::new(Amount::Count(1), Norm::Inf, Dim(0)).unwrap();
    /// let _fast = m.with_tie_break(TieBreak::LowestIndex);
    /// ```
    pub fn with_tie_break(self, ties: TieBreak) -> Self {
        LnStructured { ties, ..self }
    }

    /// What [`LnStructured::keep`] checks, for a tensor with no entries
    /// (and `open` channels to prune from): nothing is ranked or written,
    /// and nothing is allocated per channel (a crafted file can claim 2^40
    /// channels of nothing).
    fn check_empty<T: PruneFloat>(
        &self,
        importance: ArrayViewD<'_, T>,
        shape: &[usize],
        d: usize,
        open: usize,
    ) -> Result<(), PruneError> {
        self.amount.count_of(open)?;
        check_scores_shape(importance.shape(), shape)?;
        self.n.check_defined(shape, d)
    }

    /// The channels along resolved dim `d` that stay, given the live ones.
    fn keep<T: PruneFloat>(
        &self,
        importance: ArrayViewD<'_, T>,
        shape: &[usize],
        d: usize,
        live: &[bool],
    ) -> Result<Option<Vec<bool>>, PruneError> {
        let open = live.iter().filter(|&&l| l).count();
        let k = self.amount.count_of(open)?;
        check_scores_shape(importance.shape(), shape)?;
        // PyTorch computes the norms (and fails on them) even when k == 0.
        let norms = self.n.channel_norms_at(importance, d)?;
        Ok((k > 0).then(|| channels_to_keep(&norms, live, open - k, self.ties)))
    }
}

/// Importance scores must have the tensor's shape.
pub(crate) fn check_scores_shape(got: &[usize], shape: &[usize]) -> Result<(), PruneError> {
    if got == shape {
        Ok(())
    } else {
        Err(PruneErrorKind::ShapeMismatch {
            what: "importance scores",
            expected: shape.to_vec(),
            got: got.to_vec(),
        }
        .into())
    }
}

/// The channel dim of a structured method, checked in PyTorch's order: a
/// first pruning checks the number of dims, then the dim; a later one the
/// dim first.
pub(crate) fn structured_dim(
    shape: &[usize],
    dim: Dim,
    state: MaskState,
) -> Result<usize, PruneError> {
    let multidimensional = || -> Result<(), PruneError> {
        if shape.len() < 2 {
            Err(PruneErrorKind::NotMultidimensional {
                shape: shape.to_vec(),
            }
            .into())
        } else {
            Ok(())
        }
    };
    match state {
        MaskState::Fresh => {
            multidimensional()?;
            dim.resolve(shape.len())
        }
        MaskState::Existing => {
            let d = dim.resolve(shape.len())?;
            multidimensional()?;
            Ok(d)
        }
    }
}

impl<T: PruneFloat> PruningMethod<T> for LnStructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Structured { dim: self.dim }
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        let mut mask = crate::mask::standard(default_mask.to_owned());
        FastPath::update_mask(self, t, &mut mask, MaskState::Fresh)?;
        Ok(mask)
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for LnStructured {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        PruningStep::LnStructured {
            amount: self.amount,
            norm: self.n,
            dim: self.dim,
            tie_break: self.ties,
            importance_scores,
        }
    }

    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        state: MaskState,
    ) -> Result<(), PruneError> {
        let d = structured_dim(mask.shape(), self.dim, state)?;
        if mask.is_empty() {
            // No channel of an empty mask holds a 1.
            let open = if state == MaskState::Fresh {
                mask.shape()[d]
            } else {
                0
            };
            return self.check_empty(importance, mask.shape(), d, open);
        }
        let live = open_channels(mask, d, state);
        if let Some(keep) = self.keep(importance, mask.shape(), d, &live)? {
            write_channels(mask, d, &keep, false);
        }
        Ok(())
    }

    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let shape = importance.shape().to_vec();
        let d = structured_dim(&shape, self.dim, MaskState::Fresh)?;
        if importance.is_empty() {
            self.check_empty(importance, &shape, d, shape[d])?;
            return Ok(Mask::Dense(ArrayD::zeros(shape)));
        }
        let live = vec![true; shape[d]];
        let keep = self.keep(importance, &shape, d, &live)?.unwrap_or(live);
        Ok(Mask::Channels {
            shape,
            dim: d,
            keep,
        })
    }
}
