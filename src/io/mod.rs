//! Safetensors checkpoints (feature `safetensors`, on by default).
//!
//! [`Checkpoint`] loads a safetensors file into a module tree that the
//! pruning functions take as it is, and saves it back with PyTorch's
//! `state_dict` names: a model pruned by `torch.nn.utils.prune` and saved
//! with `safetensors.torch.save_file(model.state_dict(), ...)` loads with
//! its pruning restored, and what ndprune saves loads in PyTorch with
//! `load_state_dict` on a model pruned the same way (or after
//! [`prune::remove`](crate::prune::remove), on a plain one).
//!
//! ```
//! use ndprune::prelude::*;
//! use ndprune::io::{Checkpoint, Dtype, RawTensor};
//! use ndarray::array;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A checkpoint as PyTorch would write it: a float weight and an int64 counter.
//! let layer = Layer::new().with_parameter("weight", array![[0.5f32, -2.0], [0.1, 3.0]].into_dyn())?;
//! let mut ckpt = Checkpoint::new(Sequential::new().with_child("fc", layer)?);
//! ckpt.push_raw(RawTensor::new("fc.steps", Dtype::I64, vec![], 7i64.to_le_bytes().to_vec())?);
//! let path = std::env::temp_dir().join("ndprune-doc-io.safetensors");
//! ckpt.save(&path)?;
//!
//! let mut ckpt = Checkpoint::<f32>::load(&path)?;
//! prune::l1_unstructured(&mut ckpt, "fc.weight", Amount::Count(2), None)?;
//! ckpt.save(&path)?;
//! let ckpt = Checkpoint::<f32>::load(&path)?;
//! assert_eq!(ckpt.tensor("fc.weight").unwrap(), &array![[0.0f32, -2.0], [0.0, 3.0]].into_dyn());
//! assert_eq!(ckpt.raw_tensor("fc.steps").unwrap().data(), &7i64.to_le_bytes());
//! # Ok(()) }
//! ```
//!
//! A [`Checkpoint<T>`](Checkpoint) holds the tensors of one float type as
//! a model; a checkpoint mixing dtypes (bf16 weights, f32 norms) loads
//! whole into a [`MixedCheckpoint`], every tensor pruned in its own dtype
//! and global pruning ranked across dtypes as PyTorch ranks it.
//!
//! Lower down, [`MappedFile`] and [`SafetensorsView`] read a file's
//! tensors without decoding them, and [`SafetensorsWriter`] writes one
//! tensor at a time (atomically, through [`PendingFile`]): what the
//! `ndprune` command line uses to prune files larger than memory.

mod atomic;
mod checkpoint;
mod dtype;
mod error;
mod files;
mod mixed;
mod norms;
mod pipe;
#[cfg(feature = "pth")]
pub mod pth;
mod raw;
mod reader;
mod recipe;
mod shard;
mod shrink;
mod spec;
mod stream;
mod tree;
mod writer;

pub use atomic::{PendingDir, PendingFile};
pub use checkpoint::{Checkpoint, LoadOptions};
pub use dtype::CheckpointFloat;
pub use error::{
    CheckpointError, ConfigProblem, FileKind, ForeignFormat, PairProblem, PthDirectoryProblem,
    TargetProblem,
};
#[cfg(feature = "pth")]
pub use files::ConversionWatch;
pub use files::{CheckpointFiles, ModelView, INDEX_SUFFIX};
pub use mixed::{MixedCheckpoint, MixedFloat};
pub use norms::read_activation_norms;
pub use raw::RawTensor;
pub use reader::{MappedFile, SafetensorsView, TensorEntry};
pub use recipe::{Recipe, RecipeError, RecipeStep};
pub use shard::{parse_shard_size, ShardSizeError};
pub use shrink::{FileShrinkReport, FileShrinker, LayerWidths, ShrinkGroups};
pub use spec::TensorSpec;
pub use stream::{
    is_prunable, FilePruner, Output, Progress, StreamMethod, StreamReport, StreamTies, TensorPlan,
    TensorReport, TieOrder,
};
pub use writer::{alignment_rank, SafetensorsWriter};

pub(crate) use tree::natural_cmp;

/// The safetensors dtypes (re-exported from the `safetensors` crate).
pub use safetensors::Dtype;
