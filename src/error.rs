//! The one error type of the crate.

use std::fmt;

use thiserror::Error;

use crate::{Amount, Norm};

/// Everything that can go wrong in a pruning call: what went wrong
/// ([`PruneError::kind`]) and the tensor it happened to
/// ([`PruneError::tensor`], its dotted path), built whole where the error
/// is made.
///
/// The tensor is `None` only where the error truly is about no tensor (an
/// amount rejected by a method's constructor, a norm asked of a bare
/// array); every pruning call names the tensor it was pruning. A call that
/// returns an error has changed nothing.
///
/// [`PruneError::torch_kind`] tells which exception PyTorch raises for the
/// same mistake, which is what the conformance suite compares.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::PruneErrorKind;
///
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::zeros(vec![4])).unwrap();
/// let err = prune::l1_unstructured(&mut layer, "weight", Amount::Count(5), None).unwrap_err();
/// assert!(matches!(err.kind(), PruneErrorKind::AmountTooLarge { requested: 5, available: 4 }));
/// assert_eq!(err.tensor(), Some("weight"));
/// assert_eq!(err.torch_kind(), "ValueError");
/// assert_eq!(err.to_string(), "`weight`: cannot prune 5: only 4 are left to prune");
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
pub struct PruneError {
    tensor: Option<String>,
    kind: PruneErrorKind,
}

impl fmt::Display for PruneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            Some(t) => write!(f, "`{t}`: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// What went wrong in a pruning call (see [`PruneError`], which adds the
/// tensor it happened to).
///
/// ```
/// use ndprune::{PruneError, PruneErrorKind};
/// let err = PruneError::from(PruneErrorKind::NotPruned);
/// assert_eq!(err.to_string(), "not pruned, so its pruning cannot be removed");
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PruneErrorKind {
    /// A fraction outside `[0, 1]` or NaN.
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
    #[error("cannot prune {requested}: only {available} are left to prune")]
    AmountTooLarge {
        /// Entries (or channels) asked for.
        requested: usize,
        /// Entries (or channels) still unpruned.
        available: usize,
    },
    /// Structured pruning of a tensor with fewer than two dimensions.
    #[error("structured pruning needs a tensor of at least 2 dims, this one has shape {shape:?}")]
    NotMultidimensional {
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A `dim` outside `-ndim..ndim`.
    #[error("dim {dim} is out of range for a tensor of {ndim} dims")]
    DimOutOfRange {
        /// The dim as given.
        dim: isize,
        /// The tensor's number of dimensions.
        ndim: usize,
    },
    /// Importance scores or a mask whose shape is not the tensor's.
    #[error("{what} have shape {got:?}, the tensor has shape {expected:?}")]
    ShapeMismatch {
        /// What had the wrong shape (`"importance scores"` or `"mask"`).
        what: &'static str,
        /// The tensor's shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A mask entry other than 0 or 1.
    #[error("the mask holds {value} at flat index {index}: masks hold only 0 and 1")]
    InvalidMask {
        /// Flat (row-major) index of the first bad entry.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A dotted path that names nothing: empty, with an empty segment
    /// (`a..weight`), or with a leading or trailing dot.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A child module name that a dotted path could not address (empty, or
    /// holding a dot).
    #[error("invalid child module name {name:?}: {reason}")]
    InvalidChildName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No module at that path.
    #[error("no module `{path}`")]
    NoSuchModule {
        /// The dotted module path.
        path: String,
    },
    /// The module has no parameter of that name.
    #[error("no parameter of that name")]
    NoSuchTensor,
    /// The tensor already exists, so it cannot be added.
    #[error("the module already has a tensor `{name}`")]
    DuplicateTensor {
        /// The name that is taken.
        name: String,
    },
    /// Global pruning given the same tensor twice.
    #[error("named twice in one global pruning (as `{first}` and `{again}`)")]
    DuplicateTarget {
        /// The first spelling of the path.
        first: String,
        /// The second.
        again: String,
    },
    /// Pruning `name_orig` of a pruned `name`: it is part of that
    /// reparametrization (prune `name` again instead).
    #[error("this is the original of the pruned `{of}`: prune `{of}` instead")]
    PartOfPruning {
        /// The pruned tensor it belongs to.
        of: String,
    },
    /// A channel group with no [`Role::Producer`](crate::group::Role)
    /// member: nothing says which channels are empty.
    #[error("a channel group needs at least one producer")]
    NoProducer,
    /// A tensor named twice in one channel group, or in two groups that
    /// are shrunk together along the same dim.
    #[error("named twice in channel groups")]
    DuplicateMember,
    /// A group member whose dim is not `channels * block` long.
    #[error(
        "dim {dim} has {size} entries; the channel group needs {channels} channels of {block}"
    )]
    ChannelsMismatch {
        /// The resolved dim.
        dim: usize,
        /// Its length.
        size: usize,
        /// The group's channels.
        channels: usize,
        /// The member's indices per channel.
        block: usize,
    },
    /// Shrinking would change what the model computes: the channel is zero
    /// in the group's primary producer but this producer still holds
    /// nonzero values there (a bias that feeds the next layer a constant).
    #[error("channel {channel} is zero in `{primary}` but not here: removing it would change the model's output")]
    InexactShrink {
        /// The channel.
        channel: usize,
        /// The group's primary producer.
        primary: String,
    },
    /// A constant left by a removed channel cannot be folded into this
    /// consumer: only a 2-D weight read along dim 1 with a `bias` beside it
    /// (a Linear) takes one exactly.
    #[error("cannot fold a removed channel's constant output into this tensor: {reason}")]
    NoFold {
        /// Why not.
        reason: &'static str,
    },
    /// A layer of 1-D tensors without running statistics (a LayerNorm or
    /// GroupNorm, which normalize across channels): removing a channel
    /// would change the others, so its group is not inferred.
    #[error("layer `{layer}` holds 1-D tensors but no running statistics (a LayerNorm or GroupNorm mixes channels): declare its groups by hand")]
    AmbiguousLayer {
        /// The layer's module path.
        layer: String,
    },
    /// The layers do not form a chain whose groups can be inferred: a layer
    /// reads a width that is not the previous layer's output width.
    #[error(
        "layer `{layer}` reads {reads} features, the previous layer makes {channels} channels"
    )]
    NotAChain {
        /// The layer that does not fit.
        layer: String,
        /// Its input width.
        reads: usize,
        /// The previous producer's output channels.
        channels: usize,
    },
    /// `remove` of a tensor that is not pruned.
    #[error("not pruned, so its pruning cannot be removed")]
    NotPruned,
    /// The norm is not defined for a tensor of this many dims.
    #[error(
        "norm {norm} is not defined for a tensor of {ndim} dims (the nuclear norm needs exactly 3)"
    )]
    NormUndefined {
        /// The norm asked for.
        norm: Norm,
        /// The tensor's number of dimensions.
        ndim: usize,
    },
    /// A norm without an identity (`inf`, `-inf`, a negative order) over
    /// channels that hold no entries, as when a dim other than the channel
    /// dim has size 0.
    #[error("norm {norm} of the channels is taken over no entries and has no value")]
    EmptyNorm {
        /// The norm asked for.
        norm: Norm,
    },
    /// The nuclear norm of importance scores that hold NaN (PyTorch's SVD
    /// refuses them as a failure to converge).
    #[error("the nuclear norm of the channels is undefined: the scores hold NaN")]
    NanNuclear,
    /// A norm this build of ndprune leaves out: [`Norm::Nuc`] when built
    /// without the feature `nuc` (which brings in `nalgebra` for the SVD).
    #[error("norm {norm} is not available: ndprune was built without the feature `{feature}`")]
    NormUnavailable {
        /// The norm asked for.
        norm: Norm,
        /// The cargo feature that provides it.
        feature: &'static str,
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
    #[error("pruning method {method} returned a mask of shape {got:?} where {expected:?} was due")]
    MethodContract {
        /// The method's description.
        method: String,
        /// The expected mask shape.
        expected: Vec<usize>,
        /// The shape returned.
        got: Vec<usize>,
    },
    /// A pruning method's own failure (a user-written method that could not
    /// compute its mask; see [`PruneError::method_failed`]).
    #[error("pruning method {method} failed: {reason}")]
    MethodFailed {
        /// The method's description.
        method: String,
        /// Its reason.
        reason: String,
    },
    /// [`Module::load_state_dict`](crate::Module::load_state_dict) could
    /// not match the state dict to the module: every problem found, as
    /// PyTorch's `Error(s) in loading state_dict` lists them. Missing and
    /// unexpected keys are errors only in strict mode; shape mismatches and
    /// keys given twice always are.
    #[error("{}", state_dict_message(missing, unexpected, mismatched, duplicated))]
    LoadStateDict {
        /// Keys of the module's `state_dict` the state dict lacks.
        missing: Vec<String>,
        /// Keys of the state dict the module has no place for.
        unexpected: Vec<String>,
        /// Keys whose tensor has another shape than the module's.
        mismatched: Vec<KeyShape>,
        /// Keys the state dict holds more than once.
        duplicated: Vec<String>,
    },
    /// A glob pattern that cannot be parsed (see [`Glob`](crate::Glob)).
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An include pattern of a [`Selector`](crate::Selector) that matches
    /// no tensor the selection considers.
    #[error("the pattern {pattern:?} matches no prunable tensor")]
    NoMatch {
        /// The pattern.
        pattern: String,
    },
    /// An N:M pattern that is not one: `m` of 0, `n` above `m`, or a
    /// group too large to index (`m` above `u32::MAX`).
    #[error("invalid N:M pattern {n}:{m}: m must lie in 1..=2^32-1 and n must not exceed m")]
    InvalidNm {
        /// Entries kept per group.
        n: usize,
        /// Entries per group.
        m: usize,
    },
    /// A block shape with a side of 0 or too many entries to index
    /// (above `u32::MAX`), or more zeros per block than the block holds.
    #[error(
        "invalid block sparsity: block {rows}x{cols} with {zeros_per_block} zeros per block \
         (sides must be at least 1, the block at most 2^32-1 entries, the zeros at most rows x cols)"
    )]
    InvalidBlock {
        /// Rows of a block.
        rows: usize,
        /// Columns of a block.
        cols: usize,
        /// Zeros asked for in each chosen block.
        zeros_per_block: usize,
    },
    /// A sparsity level that is NaN or outside `[0, 1]`.
    #[error("invalid sparsity level {level}: it must lie in [0, 1]")]
    InvalidSparsityLevel {
        /// The level as given.
        level: f64,
    },
    /// A dim whose length is not a multiple of the group (N:M) or block
    /// side laid along it, where the method cannot pad (see
    /// [`NmStructured`](crate::NmStructured) and
    /// [`BlockSparsity`](crate::BlockSparsity)).
    #[error("dim {dim} of shape {shape:?} has length {len}, not a multiple of {group}")]
    IndivisibleGroups {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The dim (resolved).
        dim: usize,
        /// Its length.
        len: usize,
        /// The group size or block side along it.
        group: usize,
    },
    /// Block sparsity of a tensor that is not 2-D (as in `torch.ao`,
    /// whose `WeightNormSparsifier` handles matrices only).
    #[error("block sparsity needs a 2-D tensor, this one has shape {shape:?}")]
    NotTwoDimensional {
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A schedule parameter out of its range (see [`crate::schedule`]).
    #[error("invalid schedule: {parameter} = {value}: {reason}")]
    InvalidSchedule {
        /// The parameter, as the schedule's constructor names it.
        parameter: &'static str,
        /// Its value (an integer step widened to `f64`).
        value: f64,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A schedule (of your own) gave a sparsity outside `[0, 1]`.
    #[error("the schedule gave sparsity {value} at step {step}: a sparsity lies in [0, 1]")]
    ScheduledSparsity {
        /// The step.
        step: i64,
        /// The sparsity it gave.
        value: f64,
    },
    /// A gradual pruning step did not reach the count it computed: a
    /// broken invariant of ndprune, reported instead of carried on.
    #[error(
        "gradual pruning at step {step} reached {reached} pruned entries, not the {target} due"
    )]
    ScheduleMissed {
        /// The step.
        step: i64,
        /// The count due.
        target: usize,
        /// The count the masks hold.
        reached: usize,
    },
    /// Activation norms that do not fit the weight: Wanda needs a weight
    /// `[out_features, in_features]` and one norm per input feature.
    #[error("activation norms: {norms} given, for a weight of shape {shape:?} (Wanda needs a matrix [out_features, in_features] and in_features norms)")]
    ActivationNormsMismatch {
        /// The weight's shape.
        shape: Vec<usize>,
        /// How many norms were given.
        norms: usize,
    },
    /// An activation norm that is NaN, infinite or negative (or a sum of
    /// squares that overflowed `f64`).
    #[error("activation norm {index} is {value}: a norm is finite and not negative")]
    InvalidActivationNorm {
        /// The input feature.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A batch of inputs whose last dim is not the layer's `in_features`.
    #[error(
        "inputs of shape {got:?}: the last dim must be the layer's {in_features} input features"
    )]
    ActivationShape {
        /// The layer's input features.
        in_features: usize,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A batch of inputs holding NaN or an infinity.
    #[error("input entry {index} (row-major) is {value}: activations must be finite")]
    NonFiniteActivation {
        /// Flat (row-major) index of the first bad entry.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// Activation norms stored as a tensor that is not 1-D.
    #[error("activation norms must be a 1-D tensor, this one has shape {shape:?}")]
    NormsShape {
        /// The stored shape.
        shape: Vec<usize>,
    },
    /// No activation norms for a tensor that Wanda is to prune.
    #[error("no activation norms for this tensor")]
    MissingActivationNorms,
    /// A result too large to hold: `count` items of `what` (e.g. the norms
    /// of `2^40` channels of a tensor with no entries).
    #[error("{what}: {count} items are too many to hold in memory")]
    TooLarge {
        /// What was to be held.
        what: &'static str,
        /// How many items.
        count: usize,
    },
}

/// A key of a state dict whose tensor has another shape than the module's
/// ([`PruneErrorKind::LoadStateDict`]).
///
/// ```
/// let k = ndprune::KeyShape { key: "fc.weight".into(), expected: vec![2, 3], got: vec![3, 2] };
/// assert_eq!(k.to_string(), "`fc.weight`: the module has shape [2, 3], the state dict [3, 2]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShape {
    /// The key (for a pair that prunes a plain parameter `X`, `X_orig` or
    /// `X_mask`).
    pub key: String,
    /// The shape in the module.
    pub expected: Vec<usize>,
    /// The shape in the state dict.
    pub got: Vec<usize>,
}

impl fmt::Display for KeyShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: the module has shape {:?}, the state dict {:?}",
            self.key, self.expected, self.got
        )
    }
}

fn state_dict_message(
    missing: &[String],
    unexpected: &[String],
    mismatched: &[KeyShape],
    duplicated: &[String],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing keys {missing:?}"));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected keys {unexpected:?}"));
    }
    if !mismatched.is_empty() {
        let shapes: Vec<String> = mismatched.iter().map(ToString::to_string).collect();
        parts.push(format!("shape mismatches: {}", shapes.join("; ")));
    }
    if !duplicated.is_empty() {
        parts.push(format!("keys given twice {duplicated:?}"));
    }
    format!("error(s) loading the state dict: {}", parts.join("; "))
}

impl From<PruneErrorKind> for PruneError {
    fn from(kind: PruneErrorKind) -> Self {
        PruneError { tensor: None, kind }
    }
}

impl PruneError {
    /// An error about the tensor at `tensor` (a dotted path).
    ///
    /// ```
    /// use ndprune::{PruneError, PruneErrorKind};
    /// let err = PruneError::new("fc.weight", PruneErrorKind::NotPruned);
    /// assert_eq!(err.to_string(), "`fc.weight`: not pruned, so its pruning cannot be removed");
    /// ```
    pub fn new(tensor: impl Into<String>, kind: PruneErrorKind) -> Self {
        PruneError {
            tensor: Some(tensor.into()),
            kind,
        }
    }

    /// The error a user-written [`crate::PruningMethod`] returns when it
    /// cannot compute its mask: `method` describes it, `reason` says why.
    /// The pruning call adds the tensor and changes nothing.
    ///
    /// ```
    /// use ndprune::{PruneError, PruneErrorKind};
    /// let err = PruneError::method_failed("MyMethod", "no calibration data");
    /// assert!(matches!(err.kind(), PruneErrorKind::MethodFailed { .. }));
    /// assert_eq!(err.to_string(), "pruning method MyMethod failed: no calibration data");
    /// ```
    pub fn method_failed(method: impl Into<String>, reason: impl Into<String>) -> Self {
        PruneErrorKind::MethodFailed {
            method: method.into(),
            reason: reason.into(),
        }
        .into()
    }

    /// What went wrong.
    ///
    /// ```
    /// use ndprune::{PruneError, PruneErrorKind};
    /// let err = PruneError::from(PruneErrorKind::NanNuclear);
    /// assert_eq!(err.kind(), &PruneErrorKind::NanNuclear);
    /// ```
    pub fn kind(&self) -> &PruneErrorKind {
        &self.kind
    }

    /// The dotted path of the tensor the error is about, if it is about one.
    ///
    /// ```
    /// use ndprune::{PruneError, PruneErrorKind};
    /// assert_eq!(PruneError::new("w", PruneErrorKind::NotPruned).tensor(), Some("w"));
    /// assert_eq!(PruneError::from(PruneErrorKind::NotPruned).tensor(), None);
    /// ```
    pub fn tensor(&self) -> Option<&str> {
        self.tensor.as_deref()
    }

    /// The PyTorch exception class `torch.nn.utils.prune` raises for the
    /// same mistake: `"ValueError"`, `"IndexError"`, `"AssertionError"`,
    /// `"AttributeError"`, `"RuntimeError"` or `"TypeError"`.
    ///
    /// ```
    /// use ndprune::{Amount, PruneError, PruneErrorKind};
    ///
    /// let err = PruneError::from(PruneErrorKind::InvalidAmount { amount: Amount::Fraction(1.5) });
    /// assert_eq!(err.torch_kind(), "ValueError");
    /// ```
    pub fn torch_kind(&self) -> &'static str {
        use PruneErrorKind as K;
        match &self.kind {
            K::InvalidAmount { .. }
            | K::NegativeCount { .. }
            | K::AmountTooLarge { .. }
            | K::NotMultidimensional { .. }
            | K::InvalidMask { .. }
            | K::PartOfPruning { .. }
            | K::NotPruned
            | K::DuplicateTarget { .. } => "ValueError",
            K::NoProducer
            | K::DuplicateMember
            | K::ChannelsMismatch { .. }
            | K::InexactShrink { .. }
            | K::NoFold { .. }
            | K::NotAChain { .. }
            | K::AmbiguousLayer { .. } => "ValueError",
            K::DimOutOfRange { .. } => "IndexError",
            K::ShapeMismatch { .. } | K::MethodContract { .. } => "AssertionError",
            K::NoSuchModule { .. }
            | K::NoSuchTensor
            | K::DuplicateTensor { .. }
            | K::InvalidPath { .. }
            | K::InvalidChildName { .. } => "AttributeError",
            K::LoadStateDict { .. } => "RuntimeError",
            K::InvalidPattern { .. } | K::NoMatch { .. } => "ValueError",
            K::InvalidNm { .. } | K::InvalidBlock { .. } | K::InvalidSparsityLevel { .. } => {
                "ValueError"
            }
            K::IndivisibleGroups { .. } | K::NotTwoDimensional { .. } => "RuntimeError",
            K::NormUndefined { .. }
            | K::EmptyNorm { .. }
            | K::NanNuclear
            | K::NormUnavailable { .. }
            | K::InvalidNorm { .. }
            | K::MethodFailed { .. }
            | K::TooLarge { .. } => "RuntimeError",
            K::InvalidSchedule { .. }
            | K::ScheduledSparsity { .. }
            | K::ActivationNormsMismatch { .. }
            | K::InvalidActivationNorm { .. }
            | K::ActivationShape { .. }
            | K::NonFiniteActivation { .. }
            | K::NormsShape { .. }
            | K::MissingActivationNorms => "ValueError",
            K::ScheduleMissed { .. } => "RuntimeError",
            K::WrongMethodKind { .. } => "TypeError",
        }
    }

    /// The same error, about the tensor at `path` unless it already names
    /// one (a method computes a mask without knowing whose; the pruning
    /// call that ran it does).
    pub(crate) fn in_tensor(mut self, path: &str) -> Self {
        if self.tensor.is_none() {
            self.tensor = Some(path.to_string());
        }
        self
    }
}

/// A `Result` whose error is a bare [`PruneErrorKind`] becomes one of
/// [`PruneError`] for the tensor at a path.
pub(crate) trait ForTensor<T> {
    /// The error, about the tensor at `path` (see [`PruneError::in_tensor`]).
    fn for_tensor(self, path: &str) -> Result<T, PruneError>;
}

impl<T, E: Into<PruneError>> ForTensor<T> for Result<T, E> {
    fn for_tensor(self, path: &str) -> Result<T, PruneError> {
        self.map_err(|e| e.into().in_tensor(path))
    }
}
