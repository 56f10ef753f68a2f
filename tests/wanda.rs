//! Wanda against masks computed by PyTorch (tools/make_wanda_cases.py: the
//! reference code's selections, scores in its promoted dtype, stable sort
//! per row, topk per N:M group), and its checks.

use ndarray::{Array2, ArrayD, ArrayViewD, ShapeBuilder};
use ndprune::prelude::*;
use ndprune::wanda::{self, ActivationNorms, NormAccumulator};
use ndprune::{PerRowUnstructured, PruningKind, Rounding};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/wanda_cases.json")).expect("valid JSON");
    doc["cases"].as_array().unwrap().clone()
}

fn case_named(name: &str) -> Value {
    fixtures()
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no fixture case {name}"))
}

trait FromBits: PruneFloat {
    fn from_bits_u64(b: u64) -> Self;
}
impl FromBits for f32 {
    fn from_bits_u64(b: u64) -> Self {
        f32::from_bits(u32::try_from(b).unwrap())
    }
}
impl FromBits for f64 {
    fn from_bits_u64(b: u64) -> Self {
        f64::from_bits(b)
    }
}
#[cfg(feature = "half")]
impl FromBits for half::bf16 {
    fn from_bits_u64(b: u64) -> Self {
        half::bf16::from_bits(u16::try_from(b).unwrap())
    }
}
#[cfg(feature = "half")]
impl FromBits for half::f16 {
    fn from_bits_u64(b: u64) -> Self {
        half::f16::from_bits(u16::try_from(b).unwrap())
    }
}

fn floats<T: FromBits>(v: &Value) -> Vec<T> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| T::from_bits_u64(b.as_u64().unwrap()))
        .collect()
}

fn mask_of<T: PruneFloat>(v: &Value, shape: &[usize]) -> ArrayD<T> {
    let m: Vec<T> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match x.as_u64().unwrap() {
            1 => T::one(),
            0 => T::zero(),
            other => panic!("mask entry {other}"),
        })
        .collect();
    ArrayD::from_shape_vec(shape.to_vec(), m).unwrap()
}

/// A case's weight, norms (fed to the accumulator in two batches when the
/// case has inputs) and shape.
fn inputs_of<T: FromBits>(case: &Value) -> (ArrayD<T>, ActivationNorms, [usize; 2]) {
    let (out, inf) = (
        case["out"].as_u64().unwrap() as usize,
        case["in"].as_u64().unwrap() as usize,
    );
    let w = ArrayD::from_shape_vec(vec![out, inf], floats::<T>(&case["w"])).unwrap();
    let norms = if let Some(x) = case.get("x") {
        let tokens = case["tokens"].as_u64().unwrap() as usize;
        let x = Array2::from_shape_vec((tokens, inf), floats::<T>(x)).unwrap();
        let mut acc = NormAccumulator::new(inf);
        // Fed in two batches: the sums go on across calls.
        let half = tokens / 2;
        acc.update(x.slice(ndarray::s![..half, ..])).unwrap();
        acc.update(x.slice(ndarray::s![half.., ..])).unwrap();
        assert_eq!(acc.tokens(), tokens as u64);
        acc.norms().unwrap()
    } else {
        ActivationNorms::new(floats::<f64>(&case["norms"])).unwrap()
    };
    (w, norms, [out, inf])
}

/// The N:M patterns of a case, `("2:4", 2, 4, mask)`.
fn nm_cases(case: &Value, key: &str) -> Vec<(String, usize, usize, Value)> {
    case[key]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let (n, m) = k.split_once(':').unwrap();
            (k.clone(), n.parse().unwrap(), m.parse().unwrap(), v.clone())
        })
        .collect()
}

/// The record `method` leaves in a history when given scores, whatever
/// dtype it ran in.
fn step_of<P: PruningMethod<f64>>(method: &P) -> PruningStep {
    let ones = ArrayD::<f64>::ones(vec![2, 4]);
    let mut l = Layer::new().with_parameter("w", ones.clone()).unwrap();
    prune::apply(&mut l, "w", method, Some(ones.view())).unwrap();
    l.pruning_history("w").unwrap()[0].clone()
}

/// For a bf16/f16 case: whether ranking the scores rounded to the weight's
/// dtype (not the reference) changes its per-row and N:M masks.
#[derive(Default)]
struct Rounded {
    down_differs: bool,
    nm_differs: bool,
}

fn run_case<T: FromBits>(case: &Value) -> Rounded {
    let name = case["name"].as_str().unwrap();
    let (w, norms, shape) = inputs_of::<T>(case);
    let ratio = case["ratio"].as_f64().unwrap();
    let ratio2 = case["ratio2"].as_f64().unwrap();
    let layer = || Layer::new().with_parameter("weight", w.clone()).unwrap();
    let down = PerRowUnstructured::new(Amount::Fraction(ratio))
        .unwrap()
        .with_rounding(Rounding::Down);
    let down2 = PerRowUnstructured::new(Amount::Fraction(ratio2))
        .unwrap()
        .with_rounding(Rounding::Down);

    // The reference: int(open × ratio) per row.
    let mut l = layer();
    wanda::prune(&mut l, "weight", &norms, Amount::Fraction(ratio)).unwrap();
    assert_eq!(
        l.buffer("weight_mask").unwrap(),
        &mask_of::<T>(&case["mask_down"], &shape),
        "{name}: mask_down"
    );
    // Again, on what each row has left.
    wanda::prune(&mut l, "weight", &norms, Amount::Fraction(ratio2)).unwrap();
    assert_eq!(
        l.buffer("weight_mask").unwrap(),
        &mask_of::<T>(&case["mask_iter"], &shape),
        "{name}: mask_iter"
    );
    // The history holds the per-row method's steps, in every dtype.
    assert_eq!(
        l.pruning_history("weight").unwrap(),
        &[step_of(&down), step_of(&down2)],
        "{name}: history"
    );

    // Half to even, through prune_ranked and the per-row method.
    let half_even = PerRowUnstructured::new(Amount::Fraction(ratio)).unwrap();
    assert_eq!(half_even.rounding(), Rounding::HalfEven);
    let mut l = layer();
    wanda::prune_ranked(&mut l, "weight", &norms, &half_even).unwrap();
    assert_eq!(
        l.buffer("weight_mask").unwrap(),
        &mask_of::<T>(&case["mask_half"], &shape),
        "{name}: mask_half (prune_ranked)"
    );
    if T::MANTISSA_DIGITS >= f32::MANTISSA_DIGITS {
        // f32 and f64 scores are the reference's own: any method on them.
        let mut l = layer();
        let s = wanda::scores(w.view(), &norms).unwrap();
        prune::apply(&mut l, "weight", &half_even, Some(s.view())).unwrap();
        assert_eq!(
            l.buffer("weight_mask").unwrap(),
            &mask_of::<T>(&case["mask_half"], &shape),
            "{name}: mask_half (scores)"
        );
    }

    // N:M, as the reference's topk in each group of f32 scores.
    for (key, n, m, mask) in nm_cases(case, "mask_nm") {
        let mut l = layer();
        wanda::prune_nm(&mut l, "weight", &norms, n, m).unwrap();
        assert_eq!(
            l.buffer("weight_mask").unwrap(),
            &mask_of::<T>(&mask, &shape),
            "{name}: mask_nm {key}"
        );
        assert_eq!(
            l.pruning_history("weight").unwrap(),
            &[PruningStep::NmStructured {
                n,
                m,
                dim: Dim(1),
                tie_break: TieBreak::Torch,
                importance_scores: true,
            }],
            "{name}: {key} history"
        );
        // Every group keeps n.
        for row in l.buffer("weight_mask").unwrap().outer_iter() {
            for group in row.as_slice().unwrap().chunks(m) {
                assert_eq!(group.iter().filter(|&&v| v == T::one()).count(), n);
            }
        }
    }

    // Half dtypes: ranking the scores rounded to the dtype (prune_with on
    // `scores`) gives the rounded selections of the script, not the
    // reference's.
    let mut rounded = Rounded::default();
    if case.get("mask_down_rounded").is_some() {
        let mut l = layer();
        wanda::prune_with(&mut l, "weight", &norms, &down).unwrap();
        let want = mask_of::<T>(&case["mask_down_rounded"], &shape);
        assert_eq!(
            l.buffer("weight_mask").unwrap(),
            &want,
            "{name}: mask_down_rounded"
        );
        rounded.down_differs = want != mask_of::<T>(&case["mask_down"], &shape);
        for (key, n, m, mask) in nm_cases(case, "mask_nm_rounded") {
            let mut l = layer();
            let method = NmStructured::new(n, m, Dim(1)).unwrap();
            wanda::prune_with(&mut l, "weight", &norms, &method).unwrap();
            let want = mask_of::<T>(&mask, &shape);
            assert_eq!(
                l.buffer("weight_mask").unwrap(),
                &want,
                "{name}: mask_nm_rounded {key}"
            );
            rounded.nm_differs |= want != mask_of::<T>(&case["mask_nm"][&key], &shape);
        }
    }
    rounded
}

#[test]
fn wanda_masks_equal_the_reference_computed_by_pytorch() {
    let cases = fixtures();
    assert_eq!(cases.len(), 21);
    let mut seen = std::collections::BTreeMap::<&str, (usize, Rounded)>::new();
    for case in &cases {
        let dtype = case["dtype"].as_str().unwrap();
        let r = match dtype {
            "float32" => run_case::<f32>(case),
            "float64" => run_case::<f64>(case),
            #[cfg(feature = "half")]
            "bfloat16" => run_case::<half::bf16>(case),
            #[cfg(feature = "half")]
            "float16" => run_case::<half::f16>(case),
            #[cfg(not(feature = "half"))]
            "bfloat16" | "float16" => continue,
            other => panic!("dtype {other}"),
        };
        let e = seen.entry(dtype).or_default();
        e.0 += 1;
        e.1.down_differs |= r.down_differs;
        e.1.nm_differs |= r.nm_differs;
    }
    assert_eq!(seen["float32"].0, 7);
    assert_eq!(seen["float64"].0, 4);
    if cfg!(feature = "half") {
        // The fixture tells f32 ranking from ranking rounded scores, per
        // row and per N:M group, in both half dtypes.
        for dtype in ["bfloat16", "float16"] {
            let (count, r) = &seen[dtype];
            assert!(*count >= 4, "{dtype}: {count} cases");
            assert!(r.down_differs && r.nm_differs, "{dtype}");
        }
    }
    // Every case with m | in_features has N:M masks; 4:8 included.
    let nm: usize = cases
        .iter()
        .map(|c| c["mask_nm"].as_object().unwrap().len())
        .sum();
    assert!(nm >= 25, "{nm} N:M masks");
}

#[test]
fn rounding_down_and_half_even_differ_where_the_fixture_says() {
    // 10 × 0.35 = 3.5000000000000004: 3 down, 4 half-even.
    let case = case_named("f32 8x10 0.35");
    let zeros = |key: &str| {
        case[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.as_u64() == Some(0))
            .count()
    };
    assert_eq!(zeros("mask_down"), 8 * 3);
    assert_eq!(zeros("mask_half"), 8 * 4);
}

#[test]
fn norms_are_checked_and_errors_name_the_tensor() {
    let mut model = Sequential::<f32>::new()
        .with_child(
            "fc",
            Layer::new()
                .with_parameter("weight", ArrayD::ones(vec![2, 3]))
                .unwrap(),
        )
        .unwrap();
    let before = model.clone();
    let two = ActivationNorms::new(vec![1.0, 2.0]).unwrap();
    let err = wanda::prune(&mut model, "fc.weight", &two, Amount::Fraction(0.5)).unwrap_err();
    assert_eq!(err.tensor(), Some("fc.weight"));
    assert!(matches!(
        err.kind(),
        PruneErrorKind::ActivationNormsMismatch { shape, norms: 2 } if shape == &[2, 3]
    ));
    assert_eq!(model.state_dict(), before.state_dict());
    for bad in [f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
        let err = ActivationNorms::new(vec![1.0, 0.0, bad]).unwrap_err();
        assert!(matches!(
            err.kind(),
            PruneErrorKind::InvalidActivationNorm { index: 2, .. }
        ));
    }
    assert!(ActivationNorms::from_array(ndarray::array![1.0f32, -0.0].view()).is_ok());
    // A 3-D weight is no Linear weight.
    let cube = ArrayD::<f32>::ones(vec![2, 3, 1]);
    let three = ActivationNorms::new(vec![1.0; 3]).unwrap();
    assert!(matches!(
        wanda::scores(cube.view(), &three).unwrap_err().kind(),
        PruneErrorKind::ActivationNormsMismatch { .. }
    ));
    // Missing tensor and module.
    assert!(wanda::prune(&mut model, "fc.nope", &three, Amount::Fraction(0.5)).is_err());
    assert!(wanda::prune(&mut model, "nope.weight", &three, Amount::Fraction(0.5)).is_err());
    assert_eq!(model.state_dict(), before.state_dict());
}

#[test]
fn the_accumulator_refuses_bad_batches_and_keeps_its_sums() {
    let mut acc = NormAccumulator::new(3);
    acc.update(ndarray::array![[1.0f32, 2.0, 3.0]].view())
        .unwrap();
    let err = acc
        .update(ndarray::array![[1.0f32, 2.0]].view())
        .unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::ActivationShape { in_features: 3, got } if got == &[1, 2])
    );
    let err = acc
        .update(ndarray::array![[0.0f64, 0.0, 0.0], [1.0, f64::INFINITY, 0.0]].view())
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        PruneErrorKind::NonFiniteActivation { index: 4, .. }
    ));
    let err = acc
        .update(ndarray::array![[1e200f64, 0.0, 0.0]].view())
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        PruneErrorKind::InvalidActivationNorm { index: 0, .. }
    ));
    assert!(acc.update(ndarray::arr0(1.0f32).view()).is_err());
    assert_eq!(acc.sum_of_squares(), &[1.0, 4.0, 9.0]);
    assert_eq!(acc.tokens(), 1);
    // A transposed (non-standard) view reads in logical order.
    let x = ndarray::array![[1.0f32, 4.0], [2.0, 5.0], [3.0, 6.0]];
    acc.update(x.t()).unwrap();
    assert_eq!(
        acc.sum_of_squares(),
        &[1.0 + 1.0 + 16.0, 4.0 + 4.0 + 25.0, 9.0 + 9.0 + 36.0]
    );
    // Any float dtype, summed in f64.
    let mut acc = NormAccumulator::new(1);
    acc.update(ndarray::array![[16777217.0f64], [1.0]].view())
        .unwrap();
    assert_eq!(acc.sum_of_squares(), &[16777217.0f64 * 16777217.0 + 1.0]);
}

#[test]
fn wanda_scores_serve_other_methods_and_refuse_global_per_row() {
    let w = ndarray::array![[1.0f32, -2.0, 3.0], [0.5, 0.25, -4.0]].into_dyn();
    let norms = ActivationNorms::new(vec![10.0, 1.0, 0.1]).unwrap();
    let s = wanda::scores(w.view(), &norms).unwrap();
    assert_eq!(
        s,
        ndarray::array![[10.0f32, 2.0, 0.3], [5.0, 0.25, 0.4]].into_dyn()
    );
    let mut model = Sequential::<f32>::new()
        .with_child(
            "a",
            Layer::new().with_parameter("weight", w.clone()).unwrap(),
        )
        .unwrap();
    // Layer-wide: the 3 smallest scores anywhere.
    wanda::prune_with(
        &mut model,
        "a.weight",
        &norms,
        &L1Unstructured::new(Amount::Count(3)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        model.buffer("a.weight_mask").unwrap(),
        &ndarray::array![[1.0f32, 1.0, 0.0], [1.0, 0.0, 0.0]].into_dyn()
    );
    let per_row = PerRowUnstructured::new(Amount::Count(1)).unwrap();
    let err = prune::global_unstructured(&mut model, &["a.weight"], &per_row, None).unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::WrongMethodKind { .. }));
    // Per row on a pruned tensor: one more in each row, among those left,
    // then a count larger than a row has left fails and changes nothing.
    prune::apply(&mut model, "a.weight", &per_row, Some(s.view())).unwrap();
    assert_eq!(
        model.buffer("a.weight_mask").unwrap(),
        &ndarray::array![[1.0f32, 0.0, 0.0], [0.0, 0.0, 0.0]].into_dyn()
    );
    let before = model.clone();
    assert!(prune::apply(&mut model, "a.weight", &per_row, Some(s.view())).is_err());
    assert_eq!(model.state_dict(), before.state_dict());
    prune::remove(&mut model, "a.weight").unwrap();
    assert_eq!(
        model.parameter("a.weight").unwrap(),
        &ndarray::array![[1.0f32, 0.0, 0.0], [0.0, 0.0, 0.0]].into_dyn()
    );
}

/// The same weight in Fortran order (as a transposed matrix's owned copy
/// holds it) and as a strided view (every other column of a wider one).
fn layouts<T: PruneFloat>(w: &ArrayD<T>) -> (ArrayD<T>, ArrayD<T>) {
    let (out, inf) = (w.shape()[0], w.shape()[1]);
    let mut fortran = ArrayD::<T>::zeros(vec![out, inf].f());
    fortran.assign(w);
    assert!(!fortran.is_standard_layout());
    let mut wide = ArrayD::<T>::from_elem(vec![out, 2 * inf], T::from_f64(7.0));
    wide.slice_mut(ndarray::s![.., ..;2]).assign(w);
    (fortran, wide)
}

fn layouts_give_the_same_masks<T: FromBits>(case_name: &str) {
    let case = case_named(case_name);
    let (w, norms, shape) = inputs_of::<T>(&case);
    let (fortran, wide) = layouts(&w);
    let strided: ArrayViewD<'_, T> = wide.slice(ndarray::s![.., ..;2]).into_dyn();
    assert!(strided.as_slice_memory_order().is_none());
    // Scores of every layout, and of a transposed view's transpose.
    let s = wanda::scores(w.view(), &norms).unwrap();
    assert_eq!(wanda::scores(fortran.view(), &norms).unwrap(), s);
    assert_eq!(wanda::scores(strided.view(), &norms).unwrap(), s);
    let t = fortran.t().to_owned();
    assert_eq!(wanda::scores(t.t(), &norms).unwrap(), s);
    // Layers holding the Fortran-order weight prune as the fixture says.
    let down = mask_of::<T>(&case["mask_down"], &shape);
    for weight in [fortran.clone(), strided.to_owned()] {
        let mut l = Layer::new().with_parameter("weight", weight).unwrap();
        wanda::prune(
            &mut l,
            "weight",
            &norms,
            Amount::Fraction(case["ratio"].as_f64().unwrap()),
        )
        .unwrap();
        assert_eq!(l.buffer("weight_mask").unwrap(), &down, "{case_name}");
        for (key, n, m, mask) in nm_cases(&case, "mask_nm") {
            let mut l = Layer::new()
                .with_parameter("weight", fortran.clone())
                .unwrap();
            wanda::prune_nm(&mut l, "weight", &norms, n, m).unwrap();
            assert_eq!(
                l.buffer("weight_mask").unwrap(),
                &mask_of::<T>(&mask, &shape),
                "{case_name}: {key}"
            );
        }
    }
}

#[test]
fn transposed_and_strided_weights_give_the_same_masks() {
    layouts_give_the_same_masks::<f32>("f32 16x32 half");
    layouts_give_the_same_masks::<f64>("f64 near");
    #[cfg(feature = "half")]
    {
        layouts_give_the_same_masks::<half::bf16>("bf16 near");
        layouts_give_the_same_masks::<half::f16>("f16 near");
    }
}

/// A method of one's own: prunes the one entry of smallest score that is
/// still unpruned (the first of equal ones).
#[derive(Debug)]
struct SmallestOne;

impl<T: PruneFloat> PruningMethod<T> for SmallestOne {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        let mut mask = default_mask.to_owned();
        let smallest = t
            .iter()
            .zip(default_mask.iter())
            .enumerate()
            .filter(|(_, (_, &m))| m == T::one())
            .min_by(|(_, (a, _)), (_, (b, _))| a.abs().partial_cmp(&b.abs()).expect("no NaN here"))
            .map(|(i, _)| i);
        if let Some(i) = smallest {
            let flat = mask.as_slice_mut().expect("an owned copy is standard");
            flat[i] = T::zero();
        }
        Ok(mask)
    }
}

#[test]
fn prune_ranked_ranks_f32_scores_for_a_users_method() {
    let step = PruningStep::User {
        kind: PruningKind::Unstructured,
        description: "SmallestOne".into(),
        importance_scores: true,
    };
    // f32 and f64: the same as prune_with.
    let w = ndarray::array![[3.0f32, 2.0, 1.0], [1.0, 2.0, 3.0]].into_dyn();
    let norms = ActivationNorms::new(vec![0.1, 1.0, 10.0]).unwrap();
    let mut a = Layer::new().with_parameter("weight", w.clone()).unwrap();
    let mut b = a.clone();
    wanda::prune_ranked(&mut a, "weight", &norms, &SmallestOne).unwrap();
    wanda::prune_with(&mut b, "weight", &norms, &SmallestOne).unwrap();
    assert_eq!(a.state_dict(), b.state_dict());
    // Scores [[0.3, 2, 10], [0.1, 2, 30]]: 0.1 goes first.
    assert_eq!(
        a.buffer("weight_mask").unwrap(),
        &ndarray::array![[1.0f32, 1.0, 1.0], [0.0, 1.0, 1.0]].into_dyn()
    );
    assert_eq!(
        a.pruning_history("weight").unwrap(),
        std::slice::from_ref(&step)
    );
    // Again: the smallest of what is left (0.3).
    wanda::prune_ranked(&mut a, "weight", &norms, &SmallestOne).unwrap();
    assert_eq!(
        a.buffer("weight_mask").unwrap(),
        &ndarray::array![[0.0f32, 1.0, 1.0], [0.0, 1.0, 1.0]].into_dyn()
    );
    assert_eq!(a.pruning_history("weight").unwrap(), &[step.clone(), step]);
}

#[cfg(feature = "half")]
#[test]
fn prune_ranked_on_half_weights_ranks_f32_scores_and_records_the_method() {
    use half::bf16;
    let bf = |v: f32| bf16::from_f32(v);
    // Scores 1.0 and 1.00387573 in f32 (both 1.0 in bf16), then 2 and 3.
    let w = ndarray::array![[bf(1.0), bf(1.0078125), bf(2.0), bf(3.0)]].into_dyn();
    let norms = ActivationNorms::new(vec![1.0, 0.99609375, 1.0, 1.0]).unwrap();
    let s = wanda::scores(w.view(), &norms).unwrap();
    assert_eq!(s[[0, 0]], s[[0, 1]], "bf16 scores tie");
    let mut ranked = Layer::new().with_parameter("weight", w.clone()).unwrap();
    let mut rounded = ranked.clone();
    // The bf16 ranking prunes index 0 (the first of the tie), f32 index 0
    // too; in reverse order the two differ.
    let w_rev = ndarray::array![[bf(1.0078125), bf(1.0), bf(2.0), bf(3.0)]].into_dyn();
    let norms_rev = ActivationNorms::new(vec![0.99609375, 1.0, 1.0, 1.0]).unwrap();
    let mut ranked_rev = Layer::new()
        .with_parameter("weight", w_rev.clone())
        .unwrap();
    let mut rounded_rev = ranked_rev.clone();
    for (r, n) in [(&mut ranked, &norms), (&mut ranked_rev, &norms_rev)] {
        wanda::prune_ranked(r, "weight", n, &SmallestOne).unwrap();
    }
    for (r, n) in [(&mut rounded, &norms), (&mut rounded_rev, &norms_rev)] {
        wanda::prune_with(r, "weight", n, &SmallestOne).unwrap();
    }
    let mask = |l: &Layer<bf16>| -> Vec<f32> {
        l.buffer("weight_mask")
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect()
    };
    assert_eq!(mask(&ranked), [0.0, 1.0, 1.0, 1.0]);
    assert_eq!(mask(&rounded), [0.0, 1.0, 1.0, 1.0]);
    assert_eq!(mask(&ranked_rev), [1.0, 0.0, 1.0, 1.0]);
    assert_eq!(mask(&rounded_rev), [0.0, 1.0, 1.0, 1.0]);
    // The history has the method's own step, not the mask it was
    // committed through; the weight is orig × mask.
    let step = PruningStep::User {
        kind: PruningKind::Unstructured,
        description: "SmallestOne".into(),
        importance_scores: true,
    };
    assert_eq!(
        ranked_rev.pruning_history("weight").unwrap(),
        std::slice::from_ref(&step)
    );
    assert_eq!(
        ranked_rev.tensor("weight").unwrap(),
        &ndarray::array![[bf(1.0078125), bf(0.0), bf(2.0), bf(3.0)]].into_dyn()
    );
    assert_eq!(ranked_rev.parameter("weight_orig").unwrap(), &w_rev);
    // A second call ranks what is left, in f32: 1.0039 goes next.
    wanda::prune_ranked(&mut ranked_rev, "weight", &norms_rev, &SmallestOne).unwrap();
    assert_eq!(mask(&ranked_rev), [0.0, 0.0, 1.0, 1.0]);
    assert_eq!(
        ranked_rev.pruning_history("weight").unwrap(),
        &[step.clone(), step]
    );
}

#[cfg(feature = "half")]
#[test]
fn failing_calls_on_half_weights_change_nothing() {
    use half::f16;
    let w = ArrayD::from_shape_fn(vec![2, 8], |ix| {
        f16::from_f64((ix[0] * 8 + ix[1]) as f64 - 7.5)
    });
    let norms = ActivationNorms::new(vec![1.0; 8]).unwrap();
    let mut model = Sequential::<f16>::new()
        .with_child("fc", Layer::new().with_parameter("weight", w).unwrap())
        .unwrap();
    let fresh = model.clone();
    let seven = ActivationNorms::new(vec![1.0; 7]).unwrap();
    let mismatch = |e: PruneError| {
        assert_eq!(e.tensor(), Some("fc.weight"));
        assert!(
            matches!(e.kind(), PruneErrorKind::ActivationNormsMismatch { norms: 7, shape } if shape == &[2, 8]),
            "{e}"
        );
    };
    // Fresh and pruned: each failure leaves the model as it was.
    for pruned in [false, true] {
        if pruned {
            wanda::prune(&mut model, "fc.weight", &norms, Amount::Fraction(0.25)).unwrap();
        }
        let before = model.clone();
        let history = model.pruning_history("fc.weight").map(<[_]>::to_vec);
        mismatch(wanda::prune(&mut model, "fc.weight", &seven, Amount::Fraction(0.5)).unwrap_err());
        mismatch(wanda::prune_nm(&mut model, "fc.weight", &seven, 2, 4).unwrap_err());
        mismatch(wanda::prune_ranked(&mut model, "fc.weight", &seven, &SmallestOne).unwrap_err());
        // Bad N:M settings and a row that 3 does not divide.
        let e = wanda::prune_nm(&mut model, "fc.weight", &norms, 5, 4).unwrap_err();
        assert!(
            matches!(e.kind(), PruneErrorKind::InvalidNm { n: 5, m: 4 }),
            "{e}"
        );
        assert_eq!(e.tensor(), Some("fc.weight"));
        let e = wanda::prune_nm(&mut model, "fc.weight", &norms, 1, 3).unwrap_err();
        assert!(
            matches!(e.kind(), PruneErrorKind::IndivisibleGroups { .. }),
            "{e}"
        );
        assert_eq!(e.tensor(), Some("fc.weight"));
        // A count larger than a row has left fails in the f32 ranking.
        let e = wanda::prune_ranked(
            &mut model,
            "fc.weight",
            &norms,
            &PerRowUnstructured::new(Amount::Count(9)).unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.tensor(), Some("fc.weight"));
        assert!(wanda::prune_nm(&mut model, "fc.nope", &norms, 2, 4).is_err());
        assert_eq!(model.state_dict(), before.state_dict());
        assert_eq!(
            model.pruning_history("fc.weight").map(<[_]>::to_vec),
            history
        );
    }
    assert_ne!(model.state_dict(), fresh.state_dict());
}

#[test]
fn prune_nm_counts_kept_entries_and_keeps_pruned_ones_pruned() {
    // 4:8 keeps 4 of each 8; then 2:4 keeps 2 of each 4 of what is left
    // (a group with at most 2 left is left as it is).
    let w = ArrayD::from_shape_fn(vec![2, 8], |ix| ((ix[1] * 5 + ix[0] * 3) % 8) as f32 + 1.0);
    let norms = ActivationNorms::new(vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]).unwrap();
    let mut l = Layer::new().with_parameter("weight", w.clone()).unwrap();
    wanda::prune_nm(&mut l, "weight", &norms, 4, 8).unwrap();
    let first = l.buffer("weight_mask").unwrap().clone();
    assert_eq!(first.sum(), 8.0);
    wanda::prune_nm(&mut l, "weight", &norms, 2, 4).unwrap();
    let second = l.buffer("weight_mask").unwrap().clone();
    assert!(second.iter().zip(first.iter()).all(|(&b, &a)| b <= a));
    for row in second.outer_iter() {
        for group in row.as_slice().unwrap().chunks(4) {
            assert!(group.iter().sum::<f32>() <= 2.0);
        }
    }
    // The same as NmStructured on the scores, called by hand.
    let mut by_hand = Layer::new().with_parameter("weight", w.clone()).unwrap();
    let s = wanda::scores(w.view(), &norms).unwrap();
    prune::apply(
        &mut by_hand,
        "weight",
        &NmStructured::new(4, 8, Dim(1)).unwrap(),
        Some(s.view()),
    )
    .unwrap();
    assert_eq!(by_hand.buffer("weight_mask").unwrap(), &first);
}
