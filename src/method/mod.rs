//! Pruning methods: each computes a mask; the reparametrization applies it.
//!
//! The built-in methods are PyTorch's. Write your own by implementing
//! [`PruningMethod`]: say which [`PruningKind`] it is and compute a mask in
//! [`PruningMethod::compute_mask`]. Iterative combination (measuring the
//! amount on what is left) and the reparametrization come for free.

pub(crate) mod channels;
mod container;

pub(crate) use container::check_binary;
mod custom;
mod identity;
mod l1;
mod ln;
mod random;

pub use custom::CustomFromMask;
pub use identity::Identity;
pub use l1::L1Unstructured;
pub use ln::LnStructured;
pub use random::{RandomStructured, RandomUnstructured};

use std::fmt;

use ndarray::{ArrayD, ArrayViewD};

use crate::{Dim, Mask, PruneError, PruneFloat};

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

/// Whether the mask a method updates is the all-ones mask of a first
/// pruning, or the mask earlier pruning left.
///
/// ```
/// use ndprune::MaskState;
/// assert_ne!(MaskState::Fresh, MaskState::Existing);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskState {
    /// First pruning of the tensor: the mask is all ones and the method sees
    /// the whole tensor.
    Fresh,
    /// The tensor was pruned before: the method sees what its kind allows.
    Existing,
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
/// let mut layer = Layer::new().with_parameter("weight", w);
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

    /// Updates `mask` in place for a tensor whose importance scores are
    /// `importance` (same shape). `Fresh` calls `compute_mask` on the whole
    /// tensor; `Existing` calls it on the part the kind allows and writes the
    /// result back. On error `mask` is unchanged.
    ///
    /// The built-in methods override this with kernels that work in place;
    /// they give the same masks as this default.
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, MaskState, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(1)).unwrap();
    /// let t = array![2.0f64, -1.0, 3.0].into_dyn();
    /// let mut mask = array![1.0, 0.0, 1.0].into_dyn();
    /// // One more of the two entries left: the 2.0.
    /// m.update_mask(t.view(), &mut mask, MaskState::Existing).unwrap();
    /// assert_eq!(mask, array![0.0, 0.0, 1.0].into_dyn());
    /// ```
    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        state: MaskState,
    ) -> Result<(), PruneError> {
        container::update_mask(self, importance, mask, state)
    }

    /// The mask of a first pruning of a tensor whose importance scores are
    /// `importance`: by default an all-ones mask passed to
    /// [`PruningMethod::update_mask`] as [`MaskState::Fresh`]. Built-in
    /// methods write it in one pass, and structured ones hand over one flag
    /// per channel ([`Mask::Channels`]).
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(1)).unwrap();
    /// let mask = m.fresh_mask(array![3.0f32, -0.5, 2.0].into_dyn().view()).unwrap();
    /// assert_eq!(mask.into_dense(), array![1.0f32, 0.0, 1.0].into_dyn());
    /// ```
    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let mut mask = ArrayD::ones(importance.raw_dim());
        self.update_mask(importance, &mut mask, MaskState::Fresh)?;
        Ok(Mask::Dense(mask))
    }

    /// Updates, in place and in the form the store holds it, the mask of a
    /// tensor pruned before ([`MaskState::Existing`]), when the method
    /// can; `None` when it cannot, and the store then hands
    /// [`PruningMethod::update_mask`] the dense mask. The built-in
    /// unstructured methods keep a bit mask this way. On error the mask
    /// stands for the same 0/1 values as before (its form may change).
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, Mask, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(1)).unwrap();
    /// let mut mask = Mask::Channels { shape: vec![3], dim: 0, keep: vec![true, false, true] };
    /// let t = array![2.0f32, 9.0, -1.0].into_dyn();
    /// m.update_compact(t.view(), &mut mask).unwrap().unwrap();
    /// assert_eq!(mask.to_dense(), array![1.0f32, 0.0, 0.0].into_dyn());
    /// ```
    fn update_compact(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut Mask<T>,
    ) -> Option<Result<(), PruneError>> {
        let _ = (importance, mask);
        None
    }

    /// [`PruningMethod::update_masks_jointly`] on masks in the form the
    /// store holds them: a fresh target's mask arrives as [`Mask::Bits`]
    /// of zeros standing for all ones (its state is [`MaskState::Fresh`])
    /// and must be written whole. `None` (the default) says the method
    /// works on dense masks only: global pruning then hands it dense ones.
    /// Global pruning of large models uses this to hold one bit an entry
    /// instead of a dense mask per tensor. On error no mask changes value.
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, Mask, MaskState, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(2)).unwrap();
    /// let (a, b) = (array![0.5f32, 4.0].into_dyn(), array![0.1f32, 3.0].into_dyn());
    /// let mut masks = [
    ///     Mask::Dense(a.mapv(|_| 1.0)),
    ///     Mask::Bits { shape: vec![2], bits: vec![0] },
    /// ];
    /// let states = [MaskState::Existing, MaskState::Fresh];
    /// m.update_masks_jointly_compact(&[a.view(), b.view()], &mut masks, &states)
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(masks[0].to_dense(), array![0.0f32, 1.0].into_dyn());
    /// assert_eq!(masks[1].to_dense(), array![0.0f32, 1.0].into_dyn());
    /// ```
    fn update_masks_jointly_compact(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [Mask<T>],
        states: &[MaskState],
    ) -> Option<Result<(), PruneError>> {
        let _ = (importances, masks, states);
        None
    }

    /// Updates several masks as one, as if the importances and masks were
    /// concatenated into one flat tensor: global pruning. A mask whose
    /// state is [`MaskState::Fresh`] arrives zero-filled and stands for an
    /// all-ones mask; it must be written whole. On error no mask is
    /// changed. The default concatenates; built-in methods work in place.
    ///
    /// ```
    /// use ndprune::{Amount, L1Unstructured, MaskState, PruningMethod};
    /// use ndarray::array;
    /// let m = L1Unstructured::new(Amount::Count(2)).unwrap();
    /// let (a, b) = (array![0.5f32, 4.0].into_dyn(), array![0.1f32, 3.0].into_dyn());
    /// let mut masks = [a.mapv(|_| 1.0), b.mapv(|_| 0.0)];
    /// let states = [MaskState::Existing, MaskState::Fresh];
    /// m.update_masks_jointly(&[a.view(), b.view()], &mut masks, &states).unwrap();
    /// assert_eq!(masks[0], array![0.0f32, 1.0].into_dyn());
    /// assert_eq!(masks[1], array![0.0f32, 1.0].into_dyn());
    /// ```
    fn update_masks_jointly(
        &self,
        importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        container::update_masks_jointly(self, importances, masks, states)
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

/// The number of unpruned entries of several masks: all entries of a fresh
/// one (it stands for all ones), the entries at 1 of an existing one.
pub(crate) fn open_entries<T: PruneFloat>(masks: &[ArrayD<T>], states: &[MaskState]) -> usize {
    masks
        .iter()
        .enumerate()
        .map(|(i, m)| match states.get(i) {
            Some(MaskState::Fresh) => m.len(),
            _ => crate::select::count_candidates(flat(m)),
        })
        .sum()
}

/// The flat row-major data of a standard-layout array (every array this
/// crate makes or converts with `as_standard_layout` is one).
pub(crate) fn flat<T>(a: &ArrayD<T>) -> &[T] {
    a.as_slice().unwrap_or(&[])
}

/// The flat row-major data of a standard-layout array, mutable.
pub(crate) fn flat_mut<T>(a: &mut ArrayD<T>) -> &mut [T] {
    a.as_slice_mut().unwrap_or(&mut [])
}
