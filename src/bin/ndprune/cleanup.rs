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
//! SIGKILL cannot be caught: after `kill -9` the temporary file
//! (`.OUT.XXXXXX.tmp`, beside OUT) stays, and OUT is untouched.
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

    fn remove_temp() {
        let p = TEMP.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a leaked, never freed, NUL-terminated string.
            unsafe { libc::unlink(p) };
        }
    }

    fn on_signal(sig: i32) {
        if sig != SIGABRT && sig != SIGBUS && CREATING.load(Ordering::SeqCst) {
            HELD.store(sig, Ordering::SeqCst);
            return;
        }
        remove_temp();
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

    /// Runs `create` with terminating signals held back, then registers the
    /// temporary file it made (if it made one) for removal.
    pub fn creating<T>(create: impl FnOnce() -> T, temp_of: impl Fn(&T) -> Option<&Path>) -> T {
        CREATING.store(true, Ordering::SeqCst);
        let made = create();
        if let Some(path) = temp_of(&made) {
            // A path holds no NUL byte (the file was just created by it).
            let c = CString::new(path.as_os_str().as_bytes()).expect("a path has no NUL byte");
            // Leaked, never freed: a handler on another thread may read it
            // at any time. (One per run.)
            TEMP.store(c.into_raw(), Ordering::SeqCst);
        }
        CREATING.store(false, Ordering::SeqCst);
        let held = HELD.swap(0, Ordering::SeqCst);
        if held != 0 {
            on_signal(held);
        }
        made
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

    pub fn creating<T>(create: impl FnOnce() -> T, _temp_of: impl Fn(&T) -> Option<&Path>) -> T {
        create()
    }

    pub fn done() {}
}

pub use imp::{creating, done, install};
