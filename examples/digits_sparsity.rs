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
//! The plots go to `docs/digits_sparsity.png` / `.svg` and
//! `docs/digits_gradual_wanda.png` / `.svg`.

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::read::GzDecoder;
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2};
use ndprune::prelude::*;
use ndprune::schedule::{CubicSL, GradualPruner, Scope};
use ndprune::wanda::{self, NormAccumulator};
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
                    let share =
                        pruned_count(&m, w) as f64 / m.tensor(w).map_or(1, |t| t.len()) as f64;
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
    println!(
        "\nWrote {}, {}, {} and {} ({:.1} s in all)",
        png.strip_prefix(&root)?.display(),
        svg.strip_prefix(&root)?.display(),
        png2.strip_prefix(&root)?.display(),
        svg2.strip_prefix(&root)?.display(),
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
/// The forward pass uses the weights as pruning left them. A pruned weight's
/// gradient goes to `weight_orig`, masked as autograd masks it through
/// `weight_orig * weight_mask`, and `recompute_pruned()` then refreshes
/// `weight`: PyTorch's forward pre-hook.
fn train_epoch(model: &mut Sequential<f32>, data: &Split, lr: f32, rng: &mut StdRng) {
    let mut order: Vec<usize> = (0..data.y.len()).collect();
    order.shuffle(rng);
    for batch in order.chunks(BATCH) {
        let x = data.x.select(Axis(0), batch);
        let grads = gradients(model, x.view(), batch.iter().map(|&i| data.y[i]));
        for (layer, (dw, db)) in LAYERS.iter().zip(grads) {
            let (weight, mask) = trainable_weight(model, layer);
            let dw = match mask {
                Some(mask) => dw * &mask.into_dimensionality::<Ix2>().expect("a matrix"),
                None => dw,
            };
            let mut w = model.parameter_mut(&weight).expect("weight parameter");
            w.scaled_add(-lr, &dw.into_dyn());
            let mut b = model.parameter_mut(&format!("{layer}.bias")).expect("bias");
            b.scaled_add(-lr, &db.into_dyn());
        }
        model.recompute_pruned();
    }
}

/// The parameter that training updates for a layer's weight (`weight`, or
/// `weight_orig` once pruned) and the pruning mask, if any.
fn trainable_weight(model: &Sequential<f32>, layer: &str) -> (String, Option<ArrayD<f32>>) {
    let orig = format!("{layer}.weight_orig");
    match model.parameter(&orig) {
        Some(_) => {
            let mask = model.buffer(&format!("{layer}.weight_mask")).expect("mask");
            (orig, Some(mask.clone()))
        }
        None => (format!("{layer}.weight"), None),
    }
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

/// Entries of a pruned weight that its mask zeroes.
fn pruned_count(model: &Sequential<f32>, weight: &str) -> usize {
    model
        .buffer(&format!("{weight}_mask"))
        .map_or(0, |m| m.iter().filter(|&&v| v == 0.0).count())
}

/// The share of all weight entries (fc1, fc2, fc3) that pruning zeroed.
fn weight_sparsity(model: &Sequential<f32>) -> f64 {
    let total: usize = WEIGHTS
        .iter()
        .map(|w| model.tensor(w).map_or(0, |t| t.len()))
        .sum();
    let pruned: usize = WEIGHTS.iter().map(|w| pruned_count(model, w)).sum();
    pruned as f64 / total as f64
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
