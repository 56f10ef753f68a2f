//! Iterative combination, as PyTorch's `PruningContainer`: a later pruning
//! call sees only what its kind allows, and its result is written back into
//! the existing mask.
//!
//! This is the generic path every [`PruningMethod`] gets; the built-in
//! methods reach the same masks with in-place kernels.

use ndarray::{Array1, ArrayD, ArrayViewD, Axis, IxDyn};

use super::channels::live_channels;
use super::{flat, flat_mut, MaskState, PruningKind, PruningMethod};
use crate::{PruneError, PruneFloat};

/// The generic `update_mask`: see [`PruningMethod::update_mask`].
pub(super) fn update_mask<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importance: ArrayViewD<'_, T>,
    mask: &mut ArrayD<T>,
    state: MaskState,
) -> Result<(), PruneError> {
    let new = match (state, method.kind()) {
        (MaskState::Fresh, _) | (MaskState::Existing, PruningKind::Global) => {
            let new = method.compute_mask(importance, mask.view())?;
            check_result(method, &new, mask.shape())?;
            new
        }
        (MaskState::Existing, PruningKind::Unstructured) => {
            let importance = importance.as_standard_layout();
            let scores = importance.as_slice().unwrap_or(&[]);
            let open: Vec<usize> = flat(mask)
                .iter()
                .enumerate()
                .filter(|(_, &m)| m == T::one())
                .map(|(i, _)| i)
                .collect();
            let t = Array1::from_iter(open.iter().map(|&i| scores[i])).into_dyn();
            let ones = ArrayD::ones(IxDyn(&[open.len()]));
            let partial = method.compute_mask(t.view(), ones.view())?;
            check_result(method, &partial, &[open.len()])?;
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
            check_result(method, &partial, sub_mask.shape())?;
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

/// The generic `update_masks_jointly`: concatenate, prune as one flat
/// tensor, split. See [`PruningMethod::update_masks_jointly`].
pub(super) fn update_masks_jointly<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    importances: &[ArrayViewD<'_, T>],
    masks: &mut [ArrayD<T>],
    states: &[MaskState],
) -> Result<(), PruneError> {
    let total: usize = masks.iter().map(|m| m.len()).sum();
    let mut t = Vec::with_capacity(total);
    for imp in importances {
        t.extend(imp.as_standard_layout().iter().copied());
    }
    let mut joint = Vec::with_capacity(total);
    for (i, m) in masks.iter().enumerate() {
        match states.get(i) {
            Some(MaskState::Fresh) => joint.extend(std::iter::repeat_n(T::one(), m.len())),
            _ => joint.extend_from_slice(flat(m)),
        }
    }
    if t.len() != total {
        return Err(PruneError::MethodContract {
            method: method.describe(),
            expected: vec![total],
            got: vec![t.len()],
        });
    }
    let t = ArrayD::from_shape_vec(IxDyn(&[total]), t).map_err(|_| contract(method, total))?;
    let mut joint =
        ArrayD::from_shape_vec(IxDyn(&[total]), joint).map_err(|_| contract(method, total))?;
    method.update_mask(t.view(), &mut joint, MaskState::Existing)?;
    let mut offset = 0;
    for m in masks.iter_mut() {
        let n = m.len();
        flat_mut(m).copy_from_slice(&flat(&joint)[offset..offset + n]);
        offset += n;
    }
    Ok(())
}

fn contract<T: PruneFloat, M: PruningMethod<T> + ?Sized>(method: &M, total: usize) -> PruneError {
    PruneError::MethodContract {
        method: method.describe(),
        expected: vec![total],
        got: vec![],
    }
}

/// A method's mask must have the expected shape and hold only 0 and 1.
fn check_result<T: PruneFloat, M: PruningMethod<T> + ?Sized>(
    method: &M,
    mask: &ArrayD<T>,
    expected: &[usize],
) -> Result<(), PruneError> {
    if mask.shape() != expected {
        return Err(PruneError::MethodContract {
            method: method.describe(),
            expected: expected.to_vec(),
            got: mask.shape().to_vec(),
        });
    }
    check_binary(mask.view())
}

/// Every entry is 0 or 1.
pub(crate) fn check_binary<T: PruneFloat>(mask: ArrayViewD<'_, T>) -> Result<(), PruneError> {
    match mask
        .iter()
        .enumerate()
        .find(|(_, &m)| m != T::zero() && m != T::one())
    {
        Some((index, &value)) => Err(PruneError::InvalidMask {
            tensor: String::new(),
            index,
            value: value.as_f64(),
        }),
        None => Ok(()),
    }
}
