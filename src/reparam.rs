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

use crate::error::ForTensor;
use crate::mask::{Mask, MaskState};
use crate::method::{container, FastPath};
use crate::module::{resolve, resolve_mut};
use crate::{
    Dim, Module, PruneError, PruneErrorKind, PruneFloat, PruningKind, PruningMethod, PruningStep,
    TensorStore,
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
    prune_in_store(store, name, method, importance).for_tensor(path)
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
    // Before anything changes: a user's `describe` may panic too.
    let description = step_of(method, importance.is_some());
    if let (true, PruningKind::Structured { dim }) = (store.is_pruned(name), method.kind()) {
        if store.get(name).is_some_and(|t| t.ndim() < 2) {
            return prune_pruned_flat(store, name, method, importance, dim, description);
        }
    }
    if store.is_pruned(name) {
        // The mask in the form the store holds it, if the method can
        // update that form; else the dense mask.
        let (current, mask) = store
            .pruned_and_compact_mut(name)
            .expect("`name` is pruned: checked above");
        let imp = importance.clone().unwrap_or_else(|| current.view());
        check_importance(&imp, mask.shape())?;
        match container::update_compact(method, imp, mask) {
            Some(outcome) => outcome?,
            None => {
                let (current, mask) = store
                    .pruned_and_mask_mut(name)
                    .expect("`name` is pruned: checked above");
                let importance = importance.unwrap_or_else(|| current.view());
                container::update_dense(method, importance, mask, MaskState::Existing)?;
            }
        }
        store.commit_step(name, description);
    } else {
        let param = store.check_first_pruning(name)?;
        let importance = importance.unwrap_or_else(|| param.view());
        check_importance(&importance, param.shape())?;
        let mask = container::fresh_mask(method, importance)?;
        store.commit_first_pruning(name, mask, description);
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
    description: PruningStep,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    P: PruningMethod<T> + ?Sized,
{
    let (current, mask) = store
        .pruned_and_mask_mut(name)
        .expect("only called for a pruned `name`");
    let importance = importance.unwrap_or_else(|| current.view());
    check_importance(&importance, mask.shape())?;
    dim.resolve(mask.ndim())?;
    let n = mask.len();
    let live = mask.iter().any(|&m| m != T::zero());
    let rows = usize::from(live);
    let as_rows = |a: Vec<T>| {
        ArrayD::from_shape_vec(vec![rows, n], a).expect("`rows * n` entries, taken just so")
    };
    let take = |a: &ArrayViewD<'_, T>| {
        if live {
            a.iter().copied().collect()
        } else {
            Vec::new()
        }
    };
    let view_importance = as_rows(take(&importance));
    let mut view_mask = as_rows(take(&mask.view()));
    container::update_dense(
        method,
        view_importance.view(),
        &mut view_mask,
        MaskState::Fresh,
    )?;
    // The update keeps the shape: the generic path checks what a method
    // returns, and the built-in kernels write in place.
    assert_eq!(
        view_mask.shape(),
        [rows, n],
        "a mask update keeps its shape"
    );
    mask.iter_mut()
        .zip(view_mask.iter())
        .for_each(|(m, &v)| *m = v);
    store.commit_step(name, description);
    Ok(())
}

/// The record of one step of `method` in a pruning history: the built-in
/// methods record their settings, any other method its kind and
/// description.
pub(crate) fn step_of<T, P>(method: &P, importance_scores: bool) -> PruningStep
where
    T: PruneFloat,
    P: PruningMethod<T> + ?Sized,
{
    match method.fast_path() {
        Some(fast) => fast.step(importance_scores),
        None => PruningStep::User {
            kind: method.kind(),
            description: method.describe(),
            importance_scores,
        },
    }
}

fn check_importance<T>(importance: &ArrayViewD<'_, T>, shape: &[usize]) -> Result<(), PruneError> {
    crate::method::check_scores_shape(importance.shape(), shape)
}

/// Makes the pruning of the tensor at `path` permanent.
pub(crate) fn remove<T: PruneFloat, M: Module<T> + ?Sized>(
    root: &mut M,
    path: &str,
) -> Result<(), PruneError> {
    let (store, name) = resolve_mut(root, path)?;
    store.remove_pruning(name).for_tensor(path)
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
    // 1. Check everything, changing nothing. Paths are canonical (checked
    // by `resolve`), so one tensor has one spelling.
    let mut fresh = Vec::with_capacity(targets.len());
    let mut seen = HashMap::with_capacity(targets.len());
    for path in targets {
        let (store, name) = resolve(root, path)?;
        let shape = if store.is_pruned(name) {
            fresh.push(false);
            store.get(name).expect("a pruned tensor is there").shape()
        } else {
            fresh.push(true);
            store.check_first_pruning(name).for_tensor(path)?.shape()
        };
        if let Some(first) = seen.insert(*path, *path) {
            return Err(PruneError::new(
                *path,
                PruneErrorKind::DuplicateTarget {
                    first: first.to_string(),
                    again: path.to_string(),
                },
            ));
        }
        if let Some(scores) = importance_scores.and_then(|m| m.get(*path)) {
            check_importance(&scores.view(), shape).for_tensor(path)?;
        }
    }
    if method.kind() != PruningKind::Unstructured {
        return Err(PruneErrorKind::WrongMethodKind {
            call: "global_unstructured",
            method: method.describe(),
        }
        .into());
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
    // Each target's record, made before anything changes (a user's
    // `describe` may panic).
    let steps: Vec<PruningStep> = targets
        .iter()
        .map(|path| PruningStep::Global {
            method: Box::new(step_of(
                method,
                importance_scores.is_some_and(|m| m.contains_key(*path)),
            )),
            tensors: targets.len(),
        })
        .collect();
    match method.fast_path() {
        Some(fast) => global_in_place(root, targets, fast, importance_scores, &states, steps),
        None => global_generic(root, targets, method, importance_scores, &states, steps),
    }
}

/// The importance scores of each target: given, or the tensor as it is.
fn importances<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    root: &'a M,
    targets: &[&str],
    importance_scores: Option<&'a HashMap<String, ArrayD<T>>>,
) -> Vec<ArrayViewD<'a, T>> {
    targets
        .iter()
        .map(|path| {
            importance_scores
                .and_then(|m| m.get(*path))
                .map(|s| s.view())
                .or_else(|| root.tensor(path).map(|t| t.view()))
                .expect("every target was resolved")
        })
        .collect()
}

/// Global pruning by a method that is not built in: it works on dense
/// copies of the masks (the store's stay where they are while user code
/// runs), and its result is committed only when it is whole.
fn global_generic<T, M, P>(
    root: &mut M,
    targets: &[&str],
    method: &P,
    importance_scores: Option<&HashMap<String, ArrayD<T>>>,
    states: &[MaskState],
    steps: Vec<PruningStep>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
{
    let mut dense: Vec<ArrayD<T>> = targets
        .iter()
        .zip(states)
        .map(|(path, state)| {
            let (module, name) = crate::module::split_path(path);
            let store = root.store_at(module).expect("every target was resolved");
            match state {
                MaskState::Fresh => {
                    let shape = store.parameter(name).expect("checked").raw_dim();
                    ArrayD::zeros(shape)
                }
                MaskState::Existing => store
                    .buffer(&crate::module::mask_name(name))
                    .expect("a pruned tensor has its mask")
                    .clone(),
            }
        })
        .collect();
    let imps = importances(root, targets, importance_scores);
    container::update_masks_jointly(method, &imps, &mut dense, states)?;
    let masks = dense.into_iter().map(Mask::Dense).collect();
    put_back(root, targets, states, masks, Some(steps));
    Ok(())
}

/// Global pruning by a built-in method, on the masks as the store holds
/// them (taken out and put back; no user code runs in between).
fn global_in_place<T, M>(
    root: &mut M,
    targets: &[&str],
    method: &dyn FastPath<T>,
    importance_scores: Option<&HashMap<String, ArrayD<T>>>,
    states: &[MaskState],
    steps: Vec<PruningStep>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
{
    // Take the existing masks out in the form they are held; first
    // prunings get a mask of zero bits standing for all ones (the method
    // writes it whole).
    let mut masks = Vec::with_capacity(targets.len());
    for (path, state) in targets.iter().zip(states) {
        let (store, name) = resolve_mut(root, path).expect("every target was resolved");
        masks.push(match state {
            MaskState::Fresh => {
                let p = store.parameter(name).expect("checked");
                Mask::Bits {
                    shape: p.shape().to_vec(),
                    bits: vec![0; p.len().div_ceil(64)],
                }
            }
            MaskState::Existing => store
                .take_compact(name)
                .expect("a pruned tensor has a mask"),
        });
    }

    // One joint selection over all targets: on the masks as held if the
    // method can, else on dense ones.
    let imps = importances(root, targets, importance_scores);
    let outcome = match method.update_masks_jointly_compact(&imps, &mut masks, states) {
        Some(done) => done,
        None => {
            let mut dense: Vec<ArrayD<T>> = masks
                .iter()
                .zip(states)
                .map(|(m, state)| match state {
                    MaskState::Fresh => crate::fresh::zeros(IxDyn(m.shape())),
                    MaskState::Existing => m.to_dense(),
                })
                .collect();
            method
                .update_masks_jointly(&imps, &mut dense, states)
                .map(|()| {
                    for (m, d) in masks.iter_mut().zip(dense) {
                        *m = Mask::Dense(d);
                    }
                })
        }
    };

    put_back(
        root,
        targets,
        states,
        masks,
        outcome.is_ok().then_some(steps),
    );
    outcome
}

/// Puts the masks of a global pruning where they belong: with `commit`
/// (each target's step record), as each target's new mask (a first
/// pruning, or a step); without, back as they were (the existing ones; a
/// fresh target gets none).
fn put_back<T: PruneFloat, M: Module<T> + ?Sized>(
    root: &mut M,
    targets: &[&str],
    states: &[MaskState],
    masks: Vec<Mask<T>>,
    commit: Option<Vec<PruningStep>>,
) {
    let mut steps = commit.map(Vec::into_iter);
    for ((path, state), mask) in targets.iter().zip(states).zip(masks) {
        let (store, name) = resolve_mut(root, path).expect("every target was resolved");
        let step = steps
            .as_mut()
            .map(|s| s.next().expect("one step record per target"));
        match (state, step) {
            (MaskState::Fresh, Some(step)) => store.commit_first_pruning(name, mask, step),
            (MaskState::Existing, Some(step)) => {
                store.put_compact(name, mask);
                store.commit_step(name, step);
            }
            (MaskState::Fresh, None) => {}
            (MaskState::Existing, None) => store.put_compact(name, mask),
        }
    }
}
