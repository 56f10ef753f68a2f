//! Writing safetensors files one tensor at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::ArrayViewD;
use safetensors::Dtype;
use serde_json::{json, Map, Value};

use super::dtype::byte_len;
use super::reader::MAX_HEADER;
use super::{CheckpointError, CheckpointFloat, PendingFile, TensorSpec};

/// The sort key that lays tensors out aligned: dtypes of larger elements
/// first, as the `safetensors` crate orders them, so that every tensor
/// starts at a multiple of its element size. [`Checkpoint::save`] sorts
/// by `(alignment_rank(dtype), name)`.
///
/// [`Checkpoint::save`]: super::Checkpoint::save
///
/// ```
/// use ndprune::io::{alignment_rank, Dtype};
/// let mut dtypes = vec![Dtype::U8, Dtype::BF16, Dtype::I64, Dtype::F32];
/// dtypes.sort_by_key(|&d| alignment_rank(d));
/// assert_eq!(dtypes, [Dtype::I64, Dtype::F32, Dtype::BF16, Dtype::U8]);
/// ```
pub fn alignment_rank(dtype: Dtype) -> (Reverse<usize>, Reverse<Dtype>) {
    (Reverse(dtype.bitsize()), Reverse(dtype))
}

/// Writes a safetensors file tensor by tensor, never holding more than one
/// tensor's encoding: the header is written first, from the list of
/// tensors planned, then each tensor's data in that order.
///
/// Write to a file with [`SafetensorsWriter::create`] (atomic: the file
/// appears at its path only at [`SafetensorsWriter::commit`]) or to any
/// [`Write`] with [`SafetensorsWriter::new`]. Each tensor must be written
/// in the planned order, by name, with the planned dtype and size.
///
/// ```
/// use ndprune::io::{Dtype, SafetensorsView, SafetensorsWriter, TensorSpec};
/// use ndarray::array;
///
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// let specs = vec![
///     TensorSpec::new("fc.weight", Dtype::F32, vec![2, 2]),
///     TensorSpec::new("fc.steps", Dtype::I64, vec![]),
/// ];
/// let mut w = SafetensorsWriter::new(Vec::new(), specs, None)?;
/// w.write_array("fc.weight", array![[1.0f32, 0.0], [0.0, 2.0]].into_dyn().view())?;
/// w.write_tensor_bytes("fc.steps", &3i64.to_le_bytes())?;
/// let bytes = w.finish()?;
///
/// let view = SafetensorsView::parse(&bytes)?;
/// assert_eq!(view.get("fc.steps").unwrap().data(), &3i64.to_le_bytes());
/// # Ok(()) }
/// ```
pub struct SafetensorsWriter<W: Write> {
    out: W,
    path: PathBuf,
    specs: Vec<(TensorSpec, u64)>,
    next: usize,
    /// Bytes of the next tensor written so far by
    /// [`SafetensorsWriter::write_tensor_part`].
    partial: u64,
    scratch: Vec<u8>,
}

impl<W: Write> fmt::Debug for SafetensorsWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsWriter")
            .field("path", &self.path)
            .field("tensors", &self.specs.len())
            .field("written", &self.next)
            .finish()
    }
}

impl SafetensorsWriter<PendingFile> {
    /// Starts writing a safetensors file at `path` holding `specs`, in that
    /// order, with an optional `__metadata__` map. Nothing appears at
    /// `path` until [`SafetensorsWriter::commit`].
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let path = std::env::temp_dir().join("ndprune-doc-create.safetensors");
    /// let mut w = SafetensorsWriter::create(&path, vec![TensorSpec::new("m", Dtype::U8, vec![2])], None)?;
    /// w.write_tensor_bytes("m", &[0, 1])?;
    /// w.commit()?;
    /// assert!(path.exists());
    /// # Ok(()) }
    /// ```
    pub fn create(
        path: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        Self::create_with(path, specs, metadata, || PendingFile::create(path))
    }

    /// Like [`SafetensorsWriter::create`], but a new file (one that
    /// replaces none) gets the permissions of `like`
    /// ([`PendingFile::create_like`]).
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let dir = std::env::temp_dir();
    /// let path = dir.join("ndprune-doc-create-like.safetensors");
    /// let mut w = SafetensorsWriter::create_like(&path, &dir, vec![TensorSpec::new("m", Dtype::U8, vec![1])], None)?;
    /// w.write_tensor_bytes("m", &[1])?;
    /// w.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn create_like(
        path: impl AsRef<Path>,
        like: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        Self::create_with(path, specs, metadata, || {
            PendingFile::create_like(path, like)
        })
    }

    fn create_with(
        path: &Path,
        specs: Vec<TensorSpec>,
        metadata: Option<&BTreeMap<String, String>>,
        open: impl FnOnce() -> Result<PendingFile, CheckpointError>,
    ) -> Result<Self, CheckpointError> {
        let (header, specs) = plan(specs, metadata).map_err(|e| e.at(path))?;
        let mut out = open()?;
        out.write_all(&header)
            .map_err(|e| CheckpointError::io(path, "writing", e))?;
        Ok(SafetensorsWriter {
            out,
            path: path.to_path_buf(),
            specs,
            next: 0,
            partial: 0,
            scratch: Vec::new(),
        })
    }

    /// Checks that every tensor was written, then syncs the file and
    /// renames it into place. Dropping the writer instead leaves no file.
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// let path = std::env::temp_dir().join("ndprune-doc-incomplete.safetensors");
    /// let _ = std::fs::remove_file(&path);
    /// let w = SafetensorsWriter::create(&path, vec![TensorSpec::new("m", Dtype::U8, vec![2])], None).unwrap();
    /// assert!(w.commit().is_err()); // "m" was never written
    /// assert!(!path.exists());
    /// ```
    pub fn commit(self) -> Result<(), CheckpointError> {
        self.finish()?.commit()
    }
}

impl<W: Write> SafetensorsWriter<W> {
    /// Starts writing a safetensors file holding `specs` to `out` (the
    /// header is written at once).
    ///
    /// ```
    /// use ndprune::io::SafetensorsWriter;
    /// let bytes = SafetensorsWriter::new(Vec::new(), vec![], None).unwrap().finish().unwrap();
    /// assert_eq!(bytes.len(), 16); // length, "{}" and padding to 8 bytes
    /// ```
    pub fn new(
        mut out: W,
        specs: Vec<TensorSpec>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, CheckpointError> {
        let (header, specs) = plan(specs, metadata)?;
        out.write_all(&header)
            .map_err(|e| CheckpointError::io(Path::new(""), "writing", e))?;
        Ok(SafetensorsWriter {
            out,
            path: PathBuf::new(),
            specs,
            next: 0,
            partial: 0,
            scratch: Vec::new(),
        })
    }

    /// The output being written to.
    ///
    /// ```
    /// use ndprune::io::SafetensorsWriter;
    /// let w = SafetensorsWriter::new(Vec::new(), vec![], None).unwrap();
    /// assert_eq!(w.get_ref().len(), 16); // the header is written at once
    /// ```
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The tensor to write next, if any is left.
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// let w = SafetensorsWriter::new(Vec::new(), vec![TensorSpec::new("a", Dtype::U8, vec![1])], None).unwrap();
    /// assert_eq!(w.next_tensor().unwrap().name(), "a");
    /// ```
    pub fn next_tensor(&self) -> Option<&TensorSpec> {
        self.specs.get(self.next).map(|(s, _)| s)
    }

    fn expect_next(&self, name: &str) -> Result<&(TensorSpec, u64), CheckpointError> {
        let wrong = |reason: String| CheckpointError::WriteOrder {
            path: self.path.clone(),
            tensor: name.to_string(),
            reason,
        };
        match self.specs.get(self.next) {
            Some(entry) if entry.0.name == name => Ok(entry),
            Some((s, _)) => Err(wrong(format!("`{}` is to be written next", s.name))),
            None => Err(wrong("every planned tensor is written already".into())),
        }
    }

    /// Writes the next tensor, `name`, from its bytes (exactly as many as
    /// its dtype and shape call for).
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// let mut w = SafetensorsWriter::new(Vec::new(), vec![TensorSpec::new("a", Dtype::U8, vec![2])], None).unwrap();
    /// assert!(w.write_tensor_bytes("b", &[1, 2]).is_err()); // not the next tensor
    /// assert!(w.write_tensor_bytes("a", &[1]).is_err()); // one byte short
    /// assert!(w.write_tensor_bytes("a", &[1, 2]).is_ok());
    /// ```
    pub fn write_tensor_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let (_, len) = self.expect_next(name)?;
        if *len != bytes.len() as u64 || self.partial != 0 {
            return Err(CheckpointError::WriteOrder {
                path: self.path.clone(),
                tensor: name.to_string(),
                reason: if self.partial != 0 {
                    format!("{} of its bytes are written already", self.partial)
                } else {
                    format!("{} bytes given, {len} planned", bytes.len())
                },
            });
        }
        self.out
            .write_all(bytes)
            .map_err(|e| CheckpointError::io(&self.path, "writing", e))?;
        self.next += 1;
        Ok(())
    }

    /// Writes the next piece of the next tensor, `name`: its bytes are
    /// the concatenation of the pieces, in order, and it is complete once
    /// they add up to its planned size (a tensor of no bytes takes one
    /// empty piece). More bytes than planned are refused, and
    /// [`SafetensorsWriter::finish`] fails on a tensor left incomplete.
    pub(crate) fn write_tensor_part(
        &mut self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), CheckpointError> {
        let (_, len) = self.expect_next(name)?;
        let len = *len;
        let after = self.partial + bytes.len() as u64;
        if after > len {
            return Err(CheckpointError::WriteOrder {
                path: self.path.clone(),
                tensor: name.to_string(),
                reason: format!("{after} bytes given, {len} planned"),
            });
        }
        self.out
            .write_all(bytes)
            .map_err(|e| CheckpointError::io(&self.path, "writing", e))?;
        if after == len {
            self.partial = 0;
            self.next += 1;
        } else {
            self.partial = after;
        }
        Ok(())
    }

    /// Writes the next tensor, `name`, from an array of the planned dtype
    /// and shape (any memory layout; written row-major).
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// use ndarray::array;
    /// let mut w = SafetensorsWriter::new(Vec::new(), vec![TensorSpec::new("w", Dtype::F64, vec![2])], None).unwrap();
    /// assert!(w.write_array("w", array![1.0f32, 2.0].into_dyn().view()).is_err()); // F32, not F64
    /// assert!(w.write_array("w", array![1.0f64, 2.0].into_dyn().view()).is_ok());
    /// ```
    pub fn write_array<T: CheckpointFloat>(
        &mut self,
        name: &str,
        array: ArrayViewD<'_, T>,
    ) -> Result<(), CheckpointError> {
        let (spec, _) = self.expect_next(name)?;
        if spec.dtype != T::DTYPE || spec.shape != array.shape() || self.partial != 0 {
            return Err(CheckpointError::WriteOrder {
                path: self.path.clone(),
                tensor: name.to_string(),
                reason: format!(
                    "an array of dtype {} and shape {:?} given, {} and {:?} planned",
                    T::DTYPE,
                    array.shape(),
                    spec.dtype,
                    spec.shape
                ),
            });
        }
        const CHUNK: usize = 1 << 16;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut result = Ok(());
        for x in array.iter() {
            x.write_le(&mut scratch);
            if scratch.len() >= CHUNK {
                result = self.out.write_all(&scratch);
                scratch.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self.out.write_all(&scratch);
        }
        scratch.clear();
        self.scratch = scratch;
        result.map_err(|e| CheckpointError::io(&self.path, "writing", e))?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every planned tensor was written, flushes, and returns
    /// the output.
    ///
    /// ```
    /// use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    /// let w = SafetensorsWriter::new(Vec::new(), vec![TensorSpec::new("a", Dtype::U8, vec![1])], None).unwrap();
    /// assert!(w.finish().is_err()); // "a" is missing
    /// ```
    pub fn finish(mut self) -> Result<W, CheckpointError> {
        if let Some((spec, _)) = self.specs.get(self.next) {
            return Err(CheckpointError::WriteOrder {
                path: self.path.clone(),
                tensor: spec.name.clone(),
                reason: format!(
                    "{} planned tensors were not written",
                    self.specs.len() - self.next
                ),
            });
        }
        self.out
            .flush()
            .map_err(|e| CheckpointError::io(&self.path, "writing", e))?;
        Ok(self.out)
    }
}

/// The header bytes (length, JSON, padding) for `specs` in order, and each
/// spec's byte length.
#[allow(clippy::type_complexity)]
fn plan(
    specs: Vec<TensorSpec>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<(Vec<u8>, Vec<(TensorSpec, u64)>), CheckpointError> {
    let mut names = HashSet::with_capacity(specs.len());
    let mut header = Map::new();
    if let Some(meta) = metadata {
        header.insert("__metadata__".into(), json!(meta));
    }
    let mut offset = 0u64;
    let mut planned = Vec::with_capacity(specs.len());
    for spec in specs {
        let bad_name = |reason| CheckpointError::BadName {
            path: PathBuf::new(),
            tensor: spec.name.clone(),
            reason,
        };
        if spec.name == "__metadata__" {
            return Err(bad_name("is reserved for the header's metadata"));
        }
        if !names.insert(spec.name.clone()) {
            return Err(bad_name("is used by two tensors"));
        }
        let len =
            byte_len(spec.dtype, &spec.shape).ok_or_else(|| CheckpointError::SizeMismatch {
                path: PathBuf::new(),
                tensor: spec.name.clone(),
                dtype: spec.dtype,
                shape: spec.shape.clone(),
                expected: None,
                got: 0,
            })?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| CheckpointError::header("the tensors' total size overflows 64 bits"))?;
        header.insert(
            spec.name.clone(),
            json!({
                "dtype": spec.dtype.to_string(),
                "shape": spec.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
        planned.push((spec, len));
    }
    let mut json = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| CheckpointError::header(format!("cannot encode the header: {e}")))?;
    // Pad with spaces to a multiple of 8, as the safetensors crate does.
    json.resize(json.len().next_multiple_of(8), b' ');
    if json.len() as u64 > MAX_HEADER {
        return Err(CheckpointError::header(format!(
            "the header would take {} bytes, more than the limit of {MAX_HEADER}",
            json.len()
        )));
    }
    let mut bytes = Vec::with_capacity(8 + json.len());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    Ok((bytes, planned))
}
