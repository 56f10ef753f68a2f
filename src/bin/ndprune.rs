//! `ndprune`: prune safetensors checkpoints from the command line (feature
//! `cli`).
//!
//! ```text
//! ndprune prune IN.safetensors OUT.safetensors --method ln_structured --amount 0.3 --n 2 --dim 0
//! ndprune prune IN OUT --method global --amount 0.5 --include 'encoder.*.weight' --exclude '*norm*' --remove
//! ndprune inspect FILE [--json]
//! ```
//!
//! Exit status: 0 on success, 1 when reading, pruning or writing fails, 2
//! on a usage error. In both error cases OUT is left untouched.

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

#[path = "ndprune/args.rs"]
mod args;
#[path = "ndprune/inspect.rs"]
mod inspect;
#[path = "ndprune/plan.rs"]
mod plan;
#[path = "ndprune/run.rs"]
mod run;

use args::{Cli, Command, PruneJob};
use run::Report;

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn print_report(job: &PruneJob, report: &Report) {
    let numel: usize = report.tensors.iter().map(|t| t.numel).sum();
    let pruned: usize = report.tensors.iter().map(|t| t.after).sum();
    if job.json {
        let tensors: Vec<_> = report
            .tensors
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "dtype": t.dtype.to_string(),
                    "shape": t.shape,
                    "numel": t.numel,
                    "pruned_before": t.before,
                    "pruned_after": t.after,
                    "sparsity": percent(t.after, t.numel) / 100.0,
                })
            })
            .collect();
        let doc = json!({
            "input": job.input.display().to_string(),
            "output": job.output.display().to_string(),
            "method": job.method.name(),
            "amount": job.amount.to_string(),
            "removed": job.remove,
            "tensors": tensors,
            "copied": report.copied,
            "written": report.written,
            "total": {"numel": numel, "pruned": pruned, "sparsity": percent(pruned, numel) / 100.0},
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    if job.quiet {
        return;
    }
    let width = report
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{} -> {} ({} amount {}{})",
        job.input.display(),
        job.output.display(),
        job.method.name(),
        job.amount,
        if job.remove { ", removed" } else { "" }
    );
    println!(
        "{:<width$}  {:<5} {:<18} {:>12} {:>8} {:>8}",
        "tensor", "dtype", "shape", "numel", "before", "after"
    );
    for t in &report.tensors {
        println!(
            "{:<width$}  {:<5} {:<18} {:>12} {:>7.1}% {:>7.1}%",
            t.name,
            t.dtype.to_string(),
            format!("{:?}", t.shape),
            t.numel,
            percent(t.before, t.numel),
            percent(t.after, t.numel),
        );
    }
    println!(
        "{} tensors pruned: {pruned} of {numel} entries ({:.1}%); {} other tensors copied unchanged",
        report.tensors.len(),
        percent(pruned, numel),
        report.copied
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prune(a) => {
            let job = args::check(a);
            run::run(&job).map(|report| {
                if report.tensors.is_empty() && !job.quiet {
                    eprintln!("ndprune: warning: no tensor was selected; the output is a copy");
                }
                print_report(&job, &report);
            })
        }
        Command::Inspect(a) => inspect::inspect(&a.file, a.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ndprune: error: {e}");
            ExitCode::FAILURE
        }
    }
}
