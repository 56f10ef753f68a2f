//! Channel groups and shrink against the public API: a shrunk model
//! computes exactly what the masked one did (property over random chains
//! of Linear, conv, BatchNorm, ReLU and flatten layers), and failing calls
//! change nothing.

use ndarray::{Array2, Array4, ArrayD, Axis, Ix2, Ix4};
use ndprune::group::{self, ChannelGroup, GroupImportance, Inexact, Reduction, Role};
use ndprune::prelude::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[path = "support/models.rs"]
mod models;
use models::{bn, uniform};

/// Everything a model holds, for before/after comparisons.
fn state(m: &Sequential<f32>) -> Vec<(String, ArrayD<f32>)> {
    let mut all: Vec<(String, ArrayD<f32>)> = m
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.clone()))
        .collect();
    all.extend(m.named_pruned().into_iter().map(|(n, t)| (n, t.clone())));
    all
}

/// What the test's forward pass does at each layer index.
#[derive(Debug, Clone, Copy)]
enum Op {
    Linear,
    Conv { pad: usize },
    BatchNorm,
    Relu,
    Flatten,
}

fn t<'a>(m: &'a Sequential<f32>, path: &str) -> &'a ArrayD<f32> {
    m.tensor(path).unwrap_or_else(|| panic!("no tensor {path}"))
}

fn linear(m: &Sequential<f32>, i: usize, x: &Array2<f32>) -> Array2<f32> {
    let w = t(m, &format!("{i}.weight"))
        .view()
        .into_dimensionality::<Ix2>()
        .unwrap();
    let b = t(m, &format!("{i}.bias"));
    let mut y = Array2::<f32>::zeros((x.nrows(), w.nrows()));
    for n in 0..x.nrows() {
        for o in 0..w.nrows() {
            let mut s = b[[o]];
            for k in 0..w.ncols() {
                s += w[[o, k]] * x[[n, k]];
            }
            y[[n, o]] = s;
        }
    }
    y
}

fn conv(m: &Sequential<f32>, i: usize, pad: usize, x: &Array4<f32>) -> Array4<f32> {
    let w = t(m, &format!("{i}.weight"))
        .view()
        .into_dimensionality::<Ix4>()
        .unwrap();
    let b = t(m, &format!("{i}.bias"));
    let (n, cin, h, wd) = x.dim();
    let (cout, wcin, k, _) = w.dim();
    assert_eq!(cin, wcin);
    let (oh, ow) = (h + 2 * pad + 1 - k, wd + 2 * pad + 1 - k);
    let mut y = Array4::<f32>::zeros((n, cout, oh, ow));
    for s in 0..n {
        for o in 0..cout {
            for r in 0..oh {
                for c in 0..ow {
                    let mut acc = b[[o]];
                    for ci in 0..cin {
                        for p in 0..k {
                            for q in 0..k {
                                let (rr, cc) = (r + p, c + q);
                                if rr < pad || cc < pad || rr - pad >= h || cc - pad >= wd {
                                    continue;
                                }
                                acc += w[[o, ci, p, q]] * x[[s, ci, rr - pad, cc - pad]];
                            }
                        }
                    }
                    y[[s, o, r, c]] = acc;
                }
            }
        }
    }
    y
}

fn batch_norm(m: &Sequential<f32>, i: usize, x: &mut ArrayD<f32>) {
    let g = t(m, &format!("{i}.weight")).clone();
    let b = t(m, &format!("{i}.bias")).clone();
    let mean = t(m, &format!("{i}.running_mean")).clone();
    let var = t(m, &format!("{i}.running_var")).clone();
    for (c, mut lane) in x.axis_iter_mut(Axis(1)).enumerate() {
        let s = (var[[c]] + 1e-5).sqrt();
        lane.mapv_inplace(|v| (v - mean[[c]]) / s * g[[c]] + b[[c]]);
    }
}

fn forward(m: &Sequential<f32>, ops: &[Op], x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut x = x.clone();
    for (i, op) in ops.iter().enumerate() {
        x = match *op {
            Op::Linear => linear(m, i, &x.into_dimensionality::<Ix2>().unwrap()).into_dyn(),
            Op::Conv { pad } => {
                conv(m, i, pad, &x.into_dimensionality::<Ix4>().unwrap()).into_dyn()
            }
            Op::BatchNorm => {
                batch_norm(m, i, &mut x);
                x
            }
            Op::Relu => x.mapv(|v| v.max(0.0)),
            Op::Flatten => {
                let n = x.shape()[0];
                let rest = x.len() / n;
                x.as_standard_layout()
                    .into_owned()
                    .into_shape_with_order(vec![n, rest])
                    .unwrap()
            }
        };
    }
    x
}

/// A random MLP: Linear (BatchNorm) ReLU ... Linear.
fn mlp(widths: &[usize], with_bn: bool, rng: &mut StdRng) -> (Sequential<f32>, Vec<Op>) {
    let mut m = Sequential::new();
    let mut ops = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        m = m.push(Layer::linear(w[0], w[1], rng));
        ops.push(Op::Linear);
        if i + 2 < widths.len() {
            if with_bn {
                m = m.push(bn(w[1], rng));
                ops.push(Op::BatchNorm);
            }
            m = m.push(Layer::new());
            ops.push(Op::Relu);
        }
    }
    (m, ops)
}

/// conv -> BN -> ReLU -> conv -> ReLU -> flatten -> Linear -> ReLU -> Linear.
fn cnn(c1: usize, c2: usize, hidden: usize, rng: &mut StdRng) -> (Sequential<f32>, Vec<Op>) {
    let m = Sequential::new()
        .push(Layer::conv2d(2, c1, 3, rng))
        .push(bn(c1, rng))
        .push(Layer::new())
        .push(Layer::conv2d(c1, c2, 3, rng))
        .push(Layer::new())
        .push(Layer::new())
        .push(Layer::linear(c2 * 4 * 4, hidden, rng))
        .push(Layer::new())
        .push(Layer::linear(hidden, 3, rng));
    let ops = vec![
        Op::Conv { pad: 1 },
        Op::BatchNorm,
        Op::Relu,
        Op::Conv { pad: 0 },
        Op::Relu,
        Op::Flatten,
        Op::Linear,
        Op::Relu,
        Op::Linear,
    ];
    (m, ops)
}

fn same(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| x == y)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Pruned by groups, then shrunk: the same outputs, bit for bit (up to
    /// the sign of zero), and every group's width is what was kept.
    #[test]
    fn shrunk_mlp_computes_what_the_masked_one_did(
        seed in any::<u64>(),
        widths in prop::collection::vec(1usize..9, 3..6),
        with_bn in any::<bool>(),
        fractions in prop::collection::vec(0.0f64..=1.0, 5),
        reduction in prop::sample::select(vec![Reduction::Sum, Reduction::Max, Reduction::Primary]),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut model, ops) = mlp(&widths, with_bn, &mut rng);
        let groups = group::infer_chain(&model).unwrap();
        prop_assert_eq!(groups.len(), widths.len() - 2);
        let imp = GroupImportance::new(Norm::L(2.0), reduction).unwrap();
        for (g, &f) in groups.iter().zip(&fractions) {
            group::prune_group(&mut model, g, Amount::Fraction(f), &imp).unwrap();
        }
        let x = uniform(vec![5, widths[0]], &mut rng);
        let masked = forward(&model, &ops, &x);
        let report = group::shrink(&mut model, &groups, Inexact::Refuse).unwrap();
        prop_assert!(report.is_exact());
        let shrunk = forward(&model, &ops, &x);
        prop_assert!(same(&masked, &shrunk), "{masked:?}\n{shrunk:?}");
        for (i, (g, r)) in groups.iter().zip(&report.groups).enumerate() {
            let expected = g.channels() - Amount::Fraction(fractions[i]).count_of(g.channels()).unwrap();
            // A layer whose every input channel was pruned has every row
            // masked: its channels count as pruned already.
            if i == 0 || report.groups[i - 1].kept > 0 {
                prop_assert_eq!(r.kept, expected);
            } else {
                prop_assert_eq!(r.kept, 0);
            }
        }
    }

    /// `Inexact::Fold` over MLPs with and without BatchNorm whose weight
    /// rows alone are pruned (the biases, norm scales and shifts left, some
    /// of each set to zero): either refused (`NoFold`) with nothing changed,
    /// or reported exact and computing what the masked model did (up to
    /// the rounding of the folded sums).
    #[test]
    fn fold_is_refused_or_exact(
        seed in any::<u64>(),
        widths in prop::collection::vec(1usize..6, 3..5),
        with_bn in any::<bool>(),
        rows in prop::collection::vec(0usize..6, 4),
        zeros in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut model, ops) = mlp(&widths, with_bn, &mut rng);
        let linears: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| matches!(o, Op::Linear)).map(|(i, _)| i).collect();
        for (&i, &k) in linears.iter().zip(&rows) {
            let w = format!("{i}.weight");
            let out = model.tensor(&w).unwrap().shape()[0];
            prune::ln_structured(&mut model, &w, Amount::Count(k.min(out)), Norm::L(2.0), Dim(0), None).unwrap();
        }
        // Zero some entries of every 1-D parameter (biases, norm scales
        // and shifts), by the bits of `zeros`.
        let mut bit = 0;
        let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).filter(|n| !n.ends_with("_mask") && !n.contains("running")).collect();
        for n in names {
            if model.tensor(&n).unwrap().ndim() != 1 || n.ends_with("_orig") {
                continue;
            }
            let mut t = model.parameter_mut(&n).unwrap();
            for v in t.iter_mut() {
                if zeros >> (bit % 64) & 1 == 1 {
                    *v = 0.0;
                }
                bit += 1;
            }
        }
        let groups = group::infer_chain(&model).unwrap();
        let x = uniform(vec![3, widths[0]], &mut rng);
        let masked = forward(&model, &ops, &x);
        let before = state(&model);
        let relu: fn(f64) -> f64 = |v| v.max(0.0);
        match group::shrink(&mut model, &groups, Inexact::Fold(relu)) {
            Err(e) => {
                prop_assert!(matches!(e.kind(), PruneErrorKind::NoFold { .. }), "{}", e);
                prop_assert_eq!(state(&model), before);
            }
            Ok(r) => {
                prop_assert!(r.is_exact());
                let got = forward(&model, &ops, &x);
                prop_assert_eq!(got.shape(), masked.shape());
                for (a, b) in got.iter().zip(&masked) {
                    prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{} vs {}", a, b);
                }
            }
        }
    }

    /// The same through convs, a BatchNorm, padding and a flatten into a
    /// Linear, with two rounds of pruning.
    #[test]
    fn shrunk_cnn_computes_what_the_masked_one_did(
        seed in any::<u64>(),
        c1 in 1usize..5,
        c2 in 1usize..5,
        hidden in 1usize..6,
        first in 0.0f64..=1.0,
        second in 0.0f64..=1.0,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut model, ops) = cnn(c1, c2, hidden, &mut rng);
        let groups = group::infer_chain(&model).unwrap();
        prop_assert_eq!(groups.len(), 3);
        prop_assert_eq!(groups[1].members().last().map(|m| m.block()), Some(16));
        for f in [first, second] {
            for g in &groups {
                group::prune_group(&mut model, g, Amount::Fraction(f), &GroupImportance::default()).unwrap();
            }
        }
        let x = uniform(vec![2, 2, 6, 6], &mut rng);
        let masked = forward(&model, &ops, &x);
        group::shrink(&mut model, &groups, Inexact::Refuse).unwrap();
        let shrunk = forward(&model, &ops, &x);
        prop_assert!(same(&masked, &shrunk));
    }
}

#[test]
fn group_pruning_masks_every_member_and_counts_what_is_left() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut model, _) = mlp(&[3, 10, 2], true, &mut rng);
    let groups = group::infer_chain(&model).unwrap();
    let g = &groups[0];
    let first = group::prune_group(
        &mut model,
        g,
        Amount::Fraction(0.3),
        &GroupImportance::default(),
    )
    .unwrap();
    assert_eq!(first.len(), 3);
    // 30 % of the 7 left is 2.1, so 2 more.
    let second = group::prune_group(
        &mut model,
        g,
        Amount::Fraction(0.3),
        &GroupImportance::default(),
    )
    .unwrap();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|c| !first.contains(c)));
    for m in g.members() {
        let v = model.tensor(m.tensor()).unwrap();
        for &c in first.iter().chain(&second) {
            let zero = v
                .index_axis(Axis(if m.role() == Role::Consumer { 1 } else { 0 }), c)
                .iter()
                .all(|&x| x == 0.0);
            assert_eq!(zero, m.role().is_masked(), "{} channel {c}", m.tensor());
        }
    }
    // Stats are never masked.
    assert!(model.buffer("1.running_var_mask").is_none());
    assert!(model.pruning_history("0.weight").unwrap().len() == 2);
}

#[test]
fn group_importance_ranks_by_everything_a_channel_owns() {
    // Channel 0 is small in the producer but large in the consumer.
    let mut model = Sequential::new()
        .with_child(
            "a",
            Layer::new()
                .with_parameter("weight", ndarray::array![[0.1f32], [1.0]].into_dyn())
                .unwrap()
                .with_parameter("bias", ndarray::array![0.0f32, 0.0].into_dyn())
                .unwrap(),
        )
        .unwrap()
        .with_child(
            "b",
            Layer::new()
                .with_parameter("weight", ndarray::array![[10.0f32, 1.0]].into_dyn())
                .unwrap()
                .with_parameter("bias", ndarray::array![0.0f32].into_dyn())
                .unwrap(),
        )
        .unwrap();
    let g = ChannelGroup::new(2)
        .producer("a.weight", Dim(0))
        .producer("a.bias", Dim(0))
        .consumer("b.weight", Dim(1));
    let mut by_primary = model.clone();
    let primary = GroupImportance::new(Norm::L(2.0), Reduction::Primary).unwrap();
    assert_eq!(
        group::prune_group(&mut by_primary, &g, Amount::Count(1), &primary).unwrap(),
        vec![0]
    );
    assert_eq!(
        group::prune_group(
            &mut model,
            &g,
            Amount::Count(1),
            &GroupImportance::default()
        )
        .unwrap(),
        vec![1]
    );
}

#[test]
fn ties_go_lowest_channel_first_and_nan_ranks_largest() {
    let w = ndarray::array![[f32::NAN], [1.0], [1.0], [0.5]].into_dyn();
    let mut l = Layer::new().with_parameter("weight", w).unwrap();
    let g = ChannelGroup::new(4).producer("weight", Dim(0));
    assert_eq!(
        group::prune_group(&mut l, &g, Amount::Count(2), &GroupImportance::default()).unwrap(),
        vec![1, 3]
    );
    assert_eq!(
        group::prune_group(&mut l, &g, Amount::Count(2), &GroupImportance::default()).unwrap(),
        vec![0, 2]
    );
}

#[test]
fn a_failing_group_call_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut model, _) = mlp(&[3, 6, 4, 2], false, &mut rng);
    let before = state(&model);
    // The last member has the wrong width: nothing may be masked.
    let bad = ChannelGroup::new(6)
        .producer("0.weight", Dim(0))
        .producer("0.bias", Dim(0))
        .consumer("4.weight", Dim(1));
    let err = group::prune_group(
        &mut model,
        &bad,
        Amount::Count(1),
        &GroupImportance::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            PruneErrorKind::ChannelsMismatch {
                size: 4,
                channels: 6,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.tensor(), Some("4.weight"));
    assert_eq!(state(&model), before);
    for g in [
        ChannelGroup::new(6).consumer("2.weight", Dim(1)),
        ChannelGroup::new(6)
            .producer("0.weight", Dim(0))
            .producer("0.weight", Dim(0)),
        ChannelGroup::new(6).producer("0.weight", Dim(2)),
        ChannelGroup::new(6).producer("9.weight", Dim(0)),
        ChannelGroup::new(6).producer("0.nothing", Dim(0)),
    ] {
        assert!(
            group::prune_group(
                &mut model,
                &g,
                Amount::Count(1),
                &GroupImportance::default()
            )
            .is_err(),
            "{g:?}"
        );
        assert!(group::shrink(&mut model, &[g], Inexact::Drop).is_err());
        assert_eq!(state(&model), before);
    }
    let good = &group::infer_chain(&model).unwrap()[0];
    assert!(group::prune_group(
        &mut model,
        good,
        Amount::Count(7),
        &GroupImportance::default()
    )
    .is_err());
    assert!(group::prune_channels(&mut model, good, &[1, 1]).is_err());
    assert!(group::prune_channels(&mut model, good, &[6]).is_err());
    assert_eq!(state(&model), before);
    // A member named by its original or mask is refused once pruned.
    group::prune_group(
        &mut model,
        good,
        Amount::Count(1),
        &GroupImportance::default(),
    )
    .unwrap();
    let orig = ChannelGroup::new(6).producer("0.weight_orig", Dim(0));
    assert!(matches!(
        group::prune_group(
            &mut model,
            &orig,
            Amount::Count(1),
            &GroupImportance::default()
        )
        .unwrap_err()
        .kind(),
        PruneErrorKind::PartOfPruning { .. }
    ));
}

#[test]
fn a_bias_left_unpruned_is_inexact_refused_dropped_or_folded() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut model, ops) = mlp(&[4, 6, 3], false, &mut rng);
    // ln_structured masks the weight's rows but leaves the bias.
    prune::ln_structured(
        &mut model,
        "0.weight",
        Amount::Count(2),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    let groups = group::infer_chain(&model).unwrap();
    let x = uniform(vec![7, 4], &mut rng);
    let masked = forward(&model, &ops, &x);
    let before = state(&model);
    let err = group::shrink(&mut model, &groups, Inexact::Refuse).unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::InexactShrink { .. }),
        "{err}"
    );
    assert_eq!(err.tensor(), Some("0.bias"));
    assert_eq!(state(&model), before);

    let mut dropped = model.clone();
    let r = group::shrink(&mut dropped, &groups, Inexact::Drop).unwrap();
    assert!(!r.is_exact());
    assert_eq!(r.groups[0].removed.len(), 2);
    assert_eq!(r.groups[0].inexact, r.groups[0].removed);

    let relu: fn(f64) -> f64 = |v| v.max(0.0);
    let r = group::shrink(&mut model, &groups, Inexact::Fold(relu)).unwrap();
    assert!(r.is_exact());
    assert_eq!(r.groups[0].folded.len(), 2);
    let folded = forward(&model, &ops, &x);
    assert_eq!(folded.shape(), masked.shape());
    for (a, b) in folded.iter().zip(&masked) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // Dropping without the fold gives another answer (the constant is lost)
    // unless every removed bias was negative (ReLU made the constant 0).
    let lost = forward(&dropped, &ops, &x);
    let biases = before
        .iter()
        .find(|(n, _)| n == "0.bias")
        .map(|(_, t)| t.clone())
        .unwrap();
    let any_positive = r.groups[0].removed.iter().any(|&c| biases[[c]] > 0.0);
    assert_eq!(any_positive, !same(&lost, &masked));
}

#[test]
fn folding_into_a_conv_is_refused_and_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut model, _) = cnn(3, 2, 4, &mut rng);
    prune::ln_structured(
        &mut model,
        "3.weight",
        Amount::Count(1),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    prune::ln_structured(
        &mut model,
        "0.weight",
        Amount::Count(1),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    let groups = group::infer_chain(&model).unwrap();
    let before = state(&model);
    let relu: fn(f64) -> f64 = |v| v.max(0.0);
    // Group 0's constant would pass a BatchNorm (two nonzero producers).
    let err = group::shrink(&mut model, &groups, Inexact::Fold(relu)).unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::NoFold { .. }), "{err}");
    assert_eq!(state(&model), before);
    // Group 1 alone: conv bias -> flatten -> Linear folds exactly.
    let r = group::shrink(&mut model, &groups[1..], Inexact::Fold(relu)).unwrap();
    assert_eq!(r.groups[0].folded.len(), 1);
}

#[test]
fn shrink_keeps_pruned_tensors_pruned_and_remove_still_works() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut model, ops) = mlp(&[5, 8, 8, 2], false, &mut rng);
    let groups = group::infer_chain(&model).unwrap();
    for g in &groups {
        group::prune_group(
            &mut model,
            g,
            Amount::Fraction(0.5),
            &GroupImportance::default(),
        )
        .unwrap();
    }
    prune::l1_unstructured(&mut model, "2.weight", Amount::Fraction(0.2), None).unwrap();
    let x = uniform(vec![3, 5], &mut rng);
    let masked = forward(&model, &ops, &x);
    group::shrink(&mut model, &groups, Inexact::Refuse).unwrap();
    assert_eq!(model.parameter("2.weight_orig").unwrap().shape(), &[4, 4]);
    assert_eq!(model.buffer("2.weight_mask").unwrap().shape(), &[4, 4]);
    let w = model.tensor("2.weight").unwrap().clone();
    assert_eq!(
        &w,
        &(model.parameter("2.weight_orig").unwrap() * model.buffer("2.weight_mask").unwrap())
    );
    for name in ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight"] {
        prune::remove(&mut model, name).unwrap();
    }
    assert!(same(&forward(&model, &ops, &x), &masked));
    // Nothing left to remove: a second shrink is a no-op.
    let groups = groups_of(&model);
    let again = group::shrink(&mut model, &groups, Inexact::Refuse).unwrap();
    assert_eq!(again.entries_removed(), 0);
}

fn groups_of(m: &Sequential<f32>) -> Vec<ChannelGroup> {
    group::infer_chain(m).unwrap()
}

#[test]
fn inference_refuses_what_is_not_a_chain() {
    let mut rng = StdRng::seed_from_u64(6);
    // A depthwise-looking conv reads 1 channel of the previous 4.
    let m = Sequential::<f32>::new()
        .push(Layer::conv2d(1, 4, 3, &mut rng))
        .push(Layer::conv2d(1, 4, 3, &mut rng));
    let err = group::infer_chain(&m).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            PruneErrorKind::NotAChain {
                reads: 1,
                channels: 4,
                ..
            }
        ),
        "{err}"
    );
    // A LayerNorm-like layer (1-D, no running statistics) mixes channels.
    let ln = Layer::<f32>::new()
        .with_parameter("weight", ArrayD::ones(vec![4]))
        .unwrap()
        .with_parameter("bias", ArrayD::zeros(vec![4]))
        .unwrap();
    let m = Sequential::<f32>::new()
        .push(Layer::linear(2, 4, &mut rng))
        .push(ln)
        .push(Layer::linear(4, 2, &mut rng));
    assert!(matches!(
        group::infer_chain(&m).unwrap_err().kind(),
        PruneErrorKind::AmbiguousLayer { .. }
    ));
    // A Linear reading 5 features after a Linear making 4.
    let m = Sequential::<f32>::new()
        .push(Layer::linear(2, 4, &mut rng))
        .push(Layer::linear(5, 2, &mut rng));
    assert!(matches!(
        group::infer_chain(&m).unwrap_err().kind(),
        PruneErrorKind::NotAChain {
            reads: 5,
            channels: 4,
            ..
        }
    ));
}

#[test]
fn inference_orders_layers_naturally() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut m = Sequential::<f32>::new();
    let widths = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    for w in widths.windows(2) {
        m = m.push(Layer::linear(w[0], w[1], &mut rng));
    }
    // Children "0".."10": "10" must come after "9", not after "1".
    let groups = group::infer_chain(&m).unwrap();
    assert_eq!(groups.len(), 10);
    assert_eq!(groups[9].members().last().unwrap().tensor(), "10.weight");
}

#[test]
fn groups_declared_with_negative_dims_and_blocks() {
    // Two heads of 2 rows each, read by o's columns in blocks of 2.
    let mut rng = StdRng::seed_from_u64(8);
    let q = uniform(vec![4, 3], &mut rng);
    let o = uniform(vec![3, 4], &mut rng);
    let mut m = Sequential::new()
        .with_child(
            "q",
            Layer::new().with_parameter("weight", q.clone()).unwrap(),
        )
        .unwrap()
        .with_child(
            "o",
            Layer::new().with_parameter("weight", o.clone()).unwrap(),
        )
        .unwrap();
    let g = ChannelGroup::new(2)
        .with(ndprune::group::Member::new("q.weight", Dim(-2), Role::Producer).with_block(2))
        .with(ndprune::group::Member::new("o.weight", Dim(-1), Role::Consumer).with_block(2));
    group::prune_channels(&mut m, &g, &[1]).unwrap();
    let r = group::shrink(&mut m, &[g], Inexact::Refuse).unwrap();
    assert_eq!(r.groups[0].removed, vec![1]);
    assert_eq!(
        m.tensor("o.weight").unwrap(),
        &o.slice(ndarray::s![.., 0..2]).to_owned().into_dyn()
    );
    assert_eq!(
        m.tensor("q.weight").unwrap(),
        &q.slice(ndarray::s![0..2, ..]).to_owned().into_dyn()
    );
}
