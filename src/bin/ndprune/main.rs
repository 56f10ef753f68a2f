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

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

mod args;
mod cleanup;
mod inspect;
mod run;
mod shrink;

use args::{Cli, Command, PruneJob};
use ndprune::io::StreamReport as Report;

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The widest a name column is padded to: longer names (a header may hold
/// names of megabytes) just run past it.
pub const NAME_COLUMN: usize = 48;

/// Modules listed by default; past this many, only with `-v`.
const FEW_MODULES: usize = 12;

fn print_report(out: &mut impl Write, job: &PruneJob, report: &Report) -> io::Result<()> {
    let sparsity = report.sparsity();
    let total = sparsity.total();
    let (numel, pruned) = (total.entries, total.pruned);
    let fraction = total.sparsity();
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
                    "sparsity": t.sparsity(),
                    "channels_pruned": t.channels_pruned,
                })
            })
            .collect();
        let doc = json!({
            "input": job.input.display().to_string(),
            "output": job.output.path().display().to_string(),
            "method": if job.recipe.is_some() { "recipe" } else { job.method.name() },
            "amount": if job.recipe.is_some() { String::new() } else { job.amount.to_string() },
            "removed": job.remove,
            "ties": format!("{:?}", report.ties),
            "tensors": tensors,
            "copied": report.copied,
            "written": report.written,
            "total": {"numel": numel, "pruned": pruned, "sparsity": fraction},
            "report": sparsity.to_json(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        return writeln!(out);
    }
    if job.quiet {
        return Ok(());
    }
    let what = match &job.recipe {
        Some(r) => format!("recipe of {} steps", r.steps().len()),
        None => format!("{} amount {}", job.method.name(), job.amount),
    };
    writeln!(
        out,
        "{} -> {} ({what}{})",
        job.input.display(),
        job.output.path().display(),
        if job.remove { ", removed" } else { "" }
    )?;
    if job.verbose {
        let width = report
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(6)
            .clamp(6, NAME_COLUMN);
        writeln!(
            out,
            "{:<width$}  {:<5} {:<18} {:>12} {:>8} {:>8}  channels pruned per dim",
            "tensor", "dtype", "shape", "numel", "before", "after"
        )?;
        for t in &report.tensors {
            writeln!(
                out,
                "{:<width$}  {:<5} {:<18} {:>12} {:>7.1}% {:>7.1}%  {:?}",
                t.name,
                t.dtype.to_string(),
                format!("{:?}", t.shape),
                t.numel,
                percent(t.before, t.numel),
                percent(t.after, t.numel),
                t.channels_pruned,
            )?;
        }
    }
    let modules = sparsity.modules();
    if job.verbose || (modules.len() > 1 && modules.len() <= FEW_MODULES) {
        let width = modules
            .iter()
            .map(|m| ndprune::report::module_label(&m.path).len())
            .max()
            .unwrap_or(6)
            .clamp(6, NAME_COLUMN);
        writeln!(
            out,
            "{:<width$}  {:>7} {:>12} {:>12} {:>8}",
            "module", "tensors", "entries", "pruned", "sparsity"
        )?;
        for m in &modules {
            let t = &m.totals;
            writeln!(
                out,
                "{:<width$}  {:>7} {:>12} {:>12} {:>7.1}%",
                ndprune::report::module_label(&m.path),
                t.tensors,
                t.entries,
                t.pruned,
                100.0 * t.sparsity(),
            )?;
        }
    } else if modules.len() > FEW_MODULES {
        writeln!(
            out,
            "({} modules hold pruned tensors; -v lists them)",
            modules.len()
        )?;
    }
    writeln!(
        out,
        "{} tensors pruned: {pruned} of {numel} entries ({:.1}%); {} other tensors copied unchanged",
        report.tensors.len(),
        100.0 * fraction,
        report.copied
    )?;
    writeln!(out, "pruned tensors: {}", total.bytes_line())
}

/// A failure to print: a closed pipe (`ndprune inspect F | head`) ends the
/// output quietly; anything else is worth a line on stderr.
fn printing_failed(e: &io::Error) -> bool {
    e.kind() != io::ErrorKind::BrokenPipe
}

/// Registers the temporary directory of a PyTorch input's conversion
/// with the signal handlers, from the moment it exists.
struct Conversion;

impl ndprune::io::ConversionWatch for Conversion {
    fn creating(&mut self) {
        cleanup::creating();
    }

    fn created(&mut self, dir: Option<&std::path::Path>) {
        cleanup::converted(dir);
    }
}

/// Says which of the model's weights in other formats beside IN
/// (`pytorch_model.bin` beside `model.safetensors`, say) a directory OUT
/// does not get: copied, they would be the unpruned model.
pub fn note_left_out(
    input: &ndprune::io::CheckpointFiles,
    output: &ndprune::io::Output,
    quiet: bool,
) {
    if quiet
        || matches!(output, ndprune::io::Output::File(_))
        || input.weights_left_out().is_empty()
    {
        return;
    }
    let names: Vec<String> = input
        .weights_left_out()
        .iter()
        .map(|p| {
            p.file_name()
                .expect("a listed entry has a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    eprintln!(
        "ndprune: note: not copied to OUT: {} (the model's weights in another format, unpruned)",
        names.join(", ")
    );
}

/// Exits with a usage error (status 2, nothing written) where OUT would
/// replace a file of IN ([`ndprune::io::Output::check_for`]); the other
/// problems of OUT are the run's to report.
fn refuse_out_in(input: &ndprune::io::CheckpointFiles, output: &ndprune::io::Output) {
    if let Err(ndprune::io::CheckpointError::BadTarget {
        problem: ndprune::io::TargetProblem::InputFile { file },
        ..
    }) = output.check_for(input)
    {
        args::usage_error(format!(
            "OUT must not be IN: {} is a file of IN, and the input is never changed",
            file.display()
        ));
    }
}

/// Runs a checked pruning job and prints its report.
fn prune(job: PruneJob) -> Result<(), ndprune::io::CheckpointError> {
    cleanup::install(&job.input);
    ndprune::io::CheckpointFiles::open_watched(&job.input, &mut Conversion)
        .inspect(|input| {
            refuse_out_in(input, &job.output);
            note_left_out(input, &job.output, job.quiet);
        })
        .and_then(|input| run::run(&job, &input))
        .map(|report| {
        if report.tensors.is_empty() && !job.quiet {
            eprintln!("ndprune: warning: no tensor was selected; the output is a copy");
        }
        if let (ndprune::io::TieOrder::WriteOrder { tied, pruned, needed_bytes }, ndprune::io::StreamTies::Torch { .. }) = (report.ties, job.ties) {
            eprintln!(
                "ndprune: warning: {pruned} of {tied} equal magnitudes at the cut were pruned in the written order, not PyTorch's: its order needs {} MiB, more than --tie-memory",
                needed_bytes.div_ceil(1 << 20)
            );
        }
        // OUT is written whole by now: a report that cannot be
        // printed is no failure of the call.
        let mut out = io::stdout().lock();
        if let Err(e) = print_report(&mut out, &job, &report).and_then(|()| out.flush()) {
            if printing_failed(&e) {
                eprintln!("ndprune: warning: cannot print the report: {e}");
            }
        }
    })
}

/// Prints the plan of `--dry-run`: each step and the tensors it selects,
/// then each tensor's sparsity after each step.
fn print_plan(
    out: &mut impl Write,
    job: &PruneJob,
    plan: &[ndprune::io::TensorPlan],
) -> io::Result<()> {
    let steps: Vec<String> = match &job.recipe {
        Some(r) => r
            .steps()
            .iter()
            .map(|s| format!("{} amount {}", s.method().name(), s.amount()))
            .collect(),
        None => vec![format!("{} amount {}", job.method.name(), job.amount)],
    };
    if job.json {
        let tensors: Vec<_> = plan
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "numel": t.numel,
                    "steps": t.steps,
                    "pruned_before": t.before,
                    "pruned_after_each_step": t.after,
                    "sparsity": t.sparsity(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(
            &mut *out,
            &json!({ "dry_run": true, "steps": steps, "tensors": tensors }),
        )?;
        return writeln!(out);
    }
    writeln!(out, "{} (dry run: nothing written)", job.input.display())?;
    for (s, step) in steps.iter().enumerate() {
        let names: Vec<&str> = plan
            .iter()
            .filter(|t| t.steps.contains(&s))
            .map(|t| t.name.as_str())
            .collect();
        writeln!(out, "step {}: {step}: {} tensors", s + 1, names.len())?;
        for n in names {
            writeln!(out, "    {n}")?;
        }
    }
    let width = plan
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(6)
        .clamp(6, NAME_COLUMN);
    write!(out, "{:<width$} {:>8}", "tensor", "before")?;
    for s in 0..steps.len() {
        write!(out, " {:>8}", format!("step {}", s + 1))?;
    }
    writeln!(out)?;
    for t in plan {
        write!(
            out,
            "{:<width$} {:>7.1}%",
            t.name,
            percent(t.before, t.numel)
        )?;
        for a in &t.after {
            write!(out, " {:>7.1}%", percent(*a, t.numel))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prune(a) if a.dry_run => {
            let job = args::check(a);
            ndprune::io::CheckpointFiles::open(&job.input)
                .and_then(|input| run::dry_run(&job, &input))
                .map(|plan| {
                    let mut out = io::stdout().lock();
                    if let Err(e) = print_plan(&mut out, &job, &plan).and_then(|()| out.flush()) {
                        if printing_failed(&e) {
                            eprintln!("ndprune: warning: cannot print the plan: {e}");
                        }
                    }
                })
        }
        Command::Prune(a) => prune(args::check(a)),
        Command::Remove(a) => prune(args::check_remove(a)),
        Command::Shrink(a) => shrink::shrink(a),
        Command::Inspect(a) => {
            let mut out = io::stdout().lock();
            match inspect::inspect(&mut out, &a.file, a.json) {
                Err(inspect::Error::Print(e)) if !printing_failed(&e) => Ok(()),
                Err(inspect::Error::Print(e)) => {
                    eprintln!("ndprune: error: printing: {e}");
                    return ExitCode::FAILURE;
                }
                Err(inspect::Error::Read(e)) => Err(e),
                Ok(()) => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ndprune: error: {e}");
            ExitCode::FAILURE
        }
    }
}
