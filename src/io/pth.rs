//! PyTorch checkpoints: `.pth`, `.pt` and `.bin` files as `torch.save`
//! writes them (feature `pth`), read through the
//! [`pytorch-reader`](https://crates.io/crates/pytorch-reader) crate.
//!
//! [`read_state_dict`] gives a file's tensors as [`RawTensor`]s (contiguous,
//! little-endian, in name order), [`convert_to_safetensors`] writes them to
//! a safetensors file one tensor at a time, and
//! [`CheckpointFiles::open`](super::CheckpointFiles::open) converts a
//! PyTorch file it is given on the way in, so that
//! [`FilePruner`](super::FilePruner) and the `ndprune` command prune it
//! like any safetensors file (and write safetensors).
//!
//! What is read:
//!
//! - a state_dict, `torch.save(model.state_dict(), path)`;
//! - a training checkpoint whose weights are under `"state_dict"`,
//!   `"model_state_dict"` or `"model"` (the first of these the root
//!   dictionary holds as a dictionary); the rest of it (epoch, optimizer
//!   state) is left out;
//! - any other dictionary of tensors, nested dictionaries giving dotted
//!   names (`{"a": {"b": t}}` gives `a.b`);
//! - tensors of f64, f32, f16, bf16, signed and unsigned integers and
//!   bool; a view (transposed, sliced, offset) is read as its own values,
//!   and tensors that share a storage are each written whole;
//! - the zip files of PyTorch 1.6 and later, and the legacy pickle and tar
//!   files before them.
//!
//! A file whose root is no dictionary, a damaged or truncated file, and
//! sparse, quantized or complex tensors fail with [`CheckpointError::Pth`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ndprune::io::{pth, CheckpointError};
//!
//! let path = std::env::temp_dir().join("ndprune-doc-pth-mod.pth");
//! std::fs::write(&path, b"PK\x03\x04 not a whole zip archive")?;
//! let err = pth::read_state_dict(&path).unwrap_err();
//! assert!(matches!(err, CheckpointError::Pth { .. }));
//! # Ok(()) }
//! ```

use std::path::Path;

use pytorch_reader::{DType, PickleValue, PytorchReader, Tensor};
use tempfile::TempDir;

use super::{CheckpointError, ConversionWatch, Dtype, RawTensor, SafetensorsWriter, TensorSpec};

/// The keys under which a training checkpoint keeps its weights, tried in
/// this order.
///
/// ```
/// assert_eq!(ndprune::io::pth::STATE_DICT_KEYS[0], "state_dict");
/// ```
pub const STATE_DICT_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// Whether the first bytes of a file are those of a file `torch.save`
/// writes: a zip archive (`PK\x03\x04`, PyTorch 1.6 and later) or a pickle
/// (`\x80` and a protocol 2 to 5, before it).
///
/// Only a hint: a safetensors file whose header is 640 to 1535 bytes long
/// starts as a pickle does. [`CheckpointFiles::open`](super::CheckpointFiles::open)
/// converts a file only once it failed to parse as safetensors.
///
/// ```
/// use ndprune::io::pth::looks_like_torch;
/// assert!(looks_like_torch(b"PK\x03\x04..."));
/// assert!(looks_like_torch(&[0x80, 0x02, 0x8a]));
/// assert!(!looks_like_torch(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "));
/// ```
pub fn looks_like_torch(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || matches!(head, [0x80, 2..=5, ..])
}

fn pth_error(path: &Path, reason: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Pth {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Opens a PyTorch file on the dictionary of its weights: the root, or
/// the first of [`STATE_DICT_KEYS`] the root holds as a dictionary.
fn open_reader(path: &Path) -> Result<(PytorchReader, Option<&'static str>), CheckpointError> {
    let root = PytorchReader::read_pickle_data(path, None).map_err(|e| pth_error(path, e))?;
    let PickleValue::Dict(root) = root else {
        return Err(pth_error(
            path,
            format!(
                "its root object is {}, not a dictionary of tensors",
                describe(&root)
            ),
        ));
    };
    let key = STATE_DICT_KEYS
        .into_iter()
        .find(|k| matches!(root.get(*k), Some(PickleValue::Dict(_))));
    let reader = match key {
        Some(key) => PytorchReader::with_top_level_key(path, key),
        None => PytorchReader::new(path),
    }
    .map_err(|e| pth_error(path, e))?;
    Ok((reader, key))
}

fn describe(value: &PickleValue) -> String {
    match value {
        PickleValue::None => "None".into(),
        PickleValue::Bool(_) => "a bool".into(),
        PickleValue::Int(_) => "an int".into(),
        PickleValue::Float(_) => "a float".into(),
        PickleValue::String(_) => "a string".into(),
        PickleValue::List(_) => "a list".into(),
        PickleValue::Dict(_) => "a dictionary".into(),
        PickleValue::Bytes(_) => "bytes".into(),
        PickleValue::Unsupported(ty) => format!("a {ty}"),
    }
}

fn dtype_of(dtype: DType) -> Dtype {
    match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
    }
}

/// The tensors of an open reader, in name order.
fn sorted(reader: PytorchReader) -> Vec<Tensor> {
    let mut tensors: Vec<Tensor> = reader.into_tensors().into_values().collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

/// Reads one tensor's bytes, little-endian (the reader gives native order).
fn read_bytes(path: &Path, tensor: &Tensor) -> Result<Vec<u8>, CheckpointError> {
    #[allow(unused_mut)]
    let mut bytes = tensor.read().map_err(|e| pth_error(path, e))?;
    if bytes.len() != tensor.byte_len() {
        return Err(pth_error(
            path,
            format!(
                "tensor `{}`: {} bytes read, {} expected",
                tensor.name,
                bytes.len(),
                tensor.byte_len()
            ),
        ));
    }
    #[cfg(target_endian = "big")]
    {
        let size = tensor.dtype().size();
        if size > 1 {
            bytes.chunks_exact_mut(size).for_each(|c| c.reverse());
        }
    }
    Ok(bytes)
}

/// Reads the tensors of a PyTorch file (see the [module](self) for what
/// is read), in name order: the bytes of each contiguous, row-major and
/// little-endian, as safetensors keeps them.
///
/// Every tensor is in memory at once; [`convert_to_safetensors`] holds one
/// at a time.
///
/// ```
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// use ndprune::io::{pth, Dtype};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth/model.pth");
/// let tensors = pth::read_state_dict(path)?; // torch.save(model.state_dict(), path)
/// let counter = tensors.iter().find(|t| t.name() == "1.num_batches_tracked").unwrap();
/// assert_eq!((counter.dtype(), counter.shape()), (Dtype::I64, &[][..]));
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`CheckpointError::Pth`] for a file the reader cannot read (not a
/// PyTorch file, damaged, truncated, a root that is no dictionary, a
/// tensor type it does not support); [`CheckpointError::BadName`] and the
/// like for a tensor safetensors cannot hold.
pub fn read_state_dict(path: impl AsRef<Path>) -> Result<Vec<RawTensor>, CheckpointError> {
    let path = path.as_ref();
    let (reader, _) = open_reader(path)?;
    sorted(reader)
        .iter()
        .map(|t| {
            let bytes = read_bytes(path, t)?;
            RawTensor::new(
                t.name.clone(),
                dtype_of(t.dtype()),
                t.shape().to_vec(),
                bytes,
            )
            .map_err(|e| e.at(path))
        })
        .collect()
}

/// Writes the tensors of the PyTorch file `pth` (as [`read_state_dict`]
/// reads them) to the safetensors file `out`, one tensor in memory at a
/// time, and returns how many were written. `out` appears only once whole
/// (it is written to a temporary file beside it and renamed); on an error
/// nothing is there (or what was there before is left as it was).
///
/// A checkpoint's weights read from under a key (`"state_dict"`, …) keep
/// it in the safetensors metadata as `pth_key`.
///
/// ```
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// use ndprune::io::{pth, CheckpointFiles};
/// # let pth_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth/nested.pth");
/// let out = std::env::temp_dir().join("ndprune-doc-convert.safetensors");
/// // torch.save({"state_dict": model.state_dict(), "epoch": 3}, pth_path)
/// let n = pth::convert_to_safetensors(pth_path, &out)?;
/// let files = CheckpointFiles::open(&out)?;
/// assert_eq!(files.view()?.entries().len(), n);
/// assert_eq!(files.view()?.metadata(0).unwrap()["pth_key"], "state_dict");
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`read_state_dict`], and [`CheckpointError::Io`] when `out` cannot
/// be written.
pub fn convert_to_safetensors(
    pth: impl AsRef<Path>,
    out: impl AsRef<Path>,
) -> Result<usize, CheckpointError> {
    let (pth, out) = (pth.as_ref(), out.as_ref());
    let (reader, key) = open_reader(pth)?;
    let tensors = sorted(reader);
    let by_name: std::collections::HashMap<&str, &Tensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|t| TensorSpec::new(t.name.clone(), dtype_of(t.dtype()), t.shape().to_vec()))
        .collect();
    let metadata = key.map(|k| [("pth_key".to_string(), k.to_string())].into());
    let mut writer = SafetensorsWriter::create(out, specs, metadata.as_ref())?;
    // The writer's order (largest alignment first), each tensor read as it comes.
    while let Some(spec) = writer.next_tensor() {
        let name = spec.name().to_string();
        let tensor = by_name
            .get(name.as_str())
            .ok_or_else(|| pth_error(pth, format!("tensor `{name}` went missing")))?;
        let bytes = read_bytes(pth, tensor)?;
        writer.write_tensor_bytes(&name, &bytes)?;
    }
    writer.commit()?;
    Ok(tensors.len())
}

/// Converts `pth` into `model.safetensors` in a new temporary directory,
/// which is removed when the returned [`TempDir`] is dropped.
pub(crate) fn convert_to_temp(
    pth: &Path,
    watch: &mut dyn ConversionWatch,
) -> Result<(TempDir, std::path::PathBuf), CheckpointError> {
    let dir = temp_dir(watch)?;
    let out = dir.path().join("model.safetensors");
    convert_to_safetensors(pth, &out)?;
    Ok((dir, out))
}

/// A new temporary directory for conversions (under the system's), with
/// `watch` told before and after it is created.
pub(crate) fn temp_dir(watch: &mut dyn ConversionWatch) -> Result<TempDir, CheckpointError> {
    watch.creating();
    let dir = tempfile::Builder::new()
        .prefix("ndprune-pth-")
        .tempdir()
        .map_err(|e| CheckpointError::io(&std::env::temp_dir(), "creating a directory in", e));
    watch.created(dir.as_ref().ok().map(TempDir::path));
    dir
}
