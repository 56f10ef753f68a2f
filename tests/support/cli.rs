//! Running the `ndprune` binary as a program: a scratch directory for
//! each test, the call, and what it printed. Shared by `tests/cli.rs`,
//! `tests/cli_sparsity.rs`, `tests/cli_wanda.rs` and `tests/cli_shrink.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh, empty scratch directory `ndprune-cli-{tag}-{pid}` under the
/// system's temporary directory (each test binary is a process of its
/// own, so tags need only be unique within one file).
pub fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `ndprune` with `args` and waits for it.
pub fn ndprune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A path as an argument (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts that the call succeeded, showing what it printed if not.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the call printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `prune INPUT OUTPUT` followed by `rest`.
pub fn prune_args<'a>(input: &'a str, output: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["prune", input, output];
    v.extend_from_slice(rest);
    v
}

/// `d/model`: a small model as transformers saves it with
/// `safe_serialization=False`, `pytorch_model.bin` (the `.pth` fixture)
/// beside a `config.json`.
pub fn bin_dir_model(d: &Path) -> PathBuf {
    let model = d.join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(
        fixtures_pth().join("model.pth"),
        model.join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::write(model.join("config.json"), r#"{"model_type": "test"}"#).unwrap();
    model
}

/// `tests/fixtures/pth`.
pub fn fixtures_pth() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth")
}
