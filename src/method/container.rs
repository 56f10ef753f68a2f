//! Iterative combination, as PyTorch's `PruningContainer`: a later pruning
//! call sees only what its kind allows, and its result is written back into
//! the existing mask.
//!
//! This is the path of every method that is not built in: its masks come
//! from [`PruningMethod::compute_mask`], and what it returns is checked
//! (shape, values 0/1) and brought to standard layout before anything is
//! written. The store's masks are never handed to it: it sees copies, so a
//! method that fails or panics changes nothing. The built-in methods reach
//! the same masks with the in-place kernels of [`super::fast`]; the
//! functions at the end of this file choose between the two.

use ndarray::{Array1, ArrayD, ArrayViewD, Axis, IxDyn};

use super::{PruningKind, PruningMethod};
use crate::mask::channels::live_channels;
use crate::mask::{flat, flat_mut, standard, Mask, MaskState};
use crate::{PruneError, PruneErrorKind, PruneFloat};

/// The generic update of a dense mask (standard layout) for a tensor whose
/// importance scores are `importance` (same shape): on a first pruning, or
/// for a method of [`PruningKind::Global`], `compute_mask` on the whole
/// tensor; on a later one, on the part the kind allows, written back. On
/// error `mask` is unchanged.
pub(crate) fn update_mask<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importance: ArrayViewD<'_, T>,
    mask: &mut ArrayD<T>,
    state: MaskState,
) -> Result<(), PruneError> {
    let new = match (state, method.kind()) {
        (MaskState::Fresh, _) | (MaskState::Existing, PruningKind::Global) => {
            let new = method.compute_mask(importance, mask.view())?;
            checked(method, new, mask.shape())?
        }
        (MaskState::Existing, PruningKind::Unstructured) => {
            let importance = importance.as_standard_layout();
            let scores = importance
                .as_slice()
                .expect("as_standard_layout gives contiguous row-major data");
            let open: Vec<usize> = flat(mask)
                .iter()
                .enumerate()
                .filter(|(_, &m)| m == T::one())
                .map(|(i, _)| i)
                .collect();
            let t = Array1::from_iter(open.iter().map(|&i| scores[i])).into_dyn();
            let ones = ArrayD::ones(IxDyn(&[open.len()]));
            let partial = method.compute_mask(t.view(), ones.view())?;
            let partial = checked(method, partial, &[open.len()])?;
            let mut new = mask.clone();
            let out = flat_mut(&mut new);
            for (&i, &m) in open.iter().zip(flat(&partial)) {
                out[i] = m;
            }
            new
        }
        (MaskState::Existing, PruningKind::Structured { dim }) => {
            let d = dim.resolve(mask.ndim())?;
            let kept: Vec<usize> = live_channels(mask, d)
                .iter()
                .enumerate()
                .filter(|(_, &l)| l)
                .map(|(c, _)| c)
                .collect();
            let t = importance.select(Axis(d), &kept);
            let sub_mask = mask.select(Axis(d), &kept);
            let partial = method.compute_mask(t.view(), sub_mask.view())?;
            let partial = checked(method, partial, sub_mask.shape())?;
            let mut new = mask.clone();
            for (j, &c) in kept.iter().enumerate() {
                new.index_axis_mut(Axis(d), c)
                    .assign(&partial.index_axis(Axis(d), j));
            }
            new
        }
    };
    *mask = new;
    Ok(())
}

/// The generic global update: concatenate, prune as one flat tensor, split.
/// A fresh mask arrives zero-filled and stands for all ones. On error no
/// mask changes.
pub(crate) fn update_masks_jointly<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importances: &[ArrayViewD<'_, T>],
    masks: &mut [ArrayD<T>],
    states: &[MaskState],
) -> Result<(), PruneError> {
    let total: usize = masks.iter().map(|m| m.len()).sum();
    let mut t = Vec::with_capacity(total);
    for (imp, m) in importances.iter().zip(masks.iter()) {
        // Checked by the caller: one importance per mask, of its shape.
        assert_eq!(imp.shape(), m.shape(), "importance and mask shapes agree");
        t.extend(imp.as_standard_layout().iter().copied());
    }
    let mut joint = Vec::with_capacity(total);
    for (i, m) in masks.iter().enumerate() {
        match states[i] {
            MaskState::Fresh => joint.extend(std::iter::repeat_n(T::one(), m.len())),
            MaskState::Existing => joint.extend_from_slice(flat(m)),
        }
    }
    let t = ArrayD::from_shape_vec(IxDyn(&[total]), t).expect("one score per entry");
    let mut joint =
        ArrayD::from_shape_vec(IxDyn(&[total]), joint).expect("one mask value per entry");
    update_mask(method, t.view(), &mut joint, MaskState::Existing)?;
    let mut offset = 0;
    for m in masks.iter_mut() {
        let n = m.len();
        flat_mut(m).copy_from_slice(&flat(&joint)[offset..offset + n]);
        offset += n;
    }
    Ok(())
}

/// A method's mask, checked: the expected shape, only 0 and 1; in standard
/// layout whatever layout the method returned.
fn checked<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    mask: ArrayD<T>,
    expected: &[usize],
) -> Result<ArrayD<T>, PruneError> {
    if mask.shape() != expected {
        return Err(PruneErrorKind::MethodContract {
            method: method.describe(),
            expected: expected.to_vec(),
            got: mask.shape().to_vec(),
        }
        .into());
    }
    let mask = standard(mask);
    check_binary(mask.view())?;
    Ok(mask)
}

/// Every entry is 0 or 1.
pub(crate) fn check_binary<T: PruneFloat>(mask: ArrayViewD<'_, T>) -> Result<(), PruneError> {
    match mask
        .iter()
        .enumerate()
        .find(|(_, &m)| m != T::zero() && m != T::one())
    {
        Some((index, &value)) => Err(PruneErrorKind::InvalidMask {
            index,
            value: value.as_f64(),
        }
        .into()),
        None => Ok(()),
    }
}

// ---- choosing between a built-in method's kernels and the generic path ----

/// The mask of a first pruning of a tensor whose importance scores are
/// `importance`.
pub(crate) fn fresh_mask<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importance: ArrayViewD<'_, T>,
) -> Result<Mask<T>, PruneError> {
    let shape = importance.shape().to_vec();
    let mask = match method.fast_path() {
        Some(fast) => fast.fresh_mask(importance)?,
        None => {
            let mut mask = ArrayD::ones(importance.raw_dim());
            update_mask(method, importance, &mut mask, MaskState::Fresh)?;
            Mask::Dense(mask)
        }
    };
    if mask.shape() != shape {
        return Err(PruneErrorKind::MethodContract {
            method: method.describe(),
            expected: shape,
            got: mask.shape().to_vec(),
        }
        .into());
    }
    Ok(mask)
}

/// Updates the dense `mask` of a tensor pruned before (or, for
/// [`MaskState::Fresh`], a copy standing for all ones).
pub(crate) fn update_dense<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importance: ArrayViewD<'_, T>,
    mask: &mut ArrayD<T>,
    state: MaskState,
) -> Result<(), PruneError> {
    match method.fast_path() {
        Some(fast) => fast.update_mask(importance, mask, state),
        None => update_mask(method, importance, mask, state),
    }
}

/// Updates a mask in the form it is held, if the method can (`None`: it
/// needs the dense mask).
pub(crate) fn update_compact<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importance: ArrayViewD<'_, T>,
    mask: &mut Mask<T>,
) -> Option<Result<(), PruneError>> {
    method.fast_path()?.update_compact(importance, mask)
}
