//! Choosing the tensors to prune: by dotted-path glob and by rank.

use std::ops::{Bound, RangeBounds};

use super::tree::join;
use crate::{Module, PruneError, PruneErrorKind, PruneFloat};

/// A glob over dotted tensor paths, matched segment by segment.
///
/// A pattern is dotted segments, as a path is. Within a segment, `*`
/// matches any run of characters (none included) and `?` exactly one; a
/// segment that is exactly `**` matches any number of whole segments (none
/// included). Nothing else is special: so **`*` never crosses a dot**, and
/// a pattern matches the whole path, not a part of it.
///
/// | pattern | matches | does not match |
/// |---|---|---|
/// | `conv*.weight` | `conv1.weight`, `conv1_bn.weight` (one segment) | `conv1.bn.weight` |
/// | `*.weight` | `fc.weight` | `weight`, `features.0.weight` |
/// | `**.weight` | `weight`, `fc.weight`, `features.0.weight` | `fc.weight_orig` |
/// | `features.**` | `features.0.weight`, `features.3.1.bias` | `features` alone, `classifier.weight` |
/// | `layer?.*` | `layer1.bias` | `layer10.bias` |
///
/// `conv*` is one segment, so it matches `conv1_bn` as well as `conv1`;
/// to keep `conv1_bn.weight` out, exclude `*_bn.weight` (see
/// [`Selector::exclude`]) or name the segment exactly (`conv?.weight`).
/// (The `ndprune` command line's `--include` is a different, file-level
/// glob, in which `*` matches dots too.)
///
/// A pattern is refused ([`PruneErrorKind::InvalidPattern`]) if it is
/// empty, has an empty segment (`a..b`, a leading or trailing dot), has
/// `**` inside a segment (`a**`), or holds `[`, `]`, `{`, `}` or `\`
/// (reserved: no character classes, alternatives or escapes).
///
/// ```
/// use ndprune::Glob;
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let g = Glob::new("conv*.weight")?;
/// assert!(g.is_match("conv1.weight") && g.is_match("conv1_bn.weight"));
/// assert!(!g.is_match("conv1.bn.weight") && !g.is_match("conv1.weight_orig"));
/// assert!(Glob::new("**.bias")?.is_match("encoder.layers.0.bias"));
/// assert!(Glob::new("a**.b").is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of whole segments.
    AnyDepth,
    /// One segment: literal characters, `*` and `?`.
    One(Vec<Atom>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Char(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
}

impl Glob {
    /// Parses a pattern (see [`Glob`] for the syntax).
    ///
    /// ```
    /// use ndprune::{Glob, PruneErrorKind};
    /// assert!(Glob::new("features.*.weight").is_ok());
    /// let err = Glob::new("fc.[ab]").unwrap_err();
    /// assert!(matches!(err.kind(), PruneErrorKind::InvalidPattern { .. }));
    /// ```
    pub fn new(pattern: &str) -> Result<Self, PruneError> {
        let invalid = |reason| {
            PruneError::from(PruneErrorKind::InvalidPattern {
                pattern: pattern.to_string(),
                reason,
            })
        };
        if pattern.is_empty() {
            return Err(invalid("a pattern must not be empty"));
        }
        if pattern.contains(['[', ']', '{', '}', '\\']) {
            return Err(invalid(
                "`[`, `]`, `{`, `}` and `\\` are reserved (no classes, alternatives or escapes)",
            ));
        }
        let mut segments = Vec::new();
        for seg in pattern.split('.') {
            if seg.is_empty() {
                return Err(invalid("a pattern must not hold an empty segment"));
            }
            if seg == "**" {
                segments.push(Segment::AnyDepth);
                continue;
            }
            if seg.contains("**") {
                return Err(invalid("`**` must be a whole segment, as in `a.**.b`"));
            }
            let atoms = seg
                .chars()
                .map(|c| match c {
                    '*' => Atom::Star,
                    '?' => Atom::One,
                    c => Atom::Char(c),
                })
                .collect();
            segments.push(Segment::One(atoms));
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            segments,
        })
    }

    /// The pattern as given.
    ///
    /// ```
    /// assert_eq!(ndprune::Glob::new("*.weight").unwrap().as_str(), "*.weight");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole dotted `path` matches.
    ///
    /// ```
    /// let g = ndprune::Glob::new("features.**.weight").unwrap();
    /// assert!(g.is_match("features.weight") && g.is_match("features.0.1.weight"));
    /// assert!(!g.is_match("classifier.weight"));
    /// ```
    pub fn is_match(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        // reach[j]: the segments matched so far can end just before part j.
        let mut reach = vec![false; parts.len() + 1];
        reach[0] = true;
        for seg in &self.segments {
            let mut next = vec![false; parts.len() + 1];
            match seg {
                Segment::AnyDepth => {
                    let mut any = false;
                    for (j, slot) in next.iter_mut().enumerate() {
                        any |= reach[j];
                        *slot = any;
                    }
                }
                Segment::One(atoms) => {
                    for j in 0..parts.len() {
                        if reach[j] && segment_match(atoms, parts[j]) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[parts.len()]
    }
}

/// Whether one segment's atoms match the whole of `text` (no dots in it):
/// the classic wildcard match, in `O(atoms × chars)`.
fn segment_match(atoms: &[Atom], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // ok[i]: the atoms so far can match chars[..i].
    let mut ok = vec![false; chars.len() + 1];
    ok[0] = true;
    for atom in atoms {
        let mut next = vec![false; chars.len() + 1];
        match atom {
            Atom::Star => {
                let mut any = false;
                for (i, slot) in next.iter_mut().enumerate() {
                    any |= ok[i];
                    *slot = any;
                }
            }
            Atom::One => {
                next[1..].copy_from_slice(&ok[..chars.len()]);
            }
            Atom::Char(c) => {
                for i in 0..chars.len() {
                    next[i + 1] = ok[i] && chars[i] == *c;
                }
            }
        }
        ok = next;
    }
    ok[chars.len()]
}

/// Chooses tensors of a model by glob ([`Glob`]) and rank, to build the
/// target list of a pruning call such as
/// [`prune::global_unstructured`](crate::prune::global_unstructured).
///
/// The candidates are the names a pruning call accepts, in `state_dict`
/// order: every parameter (`fc.weight`) and every pruned tensor (`X`, not
/// its `X_orig`, nor the `X_mask` buffer); buffers are never selected. A
/// candidate is selected if it matches any include pattern (or there are
/// none), no exclude pattern, and the rank bounds. Every include pattern
/// must match at least one candidate, else [`Selector::select`] fails with
/// [`PruneErrorKind::NoMatch`] (a misspelt pattern is an error, not an
/// empty selection); exclude patterns may match nothing.
///
/// Every tensor of a `Module<T>` has the one element type `T`, so there is
/// no dtype filter here: a checkpoint's tensors of other dtypes are raw
/// tensors, outside the module tree (load the file as
/// `Checkpoint::<half::bf16>` to prune its bf16 tensors).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::Selector;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut model = Sequential::<f32>::new()
///     .with_child("conv1", Layer::conv2d(1, 4, 3, &mut rng))?
///     .with_child("conv1_bn", Layer::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4]))?)?
///     .with_child("fc", Layer::linear(16, 10, &mut rng))?;
///
/// // Every weight of 2 or more dims: the conv and the linear layer.
/// let targets = Selector::new().include("**.weight")?.ndim(2..).select(&model)?;
/// assert_eq!(targets, ["conv1.weight", "fc.weight"]);
///
/// // `*` stays within a segment, and `conv1_bn` is one segment.
/// let convs = Selector::new().include("conv*.weight")?.exclude("*_bn.*")?.select(&model)?;
/// assert_eq!(convs, ["conv1.weight"]);
///
/// let l1 = L1Unstructured::new(Amount::Fraction(0.3))?;
/// prune::global_unstructured(&mut model, &targets, &l1, None)?;
///
/// // A pruned tensor is selected by its own name, X (not X_orig).
/// assert_eq!(Selector::new().include("fc.*")?.select(&model)?, ["fc.bias", "fc.weight"]);
/// assert!(Selector::new().include("classifier.*")?.select(&model).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    min_ndim: Bound<usize>,
    max_ndim: Bound<usize>,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            include: Vec::new(),
            exclude: Vec::new(),
            min_ndim: Bound::Unbounded,
            max_ndim: Bound::Unbounded,
        }
    }
}

impl Selector {
    /// A selector of every candidate (no patterns, any rank).
    ///
    /// ```
    /// use ndprune::{Layer, Selector};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let layer = Layer::<f32>::new().with_parameter("w", ndarray::ArrayD::zeros(vec![2]))?;
    /// assert_eq!(Selector::new().select(&layer)?, ["w"]);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an include pattern (builder style); fails if it is no valid
    /// [`Glob`].
    ///
    /// ```
    /// use ndprune::Selector;
    /// assert!(Selector::new().include("**.weight").is_ok());
    /// assert!(Selector::new().include("a..b").is_err());
    /// ```
    pub fn include(mut self, pattern: &str) -> Result<Self, PruneError> {
        self.include.push(Glob::new(pattern)?);
        Ok(self)
    }

    /// Adds an exclude pattern (builder style); fails if it is no valid
    /// [`Glob`].
    ///
    /// ```
    /// use ndprune::{Layer, Selector};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let layer = Layer::<f32>::new()
    ///     .with_parameter("weight", ndarray::ArrayD::zeros(vec![2, 2]))?
    ///     .with_parameter("bias", ndarray::ArrayD::zeros(vec![2]))?;
    /// assert_eq!(Selector::new().exclude("bias")?.select(&layer)?, ["weight"]);
    /// # Ok(()) }
    /// ```
    pub fn exclude(mut self, pattern: &str) -> Result<Self, PruneError> {
        self.exclude.push(Glob::new(pattern)?);
        Ok(self)
    }

    /// Keeps only tensors whose number of dims lies in `range` (`2..`:
    /// matrices and conv kernels; `1..=1`: biases and norm weights).
    ///
    /// ```
    /// use ndprune::{Layer, Selector};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let layer = Layer::<f32>::new()
    ///     .with_parameter("weight", ndarray::ArrayD::zeros(vec![2, 2]))?
    ///     .with_parameter("bias", ndarray::ArrayD::zeros(vec![2]))?;
    /// assert_eq!(Selector::new().ndim(1..=1).select(&layer)?, ["bias"]);
    /// # Ok(()) }
    /// ```
    pub fn ndim(mut self, range: impl RangeBounds<usize>) -> Self {
        self.min_ndim = range.start_bound().cloned();
        self.max_ndim = range.end_bound().cloned();
        self
    }

    fn ndim_ok(&self, ndim: usize) -> bool {
        (self.min_ndim, self.max_ndim).contains(&ndim)
    }

    /// The selected tensors' dotted paths, in `state_dict` order; fails
    /// with [`PruneErrorKind::NoMatch`] if an include pattern matches no
    /// candidate. May be empty (when the excludes or the rank bounds leave
    /// nothing).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::Selector;
    /// # fn main() -> Result<(), PruneError> {
    /// let model = Sequential::<f32>::new().push(Layer::new().with_parameter("w", ndarray::ArrayD::zeros(vec![3]))?);
    /// assert_eq!(Selector::new().include("*.w")?.select(&model)?, ["0.w"]);
    /// let err = Selector::new().include("*.v")?.select(&model).unwrap_err();
    /// assert!(matches!(err.kind(), PruneErrorKind::NoMatch { pattern } if pattern == "*.v"));
    /// # Ok(()) }
    /// ```
    pub fn select<T: PruneFloat, M: Module<T> + ?Sized>(
        &self,
        model: &M,
    ) -> Result<Vec<String>, PruneError> {
        let candidates = candidates(model);
        let mut matched = vec![false; self.include.len()];
        let mut out = Vec::new();
        for (path, ndim) in candidates {
            let mut included = self.include.is_empty();
            for (glob, hit) in self.include.iter().zip(&mut matched) {
                if glob.is_match(&path) {
                    *hit = true;
                    included = true;
                }
            }
            if included && self.ndim_ok(ndim) && !self.exclude.iter().any(|g| g.is_match(&path)) {
                out.push(path);
            }
        }
        if let Some(at) = matched.iter().position(|hit| !hit) {
            return Err(PruneErrorKind::NoMatch {
                pattern: self.include[at].as_str().to_string(),
            }
            .into());
        }
        Ok(out)
    }
}

/// Every name a pruning call accepts, with its number of dims, in
/// `state_dict` order: parameters, with `X_orig` of a pruned `X` named `X`.
fn candidates<T: PruneFloat, M: Module<T> + ?Sized>(model: &M) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    model.visit_stores("", &mut |prefix, store| {
        for (name, t) in store.parameters() {
            let own = name
                .strip_suffix("_orig")
                .filter(|base| store.is_pruned(base))
                .unwrap_or(name);
            out.push((join(prefix, own), t.ndim()));
        }
    });
    out
}
