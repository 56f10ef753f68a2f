//! Wanda against masks computed by PyTorch (tools/make_wanda_cases.py: the
//! paper's selection written out, stable sort per row), and its checks.

use ndarray::{Array2, ArrayD};
use ndprune::prelude::*;
use ndprune::wanda::{self, ActivationNorms, NormAccumulator};
use ndprune::{PerRowUnstructured, Rounding};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/wanda_cases.json")).expect("valid JSON");
    doc["cases"].as_array().unwrap().clone()
}

trait FromBits: PruneFloat {
    fn from_bits_u64(b: u64) -> Self;
}
impl FromBits for f32 {
    fn from_bits_u64(b: u64) -> Self {
        f32::from_bits(b as u32)
    }
}
impl FromBits for f64 {
    fn from_bits_u64(b: u64) -> Self {
        f64::from_bits(b)
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
        .map(|x| {
            if x.as_u64().unwrap() == 1 {
                T::one()
            } else {
                T::zero()
            }
        })
        .collect();
    ArrayD::from_shape_vec(shape.to_vec(), m).unwrap()
}

fn run_case<T: FromBits>(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let (out, inf) = (
        case["out"].as_u64().unwrap() as usize,
        case["in"].as_u64().unwrap() as usize,
    );
    let shape = [out, inf];
    let w = ArrayD::from_shape_vec(shape.to_vec(), floats::<T>(&case["w"])).unwrap();
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
    let ratio = case["ratio"].as_f64().unwrap();
    let ratio2 = case["ratio2"].as_f64().unwrap();
    let layer = || Layer::new().with_parameter("weight", w.clone()).unwrap();

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
    assert_eq!(l.pruning_history("weight").map(<[_]>::len), Some(2));

    // Half to even, through the scores and the per-row method.
    let mut l = layer();
    let method = PerRowUnstructured::new(Amount::Fraction(ratio)).unwrap();
    assert_eq!(method.rounding(), Rounding::HalfEven);
    let s = wanda::scores(w.view(), &norms).unwrap();
    prune::apply(&mut l, "weight", &method, Some(s.view())).unwrap();
    assert_eq!(
        l.buffer("weight_mask").unwrap(),
        &mask_of::<T>(&case["mask_half"], &shape),
        "{name}: mask_half"
    );
}

#[test]
fn wanda_masks_equal_the_reference_computed_by_pytorch() {
    let cases = fixtures();
    assert_eq!(cases.len(), 10);
    for case in &cases {
        match case["dtype"].as_str().unwrap() {
            "float32" => run_case::<f32>(case),
            "float64" => run_case::<f64>(case),
            other => panic!("dtype {other}"),
        }
    }
}

#[test]
fn rounding_down_and_half_even_differ_where_the_fixture_says() {
    // 10 × 0.35 = 3.5000000000000004: 3 down, 4 half-even.
    let case = fixtures()
        .into_iter()
        .find(|c| c["name"] == "f32 8x10 0.35")
        .unwrap();
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
