//! No temporary output left behind on a signal that can be caught.
//!
//! The output is written to a temporary file beside OUT and renamed over
//! it at the end ([`PendingFile`](ndprune::io::PendingFile)). Every exit
//! that unwinds (an error, a panic) drops the temporary file, which removes
//! it. For the exits that do not unwind, a signal handler removes it:
//!
//! - SIGINT, SIGTERM, SIGHUP: the temporary file is removed, then the
//!   signal does what it does by default (the program ends by it).
//! - SIGABRT (a failed allocation, a stack overflow): removed, then the
//!   abort goes on.
//! - SIGBUS: the input's memory map went past the end of the file, which
//!   means the input was truncated while ndprune read it. Removed, the
//!   error reported, exit status 1.
//!
//! A directory output (a sharded checkpoint) is written to a temporary
//! directory beside OUT, renamed into place at the end; the handlers
//! remove its files and then it (on Linux; elsewhere the directory stays).
//!
//! A PyTorch input (`.pth`, `.bin` shards) is converted to safetensors in a
//! temporary directory under the system's (`TMPDIR`), registered as it is
//! created (signals held back meanwhile, as for the output): the handlers
//! above remove that directory's files and then it too (on Linux), during
//! the conversion as after it.
//!
//! SIGKILL cannot be caught: after `kill -9` the temporary file or
//! directory (`.OUT.XXXXXX.tmp`, beside OUT) stays, and OUT is untouched.
//!
//! The handlers only read atomics and call `unlink`, `write` and `_exit`,
//! all async-signal-safe. The path is registered right after the file is
//! created; a signal that arrives while it is being created is held back
//! until it is registered, so no moment leaves a file unknown.

#[cfg(unix)]
mod imp {
    use std::ffi::CString;
    use std::os::raw::c_char;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};

    use signal_hook::consts::{SIGABRT, SIGBUS, SIGHUP, SIGINT, SIGTERM};

    /// The temporary file to remove (a leaked C string), or null.
    static TEMP: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
    /// The directory of a PyTorch input's conversion (a leaked C string),
    /// or null.
    static CONVERTED: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
    /// Set while the temporary file is being created and not yet registered.
    static CREATING: AtomicBool = AtomicBool::new(false);
    /// A terminating signal held back while `CREATING`.
    static HELD: AtomicI32 = AtomicI32::new(0);
    /// The message SIGBUS prints (a leaked buffer) and its length.
    static BUS_MESSAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static BUS_LEN: AtomicUsize = AtomicUsize::new(0);

    /// Installs the handlers; `input` is named in the SIGBUS message.
    pub fn install(input: &Path) {
        let msg = format!(
            "ndprune: error: {}: the file was truncated or replaced while it was read \
             (SIGBUS on its memory map); nothing was written\n",
            input.display()
        )
        .into_bytes()
        .into_boxed_slice();
        BUS_LEN.store(msg.len(), Ordering::SeqCst);
        BUS_MESSAGE.store(Box::leak(msg).as_mut_ptr(), Ordering::SeqCst);
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGBUS] {
            // SAFETY: `on_signal` is async-signal-safe (see the module docs).
            // SIGBUS is not in signal-hook's forbidden list; registering
            // may still fail on an odd platform, which leaves the default.
            let _ = unsafe { signal_hook::low_level::register(sig, move || on_signal(sig)) };
        }
    }

    /// Removes the conversion directory: its files, then it.
    fn remove_converted() {
        let p = CONVERTED.load(Ordering::SeqCst);
        if !p.is_null() {
            remove_dir_files(p);
            // SAFETY: a leaked, never freed, NUL-terminated string.
            unsafe { libc::rmdir(p) };
        }
    }

    fn remove_temp() {
        let p = TEMP.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a leaked, never freed, NUL-terminated string.
            if unsafe { libc::unlink(p) } != 0 {
                // A temporary directory (a sharded output): its files, then it.
                remove_dir_files(p);
                // SAFETY: as above.
                unsafe { libc::rmdir(p) };
            }
        }
    }

    /// Removes the files of the directory `dir` (a NUL-terminated path)
    /// with system calls only (no allocation): async-signal-safe.
    #[cfg(target_os = "linux")]
    fn remove_dir_files(dir: *const c_char) {
        // SAFETY: open, getdents64, unlinkat and close are system calls on
        // a descriptor this function owns and a buffer on its stack; the
        // names getdents64 writes are NUL-terminated within the buffer.
        unsafe {
            let fd = libc::open(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
            if fd < 0 {
                return;
            }
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::syscall(
                    libc::SYS_getdents64,
                    fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                );
                if n <= 0 {
                    break;
                }
                let mut at = 0usize;
                while at < n as usize {
                    // struct linux_dirent64: ino (8), off (8), reclen (2),
                    // type (1), then the name.
                    let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                    let name = buf.as_ptr().add(at + 19) as *const c_char;
                    let dot = *name == b'.' as c_char
                        && (*name.add(1) == 0
                            || (*name.add(1) == b'.' as c_char && *name.add(2) == 0));
                    if !dot {
                        libc::unlinkat(fd, name, 0);
                    }
                    at += reclen.max(1);
                }
            }
            libc::close(fd);
        }
    }

    /// Elsewhere a temporary directory cannot be emptied from a signal
    /// handler without allocating: it is left (and named in the docs).
    #[cfg(not(target_os = "linux"))]
    fn remove_dir_files(_dir: *const c_char) {}

    fn on_signal(sig: i32) {
        if sig != SIGABRT && sig != SIGBUS && CREATING.load(Ordering::SeqCst) {
            HELD.store(sig, Ordering::SeqCst);
            return;
        }
        remove_temp();
        remove_converted();
        if sig == SIGBUS {
            let (p, n) = (
                BUS_MESSAGE.load(Ordering::SeqCst),
                BUS_LEN.load(Ordering::SeqCst),
            );
            if !p.is_null() {
                // SAFETY: a leaked buffer of `n` bytes.
                unsafe { libc::write(2, p as *const libc::c_void, n) };
            }
            // Returning would run the faulting read again.
            signal_hook::low_level::exit(1);
        }
        // Ends the program as the signal would have (SIGABRT: the abort goes
        // on once this handler returns, whatever this returns).
        let _ = signal_hook::low_level::emulate_default_handler(sig);
    }

    /// A temporary output is about to be created: terminating signals are
    /// held back until [`created`] registers it.
    pub fn creating() {
        CREATING.store(true, Ordering::SeqCst);
    }

    /// The temporary output (a file, or a directory of files) was created
    /// at `temp` (`None`: creating it failed); held signals now act.
    pub fn created(temp: Option<&Path>) {
        if let Some(path) = temp {
            // A path holds no NUL byte (the file was just created by it).
            let c = CString::new(path.as_os_str().as_bytes()).expect("a path has no NUL byte");
            // Leaked, never freed: a handler on another thread may read it
            // at any time. (One per run.)
            TEMP.store(c.into_raw(), Ordering::SeqCst);
        }
        release();
    }

    /// The directory a PyTorch input is converted into was created at
    /// `dir` (`None`: creating it failed), after [`creating`]: the
    /// handlers remove it too; held signals now act.
    pub fn converted(dir: Option<&Path>) {
        if let Some(dir) = dir {
            let c = CString::new(dir.as_os_str().as_bytes()).expect("a path has no NUL byte");
            // Leaked, never freed: a handler may read it at any time.
            CONVERTED.store(c.into_raw(), Ordering::SeqCst);
        }
        release();
    }

    /// Ends [`creating`]: a signal held back meanwhile acts now.
    fn release() {
        CREATING.store(false, Ordering::SeqCst);
        let held = HELD.swap(0, Ordering::SeqCst);
        if held != 0 {
            on_signal(held);
        }
    }

    /// The temporary file is gone (renamed into place, or removed).
    pub fn done() {
        // Leaked, not freed: a handler may be reading it right now.
        TEMP.store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    pub fn install(_input: &Path) {}

    pub fn creating() {}

    pub fn created(_temp: Option<&Path>) {}

    pub fn converted(_dir: Option<&Path>) {}

    pub fn done() {}
}

pub use imp::{converted, created, creating, done, install};
