//! bf16 and f16 prune as PyTorch prunes them (feature `half`).
#![cfg(feature = "half")]

use half::{bf16, f16};
use ndarray::ArrayD;
use ndprune::prelude::*;

fn pruned_positions<T: PruneFloat>(values: &[f32]) -> Vec<f32> {
    let data: Vec<T> = values.iter().map(|&v| T::from_f64(f64::from(v))).collect();
    let mut layer = Layer::new()
        .with_parameter("weight", ArrayD::from_shape_vec(vec![2, 3], data).unwrap())
        .unwrap();
    prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(0.5), None).unwrap();
    prune::ln_structured(
        &mut layer,
        "weight",
        Amount::Count(1),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    layer
        .buffer("weight_mask")
        .unwrap()
        .iter()
        .map(|m| m.as_f64() as f32)
        .collect()
}

#[test]
fn half_types_prune_like_f32() {
    let values = [0.5f32, -3.0, 0.25, 2.0, -0.125, 1.0];
    let want = pruned_positions::<f32>(&values);
    assert_eq!(pruned_positions::<bf16>(&values), want);
    assert_eq!(pruned_positions::<f16>(&values), want);
    assert_eq!(want, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn nan_ranks_largest_in_half_types() {
    let data = vec![bf16::NAN, bf16::from_f32(1.0), bf16::from_f32(-2.0)];
    let mut layer = Layer::new()
        .with_parameter("weight", ArrayD::from_shape_vec(vec![3], data).unwrap())
        .unwrap();
    prune::l1_unstructured(&mut layer, "weight", Amount::Count(2), None).unwrap();
    let mask: Vec<f32> = layer
        .buffer("weight_mask")
        .unwrap()
        .iter()
        .map(|m| m.to_f32())
        .collect();
    assert_eq!(mask, [1.0, 0.0, 0.0]);
}

#[test]
fn norms_equal_once_rounded_to_bf16_tie_as_in_pytorch() {
    // Row norms 2.0 and 2.0039 are both 2.0 in bf16: PyTorch's topk keeps
    // row 0 and prunes row 1 (PyTorch 2.15 printed this mask); ranking the
    // unrounded norms pruned row 0.
    let vals = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0078125];
    let w = ArrayD::from_shape_vec(
        vec![2, 4],
        vals.iter().map(|&v| bf16::from_f32(v)).collect(),
    )
    .unwrap();
    assert_eq!(
        Norm::L(2.0).channel_norms(w.view(), Dim(0)).unwrap(),
        [bf16::from_f32(2.0); 2]
    );
    let mut layer = Layer::new().with_parameter("weight", w).unwrap();
    prune::ln_structured(
        &mut layer,
        "weight",
        Amount::Count(1),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    let rows: Vec<f32> = layer
        .buffer("weight_mask")
        .unwrap()
        .outer_iter()
        .map(|r| r[0].to_f32())
        .collect();
    assert_eq!(rows, [1.0, 0.0]);
}
