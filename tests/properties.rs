//! Property tests of the public pruning API.
//!
//! Random models (two layers with weights of 1 to 4 dims, each dim 1 to 6,
//! holding duplicates, zeros of both signs and now and then NaN and
//! infinities) go through random sequences of 1 to 5 calls that mix every
//! pruning function with valid and invalid amounts, norms, dims, masks,
//! importance scores and paths. Each call is recorded with a snapshot of the
//! whole model before and after it, and each property below walks those
//! records:
//!
//! 1. masks hold only 0 and 1;
//! 2. a call prunes exactly the amount asked for, measured on what is left
//!    (and valid calls succeed, invalid ones fail);
//! 3. what is pruned stays pruned;
//! 4. `w == w_orig * w_mask`, and `w_orig` holds the original values;
//! 5. a first structured pruning prunes whole channels;
//! 6. a failing call changes nothing;
//! 7. the seeded random methods are reproducible;
//! 8. magnitude and norm pruning prune the smallest entries / channels.

use std::cmp::Ordering;
use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn, Zip};
use ndprune::prelude::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The exception classes [`PruneError::torch_kind`] may name.
const TORCH_KINDS: [&str; 6] = [
    "ValueError",
    "IndexError",
    "AssertionError",
    "AttributeError",
    "RuntimeError",
    "TypeError",
];

/// The prunable tensors of the test model: two weights and a 1-D bias.
const TENSORS: [&str; 3] = ["a.weight", "b.weight", "b.bias"];

/// The targets of global pruning.
const GLOBAL: [&str; 2] = ["a.weight", "b.weight"];

/// The targets of a global pruning call that names one tensor twice.
const GLOBAL_DUPLICATE: [&str; 2] = ["a.weight", "a.weight"];

/// A proptest configuration of `cases` cases that writes no regression
/// files (other people work in this repository at the same time).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A tensor shape of 1 to 4 dims, each of size 1 to 6.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..=6, 1..=4)
}

/// An ordinary entry: mostly small integers (so many duplicates and zeros),
/// some negative zeros, and arbitrary finite values.
fn plain_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (-3i32..=3).prop_map(f64::from),
        1 => Just(-0.0),
        4 => -10.0f64..10.0,
    ]
}

/// A special entry: NaN or an infinity.
fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
}

/// A tensor of `shape` of plain entries, in one case out of five with one or
/// two special (NaN or infinite) entries.
fn tensor_of(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    let specials = prop_oneof![
        4 => Just(Vec::new()),
        1 => vec((0..n, special_value()), 1..=2),
    ];
    (vec(plain_value(), n), specials).prop_map(move |(mut values, specials)| {
        for (i, x) in specials {
            values[i] = x;
        }
        ArrayD::from_shape_vec(IxDyn(&shape), values).expect("n entries for the shape")
    })
}

/// A tensor of random shape (see [`shape`]) and entries (see [`tensor_of`]).
fn tensor() -> impl Strategy<Value = ArrayD<f64>> {
    shape().prop_flat_map(tensor_of)
}

/// The initial values of the two weights of the test model.
#[derive(Debug, Clone)]
struct Init {
    a: ArrayD<f64>,
    b: ArrayD<f64>,
}

/// Two random weights.
fn init() -> impl Strategy<Value = Init> {
    (tensor(), tensor()).prop_map(|(a, b)| Init { a, b })
}

/// How much to prune, as generated: resolved to an [`Amount`] only when the
/// call is made, so that counts can be relative to what is left.
#[derive(Debug, Clone, Copy)]
enum AmountSpec {
    /// `Amount::Count` of this many.
    Count(usize),
    /// `Amount::Count` of this share (up to 1.25, i.e. sometimes too many)
    /// of what is left, rounded.
    Relative(f64),
    /// `Amount::Fraction` as is (possibly outside `[0, 1]` or NaN).
    Fraction(f64),
}

impl AmountSpec {
    /// The amount to pass when `available` entries or channels are left
    /// (`None` when the call cannot say, e.g. for a missing tensor).
    fn resolve(self, available: Option<usize>) -> Amount {
        match self {
            AmountSpec::Count(k) => Amount::Count(k),
            AmountSpec::Relative(r) => {
                Amount::Count((r * available.unwrap_or(0) as f64).round() as usize)
            }
            AmountSpec::Fraction(f) => Amount::Fraction(f),
        }
    }
}

/// Amounts: small counts, relative counts, valid fractions (with the edges
/// 0, 0.5, 1 and -0.0) and invalid fractions.
fn amount_spec() -> impl Strategy<Value = AmountSpec> {
    prop_oneof![
        2 => (0usize..8).prop_map(AmountSpec::Count),
        3 => (0.0f64..1.25).prop_map(AmountSpec::Relative),
        3 => prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(0.5),
            Just(1.0),
            0.0f64..=1.0
        ]
        .prop_map(AmountSpec::Fraction),
        1 => prop_oneof![
            Just(-0.25),
            Just(1.5),
            Just(1.0 + f64::EPSILON),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ]
        .prop_map(AmountSpec::Fraction),
    ]
}

/// Norms: `L(p)` for p in {-2, -1, 0, 0.5, 1, 1.5, 2, 3, ±∞}, and the named
/// norms.
fn norm() -> impl Strategy<Value = Norm> {
    prop::sample::select(vec![
        Norm::L(-2.0),
        Norm::L(-1.0),
        Norm::L(0.0),
        Norm::L(0.5),
        Norm::L(1.0),
        Norm::L(1.5),
        Norm::L(2.0),
        Norm::L(3.0),
        Norm::L(f64::INFINITY),
        Norm::L(f64::NEG_INFINITY),
        Norm::Inf,
        Norm::NegInf,
        Norm::Fro,
        Norm::Nuc,
    ])
}

/// Dims, mostly small (valid for most tensors) and sometimes out of range.
fn dim() -> impl Strategy<Value = isize> {
    prop_oneof![3 => -2isize..2, 1 => -6isize..6]
}

/// Paths: mostly the prunable tensors, sometimes a missing module, a missing
/// tensor, or a buffer.
fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        5 => Just("a.weight"),
        5 => Just("b.weight"),
        1 => Just("b.bias"),
        1 => prop::sample::select(vec!["c.weight", "a.missing", "weight", "b.running_mean"]),
    ]
}

/// Importance scores to pass.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scores {
    /// None: the tensor itself.
    Default,
    /// Random scores of the right shape, from this seed.
    Random(u64),
    /// Scores of the wrong shape.
    WrongShape,
}

/// Importance scores, mostly the default.
fn scores() -> impl Strategy<Value = Scores> {
    prop_oneof![
        6 => Just(Scores::Default),
        2 => any::<u64>().prop_map(Scores::Random),
        1 => Just(Scores::WrongShape),
    ]
}

/// What is wrong, if anything, with a custom mask.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// Nothing: a 0/1 mask of the right shape.
    None,
    /// One entry is `-0.0` (which equals 0, so the mask is valid).
    NegZero,
    /// One entry is 0.5.
    Half,
    /// One entry is 2.
    Two,
    /// One entry is NaN.
    Nan,
    /// The mask has an extra dim.
    WrongShape,
}

/// A custom mask: random 0/1 entries with a share `density` of ones, from
/// `seed`, with perhaps a flaw.
#[derive(Debug, Clone, Copy)]
struct MaskSpec {
    seed: u64,
    density: f64,
    flaw: Flaw,
}

/// Custom masks, mostly valid.
fn mask_spec() -> impl Strategy<Value = MaskSpec> {
    let flaw = prop_oneof![
        6 => Just(Flaw::None),
        1 => Just(Flaw::NegZero),
        1 => Just(Flaw::Half),
        1 => Just(Flaw::Two),
        1 => Just(Flaw::Nan),
        1 => Just(Flaw::WrongShape),
    ];
    (any::<u64>(), 0.0f64..=1.0, flaw).prop_map(|(seed, density, flaw)| MaskSpec {
        seed,
        density,
        flaw,
    })
}

/// The method of a global pruning call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GlobalMethod {
    L1,
    Random,
    Identity,
    /// `LnStructured`, which global pruning must refuse.
    Structured,
}

/// One call of the public API.
#[derive(Debug, Clone)]
enum Step {
    Identity {
        target: &'static str,
    },
    L1 {
        target: &'static str,
        amount: AmountSpec,
        scores: Scores,
    },
    RandomUnstructured {
        target: &'static str,
        amount: AmountSpec,
        seed: u64,
    },
    Ln {
        target: &'static str,
        amount: AmountSpec,
        norm: Norm,
        dim: isize,
        scores: Scores,
    },
    RandomStructured {
        target: &'static str,
        amount: AmountSpec,
        dim: isize,
        seed: u64,
    },
    Custom {
        target: &'static str,
        mask: MaskSpec,
    },
    Global {
        method: GlobalMethod,
        amount: AmountSpec,
        seed: u64,
        duplicate: bool,
        scores: Scores,
    },
    Remove {
        target: &'static str,
    },
}

impl Step {
    /// The paths the call prunes or un-prunes.
    fn targets(&self) -> Vec<&'static str> {
        match *self {
            Step::Identity { target }
            | Step::L1 { target, .. }
            | Step::RandomUnstructured { target, .. }
            | Step::Ln { target, .. }
            | Step::RandomStructured { target, .. }
            | Step::Custom { target, .. }
            | Step::Remove { target } => vec![target],
            Step::Global { duplicate, .. } => {
                if duplicate {
                    GLOBAL_DUPLICATE.to_vec()
                } else {
                    GLOBAL.to_vec()
                }
            }
        }
    }
}

/// Any call, with random arguments.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => target().prop_map(|target| Step::Identity { target }),
        3 => (target(), amount_spec(), scores())
            .prop_map(|(target, amount, scores)| Step::L1 { target, amount, scores }),
        2 => (target(), amount_spec(), any::<u64>())
            .prop_map(|(target, amount, seed)| Step::RandomUnstructured { target, amount, seed }),
        3 => (target(), amount_spec(), norm(), dim(), scores()).prop_map(
            |(target, amount, norm, dim, scores)| Step::Ln { target, amount, norm, dim, scores }
        ),
        2 => (target(), amount_spec(), dim(), any::<u64>()).prop_map(
            |(target, amount, dim, seed)| Step::RandomStructured { target, amount, dim, seed }
        ),
        2 => (target(), mask_spec()).prop_map(|(target, mask)| Step::Custom { target, mask }),
        2 => (
            prop::sample::select(vec![
                GlobalMethod::L1,
                GlobalMethod::L1,
                GlobalMethod::Random,
                GlobalMethod::Random,
                GlobalMethod::Identity,
                GlobalMethod::Structured,
            ]),
            amount_spec(),
            any::<u64>(),
            prop::bool::weighted(0.1),
            scores(),
        )
            .prop_map(|(method, amount, seed, duplicate, scores)| Step::Global {
                method,
                amount,
                seed,
                duplicate,
                scores,
            }),
        1 => target().prop_map(|target| Step::Remove { target }),
    ]
}

/// A sequence of 1 to 5 calls.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    vec(step(), 1..=5)
}

/// A call of a seeded random method only.
fn random_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (target(), amount_spec(), any::<u64>()).prop_map(|(target, amount, seed)| {
            Step::RandomUnstructured {
                target,
                amount,
                seed,
            }
        }),
        (target(), amount_spec(), dim(), any::<u64>()).prop_map(|(target, amount, dim, seed)| {
            Step::RandomStructured {
                target,
                amount,
                dim,
                seed,
            }
        }),
        (amount_spec(), any::<u64>()).prop_map(|(amount, seed)| Step::Global {
            method: GlobalMethod::Random,
            amount,
            seed,
            duplicate: false,
            scores: Scores::Default,
        }),
    ]
}

// ---------------------------------------------------------------------------
// The model, snapshots, and the recorded run
// ---------------------------------------------------------------------------

/// Converts a tensor of `f64` to the element type under test.
fn cast<T: PruneFloat>(t: &ArrayD<f64>) -> ArrayD<T> {
    t.mapv(T::from_f64)
}

/// The test model: `a` with `weight`, `b` with `weight`, a 1-D `bias` and a
/// buffer `running_mean` that no call may touch.
fn build<T: PruneFloat>(init: &Init) -> Sequential<T> {
    let rows = init.b.shape()[0];
    let bias = ArrayD::from_shape_fn(IxDyn(&[rows]), |i| i[0] as f64 - 1.0);
    Sequential::new()
        .with_child(
            "a",
            Layer::new()
                .with_parameter("weight", cast(&init.a))
                .unwrap(),
        )
        .unwrap()
        .with_child(
            "b",
            Layer::new()
                .with_parameter("weight", cast(&init.b))
                .unwrap()
                .with_parameter("bias", cast(&bias))
                .unwrap()
                .with_buffer("running_mean", ArrayD::from_elem(vec![2], T::from_f64(0.5)))
                .unwrap(),
        )
        .unwrap()
}

/// Owned copies of named tensors.
fn owned<T: Clone>(named: Vec<(String, &ArrayD<T>)>) -> Vec<(String, ArrayD<T>)> {
    named.into_iter().map(|(n, t)| (n, t.clone())).collect()
}

/// Everything observable about a model, owned: its parameters, buffers and
/// pruned tensors in order, and the length of each pruned tensor's history.
#[derive(Debug, Clone)]
struct Snap<T> {
    parameters: Vec<(String, ArrayD<T>)>,
    buffers: Vec<(String, ArrayD<T>)>,
    pruned: Vec<(String, ArrayD<T>)>,
    history: Vec<(String, usize)>,
}

/// The tensor of that name in a list of named tensors.
fn lookup<'a, T>(list: &'a [(String, ArrayD<T>)], path: &str) -> Option<&'a ArrayD<T>> {
    list.iter().find(|(n, _)| n == path).map(|(_, t)| t)
}

impl<T: PruneFloat> Snap<T> {
    /// Snapshot of `model`, through the [`Module`] trait only.
    fn of<M: Module<T>>(model: &M) -> Self {
        let pruned = owned(model.named_pruned());
        let history = pruned
            .iter()
            .map(|(path, _)| {
                let (module, name) = path.rsplit_once('.').unwrap_or(("", path));
                let len = model.store_at(module).map_or(usize::MAX, |s| {
                    s.pruning_history(name).map_or(0, <[_]>::len)
                });
                (path.clone(), len)
            })
            .collect();
        Snap {
            parameters: owned(model.named_parameters()),
            buffers: owned(model.named_buffers()),
            pruned,
            history,
        }
    }

    /// The parameter at `path`.
    fn parameter(&self, path: &str) -> Option<&ArrayD<T>> {
        lookup(&self.parameters, path)
    }

    /// The buffer at `path`.
    fn buffer(&self, path: &str) -> Option<&ArrayD<T>> {
        lookup(&self.buffers, path)
    }

    /// The pruned tensor at `path` (`orig * mask`), if `path` is pruned.
    fn pruned(&self, path: &str) -> Option<&ArrayD<T>> {
        lookup(&self.pruned, path)
    }

    /// Whether `path` is pruned.
    fn is_pruned(&self, path: &str) -> bool {
        self.pruned(path).is_some()
    }

    /// The mask of `path`, if it is pruned.
    fn mask(&self, path: &str) -> Option<&ArrayD<T>> {
        if self.is_pruned(path) {
            self.buffer(&format!("{path}_mask"))
        } else {
            None
        }
    }

    /// The original of `path`, if it is pruned.
    fn orig(&self, path: &str) -> Option<&ArrayD<T>> {
        if self.is_pruned(path) {
            self.parameter(&format!("{path}_orig"))
        } else {
            None
        }
    }

    /// The prunable tensor at `path`: the pruned tensor, else the parameter
    /// (a buffer is not prunable).
    fn current(&self, path: &str) -> Option<&ArrayD<T>> {
        self.pruned(path).or_else(|| self.parameter(path))
    }

    /// The mask of `path`, or the all-ones mask a first pruning starts from.
    fn mask_or_ones(&self, path: &str) -> Option<ArrayD<T>> {
        match self.mask(path) {
            Some(m) => Some(m.clone()),
            None => self.parameter(path).map(|p| ArrayD::ones(p.raw_dim())),
        }
    }

    /// Length of the pruning history of `path` (0 when not pruned).
    fn history(&self, path: &str) -> usize {
        self.history
            .iter()
            .find(|(n, _)| n == path)
            .map_or(0, |(_, len)| *len)
    }

    /// Entries of `path` still unpruned (mask 1), or all of them when it is
    /// not pruned; `None` when `path` is not a prunable tensor.
    fn open_entries(&self, path: &str) -> Option<usize> {
        match self.mask(path) {
            Some(mask) => Some(mask.iter().filter(|&&m| m == T::one()).count()),
            None => self.parameter(path).map(|p| p.len()),
        }
    }

    /// Channels along `dim` of `path` not entirely pruned; `None` when
    /// structured pruning along `dim` cannot apply (missing tensor, fewer
    /// than 2 dims, dim out of range).
    fn live_channels(&self, path: &str, dim: isize) -> Option<usize> {
        let ndim = self.current(path)?.ndim();
        let d = resolve_dim(dim, ndim)?;
        if ndim < 2 {
            return None;
        }
        let mask = self.mask_or_ones(path)?;
        Some(live_count(&mask, d))
    }
}

/// `dim` as an index into `ndim` dims (negative counts from the back), or
/// `None` when out of range.
fn resolve_dim(dim: isize, ndim: usize) -> Option<usize> {
    let n = ndim as isize;
    let d = if dim < 0 { dim + n } else { dim };
    (0..n).contains(&d).then_some(d as usize)
}

/// Number of channels along axis `d` of `mask` that are not all zero.
fn live_count<T: PruneFloat>(mask: &ArrayD<T>, d: usize) -> usize {
    mask.axis_iter(Axis(d))
        .filter(|ch| ch.iter().any(|&m| m != T::zero()))
        .count()
}

/// Python's `round(x)` for `x >= 0`: halves go to the even neighbour.
/// Written out rather than taken from the library or `std`.
fn round_half_even(x: f64) -> usize {
    let floor = x.floor();
    let rest = x - floor;
    let down = floor as usize;
    if rest > 0.5 || (rest == 0.5 && down % 2 == 1) {
        down + 1
    } else {
        down
    }
}

/// How many of `available` entries or channels `amount` prunes, or `None`
/// when the amount is invalid (a fraction outside `[0, 1]` or NaN) or too
/// large.
fn expected_count(amount: Amount, available: usize) -> Option<usize> {
    let k = match amount {
        Amount::Count(k) => k,
        Amount::Fraction(f) if (0.0..=1.0).contains(&f) => round_half_even(f * available as f64),
        Amount::Fraction(_) => return None,
    };
    (k <= available).then_some(k)
}

/// Importance scores of `shape` as `spec` asks (`None` for the default).
fn make_scores<T: PruneFloat>(spec: Scores, shape: &[usize]) -> Option<ArrayD<T>> {
    match spec {
        Scores::Default => None,
        Scores::Random(seed) => {
            let mut rng = StdRng::seed_from_u64(seed);
            Some(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
                let x = if rng.random_bool(0.5) {
                    f64::from(rng.random_range(-3i32..=3))
                } else {
                    rng.random_range(-10.0..10.0)
                };
                T::from_f64(x)
            }))
        }
        Scores::WrongShape => {
            let mut wrong = shape.to_vec();
            wrong[0] += 1;
            Some(ArrayD::zeros(IxDyn(&wrong)))
        }
    }
}

/// Importance scores for global pruning as `spec` asks: `Random` gives
/// scores for `a.weight`, and for `b.weight` too when the seed is even;
/// `WrongShape` gives `b.weight` scores of the wrong shape.
fn global_scores<T: PruneFloat>(
    spec: Scores,
    shape_of: &dyn Fn(&str) -> Vec<usize>,
) -> Option<HashMap<String, ArrayD<T>>> {
    let mut map = HashMap::new();
    match spec {
        Scores::Default => return None,
        Scores::Random(seed) => {
            let paths: &[&str] = if seed % 2 == 0 { &GLOBAL } else { &GLOBAL[..1] };
            for (i, path) in paths.iter().enumerate() {
                let scores =
                    make_scores(Scores::Random(seed.wrapping_add(i as u64)), &shape_of(path));
                map.insert(path.to_string(), scores?);
            }
        }
        Scores::WrongShape => {
            map.insert(
                "b.weight".to_string(),
                make_scores(spec, &shape_of("b.weight"))?,
            );
        }
    }
    Some(map)
}

/// The custom mask `spec` describes for a tensor of `shape`.
fn make_mask(spec: MaskSpec, shape: &[usize]) -> ArrayD<f64> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut shape = shape.to_vec();
    if spec.flaw == Flaw::WrongShape {
        shape.push(2);
    }
    let mut mask = ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
        if rng.random_bool(spec.density) {
            1.0
        } else {
            0.0
        }
    });
    let bad = match spec.flaw {
        Flaw::NegZero => Some(-0.0),
        Flaw::Half => Some(0.5),
        Flaw::Two => Some(2.0),
        Flaw::Nan => Some(f64::NAN),
        Flaw::None | Flaw::WrongShape => None,
    };
    if let Some(bad) = bad {
        let at = rng.random_range(0..mask.len());
        if let Some(x) = mask.iter_mut().nth(at) {
            *x = bad;
        }
    }
    mask
}

/// One call: what it was, the amount and custom mask actually passed, its
/// result, and the model before and after.
#[derive(Debug)]
struct Record<T> {
    step: Step,
    amount: Option<Amount>,
    custom: Option<ArrayD<f64>>,
    result: Result<(), PruneError>,
    before: Snap<T>,
    after: Snap<T>,
}

/// Makes the call `step` on `model` (whose snapshot is `before`); returns
/// the amount and custom mask passed, and the result.
fn apply_step<T: PruneFloat>(
    model: &mut Sequential<T>,
    before: &Snap<T>,
    step: &Step,
) -> (Option<Amount>, Option<ArrayD<f64>>, Result<(), PruneError>) {
    let shape_of = |path: &str| before.current(path).map_or(vec![1], |t| t.shape().to_vec());
    match *step {
        Step::Identity { target } => (None, None, prune::identity(model, target)),
        Step::L1 {
            target,
            amount,
            scores,
        } => {
            let amount = amount.resolve(before.open_entries(target));
            let scores = make_scores::<T>(scores, &shape_of(target));
            let view = scores.as_ref().map(|s| s.view());
            let result = prune::l1_unstructured(model, target, amount, view);
            (Some(amount), None, result)
        }
        Step::RandomUnstructured {
            target,
            amount,
            seed,
        } => {
            let amount = amount.resolve(before.open_entries(target));
            let mut rng = StdRng::seed_from_u64(seed);
            let result = prune::random_unstructured(model, target, amount, &mut rng);
            (Some(amount), None, result)
        }
        Step::Ln {
            target,
            amount,
            norm,
            dim,
            scores,
        } => {
            let amount = amount.resolve(before.live_channels(target, dim));
            let scores = make_scores::<T>(scores, &shape_of(target));
            let view = scores.as_ref().map(|s| s.view());
            let result = prune::ln_structured(model, target, amount, norm, Dim(dim), view);
            (Some(amount), None, result)
        }
        Step::RandomStructured {
            target,
            amount,
            dim,
            seed,
        } => {
            let amount = amount.resolve(before.live_channels(target, dim));
            let mut rng = StdRng::seed_from_u64(seed);
            let result = prune::random_structured(model, target, amount, Dim(dim), &mut rng);
            (Some(amount), None, result)
        }
        Step::Custom { target, mask } => {
            let mask = make_mask(mask, &shape_of(target));
            let result = prune::custom_from_mask(model, target, cast::<T>(&mask).view());
            (None, Some(mask), result)
        }
        Step::Global {
            method,
            amount,
            seed,
            duplicate,
            scores,
        } => {
            let available = GLOBAL
                .iter()
                .map(|p| before.open_entries(p))
                .sum::<Option<usize>>();
            let amount = amount.resolve(available);
            let targets: &[&str] = if duplicate {
                &GLOBAL_DUPLICATE
            } else {
                &GLOBAL
            };
            let scores = global_scores::<T>(scores, &shape_of);
            let scores = scores.as_ref();
            let result = match method {
                GlobalMethod::L1 => L1Unstructured::new(amount)
                    .and_then(|m| prune::global_unstructured(model, targets, &m, scores)),
                GlobalMethod::Random => RandomUnstructured::new(amount, seed)
                    .and_then(|m| prune::global_unstructured(model, targets, &m, scores)),
                GlobalMethod::Identity => {
                    prune::global_unstructured(model, targets, &Identity, scores)
                }
                GlobalMethod::Structured => LnStructured::new(amount, Norm::L(1.0), Dim(0))
                    .and_then(|m| prune::global_unstructured(model, targets, &m, scores)),
            };
            (Some(amount), None, result)
        }
        Step::Remove { target } => (None, None, prune::remove(model, target)),
    }
}

/// Runs `steps` on a fresh model built from `init`, recording every call.
fn run<T: PruneFloat>(init: &Init, steps: &[Step]) -> Vec<Record<T>> {
    let mut model = build::<T>(init);
    let mut records = Vec::with_capacity(steps.len());
    for step in steps {
        let before = Snap::of(&model);
        let (amount, custom, result) = apply_step(&mut model, &before, step);
        let after = Snap::of(&model);
        records.push(Record {
            step: step.clone(),
            amount,
            custom,
            result,
            before,
            after,
        });
    }
    records
}

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

/// Same shape and the same bits everywhere (so `-0.0 != 0.0`, NaN equals
/// only the same NaN).
fn identical<T: PruneFloat>(a: &ArrayD<T>, b: &ArrayD<T>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.as_f64().to_bits() == y.as_f64().to_bits())
}

/// Same shape and equal values, with `-0.0 == 0.0` and `NaN == NaN`.
fn same_values<T: PruneFloat>(a: &ArrayD<T>, b: &ArrayD<T>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// `orig * mask` elementwise, computed here (shapes must agree).
fn product<T: PruneFloat>(orig: &ArrayD<T>, mask: &ArrayD<T>) -> ArrayD<T> {
    Zip::from(orig).and(mask).map_collect(|&o, &m| o * m)
}

/// Whether two lists of named tensors have the same names in the same order
/// and identical tensors.
fn identical_lists<T: PruneFloat>(a: &[(String, ArrayD<T>)], b: &[(String, ArrayD<T>)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, ta), (nb, tb))| na == nb && identical(ta, tb))
}

/// Whether two snapshots are identical in every tensor, name and history
/// length.
fn identical_snaps<T: PruneFloat>(a: &Snap<T>, b: &Snap<T>) -> bool {
    identical_lists(&a.parameters, &b.parameters)
        && identical_lists(&a.buffers, &b.buffers)
        && identical_lists(&a.pruned, &b.pruned)
        && a.history == b.history
}

/// Orders magnitudes as the library ranks them: by `|x|`, NaN above all.
fn by_magnitude(a: f64, b: f64) -> Ordering {
    a.is_nan()
        .cmp(&b.is_nan())
        .then_with(|| a.abs().total_cmp(&b.abs()))
}

// ---------------------------------------------------------------------------
// Property 1: masks hold only 0 and 1
// ---------------------------------------------------------------------------

/// Property 1: after every call (failed or not), every mask entry is exactly
/// `+0.0` or `1.0` (bitwise; `-0.0` only once a custom mask has supplied
/// one, which it may since `-0.0 == 0`), and every mask has the shape of its
/// original.
fn check_binary_masks<T: PruneFloat>(records: &[Record<T>]) -> Result<(), TestCaseError> {
    let mut negative_zero_given = false;
    for r in records {
        if r.result.is_ok()
            && matches!(
                r.step,
                Step::Custom {
                    mask: MaskSpec {
                        flaw: Flaw::NegZero,
                        ..
                    },
                    ..
                }
            )
        {
            negative_zero_given = true;
        }
        for (path, _) in &r.after.pruned {
            let mask = r.after.mask(path);
            let orig = r.after.orig(path);
            prop_assert!(
                mask.is_some() && orig.is_some(),
                "{} is pruned without mask or orig after {:?}",
                path,
                r.step
            );
            let (mask, orig) = (mask.unwrap(), orig.unwrap());
            prop_assert_eq!(mask.shape(), orig.shape());
            for &m in mask.iter() {
                let bits = m.as_f64().to_bits();
                let ok = bits == 1.0f64.to_bits()
                    || bits == 0.0f64.to_bits()
                    || (negative_zero_given && bits == (-0.0f64).to_bits());
                prop_assert!(ok, "mask of {} holds {:?} after {:?}", path, m, r.step);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 2: exactly the amount is pruned
// ---------------------------------------------------------------------------

/// Checks one amount-based call that saw `before` entries or channels left
/// and left `after`: on success exactly `expected_count(amount, before)`
/// went; an invalid or too large amount must fail; and if `must_succeed`
/// (nothing else is wrong with the call) a valid amount must succeed.
fn check_drop(
    step: &Step,
    result: &Result<(), PruneError>,
    expected: Option<usize>,
    before: Option<usize>,
    after: Option<usize>,
    must_succeed: bool,
) -> Result<(), TestCaseError> {
    match result {
        Ok(()) => {
            prop_assert!(
                expected.is_some(),
                "{:?} succeeded with an invalid amount or target",
                step
            );
            let (before, after) = (before.unwrap_or(0), after.unwrap_or(0));
            prop_assert!(
                after <= before,
                "{:?} un-pruned: {} -> {}",
                step,
                before,
                after
            );
            prop_assert_eq!(
                before - after,
                expected.unwrap_or(0),
                "{:?}: {} left before, {} after",
                step,
                before,
                after
            );
        }
        Err(e) => prop_assert!(
            !(expected.is_some() && must_succeed),
            "valid call {:?} failed: {}",
            step,
            e
        ),
    }
    Ok(())
}

/// For a structured call that succeeded: every mask entry it changed lies in
/// a channel (along `d`) that is now entirely pruned.
fn check_whole_channels_changed<T: PruneFloat>(
    before: &ArrayD<T>,
    after: &ArrayD<T>,
    d: usize,
) -> Result<(), TestCaseError> {
    for (b, a) in before.axis_iter(Axis(d)).zip(after.axis_iter(Axis(d))) {
        let changed = b.iter().zip(a.iter()).any(|(x, y)| x != y);
        if changed {
            prop_assert!(
                a.iter().all(|&m| m == T::zero()),
                "a structured call changed part of a channel"
            );
        }
    }
    Ok(())
}

/// Property 2 for one structured call on `target` along `dim`: the live
/// channels drop by exactly the amount measured on them, and every mask
/// entry that changed lies in a channel now entirely pruned.
fn check_structured_call<T: PruneFloat>(
    r: &Record<T>,
    target: &str,
    dim: isize,
    must_succeed: bool,
) -> Result<(), TestCaseError> {
    if r.before.is_pruned(target) && r.before.current(target).map(|t| t.ndim()) == Some(1) {
        return check_flat_structured_call(r, target, dim, must_succeed);
    }
    let before = r.before.live_channels(target, dim);
    let after = r.after.live_channels(target, dim);
    let expected = before.and_then(|n| expected_count(r.amount.expect("an amount"), n));
    check_drop(&r.step, &r.result, expected, before, after, must_succeed)?;
    if r.result.is_ok() {
        let ndim = r.before.current(target).map_or(0, |t| t.ndim());
        let d = resolve_dim(dim, ndim).unwrap_or(0);
        let (b, a) = (r.before.mask_or_ones(target), r.after.mask(target));
        prop_assert!(b.is_some() && a.is_some(), "no mask around {:?}", r.step);
        check_whole_channels_changed(&b.unwrap(), a.unwrap(), d)?;
    }
    Ok(())
}

/// Property 2 for a structured call on a pruned 1-dim tensor, which PyTorch
/// runs on the tensor seen as `[rows, n]` (`rows` = 1 while any entry is
/// left, else 0) with the call's own dim: dim 0 prunes the whole tensor as
/// one channel, dim -1 prunes single entries counted among all `n`, pruned
/// ones included; any other dim is out of range. `must_succeed` says the
/// call has no other flaw (scores, norm).
fn check_flat_structured_call<T: PruneFloat>(
    r: &Record<T>,
    target: &str,
    dim: isize,
    must_succeed: bool,
) -> Result<(), TestCaseError> {
    let old = r.before.mask(target).expect("pruned before");
    let n = old.len();
    let rows = usize::from(old.iter().any(|&m| m != T::zero()));
    let channels = match dim {
        0 => Some(rows),
        -1 => Some(n),
        _ => None,
    };
    let expected = channels.and_then(|c| expected_count(r.amount.expect("an amount"), c));
    match &r.result {
        Ok(()) => {
            prop_assert!(expected.is_some(), "{:?} succeeded", r.step);
            let new = r.after.mask(target).expect("pruned after");
            let k = expected.unwrap_or(0);
            let ones = |m: &ArrayD<T>| m.iter().filter(|&&v| v == T::one()).count();
            prop_assert!(
                old.iter().zip(new.iter()).all(|(&a, &b)| b <= a),
                "{:?} un-pruned an entry",
                r.step
            );
            if dim == 0 {
                prop_assert_eq!(
                    ones(new),
                    if k == 1 { 0 } else { ones(old) },
                    "{:?}",
                    r.step
                );
            } else {
                prop_assert!(ones(old) - ones(new) <= k, "{:?}", r.step);
                prop_assert!(rows == 1 || ones(new) == 0, "{:?}", r.step);
            }
        }
        Err(e) => prop_assert!(
            !(expected.is_some() && must_succeed),
            "valid call {:?} failed: {}",
            r.step,
            e
        ),
    }
    Ok(())
}

/// Property 2: unstructured calls prune exactly
/// `round_half_even(fraction × open)` (or the count) of the open entries,
/// structured calls exactly that many of the live channels, global calls
/// that many of all open entries together; custom masks and identity prune
/// exactly what they say. Valid calls succeed, and invalid ones fail.
fn check_amounts<T: PruneFloat>(records: &[Record<T>]) -> Result<(), TestCaseError> {
    for r in records {
        let amount = r.amount;
        match r.step {
            Step::L1 { target, .. } | Step::RandomUnstructured { target, .. } => {
                let must_succeed = !matches!(
                    r.step,
                    Step::L1 {
                        scores: Scores::WrongShape,
                        ..
                    }
                );
                let before = r.before.open_entries(target);
                let after = r.after.open_entries(target);
                let expected = before.and_then(|n| expected_count(amount.unwrap(), n));
                check_drop(&r.step, &r.result, expected, before, after, must_succeed)?;
            }
            Step::Ln {
                target,
                dim,
                norm,
                scores,
                ..
            } => {
                let ndim = r.before.current(target).map_or(0, |t| t.ndim());
                let nuc_impossible = norm == Norm::Nuc && ndim != 3;
                // A pruned 1-dim tensor with nothing left, seen as [0, n]: the
                // norm of each entry is taken over no entries.
                // `L(inf)` is the max, as `Inf` is; `L(-inf)` is covered by
                // the negative orders.
                let no_identity = matches!(norm, Norm::Inf | Norm::NegInf)
                    || matches!(norm, Norm::L(p) if p < 0.0 || p == f64::INFINITY);
                let empty_norm = ndim == 1
                    && dim == -1
                    && no_identity
                    && r.before
                        .mask(target)
                        .is_some_and(|m| m.iter().all(|&v| v == T::zero()));
                // PyTorch's SVD refuses NaN (random scores are finite).
                let nan_nuclear = norm == Norm::Nuc
                    && scores == Scores::Default
                    && r.before
                        .current(target)
                        .is_some_and(|t| t.iter().any(|v| v.is_nan()));
                let must_succeed =
                    scores != Scores::WrongShape && !nuc_impossible && !empty_norm && !nan_nuclear;
                check_structured_call(r, target, dim, must_succeed)?;
            }
            Step::RandomStructured { target, dim, .. } => {
                check_structured_call(r, target, dim, true)?;
            }
            Step::Global {
                method,
                duplicate,
                scores,
                ..
            } => {
                let before: Option<usize> = GLOBAL.iter().map(|p| r.before.open_entries(p)).sum();
                let after: Option<usize> = GLOBAL.iter().map(|p| r.after.open_entries(p)).sum();
                let expected = match method {
                    _ if duplicate || scores == Scores::WrongShape => None,
                    GlobalMethod::L1 | GlobalMethod::Random => {
                        before.and_then(|n| expected_count(amount.unwrap(), n))
                    }
                    GlobalMethod::Identity => Some(0),
                    GlobalMethod::Structured => None,
                };
                check_drop(&r.step, &r.result, expected, before, after, true)?;
            }
            Step::Custom { target, mask } => {
                let valid = r.before.current(target).is_some()
                    && matches!(mask.flaw, Flaw::None | Flaw::NegZero);
                match &r.result {
                    Ok(()) => {
                        prop_assert!(valid, "{:?} succeeded", r.step);
                        let custom = cast::<T>(r.custom.as_ref().expect("recorded"));
                        let old = r.before.mask_or_ones(target).expect("valid target");
                        let new = r.after.mask(target).expect("pruned after");
                        prop_assert!(
                            same_values(new, &product(&old, &custom)),
                            "custom mask not multiplied in: {:?}",
                            r.step
                        );
                    }
                    Err(e) => prop_assert!(!valid, "valid {:?} failed: {}", r.step, e),
                }
            }
            Step::Identity { target } => {
                let valid = r.before.current(target).is_some();
                prop_assert_eq!(r.result.is_ok(), valid, "{:?}", r.step);
                if valid {
                    let old = r.before.mask_or_ones(target).expect("valid target");
                    prop_assert!(identical(&old, r.after.mask(target).expect("pruned")));
                }
            }
            Step::Remove { target } => {
                prop_assert_eq!(r.result.is_ok(), r.before.is_pruned(target), "{:?}", r.step);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 3: pruned stays pruned
// ---------------------------------------------------------------------------

/// Property 3: no successful call turns a mask entry from 0 to 1 while the
/// tensor stays pruned; masks of tensors the call did not target do not
/// change at all; only `remove` un-prunes a tensor, and only a call that
/// targets it starts pruning one.
fn check_monotone<T: PruneFloat>(records: &[Record<T>]) -> Result<(), TestCaseError> {
    for r in records.iter().filter(|r| r.result.is_ok()) {
        let touched = r.step.targets();
        for path in TENSORS {
            match (r.before.mask(path), r.after.mask(path)) {
                (Some(b), Some(a)) => {
                    prop_assert_eq!(a.shape(), b.shape());
                    for (x, y) in b.iter().zip(a.iter()) {
                        prop_assert!(
                            !(*x == T::zero() && *y != T::zero()),
                            "{} went from 0 to {:?} in {:?}",
                            path,
                            y,
                            r.step
                        );
                    }
                    if !touched.contains(&path) {
                        prop_assert!(
                            identical(a, b),
                            "untargeted {} changed by {:?}",
                            path,
                            r.step
                        );
                    }
                }
                (Some(_), None) => prop_assert!(
                    matches!(r.step, Step::Remove { target } if target == path),
                    "{} un-pruned by {:?}",
                    path,
                    r.step
                ),
                (None, Some(_)) => {
                    prop_assert!(touched.contains(&path), "{} pruned by {:?}", path, r.step)
                }
                (None, None) => {}
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 4: the reparametrization
// ---------------------------------------------------------------------------

/// Property 4: after every successful call, every pruned tensor `w` equals
/// `w_orig * w_mask` (with `-0.0 == 0.0`, `NaN == NaN`), `w_orig` is
/// bit-for-bit the original (the initial value, or what the last `remove`
/// made permanent), `w` is no longer a parameter, and its history grew by
/// one for each call that targeted it; every unpruned tensor is its
/// original parameter; `remove` leaves `orig * mask` as the parameter.
fn check_reparametrization<T: PruneFloat>(records: &[Record<T>]) -> Result<(), TestCaseError> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    let mut base: HashMap<&str, ArrayD<T>> = HashMap::new();
    for path in TENSORS {
        let p = first.before.parameter(path);
        prop_assert!(p.is_some(), "{} missing initially", path);
        base.insert(path, p.unwrap().clone());
    }
    for r in records.iter().filter(|r| r.result.is_ok()) {
        let touched = r.step.targets();
        if let Step::Remove { target } = r.step {
            let orig = r.before.orig(target).expect("removed, so pruned before");
            let mask = r.before.mask(target).expect("removed, so pruned before");
            let param = r.after.parameter(target);
            prop_assert!(param.is_some(), "{} is no parameter after remove", target);
            let param = param.unwrap();
            prop_assert!(
                same_values(param, &product(orig, mask)),
                "remove of {} did not leave orig * mask",
                target
            );
            base.insert(target, param.clone());
        }
        for path in TENSORS {
            let original = &base[path];
            let orig_name = format!("{path}_orig");
            let mask_name = format!("{path}_mask");
            if let Some(w) = r.after.pruned(path) {
                let orig = r.after.parameter(&orig_name);
                let mask = r.after.buffer(&mask_name);
                prop_assert!(orig.is_some() && mask.is_some(), "{} lacks orig/mask", path);
                let (orig, mask) = (orig.unwrap(), mask.unwrap());
                prop_assert!(
                    identical(orig, original),
                    "{}_orig is not the original after {:?}",
                    path,
                    r.step
                );
                prop_assert!(
                    same_values(w, &product(orig, mask)),
                    "{} != orig * mask after {:?}",
                    path,
                    r.step
                );
                prop_assert!(
                    r.after.parameter(path).is_none(),
                    "{} still a parameter",
                    path
                );
                let grew = usize::from(touched.contains(&path));
                prop_assert_eq!(
                    r.after.history(path),
                    r.before.history(path) + grew,
                    "history of {} after {:?}",
                    path,
                    r.step
                );
            } else {
                let p = r.after.parameter(path);
                prop_assert!(p.is_some(), "{} vanished after {:?}", path, r.step);
                prop_assert!(
                    identical(p.unwrap(), original),
                    "unpruned {} changed by {:?}",
                    path,
                    r.step
                );
                prop_assert!(r.after.parameter(&orig_name).is_none());
                prop_assert!(r.after.buffer(&mask_name).is_none());
            }
        }
        prop_assert!(
            r.after.buffer("b.running_mean").is_some(),
            "the unrelated buffer vanished"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 6: a failing call changes nothing
// ---------------------------------------------------------------------------

/// Property 6: after every call that returned an error, every parameter,
/// buffer, pruned tensor and history length is exactly as before, and the
/// error names one of PyTorch's exception classes.
fn check_failures_change_nothing<T: PruneFloat>(
    records: &[Record<T>],
) -> Result<(), TestCaseError> {
    for r in records {
        if let Err(e) = &r.result {
            prop_assert!(
                TORCH_KINDS.contains(&e.torch_kind()),
                "unknown kind {} of {}",
                e.torch_kind(),
                e
            );
            prop_assert!(
                identical_snaps(&r.before, &r.after),
                "failing {:?} ({}) changed the model",
                r.step,
                e
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 5: a first structured pruning prunes whole channels
// ---------------------------------------------------------------------------

/// Property 5: `ln_structured` (with `norm`) or, when `norm` is `None`,
/// `random_structured` (with `seed`) on an unpruned tensor `t` gives a mask
/// constant along every channel of the resolved dim, with exactly the
/// expected number of all-zero channels; a failure must be explained by the
/// amount, the dim, the number of dims, or a nuclear norm of a tensor
/// without 3 dims or with NaN.
fn check_first_structured<T: PruneFloat>(
    t: &ArrayD<f64>,
    norm: Option<Norm>,
    seed: u64,
    amount: AmountSpec,
    dim: isize,
) -> Result<(), TestCaseError> {
    let ndim = t.ndim();
    let d = resolve_dim(dim, ndim);
    let available = d.filter(|_| ndim >= 2).map(|d| t.shape()[d]);
    let amount = amount.resolve(available);
    let mut layer = Layer::new().with_parameter("weight", cast::<T>(t)).unwrap();
    let result = match norm {
        Some(n) => prune::ln_structured(&mut layer, "weight", amount, n, Dim(dim), None),
        None => {
            let mut rng = StdRng::seed_from_u64(seed);
            prune::random_structured(&mut layer, "weight", amount, Dim(dim), &mut rng)
        }
    };
    let expected = available.and_then(|n| expected_count(amount, n));
    match result {
        Ok(()) => {
            prop_assert!(expected.is_some(), "succeeded with {:?}", amount);
            let d = d.unwrap_or(0);
            let mask = layer.buffer("weight_mask");
            prop_assert!(mask.is_some());
            let mask = mask.unwrap();
            let mut zero_channels = 0;
            for ch in mask.axis_iter(Axis(d)) {
                let zeros = ch.iter().filter(|&&m| m == T::zero()).count();
                prop_assert!(
                    zeros == 0 || zeros == ch.len(),
                    "channel partly pruned: {:?}",
                    ch
                );
                zero_channels += usize::from(zeros == ch.len());
            }
            prop_assert_eq!(Some(zero_channels), expected);
        }
        Err(e) => {
            let nuc_impossible = norm == Some(Norm::Nuc) && ndim != 3;
            // PyTorch's SVD refuses NaN.
            let nan_nuclear = norm == Some(Norm::Nuc) && t.iter().any(|v| v.is_nan());
            prop_assert!(
                expected.is_none() || nuc_impossible || nan_nuclear,
                "valid structured call failed: {}",
                e
            );
            prop_assert!(!prune::is_pruned(&layer));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 7: seeded random methods are reproducible
// ---------------------------------------------------------------------------

/// Property 7 (sequences): two runs of the same seeded random calls on two
/// identical models give identical results and identical models after
/// every call.
fn check_reproducible<T: PruneFloat>(init: &Init, steps: &[Step]) -> Result<(), TestCaseError> {
    let first = run::<T>(init, steps);
    let second = run::<T>(init, steps);
    for (x, y) in first.iter().zip(&second) {
        let (ex, ey) = (
            x.result.as_ref().err().map(ToString::to_string),
            y.result.as_ref().err().map(ToString::to_string),
        );
        prop_assert_eq!(ex, ey, "{:?}", x.step);
        prop_assert!(
            identical_snaps(&x.after, &y.after),
            "same seed, different result for {:?}",
            x.step
        );
    }
    Ok(())
}

/// Property 7 (seeding paths): `random_unstructured` / `random_structured`
/// with a generator seeded by `seed` give the same mask as applying
/// `RandomUnstructured::from_rng` / `RandomStructured::from_rng` with an
/// equally seeded generator, and as `::new` with the same first draw; and
/// applying it twice more from the same state gives the same mask again.
fn check_seeding_paths<T: PruneFloat>(
    t: &ArrayD<f64>,
    structured: bool,
    amount: AmountSpec,
    dim: isize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let available = if structured {
        resolve_dim(dim, t.ndim())
            .filter(|_| t.ndim() >= 2)
            .map(|d| t.shape()[d])
    } else {
        Some(t.len())
    };
    let amount = amount.resolve(available);
    let fresh = || Layer::new().with_parameter("weight", cast::<T>(t)).unwrap();
    let (mut via_fn, mut via_rng, mut via_seed) = (fresh(), fresh(), fresh());
    let drawn: u64 = StdRng::seed_from_u64(seed).random();
    let results = if structured {
        [
            prune::random_structured(
                &mut via_fn,
                "weight",
                amount,
                Dim(dim),
                &mut StdRng::seed_from_u64(seed),
            ),
            RandomStructured::from_rng(amount, Dim(dim), &mut StdRng::seed_from_u64(seed))
                .and_then(|m| prune::apply(&mut via_rng, "weight", &m, None)),
            RandomStructured::new(amount, Dim(dim), drawn)
                .and_then(|m| prune::apply(&mut via_seed, "weight", &m, None)),
        ]
    } else {
        [
            prune::random_unstructured(
                &mut via_fn,
                "weight",
                amount,
                &mut StdRng::seed_from_u64(seed),
            ),
            RandomUnstructured::from_rng(amount, &mut StdRng::seed_from_u64(seed))
                .and_then(|m| prune::apply(&mut via_rng, "weight", &m, None)),
            RandomUnstructured::new(amount, drawn)
                .and_then(|m| prune::apply(&mut via_seed, "weight", &m, None)),
        ]
    };
    prop_assert_eq!(results[0].is_ok(), results[1].is_ok());
    prop_assert_eq!(results[0].is_ok(), results[2].is_ok());
    let masks = [&via_fn, &via_rng, &via_seed].map(|l| l.buffer("weight_mask").cloned());
    for m in &masks[1..] {
        match (&masks[0], m) {
            (Some(a), Some(b)) => prop_assert!(identical(a, b), "seeding paths differ"),
            (None, None) => {}
            _ => prop_assert!(false, "one seeding path pruned, another did not"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Property 8: the smallest go
// ---------------------------------------------------------------------------

/// A tensor whose entries have pairwise distinct magnitudes (`0.375 ×` a
/// permutation of `0..n`, so one zero, random signs; exact in `f32`), and
/// perhaps one NaN (anywhere) or one infinity (in place of the largest).
fn distinct_tensor() -> impl Strategy<Value = ArrayD<f64>> {
    shape()
        .prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let ranks = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            (Just(shape), ranks, vec(any::<bool>(), n), 0u8..4, 0..n)
        })
        .prop_map(|(shape, ranks, negative, special, at)| {
            let n = ranks.len();
            let mut values: Vec<f64> = ranks
                .iter()
                .zip(&negative)
                .map(|(&r, &neg)| {
                    if neg {
                        -0.375 * r as f64
                    } else {
                        0.375 * r as f64
                    }
                })
                .collect();
            match special {
                1 => values[at] = f64::NAN,
                2 => {
                    let top = ranks.iter().position(|&r| r == n - 1).unwrap_or(0);
                    values[top] = if negative[top] {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    };
                }
                _ => {}
            }
            ArrayD::from_shape_vec(IxDyn(&shape), values).expect("n entries for the shape")
        })
}

/// The amount to pass for a share `r` of `open`, and the count it means:
/// `Fraction(r)` (rounded half to even) or `Count(floor(r × open))`.
fn amount_for(r: f64, open: usize, as_fraction: bool) -> (Amount, usize) {
    if as_fraction {
        (Amount::Fraction(r), round_half_even(r * open as f64))
    } else {
        let k = (r * open as f64).floor() as usize;
        (Amount::Count(k), k)
    }
}

/// Property 8 (unstructured): with pairwise distinct magnitudes, two
/// successive `l1_unstructured` calls (shares `r1` then `r2` of what is
/// left) prune exactly the k1, then k1 + k2, entries of smallest magnitude
/// (NaN largest) of the tensor, or of the importance scores when
/// `use_scores` (the tensor then being all ones).
fn check_l1_smallest<T: PruneFloat>(
    t: &ArrayD<f64>,
    r1: f64,
    r2: f64,
    as_fraction: bool,
    use_scores: bool,
) -> Result<(), TestCaseError> {
    let values = cast::<T>(t);
    let (weight, scores) = if use_scores {
        (ArrayD::ones(t.raw_dim()), Some(values.clone()))
    } else {
        (values.clone(), None)
    };
    let mut layer = Layer::new().with_parameter("weight", weight).unwrap();
    let flat: Vec<f64> = values.iter().map(|x| x.as_f64()).collect();
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by(|&i, &j| by_magnitude(flat[i], flat[j]));
    let mut pruned = 0;
    for r in [r1, r2] {
        let (amount, k) = amount_for(r, flat.len() - pruned, as_fraction);
        let result = prune::l1_unstructured(
            &mut layer,
            "weight",
            amount,
            scores.as_ref().map(|s| s.view()),
        );
        prop_assert!(result.is_ok(), "{:?}", result);
        pruned += k;
        let mask = layer.buffer("weight_mask").expect("pruned");
        let mask: Vec<T> = mask.iter().copied().collect();
        for (rank, &i) in order.iter().enumerate() {
            let want = if rank < pruned { T::zero() } else { T::one() };
            prop_assert!(
                mask[i] == want,
                "entry {} ({}) of rank {} has mask {:?}, {} pruned",
                i,
                flat[i],
                rank,
                mask[i],
                pruned
            );
        }
    }
    Ok(())
}

/// A norm `ln_structured` takes, with a reference implementation.
#[derive(Debug, Clone, Copy)]
enum RefNorm {
    L1,
    L2,
    Max,
}

/// The norm of one channel's entries (in row-major order), by a plain loop:
/// NaN anywhere gives NaN.
fn reference_norm(values: &[f64], which: RefNorm) -> f64 {
    match which {
        RefNorm::L1 => {
            let mut sum = 0.0;
            for &x in values {
                sum += x.abs();
            }
            sum
        }
        RefNorm::L2 => {
            let mut sum = 0.0;
            for &x in values {
                sum += x * x;
            }
            sum.sqrt()
        }
        RefNorm::Max => {
            let mut max = 0.0f64;
            for &x in values {
                if x.is_nan() {
                    return f64::NAN;
                }
                max = max.max(x.abs());
            }
            max
        }
    }
}

/// The norms `ln_structured` may be called with for each reference norm.
fn ref_norm() -> impl Strategy<Value = (Norm, RefNorm)> {
    prop::sample::select(vec![
        (Norm::L(1.0), RefNorm::L1),
        (Norm::L(2.0), RefNorm::L2),
        (Norm::Fro, RefNorm::L2),
        (Norm::Inf, RefNorm::Max),
        (Norm::L(f64::INFINITY), RefNorm::Max),
    ])
}

/// Whether the `k` smallest of ascending `sorted` norms (NaN last) are
/// clearly apart from the rest, so that which channels go is decided.
fn clear_cut(sorted: &[f64], k: usize) -> bool {
    if k == 0 || k >= sorted.len() {
        return true;
    }
    let (a, b) = (sorted[k - 1], sorted[k]);
    match (a.is_nan(), b.is_nan()) {
        (false, true) => true,
        (true, _) => false,
        (false, false) => b - a > 1e-9 * b.abs().max(1e-300),
    }
}

/// A tensor of 2 to 4 dims with continuous entries (so norms are almost
/// surely distinct) and, one time in five, a NaN; with, one time in three,
/// importance scores of the same shape.
fn continuous_case() -> impl Strategy<Value = (ArrayD<f64>, Option<ArrayD<f64>>)> {
    vec(1usize..=6, 2..=4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (
            vec(-10.0f64..10.0, n),
            prop::option::weighted(0.2, 0..n),
            prop::option::weighted(0.3, vec(-10.0f64..10.0, n)),
        )
            .prop_map(move |(mut values, nan, scores)| {
                if let Some(i) = nan {
                    values[i] = f64::NAN;
                }
                let shape = IxDyn(&shape);
                let scores =
                    scores.map(|s| ArrayD::from_shape_vec(shape.clone(), s).expect("n entries"));
                let t = ArrayD::from_shape_vec(shape, values).expect("n entries");
                (t, scores)
            })
    })
}

/// Property 8 (structured): with norms clearly apart at the cut, two
/// successive `ln_structured` calls along `dim` (shares `r1` then `r2` of
/// the live channels) prune exactly the k1, then k1 + k2, channels of
/// smallest norm (NaN largest), computed here by a plain loop over the
/// tensor, or over the importance scores when `scores` is given.
fn check_ln_smallest<T: PruneFloat>(
    t: &ArrayD<f64>,
    scores: Option<&ArrayD<f64>>,
    (norm, which): (Norm, RefNorm),
    dim: isize,
    (r1, r2): (f64, f64),
    as_fraction: bool,
) -> Result<(), TestCaseError> {
    let d = resolve_dim(dim, t.ndim()).expect("a valid dim");
    let weight = cast::<T>(t);
    let scores = scores.map(cast::<T>);
    let importance = scores.as_ref().unwrap_or(&weight);
    let norms: Vec<f64> = importance
        .axis_iter(Axis(d))
        .map(|ch| reference_norm(&ch.iter().map(|x| x.as_f64()).collect::<Vec<_>>(), which))
        .collect();
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&i, &j| {
        norms[i]
            .is_nan()
            .cmp(&norms[j].is_nan())
            .then_with(|| norms[i].total_cmp(&norms[j]))
    });
    let sorted: Vec<f64> = order.iter().map(|&c| norms[c]).collect();
    let mut layer = Layer::new()
        .with_parameter("weight", weight.clone())
        .unwrap();
    let mut pruned = 0;
    for r in [r1, r2] {
        let (amount, k) = amount_for(r, norms.len() - pruned, as_fraction);
        let result = prune::ln_structured(
            &mut layer,
            "weight",
            amount,
            norm,
            Dim(dim),
            scores.as_ref().map(|s| s.view()),
        );
        prop_assert!(result.is_ok(), "{:?}", result);
        pruned += k;
        if !clear_cut(&sorted, pruned) {
            return Ok(());
        }
        let mask = layer.buffer("weight_mask").expect("pruned");
        for (rank, &c) in order.iter().enumerate() {
            let ch = mask.index_axis(Axis(d), c);
            let want = if rank < pruned { T::zero() } else { T::one() };
            prop_assert!(
                ch.iter().all(|&m| m == want),
                "channel {} (norm {}, rank {}) wrong with {} pruned; norms {:?}",
                c,
                norms[c],
                rank,
                pruned,
                norms
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Pruning `weight_orig` of a pruned `weight` is refused (it is part of
/// that reparametrization), and the refusal changes nothing.
#[test]
fn pruning_an_orig_is_refused_and_changes_nothing() {
    let weight = ndarray::array![1.0f32, 2.0, 3.0, 4.0].into_dyn();
    let mut layer = Layer::new().with_parameter("weight", weight).unwrap();
    prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None).expect("valid");
    let before = layer.clone();
    let err = prune::l1_unstructured(&mut layer, "weight_orig", Amount::Count(1), None)
        .expect_err("part of a reparametrization");
    assert!(matches!(err.kind(), PruneErrorKind::PartOfPruning { .. }));
    assert_eq!(layer, before);
    prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None).expect("valid");
    let orig = layer.parameter("weight_orig").expect("exists");
    let mask = layer.buffer("weight_mask").expect("exists");
    assert!(same_values(
        layer.tensor("weight").expect("exists"),
        &product(orig, mask)
    ));
    assert_eq!(
        layer.store().pruning_history("weight").map(<[_]>::len),
        Some(2)
    );
}

/// The input CI met: a 1-dim tensor with nothing left, then an `L(inf)`
/// structured call along dim -1. PyTorch sees the tensor as `[0, 1]`, so
/// the max of each channel is taken over no entries and the call fails;
/// `L(inf)` is the same norm as `Inf`, and property 2 must know it.
#[test]
fn p2_knows_l_inf_over_nothing_fails() {
    let init = Init {
        a: ndarray::array![0.0].into_dyn(),
        b: ndarray::array![0.0].into_dyn(),
    };
    let steps = [
        Step::Custom {
            target: "a.weight",
            mask: MaskSpec {
                seed: 37736229,
                density: 0.0,
                flaw: Flaw::None,
            },
        },
        Step::Ln {
            target: "a.weight",
            amount: AmountSpec::Relative(0.0),
            norm: Norm::L(f64::INFINITY),
            dim: -1,
            scores: Scores::Default,
        },
    ];
    let records = run::<f32>(&init, &steps);
    let err = records[1].result.as_ref().expect_err("the max of nothing");
    assert!(matches!(err.kind(), PruneErrorKind::EmptyNorm { .. }));
    check_amounts(&records).expect("property 2 holds in f32");
    check_amounts(&run::<f64>(&init, &steps)).expect("property 2 holds in f64");
}

proptest! {
    #![proptest_config(config(256))]

    /// Property 1, for f32 and f64 on the same input.
    #[test]
    fn p1_masks_are_binary(init in init(), steps in steps()) {
        check_binary_masks(&run::<f32>(&init, &steps))?;
        check_binary_masks(&run::<f64>(&init, &steps))?;
    }

    /// Property 2, for f32 and f64 on the same input.
    #[test]
    fn p2_exactly_the_amount_is_pruned(init in init(), steps in steps()) {
        check_amounts(&run::<f32>(&init, &steps))?;
        check_amounts(&run::<f64>(&init, &steps))?;
    }

    /// Property 3, for f32 and f64 on the same input.
    #[test]
    fn p3_pruned_stays_pruned(init in init(), steps in steps()) {
        check_monotone(&run::<f32>(&init, &steps))?;
        check_monotone(&run::<f64>(&init, &steps))?;
    }

    /// Property 4, for f32 and f64 on the same input.
    #[test]
    fn p4_weight_is_orig_times_mask(init in init(), steps in steps()) {
        check_reparametrization(&run::<f32>(&init, &steps))?;
        check_reparametrization(&run::<f64>(&init, &steps))?;
    }

    /// Property 5 for f32.
    #[test]
    fn p5_first_structured_prunes_whole_channels_f32(
        t in tensor(),
        norm in prop::option::weighted(0.7, norm()),
        seed in any::<u64>(),
        amount in amount_spec(),
        dim in dim(),
    ) {
        check_first_structured::<f32>(&t, norm, seed, amount, dim)?;
    }

    /// Property 5 for f64.
    #[test]
    fn p5_first_structured_prunes_whole_channels_f64(
        t in tensor(),
        norm in prop::option::weighted(0.7, norm()),
        seed in any::<u64>(),
        amount in amount_spec(),
        dim in dim(),
    ) {
        check_first_structured::<f64>(&t, norm, seed, amount, dim)?;
    }

    /// Property 6, for f32 and f64 on the same input.
    #[test]
    fn p6_failing_calls_change_nothing(init in init(), steps in steps()) {
        check_failures_change_nothing(&run::<f32>(&init, &steps))?;
        check_failures_change_nothing(&run::<f64>(&init, &steps))?;
    }

    /// Property 7 over sequences of random calls, f32.
    #[test]
    fn p7_same_seed_same_masks_f32(init in init(), steps in vec(random_step(), 1..=4)) {
        check_reproducible::<f32>(&init, &steps)?;
    }

    /// Property 7 over sequences of random calls, f64.
    #[test]
    fn p7_same_seed_same_masks_f64(init in init(), steps in vec(random_step(), 1..=4)) {
        check_reproducible::<f64>(&init, &steps)?;
    }

    /// Property 7 across the seeding paths, f32.
    #[test]
    fn p7_seeding_paths_agree_f32(
        t in tensor(),
        structured in any::<bool>(),
        amount in amount_spec(),
        dim in dim(),
        seed in any::<u64>(),
    ) {
        check_seeding_paths::<f32>(&t, structured, amount, dim, seed)?;
    }

    /// Property 7 across the seeding paths, f64.
    #[test]
    fn p7_seeding_paths_agree_f64(
        t in tensor(),
        structured in any::<bool>(),
        amount in amount_spec(),
        dim in dim(),
        seed in any::<u64>(),
    ) {
        check_seeding_paths::<f64>(&t, structured, amount, dim, seed)?;
    }

    /// Property 8, magnitudes, f32.
    #[test]
    fn p8_l1_prunes_the_smallest_f32(
        t in distinct_tensor(),
        r1 in 0.0f64..=1.0,
        r2 in 0.0f64..=1.0,
        as_fraction in any::<bool>(),
        use_scores in prop::bool::weighted(0.3),
    ) {
        check_l1_smallest::<f32>(&t, r1, r2, as_fraction, use_scores)?;
    }

    /// Property 8, magnitudes, f64.
    #[test]
    fn p8_l1_prunes_the_smallest_f64(
        t in distinct_tensor(),
        r1 in 0.0f64..=1.0,
        r2 in 0.0f64..=1.0,
        as_fraction in any::<bool>(),
        use_scores in prop::bool::weighted(0.3),
    ) {
        check_l1_smallest::<f64>(&t, r1, r2, as_fraction, use_scores)?;
    }
    /// Property 8, norms, f32.
    #[test]
    fn p8_ln_prunes_the_smallest_f32(
        (t, scores) in continuous_case(),
        norm in ref_norm(),
        dim in 0usize..8,
        negative in any::<bool>(),
        r in (0.0f64..=1.0, 0.0f64..=1.0),
        as_fraction in any::<bool>(),
    ) {
        let ndim = t.ndim() as isize;
        let d = dim as isize % ndim;
        let dim = if negative { d - ndim } else { d };
        check_ln_smallest::<f32>(&t, scores.as_ref(), norm, dim, r, as_fraction)?;
    }

    /// Property 8, norms, f64.
    #[test]
    fn p8_ln_prunes_the_smallest_f64(
        (t, scores) in continuous_case(),
        norm in ref_norm(),
        dim in 0usize..8,
        negative in any::<bool>(),
        r in (0.0f64..=1.0, 0.0f64..=1.0),
        as_fraction in any::<bool>(),
    ) {
        let ndim = t.ndim() as isize;
        let d = dim as isize % ndim;
        let dim = if negative { d - ndim } else { d };
        check_ln_smallest::<f64>(&t, scores.as_ref(), norm, dim, r, as_fraction)?;
    }
}
