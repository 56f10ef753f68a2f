//! The gradual pruner: a model moved to a schedule's sparsity step by step.

use std::collections::{HashMap, HashSet};

use ndarray::ArrayD;

use super::Schedule;
use crate::error::ForTensor;
use crate::module::{mask_name, resolve};
use crate::{
    prune, Amount, L1Unstructured, Module, PruneError, PruneErrorKind, PruneFloat, Rounding,
    TieBreak,
};

/// Which entries a scheduled sparsity is counted over.
///
/// ```
/// use ndprune::schedule::Scope;
/// assert_ne!(Scope::PerTensor, Scope::Global);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Each selected tensor on its own: tensor `i` of `nᵢ` entries has
    /// `rounding(s × nᵢ)` pruned, by its own magnitudes (as
    /// `l1_unstructured` of each). The model's count is the sum of these.
    PerTensor,
    /// The selected tensors together: `rounding(s × Σ nᵢ)` entries pruned
    /// in all, by magnitudes compared across tensors (as
    /// `global_unstructured`).
    Global,
}

/// Moves the selected tensors of a model to the sparsity a [`Schedule`]
/// gives at each step, through iterative pruning: each step prunes, by
/// magnitude (or by importance scores given), just the entries still
/// unpruned that bring the count of pruned entries to the scheduled one.
///
/// ```text
/// target(step) = rounding(s(step) × entries)         (per tensor or over all: Scope)
/// at a step where the schedule prunes:
///     prune Count(target − already pruned) of the entries left, if target > already pruned
/// ```
///
/// So after every pruning step the count of pruned entries equals the
/// target exactly, masks only gain zeros, every step is recorded in the
/// tensors' pruning histories, and [`prune::remove`] and checkpoints work
/// as after any pruning. Rounding is [`Rounding::HalfEven`] by default (as
/// `Amount::Fraction`).
///
/// The pruner never brings a pruned entry back. A tensor (or, in
/// [`Scope::Global`], the selection) already pruned beyond the target —
/// pruned before the schedule started, or by a schedule of your own that
/// falls — is left as it is at that step: [`GradualStep::after`] then
/// exceeds [`GradualStep::target`]. The built-in schedules cannot fall:
/// their constructors refuse a final sparsity below the initial one.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::schedule::{CubicSL, GradualPruner, Scope};
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut model = Sequential::<f32>::new()
///     .push(Layer::linear(16, 32, &mut rng))
///     .push(Layer::linear(32, 10, &mut rng));
/// let schedule = CubicSL::new(0.9)?.with_steps(0, 1, 5)?;
/// let pruner = GradualPruner::new(schedule, ["0.weight", "1.weight"], Scope::Global)?;
/// for step in 0..=5 {
///     // ... train a while ...
///     let done = pruner.step(&mut model, step)?;
///     assert_eq!(done.after, done.target);
/// }
/// // 90 % of 16·32 + 32·10 = 832 entries, rounded: 749.
/// let report = SparsityReport::of(&model);
/// assert_eq!(report.tensor("0.weight").unwrap().pruned().unwrap()
///     + report.tensor("1.weight").unwrap().pruned().unwrap(), 749);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GradualPruner<S> {
    schedule: S,
    targets: Vec<String>,
    scope: Scope,
    rounding: Rounding,
    ties: TieBreak,
}

/// What one [`GradualPruner::step`] did.
///
/// ```
/// use ndprune::schedule::GradualStep;
/// let s = GradualStep { step: 3, sparsity: 0.5, pruning: true, entries: 10, target: 5, before: 2, after: 5 };
/// assert_eq!(s.after - s.before, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradualStep {
    /// The step.
    pub step: i64,
    /// The schedule's sparsity at the step.
    pub sparsity: f64,
    /// Whether the schedule prunes at this step (else nothing changed).
    pub pruning: bool,
    /// Entries of the selected tensors.
    pub entries: usize,
    /// The scheduled count of pruned entries (in [`Scope::PerTensor`], the
    /// sum of each tensor's).
    pub target: usize,
    /// Entries pruned before the step.
    pub before: usize,
    /// Entries pruned after it.
    pub after: usize,
}

/// A selected tensor as the step found it.
struct Found {
    entries: usize,
    pruned: usize,
}

impl<S: Schedule> GradualPruner<S> {
    /// A pruner of the tensors at `targets` (dotted paths, each once) on
    /// `schedule`, counted by `scope`.
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// let s = ConstantSparsity::new(0.5).unwrap();
    /// assert!(GradualPruner::new(s, ["a.weight", "a.weight"], Scope::Global).is_err());
    /// ```
    pub fn new<I>(schedule: S, targets: I, scope: Scope) -> Result<Self, PruneError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let targets: Vec<String> = targets.into_iter().map(Into::into).collect();
        let mut seen = HashSet::with_capacity(targets.len());
        for t in &targets {
            if !seen.insert(t.as_str()) {
                return Err(PruneError::new(
                    t.clone(),
                    PruneErrorKind::DuplicateTarget {
                        first: t.clone(),
                        again: t.clone(),
                    },
                ));
            }
        }
        Ok(GradualPruner {
            schedule,
            targets,
            scope,
            rounding: Rounding::HalfEven,
            ties: TieBreak::Torch,
        })
    }

    /// The same pruner with another rounding of `s × entries`.
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// use ndprune::Rounding;
    /// let p = GradualPruner::new(ConstantSparsity::new(0.25).unwrap(), ["w"], Scope::Global).unwrap()
    ///     .with_rounding(Rounding::Down);
    /// assert_eq!(p.target_count(0, 10).unwrap(), 2);
    /// ```
    pub fn with_rounding(self, rounding: Rounding) -> Self {
        GradualPruner { rounding, ..self }
    }

    /// The same pruner with another rule for equal magnitudes at the cut
    /// (default [`TieBreak::Torch`]).
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// use ndprune::TieBreak;
    /// let p = GradualPruner::new(ConstantSparsity::new(0.5).unwrap(), ["w"], Scope::Global).unwrap()
    ///     .with_tie_break(TieBreak::LowestIndex);
    /// # let _ = p;
    /// ```
    pub fn with_tie_break(self, ties: TieBreak) -> Self {
        GradualPruner { ties, ..self }
    }

    /// The schedule.
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Schedule, Scope};
    /// let p = GradualPruner::new(ConstantSparsity::new(0.5).unwrap(), ["w"], Scope::Global).unwrap();
    /// assert_eq!(p.schedule().sparsity(0), 0.5);
    /// ```
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// The selected tensors' paths.
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// let p = GradualPruner::new(ConstantSparsity::new(0.5).unwrap(), ["a", "b"], Scope::PerTensor).unwrap();
    /// assert_eq!(p.targets(), ["a", "b"]);
    /// ```
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The scheduled count of pruned entries at `step` among `entries`:
    /// `rounding(s(step) × entries)`. Fails if the schedule gives a
    /// sparsity outside `[0, 1]` ([`PruneErrorKind::ScheduledSparsity`]).
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// let p = GradualPruner::new(ConstantSparsity::new(0.25).unwrap(), ["w"], Scope::Global).unwrap();
    /// assert_eq!(p.target_count(7, 10).unwrap(), 2); // 2.5 to even
    /// ```
    pub fn target_count(&self, step: i64, entries: usize) -> Result<usize, PruneError> {
        let s = self.checked_sparsity(step)?;
        self.rounding.count(s, entries)
    }

    fn checked_sparsity(&self, step: i64) -> Result<f64, PruneError> {
        let value = self.schedule.sparsity(step);
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(PruneErrorKind::ScheduledSparsity { step, value }.into())
        }
    }

    /// Prunes the model to the schedule's sparsity at `step`, by magnitude
    /// (see [`GradualPruner`]). A step at which the schedule does not prune
    /// ([`Schedule::prunes_at`]) changes nothing. On error nothing changes.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::new().with_parameter("weight", array![[0.1f32, -4.0], [2.0, 0.3]].into_dyn())?;
    /// let p = GradualPruner::new(ConstantSparsity::new(0.5)?, ["weight"], Scope::PerTensor)?;
    /// let done = p.step(&mut layer, 0)?;
    /// assert_eq!((done.before, done.after), (0, 2));
    /// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[0.0f32, 1.0], [1.0, 0.0]].into_dyn());
    /// assert!(p.step(&mut layer, 1)?.after == 2); // reached: nothing more
    /// assert!(GradualPruner::new(ConstantSparsity::new(0.5)?, ["nope"], Scope::PerTensor)?.step(&mut layer, 0).is_err());
    /// # Ok(()) }
    /// ```
    pub fn step<T, M>(&self, model: &mut M, step: i64) -> Result<GradualStep, PruneError>
    where
        T: PruneFloat,
        M: Module<T> + ?Sized,
    {
        self.run(model, step, None)
    }

    /// As [`GradualPruner::step`], ranking by the importance scores given
    /// (by path, each of its tensor's shape; a selected tensor without
    /// scores is ranked by its magnitudes, scores for other paths are not
    /// read): Wanda's scores, say
    /// ([`wanda::scores`](crate::wanda::scores)).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::schedule::{ConstantSparsity, GradualPruner, Scope};
    /// use ndarray::array;
    /// use std::collections::HashMap;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut layer = Layer::new().with_parameter("weight", array![0.1f32, -4.0, 2.0, 0.3].into_dyn())?;
    /// let scores = HashMap::from([("weight".to_string(), array![9.0f32, 1.0, 2.0, 8.0].into_dyn())]);
    /// let p = GradualPruner::new(ConstantSparsity::new(0.5)?, ["weight"], Scope::Global)?;
    /// p.step_with_scores(&mut layer, 0, &scores)?;
    /// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![1.0f32, 0.0, 0.0, 1.0].into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn step_with_scores<T, M>(
        &self,
        model: &mut M,
        step: i64,
        scores: &HashMap<String, ArrayD<T>>,
    ) -> Result<GradualStep, PruneError>
    where
        T: PruneFloat,
        M: Module<T> + ?Sized,
    {
        self.run(model, step, Some(scores))
    }

    fn run<T, M>(
        &self,
        model: &mut M,
        step: i64,
        scores: Option<&HashMap<String, ArrayD<T>>>,
    ) -> Result<GradualStep, PruneError>
    where
        T: PruneFloat,
        M: Module<T> + ?Sized,
    {
        let sparsity = self.checked_sparsity(step)?;
        // 1. Everything checked and counted before anything changes.
        let mut found = Vec::with_capacity(self.targets.len());
        for path in &self.targets {
            found.push(self.find(&*model, path, scores)?);
        }
        let entries: usize = found.iter().map(|f| f.entries).sum();
        let before: usize = found.iter().map(|f| f.pruned).sum();
        let counts: Vec<usize> = match self.scope {
            Scope::Global => vec![self.rounding.count(sparsity, entries)?],
            Scope::PerTensor => found
                .iter()
                .map(|f| self.rounding.count(sparsity, f.entries))
                .collect::<Result<_, _>>()?,
        };
        let target = counts.iter().sum();
        let pruning = self.schedule.prunes_at(step);
        let mut report = GradualStep {
            step,
            sparsity,
            pruning,
            entries,
            target,
            before,
            after: before,
        };
        if !pruning {
            return Ok(report);
        }
        // 2. The pruning: counts of entries still unpruned, so every call
        // below is valid (each asks at most what is left).
        let method = |k: usize| -> Result<L1Unstructured, PruneError> {
            Ok(L1Unstructured::new(Amount::Count(k))?.with_tie_break(self.ties))
        };
        match self.scope {
            Scope::Global => {
                if counts[0] > before {
                    let m = method(counts[0] - before)?;
                    prune::global_unstructured(model, &self.targets, &m, scores)?;
                }
            }
            Scope::PerTensor => {
                for ((path, f), &k) in self.targets.iter().zip(&found).zip(&counts) {
                    if k > f.pruned {
                        let m = method(k - f.pruned)?;
                        let s = scores.and_then(|s| s.get(path)).map(|a| a.view());
                        prune::apply(model, path, &m, s)?;
                    }
                }
            }
        }
        // 3. The count reached, read back from the masks.
        let mut after = 0;
        for path in &self.targets {
            after += self.find(&*model, path, None)?.pruned;
        }
        let expected = match self.scope {
            Scope::Global => counts[0].max(before),
            Scope::PerTensor => found
                .iter()
                .zip(&counts)
                .map(|(f, &k)| k.max(f.pruned))
                .sum(),
        };
        if after != expected {
            return Err(PruneErrorKind::ScheduleMissed {
                step,
                target: expected,
                reached: after,
            }
            .into());
        }
        report.after = after;
        Ok(report)
    }

    /// The tensor at `path`: its entries and pruned count, checked for a
    /// pruning (a parameter or a pruned tensor; scores of its shape).
    fn find<T, M>(
        &self,
        model: &M,
        path: &str,
        scores: Option<&HashMap<String, ArrayD<T>>>,
    ) -> Result<Found, PruneError>
    where
        T: PruneFloat,
        M: Module<T> + ?Sized,
    {
        let (store, name) = resolve(model, path)?;
        let (shape, pruned) = if store.is_pruned(name) {
            let mask = store
                .buffer(&mask_name(name))
                .expect("a pruned tensor has its mask");
            let zeros = mask.iter().filter(|&&m| m == T::zero()).count();
            (mask.shape().to_vec(), zeros)
        } else {
            let t = store.check_first_pruning(name).for_tensor(path)?;
            (t.shape().to_vec(), 0)
        };
        if let Some(s) = scores.and_then(|s| s.get(path)) {
            crate::method::check_scores_shape(s.shape(), &shape).for_tensor(path)?;
        }
        Ok(Found {
            entries: shape.iter().product(),
            pruned,
        })
    }
}
