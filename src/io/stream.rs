//! Streamed pruning of checkpoint files: tensor by tensor from the input's
//! memory maps to the output, whatever the size of the model.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use num_traits::{One, Zero};
use serde_json::{Map, Value};

use super::files::{CheckpointFiles, ModelView, INDEX_SUFFIX};
use super::pipe::{self, Sink};
use super::shard::{layout, shard_name, ShardSizeError, SHARD_INDEX, SINGLE_SHARD};
use super::{
    alignment_rank, CheckpointError, CheckpointFloat, Dtype, LoadOptions, PendingDir, PendingFile,
    SafetensorsWriter, TargetProblem, TensorEntry, TensorSpec,
};
use crate::par;
use crate::prelude::*;
use crate::select::StreamingSelect;

/// Calls `$body` with `$T` the element type of a dtype the plan prunes.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            Dtype::F32 => {
                type $T = f32;
                $body
            }
            Dtype::F64 => {
                type $T = f64;
                $body
            }
            #[cfg(feature = "half")]
            Dtype::BF16 => {
                type $T = half::bf16;
                $body
            }
            #[cfg(feature = "half")]
            Dtype::F16 => {
                type $T = half::f16;
                $body
            }
            other => unreachable!("{other} is no dtype the plan prunes"),
        }
    };
}

/// Whether streamed pruning prunes tensors of this dtype: the float dtypes
/// (`BF16` and `F16` with feature `half`; without it they are copied).
///
/// ```
/// use ndprune::io::{is_prunable, Dtype};
/// assert!(is_prunable(Dtype::F32));
/// assert!(!is_prunable(Dtype::I64));
/// ```
pub fn is_prunable(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F64)
        || (cfg!(feature = "half") && matches!(dtype, Dtype::BF16 | Dtype::F16))
}

/// How [`FilePruner`] prunes each selected tensor.
///
/// ```
/// use ndprune::io::StreamMethod;
/// use ndprune::{Dim, Norm};
/// let m = StreamMethod::LnStructured { norm: Norm::L(2.0), dim: Dim(0) };
/// assert_eq!(m.name(), "ln_structured");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum StreamMethod {
    /// `l1_unstructured` of each tensor.
    L1Unstructured,
    /// `ln_structured` of each tensor.
    LnStructured {
        /// The norm.
        norm: Norm,
        /// The channel dim.
        dim: Dim,
    },
    /// `random_unstructured` of each tensor, seeded per tensor by `seed`
    /// and the tensor's name (so a tensor's mask does not depend on which
    /// others are selected).
    RandomUnstructured {
        /// The seed.
        seed: u64,
    },
    /// `random_structured` of each tensor, seeded as
    /// [`StreamMethod::RandomUnstructured`].
    RandomStructured {
        /// The channel dim.
        dim: Dim,
        /// The seed.
        seed: u64,
    },
    /// `random_unstructured` of each tensor on PyTorch's stream:
    /// `torch.manual_seed(seed)`, then each selected tensor in the order of
    /// their names, so the same entries as PyTorch prunes that way.
    TorchRandomUnstructured {
        /// The seed of `torch.manual_seed`.
        seed: u64,
    },
    /// `random_structured` of each tensor on PyTorch's stream, as
    /// [`StreamMethod::TorchRandomUnstructured`].
    TorchRandomStructured {
        /// The channel dim.
        dim: Dim,
        /// The seed of `torch.manual_seed`.
        seed: u64,
    },
    /// `global_unstructured` with L1 over all selected tensors together.
    /// Ties at the cut go lowest index first in the order the tensors are
    /// written, or in PyTorch's order (see [`StreamTies`]).
    Global,
    /// N:M sparsity of each tensor ([`NmStructured`]): `n` of every `m`
    /// consecutive entries along `dim` kept. The amount is not used (give
    /// any; the CLI gives 0).
    NmStructured {
        /// Entries kept per group.
        n: usize,
        /// Entries per group.
        m: usize,
        /// The dim the groups lie along.
        dim: Dim,
    },
    /// Block sparsity of each (2-D) tensor ([`BlockSparsity`]); the amount
    /// is the sparsity level, a fraction in `[0, 1]` (the counts 0 and 1
    /// stand for 0.0 and 1.0).
    BlockSparsity {
        /// The block shape `(rows, cols)`.
        block: (usize, usize),
        /// Zeros in each chosen block (`None`: the whole block).
        zeros_per_block: Option<usize>,
        /// What entries are ranked by.
        norm: crate::BlockNorm,
    },
    /// Wanda ([`crate::wanda::prune`]): in each output row of each
    /// selected weight `[out, in]`, the amount of the row's entries of
    /// smallest `|W| · ‖X‖₂`, with the norms given by
    /// [`FilePruner::activation_norms`] (by the weight's name; a selected
    /// tensor without norms, or with norms of another length, fails the
    /// run naming it).
    Wanda,
    /// Wanda's N:M sparsity ([`crate::wanda::prune_nm`]): in every group
    /// of `m` consecutive inputs of each output row of each selected weight
    /// `[out, in]`, the `n` entries of largest `|W| · ‖X‖₂` kept (ranked in
    /// `f32`, as the reference code ranks them), with the norms of
    /// [`FilePruner::activation_norms`] as for [`StreamMethod::Wanda`]. The
    /// amount is not used (give any; the CLI gives 0).
    ///
    /// ```
    /// use ndprune::io::StreamMethod;
    /// assert_eq!(StreamMethod::WandaNm { n: 2, m: 4 }.name(), "wanda_nm");
    /// ```
    WandaNm {
        /// Entries kept per group (the reference's 2:4 keeps 2).
        n: usize,
        /// Entries per group.
        m: usize,
    },
}

impl StreamMethod {
    /// The method's name, as PyTorch's function is called (`global` for
    /// [`StreamMethod::Global`]).
    ///
    /// ```
    /// assert_eq!(ndprune::io::StreamMethod::Global.name(), "global");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            StreamMethod::L1Unstructured => "l1_unstructured",
            StreamMethod::LnStructured { .. } => "ln_structured",
            StreamMethod::RandomUnstructured { .. }
            | StreamMethod::TorchRandomUnstructured { .. } => "random_unstructured",
            StreamMethod::RandomStructured { .. } | StreamMethod::TorchRandomStructured { .. } => {
                "random_structured"
            }
            StreamMethod::Global => "global",
            StreamMethod::NmStructured { .. } => "nm_structured",
            StreamMethod::BlockSparsity { .. } => "block_sparsity",
            StreamMethod::Wanda => "wanda",
            StreamMethod::WandaNm { .. } => "wanda_nm",
        }
    }
}

/// How [`StreamMethod::Global`] chooses between equal magnitudes that
/// straddle the cut (say 10 entries of magnitude 0.25 and 4 of them to
/// prune). Such ties are common in bf16 and f16 models, whose magnitudes
/// take few values.
///
/// ```
/// use ndprune::io::StreamTies;
/// assert_eq!(StreamTies::default(), StreamTies::Torch { max_bytes: 4 << 30 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTies {
    /// As PyTorch's `global_unstructured` does, given the tensors in the
    /// order of their names: its CPU `topk` order over all unpruned
    /// entries. This needs them in memory at once (at most 4 times
    /// their size in their common dtype, plus 2 bytes each); where that is
    /// more than `max_bytes`, the write order is used instead and the
    /// report says so ([`TieOrder::WriteOrder`]). The default, with 4 GiB:
    /// exact wherever it fits, and never more memory than asked.
    Torch {
        /// The most memory the replay may take.
        max_bytes: u64,
    },
    /// Lowest index first in the order the tensors are written: no extra
    /// memory, whatever the ties.
    WriteOrder,
}

impl Default for StreamTies {
    fn default() -> Self {
        StreamTies::Torch { max_bytes: 4 << 30 }
    }
}

/// How a global pruning's ties were broken ([`StreamReport::ties`]).
///
/// ```
/// use ndprune::io::{StreamReport, TieOrder};
/// assert_eq!(StreamReport::default().ties, TieOrder::NoTies);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieOrder {
    /// No equal magnitudes straddled the cut (or no global pruning): every
    /// rule gives the same masks.
    #[default]
    NoTies,
    /// In PyTorch's order.
    Torch,
    /// In the order the tensors are written, because of
    /// [`StreamTies::WriteOrder`] or because PyTorch's order needed more
    /// memory than allowed.
    WriteOrder {
        /// Candidates of the cut's magnitude.
        tied: usize,
        /// How many of them were pruned.
        pruned: usize,
        /// The memory PyTorch's order would have needed.
        needed_bytes: u64,
    },
}

/// Where [`FilePruner::run`] writes.
///
/// ```
/// use ndprune::io::Output;
/// let out = Output::File("pruned.safetensors".into());
/// assert_eq!(out.path(), std::path::Path::new("pruned.safetensors"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One safetensors file, replaced atomically if it exists (the tensors
    /// of every shard of the input together).
    File(PathBuf),
    /// A directory, created whole (from a temporary directory beside it,
    /// renamed into place: never half-written); it must not exist, or be
    /// empty. It gets one file per input file, of the same name, with the
    /// tensors that file held (a pruned `X` as `X_orig` and `X_mask`
    /// together); for a sharded input a new index, and the input's other
    /// files (`config.json`, tokenizer files) copied.
    Directory(PathBuf),
    /// A directory, created whole as [`Output::Directory`], re-sharded:
    /// the tensors in the order a [`Output::File`] would hold them, cut
    /// into shards named as Hugging Face names them
    /// (`model-00001-of-00004.safetensors`) of at most `max_shard_bytes`
    /// bytes of tensor data each (each file adds its header), with a new
    /// `model.safetensors.index.json` (its `metadata.total_size` and a
    /// `weight_map` naming every tensor), and the input's other files
    /// copied (never an index of the input). From a single file or a
    /// sharded input alike. What fits in one shard is written as Hugging
    /// Face's `save_pretrained` writes it: one `model.safetensors` and no
    /// index.
    ///
    /// A pruned pair `X_orig`/`X_mask` goes into one shard where the two
    /// fit in one together (they are split only when they are larger than
    /// the limit together, or of dtypes the order puts apart); a tensor
    /// larger than the limit on its own gets a shard of its own, as
    /// Hugging Face does. A limit of 0 is refused ([`Output::check`]);
    /// [`parse_shard_size`](super::parse_shard_size) reads `5GB`, `2GiB`.
    Shards {
        /// The directory.
        dir: PathBuf,
        /// The most bytes of tensor data a shard holds (unless it holds a
        /// single larger tensor).
        max_shard_bytes: u64,
    },
}

impl Output {
    /// The path written.
    ///
    /// ```
    /// use ndprune::io::Output;
    /// assert_eq!(Output::Directory("out".into()).path(), std::path::Path::new("out"));
    /// ```
    pub fn path(&self) -> &Path {
        match self {
            Output::File(p) | Output::Directory(p) | Output::Shards { dir: p, .. } => p,
        }
    }

    /// [`Output::check`], after checking that the output replaces none
    /// of `input`'s files ([`CheckpointFiles::input_files`]), however its
    /// path is spelled (the same file by device and inode on Unix, by
    /// canonical path elsewhere): [`TargetProblem::InputFile`]. The
    /// writers ([`FilePruner::run`],
    /// [`FileShrinker::run`](super::FileShrinker::run)) call it first.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointError, CheckpointFiles, Output, TargetProblem};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-check-for.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// let input = CheckpointFiles::open(&path)?;
    /// let err = Output::File(path.clone()).check_for(&input).unwrap_err();
    /// assert!(matches!(err, CheckpointError::BadTarget { problem: TargetProblem::InputFile { .. }, .. }));
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    pub fn check_for(&self, input: &CheckpointFiles) -> Result<(), CheckpointError> {
        let out = self.path();
        if let Some(file) = input
            .input_files()
            .into_iter()
            .find(|f| *f == out || same_file(f, out))
        {
            return Err(CheckpointError::BadTarget {
                path: out.to_path_buf(),
                problem: TargetProblem::InputFile {
                    file: file.to_path_buf(),
                },
            });
        }
        self.check()
    }

    /// Checks, before any work, that the output can be written: see
    /// [`PendingFile::check_target`] and [`PendingDir::check_target`].
    ///
    /// ```
    /// use ndprune::io::Output;
    /// assert!(Output::File(std::env::temp_dir()).check().is_err());
    /// assert!(Output::Directory("/no/such/dir/out".into()).check().is_err());
    /// // A shard holds at least one byte.
    /// let zero = Output::Shards { dir: std::env::temp_dir().join("ndprune-doc-zero-shards"), max_shard_bytes: 0 };
    /// assert!(zero.check().is_err());
    /// ```
    pub fn check(&self) -> Result<(), CheckpointError> {
        match self {
            Output::File(p) => PendingFile::check_target(p).map(|_| ()),
            Output::Directory(p) => PendingDir::check_target(p),
            Output::Shards {
                dir,
                max_shard_bytes,
            } => {
                if *max_shard_bytes == 0 {
                    return Err(CheckpointError::BadTarget {
                        path: dir.clone(),
                        problem: TargetProblem::ShardSize(ShardSizeError::Zero),
                    });
                }
                PendingDir::check_target(dir)
            }
        }
    }
}

/// Whether two paths name the same existing file: the same device and
/// inode (links followed), so a hard link, a symbolic link or a bind mount
/// of a file is that file, however the path is spelled.
#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        // A path that names nothing (yet) is no file of the input.
        _ => false,
    }
}

/// Whether two paths name the same existing file (by canonical path where
/// there are no inodes to compare).
#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        // A path that names nothing (yet) is no file of the input.
        _ => false,
    }
}

/// What [`FilePruner::run`] tells as it goes (every method does nothing by
/// default; `()` is the silent observer).
///
/// A temporary output exists from [`Progress::created`] with a path until
/// [`Progress::finished`]: a program that must remove it on a signal (which
/// no destructor runs on) registers it there. [`Progress::creating`] comes
/// right before the temporary is made, so a program can hold signals back
/// until it knows the path.
///
/// ```
/// use ndprune::io::Progress;
/// struct Count(u64);
/// impl Progress for Count {
///     fn wrote(&mut self, _tensor: &str, bytes: u64) {
///         self.0 += bytes;
///     }
/// }
/// let mut c = Count(0);
/// c.wrote("w", 16);
/// assert_eq!(c.0, 16);
/// ```
pub trait Progress {
    /// The plan is made: `bytes` will be written in `tensors` tensors.
    fn start(&mut self, _tensors: usize, _bytes: u64) {}
    /// A temporary output (file or directory) is about to be created.
    fn creating(&mut self) {}
    /// The temporary output was created at `temp` (`None`: creating it
    /// failed).
    fn created(&mut self, _temp: Option<&Path>) {}
    /// A tensor of `bytes` bytes was written.
    fn wrote(&mut self, _tensor: &str, _bytes: u64) {}
    /// The temporary output is gone: renamed into place, or removed.
    fn finished(&mut self) {}
}

impl Progress for () {}

/// What pruning did to one tensor. [`StreamReport::sparsity`] gathers
/// these into the library's [`SparsityReport`](crate::SparsityReport).
///
/// ```
/// use ndprune::io::{Dtype, TensorReport};
/// let t = TensorReport {
///     name: "w".into(), dtype: Dtype::F32, shape: vec![2, 2], numel: 4, before: 0, after: 2,
///     channels_pruned: vec![1, 0], mask_dtype: Some(Dtype::F32),
/// };
/// assert_eq!(t.sparsity(), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorReport {
    /// The tensor's name in the file (`X` for a pair `X_orig`/`X_mask`).
    pub name: String,
    /// The dtype of its values.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its number of entries.
    pub numel: usize,
    /// Entries pruned (mask 0) before.
    pub before: usize,
    /// Entries pruned after.
    pub after: usize,
    /// For each dim, the channels (indices of that dim) the mask written
    /// prunes whole, as [`TensorSparsity::channels_pruned`](crate::TensorSparsity::channels_pruned).
    pub channels_pruned: Vec<usize>,
    /// The dtype of the mask written (`X_mask`), `None` when the tensor
    /// was written as `X = X_orig * X_mask` (`remove`).
    pub mask_dtype: Option<Dtype>,
}

impl TensorReport {
    /// The fraction of entries pruned after (0 for a tensor of no entries).
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorReport};
    /// let t = TensorReport {
    ///     name: "w".into(), dtype: Dtype::F32, shape: vec![0], numel: 0, before: 0, after: 0,
    ///     channels_pruned: vec![0], mask_dtype: None,
    /// };
    /// assert_eq!(t.sparsity(), 0.0);
    /// ```
    pub fn sparsity(&self) -> f64 {
        if self.numel == 0 {
            0.0
        } else {
            self.after as f64 / self.numel as f64
        }
    }

    /// This tensor as the library's report counts it: by its mask, with
    /// the bytes written (`X_orig` and `X_mask`, or `X` alone when
    /// removed).
    fn sparsity_entry(&self) -> crate::TensorSparsity {
        let bytes = |dtype: Dtype| {
            super::dtype::byte_len(dtype, &self.shape)
                .expect("the tensor's size was checked when its file was read")
        };
        crate::TensorSparsity::new(
            self.name.clone(),
            self.dtype.to_string(),
            self.shape.clone(),
            crate::Counting::Mask,
            (self.after, self.channels_pruned.clone()),
            bytes(self.dtype),
            self.mask_dtype.map_or(0, bytes),
        )
    }
}

/// What a [`FilePruner`] would do to one tensor ([`FilePruner::dry_run`]).
///
/// ```
/// use ndprune::io::{Dtype, TensorPlan};
/// let t = TensorPlan { name: "w".into(), dtype: Dtype::F32, shape: vec![4], numel: 4, steps: vec![0, 1], before: 0, after: vec![1, 2] };
/// assert_eq!(t.sparsity(), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    /// The tensor's name (`X` for a pair `X_orig`/`X_mask`).
    pub name: String,
    /// The dtype of its values.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its number of entries.
    pub numel: usize,
    /// The steps (from 0) that select it.
    pub steps: Vec<usize>,
    /// Entries pruned before any step.
    pub before: usize,
    /// Entries pruned after each step (every step, selecting it or not).
    pub after: Vec<usize>,
}

impl TensorPlan {
    /// The fraction of entries pruned after the last step.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorPlan};
    /// let t = TensorPlan { name: "w".into(), dtype: Dtype::F32, shape: vec![2], numel: 2, steps: vec![], before: 1, after: vec![] };
    /// assert_eq!(t.sparsity(), 0.5);
    /// ```
    pub fn sparsity(&self) -> f64 {
        if self.numel == 0 {
            0.0
        } else {
            self.after.last().copied().unwrap_or(self.before) as f64 / self.numel as f64
        }
    }
}

/// What a [`FilePruner::run`] did.
///
/// ```
/// use ndprune::io::StreamReport;
/// let r = StreamReport::default();
/// assert_eq!((r.tensors.len(), r.copied, r.written), (0, 0, 0));
/// assert_eq!(r.ties, ndprune::io::TieOrder::NoTies);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// The pruned tensors, by name.
    pub tensors: Vec<TensorReport>,
    /// Input tensors copied unchanged.
    pub copied: usize,
    /// Tensors written.
    pub written: usize,
    /// The files written, relative to the output (one for a file output).
    pub files: Vec<PathBuf>,
    /// Other files of the input (`config.json`, …) copied.
    pub other_files: usize,
    /// How equal magnitudes at a global pruning's cut were chosen between.
    pub ties: TieOrder,
}

impl StreamReport {
    /// The pruned tensors as the library's [`SparsityReport`](crate::SparsityReport)
    /// counts them, in the order of their names: each by the mask written
    /// (its fully pruned channels counted as the mask was written), with
    /// the bytes written for it. The tensors copied unchanged are not in
    /// it (read the output with
    /// [`SparsityReport::of_view`](crate::SparsityReport::of_view) for
    /// the whole model).
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, FilePruner, Output, StreamMethod};
    /// use ndprune::prelude::*;
    /// use ndprune::SparsityReport;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir();
    /// let (input, output) = (dir.join("ndprune-doc-sr-in.safetensors"), dir.join("ndprune-doc-sr-out.safetensors"));
    /// let w = ndarray::array![[1.0f32, -2.0], [3.0, -0.5], [0.1, 0.2]].into_dyn();
    /// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
    /// let report = FilePruner::new(StreamMethod::LnStructured { norm: Norm::L(2.0), dim: Dim(0) }, Amount::Count(1))
    ///     .run(&CheckpointFiles::open(&input)?, &Output::File(output.clone()), &mut ())?;
    /// let sparsity = report.sparsity();
    /// let fc = sparsity.tensor("fc.weight").unwrap();
    /// assert_eq!((fc.pruned(), fc.channels_pruned()), (Some(2), Some(&[1, 0][..])));
    /// // The same as the output file's report.
    /// let written = SparsityReport::of_view(&CheckpointFiles::open(&output)?.view()?);
    /// assert_eq!(written.tensor("fc.weight"), Some(fc));
    /// # Ok(()) }
    /// ```
    pub fn sparsity(&self) -> crate::SparsityReport {
        crate::SparsityReport::from_tensors(
            self.tensors
                .iter()
                .map(TensorReport::sparsity_entry)
                .collect(),
        )
    }
}

/// Prunes checkpoint files into new ones, streaming: one tensor at a time
/// goes from the input's memory maps to the output, so memory stays about
/// the largest tensor, whatever the model's size. The input is never
/// written; the output appears whole or not at all.
///
/// Which tensors: those `select` accepts, among the float tensors (and
/// PyTorch's pruned pairs `X_orig`/`X_mask`, by the name `X`) that have
/// entries and are no buffer ([`LoadOptions`]'s names:
/// `running_mean`, …). By default every such tensor of 2 or more dims.
/// A pruned pair is pruned further (amounts measured on what is left);
/// everything else is copied byte for byte.
///
/// Each tensor is pruned in its own dtype, exactly as the library's
/// functions prune it ([`prune::l1_unstructured`] and the others, on a
/// module holding that one tensor). [`StreamMethod::Global`] finds the cut
/// over all selected tensors in a few passes ([`StreamingSelect`]);
/// magnitudes are compared in the tensors' common dtype, or in `f64` when
/// they differ (exact for every float dtype, and ranking as PyTorch's
/// promotion to a common dtype does). Equal magnitudes that straddle the
/// cut are chosen between as [`StreamTies`] says: by default as PyTorch's
/// `global_unstructured` would, given the tensors in the order of their
/// names.
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointFiles, FilePruner, Output, StreamMethod};
/// use ndprune::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir();
/// let (input, output) = (dir.join("ndprune-doc-fp-in.safetensors"), dir.join("ndprune-doc-fp-out.safetensors"));
/// let w = ndarray::array![[1.0f32, -2.0], [3.0, -0.5]].into_dyn();
/// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
///
/// let files = CheckpointFiles::open(&input)?;
/// let report = FilePruner::new(StreamMethod::L1Unstructured, Amount::Count(2))
///     .run(&files, &Output::File(output.clone()), &mut ())?;
/// assert_eq!(report.tensors[0].after, 2);
/// let pruned = Checkpoint::<f32>::load(&output)?;
/// assert_eq!(pruned.tensor("fc.weight").unwrap(), &ndarray::array![[0.0f32, -2.0], [3.0, 0.0]].into_dyn());
/// # Ok(()) }
/// ```
pub struct FilePruner<'s> {
    /// The steps, in order: one, but for a recipe.
    stages: Vec<Stage<'s>>,
    remove: bool,
    ties: StreamTies,
    /// The most any tensor's fraction of pruned entries may reach (recipes).
    cap: Option<f64>,
    /// Wanda's activation norms, by weight name.
    act_norms: HashMap<String, crate::wanda::ActivationNorms>,
}

/// A safetensors header's `__metadata__`.
type Metadata = BTreeMap<String, String>;

/// Which candidates a [`FilePruner`] prunes.
type Selector<'s> = Box<dyn Fn(&TensorSpec) -> bool + 's>;

/// A tensor's own amount, by its name.
type AmountFor<'s> = Box<dyn Fn(&str) -> Option<Amount> + 's>;

/// One pruning step of a [`FilePruner`].
pub(crate) struct Stage<'s> {
    pub(crate) method: StreamMethod,
    pub(crate) amount: Amount,
    pub(crate) select: Option<Selector<'s>>,
    /// A tensor's own amount, where it has one (recipes' overrides).
    pub(crate) amount_for: Option<AmountFor<'s>>,
}

impl Stage<'_> {
    fn selects(&self, spec: &TensorSpec) -> bool {
        match &self.select {
            Some(f) => f(spec),
            None => spec.shape().len() >= 2,
        }
    }

    fn amount_of(&self, name: &str) -> Amount {
        self.amount_for
            .as_ref()
            .and_then(|f| f(name))
            .unwrap_or(self.amount)
    }
}

impl std::fmt::Debug for FilePruner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<_> = self
            .stages
            .iter()
            .map(|s| (s.method, s.amount, s.select.as_ref().map(|_| "<fn>")))
            .collect();
        f.debug_struct("FilePruner")
            .field("stages", &stages)
            .field("remove", &self.remove)
            .field("ties", &self.ties)
            .field("cap", &self.cap)
            .finish()
    }
}

impl<'s> FilePruner<'s> {
    /// Prunes `amount` of each selected tensor (of all of them together
    /// for [`StreamMethod::Global`]) by `method`.
    ///
    /// ```
    /// use ndprune::io::{FilePruner, StreamMethod};
    /// let p = FilePruner::new(StreamMethod::Global, ndprune::Amount::Fraction(0.5));
    /// # let _ = p;
    /// ```
    pub fn new(method: StreamMethod, amount: Amount) -> Self {
        FilePruner {
            stages: vec![Stage {
                method,
                amount,
                select: None,
                amount_for: None,
            }],
            remove: false,
            ties: StreamTies::default(),
            cap: None,
            act_norms: HashMap::new(),
        }
    }

    /// Makes pruning permanent: every pruned pair `X_orig`/`X_mask` of the
    /// input is written as `X = X_orig * X_mask` (as [`prune::remove`]
    /// does); everything else is copied byte for byte.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, FilePruner, Output, StreamMethod};
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir();
    /// let (a, b, c) = (dir.join("ndprune-doc-rm-a.safetensors"), dir.join("ndprune-doc-rm-b.safetensors"), dir.join("ndprune-doc-rm-c.safetensors"));
    /// let w = ndarray::array![[1.0f32, -2.0], [3.0, -0.5]].into_dyn();
    /// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&a)?;
    /// FilePruner::new(StreamMethod::L1Unstructured, Amount::Count(2)).run(&CheckpointFiles::open(&a)?, &Output::File(b.clone()), &mut ())?;
    /// let report = FilePruner::remove_pruning().run(&CheckpointFiles::open(&b)?, &Output::File(c.clone()), &mut ())?;
    /// assert_eq!(report.tensors[0].after, 2);
    /// let done = Checkpoint::<f32>::load(&c)?;
    /// assert_eq!(done.tensor("fc.weight").unwrap(), &ndarray::array![[0.0f32, -2.0], [3.0, 0.0]].into_dyn());
    /// assert!(done.raw_tensor("fc.weight_mask").is_none());
    /// # Ok(()) }
    /// ```
    pub fn remove_pruning() -> Self {
        FilePruner {
            stages: Vec::new(),
            remove: true,
            ties: StreamTies::default(),
            cap: None,
            act_norms: HashMap::new(),
        }
    }

    /// A pruner running `stages` in order on each tensor, no tensor's
    /// fraction of pruned entries going past `cap` (recipes).
    pub(crate) fn from_stages(stages: Vec<Stage<'s>>, cap: Option<f64>) -> Self {
        FilePruner {
            stages,
            remove: false,
            ties: StreamTies::default(),
            cap,
            act_norms: HashMap::new(),
        }
    }

    /// The activation norms of [`StreamMethod::Wanda`] and
    /// [`StreamMethod::WandaNm`], by weight name
    /// (as [`read_activation_norms`](super::read_activation_norms) reads
    /// them from a file).
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, FilePruner, Output, StreamMethod};
    /// use ndprune::wanda::ActivationNorms;
    /// use ndprune::prelude::*;
    /// use std::collections::HashMap;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir();
    /// let (input, output) = (dir.join("ndprune-doc-wanda-in.safetensors"), dir.join("ndprune-doc-wanda-out.safetensors"));
    /// let w = ndarray::array![[1.0f32, -2.0, 3.0, 0.5], [4.0, 1.0, -1.0, 2.0]].into_dyn();
    /// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
    /// let norms = HashMap::from([("fc.weight".to_string(), ActivationNorms::new(vec![10.0, 1.0, 0.1, 1.0])?)]);
    /// FilePruner::new(StreamMethod::Wanda, Amount::Fraction(0.5))
    ///     .activation_norms(norms)
    ///     .run(&CheckpointFiles::open(&input)?, &Output::File(output.clone()), &mut ())?;
    /// let pruned = Checkpoint::<f32>::load(&output)?;
    /// assert_eq!(pruned.tensor("fc.weight").unwrap(), &ndarray::array![[1.0f32, -2.0, 0.0, 0.0], [4.0, 0.0, -0.0, 2.0]].into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn activation_norms(
        mut self,
        norms: HashMap<String, crate::wanda::ActivationNorms>,
    ) -> Self {
        self.act_norms = norms;
        self
    }

    /// How [`StreamMethod::Global`] breaks ties at the cut (PyTorch's
    /// order within 4 GiB by default).
    ///
    /// ```
    /// use ndprune::io::{FilePruner, StreamMethod, StreamTies};
    /// let p = FilePruner::new(StreamMethod::Global, ndprune::Amount::Fraction(0.5)).ties(StreamTies::WriteOrder);
    /// # let _ = p;
    /// ```
    pub fn ties(mut self, ties: StreamTies) -> Self {
        self.ties = ties;
        self
    }

    /// Writes `X = X_orig * X_mask` instead of the pair (as
    /// [`prune::remove`] does).
    ///
    /// ```
    /// use ndprune::io::{FilePruner, StreamMethod};
    /// let p = FilePruner::new(StreamMethod::L1Unstructured, ndprune::Amount::Count(1)).remove(true);
    /// # let _ = p;
    /// ```
    pub fn remove(mut self, remove: bool) -> Self {
        self.remove = remove;
        self
    }

    /// Prunes the candidates `select` accepts (instead of those of 2 or
    /// more dims). A pair `X_orig`/`X_mask` is offered as `X`.
    ///
    /// ```
    /// use ndprune::io::{FilePruner, StreamMethod};
    /// let p = FilePruner::new(StreamMethod::L1Unstructured, ndprune::Amount::Count(1))
    ///     .select(|spec| spec.name().ends_with(".weight"));
    /// # let _ = p;
    /// ```
    pub fn select(mut self, select: impl Fn(&TensorSpec) -> bool + 's) -> Self {
        if let Some(stage) = self.stages.first_mut() {
            stage.select = Some(Box::new(select));
        }
        self
    }

    /// Prunes `input` into `output`. On error nothing is written and no
    /// temporary is left behind (but see [`Progress`] for signals).
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointError, CheckpointFiles, FilePruner, Output, StreamMethod};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let input = std::env::temp_dir().join("ndprune-doc-fp-run.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&input)?;
    /// let files = CheckpointFiles::open(&input)?;
    /// // A directory output must be new or empty, and its parent must exist.
    /// let err = FilePruner::new(StreamMethod::Global, ndprune::Amount::Count(0))
    ///     .run(&files, &Output::Directory("/no/such/parent/out".into()), &mut ())
    ///     .unwrap_err();
    /// assert!(matches!(err, CheckpointError::BadTarget { .. }));
    /// # Ok(()) }
    /// ```
    pub fn run(
        &self,
        input: &CheckpointFiles,
        output: &Output,
        progress: &mut dyn Progress,
    ) -> Result<StreamReport, CheckpointError> {
        output.check_for(input)?;
        let view = input.view()?;
        let plan = self.plan(input, &view, output);
        let result = self.write(input, &view, &plan, output, progress);
        if result.is_err() {
            // A write from a map whose file shrank fails with EFAULT: say so.
            input.check_unchanged()?;
        }
        result
    }

    /// What [`FilePruner::run`] would do, without writing anything: for
    /// each tensor it would prune (by name), the entries pruned before and
    /// after each step. The same computation as `run`, masks included.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, FilePruner, StreamMethod};
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let input = std::env::temp_dir().join("ndprune-doc-fp-dry.safetensors");
    /// let w = ndarray::array![[1.0f32, -2.0], [3.0, -0.5]].into_dyn();
    /// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
    /// let plan = FilePruner::new(StreamMethod::L1Unstructured, Amount::Count(2)).dry_run(&CheckpointFiles::open(&input)?)?;
    /// assert_eq!((plan[0].name.as_str(), plan[0].before, plan[0].after.as_slice()), ("fc.weight", 0, &[2][..]));
    /// # Ok(()) }
    /// ```
    pub fn dry_run(&self, input: &CheckpointFiles) -> Result<Vec<TensorPlan>, CheckpointError> {
        let view = input.view()?;
        // The layout of a directory output: the same groups and order.
        let plan = self.plan(input, &view, &Output::Directory(PathBuf::new()));
        let entries = view.entries();
        let (gens, globals) = self.prepare(input, &view, &plan)?;
        let mut out = Vec::with_capacity(plan.groups.len());
        for (g, group) in plan.groups.iter().enumerate() {
            let file = input.files()[view.shard_of(group.orig())].path();
            let (before, after) = with_float!(group.dtype, T => {
                let (_, before, after) = self.state::<T>(
                    entries, &plan, g, file, self.stages.len(), &globals, gens.get(g),
                )?;
                (before, after)
            });
            out.push(TensorPlan {
                name: group.name.clone(),
                dtype: group.dtype,
                shape: group.shape.clone(),
                numel: group.shape.iter().product(),
                steps: (0..self.stages.len())
                    .filter(|&s| plan.members[s][g])
                    .collect(),
                before,
                after,
            });
        }
        Ok(out)
    }

    /// Selects the tensors to prune and lays out the output files.
    fn plan(&self, input: &CheckpointFiles, view: &ModelView<'_>, output: &Output) -> Plan {
        let entries = view.entries();
        let buffers = LoadOptions::default();

        // PyTorch's pruned pairs: X_orig with X_mask (checked by the view).
        let mut paired = HashSet::new();
        let mut candidates: Vec<Group> = Vec::new();
        for (base, o, m) in view.pruned_pairs() {
            paired.insert(o);
            paired.insert(m);
            if is_prunable(entries[o].dtype()) && is_prunable(entries[m].dtype()) {
                candidates.push(Group {
                    name: base.to_string(),
                    dtype: entries[o].dtype(),
                    mask_dtype: entries[m].dtype(),
                    shape: entries[o].shape().to_vec(),
                    target: Target::Pair { orig: o, mask: m },
                });
            }
        }
        // A pair of which one is no float (a bool mask, say) is no pruned
        // tensor to go on pruning: both are copied as they are.
        for (i, e) in entries.iter().enumerate() {
            if let Some(base) = e.name().strip_suffix("_orig").filter(|b| !b.is_empty()) {
                if let Some(m) = view.position(&format!("{base}_mask")) {
                    paired.insert(i);
                    paired.insert(m);
                }
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if !paired.contains(&i) && is_prunable(e.dtype()) && !buffers.is_buffer(e.name()) {
                candidates.push(Group {
                    name: e.name().to_string(),
                    dtype: e.dtype(),
                    mask_dtype: e.dtype(),
                    shape: e.shape().to_vec(),
                    target: Target::Plain(i),
                });
            }
        }
        // A tensor with no entries has nothing to prune: it is copied as it
        // is. (Its dims, which a header may claim at 2^40, then size no
        // work.) Nor is a tensor of empty name pruned: its `_orig` and
        // `_mask` would read back as two plain tensors of those names.
        candidates.retain(|g| !g.shape.contains(&0) && !g.name.is_empty());
        // A tensor is pruned if any step selects it.
        let mut groups: Vec<(Group, Vec<bool>)> = candidates
            .into_iter()
            .filter_map(|g| {
                let spec = TensorSpec::new(g.name.clone(), g.dtype, g.shape.clone());
                let by: Vec<bool> = self.stages.iter().map(|s| s.selects(&spec)).collect();
                let pair = matches!(g.target, Target::Pair { .. });
                (by.contains(&true) || (self.stages.is_empty() && pair)).then_some((g, by))
            })
            .collect();
        groups.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let (groups, by): (Vec<Group>, Vec<Vec<bool>>) = groups.into_iter().unzip();
        let members = (0..self.stages.len())
            .map(|s| by.iter().map(|b| b[s]).collect())
            .collect();

        // One output file, or one per input file.
        let n_files = match output {
            Output::File(_) | Output::Shards { .. } => 1,
            Output::Directory(_) => input.files().len(),
        };
        let file_of = |entry: usize| match output {
            Output::File(_) | Output::Shards { .. } => 0,
            Output::Directory(_) => view.shard_of(entry),
        };
        let mut taken = HashSet::new();
        // (file, dtype rank, name, part) orders the output: file by file;
        // in each, aligned, then by name, a pruned X_orig right before its
        // X_mask.
        let mut outputs: Vec<(usize, TensorSpec, Source)> = Vec::new();
        let mut keys = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let file = file_of(group.orig());
            taken.insert(group.orig());
            if let Target::Pair { mask, .. } = group.target {
                taken.insert(mask);
            }
            let spec = |name: String| TensorSpec::new(name, group.dtype, group.shape.clone());
            keys.push((file, group.dtype, group.name.clone(), 0));
            if self.remove {
                outputs.push((file, spec(group.name.clone()), Source::Removed(g)));
            } else {
                outputs.push((file, spec(format!("{}_orig", group.name)), Source::Orig(g)));
                keys.push((file, group.mask_dtype, group.name.clone(), 1));
                outputs.push((
                    file,
                    TensorSpec::new(
                        format!("{}_mask", group.name),
                        group.mask_dtype,
                        group.shape.clone(),
                    ),
                    Source::Mask(g),
                ));
            }
        }
        let mut copied = 0;
        for (i, e) in entries.iter().enumerate() {
            if !taken.contains(&i) {
                copied += 1;
                let file = file_of(i);
                keys.push((file, e.dtype(), e.name().to_string(), 0));
                outputs.push((
                    file,
                    TensorSpec::new(e.name(), e.dtype(), e.shape().to_vec()),
                    Source::Copy(i),
                ));
            }
        }
        let mut order: Vec<usize> = (0..outputs.len()).collect();
        order.sort_by(|&a, &b| {
            let (ka, kb) = (&keys[a], &keys[b]);
            (ka.0, alignment_rank(ka.1), &ka.2, ka.3).cmp(&(
                kb.0,
                alignment_rank(kb.1),
                &kb.2,
                kb.3,
            ))
        });
        let mut files: Vec<Vec<(TensorSpec, Source)>> = vec![Vec::new(); n_files];
        let mut slots: Vec<Option<(usize, TensorSpec, Source)>> =
            outputs.into_iter().map(Some).collect();
        for i in order {
            let (file, spec, source) = slots[i].take().expect("each output is placed once");
            files[file].push((spec, source));
        }
        if let Output::Shards {
            max_shard_bytes, ..
        } = output
        {
            files = Self::reshard(files.remove(0), *max_shard_bytes);
        }
        Plan {
            groups,
            members,
            files,
            copied,
        }
    }

    /// The tensors of one output file, in order, cut into shards of at
    /// most `max` bytes of data ([`Output::Shards`]): a pruned pair
    /// written side by side kept together where it fits.
    fn reshard(tensors: Vec<(TensorSpec, Source)>, max: u64) -> Vec<Vec<(TensorSpec, Source)>> {
        let sizes: Vec<u64> = tensors.iter().map(|(s, _)| s.byte_len()).collect();
        let with_next: Vec<bool> = tensors
            .iter()
            .zip(tensors.iter().skip(1).map(Some).chain([None]))
            .map(|((_, a), b)| {
                matches!((a, b), (Source::Orig(g), Some((_, Source::Mask(h)))) if g == h)
            })
            .collect();
        let shard_of = layout(&sizes, &with_next, max);
        let n = shard_of.last().map_or(1, |&s| s + 1);
        let mut shards = vec![Vec::new(); n];
        for (t, s) in tensors.into_iter().zip(shard_of) {
            shards[s].push(t);
        }
        shards
    }

    fn write(
        &self,
        input: &CheckpointFiles,
        view: &ModelView<'_>,
        plan: &Plan,
        output: &Output,
        progress: &mut dyn Progress,
    ) -> Result<StreamReport, CheckpointError> {
        let entries = view.entries();
        let (gens, globals) = self.prepare(input, view, plan)?;
        let bytes: u64 = plan
            .files
            .iter()
            .flatten()
            .map(|(spec, _)| spec.byte_len())
            .sum();
        progress.start(plan.files.iter().map(Vec::len).sum(), bytes);
        let ties = globals
            .iter()
            .flatten()
            .map(|g| g.order)
            .rfind(|o| *o != TieOrder::NoTies)
            .unwrap_or_default();
        let mut reports: Vec<Option<TensorReport>> = vec![None; plan.groups.len()];
        // Each file is written on a thread of its own while its next
        // tensors are computed (`pipe`): the disk and the cores work at
        // once, in the memory of a few buffers.
        let mut write_file = |out: SafetensorsWriter<PendingFile>,
                              tensors: &[(TensorSpec, Source)],
                              progress: &mut dyn Progress|
         -> Result<SafetensorsWriter<PendingFile>, CheckpointError> {
            let source_of = |source: &Source| match *source {
                Source::Copy(i) => i,
                Source::Orig(g) | Source::Mask(g) | Source::Removed(g) => plan.groups[g].orig(),
            };
            pipe::write_on_thread(out, |sink| {
                for (j, (spec, source)) in tensors.iter().enumerate() {
                    // The next tensor's bytes are read from disk while this
                    // one is computed and written.
                    if let Some((_, next)) = tensors.get(j + 1) {
                        let i = source_of(next);
                        input.files()[view.shard_of(i)].prefetch(entries[i].data());
                    }
                    match *source {
                        Source::Copy(i) => sink.borrowed(spec.name(), entries[i].data())?,
                        Source::Orig(g) => {
                            sink.borrowed(spec.name(), entries[plan.groups[g].orig()].data())?
                        }
                        Source::Mask(g) | Source::Removed(g) => {
                            let group = &plan.groups[g];
                            let remove = matches!(source, Source::Removed(_));
                            let file = input.files()[view.shard_of(group.orig())].path();
                            let gen = gens.get(g);
                            let report = with_float!(group.dtype, T => self.write_pruned::<T>(
                                entries, plan, g, file, &globals, gen, sink, spec.name(), remove
                            ))?;
                            reports[g] = Some(report);
                        }
                    }
                    progress.wrote(spec.name(), spec.byte_len());
                }
                Ok(())
            })
        };
        let files = match output {
            Output::File(path) => {
                let like = input.files()[0].path();
                let metadata = view.metadata(0);
                let specs = plan.files[0].iter().map(|(s, _)| s.clone()).collect();
                progress.creating();
                let made = SafetensorsWriter::create_like(path, like, specs, metadata);
                progress.created(made.as_ref().ok().map(|w| w.get_ref().temp_path()));
                let written =
                    made.and_then(|out| write_file(out, &plan.files[0], progress)?.commit());
                progress.finished();
                written?;
                vec![PathBuf::from(path.file_name().unwrap_or_default())]
            }
            Output::Directory(path) | Output::Shards { dir: path, .. } => {
                let resharded = matches!(output, Output::Shards { .. });
                // Each file's name, the file whose permissions it takes,
                // and its header metadata. Re-sharded into one shard, the
                // file is `model.safetensors` with no index, as
                // transformers' save_pretrained writes a model that fits
                // in one shard.
                let n = plan.files.len();
                let layout: Vec<(String, &Path, Option<&Metadata>)> = (0..n)
                    .map(|s| {
                        if resharded {
                            let name = if n == 1 {
                                SINGLE_SHARD.to_string()
                            } else {
                                shard_name(s, n)
                            };
                            (name, input.files()[0].path(), view.metadata(0))
                        } else {
                            (
                                input.file_names()[s].clone(),
                                input.files()[s].path(),
                                view.metadata(s),
                            )
                        }
                    })
                    .collect();
                // The index, if one is written: its name and the file
                // whose permissions it takes.
                let index: Option<(PathBuf, &Path)> = if resharded {
                    (n > 1).then(|| {
                        (
                            PathBuf::from(SHARD_INDEX),
                            input.index().unwrap_or(input.files()[0].path()),
                        )
                    })
                } else {
                    // The input's index name, unless it is no safetensors
                    // index (PyTorch shards, converted).
                    input.index().map(|index| {
                        let name = index
                            .file_name()
                            .filter(|n| n.to_string_lossy().ends_with(INDEX_SUFFIX))
                            .map(PathBuf::from)
                            .unwrap_or_else(|| PathBuf::from(SHARD_INDEX));
                        (name, index)
                    })
                };
                // An other file of the input may not take a written name.
                for other in input.other_files() {
                    let name = other.file_name().expect("a listed file has a name");
                    let taken = layout.iter().any(|(n, _, _)| name == n.as_str())
                        || index.as_ref().is_some_and(|(n, _)| name == n.as_os_str());
                    if taken {
                        return Err(CheckpointError::BadTarget {
                            path: path.join(name),
                            problem: TargetProblem::NameClash {
                                other: other.clone(),
                            },
                        });
                    }
                }
                progress.creating();
                let made = PendingDir::create(path);
                progress.created(made.as_ref().ok().map(PendingDir::temp_path));
                let written = made.and_then(|dir| {
                    let mut names = Vec::new();
                    let mut weight_map = Map::new();
                    let mut total: u64 = 0;
                    for (tensors, (name, like, metadata)) in plan.files.iter().zip(&layout) {
                        let specs: Vec<TensorSpec> =
                            tensors.iter().map(|(s, _)| s.clone()).collect();
                        for spec in &specs {
                            total += spec.byte_len();
                            weight_map.insert(spec.name().to_string(), Value::String(name.clone()));
                        }
                        let out = SafetensorsWriter::create_like(
                            dir.temp_path().join(name),
                            like,
                            specs,
                            *metadata,
                        )?;
                        write_file(out, tensors, progress)?.commit()?;
                        names.push(PathBuf::from(name));
                    }
                    if let Some((name, like)) = &index {
                        let mut metadata = input.index_metadata();
                        metadata.insert("total_size".into(), Value::from(total));
                        let doc =
                            serde_json::json!({ "metadata": metadata, "weight_map": weight_map });
                        let mut text = serde_json::to_vec_pretty(&doc)
                            .expect("a JSON value of strings and numbers serializes");
                        text.push(b'\n');
                        dir.write_file(name, &text, like)?;
                        names.push(name.clone());
                    }
                    for other in input.other_files() {
                        let name =
                            PathBuf::from(other.file_name().expect("a listed file has a name"));
                        dir.copy_file(other, &name)?;
                    }
                    dir.commit()?;
                    Ok(names)
                });
                progress.finished();
                written?
            }
        };
        Ok(StreamReport {
            tensors: reports.into_iter().flatten().collect(),
            copied: plan.copied,
            written: plan.files.iter().map(Vec::len).sum(),
            files,
            other_files: match output {
                Output::File(_) => 0,
                Output::Directory(_) | Output::Shards { .. } => input.other_files().len(),
            },
            ties,
        })
    }

    /// The generators of the methods on PyTorch's stream, and each global
    /// step's cut, over what the steps before it leave.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        input: &CheckpointFiles,
        view: &ModelView<'_>,
        plan: &Plan,
    ) -> Result<(Vec<TorchGenerator>, Vec<Option<Global>>), CheckpointError> {
        let entries = view.entries();
        let origin = input.origin();
        // The groups in the order their outputs are written.
        let order: Vec<usize> = plan
            .files
            .iter()
            .flatten()
            .filter_map(|(_, source)| match *source {
                Source::Mask(g) | Source::Removed(g) => Some(g),
                _ => None,
            })
            .collect();
        let gens = self.torch_generators(entries, input, view, &plan.groups)?;
        // Each global step's cut, over what the steps before it leave.
        let mut globals: Vec<Option<Global>> = Vec::with_capacity(self.stages.len());
        for (s, stage) in self.stages.iter().enumerate() {
            let members = &plan.members[s];
            let global = match stage.method {
                StreamMethod::Global if members.contains(&true) => {
                    let order: Vec<usize> = order.iter().copied().filter(|&g| members[g]).collect();
                    let prior = |g: usize| -> Result<Option<Vec<bool>>, CheckpointError> {
                        let group = &plan.groups[g];
                        if !plan.members[..s].iter().any(|m| m[g]) {
                            // No step before this one prunes it: its mask is
                            // the file's, read without loading the values.
                            return Ok(match group.target {
                                Target::Plain(_) => None,
                                Target::Pair { mask, .. } => Some(kept_of(&entries[mask])),
                            });
                        }
                        let file = input.files()[view.shard_of(group.orig())].path();
                        with_float!(group.dtype, T => {
                            let (single, _, _) =
                                self.state::<T>(entries, plan, g, file, s, &globals, gens.get(g))?;
                            Ok(single.mask_bools())
                        })
                    };
                    Some(Global::compute(
                        entries,
                        &plan.groups,
                        members,
                        &order,
                        stage.amount,
                        self.ties,
                        origin,
                        &prior,
                        &|i| input.files()[view.shard_of(i)].prefetch(entries[i].data()),
                        self.stages.len() > 1,
                    )?)
                }
                _ => None,
            };
            globals.push(global);
        }
        Ok((gens, globals))
    }

    /// For the methods on PyTorch's stream, the generator each group's
    /// pruning starts from: `torch.manual_seed(seed)`, then each group's
    /// pruning in the order of their names, run once here to advance the
    /// stream (the groups are written in another order). Empty otherwise.
    fn torch_generators(
        &self,
        entries: &[TensorEntry<'_>],
        input: &CheckpointFiles,
        view: &ModelView<'_>,
        groups: &[Group],
    ) -> Result<Vec<TorchGenerator>, CheckpointError> {
        let stage = match self.stages.as_slice() {
            [stage] => stage,
            _ => return Ok(Vec::new()),
        };
        let seed = match stage.method {
            StreamMethod::TorchRandomUnstructured { seed }
            | StreamMethod::TorchRandomStructured { seed, .. } => seed,
            _ => return Ok(Vec::new()),
        };
        let gen = TorchGenerator::manual_seed(seed);
        let mut gens = Vec::with_capacity(groups.len());
        for group in groups {
            gens.push(gen.snapshot());
            let file = input.files()[view.shard_of(group.orig())].path();
            with_float!(group.dtype, T => {
                let (mut single, _) = single_of::<T>(entries, group, file)?;
                let amount = stage.amount_of(&group.name);
                self.prune_single(&mut single, stage, group, amount, Some(&gen))
                    .map_err(pruning(file, &group.name))?;
            });
        }
        Ok(gens)
    }

    /// The activation norms of the weight at `path`
    /// ([`PruneErrorKind::MissingActivationNorms`] if there are none).
    fn norms_of(&self, path: &str) -> Result<&crate::wanda::ActivationNorms, PruneError> {
        self.act_norms
            .get(path)
            .ok_or_else(|| PruneError::new(path, PruneErrorKind::MissingActivationNorms))
    }

    /// Prunes the one tensor of `single` by the per-tensor method.
    fn prune_single<T: CheckpointFloat>(
        &self,
        single: &mut Single<T>,
        stage: &Stage<'_>,
        group: &Group,
        amount: Amount,
        gen: Option<&TorchGenerator>,
    ) -> Result<(), PruneError> {
        let path = group.name.as_str();
        let gen = || gen.expect("torch_generators made one per group");
        match stage.method {
            StreamMethod::L1Unstructured => prune::l1_unstructured(single, path, amount, None),
            StreamMethod::LnStructured { norm, dim } => {
                prune::ln_structured(single, path, amount, norm, dim, None)
            }
            StreamMethod::RandomUnstructured { seed } => {
                RandomUnstructured::new(amount, seed_for(seed, &group.name))
                    .and_then(|m| prune::apply(single, path, &m, None))
            }
            StreamMethod::RandomStructured { dim, seed } => {
                RandomStructured::new(amount, dim, seed_for(seed, &group.name))
                    .and_then(|m| prune::apply(single, path, &m, None))
            }
            StreamMethod::TorchRandomUnstructured { .. } => {
                RandomUnstructured::with_torch_generator(amount, gen())
                    .and_then(|m| prune::apply(single, path, &m, None))
            }
            StreamMethod::TorchRandomStructured { dim, .. } => {
                RandomStructured::with_torch_generator(amount, dim, gen())
                    .and_then(|m| prune::apply(single, path, &m, None))
            }
            StreamMethod::NmStructured { n, m, dim } => {
                prune::nm_structured(single, path, n, m, dim, None)
            }
            StreamMethod::BlockSparsity {
                block,
                zeros_per_block,
                norm,
            } => {
                let level = match amount {
                    Amount::Fraction(f) => f,
                    Amount::Count(c) => c as f64,
                };
                BlockSparsity::new(level, block)
                    .and_then(|b| {
                        b.with_zeros_per_block(zeros_per_block.unwrap_or(block.0 * block.1))
                    })
                    .map(|b| b.with_norm(norm))
                    .and_then(|b| prune::block_sparsity(single, path, &b, None))
            }
            StreamMethod::Wanda => {
                let norms = self.norms_of(path)?;
                crate::wanda::prune(single, path, norms, amount)
            }
            StreamMethod::WandaNm { n, m } => {
                let norms = self.norms_of(path)?;
                crate::wanda::prune_nm(single, path, norms, n, m)
            }
            StreamMethod::Global => unreachable!("global pruning has its masks computed"),
        }
    }

    /// Group `g`'s one-tensor module after the steps before `upto` (each
    /// that selects it, in order; a global step's mask from its cut), how
    /// many entries it had pruned before them, and how many after each.
    #[allow(clippy::too_many_arguments)]
    fn state<T: CheckpointFloat>(
        &self,
        entries: &[TensorEntry<'_>],
        plan: &Plan,
        g: usize,
        file: &Path,
        upto: usize,
        globals: &[Option<Global>],
        gen: Option<&TorchGenerator>,
    ) -> Result<(Single<T>, usize, Vec<usize>), CheckpointError> {
        let group = &plan.groups[g];
        let (mut single, before) = single_of::<T>(entries, group, file)?;
        let err = pruning(file, &group.name);
        let numel: usize = group.shape.iter().product();
        let mut afters = Vec::with_capacity(upto);
        for (s, stage) in self.stages[..upto].iter().enumerate() {
            if plan.members[s][g] {
                match stage.method {
                    StreamMethod::Global => {
                        let global = globals[s]
                            .as_ref()
                            .expect("a global step's cut is computed before it is used");
                        let prior = single.mask_bools();
                        let mask =
                            global.mask::<T>(entries, group, g, prior.as_deref(), &plan.groups)?;
                        if let Some(cap) = self.cap {
                            let pruned = zeros(&mask);
                            if pruned > cap_limit(cap, numel) {
                                return Err(CheckpointError::SparsityCap {
                                    path: file.to_path_buf(),
                                    tensor: group.name.clone(),
                                    step: s,
                                    pruned,
                                    numel,
                                    cap,
                                });
                            }
                        }
                        prune::custom_from_mask(&mut single, &group.name, mask.view())
                            .map_err(&err)?;
                    }
                    _ => self.prune_capped(&mut single, stage, group, numel, gen, file)?,
                }
            }
            afters.push(single.pruned().unwrap_or(before));
        }
        Ok((single, before, afters))
    }

    /// Prunes `single` by the per-tensor `stage`; with a cap, by the
    /// largest count (of entries or of channels) that keeps the tensor
    /// within it when the stage's own amount would not.
    fn prune_capped<T: CheckpointFloat>(
        &self,
        single: &mut Single<T>,
        stage: &Stage<'_>,
        group: &Group,
        numel: usize,
        gen: Option<&TorchGenerator>,
        file: &Path,
    ) -> Result<(), CheckpointError> {
        let err = pruning(file, &group.name);
        let amount = stage.amount_of(&group.name);
        let Some(cap) = self.cap else {
            return self
                .prune_single(single, stage, group, amount, gen)
                .map_err(&err);
        };
        let limit = cap_limit(cap, numel);
        let mut trial = single.clone();
        self.prune_single(&mut trial, stage, group, amount, gen)
            .map_err(&err)?;
        if trial.pruned().unwrap_or(0) <= limit {
            *single = trial;
            return Ok(());
        }
        if matches!(
            stage.method,
            StreamMethod::NmStructured { .. }
                | StreamMethod::BlockSparsity { .. }
                | StreamMethod::WandaNm { .. }
        ) {
            // No amount to bisect on: the step does all it does or
            // nothing, and nothing is the most that fits the cap.
            if single.pruned().is_none() {
                prune::identity(single, &group.name).map_err(&err)?;
            }
            return Ok(());
        }
        // Pruning more units never prunes fewer entries: bisect on the
        // count. `lo` always fits (0 prunes nothing new), `hi` never does.
        let units = match stage.method {
            StreamMethod::LnStructured { dim, .. } | StreamMethod::RandomStructured { dim, .. } => {
                dim.resolve(group.shape.len())
                    .map(|d| group.shape[d])
                    .unwrap_or(0)
            }
            _ => numel,
        };
        let (mut lo, mut hi) = (0usize, units + 1);
        let mut best: Option<Single<T>> = None;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mut t = single.clone();
            let fits = self
                .prune_single(&mut t, stage, group, Amount::Count(mid), gen)
                .is_ok()
                && t.pruned().unwrap_or(0) <= limit;
            if fits {
                lo = mid;
                best = Some(t);
            } else {
                hi = mid;
            }
        }
        match best {
            Some(t) => *single = t,
            None => self
                .prune_single(single, stage, group, Amount::Count(0), gen)
                .map_err(&err)?,
        }
        Ok(())
    }

    /// Computes group `g`'s mask (or, with `remove`, its pruned values) in
    /// its own dtype `T`, after every step, and writes it as the next
    /// output tensor (a mask in the dtype of the mask it replaces: each
    /// tensor of a pair keeps its dtype).
    #[allow(clippy::too_many_arguments)]
    fn write_pruned<'a, T: CheckpointFloat>(
        &self,
        entries: &[TensorEntry<'_>],
        plan: &Plan,
        g: usize,
        file: &Path,
        globals: &[Option<Global>],
        gen: Option<&TorchGenerator>,
        out: &mut Sink<'a>,
        name: &'a str,
        remove: bool,
    ) -> Result<TensorReport, CheckpointError> {
        let group = &plan.groups[g];
        if let ([stage], None) = (self.stages.as_slice(), self.cap) {
            if matches!(stage.method, StreamMethod::Global) && plan.members[0][g] {
                let global = globals[0]
                    .as_ref()
                    .expect("a global step's cut is computed before it is used");
                return Self::write_global(entries, plan, g, global, out, name, remove);
            }
        }
        let err = pruning(file, &group.name);
        let (mut single, before, _) =
            self.state::<T>(entries, plan, g, file, self.stages.len(), globals, gen)?;
        if single.mask_bools().is_none() {
            // No step pruned it (an amount of 0 on a plain tensor still
            // makes a mask; this is for completeness): an all-ones mask.
            prune::identity(&mut single, &group.name).map_err(&err)?;
        }
        let mask = single.mask().clone();
        let removed = if remove {
            prune::remove(&mut single, &group.name).map_err(&err)?;
            let local = single.local.clone();
            Some(
                single
                    .store
                    .parameter(&local)
                    .expect("remove leaves the tensor as a parameter")
                    .clone(),
            )
        } else {
            None
        };
        // One pass over the mask written: its pruned entries and channels.
        let (numel, (after, channels_pruned)) = (mask.len(), crate::report::tally_zeros(&mask));
        match removed {
            Some(w) => out.array(name, w.view())?,
            None => with_float!(group.mask_dtype, M => {
                let mask = mask.mapv(|m| M::from_f64(m.as_f64()));
                out.array(name, mask.view())?
            }),
        }
        Ok(TensorReport {
            name: group.name.clone(),
            dtype: group.dtype,
            shape: group.shape.clone(),
            numel,
            before,
            after,
            channels_pruned,
            mask_dtype: (!remove).then_some(group.mask_dtype),
        })
    }
}

impl FilePruner<'_> {
    /// [`FilePruner::write_pruned`] for a run of one global step: the mask
    /// from the file's bytes, and with `remove` the values `X_orig * mask`
    /// multiplied in their dtype as [`prune::remove`] multiplies them, entry by
    /// entry, without building the one-tensor module (the same bytes).
    fn write_global<'a>(
        entries: &[TensorEntry<'_>],
        plan: &Plan,
        g: usize,
        global: &Global,
        out: &mut Sink<'a>,
        name: &'a str,
        remove: bool,
    ) -> Result<TensorReport, CheckpointError> {
        let group = &plan.groups[g];
        let prior = file_prior(entries, group);
        let before = prior
            .as_ref()
            .map_or(0, |p| p.iter().filter(|k| !**k).count());
        let out_dtype = if remove {
            group.dtype
        } else {
            group.mask_dtype
        };
        let (after, channels_pruned) = if global.exact.is_none() {
            // Piece by piece, straight from the file's bytes.
            global.write_group(
                entries,
                group,
                g,
                prior.as_deref(),
                before,
                &plan.groups,
                remove,
                out,
                name,
            )?
        } else {
            let keep = global.mask_flags(entries, group, g, prior.as_deref(), &plan.groups)?;
            // One pass over the mask: its pruned entries and channels.
            let tally = crate::report::tally_slice(&group.shape, &keep, |k| *k);
            let entry = &entries[group.orig()];
            let mut bytes = vec![0u8; keep.len() * (out_dtype.bitsize() / 8)];
            if remove {
                product_bytes(out_dtype, entry.data(), &keep, &mut bytes);
            } else {
                mask_bytes(out_dtype, &keep, &mut bytes);
            }
            out.copy(name, &bytes)?;
            tally
        };
        Ok(TensorReport {
            name: group.name.clone(),
            dtype: group.dtype,
            shape: group.shape.clone(),
            numel: entries[group.orig()].len(),
            before,
            after,
            channels_pruned,
            mask_dtype: (!remove).then_some(group.mask_dtype),
        })
    }
}

/// A tensor to prune: a plain one, or one PyTorch pruned already.
#[derive(Debug, Clone)]
enum Target {
    /// Entry index of a plain tensor `X`.
    Plain(usize),
    /// Entry indices of `X_orig` and `X_mask`.
    Pair { orig: usize, mask: usize },
}

/// One tensor to prune: its name (`X`), dtype, shape and where it is.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    /// The dtype of the values (`X`, or `X_orig`).
    dtype: Dtype,
    /// The dtype of the mask written: `X_mask`'s where there is one (a
    /// pair may mix float dtypes, and each tensor keeps its own).
    mask_dtype: Dtype,
    shape: Vec<usize>,
    target: Target,
}

impl Group {
    /// The entry holding the unpruned values (`X`, or `X_orig`).
    fn orig(&self) -> usize {
        match self.target {
            Target::Plain(i) | Target::Pair { orig: i, .. } => i,
        }
    }
}

/// Where an output tensor's bytes come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// An input tensor, byte for byte.
    Copy(usize),
    /// The unpruned values of group `g` (`X_orig`), byte for byte.
    Orig(usize),
    /// The mask of group `g`, computed.
    Mask(usize),
    /// `X_orig * X_mask` of group `g`, computed (`remove`).
    Removed(usize),
}

/// The output files: each one's tensors in order, with their sources.
#[derive(Debug)]
struct Plan {
    groups: Vec<Group>,
    /// For each step, whether it prunes each group.
    members: Vec<Vec<bool>>,
    files: Vec<Vec<(TensorSpec, Source)>>,
    /// Input tensors copied unchanged.
    copied: usize,
}

/// Pruning errors of the tensor `tensor` of the file `path`.
fn pruning<'a>(path: &'a Path, tensor: &'a str) -> impl Fn(PruneError) -> CheckpointError + 'a {
    move |source| CheckpointError::Prune {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        source: Box::new(source),
    }
}

/// A module holding one tensor of the file under the tensor's own name,
/// so that what the pruning calls say names it as the file does.
///
/// The name may be anything a header holds (`a..b`, a trailing dot, no
/// dot at all): the pruning calls split a path at its last dot into a
/// module path and a local name, and this module answers to exactly that
/// module path with its one store, instead of walking children.
#[derive(Debug, Clone)]
struct Single<T: PruneFloat> {
    module: String,
    local: String,
    store: TensorStore<T>,
}

impl<T: PruneFloat> Single<T> {
    fn new(name: &str) -> Self {
        // As the pruning calls split a path.
        let (module, local) = name.rsplit_once('.').unwrap_or(("", name));
        Single {
            module: module.to_string(),
            local: local.to_string(),
            store: TensorStore::new(),
        }
    }

    fn mask(&self) -> &ArrayD<T> {
        self.store
            .buffer(&format!("{}_mask", self.local))
            .expect("a pruned tensor has its mask")
    }

    /// Its mask as flags (kept), if it is pruned.
    fn mask_bools(&self) -> Option<Vec<bool>> {
        self.store
            .buffer(&format!("{}_mask", self.local))
            .map(|m| m.iter().map(|&x| x == T::one()).collect())
    }

    /// How many entries its mask prunes, if it is pruned.
    fn pruned(&self) -> Option<usize> {
        self.store
            .buffer(&format!("{}_mask", self.local))
            .map(zeros)
    }
}

impl<T: PruneFloat> Module<T> for Single<T> {
    fn store(&self) -> &TensorStore<T> {
        &self.store
    }

    fn store_mut(&mut self) -> &mut TensorStore<T> {
        &mut self.store
    }

    fn store_at(&self, module_path: &str) -> Option<&TensorStore<T>> {
        (module_path == self.module).then_some(&self.store)
    }

    fn store_at_mut(&mut self, module_path: &str) -> Option<&mut TensorStore<T>> {
        (module_path == self.module).then_some(&mut self.store)
    }
}

/// The most entries of `numel` a cap of `cap` lets be pruned.
fn cap_limit(cap: f64, numel: usize) -> usize {
    (cap * numel as f64).floor() as usize
}

fn zeros<T: PruneFloat>(a: &ArrayD<T>) -> usize {
    a.iter().filter(|x| **x == T::zero()).count()
}

/// A seed for one tensor: `seed` mixed with the tensor's name, so a
/// tensor's mask does not depend on which others are selected.
fn seed_for(seed: u64, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64
    let mut z = (seed ^ h).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A tensor of the input as `U`, whatever float dtype it has (exact: every
/// float dtype widens to `f64` exactly, and masks are 0 and 1).
fn load_as<U: CheckpointFloat>(entry: &TensorEntry<'_>) -> Result<ArrayD<U>, CheckpointError> {
    if entry.dtype() == U::DTYPE {
        return entry.to_array::<U>();
    }
    with_float!(entry.dtype(), T => {
        let a = entry.to_array::<T>()?;
        Ok(a.mapv(|x| U::from_f64(x.as_f64())))
    })
}

/// A one-tensor module holding `group` under its name (pruned if it was),
/// and how many entries its mask had pruned.
fn single_of<U: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
    path: &Path,
) -> Result<(Single<U>, usize), CheckpointError> {
    let mut single = Single::<U>::new(&group.name);
    let orig = load_as::<U>(&entries[group.orig()])?;
    let err = pruning(path, &group.name);
    let local = single.local.clone();
    let before = match group.target {
        Target::Plain(_) => {
            single.store.add_parameter(&local, orig).map_err(&err)?;
            0
        }
        Target::Pair { mask, .. } => {
            // The view checked the pair: same shape, only 0 and 1.
            let mask = load_as::<U>(&entries[mask])?;
            let before = zeros(&mask);
            single
                .store
                .restore_pruned(&local, orig, mask)
                .map_err(&err)?;
            before
        }
    };
    Ok((single, before))
}

/// The flags (kept: the entry is 1) of a mask tensor of the input, which
/// the view checked holds only 0 and 1.
fn kept_of(entry: &TensorEntry<'_>) -> Vec<bool> {
    with_float!(entry.dtype(), M => entry
        .data()
        .chunks_exact(M::SIZE)
        .map(|b| M::read_le(b) == M::one())
        .collect())
}

/// A group's mask in the file, as flags (`None`: the file has it plain).
fn file_prior(entries: &[TensorEntry<'_>], group: &Group) -> Option<Vec<bool>> {
    match group.target {
        Target::Plain(_) => None,
        Target::Pair { mask, .. } => Some(kept_of(&entries[mask])),
    }
}

/// The dtype PyTorch's `torch.cat` gives tensors of these float dtypes (as
/// `global_unstructured` concatenates them): their own where they agree,
/// `F64` if one is `F64`, else `F32` (`BF16` with `F16`, or either with
/// `F32`). Every one of them widens to it exactly.
fn promoted(dtypes: impl Iterator<Item = Dtype>) -> Dtype {
    let mut out: Option<Dtype> = None;
    for d in dtypes {
        out = Some(match out {
            None => d,
            Some(o) if o == d => o,
            Some(o) if o == Dtype::F64 || d == Dtype::F64 => Dtype::F64,
            Some(_) => Dtype::F32,
        });
    }
    out.unwrap_or(Dtype::F64)
}

/// Entries decoded at a time from a file's bytes (and fed at a time to a
/// selection, which pays for a whole histogram of the digit per feed).
const BATCH: usize = 1 << 20;

/// Entries of a tensor a thread works on at a time when its mask is made.
const BLOCK: usize = 1 << 18;

/// Replaces `buf` with entries `start..end` of `entry` as `U` (exact).
fn decode_range<U: CheckpointFloat>(
    entry: &TensorEntry<'_>,
    start: usize,
    end: usize,
    buf: &mut Vec<U>,
) {
    with_float!(entry.dtype(), T => {
        let bytes = &entry.data()[start * T::SIZE..end * T::SIZE];
        buf.clear();
        let pieces = bytes.chunks_exact(T::SIZE);
        if T::DTYPE == U::DTYPE {
            buf.extend(pieces.map(U::read_le));
        } else if T::DTYPE == Dtype::BF16 && U::DTYPE == Dtype::F32 {
            // A bf16 is the high half of the f32 of the same value.
            buf.extend(pieces.map(|b| U::read_le(&[0, 0, b[0], b[1]])));
        } else {
            buf.extend(pieces.map(|b| U::from_f64(T::read_le(b).as_f64())));
        }
    })
}

/// Entries from which a tensor's digit is counted on its own, from the
/// file's bytes ([`digit_counts`]), rather than fed in a batch.
const DIRECT_FROM: usize = 1 << 18;

/// Entries decoded at a time by one thread, into a buffer that stays in
/// its cache.
const SUB: usize = 2048;

/// The histogram of one radix digit (`(shift, width)` of the keys' bits)
/// of the magnitude keys of every entry of `entry` as `U` whose higher
/// bits equal `prefix` (every entry on the first pass): what
/// [`StreamingSelect::feed`] counts, counted from the file's bytes in
/// parts, one thread each.
fn digit_counts<U: CheckpointFloat>(
    entry: &TensorEntry<'_>,
    (shift, width): (u32, u32),
    prefix: Option<u64>,
) -> Vec<usize> {
    let n = entry.len();
    let buckets = 1usize << width;
    // Parts of fewer than 2^32 entries count in `u32`.
    let parts = if n >= 1 << 18 {
        (4 * par::threads()).max(n.div_ceil(1 << 31))
    } else {
        1
    };
    let part = n.div_ceil(parts).max(1);
    let counted = par::map_ordered(n.div_ceil(part), n, |p| {
        let mut hist = vec![0u32; buckets];
        let mut buf: Vec<U> = Vec::with_capacity(SUB);
        let end = ((p + 1) * part).min(n);
        let mask = (buckets - 1) as u64;
        for start in (p * part..end).step_by(SUB) {
            decode_range::<U>(entry, start, (start + SUB).min(end), &mut buf);
            match prefix {
                None => {
                    for x in &buf {
                        hist[((x.magnitude_key() >> shift) & mask) as usize] += 1;
                    }
                }
                Some(want) => {
                    for x in &buf {
                        let key = x.magnitude_key();
                        if key >> (shift + width) == want {
                            hist[((key >> shift) & mask) as usize] += 1;
                        }
                    }
                }
            }
        }
        hist
    });
    let mut total = vec![0usize; buckets];
    for hist in counted {
        total
            .iter_mut()
            .zip(&hist)
            .for_each(|(t, &c)| *t += c as usize);
    }
    total
}

/// Writes into `out` the bytes of `X * mask` for the elements of `input`
/// (of dtype `dtype`, little-endian) and their flags `keep`, multiplied
/// in the dtype as [`prune::remove`] multiplies them.
fn product_bytes(dtype: Dtype, input: &[u8], keep: &[bool], out: &mut [u8]) {
    with_float!(dtype, T => {
        match T::SIZE {
            2 => product_words::<T, 2>(input, keep, out, |b| u64::from(u16::from_le_bytes(b)), |w| (w as u16).to_le_bytes()),
            4 => product_words::<T, 4>(input, keep, out, |b| u64::from(u32::from_le_bytes(b)), |w| (w as u32).to_le_bytes()),
            8 => product_words::<T, 8>(input, keep, out, u64::from_le_bytes, u64::to_le_bytes),
            _ => unreachable!("float dtypes take 2, 4 or 8 bytes"),
        }
    })
}

/// [`product_bytes`] for elements of `N` bytes, read and written as words
/// by `get` and `put`.
fn product_words<T: CheckpointFloat, const N: usize>(
    input: &[u8],
    keep: &[bool],
    out: &mut [u8],
    get: impl Fn([u8; N]) -> u64,
    put: impl Fn(u64) -> [u8; N],
) {
    let bits = |x: T| {
        let mut b = Vec::with_capacity(N);
        x.write_le(&mut b);
        get(b.try_into().expect("an element takes N bytes"))
    };
    // The exponent's bits (those of infinity) and the sign bit.
    let exponent = bits(T::infinity());
    let sign = 1u64 << (8 * N - 1);
    let mut special = false;
    for ((i, o), &k) in input.chunks_exact(N).zip(out.chunks_exact_mut(N)).zip(keep) {
        let w = get(i.try_into().expect("chunks of N bytes"));
        // A finite x times 1 is x, times 0 a zero of x's sign: its bits
        // masked, without a branch on the random `k`.
        special |= w & exponent == exponent;
        let all = 0u64.wrapping_sub(u64::from(k));
        o.copy_from_slice(&put(w & (all | sign)));
    }
    if special {
        // A NaN or an infinity: multiplied, as PyTorch does (a pruned one
        // gives NaN; NaNs come back quiet).
        let mut product = Vec::with_capacity(N);
        for ((i, o), &k) in input.chunks_exact(N).zip(out.chunks_exact_mut(N)).zip(keep) {
            let x = T::read_le(i);
            if !x.is_finite() {
                product.clear();
                (x * if k { T::one() } else { T::zero() }).write_le(&mut product);
                o.copy_from_slice(&product);
            }
        }
    }
}

/// Writes into `out` the mask of flags `keep` in dtype `dtype` (1 kept, 0
/// pruned), little-endian.
fn mask_bytes(dtype: Dtype, keep: &[bool], out: &mut [u8]) {
    with_float!(dtype, M => {
        let (mut one, mut zero) = (Vec::new(), Vec::new());
        M::one().write_le(&mut one);
        M::zero().write_le(&mut zero);
        for (o, &k) in out.chunks_exact_mut(M::SIZE).zip(keep) {
            // Without a branch on the random `k`.
            let all = 0u8.wrapping_sub(u8::from(k));
            for ((b, &y), &n) in o.iter_mut().zip(&one).zip(&zero) {
                *b = n ^ ((y ^ n) & all);
            }
        }
    })
}

/// Calls `f` with the values of `entry` as `U`, a piece at a time, in the
/// file's (row-major) order, with the index of each piece's first entry.
fn for_chunks<U: CheckpointFloat>(
    entry: &TensorEntry<'_>,
    mut f: impl FnMut(usize, &[U]),
) -> Result<(), CheckpointError> {
    let n = entry.len();
    let mut buf: Vec<U> = Vec::with_capacity(BATCH.min(n));
    for start in (0..n).step_by(BATCH) {
        decode_range::<U>(entry, start, (start + BATCH).min(n), &mut buf);
        f(start, &buf);
    }
    Ok(())
}

/// Calls `f` with the unpruned values of `entry` as `U` (all of them where
/// `prior` is `None`), a piece at a time, in order.
fn for_open_chunks<U: CheckpointFloat>(
    entry: &TensorEntry<'_>,
    prior: Option<&[bool]>,
    mut f: impl FnMut(&[U]),
) -> Result<(), CheckpointError> {
    let mut open = Vec::new();
    for_chunks::<U>(entry, |start, values| match prior {
        None => f(values),
        Some(p) => {
            open.clear();
            open.extend(
                values
                    .iter()
                    .zip(&p[start..start + values.len()])
                    .filter(|(_, &k)| k)
                    .map(|(&v, _)| v),
            );
            f(&open);
        }
    })
}

/// Under the write order, each group's share of the tied entries at a
/// global cut, counted as the groups' masks are first computed.
#[derive(Debug)]
struct Quotas {
    /// Per group: how many tied entries it prunes, once known.
    known: Vec<Option<usize>>,
    /// The groups in the write order.
    order: Vec<usize>,
    /// Tied entries still to prune after the groups known so far.
    ties_left: usize,
}

/// The loader of a group's mask before a global step (`None`: not pruned).
type Prior<'a> = dyn Fn(usize) -> Result<Option<Vec<bool>>, CheckpointError> + 'a;

/// A group's values as `U`, and its mask before the step as `U`.
#[allow(clippy::type_complexity)]
fn values_with<U: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
    prior: Option<&[bool]>,
) -> Result<(ArrayD<U>, Option<Vec<U>>), CheckpointError> {
    let values = load_as::<U>(&entries[group.orig()])?
        .as_standard_layout()
        .into_owned();
    let mask = prior.map(|p| {
        p.iter()
            .map(|&k| if k { U::one() } else { U::zero() })
            .collect()
    });
    Ok((values, mask))
}

/// The entries of an array made standard layout by `values_with`.
fn standard<U>(a: &ArrayD<U>) -> &[U] {
    a.as_slice()
        .expect("values_with returns arrays in standard layout")
}

/// Global pruning over the selected tensors, streamed: a first pass counts
/// the unpruned entries, then one pass per radix digit finds the cut
/// (`StreamingSelect`), each holding one tensor at a time; the masks are
/// computed when the tensors are written. Magnitudes are compared in the
/// groups' common dtype, or in `f64` when they differ (exact for every
/// float dtype). Ties at the cut go in PyTorch's order, or in the order the
/// tensors are written: each group's share of the tied entries to prune is
/// counted beforehand, so a group's mask depends on nothing but the group
/// (and can be computed again, in any order).
struct Global {
    dtype: Dtype,
    select: StreamingSelect,
    /// Under the write order: how many tied entries each group prunes.
    quotas: RefCell<Quotas>,
    /// How ties were broken.
    order: TieOrder,
    /// Under PyTorch's order: whether each unpruned entry stays, the
    /// groups' unpruned entries concatenated in the groups' order (by
    /// name), and where each group's start.
    exact: Option<(Vec<bool>, Vec<usize>)>,
}

impl Global {
    #[allow(clippy::too_many_arguments)]
    fn compute(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        members: &[bool],
        order: &[usize],
        amount: Amount,
        ties: StreamTies,
        origin: &Path,
        prior: &Prior<'_>,
        prefetch: &dyn Fn(usize),
        eager: bool,
    ) -> Result<Self, CheckpointError> {
        let dtype = promoted(order.iter().map(|&g| groups[g].dtype));
        with_float!(dtype, U => Self::compute_as::<U>(entries, groups, members, order, amount, ties, origin, dtype, prior, prefetch, eager))
    }

    #[allow(clippy::too_many_arguments)]
    fn compute_as<U: CheckpointFloat>(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        members: &[bool],
        order: &[usize],
        amount: Amount,
        ties: StreamTies,
        origin: &Path,
        dtype: Dtype,
        prior: &Prior<'_>,
        prefetch: &dyn Fn(usize),
        eager: bool,
    ) -> Result<Self, CheckpointError> {
        let mut open = 0;
        for &g in order {
            let numel = entries[groups[g].orig()].len();
            let before = prior(g)?.map_or(0, |p| p.iter().filter(|k| !**k).count());
            open += numel - before;
        }
        let k = amount
            .count_of(open)
            .map_err(|_| CheckpointError::GlobalAmount {
                path: origin.to_path_buf(),
                amount,
                available: open,
                tensors: order.len(),
            })?;
        let mut select = StreamingSelect::new::<U>(k);
        // The unpruned entries are fed in batches, decoded from the file's
        // bytes a piece at a time: no tensor is held whole, and each feed
        // (which pays for a whole histogram of the digit) counts many
        // entries even where tensors are small. Pruned entries are no
        // candidates and are left out. (Same order, so the same ties.)
        let mut batch = Vec::<U>::with_capacity(BATCH);
        // bf16 values ranked as f32 have keys whose low 16 bits are 0 (but
        // NaN's): after the first pass has fixed the high 16 bits, what they
        // add to the second pass's histogram is known from the first, and
        // they need not be read again. Counted here: in the first pass,
        // their non-NaN unpruned entries by high 16 bits.
        let narrow_groups = U::DTYPE == Dtype::F32
            && select.current_digit() == Some((16, 16))
            && order.iter().any(|&g| groups[g].dtype == Dtype::BF16);
        let mut narrow = vec![0usize; if narrow_groups { 1 << 16 } else { 0 }];
        while select.pending() {
            let skip_narrow = narrow_groups
                && select.current_digit() == Some((0, 16))
                && select.prefix().is_some_and(|p| p != 0xffff);
            if skip_narrow {
                let p = select.prefix().expect("checked above") as usize;
                select.add_to_bucket(0, narrow[p]);
            }
            // The groups the pass reads. The last pass that reads them
            // all goes from the last written to the first, so that the
            // first ones written are those read last, which the page cache
            // still holds when they are read again to be written (a model
            // larger than memory is then read from disk about once and a
            // half, not twice). The counts do not depend on the order.
            let left = select.passes_left();
            let backwards = (left % 2 == 1) != narrow_groups;
            let reads: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&g| !(skip_narrow && narrow_groups && groups[g].dtype == Dtype::BF16))
                .collect();
            let reads: Vec<usize> = if backwards {
                reads.into_iter().rev().collect()
            } else {
                reads
            };
            for (j, &g) in reads.iter().enumerate() {
                let group = &groups[g];
                let is_narrow = narrow_groups && group.dtype == Dtype::BF16;
                // The next tensor is read from disk while this one is counted.
                if let Some(&h) = reads.get(j + 1) {
                    prefetch(groups[h].orig());
                }
                let p = prior(g)?;
                let first_pass = select.current_digit() == Some((16, 16));
                if p.is_none() && entries[group.orig()].len() >= DIRECT_FROM {
                    // Every entry a candidate: the digit counted straight
                    // from the file's bytes, on every thread. (Small
                    // tensors go in batches: a histogram each would cost
                    // more than their entries.)
                    let digit = select.current_digit().expect("a pass is pending");
                    let counts = digit_counts::<U>(&entries[group.orig()], digit, select.prefix());
                    if is_narrow && first_pass {
                        // A bf16 value's f32 key has its low 16 bits 0 but
                        // for NaN, the one key whose high 16 bits are 0xffff.
                        for (n, &c) in narrow.iter_mut().zip(&counts).take(0xffff) {
                            *n += c;
                        }
                    }
                    select.add_histogram(&counts);
                    continue;
                }
                for_open_chunks::<U>(&entries[group.orig()], p.as_deref(), |open| {
                    if is_narrow && first_pass {
                        for x in open {
                            let key = x.magnitude_key();
                            if key & 0xffff == 0 {
                                narrow[(key >> 16) as usize] += 1;
                            }
                        }
                    }
                    batch.extend_from_slice(open);
                    if batch.len() >= BATCH {
                        select.feed(&batch, None);
                        batch.clear();
                    }
                })?;
            }
            if !batch.is_empty() {
                select.feed(&batch, None);
                batch.clear();
            }
            select.end_pass();
        }
        let ties_left = select.ties();
        let (tied, straddle) = (select.tied(), 0 < ties_left && ties_left < select.tied());
        // Values, the mask PyTorch's method builds and its default mask,
        // each in `U`, the flags kept, and the selection's own temporaries
        // (measured: 7.6 bytes an entry for bf16 in all; this bound is 10).
        let needed = open as u64 * (4 * U::SIZE as u64 + 2);
        let mut quotas = Quotas {
            known: vec![None; groups.len()],
            order: Vec::new(),
            ties_left: 0,
        };
        let (order_used, exact) = match ties {
            _ if !straddle => {
                // Every candidate at the cut goes, or none does.
                let quota = if ties_left == 0 { 0 } else { usize::MAX };
                for &g in order {
                    quotas.known[g] = Some(quota);
                }
                (TieOrder::NoTies, None)
            }
            StreamTies::Torch { max_bytes } if needed <= max_bytes => {
                let (keep, starts) =
                    Self::torch_order::<U>(entries, groups, members, k, origin, prior)?;
                (TieOrder::Torch, Some((keep, starts)))
            }
            _ => {
                // Each group's share of the ties is counted when its mask
                // is first computed, in the write order (`Global::mask`).
                quotas.ties_left = ties_left;
                quotas.order = order.to_vec();
                (
                    TieOrder::WriteOrder {
                        tied,
                        pruned: ties_left,
                        needed_bytes: needed,
                    },
                    None,
                )
            }
        };
        let global = Global {
            dtype,
            select,
            quotas: RefCell::new(quotas),
            order: order_used,
            exact,
        };
        if eager && global.exact.is_none() {
            // Later steps ask for these masks in their own orders: count
            // every group's share of the ties now, in the write order.
            for &g in order {
                if global.quotas.borrow().known[g].is_none() {
                    let p = prior(g)?;
                    global.mask_flags(entries, &groups[g], g, p.as_deref(), groups)?;
                }
            }
        }
        Ok(global)
    }

    /// Which unpruned entries stay, as PyTorch's `global_unstructured`
    /// chooses given the groups in their order (by name): its pruning
    /// container hands the L1 method the unpruned entries of all tensors,
    /// concatenated, and the method keeps all but the `k` smallest
    /// magnitudes in `topk`'s order (which [`L1Unstructured`] replays).
    /// Also where each group's entries start.
    fn torch_order<U: CheckpointFloat>(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        members: &[bool],
        k: usize,
        origin: &Path,
        prior: &Prior<'_>,
    ) -> Result<(Vec<bool>, Vec<usize>), CheckpointError> {
        let mut open = Vec::new();
        let mut starts = vec![0; groups.len()];
        for (g, group) in groups.iter().enumerate() {
            if !members[g] {
                continue;
            }
            starts[g] = open.len();
            let p = prior(g)?;
            let (values, mask) = values_with::<U>(entries, group, p.as_deref())?;
            match &mask {
                None => open.extend_from_slice(standard(&values)),
                Some(m) => open.extend(
                    standard(&values)
                        .iter()
                        .zip(m)
                        .filter(|(_, &m)| m == U::one())
                        .map(|(&v, _)| v),
                ),
            }
        }
        let n = open.len();
        let values =
            ArrayD::from_shape_vec(vec![n], open).expect("a vector of n entries has shape [n]");
        let ones = ArrayD::<U>::ones(vec![n]);
        let mask = L1Unstructured::new(Amount::Count(k))
            .and_then(|m| m.compute_mask(values.view(), ones.view()))
            .map_err(|source| CheckpointError::Prune {
                path: origin.to_path_buf(),
                tensor: "(all selected tensors)".into(),
                source: Box::new(source),
            })?;
        Ok((mask.iter().map(|&m| m == U::one()).collect(), starts))
    }

    /// Group `g`'s new mask, as `D`, given its mask before the step
    /// (`prior`, `None`: not pruned). Depends on nothing but the group:
    /// under the write order, its share of the ties is counted the first
    /// time (the groups before it in that order first, where they were not).
    fn mask<D: CheckpointFloat>(
        &self,
        entries: &[TensorEntry<'_>],
        group: &Group,
        g: usize,
        prior: Option<&[bool]>,
        groups: &[Group],
    ) -> Result<ArrayD<D>, CheckpointError> {
        let new = self.mask_flags(entries, group, g, prior, groups)?;
        let new: Vec<D> = new
            .into_iter()
            .map(|k| if k { D::one() } else { D::zero() })
            .collect();
        Ok(ArrayD::from_shape_vec(group.shape.clone(), new)
            .expect("a mask has one entry per value, and values have the group's shape"))
    }

    /// Group `g`'s share of the tied entries to prune where it is known
    /// already, and how many it may prune: that share, or what the groups
    /// before it in the write order leave (their shares counted first
    /// where they were not).
    fn quota(
        &self,
        entries: &[TensorEntry<'_>],
        g: usize,
        groups: &[Group],
    ) -> Result<(Option<usize>, usize), CheckpointError> {
        let known = self.quotas.borrow().known[g];
        let quota = match known {
            Some(q) => q,
            None => {
                // Count the shares of the groups written before it where
                // they were not. (Only a one-step run counts them lazily,
                // so their masks before it are the file's.)
                let order = self.quotas.borrow().order.clone();
                for &h in order.iter().take_while(|&&h| h != g) {
                    if self.quotas.borrow().known[h].is_none() {
                        let p = file_prior(entries, &groups[h]);
                        self.mask_flags(entries, &groups[h], h, p.as_deref(), groups)?;
                    }
                }
                self.quotas.borrow().ties_left
            }
        };
        Ok((known, quota))
    }

    /// Writes group `g`'s new mask (in `group.mask_dtype`), or with
    /// `remove` its values times that mask (in its own dtype), as tensor
    /// `name`, piece by piece from the file's bytes: each piece's entries
    /// decoded, their flags, and the bytes written, in blocks on every
    /// thread, while the pieces before it are written (`out`). The same
    /// flags as [`Global::mask_flags`] and the same bytes as the whole
    /// tensor made at once. Returns the mask's pruned entries and channels.
    #[allow(clippy::too_many_arguments)]
    fn write_group<'a>(
        &self,
        entries: &[TensorEntry<'_>],
        group: &Group,
        g: usize,
        prior: Option<&[bool]>,
        before: usize,
        groups: &[Group],
        remove: bool,
        out: &mut Sink<'a>,
        name: &'a str,
    ) -> Result<(usize, Vec<usize>), CheckpointError> {
        with_float!(self.dtype, U => self.write_group_as::<U>(entries, group, g, prior, before, groups, remove, out, name))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_group_as<'a, U: CheckpointFloat>(
        &self,
        entries: &[TensorEntry<'_>],
        group: &Group,
        g: usize,
        prior: Option<&[bool]>,
        before: usize,
        groups: &[Group],
        remove: bool,
        out: &mut Sink<'a>,
        name: &'a str,
    ) -> Result<(usize, Vec<usize>), CheckpointError> {
        let (known, quota) = self.quota(entries, g, groups)?;
        let entry = &entries[group.orig()];
        let numel = entry.len();
        let in_size = entry.dtype().bitsize() / 8;
        let out_dtype = if remove {
            entry.dtype()
        } else {
            group.mask_dtype
        };
        let out_size = out_dtype.bitsize() / 8;
        let select = &self.select;
        let blocks = numel.div_ceil(BLOCK);
        // Each block's share of the tied entries: the quota in every block
        // where it takes none of them or all (more than the group's
        // candidates), else what the blocks before it leave of it, up to
        // its own tied entries (counted first).
        let shares: Vec<usize> = if quota == 0 || quota >= numel - before {
            vec![quota; blocks]
        } else {
            let tied = par::map_ordered(blocks, numel, |b| {
                let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(numel));
                let mut buf: Vec<U> = Vec::with_capacity(SUB);
                let mut tied = 0;
                for s in (start..end).step_by(SUB) {
                    let e = (s + SUB).min(end);
                    decode_range::<U>(entry, s, e, &mut buf);
                    tied += select.count_tied(&buf, prior.map(|p| &p[s..e]));
                }
                tied
            });
            let mut left = quota;
            tied.iter()
                .map(|&t| {
                    let share = t.min(left);
                    left -= share;
                    share
                })
                .collect()
        };
        let mut tally = crate::report::Tally::new(&group.shape);
        let mut flags: Vec<bool> = Vec::new();
        let mut used = 0usize;
        // Pieces of whole blocks, each at most a buffer of the queue.
        let piece = (pipe::PIECE_BYTES / out_size / BLOCK).max(1) * BLOCK;
        for start in (0..numel).step_by(piece) {
            let end = (start + piece).min(numel);
            let mut buf = out.buffer()?;
            // Resized, not cleared: a buffer reused keeps its bytes, which
            // are all written over, so only new ones are zeroed.
            buf.resize((end - start) * out_size, 0);
            flags.resize(end - start, false);
            let first = start / BLOCK;
            let used_by =
                par::map_blocks_mut2(&mut flags, &mut buf, BLOCK, out_size, |i, fl, ob| {
                    let b = first + i;
                    let mut left = shares[b];
                    let mut vals: Vec<U> = Vec::with_capacity(SUB);
                    let at = b * BLOCK;
                    for (k, (f, o)) in fl
                        .chunks_mut(SUB)
                        .zip(ob.chunks_mut(SUB * out_size))
                        .enumerate()
                    {
                        let s = at + k * SUB;
                        let e = s + f.len();
                        decode_range::<U>(entry, s, e, &mut vals);
                        select.keep_into(&vals, prior.map(|p| &p[s..e]), &mut left, f);
                        if remove {
                            product_bytes(out_dtype, &entry.data()[s * in_size..e * in_size], f, o);
                        } else {
                            mask_bytes(out_dtype, f, o);
                        }
                    }
                    shares[b] - left
                });
            used = used_by.iter().fold(used, |a, &u| a.saturating_add(u));
            tally.feed(&flags);
            out.piece(name, buf)?;
        }
        if known.is_none() {
            let mut q = self.quotas.borrow_mut();
            q.known[g] = Some(used);
            q.ties_left = quota - used;
        }
        Ok(tally.finish())
    }

    /// Group `g`'s new mask as flags (kept), as [`Global::mask`] says.
    fn mask_flags(
        &self,
        entries: &[TensorEntry<'_>],
        group: &Group,
        g: usize,
        prior: Option<&[bool]>,
        groups: &[Group],
    ) -> Result<Vec<bool>, CheckpointError> {
        with_float!(self.dtype, U => {
            let numel = entries[group.orig()].len();
            if let Some((keep, starts)) = &self.exact {
                let mut next = starts[g];
                let mut out = vec![false; numel];
                for (i, o) in out.iter_mut().enumerate() {
                    if prior.is_none_or(|m| m[i]) {
                        *o = keep[next];
                        next += 1;
                    }
                }
                return Ok(out);
            }
            let (known, quota) = self.quota(entries, g, groups)?;
            // In blocks, on every thread. Tied entries go in order: a
            // block's share is what the blocks before it leave of the
            // quota, up to its own tied entries (counted first).
            let entry = &entries[group.orig()];
            let select = &self.select;
            let blocks = numel.div_ceil(BLOCK);
            let block = |b: usize, buf: &mut Vec<U>| {
                let start = b * BLOCK;
                let end = (start + BLOCK).min(numel);
                decode_range::<U>(entry, start, end, buf);
                prior.map(|p| &p[start..end])
            };
            let shares: Vec<usize> = if quota == 0 || quota == usize::MAX {
                vec![quota; blocks]
            } else {
                let tied = par::map_ordered(blocks, numel, |b| {
                    let mut buf = Vec::new();
                    let open = block(b, &mut buf);
                    select.count_tied(&buf, open)
                });
                let mut left = quota;
                tied.iter()
                    .map(|&t| {
                        let share = t.min(left);
                        left -= share;
                        share
                    })
                    .collect()
            };
            let parts = par::map_ordered(blocks, numel, |b| {
                let mut buf = Vec::new();
                let open = block(b, &mut buf);
                let mut left = shares[b];
                let mut out = Vec::with_capacity(buf.len());
                select.keep_flags(&buf, open, &mut left, &mut out);
                (out, shares[b] - left)
            });
            let mut out = Vec::with_capacity(numel);
            let mut used = 0usize;
            for (flags, u) in parts {
                out.extend_from_slice(&flags);
                used = used.saturating_add(u);
            }
            if known.is_none() {
                let mut q = self.quotas.borrow_mut();
                q.known[g] = Some(used);
                q.ties_left = quota - used;
            }
            Ok(out)
        })
    }
}
