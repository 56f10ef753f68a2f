//! The hostile-input suite: malformed and adversarial safetensors files
//! (`support/hostile.rs`) through the library's loader and the command
//! line, each in a child process, asserting no panic or abort, a typed
//! error or a correct result, bounded time and memory, nothing left
//! behind, and the input untouched.
#![cfg(all(feature = "safetensors", target_os = "linux"))]

#[path = "support/child.rs"]
mod child;
#[path = "support/hostile.rs"]
mod hostile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hostile::{Case, Expect};
use ndprune::io::{Checkpoint, SafetensorsView};
use ndprune::Module;

/// Generous bounds for a 2-core CI machine: the slowest case takes well
/// under a second of CPU. `TIME` is the watchdog (a hang), wall time, kept
/// wide for a machine busy with other work; `TIME_BOUND` bounds the CPU
/// time a case may use (quadratic loading took tens of seconds).
const TIME: Duration = Duration::from_secs(60);
const TIME_BOUND: Duration = Duration::from_secs(8);

/// The address space a child may use: a base for the program, its threads
/// and their allocator arenas, plus a small multiple of the file (which
/// bounds the header and the largest tensor). An allocation sized by a
/// header's claim fails past it and aborts the child.
fn memory_bound(file_len: usize) -> u64 {
    (768 << 20) + 16 * file_len as u64
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// File names safe for any case name.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

const CHILD_ENV: &str = "NDPRUNE_HOSTILE_FILE";

/// Run in a child process by `loader_never_panics_and_stays_bounded`:
/// loads the file named by `NDPRUNE_HOSTILE_FILE` every way the library
/// can, prints `loaded` or `refused: <error>`, and checks that what
/// loads saves and loads back the same.
#[test]
#[ignore = "run in a child process by the hostile suite"]
fn loader_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    let _ = SafetensorsView::parse(&std::fs::read(&path).unwrap());
    let _ = Checkpoint::<f64>::load(&path);
    #[cfg(feature = "half")]
    let _ = Checkpoint::<half::bf16>::load(&path);
    match Checkpoint::<f32>::load(&path) {
        Ok(ckpt) => {
            let out = path.with_extension("saved");
            ckpt.save(&out).expect("a loaded checkpoint saves");
            let again = Checkpoint::<f32>::load(&out).expect("a saved checkpoint loads");
            assert_eq!(again.tensor_names(), ckpt.tensor_names());
            assert_eq!(again.raw_tensors(), ckpt.raw_tensors());
            for (name, t) in ckpt.state_dict() {
                let u = again.tensor(&name).expect("the same names");
                assert!(t.iter().zip(u).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            std::fs::remove_file(&out).unwrap();
            println!("loaded");
        }
        Err(e) => {
            assert_eq!(e.path(), path, "the error names the file: {e}");
            let text = e.to_string();
            assert!(!text.contains("<bytes>"), "{text}");
            println!("refused: {text}");
        }
    }
    // This process's own peak RSS (its memory map's high-water mark, which
    // starts afresh at exec, unlike `ru_maxrss`).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("Linux reports VmHWM");
    println!("peak_kib {}", hwm.trim().trim_end_matches("kB").trim());
}

/// The peak RSS a load may reach: the test program itself, plus a small
/// multiple of the file (which bounds its header and its largest tensor).
fn peak_bound_kib(file_len: usize) -> u64 {
    (48 << 10) + 12 * (file_len as u64 >> 10)
}

fn check_common(case: &Case, what: &str, run: &child::Run, input: &Path, dir: &Path) {
    let ctx = || format!("{} ({what}): {}", case.name, run.describe());
    assert!(run.status.is_some(), "timed out: {}", ctx());
    assert!(run.signal().is_none(), "killed by a signal: {}", ctx());
    assert!(
        !run.stderr_text().contains("panicked"),
        "panicked: {}",
        ctx()
    );
    assert!(run.cpu < TIME_BOUND, "too slow: {}", ctx());
    assert_eq!(
        std::fs::read(input).unwrap(),
        case.bytes,
        "IN changed: {}",
        ctx()
    );
    for name in child::listing(dir) {
        assert!(
            !name.ends_with(".tmp") && !name.ends_with(".saved"),
            "left behind {name}: {}",
            ctx()
        );
    }
}

/// Runs `check` on every case, then fails with the list of cases that
/// failed (all of them, not just the first).
fn each_case(check: impl Fn(&Case) + std::panic::RefUnwindSafe) {
    let mut failed = Vec::new();
    for case in hostile::cases() {
        if let Err(e) = std::panic::catch_unwind(|| check(&case)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} cases failed:\n{}",
        failed.len(),
        failed.join("\n---\n")
    );
}

#[test]
fn loader_never_panics_and_stays_bounded() {
    let d = dir("loader");
    each_case(|case| {
        let d = d.join(slug(&case.name));
        std::fs::create_dir_all(&d).unwrap();
        let input = d.join("in.safetensors");
        std::fs::write(&input, &case.bytes).unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "loader_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &input);
        let run = child::run(cmd, TIME, memory_bound(case.bytes.len()));
        if run.cpu > Duration::from_millis(500) {
            eprintln!("slow: {} (library) took {:?} of CPU", case.name, run.cpu);
        }
        check_common(case, "library", &run, &input, &d);
        assert_eq!(run.code(), Some(0), "{}: {}", case.name, run.describe());
        let out = run.stdout_text();
        let peak: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("peak_kib "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: no peak reported: {out}", case.name));
        assert!(
            peak <= peak_bound_kib(case.bytes.len()),
            "{}: peak RSS {peak} KiB for a file of {} bytes",
            case.name,
            case.bytes.len()
        );
        match case.expect {
            Expect::Loads => assert!(out.contains("loaded"), "{} should load: {out}", case.name),
            Expect::Refused => assert!(
                out.contains("refused"),
                "{} should be refused: {out}",
                case.name
            ),
            Expect::Either => {}
        }
        std::fs::remove_file(&input).unwrap();
    });
}

#[cfg(feature = "cli")]
#[test]
fn cli_never_panics_and_stays_bounded() {
    let d = dir("cli");
    let methods: &[&[&str]] = &[
        &["--method", "l1_unstructured", "--amount", "0.5"],
        &[
            "--method",
            "ln_structured",
            "--amount",
            "0.5",
            "--n",
            "2",
            "--dim",
            "1",
        ],
        &[
            "--method",
            "ln_structured",
            "--amount",
            "1",
            "--n",
            "inf",
            "--dim",
            "0",
            "--remove",
        ],
        &["--method", "global", "--amount", "0.5", "--include", "*"],
        &[
            "--method",
            "random_structured",
            "--amount",
            "0.3",
            "--dim",
            "-1",
            "--include",
            "*",
        ],
    ];
    each_case(|case| {
        let d = d.join(slug(&case.name));
        std::fs::create_dir_all(&d).unwrap();
        let input = d.join("in.safetensors");
        std::fs::write(&input, &case.bytes).unwrap();
        let output = d.join("out.safetensors");
        let bin = env!("CARGO_BIN_EXE_ndprune");
        // The CLI reads through the view: what it refuses, the CLI refuses.
        // (Some files the library's loader refuses, such as a shape no
        // array can hold, the CLI copies byte for byte.)
        let refused_by_view = SafetensorsView::parse(&case.bytes).is_err();
        for json in [false, true] {
            let mut cmd = Command::new(bin);
            cmd.arg("inspect").arg(&input);
            if json {
                cmd.arg("--json");
            }
            let run = child::run(cmd, TIME, memory_bound(case.bytes.len()));
            check_common(case, "inspect", &run, &input, &d);
            let code = run.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{}: {}",
                case.name,
                run.describe()
            );
            check_message(case, &run, &input);
            if refused_by_view {
                assert_eq!(code, Some(1), "{} inspect: {}", case.name, run.describe());
            }
        }
        if !case.prune {
            std::fs::remove_file(&input).unwrap();
            return;
        }
        for args in methods {
            let mut cmd = Command::new(bin);
            cmd.arg("prune")
                .arg(&input)
                .arg(&output)
                .args(*args)
                .arg("-q");
            let run = child::run(cmd, TIME, memory_bound(case.bytes.len()));
            let what = format!("prune {}", args.join(" "));
            check_common(case, &what, &run, &input, &d);
            let code = run.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{} {what}: {}",
                case.name,
                run.describe()
            );
            check_message(case, &run, &input);
            if refused_by_view {
                assert_eq!(code, Some(1), "{} {what}: {}", case.name, run.describe());
            }
            if code == Some(0) {
                // Whatever the CLI writes, the library reads.
                let bytes = std::fs::read(&output).unwrap();
                SafetensorsView::parse(&bytes).unwrap_or_else(|e| {
                    panic!("{} {what}: the output does not parse: {e}", case.name)
                });
                std::fs::remove_file(&output).unwrap();
            } else {
                assert!(
                    !output.exists(),
                    "{} {what}: a failed run wrote OUT",
                    case.name
                );
            }
        }
        std::fs::remove_file(&input).unwrap();
    });
}

/// An error message names the file, never `<bytes>`, and never the CLI's
/// internals.
#[cfg(feature = "cli")]
fn check_message(case: &Case, run: &child::Run, input: &Path) {
    if run.code() != Some(1) {
        return;
    }
    let err = run.stderr_text();
    assert!(err.starts_with("ndprune: error: "), "{}: {err}", case.name);
    assert!(!err.contains("<bytes>"), "{}: {err}", case.name);
    assert!(
        !err.contains("`t`") && !err.contains("`t_"),
        "{}: {err}",
        case.name
    );
    let name = input.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains(name),
        "{}: the message names the file: {err}",
        case.name
    );
}

/// With `NDPRUNE_WRITE_SEEDS=DIR`, writes the cases of at most 16 KiB to
/// DIR as fuzzing seeds (how `fuzz/seeds/load_checkpoint` was made).
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("NDPRUNE_WRITE_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for case in hostile::cases() {
        if case.bytes.len() <= 16 << 10 {
            std::fs::write(dir.join(slug(&case.name)), &case.bytes).unwrap();
        }
    }
}

/// 33 000 modules of a pruned pair and a plain tensor each (99 000
/// tensors): the CLI lists and prunes them in seconds (a lookup per pair
/// by scanning every tensor, or a full histogram per tensor and pass, took
/// minutes). (The l1 run prunes a tenth of the plain tensors: the core's
/// selection costs a fixed ~0.2 ms a call, whatever the tensor's size,
/// which is the core's to fix.)
#[cfg(feature = "cli")]
#[test]
fn the_cli_scales_to_100k_tensors() {
    use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};
    let d = dir("scale");
    let input = d.join("in.safetensors");
    let n = 33_000;
    let mut specs = Vec::with_capacity(3 * n);
    for i in 0..n {
        for part in ["weight_orig", "weight_mask", "extra"] {
            specs.push(TensorSpec::new(
                format!("layers.{i}.{part}"),
                Dtype::F32,
                vec![1, 2],
            ));
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name().to_string()).collect();
    let mut w = SafetensorsWriter::create(&input, specs, None).unwrap();
    for (j, name) in names.iter().enumerate() {
        let v: [f32; 2] = if name.ends_with("_mask") {
            [1.0, 1.0]
        } else {
            [j as f32, -0.5]
        };
        w.write_tensor_bytes(name, &[v[0].to_le_bytes(), v[1].to_le_bytes()].concat())
            .unwrap();
    }
    w.commit().unwrap();
    let len = std::fs::metadata(&input).unwrap().len() as usize;
    let bin = env!("CARGO_BIN_EXE_ndprune");
    let output = d.join("out.safetensors");
    let runs: [&[&str]; 3] = [
        &["inspect"],
        &[
            "prune",
            "--method",
            "l1_unstructured",
            "--amount",
            "1",
            "--include",
            "layers.7*.extra",
            "-q",
        ],
        &["prune", "--method", "global", "--amount", "0.25", "-q"],
    ];
    for args in runs {
        let mut cmd = Command::new(bin);
        cmd.arg(args[0]).arg(&input);
        if args[0] == "prune" {
            cmd.arg(&output);
        }
        cmd.args(&args[1..]);
        let run = child::run(cmd, TIME, memory_bound(len));
        assert_eq!(run.code(), Some(0), "{args:?}: {}", run.describe());
        assert!(run.cpu < TIME_BOUND, "{args:?}: {}", run.describe());
    }
    let bytes = std::fs::read(&output).unwrap();
    let view = SafetensorsView::parse(&bytes).unwrap();
    assert_eq!(view.pruned_pairs().len(), 2 * n);
}
