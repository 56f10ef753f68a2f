//! Modules: named tensors in a tree, addressed by dotted paths.

mod layer;
mod selector;
mod state;
mod store;
mod tree;

pub use layer::{Layer, Sequential};
pub use selector::{Glob, Selector};
pub use state::LoadReport;
pub use store::TensorStore;
pub use tree::Module;

pub(crate) use store::mask_name;
#[cfg(feature = "safetensors")]
pub(crate) use store::orig_name;
pub(crate) use tree::{resolve, resolve_mut, split_path};
