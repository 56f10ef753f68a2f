//! The one error type of the crate.

use thiserror::Error;

use crate::{Amount, Norm};

/// Everything that can go wrong in a pruning call.
///
/// Every variant names the tensor it is about (its dotted path, or an empty
/// string where a call is not about one tensor) and the values that made the
/// call fail. A call that returns an error has changed nothing.
///
/// [`PruneError::torch_kind`] tells which exception PyTorch raises for the
/// same mistake, which is what the conformance suite compares.
///
/// ```
/// use ndprune::prelude::*;
///
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::zeros(vec![4]));
/// let err = prune::l1_unstructured(&mut layer, "weight", Amount::Count(5), None).unwrap_err();
/// assert!(matches!(err, PruneError::AmountTooLarge { requested: 5, available: 4, .. }));
/// assert_eq!(err.torch_kind(), "ValueError");
/// assert_eq!(err.to_string(), "cannot prune 5 of `weight`: only 4 are left to prune");
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PruneError {
    /// A fraction outside `[0, 1]` or NaN, or a negative count.
    #[error(
        "invalid amount {amount}: a fraction must lie in [0, 1] and a count must not be negative"
    )]
    InvalidAmount {
        /// The amount as given.
        amount: Amount,
    },
    /// A negative count.
    #[error("invalid amount {count}: a count must not be negative")]
    NegativeCount {
        /// The count as given.
        count: i64,
    },
    /// A count larger than what is left to prune.
    #[error("cannot prune {requested} of `{tensor}`: only {available} are left to prune")]
    AmountTooLarge {
        /// The tensor being pruned.
        tensor: String,
        /// Entries (or channels) asked for.
        requested: usize,
        /// Entries (or channels) still unpruned.
        available: usize,
    },
    /// Structured pruning of a tensor with fewer than two dimensions.
    #[error(
        "structured pruning needs a tensor of at least 2 dims, `{tensor}` has shape {shape:?}"
    )]
    NotMultidimensional {
        /// The tensor being pruned.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A `dim` outside `-ndim..ndim`.
    #[error("dim {dim} is out of range for `{tensor}` with {ndim} dims")]
    DimOutOfRange {
        /// The tensor being pruned.
        tensor: String,
        /// The dim as given.
        dim: isize,
        /// The tensor's number of dimensions.
        ndim: usize,
    },
    /// Importance scores or a mask whose shape is not the tensor's.
    #[error("{what} for `{tensor}` has shape {got:?}, the tensor has shape {expected:?}")]
    ShapeMismatch {
        /// The tensor being pruned.
        tensor: String,
        /// What had the wrong shape (`"importance scores"` or `"mask"`).
        what: &'static str,
        /// The tensor's shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A mask entry other than 0 or 1.
    #[error("mask for `{tensor}` holds {value} at flat index {index}: masks hold only 0 and 1")]
    InvalidMask {
        /// The tensor being pruned.
        tensor: String,
        /// Flat (row-major) index of the first bad entry.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// No module at that path.
    #[error("no module `{path}`")]
    NoSuchModule {
        /// The dotted module path.
        path: String,
    },
    /// The module has no parameter of that name.
    #[error("module `{module}` has no parameter `{name}`")]
    NoSuchTensor {
        /// The dotted module path (empty for the root).
        module: String,
        /// The tensor name.
        name: String,
    },
    /// The tensor already exists, so it cannot be added.
    #[error("module `{module}` already has a tensor `{name}`")]
    DuplicateTensor {
        /// The dotted module path (empty for the root).
        module: String,
        /// The tensor name.
        name: String,
    },
    /// Pruning `name_orig` of a pruned `name`: it is part of that
    /// reparametrization (prune `name` again instead).
    #[error("`{tensor}` is the original of the pruned `{of}`: prune `{of}` instead")]
    PartOfPruning {
        /// The tensor asked for.
        tensor: String,
        /// The pruned tensor it belongs to.
        of: String,
    },
    /// `remove` of a tensor that is not pruned.
    #[error("`{tensor}` is not pruned, so its pruning cannot be removed")]
    NotPruned {
        /// The tensor.
        tensor: String,
    },
    /// The norm is not defined for a tensor of this many dims.
    #[error("norm {norm} is not defined for `{tensor}` with {ndim} dims (the nuclear norm needs exactly 3)")]
    NormUndefined {
        /// The tensor being pruned.
        tensor: String,
        /// The norm asked for.
        norm: Norm,
        /// The tensor's number of dimensions.
        ndim: usize,
    },
    /// A norm without an identity (`inf`, `-inf`, a negative order) over
    /// channels that hold no entries, as when a dim other than the channel
    /// dim has size 0.
    #[error("norm {norm} of the channels of `{tensor}` is taken over no entries and has no value")]
    EmptyNorm {
        /// The tensor being pruned.
        tensor: String,
        /// The norm asked for.
        norm: Norm,
    },
    /// The nuclear norm of importance scores that hold NaN (PyTorch's SVD
    /// refuses them as a failure to converge).
    #[error("the nuclear norm of the channels of `{tensor}` is undefined: its scores hold NaN")]
    NanNuclear {
        /// The tensor being pruned.
        tensor: String,
    },
    /// A `Norm::L(p)` with NaN `p`.
    #[error("norm order {p} is not a number")]
    InvalidNorm {
        /// The order given.
        p: f64,
    },
    /// A method of the wrong kind for the call (e.g. a structured method for
    /// global pruning).
    #[error("{call} needs an unstructured pruning method, got {method}")]
    WrongMethodKind {
        /// The call.
        call: &'static str,
        /// The method's description.
        method: String,
    },
    /// A method returned a mask of the wrong shape.
    #[error("pruning method {method} returned a mask of shape {got:?} for a tensor of shape {expected:?}")]
    MethodContract {
        /// The method's description.
        method: String,
        /// The expected mask shape.
        expected: Vec<usize>,
        /// The shape returned.
        got: Vec<usize>,
    },
}

impl PruneError {
    /// The PyTorch exception class `torch.nn.utils.prune` raises for the
    /// same mistake: `"ValueError"`, `"IndexError"`, `"AssertionError"`,
    /// `"AttributeError"`, `"RuntimeError"` or `"TypeError"`.
    ///
    /// ```
    /// use ndprune::{Amount, PruneError};
    ///
    /// let err = PruneError::InvalidAmount { amount: Amount::Fraction(1.5) };
    /// assert_eq!(err.torch_kind(), "ValueError");
    /// ```
    pub fn torch_kind(&self) -> &'static str {
        match self {
            PruneError::InvalidAmount { .. }
            | PruneError::NegativeCount { .. }
            | PruneError::AmountTooLarge { .. }
            | PruneError::NotMultidimensional { .. }
            | PruneError::InvalidMask { .. }
            | PruneError::PartOfPruning { .. }
            | PruneError::NotPruned { .. } => "ValueError",
            PruneError::DimOutOfRange { .. } => "IndexError",
            PruneError::ShapeMismatch { .. } | PruneError::MethodContract { .. } => {
                "AssertionError"
            }
            PruneError::NoSuchModule { .. }
            | PruneError::NoSuchTensor { .. }
            | PruneError::DuplicateTensor { .. } => "AttributeError",
            PruneError::NormUndefined { .. }
            | PruneError::EmptyNorm { .. }
            | PruneError::NanNuclear { .. }
            | PruneError::InvalidNorm { .. } => "RuntimeError",
            PruneError::WrongMethodKind { .. } => "TypeError",
        }
    }

    /// Fills in the tensor's name where the error was raised without it
    /// (methods compute masks without knowing which tensor they prune).
    pub(crate) fn for_tensor(mut self, path: &str) -> Self {
        match &mut self {
            PruneError::AmountTooLarge { tensor, .. }
            | PruneError::NotMultidimensional { tensor, .. }
            | PruneError::DimOutOfRange { tensor, .. }
            | PruneError::ShapeMismatch { tensor, .. }
            | PruneError::InvalidMask { tensor, .. }
            | PruneError::NotPruned { tensor }
            | PruneError::NormUndefined { tensor, .. }
            | PruneError::EmptyNorm { tensor, .. }
            | PruneError::NanNuclear { tensor }
                if tensor.is_empty() =>
            {
                *tensor = path.to_string();
            }
            _ => {}
        }
        self
    }
}
