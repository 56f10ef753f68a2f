//! Activation-norm files for Wanda: one 1-D tensor of norms per weight.

use std::collections::HashMap;
use std::path::Path;

use super::{CheckpointError, CheckpointFiles, Dtype, TensorEntry};
use crate::wanda::ActivationNorms;
use crate::{PruneError, PruneErrorKind};

/// Reads a safetensors file of Wanda activation norms: for each weight to
/// prune, a 1-D float tensor (F32, F64, or BF16/F16 with the feature
/// `half`) named as the weight (`model.layers.0.mlp.down_proj.weight`),
/// holding `‖X[:, j]‖₂` for each input feature `j` of that Linear layer
/// (see [`crate::wanda`]). Norms are widened to `f64` and checked finite
/// and not negative.
///
/// Fails for a tensor of another shape or dtype, or a bad norm, naming
/// the file and the tensor. Whether each weight has norms, and as many as
/// its input features, is checked when it is pruned
/// ([`FilePruner::activation_norms`](super::FilePruner::activation_norms)).
///
/// ```
/// use ndprune::io::{read_activation_norms, Checkpoint};
/// use ndprune::prelude::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join("ndprune-doc-norms.safetensors");
/// let norms = Layer::new().with_parameter("weight", ndarray::array![1.0f32, 0.5, 2.0].into_dyn())?;
/// Checkpoint::new(Sequential::new().with_child("fc", norms)?).save(&path)?;
/// let read = read_activation_norms(&path)?;
/// assert_eq!(read["fc.weight"].as_slice(), &[1.0, 0.5, 2.0]);
/// # Ok(()) }
/// ```
pub fn read_activation_norms(
    path: impl AsRef<Path>,
) -> Result<HashMap<String, ActivationNorms>, CheckpointError> {
    let path = path.as_ref();
    let files = CheckpointFiles::open(path)?;
    let view = files.view()?;
    let mut out = HashMap::with_capacity(view.entries().len());
    for entry in view.entries() {
        let bad = |kind: PruneErrorKind| CheckpointError::Prune {
            path: path.to_path_buf(),
            tensor: entry.name().to_string(),
            source: Box::new(PruneError::new(entry.name(), kind)),
        };
        if entry.shape().len() != 1 {
            return Err(bad(PruneErrorKind::NormsShape {
                shape: entry.shape().to_vec(),
            }));
        }
        let norms = widened(entry, path)?;
        let norms = ActivationNorms::new(norms).map_err(|e| bad(e.kind().clone()))?;
        out.insert(entry.name().to_string(), norms);
    }
    Ok(out)
}

/// An entry's values as `f64`.
fn widened(entry: &TensorEntry<'_>, path: &Path) -> Result<Vec<f64>, CheckpointError> {
    fn wide<T: super::CheckpointFloat>(e: &TensorEntry<'_>) -> Result<Vec<f64>, CheckpointError> {
        Ok(e.to_array::<T>()?.iter().map(|x| x.as_f64()).collect())
    }
    match entry.dtype() {
        Dtype::F32 => wide::<f32>(entry),
        Dtype::F64 => wide::<f64>(entry),
        #[cfg(feature = "half")]
        Dtype::BF16 => wide::<half::bf16>(entry),
        #[cfg(feature = "half")]
        Dtype::F16 => wide::<half::f16>(entry),
        found => Err(CheckpointError::WrongDtype {
            path: path.to_path_buf(),
            tensor: entry.name().to_string(),
            wanted: Dtype::F32,
            found,
        }),
    }
}
