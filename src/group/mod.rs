//! Channel groups: pruning that makes models smaller.
//!
//! Masking a channel of one tensor saves nothing: the model keeps its
//! shape. A channel really goes only when it goes from every tensor that
//! shares its index (a conv's output channel is its weight's dim 0, its
//! bias, the following BatchNorm's vectors, and the next layer's dim 1).
//! A [`ChannelGroup`] names those tensors and dims; [`infer_chain`] finds
//! the groups of a chain of layers.
//!
//! The path is the usual one: [`prune_group`] ranks channels by a
//! [`GroupImportance`] over all the group's tensors and prunes them through
//! the reparametrization (masks on every tensor of the group), so
//! iterative pruning, `remove`, reports and checkpoints work as before;
//! [`shrink`] then cuts the pruned channels out, giving smaller tensors.
//!
//! ```
//! use ndprune::group::{self, GroupImportance, Inexact};
//! use ndprune::prelude::*;
//! use rand::SeedableRng;
//!
//! # fn main() -> Result<(), PruneError> {
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f32>::new()
//!     .push(Layer::linear(64, 32, &mut rng))
//!     .push(Layer::new()) // ReLU
//!     .push(Layer::linear(32, 32, &mut rng))
//!     .push(Layer::new()) // ReLU
//!     .push(Layer::linear(32, 10, &mut rng));
//! let groups = group::infer_chain(&model)?;
//! for g in &groups {
//!     group::prune_group(&mut model, g, Amount::Fraction(0.5), &GroupImportance::default())?;
//! }
//! let report = group::shrink(&mut model, &groups, Inexact::Refuse)?;
//! assert!(report.is_exact());
//! assert_eq!(model.tensor("2.weight").unwrap().shape(), &[16, 16]);
//! # Ok(()) }
//! ```

mod importance;
mod infer;
mod prune;
mod shrink;
mod spec;
mod txn;

pub use importance::{GroupImportance, Reduction};
pub use infer::infer_chain;
#[cfg(feature = "safetensors")]
pub(crate) use infer::{infer_layers, Shapes};
pub use prune::{prune_channels, prune_group};
pub use shrink::{shrink, GroupShrink, Inexact, ShrinkReport};
pub use spec::{ChannelGroup, Member, Role};
