//! The in-memory API at its boundaries: every method's scores in every
//! layout (transposed, Fortran order, negative strides, broadcast, 4-D
//! permutations) against a standard-layout copy; empty and 0-d tensors;
//! user methods that misbehave (wrong shapes, non-0/1, NaN, panics) and
//! user modules with child names that are no path segment; pruning
//! `_orig`/`_mask` directly; `global_unstructured`, Wanda, schedules and
//! the gradual pruner at their edges; `update_trainable` keeping
//! `X = X_orig * X_mask`. Every failing call changes nothing.
#![allow(clippy::type_complexity)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{s, ArrayD, ArrayViewD, Axis, IxDyn, ShapeBuilder};
use ndprune::prelude::*;
use ndprune::schedule::{
    ConstantSparsity, CubicSL, GradualPruner, PolynomialDecay, Schedule, Scope,
};
use ndprune::wanda::{self, ActivationNorms, NormAccumulator};
use ndprune::{PerRowUnstructured, PruningKind};

fn arr(shape: &[usize], f: impl Fn(usize) -> f64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

fn pseudo(i: usize) -> f64 {
    // distinct magnitudes, some ties.
    let x = ((i * 7919 + 13) % 97) as f64 / 7.0 - 6.0;
    if i % 11 == 0 {
        1.0
    } else {
        x
    }
}

/// Non-standard layouts of a [r, c] array holding the same values at the same indices.
fn layouts(a: &ArrayD<f64>) -> Vec<(&'static str, ArrayD<f64>)> {
    let shape = a.shape().to_vec();
    let mut out = vec![];
    // Fortran order
    let mut f = ArrayD::zeros(IxDyn(&shape).f());
    f.assign(a);
    out.push(("fortran", f));
    // negative strides: store reversed, view reversed back
    let mut rev = a.clone();
    for ax in 0..a.ndim() {
        rev.invert_axis(Axis(ax));
    }
    let mut back = rev.as_standard_layout().into_owned();
    for ax in 0..a.ndim() {
        back.invert_axis(Axis(ax));
    }
    assert_eq!(&back, a);
    out.push(("negative", back));
    // transposed storage
    let t = a.t().as_standard_layout().into_owned();
    let tt = t.reversed_axes();
    assert_eq!(&tt, a);
    out.push(("transposed", tt));
    out
}

fn layer(w: ArrayD<f64>) -> Layer<f64> {
    Layer::new().with_parameter("weight", w).unwrap()
}

type Pruner = Box<dyn Fn(&mut Layer<f64>, Option<ArrayViewD<'_, f64>>) -> Result<(), PruneError>>;

fn pruners() -> Vec<(&'static str, Pruner)> {
    vec![
        (
            "l1",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::l1_unstructured(l, "weight", Amount::Fraction(0.3), s)
            }) as Pruner,
        ),
        (
            "ln2",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::ln_structured(l, "weight", Amount::Count(1), Norm::L(2.0), Dim(0), s)
            }),
        ),
        (
            "ln_inf_last",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::ln_structured(l, "weight", Amount::Fraction(0.34), Norm::Inf, Dim(-1), s)
            }),
        ),
        (
            "nm",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::nm_structured(l, "weight", 1, 4, Dim(1), s)
            }),
        ),
        (
            "nm_dim0",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::nm_structured(l, "weight", 1, 2, Dim(0), s)
            }),
        ),
        (
            "block",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::block_sparsity(l, "weight", &BlockSparsity::new(0.5, (2, 2)).unwrap(), s)
            }),
        ),
        (
            "per_row",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::apply(
                    l,
                    "weight",
                    &PerRowUnstructured::new(Amount::Fraction(0.25)).unwrap(),
                    s,
                )
            }),
        ),
    ]
}

#[test]
fn layouts_of_scores_give_the_standard_result() {
    let w = arr(&[4, 8], pseudo);
    let scores = arr(&[4, 8], |i| pseudo(i * 3 + 1));
    for (first, f1) in pruners() {
        for (second, f2) in pruners() {
            // reference: standard layout
            let mut reference = layer(w.clone());
            let r1 = f1(&mut reference, Some(scores.view()));
            let r2 = r1
                .as_ref()
                .ok()
                .map(|_| f2(&mut reference, Some(scores.view())));
            for (name, lay) in layouts(&scores) {
                let mut l = layer(w.clone());
                let o1 = f1(&mut l, Some(lay.view()));
                assert_eq!(o1.is_ok(), r1.is_ok(), "{first} {name}");
                if o1.is_err() {
                    continue;
                }
                let o2 = f2(&mut l, Some(lay.view()));
                assert_eq!(
                    o2.is_ok(),
                    r2.as_ref().unwrap().is_ok(),
                    "{first}+{second} {name}"
                );
                assert_eq!(l, reference, "{first}+{second} with {name} scores");
            }
            // broadcast scores: a row broadcast to all rows
            let row = scores.slice(s![0..1, ..]).to_owned();
            let b = row.broadcast(IxDyn(&[4, 8])).unwrap();
            let mut rl = layer(w.clone());
            let mut bl = layer(w.clone());
            let std_b = b.to_owned();
            let a = f1(&mut rl, Some(std_b.view())).is_ok();
            assert_eq!(f1(&mut bl, Some(b.view())).is_ok(), a);
            if a {
                let a2 = f2(&mut rl, Some(std_b.view())).is_ok();
                assert_eq!(f2(&mut bl, Some(b.view())).is_ok(), a2);
            }
            assert_eq!(bl, rl, "{first}+{second} broadcast");
        }
    }
}

#[test]
fn custom_from_mask_views() {
    let w = arr(&[3, 4], pseudo);
    let m = arr(&[3, 4], |i| if i % 3 == 0 { 0.0 } else { 1.0 });
    let mut reference = layer(w.clone());
    prune::custom_from_mask(&mut reference, "weight", m.view()).unwrap();
    for (name, lay) in layouts(&m) {
        let mut l = layer(w.clone());
        prune::custom_from_mask(&mut l, "weight", lay.view()).unwrap();
        assert_eq!(l, reference, "{name}");
    }
    // broadcast ones, a 1-row mask broadcast
    let row = m.slice(s![1..2, ..]).to_owned();
    let b = row.broadcast(IxDyn(&[3, 4])).unwrap();
    let mut l = layer(w.clone());
    let mut r = layer(w.clone());
    prune::custom_from_mask(&mut l, "weight", b.clone()).unwrap();
    prune::custom_from_mask(&mut r, "weight", b.to_owned().view()).unwrap();
    assert_eq!(l, r);
}

// ---- 0-d and empty tensors ----

#[test]
fn zero_d_and_empty_never_panic() {
    for shape in [
        vec![],
        vec![0],
        vec![0, 3],
        vec![3, 0],
        vec![1],
        vec![2, 0, 2],
    ] {
        let w = arr(&shape, |i| i as f64 + 1.0);
        for (name, f) in pruners() {
            for twice in [false, true] {
                let mut l = layer(w.clone());
                let out = catch_unwind(AssertUnwindSafe(|| {
                    if twice {
                        let _ = prune::identity(&mut l, "weight");
                    }
                    let before = l.clone();
                    let r = f(&mut l, None);
                    if r.is_err() {
                        assert_eq!(l, before, "{name} {shape:?} failed and changed");
                    }
                    r
                }));
                assert!(
                    out.is_ok(),
                    "{name} on {shape:?} (pruned first: {twice}) panicked"
                );
            }
        }
        let mut l = layer(w.clone());
        let r = catch_unwind(AssertUnwindSafe(|| {
            prune::random_unstructured(&mut l, "weight", Amount::Fraction(0.5), &mut rand::rng())
        }));
        assert!(r.is_ok(), "random_unstructured {shape:?}");
        let mut l = layer(w.clone());
        let _ = prune::identity(&mut l, "weight");
        let r = catch_unwind(AssertUnwindSafe(|| {
            prune::random_structured(&mut l, "weight", Amount::Count(0), Dim(0), &mut rand::rng())
        }));
        assert!(r.is_ok(), "random_structured {shape:?}");
        for n in [
            Norm::L(1.0),
            Norm::L(0.0),
            Norm::Inf,
            Norm::NegInf,
            Norm::Fro,
            Norm::Nuc,
            Norm::L(-1.0),
        ] {
            for pre in [false, true] {
                let mut l = layer(w.clone());
                if pre {
                    let _ = prune::identity(&mut l, "weight");
                }
                let r = catch_unwind(AssertUnwindSafe(|| {
                    prune::ln_structured(&mut l, "weight", Amount::Count(0), n, Dim(-1), None)
                }));
                assert!(r.is_ok(), "ln {n:?} {shape:?} pre {pre}");
            }
        }
    }
}

// ---- user methods that misbehave ----

#[derive(Debug, Clone, Copy)]
enum Bad {
    WrongShape,
    Half,
    Nan,
    Revive,
    Panic,
    NegZero,
    Transposed,
}

#[derive(Debug)]
struct Liar {
    bad: Bad,
    kind: PruningKind,
}

impl PruningMethod<f64> for Liar {
    fn kind(&self) -> PruningKind {
        self.kind
    }
    fn compute_mask(
        &self,
        t: ArrayViewD<'_, f64>,
        default_mask: ArrayViewD<'_, f64>,
    ) -> Result<ArrayD<f64>, PruneError> {
        let mut m = default_mask.to_owned();
        match self.bad {
            Bad::WrongShape => Ok(ArrayD::ones(IxDyn(&[t.len() + 1]))),
            Bad::Half => {
                m.fill(0.5);
                Ok(m)
            }
            Bad::Nan => {
                m.fill(f64::NAN);
                Ok(m)
            }
            Bad::Revive => Ok(ArrayD::ones(m.raw_dim())),
            Bad::Panic => panic!("user method panics"),
            Bad::NegZero => {
                m.mapv_inplace(|v| if v == 1.0 { 1.0 } else { -0.0 });
                if let Some(x) = m.iter_mut().next() {
                    *x = -0.0;
                }
                Ok(m)
            }
            Bad::Transposed => {
                // a Fortran-order mask, first entry pruned
                let mut f = ArrayD::zeros(m.raw_dim().f());
                f.assign(&m);
                if let Some(x) = f.iter_mut().next() {
                    *x = 0.0;
                }
                Ok(f)
            }
        }
    }
}

#[test]
fn misbehaving_user_methods_change_nothing() {
    let kinds = [
        PruningKind::Unstructured,
        PruningKind::Structured { dim: Dim(0) },
        PruningKind::Structured { dim: Dim(1) },
        PruningKind::Structured { dim: Dim(7) },
        PruningKind::Global,
    ];
    for shape in [vec![4, 6], vec![6]] {
        for kind in kinds {
            for bad in [Bad::WrongShape, Bad::Half, Bad::Nan, Bad::Panic] {
                for pre in [0, 1, 2] {
                    let mut l = layer(arr(&shape, pseudo));
                    if pre >= 1 {
                        prune::l1_unstructured(&mut l, "weight", Amount::Count(2), None).unwrap();
                    }
                    if pre >= 2 && shape.len() == 2 {
                        prune::ln_structured(
                            &mut l,
                            "weight",
                            Amount::Count(1),
                            Norm::L(1.0),
                            Dim(0),
                            None,
                        )
                        .unwrap();
                    }
                    let before = l.clone();
                    let m = Liar { bad, kind };
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        prune::apply(&mut l, "weight", &m, None)
                    }));
                    match r {
                        Ok(Ok(())) => panic!("{bad:?} {kind:?} {shape:?} pre {pre}: accepted"),
                        Ok(Err(_)) => {}
                        Err(_) => assert!(
                            matches!(bad, Bad::Panic),
                            "{bad:?} {kind:?}: library panicked"
                        ),
                    }
                    assert_eq!(l, before, "{bad:?} {kind:?} {shape:?} pre {pre}: changed");
                    assert_eq!(
                        l.store().pruning_history("weight"),
                        before.store().pruning_history("weight")
                    );
                    // the mask buffer still reads the same
                    assert_eq!(l.buffer("weight_mask"), before.buffer("weight_mask"));
                }
                // global_unstructured with the liar (unstructured only)
                let mut model = Sequential::new()
                    .with_child("a", layer(arr(&shape, pseudo)))
                    .unwrap()
                    .with_child("b", layer(arr(&shape, |i| pseudo(i + 5))))
                    .unwrap();
                prune::l1_unstructured(&mut model, "a.weight", Amount::Count(1), None).unwrap();
                let before = model.clone();
                let m = Liar { bad, kind };
                let r = catch_unwind(AssertUnwindSafe(|| {
                    prune::global_unstructured(&mut model, &["a.weight", "b.weight"], &m, None)
                }));
                assert!(!matches!(r, Ok(Ok(()))), "global {bad:?} {kind:?} accepted");
                assert_eq!(model.named_buffers().len(), before.named_buffers().len());
                for ((n1, t1), (n2, t2)) in
                    model.state_dict().iter().zip(before.state_dict().iter())
                {
                    assert_eq!((n1, t1), (n2, t2), "global {bad:?} {kind:?} changed");
                }
                assert_eq!(
                    model.pruning_history("a.weight"),
                    before.pruning_history("a.weight")
                );
                assert_eq!(model.pruning_history("b.weight"), None);
            }
        }
    }
}

#[test]
fn user_method_odd_but_valid_masks() {
    for kind in [
        PruningKind::Unstructured,
        PruningKind::Global,
        PruningKind::Structured { dim: Dim(1) },
    ] {
        for bad in [Bad::Transposed, Bad::NegZero, Bad::Revive] {
            let mut l = layer(arr(&[3, 4], pseudo));
            prune::l1_unstructured(&mut l, "weight", Amount::Count(2), None).unwrap();
            let m = Liar { bad, kind };
            let r = catch_unwind(AssertUnwindSafe(|| {
                prune::apply(&mut l, "weight", &m, None)
            }));
            assert!(r.is_ok(), "{bad:?} {kind:?} panicked");
            let mask = l.buffer("weight_mask").unwrap().clone();
            assert!(mask.is_standard_layout());
            let orig = l.parameter("weight_orig").unwrap();
            assert_eq!(l.tensor("weight").unwrap(), &(orig * &mask));
            // a later built-in step still works
            let r = catch_unwind(AssertUnwindSafe(|| {
                prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None)
            }));
            assert!(matches!(r, Ok(Ok(()))), "{bad:?} {kind:?} then l1: {r:?}");
        }
    }
}

// ---- module state ----

#[derive(Debug, Clone)]
struct Net {
    own: TensorStore<f64>,
    child_name: &'static str,
    inner: Layer<f64>,
}

impl Module<f64> for Net {
    fn store(&self) -> &TensorStore<f64> {
        &self.own
    }
    fn store_mut(&mut self) -> &mut TensorStore<f64> {
        &mut self.own
    }
    fn children(&self) -> Vec<(&str, &dyn Module<f64>)> {
        vec![(self.child_name, &self.inner)]
    }
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f64>)> {
        vec![(self.child_name, &mut self.inner)]
    }
}

/// A user's `Module::children` may give names that are no path segment
/// (`Sequential::add_child` refuses them): their `state_dict` keys lead
/// elsewhere or nowhere, so loading refuses the tree, naming the child,
/// and changes nothing (it panicked half way through its commit).
#[test]
fn child_names_that_are_no_path_segment_are_refused_by_load_state_dict() {
    for child_name in ["blocks.0", ""] {
        let mut own = TensorStore::new();
        own.add_parameter("bias", arr(&[2], |_| 0.0)).unwrap();
        let mut net = Net {
            own,
            child_name,
            inner: layer(arr(&[2, 2], pseudo)),
        };
        let before: Vec<(String, ArrayD<f64>)> = net
            .state_dict()
            .into_iter()
            .map(|(k, t)| (k, t.clone()))
            .collect();
        let mut state = before.clone();
        for (_, t) in &mut state {
            t.fill(5.0);
        }
        let err = net.load_state_dict(state, true).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::InvalidChildName { name, .. } if name == child_name),
            "{child_name:?}: {err}"
        );
        let after: Vec<(String, ArrayD<f64>)> = net
            .state_dict()
            .into_iter()
            .map(|(k, t)| (k, t.clone()))
            .collect();
        assert_eq!(after, before, "{child_name:?}");
    }
}

#[test]
fn load_state_dict_round_trips_and_fails_atomically() {
    let mut m = Sequential::new()
        .with_child("a", layer(arr(&[3, 4], pseudo)))
        .unwrap()
        .with_child(
            "b",
            layer(arr(&[4], pseudo))
                .with_buffer("run", arr(&[2], pseudo))
                .unwrap(),
        )
        .unwrap();
    prune::ln_structured(
        &mut m,
        "a.weight",
        Amount::Count(1),
        Norm::L(1.0),
        Dim(0),
        None,
    )
    .unwrap();
    let state: Vec<(String, ArrayD<f64>)> = m
        .state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.clone()))
        .collect();
    let mut fresh = Sequential::new()
        .with_child("a", layer(arr(&[3, 4], |_| 0.0)))
        .unwrap()
        .with_child(
            "b",
            layer(arr(&[4], |_| 0.0))
                .with_buffer("run", arr(&[2], |_| 0.0))
                .unwrap(),
        )
        .unwrap();
    let rep = fresh.load_state_dict(state.clone(), true).unwrap();
    assert_eq!(rep.newly_pruned, ["a.weight"]);
    assert_eq!(fresh.tensor("a.weight"), m.tensor("a.weight"));
    // bad mask value in one key: nothing changes
    let mut bad = state.clone();
    for (k, t) in bad.iter_mut() {
        if k == "a.weight_mask" {
            t[[0, 0]] = 0.5;
        }
        if k == "b.weight" {
            t.fill(9.0);
        }
    }
    let before = fresh.clone();
    assert!(fresh.load_state_dict(bad.clone(), false).is_err());
    assert_eq!(fresh.state_dict(), before.state_dict());
    // non-standard layout tensors
    let mut lay = state.clone();
    for (_, t) in lay.iter_mut() {
        if t.ndim() == 2 {
            *t = layouts(t)[1].1.clone();
        }
    }
    let mut fresh2 = before.clone();
    fresh2.load_state_dict(lay, true).unwrap();
    assert_eq!(fresh2.state_dict(), fresh.state_dict());
    // remove then re-prune, then load the pruned state again (pair path)
    prune::remove(&mut fresh2, "a.weight").unwrap();
    prune::l1_unstructured(&mut fresh2, "a.weight", Amount::Count(3), None).unwrap();
    prune::remove(&mut fresh2, "a.weight").unwrap();
    let rep = fresh2.load_state_dict(state.clone(), true).unwrap();
    assert_eq!(rep.newly_pruned, ["a.weight"]);
    assert_eq!(fresh2.tensor("a.weight"), m.tensor("a.weight"));
}

#[test]
fn pruning_orig_or_mask_directly_is_refused() {
    let mut l = layer(arr(&[4], pseudo));
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    let before = l.clone();
    for name in ["weight_orig", "weight_mask"] {
        assert!(prune::l1_unstructured(&mut l, name, Amount::Count(1), None).is_err());
        assert!(prune::identity(&mut l, name).is_err());
        assert!(prune::remove(&mut l, name).is_err());
        assert_eq!(l, before);
    }
    let r = l.update_trainable("weight_mask", |mut v| v.fill(3.0));
    assert!(r.is_err());
    assert_eq!(l, before);
}

// ---- global_unstructured ----

#[test]
fn global_unstructured_edge_cases() {
    let mk = || {
        Sequential::new()
            .with_child("a", layer(arr(&[2, 3], pseudo)))
            .unwrap()
            .with_child("b", layer(arr(&[4], |i| pseudo(i + 9))))
            .unwrap()
    };
    let mut m = mk();
    prune::l1_unstructured(&mut m, "b.weight", Amount::Count(1), None).unwrap();
    let before = m.clone();
    let method = L1Unstructured::new(Amount::Count(3)).unwrap();
    // duplicate
    assert!(prune::global_unstructured(
        &mut m,
        &["a.weight", "b.weight", "a.weight"],
        &method,
        None
    )
    .is_err());
    assert_eq!(m.state_dict(), before.state_dict());
    // non-canonical spelling
    assert!(prune::global_unstructured(&mut m, &["a.weight", ".a.weight"], &method, None).is_err());
    assert!(prune::global_unstructured(&mut m, &["a..weight"], &method, None).is_err());
    // count larger than open entries (6 + 3 open = 9)
    let big = L1Unstructured::new(Amount::Count(10)).unwrap();
    assert!(prune::global_unstructured(&mut m, &["a.weight", "b.weight"], &big, None).is_err());
    assert_eq!(m.state_dict(), before.state_dict());
    assert_eq!(
        m.pruning_history("b.weight"),
        before.pruning_history("b.weight")
    );
    assert_eq!(m.pruning_history("a.weight"), None);
    // exactly all open entries
    let all = L1Unstructured::new(Amount::Count(9)).unwrap();
    let mut m2 = m.clone();
    prune::global_unstructured(&mut m2, &["a.weight", "b.weight"], &all, None).unwrap();
    assert!(m2.tensor("a.weight").unwrap().iter().all(|&x| x == 0.0));
    // importance map with entries for only one target, plus an unrelated key
    let mut scores = HashMap::new();
    scores.insert("a.weight".to_string(), arr(&[2, 3], |i| i as f64));
    scores.insert("zzz".to_string(), arr(&[1], |_| 0.0));
    let mut m3 = m.clone();
    prune::global_unstructured(&mut m3, &["a.weight", "b.weight"], &method, Some(&scores)).unwrap();
    // wrong-shaped score for a target: error, nothing changes
    scores.insert("b.weight".to_string(), arr(&[5], |_| 0.0));
    let mut m4 = m.clone();
    assert!(
        prune::global_unstructured(&mut m4, &["a.weight", "b.weight"], &method, Some(&scores))
            .is_err()
    );
    assert_eq!(m4.state_dict(), m.state_dict());
    // non-standard score layouts in the map
    let mut s1 = HashMap::new();
    s1.insert("a.weight".to_string(), arr(&[2, 3], |i| pseudo(i * 5)));
    let mut s2 = HashMap::new();
    s2.insert(
        "a.weight".to_string(),
        layouts(&arr(&[2, 3], |i| pseudo(i * 5)))[2].1.clone(),
    );
    let mut x1 = m.clone();
    let mut x2 = m.clone();
    prune::global_unstructured(&mut x1, &["a.weight", "b.weight"], &method, Some(&s1)).unwrap();
    prune::global_unstructured(&mut x2, &["a.weight", "b.weight"], &method, Some(&s2)).unwrap();
    assert_eq!(x1.state_dict(), x2.state_dict());
    // random unstructured global with a count too large: nothing changes
    let r = RandomUnstructured::new(Amount::Count(10), 1).unwrap();
    let mut m5 = m.clone();
    assert!(prune::global_unstructured(&mut m5, &["a.weight", "b.weight"], &r, None).is_err());
    assert_eq!(m5.state_dict(), m.state_dict());
    // an empty target list
    let mut m6 = m.clone();
    let r = catch_unwind(AssertUnwindSafe(|| {
        prune::global_unstructured::<f64, _, _, &str>(&mut m6, &[], &method, None)
    }));
    assert!(r.is_ok());
}

// ---- wanda ----

#[test]
fn wanda_inputs_and_atomicity() {
    let mut acc = NormAccumulator::new(3);
    let before = acc.clone();
    assert!(acc.update(arr(&[2, 4], pseudo).view()).is_err());
    assert!(acc
        .update(arr(&[2, 3], |i| if i == 4 { f64::NAN } else { 1.0 }).view())
        .is_err());
    assert!(acc.update(arr(&[], |_| 1.0).view()).is_err());
    assert!(acc.update(arr(&[2, 3], |_| 1e200).view()).is_err());
    assert_eq!(acc, before);
    acc.update(arr(&[0, 3], pseudo).view()).unwrap();
    assert_eq!(acc.tokens(), 0);
    acc.update(layouts(&arr(&[4, 3], pseudo))[2].1.view())
        .unwrap();
    let mut acc2 = NormAccumulator::new(3);
    acc2.update(arr(&[4, 3], pseudo).view()).unwrap();
    assert_eq!(acc, acc2);
    let mut z = NormAccumulator::new(0);
    z.update(arr(&[5, 0], pseudo).view()).unwrap();
    assert_eq!(z.tokens(), 5);
    assert!(ActivationNorms::new(vec![1.0, -0.0]).is_ok());
    assert!(ActivationNorms::new(vec![f64::NAN]).is_err());
    let norms = acc.norms().unwrap();
    // prune a weight with the wrong width, or 1-D: error, unchanged
    for shape in [vec![2, 4], vec![3], vec![2, 3, 1], vec![]] {
        let mut l = layer(arr(&shape, pseudo));
        let b = l.clone();
        assert!(wanda::prune(&mut l, "weight", &norms, Amount::Fraction(0.5)).is_err());
        assert!(wanda::prune_nm(&mut l, "weight", &norms, 2, 4).is_err());
        assert_eq!(l, b);
    }
    // prune_nm with a width not multiple of m: error unchanged
    let mut l = layer(arr(&[2, 3], pseudo));
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    let b = l.clone();
    assert!(wanda::prune_nm(&mut l, "weight", &norms, 2, 4).is_err());
    assert_eq!(l, b);
    // count too large
    assert!(wanda::prune(&mut l, "weight", &norms, Amount::Count(4)).is_err());
    assert_eq!(l, b);
    // transposed weight in the layer vs standard
    let w = arr(&[3, 3], pseudo);
    let mut l1 = layer(w.clone());
    let mut l2 = layer(layouts(&w)[2].1.clone());
    wanda::prune(&mut l1, "weight", &norms, Amount::Fraction(0.5)).unwrap();
    wanda::prune(&mut l2, "weight", &norms, Amount::Fraction(0.5)).unwrap();
    assert_eq!(l1, l2);
}

#[cfg(feature = "half")]
#[test]
fn wanda_half_failure_atomicity() {
    use half::bf16;
    let norms = ActivationNorms::new(vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let w = ArrayD::from_shape_vec(
        vec![2, 4],
        (0..8).map(|i| bf16::from_f64(pseudo(i))).collect(),
    )
    .unwrap();
    let mut l = Layer::new().with_parameter("weight", w).unwrap();
    prune::l1_unstructured(&mut l, "weight", Amount::Count(2), None).unwrap();
    let b = l.clone();
    assert!(wanda::prune(&mut l, "weight", &norms, Amount::Count(7)).is_err());
    assert_eq!(l, b);
    // Rows of 4 do not split into groups of 3.
    assert!(wanda::prune_nm(&mut l, "weight", &norms, 3, 3).is_err());
    assert_eq!(l, b);
    let mut l2 = b.clone();
    wanda::prune(&mut l2, "weight", &norms, Amount::Fraction(0.5)).unwrap();
    assert_eq!(l2.pruning_history("weight").unwrap().len(), 2);
    let mut l3 = b.clone();
    let r = wanda::prune_nm(&mut l3, "weight", &norms, 2, 4);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(l3.pruning_history("weight").unwrap().len(), 2);
}

// ---- schedules ----

#[test]
fn schedules_edges() {
    assert!(CubicSL::new(f64::NAN).is_err());
    assert!(CubicSL::new(1.5).is_err());
    assert!(CubicSL::new(0.5).unwrap().with_steps(0, 0, 10).is_err());
    assert!(CubicSL::new(0.5).unwrap().with_steps(0, 1, 0).is_err());
    let c = CubicSL::new(0.5)
        .unwrap()
        .with_steps(i64::MAX, 1, 1)
        .unwrap();
    let _ = catch_unwind(|| (c.sparsity(i64::MIN), c.sparsity(i64::MAX), c.end_step())).unwrap();
    let c = CubicSL::new(0.5)
        .unwrap()
        .with_steps(i64::MIN, 1, 1)
        .unwrap();
    let _ = catch_unwind(|| (c.sparsity(i64::MIN), c.sparsity(i64::MAX), c.end_step())).unwrap();
    assert!(PolynomialDecay::new(0.0, 0.5, 10, 5).is_err());
    assert!(PolynomialDecay::new(0.0, 0.5, 5, 5).is_err());
    assert!(PolynomialDecay::new(f64::NAN, 0.5, 0, 5).is_err());
    assert!(PolynomialDecay::new(0.0, 0.5, 0, 5)
        .unwrap()
        .with_frequency(0)
        .is_err());
    let p = PolynomialDecay::new(0.0, 0.5, 0, i64::MAX)
        .unwrap()
        .with_frequency(i64::MAX)
        .unwrap();
    let _ = catch_unwind(|| {
        (
            p.sparsity(i64::MIN),
            p.sparsity(i64::MAX),
            p.prunes_at(i64::MAX),
            p.prunes_at(i64::MIN),
        )
    })
    .unwrap();
    assert!(ConstantSparsity::new(-0.1).is_err());
    assert!(ConstantSparsity::new(f64::NAN).is_err());
}

#[derive(Debug)]
struct Weird(f64);
impl Schedule for Weird {
    fn sparsity(&self, _step: i64) -> f64 {
        self.0
    }
}

#[test]
fn gradual_pruner_edges_and_atomicity() {
    let mk = || {
        Sequential::new()
            .with_child("a", layer(arr(&[3, 4], pseudo)))
            .unwrap()
            .with_child("b", layer(arr(&[5], |i| pseudo(i + 3))))
            .unwrap()
    };
    for bad in [f64::NAN, -0.1, 1.1, f64::INFINITY] {
        for scope in [Scope::PerTensor, Scope::Global] {
            let g = GradualPruner::new(Weird(bad), ["a.weight", "b.weight"], scope).unwrap();
            let mut m = mk();
            let before = m.clone();
            assert!(g.step(&mut m, 0).is_err());
            assert_eq!(m.state_dict(), before.state_dict());
        }
    }
    // exact totals along a cubic schedule
    for scope in [Scope::PerTensor, Scope::Global] {
        let cubic = CubicSL::new(0.9).unwrap().with_steps(0, 1, 7).unwrap();
        let g = GradualPruner::new(cubic, ["a.weight", "b.weight"], scope).unwrap();
        let mut m = mk();
        for step in -2..12 {
            let r = g.step(&mut m, step).unwrap();
            let zeros: usize = ["a.weight_mask", "b.weight_mask"]
                .iter()
                .filter_map(|k| m.buffer(k))
                .map(|b| b.iter().filter(|&&x| x == 0.0).count())
                .sum();
            assert_eq!(zeros, r.after, "{scope:?} step {step}");
            if scope == Scope::Global {
                assert_eq!(r.after, r.target.max(r.before), "{scope:?} step {step}");
            }
        }
        // step after end and again
        let r = g.step(&mut m, 1000).unwrap();
        assert_eq!(r.after, r.before);
    }
    // scores: one target's scores are wrong shape -> nothing changes (PerTensor)
    let g = GradualPruner::new(
        ConstantSparsity::new(0.5).unwrap(),
        ["a.weight", "b.weight"],
        Scope::PerTensor,
    )
    .unwrap();
    let mut m = mk();
    let before = m.clone();
    let mut scores = HashMap::new();
    scores.insert("a.weight".to_string(), arr(&[3, 4], pseudo));
    scores.insert("b.weight".to_string(), arr(&[4], pseudo));
    assert!(g.step_with_scores(&mut m, 0, &scores).is_err());
    assert_eq!(m.state_dict(), before.state_dict());
    // a target whose module is missing comes last
    let g = GradualPruner::new(
        ConstantSparsity::new(0.5).unwrap(),
        ["a.weight", "zz.weight"],
        Scope::PerTensor,
    )
    .unwrap();
    assert!(g.step(&mut m, 0).is_err());
    assert_eq!(m.state_dict(), before.state_dict());
    // a target given twice in different spellings
    assert!(GradualPruner::new(
        ConstantSparsity::new(0.5).unwrap(),
        ["a.weight", "a.weight"],
        Scope::Global
    )
    .is_err());
    let g = GradualPruner::new(
        ConstantSparsity::new(0.5).unwrap(),
        ["a.weight", "a..weight"],
        Scope::Global,
    )
    .unwrap();
    assert!(g.step(&mut m, 0).is_err());
    assert_eq!(m.state_dict(), before.state_dict());
}

// ---- trainable ----

#[test]
fn update_trainable_on_the_orig_path_recomputes_the_pruned_tensor() {
    let mut l = layer(arr(&[4], |i| i as f64 + 1.0));
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    // `weight_orig` is a parameter: the trainable tensor behind that path.
    l.update_trainable("weight_orig", |mut w| w.fill(10.0))
        .unwrap();
    let orig = l.parameter("weight_orig").unwrap().clone();
    let mask = l.buffer("weight_mask").unwrap().clone();
    assert_eq!(
        l.tensor("weight").unwrap(),
        &(&orig * &mask),
        "after update_trainable, X must be X_orig * X_mask again"
    );
}

#[test]
fn update_trainable_recomputes_even_when_the_closure_panics() {
    let mut l = layer(arr(&[4], |i| i as f64 + 1.0));
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        l.update_trainable("weight", |mut w| {
            w[[3]] = 100.0;
            panic!("a training step fails half way");
        })
    }));
    assert!(r.is_err());
    let orig = l.parameter("weight_orig").unwrap().clone();
    let mask = l.buffer("weight_mask").unwrap().clone();
    assert_eq!(
        l.tensor("weight").unwrap(),
        &(&orig * &mask),
        "weight != weight_orig * weight_mask"
    );
}

#[test]
fn big_tensors_product_matches_naive() {
    for shape in [
        vec![3, 100_003],
        vec![100_003, 3],
        vec![5, 7, 30_011],
        vec![1 << 18],
    ] {
        let w = ArrayD::from_shape_vec(
            IxDyn(&shape),
            (0..shape.iter().product::<usize>())
                .map(|i| pseudo(i) as f32)
                .collect(),
        )
        .unwrap();
        let mut l = Layer::new().with_parameter("weight", w.clone()).unwrap();
        if shape.len() >= 2 {
            prune::ln_structured(
                &mut l,
                "weight",
                Amount::Fraction(0.4),
                Norm::L(1.0),
                Dim(-1),
                None,
            )
            .unwrap();
            let m = l.buffer("weight_mask").unwrap().clone();
            assert_eq!(
                l.tensor("weight").unwrap(),
                &(&w * &m),
                "{shape:?} channels"
            );
        }
        prune::l1_unstructured(&mut l, "weight", Amount::Fraction(0.3), None).unwrap();
        let m = l.buffer("weight_mask").unwrap().clone();
        assert_eq!(l.tensor("weight").unwrap(), &(&w * &m), "{shape:?} bits");
        let n = shape.iter().product::<usize>();
        let zeros = m.iter().filter(|&&x| x == 0.0).count();
        assert!(zeros >= (n as f64 * 0.3) as usize, "{shape:?}");
    }
}

#[test]
fn a_nan_amount_is_refused_on_every_shape() {
    let nan = Amount::Fraction(f64::NAN);
    for shape in [vec![2, 4], vec![0, 4], vec![4, 0], vec![0]] {
        let l = layer(arr(&shape, pseudo));
        let per_row = PerRowUnstructured::new(nan).unwrap();
        let mut a = l.clone();
        let r1 = prune::apply(&mut a, "weight", &per_row, None);
        let mut b = l.clone();
        let r2 = prune::l1_unstructured(&mut b, "weight", nan, None);
        assert!(r2.is_err(), "l1 {shape:?}");
        if shape.len() == 2 {
            assert!(
                r1.is_err(),
                "PerRowUnstructured with a NaN amount accepted on {shape:?}: {:?}",
                a.pruning_history("weight")
            );
            let norms = ActivationNorms::new(vec![1.0; shape[1]]).unwrap();
            let mut c = l.clone();
            assert!(
                wanda::prune(&mut c, "weight", &norms, nan).is_err(),
                "wanda NaN amount on {shape:?}"
            );
        }
    }
    assert!(BlockSparsity::new(f64::NAN, (1, 2)).is_err());
}

#[test]
fn layouts_of_scores_4d() {
    let shape = [4usize, 2, 3, 4];
    let w = arr(&shape, pseudo);
    let scores = arr(&shape, |i| pseudo(i * 5 + 2));
    let fs: Vec<(&str, Pruner)> = vec![
        (
            "l1",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::l1_unstructured(l, "weight", Amount::Count(17), s)
            }),
        ),
        (
            "ln0",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::ln_structured(l, "weight", Amount::Count(1), Norm::L(3.0), Dim(0), s)
            }),
        ),
        (
            "ln1",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::ln_structured(l, "weight", Amount::Count(1), Norm::Fro, Dim(1), s)
            }),
        ),
        (
            "ln2nuc",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::ln_structured(l, "weight", Amount::Count(1), Norm::NegInf, Dim(2), s)
            }),
        ),
        (
            "nm_last",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::nm_structured(l, "weight", 2, 4, Dim(-1), s)
            }),
        ),
        (
            "nm1",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::nm_structured(l, "weight", 1, 2, Dim(1), s)
            }),
        ),
        (
            "nm0",
            Box::new(|l: &mut Layer<f64>, s: Option<ArrayViewD<'_, f64>>| {
                prune::nm_structured(l, "weight", 1, 4, Dim(0), s)
            }),
        ),
    ];
    let mut lays: Vec<(&str, ArrayD<f64>)> = layouts(&scores);
    // a permuted storage order
    let p = scores
        .clone()
        .permuted_axes(IxDyn(&[2, 0, 3, 1]))
        .as_standard_layout()
        .into_owned();
    let back = p.permuted_axes(IxDyn(&[1, 3, 0, 2]));
    assert_eq!(back, scores);
    lays.push(("permuted", back));
    for (a, f1) in &fs {
        for (b, f2) in &fs {
            let mut r = layer(w.clone());
            let r1 = f1(&mut r, Some(scores.view())).is_ok();
            let r2 = r1 && f2(&mut r, Some(scores.view())).is_ok();
            for (name, lay) in &lays {
                let mut l = layer(w.clone());
                let o1 = f1(&mut l, Some(lay.view())).is_ok();
                let o2 = o1 && f2(&mut l, Some(lay.view())).is_ok();
                assert_eq!((o1, o2), (r1, r2), "{a}+{b} {name}");
                assert_eq!(l, r, "{a}+{b} {name}");
            }
        }
    }
}

/// Buffers list in PyTorch's order (`_buffers` is insertion-ordered): a
/// mask is registered when its tensor is first pruned, after the buffers
/// there were then; `remove` deletes it, and pruning again registers it
/// anew at the end.
#[test]
fn buffers_list_in_the_order_pytorch_registers_them() {
    let mut l = layer(arr(&[4], |i| i as f64 + 1.0));
    l.store_mut()
        .add_parameter("bias", arr(&[4], |i| i as f64 - 1.5))
        .unwrap();
    l.store_mut().add_buffer("a", arr(&[1], |_| 0.0)).unwrap();
    let keys =
        |l: &Layer<f64>| -> Vec<String> { l.named_buffers().into_iter().map(|(k, _)| k).collect() };
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    l.store_mut().add_buffer("b", arr(&[1], |_| 0.0)).unwrap();
    assert_eq!(keys(&l), ["a", "weight_mask", "b"]);
    prune::l1_unstructured(&mut l, "bias", Amount::Count(1), None).unwrap();
    // A second pruning keeps the mask where it is.
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    assert_eq!(keys(&l), ["a", "weight_mask", "b", "bias_mask"]);
    prune::remove(&mut l, "weight").unwrap();
    assert_eq!(keys(&l), ["a", "b", "bias_mask"]);
    prune::l1_unstructured(&mut l, "weight", Amount::Count(1), None).unwrap();
    assert_eq!(keys(&l), ["a", "b", "bias_mask", "weight_mask"]);
    let state: Vec<String> = l.state_dict().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        state,
        [
            "bias_orig",
            "weight_orig",
            "a",
            "b",
            "bias_mask",
            "weight_mask"
        ]
    );
}
