//! The torch-conformance checker: runs cases computed by PyTorch (format:
//! `tests/fixtures/FORMAT.md`) through ndprune's public API and says what
//! differed. Shared by `tests/torch_conformance.rs` and
//! `examples/torch_conformance.rs` (one checker, two callers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ndarray::ArrayD;
use ndprune::prelude::*;
use rand::SeedableRng;
use serde_json::Value;

/// The result of one file: the number of cases that passed, and for each
/// failing case its id and what differed.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failures: Vec<(String, String)>,
}

impl Report {
    /// The closing line: `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failures.len())
    }
}

/// Checks every non-empty line of a JSON-lines file of cases, in order.
///
/// Random steps draw from PyTorch's stream as PyTorch drew for the case:
/// a case with a `torch_seed` (an extension of the format) from
/// `TorchGenerator::manual_seed(torch_seed)` of its own; a case whose id is
/// `FAMILY/SEED/INDEX` from one stream per `SEED`, started by
/// `TorchGenerator::manual_seed(SEED)` at the first case of that seed and
/// shared, in file order, by every case of that seed (see [`Streams`]); any
/// other case from `rand`.
pub fn check_file(text: &str) -> Report {
    let mut report = Report::default();
    let mut streams = Streams::default();
    for (lineno, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (id, outcome) = match serde_json::from_str::<Value>(line) {
            Ok(case) => (
                case["id"].as_str().unwrap_or("?").to_string(),
                check_case_in(&case, &mut streams),
            ),
            Err(e) => (
                format!("line {}", lineno + 1),
                Err(format!("not JSON: {e}")),
            ),
        };
        match outcome {
            Ok(()) => report.passed += 1,
            Err(why) => report.failures.push((id, why)),
        }
    }
    report
}

/// PyTorch's random streams of a file of cases, one per seed.
///
/// The cases of `tests/fixtures/torch-cases.jsonl` were computed in one
/// PyTorch process per seed: their ids are `FAMILY/SEED/INDEX`, all cases of
/// one `SEED` were made in file order from one Python `random.Random(SEED)`
/// (most random-valued tensors are that generator's `gauss` draws, family
/// after family), and their random pruning steps drew one after the other
/// from PyTorch's default generator after `torch.manual_seed(SEED)`.
/// Replaying the random steps of the file in order on
/// `TorchGenerator::manual_seed(SEED)` gives PyTorch's count of ones in
/// every mask of every random case, also where that count depends on which
/// entries were drawn (`random_structured` after a custom mask,
/// `random_unstructured` in global pruning over two tensors); another seed
/// does not (`tests/torch_conformance.rs`).
#[derive(Default)]
struct Streams {
    by_seed: HashMap<u64, TorchGenerator>,
}

impl Streams {
    /// The stream a case's random steps draw from, if the case says.
    fn for_case(&mut self, case: &Value) -> Option<TorchGenerator> {
        if let Some(seed) = case["torch_seed"].as_u64() {
            return Some(TorchGenerator::manual_seed(seed));
        }
        let seed = id_seed(case["id"].as_str()?)?;
        let stream = self
            .by_seed
            .entry(seed)
            .or_insert_with(|| TorchGenerator::manual_seed(seed));
        // A clone draws from the same stream.
        Some(stream.clone())
    }
}

/// The `SEED` of an id `FAMILY/SEED/INDEX`.
fn id_seed(id: &str) -> Option<u64> {
    match id.split('/').collect::<Vec<_>>()[..] {
        [_family, seed, index] if index.parse::<u64>().is_ok() => seed.parse().ok(),
        _ => None,
    }
}

/// Runs one case, its random steps drawing from `streams`, and compares the
/// final state with its `expect`.
fn check_case_in(case: &Value, streams: &mut Streams) -> Result<(), String> {
    let torch = streams.for_case(case);
    match case["dtype"].as_str() {
        Some("float32") => Case::<f32>::run(case, torch),
        Some("float64") => Case::<f64>::run(case, torch),
        #[cfg(feature = "half")]
        Some("bfloat16") => Case::<half::bf16>::run(case, torch),
        #[cfg(feature = "half")]
        Some("float16") => Case::<half::f16>::run(case, torch),
        other => Err(format!("unknown dtype {other:?}")),
    }
}

/// Tensors of one group (parameters, buffers or pruned) with their names.
type Named<'a, T> = Vec<(&'a str, &'a ArrayD<T>)>;

struct Case<T: PruneFloat> {
    root: Sequential<T>,
    exact: bool,
    /// PyTorch's stream the case's random steps drew from ([`Streams`]);
    /// without it, random steps draw from `rand`.
    torch: Option<TorchGenerator>,
}

impl<T: PruneFloat> Case<T> {
    fn run(case: &Value, torch: Option<TorchGenerator>) -> Result<(), String> {
        let exact = case["exact"].as_bool().ok_or("no `exact`")?;
        let mut root = Sequential::<T>::new();
        for (name, tensors) in obj(&case["modules"])? {
            let mut layer = Layer::new();
            for (tname, t) in obj(tensors)? {
                layer = layer.with_parameter(tname, tensor(t)?).unwrap();
            }
            root = root.with_child(name, layer).unwrap();
        }
        let mut this = Case { root, exact, torch };
        let error_step = case["error"]["step"].as_u64().map(|s| s as usize);
        let steps = case["steps"].as_array().ok_or("no `steps`")?;
        for (i, step) in steps.iter().enumerate() {
            match (this.step(step)?, error_step == Some(i)) {
                (Ok(()), false) => {}
                (Ok(()), true) => {
                    return Err(format!(
                        "step {i} succeeded, PyTorch raised {}",
                        case["error"]["kind"]
                    ))
                }
                (Err(e), true) => {
                    let want = match case["error"]["kind"].as_str().unwrap_or("?") {
                        // torch.linalg.LinAlgError is a subclass of RuntimeError.
                        "LinAlgError" | "_LinAlgError" => "RuntimeError",
                        kind => kind,
                    };
                    if e.torch_kind() != want {
                        return Err(format!(
                            "step {i}: {} ({e}), PyTorch raised {want}",
                            e.torch_kind()
                        ));
                    }
                    break;
                }
                (Err(e), false) => return Err(format!("step {i} failed: {e}")),
            }
        }
        this.compare(&case["expect"])
    }

    /// Runs one step: `Err(String)` when the step itself is malformed,
    /// `Ok(Err(e))` when ndprune rejected it.
    fn step(&mut self, step: &Value) -> Result<Result<(), PruneError>, String> {
        let op = step["op"].as_str().ok_or("step without op")?;
        let path = format!(
            "{}.{}",
            step["module"].as_str().unwrap_or(""),
            step["name"].as_str().unwrap_or("")
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let scores = match &step["importance_scores"] {
            Value::Null => None,
            v if op != "global_unstructured" => Some(tensor::<T>(v)?),
            _ => None,
        };
        let scores = scores.as_ref().map(|s| s.view());
        let root = &mut self.root;
        Ok(match op {
            "identity" => prune::identity(root, &path),
            "remove" => prune::remove(root, &path),
            "l1_unstructured" => amount(&step["amount"])?
                .and_then(|a| prune::l1_unstructured(root, &path, a, scores)),
            "random_unstructured" => amount(&step["amount"])?.and_then(|a| match &self.torch {
                Some(gen) => RandomUnstructured::with_torch_generator(a, gen)
                    .and_then(|m| prune::apply(root, &path, &m, None)),
                None => prune::random_unstructured(root, &path, a, &mut rng),
            }),
            "ln_structured" => {
                let n = norm(&step["n"])?;
                let d = dim(&step["dim"])?;
                amount(&step["amount"])?
                    .and_then(|a| prune::ln_structured(root, &path, a, n, d, scores))
            }
            "random_structured" => {
                let d = dim(&step["dim"])?;
                amount(&step["amount"])?.and_then(|a| match &self.torch {
                    Some(gen) => RandomStructured::with_torch_generator(a, d, gen)
                        .and_then(|m| prune::apply(root, &path, &m, None)),
                    None => prune::random_structured(root, &path, a, d, &mut rng),
                })
            }
            "custom_from_mask" => {
                let mask = tensor::<T>(&step["mask"])?;
                prune::custom_from_mask(root, &path, mask.view())
            }
            "global_unstructured" => {
                let targets: Vec<String> = step["parameters"]
                    .as_array()
                    .ok_or("no `parameters`")?
                    .iter()
                    .map(|p| {
                        format!(
                            "{}.{}",
                            p[0].as_str().unwrap_or(""),
                            p[1].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
                let mut importance = HashMap::new();
                if let Value::Object(m) = &step["importance_scores"] {
                    for (k, v) in m {
                        importance.insert(k.clone(), tensor::<T>(v)?);
                    }
                }
                let importance = (!importance.is_empty()).then_some(&importance);
                let method = step["method"].as_str().unwrap_or("");
                amount(&step["amount"])?.and_then(|a| match method {
                    "l1_unstructured" => L1Unstructured::new(a)
                        .and_then(|m| prune::global_unstructured(root, &targets, &m, importance)),
                    _ => match &self.torch {
                        Some(gen) => RandomUnstructured::with_torch_generator(a, gen),
                        None => RandomUnstructured::new(a, 0),
                    }
                    .and_then(|m| prune::global_unstructured(root, &targets, &m, importance)),
                })
            }
            other => return Err(format!("unknown op {other}")),
        })
    }

    fn compare(&self, expect: &Value) -> Result<(), String> {
        let modules = obj(expect)?;
        let ours: BTreeSet<&str> = self.root.children().iter().map(|(n, _)| *n).collect();
        let theirs: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
        if ours != theirs {
            return Err(format!("modules {ours:?}, expected {theirs:?}"));
        }
        for (mname, want) in modules {
            let store = self.root.store_at(mname).ok_or("module vanished")?;
            let groups: [(&str, Named<'_, T>); 3] = [
                ("parameters", store.parameters().collect()),
                ("buffers", store.buffers().collect()),
                ("pruned", store.pruned_tensors().collect()),
            ];
            for (group, got) in groups {
                let want = obj(&want[group])?;
                let got: BTreeMap<&str, &ArrayD<T>> = got.into_iter().collect();
                let (g, w): (BTreeSet<_>, BTreeSet<_>) = (
                    got.keys().copied().collect(),
                    want.keys().map(String::as_str).collect(),
                );
                if g != w {
                    return Err(format!("{mname} {group}: {g:?}, expected {w:?}"));
                }
                for (name, t) in got {
                    let where_ = format!("{mname}.{name} ({group})");
                    self.compare_tensor(group, t, &want[name])
                        .map_err(|e| format!("{where_}: {e}"))?;
                }
            }
            let children = self.root.children();
            let module = children
                .iter()
                .find(|(n, _)| n == mname)
                .map(|(_, m)| *m)
                .ok_or("module vanished")?;
            let pruned = prune::is_pruned(module);
            if Some(pruned) != want["is_pruned"].as_bool() {
                return Err(format!(
                    "{mname}: is_pruned {pruned}, expected {}",
                    want["is_pruned"]
                ));
            }
        }
        Ok(())
    }

    fn compare_tensor(&self, group: &str, got: &ArrayD<T>, want: &Value) -> Result<(), String> {
        let shape = shape(want)?;
        if got.shape() != shape.as_slice() {
            return Err(format!("shape {:?}, expected {shape:?}", got.shape()));
        }
        match (self.exact, group) {
            (false, "buffers") => {
                let sum = want["sum"].as_f64().ok_or("no `sum`")?;
                let ours: f64 = got.iter().map(|v| v.as_f64()).sum();
                (ours == sum)
                    .then_some(())
                    .ok_or(format!("mask holds {ours} ones, expected {sum}"))
            }
            (false, "pruned") => Ok(()),
            _ => {
                let want = tensor::<T>(want)?;
                match got
                    .iter()
                    .zip(want.iter())
                    .enumerate()
                    .find(|(_, (a, b))| !same(**a, **b))
                {
                    None => Ok(()),
                    Some((i, (a, b))) => Err(format!("flat index {i}: {a}, expected {b}")),
                }
            }
        }
    }
}

/// Equal as the format defines it: -0.0 equals 0.0, NaN equals NaN.
fn same<T: PruneFloat>(a: T, b: T) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn obj(v: &Value) -> Result<&serde_json::Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("expected an object, got {v}"))
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" || s == "inf" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" || s == "-inf" => Ok(f64::NEG_INFINITY),
        other => Err(format!("not a number: {other}")),
    }
}

fn shape(v: &Value) -> Result<Vec<usize>, String> {
    v["shape"]
        .as_array()
        .ok_or("tensor without shape")?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| format!("bad dim {d}"))
        })
        .collect()
}

fn tensor<T: PruneFloat>(v: &Value) -> Result<ArrayD<T>, String> {
    let data = v["data"]
        .as_array()
        .ok_or("tensor without data")?
        .iter()
        .map(|x| number(x).map(T::from_f64))
        .collect::<Result<Vec<T>, _>>()?;
    ArrayD::from_shape_vec(shape(v)?, data).map_err(|e| e.to_string())
}

/// The step's amount: `Ok(Err(_))` when ndprune rejects it (a negative count).
fn amount(v: &Value) -> Result<Result<Amount, PruneError>, String> {
    if let Some(k) = v.get("int") {
        let k = k.as_i64().ok_or_else(|| format!("bad int amount {k}"))?;
        Ok(Amount::from_int(k))
    } else if let Some(f) = v.get("float") {
        Ok(Ok(Amount::Fraction(number(f)?)))
    } else {
        Err(format!("bad amount {v}"))
    }
}

fn norm(v: &Value) -> Result<Norm, String> {
    Ok(match v {
        Value::String(s) if s == "fro" => Norm::Fro,
        Value::String(s) if s == "nuc" => Norm::Nuc,
        Value::String(s) if s == "inf" => Norm::Inf,
        Value::String(s) if s == "-inf" => Norm::NegInf,
        other => Norm::L(number(other)?),
    })
}

fn dim(v: &Value) -> Result<Dim, String> {
    v.as_i64()
        .map(|d| Dim(d as isize))
        .ok_or_else(|| format!("bad dim {v}"))
}
