//! Sparsity schedules and the gradual pruner that follows them.
//!
//! A [`Schedule`] says which fraction of a model's selected weights should
//! be pruned at each training step; a [`GradualPruner`] moves the model
//! there step by step through the ordinary iterative pruning (masks only
//! grow their zeros, [`prune::remove`](crate::prune::remove) and
//! checkpoints work as after any pruning).
//!
//! | Schedule | From |
//! |---|---|
//! | [`ConstantSparsity`] | one sparsity at every step |
//! | [`CubicSL`] | `torch.ao.pruning.scheduler.CubicSL` (Zhu & Gupta 2017), to the bit |
//! | [`PolynomialDecay`] | TF-MOT's `tfmot.sparsity.keras.PolynomialDecay`, in `f32` as TensorFlow computes it |
//!
//! ```
//! use ndprune::prelude::*;
//! use ndprune::schedule::{CubicSL, Schedule};
//!
//! # fn main() -> Result<(), PruneError> {
//! // From 0 to 80 % over 10 steps of 1.
//! let cubic = CubicSL::new(0.8)?.with_steps(0, 1, 10)?;
//! assert_eq!(cubic.sparsity(0), 0.0);
//! assert!((cubic.sparsity(5) - 0.7).abs() < 1e-12); // 0.8 × (1 − 0.5³)
//! assert_eq!(cubic.sparsity(10), 0.8);
//! assert_eq!(cubic.sparsity(99), 0.8);
//! # Ok(()) }
//! ```

mod constant;
mod cubic;
mod gradual;
mod polynomial;

pub use constant::ConstantSparsity;
pub use cubic::CubicSL;
pub use gradual::{GradualPruner, GradualStep, Scope};
pub use polynomial::PolynomialDecay;

use std::fmt;

use crate::{PruneError, PruneErrorKind};

/// A sparsity for every training step.
///
/// Implement it for a schedule of your own: [`Schedule::sparsity`] must lie
/// in `[0, 1]` (a [`GradualPruner`] checks, and fails with
/// [`PruneErrorKind::ScheduledSparsity`] otherwise), and
/// [`Schedule::prunes_at`] says on which steps pruning happens at all
/// (every step by default).
///
/// ```
/// use ndprune::schedule::Schedule;
///
/// /// 10 % more every step, up to 50 %.
/// #[derive(Debug)]
/// struct Linear;
///
/// impl Schedule for Linear {
///     fn sparsity(&self, step: i64) -> f64 {
///         (0.1 * step.max(0) as f64).min(0.5)
///     }
/// }
/// assert_eq!(Linear.sparsity(7), 0.5);
/// assert!(Linear.prunes_at(3));
/// ```
pub trait Schedule: fmt::Debug {
    /// The fraction of entries to have pruned at `step`, in `[0, 1]`.
    ///
    /// ```
    /// use ndprune::schedule::{ConstantSparsity, Schedule};
    /// assert_eq!(ConstantSparsity::new(0.3).unwrap().sparsity(12), 0.3);
    /// ```
    fn sparsity(&self, step: i64) -> f64;

    /// Whether the model is pruned at `step` (by default at every step).
    ///
    /// ```
    /// use ndprune::schedule::{PolynomialDecay, Schedule};
    /// let s = PolynomialDecay::new(0.0, 0.5, 0, 1000).unwrap(); // every 100 steps
    /// assert!(s.prunes_at(200) && !s.prunes_at(250));
    /// ```
    fn prunes_at(&self, step: i64) -> bool {
        let _ = step;
        true
    }
}

impl<S: Schedule + ?Sized> Schedule for &S {
    fn sparsity(&self, step: i64) -> f64 {
        (**self).sparsity(step)
    }

    fn prunes_at(&self, step: i64) -> bool {
        (**self).prunes_at(step)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn sparsity(&self, step: i64) -> f64 {
        (**self).sparsity(step)
    }

    fn prunes_at(&self, step: i64) -> bool {
        (**self).prunes_at(step)
    }
}

/// The error for a schedule parameter out of its range.
fn invalid(parameter: &'static str, value: f64, reason: &'static str) -> PruneError {
    PruneErrorKind::InvalidSchedule {
        parameter,
        value,
        reason,
    }
    .into()
}

/// A sparsity parameter: a number in `[0, 1]`.
fn check_sparsity(parameter: &'static str, value: f64) -> Result<(), PruneError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(parameter, value, "a sparsity lies in [0, 1]"))
    }
}
