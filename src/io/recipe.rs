//! Pruning recipes: several pruning steps run in one pass over a
//! checkpoint's files.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{CheckpointError, CheckpointFiles, FilePruner, StreamMethod};
use crate::io::stream::Stage;
use crate::{Amount, Dim, Glob, Norm};

/// What is wrong with a recipe, naming the step (counted from 1) and the
/// field.
///
/// ```
/// use ndprune::io::{Recipe, RecipeError};
/// let err = Recipe::from_json(r#"{"steps": [{"method": "l3", "amount": 0.5}]}"#).unwrap_err();
/// assert!(matches!(err, RecipeError::Field { step: Some(1), ref field, .. } if field == "method"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The text is no JSON object.
    #[error("the recipe is no valid JSON: {message}")]
    Json {
        /// What the JSON parser said.
        message: String,
    },
    /// The text is no TOML document ([`Recipe::from_toml`]).
    #[error("the recipe is no valid TOML: {message}")]
    Toml {
        /// What the TOML parser said.
        message: String,
    },
    /// The recipe file cannot be read ([`Recipe::from_path`]).
    #[error("{}: reading the recipe: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The recipe file's name ends in neither `.json` nor `.toml`
    /// ([`Recipe::from_path`]).
    #[error("{}: a recipe file ends in .json or .toml", path.display())]
    UnknownFormat {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A field is missing, unknown or of a wrong value.
    #[error("{}`{field}`: {problem}", step.map(|s| format!("step {s}: ")).unwrap_or_default())]
    Field {
        /// The step (from 1), `None` for the recipe's own fields.
        step: Option<usize>,
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// An `include` pattern, or an override's, names no tensor of the
    /// checkpoint (likely a typo).
    #[error("step {step}: `{field}` pattern `{pattern}` matches no tensor of the checkpoint")]
    NoMatch {
        /// The step (from 1).
        step: usize,
        /// `include` or `overrides`.
        field: String,
        /// The pattern.
        pattern: String,
    },
    /// Reading the checkpoint to check the recipe against it failed.
    #[error(transparent)]
    Checkpoint(#[from] Box<CheckpointError>),
}

/// One step of a [`Recipe`].
///
/// ```
/// use ndprune::io::Recipe;
/// let r = Recipe::from_json(r#"{"steps": [{"method": "global", "amount": 0.2}]}"#).unwrap();
/// assert_eq!(r.steps()[0].method().name(), "global");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeStep {
    method: StreamMethod,
    amount: Amount,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    overrides: Vec<(Glob, Amount)>,
}

impl RecipeStep {
    /// The method.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "l1_unstructured", "amount": 3}]}"#).unwrap();
    /// assert_eq!(r.steps()[0].method(), ndprune::io::StreamMethod::L1Unstructured);
    /// ```
    pub fn method(&self) -> StreamMethod {
        self.method
    }

    /// The amount (for a tensor without an override).
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "l1_unstructured", "amount": 3}]}"#).unwrap();
    /// assert_eq!(r.steps()[0].amount(), ndprune::Amount::Count(3));
    /// ```
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// Whether the step prunes the tensor `name` (before the recipe's
    /// `skip`): it matches an `include` pattern (every tensor of 2 or more
    /// dims when there is none; `ndim` is the tensor's) and no `exclude`.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(
    ///     r#"{"steps": [{"method": "l1_unstructured", "amount": 0.5, "include": ["conv?.weight"]}]}"#,
    /// ).unwrap();
    /// assert!(r.steps()[0].selects("conv1.weight", 4));
    /// assert!(!r.steps()[0].selects("conv1_bn.weight", 1));
    /// ```
    pub fn selects(&self, name: &str, ndim: usize) -> bool {
        let included = if self.include.is_empty() {
            ndim >= 2
        } else {
            self.include.iter().any(|g| g.is_match(name))
        };
        included && !self.exclude.iter().any(|g| g.is_match(name))
    }

    /// The amount for the tensor `name`: its override (the first that
    /// matches, patterns in sorted order), or the step's.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(
    ///     r#"{"steps": [{"method": "l1_unstructured", "amount": 0.5, "overrides": {"fc.weight": 0.1}}]}"#,
    /// ).unwrap();
    /// assert_eq!(r.steps()[0].amount_for("fc.weight"), ndprune::Amount::Fraction(0.1));
    /// assert_eq!(r.steps()[0].amount_for("fc2.weight"), ndprune::Amount::Fraction(0.5));
    /// ```
    pub fn amount_for(&self, name: &str) -> Amount {
        self.overrides
            .iter()
            .find(|(g, _)| g.is_match(name))
            .map_or(self.amount, |(_, a)| *a)
    }
}

/// Ordered pruning steps, run on a checkpoint in one pass
/// ([`Recipe::pruner`], `ndprune prune IN OUT --recipe FILE`).
///
/// A recipe is a JSON object ([`Recipe::from_json`]), or the same fields
/// in TOML ([`Recipe::from_toml`]; [`Recipe::from_path`] goes by the file's
/// extension):
///
/// ```json
/// {
///   "skip": ["lm_head.weight"],
///   "max_sparsity": 0.9,
///   "steps": [
///     {"method": "ln_structured", "amount": 0.25, "n": 2, "dim": 0, "include": ["**.conv?.weight"]},
///     {"method": "l1_unstructured", "amount": 0.3, "overrides": {"fc.weight": 0.1}},
///     {"method": "global", "amount": 0.2}
///   ]
/// }
/// ```
///
/// - `method`: `l1_unstructured`, `ln_structured` (needs `n`: a number,
///   `"fro"`, `"inf"` or `"-inf"`; and `dim`), `random_unstructured`
///   (needs `seed`), `random_structured` (needs `dim` and `seed`; seeded
///   per tensor as [`StreamMethod::RandomUnstructured`]; or, instead of
///   `seed`, `torch_seed` for PyTorch's stream as
///   [`StreamMethod::TorchRandomUnstructured`], in a recipe of that one
///   step and no `max_sparsity`), `global`
///   (L1 over all the tensors the step selects together, as
///   `prune.global_unstructured`, ties in PyTorch's order given the tensors
///   by name), `nm_structured` (needs `n` and `m`, `dim` 1 unless given;
///   no `amount`), `block_sparsity` (needs `block`; `zeros_per_block`,
///   `block_norm`), `wanda` ([`StreamMethod::Wanda`]: `amount` of each
///   output row, rounded down) or `wanda_nm` ([`StreamMethod::WandaNm`]:
///   needs `n`, the entries kept, and `m`; no `amount`, no `dim`). Wanda's
///   steps need the activation norms given to the pruner
///   ([`FilePruner::activation_norms`], the CLI's `--act-norms`; see
///   [`Recipe::needs_activation_norms`]).
/// - `amount`: an integer is a count, a number with a fraction or exponent
///   (`0.3`, `1.0`) a fraction of what is left, as in PyTorch.
/// - `include`, `exclude`: patterns of [`Glob`], matched segment by
///   segment: **`*` and `?` never cross a dot**, `**` spans whole
///   segments. So `conv*.weight` selects `conv1.weight` and (one segment)
///   `conv1_bn.weight`, but never `conv1.bn.weight`; `conv?.weight` keeps
///   `conv1_bn.weight` out. Without `include`, every float tensor of 2 or
///   more dims. An `include` pattern that matches no tensor of the
///   checkpoint is an error.
/// - `overrides`: pattern (or exact name) → amount for the tensors it
///   matches. JSON objects have no order: the patterns are tried in
///   sorted order, the first match wins (so an exact name may be shadowed
///   by a pattern sorting before it; keep overrides disjoint). Not allowed on a
///   `global` step (one cut for all). A pattern matching no tensor the step
///   selects is an error.
/// - `skip`: patterns of tensors no step prunes.
/// - `max_sparsity`: in `[0, 1]`; no tensor's fraction of pruned entries
///   may go past it. A per-tensor step whose amount would take a tensor
///   past `floor(max_sparsity × numel)` pruned entries prunes instead the
///   largest count (of entries, or of channels for a structured method)
///   that stays within; one already past it prunes nothing more. An N:M,
///   block or Wanda N:M step has no amount to clamp: on a tensor it would
///   take past the cap, it prunes nothing (the dry run shows it). A global
///   step is not clamped (that would move its cut for every tensor): if it
///   would take a tensor past the cap, the run fails with
///   [`CheckpointError::SparsityCap`] and nothing is written.
///
/// Unknown fields, in the recipe or a step, are errors. Steps run in
/// order on each tensor, each pruning what the earlier ones left (as
/// PyTorch's pruning container does), so a recipe gives exactly what the
/// same steps give run one after the other.
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointFiles, Output, Recipe};
/// use ndprune::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir();
/// let (input, output) = (dir.join("ndprune-doc-recipe-in.safetensors"), dir.join("ndprune-doc-recipe-out.safetensors"));
/// let w = ndarray::array![[1.0f32, -2.0, 3.0, 4.0], [0.5, 6.0, -7.0, 8.0]].into_dyn();
/// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
///
/// let recipe = Recipe::from_json(r#"{"steps": [
///     {"method": "l1_unstructured", "amount": 2},
///     {"method": "global", "amount": 1}
/// ]}"#)?;
/// let files = CheckpointFiles::open(&input)?;
/// let report = recipe.pruner(&files)?.run(&files, &Output::File(output.clone()), &mut ())?;
/// assert_eq!(report.tensors[0].after, 3);
/// let pruned = Checkpoint::<f32>::load(&output)?;
/// assert_eq!(pruned.tensor("fc.weight").unwrap(), &ndarray::array![[0.0f32, 0.0, 3.0, 4.0], [0.0, 6.0, -7.0, 8.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    steps: Vec<RecipeStep>,
    skip: Vec<Glob>,
    max_sparsity: Option<f64>,
}

impl Recipe {
    /// Parses a recipe (see [`Recipe`] for the format).
    ///
    /// ```
    /// use ndprune::io::{Recipe, RecipeError};
    /// let err = Recipe::from_json(r#"{"steps": [{"method": "ln_structured", "amount": 0.5, "n": 2}]}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "step 1: `dim`: ln_structured needs it");
    /// let err = Recipe::from_json(r#"{"steps": [], "max_sparsity": 0.9, "colour": 1}"#).unwrap_err();
    /// assert!(matches!(err, RecipeError::Field { step: None, ref field, .. } if field == "colour"));
    /// ```
    pub fn from_json(text: &str) -> Result<Self, RecipeError> {
        let value: Value = serde_json::from_str(text).map_err(|e| RecipeError::Json {
            message: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Parses a recipe written in TOML: the same fields as the JSON form
    /// (see [`Recipe`]), steps as an array of tables `[[steps]]`, checked
    /// by the same rules (an integer amount is a count, a float a
    /// fraction). A norm is a number or a string (`n = "inf"`).
    ///
    /// ```
    /// use ndprune::io::{Recipe, RecipeError};
    /// let r = Recipe::from_toml(r#"
    /// skip = ["lm_head.weight"]
    ///
    /// [[steps]]
    /// method = "ln_structured"
    /// amount = 0.25
    /// n = 2
    /// dim = 0
    ///
    /// [[steps]]
    /// method = "global"
    /// amount = 3
    /// "#)?;
    /// assert_eq!(r.steps()[1].amount(), ndprune::Amount::Count(3));
    /// let err = Recipe::from_toml("[[steps]]\nmethod = \"global\"\namount = 2.5\n").unwrap_err();
    /// assert!(matches!(err, RecipeError::Field { step: Some(1), ref field, .. } if field == "amount"));
    /// # Ok::<(), RecipeError>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, RecipeError> {
        // TOML read into JSON's data model: one validator for both forms.
        // JSON has no nan or inf (they would read as null): they go as the
        // words the user wrote, which the validator refuses by field.
        let mut toml_value: toml::Value = toml::from_str(text).map_err(|e| RecipeError::Toml {
            message: e.to_string().trim_end().to_string(),
        })?;
        spell_non_finite(&mut toml_value);
        let value: Value =
            serde::Deserialize::deserialize(toml_value).map_err(|e| RecipeError::Toml {
                message: e.to_string().trim_end().to_string(),
            })?;
        Self::from_value(value)
    }

    /// Reads a recipe file: JSON if its name ends in `.json`, TOML if in
    /// `.toml` (case aside); any other name is
    /// [`RecipeError::UnknownFormat`].
    ///
    /// ```
    /// use ndprune::io::{Recipe, RecipeError};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-recipe.toml");
    /// std::fs::write(&path, "[[steps]]\nmethod = \"global\"\namount = 0.5\n")?;
    /// assert_eq!(Recipe::from_path(&path)?.steps().len(), 1);
    /// let err = Recipe::from_path("recipe.yaml").unwrap_err();
    /// assert!(matches!(err, RecipeError::UnknownFormat { .. }));
    /// # Ok(()) }
    /// ```
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, RecipeError> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, RecipeError> = match ext.as_deref() {
            Some("json") => Self::from_json,
            Some("toml") => Self::from_toml,
            _ => {
                return Err(RecipeError::UnknownFormat {
                    path: path.to_path_buf(),
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text)
    }

    /// Checks a recipe document (JSON's data model, whichever form it was
    /// written in) and makes the recipe.
    fn from_value(value: Value) -> Result<Self, RecipeError> {
        let top = |field: &str, problem: String| RecipeError::Field {
            step: None,
            field: field.to_string(),
            problem,
        };
        let Value::Object(obj) = value else {
            return Err(RecipeError::Json {
                message: "a recipe is a JSON object".into(),
            });
        };
        let obj = &obj;
        for key in obj.keys() {
            if !["steps", "skip", "max_sparsity"].contains(&key.as_str()) {
                return Err(top(
                    key,
                    "unknown field (expected steps, skip, max_sparsity)".into(),
                ));
            }
        }
        let skip = globs(obj, "skip", None)?;
        let max_sparsity = match obj.get("max_sparsity") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => Some(f),
                _ => return Err(top("max_sparsity", format!("{v} is no number in [0, 1]"))),
            },
        };
        let Some(Value::Array(raw)) = obj.get("steps") else {
            return Err(top("steps", "a list of steps is needed".into()));
        };
        let steps: Vec<RecipeStep> = raw
            .iter()
            .enumerate()
            .map(|(i, v)| step(i + 1, v))
            .collect::<Result<_, _>>()?;
        // PyTorch's stream runs through one step's tensors in the order of
        // their names; across several steps, or clamped by a cap, there is
        // no one PyTorch program it would be the stream of.
        let torch = |m: StreamMethod| {
            matches!(
                m,
                StreamMethod::TorchRandomUnstructured { .. }
                    | StreamMethod::TorchRandomStructured { .. }
            )
        };
        if let Some(s) = steps.iter().position(|st| torch(st.method)) {
            let field = |problem: &str| RecipeError::Field {
                step: Some(s + 1),
                field: "torch_seed".into(),
                problem: problem.into(),
            };
            if steps.len() > 1 {
                return Err(field(
                    "PyTorch's stream is followed in a recipe of one step only",
                ));
            }
            if max_sparsity.is_some() {
                return Err(field("PyTorch's stream is not followed under max_sparsity"));
            }
        }
        Ok(Recipe {
            steps,
            skip,
            max_sparsity,
        })
    }

    /// The steps, in order.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "global", "amount": 0.2}]}"#).unwrap();
    /// assert_eq!(r.steps().len(), 1);
    /// ```
    pub fn steps(&self) -> &[RecipeStep] {
        &self.steps
    }

    /// Whether a step is Wanda's (`wanda`, `wanda_nm`): its pruner needs
    /// activation norms ([`FilePruner::activation_norms`]; the CLI's
    /// `--act-norms`).
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "wanda_nm", "n": 2, "m": 4}]}"#).unwrap();
    /// assert!(r.needs_activation_norms());
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "global", "amount": 0.2}]}"#).unwrap();
    /// assert!(!r.needs_activation_norms());
    /// ```
    pub fn needs_activation_norms(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.method, StreamMethod::Wanda | StreamMethod::WandaNm { .. }))
    }

    /// The cap on any tensor's fraction of pruned entries.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [], "max_sparsity": 0.8}"#).unwrap();
    /// assert_eq!(r.max_sparsity(), Some(0.8));
    /// ```
    pub fn max_sparsity(&self) -> Option<f64> {
        self.max_sparsity
    }

    /// Whether the recipe's `skip` keeps `name` from every step.
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [], "skip": ["lm_head.*"]}"#).unwrap();
    /// assert!(r.skips("lm_head.weight") && !r.skips("fc.weight"));
    /// ```
    pub fn skips(&self, name: &str) -> bool {
        self.skip.iter().any(|g| g.is_match(name))
    }

    /// Which tensors step `s` (from 0) prunes, among the candidates
    /// `(name, ndim)` (after `skip`).
    ///
    /// ```
    /// let r = ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "global", "amount": 0.2}]}"#).unwrap();
    /// assert_eq!(r.selected(0, &[("a.weight".into(), 2), ("a.bias".into(), 1)]), vec!["a.weight".to_string()]);
    /// ```
    pub fn selected(&self, s: usize, candidates: &[(String, usize)]) -> Vec<String> {
        candidates
            .iter()
            .filter(|(n, d)| !self.skips(n) && self.steps[s].selects(n, *d))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Checks the recipe against the checkpoint (every `include` and
    /// override pattern names a tensor) and makes the [`FilePruner`] that
    /// runs it: all steps in one pass over the files, no intermediate file.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, Recipe, RecipeError};
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let input = std::env::temp_dir().join("ndprune-doc-recipe-check.safetensors");
    /// let w = ndarray::array![[1.0f32, 2.0]].into_dyn();
    /// Checkpoint::new(Sequential::new().with_child("fc", Layer::new().with_parameter("weight", w)?)?).save(&input)?;
    /// let recipe = Recipe::from_json(r#"{"steps": [{"method": "global", "amount": 1, "include": ["conv*.weight"]}]}"#)?;
    /// let err = recipe.pruner(&CheckpointFiles::open(&input)?).unwrap_err();
    /// assert!(matches!(err, RecipeError::NoMatch { step: 1, .. }));
    /// # Ok(()) }
    /// ```
    pub fn pruner(&self, files: &CheckpointFiles) -> Result<FilePruner<'_>, RecipeError> {
        let candidates = candidates(files)?;
        for (s, step) in self.steps.iter().enumerate() {
            for g in &step.include {
                if !candidates.iter().any(|(n, _)| g.is_match(n)) {
                    return Err(RecipeError::NoMatch {
                        step: s + 1,
                        field: "include".into(),
                        pattern: g.as_str().into(),
                    });
                }
            }
            let selected = self.selected(s, &candidates);
            for (g, _) in &step.overrides {
                if !selected.iter().any(|n| g.is_match(n)) {
                    return Err(RecipeError::NoMatch {
                        step: s + 1,
                        field: "overrides".into(),
                        pattern: g.as_str().into(),
                    });
                }
            }
        }
        let stages = self
            .steps
            .iter()
            .map(|step| Stage {
                method: step.method,
                amount: step.amount,
                select: Some(Box::new(move |spec: &super::TensorSpec| {
                    !self.skips(spec.name()) && step.selects(spec.name(), spec.shape().len())
                })),
                amount_for: Some(Box::new(move |name: &str| Some(step.amount_for(name)))),
            })
            .collect();
        Ok(FilePruner::from_stages(stages, self.max_sparsity))
    }
}

/// The checkpoint's tensors by the names pruning sees (`X` for a pair
/// `X_orig`/`X_mask`), with their dims.
fn candidates(files: &CheckpointFiles) -> Result<Vec<(String, usize)>, RecipeError> {
    let view = files.view().map_err(Box::new)?;
    let names: BTreeSet<&str> = view.entries().iter().map(|e| e.name()).collect();
    let mut out = Vec::new();
    for e in view.entries() {
        let name = e.name();
        if let Some(base) = name.strip_suffix("_mask") {
            if names.contains(format!("{base}_orig").as_str()) {
                continue;
            }
        }
        let name = match name.strip_suffix("_orig") {
            Some(base) if names.contains(format!("{base}_mask").as_str()) => base,
            _ => name,
        };
        out.push((name.to_string(), e.shape().len()));
    }
    Ok(out)
}

fn globs(
    obj: &Map<String, Value>,
    field: &str,
    step: Option<usize>,
) -> Result<Vec<Glob>, RecipeError> {
    let bad = |problem: String| RecipeError::Field {
        step,
        field: field.to_string(),
        problem,
    };
    match obj.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v.as_str() {
                Some(p) => Glob::new(p).map_err(|e| bad(e.to_string())),
                None => Err(bad(format!("{v} is no pattern (a string)"))),
            })
            .collect(),
        Some(v) => Err(bad(format!("{v} is no list of patterns"))),
    }
}

fn parse_amount(v: &Value, step: usize, field: &str) -> Result<Amount, RecipeError> {
    let bad = |problem: String| RecipeError::Field {
        step: Some(step),
        field: field.to_string(),
        problem,
    };
    let a = match v {
        Value::Number(n) if n.is_u64() => Amount::Count(
            usize::try_from(n.as_u64().expect("is_u64 was checked"))
                .map_err(|_| bad(format!("{n} is too large")))?,
        ),
        Value::Number(n) if n.is_f64() => Amount::Fraction(n.as_f64().expect("is_f64 was checked")),
        _ => {
            return Err(bad(format!(
                "{v} is no amount (a count of 0 or more, or a fraction in [0, 1])"
            )))
        }
    };
    a.validate().map_err(|e| bad(e.to_string()))?;
    Ok(a)
}

fn step(s: usize, v: &Value) -> Result<RecipeStep, RecipeError> {
    let bad = |field: &str, problem: String| RecipeError::Field {
        step: Some(s),
        field: field.to_string(),
        problem,
    };
    let Value::Object(obj) = v else {
        return Err(bad("steps", format!("step {s} is no object")));
    };
    const FIELDS: [&str; 13] = [
        "method",
        "amount",
        "n",
        "dim",
        "seed",
        "torch_seed",
        "include",
        "exclude",
        "overrides",
        "m",
        "block",
        "zeros_per_block",
        "block_norm",
    ];
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return Err(bad(
                key,
                format!("unknown field (expected one of {})", FIELDS.join(", ")),
            ));
        }
    }
    let method = obj
        .get("method")
        .ok_or_else(|| bad("method", "missing".into()))?;
    let method = method
        .as_str()
        .ok_or_else(|| bad("method", format!("{method} is no method name")))?;
    // N:M keeps n of every m: it has no amount.
    let nm = matches!(method, "nm_structured" | "wanda_nm");
    let amount = match obj.get("amount") {
        None if nm => Amount::Count(0),
        None => return Err(bad("amount", "missing".into())),
        Some(_) if nm => {
            return Err(bad(
                "amount",
                format!("{method} takes none (n of every m are kept)"),
            ))
        }
        Some(v) => parse_amount(v, s, "amount")?,
    };
    let count = |field: &str| -> Result<usize, RecipeError> {
        let v = obj
            .get(field)
            .ok_or_else(|| bad(field, format!("{method} needs it")))?;
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| bad(field, format!("{v} is no count (an integer of 0 or more)")))
    };
    let need = |field: &str| {
        obj.get(field)
            .ok_or_else(|| bad(field, format!("{method} needs it")))
    };
    let dim = |_: ()| -> Result<Dim, RecipeError> {
        let v = need("dim")?;
        v.as_i64()
            .and_then(|d| isize::try_from(d).ok())
            .map(Dim)
            .ok_or_else(|| bad("dim", format!("{v} is no dim (an integer)")))
    };
    // `seed`, or `torch_seed` for PyTorch's stream (`true`): one of them.
    let seed = |_: ()| -> Result<(u64, bool), RecipeError> {
        let (field, torch) = match (obj.get("seed"), obj.get("torch_seed")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "torch_seed",
                    "a step has `seed` or `torch_seed`, not both".into(),
                ))
            }
            (None, Some(_)) => ("torch_seed", true),
            (Some(_), None) => ("seed", false),
            (None, None) => {
                return Err(bad(
                    "seed",
                    format!("{method} needs it (or `torch_seed`, for PyTorch's stream)"),
                ))
            }
        };
        let v = &obj[field];
        v.as_u64()
            .map(|s| (s, torch))
            .ok_or_else(|| bad(field, format!("{v} is no seed (an integer of 0 or more)")))
    };
    let method = match method {
        "l1_unstructured" => StreamMethod::L1Unstructured,
        "ln_structured" => {
            let n = need("n")?;
            let norm = match n {
                Value::String(t) if t == "fro" => Norm::Fro,
                Value::String(t) if t == "inf" => Norm::Inf,
                Value::String(t) if t == "-inf" => Norm::NegInf,
                Value::Number(x) => Norm::L(x.as_f64().unwrap_or(f64::NAN)),
                _ => {
                    return Err(bad(
                        "n",
                        format!("{n} is no norm (a number, \"fro\", \"inf\" or \"-inf\")"),
                    ))
                }
            };
            StreamMethod::LnStructured { norm, dim: dim(())? }
        }
        "random_unstructured" => match seed(())? {
            (seed, false) => StreamMethod::RandomUnstructured { seed },
            (seed, true) => StreamMethod::TorchRandomUnstructured { seed },
        },
        "random_structured" => {
            let dim = dim(())?;
            match seed(())? {
                (seed, false) => StreamMethod::RandomStructured { dim, seed },
                (seed, true) => StreamMethod::TorchRandomStructured { dim, seed },
            }
        }
        "global" => StreamMethod::Global,
        "nm_structured" => {
            let (n, m) = (count("n")?, count("m")?);
            let dim = if obj.contains_key("dim") { dim(())? } else { Dim(1) };
            crate::NmStructured::new(n, m, dim).map_err(|e| bad("m", e.to_string()))?;
            StreamMethod::NmStructured { n, m, dim }
        }
        "wanda" => StreamMethod::Wanda,
        "wanda_nm" => {
            let (n, m) = (count("n")?, count("m")?);
            crate::NmStructured::new(n, m, Dim(1)).map_err(|e| bad("m", e.to_string()))?;
            StreamMethod::WandaNm { n, m }
        }
        "block_sparsity" => {
            let v = need("block")?;
            let sides: Option<Vec<usize>> = v.as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                    .collect()
            });
            let block = match sides.as_deref() {
                Some(&[r, c]) if v.as_array().map(Vec::len) == Some(2) => (r, c),
                _ => return Err(bad("block", format!("{v} is no block shape ([rows, cols])"))),
            };
            let zeros_per_block = if obj.contains_key("zeros_per_block") {
                Some(count("zeros_per_block")?)
            } else {
                None
            };
            let norm = match obj.get("block_norm").map(|v| v.as_str()) {
                None | Some(Some("l2")) => crate::BlockNorm::L2,
                Some(Some("l1")) => crate::BlockNorm::L1,
                Some(_) => return Err(bad("block_norm", "expected \"l1\" or \"l2\"".into())),
            };
            let level = match amount {
                Amount::Fraction(f) => f,
                Amount::Count(c) => c as f64,
            };
            crate::BlockSparsity::new(level, block)
                .and_then(|b| b.with_zeros_per_block(zeros_per_block.unwrap_or(block.0 * block.1)))
                .map_err(|e| bad("block", e.to_string()))?;
            StreamMethod::BlockSparsity {
                block,
                zeros_per_block,
                norm,
            }
        }
        other => {
            return Err(bad(
                "method",
                format!("unknown method `{other}` (expected l1_unstructured, ln_structured, random_unstructured, random_structured, global, nm_structured, block_sparsity, wanda or wanda_nm)"),
            ))
        }
    };
    // A field the method does not take is a mistake, not ignored.
    let takes: &[&str] = match method {
        StreamMethod::LnStructured { .. } => &["n", "dim"],
        StreamMethod::NmStructured { .. } => &["n", "m", "dim"],
        StreamMethod::WandaNm { .. } => &["n", "m"],
        StreamMethod::BlockSparsity { .. } => &["block", "zeros_per_block", "block_norm"],
        StreamMethod::RandomUnstructured { .. } | StreamMethod::TorchRandomUnstructured { .. } => {
            &["seed", "torch_seed"]
        }
        StreamMethod::RandomStructured { .. } | StreamMethod::TorchRandomStructured { .. } => {
            &["dim", "seed", "torch_seed"]
        }
        _ => &[],
    };
    for field in [
        "n",
        "m",
        "dim",
        "seed",
        "torch_seed",
        "block",
        "zeros_per_block",
        "block_norm",
    ] {
        if obj.contains_key(field) && !takes.contains(&field) {
            return Err(bad(field, format!("{} takes no `{field}`", method.name())));
        }
    }
    let include = globs(obj, "include", Some(s))?;
    let exclude = globs(obj, "exclude", Some(s))?;
    let overrides = match obj.get("overrides") {
        None => Vec::new(),
        Some(_) if method == StreamMethod::Global => {
            return Err(bad(
                "overrides",
                "a global step has one amount for all its tensors".into(),
            ))
        }
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let g = Glob::new(k).map_err(|e| bad("overrides", e.to_string()))?;
                Ok((g, parse_amount(v, s, "overrides")?))
            })
            .collect::<Result<_, RecipeError>>()?,
        Some(v) => return Err(bad("overrides", format!("{v} is no object"))),
    };
    Ok(RecipeStep {
        method,
        amount,
        include,
        exclude,
        overrides,
    })
}

/// Turns every nan or infinite float of `v` into its word (`nan`, `inf`,
/// `-inf`), which JSON's data model can hold.
fn spell_non_finite(v: &mut toml::Value) {
    match v {
        toml::Value::Float(f) if !f.is_finite() => *v = toml::Value::String(f.to_string()),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| spell_non_finite(v)),
        toml::Value::Array(a) => a.iter_mut().for_each(spell_non_finite),
        _ => {}
    }
}
