//! Sparsity reports: what they count, checked against counts made here
//! independently (by slicing the masks and tensors), the bytes formulas
//! on small cases worked by hand, and the three ways to build a report
//! (a model in memory, checkpoint files, the streamed pruner's result)
//! agreeing on the same model.

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{ArrayD, Axis};
use ndprune::prelude::*;
use ndprune::{Counting, SparsityReport, TensorSparsity, Totals};
use proptest::prelude::*;
use rand::SeedableRng;

/// Which entries are kept (true) in a tensor of the report: its mask's
/// ones for a pruned tensor, its nonzero entries otherwise.
fn kept_of<M: Module<f32>>(model: &M, t: &TensorSparsity) -> ArrayD<bool> {
    match t.counting() {
        Counting::Mask => model
            .buffer(&format!("{}_mask", t.name()))
            .expect("a tensor counted by its mask has one")
            .mapv(|m| m != 0.0),
        _ => model
            .tensor(t.name())
            .expect("every tensor of the report is in the model")
            .mapv(|x| x != 0.0),
    }
}

/// Channels along each dim whose entries (one at least) are all pruned,
/// by slicing.
fn channels_by_slicing(kept: &ArrayD<bool>) -> Vec<usize> {
    (0..kept.ndim())
        .map(|d| {
            kept.axis_iter(Axis(d))
                .filter(|s| !s.is_empty() && s.iter().all(|k| !k))
                .count()
        })
        .collect()
}

/// The bytes of an `f32` tensor with these counts, computed here: `(as
/// stored, removed, shrunk, bitmask, csr)`.
fn bytes_by_hand(
    shape: &[usize],
    pruned: usize,
    channels: &[usize],
    masked: bool,
) -> (u64, u64, u64, u64, u64) {
    let n: usize = shape.iter().product();
    let e = 4u64;
    let values = n as u64 * e;
    let stored = if masked { 2 * values } else { values };
    // The most entries one dim's pruned channels hold.
    let dropped = (0..shape.len())
        .filter(|&d| shape[d] > 0)
        .map(|d| channels[d] * (n / shape[d]))
        .max()
        .unwrap_or(0);
    let shrunk = (n - dropped) as u64 * e;
    let kept = (n - pruned) as u64;
    let bitmask = (n as u64).div_ceil(8) + kept * e;
    let rows = if shape.len() >= 2 { shape[0] as u64 } else { 1 };
    let csr = (rows + 1) * 4 + kept * (4 + e);
    (stored, values, shrunk, bitmask, csr)
}

/// One tensor of a generated model: its shape and values (many zeros, so
/// that whole channels of zeros happen), and the pruning steps it takes.
#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    values: Vec<f32>,
    /// Seeds of the steps: (kind, a, b).
    steps: Vec<(u8, u8, u8)>,
    mask_seed: Vec<u8>,
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![3 => Just(0.0f32), 1 => Just(-0.0f32), 4 => -4.0f32..4.0]
}

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(0usize..4, 0..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (
            Just(shape),
            prop::collection::vec(value(), n),
            prop::collection::vec((0u8..4, any::<u8>(), any::<u8>()), 0..3),
            prop::collection::vec(any::<u8>(), n),
        )
            .prop_map(|(shape, values, steps, mask_seed)| Case {
                shape,
                values,
                steps,
                mask_seed,
            })
    })
}

/// A model of `layers` (each a list of tensors: parameters, the last one a
/// buffer when `buffer`), with the steps of each case applied (a step the
/// library refuses, a structured pruning of a 0-dim tensor say, changes
/// nothing).
fn build(layers: &[(Vec<Case>, bool)]) -> Sequential<f32> {
    let mut model = Sequential::new();
    for (l, (cases, buffer)) in layers.iter().enumerate() {
        let mut layer = Layer::new();
        for (i, c) in cases.iter().enumerate() {
            let t = ArrayD::from_shape_vec(c.shape.clone(), c.values.clone()).unwrap();
            layer = if *buffer && i + 1 == cases.len() {
                layer.with_buffer(&format!("b{i}"), t).unwrap()
            } else {
                layer.with_parameter(&format!("w{i}"), t).unwrap()
            };
        }
        model = model.with_child(&format!("layer{l}"), layer).unwrap();
    }
    for (l, (cases, buffer)) in layers.iter().enumerate() {
        for (i, c) in cases.iter().enumerate() {
            if *buffer && i + 1 == cases.len() {
                continue;
            }
            let path = format!("layer{l}.w{i}");
            let n: usize = c.shape.iter().product();
            for &(kind, a, b) in &c.steps {
                let ndim = c.shape.len().max(1) as isize;
                let dim = Dim(isize::from(a) % ndim);
                let _ = match kind {
                    0 => {
                        let mask = ArrayD::from_shape_vec(
                            c.shape.clone(),
                            c.mask_seed
                                .iter()
                                .map(|&m| if (m ^ a) % 3 == 0 { 0.0 } else { 1.0 })
                                .collect(),
                        )
                        .unwrap();
                        prune::custom_from_mask(&mut model, &path, mask.view())
                    }
                    1 => {
                        let channels = c.shape.get(dim.0 as usize).copied().unwrap_or(0);
                        let count = usize::from(b) % (channels + 1);
                        prune::ln_structured(
                            &mut model,
                            &path,
                            Amount::Count(count),
                            Norm::L(1.0),
                            dim,
                            None,
                        )
                    }
                    2 => prune::l1_unstructured(
                        &mut model,
                        &path,
                        Amount::Count(usize::from(b) % (n + 1)),
                        None,
                    ),
                    _ => prune::identity(&mut model, &path),
                };
            }
        }
    }
    model
}

fn layers() -> impl Strategy<Value = Vec<(Vec<Case>, bool)>> {
    prop::collection::vec((prop::collection::vec(case(), 1..4), any::<bool>()), 1..4)
}

/// Every key of the state dict, as the report names tensors: `X` for
/// `X_orig` of a pruned tensor, masks left out.
fn report_names(model: &Sequential<f32>) -> BTreeSet<String> {
    let pruned: BTreeSet<String> = model.named_pruned().into_iter().map(|(n, _)| n).collect();
    model
        .state_dict()
        .into_iter()
        .filter_map(|(k, _)| match k.strip_suffix("_orig") {
            Some(base) if pruned.contains(base) => Some(base.to_string()),
            _ if k.strip_suffix("_mask").is_some_and(|b| pruned.contains(b)) => None,
            _ => Some(k),
        })
        .collect()
}

fn sum<'a>(tensors: impl IntoIterator<Item = &'a TensorSparsity>) -> (usize, u64, u64, u64, u64) {
    tensors.into_iter().fold((0, 0, 0, 0, 0), |acc, t| {
        (
            acc.0 + 1,
            acc.1 + t.entries() as u64,
            acc.2 + t.pruned().unwrap() as u64,
            acc.3 + t.bytes(),
            acc.4 + t.shrunk_bytes(),
        )
    })
}

fn as_tuple(t: &Totals) -> (usize, u64, u64, u64, u64) {
    (t.tensors, t.entries, t.pruned, t.bytes, t.shrunk_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Each tensor's counts are the mask's (or the tensor's) zeros and the
    /// channels all of whose entries are zero, computed by slicing; bytes
    /// follow the formulas; totals, module sums and subtrees are sums.
    #[test]
    fn the_report_counts_what_slicing_counts(layers in layers()) {
        let model = build(&layers);
        let report = SparsityReport::of(&model);
        let names: BTreeSet<String> = report.tensors().iter().map(|t| t.name().to_string()).collect();
        prop_assert_eq!(names.len(), report.tensors().len(), "one entry per tensor");
        prop_assert_eq!(&names, &report_names(&model));
        for t in report.tensors() {
            let pruned_in_model = model.store_at(t.name().rsplit_once('.').unwrap().0)
                .unwrap()
                .is_pruned(t.name().rsplit_once('.').unwrap().1);
            prop_assert_eq!(t.counting() == Counting::Mask, pruned_in_model, "{}", t.name());
            let kept = kept_of(&model, t);
            prop_assert_eq!(t.shape(), kept.shape());
            prop_assert_eq!(t.entries(), kept.len());
            prop_assert_eq!(t.pruned(), Some(kept.iter().filter(|k| !**k).count()), "{}", t.name());
            prop_assert_eq!(t.kept(), Some(kept.iter().filter(|k| **k).count()));
            let channels = channels_by_slicing(&kept);
            prop_assert_eq!(t.channels_pruned(), Some(channels.as_slice()), "{}", t.name());
            let (stored, removed, shrunk, bitmask, csr) = bytes_by_hand(
                t.shape(),
                t.pruned().unwrap(),
                &channels,
                t.counting() == Counting::Mask,
            );
            prop_assert_eq!(t.bytes(), stored);
            prop_assert_eq!(t.removed_bytes(), removed);
            prop_assert_eq!(t.mask_bytes(), stored - removed);
            prop_assert_eq!(t.shrunk_bytes(), shrunk, "{}", t.name());
            prop_assert_eq!(t.bitmask_bytes(), Some(bitmask));
            prop_assert_eq!(t.csr_bytes(), Some(csr));
            prop_assert_eq!(t.sparse_bytes(), removed.min(bitmask).min(csr));
            // The shrunk shape holds the shrunk bytes' entries.
            let shrunk_entries: usize = t.shrunk_shape().iter().product();
            prop_assert_eq!(shrunk_entries as u64 * 4, shrunk);
            if let Some(d) = t.shrink_dim() {
                prop_assert!(channels[d] > 0);
                prop_assert_eq!(t.shrunk_shape()[d], t.shape()[d] - channels[d]);
            }
        }
        let total = report.total();
        prop_assert_eq!(as_tuple(&total), sum(report.tensors()));
        prop_assert_eq!(total.counted, total.tensors);
        prop_assert_eq!(report.subtree(""), total);
        let modules = report.modules();
        let mut from_modules = Totals::default();
        for m in &modules {
            let own: Vec<&TensorSparsity> = report
                .tensors()
                .iter()
                .filter(|t| t.name().rsplit_once('.').unwrap().0 == m.path)
                .collect();
            prop_assert_eq!(as_tuple(&m.totals), sum(own));
            prop_assert_eq!(report.subtree(&m.path), m.totals, "leaf modules: subtree is own");
            from_modules.tensors += m.totals.tensors;
            from_modules.pruned += m.totals.pruned;
        }
        prop_assert_eq!((from_modules.tensors, from_modules.pruned), (total.tensors, total.pruned));
        prop_assert_eq!(total.remove_saves(), report.tensors().iter().map(|t| t.mask_bytes()).sum::<u64>());
    }
}

/// A tensor counted by its zeros, worked by hand.
#[test]
fn bytes_of_a_small_plain_tensor_by_hand() {
    // f64 [3, 4]: row 0 all zero (4 entries), column 3 all zero (3), and
    // one more zero: 4 + 2 + 1 = 7 zeros, 5 kept.
    #[rustfmt::skip]
    let w = vec![
        0.0, 0.0, 0.0, 0.0,
        1.0, -0.0, 2.0, 0.0,
        3.0, 4.0, 5.0, 0.0,
    ];
    let layer = Layer::<f64>::new()
        .with_parameter("weight", ArrayD::from_shape_vec(vec![3, 4], w).unwrap())
        .unwrap();
    let report = SparsityReport::of(&layer);
    let t = report.tensor("weight").unwrap();
    assert_eq!(t.dtype(), "F64");
    assert_eq!(t.counting(), Counting::Zeros);
    assert_eq!((t.entries(), t.pruned(), t.kept()), (12, Some(7), Some(5)));
    assert_eq!(t.channels_pruned(), Some(&[1, 1][..]));
    // Row 0 drops 4 entries, column 3 drops 3: dim 0.
    assert_eq!(t.shrink_dim(), Some(0));
    assert_eq!(t.shrunk_shape(), [2, 4]);
    assert_eq!(t.bytes(), 96);
    assert_eq!(t.mask_bytes(), 0);
    assert_eq!(t.removed_bytes(), 96);
    assert_eq!(t.shrunk_bytes(), 64);
    // 12 bits: 2 bytes; 5 values of 8 bytes.
    assert_eq!(t.bitmask_bytes(), Some(42));
    // 3 rows: 4 offsets of 4 bytes, 5 (index, value) pairs of 4 + 8.
    assert_eq!(t.csr_bytes(), Some(16 + 60));
    assert_eq!(t.sparse_bytes(), 42);
}

/// A pruned tensor and a 1-dim one, worked by hand.
#[test]
fn bytes_of_pruned_tensors_by_hand() {
    let w = ArrayD::from_shape_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let b = ArrayD::from_shape_vec(vec![5], vec![1.0f32, 0.0, 2.0, 0.0, 3.0]).unwrap();
    let mut layer = Layer::new()
        .with_parameter("weight", w)
        .unwrap()
        .with_parameter("bias", b)
        .unwrap();
    // Column 1 goes (L1 norms 5, 7, 9): 2 of 6 entries.
    prune::ln_structured(
        &mut layer,
        "weight",
        Amount::Count(1),
        Norm::L(1.0),
        Dim(1),
        None,
    )
    .unwrap();
    let report = SparsityReport::of(&layer);
    let w = report.tensor("weight").unwrap();
    assert_eq!(w.counting(), Counting::Mask);
    assert_eq!(
        (w.pruned(), w.channels_pruned()),
        (Some(2), Some(&[0, 1][..]))
    );
    // weight_orig and weight_mask, 24 bytes each.
    assert_eq!((w.bytes(), w.mask_bytes(), w.removed_bytes()), (48, 24, 24));
    assert_eq!((w.shrink_dim(), w.shrunk_shape()), (Some(1), vec![2, 2]));
    assert_eq!(w.shrunk_bytes(), 16);
    // 6 bits in 1 byte, 4 values; CSR: 3 offsets, 4 pairs.
    assert_eq!(w.bitmask_bytes(), Some(1 + 16));
    assert_eq!(w.csr_bytes(), Some(12 + 32));
    // The bias: a plain 1-dim tensor with 2 zeros. Each zero is a channel
    // of its only dim; CSR sees it as one row.
    let b = report.tensor("bias").unwrap();
    assert_eq!((b.pruned(), b.channels_pruned()), (Some(2), Some(&[2][..])));
    assert_eq!((b.shrunk_shape(), b.shrunk_bytes()), (vec![3], 12));
    assert_eq!(b.bitmask_bytes(), Some(1 + 12));
    assert_eq!(b.csr_bytes(), Some(8 + 24));
    let total = report.total();
    assert_eq!((total.tensors, total.entries, total.pruned), (2, 11, 4));
    assert_eq!(
        (total.bytes, total.removed_bytes, total.shrunk_bytes),
        (68, 44, 28)
    );
    assert_eq!(total.sparse_bytes, 17 + 13);
    assert_eq!(
        (
            total.remove_saves(),
            total.shrink_saves(),
            total.sparse_saves()
        ),
        (24, 40, 38)
    );
    // A 0-dim tensor: no dims, no channels; and one of no entries.
    let layer = Layer::<f32>::new()
        .with_parameter("scale", ArrayD::zeros(vec![]))
        .unwrap()
        .with_parameter("empty", ArrayD::zeros(vec![0, 3]))
        .unwrap();
    let report = SparsityReport::of(&layer);
    let s = report.tensor("scale").unwrap();
    assert_eq!(
        (s.entries(), s.pruned(), s.channels_pruned()),
        (1, Some(1), Some(&[][..]))
    );
    assert_eq!((s.shrink_dim(), s.shrunk_bytes()), (None, 4));
    let e = report.tensor("empty").unwrap();
    assert_eq!(
        (e.entries(), e.pruned(), e.sparsity()),
        (0, Some(0), Some(0.0))
    );
    assert_eq!(
        e.channels_pruned(),
        Some(&[0, 0][..]),
        "empty channels are not pruned"
    );
}

/// `ln_structured` of half of a conv's output channels prunes exactly
/// half of them whole, and nothing whole along the other dims.
#[test]
fn a_structured_conv_reports_half_its_output_channels() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for (out_channels, dim, amount) in [(8, 0, 0.5), (6, 0, 0.5), (8, 1, 0.5)] {
        let mut model = Sequential::<f32>::new()
            .with_child("conv", Layer::conv2d(4, out_channels, 3, &mut rng))
            .unwrap();
        prune::ln_structured(
            &mut model,
            "conv.weight",
            Amount::Fraction(amount),
            Norm::L(2.0),
            Dim(dim),
            None,
        )
        .unwrap();
        let report = SparsityReport::of(&model);
        let w = report.tensor("conv.weight").unwrap();
        let shape = w.shape().to_vec();
        let half = shape[dim as usize] / 2;
        let mut want = [0; 4];
        want[dim as usize] = half;
        assert_eq!(w.channels_pruned(), Some(&want[..]), "{shape:?} dim {dim}");
        let n = w.entries();
        assert_eq!(w.pruned(), Some(half * n / shape[dim as usize]));
        assert_eq!(w.sparsity(), Some(0.5));
        let mut shrunk = shape.clone();
        shrunk[dim as usize] -= half;
        assert_eq!(w.shrunk_shape(), shrunk);
        assert_eq!(w.shrunk_bytes(), (n / 2 * 4) as u64);
        // The bias is not pruned and (random) has no zeros.
        assert_eq!(report.tensor("conv.bias").unwrap().pruned(), Some(0));
        assert_eq!(report.modules().len(), 1);
        assert_eq!(report.subtree("conv"), report.total());
    }
}

#[test]
fn display_prints_every_tensor_module_and_the_totals() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut model = Sequential::<f32>::new()
        .with_child("conv", Layer::conv2d(3, 8, 3, &mut rng))
        .unwrap()
        .with_child("fc", Layer::linear(72, 10, &mut rng))
        .unwrap();
    prune::ln_structured(
        &mut model,
        "conv.weight",
        Amount::Fraction(0.25),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    let text = SparsityReport::of(&model).to_string();
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line `{start}` in\n{text}"))
            .to_string()
    };
    let conv = line("conv.weight ");
    assert!(
        conv.contains("[8, 3, 3, 3]") && conv.contains("25.0%"),
        "{conv}"
    );
    assert!(conv.trim_end().ends_with("[2, 0, 0, 0]"), "{conv}");
    assert!(line("fc ").contains("0.0%"));
    assert_eq!(
        line("total: "),
        "total: 54 of 954 entries pruned (5.7%) in 4 tensors"
    );
    assert!(line("bytes: ").contains("remove saves 864 B"), "{text}");
}

#[cfg(feature = "safetensors")]
mod files {
    use super::*;
    use ndprune::io::{
        Checkpoint, CheckpointFiles, Dtype, FilePruner, Output, RawTensor, StreamMethod,
    };
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ndprune-report-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A model pruned in every way the library has (each mask form the
    /// store holds: per channel, bits, dense), with a zero row in a plain
    /// tensor, an int counter and a bf16 tensor beside it.
    fn pruned_checkpoint() -> Checkpoint<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut head = Layer::linear(16, 6, &mut rng);
        head.store_mut()
            .parameter_mut("weight")
            .unwrap()
            .index_axis_mut(Axis(0), 2)
            .fill(0.0);
        let model = Sequential::new()
            .with_child(
                "enc",
                Sequential::new()
                    .push(Layer::conv2d(2, 8, 3, &mut rng))
                    .push(Layer::linear(8, 16, &mut rng)),
            )
            .unwrap()
            .with_child("head", head)
            .unwrap();
        let mut ckpt = Checkpoint::new(model);
        prune::ln_structured(
            &mut ckpt,
            "enc.0.weight",
            Amount::Fraction(0.5),
            Norm::L(2.0),
            Dim(0),
            None,
        )
        .unwrap();
        prune::l1_unstructured(&mut ckpt, "enc.0.weight", Amount::Fraction(0.2), None).unwrap();
        prune::ln_structured(
            &mut ckpt,
            "enc.1.weight",
            Amount::Count(3),
            Norm::L(1.0),
            Dim(1),
            None,
        )
        .unwrap();
        let mask = ArrayD::from_shape_fn(vec![16], |i| if i[0] % 4 == 0 { 0.0 } else { 1.0 });
        prune::custom_from_mask(&mut ckpt, "enc.1.bias", mask.view()).unwrap();
        let l1 = L1Unstructured::new(Amount::Fraction(0.3)).unwrap();
        prune::global_unstructured(&mut ckpt, &["enc.1.weight", "head.bias"], &l1, None).unwrap();
        ckpt.push_raw(
            RawTensor::new("enc.steps", Dtype::I64, vec![], 0i64.to_le_bytes().to_vec()).unwrap(),
        );
        let bf16: Vec<u8> = [1.0f32, 0.0, -0.0, 2.0]
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        ckpt.push_raw(RawTensor::new("adapter.scale", Dtype::BF16, vec![2, 2], bf16).unwrap());
        ckpt
    }

    fn by_name(report: &SparsityReport) -> BTreeMap<String, TensorSparsity> {
        report
            .tensors()
            .iter()
            .map(|t| (t.name().to_string(), t.clone()))
            .collect()
    }

    /// Saved and read back from its files, a model gives the report it
    /// gives in memory; the raw tensors are listed besides (the int one
    /// not counted).
    #[test]
    fn the_report_of_the_files_is_the_report_in_memory() {
        let d = temp_dir("files");
        let path = d.join("model.safetensors");
        let ckpt = pruned_checkpoint();
        ckpt.save(&path).unwrap();
        let memory = SparsityReport::of(&ckpt);
        let files = CheckpointFiles::open(&path).unwrap();
        let from_files = SparsityReport::of_view(&files.view().unwrap());

        let (mut want, got) = (by_name(&memory), by_name(&from_files));
        let head = &want["head.weight"];
        assert_eq!(head.counting(), Counting::Zeros);
        assert_eq!(head.channels_pruned(), Some(&[1, 0][..]), "the zero row");
        assert_eq!(want["enc.0.weight"].channels_pruned().unwrap()[0], 4);
        assert_eq!(want["enc.1.weight"].channels_pruned().unwrap()[1], 3);
        let steps = &got["enc.steps"];
        assert_eq!(steps.counting(), Counting::NotCounted);
        assert_eq!(
            (steps.pruned(), steps.sparsity(), steps.channels_pruned()),
            (None, None, None)
        );
        assert_eq!(
            (steps.bytes(), steps.shrunk_bytes(), steps.sparse_bytes()),
            (8, 8, 8)
        );
        let scale = &got["adapter.scale"];
        assert_eq!(
            (scale.dtype(), scale.counting(), scale.pruned()),
            ("BF16", Counting::Zeros, Some(2))
        );
        assert_eq!(scale.bytes(), 8);
        want.insert("enc.steps".into(), steps.clone());
        want.insert("adapter.scale".into(), scale.clone());
        assert_eq!(got, want);
        // In the natural order of the names.
        let order: Vec<&str> = from_files.tensors().iter().map(|t| t.name()).collect();
        assert_eq!(order.first(), Some(&"adapter.scale"));
        assert!(order
            .windows(2)
            .all(|w| !(w[0].starts_with("enc.1") && w[1].starts_with("enc.0"))));
        let total = from_files.total();
        assert_eq!(
            (total.tensors, total.counted),
            (memory.total().tensors + 2, memory.total().tensors + 1)
        );
        assert_eq!(total.pruned, memory.total().pruned + 2);
        assert_eq!(total.bytes, memory.total().bytes + 16);
        // And loaded again, the same report in memory.
        let loaded = Checkpoint::<f32>::load(&path).unwrap();
        assert_eq!(by_name(&SparsityReport::of(&loaded)), by_name(&memory));
    }

    /// The streamed pruner's report (channels counted from each mask as it
    /// is written) is the report of what it wrote; with `remove`, the
    /// plain tensors written have those zeros.
    #[test]
    fn the_streamed_report_is_the_report_of_the_output() {
        let d = temp_dir("stream");
        let input = d.join("in.safetensors");
        pruned_checkpoint().save(&input).unwrap();
        let files = CheckpointFiles::open(&input).unwrap();
        let input = SparsityReport::of_view(&files.view().unwrap());
        let methods = [
            StreamMethod::LnStructured {
                norm: Norm::L(2.0),
                dim: Dim(0),
            },
            StreamMethod::LnStructured {
                norm: Norm::L(1.0),
                dim: Dim(-1),
            },
            StreamMethod::L1Unstructured,
            StreamMethod::Global,
        ];
        for (m, method) in methods.into_iter().enumerate() {
            for remove in [false, true] {
                let output = d.join(format!("out-{m}-{remove}.safetensors"));
                let run = FilePruner::new(method, Amount::Fraction(0.5))
                    .remove(remove)
                    .run(&files, &Output::File(output.clone()), &mut ())
                    .unwrap();
                let streamed = run.sparsity();
                assert_eq!(streamed.tensors().len(), run.tensors.len());
                assert!(!run.tensors.is_empty());
                let written = SparsityReport::of_view(
                    &CheckpointFiles::open(&output).unwrap().view().unwrap(),
                );
                for t in streamed.tensors() {
                    let w = written.tensor(t.name()).unwrap();
                    let case = format!("{method:?} remove {remove}: {}", t.name());
                    assert_eq!(t.counting(), Counting::Mask, "{case}");
                    // Written removed, the tensor is plain and counted by
                    // its zeros: the mask's, and those of the original it
                    // kept (adapter.scale and head.weight have some, the
                    // model's other tensors none).
                    let counting = if remove {
                        Counting::Zeros
                    } else {
                        Counting::Mask
                    };
                    assert_eq!(w.counting(), counting, "{case}");
                    let had_zeros = input.tensor(t.name()).unwrap().counting() == Counting::Zeros
                        && input.tensor(t.name()).unwrap().pruned() > Some(0);
                    if remove && had_zeros {
                        assert!(w.pruned() >= t.pruned(), "{case}");
                        continue;
                    }
                    assert_eq!(
                        (t.dtype(), t.shape(), t.pruned(), t.channels_pruned()),
                        (w.dtype(), w.shape(), w.pruned(), w.channels_pruned()),
                        "{case}"
                    );
                    assert_eq!(
                        (t.bytes(), t.mask_bytes()),
                        (w.bytes(), w.mask_bytes()),
                        "{case}"
                    );
                    assert_eq!(t.shrunk_bytes(), w.shrunk_bytes(), "{case}");
                    let r = run.tensors.iter().find(|r| r.name == t.name()).unwrap();
                    assert_eq!(t.pruned(), Some(r.after));
                }
            }
        }
    }
}
