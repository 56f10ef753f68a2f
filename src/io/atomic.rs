//! Atomic file replacement: write a temporary file beside the target, sync
//! it, rename it over the target.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::error::{FileKind, TargetProblem};
use super::CheckpointError;

/// A file being written that appears at its path only once complete.
///
/// Bytes go to a temporary file in the target's directory; [`commit`]
/// flushes it, syncs it to disk, and renames it over the target, so a
/// reader sees either the old file or the whole new one, never a part.
/// Dropping a `PendingFile` without committing (after an error, say, or
/// while a panic unwinds) removes the temporary file and leaves the target
/// untouched. An exit that does not unwind (a signal, an abort) leaves the
/// temporary file `.<name>.XXXXXX.tmp` beside the target: a program that
/// handles signals can remove [`PendingFile::temp_path`] in its handler,
/// as the `ndprune` command does. Nothing can clean up after `SIGKILL`.
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
    behind: DropBehind,
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
    /// Starts writing the file that will replace `path`. The new file gets
    /// the permissions of the file it replaces, else those a new file
    /// gets (`0o666` less the umask). Fails first, touching nothing, if
    /// no file can be written there ([`PendingFile::check_target`]).
    ///
    /// ```
    /// use ndprune::io::PendingFile;
    /// assert!(PendingFile::create("/no/such/dir/out.safetensors").is_err());
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::create_inner(path.as_ref(), None)
    }

    /// Like [`PendingFile::create`], but a new file (one that replaces
    /// none) gets the permissions of `like`, such as the input it is
    /// made from: a private input gives a private output.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use ndprune::io::PendingFile;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir();
    /// let (input, output) = (dir.join("ndprune-doc-like-in"), dir.join("ndprune-doc-like-out"));
    /// std::fs::write(&input, b"secret")?;
    /// std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o600))?;
    /// let _ = std::fs::remove_file(&output);
    /// PendingFile::create_like(&output, &input)?.commit()?;
    /// assert_eq!(std::fs::metadata(&output)?.permissions().mode() & 0o777, 0o600);
    /// # Ok(()) }
    /// ```
    pub fn create_like(
        path: impl AsRef<Path>,
        like: impl AsRef<Path>,
    ) -> Result<Self, CheckpointError> {
        let like = like.as_ref();
        let perms = std::fs::metadata(like)
            .map_err(|e| CheckpointError::io(like, "reading the permissions of", e))?
            .permissions();
        Self::create_inner(path.as_ref(), Some(perms))
    }

    fn create_inner(
        target: &Path,
        new_perms: Option<std::fs::Permissions>,
    ) -> Result<Self, CheckpointError> {
        let replaced = Self::check_target(target)?;
        let perms = replaced.or(new_perms);
        let target = target.to_path_buf();
        let dir = parent_dir(&target);
        let prefix = temp_prefix(&target);
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // As `File::create` would: 0o666 less the umask (not tempfile's 0o600).
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder
            .tempfile_in(dir)
            .map_err(|e| CheckpointError::io(&target, "creating a temporary file for", e))?;
        if let Some(perms) = perms {
            // On the open file: exactly these bits, whatever the umask.
            temp.as_file()
                .set_permissions(perms)
                .map_err(|e| CheckpointError::io(&target, "setting the permissions of", e))?;
        }
        Ok(PendingFile {
            out: BufWriter::with_capacity(BUFFER, temp),
            target,
            behind: DropBehind::default(),
        })
    }

    /// Checks that a file can be written at `path` and renamed into
    /// place, before any work: its directory exists, its name fits the
    /// file system, and what is there now, if anything, is a regular file
    /// or a symbolic link to one (never a directory, a device such as
    /// `/dev/null`, a FIFO, or a dangling link). Returns the permissions
    /// of the file that would be replaced. ([`PendingFile::create`] calls
    /// it; a program can call it early to report a bad output path before
    /// doing any work.)
    ///
    /// A symbolic link at `path` is replaced by the new file; the file it
    /// pointed to is left as it was.
    ///
    /// ```
    /// use ndprune::io::{CheckpointError, FileKind, PendingFile, TargetProblem};
    /// let err = PendingFile::check_target(std::env::temp_dir()).unwrap_err();
    /// assert!(matches!(err, CheckpointError::BadTarget { problem: TargetProblem::NotAFile(FileKind::Directory), .. }));
    /// assert!(PendingFile::check_target(std::env::temp_dir().join("new.safetensors")).is_ok());
    /// ```
    pub fn check_target(
        path: impl AsRef<Path>,
    ) -> Result<Option<std::fs::Permissions>, CheckpointError> {
        let path = path.as_ref();
        let bad = |problem| CheckpointError::BadTarget {
            path: path.to_path_buf(),
            problem,
        };
        let Some(name) = path.file_name() else {
            return Err(bad(TargetProblem::NoFileName));
        };
        match std::fs::metadata(parent_dir(path)) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(bad(TargetProblem::ParentNotADirectory)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad(TargetProblem::NoDirectory))
            }
            Err(e) if e.raw_os_error() == Some(ENOTDIR) => {
                return Err(bad(TargetProblem::ParentNotADirectory))
            }
            Err(e) => return Err(CheckpointError::io(path, "reading the directory of", e)),
        }
        let len = name.as_encoded_bytes().len();
        if len > NAME_MAX {
            return Err(bad(TargetProblem::NameTooLong { len, max: NAME_MAX }));
        }
        let link = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CheckpointError::io(path, "reading the type of", e)),
        };
        if !link.file_type().is_symlink() {
            return match FileKind::of(&link) {
                None => Ok(Some(link.permissions())),
                Some(kind) => Err(bad(TargetProblem::NotAFile(kind))),
            };
        }
        match std::fs::metadata(path) {
            Ok(meta) => match FileKind::of(&meta) {
                None => Ok(Some(meta.permissions())),
                Some(kind) => Err(bad(TargetProblem::SymlinkTo(kind))),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(bad(TargetProblem::DanglingSymlink))
            }
            Err(e) => Err(CheckpointError::io(path, "reading the type of", e)),
        }
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

    /// The temporary file being written, beside the target (for a program
    /// that removes it on a signal; dropping the `PendingFile` removes it
    /// otherwise).
    ///
    /// ```
    /// # use ndprune::io::PendingFile;
    /// let path = std::env::temp_dir().join("ndprune-doc-temp.txt");
    /// let file = PendingFile::create(&path).unwrap();
    /// let temp = file.temp_path().to_path_buf();
    /// assert!(temp.exists() && temp.parent() == path.parent());
    /// drop(file);
    /// assert!(!temp.exists());
    /// ```
    pub fn temp_path(&self) -> &Path {
        self.out.get_ref().path()
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

/// The longest file name the file systems ndprune writes to take (Linux's
/// and the BSDs' `NAME_MAX`; also Windows' 255 UTF-16 units, roughly).
const NAME_MAX: usize = 255;

#[cfg(unix)]
const ENOTDIR: i32 = libc::ENOTDIR;
#[cfg(not(unix))]
const ENOTDIR: i32 = i32::MIN;

/// The directory `path` is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The most bytes of the target's name a temporary name repeats: with the
/// dot, the random part and `.tmp`, well under [`NAME_MAX`] for any target
/// name that fits.
const TEMP_STEM: usize = 200;

/// The prefix of temporary files beside `target`: they are named
/// `.<name>.XXXXXX.tmp`, the name cut to [`TEMP_STEM`] bytes, so the
/// temporary's name is never too long where the target's is not.
fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .expect("check_target made sure the path names a file")
        .to_string_lossy();
    let mut cut = name.len().min(TEMP_STEM);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}.", &name[..cut])
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

/// The buffer of a [`PendingFile`].
const BUFFER: usize = 1 << 20;

/// Writes a large file out to disk as it goes, and takes what is on disk
/// out of the page cache: a file of many gigabytes written once would
/// otherwise fill the cache and push out the pages of other files (the
/// input a streamed run reads a second time), and leave gigabytes to
/// write at the final sync. Only advice to the kernel: the bytes written
/// and their durability (the sync at commit) are the same without it.
#[derive(Debug, Default)]
struct DropBehind {
    /// Bytes written to the file (through the buffer).
    written: u64,
    /// Where the window whose writing was started begins.
    started: u64,
    /// Bytes up to which the file is on disk and out of the cache.
    dropped: u64,
}

impl DropBehind {
    /// Bytes in a window written out at once.
    const WINDOW: u64 = 32 << 20;

    /// Counts `n` more bytes written to `file`; once a window is full, starts
    /// writing it out, waits for the window before it, and drops that one
    /// from the cache (on Linux; elsewhere nothing happens).
    fn wrote(&mut self, file: &File, n: usize) {
        self.written += n as u64;
        // What the buffer may still hold is not in the file yet.
        let end = self.written.saturating_sub(BUFFER as u64);
        if end < self.started + Self::WINDOW {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            let off = |x: u64| x as libc::off64_t;
            // SAFETY: plain system calls on an open descriptor; they only
            // schedule, wait for or drop cached pages of the file. Their
            // failures change nothing written: they are ignored.
            unsafe {
                libc::sync_file_range(
                    fd,
                    off(self.started),
                    off(end - self.started),
                    libc::SYNC_FILE_RANGE_WRITE,
                );
                if self.started > self.dropped {
                    let (from, len) = (off(self.dropped), off(self.started - self.dropped));
                    libc::sync_file_range(
                        fd,
                        from,
                        len,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    );
                    libc::posix_fadvise(
                        fd,
                        self.dropped as libc::off_t,
                        (self.started - self.dropped) as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    );
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.dropped = self.started;
        self.started = end;
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.behind.wrote(self.out.get_ref().as_file(), n);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)?;
        self.behind.wrote(self.out.get_ref().as_file(), buf.len());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A directory being written that appears at its path only once complete.
///
/// Files go to a temporary directory beside the target
/// (`.<name>.XXXXXX.tmp`); [`PendingDir::commit`] syncs it and renames it
/// to the target, so a reader sees no directory or the whole new one.
/// The target must not exist, or be an empty directory: a directory
/// output replaces nothing ([`PendingDir::check_target`]). Dropping a
/// `PendingDir` without committing removes the temporary directory and
/// everything in it. As for [`PendingFile`], an exit that does not unwind
/// leaves the temporary directory; a program that handles signals can
/// remove [`PendingDir::temp_path`] in its handler.
///
/// ```
/// use ndprune::io::PendingDir;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join("ndprune-doc-pending-dir");
/// let _ = std::fs::remove_dir_all(&path);
/// let dir = PendingDir::create(&path)?;
/// std::fs::write(dir.temp_path().join("a.txt"), b"hello")?;
/// assert!(!path.exists());
/// dir.commit()?;
/// assert_eq!(std::fs::read(path.join("a.txt"))?, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PendingDir {
    temp: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl PendingDir {
    /// Starts writing the directory `path` (see the type's documentation).
    ///
    /// ```
    /// use ndprune::io::PendingDir;
    /// assert!(PendingDir::create("/no/such/parent/out").is_err());
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let target = path.as_ref().to_path_buf();
        Self::check_target(&target)?;
        let temp = tempfile::Builder::new()
            .prefix(&temp_prefix(&target))
            .suffix(".tmp")
            .tempdir_in(parent_dir(&target))
            .map_err(|e| CheckpointError::io(&target, "creating a temporary directory for", e))?;
        Ok(PendingDir {
            temp: Some(temp),
            target,
        })
    }

    /// Checks, before any work, that a directory can be made at `path`:
    /// its parent exists, its name fits, and nothing is there but an empty
    /// directory.
    ///
    /// ```
    /// use ndprune::io::{CheckpointError, PendingDir, TargetProblem};
    /// let err = PendingDir::check_target("/no/such/parent/out").unwrap_err();
    /// assert!(matches!(err, CheckpointError::BadTarget { problem: TargetProblem::NoDirectory, .. }));
    /// let file = std::env::temp_dir().join("ndprune-doc-dir-target-file");
    /// std::fs::write(&file, b"")?;
    /// let err = PendingDir::check_target(&file).unwrap_err();
    /// assert!(matches!(err, CheckpointError::BadTarget { problem: TargetProblem::NotADirectory, .. }));
    /// # std::fs::remove_file(&file)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_target(path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        let path = path.as_ref();
        let bad = |problem| CheckpointError::BadTarget {
            path: path.to_path_buf(),
            problem,
        };
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // As for a file: a parent that is a directory, a name that fits.
                PendingFile::check_target(path).map(|_| ())
            }
            Err(e) => Err(CheckpointError::io(path, "reading the type of", e)),
            Ok(meta) if meta.is_dir() => {
                let mut entries =
                    std::fs::read_dir(path).map_err(|e| CheckpointError::io(path, "listing", e))?;
                if entries.next().is_some() {
                    Err(bad(TargetProblem::NotEmpty))
                } else {
                    Ok(())
                }
            }
            // A file, a link (even to an empty directory), anything else:
            // a directory output replaces nothing.
            Ok(_) => Err(bad(TargetProblem::NotADirectory)),
        }
    }

    /// The temporary directory to write into.
    ///
    /// ```
    /// # use ndprune::io::PendingDir;
    /// let path = std::env::temp_dir().join("ndprune-doc-pending-dir-temp");
    /// let _ = std::fs::remove_dir_all(&path);
    /// let dir = PendingDir::create(&path).unwrap();
    /// let temp = dir.temp_path().to_path_buf();
    /// assert!(temp.is_dir());
    /// drop(dir);
    /// assert!(!temp.exists() && !path.exists());
    /// ```
    pub fn temp_path(&self) -> &Path {
        self.temp
            .as_ref()
            .expect("the temporary directory lives until commit or drop")
            .path()
    }

    /// Writes a small file `name` into the directory, atomically, with the
    /// permissions of `like`.
    pub(crate) fn write_file(
        &self,
        name: &Path,
        bytes: &[u8],
        like: &Path,
    ) -> Result<(), CheckpointError> {
        let mut file = PendingFile::create_like(self.temp_path().join(name), like)?;
        file.write_all(bytes)
            .map_err(|e| CheckpointError::io(&self.target.join(name), "writing", e))?;
        file.commit()
    }

    /// Copies the file `from` into the directory as `name` (its
    /// permissions too).
    pub(crate) fn copy_file(&self, from: &Path, name: &Path) -> Result<(), CheckpointError> {
        let to = self.temp_path().join(name);
        std::fs::copy(from, &to).map_err(|e| CheckpointError::io(from, "copying", e))?;
        File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(|e| CheckpointError::io(&to, "syncing", e))
    }

    /// Syncs the directory and renames it into place.
    ///
    /// ```
    /// # use ndprune::io::PendingDir;
    /// let path = std::env::temp_dir().join("ndprune-doc-pending-dir-commit");
    /// let _ = std::fs::remove_dir_all(&path);
    /// PendingDir::create(&path).unwrap().commit().unwrap();
    /// assert!(path.is_dir());
    /// ```
    pub fn commit(mut self) -> Result<(), CheckpointError> {
        let temp = self
            .temp
            .take()
            .expect("the temporary directory lives until commit or drop");
        if let Ok(d) = File::open(temp.path()) {
            let _ = d.sync_all();
        }
        // Renaming over an empty directory is allowed; over anything else
        // the rename fails and the temporary is removed.
        std::fs::rename(temp.path(), &self.target).map_err(|e| {
            CheckpointError::io(&self.target, "renaming the temporary directory to", e)
        })?;
        // Renamed: nothing left for the guard to remove.
        let _ = temp.keep();
        sync_parent(&self.target);
        Ok(())
    }
}
