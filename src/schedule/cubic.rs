//! `torch.ao.pruning.scheduler.CubicSL`: Zhu & Gupta's cubic schedule.

use super::{check_sparsity, invalid, Schedule};
use crate::PruneError;

/// The cubic sparsity schedule of Zhu & Gupta, "To prune, or not to prune"
/// (2017, arXiv:1710.01878), exactly as `torch.ao.pruning`'s `CubicSL`
/// computes it (`CubicSL.sparsity_compute_fn` in
/// `torch/ao/pruning/scheduler/cubic_scheduler.py`, PyTorch 2.x):
///
/// ```text
/// s(t) = 0                                                 if initially_zero and t < t₀
/// s(t) = clamp(s_f + (s₀ − s_f)·(1 − (t − t₀)/(Δt·n))³, s₀, s_f)   otherwise
/// ```
///
/// with `s₀ = init_sl`, `s_f` the final sparsity (torch.ao's
/// `sparsity_level` of the sparsifier's group), `t₀ = init_t`,
/// `Δt = delta_t`, `n = total_t`. The clamp bounds the value below `t₀`
/// (where the cube exceeds 1) to `s₀` and past `t₀ + Δt·n` (where it turns
/// negative) to `s_f`. The arithmetic is Python's, in `f64` in the same
/// order (the quotient of the two integers correctly rounded, the cube by
/// `pow`), so the values are PyTorch's to the bit; `t` is torch.ao's
/// `last_epoch`, 0 after the scheduler is made and one more per
/// `scheduler.step()`.
///
/// Defaults are torch.ao's: `init_sl = 0`, `init_t = 0`, `delta_t = 10`,
/// `total_t = 100`, `initially_zero = false`.
///
/// Checked where torch.ao is silent: sparsities lie in `[0, 1]`,
/// `init_sl ≤ final` (torch.ao's clamp would hold a falling schedule at
/// `init_sl` for ever), `delta_t` and `total_t` are at least 1 (Python
/// divides by their product) and their product is at most 2⁵³ (so it is
/// exact in `f64`).
///
/// ```
/// use ndprune::schedule::{CubicSL, Schedule};
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let s = CubicSL::new(0.9)?.with_init_sl(0.1)?.with_steps(5, 2, 10)?;
/// assert_eq!(s.sparsity(0), 0.1);     // before t₀: clamped to s₀
/// assert_eq!(s.sparsity(5), 0.1);     // t₀
/// assert!(s.sparsity(15) > 0.7);      // half way: 0.9 − 0.8/8
/// assert_eq!(s.sparsity(25), 0.9);    // t₀ + Δt·n
/// let zero_first = s.with_initially_zero(true);
/// assert_eq!(zero_first.sparsity(4), 0.0);
/// assert!(CubicSL::new(0.5)?.with_init_sl(0.6).is_err());
/// assert!(CubicSL::new(0.5)?.with_steps(0, 0, 10).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CubicSL {
    init_sl: f64,
    final_sl: f64,
    init_t: i64,
    delta_t: i64,
    total_t: i64,
    initially_zero: bool,
}

/// 2⁵³: every integer up to it is exact in `f64`.
const EXACT_INT: i64 = 1 << 53;

impl CubicSL {
    /// The schedule to `final_sl` (in `[0, 1]`) with torch.ao's defaults
    /// for the rest.
    ///
    /// ```
    /// use ndprune::schedule::{CubicSL, Schedule};
    /// let s = CubicSL::new(0.5).unwrap();
    /// assert_eq!(s.sparsity(1000), 0.5); // t₀ + 10 × 100
    /// ```
    pub fn new(final_sl: f64) -> Result<Self, PruneError> {
        check_sparsity("final_sl", final_sl)?;
        Ok(CubicSL {
            init_sl: 0.0,
            final_sl,
            init_t: 0,
            delta_t: 10,
            total_t: 100,
            initially_zero: false,
        })
    }

    /// The same schedule starting from `init_sl` (in `[0, final_sl]`).
    ///
    /// ```
    /// use ndprune::schedule::{CubicSL, Schedule};
    /// let s = CubicSL::new(0.5).unwrap().with_init_sl(0.2).unwrap();
    /// assert_eq!(s.sparsity(0), 0.2);
    /// ```
    pub fn with_init_sl(self, init_sl: f64) -> Result<Self, PruneError> {
        check_sparsity("init_sl", init_sl)?;
        if init_sl > self.final_sl {
            return Err(invalid(
                "init_sl",
                init_sl,
                "the initial sparsity is above the final one: a schedule may not fall",
            ));
        }
        Ok(CubicSL { init_sl, ..self })
    }

    /// The same schedule starting at step `init_t`, moving every `delta_t`
    /// steps over `total_t` of them: it reaches `final_sl` at
    /// `init_t + delta_t × total_t`.
    ///
    /// ```
    /// use ndprune::schedule::{CubicSL, Schedule};
    /// let s = CubicSL::new(0.5).unwrap().with_steps(0, 1, 4).unwrap();
    /// assert_eq!(s.sparsity(4), 0.5);
    /// assert!(CubicSL::new(0.5).unwrap().with_steps(0, 1, -4).is_err());
    /// ```
    pub fn with_steps(self, init_t: i64, delta_t: i64, total_t: i64) -> Result<Self, PruneError> {
        if delta_t < 1 {
            return Err(invalid("delta_t", delta_t as f64, "must be at least 1"));
        }
        if total_t < 1 {
            return Err(invalid("total_t", total_t as f64, "must be at least 1"));
        }
        match delta_t.checked_mul(total_t) {
            Some(span) if span <= EXACT_INT => {}
            _ => {
                return Err(invalid(
                    "total_t",
                    total_t as f64,
                    "delta_t × total_t must be at most 2^53",
                ))
            }
        }
        Ok(CubicSL {
            init_t,
            delta_t,
            total_t,
            ..self
        })
    }

    /// The same schedule at 0 before `init_t` (`true`) or at `init_sl`
    /// (`false`, the default).
    ///
    /// ```
    /// use ndprune::schedule::{CubicSL, Schedule};
    /// let s = CubicSL::new(0.5).unwrap().with_init_sl(0.1).unwrap().with_steps(3, 1, 4).unwrap();
    /// assert_eq!(s.with_initially_zero(true).sparsity(2), 0.0);
    /// assert_eq!(s.sparsity(2), 0.1);
    /// ```
    pub fn with_initially_zero(self, initially_zero: bool) -> Self {
        CubicSL {
            initially_zero,
            ..self
        }
    }

    /// The step at which the schedule reaches its final sparsity,
    /// `init_t + delta_t × total_t` (saturating).
    ///
    /// ```
    /// let s = ndprune::schedule::CubicSL::new(0.5).unwrap();
    /// assert_eq!(s.end_step(), 1000);
    /// ```
    pub fn end_step(&self) -> i64 {
        self.init_t
            .saturating_add(self.delta_t.saturating_mul(self.total_t))
    }
}

impl Schedule for CubicSL {
    fn sparsity(&self, t: i64) -> f64 {
        if self.initially_zero && t < self.init_t {
            return 0.0;
        }
        let (s0, sf) = (self.init_sl, self.final_sl);
        // Python's `(t - t_0) / (dt * n)`: a difference of integers, and
        // their quotient correctly rounded. The difference is exact in
        // `f64` up to 2^53; beyond, the quotient's magnitude exceeds 1 and
        // the clamp below gives the same value whatever its rounding.
        let elapsed = (i128::from(t) - i128::from(self.init_t)) as f64;
        let span = (self.delta_t * self.total_t) as f64;
        let s = sf + (s0 - sf) * (1.0 - elapsed / span).powf(3.0);
        // `_clamp(x, lo, hi) = max(lo, min(hi, x))`, with Python's
        // `min`/`max` (the first argument on equality).
        let upper = if s < sf { s } else { sf };
        if upper > s0 {
            upper
        } else {
            s0
        }
    }
}
