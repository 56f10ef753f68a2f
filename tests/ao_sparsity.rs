//! N:M and block sparsity against `torch.ao.pruning.WeightNormSparsifier`:
//! the cases of tests/fixtures/ao/ (made by tools/make_ao_cases.py with
//! PyTorch; this suite needs no Python), plus the properties of both
//! methods.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use ndprune::prelude::*;
use ndprune::{BlockNorm, PruneErrorKind, TieBreak};
use proptest::prelude::*;
use serde_json::Value;

fn load(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/ao/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture present");
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    v["cases"].as_array().expect("cases").clone()
}

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An element type the fixtures hold, decoded from little-endian bytes.
trait FromLe: PruneFloat {
    const WIDTH: usize;
    fn from_le(b: &[u8]) -> Self;
}

impl FromLe for f32 {
    const WIDTH: usize = 4;
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes(b.try_into().unwrap())
    }
}

impl FromLe for f64 {
    const WIDTH: usize = 8;
    fn from_le(b: &[u8]) -> Self {
        f64::from_le_bytes(b.try_into().unwrap())
    }
}

#[cfg(feature = "half")]
impl FromLe for half::f16 {
    const WIDTH: usize = 2;
    fn from_le(b: &[u8]) -> Self {
        half::f16::from_le_bytes(b.try_into().unwrap())
    }
}

#[cfg(feature = "half")]
impl FromLe for half::bf16 {
    const WIDTH: usize = 2;
    fn from_le(b: &[u8]) -> Self {
        half::bf16::from_le_bytes(b.try_into().unwrap())
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn weight<T: FromLe>(case: &Value) -> ArrayD<T> {
    let shape = usizes(&case["shape"]);
    let data: Vec<T> = bytes(case["weight"].as_str().unwrap())
        .chunks(T::WIDTH)
        .map(T::from_le)
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap()
}

fn bits_of<T: PruneFloat>(mask: &ArrayD<T>) -> String {
    mask.iter()
        .map(|&m| {
            assert!(m == T::zero() || m == T::one(), "mask is 0/1");
            if m == T::one() {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

fn method(case: &Value, level: f64, step: usize) -> BlockSparsity {
    let block = usizes(&case["block"]);
    let norm = match case["norm"].as_u64().unwrap() {
        1 => BlockNorm::L1,
        _ => BlockNorm::L2,
    };
    BlockSparsity::new(level, (block[0], block[1]))
        .unwrap()
        .with_zeros_per_block(zeros(case, step))
        .unwrap()
        .with_norm(norm)
}

/// The zeros per block of a step: one number, or one per step.
fn zeros(case: &Value, step: usize) -> usize {
    let z = &case["zeros_per_block"];
    z.as_u64()
        .or_else(|| z[step].as_u64())
        .expect("zeros_per_block") as usize
}

fn levels(case: &Value) -> Vec<f64> {
    case["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_f64().unwrap())
        .collect()
}

/// Checks one case in dtype `T`; returns whether NmStructured was compared.
fn check<T: FromLe>(case: &Value) -> bool {
    let name = case["name"].as_str().unwrap();
    let w = weight::<T>(case);
    let levels = levels(case);
    let mut layer = Layer::new().with_parameter("weight", w.clone()).unwrap();
    let Some(masks) = case["masks"].as_array() else {
        // torch.ao refuses or hands back a padded mask: a typed error here,
        // and nothing changes.
        let err = prune::block_sparsity(&mut layer, "weight", &method(case, levels[0], 0), None)
            .expect_err(name);
        assert!(
            matches!(err.kind(), PruneErrorKind::IndivisibleGroups { .. }),
            "{name}: {err}"
        );
        assert!(!prune::is_pruned(&layer), "{name}");
        return false;
    };
    for (step, (&level, want)) in levels.iter().zip(masks).enumerate() {
        let m = method(case, level, step);
        if step == 0 {
            // The generic path (compute_mask on a dense mask) agrees.
            let ones = ArrayD::<T>::ones(w.raw_dim());
            let dense = m.compute_mask(w.view(), ones.view()).unwrap();
            assert_eq!(
                bits_of(&dense),
                want.as_str().unwrap(),
                "{name} compute_mask"
            );
        }
        prune::block_sparsity(&mut layer, "weight", &m, None).unwrap();
        let got = bits_of(layer.buffer("weight_mask").unwrap());
        assert_eq!(got, want.as_str().unwrap(), "{name} step {step}");
    }
    let Some(nm) = case["nm"].as_array() else {
        return false;
    };
    let (n, m) = (
        nm[0].as_u64().unwrap() as usize,
        nm[1].as_u64().unwrap() as usize,
    );
    let want = masks[0].as_str().unwrap();
    let mut l = Layer::new().with_parameter("weight", w.clone()).unwrap();
    prune::block_sparsity(&mut l, "weight", &BlockSparsity::nm(n, m).unwrap(), None).unwrap();
    if case["norm"] == 2 {
        assert_eq!(bits_of(l.buffer("weight_mask").unwrap()), want, "{name} nm");
    }
    if case["abs_order_same"] != true {
        return false;
    }
    let mut l = Layer::new().with_parameter("weight", w).unwrap();
    prune::nm_structured(&mut l, "weight", n, m, Dim(1), None).unwrap();
    assert_eq!(
        bits_of(l.buffer("weight_mask").unwrap()),
        want,
        "{name} NmStructured"
    );
    true
}

fn run_file(file: &str) -> (usize, usize, usize) {
    let (mut cases, mut nm, mut ties) = (0, 0, 0);
    for case in load(file) {
        let compared = match case["dtype"].as_str().unwrap() {
            "f32" => check::<f32>(&case),
            "f64" => check::<f64>(&case),
            #[cfg(feature = "half")]
            "f16" => check::<half::f16>(&case),
            #[cfg(feature = "half")]
            "bf16" => check::<half::bf16>(&case),
            _ => continue,
        };
        cases += 1;
        nm += usize::from(compared);
        ties += usize::from(case["data"] == "ties");
    }
    (cases, nm, ties)
}

#[test]
fn block_masks_equal_torch_ao() {
    let (cases, _, ties) = run_file("block");
    assert!(cases >= 90, "{cases} cases");
    assert!(ties >= 20, "{ties} tie-heavy cases");
}

#[test]
fn nm_masks_equal_torch_ao() {
    let (cases, nm, ties) = run_file("nm");
    assert!(cases >= 200, "{cases} cases");
    assert!(nm >= 100, "NmStructured compared on {nm} cases");
    assert!(ties >= 100, "{ties} tie-heavy cases");
}

#[test]
fn repeated_steps_equal_torch_ao() {
    let (cases, _, _) = run_file("iterative");
    assert!(cases >= 20, "{cases} cases");
}

#[test]
fn what_torch_ao_cannot_do_is_a_typed_error() {
    let (cases, _, _) = run_file("refused");
    assert!(cases >= 8, "{cases} cases");
}

// ---- properties ----

fn matrix(rows: usize, cols: usize, values: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&[rows, cols]), values).unwrap()
}

/// `(n, m)`, a 3-D shape whose dim 1 is whole groups, and its values
/// (small integers, so ties are frequent).
fn nm_case() -> impl Strategy<Value = (usize, usize, Vec<usize>, Vec<f32>)> {
    // Group sizes 2, 4, 8 and 16 have paths of their own for contiguous
    // groups (c = 1); the others share one.
    (
        prop_oneof![1usize..=8, Just(16)],
        1usize..4,
        1usize..4,
        1usize..4,
    )
        .prop_flat_map(|(m, groups, a, c)| {
            let shape = vec![a, groups * m, c];
            let len = a * groups * m * c;
            (
                0..=m,
                Just(m),
                Just(shape),
                proptest::collection::vec((-4i8..5).prop_map(f32::from), len),
            )
        })
}

fn kept_per_group(mask: &ArrayD<f32>, m: usize) -> Vec<usize> {
    let (a, len, c) = (mask.shape()[0], mask.shape()[1], mask.shape()[2]);
    let mut out = Vec::new();
    for i in 0..a {
        for g in 0..len / m {
            for k in 0..c {
                out.push((0..m).filter(|&j| mask[[i, g * m + j, k]] == 1.0).count());
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn nm_keeps_n_per_group_and_the_largest(
        (n, m, shape, values) in nm_case(),
        lowest in any::<bool>(),
    ) {
        let t = ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap();
        let ties = if lowest { TieBreak::LowestIndex } else { TieBreak::Torch };
        let method = NmStructured::new(n, m, Dim(1)).unwrap().with_tie_break(ties);
        let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
        prune::apply(&mut layer, "weight", &method, None).unwrap();
        let mask = layer.buffer("weight_mask").unwrap().clone();
        prop_assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
        prop_assert!(kept_per_group(&mask, m).iter().all(|&k| k == n));
        // Every kept magnitude is at least every pruned one of its group.
        for i in 0..shape[0] {
            for g in 0..shape[1] / m {
                for k in 0..shape[2] {
                    let at = |j: usize| [i, g * m + j, k];
                    let kept_min = (0..m).filter(|&j| mask[at(j)] == 1.0).map(|j| t[at(j)].abs()).fold(f32::INFINITY, f32::min);
                    let pruned_max = (0..m).filter(|&j| mask[at(j)] == 0.0).map(|j| t[at(j)].abs()).fold(0.0, f32::max);
                    prop_assert!(kept_min >= pruned_max);
                }
            }
        }
        // The dense (compute_mask) path agrees with the in-place one.
        let ones = ArrayD::ones(t.raw_dim());
        prop_assert_eq!(&method.compute_mask(t.view(), ones.view()).unwrap(), &mask);
        // Lowest index first among equal magnitudes at the cut.
        if lowest {
            let mut want = ArrayD::<f32>::zeros(t.raw_dim());
            for i in 0..shape[0] {
                for g in 0..shape[1] / m {
                    for k in 0..shape[2] {
                        let at = |j: usize| [i, g * m + j, k];
                        let mut order: Vec<usize> = (0..m).collect();
                        order.sort_by(|&x, &y| t[at(x)].abs().total_cmp(&t[at(y)].abs()).then(x.cmp(&y)));
                        for &j in &order[m - n..] {
                            want[at(j)] = 1.0;
                        }
                    }
                }
            }
            prop_assert_eq!(&mask, &want);
        }
    }

    #[test]
    fn nm_combines_iteratively(
        (n, m, shape, values) in nm_case(),
        first in 0.0f64..1.0,
        n2 in 0usize..=8,
    ) {
        let t = ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap();
        let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
        prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(first), None).unwrap();
        let before = layer.buffer("weight_mask").unwrap().clone();
        prune::nm_structured(&mut layer, "weight", n, m, Dim(1), None).unwrap();
        let after = layer.buffer("weight_mask").unwrap().clone();
        // Nothing revived; at most n per group; a group already at or under
        // n live is untouched; one over n ends at exactly n.
        prop_assert!(after.iter().zip(&before).all(|(&a, &b)| a <= b));
        for (got, had) in kept_per_group(&after, m).into_iter().zip(kept_per_group(&before, m)) {
            prop_assert_eq!(got, had.min(n));
        }
        // A second N:M call (any n) keeps at most that many.
        let n2 = n2.min(m);
        prune::nm_structured(&mut layer, "weight", n2, m, Dim(1), None).unwrap();
        let again = layer.buffer("weight_mask").unwrap().clone();
        for (got, had) in kept_per_group(&again, m).into_iter().zip(kept_per_group(&after, m)) {
            prop_assert_eq!(got, had.min(n2));
        }
        prop_assert_eq!(layer.tensor("weight").unwrap(), &(&t * &again));
    }

    #[test]
    fn layouts_give_the_mask_of_the_standard_copy(
        (n, m, shape, values) in nm_case(),
    ) {
        // Scores given as a transposed (non-standard) view.
        let t = ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap();
        let rev: Vec<usize> = shape.iter().rev().copied().collect();
        let stored = t.view().reversed_axes().as_standard_layout().into_owned();
        prop_assert_eq!(stored.shape(), &rev[..]);
        let view: ArrayViewD<'_, f32> = stored.view().reversed_axes();
        prop_assert!(!view.is_standard_layout() || shape.iter().filter(|&&s| s > 1).count() <= 1);
        let method = NmStructured::new(n, m, Dim(1)).unwrap();
        let ones = ArrayD::ones(t.raw_dim());
        let from_view = method.compute_mask(view.clone(), ones.view()).unwrap();
        let from_copy = method.compute_mask(t.view(), ones.view()).unwrap();
        prop_assert_eq!(&from_view, &from_copy);
        let mut a = Layer::new().with_parameter("weight", ArrayD::<f32>::ones(t.raw_dim())).unwrap();
        prune::nm_structured(&mut a, "weight", n, m, Dim(1), Some(view)).unwrap();
        prop_assert_eq!(a.buffer("weight_mask").unwrap(), &from_copy);
        // Strided: every other column of a wider matrix.
        let rows = shape[0];
        let cols = shape[1] * shape[2];
        let wide = ArrayD::from_shape_fn(IxDyn(&[rows, 2 * cols]), |ix| {
            if ix[1] % 2 == 0 { t.as_slice().unwrap()[ix[0] * cols + ix[1] / 2] } else { 99.0 }
        });
        let strided = wide.slice_axis(Axis(1), ndarray::Slice::new(0, None, 2));
        let copy = strided.to_owned();
        let ones2 = ArrayD::ones(copy.raw_dim());
        let ok = cols % m == 0;
        let mm = NmStructured::new(n, m, Dim(-1)).unwrap();
        if ok {
            prop_assert_eq!(
                mm.compute_mask(strided, ones2.view()).unwrap(),
                mm.compute_mask(copy.view(), ones2.view()).unwrap()
            );
        }
    }

    #[test]
    fn block_masks_are_binary_and_combine(
        h in 1usize..12, w in 1usize..12, br in 1usize..4, bc in 1usize..4,
        level in 0.0f64..=1.0, zeros in 0usize..=16, level2 in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let values: Vec<f32> = (0..h * w).map(|i| ((seed.wrapping_mul(i as u64 + 1) >> 7) % 9) as f32 - 4.0).collect();
        let t = matrix(h, w, values);
        let zeros = zeros.min(br * bc);
        let method = BlockSparsity::new(level, (br, bc)).unwrap().with_zeros_per_block(zeros).unwrap();
        let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
        match prune::block_sparsity(&mut layer, "weight", &method, None) {
            Err(e) => {
                // Only the case torch.ao cannot do either.
                let indivisible = matches!(e.kind(), PruneErrorKind::IndivisibleGroups { .. });
                prop_assert!(indivisible);
                prop_assert!(zeros < br * bc && level > 0.0 && zeros > 0);
                prop_assert!(h % br != 0 || w % bc != 0);
                prop_assert!(!prune::is_pruned(&layer));
            }
            Ok(()) => {
                let mask = layer.buffer("weight_mask").unwrap().clone();
                prop_assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
                // In each block, pruned entries are none or at most `zeros`
                // (whole blocks: all), and the chosen count follows the level.
                let (nbr, nbc) = (h.div_ceil(br), w.div_ceil(bc));
                let mut chosen = 0;
                for i in 0..nbr {
                    for j in 0..nbc {
                        let cells: Vec<f32> = (i * br..((i + 1) * br).min(h))
                            .flat_map(|a| (j * bc..((j + 1) * bc).min(w)).map(move |b| (a, b)))
                            .map(|(a, b)| mask[[a, b]])
                            .collect();
                        let pruned = cells.iter().filter(|&&v| v == 0.0).count();
                        if pruned > 0 {
                            chosen += 1;
                            prop_assert!(pruned == zeros.min(cells.len()));
                        }
                    }
                }
                let blocks = nbr * nbc;
                if level > 0.0 && zeros > 0 && level < 1.0 {
                    let k = ((level * blocks as f64).round_ties_even() as usize).min(blocks - 1);
                    prop_assert!(chosen <= k);
                } else if level >= 1.0 && zeros > 0 {
                    prop_assert_eq!(chosen, blocks);
                }
                let again = BlockSparsity::new(level2, (br, bc)).unwrap().with_zeros_per_block(zeros).unwrap();
                if prune::block_sparsity(&mut layer, "weight", &again, None).is_ok() {
                    let after = layer.buffer("weight_mask").unwrap();
                    prop_assert!(after.iter().zip(&mask).all(|(&a, &b)| a <= b));
                    prop_assert_eq!(layer.tensor("weight").unwrap(), &(&t * after));
                }
            }
        }
    }
}

#[cfg(feature = "rayon")]
#[test]
fn one_and_many_threads_give_the_same_masks() {
    // Large enough for the parallel path (2^18 entries and up).
    let (rows, cols) = (512, 1024);
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as u64).wrapping_mul(2654435761) % 1000) as f32 - 500.0)
        .collect();
    let t = matrix(rows, cols, values);
    let masks = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut a = Layer::new().with_parameter("weight", t.clone()).unwrap();
            prune::nm_structured(&mut a, "weight", 2, 4, Dim(1), None).unwrap();
            let mut b = Layer::new().with_parameter("weight", t.clone()).unwrap();
            let method = BlockSparsity::new(0.6, (4, 4))
                .unwrap()
                .with_zeros_per_block(8)
                .unwrap();
            prune::block_sparsity(&mut b, "weight", &method, None).unwrap();
            (
                a.buffer("weight_mask").unwrap().clone(),
                b.buffer("weight_mask").unwrap().clone(),
            )
        })
    };
    let one = masks(1);
    assert_eq!(one, masks(4));
    assert_eq!(one.0.sum(), (rows * cols / 2) as f32);
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let w = ArrayD::<f32>::ones(vec![4, 6]);
    let mut layer = Layer::new().with_parameter("weight", w.clone()).unwrap();
    let err = prune::nm_structured(&mut layer, "weight", 2, 4, Dim(1), None).unwrap_err();
    assert_eq!(
        err.kind(),
        &PruneErrorKind::IndivisibleGroups {
            shape: vec![4, 6],
            dim: 1,
            len: 6,
            group: 4
        }
    );
    assert_eq!(err.tensor(), Some("weight"));
    let err = prune::nm_structured(&mut layer, "weight", 2, 4, Dim(2), None).unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::DimOutOfRange { .. }));
    assert!(matches!(
        NmStructured::new(3, 2, Dim(1)).unwrap_err().kind(),
        PruneErrorKind::InvalidNm { n: 3, m: 2 }
    ));
    let cube = ArrayD::<f32>::ones(vec![2, 4, 4]);
    let mut c = Layer::new().with_parameter("weight", cube).unwrap();
    let err = prune::block_sparsity(&mut c, "weight", &BlockSparsity::nm(2, 4).unwrap(), None)
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        PruneErrorKind::NotTwoDimensional { .. }
    ));
    let scores = ArrayD::<f32>::ones(vec![4, 4]);
    let err =
        prune::nm_structured(&mut layer, "weight", 2, 2, Dim(1), Some(scores.view())).unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::ShapeMismatch { .. }));
    assert!(!prune::is_pruned(&layer) && !prune::is_pruned(&c));
    // A dense mask that is not 0/1 is refused by compute_mask.
    let half = ArrayD::<f32>::from_elem(vec![4, 6], 0.5);
    let m = NmStructured::new(1, 2, Dim(1)).unwrap();
    assert!(matches!(
        m.compute_mask(w.view(), half.view()).unwrap_err().kind(),
        PruneErrorKind::InvalidMask { .. }
    ));
}

#[test]
fn nan_ranks_above_every_number_and_history_records_the_step() {
    let w = ndarray::array![[f32::NAN, 1.0, -5.0, 0.0]].into_dyn();
    let mut layer = Layer::new().with_parameter("weight", w).unwrap();
    prune::nm_structured(&mut layer, "weight", 2, 4, Dim(1), None).unwrap();
    assert_eq!(
        layer.buffer("weight_mask").unwrap(),
        &ndarray::array![[1.0f32, 0.0, 1.0, 0.0]].into_dyn()
    );
    let h = layer.pruning_history("weight").unwrap();
    assert_eq!(h[0].to_string(), "NmStructured(n=2, m=4, dim=1)");
    assert_eq!(
        h[0],
        PruningStep::NmStructured {
            n: 2,
            m: 4,
            dim: Dim(1),
            tie_break: TieBreak::Torch,
            importance_scores: false
        }
    );
}
