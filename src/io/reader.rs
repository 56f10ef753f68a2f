//! Reading safetensors files: a memory map, and a checked view of it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::dtype::{check_byte_len, decode};
use super::{CheckpointError, CheckpointFloat, RawTensor, TensorSpec};

/// The header's size limit, as the `safetensors` crate sets it.
pub(crate) const MAX_HEADER: u64 = 100_000_000;

/// A safetensors file mapped into memory, read-only.
///
/// The map is only read; like every memory-mapped reader it relies on no
/// other process truncating or rewriting the file while it is open.
///
/// ```
/// use ndprune::io::{MappedFile, SafetensorsWriter, TensorSpec, Dtype};
///
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// let path = std::env::temp_dir().join("ndprune-doc-mapped.safetensors");
/// let spec = TensorSpec::new("steps", Dtype::I64, vec![1]);
/// let mut w = SafetensorsWriter::create(&path, vec![spec], None)?;
/// w.write_tensor_bytes("steps", &7i64.to_le_bytes())?;
/// w.commit()?;
///
/// let file = MappedFile::open(&path)?;
/// let view = file.view()?;
/// assert_eq!(view.get("steps").unwrap().data(), &7i64.to_le_bytes());
/// # Ok(()) }
/// ```
pub struct MappedFile {
    path: PathBuf,
    map: Option<Mmap>,
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl MappedFile {
    /// Opens and maps the file at `path`.
    ///
    /// ```
    /// use ndprune::io::MappedFile;
    /// assert!(MappedFile::open("/no/such/file.safetensors").is_err());
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| CheckpointError::io(path, "opening", e))?;
        let len = file
            .metadata()
            .map_err(|e| CheckpointError::io(path, "reading the size of", e))?
            .len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is only read. Like every memory-mapped reader,
            // this relies on no other process truncating or rewriting the
            // file while it is mapped (documented on `MappedFile`).
            Some(
                unsafe { Mmap::map(&file) }
                    .map_err(|e| CheckpointError::io(path, "memory-mapping", e))?,
            )
        };
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
        })
    }

    /// The file's bytes.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, MappedFile};
    /// # use ndprune::Sequential;
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let path = std::env::temp_dir().join("ndprune-doc-bytes.safetensors");
    /// Checkpoint::new(Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(&MappedFile::open(&path)?.bytes()[8..10], b"{}");
    /// # Ok(()) }
    /// ```
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The path it was opened from.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, MappedFile};
    /// # use ndprune::Sequential;
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let path = std::env::temp_dir().join("ndprune-doc-path.safetensors");
    /// Checkpoint::new(Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(MappedFile::open(&path)?.path(), path);
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked view of the file's tensors (errors name the file).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, MappedFile};
    /// # use ndprune::Sequential;
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let path = std::env::temp_dir().join("ndprune-doc-view.safetensors");
    /// Checkpoint::new(Sequential::<f32>::new()).save(&path)?;
    /// assert!(MappedFile::open(&path)?.view()?.entries().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn view(&self) -> Result<SafetensorsView<'_>, CheckpointError> {
        SafetensorsView::parse(self.bytes()).map_err(|e| e.at(&self.path))
    }
}

/// One tensor of a [`SafetensorsView`]: its name, dtype, shape, and bytes
/// (little-endian, row-major, borrowed from the file).
///
/// ```
/// use ndprune::io::{SafetensorsView, Dtype};
///
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header);
/// file.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]); // 1.0, 2.0
/// let view = SafetensorsView::parse(&file)?;
/// let w = view.get("w").unwrap();
/// assert_eq!((w.name(), w.dtype(), w.shape()), ("w", Dtype::F32, &[2usize][..]));
/// assert_eq!(w.to_array::<f32>()?.as_slice().unwrap(), &[1.0, 2.0]);
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TensorEntry<'a> {
    spec: TensorSpec,
    data: &'a [u8],
}

/// An entry's `name()`, `dtype()` and `shape()` (`[]` for a scalar) are its
/// spec's, as in the file.
///
/// ```
/// # use ndprune::io::{Dtype, SafetensorsView};
/// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
/// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f64>::zeros(vec![2])).unwrap()).unwrap())
/// #     .to_bytes().unwrap();
/// let view = SafetensorsView::parse(&file).unwrap();
/// let e = &view.entries()[0];
/// assert_eq!((e.name(), e.dtype(), e.shape()), ("fc.bias", Dtype::F64, &[2usize][..]));
/// ```
impl Deref for TensorEntry<'_> {
    type Target = TensorSpec;

    fn deref(&self) -> &TensorSpec {
        &self.spec
    }
}

impl fmt::Debug for TensorEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec
            .debug_with_bytes(f, "TensorEntry", self.data.len())
    }
}

impl<'a> TensorEntry<'a> {
    /// The tensor's bytes, as stored.
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f32>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// assert_eq!(SafetensorsView::parse(&file).unwrap().entries()[0].data(), &[0u8; 8]);
    /// ```
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Number of elements (the product of the shape).
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("w", ndarray::ArrayD::<f32>::zeros(vec![2, 3])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// assert_eq!(SafetensorsView::parse(&file).unwrap().entries()[0].len(), 6);
    /// ```
    // Entries are never "empty" in a sense worth a method: `len() == 0`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        // A checked entry's product fits in 64 bits (its byte count does);
        // saturate rather than wrap where `usize` is narrower.
        self.spec
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The tensor as an array of `T`; fails if its dtype is not `T`'s or
    /// its shape is too large for `ndarray`.
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("w", ndarray::ArrayD::<f32>::ones(vec![2, 3])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// assert_eq!(view.entries()[0].to_array::<f32>().unwrap().shape(), &[2, 3]);
    /// assert!(view.entries()[0].to_array::<f64>().is_err());
    /// ```
    pub fn to_array<T: CheckpointFloat>(&self) -> Result<ArrayD<T>, CheckpointError> {
        if self.spec.dtype != T::DTYPE {
            return Err(CheckpointError::WrongDtype {
                path: PathBuf::new(),
                tensor: self.spec.name.clone(),
                wanted: T::DTYPE,
                found: self.spec.dtype,
            });
        }
        ArrayD::from_shape_vec(IxDyn(&self.spec.shape), decode(self.data)).map_err(|_| {
            CheckpointError::SizeMismatch {
                path: PathBuf::new(),
                tensor: self.spec.name.clone(),
                dtype: self.spec.dtype,
                shape: self.spec.shape.clone(),
                expected: None,
                got: self.data.len() as u64,
            }
        })
    }

    /// A copy of the tensor's name, dtype, shape and bytes.
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("w", ndarray::ArrayD::<f32>::ones(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// assert_eq!(view.entries()[0].to_raw().data(), view.entries()[0].data());
    /// ```
    pub fn to_raw(&self) -> RawTensor {
        RawTensor::from_parts(
            self.spec.name.clone(),
            self.spec.dtype,
            self.spec.shape.clone(),
            self.data.to_vec(),
        )
    }
}

/// A safetensors file's tensors and metadata, checked, borrowing the bytes.
///
/// [`SafetensorsView::parse`] checks everything before any tensor is read:
/// the header's length and JSON, every dtype, every shape against its byte
/// range, that the ranges tile the data exactly; then the `safetensors`
/// crate's own reader must accept the file too. Any failure is a
/// [`CheckpointError`] naming the tensor; no input makes it panic.
///
/// ```
/// use ndprune::io::{CheckpointError, SafetensorsView};
///
/// let header = br#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header);
/// file.extend_from_slice(&[0; 8]);
/// // Three f32 need 12 bytes, not 8.
/// let err = SafetensorsView::parse(&file).unwrap_err();
/// assert!(matches!(err, CheckpointError::SizeMismatch { expected: Some(12), got: 8, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct SafetensorsView<'a> {
    entries: Vec<TensorEntry<'a>>,
    metadata: Option<BTreeMap<String, String>>,
}

impl<'a> SafetensorsView<'a> {
    /// Parses and checks a whole safetensors file held in `bytes`.
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let file = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(SafetensorsView::parse(&file).unwrap().entries().is_empty());
    /// assert!(SafetensorsView::parse(&file[..9]).is_err());
    /// ```
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CheckpointError> {
        let total = bytes.len() as u64;
        let truncated = |needed: u64| CheckpointError::Truncated {
            path: PathBuf::new(),
            len: total,
            needed,
        };
        let Some(len_bytes) = bytes.get(..8) else {
            return Err(truncated(8));
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(len_bytes);
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER {
            return Err(CheckpointError::header(format!(
                "header length {n} exceeds the limit of {MAX_HEADER} bytes"
            )));
        }
        let header_end = 8 + n;
        if header_end > total {
            return Err(truncated(header_end));
        }
        // Both fit in usize: they are at most the length of `bytes`.
        let header = &bytes[8..header_end as usize];
        let data = &bytes[header_end as usize..];
        let text = std::str::from_utf8(header)
            .map_err(|e| CheckpointError::header(format!("not UTF-8: {e}")))?;
        let json: serde_json::Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| CheckpointError::header(format!("not a JSON object: {e}")))?;

        let mut metadata = None;
        let mut entries = Vec::with_capacity(json.len());
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = Some(parse_metadata(value)?);
            } else {
                entries.push(parse_entry(name, &value)?);
            }
        }
        let entries = tile(entries, data, header_end)?;
        // The crate's own reader is the final word on validity.
        SafeTensors::deserialize(bytes).map_err(|source| CheckpointError::Safetensors {
            path: PathBuf::new(),
            source,
        })?;
        Ok(SafetensorsView { entries, metadata })
    }

    /// The tensors, in the order of their data in the file.
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let file = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert_eq!(SafetensorsView::parse(&file).unwrap().entries().len(), 0);
    /// ```
    pub fn entries(&self) -> &[TensorEntry<'a>] {
        &self.entries
    }

    /// The tensor of that name.
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let file = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(SafetensorsView::parse(&file).unwrap().get("weight").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&TensorEntry<'a>> {
        self.entries.iter().find(|e| e.name() == name)
    }

    /// The header's `__metadata__` map, if it has one.
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let header = br#"{"__metadata__":{"format":"pt"}}"#;
    /// let mut file = (header.len() as u64).to_le_bytes().to_vec();
    /// file.extend_from_slice(header);
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// assert_eq!(view.metadata().unwrap()["format"], "pt");
    /// ```
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }
}

fn parse_metadata(value: Value) -> Result<BTreeMap<String, String>, CheckpointError> {
    let Value::Object(map) = value else {
        return Err(CheckpointError::header("`__metadata__` is not an object"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(CheckpointError::header(format!(
                "`__metadata__` entry `{k}` is not a string"
            ))),
        })
        .collect()
}

fn parse_entry(name: String, value: &Value) -> Result<Pending, CheckpointError> {
    let bad = |what: &str| CheckpointError::header(format!("tensor `{name}`: {what}"));
    let Value::Object(info) = value else {
        return Err(bad("its entry is not an object"));
    };
    let Some(Value::String(dtype_name)) = info.get("dtype") else {
        return Err(bad("`dtype` is missing or not a string"));
    };
    let dtype: Dtype = serde_json::from_value(Value::String(dtype_name.clone())).map_err(|_| {
        CheckpointError::UnknownDtype {
            path: PathBuf::new(),
            tensor: name.clone(),
            dtype: dtype_name.clone(),
        }
    })?;
    let Some(Value::Array(dims)) = info.get("shape") else {
        return Err(bad("`shape` is missing or not an array"));
    };
    let shape = dims
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| bad("`shape` holds something other than non-negative integers"))?;
    let offsets = match info.get("data_offsets") {
        Some(Value::Array(o)) if o.len() == 2 => {
            o.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>()
        }
        _ => None,
    }
    .ok_or_else(|| bad("`data_offsets` is not a pair of non-negative integers"))?;
    let (start, end) = (offsets[0], offsets[1]);
    if end < start {
        return Err(CheckpointError::BadOffsets {
            path: PathBuf::new(),
            tensor: name,
            start,
            end,
            reason: "the end lies before the start",
        });
    }
    check_byte_len(&name, dtype, &shape, end - start)?;
    Ok(Pending {
        name,
        dtype,
        shape,
        start,
        end,
    })
}

/// A header entry whose size is checked but whose range is not yet.
struct Pending {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: u64,
    end: u64,
}

/// Checks that the ranges tile `[0, data_len)` exactly (sorting them by
/// offset), then makes the entries.
fn tile<'a>(
    mut pending: Vec<Pending>,
    data: &'a [u8],
    header_end: u64,
) -> Result<Vec<TensorEntry<'a>>, CheckpointError> {
    let data_len = data.len() as u64;
    pending.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
    let mut at = 0u64;
    for p in &pending {
        let bad = |reason| CheckpointError::BadOffsets {
            path: PathBuf::new(),
            tensor: p.name.clone(),
            start: p.start,
            end: p.end,
            reason,
        };
        if p.end > data_len {
            if p.start == at {
                return Err(CheckpointError::Truncated {
                    path: PathBuf::new(),
                    len: header_end + data_len,
                    needed: header_end.saturating_add(p.end),
                });
            }
            return Err(bad("the range ends past the end of the file"));
        }
        if p.start < at {
            return Err(bad("the range overlaps the previous tensor's"));
        }
        if p.start > at {
            return Err(bad("a gap of unused bytes lies before the range"));
        }
        at = p.end;
    }
    if at != data_len {
        return Err(CheckpointError::BadOffsets {
            path: PathBuf::new(),
            tensor: String::new(),
            start: at,
            end: data_len,
            reason: "bytes follow the last tensor",
        });
    }
    Ok(pending
        .into_iter()
        .map(|p| TensorEntry {
            // In range: checked above, and `data_len` fits in usize.
            data: &data[p.start as usize..p.end as usize],
            spec: TensorSpec::new(p.name, p.dtype, p.shape),
        })
        .collect())
}
