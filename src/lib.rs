//! # ndprune
//!
//! Tensor pruning for [`ndarray`] with the semantics of PyTorch's
//! `torch.nn.utils.prune`, to the bit.
//!
//! A model is a tree of [`Module`]s holding named tensors. Pruning the
//! parameter `weight` reparametrizes it exactly as PyTorch does: the
//! original moves to the parameter `weight_orig`, a 0/1 buffer
//! `weight_mask` appears, and `weight` becomes `weight_orig * weight_mask`.
//! Pruning it again combines masks as PyTorch's `PruningContainer` does, and
//! [`prune::remove`] makes it permanent.
//!
//! ```
//! use ndprune::prelude::*;
//! use rand::SeedableRng;
//!
//! # fn main() -> Result<(), PruneError> {
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f32>::new()
//!     .push(Layer::conv2d(1, 8, 3, &mut rng))
//!     .push(Layer::linear(32, 10, &mut rng));
//!
//! // Half of the conv's output channels, by L2 norm.
//! prune::ln_structured(&mut model, "0.weight", Amount::Fraction(0.5), Norm::L(2.0), Dim(0), None)?;
//! // Then 30 % of what is left, by magnitude.
//! prune::l1_unstructured(&mut model, "0.weight", Amount::Fraction(0.3), None)?;
//! // 20 % of both weights together.
//! let l1 = L1Unstructured::new(Amount::Fraction(0.2))?;
//! prune::global_unstructured(&mut model, &["0.weight", "1.weight"], &l1, None)?;
//!
//! let mask = model.buffer("0.weight_mask").unwrap();
//! let orig = model.parameter("0.weight_orig").unwrap();
//! assert_eq!(model.tensor("0.weight").unwrap(), &(orig * mask));
//!
//! prune::remove(&mut model, "0.weight")?;
//! assert!(model.parameter("0.weight").is_some());
//! # Ok(()) }
//! ```
//!
//! Ties, NaN and rounding follow documented rules (see [`select`] and
//! [`Amount`]); a call that fails returns a [`PruneError`] and changes
//! nothing. A [`SparsityReport`] tells how much of a model is pruned, per
//! tensor, module and in all, and what a model without its masks or its
//! fully pruned channels would weigh (see [`report`]).
#![warn(missing_docs)]
#![deny(missing_debug_implementations)]
#![deny(rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

mod amount;
mod dim;
mod error;
mod float;
mod fresh;
pub mod group;
mod history;
#[cfg(feature = "safetensors")]
pub mod io;
mod mask;
pub mod method;
mod module;
pub mod norm;
mod par;
pub mod prune;
mod reparam;
pub mod report;
mod rounding;
pub mod schedule;
pub mod select;
mod torch_rng;
pub mod wanda;

pub use amount::Amount;
pub use dim::Dim;
pub use error::{KeyShape, PruneError, PruneErrorKind};
pub use float::PruneFloat;
pub use history::{PruningStep, RandomSource};
pub use method::{
    BlockNorm, BlockSparsity, CustomFromMask, Identity, L1Unstructured, LnStructured, NmStructured,
    PerRowUnstructured, PruningKind, PruningMethod, RandomStructured, RandomUnstructured,
};
pub use module::{Glob, Layer, LoadReport, Module, Selector, Sequential, TensorStore};
pub use norm::Norm;
pub use report::{Counting, ModuleSparsity, SparsityReport, TensorSparsity, Totals};
pub use rounding::Rounding;
pub use select::TieBreak;
pub use torch_rng::TorchGenerator;

/// The names most code needs: `use ndprune::prelude::*;`.
///
/// ```
/// use ndprune::prelude::*;
/// let _ = (Amount::Count(1), Norm::Inf, Dim(0));
/// ```
pub mod prelude {
    pub use crate::prune;
    pub use crate::{
        Amount, BlockSparsity, CustomFromMask, Dim, Identity, L1Unstructured, Layer, LnStructured,
        Module, NmStructured, Norm, PruneError, PruneErrorKind, PruneFloat, PruningMethod,
        PruningStep, RandomStructured, RandomUnstructured, Sequential, SparsityReport, TensorStore,
        TieBreak, TorchGenerator,
    };
}
