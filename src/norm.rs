//! Norms, and the per-channel norm kernel of structured pruning.

use std::fmt;

use ndarray::ArrayViewD;

use crate::{par, Dim, PruneError, PruneErrorKind, PruneFloat};

/// Which norm ranks the channels in [`crate::prune::ln_structured`], as
/// PyTorch's `n` argument.
///
/// ```text
/// L(p)    (Σ |x|^p)^(1/p)    any real p; p = 0 counts the nonzero entries
/// Inf     max |x|            (same as L(f64::INFINITY))
/// NegInf  min |x|            (same as L(f64::NEG_INFINITY))
/// Fro     (Σ x²)^(1/2)       (same as L(2.0))
/// Nuc     Σ σᵢ               sum of singular values of the 2-D slice;
///                            only for tensors of exactly 3 dims
/// ```
///
/// NaN anywhere in a channel makes its norm NaN (except for `L(0.0)`, where
/// NaN counts as nonzero), and a NaN norm ranks as the largest.
///
/// ```
/// use ndprune::{Dim, Norm};
/// use ndarray::array;
///
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let t = array![[3.0f32, -4.0], [0.0, 1.0]].into_dyn();
/// assert_eq!(Norm::L(2.0).channel_norms(t.view(), Dim(0))?, vec![5.0, 1.0]);
/// assert_eq!(Norm::L(1.0).channel_norms(t.view(), Dim(1))?, vec![3.0, 5.0]);
/// assert_eq!(Norm::Inf.channel_norms(t.view(), Dim(1))?, vec![3.0, 4.0]);
/// assert_eq!(Norm::NegInf.channel_norms(t.view(), Dim(0))?, vec![3.0, 0.0]);
/// assert_eq!(Norm::L(0.0).channel_norms(t.view(), Dim(0))?, vec![2.0, 1.0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Norm {
    /// The Lp norm for any real `p` (negative, zero and infinite included).
    L(f64),
    /// The maximum magnitude.
    Inf,
    /// The minimum magnitude.
    NegInf,
    /// The Frobenius norm, i.e. L2 over the reduced dims.
    Fro,
    /// The nuclear norm: needs exactly two reduced dims (a 3-dim tensor).
    ///
    /// Computed by an SVD from `nalgebra`, which the default feature `nuc`
    /// brings in. Built without that feature, ndprune still has this
    /// variant, but every use of it fails with
    /// [`PruneErrorKind::NormUnavailable`] (before anything is pruned).
    ///
    /// ```
    /// use ndprune::{Dim, Norm};
    /// // diag(3, -4) has singular values 3 and 4.
    /// let t = ndarray::array![[[3.0f64, 0.0], [0.0, -4.0]]].into_dyn();
    /// let norms = Norm::Nuc.channel_norms(t.view(), Dim(0));
    /// #[cfg(feature = "nuc")]
    /// assert!((norms.unwrap()[0] - 7.0).abs() < 1e-12);
    /// #[cfg(not(feature = "nuc"))]
    /// assert!(matches!(
    ///     norms.unwrap_err().kind(),
    ///     ndprune::PruneErrorKind::NormUnavailable { feature: "nuc", .. }
    /// ));
    /// ```
    Nuc,
}

/// The reduction a norm comes down to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduction {
    Count,
    Sum,
    SumSquares,
    Max,
    Min,
    Power(f64),
    #[cfg(feature = "nuc")]
    Nuclear,
}

impl Norm {
    fn reduction(self) -> Result<Reduction, PruneError> {
        let p = match self {
            Norm::L(p) => p,
            Norm::Inf => f64::INFINITY,
            Norm::NegInf => f64::NEG_INFINITY,
            Norm::Fro => 2.0,
            #[cfg(feature = "nuc")]
            Norm::Nuc => return Ok(Reduction::Nuclear),
            #[cfg(not(feature = "nuc"))]
            Norm::Nuc => {
                return Err(PruneErrorKind::NormUnavailable {
                    norm: self,
                    feature: "nuc",
                }
                .into())
            }
        };
        Ok(match p {
            p if p.is_nan() => return Err(PruneErrorKind::InvalidNorm { p }.into()),
            0.0 => Reduction::Count,
            1.0 => Reduction::Sum,
            2.0 => Reduction::SumSquares,
            f64::INFINITY => Reduction::Max,
            f64::NEG_INFINITY => Reduction::Min,
            p => Reduction::Power(p),
        })
    }

    /// The norm of every channel along `dim`, reducing over all other
    /// dims, as `torch.norm(t, p, dims)` returns it: accumulated in `f64`
    /// and rounded once to the tensor's dtype (for `bf16` and `f16` through
    /// `f32`, the dtype of PyTorch's accumulator; see
    /// [`PruneFloat::from_accumulator`]). Channels whose norms are equal once
    /// rounded tie, as they do in PyTorch.
    ///
    /// Fails for a `dim` out of range, for [`Norm::Nuc`] unless the tensor
    /// has exactly 3 dims (or in a build without the feature `nuc`), for
    /// `L(NaN)`, and (as PyTorch does) for `inf`,
    /// `-inf` and negative orders when the channels hold no entries: those
    /// reductions have no value over nothing, while the others give 0.
    ///
    /// ```
    /// use ndprune::{Dim, Norm};
    /// let t = ndarray::ArrayD::<f64>::ones(vec![2, 3, 4]);
    /// assert_eq!(Norm::L(1.0).channel_norms(t.view(), Dim(1)).unwrap(), vec![8.0; 3]);
    /// assert_eq!(Norm::L(1.0).channel_norms(t.view(), Dim(-1)).unwrap(), vec![6.0; 4]);
    /// assert_eq!(Norm::Nuc.channel_norms(t.view(), Dim(0)).is_ok(), cfg!(feature = "nuc"));
    /// assert!(Norm::L(2.0).channel_norms(t.view(), Dim(3)).is_err());
    ///
    /// let empty = ndarray::ArrayD::<f64>::zeros(vec![0, 3]);
    /// assert_eq!(Norm::L(2.0).channel_norms(empty.view(), Dim(1)).unwrap(), vec![0.0; 3]);
    /// assert!(Norm::Inf.channel_norms(empty.view(), Dim(1)).is_err());
    /// ```
    pub fn channel_norms<T: PruneFloat>(
        self,
        t: ArrayViewD<'_, T>,
        dim: Dim,
    ) -> Result<Vec<T>, PruneError> {
        let d = dim.resolve(t.ndim())?;
        self.channel_norms_at(t, d)
    }

    /// [`Norm::channel_norms`] along the resolved dim `d` (`< t.ndim()`).
    pub(crate) fn channel_norms_at<T: PruneFloat>(
        self,
        t: ArrayViewD<'_, T>,
        d: usize,
    ) -> Result<Vec<T>, PruneError> {
        self.check_defined(t.shape(), d)?;
        let channels = t.shape()[d];
        let mut out = Vec::new();
        out.try_reserve_exact(channels)
            .map_err(|_| PruneErrorKind::TooLarge {
                what: "channel norms",
                count: channels,
            })?;
        if t.is_empty() {
            // No entries: every norm defined here is 0 (a channel of no
            // entries, or no channels), and nothing is read.
            out.resize(channels, T::zero());
        } else {
            out.extend(self.norms_f64(t, d)?.into_iter().map(T::from_accumulator));
        }
        Ok(out)
    }

    /// The errors [`Norm::channel_norms`] gives for a tensor of `shape`
    /// and channel dim `d` (resolved) that do not depend on its values.
    pub(crate) fn check_defined(self, shape: &[usize], d: usize) -> Result<(), PruneError> {
        let reduction = self.reduction()?;
        if matches!(self, Norm::Nuc) && shape.len() != 3 {
            return Err(PruneErrorKind::NormUndefined {
                norm: self,
                ndim: shape.len(),
            }
            .into());
        }
        // PyTorch refuses a reduction over no entries when it has no
        // identity (the max, the min, a sum of negative powers).
        let no_identity = match reduction {
            Reduction::Max | Reduction::Min => true,
            Reduction::Power(p) => p < 0.0,
            _ => false,
        };
        let reduced: usize = shape[..d].iter().chain(&shape[d + 1..]).product();
        if no_identity && reduced == 0 {
            return Err(PruneErrorKind::EmptyNorm { norm: self }.into());
        }
        Ok(())
    }

    /// The norms of the channels along resolved dim `d`, in `f64`, after
    /// [`Norm::check_defined`].
    fn norms_f64<T: PruneFloat>(
        self,
        t: ArrayViewD<'_, T>,
        dim: usize,
    ) -> Result<Vec<f64>, PruneError> {
        let reduction = self.reduction()?;
        let t = t.as_standard_layout();
        let shape = t.shape();
        let channels = shape[dim];
        let outer: usize = shape[..dim].iter().product();
        let inner: usize = shape[dim + 1..].iter().product();
        let data = t
            .as_slice()
            .expect("as_standard_layout gives contiguous row-major data");
        let sum = |a: f64, b: f64| a + b;
        let max = |a: f64, x: f64| {
            let x = x.abs();
            if x.is_nan() || x > a {
                x
            } else {
                a
            }
        };
        let min = |a: f64, x: f64| {
            let x = x.abs();
            if x.is_nan() || x < a {
                x
            } else {
                a
            }
        };
        let shape = (outer, channels, inner);
        Ok(match reduction {
            Reduction::Count => reduce(
                data,
                shape,
                0.0,
                |a, x| a + f64::from(u8::from(x != 0.0)),
                sum,
                // Counts below 2^53: exact in any order.
                true,
            ),
            Reduction::Sum => reduce(data, shape, 0.0, |a, x| a + x.abs(), sum, false),
            Reduction::SumSquares => {
                let mut s = reduce(data, shape, 0.0, |a, x| a + x * x, sum, false);
                s.iter_mut().for_each(|v| *v = v.sqrt());
                s
            }
            Reduction::Max => reduce(data, shape, 0.0, max, max, true),
            Reduction::Min => reduce(data, shape, f64::INFINITY, min, min, true),
            Reduction::Power(p) => {
                let mut s = if p.fract() == 0.0 && p.abs() <= 64.0 {
                    let e = p as i32;
                    reduce(data, shape, 0.0, |a, x| a + x.abs().powi(e), sum, false)
                } else {
                    reduce(data, shape, 0.0, |a, x| a + x.abs().powf(p), sum, false)
                };
                s.iter_mut().for_each(|v| *v = v.powf(1.0 / p));
                s
            }
            #[cfg(feature = "nuc")]
            Reduction::Nuclear => nuclear_norms(t.view(), dim)?,
        })
    }
}

/// Number of blocks the outer dimension is cut into for parallel partial
/// reductions: fixed, so results do not depend on the number of threads.
const OUTER_BLOCKS: usize = 64;

/// Runs shorter than this are folded entry by entry when the order of the
/// fold does not matter.
const SHORT_RUN: usize = 16;

/// Folds every channel of the `[outer, channels, inner]` view of `data`
/// with `add` (accumulator, element) in one pass over memory in order;
/// partial results of fixed blocks are combined with `merge`, in block
/// order. Contiguous runs are folded in four interleaved lanes, or, when
/// `order_free` (the max and the min: any order gives the same result) and
/// they are short, entry by entry.
fn reduce<T: PruneFloat>(
    data: &[T],
    (outer, channels, inner): (usize, usize, usize),
    init: f64,
    add: impl Fn(f64, f64) -> f64 + Sync + Send,
    merge: impl Fn(f64, f64) -> f64 + Sync + Send,
    order_free: bool,
) -> Vec<f64> {
    if channels == 0 || inner == 0 || outer == 0 {
        return vec![init; channels];
    }
    let slab = channels * inner;
    let fold_run = |run: &[T]| {
        let mut lanes = [init; 4];
        let mut quads = run.chunks_exact(4);
        for q in &mut quads {
            for (l, &x) in lanes.iter_mut().zip(q) {
                *l = add(*l, x.as_f64());
            }
        }
        let mut acc = merge(merge(lanes[0], lanes[1]), merge(lanes[2], lanes[3]));
        for &x in quads.remainder() {
            acc = add(acc, x.as_f64());
        }
        acc
    };
    if outer == 1 {
        // One slab: each channel is one contiguous run.
        return par::map_ordered(channels, data.len(), |c| {
            fold_run(&data[c * inner..(c + 1) * inner])
        });
    }
    // Partial results per block of slabs, merged in block order.
    let blocks = outer.min(OUTER_BLOCKS);
    let per_block = outer.div_ceil(blocks);
    let partials = par::map_ordered(blocks, data.len(), |b| {
        let mut acc = vec![init; channels];
        let rows = (b * per_block)..((b + 1) * per_block).min(outer);
        for o in rows {
            let slab = &data[o * slab..(o + 1) * slab];
            if inner == 1 {
                for (a, &x) in acc.iter_mut().zip(slab) {
                    *a = add(*a, x.as_f64());
                }
            } else if inner < SHORT_RUN && order_free {
                // Short runs: fold each entry straight into its channel
                // (the lanes of `fold_run` cost more than they save here).
                for (a, run) in acc.iter_mut().zip(slab.chunks_exact(inner)) {
                    for &x in run {
                        *a = add(*a, x.as_f64());
                    }
                }
            } else {
                for (a, run) in acc.iter_mut().zip(slab.chunks_exact(inner)) {
                    *a = merge(*a, fold_run(run));
                }
            }
        }
        acc
    });
    let mut total = vec![init; channels];
    for part in partials {
        for (t, p) in total.iter_mut().zip(part) {
            *t = merge(*t, p);
        }
    }
    total
}

/// Sum of singular values of each channel's 2-D slice (3-dim tensor).
/// The nuclear norm of every 2-dim slice along `dim`. As in PyTorch (whose
/// SVD reports NaN input as a failure to converge), NaN anywhere in the
/// tensor is an error, and a slice holding an infinity has norm NaN.
#[cfg(feature = "nuc")]
fn nuclear_norms<T: PruneFloat>(t: ArrayViewD<'_, T>, dim: usize) -> Result<Vec<f64>, PruneError> {
    if t.iter().any(|x| x.is_nan()) {
        return Err(PruneErrorKind::NanNuclear.into());
    }
    Ok(t.axis_iter(ndarray::Axis(dim))
        .map(|slice| {
            let (rows, cols) = (slice.shape()[0], slice.shape()[1]);
            if rows == 0 || cols == 0 {
                return 0.0;
            }
            if slice.iter().any(|x| x.is_infinite()) {
                return f64::NAN;
            }
            let m = nalgebra::DMatrix::from_fn(rows, cols, |r, c| slice[[r, c]].as_f64());
            nalgebra::SVD::try_new_unordered(m, false, false, f64::EPSILON, 10_000)
                .map_or(f64::NAN, |svd| svd.singular_values.iter().sum())
        })
        .collect())
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Norm::L(p) => write!(f, "L{p}"),
            Norm::Inf => f.write_str("inf"),
            Norm::NegInf => f.write_str("-inf"),
            Norm::Fro => f.write_str("fro"),
            Norm::Nuc => f.write_str("nuc"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, Axis};

    fn t3() -> ArrayD<f64> {
        ArrayD::from_shape_vec(vec![2, 3, 2], (0..12).map(|i| i as f64 - 5.0).collect()).unwrap()
    }

    /// Reference: norms by explicit index walk.
    fn naive(t: &ArrayD<f64>, dim: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        t.axis_iter(Axis(dim))
            .map(|c| f(&c.iter().copied().collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn every_dim_matches_a_naive_walk() {
        let t = t3();
        for dim in 0..3 {
            let l1 = naive(&t, dim, |v| v.iter().map(|x| x.abs()).sum());
            assert_eq!(Norm::L(1.0).channel_norms_at(t.view(), dim).unwrap(), l1);
            let l3 = naive(&t, dim, |v| {
                v.iter()
                    .map(|x| x.abs().powi(3))
                    .sum::<f64>()
                    .powf(1.0 / 3.0)
            });
            assert_eq!(Norm::L(3.0).channel_norms_at(t.view(), dim).unwrap(), l3);
            let min = naive(&t, dim, |v| {
                v.iter().map(|x| x.abs()).fold(f64::INFINITY, f64::min)
            });
            assert_eq!(Norm::NegInf.channel_norms_at(t.view(), dim).unwrap(), min);
        }
    }

    #[test]
    fn negative_p_with_a_zero_gives_zero() {
        let t = ArrayD::from_shape_vec(vec![2, 2], vec![0.0f32, 2.0, 1.0, 1.0]).unwrap();
        let n = Norm::L(-2.0).channel_norms_at(t.view(), 0).unwrap();
        assert_eq!(n[0], 0.0);
        assert_eq!(n[1], 0.5f32.sqrt());
    }

    #[test]
    fn nan_propagates_except_for_the_count() {
        let t = ArrayD::from_shape_vec(vec![2, 2], vec![f32::NAN, 2.0, 1.0, 1.0]).unwrap();
        for norm in [
            Norm::L(1.0),
            Norm::Fro,
            Norm::Inf,
            Norm::NegInf,
            Norm::L(0.5),
        ] {
            let n = norm.channel_norms_at(t.view(), 0).unwrap();
            assert!(n[0].is_nan(), "{norm}");
            assert!(!n[1].is_nan(), "{norm}");
        }
        assert_eq!(
            Norm::L(0.0).channel_norms_at(t.view(), 0).unwrap(),
            vec![2.0, 2.0]
        );
    }

    #[test]
    #[cfg(feature = "nuc")]
    fn nuclear_norm_needs_three_dims() {
        let t = ArrayD::<f32>::zeros(vec![3, 4]);
        assert!(matches!(
            Norm::Nuc.channel_norms_at(t.view(), 0).unwrap_err().kind(),
            PruneErrorKind::NormUndefined { ndim: 2, .. }
        ));
        // diag(3, 4) has singular values 3 and 4.
        let mut t = ArrayD::<f64>::zeros(vec![1, 2, 2]);
        t[[0, 0, 0]] = 3.0;
        t[[0, 1, 1]] = -4.0;
        let n = Norm::Nuc.channel_norms_at(t.view(), 0).unwrap();
        assert!((n[0] - 7.0).abs() < 1e-12);
    }

    #[test]
    #[cfg(not(feature = "nuc"))]
    fn nuclear_norm_without_the_feature_is_a_typed_error() {
        // Whatever the tensor (3 dims, 2 dims, NaN, empty), no value and no
        // panic: the error names the norm and the missing feature.
        let mut nan = ArrayD::<f32>::ones(vec![2, 2, 3]);
        nan[[0, 1, 1]] = f32::NAN;
        for t in [
            ArrayD::<f32>::ones(vec![2, 2, 3]),
            ArrayD::<f32>::ones(vec![3, 4]),
            ArrayD::<f32>::zeros(vec![2, 0, 3]),
            nan,
        ] {
            for d in 0..t.ndim() {
                let err = Norm::Nuc.channel_norms_at(t.view(), d).unwrap_err();
                assert_eq!(
                    err.kind(),
                    &PruneErrorKind::NormUnavailable {
                        norm: Norm::Nuc,
                        feature: "nuc"
                    }
                );
                assert_eq!(
                    err.to_string(),
                    "norm nuc is not available: ndprune was built without the feature `nuc`"
                );
                assert_eq!(err.torch_kind(), "RuntimeError");
                assert_eq!(
                    Norm::Nuc.check_defined(t.shape(), d).unwrap_err().kind(),
                    err.kind()
                );
            }
        }
        // The other norms do not need the feature.
        let t = ArrayD::<f32>::ones(vec![2, 2, 3]);
        assert_eq!(
            Norm::Fro.channel_norms_at(t.view(), 0).unwrap(),
            vec![6.0f32.sqrt(); 2]
        );
    }

    #[test]
    #[cfg(feature = "nuc")]
    fn nuclear_norm_refuses_nan_and_gives_nan_for_an_infinity() {
        // As torch.linalg.matrix_norm(ord="nuc") on the CPU: NaN anywhere
        // fails (LinAlgError, a RuntimeError), an infinity gives NaN.
        let mut t = ArrayD::<f32>::ones(vec![2, 2, 3]);
        t[[1, 0, 2]] = f32::INFINITY;
        let n = Norm::Nuc.channel_norms_at(t.view(), 0).unwrap();
        assert!(!n[0].is_nan() && n[1].is_nan());
        t[[0, 1, 1]] = f32::NAN;
        let err = Norm::Nuc.channel_norms_at(t.view(), 0).unwrap_err();
        assert_eq!(err.kind(), &PruneErrorKind::NanNuclear);
        assert_eq!(err.torch_kind(), "RuntimeError");
    }

    #[test]
    fn norms_over_no_entries() {
        // torch.norm over an empty dim: 0 for p >= 0, an error for the
        // reductions without an identity.
        let t = ArrayD::<f64>::zeros(vec![3, 0]);
        for norm in [Norm::L(0.0), Norm::L(0.5), Norm::L(1.0), Norm::Fro] {
            assert_eq!(norm.channel_norms_at(t.view(), 0).unwrap(), vec![0.0; 3]);
        }
        for norm in [Norm::Inf, Norm::NegInf, Norm::L(-1.0)] {
            let err = norm.channel_norms_at(t.view(), 0).unwrap_err();
            assert!(
                matches!(err.kind(), PruneErrorKind::EmptyNorm { .. }),
                "{norm}"
            );
            assert_eq!(err.torch_kind(), "RuntimeError");
        }
        // No channels but entries along the reduced dims: nothing to refuse.
        let t = ArrayD::<f64>::zeros(vec![0, 4]);
        assert!(Norm::Inf.channel_norms_at(t.view(), 0).unwrap().is_empty());
    }
}
