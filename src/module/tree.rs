//! The `Module` trait: named tensors and named children, addressed by dotted
//! paths.

use std::fmt;

use ndarray::{ArrayD, ArrayViewMutD};

use crate::{PruneError, PruneErrorKind, PruneFloat, PruningStep, TensorStore};

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
///     encoder: Layer::new().with_parameter("weight", weight)?,
///     decoder: Layer::new().with_parameter("weight", ArrayD::ones(vec![2, 2]))?,
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
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let s = Sequential::<f32>::new().with_child("fc", Layer::new()).unwrap();
    /// assert_eq!(s.children().len(), 1);
    /// assert!(Layer::<f32>::new().children().is_empty());
    /// ```
    fn children(&self) -> Vec<(&str, &dyn Module<T>)> {
        Vec::new()
    }

    /// The direct children, mutable; the same names in the same order as
    /// [`Module::children`].
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let mut s = Sequential::<f32>::new().push(Layer::new());
    /// assert_eq!(s.children_mut()[0].0, "0");
    /// ```
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<T>)> {
        Vec::new()
    }

    /// The store of the module at a dotted module path (`""` is this one).
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let s = Sequential::<f32>::new().with_child("a", Sequential::new().push(Layer::new())).unwrap();
    /// assert!(s.store_at("a.0").is_some());
    /// assert!(s.store_at("a.1").is_none());
    /// ```
    fn store_at(&self, module_path: &str) -> Option<&TensorStore<T>> {
        if module_path.is_empty() {
            return Some(self.store());
        }
        let (head, rest) = module_path.split_once('.').unwrap_or((module_path, ""));
        let (_, child) = self.children().into_iter().find(|(n, _)| *n == head)?;
        child.store_at(rest)
    }

    /// The store of the module at a dotted module path, mutable.
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let mut s = Sequential::<f32>::new().push(Layer::new());
    /// let store = s.store_at_mut("0").unwrap();
    /// store.add_parameter("w", ndarray::ArrayD::zeros(vec![2])).unwrap();
    /// assert!(s.parameter("0.w").is_some());
    /// ```
    fn store_at_mut(&mut self, module_path: &str) -> Option<&mut TensorStore<T>> {
        if module_path.is_empty() {
            return Some(self.store_mut());
        }
        let (head, rest) = module_path.split_once('.').unwrap_or((module_path, ""));
        let (_, child) = self.children_mut().into_iter().find(|(n, _)| *n == head)?;
        child.store_at_mut(rest)
    }

    /// The tensor at a dotted path as a forward pass sees it (pruned tensor,
    /// else parameter, else buffer): PyTorch's `getattr`.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().push(Layer::new().with_parameter("weight", array![1.0f32, 2.0].into_dyn())?);
    /// prune::l1_unstructured(&mut m, "0.weight", Amount::Count(1), None)?;
    /// assert_eq!(m.tensor("0.weight").unwrap(), &array![0.0f32, 2.0].into_dyn());
    /// assert!(m.parameter("0.weight").is_none()); // it is no parameter now
    /// # Ok(()) }
    /// ```
    fn tensor(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.get(name)
    }

    /// The parameter at a dotted path.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// let l = Layer::<f32>::new().with_parameter("bias", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// assert_eq!(l.parameter("bias").unwrap().len(), 3);
    /// ```
    fn parameter(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.parameter(name)
    }

    /// The parameter at a dotted path, to change its values (then call
    /// [`Module::recompute_pruned`]): a view, of fixed shape.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// let mut l = Layer::<f32>::new().with_parameter("bias", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// l.parameter_mut("bias").unwrap().fill(1.0);
    /// assert_eq!(l.parameter("bias").unwrap().sum(), 3.0);
    /// ```
    fn parameter_mut(&mut self, path: &str) -> Option<ArrayViewMutD<'_, T>> {
        let (module, name) = split_path(path);
        self.store_at_mut(module)?.parameter_mut(name)
    }

    /// The trainable tensor at a dotted path: `X_orig` if `X` is pruned,
    /// else the parameter `X` (see [`TensorStore::trainable`]). Training
    /// code reads and updates the same name whatever the pruning state.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().with_child("fc", Layer::new().with_parameter("weight", array![1.0f32, -2.0].into_dyn())?)?;
    /// assert_eq!(m.trainable("fc.weight"), m.parameter("fc.weight"));
    /// prune::l1_unstructured(&mut m, "fc.weight", Amount::Count(1), None)?;
    /// assert_eq!(m.trainable("fc.weight").unwrap(), &array![1.0f32, -2.0].into_dyn()); // the original
    /// assert!(m.trainable("fc.nothing").is_none());
    /// # Ok(()) }
    /// ```
    fn trainable(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.trainable(name)
    }

    /// The trainable tensor at a dotted path, to change its values in
    /// place: a view of fixed shape of `X_orig` if `X` is pruned, else of
    /// the parameter `X`. After changing a pruned tensor's original, call
    /// [`Module::recompute_pruned`] before reading `X` (as PyTorch's
    /// forward pre-hook would), or use [`Module::update_trainable`], which
    /// does it.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().with_child("fc", Layer::new().with_parameter("weight", array![1.0f32, -2.0].into_dyn())?)?;
    /// prune::l1_unstructured(&mut m, "fc.weight", Amount::Count(1), None)?;
    /// m.trainable_mut("fc.weight").unwrap().mapv_inplace(|w| w * 10.0); // an optimizer step
    /// m.recompute_pruned();
    /// assert_eq!(m.tensor("fc.weight").unwrap(), &array![0.0f32, -20.0].into_dyn());
    /// # Ok(()) }
    /// ```
    fn trainable_mut(&mut self, path: &str) -> Option<ArrayViewMutD<'_, T>> {
        let (module, name) = split_path(path);
        self.store_at_mut(module)?.trainable_mut(name)
    }

    /// Changes the trainable tensor at a dotted path with `update` (given a
    /// view of fixed shape, as [`Module::trainable_mut`]), then recomputes
    /// the pruned tensor if there is one: after the call, `X` is
    /// `X_orig * X_mask` again (also where the path names `X_orig`, and
    /// where `update` panics). Fails, calling nothing, if the path names
    /// no parameter or pruned tensor.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().with_child("fc", Layer::new().with_parameter("weight", array![1.0f32, -2.0].into_dyn())?)?;
    /// let grad = array![0.5f32, 0.5].into_dyn();
    /// for prune_first in [false, true] {
    ///     if prune_first {
    ///         prune::l1_unstructured(&mut m, "fc.weight", Amount::Count(1), None)?;
    ///     }
    ///     // The same training step whether or not `fc.weight` is pruned.
    ///     m.update_trainable("fc.weight", |mut w| w.scaled_add(-0.1, &grad))?;
    /// }
    /// assert_eq!(m.tensor("fc.weight").unwrap(), &array![0.0f32, -2.1].into_dyn());
    /// assert!(m.update_trainable("fc.bias", |_| ()).is_err());
    /// # Ok(()) }
    /// ```
    fn update_trainable<F>(&mut self, path: &str, update: F) -> Result<(), PruneError>
    where
        Self: Sized,
        F: FnOnce(ArrayViewMutD<'_, T>),
    {
        let (store, name) = resolve_mut(self, path)?;
        if store.trainable_mut(name).is_none() {
            return Err(PruneError::new(path, PruneErrorKind::NoSuchTensor));
        }
        // The pruned tensor the update changes: `X` itself, or the `X`
        // whose `X_orig` is named.
        let pruned = match name.strip_suffix("_orig") {
            Some(base) if store.is_pruned(base) => base,
            _ => name,
        };
        // Recomputed however `update` ends, a panic included, so that `X`
        // is `X_orig * X_mask` whatever it wrote.
        let guard = Recompute {
            store,
            name: pruned,
        };
        update(
            guard
                .store
                .trainable_mut(name)
                .expect("checked just above: a trainable tensor"),
        );
        Ok(())
    }

    /// The pruning history of the tensor at a dotted path, if it is pruned
    /// (see [`TensorStore::pruning_history`]).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().push(Layer::<f32>::new().with_parameter("w", ndarray::ArrayD::ones(vec![4]))?);
    /// prune::l1_unstructured(&mut m, "0.w", Amount::Count(1), None)?;
    /// prune::l1_unstructured(&mut m, "0.w", Amount::Count(1), None)?;
    /// assert_eq!(m.pruning_history("0.w").map(|h| h.len()), Some(2));
    /// assert_eq!(m.pruning_history("0.nothing"), None);
    /// # Ok(()) }
    /// ```
    fn pruning_history(&self, path: &str) -> Option<&[PruningStep]> {
        let (module, name) = split_path(path);
        self.store_at(module)?.pruning_history(name)
    }

    /// The buffer at a dotted path.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// let l = Layer::<f32>::new().with_buffer("running_mean", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// assert!(l.buffer("running_mean").is_some());
    /// ```
    fn buffer(&self, path: &str) -> Option<&ArrayD<T>> {
        let (module, name) = split_path(path);
        self.store_at(module)?.buffer(name)
    }

    /// Calls `visit` with the dotted path and store of this module and of
    /// every module below it, parents before children.
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let s = Sequential::<f32>::new().push(Layer::new()).push(Layer::new());
    /// let mut paths = Vec::new();
    /// s.visit_stores("", &mut |path, _| paths.push(path.to_string()));
    /// assert_eq!(paths, ["", "0", "1"]);
    /// ```
    fn visit_stores(&self, prefix: &str, visit: &mut dyn FnMut(&str, &TensorStore<T>)) {
        visit(prefix, self.store());
        for (name, child) in self.children() {
            child.visit_stores(&join(prefix, name), visit);
        }
    }

    /// Every parameter of the tree with its dotted path, in PyTorch's
    /// `named_parameters` order.
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let s = Sequential::<f32>::new().push(Layer::linear(2, 2, &mut rng));
    /// let names: Vec<String> = s.named_parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["0.weight", "0.bias"]);
    /// ```
    fn named_parameters(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.parameters().collect());
        out
    }

    /// Every buffer of the tree with its dotted path.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut s = Sequential::new().push(Layer::new().with_parameter("w", ndarray::ArrayD::<f32>::ones(vec![2]))?);
    /// prune::identity(&mut s, "0.w")?;
    /// assert_eq!(s.named_buffers()[0].0, "0.w_mask");
    /// # Ok(()) }
    /// ```
    fn named_buffers(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.buffers().collect());
        out
    }

    /// Every pruned tensor (`orig * mask`) of the tree with its dotted path.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut s = Sequential::new().push(Layer::new().with_parameter("w", ndarray::ArrayD::<f32>::ones(vec![2]))?);
    /// prune::identity(&mut s, "0.w")?;
    /// assert_eq!(s.named_pruned()[0].0, "0.w");
    /// # Ok(()) }
    /// ```
    fn named_pruned(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| s.pruned_tensors().collect());
        out
    }

    /// Parameters and buffers with dotted names, in the order of PyTorch's
    /// `state_dict` (each module's parameters, then its buffers, then its
    /// children).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut s = Sequential::<f32>::new().push(Layer::linear(3, 2, &mut rng));
    /// prune::l1_unstructured(&mut s, "0.weight", Amount::Count(1), None)?;
    /// let keys: Vec<String> = s.state_dict().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(keys, ["0.bias", "0.weight_orig", "0.weight_mask"]);
    /// # Ok(()) }
    /// ```
    fn state_dict(&self) -> Vec<(String, &ArrayD<T>)> {
        let mut out = Vec::new();
        collect(self, "", &mut out, &|s| {
            s.parameters().chain(s.buffers()).collect()
        });
        out
    }

    /// Loads a state dict (dotted names to tensors, as
    /// [`Module::state_dict`] gives them or a checkpoint holds them) into
    /// this module, in the spirit of PyTorch's
    /// `load_state_dict(state_dict, strict)`:
    ///
    /// - a key of the module's `state_dict` gets the tensor's values (a
    ///   parameter, a buffer, or `X_orig` / `X_mask` of a tensor pruned in
    ///   the module: then `X` is recomputed, and a loaded mask restarts
    ///   the history as [`PruningStep::Loaded`]);
    /// - `X_orig` with `X_mask`, where the module has a plain parameter
    ///   `X` (and the state dict no plain `X` besides), prune `X`: it
    ///   becomes `X_orig * X_mask`, as if pruned, with those parts (listed
    ///   in [`LoadReport::newly_pruned`](crate::LoadReport));
    /// - a plain `X` where the module's `X` is pruned is *unexpected*, and
    ///   `X_orig`, `X_mask` are *missing* (as in PyTorch; call
    ///   [`prune::remove`](crate::prune::remove) first to load a plain
    ///   tensor there).
    ///
    /// With `strict`, a missing key (in the module's `state_dict`, not in
    /// `state`) or an unexpected one (in `state`, with no place in the
    /// module) is an error; without, they are reported in the
    /// [`LoadReport`](crate::LoadReport) and left alone. Always an error:
    /// a tensor whose shape differs from the module's, a key given twice,
    /// a mask holding values other than 0 and 1. All problems are found
    /// before anything changes: on error the module is as it was, and the
    /// error ([`PruneErrorKind::LoadStateDict`]) lists every missing,
    /// unexpected, misshapen and repeated key (a bad mask gives
    /// [`PruneErrorKind::InvalidMask`] for its key). Whether a tensor is a
    /// parameter or a buffer is the module's to say; the state dict only
    /// gives values.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::{array, ArrayD};
    ///
    /// /// A user's own model.
    /// #[derive(Debug, Clone)]
    /// struct Net { own: TensorStore<f32>, fc: Layer<f32> }
    /// impl Module<f32> for Net {
    ///     fn store(&self) -> &TensorStore<f32> { &self.own }
    ///     fn store_mut(&mut self) -> &mut TensorStore<f32> { &mut self.own }
    ///     fn children(&self) -> Vec<(&str, &dyn Module<f32>)> { vec![("fc", &self.fc)] }
    ///     fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f32>)> { vec![("fc", &mut self.fc)] }
    /// }
    ///
    /// # fn main() -> Result<(), PruneError> {
    /// let new_net = || -> Result<Net, PruneError> {
    ///     Ok(Net { own: TensorStore::new(), fc: Layer::new().with_parameter("weight", ArrayD::zeros(vec![2]))? })
    /// };
    /// let mut net = new_net()?;
    /// // A state dict in which fc.weight was pruned.
    /// let state = vec![
    ///     ("fc.weight_orig".to_string(), array![3.0f32, 4.0].into_dyn()),
    ///     ("fc.weight_mask".to_string(), array![0.0f32, 1.0].into_dyn()),
    /// ];
    /// let report = net.load_state_dict(state, true)?;
    /// assert_eq!(report.newly_pruned, ["fc.weight"]);
    /// assert_eq!(net.tensor("fc.weight").unwrap(), &array![0.0f32, 4.0].into_dyn());
    ///
    /// // Strict: a missing key is an error, and nothing changes.
    /// let mut other = new_net()?;
    /// let err = other.load_state_dict(vec![("fc.bias".to_string(), ArrayD::zeros(vec![2]))], true).unwrap_err();
    /// assert!(matches!(err.kind(), PruneErrorKind::LoadStateDict { missing, unexpected, .. }
    ///     if missing == &["fc.weight"] && unexpected == &["fc.bias"]));
    /// assert_eq!(other.parameter("fc.weight").unwrap(), &ArrayD::<f32>::zeros(vec![2]));
    /// # Ok(()) }
    /// ```
    fn load_state_dict(
        &mut self,
        state: Vec<(String, ArrayD<T>)>,
        strict: bool,
    ) -> Result<crate::LoadReport, PruneError> {
        super::state::load(self, state, strict)
    }

    /// Recomputes every pruned tensor in the tree as `orig * mask`: what
    /// PyTorch's forward pre-hooks do before each forward pass.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut m = Sequential::new().push(Layer::new().with_parameter("w", array![1.0f32, 2.0].into_dyn())?);
    /// prune::l1_unstructured(&mut m, "0.w", Amount::Count(1), None)?;
    /// m.parameter_mut("0.w_orig").unwrap().fill(5.0); // a training step
    /// m.recompute_pruned();
    /// assert_eq!(m.tensor("0.w").unwrap(), &array![0.0f32, 5.0].into_dyn());
    /// # Ok(()) }
    /// ```
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

/// Checks that every child of the tree under `module` (at `prefix`) has a
/// name that is one path segment (not empty, no dot) and unique among its
/// siblings, as [`Sequential::add_child`](crate::Sequential::add_child)
/// requires: a user's own [`Module::children`] may give any name, and a
/// name that is no segment makes paths (and `state_dict` keys) that lead
/// elsewhere or nowhere. The error names the parent's path.
pub(crate) fn check_child_names<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &M,
    prefix: &str,
) -> Result<(), PruneError> {
    let children = module.children();
    for (i, (name, child)) in children.iter().enumerate() {
        let reason = if name.is_empty() {
            "a child module name must not be empty"
        } else if name.contains('.') {
            "a child module name must hold no dot"
        } else if children[..i].iter().any(|(n, _)| n == name) {
            "two children have that name"
        } else {
            check_child_names(*child, &join(prefix, name))?;
            continue;
        };
        let kind = PruneErrorKind::InvalidChildName {
            name: name.to_string(),
            reason,
        };
        return Err(if prefix.is_empty() {
            kind.into()
        } else {
            PruneError::new(prefix, kind)
        });
    }
    Ok(())
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

/// Checks that `path` is canonical: non-empty segments joined by single
/// dots (no `a..weight`, no leading or trailing dot), so that one tensor
/// has one spelling.
pub(crate) fn check_path(path: &str) -> Result<(), PruneError> {
    let reason = if path.is_empty() {
        "a path must name a tensor"
    } else if path.starts_with('.') || path.ends_with('.') {
        "a path must not start or end with a dot"
    } else if path.contains("..") {
        "a path must not hold an empty segment"
    } else {
        return Ok(());
    };
    Err(PruneErrorKind::InvalidPath {
        path: path.to_string(),
        reason,
    }
    .into())
}

/// The store holding the tensor at `path` (checked canonical), and the
/// tensor's name in it.
pub(crate) fn resolve_mut<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    root: &'a mut M,
    path: &'a str,
) -> Result<(&'a mut TensorStore<T>, &'a str), PruneError> {
    check_path(path)?;
    let (module, name) = split_path(path);
    let store = root.store_at_mut(module).ok_or_else(|| {
        PruneError::new(
            path,
            PruneErrorKind::NoSuchModule {
                path: module.to_string(),
            },
        )
    })?;
    Ok((store, name))
}

/// The store holding the tensor at `path` (checked canonical), and the
/// tensor's name in it.
pub(crate) fn resolve<'a, T: PruneFloat, M: Module<T> + ?Sized>(
    root: &'a M,
    path: &'a str,
) -> Result<(&'a TensorStore<T>, &'a str), PruneError> {
    check_path(path)?;
    let (module, name) = split_path(path);
    let store = root.store_at(module).ok_or_else(|| {
        PruneError::new(
            path,
            PruneErrorKind::NoSuchModule {
                path: module.to_string(),
            },
        )
    })?;
    Ok((store, name))
}

/// Recomputes a store's pruned tensor `name` when dropped
/// ([`Module::update_trainable`]).
struct Recompute<'s, T: PruneFloat> {
    store: &'s mut TensorStore<T>,
    name: &'s str,
}

impl<T: PruneFloat> Drop for Recompute<'_, T> {
    fn drop(&mut self) {
        self.store.recompute_one(self.name);
    }
}
