//! The reparametrization: the only code that moves a module's tensors.
//!
//! ```text
//! first pruning of `weight`:   weight (parameter) ──► weight_orig (parameter)
//!                                                     weight_mask (buffer, 0/1)
//!                                                     weight = weight_orig * weight_mask
//! later pruning:               weight_mask updated in place, weight recomputed
//! remove:                      weight = weight_orig * weight_mask (parameter again)
//! ```
//!
//! Every call checks everything that can fail before it changes anything,
//! so a failing call leaves the module exactly as it was.

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::module::{resolve, resolve_mut, split_path};
use crate::{
    Dim, Mask, MaskState, Module, PruneError, PruneFloat, PruningKind, PruningMethod, TensorStore,
};

/// Prunes the tensor at `path` with `method`.
pub(crate) fn prune_one<T, M, P>(
    root: &mut M,
    path: &str,
    method: &P,
    importance: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
{
    let (store, name) = resolve_mut(root, path)?;
    prune_in_store(store, name, method, importance).map_err(|e| with_context(e, path))
}

fn prune_in_store<T, P>(
    store: &mut TensorStore<T>,
    name: &str,
    method: &P,
    importance: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    P: PruningMethod<T> + ?Sized,
{
    if let (true, PruningKind::Structured { dim }) = (store.is_pruned(name), method.kind()) {
        if store.get(name).is_some_and(|t| t.ndim() < 2) {
            return prune_pruned_flat(store, name, method, importance, dim);
        }
    }
    if store.is_pruned(name) {
        // The mask in the form the store holds it, if the method can
        // update that form; else the dense mask.
        let compact = match store.pruned_and_compact_mut(name) {
            Some((current, mask)) => {
                let imp = importance.clone().unwrap_or_else(|| current.view());
                check_importance(&imp, mask.shape())?;
                method.update_compact(imp, mask)
            }
            None => None,
        };
        match compact {
            Some(outcome) => outcome?,
            None => {
                let (current, mask) =
                    store
                        .pruned_and_mask_mut(name)
                        .ok_or_else(|| PruneError::NotPruned {
                            tensor: name.to_string(),
                        })?;
                let importance = importance.unwrap_or_else(|| current.view());
                method.update_mask(importance, mask, MaskState::Existing)?;
            }
        }
        store.commit_step(name, method.describe());
    } else {
        let param = store.check_first_pruning(name)?;
        let importance = importance.unwrap_or_else(|| param.view());
        check_importance(&importance, param.shape())?;
        let mask = method.fresh_mask(importance)?;
        if mask.shape() != param.shape() {
            return Err(PruneError::MethodContract {
                method: method.describe(),
                expected: param.shape().to_vec(),
                got: mask.shape().to_vec(),
            });
        }
        store.commit_first_pruning(name, mask, method.describe());
    }
    Ok(())
}

/// A later structured pruning of a pruned tensor of fewer than 2 dims, run
/// as PyTorch's `PruningContainer` runs it. The container slices the tensor
/// by its live channels; on a 1-dim tensor that slice is indexing with one
/// boolean (`mask.sum() != 0`), which views the tensor as `[1, n]` (or
/// `[0, n]` when nothing is left) and runs the method on that view with the
/// method's own dim. So `dim = 0` prunes the whole tensor as one channel,
/// and `dim = -1` prunes single entries, pruned ones included. (The first
/// structured pruning of a 1-dim tensor is refused, in PyTorch as here.)
fn prune_pruned_flat<T, P>(
    store: &mut TensorStore<T>,
    name: &str,
    method: &P,
    importance: Option<ArrayViewD<'_, T>>,
    dim: Dim,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    P: PruningMethod<T> + ?Sized,
{
    let (current, mask) = store
        .pruned_and_mask_mut(name)
        .ok_or_else(|| PruneError::NotPruned {
            tensor: name.to_string(),
        })?;
    let importance = importance.unwrap_or_else(|| current.view());
    check_importance(&importance, mask.shape())?;
    dim.resolve(mask.ndim())?;
    let n = mask.len();
    let live = mask.iter().any(|&m| m != T::zero());
    let rows = usize::from(live);
    let as_rows = |a: Vec<T>| {
        ArrayD::from_shape_vec(vec![rows, n], a).map_err(|_| PruneError::MethodContract {
            method: method.describe(),
            expected: vec![rows, n],
            got: vec![],
        })
    };
    let take = |a: &ArrayViewD<'_, T>| {
        if live {
            a.iter().copied().collect()
        } else {
            Vec::new()
        }
    };
    let view_importance = as_rows(take(&importance))?;
    let mut view_mask = as_rows(take(&mask.view()))?;
    method.update_mask(view_importance.view(), &mut view_mask, MaskState::Fresh)?;
    if view_mask.shape() != [rows, n] {
        return Err(PruneError::MethodContract {
            method: method.describe(),
            expected: vec![rows, n],
            got: view_mask.shape().to_vec(),
        });
    }
    mask.iter_mut()
        .zip(view_mask.iter())
        .for_each(|(m, &v)| *m = v);
    store.commit_step(name, method.describe());
    Ok(())
}

fn check_importance<T>(importance: &ArrayViewD<'_, T>, shape: &[usize]) -> Result<(), PruneError> {
    if importance.shape() == shape {
        Ok(())
    } else {
        Err(PruneError::ShapeMismatch {
            tensor: String::new(),
            what: "importance scores",
            expected: shape.to_vec(),
            got: importance.shape().to_vec(),
        })
    }
}

/// Names the tensor (and its module) in an error raised below.
fn with_context(err: PruneError, path: &str) -> PruneError {
    let (module_path, _) = split_path(path);
    match err {
        PruneError::NoSuchTensor { name, .. } => PruneError::NoSuchTensor {
            module: module_path.to_string(),
            name,
        },
        PruneError::DuplicateTensor { name, .. } => PruneError::DuplicateTensor {
            module: module_path.to_string(),
            name,
        },
        other => other.for_tensor(path),
    }
}

/// Makes the pruning of the tensor at `path` permanent.
pub(crate) fn remove<T: PruneFloat, M: Module<T> + ?Sized>(
    root: &mut M,
    path: &str,
) -> Result<(), PruneError> {
    let (store, name) = resolve_mut(root, path)?;
    store
        .remove_pruning(name)
        .map_err(|e| with_context(e, path))
}

/// Global pruning: `method` (unstructured) over all `targets` as one flat
/// tensor, then each target's share of the mask applied as a custom mask.
pub(crate) fn prune_global<T, M, P>(
    root: &mut M,
    targets: &[&str],
    method: &P,
    importance_scores: Option<&HashMap<String, ArrayD<T>>>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
{
    // 1. Check everything, changing nothing.
    let mut fresh = Vec::with_capacity(targets.len());
    for (i, path) in targets.iter().enumerate() {
        let (store, name) = resolve(root, path)?;
        let shape = if store.is_pruned(name) {
            fresh.push(false);
            store.get(name).map(|t| t.shape().to_vec())
        } else {
            fresh.push(true);
            Some(
                store
                    .check_first_pruning(name)
                    .map_err(|e| with_context(e, path))?
                    .shape()
                    .to_vec(),
            )
        };
        if targets[..i].contains(path) {
            return Err(PruneError::DuplicateTensor {
                module: split_path(path).0.to_string(),
                name: split_path(path).1.to_string(),
            });
        }
        if let (Some(shape), Some(scores)) = (shape, importance_scores.and_then(|m| m.get(*path))) {
            check_importance(&scores.view(), &shape).map_err(|e| e.for_tensor(path))?;
        }
    }
    if method.kind() != PruningKind::Unstructured {
        return Err(PruneError::WrongMethodKind {
            call: "global_unstructured",
            method: method.describe(),
        });
    }

    // 2. Take the existing masks out in the form they are held; first
    // prunings get a mask of zero bits standing for all ones (the method
    // writes it whole). Step 1 resolved every path, so `resolve_mut`
    // cannot fail here or in 4.
    let mut masks = Vec::with_capacity(targets.len());
    for (path, &is_fresh) in targets.iter().zip(&fresh) {
        let (store, name) = resolve_mut(root, path)?;
        let mask = if is_fresh {
            store.parameter(name).map(|p| Mask::Bits {
                shape: p.shape().to_vec(),
                bits: vec![0; p.len().div_ceil(64)],
            })
        } else {
            store.take_compact(name)
        };
        masks.push(mask.unwrap_or_else(|| Mask::Dense(ArrayD::zeros(vec![0]))));
    }
    let states: Vec<MaskState> = fresh
        .iter()
        .map(|&f| {
            if f {
                MaskState::Fresh
            } else {
                MaskState::Existing
            }
        })
        .collect();

    // 3. One joint selection over all targets: on the masks as held if the
    // method can, else on dense ones (fresh ones zeroed, untouched memory
    // until the method writes them).
    let outcome = targets
        .iter()
        .map(|path| {
            importance_scores
                .and_then(|m| m.get(*path))
                .map(|s| s.view())
                .or_else(|| root.tensor(path).map(|t| t.view()))
                .ok_or_else(|| PruneError::NoSuchTensor {
                    module: split_path(path).0.to_string(),
                    name: split_path(path).1.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|importances| {
            if let Some(done) =
                method.update_masks_jointly_compact(&importances, &mut masks, &states)
            {
                return done;
            }
            let mut dense: Vec<ArrayD<T>> = masks
                .iter()
                .zip(&fresh)
                .map(|(m, &f)| {
                    if f {
                        crate::fresh::zeros(IxDyn(m.shape()))
                    } else {
                        m.to_dense()
                    }
                })
                .collect();
            method.update_masks_jointly(&importances, &mut dense, &states)?;
            for (m, d) in masks.iter_mut().zip(dense) {
                *m = Mask::Dense(d);
            }
            Ok(())
        });

    // 4. Put the masks back (unchanged on error), then commit.
    for ((path, &is_fresh), mask) in targets.iter().zip(&fresh).zip(masks) {
        let (store, name) = resolve_mut(root, path)?;
        match (&outcome, is_fresh) {
            (Ok(()), true) => {
                store.commit_first_pruning(name, mask, "CustomFromMask(global)".into())
            }
            (Ok(()), false) => {
                store.put_compact(name, mask);
                store.commit_step(name, "CustomFromMask(global)".into());
            }
            (Err(_), true) => {}
            (Err(_), false) => store.put_compact(name, mask),
        }
    }
    outcome
}
