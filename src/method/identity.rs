//! `Identity`: prune nothing, but set up the reparametrization.

use ndarray::{ArrayD, ArrayViewD};

use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::MaskState;
use crate::{PruneError, PruneFloat, PruningStep};

/// Prunes nothing: applied first, it gives a tensor `name_orig` and an
/// all-ones `name_mask` (PyTorch's `Identity`), e.g. so that a pruned
/// checkpoint can be loaded into the module.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ArrayD::ones(vec![2, 2]))?;
/// prune::identity(&mut layer, "weight")?;
/// assert_eq!(layer.buffer("weight_mask").unwrap().sum(), 4.0);
/// assert!(layer.parameter("weight_orig").is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity;

impl<T: PruneFloat> PruningMethod<T> for Identity {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        Ok(crate::mask::standard(default_mask.to_owned()))
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for Identity {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        let _ = importance_scores; // Identity ranks nothing.
        PruningStep::Identity
    }

    fn update_mask(
        &self,
        _importance: ArrayViewD<'_, T>,
        _mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        Ok(())
    }

    fn update_masks_jointly(
        &self,
        _importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        for (m, state) in masks.iter_mut().zip(states) {
            if *state == MaskState::Fresh {
                m.fill(T::one());
            }
        }
        Ok(())
    }
}
