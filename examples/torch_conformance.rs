//! Runs a file of PyTorch-computed pruning cases through ndprune.
//!
//! ```text
//! cargo run --release --example torch_conformance -- FILE.jsonl
//! ```
//!
//! Prints one line per failing case (its id and what differed), then
//! `N passed, N failed`; exits with status 1 when any case failed and 2 when
//! the file cannot be read. The checker is the one `cargo test` runs.

#[path = "../tests/support/conformance.rs"]
mod conformance;

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: torch_conformance FILE.jsonl");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = conformance::check_file(&text);
    for (id, why) in &report.failures {
        println!("{id}: {why}");
    }
    println!("{}", report.summary());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
