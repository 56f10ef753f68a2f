//! `CustomFromMask`: prune where a given mask is 0.

use ndarray::{ArrayD, ArrayViewD, Zip};

use super::container::check_binary;
use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::{standard, MaskState};
use crate::{PruneError, PruneErrorKind, PruneFloat, PruningStep};

/// Prunes the entries where the given mask is 0 (PyTorch's
/// `CustomFromMask`). The mask must have the tensor's shape and hold only 0
/// and 1; it is multiplied into any existing mask.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let keep = array![[1.0f32, 0.0], [0.0, 1.0]].into_dyn();
/// let method = CustomFromMask::new(keep.view());
/// let mask = method.compute_mask(keep.view(), ndarray::ArrayD::ones(vec![2, 2]).view())?;
/// assert_eq!(mask, keep);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CustomFromMask<'a, T> {
    mask: ArrayViewD<'a, T>,
    /// The history record, when the mask is a tensor's share of a larger
    /// call (the cross-dtype global pruning of a mixed checkpoint) or was
    /// ranked on an `f32` copy (Wanda on half weights);
    /// `None`: [`PruningStep::CustomFromMask`].
    record: Option<PruningStep>,
}

impl<'a, T: PruneFloat> CustomFromMask<'a, T> {
    /// The method for this mask (checked when applied).
    ///
    /// ```
    /// use ndprune::CustomFromMask;
    /// let mask = ndarray::ArrayD::<f32>::ones(vec![2, 2]);
    /// let _method = CustomFromMask::new(mask.view());
    /// ```
    pub fn new(mask: ArrayViewD<'a, T>) -> Self {
        CustomFromMask { mask, record: None }
    }

    /// The method for this mask, recorded in the pruning history as
    /// `record` (a share of a global call, or a method whose ranking ran
    /// on an `f32` copy of the tensor: Wanda on half weights).
    pub(crate) fn recorded_as(mask: ArrayViewD<'a, T>, record: PruningStep) -> Self {
        CustomFromMask {
            mask,
            record: Some(record),
        }
    }

    fn check(&self, shape: &[usize]) -> Result<(), PruneError> {
        if self.mask.shape() != shape {
            return Err(PruneErrorKind::ShapeMismatch {
                what: "mask",
                expected: shape.to_vec(),
                got: self.mask.shape().to_vec(),
            }
            .into());
        }
        check_binary(self.mask.view())
    }
}

impl<T: PruneFloat> PruningMethod<T> for CustomFromMask<'_, T> {
    fn kind(&self) -> PruningKind {
        PruningKind::Global
    }

    fn compute_mask(
        &self,
        _t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        self.check(default_mask.shape())?;
        Ok(standard(&default_mask * &self.mask))
    }

    fn describe(&self) -> String {
        format!("CustomFromMask(shape={:?})", self.mask.shape())
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for CustomFromMask<'_, T> {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        let _ = importance_scores; // the mask is given, nothing is ranked.
        self.record.clone().unwrap_or(PruningStep::CustomFromMask)
    }

    fn update_mask(
        &self,
        _importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        self.check(mask.shape())?;
        Zip::from(mask)
            .and(&self.mask)
            .for_each(|m, &c| *m = *m * c);
        Ok(())
    }
}
