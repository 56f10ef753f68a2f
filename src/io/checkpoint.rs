//! A model checkpoint: a module tree of one float type, plus every other
//! tensor kept as bytes, plus the header's metadata.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ndarray::ArrayD;

use super::reader::is_float;
use super::tree::{build_tree, is_tree_path};
use super::writer::alignment_rank;
use super::{
    CheckpointError, CheckpointFloat, MappedFile, RawTensor, SafetensorsView, SafetensorsWriter,
    TensorSpec,
};
use crate::{Module, Sequential, TensorStore};

/// Which tensors of a file [`Checkpoint::load_with`] makes buffers.
///
/// A tensor of the checkpoint's element type becomes:
///
/// - part of a **pruned tensor** `X` if it is `<p>.X_orig` and
///   `<p>.X_mask` exists too (both of that type): `X_orig` a parameter,
///   `X_mask` a buffer, `X` their product, as PyTorch's pruning left them;
/// - a **buffer** if its own name (the part after the last dot) is one of
///   [`LoadOptions::buffer_names`]: by default `running_mean` and
///   `running_var`, the float buffers of PyTorch's batch and instance norms;
/// - a **parameter** otherwise.
///
/// Only parameters can be pruned, so buffers are safe from a pruning call
/// (and from the command line's selection).
///
/// ```
/// use ndprune::io::LoadOptions;
/// let options = LoadOptions::default();
/// assert!(options.is_buffer("running_mean") && !options.is_buffer("weight"));
/// let options = LoadOptions::default().buffer_names(["running_mean", "running_var", "ema"]);
/// assert!(options.is_buffer("ema"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    buffers: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            buffers: vec!["running_mean".into(), "running_var".into()],
        }
    }
}

impl LoadOptions {
    /// The default options (buffers: `running_mean`, `running_var`).
    ///
    /// ```
    /// assert_eq!(ndprune::io::LoadOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the list of tensor names (the part after the last dot)
    /// loaded as buffers.
    ///
    /// ```
    /// use ndprune::io::LoadOptions;
    /// let none = LoadOptions::new().buffer_names(Vec::<String>::new());
    /// assert!(!none.is_buffer("running_mean"));
    /// ```
    pub fn buffer_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.buffers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a tensor of this name (the part after the last dot, or a
    /// whole dotted path) is loaded as a buffer.
    ///
    /// ```
    /// use ndprune::io::LoadOptions;
    /// assert!(LoadOptions::new().is_buffer("features.1.running_var"));
    /// ```
    pub fn is_buffer(&self, name: &str) -> bool {
        let own = name.rsplit('.').next().unwrap_or(name);
        self.buffers.iter().any(|b| b == own)
    }
}

/// A safetensors checkpoint: a module tree of element type `T`, every other
/// tensor kept byte for byte, and the header's `__metadata__`.
///
/// Loading sorts the tensors of dtype `T` (`F32` for `f32`, `F64` for
/// `f64`, `BF16` / `F16` for `half::bf16` / `half::f16`) into a
/// [`Sequential`] tree by their dotted names: `encoder.layers.0.weight` is
/// the tensor `weight` of child `0` of child `layers` of child `encoder`
/// (children and tensors in natural order: `2` before `10`). PyTorch's
/// pruned tensors come back pruned (see [`LoadOptions`]), so pruning can go
/// on. Every other tensor (another dtype, or a name that is no tree path,
/// such as `a..b` or a name of more than 64 dotted components) is kept as
/// a [`RawTensor`].
///
/// **Float tensors of another dtype are not in the tree.** A checkpoint
/// mixing dtypes (bf16 projections and f32 norms, say) loaded as
/// `Checkpoint::<f32>` holds only the f32 tensors as a model: the bf16 ones
/// are raw tensors, saved back byte for byte but out of reach of pruning,
/// of [`Module::state_dict`] and of [`Checkpoint::load_into`].
/// [`Checkpoint::raw_float_tensors`] lists them. To work on every float
/// tensor in its own dtype, load a [`MixedCheckpoint`](super::MixedCheckpoint)
/// instead.
///
/// Loading costs time `O(n log n)` in the number of tensors and memory a
/// small multiple of the header plus the tensors decoded; nothing is sized
/// by what a header claims beyond the bytes the file holds, and nothing
/// recurses on a name's depth. Every malformed file gives a
/// [`CheckpointError`], never a panic.
///
/// Saving writes PyTorch's `state_dict` names: a pruned `X` as `X_orig` and
/// `X_mask`, a plain `X` once [`prune::remove`](crate::prune::remove)d;
/// raw tensors byte for byte; the metadata as it was. A checkpoint is a
/// [`Module`], so the pruning functions take it directly.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::io::Checkpoint;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = Sequential::<f32>::new().with_child("fc", Layer::linear(8, 4, &mut rng))?;
/// let path = std::env::temp_dir().join("ndprune-doc-checkpoint.safetensors");
/// Checkpoint::new(model).save(&path)?;
///
/// let mut ckpt = Checkpoint::<f32>::load(&path)?;
/// prune::l1_unstructured(&mut ckpt, "fc.weight", Amount::Fraction(0.5), None)?;
/// ckpt.save(&path)?;
///
/// let again = Checkpoint::<f32>::load(&path)?;
/// assert!(again.store_at("fc").unwrap().is_pruned("weight"));
/// assert_eq!(again.buffer("fc.weight_mask").unwrap().sum(), 16.0);
/// assert_eq!(again.tensor_names(), ["fc.bias", "fc.weight_mask", "fc.weight_orig"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint<T: CheckpointFloat> {
    model: Sequential<T>,
    raw: Vec<RawTensor>,
    metadata: Option<BTreeMap<String, String>>,
}

impl<T: CheckpointFloat> Default for Checkpoint<T> {
    fn default() -> Self {
        Self::new(Sequential::new())
    }
}

impl<T: CheckpointFloat> Checkpoint<T> {
    /// A checkpoint of `model`, with no raw tensors and no metadata.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let ckpt = Checkpoint::new(ndprune::Sequential::<f64>::new());
    /// assert!(ckpt.tensor_names().is_empty());
    /// ```
    pub fn new(model: Sequential<T>) -> Self {
        Checkpoint {
            model,
            raw: Vec::new(),
            metadata: None,
        }
    }

    /// A checkpoint of any module tree, such as a model struct of your own:
    /// a copy of its tensors and structure
    /// ([`Sequential::from_module`]), saved with the same `state_dict`
    /// names (pruned tensors as `X_orig` and `X_mask`).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::io::Checkpoint;
    /// use rand::SeedableRng;
    ///
    /// #[derive(Debug, Clone)]
    /// struct Net { own: TensorStore<f32>, fc: Layer<f32> }
    /// impl Module<f32> for Net {
    ///     fn store(&self) -> &TensorStore<f32> { &self.own }
    ///     fn store_mut(&mut self) -> &mut TensorStore<f32> { &mut self.own }
    ///     fn children(&self) -> Vec<(&str, &dyn Module<f32>)> { vec![("fc", &self.fc)] }
    ///     fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f32>)> { vec![("fc", &mut self.fc)] }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut net = Net { own: TensorStore::new(), fc: Layer::linear(4, 2, &mut rng) };
    /// prune::l1_unstructured(&mut net, "fc.weight", Amount::Count(3), None)?;
    /// let path = std::env::temp_dir().join("ndprune-doc-from-module.safetensors");
    /// Checkpoint::from_module(&net).save(&path)?;
    /// assert_eq!(Checkpoint::<f32>::load(&path)?.tensor_names(), ["fc.bias", "fc.weight_mask", "fc.weight_orig"]);
    /// # Ok(()) }
    /// ```
    pub fn from_module<M: Module<T> + ?Sized>(module: &M) -> Self {
        Self::new(Sequential::from_module(module))
    }

    /// Loads this checkpoint's tensors of type `T` into `module` (a model
    /// of your own, say) by their `state_dict` names, as
    /// [`Module::load_state_dict`] does (read there what `strict` means and
    /// how `X_orig` with `X_mask` prune a plain `X`); the checkpoint's
    /// tensors are copied. The raw tensors (other dtypes, such as an
    /// `int64` `num_batches_tracked`) are not loaded and are neither
    /// missing nor unexpected: a module holds tensors of `T` only. On error
    /// `module` is as it was.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::io::Checkpoint;
    /// use rand::SeedableRng;
    ///
    /// #[derive(Debug, Clone)]
    /// struct Net { own: TensorStore<f32>, conv: Layer<f32>, fc: Layer<f32> }
    /// impl Module<f32> for Net {
    ///     fn store(&self) -> &TensorStore<f32> { &self.own }
    ///     fn store_mut(&mut self) -> &mut TensorStore<f32> { &mut self.own }
    ///     fn children(&self) -> Vec<(&str, &dyn Module<f32>)> {
    ///         vec![("conv", &self.conv), ("fc", &self.fc)]
    ///     }
    ///     fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f32>)> {
    ///         vec![("conv", &mut self.conv), ("fc", &mut self.fc)]
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let new_net = |rng: &mut rand::rngs::StdRng| Net {
    ///     own: TensorStore::new(),
    ///     conv: Layer::conv2d(1, 4, 3, rng),
    ///     fc: Layer::linear(16, 2, rng),
    /// };
    /// // Prune and save one net...
    /// let mut trained = new_net(&mut rng);
    /// prune::ln_structured(&mut trained, "conv.weight", Amount::Count(2), Norm::L(2.0), Dim(0), None)?;
    /// let path = std::env::temp_dir().join("ndprune-doc-load-into.safetensors");
    /// Checkpoint::from_module(&trained).save(&path)?;
    ///
    /// // ...and load it into a fresh one: conv.weight comes back pruned.
    /// let mut net = new_net(&mut rng);
    /// let report = Checkpoint::<f32>::load(&path)?.load_into(&mut net, true)?;
    /// assert_eq!(report.newly_pruned, ["conv.weight"]);
    /// assert_eq!(net.state_dict(), trained.state_dict());
    /// # Ok(()) }
    /// ```
    pub fn load_into<M: Module<T> + ?Sized>(
        &self,
        module: &mut M,
        strict: bool,
    ) -> Result<crate::LoadReport, crate::PruneError> {
        let state = self
            .model
            .state_dict()
            .into_iter()
            .map(|(k, t)| (k, t.clone()))
            .collect();
        module.load_state_dict(state, strict)
    }

    /// Loads a safetensors file through a memory map, with the default
    /// [`LoadOptions`].
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointError};
    /// let err = Checkpoint::<f32>::load("/no/such/file.safetensors").unwrap_err();
    /// assert!(matches!(err, CheckpointError::Io { .. }));
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Loads a safetensors file through a memory map.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, LoadOptions};
    /// use ndprune::{Layer, Module, Sequential};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-load-with.safetensors");
    /// let layer = Layer::<f32>::new().with_parameter("ema", ndarray::ArrayD::zeros(vec![3]))?;
    /// Checkpoint::new(Sequential::new().with_child("m", layer)?).save(&path)?;
    /// let ckpt = Checkpoint::<f32>::load_with(&path, &LoadOptions::new().buffer_names(["ema"]))?;
    /// assert!(ckpt.buffer("m.ema").is_some());
    /// # Ok(()) }
    /// ```
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let file = MappedFile::open(path)?;
        let view = file.view()?;
        Self::from_view(&view, options).map_err(|e| e.at(path))
    }

    /// Reads a whole safetensors file held in memory, with the default
    /// [`LoadOptions`]. Any bytes give a checkpoint or an error, never a
    /// panic.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let empty = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(Checkpoint::<f32>::from_bytes(&empty).unwrap().tensor_names().is_empty());
    /// assert!(Checkpoint::<f32>::from_bytes(b"not a safetensors file").is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        Self::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// Reads a whole safetensors file held in memory.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, LoadOptions};
    /// let empty = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(Checkpoint::<f64>::from_bytes_with(&empty, &LoadOptions::new()).is_ok());
    /// ```
    pub fn from_bytes_with(bytes: &[u8], options: &LoadOptions) -> Result<Self, CheckpointError> {
        Self::from_view(&SafetensorsView::parse(bytes)?, options)
    }

    /// Builds a checkpoint from a checked view of a file.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, LoadOptions, SafetensorsView};
    /// let empty = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// let view = SafetensorsView::parse(&empty).unwrap();
    /// assert!(Checkpoint::<f32>::from_view(&view, &LoadOptions::new()).is_ok());
    /// ```
    pub fn from_view(
        view: &SafetensorsView<'_>,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let mut typed = Vec::new();
        let mut raw = Vec::new();
        for entry in view.entries() {
            if entry.dtype() == T::DTYPE && is_tree_path(entry.name()) {
                typed.push((entry.name().to_string(), entry.to_array::<T>()?));
            } else {
                raw.push(entry.to_raw());
            }
        }
        raw.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(Checkpoint {
            model: build_tree(typed, options)?,
            raw,
            metadata: view.metadata().cloned(),
        })
    }

    /// Writes the checkpoint to `path` atomically: a temporary file in the
    /// same directory, synced, then renamed over `path`. On error no file
    /// is left behind and `path` is untouched.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// use ndprune::{Layer, Sequential};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-save.safetensors");
    /// let model = Sequential::new().with_child("fc", Layer::<f32>::new().with_parameter("bias", ndarray::ArrayD::zeros(vec![4]))?)?;
    /// Checkpoint::new(model).save(&path)?;
    /// assert_eq!(Checkpoint::<f32>::load(&path)?.tensor_names(), ["fc.bias"]);
    /// # Ok(()) }
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        let path = path.as_ref();
        let (specs, sources) = self.layout();
        let mut writer = SafetensorsWriter::create(path, specs, self.metadata.as_ref())?;
        self.write_all(&mut writer, &sources)?;
        writer.commit()
    }

    /// The bytes [`Checkpoint::save`] writes.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let bytes = Checkpoint::new(ndprune::Sequential::<f32>::new()).to_bytes().unwrap();
    /// assert_eq!(&bytes[..10], &[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let (specs, sources) = self.layout();
        let mut writer = SafetensorsWriter::new(Vec::new(), specs, self.metadata.as_ref())?;
        self.write_all(&mut writer, &sources)?;
        writer.finish()
    }

    /// The names [`Checkpoint::save`] writes, sorted: the model's
    /// `state_dict` keys and the raw tensors' names.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, Dtype, RawTensor};
    /// use ndprune::{Layer, Sequential};
    /// let model = Sequential::new().with_child("bn", Layer::<f32>::new().with_buffer("running_mean", ndarray::ArrayD::zeros(vec![2])).unwrap()).unwrap();
    /// let mut ckpt = Checkpoint::new(model);
    /// ckpt.push_raw(RawTensor::new("bn.num_batches_tracked", Dtype::I64, vec![], vec![0; 8]).unwrap());
    /// assert_eq!(ckpt.tensor_names(), ["bn.num_batches_tracked", "bn.running_mean"]);
    /// ```
    pub fn tensor_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .model
            .state_dict()
            .into_iter()
            .map(|(n, _)| n)
            .chain(self.raw.iter().map(|r| r.name().to_string()))
            .collect();
        names.sort();
        names
    }

    /// The module tree.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// use ndprune::Module;
    /// let ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// assert!(ckpt.model().children().is_empty());
    /// ```
    pub fn model(&self) -> &Sequential<T> {
        &self.model
    }

    /// The module tree, mutable.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// use ndprune::Module;
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.model_mut().store_mut().add_parameter("scale", ndarray::ArrayD::ones(vec![1])).unwrap();
    /// assert_eq!(ckpt.tensor_names(), ["scale"]);
    /// ```
    pub fn model_mut(&mut self) -> &mut Sequential<T> {
        &mut self.model
    }

    /// The tensors kept as bytes, sorted by name.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// assert!(Checkpoint::new(ndprune::Sequential::<f32>::new()).raw_tensors().is_empty());
    /// ```
    pub fn raw_tensors(&self) -> &[RawTensor] {
        &self.raw
    }

    /// The raw tensor of that name.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, Dtype, RawTensor};
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.push_raw(RawTensor::new("ids", Dtype::U8, vec![1], vec![9]).unwrap());
    /// assert_eq!(ckpt.raw_tensor("ids").unwrap().data(), &[9]);
    /// ```
    pub fn raw_tensor(&self, name: &str) -> Option<&RawTensor> {
        self.raw.iter().find(|r| r.name() == name)
    }

    /// Adds a raw tensor, replacing one of the same name.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, Dtype, RawTensor};
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.push_raw(RawTensor::new("ids", Dtype::U8, vec![1], vec![9]).unwrap());
    /// ckpt.push_raw(RawTensor::new("ids", Dtype::U8, vec![1], vec![3]).unwrap());
    /// assert_eq!(ckpt.raw_tensors().len(), 1);
    /// ```
    pub fn push_raw(&mut self, tensor: RawTensor) {
        self.raw.retain(|r| r.name() != tensor.name());
        let at = self.raw.partition_point(|r| r.name() < tensor.name());
        self.raw.insert(at, tensor);
    }

    /// The float tensors (`F64`, `F32`, `BF16`, `F16`) kept as raw
    /// tensors, sorted by name: those of another dtype than `T` (and any
    /// of `T` whose name is no tree path). Nothing here is pruned or in the
    /// model's `state_dict`; a [`MixedCheckpoint`](super::MixedCheckpoint)
    /// holds them all in their own dtypes.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, Dtype, RawTensor};
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.push_raw(RawTensor::new("fc.weight", Dtype::BF16, vec![2], vec![0; 4]).unwrap());
    /// ckpt.push_raw(RawTensor::new("steps", Dtype::I64, vec![], vec![0; 8]).unwrap());
    /// let names: Vec<&str> = ckpt.raw_float_tensors().iter().map(|r| r.name()).collect();
    /// assert_eq!(names, ["fc.weight"]);
    /// ```
    pub fn raw_float_tensors(&self) -> Vec<&RawTensor> {
        self.raw.iter().filter(|r| is_float(r.dtype())).collect()
    }

    /// Removes and returns the raw tensor of that name.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, Dtype, RawTensor};
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.push_raw(RawTensor::new("ids", Dtype::U8, vec![1], vec![9]).unwrap());
    /// assert!(ckpt.remove_raw("ids").is_some() && ckpt.raw_tensors().is_empty());
    /// ```
    pub fn remove_raw(&mut self, name: &str) -> Option<RawTensor> {
        let at = self.raw.iter().position(|r| r.name() == name)?;
        Some(self.raw.remove(at))
    }

    /// The header's `__metadata__` map, if the file had one.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// assert!(Checkpoint::new(ndprune::Sequential::<f32>::new()).metadata().is_none());
    /// ```
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }

    /// The header's `__metadata__` map, to change (`None`: none is written).
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let mut ckpt = Checkpoint::new(ndprune::Sequential::<f32>::new());
    /// ckpt.metadata_mut().get_or_insert_with(Default::default).insert("format".into(), "pt".into());
    /// let again = Checkpoint::<f32>::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    /// assert_eq!(again.metadata().unwrap()["format"], "pt");
    /// ```
    pub fn metadata_mut(&mut self) -> &mut Option<BTreeMap<String, String>> {
        &mut self.metadata
    }

    /// The module tree, raw tensors and metadata.
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let (model, raw, metadata) = Checkpoint::new(ndprune::Sequential::<f32>::new()).into_parts();
    /// assert!(raw.is_empty() && metadata.is_none());
    /// # let _ = model;
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        Sequential<T>,
        Vec<RawTensor>,
        Option<BTreeMap<String, String>>,
    ) {
        (self.model, self.raw, self.metadata)
    }

    /// The tensors to write, in file order, with where each comes from.
    fn layout(&self) -> (Vec<TensorSpec>, Vec<Source<'_, T>>) {
        let mut items: Vec<(TensorSpec, Source<'_, T>)> = self
            .model
            .state_dict()
            .into_iter()
            .map(|(name, t)| {
                let spec = TensorSpec::new(name, T::DTYPE, t.shape().to_vec());
                (spec, Source::Array(t))
            })
            .chain(self.raw.iter().map(|r| {
                let spec = TensorSpec::new(r.name(), r.dtype(), r.shape().to_vec());
                (spec, Source::Raw(r.data()))
            }))
            .collect();
        items.sort_by(|(a, _), (b, _)| {
            (alignment_rank(a.dtype()), a.name()).cmp(&(alignment_rank(b.dtype()), b.name()))
        });
        items.into_iter().unzip()
    }

    fn write_all<W: Write>(
        &self,
        writer: &mut SafetensorsWriter<W>,
        sources: &[Source<'_, T>],
    ) -> Result<(), CheckpointError> {
        for source in sources {
            let name = match writer.next_tensor() {
                Some(spec) => spec.name().to_string(),
                None => break,
            };
            match source {
                Source::Array(t) => writer.write_array(&name, t.view())?,
                Source::Raw(bytes) => writer.write_tensor_bytes(&name, bytes)?,
            }
        }
        Ok(())
    }
}

/// Where a tensor to write comes from.
enum Source<'a, T> {
    Array(&'a ArrayD<T>),
    Raw(&'a [u8]),
}

impl<T: CheckpointFloat> Module<T> for Checkpoint<T> {
    fn store(&self) -> &TensorStore<T> {
        self.model.store()
    }

    fn store_mut(&mut self) -> &mut TensorStore<T> {
        self.model.store_mut()
    }

    fn children(&self) -> Vec<(&str, &dyn Module<T>)> {
        self.model.children()
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<T>)> {
        self.model.children_mut()
    }
}
