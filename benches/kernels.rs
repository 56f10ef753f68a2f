//! Criterion benches of the kernels, each at several sizes, so that a
//! regression shows: per-channel norms (per p and dim), selection of the k
//! smallest (with and without ties at the cut), and mask building.
//!
//! `cargo bench` runs them all; `cargo bench -- norms` one group.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::ArrayD;
use ndprune::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Square-ish 2-D shapes from 64 K to 4 M entries.
const SIDES: [usize; 3] = [256, 1024, 2048];

fn normal(shape: Vec<usize>, seed: u64) -> ArrayD<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || StandardNormal.sample(&mut rng))
}

fn norms(c: &mut Criterion) {
    let mut group = c.benchmark_group("norms");
    for side in SIDES {
        let t = normal(vec![side, side], 1);
        for (label, norm) in [
            ("l1", Norm::L(1.0)),
            ("l2", Norm::L(2.0)),
            ("inf", Norm::Inf),
            ("l0", Norm::L(0.0)),
            ("l3", Norm::L(3.0)),
            ("l0.5", Norm::L(0.5)),
        ] {
            for dim in [0usize, 1] {
                let id = BenchmarkId::new(format!("{label}/dim{dim}"), side * side);
                group.bench_with_input(id, &t, |b, t| {
                    b.iter(|| black_box(norm.channel_norms(t.view(), Dim(dim as isize))))
                });
            }
        }
    }
    let conv = normal(vec![256, 256, 3, 3], 2);
    for dim in [0usize, 1] {
        let id = BenchmarkId::new(format!("l2/conv/dim{dim}"), conv.len());
        group.bench_with_input(id, &conv, |b, t| {
            b.iter(|| black_box(Norm::L(2.0).channel_norms(t.view(), Dim(dim as isize))))
        });
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_k_smallest");
    for side in SIDES {
        let t = normal(vec![side, side], 3);
        // Few levels: equal magnitudes straddle every cut.
        let tied = t.mapv(|x| (x * 8.0).round() / 8.0);
        for (label, data) in [("distinct", &t), ("tied", &tied)] {
            for (ties, rule) in [
                ("torch", TieBreak::Torch),
                ("lowest", TieBreak::LowestIndex),
            ] {
                let method = L1Unstructured::new(Amount::Fraction(0.5))
                    .expect("valid")
                    .with_tie_break(rule);
                let id = BenchmarkId::new(format!("{label}/{ties}"), side * side);
                let ones = ArrayD::ones(data.raw_dim());
                group.bench_with_input(id, data, |b, t| {
                    b.iter(|| black_box(method.compute_mask(t.view(), ones.view())))
                });
            }
        }
    }
    group.finish();
}

fn masks(c: &mut Criterion) {
    let mut group = c.benchmark_group("masks");
    for side in SIDES {
        let t = normal(vec![side, side], 4);
        for dim in [0isize, 1] {
            let method =
                LnStructured::new(Amount::Fraction(0.3), Norm::L(2.0), Dim(dim)).expect("valid");
            let id = BenchmarkId::new(format!("structured_dense/dim{dim}"), side * side);
            let ones = ArrayD::ones(t.raw_dim());
            group.bench_with_input(id, &t, |b, t| {
                b.iter(|| black_box(method.compute_mask(t.view(), ones.view())))
            });
        }
        let id = BenchmarkId::new("prune_and_product/l1", side * side);
        group.bench_with_input(id, &t, |b, t| {
            b.iter(|| {
                let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
                prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(0.5), None)
                    .map(|_| black_box(layer))
            })
        });
    }
    group.finish();
}

/// The floor every first pruning stands on: writing its fresh 64 MB output
/// tensor (4096 × 4096 `f32`), page faults included, with the same chunked
/// parallel loop the kernels use.
fn memory_floor(c: &mut Criterion) {
    use rayon::prelude::*;
    let mut group = c.benchmark_group("memory_floor");
    group.bench_function("fresh_write_64MB", |b| {
        b.iter(|| {
            let mut out = ArrayD::<f32>::zeros(vec![4096, 4096]);
            if let Some(s) = out.as_slice_mut() {
                s.par_chunks_mut(1 << 16).for_each(|c| c.fill(1.0));
            }
            black_box(out)
        })
    });
    group.finish();
}

/// N:M (2:4 and 4:8 along the input dim) and torch.ao-style block
/// sparsity, the mask alone (in bits, as the store holds it) through a
/// first pruning of a fresh layer.
fn sparsity(c: &mut Criterion) {
    let mut group = c.benchmark_group("nm_and_block");
    for side in [1024usize, 4096] {
        let t = normal(vec![side, side], 7);
        for (label, n, m) in [("2:4", 2, 4), ("4:8", 4, 8)] {
            let method = NmStructured::new(n, m, Dim(1)).unwrap();
            let id = BenchmarkId::new(format!("nm{label}"), side * side);
            group.bench_with_input(id, &t, |b, t| {
                b.iter(|| {
                    let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
                    prune::apply(&mut layer, "weight", &method, None).unwrap();
                    black_box(layer)
                })
            });
        }
        let block = BlockSparsity::new(0.5, (4, 4)).unwrap();
        let id = BenchmarkId::new("block4x4/0.5", side * side);
        group.bench_with_input(id, &t, |b, t| {
            b.iter(|| {
                let mut layer = Layer::new().with_parameter("weight", t.clone()).unwrap();
                prune::apply(&mut layer, "weight", &block, None).unwrap();
                black_box(layer)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    targets = norms, selection, masks, memory_floor, sparsity
}
criterion_main!(benches);
