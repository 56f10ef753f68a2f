//! Small random models for the shrink tests.

use ndarray::ArrayD;
use ndprune::Layer;
use rand::rngs::StdRng;
use rand::RngExt;

/// Uniform values in [-1, 1).
pub fn uniform(shape: Vec<usize>, rng: &mut StdRng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0f32..1.0))
}

/// A BatchNorm of `c` channels with random affine and statistics (the
/// variances kept above 0.5).
pub fn bn(c: usize, rng: &mut StdRng) -> Layer<f32> {
    Layer::new()
        .with_parameter("weight", uniform(vec![c], rng))
        .unwrap()
        .with_parameter("bias", uniform(vec![c], rng))
        .unwrap()
        .with_buffer("running_mean", uniform(vec![c], rng))
        .unwrap()
        .with_buffer("running_var", uniform(vec![c], rng).mapv(|v| v.abs() + 0.5))
        .unwrap()
}
