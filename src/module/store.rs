//! The named tensors of one module: parameters, buffers, and pruned tensors.

use ndarray::{ArrayD, ArrayViewMutD};

use crate::error::ForTensor;
use crate::mask::{standard, Mask, MaskBuf};
use crate::{PruneError, PruneErrorKind, PruneFloat, PruningStep};

/// The tensors one module holds, by name, in insertion order:
///
/// - **parameters** (`weight`, `bias`, and after pruning `weight_orig`),
/// - **buffers** (after pruning, `weight_mask`),
/// - **pruned tensors**: the recomputed `weight = weight_orig * weight_mask`
///   of each pruned parameter, neither parameter nor buffer, as the attribute
///   PyTorch's forward pre-hook sets.
///
/// Pruning is the only code that moves tensors between these; users add
/// tensors, read them, and change parameter values (then call
/// [`TensorStore::recompute`], as PyTorch's forward pre-hook would).
///
/// ```
/// use ndprune::TensorStore;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let mut store = TensorStore::<f32>::new();
/// store.add_parameter("weight", ArrayD::ones(vec![2, 3]))?;
/// store.add_buffer("running_mean", ArrayD::zeros(vec![2]))?;
/// assert_eq!(store.get("weight").map(|t| t.len()), Some(6));
/// assert!(store.add_parameter("weight", ArrayD::zeros(vec![1])).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TensorStore<T> {
    parameters: Vec<(String, ArrayD<T>)>,
    buffers: Vec<(String, ArrayD<T>)>,
    pruned: Vec<Pruned<T>>,
}

/// The reparametrization of one pruned parameter: its mask (the buffer
/// `name_mask`) and the product `name = name_orig * name_mask`.
#[derive(Debug, Clone)]
struct Pruned<T> {
    name: String,
    mask_name: String,
    mask: MaskBuf<T>,
    /// `orig * mask`, as of the last pruning call or `recompute`.
    tensor: ArrayD<T>,
    /// The steps that made the mask, oldest first.
    history: Vec<PruningStep>,
    /// How many own buffers there were when `name` was first pruned: its
    /// mask comes after them among the buffers, as PyTorch registers it.
    buffers_before: usize,
}

impl<T: PruneFloat> PartialEq for Pruned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.mask == other.mask
            && self.tensor == other.tensor
            && self.history == other.history
            && self.buffers_before == other.buffers_before
    }
}

/// Equal when the same tensors, by name and in order, hold equal values
/// (masks compared in their dense form), with the same pruning history.
impl<T: PruneFloat> PartialEq for TensorStore<T> {
    fn eq(&self, other: &Self) -> bool {
        self.parameters == other.parameters
            && self.buffers == other.buffers
            && self.pruned == other.pruned
    }
}

impl<T> Default for TensorStore<T> {
    fn default() -> Self {
        TensorStore {
            parameters: Vec::new(),
            buffers: Vec::new(),
            pruned: Vec::new(),
        }
    }
}

fn find<'a, T>(list: &'a [(String, ArrayD<T>)], name: &str) -> Option<&'a ArrayD<T>> {
    list.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

fn position<T>(list: &[(String, ArrayD<T>)], name: &str) -> Option<usize> {
    list.iter().position(|(n, _)| n == name)
}

/// Name of the original of a pruned tensor, as PyTorch names it.
pub(crate) fn orig_name(name: &str) -> String {
    format!("{name}_orig")
}

/// Name of the mask buffer of a pruned tensor, as PyTorch names it.
pub(crate) fn mask_name(name: &str) -> String {
    format!("{name}_mask")
}

impl<T: PruneFloat> TensorStore<T> {
    /// An empty store.
    ///
    /// ```
    /// let store = ndprune::TensorStore::<f64>::new();
    /// assert_eq!(store.parameters().count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn has_name(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A tensor may be added under `name`: it is a valid name (non-empty,
    /// no dot: a dotted path could not address it) and not taken.
    fn check_free(&self, name: &str) -> Result<(), PruneError> {
        if name.is_empty() || name.contains('.') {
            return Err(PruneErrorKind::InvalidPath {
                path: name.to_string(),
                reason: "a tensor name must be non-empty and hold no dot",
            }
            .into());
        }
        if self.has_name(name) {
            return Err(PruneErrorKind::DuplicateTensor {
                name: name.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Adds a parameter; fails if the name is taken. The tensor is kept in
    /// standard (row-major) layout whatever its layout: a transposed or
    /// Fortran-order array holds the same values at the same indices.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// assert!(s.add_parameter("w", ndarray::ArrayD::zeros(vec![3])).is_ok());
    /// ```
    pub fn add_parameter(&mut self, name: &str, tensor: ArrayD<T>) -> Result<(), PruneError> {
        self.check_free(name)?;
        self.parameters.push((name.to_string(), standard(tensor)));
        Ok(())
    }

    /// Adds a buffer; fails if the name is taken (kept in standard layout,
    /// as [`TensorStore::add_parameter`]).
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// assert!(s.add_buffer("running_var", ndarray::ArrayD::ones(vec![3])).is_ok());
    /// ```
    pub fn add_buffer(&mut self, name: &str, tensor: ArrayD<T>) -> Result<(), PruneError> {
        self.check_free(name)?;
        self.buffers.push((name.to_string(), standard(tensor)));
        Ok(())
    }

    /// The parameter of that name.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// s.add_parameter("w", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// assert!(s.parameter("w").is_some() && s.parameter("v").is_none());
    /// ```
    pub fn parameter(&self, name: &str) -> Option<&ArrayD<T>> {
        find(&self.parameters, name)
    }

    /// The parameter of that name, to change its values: a view, so its
    /// shape and layout stay what the store checked (a pruned tensor's
    /// original, mask and product keep one shape). After changing a
    /// `*_orig` parameter, call [`TensorStore::recompute`] to refresh the
    /// pruned tensor.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// s.add_parameter("w", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// s.parameter_mut("w").unwrap().fill(2.0);
    /// assert_eq!(s.parameter("w").unwrap().sum(), 6.0);
    /// ```
    pub fn parameter_mut(&mut self, name: &str) -> Option<ArrayViewMutD<'_, T>> {
        self.parameters
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.view_mut())
    }

    /// The trainable tensor behind `name`: the parameter `name_orig` if
    /// `name` is pruned, else the parameter `name`; `None` if `name` is
    /// neither (a buffer, say). What an optimizer updates, whatever the
    /// pruning state, so training code needs no branching.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::new().with_parameter("weight", array![1.0f32, 2.0].into_dyn())?;
    /// assert_eq!(layer.store().trainable("weight"), layer.store().parameter("weight"));
    /// prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None)?;
    /// assert_eq!(layer.store().trainable("weight"), layer.store().parameter("weight_orig"));
    /// # Ok(()) }
    /// ```
    pub fn trainable(&self, name: &str) -> Option<&ArrayD<T>> {
        if self.is_pruned(name) {
            self.parameter(&orig_name(name))
        } else {
            self.parameter(name)
        }
    }

    /// The trainable tensor behind `name` (see [`TensorStore::trainable`]),
    /// to change its values: a view of fixed shape. When `name` is pruned
    /// this is `name_orig`; the pruned tensor `name` is refreshed by
    /// [`TensorStore::recompute`] (or use
    /// [`Module::update_trainable`](crate::Module::update_trainable), which
    /// does it for you).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::new().with_parameter("weight", array![1.0f32, 2.0].into_dyn())?;
    /// prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None)?;
    /// layer.store_mut().trainable_mut("weight").unwrap().fill(3.0);
    /// layer.store_mut().recompute();
    /// assert_eq!(layer.tensor("weight").unwrap(), &array![0.0f32, 3.0].into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn trainable_mut(&mut self, name: &str) -> Option<ArrayViewMutD<'_, T>> {
        if self.is_pruned(name) {
            self.parameter_mut(&orig_name(name))
        } else {
            self.parameter_mut(name)
        }
    }

    /// The buffer of that name.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let s = TensorStore::<f32>::new();
    /// assert!(s.buffer("weight_mask").is_none());
    /// ```
    pub fn buffer(&self, name: &str) -> Option<&ArrayD<T>> {
        find(&self.buffers, name).or_else(|| {
            self.pruned
                .iter()
                .find(|p| p.mask_name == name)
                .map(|p| p.mask.view())
        })
    }

    /// The pruned tensor `name` (= `name_orig * name_mask`), if `name` is
    /// pruned.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let s = TensorStore::<f32>::new();
    /// assert!(s.pruned("weight").is_none());
    /// ```
    pub fn pruned(&self, name: &str) -> Option<&ArrayD<T>> {
        self.pruned_entry(name).map(|p| &p.tensor)
    }

    fn pruned_entry(&self, name: &str) -> Option<&Pruned<T>> {
        self.pruned.iter().find(|p| p.name == name)
    }

    /// The tensor a forward pass would see under that name, as PyTorch's
    /// `getattr(module, name)`: the pruned tensor, else the parameter, else
    /// the buffer.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// s.add_buffer("b", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// assert!(s.get("b").is_some());
    /// ```
    pub fn get(&self, name: &str) -> Option<&ArrayD<T>> {
        self.pruned(name)
            .or_else(|| self.parameter(name))
            .or_else(|| self.buffer(name))
    }

    /// Parameters in order, with their names.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// s.add_parameter("w", ndarray::ArrayD::zeros(vec![3])).unwrap();
    /// assert_eq!(s.parameters().map(|(n, _)| n).collect::<Vec<_>>(), ["w"]);
    /// ```
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &ArrayD<T>)> {
        self.parameters.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Buffers in order, with their names.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let s = TensorStore::<f32>::new();
    /// assert_eq!(s.buffers().count(), 0);
    /// ```
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &ArrayD<T>)> {
        // As PyTorch's `_buffers`, in the order they were registered: a
        // mask when its tensor was first pruned. Own buffers are never
        // taken away and a pruning appends, so `buffers_before` does not
        // decrease along `pruned`.
        let mut own = self.buffers.iter().enumerate().peekable();
        let mut masks = self.pruned.iter().peekable();
        std::iter::from_fn(move || {
            let mask_first = match (own.peek(), masks.peek()) {
                (Some(&(i, _)), Some(p)) => p.buffers_before <= i,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if mask_first {
                let p = masks.next().expect("peeked");
                Some((p.mask_name.as_str(), p.mask.view()))
            } else {
                own.next().map(|(_, (n, t))| (n.as_str(), t))
            }
        })
    }

    /// Pruned tensors (`orig * mask`) in the order they were first pruned.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let s = TensorStore::<f32>::new();
    /// assert_eq!(s.pruned_tensors().count(), 0);
    /// ```
    pub fn pruned_tensors(&self) -> impl Iterator<Item = (&str, &ArrayD<T>)> {
        self.pruned.iter().map(|p| (p.name.as_str(), &p.tensor))
    }

    /// Whether the tensor `name` is pruned (has `name_orig` and `name_mask`).
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// assert!(!TensorStore::<f32>::new().is_pruned("weight"));
    /// ```
    pub fn is_pruned(&self, name: &str) -> bool {
        self.pruned_entry(name).is_some()
    }

    /// Whether any tensor of this store is pruned.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// assert!(!TensorStore::<f32>::new().any_pruned());
    /// ```
    pub fn any_pruned(&self) -> bool {
        !self.pruned.is_empty()
    }

    /// The steps that pruned `name`, oldest first, if `name` is pruned
    /// (`None` if it is not): the `PruningContainer` PyTorch keeps in its
    /// hook, as typed records (see [`PruningStep`]). A pruned tensor has at
    /// least one step; [`prune::remove`](crate::prune::remove) ends the
    /// history with the pruning.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::PruningStep;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![3]))?;
    /// assert_eq!(layer.store().pruning_history("weight"), None);
    /// prune::identity(&mut layer, "weight")?;
    /// assert_eq!(layer.store().pruning_history("weight"), Some(&[PruningStep::Identity][..]));
    /// # Ok(()) }
    /// ```
    pub fn pruning_history(&self, name: &str) -> Option<&[PruningStep]> {
        self.pruned_entry(name).map(|p| p.history.as_slice())
    }

    /// Recomputes every pruned tensor as `orig * mask`: what PyTorch's
    /// forward pre-hook does before each forward pass.
    ///
    /// ```
    /// # use ndprune::TensorStore;
    /// let mut s = TensorStore::<f32>::new();
    /// s.recompute();
    /// ```
    pub fn recompute(&mut self) {
        for p in &mut self.pruned {
            let orig = find(&self.parameters, &orig_name(&p.name))
                .expect("a pruned tensor's original is a parameter until `remove`");
            p.mask.mask.product_into(&mut p.tensor, orig);
        }
    }

    /// Recomputes the pruned tensor `name` alone, if it is pruned.
    pub(crate) fn recompute_one(&mut self, name: &str) {
        if let Some(p) = self.pruned.iter_mut().find(|p| p.name == name) {
            let orig = find(&self.parameters, &orig_name(&p.name))
                .expect("a pruned tensor's original is a parameter until `remove`");
            p.mask.mask.product_into(&mut p.tensor, orig);
        }
    }

    /// Installs an already pruned `name` from its parts, as a checkpoint
    /// holds them (`name_orig`, `name_mask`): `name_orig` becomes a
    /// parameter, `name_mask` a buffer, and `name` their product. Fails if
    /// the shapes differ, the mask holds anything but 0 and 1, or any of the
    /// three names is taken; then nothing changes. Both arrays are kept in
    /// standard layout, whatever their layout.
    ///
    /// ```
    /// use ndprune::TensorStore;
    /// use ndarray::array;
    ///
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let mut store = TensorStore::<f32>::new();
    /// store.restore_pruned("weight", array![1.0f32, 2.0].into_dyn(), array![0.0f32, 1.0].into_dyn())?;
    /// assert_eq!(store.get("weight").unwrap(), &array![0.0f32, 2.0].into_dyn());
    /// assert!(store.is_pruned("weight"));
    /// # Ok(()) }
    /// ```
    pub fn restore_pruned(
        &mut self,
        name: &str,
        orig: ArrayD<T>,
        mask: ArrayD<T>,
    ) -> Result<(), PruneError> {
        if orig.shape() != mask.shape() {
            return Err(PruneError::new(
                name,
                PruneErrorKind::ShapeMismatch {
                    what: "mask",
                    expected: orig.shape().to_vec(),
                    got: mask.shape().to_vec(),
                },
            ));
        }
        crate::method::container::check_binary(mask.view()).for_tensor(name)?;
        for taken in [name.to_string(), orig_name(name), mask_name(name)] {
            self.check_free(&taken).for_tensor(name)?;
        }
        self.parameters.push((name.to_string(), standard(orig)));
        self.commit_first_pruning(name, Mask::dense(mask), PruningStep::Restored);
        Ok(())
    }

    // ---- crate-internal: what reports read ----

    /// The buffers added by the user (no pruning masks), in order.
    pub(crate) fn own_buffers(&self) -> impl Iterator<Item = (&str, &ArrayD<T>)> {
        self.buffers.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The mask of a pruned `name` in the form it is held (no dense copy
    /// is made).
    pub(crate) fn mask_form(&self, name: &str) -> Option<&Mask<T>> {
        self.pruned_entry(name).map(|p| &p.mask.mask)
    }

    // ---- crate-internal: the reparametrization's access to the stores ----

    /// For a pruned `name`: its current pruned tensor (the default
    /// importance) and its mask, mutable.
    pub(crate) fn pruned_and_mask_mut(
        &mut self,
        name: &str,
    ) -> Option<(&ArrayD<T>, &mut ArrayD<T>)> {
        let p = self.pruned.iter_mut().find(|p| p.name == name)?;
        Some((&p.tensor, p.mask.dense_mut()))
    }

    /// For a pruned `name`: its current pruned tensor (the default
    /// importance) and its mask in the form it is held.
    pub(crate) fn pruned_and_compact_mut(
        &mut self,
        name: &str,
    ) -> Option<(&ArrayD<T>, &mut Mask<T>)> {
        let p = self.pruned.iter_mut().find(|p| p.name == name)?;
        Some((&p.tensor, p.mask.compact_mut()))
    }

    /// Takes the mask of a pruned `name` out in the form it is held
    /// (leaving an empty one), to be put back by
    /// [`TensorStore::put_compact`].
    pub(crate) fn take_compact(&mut self, name: &str) -> Option<Mask<T>> {
        let p = self.pruned.iter_mut().find(|p| p.name == name)?;
        Some(std::mem::replace(
            p.mask.compact_mut(),
            Mask::Dense(ArrayD::zeros(vec![0])),
        ))
    }

    /// Puts back a mask taken by [`TensorStore::take_compact`].
    pub(crate) fn put_compact(&mut self, name: &str, mask: Mask<T>) {
        let p = self
            .pruned
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a mask is put back where it was taken");
        assert_eq!(p.tensor.shape(), mask.shape(), "a mask keeps its shape");
        p.mask = MaskBuf::new(mask);
    }

    /// After a successful pruning step on an already pruned `name`: records
    /// the method and recomputes the pruned tensor.
    pub(crate) fn commit_step(&mut self, name: &str, method: PruningStep) {
        let orig = find(&self.parameters, &orig_name(name))
            .expect("a pruned tensor's original is a parameter until `remove`");
        let p = self
            .pruned
            .iter_mut()
            .find(|p| p.name == name)
            .expect("only a pruned tensor takes a later step");
        p.mask.mask.product_into(&mut p.tensor, orig);
        p.history.push(method);
    }

    pub(crate) fn check_first_pruning(&self, name: &str) -> Result<&ArrayD<T>, PruneError> {
        let param = self.parameter(name).ok_or(PruneErrorKind::NoSuchTensor)?;
        if let Some(base) = name.strip_suffix("_orig").filter(|b| self.is_pruned(b)) {
            return Err(PruneErrorKind::PartOfPruning {
                of: base.to_string(),
            }
            .into());
        }
        for taken in [orig_name(name), mask_name(name)] {
            if self.has_name(&taken) {
                return Err(PruneErrorKind::DuplicateTensor { name: taken }.into());
            }
        }
        Ok(param)
    }

    /// The first pruning of `name` (checked by `check_first_pruning`):
    /// the parameter becomes `name_orig`, `mask` becomes `name_mask`, and
    /// `name` becomes the pruned tensor.
    pub(crate) fn commit_first_pruning(&mut self, name: &str, mask: Mask<T>, method: PruningStep) {
        let at = position(&self.parameters, name)
            .expect("checked by `check_first_pruning` before any pruning");
        let (_, orig) = self.parameters.remove(at);
        // Zeroed memory comes from the allocator untouched (advised to use
        // huge pages), so the product pass below is the only write.
        let mut tensor = crate::fresh::zeros(orig.raw_dim());
        mask.product_into(&mut tensor, &orig);
        self.parameters.push((orig_name(name), orig));
        self.pruned.push(Pruned {
            name: name.to_string(),
            mask_name: mask_name(name),
            mask: MaskBuf::new(mask),
            tensor,
            history: vec![method],
            buffers_before: self.buffers.len(),
        });
    }

    /// Replaces the values of `name` (checked to be there, with this shape,
    /// and for a mask 0/1) by `tensor`: a parameter, a buffer, or the mask
    /// of a pruned tensor (whose history then starts again, as loaded).
    /// The caller recomputes the pruned tensors.
    pub(crate) fn replace_tensor(&mut self, name: &str, tensor: ArrayD<T>) {
        let tensor = standard(tensor);
        let slot = self
            .parameters
            .iter_mut()
            .chain(self.buffers.iter_mut())
            .find(|(n, _)| n == name);
        if let Some((_, t)) = slot {
            assert_eq!(t.shape(), tensor.shape(), "checked by the caller");
            *t = tensor;
            return;
        }
        let p = self
            .pruned
            .iter_mut()
            .find(|p| p.mask_name == name)
            .expect("checked by the caller: a parameter, buffer or mask");
        assert_eq!(p.tensor.shape(), tensor.shape(), "checked by the caller");
        p.mask = MaskBuf::new(Mask::Dense(tensor));
        p.history = vec![PruningStep::Loaded];
    }

    /// Prunes the plain parameter `name` (checked: there, unpruned, no
    /// `name_orig` or `name_mask` taken, shapes equal, mask 0/1) with the
    /// given original and mask, recorded as loaded.
    pub(crate) fn prune_from_parts(&mut self, name: &str, orig: ArrayD<T>, mask: ArrayD<T>) {
        let at = position(&self.parameters, name).expect("checked by the caller");
        assert_eq!(self.parameters[at].1.shape(), orig.shape(), "checked");
        self.parameters[at].1 = standard(orig);
        self.commit_first_pruning(name, Mask::dense(mask), PruningStep::Loaded);
    }

    /// Keeps only the indices `keep` (ascending, in range) along `dim` of
    /// `name`: a parameter or buffer, or a pruned tensor, whose original,
    /// mask and product are cut alike (its history is kept: the mask's
    /// remaining entries are the ones those steps made). The caller checked
    /// that `name` is there, is not a mask or an original, and that `dim`
    /// is in range.
    pub(crate) fn keep_along(&mut self, name: &str, dim: usize, keep: &[usize]) {
        let cut = |t: &ArrayD<T>| standard(t.select(ndarray::Axis(dim), keep));
        if let Some(p) = self.pruned.iter_mut().find(|p| p.name == name) {
            let orig = orig_name(name);
            let (_, o) = self
                .parameters
                .iter_mut()
                .find(|(n, _)| *n == orig)
                .expect("a pruned tensor's original is a parameter until `remove`");
            *o = cut(o);
            let mask = cut(&p.mask.mask.to_dense());
            p.mask = MaskBuf::new(Mask::Dense(mask));
            p.tensor = cut(&p.tensor);
            return;
        }
        let (_, t) = self
            .parameters
            .iter_mut()
            .chain(self.buffers.iter_mut())
            .find(|(n, _)| n == name)
            .expect("checked by the caller: a parameter or buffer");
        *t = cut(t);
    }

    /// Makes the pruning of `name` permanent: `name` becomes a parameter
    /// holding `orig * mask`, and `name_orig` and `name_mask` go.
    pub(crate) fn remove_pruning(&mut self, name: &str) -> Result<(), PruneError> {
        let not_pruned = || PruneError::from(PruneErrorKind::NotPruned);
        let pruned_at = self
            .pruned
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(not_pruned)?;
        let orig_at = position(&self.parameters, &orig_name(name)).ok_or_else(not_pruned)?;
        let (_, orig) = self.parameters.remove(orig_at);
        let mut p = self.pruned.remove(pruned_at);
        // As PyTorch's `remove`: the product of the current original and
        // mask becomes the parameter.
        p.mask.mask.product_into(&mut p.tensor, &orig);
        self.parameters.push((name.to_string(), p.tensor));
        Ok(())
    }
}
