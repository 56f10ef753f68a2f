//! Carrying out a pruning call: the library's streamed pruning
//! ([`FilePruner`]), with a progress bar and the signal cleanup.

use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndprune::io::{
    CheckpointError, CheckpointFiles, FilePruner, Progress, StreamMethod, StreamReport, TensorPlan,
};

use crate::args::{Method, PruneJob};
use crate::cleanup;
use ndprune::Dim;

/// Why a call failed (exit status 1). Every message names the file, and
/// the tensor by its name in the file.
pub type Failure = CheckpointError;

/// The progress bar (by bytes written, with the time left) and the
/// registration of the temporary output for the signal handlers.
pub struct Shown {
    bar: ProgressBar,
    quiet: bool,
}

impl Shown {
    /// A bar, drawn on long runs unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Shown {
            bar: ProgressBar::hidden(),
            quiet,
        }
    }
}

impl Progress for Shown {
    fn start(&mut self, tensors: usize, bytes: u64) {
        // Small jobs finish before a bar is worth drawing.
        const MANY: usize = 16;
        const LARGE: u64 = 256 << 20;
        if self.quiet || (tensors < MANY && bytes < LARGE) {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        self.bar = bar;
    }

    fn creating(&mut self) {
        cleanup::creating();
    }

    fn created(&mut self, temp: Option<&Path>) {
        cleanup::created(temp);
    }

    fn wrote(&mut self, tensor: &str, bytes: u64) {
        self.bar.set_message(tensor.to_string());
        self.bar.inc(bytes);
    }

    fn finished(&mut self) {
        cleanup::done();
        self.bar.finish_and_clear();
    }
}

/// The library's method for the command line's.
fn method(job: &PruneJob) -> StreamMethod {
    match job.method {
        Method::L1Unstructured => StreamMethod::L1Unstructured,
        Method::LnStructured => StreamMethod::LnStructured {
            norm: job
                .norm
                .expect("args::check requires --n for ln_structured"),
            dim: job
                .dim
                .expect("args::check requires --dim for ln_structured"),
        },
        Method::RandomUnstructured => match job.torch_seed {
            Some(seed) => StreamMethod::TorchRandomUnstructured { seed },
            None => StreamMethod::RandomUnstructured { seed: job.seed },
        },
        Method::RandomStructured => {
            let dim = job
                .dim
                .expect("args::check requires --dim for random_structured");
            match job.torch_seed {
                Some(seed) => StreamMethod::TorchRandomStructured { dim, seed },
                None => StreamMethod::RandomStructured {
                    dim,
                    seed: job.seed,
                },
            }
        }
        Method::Global => StreamMethod::Global,
        Method::Nm => {
            let (n, m) = job.nm.expect("args::check requires --n and --m for nm");
            StreamMethod::NmStructured {
                n,
                m,
                dim: job.dim.unwrap_or(Dim(1)),
            }
        }
        Method::Block => {
            let b = job.block.expect("args::check requires --block for block");
            StreamMethod::BlockSparsity {
                block: b.block(),
                zeros_per_block: Some(b.zeros_per_block()),
                norm: b.norm(),
            }
        }
        Method::Wanda => match job.nm {
            Some((n, m)) => StreamMethod::WandaNm { n, m },
            None => StreamMethod::Wanda,
        },
    }
}

/// Prunes the opened input into `job.output`. On error nothing is written
/// and nothing is left behind (see `cleanup` for signals).
pub fn run(job: &PruneJob, input: &CheckpointFiles) -> Result<StreamReport, Failure> {
    let mut shown = Shown {
        bar: ProgressBar::hidden(),
        quiet: job.quiet,
    };
    if job.remove_only {
        return FilePruner::remove_pruning().run(input, &job.output, &mut shown);
    }
    pruner(job, input)?
        .remove(job.remove)
        .run(input, &job.output, &mut shown)
}

/// The pruner a call asks for: its recipe, or its one method on the
/// tensors its globs select (`run` and `dry_run` alike).
fn pruner<'j>(job: &'j PruneJob, input: &CheckpointFiles) -> Result<FilePruner<'j>, Failure> {
    let pruner = match &job.recipe {
        // A recipe naming no tensor of IN is a usage error: nothing written.
        Some(recipe) => recipe
            .pruner(input)
            .unwrap_or_else(|e| crate::args::usage_error(format!("--recipe: {e}"))),
        None => FilePruner::new(method(job), job.amount).select(|spec| {
            let included = match &job.include {
                Some(include) => include.is_match(spec.name()),
                None => spec.shape().len() >= 2,
            };
            included && !job.exclude.is_match(spec.name())
        }),
    };
    let pruner = match &job.act_norms {
        Some(path) => pruner.activation_norms(ndprune::io::read_activation_norms(path)?),
        None => pruner,
    };
    Ok(pruner.ties(job.ties))
}

/// The plan of `--dry-run`: what `run` would do, nothing written.
pub fn dry_run(job: &PruneJob, input: &CheckpointFiles) -> Result<Vec<TensorPlan>, Failure> {
    pruner(job, input)?.dry_run(input)
}
