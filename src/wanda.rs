//! Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter,
//! "A Simple and Effective Pruning Approach for Large Language Models",
//! 2023, arXiv:2306.11695).
//!
//! A Linear layer `y = x Wᵀ` with weight `W: [out_features, in_features]`
//! is pruned by the importance
//!
//! ```text
//! S[i, j] = |W[i, j]| · ‖X[:, j]‖₂
//! ```
//!
//! where `X: [tokens, in_features]` holds the layer's inputs over a
//! calibration set, and entries are compared only within their output row
//! `i` ([`PerRowUnstructured`]): each row loses the same share.
//!
//! The parts:
//!
//! - [`NormAccumulator`]: feed it the layer's inputs batch by batch (any
//!   float dtype, any leading dims: `[tokens, in_features]`,
//!   `[batch, seq, in_features]`); it keeps each feature's sum of squares
//!   in `f64`. Or bring norms of your own as [`ActivationNorms`].
//! - [`scores`]: the importance `S`, usable as the importance scores of any
//!   method ([`prune::apply`](crate::prune::apply)'s last argument, a
//!   gradual pruner's, …).
//! - [`prune`]: Wanda itself, [`PerRowUnstructured`] on those scores with
//!   the reference's rounding ([`Rounding::Down`]); [`prune_with`] for any
//!   other method on the same scores.
//!
//! Norms are kept in `f64`; scores are computed in `f64`
//! (`|w| as f64 · norm`) and rounded once to the weight's dtype. Scaling
//! every norm of a layer by one positive number (a mean over tokens
//! instead of a sum, as the reference code keeps) changes no row's order
//! beyond rounding, so the masks are the same.
//!
//! ```
//! use ndprune::prelude::*;
//! use ndprune::wanda::{self, NormAccumulator};
//! use ndarray::array;
//!
//! # fn main() -> Result<(), PruneError> {
//! let w = array![[1.0f32, 1.0, 1.0, 1.0], [4.0, 0.5, 2.0, 1.0]].into_dyn();
//! let mut layer = Layer::new().with_parameter("weight", w)?;
//! let mut acc = NormAccumulator::new(4);
//! acc.update(array![[0.0f32, 3.0, 1.0, 0.1], [0.0, 4.0, 0.0, 0.1]].view())?;
//! let norms = acc.norms()?; // [0, 5, 1, 0.141…]
//! wanda::prune(&mut layer, "weight", &norms, Amount::Fraction(0.5))?;
//! assert_eq!(layer.buffer("weight_mask").unwrap(),
//!            &array![[0.0f32, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]].into_dyn());
//! # Ok(()) }
//! ```

use ndarray::{ArrayD, ArrayView, ArrayView1, ArrayViewD, Dimension, IxDyn};

use crate::{
    Amount, Module, PerRowUnstructured, PruneError, PruneErrorKind, PruneFloat, PruningMethod,
    Rounding,
};

/// Sums of squares of a Linear layer's inputs, per input feature, in `f64`,
/// over every batch fed in.
///
/// ```text
/// sum_sq[j] = Σ over tokens t of X[t, j]²        norm[j] = √sum_sq[j]
/// ```
///
/// Squares are added in `f64` in the order the tokens come (row-major
/// within a batch), whatever the inputs' dtype.
///
/// ```
/// use ndprune::wanda::NormAccumulator;
/// use ndarray::array;
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let mut acc = NormAccumulator::new(2);
/// acc.update(array![[3.0f32, 0.0]].view())?;
/// acc.update(array![[[4.0f64, 1.0]], [[0.0, 0.0]]].view())?; // [batch, seq, in]
/// assert_eq!(acc.tokens(), 3);
/// assert_eq!(acc.norms()?.as_slice(), &[5.0, 1.0]);
/// assert!(acc.update(array![[1.0f32, 2.0, 3.0]].view()).is_err());
/// assert!(acc.update(array![[f32::NAN, 2.0]].view()).is_err());
/// assert_eq!(acc.tokens(), 3); // the failed calls added nothing
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NormAccumulator {
    sum_sq: Vec<f64>,
    tokens: u64,
}

impl NormAccumulator {
    /// An accumulator for a layer of `in_features` inputs, with nothing
    /// fed yet (all norms 0).
    ///
    /// ```
    /// let acc = ndprune::wanda::NormAccumulator::new(8);
    /// assert_eq!((acc.in_features(), acc.tokens()), (8, 0));
    /// ```
    pub fn new(in_features: usize) -> Self {
        NormAccumulator {
            sum_sq: vec![0.0; in_features],
            tokens: 0,
        }
    }

    /// Adds a batch of inputs: any shape whose last dim is `in_features`
    /// (the leading dims are tokens). Fails, adding nothing, for another
    /// last dim ([`PruneErrorKind::ActivationShape`]), an entry that is NaN
    /// or infinite ([`PruneErrorKind::NonFiniteActivation`]), or a sum of
    /// squares that would overflow `f64`
    /// ([`PruneErrorKind::InvalidActivationNorm`]).
    ///
    /// ```
    /// use ndprune::wanda::NormAccumulator;
    /// let mut acc = NormAccumulator::new(3);
    /// acc.update(ndarray::Array2::<f32>::ones((5, 3)).view()).unwrap();
    /// assert_eq!(acc.tokens(), 5);
    /// ```
    pub fn update<T: PruneFloat, D: Dimension>(
        &mut self,
        inputs: ArrayView<'_, T, D>,
    ) -> Result<(), PruneError> {
        let n = self.sum_sq.len();
        let shape = inputs.shape();
        if shape.last() != Some(&n) {
            return Err(PruneErrorKind::ActivationShape {
                in_features: n,
                got: shape.to_vec(),
            }
            .into());
        }
        if let Some((index, x)) = inputs.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(PruneErrorKind::NonFiniteActivation {
                index,
                value: x.as_f64(),
            }
            .into());
        }
        let inputs = inputs.as_standard_layout();
        let data = inputs
            .as_slice()
            .expect("as_standard_layout gives contiguous row-major data");
        let mut sums = self.sum_sq.clone();
        let mut tokens = 0u64;
        if n > 0 {
            for row in data.chunks_exact(n) {
                for (s, &x) in sums.iter_mut().zip(row) {
                    let x = x.as_f64();
                    *s += x * x;
                }
                tokens += 1;
            }
        } else {
            tokens = shape[..shape.len() - 1].iter().product::<usize>() as u64;
        }
        if let Some((index, &value)) = sums.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(PruneErrorKind::InvalidActivationNorm { index, value }.into());
        }
        self.sum_sq = sums;
        self.tokens += tokens;
        Ok(())
    }

    /// The layer's input features.
    ///
    /// ```
    /// assert_eq!(ndprune::wanda::NormAccumulator::new(3).in_features(), 3);
    /// ```
    pub fn in_features(&self) -> usize {
        self.sum_sq.len()
    }

    /// The tokens (rows of inputs) fed so far.
    ///
    /// ```
    /// assert_eq!(ndprune::wanda::NormAccumulator::new(3).tokens(), 0);
    /// ```
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Each feature's sum of squares so far.
    ///
    /// ```
    /// let mut acc = ndprune::wanda::NormAccumulator::new(1);
    /// acc.update(ndarray::array![[2.0f32], [1.0]].view()).unwrap();
    /// assert_eq!(acc.sum_of_squares(), &[5.0]);
    /// ```
    pub fn sum_of_squares(&self) -> &[f64] {
        &self.sum_sq
    }

    /// The norms `‖X[:, j]‖₂ = √sum_sq[j]` (in `f64`).
    ///
    /// ```
    /// let mut acc = ndprune::wanda::NormAccumulator::new(1);
    /// acc.update(ndarray::array![[3.0f32], [4.0]].view()).unwrap();
    /// assert_eq!(acc.norms().unwrap().as_slice(), &[5.0]);
    /// ```
    pub fn norms(&self) -> Result<ActivationNorms, PruneError> {
        ActivationNorms::new(self.sum_sq.iter().map(|s| s.sqrt()).collect())
    }
}

/// One `f64` norm per input feature of a layer, checked finite and not
/// negative: from a [`NormAccumulator`], or your own forward passes.
///
/// ```
/// use ndprune::wanda::ActivationNorms;
/// use ndprune::PruneErrorKind;
/// assert_eq!(ActivationNorms::new(vec![1.0, 0.0]).unwrap().len(), 2);
/// let err = ActivationNorms::new(vec![1.0, -2.0]).unwrap_err();
/// assert!(matches!(err.kind(), PruneErrorKind::InvalidActivationNorm { index: 1, .. }));
/// assert!(ActivationNorms::new(vec![f64::NAN]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationNorms {
    norms: Vec<f64>,
}

impl ActivationNorms {
    /// The norms, checked: each finite and `>= 0`
    /// ([`PruneErrorKind::InvalidActivationNorm`] names the first that is
    /// not).
    ///
    /// ```
    /// assert!(ndprune::wanda::ActivationNorms::new(vec![f64::INFINITY]).is_err());
    /// ```
    pub fn new(norms: Vec<f64>) -> Result<Self, PruneError> {
        if let Some((index, &value)) = norms
            .iter()
            .enumerate()
            .find(|(_, &x)| !(x.is_finite() && x >= 0.0))
        {
            return Err(PruneErrorKind::InvalidActivationNorm { index, value }.into());
        }
        Ok(ActivationNorms { norms })
    }

    /// The norms of a 1-D array of any float dtype, widened to `f64` and
    /// checked.
    ///
    /// ```
    /// let n = ndprune::wanda::ActivationNorms::from_array(ndarray::array![1.5f32, 2.0].view()).unwrap();
    /// assert_eq!(n.as_slice(), &[1.5, 2.0]);
    /// ```
    pub fn from_array<T: PruneFloat>(norms: ArrayView1<'_, T>) -> Result<Self, PruneError> {
        Self::new(norms.iter().map(|x| x.as_f64()).collect())
    }

    /// The norms.
    ///
    /// ```
    /// assert_eq!(ndprune::wanda::ActivationNorms::new(vec![3.0]).unwrap().as_slice(), &[3.0]);
    /// ```
    pub fn as_slice(&self) -> &[f64] {
        &self.norms
    }

    /// How many norms (the layer's input features).
    ///
    /// ```
    /// assert_eq!(ndprune::wanda::ActivationNorms::new(vec![]).unwrap().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// assert!(ndprune::wanda::ActivationNorms::new(vec![]).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }
}

/// Wanda's importance of each entry of `weight` (`[out_features,
/// in_features]`, `in_features` = `norms.len()`):
/// `S[i, j] = |W[i, j]| · norms[j]`, in `f64` and rounded once to `T`. A
/// NaN weight gives a NaN score (which every method in ndprune ranks
/// above all numbers, so keeps).
///
/// ```
/// use ndprune::wanda::{scores, ActivationNorms};
/// use ndprune::PruneErrorKind;
/// use ndarray::array;
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let w = array![[-2.0f32, 1.0], [0.5, -0.5]].into_dyn();
/// let norms = ActivationNorms::new(vec![1.0, 10.0])?;
/// assert_eq!(scores(w.view(), &norms)?, array![[2.0f32, 10.0], [0.5, 5.0]].into_dyn());
/// let three = ActivationNorms::new(vec![1.0; 3])?;
/// let err = scores(w.view(), &three).unwrap_err();
/// assert!(matches!(err.kind(), PruneErrorKind::ActivationNormsMismatch { norms: 3, .. }));
/// # Ok(()) }
/// ```
pub fn scores<T: PruneFloat>(
    weight: ArrayViewD<'_, T>,
    norms: &ActivationNorms,
) -> Result<ArrayD<T>, PruneError> {
    let shape = weight.shape();
    if shape.len() != 2 || shape[1] != norms.len() {
        return Err(PruneErrorKind::ActivationNormsMismatch {
            shape: shape.to_vec(),
            norms: norms.len(),
        }
        .into());
    }
    let n = norms.as_slice();
    let weight = weight.as_standard_layout();
    let data = weight
        .as_slice()
        .expect("as_standard_layout gives contiguous row-major data");
    let out: Vec<T> = if n.is_empty() {
        Vec::new()
    } else {
        data.chunks_exact(n.len())
            .flat_map(|row| {
                row.iter()
                    .zip(n)
                    .map(|(&w, &x)| T::from_f64(w.as_f64().abs() * x))
            })
            .collect()
    };
    Ok(ArrayD::from_shape_vec(IxDyn(shape), out).expect("one score per entry"))
}

/// Wanda: prunes `amount` of every output row of the weight at `path`
/// (a fraction of each row's entries still unpruned, rounded down as the
/// reference code's `int(in_features * ratio)`), the entries of smallest
/// `|W| · ‖X‖₂`. The same as [`prune_with`] and
/// `PerRowUnstructured::new(amount)?.with_rounding(Rounding::Down)`.
///
/// The scores are taken from the tensor as it is now (a pruned entry
/// scores 0, but only the entries still unpruned are ranked). Fails, and
/// changes nothing, for a tensor that is no matrix of `norms.len()`
/// columns ([`PruneErrorKind::ActivationNormsMismatch`]) and for whatever
/// [`prune::apply`](crate::prune::apply) fails for.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::wanda::{self, ActivationNorms};
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![[3.0f64, 2.0, 1.0]].into_dyn())?;
/// let norms = ActivationNorms::new(vec![0.1, 1.0, 10.0])?;
/// // int(3 × 0.5) = 1 per row: the entry scoring 0.3.
/// wanda::prune(&mut layer, "weight", &norms, Amount::Fraction(0.5))?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[0.0, 1.0, 1.0]].into_dyn());
/// # Ok(()) }
/// ```
pub fn prune<T, M>(
    module: &mut M,
    path: &str,
    norms: &ActivationNorms,
    amount: Amount,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
{
    let method = PerRowUnstructured::new(amount)?.with_rounding(Rounding::Down);
    prune_with(module, path, norms, &method)
}

/// Prunes the tensor at `path` by any method, with Wanda's scores
/// ([`scores`] of the tensor as it is now) as its importance scores: an
/// [`L1Unstructured`](crate::L1Unstructured) on them compares across the
/// whole layer instead of within rows, say.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::wanda::{self, ActivationNorms};
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![[3.0f32, 2.0], [1.0, 0.1]].into_dyn())?;
/// let norms = ActivationNorms::new(vec![0.1, 1.0])?;
/// wanda::prune_with(&mut layer, "weight", &norms, &L1Unstructured::new(Amount::Count(2))?)?;
/// // Scores [[0.3, 2], [0.1, 0.1]]: the two of row 1.
/// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[1.0f32, 1.0], [0.0, 0.0]].into_dyn());
/// assert!(wanda::prune_with(&mut layer, "bias", &norms, &L1Unstructured::new(Amount::Count(1))?).is_err());
/// # Ok(()) }
/// ```
pub fn prune_with<T, M, P>(
    module: &mut M,
    path: &str,
    norms: &ActivationNorms,
    method: &P,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
{
    let (store, name) = crate::module::resolve(&*module, path)?;
    let weight = store
        .get(name)
        .ok_or_else(|| PruneError::new(path, PruneErrorKind::NoSuchTensor))?;
    let s = scores(weight.view(), norms).map_err(|e| PruneError::new(path, e.kind().clone()))?;
    crate::prune::apply(module, path, method, Some(s.view()))
}
