//! The built-in methods' kernels: masks updated in place and in the form the
//! store holds them. Sealed: the trait lives in a private module, so only
//! this crate's methods implement it; every other method goes through
//! [`super::PruningMethod::compute_mask`] and the checks of
//! `container.rs`.

use ndarray::{ArrayD, ArrayViewD};

use super::{container, PruningMethod};
use crate::mask::{Mask, MaskState};
use crate::{PruneError, PruneFloat, PruningStep};

/// In-place mask kernels of a built-in method. Each gives the masks that
/// PyTorch's `compute_mask` and `PruningContainer` give, and on error
/// leaves every mask standing for the same 0/1 values as before.
pub trait FastPath<T: PruneFloat> {
    /// The method itself, for the generic paths.
    fn method(&self) -> &dyn PruningMethod<T>;

    /// The record of one step of this method in a pruning history.
    fn step(&self, importance_scores: bool) -> PruningStep;

    /// The mask of a first pruning of a tensor whose importance scores are
    /// `importance` (standard layout, the tensor's shape).
    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let mut mask = ArrayD::ones(importance.raw_dim());
        self.update_mask(importance, &mut mask, MaskState::Fresh)?;
        Ok(Mask::Dense(mask))
    }

    /// Updates the dense `mask` (standard layout) of a tensor whose
    /// importance scores are `importance` (same shape).
    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        state: MaskState,
    ) -> Result<(), PruneError> {
        container::update_mask(self.method(), importance, mask, state)
    }

    /// Updates, in the form it is held, the mask of a tensor pruned before;
    /// `None` when the method works on dense masks only.
    fn update_compact(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut Mask<T>,
    ) -> Option<Result<(), PruneError>> {
        let _ = (importance, mask);
        None
    }

    /// Global pruning on masks as held (a fresh target's mask arrives as
    /// bits of zeros standing for all ones, to be written whole); `None`
    /// when the method works on dense masks only.
    fn update_masks_jointly_compact(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [Mask<T>],
        states: &[MaskState],
    ) -> Option<Result<(), PruneError>> {
        let _ = (importances, masks, states);
        None
    }

    /// Global pruning on dense masks (a fresh one arrives zero-filled,
    /// standing for all ones, to be written whole).
    fn update_masks_jointly(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        container::update_masks_jointly(self.method(), importances, masks, states)
    }
}

/// `compute_mask` of a method whose kernel updates an existing mask in
/// place (N:M, block sparsity): the scores' shape and the mask's 0/1 values
/// checked, then the kernel run on a standard-layout copy of the mask.
pub(super) fn update_existing<T: PruneFloat>(
    method: &dyn FastPath<T>,
    t: ArrayViewD<'_, T>,
    default_mask: ArrayViewD<'_, T>,
) -> Result<ArrayD<T>, PruneError> {
    super::check_scores_shape(t.shape(), default_mask.shape())?;
    container::check_binary(default_mask.view())?;
    let mut mask = crate::mask::standard(default_mask.to_owned());
    method.update_mask(t, &mut mask, MaskState::Existing)?;
    Ok(mask)
}
