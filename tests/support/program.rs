//! Random pruning programs through the public API, decoded from bytes, and
//! checked after every call: no panic (but a user method's own), masks 0/1,
//! `w == w_orig * w_mask`, and a failing call changes nothing.
//!
//! Shared by `tests/api_programs.rs` (a fixed set of seeded inputs in
//! `cargo test`) and the cargo-fuzz target `fuzz/fuzz_targets/prune_program.rs`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, ShapeBuilder, Slice};
use ndprune::prelude::*;
use ndprune::PruningKind;

/// Reads choices from the input; past its end every choice is 0.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()].clone()
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

const VALUES: [f32; 14] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    -3.0,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    1e-45,
    3e38,
    1.0,
    -0.5,
];

const PATHS: [&str; 12] = [
    "a.weight",
    "b.weight",
    "b.bias",
    "a.weight",
    "b.weight",
    "a..weight",
    ".a.weight",
    "a.weight_orig",
    "a.weight_mask",
    "c.weight",
    "",
    "a",
];

const FRACTIONS: [f64; 8] = [0.0, 0.3, 0.5, 1.0, 0.25, 1.5, -0.1, f64::NAN];

const NORMS: [Norm; 9] = [
    Norm::L(1.0),
    Norm::L(2.0),
    Norm::Inf,
    Norm::NegInf,
    Norm::L(0.0),
    Norm::L(-1.0),
    Norm::L(0.5),
    Norm::Fro,
    Norm::Nuc,
];

fn amount(b: &mut Bytes<'_>) -> Amount {
    if b.byte() % 2 == 0 {
        Amount::Count(usize::from(b.byte() % 12))
    } else {
        Amount::Fraction(b.pick(&FRACTIONS))
    }
}

/// Memory layouts a user's array can come in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    Standard,
    Fortran,
    /// The last two axes swapped in memory.
    Transposed,
    /// Axis 0 walked backwards.
    NegativeStride,
    /// Every other row of a larger array: not contiguous.
    Sliced,
}

/// Every [`Layout`].
pub const LAYOUTS: [Layout; 5] = [
    Layout::Standard,
    Layout::Fortran,
    Layout::Transposed,
    Layout::NegativeStride,
    Layout::Sliced,
];

/// An array holding the values of `a` at the same indices, in `layout`
/// (a 0-dim array stays as it is; a 1-dim one has no axes to transpose).
pub fn in_layout(a: &ArrayD<f32>, layout: Layout) -> ArrayD<f32> {
    let n = a.ndim();
    let out = match layout {
        _ if n == 0 => a.clone(),
        Layout::Standard => a.clone(),
        Layout::Fortran => {
            let mut f = ArrayD::zeros(IxDyn(a.shape()).f());
            f.assign(a);
            f
        }
        Layout::Transposed if n < 2 => a.clone(),
        Layout::Transposed => {
            let mut t = a.view();
            t.swap_axes(n - 2, n - 1);
            let mut owned = t.as_standard_layout().into_owned();
            owned.swap_axes(n - 2, n - 1);
            owned
        }
        Layout::NegativeStride => {
            let mut r = a.view();
            r.invert_axis(Axis(0));
            let mut owned = r.as_standard_layout().into_owned();
            owned.invert_axis(Axis(0));
            owned
        }
        Layout::Sliced => {
            let mut shape = a.shape().to_vec();
            shape[0] *= 2;
            let mut big = ArrayD::from_elem(shape, 9.0f32);
            big.slice_axis_mut(Axis(0), Slice::new(0, None, 2))
                .assign(a);
            big.slice_axis_inplace(Axis(0), Slice::new(0, None, 2));
            big
        }
    };
    debug_assert!(
        out.iter()
            .zip(a.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
            && out.shape() == a.shape(),
        "{layout:?} holds the same values"
    );
    out
}

/// `a` in a layout the input picks.
fn relaid(a: ArrayD<f32>, b: &mut Bytes<'_>) -> ArrayD<f32> {
    in_layout(&a, b.pick(&LAYOUTS))
}

fn tensor(shape: &[usize], b: &mut Bytes<'_>) -> ArrayD<f32> {
    let a = ArrayD::from_shape_simple_fn(IxDyn(shape), || b.pick(&VALUES));
    relaid(a, b)
}

fn shape(b: &mut Bytes<'_>) -> Vec<usize> {
    let ndim = 1 + usize::from(b.byte() % 3);
    (0..ndim).map(|_| usize::from(b.byte() % 5)).collect()
}

/// A user's method: right, or misbehaving in one of the ways a user's code
/// can.
#[derive(Debug)]
struct UserMethod {
    structured: bool,
    act: u8,
}

impl PruningMethod<f32> for UserMethod {
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
        let mask = if self.structured {
            LnStructured::new(Amount::Count(1), Norm::L(1.0), Dim(0))?
                .compute_mask(t, default_mask)?
        } else {
            L1Unstructured::new(Amount::Count(1))?.compute_mask(t, default_mask)?
        };
        match self.act % 6 {
            0 => Ok(mask),
            1 => Ok(mask.reversed_axes()),
            2 => Ok(ArrayD::ones(vec![mask.len() + 1])),
            3 => Ok(mask.mapv(|v| v * 0.5)),
            4 => Err(PruneError::method_failed(
                "UserMethod",
                "deliberate failure",
            )),
            _ => panic!("deliberate panic in a user's method"),
        }
    }
}

/// Everything the model holds, for "changes nothing" comparisons.
type State = Vec<(String, ArrayD<f32>)>;

fn state(m: &Sequential<f32>) -> (State, State, State, Vec<usize>) {
    let own = |v: Vec<(String, &ArrayD<f32>)>| {
        v.into_iter()
            .map(|(n, t)| (n, t.clone()))
            .collect::<Vec<_>>()
    };
    let mut history = Vec::new();
    m.visit_stores("", &mut |_, s| {
        for (name, _) in s.pruned_tensors() {
            history.push(
                s.pruning_history(name)
                    .expect("a pruned tensor has a history")
                    .len(),
            );
        }
    });
    (
        own(m.named_parameters()),
        own(m.named_buffers()),
        own(m.named_pruned()),
        history,
    )
}

fn same(a: &State, b: &State) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((n, s), (m, t))| {
            n == m
                && s.shape() == t.shape()
                && s.iter()
                    .zip(t.iter())
                    .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        })
}

fn same_state(
    a: &(State, State, State, Vec<usize>),
    b: &(State, State, State, Vec<usize>),
) -> bool {
    same(&a.0, &b.0) && same(&a.1, &b.1) && same(&a.2, &b.2) && a.3 == b.3
}

/// The invariants of a model after any call.
fn check_whole(m: &Sequential<f32>) -> Result<(), String> {
    for (path, t) in m.named_pruned() {
        let orig = m
            .parameter(&format!("{path}_orig"))
            .ok_or(format!("{path}: no original"))?;
        let mask = m
            .buffer(&format!("{path}_mask"))
            .ok_or(format!("{path}: no mask"))?;
        if orig.shape() != t.shape() || mask.shape() != t.shape() {
            return Err(format!("{path}: parts of different shapes"));
        }
        if mask.iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(format!("{path}: mask not 0/1"));
        }
        let product = orig * mask;
        if !t
            .iter()
            .zip(product.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
        {
            return Err(format!("{path}: tensor is not orig * mask"));
        }
    }
    Ok(())
}

/// Runs the program `data` describes; `Err` says what broke.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut b = Bytes { data, at: 0 };
    let (wa, wb) = (shape(&mut b), shape(&mut b));
    let bias = vec![wb.first().copied().unwrap_or(1)];
    let layer = |name: &str, t: ArrayD<f32>| Layer::new().with_parameter(name, t);
    let a = layer("weight", tensor(&wa, &mut b)).map_err(|e| e.to_string())?;
    let bl = layer("weight", tensor(&wb, &mut b))
        .and_then(|l| l.with_parameter("bias", tensor(&bias, &mut b)))
        .map_err(|e| e.to_string())?;
    let mut model = Sequential::new()
        .with_child("a", a)
        .and_then(|m| m.with_child("b", bl))
        .map_err(|e| e.to_string())?;
    let gen = TorchGenerator::manual_seed(u64::from(b.byte()));
    for step in 0..8 {
        if b.done() {
            break;
        }
        let op = b.byte() % 11;
        let path = b.pick(&PATHS);
        let before = state(&model);
        let mut user_panic = false;
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), PruneError> {
            match op {
                0 => prune::identity(&mut model, path),
                1 => {
                    let a = amount(&mut b);
                    let scores = (b.byte() % 3 == 0)
                        .then(|| model.tensor(path).map(|t| tensor(t.shape(), &mut b)))
                        .flatten();
                    prune::l1_unstructured(&mut model, path, a, scores.as_ref().map(|s| s.view()))
                }
                2 => {
                    let a = amount(&mut b);
                    RandomUnstructured::with_torch_generator(a, &gen)
                        .and_then(|m| prune::apply(&mut model, path, &m, None))
                }
                3 => {
                    let (a, n) = (amount(&mut b), b.pick(&NORMS));
                    let d = Dim(isize::from(b.byte() % 7) - 3);
                    let scores = (b.byte() % 3 == 0)
                        .then(|| model.tensor(path).map(|t| tensor(t.shape(), &mut b)))
                        .flatten();
                    prune::ln_structured(
                        &mut model,
                        path,
                        a,
                        n,
                        d,
                        scores.as_ref().map(|s| s.view()),
                    )
                }
                4 => {
                    let a = amount(&mut b);
                    let d = Dim(isize::from(b.byte() % 7) - 3);
                    RandomStructured::with_torch_generator(a, d, &gen)
                        .and_then(|m| prune::apply(&mut model, path, &m, None))
                }
                5 => {
                    let shape = match model.tensor(path) {
                        Some(t) if b.byte() % 4 != 0 => t.shape().to_vec(),
                        _ => shape(&mut b),
                    };
                    let mask = ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
                        [1.0f32, 0.0, 1.0, 0.5][usize::from(b.byte() % 4)]
                    });
                    let mask = relaid(mask, &mut b);
                    prune::custom_from_mask(&mut model, path, mask.view())
                }
                6 => {
                    let targets: Vec<&str> =
                        (0..1 + b.byte() % 3).map(|_| b.pick(&PATHS)).collect();
                    let a = amount(&mut b);
                    match b.byte() % 3 {
                        0 => L1Unstructured::new(a).and_then(|m| {
                            prune::global_unstructured(&mut model, &targets, &m, None)
                        }),
                        1 => RandomUnstructured::with_torch_generator(a, &gen).and_then(|m| {
                            prune::global_unstructured(&mut model, &targets, &m, None)
                        }),
                        _ => {
                            let m = UserMethod {
                                structured: false,
                                act: b.byte(),
                            };
                            user_panic = m.act % 6 == 5;
                            let mut scores = HashMap::new();
                            if let Some(t) = model.tensor(targets[0]) {
                                scores.insert(targets[0].to_string(), tensor(t.shape(), &mut b));
                            }
                            prune::global_unstructured(&mut model, &targets, &m, Some(&scores))
                        }
                    }
                }
                7 => prune::remove(&mut model, path),
                8 => {
                    let m = UserMethod {
                        structured: b.byte() % 2 == 0,
                        act: b.byte(),
                    };
                    user_panic = m.act % 6 == 5;
                    prune::apply(&mut model, path, &m, None)
                }
                9 => {
                    // A training step on an original, then the pre-hook.
                    let v = b.pick(&VALUES);
                    if let Some(mut p) = model.parameter_mut(path) {
                        p.fill(v);
                    }
                    model.recompute_pruned();
                    Ok(())
                }
                _ => {
                    let probe = b.pick(&VALUES);
                    Norm::L(f64::from(probe))
                        .channel_norms(before.0[0].1.view(), Dim(isize::from(b.byte() % 5) - 2))
                        .map(drop)
                }
            }
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if e.to_string().contains("``") {
                    return Err(format!("step {step}: blank name in `{e}`"));
                }
                // Op 10 only reads; every other failing call must leave the model as it was.
                if !same_state(&state(&model), &before) {
                    return Err(format!(
                        "step {step} (op {op} on {path:?}) failed ({e}) and changed the model"
                    ));
                }
            }
            Err(_) if user_panic => {
                if !same_state(&state(&model), &before) {
                    return Err(format!(
                        "step {step}: a user method's panic changed the model"
                    ));
                }
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("step {step} (op {op} on {path:?}) panicked: {msg}"));
            }
        }
        check_whole(&model).map_err(|e| format!("step {step} (op {op}): {e}"))?;
    }
    Ok(())
}

/// Silences the deliberate panics of user methods; others still print.
pub fn quiet_deliberate_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.contains("deliberate"));
        if !deliberate {
            previous(info);
        }
    }));
}
