//! Pruning methods: each computes a mask; the reparametrization applies it.
//!
//! The built-in methods are PyTorch's. Write your own by implementing
//! [`PruningMethod`]: say which [`PruningKind`] it is and compute a mask in
//! [`PruningMethod::compute_mask`]. Iterative combination (measuring the
//! amount on what is left) and the reparametrization come for free.

pub(crate) mod container;
mod custom;
mod fast;

pub(crate) use fast::FastPath;
pub(crate) use ln::check_scores_shape;
mod block;
mod identity;
mod l1;
mod ln;
mod nm;
mod per_row;
mod random;

pub use block::{BlockNorm, BlockSparsity};
pub use custom::CustomFromMask;
pub use identity::Identity;
pub use l1::L1Unstructured;
pub use ln::LnStructured;
pub use nm::NmStructured;
pub use per_row::PerRowUnstructured;
pub use random::{RandomStructured, RandomUnstructured};

use std::fmt;

use ndarray::{ArrayD, ArrayViewD};

use crate::{Dim, PruneError, PruneFloat};

/// What part of a tensor a method may prune on a later call, as PyTorch's
/// `PRUNING_TYPE`.
///
/// ```
/// use ndprune::{Dim, PruningKind};
/// assert_ne!(PruningKind::Unstructured, PruningKind::Structured { dim: Dim(0) });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruningKind {
    /// Single entries: a later call sees only the entries still unpruned.
    Unstructured,
    /// Whole channels along `dim`: a later call sees only the channels not
    /// yet entirely pruned.
    Structured {
        /// The channel dimension.
        dim: Dim,
    },
    /// The whole tensor: a later call sees everything, and its mask is
    /// multiplied into the existing one.
    Global,
}

/// A way of choosing what to prune, as PyTorch's `BasePruningMethod`.
///
/// Only [`PruningMethod::kind`] and [`PruningMethod::compute_mask`] are
/// required. On a later pruning of the same tensor, `compute_mask` is given
/// only the part its kind allows (the unpruned entries as a 1-D tensor, or
/// the channels not yet pruned) and its result is written back into the
/// existing mask, exactly as PyTorch's `PruningContainer` does.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::PruningKind;
/// use ndarray::{ArrayD, ArrayViewD};
///
/// /// Prunes every entry whose importance is negative.
/// #[derive(Debug)]
/// struct DropNegative;
///
/// impl PruningMethod<f32> for DropNegative {
///     fn kind(&self) -> PruningKind { PruningKind::Unstructured }
///     fn compute_mask(&self, t: ArrayViewD<'_, f32>, default_mask: ArrayViewD<'_, f32>)
///         -> Result<ArrayD<f32>, PruneError> {
///         let mut mask = default_mask.to_owned();
///         mask.zip_mut_with(&t, |m, &x| if x < 0.0 { *m = 0.0 });
///         Ok(mask)
///     }
/// }
///
/// # fn main() -> Result<(), PruneError> {
/// let w = ArrayD::from_shape_vec(vec![4], vec![1.0f32, -2.0, 3.0, -0.5]).unwrap();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// prune::apply(&mut layer, "weight", &DropNegative, None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap().as_slice().unwrap(), &[1.0, 0.0, 1.0, 0.0]);
/// # Ok(()) }
/// ```
pub trait PruningMethod<T: PruneFloat>: fmt::Debug {
    /// The method's kind, which decides what a later call sees.
    ///
    /// ```
    /// use ndprune::{Amount, Dim, LnStructured, Norm, PruningKind, PruningMethod};
    /// let m = LnStructured::new(Amount::Count(1), Norm::Inf, Dim(-1)).unwrap();
    /// assert_eq!(PruningMethod::<f32>::kind(&m), PruningKind::Structured { dim: Dim(-1) });
    /// ```
    fn kind(&self) -> PruningKind;

    /// PyTorch's `compute_mask`: the new mask for `t` (importance scores of
    /// the part being pruned), starting from `default_mask` (its current
    /// mask, of the same shape). Must return a 0/1 mask of `t`'s shape.
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(1)).unwrap();
    /// let t = array![2.0f64, -1.0, 3.0].into_dyn();
    /// let mask = m.compute_mask(t.view(), array![1.0, 1.0, 1.0].into_dyn().view()).unwrap();
    /// assert_eq!(mask, array![1.0, 0.0, 1.0].into_dyn());
    /// ```
    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError>;

    /// The crate's in-place kernels for this method: `Some` for the
    /// built-in methods only (the trait they implement cannot be named
    /// outside the crate), `None` for every other method, whose masks come
    /// from [`PruningMethod::compute_mask`] and are checked before they are
    /// committed.
    #[doc(hidden)]
    fn fast_path(&self) -> Option<&dyn fast::FastPath<T>> {
        None
    }

    /// A short description for the pruning history, e.g.
    /// `L1Unstructured { amount: Fraction(0.3) }`. Defaults to the `Debug` form.
    ///
    /// ```
    /// use ndprune::{Identity, PruningMethod};
    /// assert_eq!(PruningMethod::<f32>::describe(&Identity), "Identity");
    /// ```
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}
