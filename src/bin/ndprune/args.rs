//! Command-line arguments, and the checks that make a bad call a usage
//! error (exit status 2) before any file is touched.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use globset::{Glob, GlobSet, GlobSetBuilder};
use ndprune::io::{Output, INDEX_SUFFIX};
use ndprune::{Amount, BlockNorm, BlockSparsity, Dim, L1Unstructured, NmStructured, Norm};

/// Prune safetensors checkpoints with the semantics of PyTorch's
/// torch.nn.utils.prune.
#[derive(Debug, Parser)]
#[command(name = "ndprune", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the `prune` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prune tensors of IN and write the result to OUT (IN is never changed).
    ///
    /// Floating-point tensors (F32, F64, BF16, F16) are pruned in their own
    /// dtype; all others are copied byte for byte. Without --remove, a pruned
    /// tensor X is written as PyTorch's X_orig and X_mask; a pruned X already
    /// in IN (X_orig with X_mask) is pruned further, with the amount measured
    /// on what is left.
    Prune(PruneArgs),
    /// Make pruning permanent: every pruned pair X_orig/X_mask of IN
    /// becomes X = X_orig * X_mask in OUT; everything else is copied.
    Remove(RemoveArgs),
    /// List the tensors of a file: dtype, shape, number of zeros.
    Inspect(InspectArgs),
    /// Make a model smaller: cut the channels that are zero in every tensor
    /// that shares them (pruned by channel groups, or after ln_structured
    /// with the biases pruned too) out of IN, and write the smaller model to
    /// OUT; with --amount, first choose that share of each group's channels
    /// by group importance. Groups are inferred for a chain of layers
    /// (--groups chain), a Hugging Face decoder (--groups decoder: MLP
    /// channels and key/value heads, config.json rewritten), or read from a
    /// JSON file.
    Shrink(ShrinkArgs),
}

/// `ndprune shrink IN OUT`.
#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// The checkpoint: a safetensors file, an index or a directory (or
    /// their PyTorch twins, converted on the way in, as for `prune`).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write: a .safetensors file, or a new directory when IN is
    /// a directory or an index (the same files, the index and other files
    /// beside).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// The channel groups: `chain`, `decoder`, or a JSON file of groups:
    /// `[{"channels": 8, "members": [{"tensor": "0.weight", "dim": 0,
    /// "role": "producer", "block": 1}, ...]}, ...]` (role: producer,
    /// consumer or stats; block defaults to 1).
    #[arg(long, value_name = "chain|decoder|FILE", default_value = "chain")]
    pub groups: String,
    /// Also remove this share (or count) of each group's remaining
    /// channels, those of lowest group importance (L2 over everything a
    /// channel owns).
    #[arg(long, value_parser = parse_amount)]
    pub amount: Option<Amount>,
    /// Remove channels that still feed a constant (a bias left unpruned):
    /// the smaller model then differs from the masked one. Without it
    /// such a channel is an error.
    #[arg(long)]
    pub drop_inexact: bool,
    /// With --groups decoder, when layers would keep different widths
    /// and config.json has one width for all: let every layer keep the
    /// widest layer's width (a layer keeps back its most important pruned
    /// channels, still zero, so the result is exact but less small).
    /// Without it such a model is an error.
    #[arg(long)]
    pub pad_layers: bool,
    /// Print what would be removed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print no report.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The pruning methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// The entries of smallest magnitude of each tensor.
    #[value(name = "l1_unstructured", alias = "l1-unstructured")]
    L1Unstructured,
    /// The channels along --dim of smallest --n norm of each tensor.
    #[value(name = "ln_structured", alias = "ln-structured")]
    LnStructured,
    /// The entries of smallest magnitude of all selected tensors together.
    #[value(name = "global", alias = "global_unstructured")]
    Global,
    /// Entries of each tensor, at random (--seed).
    #[value(name = "random_unstructured", alias = "random-unstructured")]
    RandomUnstructured,
    /// Channels along --dim of each tensor, at random (--seed).
    #[value(name = "random_structured", alias = "random-structured")]
    RandomStructured,
    /// N:M sparsity of each tensor: --n of every --m consecutive entries
    /// along --dim (default 1, the input dim) kept, by magnitude.
    #[value(name = "nm", alias = "nm_structured")]
    Nm,
    /// Block sparsity of each 2-D tensor as torch.ao's
    /// WeightNormSparsifier: --amount (the sparsity level) of the --block
    /// blocks, --zeros-per-block zeros in each.
    #[value(name = "block", alias = "block_sparsity")]
    Block,
    /// Wanda: in each output row of each weight [out, in], the entries of
    /// smallest |W| * ||X||_2, the input norms from --act-norms; a
    /// fraction is rounded down per row, as the reference code does. With
    /// --n and --m instead of --amount, Wanda's N:M: --n of every --m
    /// consecutive inputs of each row kept.
    #[value(name = "wanda")]
    Wanda,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::L1Unstructured => "l1_unstructured",
            Method::LnStructured => "ln_structured",
            Method::Global => "global",
            Method::RandomUnstructured => "random_unstructured",
            Method::RandomStructured => "random_structured",
            Method::Nm => "nm",
            Method::Block => "block",
            Method::Wanda => "wanda",
        }
    }
}

/// What block sparsity ranks entries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlockNormArg {
    /// |w|.
    L1,
    /// w * w.
    L2,
}

/// Tie rules of global pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ties {
    /// PyTorch's order.
    Torch,
    /// The written order.
    Written,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The checkpoint to read: a safetensors file, the index of a sharded
    /// checkpoint (model.safetensors.index.json), or a directory holding
    /// one of these; or PyTorch's: a .pth/.pt/.bin file, the index of
    /// .bin shards (pytorch_model.bin.index.json), or a directory holding
    /// one of these and no safetensors checkpoint (a lone
    /// pytorch_model.bin beside config.json), converted to safetensors on
    /// the way in. One shard of a sharded checkpoint is refused.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write: a safetensors file (replaced atomically if it exists;
    /// a sharded IN is merged into it), or, when IN is an index or a
    /// directory and OUT does not end in .safetensors, a new (or empty)
    /// directory that gets the same shards, a new index and IN's other
    /// files (config.json, ...), all or nothing.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// How to choose what to prune.
    #[arg(long, value_enum, required_unless_present = "recipe")]
    pub method: Option<Method>,
    /// How much: a count of entries or channels ("5"), or a fraction of what
    /// is left ("0.3"), as PyTorch reads an int or a float. For block, the
    /// sparsity level (a fraction of the blocks, in [0, 1]); nm, and wanda
    /// with --n and --m, take none.
    #[arg(long, value_parser = parse_amount, allow_negative_numbers = true)]
    pub amount: Option<Amount>,
    /// A recipe file, JSON (.json) or TOML (.toml): ordered steps run in
    /// one pass (see the README). Its globs are segment-aware: `*` never crosses a dot.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["method", "amount", "n", "m", "block", "zeros_per_block", "block_norm", "dim", "seed", "torch_seed", "include", "exclude"])]
    pub recipe: Option<PathBuf>,
    /// Print the plan (each step, the tensors it selects, the sparsity each
    /// tensor would reach) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// For ln_structured, the norm: a number p, "inf", "-inf", "fro" or
    /// "nuc". For nm and wanda, the entries kept in each group of --m.
    #[arg(long, allow_negative_numbers = true)]
    pub n: Option<String>,
    /// The group size of nm and of wanda's N:M (keep --n of every --m).
    #[arg(long)]
    pub m: Option<usize>,
    /// The block shape of block, ROWSxCOLS ("1x4", "4x4").
    #[arg(long, value_name = "RxC", value_parser = parse_block)]
    pub block: Option<(usize, usize)>,
    /// Zeros in each chosen block of block [default: the whole block].
    #[arg(long)]
    pub zeros_per_block: Option<usize>,
    /// What block ranks entries by: l2 (w*w, torch.ao's default) or l1 (|w|).
    #[arg(long, value_enum)]
    pub block_norm: Option<BlockNormArg>,
    /// The channel dim of ln_structured and random_structured (negative
    /// counts from the end).
    #[arg(long, allow_negative_numbers = true)]
    pub dim: Option<isize>,
    /// Seed of the random methods [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed of the random methods on PyTorch's stream: the same entries as
    /// `torch.manual_seed(S)` followed by PyTorch's method on each selected
    /// tensor in the order of their names (instead of --seed).
    #[arg(long, value_name = "S", conflicts_with = "seed")]
    pub torch_seed: Option<u64>,
    /// Prune the tensors whose name matches this glob (repeatable; `*`
    /// matches dots too). Default: every float parameter with 2 or more
    /// dims. A pruned X_orig/X_mask pair is named X.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Wanda's activation norms: a safetensors file holding, for each
    /// weight to prune, a 1-D float tensor of the same name with the L2
    /// norm of each input feature over the calibration inputs. For
    /// --method wanda, or a --recipe with wanda or wanda_nm steps.
    #[arg(long, value_name = "FILE")]
    pub act_norms: Option<PathBuf>,
    /// Leave the tensors whose name matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// How global pruning chooses between equal magnitudes at the cut:
    /// "torch" (PyTorch's topk order over the tensors by name, when the
    /// unpruned entries fit in --tie-memory; else the written order, with a
    /// warning) or "written" (lowest index first in the order the tensors
    /// are written: no extra memory).
    #[arg(long, value_enum, default_value = "torch")]
    pub ties: Ties,
    /// The most memory PyTorch's tie order may take, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub tie_memory: u64,
    /// Make the pruning permanent: write X = X_orig * X_mask, not the pair.
    #[arg(long)]
    pub remove: bool,
    /// Write OUT as a new directory of shards of at most SIZE bytes of
    /// tensors each (model-00001-of-0000N.safetensors, a new
    /// model.safetensors.index.json), from a single file or a sharded IN.
    /// SIZE as Hugging Face's max_shard_size: "5GB", "500MB" (powers of
    /// 1000), "2GiB" (powers of 1024), or bytes. A tensor larger than SIZE
    /// gets a shard of its own.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_shard_size: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the report in full: every pruned tensor (sparsity before and
    /// after, channels fully pruned per dim) and every module.
    #[arg(long, short, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print no report and no progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `ndprune remove IN OUT`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The pruned checkpoint: a safetensors file, an index or a directory.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write (as for `prune`).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Write OUT as a new directory of shards of at most SIZE bytes each
    /// (as for `prune`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_shard_size: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the report in full: every tensor and every module.
    #[arg(long, short, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print no report.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The checked job of `ndprune remove`.
pub fn check_remove(a: RemoveArgs) -> PruneJob {
    let mut job = check(PruneArgs {
        input: a.input,
        output: a.output,
        method: Some(Method::L1Unstructured),
        amount: Some(Amount::Count(0)),
        recipe: None,
        dry_run: false,
        n: None,
        m: None,
        block: None,
        zeros_per_block: None,
        block_norm: None,
        dim: None,
        seed: None,
        torch_seed: None,
        act_norms: None,
        include: Vec::new(),
        exclude: Vec::new(),
        ties: Ties::Torch,
        tie_memory: 4096,
        remove: true,
        max_shard_size: a.max_shard_size,
        json: a.json,
        verbose: a.verbose,
        quiet: a.quiet,
    });
    job.remove_only = true;
    job
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The safetensors file to read.
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A pruning call, checked.
#[derive(Debug)]
pub struct PruneJob {
    pub input: PathBuf,
    pub output: Output,
    pub method: Method,
    pub amount: Amount,
    /// A recipe instead of method and amount.
    pub recipe: Option<ndprune::io::Recipe>,
    /// `ndprune remove`: every pair made permanent, nothing pruned.
    pub remove_only: bool,
    pub norm: Option<Norm>,
    /// nm's `(n, m)`, and wanda's for N:M.
    pub nm: Option<(usize, usize)>,
    /// block's method (the level is `amount`).
    pub block: Option<BlockSparsity>,
    pub dim: Option<Dim>,
    pub seed: u64,
    pub torch_seed: Option<u64>,
    /// Wanda's activation-norm file.
    pub act_norms: Option<PathBuf>,
    pub include: Option<GlobSet>,
    pub exclude: GlobSet,
    pub remove: bool,
    pub ties: ndprune::io::StreamTies,
    pub json: bool,
    /// Every tensor and module in the report.
    pub verbose: bool,
    pub quiet: bool,
}

pub fn parse_amount(s: &str) -> Result<Amount, String> {
    let s = s.trim();
    let amount = if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        Amount::Count(s.parse().map_err(|e| format!("{e}"))?)
    } else if let Ok(x) = s.parse::<f64>() {
        if s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err("a count must not be negative".into());
        }
        if x.is_nan() {
            return Err("a fraction must be a number in [0, 1]".into());
        }
        Amount::Fraction(x)
    } else {
        return Err("expected a count (\"5\") or a fraction (\"0.3\")".into());
    };
    L1Unstructured::new(amount).map_err(|e| e.to_string())?;
    Ok(amount)
}

fn parse_block(s: &str) -> Result<(usize, usize), String> {
    let (r, c) = s
        .trim()
        .split_once(['x', 'X'])
        .ok_or_else(|| "expected ROWSxCOLS, such as 1x4".to_string())?;
    let side = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("bad block side {t:?}: expected a positive integer"))
    };
    let block = (side(r)?, side(c)?);
    BlockSparsity::new(0.0, block).map_err(|e| e.to_string())?;
    Ok(block)
}

fn parse_size(s: &str) -> Result<u64, String> {
    ndprune::io::parse_shard_size(s).map_err(|e| e.to_string())
}

fn parse_norm(s: &str) -> Result<Norm, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Ok(Norm::Inf),
        "-inf" => Ok(Norm::NegInf),
        "fro" => Ok(Norm::Fro),
        "nuc" => Ok(Norm::Nuc),
        other => match other.parse::<f64>() {
            Ok(p) if p.is_nan() => Err("the norm order must be a number".into()),
            Ok(p) if p == f64::INFINITY => Ok(Norm::Inf),
            Ok(p) if p == f64::NEG_INFINITY => Ok(Norm::NegInf),
            Ok(p) => Ok(Norm::L(p)),
            Err(_) => Err("expected a number, \"inf\", \"-inf\", \"fro\" or \"nuc\"".into()),
        },
    }
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("bad glob `{p}`: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// Exits with a usage error (status 2): nothing was written.
pub fn usage_error(msg: String) -> ! {
    Cli::command()
        .error(ErrorKind::ArgumentConflict, msg)
        .exit()
}

/// Exits with a usage error (status 2) unless the arguments make sense.
pub fn check(mut args: PruneArgs) -> PruneJob {
    let usage = |kind: ErrorKind, msg: String| -> ! { Cli::command().error(kind, msg).exit() };
    let recipe = args.recipe.as_ref().map(|path| {
        ndprune::io::Recipe::from_path(path).unwrap_or_else(|e| {
            usage(
                ErrorKind::InvalidValue,
                format!("--recipe {}: {e}", path.display()),
            )
        })
    });
    if recipe.is_some() {
        // Placeholders: the recipe's steps say what to do.
        args.method = Some(Method::Global);
        args.amount = Some(Amount::Count(0));
    }
    if args.method == Some(Method::Nm) {
        if args.amount.is_some() {
            usage(
                ErrorKind::ArgumentConflict,
                "nm takes no --amount: --n of every --m are kept".into(),
            );
        }
        args.amount = Some(Amount::Count(0));
    }
    // Wanda N:M (--n and --m) keeps n of every m: no amount either.
    if args.method == Some(Method::Wanda) && (args.n.is_some() || args.m.is_some()) {
        if args.amount.is_some() {
            usage(
                ErrorKind::ArgumentConflict,
                "wanda with --n and --m (N:M) takes no --amount: --n of every --m are kept".into(),
            );
        }
        args.amount = Some(Amount::Count(0));
    }
    let (Some(method), Some(amount)) = (args.method, args.amount) else {
        usage(
            ErrorKind::MissingRequiredArgument,
            "--method and --amount (or --recipe) are needed".into(),
        )
    };
    let m = method.name();
    let needs_dim = matches!(method, Method::LnStructured | Method::RandomStructured);
    let takes_dim = needs_dim || method == Method::Nm;
    let mut norm = None;
    let mut nm = None;
    match (method, args.n.as_deref(), args.m) {
        (Method::LnStructured, Some(n), None) => {
            norm = Some(
                parse_norm(n)
                    .unwrap_or_else(|e| usage(ErrorKind::InvalidValue, format!("--n {n:?}: {e}"))),
            );
        }
        (Method::Nm | Method::Wanda, Some(n), Some(group)) => {
            let n: usize = n.trim().parse().unwrap_or_else(|_| {
                usage(
                    ErrorKind::InvalidValue,
                    format!("--n {n:?}: {m} keeps a count of entries, such as 2"),
                )
            });
            NmStructured::new(n, group, Dim(1))
                .unwrap_or_else(|e| usage(ErrorKind::InvalidValue, e.to_string()));
            nm = Some((n, group));
        }
        (Method::Wanda, Some(_), None) | (Method::Wanda, None, Some(_)) => usage(
            ErrorKind::MissingRequiredArgument,
            "wanda N:M needs both --n and --m (keep n of every m)".into(),
        ),
        (Method::LnStructured, None, _) => usage(
            ErrorKind::MissingRequiredArgument,
            "ln_structured needs --n".into(),
        ),
        (Method::Nm, _, _) => usage(
            ErrorKind::MissingRequiredArgument,
            "nm needs --n and --m (keep n of every m)".into(),
        ),
        (_, None, None) => {}
        (_, Some(_), _) => usage(ErrorKind::ArgumentConflict, format!("{m} takes no --n")),
        (_, None, Some(_)) => usage(ErrorKind::ArgumentConflict, format!("{m} takes no --m")),
    }
    let block = match (method, args.block) {
        (Method::Block, Some(shape)) => {
            let level = match amount {
                Amount::Fraction(f) => f,
                Amount::Count(c @ (0 | 1)) => c as f64,
                Amount::Count(c) => usage(
                    ErrorKind::InvalidValue,
                    format!(
                        "block takes a sparsity level in [0, 1] as --amount, not the count {c}"
                    ),
                ),
            };
            let norm = match args.block_norm {
                Some(BlockNormArg::L1) => BlockNorm::L1,
                Some(BlockNormArg::L2) | None => BlockNorm::L2,
            };
            let b = BlockSparsity::new(level, shape)
                .and_then(|b| {
                    b.with_zeros_per_block(args.zeros_per_block.unwrap_or(shape.0 * shape.1))
                })
                .unwrap_or_else(|e| usage(ErrorKind::InvalidValue, e.to_string()));
            Some(b.with_norm(norm))
        }
        (Method::Block, None) => usage(
            ErrorKind::MissingRequiredArgument,
            "block needs --block ROWSxCOLS".into(),
        ),
        (_, _) => {
            if args.block.is_some() || args.zeros_per_block.is_some() || args.block_norm.is_some() {
                usage(
                    ErrorKind::ArgumentConflict,
                    format!("{m} takes no --block, --zeros-per-block or --block-norm"),
                );
            }
            None
        }
    };
    let random = matches!(
        method,
        Method::RandomUnstructured | Method::RandomStructured
    );
    match (needs_dim, takes_dim, args.dim) {
        (true, _, None) => usage(
            ErrorKind::MissingRequiredArgument,
            format!("{m} needs --dim"),
        ),
        (_, false, Some(_)) => usage(ErrorKind::ArgumentConflict, format!("{m} takes no --dim")),
        _ => {}
    }
    match (&recipe, method, &args.act_norms) {
        (Some(r), _, None) if r.needs_activation_norms() => usage(
            ErrorKind::MissingRequiredArgument,
            "the recipe's wanda steps need --act-norms".into(),
        ),
        (Some(r), _, Some(_)) if !r.needs_activation_norms() => usage(
            ErrorKind::ArgumentConflict,
            "--act-norms is for wanda steps, and the recipe has none".into(),
        ),
        (Some(_), _, _) => {}
        (None, Method::Wanda, None) => usage(
            ErrorKind::MissingRequiredArgument,
            "wanda needs --act-norms".into(),
        ),
        (None, Method::Wanda, _) | (None, _, None) => {}
        (None, _, Some(_)) => usage(
            ErrorKind::ArgumentConflict,
            format!("{m} takes no --act-norms"),
        ),
    }
    if !random && (args.seed.is_some() || args.torch_seed.is_some()) {
        usage(ErrorKind::ArgumentConflict, format!("{m} takes no seed"));
    }
    let include = if args.include.is_empty() {
        None
    } else {
        Some(globs(&args.include).unwrap_or_else(|e| usage(ErrorKind::InvalidValue, e)))
    };
    let exclude = globs(&args.exclude).unwrap_or_else(|e| usage(ErrorKind::InvalidValue, e));
    // A directory or an index as IN makes a directory OUT, unless OUT
    // names a safetensors file.
    let sharded_in = args.input.is_dir()
        || args.input.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.ends_with(INDEX_SUFFIX) || n.ends_with(".bin.index.json")
        });
    let to_file = args.output.extension().is_some_and(|e| e == "safetensors");
    let output = if let Some(max_shard_bytes) = args.max_shard_size {
        if to_file {
            usage(
                ErrorKind::ArgumentConflict,
                "--max-shard-size writes a directory of shards: OUT must not end in .safetensors"
                    .into(),
            );
        }
        Output::Shards {
            dir: args.output.clone(),
            max_shard_bytes,
        }
    } else if sharded_in && !to_file {
        Output::Directory(args.output.clone())
    } else {
        Output::File(args.output.clone())
    };
    // An OUT that cannot work (a directory for a file, a device, a FIFO, a
    // missing directory, a name too long, a directory that is not empty)
    // is found now, before any work.
    if let Err(e) = output.check() {
        usage(ErrorKind::InvalidValue, format!("OUT: {e}"));
    }
    PruneJob {
        input: args.input,
        output,
        method,
        amount,
        recipe,
        remove_only: false,
        norm,
        nm,
        block,
        dim: args.dim.map(Dim),
        seed: args.seed.unwrap_or(0),
        torch_seed: args.torch_seed,
        act_norms: args.act_norms,
        include,
        exclude,
        remove: args.remove,
        ties: match args.ties {
            Ties::Torch => ndprune::io::StreamTies::Torch {
                max_bytes: args.tie_memory.saturating_mul(1 << 20),
            },
            Ties::Written => ndprune::io::StreamTies::WriteOrder,
        },
        json: args.json,
        verbose: args.verbose,
        quiet: args.quiet,
    }
}
