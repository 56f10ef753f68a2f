//! From flat dotted names to a module tree, and how names are ordered.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use ndarray::ArrayD;

use super::{CheckpointError, CheckpointFloat, LoadOptions};
use crate::{Module, PruneError, Sequential};

/// The most components a dotted name may have to become a path in the
/// module tree; deeper names are kept as raw tensors. (PyTorch's deepest
/// real models are a few dozen levels deep; the bound keeps every walk of
/// the tree, which recurses on depth, far from the stack's end.)
pub(crate) const MAX_TREE_DEPTH: usize = 64;

/// Whether `name` can be a dotted path in a module tree: non-empty
/// components, so no leading, trailing or doubled dot, and at most
/// [`MAX_TREE_DEPTH`] of them.
pub(crate) fn is_tree_path(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|c| !c.is_empty())
        && name.bytes().filter(|&b| b == b'.').count() < MAX_TREE_DEPTH
}

/// Orders dotted names component by component, numbers by value
/// (`layers.2` before `layers.10`) and before words.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => match component_cmp(p, q) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

fn component_cmp(p: &str, q: &str) -> Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(p), numeric(q)) {
        (true, true) => {
            let (tp, tq) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
            tp.len()
                .cmp(&tq.len())
                .then_with(|| tp.cmp(tq))
                .then_with(|| p.cmp(q))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => p.cmp(q),
    }
}

/// One module while the tree is built: its own tensors (local name, array)
/// and its children (local name, index in the arena), in insertion order.
struct Node<T> {
    tensors: Vec<(String, ArrayD<T>)>,
    children: Vec<(String, usize)>,
    /// `children` by name.
    child_index: HashMap<String, usize>,
    /// The dotted path of this module (`""` for the root).
    path: String,
}

impl<T> Node<T> {
    fn new(path: String) -> Self {
        Node {
            tensors: Vec::new(),
            children: Vec::new(),
            child_index: HashMap::new(),
            path,
        }
    }
}

/// Builds the module tree of `tensors` (dotted tree paths, any order):
/// `<p>.X_orig` with `<p>.X_mask` become the pruned `X`, names that
/// `options` lists as buffers become buffers, the rest parameters.
///
/// Cost: `O(n log n)` in the number of tensors, no recursion (the modules
/// live in an arena and are assembled from the leaves up).
pub(crate) fn build_tree<T: CheckpointFloat>(
    mut tensors: Vec<(String, ArrayD<T>)>,
    options: &LoadOptions,
) -> Result<Sequential<T>, CheckpointError> {
    tensors.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let mut arena = vec![Node::new(String::new())];
    for (name, t) in tensors {
        let (modules, local) = name.rsplit_once('.').unwrap_or(("", &name));
        let mut at = 0;
        if !modules.is_empty() {
            for component in modules.split('.') {
                at = match arena[at].child_index.get(component) {
                    Some(&child) => child,
                    None => {
                        let child = arena.len();
                        let path = join(&arena[at].path, component);
                        arena.push(Node::new(path));
                        let node = &mut arena[at];
                        node.children.push((component.to_string(), child));
                        node.child_index.insert(component.to_string(), child);
                        child
                    }
                };
            }
        }
        arena[at].tensors.push((local.to_string(), t));
    }
    // A child is always pushed after its parent, so walking the arena
    // backwards builds every child before the module that holds it.
    let mut built: Vec<Option<Sequential<T>>> = (0..arena.len()).map(|_| None).collect();
    for (i, node) in arena.into_iter().enumerate().rev() {
        let mut module = build_store(node.tensors, &node.path, options)?;
        for (name, child) in node.children {
            let child = built[child]
                .take()
                .expect("a child is built before its parent and taken once");
            module
                .add_child(&name, child)
                .map_err(|e| restore_err(&node.path, &name, e))?;
        }
        built[i] = Some(module);
    }
    Ok(built[0].take().expect("the root is built"))
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn restore_err(prefix: &str, tensor: &str, source: PruneError) -> CheckpointError {
    CheckpointError::Restore {
        path: PathBuf::new(),
        tensor: join(prefix, tensor),
        source: Box::new(source),
    }
}

/// One module with its own tensors: pairs restored as pruned, buffers and
/// parameters added.
fn build_store<T: CheckpointFloat>(
    tensors: Vec<(String, ArrayD<T>)>,
    prefix: &str,
    options: &LoadOptions,
) -> Result<Sequential<T>, CheckpointError> {
    let mut module = Sequential::new();
    let names: HashSet<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let pair_base = |name: &str| -> Option<String> {
        let base = name.strip_suffix("_orig")?;
        (!base.is_empty() && names.contains(format!("{base}_mask").as_str()))
            .then(|| base.to_string())
    };
    let is_paired_mask = |name: &str| {
        name.strip_suffix("_mask")
            .is_some_and(|base| !base.is_empty() && names.contains(format!("{base}_orig").as_str()))
    };
    let paired: Vec<bool> = tensors.iter().map(|(n, _)| is_paired_mask(n)).collect();
    let bases: Vec<Option<String>> = tensors.iter().map(|(n, _)| pair_base(n)).collect();
    drop(names);
    let mut masks: HashMap<String, ArrayD<T>> = HashMap::new();
    let mut rest = Vec::with_capacity(tensors.len());
    for ((name, t), (is_mask, base)) in tensors.into_iter().zip(paired.into_iter().zip(bases)) {
        if is_mask {
            masks.insert(name, t);
        } else {
            rest.push((name, t, base));
        }
    }
    for (name, t, base) in rest {
        let store = module.store_mut();
        if let Some(base) = base {
            let mask = masks
                .remove(&format!("{base}_mask"))
                .expect("a pair's mask is set aside once, for its one original");
            store
                .restore_pruned(&base, t, mask)
                .map_err(|e| restore_err(prefix, &base, e))?;
        } else if options.is_buffer(&name) {
            store
                .add_buffer(&name, t)
                .map_err(|e| restore_err(prefix, &name, e))?;
        } else {
            store
                .add_parameter(&name, t)
                .map_err(|e| restore_err(prefix, &name, e))?;
        }
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "layers.10.w",
            "layers.2.w",
            "layers.2",
            "a",
            "layers.02.w",
            "b.x",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a",
                "b.x",
                "layers.02.w",
                "layers.2",
                "layers.2.w",
                "layers.10.w"
            ]
        );
        assert!(is_tree_path("a.b") && !is_tree_path("a..b") && !is_tree_path(".a"));
        assert!(!is_tree_path("") && !is_tree_path("a."));
    }
}
