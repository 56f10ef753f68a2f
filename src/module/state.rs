//! Loading a state dict (dotted names to tensors) into any module tree.

use std::collections::{HashMap, HashSet};

use ndarray::ArrayD;

use super::store::{mask_name, orig_name};
use super::tree::split_path;
use crate::error::KeyShape;
use crate::{Module, PruneError, PruneErrorKind, PruneFloat};

/// What [`Module::load_state_dict`] did: PyTorch's `missing_keys` and
/// `unexpected_keys`, plus what was loaded and which tensors the state dict
/// pruned. In strict mode `missing` and `unexpected` are empty (else the
/// call failed).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new()
///     .with_parameter("weight", ArrayD::zeros(vec![2]))?
///     .with_parameter("bias", ArrayD::zeros(vec![2]))?;
/// let state = vec![
///     ("weight".to_string(), ArrayD::ones(vec![2])),
///     ("extra".to_string(), ArrayD::ones(vec![1])),
/// ];
/// let report = layer.load_state_dict(state, false)?;
/// assert_eq!(report.loaded, ["weight"]);
/// assert_eq!(report.missing, ["bias"]);
/// assert_eq!(report.unexpected, ["extra"]);
/// assert!(report.newly_pruned.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadReport {
    /// The keys loaded, in the order given.
    pub loaded: Vec<String>,
    /// Keys of the module's `state_dict` the state dict lacks (left as
    /// they were).
    pub missing: Vec<String>,
    /// Keys of the state dict the module has no place for (ignored).
    pub unexpected: Vec<String>,
    /// Tensors (`X`, dotted) that were plain parameters and are pruned now,
    /// from an `X_orig` and `X_mask` in the state dict.
    pub newly_pruned: Vec<String>,
}

/// Where one key of the state dict goes.
enum Place {
    /// A parameter or buffer of the module's `state_dict` of the same name
    /// (including `X_orig` and `X_mask` of a tensor pruned in the module).
    Same,
    /// `X_orig` of a pair that prunes the plain parameter `X`.
    PairOrig,
    /// `X_mask` of such a pair.
    PairMask,
}

pub(crate) fn load<T, M>(
    root: &mut M,
    state: Vec<(String, ArrayD<T>)>,
    strict: bool,
) -> Result<LoadReport, PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
{
    // 1. Check everything, changing nothing. The keys are the tree's
    // paths only where every child's name is one segment.
    super::tree::check_child_names(&*root, "")?;
    let expected: Vec<(String, Vec<usize>)> = root
        .state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.shape().to_vec()))
        .collect();
    let expected_shape: HashMap<&str, &[usize]> = expected
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    let given: HashSet<&str> = state.iter().map(|(k, _)| k.as_str()).collect();

    let mut seen = HashSet::with_capacity(state.len());
    let mut duplicated = Vec::new();
    let mut unexpected = Vec::new();
    let mut mismatched = Vec::new();
    let mut consumed: HashSet<String> = HashSet::with_capacity(state.len());
    let mut places: Vec<Option<Place>> = Vec::with_capacity(state.len());
    for (key, tensor) in &state {
        if !seen.insert(key.as_str()) {
            if !duplicated.contains(key) {
                duplicated.push(key.clone());
            }
            places.push(None);
            continue;
        }
        let (place, shape) = match place_of(root, key, &given, &expected_shape) {
            Some(found) => found,
            None => {
                unexpected.push(key.clone());
                places.push(None);
                continue;
            }
        };
        if tensor.shape() != shape.as_slice() {
            mismatched.push(KeyShape {
                key: key.clone(),
                expected: shape,
                got: tensor.shape().to_vec(),
            });
        }
        match place {
            Place::Same => consumed.insert(key.clone()),
            Place::PairOrig => {
                let (module, name) = split_path(key);
                let base = name.strip_suffix("_orig").expect("a pair's original");
                consumed.insert(super::tree::join(module, base))
            }
            Place::PairMask => false,
        };
        places.push(Some(place));
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|(k, _)| !consumed.contains(k))
        .map(|(k, _)| k.clone())
        .collect();
    if !mismatched.is_empty()
        || !duplicated.is_empty()
        || (strict && (!missing.is_empty() || !unexpected.is_empty()))
    {
        return Err(PruneErrorKind::LoadStateDict {
            missing,
            unexpected,
            mismatched,
            duplicated,
        }
        .into());
    }
    // Masks hold only 0 and 1: a mask of the module's own pruned tensor, or
    // of a pair that prunes a plain one.
    for ((key, tensor), place) in state.iter().zip(&places) {
        let is_mask = match place {
            Some(Place::PairMask) => true,
            Some(Place::Same) => is_pruned_mask(root, key),
            _ => false,
        };
        if is_mask {
            crate::method::container::check_binary(tensor.view())
                .map_err(|e| PruneError::new(key.as_str(), e.kind().clone()))?;
        }
    }

    // 2. Commit: nothing below can fail.
    let mut report = LoadReport {
        missing,
        unexpected,
        ..LoadReport::default()
    };
    let mut pair_masks: HashMap<String, ArrayD<T>> = HashMap::new();
    let mut pair_origs = Vec::new();
    for ((key, tensor), place) in state.into_iter().zip(places) {
        match place {
            None => {}
            Some(Place::Same) => {
                let (module, name) = split_path(&key);
                root.store_at_mut(module)
                    .expect("checked: the key's module exists")
                    .replace_tensor(name, tensor);
                report.loaded.push(key);
            }
            Some(Place::PairMask) => {
                pair_masks.insert(key.clone(), tensor);
                report.loaded.push(key);
            }
            Some(Place::PairOrig) => {
                pair_origs.push((key.clone(), tensor));
                report.loaded.push(key);
            }
        }
    }
    for (key, orig) in pair_origs {
        let (module, name) = split_path(&key);
        let base = name.strip_suffix("_orig").expect("a pair's original");
        let mask = pair_masks
            .remove(&super::tree::join(module, &mask_name(base)))
            .expect("checked: a pair's mask is in the state dict, once");
        root.store_at_mut(module)
            .expect("checked: the pair's module exists")
            .prune_from_parts(base, orig, mask);
        report.newly_pruned.push(super::tree::join(module, base));
    }
    root.recompute_pruned();
    Ok(report)
}

/// Where `key` goes in `root`, and the shape it must have there; `None`
/// if it goes nowhere.
fn place_of<T: PruneFloat, M: Module<T> + ?Sized>(
    root: &M,
    key: &str,
    given: &HashSet<&str>,
    expected_shape: &HashMap<&str, &[usize]>,
) -> Option<(Place, Vec<usize>)> {
    if let Some(shape) = expected_shape.get(key) {
        return Some((Place::Same, shape.to_vec()));
    }
    let (module, name) = split_path(key);
    let store = root.store_at(module)?;
    // A pair `X_orig`, `X_mask` for a plain parameter `X` of the module,
    // and no plain `X` beside it in the state dict (which would make the
    // pair ambiguous, as every checkpoint reader refuses it).
    let plain = |base: &str| {
        if given.contains(super::tree::join(module, base).as_str()) {
            return None;
        }
        // A parameter, not pruned, its `X_orig` and `X_mask` free.
        let shape = store.check_first_pruning(base).ok()?;
        let both = [orig_name(base), mask_name(base)]
            .iter()
            .all(|k| given.contains(super::tree::join(module, k).as_str()));
        both.then(|| shape.shape().to_vec())
    };
    if let Some(base) = name.strip_suffix("_orig").filter(|b| !b.is_empty()) {
        return plain(base).map(|s| (Place::PairOrig, s));
    }
    if let Some(base) = name.strip_suffix("_mask").filter(|b| !b.is_empty()) {
        return plain(base).map(|s| (Place::PairMask, s));
    }
    None
}

/// Whether `key` is the mask buffer of a tensor pruned in `root`.
fn is_pruned_mask<T: PruneFloat, M: Module<T> + ?Sized>(root: &M, key: &str) -> bool {
    let (module, name) = split_path(key);
    name.strip_suffix("_mask")
        .zip(root.store_at(module))
        .is_some_and(|(base, store)| store.is_pruned(base))
}
