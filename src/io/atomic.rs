//! Atomic file replacement: write a temporary file beside the target, sync
//! it, rename it over the target.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::CheckpointError;

/// A file being written that appears at its path only once complete.
///
/// Bytes go to a temporary file in the target's directory; [`commit`]
/// flushes it, syncs it to disk, and renames it over the target, so a
/// reader sees either the old file or the whole new one, never a part.
/// Dropping a `PendingFile` without committing (after an error, say)
/// removes the temporary file and leaves the target untouched.
///
/// [`commit`]: PendingFile::commit
///
/// ```
/// use std::io::Write;
/// use ndprune::io::PendingFile;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join("ndprune-doc-pending.txt");
/// let mut file = PendingFile::create(&path)?;
/// file.write_all(b"hello")?;
/// file.commit()?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok(()) }
/// ```
pub struct PendingFile {
    out: BufWriter<NamedTempFile>,
    target: PathBuf,
}

impl fmt::Debug for PendingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingFile")
            .field("target", &self.target)
            .field("temp", &self.out.get_ref().path())
            .finish()
    }
}

impl PendingFile {
    /// Starts writing the file that will replace `path`.
    ///
    /// ```
    /// use ndprune::io::PendingFile;
    /// assert!(PendingFile::create("/no/such/dir/out.safetensors").is_err());
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let target = path.as_ref().to_path_buf();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{stem}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // As `File::create` would: 0o666 less the umask (not tempfile's 0o600).
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder
            .tempfile_in(&dir)
            .map_err(|e| CheckpointError::io(&target, "creating a temporary file for", e))?;
        Ok(PendingFile {
            out: BufWriter::with_capacity(1 << 20, temp),
            target,
        })
    }

    /// The path the file will have once committed.
    ///
    /// ```
    /// # use ndprune::io::PendingFile;
    /// let path = std::env::temp_dir().join("ndprune-doc-target.txt");
    /// assert_eq!(PendingFile::create(&path).unwrap().target(), path);
    /// ```
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames the file into place.
    ///
    /// ```
    /// # use ndprune::io::PendingFile;
    /// let path = std::env::temp_dir().join("ndprune-doc-commit.txt");
    /// PendingFile::create(&path).unwrap().commit().unwrap();
    /// assert_eq!(std::fs::read(&path).unwrap(), b"");
    /// ```
    pub fn commit(self) -> Result<(), CheckpointError> {
        let target = self.target;
        let temp = self
            .out
            .into_inner()
            .map_err(|e| CheckpointError::io(&target, "writing", e.into_error()))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| CheckpointError::io(&target, "syncing", e))?;
        temp.persist(&target)
            .map_err(|e| CheckpointError::io(&target, "renaming the temporary file to", e.error))?;
        sync_parent(&target);
        Ok(())
    }
}

/// Syncs the directory holding `path`, so the rename itself is durable
/// (best effort: not every platform can open a directory).
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
