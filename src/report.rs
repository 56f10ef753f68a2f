//! Sparsity reports: how much of a model is pruned, tensor by tensor,
//! module by module and in all, and how many bytes a model without its
//! masks, without its fully pruned channels, or in a sparse encoding would
//! take.
//!
//! A [`SparsityReport`] is built from any [`Module`] in memory
//! ([`SparsityReport::of`]), from checkpoint files without loading them
//! ([`SparsityReport::of_view`], feature `safetensors`), or from what the
//! streamed pruner wrote
//! ([`StreamReport::sparsity`](crate::io::StreamReport::sparsity)); all
//! three count by the same rules.
//!
//! ```
//! use ndprune::prelude::*;
//! use ndprune::SparsityReport;
//! use rand::SeedableRng;
//!
//! # fn main() -> Result<(), PruneError> {
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f32>::new()
//!     .with_child("conv", Layer::conv2d(1, 8, 3, &mut rng))?
//!     .with_child("fc", Layer::linear(32, 10, &mut rng))?;
//! prune::ln_structured(&mut model, "conv.weight", Amount::Fraction(0.5), Norm::L(2.0), Dim(0), None)?;
//!
//! let report = SparsityReport::of(&model);
//! let conv = report.tensor("conv.weight").unwrap();
//! assert_eq!(conv.pruned(), Some(36)); // 4 of 8 output channels of 9 entries
//! assert_eq!(conv.channels_pruned(), Some(&[4, 0, 0, 0][..]));
//! // Without its 4 pruned output channels, the weight keeps 36 of 72 values.
//! assert_eq!(conv.shrunk_shape(), [4, 1, 3, 3]);
//! assert_eq!(report.subtree("conv").pruned, 36);
//! assert_eq!(report.total().pruned, 36);
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # What is counted
//!
//! Every tensor of the model's `state_dict` appears once, by the name a
//! forward pass uses ([`Module::tensor`]): a pruned tensor `X` stands for
//! its `X_orig` and `X_mask`, which are not listed apart. How its pruned
//! entries are counted is its [`Counting`]:
//!
//! - a pruned tensor ([`Counting::Mask`]): the entries its mask sets to 0
//!   (an entry of `X_orig` that is 0 where the mask is 1 is not pruned);
//! - any other float tensor, parameter or buffer ([`Counting::Zeros`]):
//!   the entries equal to zero, `+0.0` or `-0.0` (NaN is not zero);
//! - a tensor of any other dtype, in files ([`Counting::NotCounted`]):
//!   listed with its bytes, but its zeros are values (a step counter,
//!   token ids), not pruning, so it has no pruned entries, sparsity or
//!   channels, and is in no total of entries.
//!
//! A **channel** along dim `d` is one index of that dim: the slice
//! `tensor.index_axis(Axis(d), i)`. It is fully pruned when it has entries
//! and every one of them is pruned; [`TensorSparsity::channels_pruned`]
//! gives their number for every dim.
//!
//! # Bytes
//!
//! Sizes are of the values as stored (the `state_dict`, or the file):
//! entries times the element size, in the tensor's dtype (`f32`: 4 bytes);
//! the recomputed `X` a module keeps in memory beside `X_orig` is not
//! counted. For each tensor:
//!
//! - [`bytes`](TensorSparsity::bytes): as it is: `X_orig` and `X_mask`
//!   for a pruned tensor, else the tensor;
//! - [`removed_bytes`](TensorSparsity::removed_bytes): after
//!   [`prune::remove`](crate::prune::remove), where `X_orig * X_mask`
//!   becomes `X` and the mask goes: the values alone;
//! - [`shrunk_bytes`](TensorSparsity::shrunk_bytes): after `remove` and
//!   dropping the fully pruned channels along the one dim that drops the
//!   most entries ([`shrink_dim`](TensorSparsity::shrink_dim); the lowest
//!   such dim on a tie). Tensor by tensor and uncoupled: dropping a
//!   layer's output channels would let the next layer drop its matching
//!   input channels too, which is not counted here (removing channels
//!   across layers is a later feature);
//! - [`bitmask_bytes`](TensorSparsity::bitmask_bytes) and
//!   [`csr_bytes`](TensorSparsity::csr_bytes): `X` in a sparse encoding
//!   (see each), and [`sparse_bytes`](TensorSparsity::sparse_bytes), the
//!   smallest of these and `removed_bytes`.
//!
//! A tensor that is not counted keeps its bytes in every one of these.

use std::fmt;

use ndarray::ArrayD;

use crate::mask::{bit, Mask};
use crate::module::split_path;
use crate::{Module, PruneFloat, TensorStore};

/// How a tensor's pruned entries are counted (see the [module
/// docs](crate::report#what-is-counted)).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::{Counting, SparsityReport};
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new()
///     .with_parameter("weight", ndarray::array![1.0f32, -2.0, 0.0].into_dyn())?
///     .with_parameter("bias", ndarray::array![0.0f32, 0.5].into_dyn())?;
/// prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None)?;
/// let report = SparsityReport::of(&layer);
/// assert_eq!(report.tensor("weight").unwrap().counting(), Counting::Mask);
/// assert_eq!(report.tensor("bias").unwrap().counting(), Counting::Zeros);
/// assert_eq!(report.tensor("bias").unwrap().pruned(), Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Counting {
    /// A pruned tensor `X` (`X_orig` with `X_mask`): its pruned entries
    /// are those its mask sets to 0.
    Mask,
    /// A float tensor that is not pruned: its pruned entries are those
    /// equal to zero (`+0.0` or `-0.0`).
    Zeros,
    /// A tensor of a dtype that is no float (integers, `BOOL`, 8-bit
    /// floats): listed with its bytes, not counted.
    NotCounted,
}

impl Counting {
    /// The name used in JSON and tables: `mask`, `zeros`, `not_counted`.
    ///
    /// ```
    /// assert_eq!(ndprune::Counting::NotCounted.name(), "not_counted");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Counting::Mask => "mask",
            Counting::Zeros => "zeros",
            Counting::NotCounted => "not_counted",
        }
    }
}

/// What pruning left of one tensor: its entries, pruned entries, fully
/// pruned channels along each dim, and its bytes as stored and in smaller
/// forms (see the [module docs](crate::report) for the rules).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::SparsityReport;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// // Row 1 and column 2 of a 3×4 weight are all zero.
/// let w = array![[1.0f32, 2.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 6.0]];
/// let layer = Layer::new().with_parameter("weight", w.into_dyn())?;
/// let report = SparsityReport::of(&layer);
/// let t = report.tensor("weight").unwrap();
/// assert_eq!((t.entries(), t.pruned(), t.sparsity()), (12, Some(7), Some(7.0 / 12.0)));
/// assert_eq!(t.channels_pruned(), Some(&[1, 1][..]));
/// // Dropping row 1 drops 4 entries, column 2 only 3: dim 0 it is.
/// assert_eq!((t.shrink_dim(), t.shrunk_shape()), (Some(0), vec![2, 4]));
/// assert_eq!((t.bytes(), t.removed_bytes(), t.shrunk_bytes()), (48, 48, 32));
/// // 12 bits in 2 bytes, then the 5 values kept.
/// assert_eq!(t.bitmask_bytes(), Some(2 + 5 * 4));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSparsity {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    counting: Counting,
    /// Pruned entries (0 when not counted).
    pruned: usize,
    /// Fully pruned channels along each dim (empty when not counted).
    channels: Vec<usize>,
    /// Bytes of the values (`X`, or `X_orig`).
    value_bytes: u64,
    /// Bytes of the mask `X_mask` as stored (0 if there is none).
    mask_bytes: u64,
}

impl TensorSparsity {
    /// A tensor's entry, from its counts (`pruned` and `channels` as
    /// [`Tally::finish`] gives them; ignored when not counted).
    pub(crate) fn new(
        name: String,
        dtype: String,
        shape: Vec<usize>,
        counting: Counting,
        (pruned, channels): (usize, Vec<usize>),
        value_bytes: u64,
        mask_bytes: u64,
    ) -> Self {
        let counted = counting != Counting::NotCounted;
        debug_assert!(!counted || channels.len() == shape.len());
        TensorSparsity {
            name,
            dtype,
            shape,
            counting,
            pruned: if counted { pruned } else { 0 },
            channels: if counted { channels } else { Vec::new() },
            value_bytes,
            mask_bytes,
        }
    }

    /// The tensor's dotted name: `X` for a pruned tensor, as
    /// [`Module::tensor`] names it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dtype of its values, as safetensors names it (`F32`, `BF16`,
    /// `I64`, …).
    pub fn dtype(&self) -> &str {
        &self.dtype
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// How its pruned entries are counted.
    pub fn counting(&self) -> Counting {
        self.counting
    }

    /// Whether it is counted (it is not when its dtype is no float).
    pub fn is_counted(&self) -> bool {
        self.counting != Counting::NotCounted
    }

    /// Its number of entries.
    pub fn entries(&self) -> usize {
        entries_of(&self.shape)
    }

    /// Its pruned entries (`None` when not counted).
    pub fn pruned(&self) -> Option<usize> {
        self.is_counted().then_some(self.pruned)
    }

    /// Its entries not pruned (`None` when not counted).
    pub fn kept(&self) -> Option<usize> {
        self.pruned().map(|p| self.entries() - p)
    }

    /// The fraction of its entries pruned, 0 for a tensor of no entries
    /// (`None` when not counted).
    pub fn sparsity(&self) -> Option<f64> {
        self.pruned()
            .map(|p| fraction(p as u64, self.entries() as u64))
    }

    /// For each dim, how many of its channels are fully pruned (`None`
    /// when not counted; empty for a 0-dim tensor). A channel of no
    /// entries (in a tensor with a dim of 0) is never counted.
    pub fn channels_pruned(&self) -> Option<&[usize]> {
        self.is_counted().then_some(self.channels.as_slice())
    }

    /// Bytes as stored: `X_orig` and `X_mask` for a pruned tensor, else
    /// the tensor.
    pub fn bytes(&self) -> u64 {
        self.value_bytes + self.mask_bytes
    }

    /// Bytes of the mask `X_mask` (0 when there is none).
    pub fn mask_bytes(&self) -> u64 {
        self.mask_bytes
    }

    /// Bytes after [`prune::remove`](crate::prune::remove): the values
    /// alone, the mask gone.
    pub fn removed_bytes(&self) -> u64 {
        self.value_bytes
    }

    /// Bytes of one value (0 for a tensor of no entries or of a dtype
    /// narrower than a byte).
    fn element_bytes(&self) -> u64 {
        match self.entries() as u64 {
            0 => 0,
            n => self.value_bytes / n,
        }
    }

    /// Entries dropped along `d` with its fully pruned channels.
    fn dropped_along(&self, d: usize) -> usize {
        match self.shape[d] {
            0 => 0,
            len => self.channels[d] * (self.entries() / len),
        }
    }

    /// The dim along which dropping the fully pruned channels drops the
    /// most entries, the lowest on a tie; `None` when no channel is fully
    /// pruned (or the tensor is not counted).
    pub fn shrink_dim(&self) -> Option<usize> {
        if !self.is_counted() {
            return None;
        }
        (0..self.shape.len())
            .filter(|&d| self.channels[d] > 0)
            // max_by_key keeps the last maximum: go from the last dim.
            .rev()
            .max_by_key(|&d| self.dropped_along(d))
    }

    /// The shape once the fully pruned channels along
    /// [`shrink_dim`](TensorSparsity::shrink_dim) are dropped (the shape
    /// itself when there are none).
    pub fn shrunk_shape(&self) -> Vec<usize> {
        let mut shape = self.shape.clone();
        if let Some(d) = self.shrink_dim() {
            shape[d] -= self.channels[d];
        }
        shape
    }

    /// Bytes after `remove` and dropping the fully pruned channels along
    /// [`shrink_dim`](TensorSparsity::shrink_dim), this tensor alone (see
    /// the [module docs](crate::report#bytes)).
    pub fn shrunk_bytes(&self) -> u64 {
        match self.shrink_dim() {
            Some(d) => self.value_bytes - self.dropped_along(d) as u64 * self.element_bytes(),
            None => self.value_bytes,
        }
    }

    /// Bytes of `X` as a bitmask and its kept values: one bit an entry
    /// (`ceil(entries / 8)` bytes), then each entry not pruned in the
    /// tensor's dtype (`None` when not counted).
    pub fn bitmask_bytes(&self) -> Option<u64> {
        let kept = self.kept()? as u64;
        Some((self.entries() as u64).div_ceil(8) + kept * self.element_bytes())
    }

    /// Bytes of `X` in compressed sparse row form, seen as a matrix of
    /// `shape[0]` rows (a tensor of fewer than 2 dims as one row): row
    /// offsets (rows + 1 of them), then a column index and a value for
    /// each entry not pruned. Indices are 32-bit when the tensor has fewer
    /// than 2^31 entries, else 64-bit (`None` when not counted).
    pub fn csr_bytes(&self) -> Option<u64> {
        let kept = self.kept()? as u64;
        let rows = if self.shape.len() >= 2 {
            self.shape[0] as u64
        } else {
            1
        };
        let index = if self.entries() < 1 << 31 { 4 } else { 8 };
        // A tensor of no entries may claim 2^62 rows: no overflow.
        let offsets = rows.saturating_add(1).saturating_mul(index);
        Some(offsets.saturating_add(kept * (index + self.element_bytes())))
    }

    /// The smallest of [`removed_bytes`](TensorSparsity::removed_bytes),
    /// [`bitmask_bytes`](TensorSparsity::bitmask_bytes) and
    /// [`csr_bytes`](TensorSparsity::csr_bytes): the tensor in its best
    /// encoding, dense or sparse.
    pub fn sparse_bytes(&self) -> u64 {
        [self.bitmask_bytes(), self.csr_bytes()]
            .into_iter()
            .flatten()
            .fold(self.value_bytes, u64::min)
    }
}

/// Sums over tensors: a module's, a subtree's, or the whole model's
/// ([`SparsityReport::total`]).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::SparsityReport;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 4]))?;
/// prune::ln_structured(&mut layer, "weight", Amount::Count(1), Norm::L(1.0), Dim(0), None)?;
/// let total = SparsityReport::of(&layer).total();
/// assert_eq!((total.tensors, total.entries, total.pruned), (1, 16, 4));
/// assert_eq!((total.bytes, total.removed_bytes, total.shrunk_bytes), (128, 64, 48));
/// assert_eq!((total.remove_saves(), total.shrink_saves()), (64, 80));
/// assert_eq!(total.to_string(), "4 of 16 entries pruned (25.0%) in 1 tensor");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Totals {
    /// Tensors listed.
    pub tensors: usize,
    /// Tensors counted (the others' dtype is no float).
    pub counted: usize,
    /// Entries of the counted tensors.
    pub entries: u64,
    /// Their pruned entries.
    pub pruned: u64,
    /// Bytes as stored, of every tensor listed.
    pub bytes: u64,
    /// Bytes after `remove`.
    pub removed_bytes: u64,
    /// Bytes after `remove` and dropping each tensor's fully pruned
    /// channels along its best dim.
    pub shrunk_bytes: u64,
    /// Bytes with each tensor in its smallest encoding, dense or sparse.
    pub sparse_bytes: u64,
}

impl Totals {
    fn add(&mut self, t: &TensorSparsity) {
        self.tensors += 1;
        if let Some(pruned) = t.pruned() {
            self.counted += 1;
            self.entries += t.entries() as u64;
            self.pruned += pruned as u64;
        }
        self.bytes += t.bytes();
        self.removed_bytes += t.removed_bytes();
        self.shrunk_bytes += t.shrunk_bytes();
        self.sparse_bytes += t.sparse_bytes();
    }

    fn of<'a>(tensors: impl IntoIterator<Item = &'a TensorSparsity>) -> Self {
        let mut totals = Totals::default();
        for t in tensors {
            totals.add(t);
        }
        totals
    }

    /// The fraction of the counted entries pruned (0 when there are none).
    pub fn sparsity(&self) -> f64 {
        fraction(self.pruned, self.entries)
    }

    /// Bytes [`prune::remove`](crate::prune::remove) would save: the
    /// masks'.
    pub fn remove_saves(&self) -> u64 {
        self.bytes - self.removed_bytes
    }

    /// Bytes removing and dropping fully pruned channels would save.
    pub fn shrink_saves(&self) -> u64 {
        self.bytes - self.shrunk_bytes
    }

    /// Bytes removing and encoding each tensor at its smallest would save.
    pub fn sparse_saves(&self) -> u64 {
        self.bytes - self.sparse_bytes
    }

    /// One line on the bytes: as stored, and what `remove`, shrinking and
    /// a sparse encoding would save.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 4]))?;
    /// prune::ln_structured(&mut layer, "weight", Amount::Count(1), Norm::L(1.0), Dim(0), None)?;
    /// assert_eq!(
    ///     SparsityReport::of(&layer).total().bytes_line(),
    ///     "128 B stored; remove saves 64 B, dropping fully pruned channels 80 B, sparse encoding 78 B"
    /// );
    /// # Ok(()) }
    /// ```
    pub fn bytes_line(&self) -> String {
        format!(
            "{} stored; remove saves {}, dropping fully pruned channels {}, sparse encoding {}",
            human_bytes(self.bytes),
            human_bytes(self.remove_saves()),
            human_bytes(self.shrink_saves()),
            human_bytes(self.sparse_saves()),
        )
    }
}

/// `"P of E entries pruned (S%) in N tensors"`.
impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} entries pruned ({:.1}%) in {} tensor{}",
            self.pruned,
            self.entries,
            100.0 * self.sparsity(),
            self.counted,
            if self.counted == 1 { "" } else { "s" }
        )?;
        if self.counted != self.tensors {
            write!(f, " ({} more not counted)", self.tensors - self.counted)?;
        }
        Ok(())
    }
}

/// The tensors directly in one module, summed ([`SparsityReport::modules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleSparsity {
    /// The module's dotted path (`""` for the root, as PyTorch's
    /// `named_modules` names it).
    pub path: String,
    /// Its own tensors, not its children's (for those, see
    /// [`SparsityReport::subtree`]).
    pub totals: Totals,
}

/// How much of a model is pruned: each tensor of its `state_dict` (a
/// pruned `X` for its `X_orig` and `X_mask`), with sums per module and for
/// the whole model. See the [module docs](crate::report) for what is
/// counted, and an example.
///
/// `Display` prints a table: one row per tensor, one per module holding
/// tensors, then the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparsityReport {
    tensors: Vec<TensorSparsity>,
}

impl SparsityReport {
    /// The report of a model in memory, its tensors in `state_dict`
    /// order (a pruned `X` where `X_orig` is). (A
    /// [`Checkpoint`](crate::io::Checkpoint)'s raw tensors, of other
    /// dtypes, are no part of its module tree, so not of this report:
    /// [`SparsityReport::of_view`] of its file lists them.)
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut model = Sequential::<f32>::new().push(Layer::linear(4, 2, &mut rng));
    /// prune::l1_unstructured(&mut model, "0.weight", Amount::Count(3), None)?;
    /// let report = SparsityReport::of(&model);
    /// let names: Vec<&str> = report.tensors().iter().map(|t| t.name()).collect();
    /// assert_eq!(names, ["0.bias", "0.weight"]);
    /// assert_eq!(report.tensor("0.weight").unwrap().pruned(), Some(3));
    /// # Ok(()) }
    /// ```
    pub fn of<T: PruneFloat, M: Module<T> + ?Sized>(model: &M) -> Self {
        let mut tensors = Vec::new();
        model.visit_stores("", &mut |path, store| {
            of_store(path, store, &mut tensors);
        });
        SparsityReport { tensors }
    }

    /// A report of these tensors, in this order.
    #[cfg(feature = "safetensors")]
    pub(crate) fn from_tensors(tensors: Vec<TensorSparsity>) -> Self {
        SparsityReport { tensors }
    }

    /// Every tensor, in order.
    pub fn tensors(&self) -> &[TensorSparsity] {
        &self.tensors
    }

    /// The tensor of that name (`X` for a pruned tensor).
    pub fn tensor(&self, name: &str) -> Option<&TensorSparsity> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The sums over every tensor.
    pub fn total(&self) -> Totals {
        Totals::of(&self.tensors)
    }

    /// Each module holding tensors, with the sums over its own tensors, in
    /// the order of their first tensor. A tensor's module is its name up
    /// to the last dot (`""` for a name without one).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let model = Sequential::<f32>::new()
    ///     .with_child("enc", Sequential::new().push(Layer::linear(4, 4, &mut rng)))?
    ///     .with_child("head", Layer::linear(4, 2, &mut rng))?;
    /// let report = SparsityReport::of(&model);
    /// let modules = report.modules();
    /// let paths: Vec<&str> = modules.iter().map(|m| m.path.as_str()).collect();
    /// assert_eq!(paths, ["enc.0", "head"]);
    /// assert_eq!(modules[1].totals.entries, 10);
    /// # Ok(()) }
    /// ```
    pub fn modules(&self) -> Vec<ModuleSparsity> {
        let mut out: Vec<ModuleSparsity> = Vec::new();
        // Tensors of one module are mostly together: look at the last first.
        for t in &self.tensors {
            let path = module_of(&t.name);
            let at = match out.iter().rposition(|m| m.path == path) {
                Some(at) => at,
                None => {
                    out.push(ModuleSparsity {
                        path: path.to_string(),
                        totals: Totals::default(),
                    });
                    out.len() - 1
                }
            };
            out[at].totals.add(t);
        }
        out
    }

    /// The sums over the tensors of the module at `path` and of every
    /// module below it (`""`: the whole model).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let model = Sequential::<f32>::new()
    ///     .with_child("enc", Sequential::new().push(Layer::linear(4, 4, &mut rng)).push(Layer::linear(4, 4, &mut rng)))?
    ///     .with_child("encore", Layer::linear(4, 2, &mut rng))?;
    /// let report = SparsityReport::of(&model);
    /// assert_eq!(report.subtree("enc").tensors, 4); // not encore's
    /// assert_eq!(report.subtree("enc.1").entries, 20);
    /// assert_eq!(report.subtree(""), report.total());
    /// # Ok(()) }
    /// ```
    pub fn subtree(&self, path: &str) -> Totals {
        Totals::of(self.tensors.iter().filter(|t| {
            let module = module_of(&t.name);
            path.is_empty()
                || module == path
                || module
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
        }))
    }

    /// The report as JSON (feature `safetensors`, which brings
    /// `serde_json`): `tensors` (each with `name`, `dtype`, `shape`,
    /// `counting`, `entries`, `pruned`, `sparsity`, `channels_pruned`,
    /// `bytes`, `mask_bytes`, `removed_bytes`, `shrink_dim`,
    /// `shrunk_shape`, `shrunk_bytes`, `bitmask_bytes`, `csr_bytes`,
    /// `sparse_bytes`; `null` where a tensor is not counted), `modules`
    /// (each with `path` and the totals of its own tensors) and `total`.
    /// Totals hold `tensors`, `counted`, `entries`, `pruned`, `sparsity`,
    /// `bytes`, `removed_bytes`, `shrunk_bytes`, `sparse_bytes`,
    /// `remove_saves`, `shrink_saves`, `sparse_saves`.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![2, 3]))?;
    /// prune::ln_structured(&mut layer, "weight", Amount::Count(1), Norm::L(2.0), Dim(1), None)?;
    /// let json = SparsityReport::of(&layer).to_json();
    /// assert_eq!(json["tensors"][0]["channels_pruned"], serde_json::json!([0, 1]));
    /// assert_eq!(json["total"]["pruned"], 2);
    /// assert_eq!(json["modules"][0]["path"], "");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "safetensors")]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let tensors: Vec<_> = self
            .tensors
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "dtype": t.dtype,
                    "shape": t.shape,
                    "counting": t.counting.name(),
                    "entries": t.entries(),
                    "pruned": t.pruned(),
                    "sparsity": t.sparsity(),
                    "channels_pruned": t.channels_pruned(),
                    "bytes": t.bytes(),
                    "mask_bytes": t.mask_bytes(),
                    "removed_bytes": t.removed_bytes(),
                    "shrink_dim": t.shrink_dim(),
                    "shrunk_shape": t.shrunk_shape(),
                    "shrunk_bytes": t.shrunk_bytes(),
                    "bitmask_bytes": t.bitmask_bytes(),
                    "csr_bytes": t.csr_bytes(),
                    "sparse_bytes": t.sparse_bytes(),
                })
            })
            .collect();
        let modules: Vec<_> = self
            .modules()
            .iter()
            .map(|m| {
                let mut v = totals_json(&m.totals);
                v.as_object_mut()
                    .expect("totals are an object")
                    .insert("path".into(), json!(m.path));
                v
            })
            .collect();
        json!({
            "tensors": tensors,
            "modules": modules,
            "total": totals_json(&self.total()),
        })
    }
}

/// The totals as a JSON object.
#[cfg(feature = "safetensors")]
pub(crate) fn totals_json(t: &Totals) -> serde_json::Value {
    serde_json::json!({
        "tensors": t.tensors,
        "counted": t.counted,
        "entries": t.entries,
        "pruned": t.pruned,
        "sparsity": t.sparsity(),
        "bytes": t.bytes,
        "removed_bytes": t.removed_bytes,
        "shrunk_bytes": t.shrunk_bytes,
        "sparse_bytes": t.sparse_bytes,
        "remove_saves": t.remove_saves(),
        "shrink_saves": t.shrink_saves(),
        "sparse_saves": t.sparse_saves(),
    })
}

/// The widest a name column is padded to: longer names run past it.
const NAME_COLUMN: usize = 48;

impl fmt::Display for SparsityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0)
            .clamp(6, NAME_COLUMN);
        writeln!(
            f,
            "{:<width$}  {:<5} {:<16} {:>10} {:>10} {:>8}  channels pruned per dim",
            "tensor", "dtype", "shape", "entries", "pruned", "sparsity"
        )?;
        for t in &self.tensors {
            let (pruned, sparsity, channels) = match (t.pruned(), t.sparsity()) {
                (Some(p), Some(s)) => (
                    p.to_string(),
                    format!("{:.1}%", 100.0 * s),
                    format!("{:?}", t.channels),
                ),
                _ => ("-".into(), "-".into(), "-".into()),
            };
            writeln!(
                f,
                "{:<width$}  {:<5} {:<16} {:>10} {:>10} {:>8}  {channels}",
                t.name,
                t.dtype,
                format!("{:?}", t.shape),
                t.entries(),
                pruned,
                sparsity,
            )?;
        }
        write_modules(f, &self.modules(), width)?;
        let total = self.total();
        writeln!(f, "total: {total}")?;
        write!(f, "bytes: {}", total.bytes_line())
    }
}

/// The module table of [`SparsityReport`]'s `Display`.
fn write_modules(
    f: &mut fmt::Formatter<'_>,
    modules: &[ModuleSparsity],
    width: usize,
) -> fmt::Result {
    writeln!(
        f,
        "{:<width$}  {:>7} {:>12} {:>12} {:>8} {:>10} {:>10}",
        "module", "tensors", "entries", "pruned", "sparsity", "bytes", "shrunk"
    )?;
    for m in modules {
        let t = &m.totals;
        writeln!(
            f,
            "{:<width$}  {:>7} {:>12} {:>12} {:>7.1}% {:>10} {:>10}",
            module_label(&m.path),
            t.tensors,
            t.entries,
            t.pruned,
            100.0 * t.sparsity(),
            human_bytes(t.bytes),
            human_bytes(t.shrunk_bytes),
        )?;
    }
    Ok(())
}

/// A module path as tables print it: the root as `(root)`.
pub fn module_label(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

/// Entries of a tensor of `shape`: 0 if a dim is 0 (whatever the others,
/// which a file's header may claim at 2^62), else their product (which
/// the data of a valid array or file holds, so it fits).
fn entries_of(shape: &[usize]) -> usize {
    if shape.contains(&0) {
        0
    } else {
        shape.iter().product()
    }
}

/// A tensor's module: its name up to the last dot.
fn module_of(name: &str) -> &str {
    split_path(name).0
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
///
/// ```
/// use ndprune::report::human_bytes;
/// assert_eq!(human_bytes(512), "512 B");
/// assert_eq!(human_bytes(1536), "1.5 KiB");
/// assert_eq!(human_bytes(3 << 30), "3.0 GiB");
/// ```
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The safetensors name of the dtype of `T`, told by its format.
fn dtype_name<T: PruneFloat>() -> String {
    match (T::MANTISSA_DIGITS, std::mem::size_of::<T>()) {
        (24, 4) => "F32".into(),
        (53, 8) => "F64".into(),
        (8, 2) => "BF16".into(),
        (11, 2) => "F16".into(),
        _ => std::any::type_name::<T>().into(),
    }
}

/// The entries of one module's store, in `state_dict` order.
fn of_store<T: PruneFloat>(path: &str, store: &TensorStore<T>, out: &mut Vec<TensorSparsity>) {
    let size = std::mem::size_of::<T>() as u64;
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let entry = |name: &str, shape: &[usize], counting, counts, mask: bool| {
        let bytes = shape.iter().product::<usize>() as u64 * size;
        TensorSparsity::new(
            join(name),
            dtype_name::<T>(),
            shape.to_vec(),
            counting,
            counts,
            bytes,
            if mask { bytes } else { 0 },
        )
    };
    for (name, t) in store.parameters() {
        let pruned = name
            .strip_suffix("_orig")
            .and_then(|base| Some(base).zip(store.mask_form(base)));
        match pruned {
            Some((base, mask)) => out.push(entry(
                base,
                t.shape(),
                Counting::Mask,
                tally_mask(mask),
                true,
            )),
            None => out.push(entry(
                name,
                t.shape(),
                Counting::Zeros,
                tally_zeros(t),
                false,
            )),
        }
    }
    for (name, t) in store.own_buffers() {
        out.push(entry(
            name,
            t.shape(),
            Counting::Zeros,
            tally_zeros(t),
            false,
        ));
    }
}

/// Pruned entries and fully pruned channels of a plain tensor: its zeros.
pub(crate) fn tally_zeros<T: PruneFloat>(t: &ArrayD<T>) -> (usize, Vec<usize>) {
    let zero = T::zero();
    match t.as_slice() {
        Some(data) => tally_slice(t.shape(), data, |x| *x != zero),
        None => {
            let data: Vec<T> = t.iter().copied().collect();
            tally_slice(t.shape(), &data, |x| *x != zero)
        }
    }
}

/// Pruned entries and fully pruned channels of a mask, in whatever form
/// the store holds it.
fn tally_mask<T: PruneFloat>(mask: &Mask<T>) -> (usize, Vec<usize>) {
    match mask {
        Mask::Dense(m) => tally_zeros(m),
        Mask::Bits { shape, bits } => {
            let mut tally = Tally::new(shape);
            let row = tally.row_len();
            for start in (0..tally.entries()).step_by(row.max(1)) {
                tally.row((start..start + row).map(|i| bit(bits, i)));
            }
            tally.finish()
        }
        Mask::Channels { shape, dim, keep } => {
            let entries = entries_of(shape);
            let dropped = keep.iter().filter(|k| !**k).count();
            if entries == 0 {
                return (0, vec![0; shape.len()]);
            }
            // Every slice along another dim crosses every channel of `dim`.
            let all = dropped == shape[*dim];
            let channels = (0..shape.len())
                .map(|d| match (d == *dim, all) {
                    (true, _) => dropped,
                    (false, true) => shape[d],
                    (false, false) => 0,
                })
                .collect();
            (dropped * (entries / shape[*dim]), channels)
        }
    }
}

/// Pruned entries and fully pruned channels of row-major `data` of
/// `shape`, an entry kept where `kept` says.
pub(crate) fn tally_slice<E>(
    shape: &[usize],
    data: &[E],
    kept: impl Fn(&E) -> bool,
) -> (usize, Vec<usize>) {
    let mut tally = Tally::new(shape);
    if tally.entries() > 0 {
        for row in data.chunks_exact(tally.row_len()) {
            tally.row(row.iter().map(&kept));
        }
    }
    tally.finish()
}

/// Counts, in one pass over a tensor's entries in row-major order, the
/// entries kept and, for every dim, which channels hold a kept entry:
/// fed a row (the last dim) at a time.
pub(crate) struct Tally {
    shape: Vec<usize>,
    /// For each dim, whether each channel holds a kept entry.
    live: Vec<Vec<bool>>,
    /// The index, in every dim but the last, of the next row.
    at: Vec<usize>,
    kept: usize,
    /// Entries of the current row fed so far ([`Tally::feed`]), and
    /// whether one of them is kept.
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // fed by io only
    col: usize,
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))]
    row_any: bool,
}

impl Tally {
    pub(crate) fn new(shape: &[usize]) -> Self {
        // A tensor of no entries has no channel to count: nothing is
        // sized by its dims (a header may claim [0, 2^40]).
        let empty = entries_of(shape) == 0;
        Tally {
            shape: shape.to_vec(),
            live: shape
                .iter()
                .map(|&n| if empty { Vec::new() } else { vec![false; n] })
                .collect(),
            at: vec![0; shape.len().saturating_sub(1)],
            kept: 0,
            col: 0,
            row_any: false,
        }
    }

    pub(crate) fn entries(&self) -> usize {
        entries_of(&self.shape)
    }

    /// Entries of a row: the last dim's length (1 for a 0-dim tensor).
    pub(crate) fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// The next row's flags, `row_len` of them (true: kept).
    pub(crate) fn row(&mut self, flags: impl IntoIterator<Item = bool>) {
        let (mut any, mut kept) = (false, 0usize);
        match self.live.last_mut() {
            Some(last) => {
                for (l, f) in last.iter_mut().zip(flags) {
                    *l |= f;
                    any |= f;
                    kept += usize::from(f);
                }
            }
            None => {
                for f in flags {
                    any |= f;
                    kept += usize::from(f);
                }
            }
        }
        self.kept += kept;
        self.end_row(any);
    }

    /// The next entries' flags (true: kept), any number of them: rows may
    /// start and end anywhere in them. The same counts as [`Tally::row`]
    /// fed whole rows.
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // used by io only
    pub(crate) fn feed(&mut self, mut flags: &[bool]) {
        let row_len = self.row_len();
        if self.entries() == 0 {
            return;
        }
        while !flags.is_empty() {
            let take = (row_len - self.col).min(flags.len());
            let (part, rest) = flags.split_at(take);
            let kept: usize = part.iter().map(|&f| usize::from(f)).sum();
            self.kept += kept;
            self.row_any |= kept > 0;
            if let Some(last) = self.live.last_mut() {
                for (l, &f) in last[self.col..self.col + take].iter_mut().zip(part) {
                    *l |= f;
                }
            }
            self.col += take;
            if self.col == row_len {
                let any = std::mem::take(&mut self.row_any);
                self.col = 0;
                self.end_row(any);
            }
            flags = rest;
        }
    }

    /// Ends a row (`any`: one of its entries is kept).
    fn end_row(&mut self, any: bool) {
        let outer = self.at.len();
        if any {
            for d in 0..outer {
                self.live[d][self.at[d]] = true;
            }
        }
        for d in (0..outer).rev() {
            self.at[d] += 1;
            if self.at[d] < self.shape[d] {
                break;
            }
            self.at[d] = 0;
        }
    }

    /// Pruned entries, and fully pruned channels along each dim (none in
    /// a tensor of no entries).
    pub(crate) fn finish(self) -> (usize, Vec<usize>) {
        let entries = self.entries();
        let channels = self
            .live
            .iter()
            .map(|l| {
                if entries == 0 {
                    0
                } else {
                    l.iter().filter(|x| !**x).count()
                }
            })
            .collect();
        (entries - self.kept, channels)
    }
}

#[cfg(feature = "safetensors")]
mod files {
    use super::*;
    use crate::io::{Dtype, ModelView, SafetensorsView, TensorEntry};

    /// Whether a float element's bytes (little-endian) are `±0`: all bits
    /// zero but the sign, the top bit of the last byte.
    fn float_zero(c: &[u8]) -> bool {
        match c.split_last() {
            Some((last, rest)) => last & 0x7f == 0 && rest.iter().all(|&b| b == 0),
            None => true,
        }
    }

    /// Bytes of one element of a dtype counted (the IEEE floats).
    fn counted_size(dtype: Dtype) -> Option<usize> {
        match dtype {
            Dtype::F64 => Some(8),
            Dtype::F32 => Some(4),
            Dtype::BF16 | Dtype::F16 => Some(2),
            _ => None,
        }
    }

    /// Pruned entries and fully pruned channels of a float tensor of the
    /// file, an entry pruned where it is `±0` (from its bytes: no
    /// decoding).
    pub(crate) fn tally_bytes(entry: &TensorEntry<'_>) -> (usize, Vec<usize>) {
        let size = counted_size(entry.dtype()).expect("only float tensors are tallied");
        let mut tally = Tally::new(entry.shape());
        if tally.entries() > 0 {
            let row = tally.row_len() * size;
            for r in entry.data().chunks_exact(row) {
                tally.row(r.chunks_exact(size).map(|c| !float_zero(c)));
            }
        }
        tally.finish()
    }

    impl SparsityReport {
        /// The report of checkpoint files, read from their memory maps
        /// (nothing is loaded whole): a pruned pair `X_orig`/`X_mask`
        /// ([`ModelView::pruned_pairs`]) is the tensor `X`, counted from
        /// its mask; any other float tensor (`F64`, `F32`, `BF16`, `F16`)
        /// by its zeros; the rest is listed, not counted. Tensors in the
        /// natural order of their names (`layers.2` before `layers.10`).
        /// On the same model, the same report as [`SparsityReport::of`]
        /// but for the order.
        ///
        /// ```
        /// use ndprune::io::{Checkpoint, CheckpointFiles};
        /// use ndprune::prelude::*;
        /// use ndprune::SparsityReport;
        /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// let path = std::env::temp_dir().join("ndprune-doc-report-view.safetensors");
        /// let layer = Layer::new().with_parameter("weight", ndarray::array![[1.0f32, -2.0], [3.0, 0.5]].into_dyn())?;
        /// let mut ckpt = Checkpoint::new(Sequential::new().with_child("fc", layer)?);
        /// prune::l1_unstructured(&mut ckpt, "fc.weight", Amount::Count(2), None)?;
        /// ckpt.save(&path)?;
        ///
        /// let files = CheckpointFiles::open(&path)?;
        /// let from_files = SparsityReport::of_view(&files.view()?);
        /// assert_eq!(from_files.tensor("fc.weight").unwrap().pruned(), Some(2));
        /// assert_eq!(from_files, SparsityReport::of(&ckpt));
        /// # Ok(()) }
        /// ```
        pub fn of_view(view: &ModelView<'_>) -> Self {
            of_entries(view.entries(), &view.pruned_pairs())
        }

        /// The report of one safetensors file's tensors (as
        /// [`SparsityReport::of_view`]).
        ///
        /// ```
        /// use ndprune::io::{Checkpoint, SafetensorsView};
        /// use ndprune::SparsityReport;
        /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// let bytes = Checkpoint::new(ndprune::Sequential::<f32>::new()).to_bytes()?;
        /// let report = SparsityReport::of_file_view(&SafetensorsView::parse(&bytes)?);
        /// assert!(report.tensors().is_empty());
        /// # Ok(()) }
        /// ```
        pub fn of_file_view(view: &SafetensorsView<'_>) -> Self {
            of_entries(view.entries(), &view.pruned_pairs())
        }
    }

    fn of_entries(entries: &[TensorEntry<'_>], pairs: &[(&str, usize, usize)]) -> SparsityReport {
        let mut part_of = vec![None; entries.len()];
        for &(_, o, m) in pairs {
            part_of[o] = Some((o, m));
            part_of[m] = Some((o, m));
        }
        let mut tensors = Vec::with_capacity(entries.len() - pairs.len());
        for (i, e) in entries.iter().enumerate() {
            let t = match part_of[i] {
                Some((o, _)) if o != i => continue,
                Some((o, m)) => {
                    let (orig, mask) = (&entries[o], &entries[m]);
                    let base = orig
                        .name()
                        .strip_suffix("_orig")
                        .expect("a pair's original ends in _orig");
                    TensorSparsity::new(
                        base.to_string(),
                        orig.dtype().to_string(),
                        orig.shape().to_vec(),
                        Counting::Mask,
                        tally_bytes(mask),
                        orig.data().len() as u64,
                        mask.data().len() as u64,
                    )
                }
                None => {
                    let counted = counted_size(e.dtype()).is_some();
                    TensorSparsity::new(
                        e.name().to_string(),
                        e.dtype().to_string(),
                        e.shape().to_vec(),
                        if counted {
                            Counting::Zeros
                        } else {
                            Counting::NotCounted
                        },
                        if counted {
                            tally_bytes(e)
                        } else {
                            (0, Vec::new())
                        },
                        e.data().len() as u64,
                        0,
                    )
                }
            };
            tensors.push(t);
        }
        tensors.sort_by(|a, b| crate::io::natural_cmp(&a.name, &b.name));
        SparsityReport { tensors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Axis, Dimension};

    /// Channels along each dim all of whose entries are unkept, by slicing.
    fn by_slicing(kept: &ArrayD<bool>) -> Vec<usize> {
        if kept.is_empty() {
            return vec![0; kept.ndim()];
        }
        (0..kept.ndim())
            .map(|d| {
                kept.axis_iter(Axis(d))
                    .filter(|s| s.iter().all(|k| !k))
                    .count()
            })
            .collect()
    }

    #[test]
    fn the_tally_matches_slicing_on_every_shape() {
        for shape in [
            vec![],
            vec![5],
            vec![3, 4],
            vec![2, 3, 4],
            vec![2, 1, 3, 2],
            vec![0, 3],
            vec![3, 0],
        ] {
            let n: usize = shape.iter().product();
            for seed in 0..20u64 {
                let kept = ArrayD::from_shape_fn(shape.clone(), |i| {
                    let flat: usize = i.slice().iter().fold(0, |a, &x| a * 7 + x);
                    (flat as u64 * 2654435761 + seed * 97) % 5 < seed % 4
                });
                let (pruned, channels) = tally_slice(&shape, kept.as_slice().unwrap(), |k| *k);
                assert_eq!(pruned, kept.iter().filter(|k| !**k).count(), "{shape:?}");
                assert_eq!(channels, by_slicing(&kept), "{shape:?} {seed}");
                assert!(pruned <= n);
                // Fed in pieces that start and end anywhere in a row.
                let flat = kept.as_slice().unwrap();
                let mut tally = Tally::new(&shape);
                let mut at = 0;
                for piece in 0.. {
                    let len = (piece * 7 + seed as usize) % 5;
                    let end = (at + len).min(flat.len());
                    tally.feed(&flat[at..end]);
                    at = end;
                    if at == flat.len() {
                        break;
                    }
                }
                assert_eq!(
                    tally.finish(),
                    (pruned, channels),
                    "{shape:?} {seed} in pieces"
                );
            }
        }
    }

    #[test]
    fn no_entries_size_nothing_by_their_dims() {
        for shape in [
            vec![0, 1 << 40],
            vec![1 << 62, 1 << 62, 0],
            vec![0, 1 << 62, 3],
        ] {
            let tally = Tally::new(&shape);
            assert!(tally.live.iter().all(Vec::is_empty));
            assert_eq!(tally.finish(), (0, vec![0; shape.len()]));
            let t = TensorSparsity::new(
                "t".into(),
                "F32".into(),
                shape.clone(),
                Counting::Zeros,
                (0, vec![0; shape.len()]),
                0,
                0,
            );
            assert_eq!(
                (t.entries(), t.shrink_dim(), t.shrunk_bytes()),
                (0, None, 0)
            );
            assert_eq!(t.bitmask_bytes(), Some(0));
            assert!(t.csr_bytes().is_some());
            assert_eq!(t.sparse_bytes(), 0);
        }
    }

    #[test]
    fn every_mask_form_tallies_alike() {
        for (shape, dim) in [(vec![3, 70], 0), (vec![70, 3], 1), (vec![2, 5, 13], 1)] {
            for pattern in 0..3 {
                let keep: Vec<bool> = (0..shape[dim])
                    .map(|i| pattern != 2 && i % 3 != pattern)
                    .collect();
                let channels = Mask::<f32>::Channels {
                    shape: shape.clone(),
                    dim,
                    keep,
                };
                let dense = Mask::Dense(channels.to_dense());
                let bits = Mask::<f32>::Bits {
                    shape: shape.clone(),
                    bits: channels.to_bits(),
                };
                let want = tally_mask(&dense);
                assert_eq!(tally_mask(&channels), want, "{shape:?} {dim} {pattern}");
                assert_eq!(tally_mask(&bits), want, "{shape:?} {dim} {pattern}");
            }
        }
    }
}
