//! The error type of reading and writing checkpoints.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::PruneError;

/// Everything that can go wrong reading or writing a safetensors file.
///
/// Every variant names the file (`path`; empty for bytes in memory, shown
/// as `<bytes>`) and, where the problem is one tensor's, that tensor. A
/// malformed file of any kind gives one of these, never a panic.
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointError};
///
/// // Four bytes cannot even hold the header's length.
/// let err = Checkpoint::<f32>::from_bytes(&[1, 2, 3, 4]).unwrap_err();
/// assert!(matches!(err, CheckpointError::Truncated { len: 4, needed: 8, .. }));
/// assert_eq!(err.to_string(), "<bytes>: file is truncated: 4 bytes, at least 8 needed");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading, writing, syncing or renaming a file failed.
    #[error("{}: {action}: {source}", Shown(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`"opening"`, `"writing"`, …).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file ends before the header or a tensor's data does.
    #[error(
        "{}: file is truncated: {len} bytes, at least {needed} needed",
        Shown(path)
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The length its header requires.
        needed: u64,
    },
    /// The JSON header is not what the safetensors format prescribes (not
    /// UTF-8, not JSON, too large, a field missing or of the wrong type).
    #[error("{}: malformed header: {reason}", Shown(path))]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's dtype is not one of the safetensors dtypes.
    #[error("{}: tensor `{tensor}` has unknown dtype {dtype:?}", Shown(path))]
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },
    /// A tensor's byte range lies outside the data, overlaps another
    /// tensor's, or leaves a gap; or bytes follow the last tensor.
    #[error(
        "{}: tensor `{tensor}`: bad data offsets [{start}, {end}): {reason}",
        Shown(path)
    )]
    BadOffsets {
        /// The file.
        path: PathBuf,
        /// The tensor (empty for bytes after the last tensor).
        tensor: String,
        /// Start of its byte range, relative to the data.
        start: u64,
        /// End of its byte range.
        end: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tensor's shape and dtype call for another number of bytes than it
    /// has (or for more than fits in memory, or for a fraction of a byte).
    #[error(
        "{}: tensor `{tensor}` of dtype {dtype} and shape {shape:?} needs {}, its data has {got} bytes",
        Shown(path),
        Needed(*expected)
    )]
    SizeMismatch {
        /// The file (empty when building a [`RawTensor`](crate::io::RawTensor)).
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: safetensors::Dtype,
        /// Its shape.
        shape: Vec<usize>,
        /// The bytes its shape and dtype call for (`None`: overflow or not a
        /// whole number of bytes).
        expected: Option<u64>,
        /// The bytes it has.
        got: u64,
    },
    /// A tensor name that cannot be written: `__metadata__`, or a name used
    /// twice.
    #[error("{}: tensor name `{tensor}` {reason}", Shown(path))]
    BadName {
        /// The file.
        path: PathBuf,
        /// The name.
        tensor: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The tensor asked for has another dtype.
    #[error("{}: tensor `{tensor}` has dtype {found}, not {wanted}", Shown(path))]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype asked for.
        wanted: safetensors::Dtype,
        /// The tensor's dtype.
        found: safetensors::Dtype,
    },
    /// A pruned tensor (`name_orig` with `name_mask`) could not be restored:
    /// different shapes, a mask holding other values than 0 and 1, or a name
    /// taken twice.
    #[error(
        "{}: cannot restore the pruned tensor `{tensor}`: {source}",
        Shown(path)
    )]
    Restore {
        /// The file.
        path: PathBuf,
        /// The pruned tensor's dotted path (`name`, without `_orig`).
        tensor: String,
        /// Why.
        source: Box<PruneError>,
    },
    /// A tensor written out of the order the writer was planned with, or
    /// with other bytes than planned.
    #[error("{}: writing tensor `{tensor}`: {reason}", Shown(path))]
    WriteOrder {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything else the `safetensors` crate's own reader rejects.
    #[error("{}: {source}", Shown(path))]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The crate's error.
        source: safetensors::SafeTensorError,
    },
    /// The file shrank while it was read through its memory map: another
    /// process truncated or rewrote it ([`MappedFile::check_unchanged`]).
    ///
    /// [`MappedFile::check_unchanged`]: crate::io::MappedFile::check_unchanged
    #[error(
        "{}: the file shrank from {mapped} to {now} bytes while it was read (truncated or rewritten by another process)",
        Shown(path)
    )]
    Shrank {
        /// The file.
        path: PathBuf,
        /// Its length when mapped.
        mapped: u64,
        /// Its length now.
        now: u64,
    },
    /// The path to read is no regular file: a directory, a FIFO, a device.
    /// (Found before anything is read, so a FIFO never blocks the reader.)
    #[error("{}: {kind}, not a safetensors file; {}", Shown(path), kind.hint())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// The file is not a safetensors file but another format a user may
    /// well have at hand (told only once the file failed to parse).
    #[error("{}: not a safetensors file but {format}; {}", Shown(path), format.hint())]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// What it looks like.
        format: ForeignFormat,
    },
    /// A tensor with no entries whose dims still multiply past what an
    /// array can index (`isize::MAX` elements), such as `[0, 2^62, 3]`.
    #[error(
        "{}: tensor `{tensor}` has shape {shape:?}: its non-zero dims multiply past what an array can index",
        Shown(path)
    )]
    ShapeTooLarge {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// `X_orig` and `X_mask` (both of float dtypes) are no pruned tensor as
    /// PyTorch writes one: the mask has another shape or holds a value
    /// other than 0 and 1, or a plain `X` is there too.
    #[error("{}: the pruned tensor `{tensor}`: {problem}", Shown(path))]
    BadPair {
        /// The file.
        path: PathBuf,
        /// The pruned tensor's name (`X`, without `_orig`).
        tensor: String,
        /// What is wrong.
        problem: PairProblem,
    },
    /// The JSON index of a sharded checkpoint is malformed, or disagrees
    /// with its shards (a tensor in a shard it does not list, a tensor it
    /// lists missing from its shard, a name in two shards, a shard named
    /// by a path that leaves the index's directory).
    #[error("{}: bad shard index: {reason}", Shown(path))]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file opened as a whole checkpoint is one shard of a sharded one:
    /// pruning it alone would, for global pruning, rank a part of the
    /// model as if it were all of it.
    #[error(
        "{}: this file is one shard of the sharded checkpoint indexed by {}; open the index or its directory to work on the whole model",
        Shown(path),
        index.display()
    )]
    OneShard {
        /// The shard.
        path: PathBuf,
        /// The index that lists it.
        index: PathBuf,
    },
    /// A directory given as a checkpoint holds no safetensors file, or
    /// several and no index to say how they form one model.
    #[error("{}: {reason}", Shown(path))]
    NoCheckpoint {
        /// The directory.
        path: PathBuf,
        /// What it holds instead.
        reason: String,
    },
    /// A directory given as a checkpoint holds no safetensors checkpoint
    /// but PyTorch files (`.bin`, `.pth`, `.pt`, or the index of `.bin`
    /// shards) that do not open as one: several files, none named
    /// `pytorch_model.bin`, and no index to say which one is the model; or
    /// any, in a build without the feature `pth`.
    ///
    /// ```
    /// # #[cfg(feature = "pth")]
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ndprune::io::{CheckpointError, CheckpointFiles, PthDirectoryProblem};
    /// let dir = std::env::temp_dir().join("ndprune-doc-pth-directory");
    /// # let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    /// std::fs::create_dir_all(&dir)?;
    /// # let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth/model.pth");
    /// for name in ["weights.bin", "training_args.bin"] {
    ///     std::fs::copy(model, dir.join(name))?;
    /// }
    /// let err = CheckpointFiles::open(&dir).unwrap_err();
    /// assert!(matches!(
    ///     &err,
    ///     CheckpointError::PthDirectory { files, problem: PthDirectoryProblem::Several, .. }
    ///         if files == &["training_args.bin", "weights.bin"]
    /// ));
    /// assert!(err.to_string().contains("name the file to open"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// # #[cfg(not(feature = "pth"))]
    /// # fn main() {}
    /// ```
    #[error("{}: {}", Shown(path), problem.describe(files))]
    PthDirectory {
        /// The directory.
        path: PathBuf,
        /// The PyTorch files in it, by name, sorted.
        files: Vec<String>,
        /// Why they do not open as a checkpoint.
        problem: PthDirectoryProblem,
    },
    /// Pruning a tensor of a file failed (streamed pruning,
    /// [`FilePruner`](crate::io::FilePruner)).
    #[error("{}: pruning `{tensor}`: {source}", Shown(path))]
    Prune {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor, by its name in the file.
        tensor: String,
        /// Why.
        source: Box<PruneError>,
    },
    /// The model's `config.json` cannot be read or rewritten for a shrink.
    #[error("{}: model config: {problem}", Shown(path))]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        problem: ConfigProblem,
    },
    /// A global pruning amount larger than what is left in the tensors
    /// selected (streamed pruning).
    #[error(
        "{}: cannot prune {amount} of the {available} entries left in the {tensors} selected tensors",
        Shown(path)
    )]
    GlobalAmount {
        /// The checkpoint (its file, index or directory).
        path: PathBuf,
        /// The amount asked for.
        amount: crate::Amount,
        /// The unpruned entries of the selected tensors.
        available: usize,
        /// How many tensors were selected.
        tensors: usize,
    },
    /// A PyTorch file (`.pth`, `.pt`, `.bin`; feature `pth`) cannot be
    /// read: damaged or truncated, its root no dictionary, a tensor of a
    /// kind safetensors cannot hold (sparse, quantized, complex). Only the
    /// feature `pth` gives this error.
    #[error("{}: cannot read it as a PyTorch checkpoint: {reason}", Shown(path))]
    Pth {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        reason: String,
    },
    /// A recipe's global step would leave a tensor with more of its
    /// entries pruned than the recipe's `max_sparsity` allows (a global
    /// step is not clamped: that would change the cut for every tensor).
    #[error(
        "{}: step {} would prune {pruned} of the {numel} entries of `{tensor}`, past the recipe's max_sparsity {cap}",
        Shown(path), step + 1
    )]
    SparsityCap {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The step, counted from 0.
        step: usize,
        /// The entries it would have pruned in all.
        pruned: usize,
        /// Its entries.
        numel: usize,
        /// The cap.
        cap: f64,
    },
    /// A file cannot be written at the path: its directory is missing, its
    /// name too long, or something other than a regular file is there.
    /// (Found before anything is written.)
    #[error("{}: cannot write the output there: {problem}", Shown(path))]
    BadTarget {
        /// The path to write.
        path: PathBuf,
        /// What is wrong.
        problem: TargetProblem,
    },
}

/// What a path that is no regular file is
/// ([`CheckpointError::NotAFile`], [`TargetProblem`]).
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointError, FileKind};
/// let err = Checkpoint::<f32>::load(std::env::temp_dir()).unwrap_err();
/// assert!(matches!(err, CheckpointError::NotAFile { kind: FileKind::Directory, .. }));
/// assert!(err.to_string().contains("is a directory"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A named pipe.
    Fifo,
    /// A character device (`/dev/null`, a terminal).
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A Unix socket.
    Socket,
    /// Anything else that is not a regular file.
    Other,
}

impl FileKind {
    /// What a path of metadata `meta` is, if not a regular file.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Option<FileKind> {
        let t = meta.file_type();
        if t.is_file() {
            return None;
        }
        if t.is_dir() {
            return Some(FileKind::Directory);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if t.is_fifo() {
                return Some(FileKind::Fifo);
            }
            if t.is_char_device() {
                return Some(FileKind::CharDevice);
            }
            if t.is_block_device() {
                return Some(FileKind::BlockDevice);
            }
            if t.is_socket() {
                return Some(FileKind::Socket);
            }
        }
        Some(FileKind::Other)
    }

    fn hint(self) -> &'static str {
        match self {
            FileKind::Directory => {
                "give the .safetensors file inside it (the shards of a sharded checkpoint one at a time)"
            }
            FileKind::Fifo | FileKind::Socket => {
                "a checkpoint is read through a memory map: save the stream to a file first"
            }
            _ => "give a regular file",
        }
    }
}

impl FileKind {
    /// The kind with its article: "a directory".
    fn noun(self) -> &'static str {
        match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            FileKind::Other => "something other than a regular file",
        }
    }
}

/// "is a directory", "is a FIFO (named pipe)", …
impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "is {}", self.noun())
    }
}

/// Formats a file given for a safetensors file may turn out to be
/// ([`CheckpointError::NotSafetensors`]).
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointError, ForeignFormat};
/// let err = Checkpoint::<f32>::from_bytes(b"PK\x03\x04 a zip archive").unwrap_err();
/// assert!(matches!(err, CheckpointError::NotSafetensors { format: ForeignFormat::TorchZip, .. }));
/// assert!(err.to_string().contains("safetensors.torch.save_file"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForeignFormat {
    /// A zip archive: what `torch.save` writes (`.pt`, `.pth`, `.bin`).
    TorchZip,
    /// A pickle: what `torch.save` wrote before PyTorch 1.6.
    TorchPickle,
    /// The JSON index of a sharded checkpoint (`model.safetensors.index.json`).
    ShardIndex,
    /// Some other JSON document.
    Json,
}

impl ForeignFormat {
    /// What `bytes` (which failed to parse as safetensors) look like, if
    /// one of these.
    pub(crate) fn sniff(bytes: &[u8]) -> Option<ForeignFormat> {
        if bytes.starts_with(b"PK\x03\x04") {
            return Some(ForeignFormat::TorchZip);
        }
        if let [0x80, 2..=5, ..] = bytes {
            return Some(ForeignFormat::TorchPickle);
        }
        let text = bytes.trim_ascii_start();
        if text.starts_with(b"{") {
            // The index's `weight_map` comes early; no need to scan a large file.
            let head = &text[..text.len().min(1 << 16)];
            let index = head.windows(12).any(|w| w == b"\"weight_map\"");
            return Some(if index {
                ForeignFormat::ShardIndex
            } else {
                ForeignFormat::Json
            });
        }
        None
    }

    fn hint(self) -> &'static str {
        match self {
            ForeignFormat::TorchZip | ForeignFormat::TorchPickle => {
                "build ndprune with the feature `pth` to read it (CheckpointFiles::open and the \
                 command line then convert it), or convert it in Python first: \
                 safetensors.torch.save_file(torch.load(IN), OUT) \
                 (for a state_dict; a whole pickled model needs model.state_dict())"
            }
            ForeignFormat::ShardIndex => "give the shards its weight_map lists, one file at a time",
            ForeignFormat::Json => "a safetensors file starts with an 8-byte header length",
        }
    }
}

impl fmt::Display for ForeignFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForeignFormat::TorchZip => "a zip archive, as torch.save writes (.pt, .pth, .bin)",
            ForeignFormat::TorchPickle => "a pickle, as torch.save wrote before PyTorch 1.6",
            ForeignFormat::ShardIndex => {
                "the JSON index of a sharded checkpoint (model.safetensors.index.json)"
            }
            ForeignFormat::Json => "a JSON document",
        })
    }
}

/// Why `X_orig` and `X_mask` are no pruned tensor ([`CheckpointError::BadPair`]).
///
/// ```
/// use ndprune::io::{CheckpointError, PairProblem, SafetensorsView};
/// let header = br#"{"w_orig":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w_mask":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header);
/// file.extend_from_slice(&1.0f32.to_le_bytes());
/// file.extend_from_slice(&0.5f32.to_le_bytes());
/// let err = SafetensorsView::parse(&file).unwrap_err();
/// assert!(matches!(err, CheckpointError::BadPair { problem: PairProblem::NotBinary { index: 0, .. }, .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PairProblem {
    /// The mask's shape is not the original's.
    ShapeMismatch {
        /// The shape of `X_orig`.
        orig: Vec<usize>,
        /// The shape of `X_mask`.
        mask: Vec<usize>,
    },
    /// The mask holds a value other than 0 and 1.
    NotBinary {
        /// Flat (row-major) index of the first bad entry.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A plain tensor `X` is in the file too.
    AlsoPlain,
    /// `X_orig` and `X_mask` have different float dtypes. PyTorch keeps a
    /// mask in its original's dtype; a
    /// [`MixedCheckpoint`](crate::io::MixedCheckpoint) holds a pruned
    /// tensor in one dtype and refuses such a pair rather than convert
    /// either tensor (the streaming [`FilePruner`](crate::io::FilePruner)
    /// keeps each in its own).
    MixedDtypes {
        /// The dtype of `X_orig`.
        orig: safetensors::Dtype,
        /// The dtype of `X_mask`.
        mask: safetensors::Dtype,
    },
}

impl fmt::Display for PairProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairProblem::ShapeMismatch { orig, mask } => write!(
                f,
                "its mask has shape {mask:?}, its original shape {orig:?}"
            ),
            PairProblem::NotBinary { index, value } => write!(
                f,
                "its mask holds {value} at flat index {index}: masks hold only 0 and 1"
            ),
            PairProblem::AlsoPlain => {
                f.write_str("the file holds it plain too, beside its _orig and _mask")
            }
            PairProblem::MixedDtypes { orig, mask } => write!(
                f,
                "its original is {orig} and its mask {mask}: a mixed checkpoint holds a pruned tensor in one dtype"
            ),
        }
    }
}

/// Why a file cannot be written at a path ([`CheckpointError::BadTarget`]).
///
/// ```
/// use ndprune::io::{CheckpointError, PendingFile, TargetProblem};
/// let err = PendingFile::check_target("/no/such/dir/out.safetensors").unwrap_err();
/// assert!(matches!(err, CheckpointError::BadTarget { problem: TargetProblem::NoDirectory, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetProblem {
    /// The path names no file (it ends in `..` or `/`, or is empty).
    NoFileName,
    /// Its directory does not exist.
    NoDirectory,
    /// What should be its directory is not one.
    ParentNotADirectory,
    /// Its name is longer than the file system allows.
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The most the file system allows.
        max: usize,
    },
    /// Something other than a regular file is at the path.
    NotAFile(FileKind),
    /// A symbolic link to something other than a regular file is at the path.
    SymlinkTo(FileKind),
    /// A symbolic link to nothing is at the path.
    DanglingSymlink,
    /// A directory output's path holds a directory that is not empty (a
    /// directory output replaces nothing).
    NotEmpty,
    /// A directory output's path holds something other than a directory
    /// (a file, a symbolic link), which a directory output does not
    /// replace.
    NotADirectory,
    /// A re-sharded output's maximum shard size is refused
    /// ([`Output::Shards`](super::Output::Shards)).
    ShardSize(super::ShardSizeError),
    /// A file of the input that is copied to a directory output (say
    /// `config.json`) has the name of a file the output writes.
    NameClash {
        /// The input's file.
        other: PathBuf,
    },
    /// The path is a file of the input
    /// ([`CheckpointFiles::input_files`](super::CheckpointFiles::input_files)),
    /// however it is spelled (a link, `..`): the input is never written.
    InputFile {
        /// The input's file.
        file: PathBuf,
    },
    /// This operation does not write that kind of output.
    Unsupported {
        /// What is not offered.
        what: &'static str,
    },
}

impl fmt::Display for TargetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetProblem::NoFileName => f.write_str("the path names no file"),
            TargetProblem::NoDirectory => f.write_str("its directory does not exist"),
            TargetProblem::ParentNotADirectory => f.write_str("its parent is not a directory"),
            TargetProblem::NameTooLong { len, max } => write!(
                f,
                "its name is {len} bytes long, the file system allows {max}"
            ),
            TargetProblem::NotAFile(kind) => write!(f, "it {kind}, not a regular file"),
            TargetProblem::SymlinkTo(kind) => write!(
                f,
                "it is a symbolic link to {}, not to a regular file",
                kind.noun()
            ),
            TargetProblem::DanglingSymlink => f.write_str("it is a symbolic link to nothing"),
            TargetProblem::NotEmpty => {
                f.write_str("a directory that is not empty is there (choose a new directory)")
            }
            TargetProblem::ShardSize(e) => write!(f, "{e}"),
            TargetProblem::NameClash { other } => write!(
                f,
                "the input's file {} would be copied over a file written there",
                other.display()
            ),
            TargetProblem::NotADirectory => f.write_str(
                "something other than a directory is there (a file, a symbolic link), and a directory output replaces nothing",
            ),
            TargetProblem::InputFile { file } => write!(
                f,
                "it is {}, a file of the input, and the input is never written",
                Shown(file)
            ),
            TargetProblem::Unsupported { what } => write!(f, "not offered: {what}"),
        }
    }
}

/// The `path` field of any variant (every variant has one), by reference
/// or mutably as `$err` is: the one list of variants `path` and `at` use.
macro_rules! path_of {
    ($err:expr) => {
        match $err {
            CheckpointError::Io { path, .. }
            | CheckpointError::Truncated { path, .. }
            | CheckpointError::BadHeader { path, .. }
            | CheckpointError::UnknownDtype { path, .. }
            | CheckpointError::BadOffsets { path, .. }
            | CheckpointError::SizeMismatch { path, .. }
            | CheckpointError::BadName { path, .. }
            | CheckpointError::WrongDtype { path, .. }
            | CheckpointError::Restore { path, .. }
            | CheckpointError::WriteOrder { path, .. }
            | CheckpointError::Safetensors { path, .. }
            | CheckpointError::Shrank { path, .. }
            | CheckpointError::NotAFile { path, .. }
            | CheckpointError::NotSafetensors { path, .. }
            | CheckpointError::ShapeTooLarge { path, .. }
            | CheckpointError::BadPair { path, .. }
            | CheckpointError::BadTarget { path, .. }
            | CheckpointError::BadIndex { path, .. }
            | CheckpointError::OneShard { path, .. }
            | CheckpointError::NoCheckpoint { path, .. }
            | CheckpointError::PthDirectory { path, .. }
            | CheckpointError::Prune { path, .. }
            | CheckpointError::GlobalAmount { path, .. }
            | CheckpointError::Pth { path, .. }
            | CheckpointError::SparsityCap { path, .. }
            | CheckpointError::Config { path, .. } => path,
        }
    };
}

impl CheckpointError {
    /// The file the error is about (empty for bytes in memory).
    ///
    /// ```
    /// use ndprune::io::Checkpoint;
    /// let err = Checkpoint::<f32>::load("/no/such/dir/model.safetensors").unwrap_err();
    /// assert_eq!(err.path(), std::path::Path::new("/no/such/dir/model.safetensors"));
    /// ```
    pub fn path(&self) -> &Path {
        path_of!(self)
    }

    /// Sets the file an error raised on bytes is about.
    pub(crate) fn at(mut self, file: &Path) -> Self {
        let path = path_of!(&mut self);
        if path.as_os_str().is_empty() {
            *path = file.to_path_buf();
        }
        self
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        CheckpointError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// A malformed header.
    pub(crate) fn header(reason: impl Into<String>) -> Self {
        CheckpointError::BadHeader {
            path: PathBuf::new(),
            reason: reason.into(),
        }
    }
}

/// A path as errors show it: `<bytes>` when there is none.
struct Shown<'a>(&'a PathBuf);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.as_os_str().is_empty() {
            f.write_str("<bytes>")
        } else {
            write!(f, "{}", self.0.display())
        }
    }
}

/// A byte count as errors show it.
struct Needed(Option<u64>);

impl fmt::Display for Needed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n} bytes"),
            None => f.write_str("no whole number of bytes that fits in memory"),
        }
    }
}

/// What is wrong with a model's `config.json` (see
/// [`CheckpointError::Config`]).
///
/// ```
/// use ndprune::io::ConfigProblem;
/// let p = ConfigProblem::MissingField { field: "num_attention_heads" };
/// assert_eq!(p.to_string(), "no `num_attention_heads`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// Not JSON.
    Json {
        /// The parser's message.
        reason: String,
    },
    /// JSON, but not an object.
    NotAnObject,
    /// A field the shrink needs is missing.
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// A field is not a positive whole number (or a list of them, for a
    /// per-layer `intermediate_size`).
    BadField {
        /// The field.
        field: &'static str,
    },
    /// `num_attention_heads` is not a multiple of `num_key_value_heads`.
    HeadsNotDivisible {
        /// `num_attention_heads`.
        heads: usize,
        /// `num_key_value_heads`.
        kv_heads: usize,
    },
    /// A per-layer list does not have one entry per decoder layer.
    ListLength {
        /// The field.
        field: &'static str,
        /// Its entries.
        len: usize,
        /// The decoder layers in the checkpoint.
        layers: usize,
    },
    /// The config does not describe the checkpoint beside it: a field
    /// disagrees with the tensors' shapes.
    Disagrees {
        /// The field.
        field: &'static str,
        /// What the config says.
        config: String,
        /// What the tensors say.
        tensors: String,
    },
    /// The shrink would remove every channel of a decoder layer's group
    /// (all its MLP channels, or all its key/value heads), which a config
    /// cannot describe (a width of 0): prune less.
    NothingKept {
        /// `intermediate_size` or `num_key_value_heads`.
        what: &'static str,
        /// The group's first tensor (naming the layer).
        tensor: String,
    },
    /// Layers would keep different widths, which the config's single
    /// number cannot say.
    NonUniform {
        /// The config field.
        what: &'static str,
        /// The widths per layer, in layer order.
        widths: Vec<usize>,
    },
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Json { reason } => write!(f, "not JSON: {reason}"),
            ConfigProblem::NotAnObject => f.write_str("not a JSON object"),
            ConfigProblem::MissingField { field } => write!(f, "no `{field}`"),
            ConfigProblem::BadField { field } => {
                write!(f, "`{field}` is not a positive whole number that fits")
            }
            ConfigProblem::HeadsNotDivisible { heads, kv_heads } => write!(
                f,
                "`num_attention_heads` ({heads}) is not a multiple of `num_key_value_heads` ({kv_heads})"
            ),
            ConfigProblem::ListLength { field, len, layers } => write!(
                f,
                "`{field}` lists {len} widths for the checkpoint's {layers} decoder layers"
            ),
            ConfigProblem::Disagrees {
                field,
                config,
                tensors,
            } => write!(
                f,
                "`{field}` says {config} but the tensors beside it say {tensors}: the config is not this checkpoint's"
            ),
            ConfigProblem::NothingKept { what, tensor } => write!(
                f,
                "the layer of {tensor} would keep no `{what}` (a width of 0, which no config describes): prune less"
            ),
            ConfigProblem::NonUniform { what, widths } => write!(
                f,
                "layers would keep different widths ({widths:?}) but `{what}` is one number for all: prune every layer alike"
            ),
        }
    }
}

/// Why the PyTorch files of a directory do not open as a checkpoint (see
/// [`CheckpointError::PthDirectory`]).
///
/// ```
/// use ndprune::io::PthDirectoryProblem;
/// let files = ["a.bin".to_string(), "b.pt".to_string()];
/// assert!(PthDirectoryProblem::Several.describe(&files).contains("a.bin, b.pt"));
/// assert!(PthDirectoryProblem::FeatureOff.describe(&files).contains("feature `pth`"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PthDirectoryProblem {
    /// Several PyTorch files, none named `pytorch_model.bin`, and no index
    /// to say which one is the model
    /// (or how they form one).
    Several,
    /// PyTorch files, and a build without the feature `pth` that reads
    /// them.
    FeatureOff,
}

impl PthDirectoryProblem {
    /// The message for a directory holding `files` (their names).
    pub fn describe(self, files: &[String]) -> String {
        let listed = files.join(", ");
        match self {
            PthDirectoryProblem::Several => format!(
                "the directory holds no safetensors checkpoint but {} PyTorch files ({listed}), none named pytorch_model.bin, and no index to say which one is the model; name the file to open",
                files.len()
            ),
            PthDirectoryProblem::FeatureOff => format!(
                "the directory holds no safetensors checkpoint but PyTorch files ({listed}); build ndprune with the feature `pth` to read them (CheckpointFiles::open and the command line then convert them), or convert them in Python first: safetensors.torch.save_file(torch.load(IN), OUT)"
            ),
        }
    }
}
