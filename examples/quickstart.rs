//! Quickstart: prune a small network step by step, as `torch.nn.utils.prune`
//! would, and print what each step did.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The network mirrors PyTorch's
//! `nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3), fc1=nn.Linear(72, 32), fc2=nn.Linear(32, 10)))`
//! with seeded random weights, so every run prints the same numbers. After
//! each step it shows, per tensor, the shape and sparsity (share of entries
//! pruned) of the tensor a forward pass would see, and the channels pruned
//! whole, all read from a `SparsityReport`; before and after `remove`, the
//! whole report: per tensor, per module, in all, and the bytes a model
//! without masks or without its pruned channels would take.

use std::error::Error;

use ndarray::{ArrayD, Axis};
use ndprune::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const WEIGHTS: [&str; 3] = ["conv.weight", "fc1.weight", "fc2.weight"];

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut model = Sequential::<f32>::new()
        .with_child("conv", Layer::conv2d(3, 8, 3, &mut rng))?
        .with_child("fc1", Layer::linear(72, 32, &mut rng))?
        .with_child("fc2", Layer::linear(32, 10, &mut rng))?;
    step("The network, unpruned");
    show(&model, &WEIGHTS)?;

    step("1. prune.ln_structured(conv, \"weight\", amount=0.25, n=2, dim=0)");
    let norms = Norm::L(2.0).channel_norms(tensor(&model, "conv.weight")?.view(), Dim(0))?;
    let norms: Vec<String> = norms.iter().map(|n| format!("{n:.3}")).collect();
    println!("  L2 norm of each output channel: [{}]", norms.join(", "));
    prune::ln_structured(
        &mut model,
        "conv.weight",
        Amount::Fraction(0.25),
        Norm::L(2.0),
        Dim(0),
        None,
    )?;
    show(&model, &["conv.weight"])?;
    let gone = zero_channels(buffer(&model, "conv.weight_mask")?, 0);
    println!("  output channels pruned (dim 0): {gone:?}, the 2 of 8 with smallest L2 norm");
    let report = SparsityReport::of(&model);
    let conv = report.tensor("conv.weight").ok_or("no conv.weight")?;
    println!(
        "  without them the weight would be {:?}: {} of {} bytes",
        conv.shrunk_shape(),
        conv.shrunk_bytes(),
        conv.removed_bytes()
    );

    step("2. prune.l1_unstructured(fc1, \"weight\", amount=0.4)");
    prune::l1_unstructured(&mut model, "fc1.weight", Amount::Fraction(0.4), None)?;
    show(&model, &["fc1.weight"])?;

    step("3. prune.l1_unstructured(fc1, \"weight\", amount=0.3) again");
    let left = unpruned(&model, "fc1.weight")?;
    let more = Amount::Fraction(0.3).count_of(left)?;
    println!(
        "  30% of the {left} entries left is round({:.1}) = {more} more",
        0.3 * left as f64
    );
    prune::l1_unstructured(&mut model, "fc1.weight", Amount::Fraction(0.3), None)?;
    show(&model, &["fc1.weight"])?;
    if let Some(history) = model.pruning_history("fc1.weight") {
        println!("  pruning history of fc1.weight (PyTorch's PruningContainer):");
        for step in history {
            println!("    {step}");
        }
    }

    step("4. prune.random_unstructured(fc2, \"weight\", amount=0.5), seeded");
    let mut prune_rng = StdRng::seed_from_u64(7);
    prune::random_unstructured(
        &mut model,
        "fc2.weight",
        Amount::Fraction(0.5),
        &mut prune_rng,
    )?;
    show(&model, &["fc2.weight"])?;

    step("5. prune.global_unstructured(all three weights, L1Unstructured, amount=0.2)");
    let before: Vec<usize> = WEIGHTS
        .iter()
        .map(|p| unpruned(&model, p))
        .collect::<Result<_>>()?;
    let left: usize = before.iter().sum();
    println!(
        "  20% of the {left} entries left across all three = {} entries, smallest |w| overall",
        Amount::Fraction(0.2).count_of(left)?
    );
    let l1 = L1Unstructured::new(Amount::Fraction(0.2))?;
    prune::global_unstructured(&mut model, &WEIGHTS, &l1, None)?;
    show(&model, &WEIGHTS)?;
    for (path, was) in WEIGHTS.iter().zip(before) {
        println!(
            "  {path:<12} lost {} more entries",
            was - unpruned(&model, path)?
        );
    }

    step("6. prune.custom_from_mask(fc2, \"bias\", mask=[1, 0, 1, 0, ...])");
    let keep = ArrayD::from_shape_fn(vec![10], |i| if i[0] % 2 == 0 { 1.0f32 } else { 0.0 });
    prune::custom_from_mask(&mut model, "fc2.bias", keep.view())?;
    show(&model, &["fc2.bias"])?;
    // Adding 0.0 prints the masked -0.0 entries as 0.000.
    let bias: Vec<String> = tensor(&model, "fc2.bias")?
        .iter()
        .map(|b| format!("{:.3}", b + 0.0))
        .collect();
    println!("  fc2.bias is now [{}]", bias.join(", "));

    step("Before remove: each pruned `name` is `name_orig` (parameter) * `name_mask` (buffer)");
    println!("  state_dict() before remove:");
    print_state_dict(&model);
    let pruned: Vec<String> = model.named_pruned().into_iter().map(|(p, _)| p).collect();
    println!(
        "  recomputed as orig * mask (not in the state_dict): {}",
        pruned.join(", ")
    );
    println!("  prune.is_pruned(model) = {}", prune::is_pruned(&model));

    step("The sparsity report: SparsityReport::of(&model)");
    println!("{}", SparsityReport::of(&model));

    step("7. prune.remove(m, name) on each of them: pruning becomes permanent");
    for path in &pruned {
        prune::remove(&mut model, path)?;
    }
    println!("  state_dict() after remove:");
    print_state_dict(&model);
    println!("  prune.is_pruned(model) = {}", prune::is_pruned(&model));
    show(
        &model,
        &["conv.weight", "fc1.weight", "fc2.weight", "fc2.bias"],
    )?;
    // Now plain tensors, counted by their zeros; the masks' bytes are gone.
    let total = SparsityReport::of(&model).total();
    println!("  total: {total}");
    println!("  bytes: {}", total.bytes_line());
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// The tensor a forward pass sees at `path`.
fn tensor<'a>(model: &'a Sequential<f32>, path: &str) -> Result<&'a ArrayD<f32>> {
    Ok(model.tensor(path).ok_or(format!("no tensor {path}"))?)
}

fn buffer<'a>(model: &'a Sequential<f32>, path: &str) -> Result<&'a ArrayD<f32>> {
    Ok(model.buffer(path).ok_or(format!("no buffer {path}"))?)
}

/// How many entries of `path` are still unpruned (mask 1, or nonzero if
/// unpruned), from the sparsity report.
fn unpruned(model: &Sequential<f32>, path: &str) -> Result<usize> {
    let report = SparsityReport::of(model);
    let t = report.tensor(path).ok_or(format!("no tensor {path}"))?;
    Ok(t.kept().ok_or("a float tensor is counted")?)
}

/// One line per tensor, from the sparsity report: shape, sparsity, and the
/// channels pruned whole along each dim.
fn show(model: &Sequential<f32>, paths: &[&str]) -> Result<()> {
    let report = SparsityReport::of(model);
    for path in paths {
        let t = report.tensor(path).ok_or(format!("no tensor {path}"))?;
        let shape = format!("{:?}", t.shape());
        let channels = t.channels_pruned().ok_or("a float tensor is counted")?;
        println!(
            "  {path:<12} {shape:<14} sparsity {:>6.2}%  ({:>4} of {:>4} pruned; channels per dim {channels:?})",
            100.0 * t.sparsity().unwrap_or(0.0),
            t.pruned().unwrap_or(0),
            t.entries(),
        );
    }
    Ok(())
}

/// Indices along `dim` whose slice of the mask is all zeros.
fn zero_channels(mask: &ArrayD<f32>, dim: usize) -> Vec<usize> {
    let slices = mask.axis_iter(Axis(dim)).enumerate();
    slices
        .filter(|(_, s)| s.iter().all(|&m| m == 0.0))
        .map(|(i, _)| i)
        .collect()
}

fn print_state_dict(model: &Sequential<f32>) {
    let buffers: Vec<String> = model.named_buffers().into_iter().map(|(p, _)| p).collect();
    for (key, t) in model.state_dict() {
        let kind = if buffers.contains(&key) {
            "buffer"
        } else {
            "parameter"
        };
        println!("    {key:<16} {kind:<9} {:?}", t.shape());
    }
}
