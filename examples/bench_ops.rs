//! The crate's side of the side-by-side benchmark against PyTorch.
//!
//! ```text
//! cargo build --release --example bench_ops
//! target/release/examples/bench_ops WORKLOAD REPS     # one JSON line
//! target/release/examples/bench_ops --list            # the workloads
//! target/release/examples/bench_ops --ties lowest WORKLOAD REPS
//! ```
//!
//! `--ties torch` (the default, as in the library) breaks ties at the cut
//! exactly as PyTorch does, replaying its `topk` when equal magnitudes
//! straddle the cut; `--ties lowest` prunes the lower index first and never
//! replays (`TieBreak::LowestIndex`).
//!
//! Does what `torch_bench.py` (the PyTorch side) does for each workload:
//! the same shapes, amounts, norms and dims; for each of REPS + 1 runs (the
//! first a warm-up) a fresh set of standard-normal tensors is built and the
//! pruning call alone is timed; peak memory is reset through
//! `/proc/self/clear_refs` before the call and read from `VmHWM` after it.
//! Prints `{"workload", "median_ms", "extra_peak_mb", "threads"}`.

use std::process::ExitCode;
use std::time::Instant;

use ndarray::ArrayD;
use ndprune::prelude::*;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The pruning a workload does: on the model, with the paths of its
/// tensors and the tie rule.
type Run = fn(&mut Sequential<f32>, &[String], TieBreak) -> Result<(), PruneError>;

/// A workload: the tensor shapes, and the pruning it does on the model.
struct Workload {
    name: &'static str,
    shapes: &'static [&'static [usize]],
    run: Run,
}

/// `prune.ln_structured(m, path, amount, n, dim)` with the chosen tie rule.
fn ln(
    m: &mut Sequential<f32>,
    path: &str,
    amount: f64,
    n: Norm,
    dim: isize,
    ties: TieBreak,
) -> Result<(), PruneError> {
    let method = LnStructured::new(Amount::Fraction(amount), n, Dim(dim))?.with_tie_break(ties);
    prune::apply(m, path, &method, None)
}

/// `prune.l1_unstructured(m, path, amount)` with the chosen tie rule.
fn l1(m: &mut Sequential<f32>, path: &str, amount: f64, ties: TieBreak) -> Result<(), PruneError> {
    let method = L1Unstructured::new(Amount::Fraction(amount))?.with_tie_break(ties);
    prune::apply(m, path, &method, None)
}

const LINEAR: &[&[usize]] = &[&[4096, 4096]];
const CONV: &[&[usize]] = &[&[512, 512, 3, 3]];
const SQUARE2048: &[usize] = &[2048, 2048];
const GLOBAL: &[&[usize]] = &[SQUARE2048; 24];

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "ln_structured_linear4096_dim0_l2",
        shapes: LINEAR,
        run: |m, p, t| ln(m, &p[0], 0.3, Norm::L(2.0), 0, t),
    },
    Workload {
        name: "ln_structured_linear4096_dim1_l1",
        shapes: LINEAR,
        run: |m, p, t| ln(m, &p[0], 0.3, Norm::L(1.0), 1, t),
    },
    Workload {
        name: "ln_structured_conv512_dim1_linf",
        shapes: CONV,
        run: |m, p, t| ln(m, &p[0], 0.5, Norm::Inf, 1, t),
    },
    Workload {
        name: "ln_structured_conv512_dim0_l2",
        shapes: CONV,
        run: |m, p, t| ln(m, &p[0], 0.5, Norm::L(2.0), 0, t),
    },
    Workload {
        name: "l1_unstructured_linear4096",
        shapes: LINEAR,
        run: |m, p, t| l1(m, &p[0], 0.5, t),
    },
    Workload {
        name: "iterative_ln_then_l1_linear4096",
        shapes: LINEAR,
        run: |m, p, t| {
            ln(m, &p[0], 0.25, Norm::L(2.0), 0, t)?;
            l1(m, &p[0], 0.5, t)
        },
    },
    Workload {
        name: "nm_2_4_linear4096",
        shapes: LINEAR,
        run: |m, p, t| {
            let method = NmStructured::new(2, 4, Dim(1))?.with_tie_break(t);
            prune::apply(m, &p[0], &method, None)
        },
    },
    Workload {
        name: "block_4x4_half_linear4096",
        shapes: LINEAR,
        run: |m, p, t| {
            let method = BlockSparsity::new(0.5, (4, 4))?.with_tie_break(t);
            prune::apply(m, &p[0], &method, None)
        },
    },
    Workload {
        name: "global_unstructured_24x4M",
        shapes: GLOBAL,
        run: |m, p, t| {
            let targets: Vec<&str> = p.iter().map(String::as_str).collect();
            let method = L1Unstructured::new(Amount::Fraction(0.6))?.with_tie_break(t);
            prune::global_unstructured(m, &targets, &method, None)
        },
    },
];

/// One module per shape, each with a `weight` of standard-normal values.
fn holder(shapes: &[&[usize]], seed: u64) -> (Sequential<f32>, Vec<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Sequential::new();
    for shape in shapes {
        let weight =
            ArrayD::from_shape_simple_fn(shape.to_vec(), || StandardNormal.sample(&mut rng));
        model = model.push(
            Layer::new()
                .with_parameter("weight", weight)
                .expect("one fresh name per layer"),
        );
    }
    let paths = (0..shapes.len()).map(|i| format!("{i}.weight")).collect();
    (model, paths)
}

/// A field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn reset_peak() {
    // Writing 5 resets VmHWM to the current RSS (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut ties = TieBreak::Torch;
    if let Some(at) = args.iter().position(|a| a == "--ties") {
        ties = match args.get(at + 1).map(String::as_str) {
            Some("torch") => TieBreak::Torch,
            Some("lowest") => TieBreak::LowestIndex,
            _ => {
                eprintln!("--ties takes torch or lowest");
                return ExitCode::from(2);
            }
        };
        args.drain(at..at + 2);
    }
    if args.first().map(String::as_str) == Some("--list") {
        for w in WORKLOADS {
            println!("{}", w.name);
        }
        return ExitCode::SUCCESS;
    }
    let Some(workload) = args
        .first()
        .and_then(|n| WORKLOADS.iter().find(|w| w.name == n))
    else {
        eprintln!("usage: bench_ops [--ties torch|lowest] WORKLOAD [REPS] | --list");
        return ExitCode::from(2);
    };
    let reps: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut times = Vec::with_capacity(reps);
    let mut peak: f64 = 0.0;
    for r in 0..=reps {
        let (mut model, paths) = holder(workload.shapes, r as u64);
        let base = status_mb("VmRSS:");
        reset_peak();
        let start = Instant::now();
        let outcome = (workload.run)(&mut model, &paths, ties);
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        peak = peak.max(status_mb("VmHWM:") - base);
        if let Err(e) = outcome {
            eprintln!("{}: {e}", workload.name);
            return ExitCode::FAILURE;
        }
        if r > 0 {
            times.push(elapsed);
        }
        drop(model);
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    println!(
        "{{\"workload\": \"{}\", \"median_ms\": {:.3}, \"extra_peak_mb\": {:.1}, \"threads\": {}}}",
        workload.name,
        median,
        peak,
        threads()
    );
    ExitCode::SUCCESS
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
