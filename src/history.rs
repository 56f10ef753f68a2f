//! The typed pruning history of a tensor: one record per pruning step.

use std::fmt;

use crate::{Amount, BlockNorm, Dim, Norm, PruningKind, TieBreak};

/// One step in the pruning history of a tensor
/// ([`TensorStore::pruning_history`](crate::TensorStore::pruning_history)):
/// the method that ran, with its settings, and whether importance scores
/// were given. PyTorch keeps the same record as the methods in the
/// `PruningContainer` of its forward pre-hook.
///
/// The built-in methods are recorded with their settings; a method of your
/// own as [`PruningStep::User`], with its [`PruningMethod::kind`] and
/// [`PruningMethod::describe`]. [`Display`](fmt::Display) gives a one-line
/// description.
///
/// [`PruningMethod::kind`]: crate::PruningMethod::kind
/// [`PruningMethod::describe`]: crate::PruningMethod::describe
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::PruningStep;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![[1.0f32, -2.0], [0.5, 3.0]].into_dyn())?;
/// prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None)?;
/// let scores = array![[4.0f32, 3.0], [2.0, 1.0]].into_dyn();
/// prune::ln_structured(&mut layer, "weight", Amount::Count(1), Norm::L(2.0), Dim(0), Some(scores.view()))?;
/// let history = layer.pruning_history("weight").expect("pruned");
/// assert_eq!(
///     history,
///     [
///         PruningStep::L1Unstructured {
///             amount: Amount::Count(1),
///             tie_break: TieBreak::Torch,
///             importance_scores: false,
///         },
///         PruningStep::LnStructured {
///             amount: Amount::Count(1),
///             norm: Norm::L(2.0),
///             dim: Dim(0),
///             tie_break: TieBreak::Torch,
///             importance_scores: true,
///         },
///     ]
/// );
/// assert_eq!(
///     history[1].to_string(),
///     "LnStructured(amount=1, n=L2, dim=0, importance scores given)"
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PruningStep {
    /// [`Identity`](crate::Identity): the reparametrization, nothing pruned.
    Identity,
    /// [`L1Unstructured`](crate::L1Unstructured).
    L1Unstructured {
        /// The amount, as given.
        amount: Amount,
        /// The rule for equal magnitudes at the cut.
        tie_break: TieBreak,
        /// Whether importance scores were given (else the tensor, as it
        /// was, was ranked).
        importance_scores: bool,
    },
    /// [`LnStructured`](crate::LnStructured).
    LnStructured {
        /// The amount of channels, as given.
        amount: Amount,
        /// The norm the channels were ranked by.
        norm: Norm,
        /// The channel dim, as given.
        dim: Dim,
        /// The rule for equal norms at the cut.
        tie_break: TieBreak,
        /// Whether importance scores were given.
        importance_scores: bool,
    },
    /// [`NmStructured`](crate::NmStructured).
    NmStructured {
        /// Entries kept per group.
        n: usize,
        /// Entries per group.
        m: usize,
        /// The dim the groups lie along, as given.
        dim: Dim,
        /// The rule for equal magnitudes at a group's cut.
        tie_break: TieBreak,
        /// Whether importance scores were given.
        importance_scores: bool,
    },
    /// [`BlockSparsity`](crate::BlockSparsity).
    BlockSparsity {
        /// The fraction of blocks chosen.
        sparsity_level: f64,
        /// The block shape `(rows, cols)`.
        block: (usize, usize),
        /// Entries pruned in each chosen block.
        zeros_per_block: usize,
        /// What entries are ranked by.
        norm: BlockNorm,
        /// The rule for equal scores at a cut.
        tie_break: TieBreak,
        /// Whether importance scores were given.
        importance_scores: bool,
    },
    /// [`RandomUnstructured`](crate::RandomUnstructured).
    RandomUnstructured {
        /// The amount, as given.
        amount: Amount,
        /// Where the draws came from.
        source: RandomSource,
    },
    /// [`RandomStructured`](crate::RandomStructured).
    RandomStructured {
        /// The amount of channels, as given.
        amount: Amount,
        /// The channel dim, as given.
        dim: Dim,
        /// Where the draws came from.
        source: RandomSource,
    },
    /// [`CustomFromMask`](crate::CustomFromMask) (the mask itself is in the
    /// `X_mask` buffer, combined with the steps before).
    CustomFromMask,
    /// This tensor's share of a
    /// [`global_unstructured`](crate::prune::global_unstructured) call:
    /// `method` ran over all `tensors` targets as one (PyTorch records
    /// this step as a `CustomFromMask`). `method` is never itself `Global`,
    /// `Restored` or `Loaded`; its `importance_scores` tells whether scores
    /// were given for this tensor.
    Global {
        /// The method that ranked the targets together.
        method: Box<PruningStep>,
        /// How many tensors were pruned together.
        tensors: usize,
    },
    /// The tensor was restored pruned from its `X_orig` and `X_mask`
    /// ([`TensorStore::restore_pruned`](crate::TensorStore::restore_pruned),
    /// a checkpoint): the steps that made the mask are not known.
    Restored,
    /// The tensor's original and mask were replaced by
    /// [`Module::load_state_dict`](crate::Module::load_state_dict): the
    /// steps that made the mask are not known.
    Loaded,
    /// A method of your own.
    User {
        /// Its [`PruningMethod::kind`](crate::PruningMethod::kind).
        kind: PruningKind,
        /// Its [`PruningMethod::describe`](crate::PruningMethod::describe).
        description: String,
        /// Whether importance scores were given.
        importance_scores: bool,
    },
}

/// Where a random method's draws came from ([`PruningStep`]).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::{PruningStep, RandomSource};
///
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4]))?;
/// prune::apply(&mut layer, "weight", &RandomUnstructured::new(Amount::Count(1), 7)?, None)?;
/// assert!(matches!(
///     layer.pruning_history("weight").expect("pruned")[0],
///     PruningStep::RandomUnstructured { source: RandomSource::Seed(7), .. }
/// ));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RandomSource {
    /// A `rand` generator seeded with this seed (`new`, `from_rng`).
    Seed(u64),
    /// PyTorch's stream, a [`TorchGenerator`](crate::TorchGenerator)
    /// (`with_torch_generator`).
    Torch,
}

impl PruningStep {
    /// Whether importance scores were given for this step (`false` for the
    /// steps that take none).
    ///
    /// ```
    /// assert!(!ndprune::PruningStep::Identity.importance_scores());
    /// ```
    pub fn importance_scores(&self) -> bool {
        match self {
            PruningStep::L1Unstructured {
                importance_scores, ..
            }
            | PruningStep::LnStructured {
                importance_scores, ..
            }
            | PruningStep::NmStructured {
                importance_scores, ..
            }
            | PruningStep::BlockSparsity {
                importance_scores, ..
            }
            | PruningStep::User {
                importance_scores, ..
            } => *importance_scores,
            PruningStep::Global { method, .. } => method.importance_scores(),
            PruningStep::Identity
            | PruningStep::RandomUnstructured { .. }
            | PruningStep::RandomStructured { .. }
            | PruningStep::CustomFromMask
            | PruningStep::Restored
            | PruningStep::Loaded => false,
        }
    }
}

impl fmt::Display for RandomSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RandomSource::Seed(seed) => write!(f, "seed={seed}"),
            RandomSource::Torch => f.write_str("torch generator"),
        }
    }
}

/// One line: the method as PyTorch's class name with its settings, e.g.
/// `L1Unstructured(amount=0.3)`, `LnStructured(amount=2, n=inf, dim=-1)`,
/// `global L1Unstructured(amount=0.2) over 3 tensors`; a tie rule other
/// than PyTorch's and given importance scores are added at the end.
impl fmt::Display for PruningStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn tail(
            f: &mut fmt::Formatter<'_>,
            tie_break: Option<&TieBreak>,
            scores: bool,
        ) -> fmt::Result {
            if let Some(t) = tie_break.filter(|t| **t != TieBreak::Torch) {
                write!(f, ", ties={t:?}")?;
            }
            if scores {
                f.write_str(", importance scores given")?;
            }
            f.write_str(")")
        }
        match self {
            PruningStep::Identity => f.write_str("Identity"),
            PruningStep::L1Unstructured {
                amount,
                tie_break,
                importance_scores,
            } => {
                write!(f, "L1Unstructured(amount={amount}")?;
                tail(f, Some(tie_break), *importance_scores)
            }
            PruningStep::LnStructured {
                amount,
                norm,
                dim,
                tie_break,
                importance_scores,
            } => {
                write!(f, "LnStructured(amount={amount}, n={norm}, dim={}", dim.0)?;
                tail(f, Some(tie_break), *importance_scores)
            }
            PruningStep::NmStructured {
                n,
                m,
                dim,
                tie_break,
                importance_scores,
            } => {
                write!(f, "NmStructured(n={n}, m={m}, dim={}", dim.0)?;
                tail(f, Some(tie_break), *importance_scores)
            }
            PruningStep::BlockSparsity {
                sparsity_level,
                block,
                zeros_per_block,
                norm,
                tie_break,
                importance_scores,
            } => {
                write!(
                    f,
                    "BlockSparsity(sparsity_level={sparsity_level}, block={}x{}, zeros_per_block={zeros_per_block}, norm={norm}",
                    block.0, block.1
                )?;
                tail(f, Some(tie_break), *importance_scores)
            }
            PruningStep::RandomUnstructured { amount, source } => {
                write!(f, "RandomUnstructured(amount={amount}, {source})")
            }
            PruningStep::RandomStructured {
                amount,
                dim,
                source,
            } => write!(
                f,
                "RandomStructured(amount={amount}, dim={}, {source})",
                dim.0
            ),
            PruningStep::CustomFromMask => f.write_str("CustomFromMask"),
            PruningStep::Global { method, tensors } => {
                write!(f, "global {method} over {tensors} tensors")
            }
            PruningStep::Restored => f.write_str("restored from X_orig and X_mask"),
            PruningStep::Loaded => f.write_str("loaded from a state dict"),
            PruningStep::User {
                description,
                importance_scores,
                ..
            } => {
                f.write_str(description)?;
                if *importance_scores {
                    f.write_str(" (importance scores given)")?;
                }
                Ok(())
            }
        }
    }
}
