//! Running a program as a child process with a watchdog and a memory
//! limit (`RLIMIT_AS`), and reading what it cost in time.
//! Shared by `tests/cli.rs` and `tests/hostile.rs`.
//!
//! (Peak RSS from `wait4` is no measure here: Linux starts a child's
//! `ru_maxrss` at its parent's high-water mark, so a limit on the address
//! space is what bounds a child's memory.)
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a child ran.
#[derive(Debug)]
pub struct Run {
    /// Its exit status (`None`: killed by the watchdog).
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time until it exited or was killed.
    pub elapsed: Duration,
    /// CPU time it used, user and system, all its threads (what a bound
    /// on work should measure: unlike wall time, it does not grow while
    /// the child waits for a core that other programs hold).
    pub cpu: Duration,
}

impl Run {
    /// The exit code, if it exited (not killed by a signal or the watchdog).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.and_then(|s| s.signal())
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Everything worth printing when an assertion about the run fails.
    pub fn describe(&self) -> String {
        let cut = |s: String| {
            if s.len() > 2000 {
                let mut end = 2000;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}… ({} bytes)", &s[..end], s.len())
            } else {
                s
            }
        };
        format!(
            "status {:?} after {:?} ({:?} of CPU)\nstdout: {}\nstderr: {}",
            self.status,
            self.elapsed,
            self.cpu,
            cut(self.stdout_text()),
            cut(self.stderr_text())
        )
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` (stdin closed, output captured), killing it after `timeout`,
/// with its address space limited to `memory` bytes (an allocation past it
/// fails, which aborts a Rust program).
pub fn run(mut cmd: Command, timeout: Duration, memory: u64) -> Run {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory as libc::rlim_t,
                rlim_max: memory as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("the program starts");
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
    let (status, cpu) = wait_with_cpu(&mut child, start, timeout);
    Run {
        status,
        stdout: out.join().expect("reader thread"),
        stderr: err.join().expect("reader thread"),
        elapsed: start.elapsed(),
        cpu,
    }
}

/// Like [`wait_for`], and the CPU time the child used (from `wait4`, which
/// reports that one child's usage, whatever other children the test
/// process runs at the same time).
fn wait_with_cpu(
    child: &mut Child,
    start: Instant,
    timeout: Duration,
) -> (Option<ExitStatus>, Duration) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let mut killed = false;
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value to be written over.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if killed { 0 } else { libc::WNOHANG };
        // SAFETY: `pid` is our child, not yet reaped (only this loop reaps it).
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            let cpu = time(usage.ru_utime) + time(usage.ru_stime);
            return ((!killed).then(|| ExitStatus::from_raw(status)), cpu);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            killed = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `child`, killing it once `timeout` has passed since `start`
/// (`None`: killed).
pub fn wait_for(child: &mut Child, start: Instant, timeout: Duration) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            return Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The names in a directory, sorted.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory exists")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
