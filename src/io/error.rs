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
            | CheckpointError::Safetensors { path, .. } => path,
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
