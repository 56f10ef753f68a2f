//! The `Module` trait: named tensors and named children, addressed by dotted
//! paths.

use std::fmt;

use ndarray::ArrayD;

use crate::{PruneError, PruneFloat, TensorStore};

/// A model part that holds named tensors and, optionally, named child
/// modules, like PyTorch's `nn.Module`.
///
/// Tensors anywhere in the tree are addressed by dotted paths:
/// `features.0.weight` is the tensor `weight` of the child `0` of the child
/// `features`. Implement [`Module::store`] and [`Module::store_mut`] for a
/// leaf, and [`Module::children`] and [`Module::children_mut`] as well for a
/// module that contains others; everything else is provided.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// /// A user's own model: two layers in named fields.
/// #[derive(Debug)]
/// struct TwoLayer {
///     own: TensorStore<f32>,
///     encoder: Layer<f32>,
///     decoder: Layer<f32>,
/// }
///
/// impl Module<f32> for TwoLayer {
///     fn store(&self) -> &TensorStore<f32> { &self.own }
///     fn store_mut(&mut self) -> &mut TensorStore<f32> { &mut self.own }
///     fn children(&self) -> Vec<(&str, &dyn Module<f32>)> {
///         vec![("encoder", &self.encoder), ("decoder", &self.decoder)]
///     }
///     fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f32>)> {
///         vec![("encoder", &mut self.encoder), ("decoder", &mut self.decoder)]
///     }
/// }
///
/// # fn main() -> Result<(), PruneError> {
/// let weight = ArrayD::from_shape_vec(vec![2, 2], vec![0.1f32, -3.0, 2.0, 0.5]).unwrap();
/// let mut model = TwoLayer {
///     own: TensorStore::new(),
///     encoder: Layer::new().with_parameter("weight", weight),
///     decoder: Layer::new().with_parameter("weight", ArrayD::ones(vec![2, 2])),
/// };
/// prune::l1_unstructured(&mut model, "encoder.weight", Amount::Count(2), None)?;
/// assert_eq!(model.tensor("encoder.weight").unwrap().as_slice().unwrap(), &[0.0, -3.0, 2.0, 0.0]);
/// assert!(model.buffer("encoder.weight_mask").is_some());
/// assert!(prune::is_pruned(&model));
/// # Ok(()) }
/// ```
pub trait Module<T: PruneFloat>: fmt::Debug {
    /// This module's own tensors.
    fn store(&self) -> &TensorStore<T>;

    /// This module's own tensors, mutable.
    fn store_mut(&mut self) -> &mut TensorStore<T>;

    /// The direct children, with their names, in order. None by default.
    fn children(&self) -> Vec<(&str, &dyn Module<T>)> {
        Vec::new()
    }

    /// The direct children, mutable; the same names in the same order as
    /// [`Module::children`].
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<T>)> {
        Vec::new()
    }

    /// The store of the module at a dotted module path (`""` is this one).
    fn store_at(&self, module_path: &str) -> Option<&TensorStore<T>> {
        if module_path.is_empty() {
            return Some(self.store());
        }
        let (head, rest) = module_path.split_once('.').unwrap_or((module_path, ""));
        let (_, child) = self.children().into_iter().find(|(n, _)| *n == head)?;
        child.store_at(rest)
    }

    /// The store of the module at a dotted module path, mutable.
    fn store_at_mut(&mut self, module_path: &str) -> Option<&mut TensorStore<T>> {
        if module_path.is_empty() {
            return Some(self.store_mut());
        }
        let (head, rest) = module_path.split_once('.').unwrap_or((module_path, ""));
        let (_, child) = self.children_mut().into_iter().find(|(n, _)| *n == head)?;
        child.store_at_mut(rest)
    }

    /// The tensor at a dotted path as a forward pass sees it (pruned tensor,
    /// else parameter, else buffer).
    fn tensor(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.get(name)
    }

    /// The parameter at a dotted path.
    fn parameter(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.parameter(name)
    }

    /// The parameter at a dotted path, to change its values (then call
    /// [`Module::recompute_pruned`]).
    fn parameter_mut(&mut self, path: &str) -> Option<&mut ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at_mut(module)?.parameter_mut(name)
    }

    /// The buffer at a dotted path.
    fn buffer(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.buffer(name)
    }

    /// Calls `visit` with the dotted path and store of this module and of
    /// every module below it, parents before children.
    fn visit_stores(&self, prefix: &str, visit: &mut dyn FnMut(&str, &TensorStore<T>)) {
        visit(prefix, self.store());
        for (name, child) in self.children() {
            child.visit_stores(&join(prefix, name), visit);
        }
    }

    /// Every parameter of the tree with its dotted path, in PyTorch's
    /// `named_parameters` order.
    fn named_parameters(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.parameters().collect());
        out
    }

    /// Every buffer of the tree with its dotted path.
    fn named_buffers(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.buffers().collect());
        out
    }

    /// Every pruned tensor (`orig * mask`) of the tree with its dotted path.
    fn named_pruned(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.pruned_tensors().collect());
        out
    }

    /// Parameters and buffers with dotted names, in the order of PyTorch's
    /// `state_dict` (each module's parameters, then its buffers, then its
    /// children).
    fn state_dict(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| {
            s.parameters().chain(s.buffers()).collect()
        });
        out
    }

    /// Recomputes every pruned tensor in the tree as `orig * mask`: what
    /// PyTorch's forward pre-hooks do before each forward pass.
    fn recompute_pruned(&mut self) {
        self.store_mut().recompute();
        for (_, child) in self.children_mut() {
            child.recompute_pruned();
        }
    }
}

fn collect<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    module: &'a M,
    prefix: &str,
    out: &mut Vec<(String, &'a ArrayD<T>)>,
    pick: &dyn Fn(&'a TensorStore<T>) -> Vec<(&'a str, &'a ArrayD<T>)>,
) {
    for (name, t) in pick(module.store()) {
        out.push((join(prefix, name), t));
    }
    for (name, child) in module.children() {
        collect(child, &join(prefix, name), out, pick);
    }
}

/// `prefix.name`, or `name` at the root.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Splits `a.b.weight` into the module path `a.b` and the tensor name
/// `weight`.
pub(crate) fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// The store holding the tensor at `path`, and the tensor's name in it.
pub(crate) fn resolve_mut<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    root: &'a mut M,
    path: &'a str,
) -> Result<(&'a mut TensorStore<T>, &'a str), PruneError> {
    let (module, name) = split_path(path);
    let store = root
        .store_at_mut(module)
        .ok_or_else(|| PruneError::NoSuchModule {
            path: module.to_string(),
        })?;
    Ok((store, name))
}

/// The store holding the tensor at `path`, and the tensor's name in it.
pub(crate) fn resolve<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    root: &'a M,
    path: &'a str,
) -> Result<(&'a TensorStore<T>, &'a str), PruneError> {
    let (module, name) = split_path(path);
    let store = root
        .store_at(module)
        .ok_or_else(|| PruneError::NoSuchModule {
            path: module.to_string(),
        })?;
    Ok((store, name))
}
