//! Accuracy vs. sparsity: train a small MLP on handwritten digits, prune its
//! weights with each of ndprune's methods, and measure the test accuracy.
//!
//! ```text
//! cargo run --release --example digits_sparsity
//! ```
//!
//! The data is the UCI "Optical Recognition of Handwritten Digits" set
//! (1,797 8x8 images, see `examples/data/README.md`), read from
//! `examples/data/digits.csv.gz` in this repository. A seeded shuffle keeps
//! 25 % of it for testing. An MLP 64-128-64-10 (ReLU, softmax cross-entropy)
//! whose tensors live in ndprune `Layer`s named `fc1`, `fc2`, `fc3` is
//! trained with plain minibatch SGD; its forward pass reads
//! `model.tensor("fc1.weight")`, which is `weight_orig * weight_mask` once the
//! weight is pruned.
//!
//! Then, for each sparsity 0, 10, ..., 90, 95 %, a copy of the trained model
//! has every weight (not the biases) pruned in one shot by
//! `l1_unstructured`, `ln_structured` (rows, L2), `random_unstructured`
//! (mean of 5 seeds) and `global_unstructured` (L1 over the three weights
//! together), and the test accuracy is printed as a table. Last, iterative
//! pruning: `l1_unstructured` of 20 % of what is left, then a few epochs of
//! fine-tuning that update `*.weight_orig` through `parameter_mut` and call
//! `recompute_pruned()`, repeated up to about 95 % sparsity, next to one-shot
//! L1 pruning at the same per-layer sparsity.
//!
//! Then gradual pruning during fine-tuning on torch.ao's cubic schedule
//! (`CubicSL` through a `GradualPruner`, per tensor) against one-shot L1 at
//! the same sparsity, with and without the same epochs of fine-tuning; and
//! Wanda (activation norms of each layer's inputs over the training set)
//! against magnitude pruning, per row and per layer, one shot.
//!
//! Last, two studies of structure. Structured shrink: a share of each
//! hidden layer's units is pruned by channel group (`group::infer_chain`,
//! `group::prune_group`), the pruned units are cut out by `group::shrink`
//! (whose test logits are checked to equal the masked model's bit for bit),
//! the forward passes of the masked and the shrunk model are timed, and the
//! shrunk model is fine-tuned. And 2:4 sparsity (`nm_structured`, and Wanda
//! with `NmStructured`) against unstructured 50 %, one shot and fine-tuned.
//!
//! The plots go to `docs/digits_sparsity.png` / `.svg`,
//! `docs/digits_gradual_wanda.png` / `.svg` and `docs/digits_shrink.png` /
//! `.svg`.

use std::error::Error;
use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::read::GzDecoder;
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2};
use ndprune::group::{self, GroupImportance, Inexact};
use ndprune::prelude::*;
use ndprune::schedule::{CubicSL, GradualPruner, Scope};
use ndprune::wanda::{self, ActivationNorms, NormAccumulator};
use ndprune::{PerRowUnstructured, Rounding};
use plotters::prelude::*;
use plotters::style::FontStyle;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One seed for the shuffle, the initial weights and the minibatch order.
const SEED: u64 = 2026;
const LAYERS: [&str; 3] = ["fc1", "fc2", "fc3"];
const WEIGHTS: [&str; 3] = ["fc1.weight", "fc2.weight", "fc3.weight"];
const TEST_SHARE: f64 = 0.25;
const EPOCHS: usize = 40;
const BATCH: usize = 32;
const LR: f32 = 0.1;
/// Sparsities of the one-shot study, in percent.
const SPARSITIES: [u32; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95];
const RANDOM_SEEDS: u64 = 5;
/// Iterative pruning: rounds of "prune 20 % of what is left, fine-tune".
const ROUNDS: usize = 14;
const ROUND_SHARE: f64 = 0.2;
const FINE_TUNE_EPOCHS: usize = 3;
const FINE_TUNE_LR: f32 = 0.05;

/// Gradual pruning: schedule steps (one epoch each), then epochs at the
/// final sparsity, for each final sparsity in percent.
const GRADUAL_STEPS: usize = 8;
const GRADUAL_TAIL: usize = 2;
const GRADUAL_FINALS: [u32; 3] = [80, 90, 95];

/// Structured shrink: eighths of each hidden layer's units removed.
const SHRINK_EIGHTHS: [usize; 6] = [0, 2, 4, 5, 6, 7];
/// Fine-tuning after shrinking and after 2:4 pruning, each from a generator
/// seeded with this, at `FINE_TUNE_LR`.
const TUNE_EPOCHS: usize = 5;
const TUNE_SEED: u64 = SEED + 1;
/// Forward passes of the test set timed per model (the median is kept).
const TIMING_REPS: usize = 200;

static FONT: &[u8] = include_bytes!("data/DejaVuSans.ttf");

fn main() -> Result<()> {
    let start = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (x, y) = load_digits(&root.join("examples/data/digits.csv.gz"))?;

    // Seeded shuffle, then the first 25 % for testing.
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.shuffle(&mut rng);
    let n_test = (TEST_SHARE * y.len() as f64).round() as usize;
    let (test_idx, train_idx) = order.split_at(n_test);
    let train = Split::select(&x, &y, train_idx);
    let test = Split::select(&x, &y, test_idx);
    println!(
        "UCI digits: {} images, {} for training, {} held out for testing",
        y.len(),
        train.y.len(),
        test.y.len()
    );

    // Train the dense network.
    let mut model = Sequential::<f32>::new()
        .with_child("fc1", Layer::linear(64, 128, &mut rng))?
        .with_child("fc2", Layer::linear(128, 64, &mut rng))?
        .with_child("fc3", Layer::linear(64, 10, &mut rng))?;
    let t = Instant::now();
    for _ in 0..EPOCHS {
        train_epoch(&mut model, &train, LR, &mut rng);
    }
    let dense_acc = accuracy(&model, &test);
    println!(
        "MLP 64-128-64-10, {EPOCHS} epochs of SGD (batch {BATCH}, lr {LR}) in {:.2} s: \
         train accuracy {:.1} %, test accuracy {:.1} %\n",
        t.elapsed().as_secs_f64(),
        100.0 * accuracy(&model, &train),
        100.0 * dense_acc
    );
    let trained = snapshot(&model);

    // One-shot pruning of every weight to each sparsity.
    let methods = [
        "l1_unstructured",
        "ln_structured",
        "random_unstructured",
        "global_unstructured",
    ];
    let mut curves: Vec<Vec<(f64, f64)>> = vec![Vec::new(); methods.len()];
    println!("One-shot pruning of fc1, fc2 and fc3 weights: test accuracy (%)");
    println!(
        "{:>8} | {:>15} | {:>15} | {:>19} | {:>19}",
        "sparsity",
        "l1_unstructured",
        "ln_structured",
        "random_unstructured",
        "global_unstructured"
    );
    println!("{:-<9}+{:-<17}+{:-<17}+{:-<21}+{:-<20}", "", "", "", "", "");
    let mut global_split = String::new();
    for &pct in &SPARSITIES {
        let amount = Amount::Fraction(f64::from(pct) / 100.0);
        let mut accs = Vec::with_capacity(methods.len());

        let mut m = rebuild(&trained);
        for w in WEIGHTS {
            prune::l1_unstructured(&mut m, w, amount, None)?;
        }
        accs.push(accuracy(&m, &test));

        let mut m = rebuild(&trained);
        for w in WEIGHTS {
            prune::ln_structured(&mut m, w, amount, Norm::L(2.0), Dim(0), None)?;
        }
        accs.push(accuracy(&m, &test));

        let mut sum = 0.0;
        for seed in 0..RANDOM_SEEDS {
            let mut prune_rng = StdRng::seed_from_u64(SEED + 1000 * u64::from(pct) + seed);
            let mut m = rebuild(&trained);
            for w in WEIGHTS {
                prune::random_unstructured(&mut m, w, amount, &mut prune_rng)?;
            }
            sum += accuracy(&m, &test);
        }
        accs.push(sum / RANDOM_SEEDS as f64);

        let mut m = rebuild(&trained);
        prune::global_unstructured(&mut m, &WEIGHTS, &L1Unstructured::new(amount)?, None)?;
        accs.push(accuracy(&m, &test));
        if pct == 90 {
            global_split = WEIGHTS
                .iter()
                .map(|w| {
                    let share = pruned_count(&m, w) as f64 / weight_len(&m, w) as f64;
                    format!("{w} {:.1} %", 100.0 * share)
                })
                .collect::<Vec<_>>()
                .join(", ");
        }

        for (curve, &acc) in curves.iter_mut().zip(&accs) {
            curve.push((f64::from(pct), 100.0 * acc));
        }
        println!(
            "{:>7}% | {:>15.1} | {:>15.1} | {:>19.1} | {:>19.1}",
            pct,
            100.0 * accs[0],
            100.0 * accs[1],
            100.0 * accs[2],
            100.0 * accs[3]
        );
    }
    println!(
        "(ln_structured prunes whole rows: hidden units of fc1 and fc2, class outputs of fc3;"
    );
    println!(" random_unstructured is the mean over {RANDOM_SEEDS} seeds;");
    println!(" global_unstructured at 90 % pruned {global_split})\n");

    // Iterative pruning with fine-tuning, against one-shot L1 at the same
    // per-layer sparsity.
    println!(
        "Iterative l1_unstructured: prune {:.0} % of what is left, fine-tune {FINE_TUNE_EPOCHS} epochs (lr {FINE_TUNE_LR})",
        100.0 * ROUND_SHARE
    );
    println!(
        "{:>5} | {:>8} | {:>14} | {:>16} | {:>17}",
        "round", "sparsity", "after pruning", "after fine-tune", "one-shot l1 there"
    );
    println!("{:-<6}+{:-<10}+{:-<16}+{:-<18}+{:-<18}", "", "", "", "", "");
    let mut tuned = rebuild(&trained);
    let mut tuned_curve = vec![(0.0, 100.0 * dense_acc)];
    let mut oneshot_curve = vec![(0.0, 100.0 * dense_acc)];
    for round in 1..=ROUNDS {
        for w in WEIGHTS {
            prune::l1_unstructured(&mut tuned, w, Amount::Fraction(ROUND_SHARE), None)?;
        }
        let pruned_acc = accuracy(&tuned, &test);
        for _ in 0..FINE_TUNE_EPOCHS {
            train_epoch(&mut tuned, &train, FINE_TUNE_LR, &mut rng);
        }
        let tuned_acc = accuracy(&tuned, &test);
        // Fine-tuning changed `weight_orig`; what the forward pass reads is
        // still zero wherever the mask is.
        for w in WEIGHTS {
            let mask = tuned.buffer(&format!("{w}_mask")).expect("pruned");
            let weight = tuned.tensor(w).expect("weight");
            assert!(mask.iter().zip(weight).all(|(&m, &v)| m == 1.0 || v == 0.0));
        }

        // One shot from the trained model, to the same count per layer.
        let mut oneshot = rebuild(&trained);
        for w in WEIGHTS {
            let zeros = pruned_count(&tuned, w);
            prune::l1_unstructured(&mut oneshot, w, Amount::Count(zeros), None)?;
        }
        let oneshot_acc = accuracy(&oneshot, &test);
        let sparsity = 100.0 * weight_sparsity(&tuned);
        tuned_curve.push((sparsity, 100.0 * tuned_acc));
        oneshot_curve.push((sparsity, 100.0 * oneshot_acc));
        println!(
            "{:>5} | {:>7.1}% | {:>14.1} | {:>16.1} | {:>17.1}",
            round,
            sparsity,
            100.0 * pruned_acc,
            100.0 * tuned_acc,
            100.0 * oneshot_acc
        );
    }

    // Gradual pruning on the cubic schedule during fine-tuning, against
    // one-shot L1 to the same per-layer counts, fine-tuned as long or not.
    let epochs = GRADUAL_STEPS + GRADUAL_TAIL;
    println!(
        "\nGradual pruning during fine-tuning: CubicSL from 0 to the final sparsity over {GRADUAL_STEPS} steps \
         (one epoch each), then {GRADUAL_TAIL} epochs; per tensor, lr {FINE_TUNE_LR}"
    );
    println!(
        "{:>8} | {:>11} | {:>22} | {:>13}",
        "sparsity", "one-shot l1", "one-shot l1 + fine-tune", "gradual cubic"
    );
    println!("{:-<9}+{:-<13}+{:-<24}+{:-<14}", "", "", "", "");
    let mut gradual_curve = vec![(0.0, 100.0 * dense_acc)];
    let mut tuned_oneshot_curve = vec![(0.0, 100.0 * dense_acc)];
    for &pct in &GRADUAL_FINALS {
        let s_f = f64::from(pct) / 100.0;
        let schedule = CubicSL::new(s_f)?.with_steps(0, 1, GRADUAL_STEPS as i64)?;
        let pruner = GradualPruner::new(schedule, WEIGHTS, Scope::PerTensor)?;
        let mut gradual = rebuild(&trained);
        for step in 0..epochs {
            let done = pruner.step(&mut gradual, step as i64)?;
            assert_eq!(done.after, done.target);
            train_epoch(&mut gradual, &train, FINE_TUNE_LR, &mut rng);
        }
        let mut oneshot = rebuild(&trained);
        for w in WEIGHTS {
            prune::l1_unstructured(&mut oneshot, w, Amount::Fraction(s_f), None)?;
            assert_eq!(pruned_count(&oneshot, w), pruned_count(&gradual, w));
        }
        let oneshot_acc = accuracy(&oneshot, &test);
        for _ in 0..epochs {
            train_epoch(&mut oneshot, &train, FINE_TUNE_LR, &mut rng);
        }
        let sparsity = 100.0 * weight_sparsity(&gradual);
        let (tuned_acc, gradual_acc) = (accuracy(&oneshot, &test), accuracy(&gradual, &test));
        gradual_curve.push((sparsity, 100.0 * gradual_acc));
        tuned_oneshot_curve.push((sparsity, 100.0 * tuned_acc));
        println!(
            "{:>7.1}% | {:>11.1} | {:>23.1} | {:>13.1}",
            sparsity,
            100.0 * oneshot_acc,
            100.0 * tuned_acc,
            100.0 * gradual_acc
        );
    }

    // Wanda: the norms of each layer's inputs over the training set, from
    // the trained dense model; against magnitude per row and per layer.
    let f = forward(&model, train.x.view());
    let mut norms = Vec::with_capacity(3);
    for (inputs, n) in [(train.x.view(), 64), (f.h1.view(), 128), (f.h2.view(), 64)] {
        let mut acc = NormAccumulator::new(n);
        acc.update(inputs)?;
        norms.push(acc.norms()?);
    }
    println!("\nWanda (|W| x ||X||_2, per output row, rounded down) against magnitude, one shot, no fine-tuning");
    println!(
        "{:>8} | {:>15} | {:>17} | {:>11}",
        "sparsity", "l1 (per layer)", "magnitude per row", "Wanda"
    );
    println!("{:-<9}+{:-<17}+{:-<19}+{:-<12}", "", "", "", "");
    let mut wanda_curve = Vec::new();
    let mut row_curve = Vec::new();
    for (i, &pct) in SPARSITIES.iter().enumerate() {
        let amount = Amount::Fraction(f64::from(pct) / 100.0);
        let mut by_wanda = rebuild(&trained);
        let mut by_row = rebuild(&trained);
        let per_row = PerRowUnstructured::new(amount)?.with_rounding(Rounding::Down);
        for (w, n) in WEIGHTS.iter().zip(&norms) {
            wanda::prune(&mut by_wanda, w, n, amount)?;
            prune::apply(&mut by_row, w, &per_row, None)?;
        }
        let (wanda_acc, row_acc) = (accuracy(&by_wanda, &test), accuracy(&by_row, &test));
        let sparsity = 100.0 * weight_sparsity(&by_wanda);
        wanda_curve.push((sparsity, 100.0 * wanda_acc));
        row_curve.push((sparsity, 100.0 * row_acc));
        println!(
            "{:>7.1}% | {:>15.1} | {:>17.1} | {:>11.1}",
            sparsity,
            curves[0][i].1,
            100.0 * row_acc,
            100.0 * wanda_acc
        );
    }

    // Structured shrink: whole hidden units pruned by channel group, then
    // cut out; and 2:4 against magnitude and Wanda. Each fine-tuning starts
    // from its own seeded generator, so every row gets the same minibatch
    // order and the studies above are untouched.
    let shrink_rows = shrink_study(&trained, &train, &test)?;
    nm_study(&trained, &train, &test, &norms)?;

    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    let l1_curve = curves[0].clone();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = methods
        .iter()
        .map(|m| format!("{m}, one shot"))
        .zip(curves)
        .collect();
    series.push((
        "l1_unstructured, iterative + fine-tune".to_string(),
        tuned_curve,
    ));
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| "DejaVuSans.ttf is no valid font")?;
    let png = docs.join("digits_sparsity.png");
    let svg = docs.join("digits_sparsity.svg");
    let caption = "MLP 64-128-64-10 on UCI digits: test accuracy vs. weight sparsity";
    plot(
        BitMapBackend::new(&png, (960, 600)).into_drawing_area(),
        &series,
        caption,
    )?;
    plot(
        SVGBackend::new(&svg, (960, 600)).into_drawing_area(),
        &series,
        caption,
    )?;
    let second = vec![
        (
            "l1_unstructured (per layer), one shot".to_string(),
            l1_curve,
        ),
        ("magnitude per row, one shot".to_string(), row_curve),
        ("Wanda (per row), one shot".to_string(), wanda_curve),
        (
            format!("l1 one shot + {epochs} epochs fine-tune"),
            tuned_oneshot_curve,
        ),
        (
            format!("gradual CubicSL, {epochs} epochs fine-tune"),
            gradual_curve,
        ),
    ];
    let caption = "Digits MLP: Wanda vs. magnitude (one shot); gradual cubic vs. one shot";
    let png2 = docs.join("digits_gradual_wanda.png");
    let svg2 = docs.join("digits_gradual_wanda.svg");
    plot(
        BitMapBackend::new(&png2, (960, 600)).into_drawing_area(),
        &second,
        caption,
    )?;
    plot(
        SVGBackend::new(&svg2, (960, 600)).into_drawing_area(),
        &second,
        caption,
    )?;
    let caption = "Digits MLP: hidden units removed by channel group, masked vs. shrunk";
    let png3 = docs.join("digits_shrink.png");
    let svg3 = docs.join("digits_shrink.svg");
    plot_shrink(
        BitMapBackend::new(&png3, (1200, 560)).into_drawing_area(),
        &shrink_rows,
        caption,
    )?;
    plot_shrink(
        SVGBackend::new(&svg3, (1200, 560)).into_drawing_area(),
        &shrink_rows,
        caption,
    )?;
    let written: Vec<String> = [&png, &svg, &png2, &svg2, &png3, &svg3]
        .iter()
        .map(|p| p.strip_prefix(&root).map(|r| r.display().to_string()))
        .collect::<std::result::Result<_, _>>()?;
    println!(
        "\nWrote {} ({:.1} s in all)",
        written.join(", "),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads the gzipped CSV: 64 pixel values 0..16, then the label 0..9. Pixels
/// are scaled to [0, 1].
fn load_digits(path: &Path) -> Result<(Array2<f32>, Vec<usize>)> {
    let mut text = String::new();
    GzDecoder::new(File::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
        .read_to_string(&mut text)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != 65 {
            return Err(format!("line {}: {} fields, expected 65", i + 1, fields.len()).into());
        }
        for f in &fields[..64] {
            pixels.push(f.parse::<f32>()? / 16.0);
        }
        let label: usize = fields[64].parse()?;
        if label > 9 {
            return Err(format!("line {}: label {label}", i + 1).into());
        }
        labels.push(label);
    }
    Ok((Array2::from_shape_vec((labels.len(), 64), pixels)?, labels))
}

/// Images (rows of 64 values in [0, 1]) and their labels.
struct Split {
    x: Array2<f32>,
    y: Vec<usize>,
}

impl Split {
    fn select(x: &Array2<f32>, y: &[usize], idx: &[usize]) -> Split {
        Split {
            x: x.select(Axis(0), idx),
            y: idx.iter().map(|&i| y[i]).collect(),
        }
    }
}

/// The weights and biases of a model, to rebuild unpruned copies of it.
fn snapshot(model: &Sequential<f32>) -> Vec<(ArrayD<f32>, ArrayD<f32>)> {
    LAYERS
        .iter()
        .map(|l| {
            let w = model.tensor(&format!("{l}.weight")).expect("weight");
            let b = model.tensor(&format!("{l}.bias")).expect("bias");
            (w.clone(), b.clone())
        })
        .collect()
}

fn rebuild(params: &[(ArrayD<f32>, ArrayD<f32>)]) -> Sequential<f32> {
    LAYERS
        .iter()
        .zip(params)
        .fold(Sequential::new(), |model, (name, (w, b))| {
            let layer = Layer::new()
                .with_parameter("weight", w.clone())
                .and_then(|l| l.with_parameter("bias", b.clone()))
                .expect("two names in a new layer");
            model
                .with_child(name, layer)
                .expect("one child per distinct layer name")
        })
}

/// A tensor of the model as a matrix, as the forward pass sees it.
fn matrix<'a>(model: &'a Sequential<f32>, path: &str) -> ArrayView2<'a, f32> {
    model
        .tensor(path)
        .unwrap_or_else(|| panic!("no tensor {path}"))
        .view()
        .into_dimensionality::<Ix2>()
        .expect("a matrix")
}

fn vector(model: &Sequential<f32>, path: &str) -> Array1<f32> {
    model
        .tensor(path)
        .unwrap_or_else(|| panic!("no tensor {path}"))
        .view()
        .into_dimensionality()
        .expect("a vector")
        .to_owned()
}

/// The activations of one forward pass: the two hidden layers
/// (after ReLU) and the logits.
struct Forward {
    h1: Array2<f32>,
    h2: Array2<f32>,
    logits: Array2<f32>,
}

fn forward(model: &Sequential<f32>, x: ArrayView2<f32>) -> Forward {
    let dense = |input: ArrayView2<f32>, layer: &str| {
        input.dot(&matrix(model, &format!("{layer}.weight")).t())
            + vector(model, &format!("{layer}.bias"))
    };
    let h1 = dense(x, "fc1").mapv(|v| v.max(0.0));
    let h2 = dense(h1.view(), "fc2").mapv(|v| v.max(0.0));
    let logits = dense(h2.view(), "fc3");
    Forward { h1, h2, logits }
}

fn accuracy(model: &Sequential<f32>, data: &Split) -> f64 {
    let logits = forward(model, data.x.view()).logits;
    let correct = logits
        .outer_iter()
        .zip(&data.y)
        .filter(|(row, &label)| argmax(row.iter().copied()) == label)
        .count();
    correct as f64 / data.y.len() as f64
}

fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// One epoch of minibatch SGD on softmax cross-entropy.
///
/// The forward pass uses the weights as pruning left them. A pruned
/// tensor's gradient goes to its `_orig` (`weight_orig`), masked as autograd
/// masks it through `weight_orig * weight_mask`, and `recompute_pruned()`
/// then refreshes `weight`: PyTorch's forward pre-hook.
fn train_epoch(model: &mut Sequential<f32>, data: &Split, lr: f32, rng: &mut StdRng) {
    let mut order: Vec<usize> = (0..data.y.len()).collect();
    order.shuffle(rng);
    for batch in order.chunks(BATCH) {
        let x = data.x.select(Axis(0), batch);
        let grads = gradients(model, x.view(), batch.iter().map(|&i| data.y[i]));
        for (layer, (dw, db)) in LAYERS.iter().zip(grads) {
            sgd_step(model, &format!("{layer}.weight"), dw.into_dyn(), lr);
            sgd_step(model, &format!("{layer}.bias"), db.into_dyn(), lr);
        }
        model.recompute_pruned();
    }
}

/// One SGD step on a tensor: on the tensor itself, or on its `_orig` once
/// pruned, with the gradient masked (the shrunk models of the structured
/// study have pruned biases too).
fn sgd_step(model: &mut Sequential<f32>, path: &str, grad: ArrayD<f32>, lr: f32) {
    let orig = format!("{path}_orig");
    let (param, grad) = match model.parameter(&orig) {
        Some(_) => {
            let mask = model
                .buffer(&format!("{path}_mask"))
                .unwrap_or_else(|| panic!("pruned {path} has no mask"));
            let grad = grad * mask;
            (orig, grad)
        }
        None => (path.to_string(), grad),
    };
    model
        .parameter_mut(&param)
        .unwrap_or_else(|| panic!("no parameter {param}"))
        .scaled_add(-lr, &grad);
}

/// Gradients of the mean cross-entropy over the batch with respect to each
/// layer's (effective) weight and bias.
fn gradients(
    model: &Sequential<f32>,
    x: ArrayView2<f32>,
    labels: impl Iterator<Item = usize>,
) -> Vec<(Array2<f32>, Array1<f32>)> {
    let f = forward(model, x);
    let n = x.nrows() as f32;
    // d loss / d logits = (softmax - one_hot) / n
    let mut d3 = f.logits;
    for (mut row, label) in d3.outer_iter_mut().zip(labels) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
        row[label] -= 1.0;
        row.mapv_inplace(|v| v / n);
    }
    let relu_back = |d: Array2<f32>, h: &Array2<f32>| {
        let mut d = d;
        d.zip_mut_with(h, |g, &a| {
            if a <= 0.0 {
                *g = 0.0;
            }
        });
        d
    };
    let d2 = relu_back(d3.dot(&matrix(model, "fc3.weight")), &f.h2);
    let d1 = relu_back(d2.dot(&matrix(model, "fc2.weight")), &f.h1);
    vec![
        (d1.t().dot(&x), d1.sum_axis(Axis(0))),
        (d2.t().dot(&f.h1), d2.sum_axis(Axis(0))),
        (d3.t().dot(&f.h2), d3.sum_axis(Axis(0))),
    ]
}

/// Entries of a pruned weight that its mask zeroes. Every caller has
/// pruned the weight (a mask of all ones at the least), so a missing mask
/// is a bug of this study, not an unpruned weight.
fn pruned_count(model: &Sequential<f32>, weight: &str) -> usize {
    model
        .buffer(&format!("{weight}_mask"))
        .unwrap_or_else(|| panic!("{weight} is counted after it is pruned, so it has a mask"))
        .iter()
        .filter(|&&v| v == 0.0)
        .count()
}

/// The entries of one of the study's weights (each of `WEIGHTS` is in
/// every model it builds).
fn weight_len(model: &Sequential<f32>, weight: &str) -> usize {
    model
        .tensor(weight)
        .unwrap_or_else(|| panic!("the study's models all have {weight}"))
        .len()
}

/// The share of all weight entries (fc1, fc2, fc3) that pruning zeroed.
fn weight_sparsity(model: &Sequential<f32>) -> f64 {
    let total: usize = WEIGHTS.iter().map(|w| weight_len(model, w)).sum();
    let pruned: usize = WEIGHTS.iter().map(|w| pruned_count(model, w)).sum();
    pruned as f64 / total as f64
}

/// One row of the structured-shrink study.
struct ShrinkRow {
    /// Share of each hidden layer's units removed, in percent.
    removed: f64,
    /// Hidden widths after shrinking.
    widths: (usize, usize),
    /// Weights and biases stored by the masked model and by the shrunk one.
    params_masked: usize,
    params_shrunk: usize,
    /// Test accuracy of the masked model (the shrunk one's is the same),
    /// and of the shrunk model after fine-tuning.
    accuracy: f64,
    tuned: f64,
    /// Median forward time of the test set, in microseconds.
    micros_masked: f64,
    micros_shrunk: f64,
}

/// Prunes a share of the hidden units of the trained model by channel
/// group (a unit's row and bias in its layer and its column in the next),
/// checks that `shrink` keeps the test logits bit for bit, times the two
/// forward passes and fine-tunes the shrunk model.
fn shrink_study(
    trained: &[(ArrayD<f32>, ArrayD<f32>)],
    train: &Split,
    test: &Split,
) -> Result<Vec<ShrinkRow>> {
    let groups = group::infer_chain(&rebuild(trained))?;
    assert_eq!(groups.len(), 2, "one channel group per hidden layer");
    println!(
        "\nStructured shrink: a share of each hidden layer's units pruned by group importance \
         (L2 over the unit's row, bias and next-layer column), then cut out by group::shrink; \
         fine-tune {TUNE_EPOCHS} epochs (lr {FINE_TUNE_LR}); test accuracy (%) and forward time \
         of the {} test images (µs, median of {TIMING_REPS})",
        test.y.len()
    );
    println!(
        "{:>7} | {:>6} | {:>13} | {:>13} | {:>22} | {:>16} | {:>9} | {:>9} | {:>8}",
        "removed",
        "hidden",
        "params masked",
        "params shrunk",
        "acc. (masked = shrunk)",
        "acc. + fine-tune",
        "µs masked",
        "µs shrunk",
        "speed-up"
    );
    println!(
        "{:-<8}+{:-<8}+{:-<15}+{:-<15}+{:-<24}+{:-<18}+{:-<11}+{:-<11}+{:-<9}",
        "", "", "", "", "", "", "", "", ""
    );
    let mut rows = Vec::with_capacity(SHRINK_EIGHTHS.len());
    for &eighths in &SHRINK_EIGHTHS {
        let mut masked = rebuild(trained);
        for g in &groups {
            let count = g.channels() * eighths / 8;
            group::prune_group(
                &mut masked,
                g,
                Amount::Count(count),
                &GroupImportance::default(),
            )?;
        }
        let mut shrunk = masked.clone();
        let report = group::shrink(&mut shrunk, &groups, Inexact::Refuse)?;
        assert!(
            report.is_exact(),
            "shrink left a constant channel at {eighths}/8 of the hidden units"
        );
        let removed = 100.0 * eighths as f64 / 8.0;
        let before = forward(&masked, test.x.view()).logits;
        let after = forward(&shrunk, test.x.view()).logits;
        assert!(
            before.shape() == after.shape()
                && before
                    .iter()
                    .zip(&after)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the shrunk model's test logits differ from the masked model's at {removed} % of \
             hidden units removed; shrink must be exact"
        );
        let params_shrunk = stored_params(&shrunk);
        assert_eq!(
            unmasked_params(&masked),
            params_shrunk,
            "the shrunk model keeps exactly the masked model's unmasked entries"
        );
        let masked_acc = accuracy(&masked, test);
        let (micros_masked, micros_shrunk) = forward_micros(&masked, &shrunk, test.x.view());

        let mut tune_rng = StdRng::seed_from_u64(TUNE_SEED);
        for _ in 0..TUNE_EPOCHS {
            train_epoch(&mut shrunk, train, FINE_TUNE_LR, &mut tune_rng);
        }
        let width = |layer: &str| matrix(&shrunk, &format!("{layer}.weight")).nrows();
        let row = ShrinkRow {
            removed,
            widths: (width("fc1"), width("fc2")),
            params_masked: stored_params(&masked),
            params_shrunk,
            accuracy: 100.0 * masked_acc,
            tuned: 100.0 * accuracy(&shrunk, test),
            micros_masked,
            micros_shrunk,
        };
        println!(
            "{:>6.1}% | {:>6} | {:>13} | {:>13} | {:>22.1} | {:>16.1} | {:>9.0} | {:>9.0} | {:>7.2}x",
            row.removed,
            format!("{}-{}", row.widths.0, row.widths.1),
            row.params_masked,
            row.params_shrunk,
            row.accuracy,
            row.tuned,
            row.micros_masked,
            row.micros_shrunk,
            row.micros_masked / row.micros_shrunk
        );
        rows.push(row);
    }
    println!(
        "(the masked model's forward pass reads fc*.weight = weight_orig * weight_mask at full size; \
         the shrunk model's test logits equal the masked model's bit for bit, checked)"
    );
    Ok(rows)
}

/// 2:4 sparsity (two of every four consecutive inputs kept in each row) by
/// magnitude and by Wanda, against 50 % by magnitude per layer and Wanda
/// per row, one shot and after fine-tuning.
fn nm_study(
    trained: &[(ArrayD<f32>, ArrayD<f32>)],
    train: &Split,
    test: &Split,
    norms: &[ActivationNorms],
) -> Result<()> {
    let nm = NmStructured::new(2, 4, Dim(1))?;
    let half = Amount::Fraction(0.5);
    println!(
        "\n2:4 against unstructured 50 % on fc1, fc2 and fc3 weights: test accuracy (%), \
         one shot and after {TUNE_EPOCHS} epochs of fine-tuning (lr {FINE_TUNE_LR}, masks kept)"
    );
    println!(
        "{:>32} | {:>8} | {:>8} | {:>15}",
        "method", "sparsity", "one shot", "after fine-tune"
    );
    println!("{:-<33}+{:-<10}+{:-<10}+{:-<16}", "", "", "", "");
    let methods = [
        "l1_unstructured 50 % per layer",
        "Wanda 50 % per row",
        "nm_structured 2:4 (magnitude)",
        "Wanda 2:4",
    ];
    for (i, name) in methods.iter().enumerate() {
        let mut m = rebuild(trained);
        for (w, n) in WEIGHTS.iter().zip(norms) {
            match i {
                0 => prune::l1_unstructured(&mut m, w, half, None)?,
                1 => wanda::prune(&mut m, w, n, half)?,
                2 => prune::nm_structured(&mut m, w, 2, 4, Dim(1), None)?,
                _ => wanda::prune_with(&mut m, w, n, &nm)?,
            }
        }
        let one_shot = accuracy(&m, test);
        let mut tune_rng = StdRng::seed_from_u64(TUNE_SEED);
        for _ in 0..TUNE_EPOCHS {
            train_epoch(&mut m, train, FINE_TUNE_LR, &mut tune_rng);
        }
        if i >= 2 {
            for w in WEIGHTS {
                assert!(
                    keeps_two_of_four(&m, w),
                    "{w} is no longer 2:4 after fine-tuning with {name}"
                );
            }
        }
        println!(
            "{:>32} | {:>7.1}% | {:>8.1} | {:>15.1}",
            name,
            100.0 * weight_sparsity(&m),
            100.0 * one_shot,
            100.0 * accuracy(&m, test)
        );
    }
    Ok(())
}

/// Whether every four consecutive entries of each row of a weight hold
/// exactly two nonzero values, in its mask and in the weight itself.
fn keeps_two_of_four(model: &Sequential<f32>, weight: &str) -> bool {
    let mask = model
        .buffer(&format!("{weight}_mask"))
        .expect("a pruned weight has a mask");
    let mask = mask.view().into_dimensionality::<Ix2>().expect("a matrix");
    let values = matrix(model, weight);
    mask.outer_iter().zip(values.outer_iter()).all(|(m, v)| {
        let (m, v) = (m.to_vec(), v.to_vec());
        m.chunks(4).zip(v.chunks(4)).all(|(m, v)| {
            m.iter().filter(|&&x| x != 0.0).count() == 2
                && v.iter().filter(|&&x| x != 0.0).count() <= 2
        })
    })
}

/// Weights and biases the model stores (a pruned tensor counted once).
fn stored_params(model: &Sequential<f32>) -> usize {
    LAYERS
        .iter()
        .flat_map(|l| ["weight", "bias"].map(|t| format!("{l}.{t}")))
        .map(|p| {
            model
                .tensor(&p)
                .unwrap_or_else(|| panic!("no tensor {p}"))
                .len()
        })
        .sum()
}

/// Weights and biases the masks keep (all of an unpruned tensor).
fn unmasked_params(model: &Sequential<f32>) -> usize {
    LAYERS
        .iter()
        .flat_map(|l| ["weight", "bias"].map(|t| format!("{l}.{t}")))
        .map(|p| match model.buffer(&format!("{p}_mask")) {
            Some(mask) => mask.iter().filter(|&&v| v != 0.0).count(),
            None => model
                .tensor(&p)
                .unwrap_or_else(|| panic!("no tensor {p}"))
                .len(),
        })
        .sum()
}

/// Median wall-clock time of a forward pass of `x` through each model, in
/// microseconds; the two are timed alternately so that load on the machine
/// falls on both alike.
fn forward_micros(a: &Sequential<f32>, b: &Sequential<f32>, x: ArrayView2<f32>) -> (f64, f64) {
    let time = |model: &Sequential<f32>| {
        let t = Instant::now();
        black_box(forward(black_box(model), black_box(x)));
        t.elapsed().as_secs_f64() * 1e6
    };
    // One untimed pass each, to warm caches and the allocator.
    time(a);
    time(b);
    let (mut ta, mut tb) = (
        Vec::with_capacity(TIMING_REPS),
        Vec::with_capacity(TIMING_REPS),
    );
    for _ in 0..TIMING_REPS {
        ta.push(time(a));
        tb.push(time(b));
    }
    (median(&mut ta), median(&mut tb))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    assert!(n > 0, "the median of no values");
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Accuracy vs. sparsity, one line per series, each with its own marker;
/// the last series (iterative pruning) is dashed.
fn plot<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    series: &[(String, Vec<(f64, f64)>)],
    caption: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, ("sans-serif", 24))
        .margin(20)
        .margin_right(35)
        .x_label_area_size(55)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..100.0, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("sparsity of the fc1, fc2, fc3 weights (%)")
        .y_desc("test accuracy (%)")
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let last = series.len().saturating_sub(1);
    for (i, ((name, points), color)) in series.iter().zip(colors).enumerate() {
        let line = ShapeStyle::from(color).stroke_width(2);
        let drawn = if i == last {
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, line))?
        } else {
            chart.draw_series(LineSeries::new(points.iter().copied(), line))?
        };
        drawn.label(name.as_str()).legend(move |(x, y)| {
            let mid = (x + 13, y);
            EmptyElement::at(mid)
                + PathElement::new(vec![(-13, 0), (13, 0)], line)
                + marker_at::<DB>((0, 0), i, color)
        });
        for &p in points {
            chart
                .plotting_area()
                .draw(&(EmptyElement::at(p) + marker_at::<DB>((0, 0), i, color)))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(("sans-serif", 17))
        .margin(15)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}

/// The structured-shrink study: test accuracy against the share of hidden
/// units removed (left), forward time and parameter count (right).
fn plot_shrink<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    rows: &[ShrinkRow],
    caption: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let green = RGBColor(44, 160, 44);
    let grey = RGBColor(120, 120, 120);
    let purple = RGBColor(148, 103, 189);
    area.fill(&WHITE)?;
    let area = area.titled(caption, ("sans-serif", 24))?;
    let half = area.dim_in_pixel().0 / 2;
    let (left, right) = area.split_horizontally(half);
    let x_desc = "hidden units removed from fc1 and fc2 (%)";

    let mut chart = ChartBuilder::on(&left)
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..100.0, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("test accuracy (%)")
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let accuracy_series = [
        (
            "masked = shrunk, no fine-tune".to_string(),
            rows.iter()
                .map(|r| (r.removed, r.accuracy))
                .collect::<Vec<_>>(),
            blue,
            0,
        ),
        (
            format!("shrunk + {TUNE_EPOCHS} epochs fine-tune"),
            rows.iter().map(|r| (r.removed, r.tuned)).collect(),
            orange,
            1,
        ),
    ];
    for (name, points, color, marker) in accuracy_series {
        let line = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), line))?
            .label(name)
            .legend(move |(x, y)| {
                EmptyElement::at((x + 13, y))
                    + PathElement::new(vec![(-13, 0), (13, 0)], line)
                    + marker_at::<DB>((0, 0), marker, color)
            });
        for p in points {
            chart
                .plotting_area()
                .draw(&(EmptyElement::at(p) + marker_at::<DB>((0, 0), marker, color)))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(("sans-serif", 17))
        .margin(15)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;

    let micros_max = rows
        .iter()
        .map(|r| r.micros_masked.max(r.micros_shrunk))
        .fold(0.0, f64::max);
    let params_max = rows
        .iter()
        .map(|r| r.params_masked.max(r.params_shrunk))
        .max()
        .expect("the study has rows") as f64
        / 1000.0;
    let mut chart = ChartBuilder::on(&right)
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(65)
        .right_y_label_area_size(65)
        .build_cartesian_2d(0.0..100.0, 0.0..1.6 * micros_max)?
        .set_secondary_coord(0.0..100.0, 0.0..2.0 * params_max);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("forward pass of the test set (µs, median)")
        .x_labels(11)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("parameters stored (thousands)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .draw()?;
    let time_series = [
        (
            "forward, masked",
            rows.iter()
                .map(|r| (r.removed, r.micros_masked))
                .collect::<Vec<_>>(),
            green,
            2,
        ),
        (
            "forward, shrunk",
            rows.iter().map(|r| (r.removed, r.micros_shrunk)).collect(),
            orange,
            1,
        ),
    ];
    for (name, points, color, marker) in time_series {
        let line = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), line))?
            .label(name)
            .legend(move |(x, y)| {
                EmptyElement::at((x + 13, y))
                    + PathElement::new(vec![(-13, 0), (13, 0)], line)
                    + marker_at::<DB>((0, 0), marker, color)
            });
        for p in points {
            chart
                .plotting_area()
                .draw(&(EmptyElement::at(p) + marker_at::<DB>((0, 0), marker, color)))?;
        }
    }
    let param_series = [
        (
            "parameters, masked (right axis)",
            rows.iter()
                .map(|r| (r.removed, r.params_masked as f64 / 1000.0))
                .collect::<Vec<_>>(),
            purple,
        ),
        (
            "parameters, shrunk (right axis)",
            rows.iter()
                .map(|r| (r.removed, r.params_shrunk as f64 / 1000.0))
                .collect(),
            grey,
        ),
    ];
    for (name, points, color) in param_series {
        let line = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_secondary_series(DashedLineSeries::new(points, 8, 5, line))?
            .label(name)
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (10, 0)], line)
                    + PathElement::new(vec![(16, 0), (26, 0)], line)
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 17))
        .margin(15)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}

/// The marker of series `i`, at a pixel offset: dot, triangle, cross, ring,
/// small dot.
fn marker_at<DB: DrawingBackend>(
    at: (i32, i32),
    i: usize,
    color: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    match i {
        0 => Circle::new(at, 4, color.filled()).into_dyn(),
        1 => TriangleMarker::new(at, 6, color.filled()).into_dyn(),
        2 => Cross::new(at, 5, color.stroke_width(2)).into_dyn(),
        3 => Circle::new(at, 5, color.stroke_width(2)).into_dyn(),
        _ => Circle::new(at, 3, color.filled()).into_dyn(),
    }
}
