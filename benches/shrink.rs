//! The forward pass of the digits study's MLP (64 -> 128 -> 64 -> 10),
//! masked at 50 % of its hidden units by channel groups, against the same
//! model shrunk: what `group::shrink` buys at inference. The two give the
//! same logits (checked before timing; `tests/shrink.rs` proves it for
//! random chains), so accuracy is equal by construction.
//!
//! ```text
//! cargo bench --bench shrink
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array2, ArrayView2, Ix1, Ix2};
use ndprune::group::{self, GroupImportance, Inexact};
use ndprune::prelude::*;
use rand::{RngExt, SeedableRng};

/// A batch the size of the digits study's test split (449 samples of 64
/// features, a quarter of 1,797), rounded to 450 random inputs.
const BATCH: usize = 450;

fn forward(model: &Sequential<f32>, x: ArrayView2<'_, f32>) -> Array2<f32> {
    let dense = |input: ArrayView2<'_, f32>, layer: &str| {
        let w = model
            .tensor(&format!("{layer}.weight"))
            .unwrap()
            .view()
            .into_dimensionality::<Ix2>()
            .unwrap();
        let b = model
            .tensor(&format!("{layer}.bias"))
            .unwrap()
            .view()
            .into_dimensionality::<Ix1>()
            .unwrap();
        input.dot(&w.t()) + b
    };
    let h1 = dense(x, "0").mapv(|v| v.max(0.0));
    let h2 = dense(h1.view(), "2").mapv(|v| v.max(0.0));
    dense(h2.view(), "4")
}

fn digits_mlp(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut masked = Sequential::<f32>::new()
        .push(Layer::linear(64, 128, &mut rng))
        .push(Layer::new())
        .push(Layer::linear(128, 64, &mut rng))
        .push(Layer::new())
        .push(Layer::linear(64, 10, &mut rng));
    let groups = group::infer_chain(&masked).unwrap();
    for g in &groups {
        group::prune_group(
            &mut masked,
            g,
            Amount::Fraction(0.5),
            &GroupImportance::default(),
        )
        .unwrap();
    }
    let mut shrunk = masked.clone();
    group::shrink(&mut shrunk, &groups, Inexact::Refuse).unwrap();
    let x = Array2::from_shape_simple_fn((BATCH, 64), || rng.random_range(0.0f32..16.0));
    assert_eq!(
        forward(&masked, x.view()),
        forward(&shrunk, x.view()),
        "shrink is exact"
    );

    let mut g = c.benchmark_group("digits_mlp_forward_450");
    g.bench_function("masked_50pct_hidden", |b| {
        b.iter(|| forward(black_box(&masked), black_box(x.view())))
    });
    g.bench_function("shrunk_50pct_hidden", |b| {
        b.iter(|| forward(black_box(&shrunk), black_box(x.view())))
    });
    g.finish();
}

criterion_group!(benches, digits_mlp);
criterion_main!(benches);
