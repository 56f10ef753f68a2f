//! From flat dotted names to a module tree, and how names are ordered.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::PathBuf;

use ndarray::ArrayD;

use super::{CheckpointError, CheckpointFloat, LoadOptions};
use crate::{Module, PruneError, Sequential};

/// Whether `name` can be a dotted path in a module tree: non-empty
/// components, so no leading, trailing or doubled dot.
pub(crate) fn is_tree_path(name: &str) -> bool {
    !name.is_empty() && name.split('.').all(|c| !c.is_empty())
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
/// and its children, both in natural order.
struct Node<T> {
    tensors: Vec<(String, ArrayD<T>)>,
    children: Vec<(String, Node<T>)>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            tensors: Vec::new(),
            children: Vec::new(),
        }
    }

    fn insert(&mut self, path: &str, tensor: ArrayD<T>) {
        match path.split_once('.') {
            None => self.tensors.push((path.to_string(), tensor)),
            Some((head, rest)) => {
                let at = match self.children.iter().position(|(n, _)| n == head) {
                    Some(at) => at,
                    None => {
                        self.children.push((head.to_string(), Node::new()));
                        self.children.len() - 1
                    }
                };
                self.children[at].1.insert(rest, tensor);
            }
        }
    }
}

/// Builds the module tree of `tensors` (dotted tree paths, any order):
/// `<p>.X_orig` with `<p>.X_mask` become the pruned `X`, names that
/// `options` lists as buffers become buffers, the rest parameters.
pub(crate) fn build_tree<T: CheckpointFloat>(
    mut tensors: Vec<(String, ArrayD<T>)>,
    options: &LoadOptions,
) -> Result<Sequential<T>, CheckpointError> {
    tensors.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let mut root = Node::new();
    for (name, t) in tensors {
        root.insert(&name, t);
    }
    build(root, "", options)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn build<T: CheckpointFloat>(
    node: Node<T>,
    prefix: &str,
    options: &LoadOptions,
) -> Result<Sequential<T>, CheckpointError> {
    let mut module = Sequential::new();
    let names: HashSet<String> = node.tensors.iter().map(|(n, _)| n.clone()).collect();
    let pair_base = |name: &str| -> Option<String> {
        let base = name.strip_suffix("_orig")?;
        (!base.is_empty() && names.contains(&format!("{base}_mask"))).then(|| base.to_string())
    };
    let is_paired_mask = |name: &str| {
        name.strip_suffix("_mask")
            .is_some_and(|base| !base.is_empty() && names.contains(&format!("{base}_orig")))
    };
    let mut masks: Vec<(String, ArrayD<T>)> = Vec::new();
    let mut rest = Vec::with_capacity(node.tensors.len());
    for (name, t) in node.tensors {
        if is_paired_mask(&name) {
            masks.push((name, t));
        } else {
            rest.push((name, t));
        }
    }
    let restore_err = |tensor: &str, source: PruneError| CheckpointError::Restore {
        path: PathBuf::new(),
        tensor: join(prefix, tensor),
        source: Box::new(source),
    };
    for (name, t) in rest {
        let store = module.store_mut();
        if let Some(base) = pair_base(&name) {
            let mask_name = format!("{base}_mask");
            let at = masks.iter().position(|(n, _)| *n == mask_name);
            let Some(at) = at else { continue };
            let (_, mask) = masks.swap_remove(at);
            store
                .restore_pruned(&base, t, mask)
                .map_err(|e| restore_err(&base, e))?;
        } else if options.is_buffer(&name) {
            store
                .add_buffer(&name, t)
                .map_err(|e| restore_err(&name, e))?;
        } else {
            store
                .add_parameter(&name, t)
                .map_err(|e| restore_err(&name, e))?;
        }
    }
    for (name, child) in node.children {
        let path = join(prefix, &name);
        let child = build(child, &path, options)?;
        module
            .add_child(&name, child)
            .map_err(|e| restore_err(&name, e))?;
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
