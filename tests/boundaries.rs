//! The public API at its boundaries: what a real user hands in.
//!
//! - **Layouts**: every entry point that takes an array gives the same
//!   result for standard, Fortran-order, transposed, negatively strided and
//!   sliced (non-contiguous) arrays holding the same values.
//! - **User methods**: whatever a `PruningMethod` returns (a mask of the
//!   wrong shape, values other than 0 and 1, a mask in another layout, an
//!   error, a panic) is either exactly right or refused, and a refused or
//!   panicking call changes nothing.
//! - **Paths**: one tensor has one spelling; `a..weight`, a leading or
//!   trailing dot, an empty path are errors, and a tensor named twice in
//!   one global pruning is refused.
//! - **Errors** name the tensor they are about, never a blank name.
//! - **Sizes**: a tensor with no entries costs nothing per channel, however
//!   many channels its shape claims.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[allow(dead_code)]
#[path = "support/program.rs"]
mod program;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, ShapeBuilder};
use ndprune::prelude::*;
use ndprune::PruningKind;
use program::{in_layout, quiet_deliberate_panics, Layout, LAYOUTS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(LAYOUTS.to_vec())
}

/// A 2- or 3-dim tensor of sides 2 to 5 with many equal magnitudes.
fn tensor() -> impl Strategy<Value = ArrayD<f32>> {
    vec(2usize..=5, 2..=3).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        vec(
            prop_oneof![
                3 => (-4i32..=4).prop_map(|v| v as f32),
                2 => -3.0f32..3.0,
            ],
            n,
        )
        .prop_map(move |data| ArrayD::from_shape_vec(shape.clone(), data).unwrap())
    })
}

/// A 0/1 mask of `shape` with a few zeros, from `seed`.
fn mask_of(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut i = seed;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if (i >> 60) < 3 {
            0.0
        } else {
            1.0
        }
    })
}

/// Everything a model holds, by path: parameters, buffers, pruned tensors,
/// and whether each tensor is pruned.
type State = (
    Vec<(String, ArrayD<f32>)>,
    Vec<(String, ArrayD<f32>)>,
    Vec<(String, ArrayD<f32>)>,
);

fn state<M: Module<f32>>(m: &M) -> State {
    let own = |v: Vec<(String, &ArrayD<f32>)>| {
        v.into_iter()
            .map(|(n, t)| (n, t.clone()))
            .collect::<Vec<_>>()
    };
    (
        own(m.named_parameters()),
        own(m.named_buffers()),
        own(m.named_pruned()),
    )
}

/// Equal values (NaN equal to NaN), the same names in the same order.
fn same_state(a: &State, b: &State) -> bool {
    let same = |x: &[(String, ArrayD<f32>)], y: &[(String, ArrayD<f32>)]| {
        x.len() == y.len()
            && x.iter().zip(y).all(|((n, s), (m, t))| {
                n == m
                    && s.shape() == t.shape()
                    && s.iter()
                        .zip(t.iter())
                        .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
            })
    };
    same(&a.0, &b.0) && same(&a.1, &b.1) && same(&a.2, &b.2)
}

/// A user's method that forwards to a built-in and hands back its mask in
/// another layout (PyTorch's `test_pruning_container_compute_mask`, run
/// through a user's method).
#[derive(Debug)]
struct Relaid {
    inner: LnStructured,
    layout: Layout,
}

impl PruningMethod<f32> for Relaid {
    fn kind(&self) -> PruningKind {
        PruningMethod::<f32>::kind(&self.inner)
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, f32>,
        default_mask: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        let mask = self.inner.compute_mask(t, default_mask)?;
        Ok(in_layout(&mask, self.layout))
    }
}

/// Runs `program` on a model built from `weight` in `layout`, and on one
/// built from the standard array; both must end in the same state (or both
/// fail at the same step).
fn same_in_every_layout(
    weight: &ArrayD<f32>,
    layout: Layout,
    program: impl Fn(&mut Sequential<f32>, Layout) -> Result<(), PruneError>,
) -> Result<(), TestCaseError> {
    let build = |l: Layout| {
        Sequential::new()
            .with_child(
                "m",
                Layer::new()
                    .with_parameter("weight", in_layout(weight, l))
                    .unwrap(),
            )
            .unwrap()
    };
    let mut want = build(Layout::Standard);
    let want_result = program(&mut want, Layout::Standard);
    let mut got = build(layout);
    let got_result = program(&mut got, layout);
    prop_assert_eq!(got_result, want_result);
    prop_assert!(same_state(&state(&got), &state(&want)));
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn parameters_in_any_layout_prune_alike(w in tensor(), l in layout()) {
        same_in_every_layout(&w, l, |m, _| {
            prune::l1_unstructured(m, "m.weight", Amount::Fraction(0.3), None)?;
            prune::ln_structured(m, "m.weight", Amount::Count(1), Norm::L(2.0), Dim(1), None)?;
            prune::l1_unstructured(m, "m.weight", Amount::Fraction(0.5), None)
        })?;
    }

    #[test]
    fn importance_scores_in_any_layout_prune_alike(
        (w, s) in tensor().prop_flat_map(|w| {
            let n = w.len();
            let shape = w.shape().to_vec();
            (Just(w), vec(-3.0f32..3.0, n).prop_map(move |d| ArrayD::from_shape_vec(shape.clone(), d).unwrap()))
        }),
        l in layout(),
    ) {
        same_in_every_layout(&w, l, |m, l| {
            let scores = in_layout(&s, l);
            prune::l1_unstructured(m, "m.weight", Amount::Fraction(0.4), Some(scores.view()))?;
            prune::ln_structured(m, "m.weight", Amount::Count(1), Norm::L(1.0), Dim(-1), Some(scores.view()))
        })?;
    }

    #[test]
    fn masks_in_any_layout_prune_alike(w in tensor(), seed in any::<u64>(), l in layout()) {
        // A custom mask, then a structured pruning along dim 1 of what is left.
        let mask = mask_of(w.shape(), seed);
        same_in_every_layout(&w, l, |m, l| {
            prune::custom_from_mask(m, "m.weight", in_layout(&mask, l).view())?;
            prune::ln_structured(m, "m.weight", Amount::Count(1), Norm::Inf, Dim(1), None)?;
            prune::l1_unstructured(m, "m.weight", Amount::Count(1), None)
        })?;
    }

    #[test]
    fn user_methods_returning_any_layout_prune_alike(w in tensor(), l in layout()) {
        let inner = LnStructured::new(Amount::Count(1), Norm::L(1.0), Dim(1)).unwrap();
        same_in_every_layout(&w, Layout::Standard, |m, _| {
            let method = Relaid { inner, layout: l };
            prune::apply(m, "m.weight", &method, None)?;
            prune::apply(m, "m.weight", &method, None)
        })?;
        // And the same as the built-in itself.
        let mut user = Layer::new().with_parameter("weight", w.clone()).unwrap();
        let mut builtin = Layer::new().with_parameter("weight", w.clone()).unwrap();
        for _ in 0..2 {
            let a = prune::apply(&mut user, "weight", &Relaid { inner, layout: l }, None);
            let b = prune::apply(&mut builtin, "weight", &inner, None);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(user.buffer("weight_mask"), builtin.buffer("weight_mask"));
    }

    #[test]
    fn restored_pruning_in_any_layout_prunes_alike(w in tensor(), seed in any::<u64>(), l in layout()) {
        let mask = mask_of(w.shape(), seed);
        let run = |l: Layout| {
            let mut store = TensorStore::new();
            store.restore_pruned("weight", in_layout(&w, l), in_layout(&mask, l)).unwrap();
            let mut layer = Sequential::new();
            *layer.store_mut() = store;
            let r = prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None);
            (r, state(&layer))
        };
        let (a, sa) = run(Layout::Standard);
        let (b, sb) = run(l);
        prop_assert_eq!(a, b);
        prop_assert!(same_state(&sa, &sb));
    }

    #[test]
    fn global_scores_in_any_layout_prune_alike(w in tensor(), s in tensor(), l in layout()) {
        let run = |l: Layout| {
            let mut m = Sequential::new()
                .with_child("a", Layer::new().with_parameter("weight", in_layout(&w, l)).unwrap())
                .unwrap()
                .with_child("b", Layer::new().with_parameter("weight", in_layout(&s, l)).unwrap())
                .unwrap();
            let scores = HashMap::from([("b.weight".to_string(), in_layout(&s.mapv(f32::abs), l))]);
            let method = L1Unstructured::new(Amount::Fraction(0.5)).unwrap();
            let r = prune::global_unstructured(&mut m, &["a.weight", "b.weight"], &method, Some(&scores));
            (r, state(&m))
        };
        let (a, sa) = run(Layout::Standard);
        let (b, sb) = run(l);
        prop_assert_eq!(a, b);
        prop_assert!(same_state(&sa, &sb));
    }

    #[test]
    fn norms_and_compute_mask_take_any_layout(w in tensor(), seed in any::<u64>(), l in layout()) {
        let x = in_layout(&w, l);
        for dim in [0, 1, -1] {
            prop_assert_eq!(
                Norm::L(2.0).channel_norms(x.view(), Dim(dim)),
                Norm::L(2.0).channel_norms(w.view(), Dim(dim))
            );
        }
        let mask = mask_of(w.shape(), seed);
        let lx = in_layout(&mask, l);
        let l1 = L1Unstructured::new(Amount::Count(2)).unwrap();
        prop_assert_eq!(l1.compute_mask(x.view(), lx.view()), l1.compute_mask(w.view(), mask.view()));
        let ln = LnStructured::new(Amount::Count(1), Norm::L(1.0), Dim(0)).unwrap();
        prop_assert_eq!(ln.compute_mask(x.view(), lx.view()), ln.compute_mask(w.view(), mask.view()));
        let custom = CustomFromMask::new(lx.view());
        prop_assert_eq!(custom.compute_mask(x.view(), x.mapv(|_| 1.0).view()), Ok(mask.clone()));
    }
}

#[test]
fn a_fortran_order_mask_is_not_seen_as_empty() {
    // The defect: a non-standard-layout mask or score made pruning see no
    // entries at all, and return Ok having pruned nothing.
    let w = ArrayD::from_shape_vec(vec![3, 4], (1..=12).map(|v| v as f32).collect()).unwrap();
    let mut keep = ArrayD::<f32>::ones(IxDyn(&[3, 4]).f());
    keep[[0, 0]] = 0.0;
    let mut layer = Layer::new().with_parameter("weight", w).unwrap();
    prune::custom_from_mask(&mut layer, "weight", keep.view()).unwrap();
    prune::l1_unstructured(&mut layer, "weight", Amount::Count(2), None).unwrap();
    let mask = layer.buffer("weight_mask").unwrap();
    assert_eq!(mask.sum(), 9.0);
    assert_eq!(&mask.as_slice().unwrap()[..3], &[0.0, 0.0, 0.0]);
}

// ---------------------------------------------------------------------------
// User methods: the contract cannot be broken from outside
// ---------------------------------------------------------------------------

/// What a misbehaving method does.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Returns the right mask (a built-in's), in a layout.
    Good(Layout),
    /// Returns a mask with one more entry along dim 0.
    WrongShape,
    /// Returns the right mask with one entry set to this value.
    Value(f32),
    /// Fails with its own error.
    Fail,
    /// Panics.
    Panic,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        2 => layout().prop_map(Act::Good),
        1 => Just(Act::WrongShape),
        1 => prop::sample::select(vec![0.5f32, 2.0, -1.0, f32::NAN, f32::INFINITY]).prop_map(Act::Value),
        1 => Just(Act::Fail),
        1 => Just(Act::Panic),
    ]
}

/// A user's method of either kind that does what `act` says.
#[derive(Debug)]
struct User {
    structured: bool,
    act: Act,
}

impl User {
    fn builtin_mask(
        &self,
        t: ArrayViewD<'_, f32>,
        default_mask: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        if self.structured {
            LnStructured::new(Amount::Count(1), Norm::L(2.0), Dim(0))?.compute_mask(t, default_mask)
        } else {
            L1Unstructured::new(Amount::Count(1))?.compute_mask(t, default_mask)
        }
    }
}

impl PruningMethod<f32> for User {
    fn kind(&self) -> PruningKind {
        if self.structured {
            PruningKind::Structured { dim: Dim(0) }
        } else {
            PruningKind::Unstructured
        }
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, f32>,
        default_mask: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        let mask = self.builtin_mask(t, default_mask)?;
        match self.act {
            Act::Good(l) => Ok(in_layout(&mask, l)),
            Act::WrongShape => {
                let mut shape = mask.shape().to_vec();
                shape[0] += 1;
                Ok(ArrayD::ones(shape))
            }
            Act::Value(v) => {
                let mut mask = mask;
                if let Some(first) = mask.iter_mut().next() {
                    *first = v;
                }
                Ok(mask)
            }
            Act::Fail => Err(PruneError::method_failed("User", "no calibration data")),
            Act::Panic => panic!("deliberate panic in a user's method"),
        }
    }
}

/// The model of the contract tests: a 2-dim weight and a 3-dim one.
fn contract_model(w: &ArrayD<f32>) -> Sequential<f32> {
    let w3 = w.clone().insert_axis(Axis(2));
    Sequential::new()
        .with_child(
            "a",
            Layer::new().with_parameter("weight", w.clone()).unwrap(),
        )
        .unwrap()
        .with_child("b", Layer::new().with_parameter("weight", w3).unwrap())
        .unwrap()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn user_methods_are_right_or_refused_and_refusal_changes_nothing(
        w in tensor(),
        structured in any::<bool>(),
        acts in vec(act(), 1..4),
        already_pruned in any::<bool>(),
        global in any::<bool>(),
    ) {
        check_user_methods(&w, structured, acts, already_pruned, global)?;
    }
}

/// A misbehaving method called when the built-in it asks first has nothing
/// left to prune passes the built-in's error on (found by CI: this test
/// used to expect the misbehaviour's own error).
#[test]
fn a_misbehaving_method_with_nothing_left_passes_the_builtins_error_on() {
    let w = ArrayD::zeros(vec![2, 2]);
    for global in [false, true] {
        for bad in [Act::WrongShape, Act::Value(0.5), Act::Fail, Act::Panic] {
            let acts = vec![
                Act::Good(Layout::Standard),
                Act::Good(Layout::Standard),
                bad,
            ];
            check_user_methods(&w, true, acts, false, global).unwrap();
        }
    }
}

/// Runs `acts` as user methods on the contract model: a good act prunes as
/// the built-in does, a bad one is refused and changes nothing.
fn check_user_methods(
    w: &ArrayD<f32>,
    structured: bool,
    acts: Vec<Act>,
    already_pruned: bool,
    global: bool,
) -> Result<(), TestCaseError> {
    quiet_deliberate_panics();
    let start = || {
        let mut m = contract_model(w);
        if already_pruned {
            prune::l1_unstructured(&mut m, "a.weight", Amount::Count(1), None).unwrap();
        }
        m
    };
    let run = |m: &mut Sequential<f32>, method: &User| {
        if global {
            prune::global_unstructured(m, &["a.weight", "b.weight"], method, None)
        } else {
            prune::apply(m, "a.weight", method, None)
        }
    };
    let good = User {
        structured,
        act: Act::Good(Layout::Standard),
    };
    let mut model = start();
    let mut reference = start();
    // How many good calls the model has taken: a fresh model replays
    // them to learn what the built-in mask itself says at this step.
    let mut goods = 0;
    for act in acts {
        let method = User { structured, act };
        let before = state(&model);
        // The user's method asks the built-in for its mask first, so
        // when the built-in fails (nothing left to prune) every act
        // passes that error on instead of misbehaving.
        let builtin_error = {
            let mut scratch = start();
            for _ in 0..goods {
                let _ = run(&mut scratch, &good);
            }
            run(&mut scratch, &good).err()
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&mut model, &method)));
        match (act, outcome) {
            (Act::Good(_), Ok(result)) => {
                // The same as the built-in method through the same call.
                goods += 1;
                let want = run(&mut reference, &good);
                // (Errors alike but for the method's description.)
                prop_assert_eq!(
                    result.map_err(|e| e.torch_kind()),
                    want.map_err(|e| e.torch_kind())
                );
                prop_assert!(same_state(&state(&model), &state(&reference)));
            }
            (Act::Good(_), Err(_)) => prop_assert!(false, "a good method panicked"),
            (bad, Ok(Ok(()))) => prop_assert!(false, "{:?} was accepted", bad),
            (bad, Ok(Err(e))) => {
                let expected = match bad {
                    Act::WrongShape => matches!(e.kind(), PruneErrorKind::MethodContract { .. }),
                    Act::Value(_) => matches!(e.kind(), PruneErrorKind::InvalidMask { .. }),
                    Act::Fail => matches!(e.kind(), PruneErrorKind::MethodFailed { .. }),
                    _ => false,
                } || builtin_error.as_ref().map(|b| (b.kind(), b.tensor()))
                    == Some((e.kind(), e.tensor()));
                // A global call may refuse the method's kind first.
                let wrong_kind =
                    global && matches!(e.kind(), PruneErrorKind::WrongMethodKind { .. });
                prop_assert!(expected || wrong_kind, "{:?} gave {}", bad, e);
                // A global call's joint selection is about no one tensor.
                prop_assert!(e.tensor().is_some() || global, "{} names no tensor", e);
                prop_assert!(
                    same_state(&state(&model), &before),
                    "{:?} changed the model",
                    bad
                );
            }
            (bad, Err(_)) => {
                prop_assert!(matches!(bad, Act::Panic), "{:?} panicked", bad);
                prop_assert!(
                    builtin_error.is_none(),
                    "the method panicked past the built-in's error"
                );
                prop_assert!(
                    same_state(&state(&model), &before),
                    "a panic changed the model"
                );
            }
        }
    }
    // The model is still whole: each pruned tensor is orig * mask.
    for (path, t) in model.named_pruned() {
        let orig = model.parameter(&format!("{path}_orig")).unwrap();
        let mask = model.buffer(&format!("{path}_mask")).unwrap();
        prop_assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
        let product = orig * mask;
        prop_assert!(t
            .iter()
            .zip(product.iter())
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

fn two_layer() -> Sequential<f32> {
    let w = ArrayD::from_shape_vec(vec![2, 3], vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]).unwrap();
    Sequential::new()
        .with_child(
            "a",
            Layer::new().with_parameter("weight", w.clone()).unwrap(),
        )
        .unwrap()
        .with_child("b", Layer::new().with_parameter("weight", w).unwrap())
        .unwrap()
}

#[test]
fn every_spelling_of_a_path_but_one_is_refused() {
    let l1 = L1Unstructured::new(Amount::Fraction(0.5)).unwrap();
    for bad in [
        "a..weight",
        ".a.weight",
        "a.weight.",
        "",
        ".",
        "a..",
        "..weight",
    ] {
        let mut m = two_layer();
        let before = state(&m);
        let err = prune::l1_unstructured(&mut m, bad, Amount::Count(1), None).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::InvalidPath { .. }),
            "{bad:?}: {err}"
        );
        assert!(prune::remove(&mut m, bad).is_err());
        assert!(prune::identity(&mut m, bad).is_err());
        // Global pruning: today ["a.weight", "a..weight"] pruned the same
        // tensor twice at half the amount.
        let err = prune::global_unstructured(&mut m, &["a.weight", bad], &l1, None).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::InvalidPath { .. }),
            "{bad:?}: {err}"
        );
        assert!(same_state(&state(&m), &before), "{bad:?} changed the model");
    }
}

#[test]
fn global_pruning_refuses_a_tensor_named_twice_and_changes_nothing() {
    let l1 = L1Unstructured::new(Amount::Fraction(0.5)).unwrap();
    for targets in [
        vec!["a.weight", "a.weight"],
        vec!["a.weight", "b.weight", "a.weight"],
    ] {
        let mut m = two_layer();
        // Once pruned too: the duplicate of a pruned tensor must not leave
        // a placeholder mask behind.
        prune::l1_unstructured(&mut m, "a.weight", Amount::Count(1), None).unwrap();
        let before = state(&m);
        let err = prune::global_unstructured(&mut m, &targets, &l1, None).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::DuplicateTarget { .. }),
            "{err}"
        );
        assert_eq!(err.tensor(), Some("a.weight"));
        assert!(same_state(&state(&m), &before));
        assert_eq!(m.buffer("a.weight_mask").unwrap().shape(), &[2, 3]);
    }
}

#[test]
fn child_and_tensor_names_a_path_cannot_address_are_refused() {
    for bad in ["", "a.b"] {
        let err = Sequential::<f32>::new()
            .with_child(bad, Layer::new())
            .unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::InvalidChildName { .. }),
            "{err}"
        );
        assert!(Layer::<f32>::new()
            .with_parameter(bad, ArrayD::zeros(vec![1]))
            .is_err());
        assert!(TensorStore::<f32>::new()
            .add_buffer(bad, ArrayD::zeros(vec![1]))
            .is_err());
    }
    // A name taken is an error, not a silent keep-the-old-one.
    let layer = Layer::<f32>::new()
        .with_buffer("running_mean", ArrayD::zeros(vec![2]))
        .unwrap();
    assert!(layer
        .with_parameter("running_mean", ArrayD::ones(vec![2]))
        .is_err());
    let s = Sequential::<f32>::new()
        .with_child("0", Layer::new())
        .unwrap();
    assert!(s.with_child("0", Layer::new()).is_err());
    // `push` never replaces a child added by name.
    let s = Sequential::<f32>::new()
        .with_child(
            "1",
            Layer::new()
                .with_buffer("x", ArrayD::zeros(vec![1]))
                .unwrap(),
        )
        .unwrap()
        .push(Layer::new())
        .push(Layer::new());
    let names: Vec<&str> = s.children().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["1", "2", "3"]);
    assert!(s.buffer("1.x").is_some());
}

#[test]
fn a_pruned_original_keeps_its_shape() {
    // `parameter_mut` hands out a view: its shape cannot change, so the
    // original, the mask and the product keep one shape.
    let mut m = two_layer();
    prune::l1_unstructured(&mut m, "a.weight", Amount::Count(2), None).unwrap();
    let mut orig = m.parameter_mut("a.weight_orig").unwrap();
    orig.fill(7.0);
    assert_eq!(orig.shape(), &[2, 3]);
    m.recompute_pruned();
    assert_eq!(m.tensor("a.weight").unwrap().sum(), 7.0 * 4.0);
}

// ---------------------------------------------------------------------------
// Errors name what they are about
// ---------------------------------------------------------------------------

/// A pruning call on the two-layer model.
type Call = Box<dyn Fn(&mut Sequential<f32>) -> Result<(), PruneError>>;

#[test]
fn errors_of_pruning_calls_name_their_tensor() {
    let l1 = L1Unstructured::new(Amount::Count(100)).unwrap();
    let calls: Vec<(&str, Call)> = vec![
        (
            "a.weight",
            Box::new(|m| prune::l1_unstructured(m, "a.weight", Amount::Count(7), None)),
        ),
        (
            "a.weight",
            Box::new(|m| {
                prune::ln_structured(m, "a.weight", Amount::Count(1), Norm::L(2.0), Dim(3), None)
            }),
        ),
        (
            "a.weight",
            Box::new(|m| {
                let s = ArrayD::zeros(vec![3, 2]);
                prune::l1_unstructured(m, "a.weight", Amount::Count(1), Some(s.view()))
            }),
        ),
        (
            "a.weight",
            Box::new(|m| {
                prune::ln_structured(m, "a.weight", Amount::Count(1), Norm::Nuc, Dim(0), None)
            }),
        ),
        ("a.weight", Box::new(|m| prune::remove(m, "a.weight"))),
        ("a.nothing", Box::new(|m| prune::identity(m, "a.nothing"))),
        ("c.weight", Box::new(|m| prune::identity(m, "c.weight"))),
        (
            "a.weight",
            Box::new(move |m| {
                prune::global_unstructured(m, &["a.weight", "b.weight"], &l1, None)
                    .map_err(|e| PruneError::new("a.weight", e.kind().clone()))
            }),
        ),
    ];
    for (tensor, call) in calls {
        let mut m = two_layer();
        let err = call(&mut m).unwrap_err();
        assert_eq!(err.tensor(), Some(tensor), "{err}");
        let text = err.to_string();
        assert!(!text.contains("``"), "blank name in {text:?}");
        assert!(text.contains(tensor), "{text:?} does not name {tensor}");
    }
}

// ---------------------------------------------------------------------------
// Sizes a shape claims
// ---------------------------------------------------------------------------

#[test]
fn a_tensor_of_no_entries_costs_nothing_per_channel() {
    // 2^40 channels of nothing: a crafted checkpoint's 82 bytes. Pruning
    // must neither allocate per channel nor abort.
    let huge = 1usize << 40;
    for shape in [vec![0, huge], vec![huge, 0], vec![huge, 0, 3]] {
        let w = ArrayD::<f32>::zeros(shape.clone());
        for dim in [0isize, 1, -1] {
            let mut layer = Layer::new().with_parameter("weight", w.clone()).unwrap();
            prune::ln_structured(
                &mut layer,
                "weight",
                Amount::Fraction(0.5),
                Norm::L(2.0),
                Dim(dim),
                None,
            )
            .unwrap();
            prune::ln_structured(
                &mut layer,
                "weight",
                Amount::Fraction(0.5),
                Norm::L(1.0),
                Dim(dim),
                None,
            )
            .unwrap();
            prune::random_structured(
                &mut layer,
                "weight",
                Amount::Fraction(0.5),
                Dim(dim),
                &mut rand::rng(),
            )
            .unwrap();
            prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(0.5), None).unwrap();
            assert_eq!(
                layer.buffer("weight_mask").unwrap().shape(),
                shape.as_slice()
            );
            // PyTorch's errors stay: no value of the max over nothing.
            let mut fresh = Layer::new().with_parameter("weight", w.clone()).unwrap();
            let d = if dim < 0 {
                shape.len() - 1
            } else {
                dim as usize
            };
            let reduced_empty = shape.iter().enumerate().any(|(i, &s)| i != d && s == 0);
            let r = prune::ln_structured(
                &mut fresh,
                "weight",
                Amount::Count(0),
                Norm::Inf,
                Dim(dim),
                None,
            );
            assert_eq!(r.is_err(), reduced_empty, "{shape:?} dim {dim}");
        }
        // The norms themselves: too many to hold is an error, not an abort.
        let err = Norm::L(2.0).channel_norms(w.view(), Dim(if shape[0] == 0 { 1 } else { 0 }));
        assert!(matches!(
            err.unwrap_err().kind(),
            PruneErrorKind::TooLarge { .. }
        ));
    }
}

#[test]
fn built_in_compute_mask_refuses_shapes_that_disagree() {
    let t = ArrayD::<f32>::ones(vec![3, 2]);
    let m = ArrayD::<f32>::ones(vec![2, 3]);
    let methods: Vec<Box<dyn PruningMethod<f32>>> = vec![
        Box::new(Identity),
        Box::new(L1Unstructured::new(Amount::Count(1)).unwrap()),
        Box::new(LnStructured::new(Amount::Count(1), Norm::L(1.0), Dim(0)).unwrap()),
        Box::new(RandomUnstructured::new(Amount::Count(1), 3).unwrap()),
        Box::new(RandomStructured::new(Amount::Count(1), Dim(0), 3).unwrap()),
        Box::new(CustomFromMask::new(t.view())),
    ];
    for method in methods {
        let err = method.compute_mask(t.view(), m.view()).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::ShapeMismatch { .. }),
            "{method:?}: {err}"
        );
    }
}

/// A user's method that only forwards to a built-in one.
#[derive(Debug)]
struct Forward<M>(M);

impl<M: PruningMethod<f32>> PruningMethod<f32> for Forward<M> {
    fn kind(&self) -> PruningKind {
        self.0.kind()
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, f32>,
        default_mask: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        self.0.compute_mask(t, default_mask)
    }
}

#[test]
fn pytorchs_container_test_passes_through_a_users_method() {
    // PyTorch's test_pruning_container_compute_mask (masks printed by
    // PyTorch 2.15): each method combined with the same existing mask.
    // Forwarded through a user's method, the structured step along dim 1
    // used to prune nothing (the container's slice along dim 1 is not
    // row-major, and the built-in's kernel saw it as empty).
    let t = ndarray::array![[1.0f32, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]].into_dyn();
    let default_mask = ndarray::array![[1.0f32, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]].into_dyn();
    let cases: Vec<(Box<dyn PruningMethod<f32>>, [f32; 8])> = vec![
        (
            Box::new(Forward(L1Unstructured::new(Amount::Count(2)).unwrap())),
            [0., 0., 1., 0., 1., 1., 0., 1.],
        ),
        (
            Box::new(Forward(
                LnStructured::new(Amount::Count(1), Norm::L(2.0), Dim(0)).unwrap(),
            )),
            [0., 0., 0., 0., 1., 1., 0., 1.],
        ),
        (
            Box::new(Forward(
                LnStructured::new(Amount::Count(1), Norm::L(2.0), Dim(1)).unwrap(),
            )),
            [0., 1., 1., 0., 0., 1., 0., 1.],
        ),
    ];
    for (method, want) in cases {
        let mut layer = Layer::new().with_parameter("test", t.clone()).unwrap();
        prune::custom_from_mask(&mut layer, "test", default_mask.view()).unwrap();
        prune::apply(&mut layer, "test", method.as_ref(), Some(t.view())).unwrap();
        let got: Vec<f32> = layer.buffer("test_mask").unwrap().iter().copied().collect();
        assert_eq!(got, want, "{method:?}");
    }
}

/// A right method whose `describe` panics.
#[derive(Debug)]
struct PanickyDescription;

impl PruningMethod<f32> for PanickyDescription {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, f32>,
        default_mask: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        L1Unstructured::new(Amount::Count(1))?.compute_mask(t, default_mask)
    }

    fn describe(&self) -> String {
        panic!("deliberate panic in describe")
    }
}

#[test]
fn a_panic_anywhere_in_a_users_method_changes_nothing() {
    quiet_deliberate_panics();
    let mut m = two_layer();
    for already in [false, true] {
        if already {
            prune::l1_unstructured(&mut m, "a.weight", Amount::Count(1), None).unwrap();
        }
        let before = state(&m);
        let r = catch_unwind(AssertUnwindSafe(|| {
            prune::apply(&mut m, "a.weight", &PanickyDescription, None)
        }));
        assert!(r.is_err());
        assert!(same_state(&state(&m), &before));
    }
}

#[test]
fn a_random_structured_pruning_of_nothing_still_draws_as_pytorch_does() {
    // A pruned 1-dim tensor with nothing left is seen as a [0, n] view:
    // PyTorch draws torch.rand(n) for it all the same, and the next random
    // call depends on it. The same calls on two streams, one of which also
    // prunes the empty view, end apart.
    let run = |with_empty: bool| {
        let gen = TorchGenerator::manual_seed(5);
        let mut m = Layer::<f32>::new()
            .with_parameter("bias", ArrayD::ones(vec![3]))
            .unwrap()
            .with_parameter("weight", ArrayD::ones(vec![16]))
            .unwrap();
        if with_empty {
            prune::custom_from_mask(&mut m, "bias", ArrayD::zeros(vec![3]).view()).unwrap();
            let rs =
                RandomStructured::with_torch_generator(Amount::Count(1), Dim(-1), &gen).unwrap();
            prune::apply(&mut m, "bias", &rs, None).unwrap();
        } else {
            gen.rand::<f32>(3);
        }
        let ru = RandomUnstructured::with_torch_generator(Amount::Count(5), &gen).unwrap();
        prune::apply(&mut m, "weight", &ru, None).unwrap();
        m.buffer("weight_mask").unwrap().clone()
    };
    assert_eq!(run(true), run(false));
}
