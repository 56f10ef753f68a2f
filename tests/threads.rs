//! Results are identical with 1 thread and with many: the kernels split work
//! into fixed chunks and combine floating-point partials in a fixed order.
#![cfg(feature = "rayon")]

use ndarray::ArrayD;
use ndprune::prelude::*;

/// A model big enough to take the parallel paths (2^18 elements and up),
/// with duplicate magnitudes so that ties straddle the cuts.
fn model() -> Sequential<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Few distinct levels: plenty of exact ties.
        ((state % 2001) as f32 - 1000.0) / 64.0
    };
    let a = ArrayD::from_shape_simple_fn(vec![512, 1024], &mut next);
    let b = ArrayD::from_shape_simple_fn(vec![64, 32, 3, 3, 16], &mut next);
    Sequential::new()
        .with_child("a", Layer::new().with_parameter("weight", a).unwrap())
        .unwrap()
        .with_child("b", Layer::new().with_parameter("weight", b).unwrap())
        .unwrap()
}

/// One pruning call on the model.
type Step = dyn Fn(&mut Sequential<f32>) -> Result<(), PruneError>;

/// Every tensor of the model after a pruning sequence, as bits.
fn run() -> Vec<(String, Vec<u32>)> {
    let mut m = model();
    let steps: [&Step; 6] = [
        &|m| {
            prune::ln_structured(
                m,
                "a.weight",
                Amount::Fraction(0.2),
                Norm::L(2.0),
                Dim(1),
                None,
            )
        },
        &|m| {
            prune::ln_structured(
                m,
                "b.weight",
                Amount::Fraction(0.25),
                Norm::L(1.5),
                Dim(1),
                None,
            )
        },
        &|m| prune::ln_structured(m, "b.weight", Amount::Count(3), Norm::L(1.0), Dim(-1), None),
        &|m| prune::l1_unstructured(m, "a.weight", Amount::Fraction(0.5), None),
        &|m| {
            let l1 = L1Unstructured::new(Amount::Fraction(0.3))?;
            prune::global_unstructured(m, &["a.weight", "b.weight"], &l1, None)
        },
        &|m| {
            prune::ln_structured(
                m,
                "a.weight",
                Amount::Fraction(0.1),
                Norm::Inf,
                Dim(0),
                None,
            )
        },
    ];
    for step in steps {
        step(&mut m).expect("valid step");
    }
    let mut out = Vec::new();
    for (name, t) in m.state_dict().into_iter().chain(m.named_pruned()) {
        out.push((name, t.iter().map(|x| x.to_bits()).collect()));
    }
    out
}

#[test]
fn one_thread_and_four_threads_agree_bit_for_bit() {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("pool")
    };
    let single = pool(1).install(run);
    let many = pool(4).install(run);
    assert_eq!(single.len(), 6);
    assert!(single == many, "results differ between 1 and 4 threads");
}
