//! `RandomUnstructured` and `RandomStructured`: prune uniformly at random.

use ndarray::{ArrayD, ArrayViewD};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::channels::{open_channels, write_channels};
use super::ln::structured_dim;
use super::{flat_mut, open_entries, MaskState, PruningKind, PruningMethod};
use crate::select::sample_in_order;
use crate::{Amount, Dim, PruneError, PruneFloat};

/// Prunes `amount` of the unpruned entries, chosen uniformly at random
/// (PyTorch's `RandomUnstructured`). The choice is a function of the seed:
/// the same seed, tensor and mask give the same mask.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let method = RandomUnstructured::new(Amount::Count(3), 42)?;
/// let t = ArrayD::<f32>::ones(vec![10]);
/// let mask = method.compute_mask(t.view(), t.view())?;
/// assert_eq!(mask.sum(), 7.0);
/// assert_eq!(mask, method.compute_mask(t.view(), t.view())?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomUnstructured {
    amount: Amount,
    seed: u64,
}

impl RandomUnstructured {
    /// The method for `amount`, drawing with a generator seeded by `seed`.
    ///
    /// ```
    /// use ndprune::{Amount, RandomUnstructured};
    /// assert!(RandomUnstructured::new(Amount::Fraction(0.3), 7).is_ok());
    /// assert!(RandomUnstructured::new(Amount::Fraction(1.5), 7).is_err());
    /// // NaN fails when the pruning call turns it into a count, as in PyTorch.
    /// assert!(RandomUnstructured::new(Amount::Fraction(f64::NAN), 7).is_ok());
    /// ```
    pub fn new(amount: Amount, seed: u64) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomUnstructured { amount, seed })
    }

    /// The method for `amount`, seeded from `rng`.
    ///
    /// ```
    /// use ndprune::{Amount, RandomUnstructured};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert!(RandomUnstructured::from_rng(Amount::Fraction(0.2), &mut rng).is_ok());
    /// ```
    pub fn from_rng<R: Rng + ?Sized>(amount: Amount, rng: &mut R) -> Result<Self, PruneError> {
        Self::new(amount, rng.random())
    }
}

impl<T: PruneFloat> PruningMethod<T> for RandomUnstructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        let mut chosen = ArrayD::ones(t.raw_dim());
        self.update_mask(t, &mut chosen, MaskState::Fresh)?;
        Ok(chosen * &default_mask)
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

    fn update_masks_jointly(
        &self,
        _importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        let fresh = |i: usize| states.get(i) == Some(&MaskState::Fresh);
        let open = open_entries(masks, states);
        let k = self.amount.count_of(open)?;
        for (i, m) in masks.iter_mut().enumerate() {
            if fresh(i) {
                m.fill(T::one());
            }
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut pick = sample_in_order(&mut rng, open, k);
        for m in masks.iter_mut() {
            for v in flat_mut(m).iter_mut().filter(|v| **v == T::one()) {
                if pick() {
                    *v = T::zero();
                }
            }
        }
        Ok(())
    }
}

/// Prunes `amount` of the channels along `dim` not yet pruned, chosen
/// uniformly at random (PyTorch's `RandomStructured`).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let method = RandomStructured::new(Amount::Count(2), Dim(0), 7)?;
/// let t = ArrayD::<f32>::ones(vec![5, 3]);
/// let mask = method.compute_mask(t.view(), t.view())?;
/// assert_eq!(mask.sum(), 9.0); // 3 of 5 rows kept
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomStructured {
    amount: Amount,
    dim: Dim,
    seed: u64,
}

impl RandomStructured {
    /// The method for `amount` of the channels along `dim`, drawing with a
    /// generator seeded by `seed`.
    ///
    /// ```
    /// use ndprune::{Amount, Dim, RandomStructured};
    /// assert!(RandomStructured::new(Amount::Count(1), Dim(0), 7).is_ok());
    /// ```
    pub fn new(amount: Amount, dim: Dim, seed: u64) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomStructured { amount, dim, seed })
    }

    /// The method, seeded from `rng`.
    ///
    /// ```
    /// use ndprune::{Amount, Dim, RandomStructured};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert!(RandomStructured::from_rng(Amount::Count(1), Dim(-1), &mut rng).is_ok());
    /// ```
    pub fn from_rng<R: Rng + ?Sized>(
        amount: Amount,
        dim: Dim,
        rng: &mut R,
    ) -> Result<Self, PruneError> {
        Self::new(amount, dim, rng.random())
    }
}

impl<T: PruneFloat> PruningMethod<T> for RandomStructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Structured { dim: self.dim }
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        let mut mask = default_mask.to_owned();
        self.update_mask(t, &mut mask, MaskState::Fresh)?;
        Ok(mask)
    }

    fn update_mask(
        &self,
        _importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        state: MaskState,
    ) -> Result<(), PruneError> {
        let d = structured_dim(mask.shape(), self.dim, state)?;
        let mut keep = open_channels(mask, d, state);
        let open = keep.iter().filter(|&&l| l).count();
        let k = self.amount.count_of(open)?;
        if k == 0 {
            return Ok(());
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut pick = sample_in_order(&mut rng, open, k);
        for c in keep.iter_mut().filter(|l| **l) {
            if pick() {
                *c = false;
            }
        }
        write_channels(mask, d, &keep, false);
        Ok(())
    }
}
