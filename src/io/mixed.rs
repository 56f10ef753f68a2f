//! A checkpoint whose float tensors keep their own dtypes: one module tree
//! per dtype, every other tensor as bytes, and the header's metadata.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use rand::Rng;
use safetensors::Dtype;

use super::error::PairProblem;
use super::tree::{build_tree, is_tree_path, natural_cmp};
use super::writer::alignment_rank;
use super::{
    CheckpointError, CheckpointFiles, CheckpointFloat, LoadOptions, RawTensor, SafetensorsView,
    SafetensorsWriter, TensorEntry, TensorSpec,
};
use crate::error::ForTensor;
use crate::module::{mask_name, resolve};
use crate::{
    prune, Amount, CustomFromMask, Dim, L1Unstructured, Layer, Module, Norm, PruneError,
    PruneErrorKind, PruneFloat, PruningStep, Sequential, TieBreak,
};

/// Runs `$body` with `$T` the element type of the part `$kind` names.
macro_rules! with_kind {
    ($kind:expr, $T:ident => $body:expr) => {
        match $kind {
            Kind::F64 => {
                type $T = f64;
                $body
            }
            Kind::F32 => {
                type $T = f32;
                $body
            }
            #[cfg(feature = "half")]
            Kind::BF16 => {
                type $T = half::bf16;
                $body
            }
            #[cfg(feature = "half")]
            Kind::F16 => {
                type $T = half::f16;
                $body
            }
        }
    };
}

/// The dtypes a [`MixedCheckpoint`] keeps a module tree of, in a fixed
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    F32,
    #[cfg(feature = "half")]
    BF16,
    #[cfg(feature = "half")]
    F16,
}

const KINDS: &[Kind] = &[
    Kind::F64,
    Kind::F32,
    #[cfg(feature = "half")]
    Kind::BF16,
    #[cfg(feature = "half")]
    Kind::F16,
];

impl Kind {
    fn of(dtype: Dtype) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.dtype() == dtype)
    }

    fn dtype(self) -> Dtype {
        with_kind!(self, T => <T as CheckpointFloat>::DTYPE)
    }
}

mod sealed {
    use super::MixedCheckpoint;
    use crate::Sequential;

    /// Where a [`MixedCheckpoint`] keeps the tree of this element type.
    pub trait Part: Sized {
        /// The tree of this type.
        fn part(ckpt: &MixedCheckpoint) -> &Sequential<Self>;
        /// The tree of this type, mutable.
        fn part_mut(ckpt: &mut MixedCheckpoint) -> &mut Sequential<Self>;
    }

    macro_rules! impl_part {
        ($t:ty, $field:ident) => {
            impl Part for $t {
                fn part(ckpt: &MixedCheckpoint) -> &Sequential<Self> {
                    &ckpt.$field
                }
                fn part_mut(ckpt: &mut MixedCheckpoint) -> &mut Sequential<Self> {
                    &mut ckpt.$field
                }
            }
        };
    }

    impl_part!(f64, f64);
    impl_part!(f32, f32);
    #[cfg(feature = "half")]
    impl_part!(half::bf16, bf16);
    #[cfg(feature = "half")]
    impl_part!(half::f16, f16);
}
use sealed::Part;

/// An element type a [`MixedCheckpoint`] keeps a module tree of: `f64`,
/// `f32`, and with feature `half`, `half::bf16` and `half::f16`. Sealed:
/// implemented for these types only.
///
/// ```
/// use ndprune::io::{MixedCheckpoint, MixedFloat};
///
/// fn parameters<T: MixedFloat>(ckpt: &MixedCheckpoint) -> usize {
///     use ndprune::Module;
///     ckpt.part::<T>().named_parameters().len()
/// }
/// assert_eq!(parameters::<f32>(&MixedCheckpoint::new()), 0);
/// ```
pub trait MixedFloat: CheckpointFloat + Part {}

impl MixedFloat for f64 {}
impl MixedFloat for f32 {}
#[cfg(feature = "half")]
impl MixedFloat for half::bf16 {}
#[cfg(feature = "half")]
impl MixedFloat for half::f16 {}

/// A safetensors checkpoint whose float tensors keep their own dtypes: a
/// module tree ([`Sequential`]) per dtype (`F64`, `F32`, and with feature
/// `half`, `BF16` and `F16`), every other tensor kept byte for byte as a
/// [`RawTensor`] (integers, booleans, other float formats, names that are
/// no tree path), and the header's `__metadata__`.
///
/// This is what a model mixing dtypes looks like in PyTorch: bf16
/// projections, f32 norms, an f16 layer, each tensor pruned in its own
/// dtype. (A [`Checkpoint<T>`](super::Checkpoint) holds one dtype and
/// keeps the others as bytes, out of reach of pruning.)
///
/// Each dtype's tree is a [`Module`]: [`MixedCheckpoint::part_mut`] gives
/// it to every function of [`prune`], which prunes in that dtype as
/// PyTorch does. The methods of the whole find a tensor's dtype by its
/// name and prune it there ([`MixedCheckpoint::l1_unstructured`], …), and
/// [`MixedCheckpoint::global_unstructured`] ranks tensors of several
/// dtypes together as PyTorch's `global_unstructured` does: in their
/// common dtype.
///
/// Loading sorts tensors into the trees as [`Checkpoint`](super::Checkpoint)
/// does (by dotted name; `X_orig` with `X_mask` a pruned `X`; see
/// [`LoadOptions`]). A pruned pair whose `X_orig` and `X_mask` have
/// different float dtypes is refused ([`CheckpointError::BadPair`] with
/// [`PairProblem::MixedDtypes`]): PyTorch keeps a mask in its original's
/// dtype, and converting either would change what the file says. Saving
/// writes every tensor in its dtype, so loading, saving and loading again
/// gives the same bytes for every tensor.
///
/// ```
/// use ndprune::io::MixedCheckpoint;
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // An f64 weight and an f32 weight, in one file.
/// let mut ckpt = MixedCheckpoint::new();
/// ckpt.part_mut::<f64>().add_child("a", Layer::new().with_parameter("weight", array![0.5f64, -4.0, 0.25].into_dyn())?)?;
/// ckpt.part_mut::<f32>().add_child("b", Layer::new().with_parameter("weight", array![3.0f32, -0.125].into_dyn())?)?;
/// let mut ckpt = MixedCheckpoint::from_bytes(&ckpt.to_bytes()?)?;
///
/// // The three smallest magnitudes of both, ranked together (in f64, as
/// // PyTorch promotes f32 and f64), each mask in its tensor's dtype.
/// ckpt.global_unstructured(&["a.weight", "b.weight"], Amount::Count(3), TieBreak::Torch)?;
/// assert_eq!(ckpt.part::<f64>().buffer("a.weight_mask").unwrap(), &array![0.0f64, 1.0, 0.0].into_dyn());
/// assert_eq!(ckpt.part::<f32>().buffer("b.weight_mask").unwrap(), &array![1.0f32, 0.0].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MixedCheckpoint {
    f64: Sequential<f64>,
    f32: Sequential<f32>,
    #[cfg(feature = "half")]
    bf16: Sequential<half::bf16>,
    #[cfg(feature = "half")]
    f16: Sequential<half::f16>,
    raw: Vec<RawTensor>,
    metadata: Option<BTreeMap<String, String>>,
}

/// One tensor of a part's `state_dict`, for ordering the parts together.
struct Listed {
    module: String,
    /// 0 for a parameter, 1 for a buffer (or a raw tensor).
    rank: u8,
    local: String,
    spec: TensorSpec,
}

/// Where a tensor to write comes from.
enum Source<'a> {
    F64(&'a ArrayD<f64>),
    F32(&'a ArrayD<f32>),
    #[cfg(feature = "half")]
    BF16(&'a ArrayD<half::bf16>),
    #[cfg(feature = "half")]
    F16(&'a ArrayD<half::f16>),
    Raw(&'a [u8]),
}

impl MixedCheckpoint {
    /// An empty checkpoint: no tensors, no metadata.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// assert!(MixedCheckpoint::new().tensor_specs().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a checkpoint as [`CheckpointFiles::open`] opens it (a
    /// safetensors file, a shard index or its directory: all shards), with
    /// the default [`LoadOptions`].
    ///
    /// ```
    /// use ndprune::io::{CheckpointError, MixedCheckpoint};
    /// let err = MixedCheckpoint::load("/no/such/model.safetensors").unwrap_err();
    /// assert!(matches!(err, CheckpointError::Io { .. }));
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Loads a checkpoint as [`CheckpointFiles::open`] opens it.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, LoadOptions, MixedCheckpoint};
    /// use ndprune::{Layer, Module, Sequential};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-mixed-load-with.safetensors");
    /// let layer = Layer::<f32>::new().with_parameter("ema", ndarray::ArrayD::zeros(vec![3]))?;
    /// Checkpoint::new(Sequential::new().with_child("m", layer)?).save(&path)?;
    /// let ckpt = MixedCheckpoint::load_with(&path, &LoadOptions::new().buffer_names(["ema"]))?;
    /// assert!(ckpt.part::<f32>().buffer("m.ema").is_some());
    /// # Ok(()) }
    /// ```
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        Self::from_files(&CheckpointFiles::open(path)?, options)
    }

    /// Loads every tensor of opened checkpoint files, all shards of a
    /// sharded checkpoint into one model. The metadata kept is the first
    /// file's header metadata (what a merge into one file keeps, as
    /// [`FilePruner`](super::FilePruner) does with
    /// [`Output::File`](super::Output::File)); the index's own metadata is
    /// in [`CheckpointFiles::index_metadata`].
    ///
    /// ```
    /// use ndprune::io::{CheckpointFiles, LoadOptions, MixedCheckpoint};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-mixed-from-files.safetensors");
    /// MixedCheckpoint::new().save(&path)?;
    /// let files = CheckpointFiles::open(&path)?;
    /// assert!(MixedCheckpoint::from_files(&files, &LoadOptions::new())?.tensor_specs().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn from_files(
        files: &CheckpointFiles,
        options: &LoadOptions,
    ) -> Result<Self, CheckpointError> {
        let view = files.view()?;
        let file_of = |i: usize| files.files()[view.shard_of(i)].path().to_path_buf();
        Self::from_entries(
            view.entries(),
            view.pruned_pairs(),
            view.metadata(0).cloned(),
            options,
            &file_of,
        )
        .map_err(|e| e.at(files.origin()))
    }

    /// Reads a whole safetensors file held in memory, with the default
    /// [`LoadOptions`]. Any bytes give a checkpoint or an error, never a
    /// panic.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// let empty = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(MixedCheckpoint::from_bytes(&empty).unwrap().tensor_specs().is_empty());
    /// assert!(MixedCheckpoint::from_bytes(b"not a safetensors file").is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let view = SafetensorsView::parse(bytes)?;
        Self::from_entries(
            view.entries(),
            view.pruned_pairs(),
            view.metadata().cloned(),
            &LoadOptions::default(),
            &|_| PathBuf::new(),
        )
    }

    fn from_entries(
        entries: &[TensorEntry<'_>],
        pairs: Vec<(&str, usize, usize)>,
        metadata: Option<BTreeMap<String, String>>,
        options: &LoadOptions,
        file_of: &dyn Fn(usize) -> PathBuf,
    ) -> Result<Self, CheckpointError> {
        for (base, o, m) in pairs {
            let (orig, mask) = (entries[o].dtype(), entries[m].dtype());
            if orig != mask {
                return Err(CheckpointError::BadPair {
                    path: file_of(m),
                    tensor: base.to_string(),
                    problem: PairProblem::MixedDtypes { orig, mask },
                });
            }
        }
        let mut ckpt = MixedCheckpoint {
            metadata,
            ..Self::default()
        };
        for &kind in KINDS {
            with_kind!(kind, T => {
                let mut typed = Vec::new();
                for e in entries {
                    if e.dtype() == <T as CheckpointFloat>::DTYPE && is_tree_path(e.name()) {
                        typed.push((e.name().to_string(), e.to_array::<T>()?));
                    }
                }
                *<T as Part>::part_mut(&mut ckpt) = build_tree(typed, options)?;
            });
        }
        ckpt.raw = entries
            .iter()
            .filter(|e| Kind::of(e.dtype()).is_none() || !is_tree_path(e.name()))
            .map(TensorEntry::to_raw)
            .collect();
        ckpt.raw.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(ckpt)
    }

    /// The module tree of the tensors of type `T`, to read or to hand to
    /// any function of [`prune`] (which then prunes in `T`).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::Module;
    /// assert!(MixedCheckpoint::new().part::<f64>().state_dict().is_empty());
    /// ```
    pub fn part<T: MixedFloat>(&self) -> &Sequential<T> {
        T::part(self)
    }

    /// The module tree of the tensors of type `T`, mutable: prune in it
    /// with any function of [`prune`], or add tensors of that type.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f32>().add_child("fc", Layer::new().with_parameter("weight", ndarray::array![1.0f32, -2.0].into_dyn())?)?;
    /// prune::l1_unstructured(ckpt.part_mut::<f32>(), "fc.weight", Amount::Count(1), None)?;
    /// assert!(ckpt.is_pruned("fc.weight"));
    /// # Ok(()) }
    /// ```
    pub fn part_mut<T: MixedFloat>(&mut self) -> &mut Sequential<T> {
        T::part_mut(self)
    }

    /// The tree holding the tensor `name` (a parameter, a buffer, or a
    /// pruned tensor `X`, by its dotted path): the only one, or an error
    /// naming the tensor.
    fn locate(&self, name: &str) -> Result<Kind, PruneError> {
        let mut found = KINDS
            .iter()
            .copied()
            .filter(|&k| with_kind!(k, T => <T as Part>::part(self).tensor(name).is_some()));
        match (found.next(), found.next()) {
            (Some(kind), None) => Ok(kind),
            (None, _) => Err(PruneError::new(name, PruneErrorKind::NoSuchTensor)),
            (Some(_), Some(_)) => Err(PruneError::new(
                name,
                PruneErrorKind::DuplicateTensor {
                    name: name.to_string(),
                },
            )),
        }
    }

    /// [`Self::locate`] for pruning `name`: also an error where a name the
    /// pruning creates (`name_orig`, `name_mask`) is held by another tree
    /// or by a raw tensor (a file may hold a stray mask of another dtype),
    /// which would leave two tensors of one name and a checkpoint that
    /// does not save. (Its own tree checks its own names.)
    fn locate_for_pruning(&self, name: &str) -> Result<Kind, PruneError> {
        let kind = self.locate(name)?;
        for made in [
            crate::module::orig_name(name),
            crate::module::mask_name(name),
        ] {
            let in_tree = KINDS
                .iter()
                .copied()
                .filter(|&k| k != kind)
                .any(|k| with_kind!(k, T => <T as Part>::part(self).tensor(&made).is_some()));
            if in_tree || self.raw.iter().any(|r| r.name() == made) {
                return Err(PruneError::new(
                    name,
                    PruneErrorKind::DuplicateTensor { name: made },
                ));
            }
        }
        Ok(kind)
    }

    /// The dtype of the tensor `name` (a parameter, a buffer, or a pruned
    /// tensor `X`). An error if no tree holds it
    /// ([`PruneErrorKind::NoSuchTensor`]; raw tensors are in none), or if
    /// trees of two dtypes do ([`PruneErrorKind::DuplicateTensor`]: added
    /// through [`MixedCheckpoint::part_mut`]; no file loads so).
    ///
    /// ```
    /// use ndprune::io::{Dtype, MixedCheckpoint};
    /// use ndprune::Layer;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("norm", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4]))?)?;
    /// assert_eq!(ckpt.dtype_of("norm.weight")?, Dtype::F64);
    /// assert!(ckpt.dtype_of("norm.bias").is_err());
    /// # Ok(()) }
    /// ```
    pub fn dtype_of(&self, name: &str) -> Result<Dtype, PruneError> {
        Ok(self.locate(name)?.dtype())
    }

    /// Whether the tensor `name` is pruned (has `name_orig` and
    /// `name_mask`), in whichever tree holds it.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// assert!(!MixedCheckpoint::new().is_pruned("fc.weight"));
    /// ```
    pub fn is_pruned(&self, name: &str) -> bool {
        let (module, local) = name.rsplit_once('.').unwrap_or(("", name));
        KINDS.iter().any(|&k| {
            with_kind!(k, T => <T as Part>::part(self)
                .store_at(module)
                .is_some_and(|s| s.is_pruned(local)))
        })
    }

    /// Every tensor, float and raw, with its dtype and shape, in the order
    /// of PyTorch's `state_dict`: module by module (a module's own tensors
    /// before its children's, children in the natural order of their
    /// names), a module's parameters before its buffers. Each tree's own
    /// order is kept; a module's parameters of different dtypes are in the
    /// natural order of their names, and so are its buffers (raw tensors
    /// counted with the buffers). A pruned `X` is listed as `X_orig` and
    /// `X_mask`, as saved.
    ///
    /// ```
    /// use ndprune::io::{Dtype, MixedCheckpoint, RawTensor};
    /// use ndprune::Layer;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("fc", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![2, 3]))?)?;
    /// ckpt.part_mut::<f32>().add_child("norm", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![2]))?)?;
    /// ckpt.push_raw(RawTensor::new("fc.steps", Dtype::I64, vec![], vec![0; 8])?);
    /// let listed: Vec<(String, Dtype)> = ckpt.tensor_specs().iter().map(|s| (s.name().to_string(), s.dtype())).collect();
    /// assert_eq!(listed, [
    ///     ("fc.weight".to_string(), Dtype::F64),
    ///     ("fc.steps".to_string(), Dtype::I64),
    ///     ("norm.weight".to_string(), Dtype::F32),
    /// ]);
    /// # Ok(()) }
    /// ```
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let mut lists: Vec<Vec<Listed>> = KINDS
            .iter()
            .map(|&k| with_kind!(k, T => listing(<T as Part>::part(self), true)))
            .collect();
        lists.push(
            self.raw
                .iter()
                .map(|r| {
                    let (module, local) = r.name().rsplit_once('.').unwrap_or(("", r.name()));
                    Listed {
                        module: module.to_string(),
                        rank: 1,
                        local: local.to_string(),
                        spec: r.spec().clone(),
                    }
                })
                .collect(),
        );
        merge(lists)
    }

    /// Every parameter of every tree with its dtype and shape, in the
    /// order of PyTorch's `named_parameters` (the order of
    /// [`MixedCheckpoint::tensor_specs`], buffers left out): what a
    /// `global_unstructured` over all parameters would be given.
    ///
    /// ```
    /// use ndprune::io::{Dtype, MixedCheckpoint};
    /// use ndprune::Layer;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f32>().add_child("bn", Layer::new()
    ///     .with_parameter("weight", ndarray::ArrayD::ones(vec![2]))?
    ///     .with_buffer("running_mean", ndarray::ArrayD::zeros(vec![2]))?)?;
    /// let params = ckpt.parameter_specs();
    /// assert_eq!((params.len(), params[0].name(), params[0].dtype()), (1, "bn.weight", Dtype::F32));
    /// # Ok(()) }
    /// ```
    pub fn parameter_specs(&self) -> Vec<TensorSpec> {
        let lists = KINDS
            .iter()
            .map(|&k| with_kind!(k, T => listing(<T as Part>::part(self), false)))
            .collect();
        merge(lists)
    }

    /// Prunes the tensor `name` in its own dtype as
    /// [`prune::l1_unstructured`] does (the `amount` entries of smallest
    /// magnitude).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("fc", Layer::new().with_parameter("weight", ndarray::array![0.5f64, -2.0, 0.1].into_dyn())?)?;
    /// ckpt.l1_unstructured("fc.weight", Amount::Count(2))?;
    /// assert_eq!(ckpt.part::<f64>().buffer("fc.weight_mask").unwrap(), &ndarray::array![0.0, 1.0, 0.0].into_dyn());
    /// assert!(ckpt.l1_unstructured("fc.bias", Amount::Count(1)).is_err());
    /// # Ok(()) }
    /// ```
    pub fn l1_unstructured(&mut self, name: &str, amount: Amount) -> Result<(), PruneError> {
        let kind = self.locate_for_pruning(name)?;
        with_kind!(kind, T => prune::l1_unstructured(<T as Part>::part_mut(self), name, amount, None))
    }

    /// Prunes the tensor `name` in its own dtype as [`prune::ln_structured`]
    /// does (the `amount` channels along `dim` of smallest norm `n`).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// let w = ndarray::array![[1.0f32, 1.0], [0.1, 0.2]].into_dyn();
    /// ckpt.part_mut::<f32>().add_child("fc", Layer::new().with_parameter("weight", w)?)?;
    /// ckpt.ln_structured("fc.weight", Amount::Count(1), Norm::L(2.0), Dim(0))?;
    /// assert_eq!(ckpt.part::<f32>().buffer("fc.weight_mask").unwrap(), &ndarray::array![[1.0f32, 1.0], [0.0, 0.0]].into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn ln_structured(
        &mut self,
        name: &str,
        amount: Amount,
        n: Norm,
        dim: Dim,
    ) -> Result<(), PruneError> {
        let kind = self.locate_for_pruning(name)?;
        with_kind!(kind, T => prune::ln_structured(<T as Part>::part_mut(self), name, amount, n, dim, None))
    }

    /// Prunes the tensor `name` in its own dtype as
    /// [`prune::random_unstructured`] does (a seed drawn from `rng`). For
    /// PyTorch's very draws, hand the tree to [`prune::apply`] with a
    /// [`RandomUnstructured::with_torch_generator`](crate::RandomUnstructured::with_torch_generator)
    /// method ([`MixedCheckpoint::dtype_of`] tells which tree).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f32>().add_child("fc", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 5]))?)?;
    /// ckpt.random_unstructured("fc.weight", Amount::Fraction(0.25), &mut rng)?;
    /// assert_eq!(ckpt.part::<f32>().buffer("fc.weight_mask").unwrap().sum(), 15.0);
    /// # Ok(()) }
    /// ```
    pub fn random_unstructured<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        amount: Amount,
        rng: &mut R,
    ) -> Result<(), PruneError> {
        let kind = self.locate_for_pruning(name)?;
        with_kind!(kind, T => prune::random_unstructured(<T as Part>::part_mut(self), name, amount, rng))
    }

    /// Prunes the tensor `name` in its own dtype as
    /// [`prune::random_structured`] does (channels along `dim`, a seed
    /// drawn from `rng`).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("fc", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 5]))?)?;
    /// ckpt.random_structured("fc.weight", Amount::Count(2), Dim(1), &mut rng)?;
    /// assert_eq!(ckpt.part::<f64>().buffer("fc.weight_mask").unwrap().sum(), 12.0);
    /// # Ok(()) }
    /// ```
    pub fn random_structured<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        amount: Amount,
        dim: Dim,
        rng: &mut R,
    ) -> Result<(), PruneError> {
        let kind = self.locate_for_pruning(name)?;
        with_kind!(kind, T => prune::random_structured(<T as Part>::part_mut(self), name, amount, dim, rng))
    }

    /// Makes the pruning of `name` permanent in its own dtype, as
    /// [`prune::remove`] does.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f32>().add_child("fc", Layer::new().with_parameter("weight", ndarray::array![1.0f32, -2.0].into_dyn())?)?;
    /// ckpt.l1_unstructured("fc.weight", Amount::Count(1))?;
    /// ckpt.remove("fc.weight")?;
    /// assert_eq!(ckpt.part::<f32>().parameter("fc.weight").unwrap(), &ndarray::array![0.0f32, -2.0].into_dyn());
    /// assert!(!ckpt.is_pruned("fc.weight"));
    /// # Ok(()) }
    /// ```
    pub fn remove(&mut self, name: &str) -> Result<(), PruneError> {
        let kind = self.locate(name)?;
        with_kind!(kind, T => prune::remove(<T as Part>::part_mut(self), name))
    }

    /// Prunes the tensors `targets` together by magnitude, as PyTorch's
    /// `prune.global_unstructured(params, prune.L1Unstructured, amount)`
    /// does with the same tensors in the same order: the amount is
    /// measured on all their unpruned entries together; they are ranked in
    /// their common dtype, PyTorch's type promotion of `torch.cat` (their
    /// own if they share one; `f64` if any is `f64`; else `f32`, which
    /// holds every `bf16` and `f16` value exactly); equal magnitudes at the
    /// cut are chosen by `tie_break` (PyTorch's order of concatenation,
    /// the order of `targets`, with [`TieBreak::Torch`], the default); and
    /// each tensor gets its share of the mask in its own dtype (its history
    /// records a [`PruningStep::Global`] step, as
    /// [`prune::global_unstructured`] does).
    ///
    /// Everything is checked before anything changes: a missing name, a
    /// name given twice, a tensor that cannot be pruned, an amount larger
    /// than what is left; on error nothing has changed.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("a", Layer::new().with_parameter("w", array![0.1f64, 5.0].into_dyn())?)?;
    /// ckpt.part_mut::<f32>().add_child("b", Layer::new().with_parameter("w", array![0.2f32, 0.3, 4.0].into_dyn())?)?;
    /// ckpt.global_unstructured(&["a.w", "b.w"], Amount::Count(3), TieBreak::Torch)?;
    /// assert_eq!(ckpt.part::<f64>().buffer("a.w_mask").unwrap(), &array![0.0, 1.0].into_dyn());
    /// assert_eq!(ckpt.part::<f32>().buffer("b.w_mask").unwrap(), &array![0.0f32, 0.0, 1.0].into_dyn());
    /// // A name no tree holds: an error, and nothing changed.
    /// let before = ckpt.clone();
    /// assert!(ckpt.global_unstructured(&["a.w", "c.w"], Amount::Count(1), TieBreak::Torch).is_err());
    /// assert_eq!(ckpt.to_bytes().unwrap(), before.to_bytes().unwrap());
    /// # Ok(()) }
    /// ```
    pub fn global_unstructured<S: AsRef<str>>(
        &mut self,
        targets: &[S],
        amount: Amount,
        tie_break: TieBreak,
    ) -> Result<(), PruneError> {
        let method = L1Unstructured::new(amount)?.with_tie_break(tie_break);
        let names: Vec<&str> = targets.iter().map(AsRef::as_ref).collect();
        let kinds = names
            .iter()
            .map(|n| self.locate_for_pruning(n))
            .collect::<Result<Vec<Kind>, _>>()?;
        match common_kind(&kinds) {
            // One dtype (or no target: the f32 tree reports that): ranked
            // in it, by the tree that holds them all.
            None => prune::global_unstructured(&mut self.f32, &names, &method, None),
            Some(Common::Same(kind)) => with_kind!(kind, T => {
                prune::global_unstructured(<T as Part>::part_mut(self), &names, &method, None)
            }),
            Some(Common::Promoted(kind)) => {
                let step = PruningStep::Global {
                    method: Box::new(PruningStep::L1Unstructured {
                        amount,
                        tie_break,
                        importance_scores: false,
                    }),
                    tensors: names.len(),
                };
                match kind {
                    Kind::F64 => self.global_promoted::<f64>(&names, &kinds, &method, step),
                    _ => self.global_promoted::<f32>(&names, &kinds, &method, step),
                }
            }
        }
    }

    /// Global pruning of targets of several dtypes, ranked in `C`.
    fn global_promoted<C: MixedFloat>(
        &mut self,
        names: &[&str],
        kinds: &[Kind],
        method: &L1Unstructured,
        step: PruningStep,
    ) -> Result<(), PruneError> {
        // 1. Every target is one the call may prune, once; nothing changes.
        let mut seen = HashSet::with_capacity(names.len());
        for (&path, &kind) in names.iter().zip(kinds) {
            with_kind!(kind, T => check_target(<T as Part>::part(self), path))?;
            if !seen.insert(path) {
                return Err(PruneError::new(
                    path,
                    PruneErrorKind::DuplicateTarget {
                        first: path.to_string(),
                        again: path.to_string(),
                    },
                ));
            }
        }
        // 2. The ranking, in `C`, on copies: target `i` as the tensor `t`
        // of child `i` (pruned as it is, with its mask), so no name of the
        // checkpoint can clash in the copy.
        let mut ranked = Sequential::<C>::new();
        for (i, (&path, &kind)) in names.iter().zip(kinds).enumerate() {
            let layer = with_kind!(kind, T => promoted::<T, C>(<T as Part>::part(self), path));
            ranked
                .add_child(&i.to_string(), layer)
                .expect("child names 0, 1, … are distinct and valid");
        }
        let paths: Vec<String> = (0..names.len()).map(|i| format!("{i}.t")).collect();
        prune::global_unstructured(&mut ranked, &paths, method, None)?;
        // 3. Each target's share of the mask, in its own dtype.
        for (i, (&path, &kind)) in names.iter().zip(kinds).enumerate() {
            let mask = ranked
                .buffer(&format!("{i}.t_mask"))
                .expect("every copy was pruned by the call above");
            with_kind!(kind, T => commit_share::<T, C>(<T as Part>::part_mut(self), path, mask, step.clone()));
        }
        Ok(())
    }

    /// The tensors kept as bytes, sorted by name.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// assert!(MixedCheckpoint::new().raw_tensors().is_empty());
    /// ```
    pub fn raw_tensors(&self) -> &[RawTensor] {
        &self.raw
    }

    /// Adds a raw tensor, replacing one of the same name.
    ///
    /// ```
    /// use ndprune::io::{Dtype, MixedCheckpoint, RawTensor};
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.push_raw(RawTensor::new("ids", Dtype::U8, vec![1], vec![9]).unwrap());
    /// assert_eq!(ckpt.raw_tensors()[0].data(), &[9]);
    /// ```
    pub fn push_raw(&mut self, tensor: RawTensor) {
        self.raw.retain(|r| r.name() != tensor.name());
        let at = self.raw.partition_point(|r| r.name() < tensor.name());
        self.raw.insert(at, tensor);
    }

    /// The header's `__metadata__` map, if the file had one.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// assert!(MixedCheckpoint::new().metadata().is_none());
    /// ```
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }

    /// The header's `__metadata__` map, to change (`None`: none is written).
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.metadata_mut().get_or_insert_with(Default::default).insert("format".into(), "pt".into());
    /// let again = MixedCheckpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    /// assert_eq!(again.metadata().unwrap()["format"], "pt");
    /// ```
    pub fn metadata_mut(&mut self) -> &mut Option<BTreeMap<String, String>> {
        &mut self.metadata
    }

    /// Writes the checkpoint to `path` atomically (a temporary file in the
    /// same directory, synced, then renamed over `path`), every tensor in
    /// its own dtype. On error no file is left behind and `path` is
    /// untouched; a name held by two trees, or by a tree and a raw tensor,
    /// is such an error ([`CheckpointError::BadName`]).
    ///
    /// ```
    /// use ndprune::io::{Dtype, MixedCheckpoint};
    /// use ndprune::Layer;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut ckpt = MixedCheckpoint::new();
    /// ckpt.part_mut::<f64>().add_child("fc", Layer::new().with_parameter("bias", ndarray::ArrayD::zeros(vec![4]))?)?;
    /// let path = std::env::temp_dir().join("ndprune-doc-mixed-save.safetensors");
    /// ckpt.save(&path)?;
    /// assert_eq!(MixedCheckpoint::load(&path)?.dtype_of("fc.bias")?, Dtype::F64);
    /// # Ok(()) }
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        let (specs, sources) = self.layout();
        let mut writer = SafetensorsWriter::create(path.as_ref(), specs, self.metadata.as_ref())?;
        write_all(&mut writer, &sources)?;
        writer.commit()
    }

    /// The bytes [`MixedCheckpoint::save`] writes.
    ///
    /// ```
    /// use ndprune::io::MixedCheckpoint;
    /// let bytes = MixedCheckpoint::new().to_bytes().unwrap();
    /// assert_eq!(&bytes[..10], &[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let (specs, sources) = self.layout();
        let mut writer = SafetensorsWriter::new(Vec::new(), specs, self.metadata.as_ref())?;
        write_all(&mut writer, &sources)?;
        writer.finish()
    }

    /// The tensors to write, in file order (as
    /// [`Checkpoint::save`](super::Checkpoint::save) orders them), with
    /// where each comes from.
    fn layout(&self) -> (Vec<TensorSpec>, Vec<Source<'_>>) {
        let mut items: Vec<(TensorSpec, Source<'_>)> = Vec::new();
        push_part(&mut items, &self.f64, Source::F64);
        push_part(&mut items, &self.f32, Source::F32);
        #[cfg(feature = "half")]
        push_part(&mut items, &self.bf16, Source::BF16);
        #[cfg(feature = "half")]
        push_part(&mut items, &self.f16, Source::F16);
        items.extend(
            self.raw
                .iter()
                .map(|r| (r.spec().clone(), Source::Raw(r.data()))),
        );
        items.sort_by(|(a, _), (b, _)| {
            (alignment_rank(a.dtype()), a.name()).cmp(&(alignment_rank(b.dtype()), b.name()))
        });
        items.into_iter().unzip()
    }
}

fn push_part<'a, T: CheckpointFloat>(
    items: &mut Vec<(TensorSpec, Source<'a>)>,
    part: &'a Sequential<T>,
    wrap: fn(&'a ArrayD<T>) -> Source<'a>,
) {
    for (name, t) in part.state_dict() {
        items.push((TensorSpec::new(name, T::DTYPE, t.shape().to_vec()), wrap(t)));
    }
}

fn write_all<W: Write>(
    writer: &mut SafetensorsWriter<W>,
    sources: &[Source<'_>],
) -> Result<(), CheckpointError> {
    for source in sources {
        let name = match writer.next_tensor() {
            Some(spec) => spec.name().to_string(),
            None => break,
        };
        match source {
            Source::F64(t) => writer.write_array(&name, t.view())?,
            Source::F32(t) => writer.write_array(&name, t.view())?,
            #[cfg(feature = "half")]
            Source::BF16(t) => writer.write_array(&name, t.view())?,
            #[cfg(feature = "half")]
            Source::F16(t) => writer.write_array(&name, t.view())?,
            Source::Raw(bytes) => writer.write_tensor_bytes(&name, bytes)?,
        }
    }
    Ok(())
}

/// The tree's tensors in `state_dict` order (parameters only unless
/// `buffers`), with their module paths.
fn listing<T: CheckpointFloat>(part: &Sequential<T>, buffers: bool) -> Vec<Listed> {
    let mut out = Vec::new();
    part.visit_stores("", &mut |module, store| {
        let own = store.parameters().map(|p| (0, p));
        let bufs = store.buffers().filter(|_| buffers).map(|b| (1, b));
        for (rank, (local, t)) in own.chain(bufs) {
            let name = if module.is_empty() {
                local.to_string()
            } else {
                format!("{module}.{local}")
            };
            out.push(Listed {
                module: module.to_string(),
                rank,
                local: local.to_string(),
                spec: TensorSpec::new(name, T::DTYPE, t.shape().to_vec()),
            });
        }
    });
    out
}

/// Where `a` comes in the model's `state_dict` relative to `b`: by module
/// (an ancestor's own tensors first, then children in natural order),
/// then parameters before buffers, then by name.
fn tree_cmp(a: &Listed, b: &Listed) -> Ordering {
    let mut x = a.module.split('.').filter(|c| !c.is_empty());
    let mut y = b.module.split('.').filter(|c| !c.is_empty());
    loop {
        match (x.next(), y.next()) {
            (None, None) => break,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p != q => return natural_cmp(p, q),
            (Some(_), Some(_)) => {}
        }
    }
    a.rank
        .cmp(&b.rank)
        .then_with(|| natural_cmp(&a.local, &b.local))
}

/// Merges lists each in its own `state_dict` order into one: each list's
/// order is kept, and the next tensor is the first by [`tree_cmp`] among
/// the lists' heads (the first list wins a tie).
fn merge(lists: Vec<Vec<Listed>>) -> Vec<TensorSpec> {
    let total = lists.iter().map(Vec::len).sum();
    let mut lists: Vec<VecDeque<Listed>> = lists.into_iter().map(VecDeque::from).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let mut best: Option<(usize, &Listed)> = None;
        for (i, list) in lists.iter().enumerate() {
            let Some(head) = list.front() else { continue };
            if best.is_none_or(|(_, b)| tree_cmp(head, b) == Ordering::Less) {
                best = Some((i, head));
            }
        }
        let (b, _) = best.expect("fewer listed than in all lists: some list has a head");
        out.push(lists[b].pop_front().expect("its head was just seen").spec);
    }
    out
}

/// The common dtype of several (PyTorch's promotion in `torch.cat`).
enum Common {
    /// All targets have this dtype.
    Same(Kind),
    /// Several dtypes, promoted to this one.
    Promoted(Kind),
}

/// `None` for no targets.
fn common_kind(kinds: &[Kind]) -> Option<Common> {
    let first = *kinds.first()?;
    if kinds.iter().all(|&k| k == first) {
        Some(Common::Same(first))
    } else if kinds.contains(&Kind::F64) {
        Some(Common::Promoted(Kind::F64))
    } else {
        Some(Common::Promoted(Kind::F32))
    }
}

/// The checks [`prune::global_unstructured`] makes of one target before it
/// changes anything: there, and pruned already or a parameter that may be.
fn check_target<T: PruneFloat>(part: &Sequential<T>, path: &str) -> Result<(), PruneError> {
    let (store, name) = resolve(part, path)?;
    if !store.is_pruned(name) {
        store.check_first_pruning(name).for_tensor(path)?;
    }
    Ok(())
}

/// A copy of the target `path` (checked) in `C`, as the tensor `t` of a
/// layer: its original and mask if pruned, else the parameter. Every value
/// of a narrower float type is one of the wider, so the copy is exact.
fn promoted<T: PruneFloat, C: PruneFloat>(part: &Sequential<T>, path: &str) -> Layer<C> {
    let widen = |a: &ArrayD<T>| a.mapv(|x| C::from_f64(x.as_f64()));
    let (store, name) = resolve(part, path).expect("every target was checked");
    let mut layer = Layer::new();
    if store.is_pruned(name) {
        let orig = store
            .parameter(&format!("{name}_orig"))
            .expect("a pruned tensor has its original");
        let mask = store
            .buffer(&mask_name(name))
            .expect("a pruned tensor has its mask");
        layer
            .store_mut()
            .restore_pruned("t", widen(orig), widen(mask))
            .expect("a pruned tensor's original and mask agree in shape, the mask is 0/1");
    } else {
        let param = store.parameter(name).expect("checked: a parameter");
        layer
            .store_mut()
            .add_parameter("t", widen(param))
            .expect("a fresh layer holds no tensor yet");
    }
    layer
}

/// Applies the target's share `mask` (0/1, in `C`) of a global call, in
/// `T`, recorded as `step`.
fn commit_share<T: PruneFloat, C: PruneFloat>(
    part: &mut Sequential<T>,
    path: &str,
    mask: &ArrayD<C>,
    step: PruningStep,
) {
    let mask: ArrayD<T> = mask.mapv(|x| T::from_f64(x.as_f64()));
    prune::apply(part, path, &CustomFromMask::recorded_as(mask.view(), step), None).expect(
        "checked before anything changed: the target is there and may be pruned, the mask is 0/1 of its shape",
    );
}
