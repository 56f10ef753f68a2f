//! Reading safetensors files: a memory map, and a checked view of it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::dtype::{check_byte_len, decode};
use super::error::{FileKind, ForeignFormat, PairProblem};
use super::{CheckpointError, CheckpointFloat, RawTensor, TensorSpec};

/// The header's size limit, as the `safetensors` crate sets it.
pub(crate) const MAX_HEADER: u64 = 100_000_000;

/// A safetensors file mapped into memory, read-only.
///
/// Only regular files are opened ([`CheckpointError::NotAFile`] otherwise;
/// a FIFO is refused at once, not waited on). The map is only read; like
/// every memory-mapped reader it relies on no other process truncating or
/// rewriting the file while it is open. If one does, reading past the new
/// end raises `SIGBUS` (which a program may catch, as the `ndprune`
/// command does), and a write from the map fails with `EFAULT`;
/// [`MappedFile::check_unchanged`] tells which happened.
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
    /// The file mapped, kept open to tell whether it shrank under the map.
    file: File,
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
        let file = open_regular(path)?;
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
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| CheckpointError::io(path, "memory-mapping", e))?;
            // Tensors are read front to back: the kernel may read ahead
            // further, and drop pages read once sooner. Advice only: a
            // failure changes nothing that is read.
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            Some(map)
        };
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
            file,
        })
    }

    /// Asks the kernel to start reading `data`, a slice of this file's
    /// bytes (a tensor's), into memory now, in the background: a reader
    /// that will soon need it then finds it there instead of waiting for
    /// the disk page by page. Only advice: nothing happens where the
    /// system takes none (or `data` is not of this file).
    pub(crate) fn prefetch(&self, data: &[u8]) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let start = (data.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
            if !data.is_empty() && start < map.len() && data.len() <= map.len() - start {
                // Advice only: a failure changes nothing that is read.
                let _ = map.advise_range(memmap2::Advice::WillNeed, start, data.len());
            }
        }
        #[cfg(not(unix))]
        let _ = data;
    }

    /// Fails with [`CheckpointError::Shrank`] if the file is now shorter
    /// than when it was mapped: another process truncated it, so reading
    /// past its new end fails (a write from the map gets `EFAULT`, a read
    /// `SIGBUS`). A program that gets an I/O error while copying from the
    /// map can ask this to tell the user what really happened.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, MappedFile};
    /// # use ndprune::Sequential;
    /// # fn main() -> Result<(), ndprune::io::CheckpointError> {
    /// let path = std::env::temp_dir().join("ndprune-doc-shrank.safetensors");
    /// Checkpoint::new(Sequential::<f32>::new()).save(&path)?;
    /// let file = MappedFile::open(&path)?;
    /// assert!(file.check_unchanged().is_ok());
    /// std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(3).unwrap();
    /// assert!(file.check_unchanged().is_err());
    /// # Ok(()) }
    /// ```
    pub fn check_unchanged(&self) -> Result<(), CheckpointError> {
        let mapped = self.bytes().len() as u64;
        let now = self
            .file
            .metadata()
            .map_err(|e| CheckpointError::io(&self.path, "reading the size of", e))?
            .len();
        if now < mapped {
            return Err(CheckpointError::Shrank {
                path: self.path.clone(),
                mapped,
                now,
            });
        }
        Ok(())
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
        match &self.map {
            Some(map) => map,
            // An empty file cannot be mapped; it has no bytes.
            None => &[],
        }
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
        SafetensorsView::parse_at(self.bytes(), &self.path).map_err(|e| e.at(&self.path))
    }
}

/// Opens `path` for reading if it is a regular file. The open does not
/// block (a FIFO would wait for a writer), and the check is on the file
/// opened, so nothing can be swapped in between.
fn open_regular(path: &Path) -> Result<File, CheckpointError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| CheckpointError::io(path, "opening", e))?;
    let meta = file
        .metadata()
        .map_err(|e| CheckpointError::io(path, "reading the type of", e))?;
    if let Some(kind) = FileKind::of(&meta) {
        return Err(CheckpointError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(file)
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
    /// The file it is in (empty for bytes in memory), for errors.
    file: &'a Path,
}

impl fmt::Debug for TensorEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec
            .debug_with_bytes(f, "TensorEntry", self.data.len())
    }
}

impl<'a> TensorEntry<'a> {
    /// Its name, dtype and shape, as in the file.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, SafetensorsView, TensorSpec};
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f64>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// let e = &view.entries()[0];
    /// assert_eq!(e.spec(), &TensorSpec::new("fc.bias", Dtype::F64, vec![2]));
    /// ```
    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    /// Its name.
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f64>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// let e = &view.entries()[0];
    /// assert_eq!(e.name(), "fc.bias");
    /// ```
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// Its dtype.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, SafetensorsView};
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f64>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// let e = &view.entries()[0];
    /// assert_eq!(e.dtype(), Dtype::F64);
    /// ```
    pub fn dtype(&self) -> Dtype {
        self.spec.dtype()
    }

    /// Its shape (`[]` for a scalar).
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f64>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// let e = &view.entries()[0];
    /// assert_eq!(e.shape(), &[2]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        self.spec.shape()
    }

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
                path: self.file.to_path_buf(),
                tensor: self.spec.name.clone(),
                wanted: T::DTYPE,
                found: self.spec.dtype,
            });
        }
        // The view checked that the bytes are exactly the shape's elements,
        // so what `from_shape_vec` can still refuse is a shape no array can
        // index: non-zero dims whose product passes `isize::MAX`.
        ArrayD::from_shape_vec(IxDyn(&self.spec.shape), decode(self.data))
            .map_err(|_| self.too_large())
    }

    fn too_large(&self) -> CheckpointError {
        CheckpointError::ShapeTooLarge {
            path: self.file.to_path_buf(),
            tensor: self.spec.name.clone(),
            shape: self.spec.shape.clone(),
        }
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
    /// Indices into `entries`, sorted by name (names are unique).
    by_name: Vec<usize>,
    metadata: Option<BTreeMap<String, String>>,
}

impl<'a> SafetensorsView<'a> {
    /// Parses and checks a whole safetensors file held in `bytes`.
    ///
    /// Besides the format's own rules, a pruned tensor as PyTorch writes
    /// it must be one: where `X_orig` and `X_mask` are both of a float
    /// dtype (`F64`, `F32`, `BF16`, `F16`), the mask has the original's
    /// shape and holds only 0 and 1, and there is no plain `X` beside
    /// them ([`CheckpointError::BadPair`]). So every reader built on a
    /// view, the command line's included, refuses such a file the same way.
    ///
    /// Cost: time and memory linear in the file's length (a small multiple
    /// of the header, the tensors' bytes only read); no recursion, so no
    /// header can exhaust the stack.
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let file = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(SafetensorsView::parse(&file).unwrap().entries().is_empty());
    /// assert!(SafetensorsView::parse(&file[..9]).is_err());
    /// ```
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CheckpointError> {
        Self::parse_at(bytes, Path::new(""))
    }

    /// [`SafetensorsView::parse`] of the bytes of the file at `file`, whose
    /// entries name it in their errors.
    pub(crate) fn parse_at(bytes: &'a [u8], file: &'a Path) -> Result<Self, CheckpointError> {
        Self::parse_checked(bytes, file).map_err(|e| match ForeignFormat::sniff(bytes) {
            Some(format) => CheckpointError::NotSafetensors {
                path: PathBuf::new(),
                format,
            },
            None => e,
        })
    }

    fn parse_checked(bytes: &'a [u8], file: &'a Path) -> Result<Self, CheckpointError> {
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
        let (pending, metadata) = parse_header(text)?;
        let entries = tile(pending, data, header_end, file)?;
        let by_name = index_names(&entries)?;
        let view = SafetensorsView {
            entries,
            by_name,
            metadata,
        };
        view.check_pairs()?;
        // The crate's own reader is the final word on validity.
        SafeTensors::deserialize(bytes).map_err(|source| CheckpointError::Safetensors {
            path: PathBuf::new(),
            source,
        })?;
        Ok(view)
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

    /// The tensor of that name (a binary search: `O(log n)`).
    ///
    /// ```
    /// use ndprune::io::SafetensorsView;
    /// let file = [2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'];
    /// assert!(SafetensorsView::parse(&file).unwrap().get("weight").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&TensorEntry<'a>> {
        self.position(name).map(|i| &self.entries[i])
    }

    /// The index in [`SafetensorsView::entries`] of the tensor of that name.
    ///
    /// ```
    /// # use ndprune::io::SafetensorsView;
    /// # let file = ndprune::io::Checkpoint::new(ndprune::Sequential::new()
    /// #     .with_child("fc", ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f32>::zeros(vec![2])).unwrap()).unwrap())
    /// #     .to_bytes().unwrap();
    /// let view = SafetensorsView::parse(&file).unwrap();
    /// assert_eq!(view.position("fc.bias"), Some(0));
    /// ```
    pub fn position(&self, name: &str) -> Option<usize> {
        position_in(&self.entries, &self.by_name, name)
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

    /// The pruned tensors of the file as PyTorch writes them: for each
    /// `X_orig` with an `X_mask`, both of a float dtype, the name `X` and
    /// the indices of `X_orig` and `X_mask` in
    /// [`SafetensorsView::entries`], sorted by name. (Parsing checked
    /// that each is a valid pair.)
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, SafetensorsView};
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = Layer::new().with_parameter("weight", ndarray::array![1.0f32, -2.0].into_dyn())?;
    /// let mut ckpt = Checkpoint::new(Sequential::new().with_child("fc", layer)?);
    /// prune::l1_unstructured(&mut ckpt, "fc.weight", Amount::Count(1), None)?;
    /// let bytes = ckpt.to_bytes()?;
    /// let view = SafetensorsView::parse(&bytes)?;
    /// let pairs = view.pruned_pairs();
    /// assert_eq!(pairs.len(), 1);
    /// assert_eq!(pairs[0].0, "fc.weight");
    /// assert_eq!(view.entries()[pairs[0].2].name(), "fc.weight_mask");
    /// # Ok(()) }
    /// ```
    pub fn pruned_pairs(&self) -> Vec<(&str, usize, usize)> {
        pairs_in(&self.entries, &self.by_name)
    }

    /// Every pruned pair is one: same shapes, a 0/1 mask, no plain twin.
    fn check_pairs(&self) -> Result<(), CheckpointError> {
        for (base, o, m) in self.pruned_pairs() {
            let plain = self.position(base).is_some();
            check_pair(&self.entries[o], &self.entries[m], plain).map_err(|problem| {
                CheckpointError::BadPair {
                    path: PathBuf::new(),
                    tensor: base.to_string(),
                    problem,
                }
            })?;
        }
        Ok(())
    }
}

/// The index in `entries` of the tensor `name`, by `by_name` (the indices
/// sorted by name): a binary search.
pub(crate) fn position_in(
    entries: &[TensorEntry<'_>],
    by_name: &[usize],
    name: &str,
) -> Option<usize> {
    let at = by_name
        .binary_search_by(|&i| entries[i].name().cmp(name))
        .ok()?;
    Some(by_name[at])
}

/// The pruned pairs among `entries` (see
/// [`SafetensorsView::pruned_pairs`]), `by_name` as for [`position_in`].
pub(crate) fn pairs_in<'e>(
    entries: &'e [TensorEntry<'_>],
    by_name: &[usize],
) -> Vec<(&'e str, usize, usize)> {
    by_name
        .iter()
        .filter_map(|&i| {
            let base = entries[i].name().strip_suffix("_orig")?;
            if base.is_empty() || !is_float(entries[i].dtype()) {
                return None;
            }
            let m = position_in(entries, by_name, &format!("{base}_mask"))?;
            is_float(entries[m].dtype()).then_some((base, i, m))
        })
        .collect()
}

/// Whether `orig` and `mask` (of float dtypes) are a pruned tensor as
/// PyTorch writes one: same shapes, a 0/1 mask, no plain `X` beside them
/// (`plain`).
pub(crate) fn check_pair(
    orig: &TensorEntry<'_>,
    mask: &TensorEntry<'_>,
    plain: bool,
) -> Result<(), PairProblem> {
    if orig.shape() != mask.shape() {
        return Err(PairProblem::ShapeMismatch {
            orig: orig.shape().to_vec(),
            mask: mask.shape().to_vec(),
        });
    }
    if let Some((index, value)) = first_non_binary(mask) {
        return Err(PairProblem::NotBinary { index, value });
    }
    if plain {
        return Err(PairProblem::AlsoPlain);
    }
    Ok(())
}

/// The dtypes of pruned tensors: the floats.
pub(crate) fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F64 | Dtype::F32 | Dtype::BF16 | Dtype::F16)
}

/// The first entry of a float mask that is neither 0 (of either sign) nor
/// 1, compared bit by bit (no decoding, no allocation), with its value.
fn first_non_binary(mask: &TensorEntry<'_>) -> Option<(usize, f64)> {
    fn scan<const N: usize>(
        data: &[u8],
        one: u64,
        sign: u64,
        value: impl Fn(u64) -> f64,
    ) -> Option<(usize, f64)> {
        data.chunks_exact(N).enumerate().find_map(|(i, c)| {
            let mut b = [0u8; 8];
            b[..N].copy_from_slice(c);
            let bits = u64::from_le_bytes(b);
            (bits & !sign != 0 && bits != one).then(|| (i, value(bits)))
        })
    }
    let data = mask.data();
    match mask.dtype() {
        Dtype::F64 => scan::<8>(data, 1f64.to_bits(), 1 << 63, f64::from_bits),
        Dtype::F32 => scan::<4>(data, 1f32.to_bits().into(), 1 << 31, |b| {
            f64::from(f32::from_bits(b as u32))
        }),
        Dtype::BF16 => scan::<2>(data, 0x3f80, 1 << 15, |b| {
            f64::from(f32::from_bits((b as u32) << 16))
        }),
        Dtype::F16 => scan::<2>(data, 0x3c00, 1 << 15, |b| f16_to_f64(b as u16)),
        other => unreachable!("{other} is no float dtype; pairs are of floats"),
    }
}

/// An IEEE half's value (for error messages; no `half` feature needed).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        0x1f if frac == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A header entry whose size is checked but whose range is not yet.
struct Pending {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: u64,
    end: u64,
}

/// One tensor's entry as the header's JSON has it.
#[derive(serde::Deserialize)]
#[serde(rename = "tensor entry")]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Reads the header's JSON straight into entries (no JSON tree: memory a
/// small multiple of the header) and the metadata map.
#[allow(clippy::type_complexity)]
fn parse_header(
    text: &str,
) -> Result<(Vec<Pending>, Option<BTreeMap<String, String>>), CheckpointError> {
    use serde::de::{Deserializer, Error, MapAccess, Visitor};

    /// The visitor of the header's object; an entry that is well-formed
    /// JSON but no valid tensor stops the parse with its error kept here.
    struct Header<'e>(&'e mut Option<CheckpointError>);
    impl<'de> Visitor<'de> for Header<'_> {
        type Value = (Vec<Pending>, Option<BTreeMap<String, String>>);

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of tensor entries")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            let mut metadata = None;
            while let Some(name) = map.next_key::<String>()? {
                if name == "__metadata__" {
                    let meta = map.next_value::<BTreeMap<String, String>>().map_err(|e| {
                        A::Error::custom(format!("`__metadata__` is not a map of strings: {e}"))
                    })?;
                    if metadata.replace(meta).is_some() {
                        return Err(A::Error::custom("`__metadata__` is given twice"));
                    }
                } else {
                    let info = map
                        .next_value::<RawInfo>()
                        .map_err(|e| A::Error::custom(format!("tensor `{name}`: {e}")))?;
                    match check_entry(name, info) {
                        Ok(p) => entries.push(p),
                        Err(e) => {
                            *self.0 = Some(e);
                            return Err(A::Error::custom("an invalid tensor entry"));
                        }
                    }
                }
            }
            Ok((entries, metadata))
        }
    }

    let mut invalid = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = (&mut de)
        .deserialize_map(Header(&mut invalid))
        .and_then(|v| de.end().map(|()| v));
    match (parsed, invalid) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(CheckpointError::header(format!(
            "not a JSON object of tensor entries: {e}"
        ))),
    }
}

fn check_entry(name: String, info: RawInfo) -> Result<Pending, CheckpointError> {
    let dtype: Dtype = serde_json::from_value(Value::String(info.dtype.clone())).map_err(|_| {
        CheckpointError::UnknownDtype {
            path: PathBuf::new(),
            tensor: name.clone(),
            dtype: info.dtype,
        }
    })?;
    let (start, end) = info.data_offsets;
    if end < start {
        return Err(CheckpointError::BadOffsets {
            path: PathBuf::new(),
            tensor: name,
            start,
            end,
            reason: "the end lies before the start",
        });
    }
    check_byte_len(&name, dtype, &info.shape, end - start)?;
    Ok(Pending {
        name,
        dtype,
        shape: info.shape,
        start,
        end,
    })
}

/// Checks that the ranges tile `[0, data_len)` exactly (sorting them by
/// offset), then makes the entries.
fn tile<'a>(
    mut pending: Vec<Pending>,
    data: &'a [u8],
    header_end: u64,
    file: &'a Path,
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
            file,
        })
        .collect())
}

/// The entries' indices sorted by name; an error if a name is used twice
/// (JSON allows a key twice; a safetensors header does not).
fn index_names(entries: &[TensorEntry<'_>]) -> Result<Vec<usize>, CheckpointError> {
    let mut by_name: Vec<usize> = (0..entries.len()).collect();
    by_name.sort_by(|&a, &b| entries[a].name().cmp(entries[b].name()));
    if let Some(w) = by_name
        .windows(2)
        .find(|w| entries[w[0]].name() == entries[w[1]].name())
    {
        return Err(CheckpointError::BadName {
            path: PathBuf::new(),
            tensor: entries[w[0]].name().to_string(),
            reason: "is used by two tensors",
        });
    }
    Ok(by_name)
}
