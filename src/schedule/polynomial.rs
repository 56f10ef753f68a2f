//! TF-MOT's `PolynomialDecay` pruning schedule.

use super::{invalid, Schedule};
use crate::PruneError;

/// TensorFlow Model Optimization's `tfmot.sparsity.keras.PolynomialDecay`
/// (`tensorflow_model_optimization/python/core/sparsity/keras/pruning_schedule.py`):
///
/// ```text
/// p(step)  = min(1, max(0, (step − begin_step) / (end_step − begin_step)))
/// s(step)  = (initial_sparsity − final_sparsity) · (1 − p)^power + final_sparsity
/// prunes at step ⇔ begin_step ≤ step ≤ end_step and (step − begin_step) mod frequency = 0
/// ```
///
/// computed as TF-MOT's graph computes it: in `f32` (the step difference
/// cast to `f32`, the two Python numbers `initial − final` (subtracted in
/// `f64`) and `final` converted to `f32`, `pow` in `f32`), so
/// [`PolynomialDecay::sparsity_f32`] gives TensorFlow's `f32` value and
/// [`Schedule::sparsity`] that value widened to `f64`.
///
/// Parameters are checked as TF-MOT checks them (`begin_step ≥ 0`,
/// `end_step ≥ begin_step`, `frequency > 0`, sparsities in `[0, 1)`), and
/// further, for pruning that only adds zeros: `end_step > begin_step`
/// (TF-MOT would divide by zero), `initial_sparsity ≤ final_sparsity`, and
/// a `power` that is finite and positive. Defaults are TF-MOT's:
/// `power = 3`, `frequency = 100`.
///
/// ```
/// use ndprune::schedule::{PolynomialDecay, Schedule};
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let s = PolynomialDecay::new(0.5, 0.8, 0, 1000)?;
/// assert_eq!(s.sparsity_f32(0), 0.5);
/// assert_eq!(s.sparsity_f32(500), 0.8 - 0.3 * 0.125);
/// assert_eq!(s.sparsity_f32(2000), 0.8);
/// assert!(s.prunes_at(1000) && !s.prunes_at(1100) && !s.prunes_at(150));
/// assert!(PolynomialDecay::new(0.5, 1.0, 0, 1000).is_err()); // TF-MOT: [0, 1)
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolynomialDecay {
    initial_sparsity: f64,
    final_sparsity: f64,
    begin_step: i64,
    end_step: i64,
    power: f32,
    frequency: i64,
}

/// TF-MOT's `_validate_sparsity`: `0 ≤ s < 1`.
fn check_tf_sparsity(parameter: &'static str, value: f64) -> Result<(), PruneError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            parameter,
            value,
            "TF-MOT's sparsities lie in [0, 1)",
        ))
    }
}

impl PolynomialDecay {
    /// From `initial_sparsity` at `begin_step` to `final_sparsity` at
    /// `end_step`, with `power = 3` and `frequency = 100`.
    ///
    /// ```
    /// use ndprune::schedule::PolynomialDecay;
    /// assert!(PolynomialDecay::new(0.0, 0.9, 100, 100).is_err()); // no steps to decay over
    /// assert!(PolynomialDecay::new(0.0, 0.9, -1, 100).is_err());
    /// ```
    pub fn new(
        initial_sparsity: f64,
        final_sparsity: f64,
        begin_step: i64,
        end_step: i64,
    ) -> Result<Self, PruneError> {
        if begin_step < 0 {
            return Err(invalid("begin_step", begin_step as f64, "must be >= 0"));
        }
        if end_step <= begin_step {
            return Err(invalid(
                "end_step",
                end_step as f64,
                "must be above begin_step",
            ));
        }
        check_tf_sparsity("initial_sparsity", initial_sparsity)?;
        check_tf_sparsity("final_sparsity", final_sparsity)?;
        if initial_sparsity > final_sparsity {
            return Err(invalid(
                "initial_sparsity",
                initial_sparsity,
                "the initial sparsity is above the final one: a schedule may not fall",
            ));
        }
        Ok(PolynomialDecay {
            initial_sparsity,
            final_sparsity,
            begin_step,
            end_step,
            power: 3.0,
            frequency: 100,
        })
    }

    /// The same schedule with another exponent (finite, above 0).
    ///
    /// ```
    /// use ndprune::schedule::PolynomialDecay;
    /// let linear = PolynomialDecay::new(0.0, 0.5, 0, 10).unwrap().with_power(1.0).unwrap();
    /// assert_eq!(linear.sparsity_f32(5), 0.25);
    /// assert!(PolynomialDecay::new(0.0, 0.5, 0, 10).unwrap().with_power(0.0).is_err());
    /// ```
    pub fn with_power(self, power: f32) -> Result<Self, PruneError> {
        if !(power.is_finite() && power > 0.0) {
            return Err(invalid(
                "power",
                f64::from(power),
                "must be finite and above 0",
            ));
        }
        Ok(PolynomialDecay { power, ..self })
    }

    /// The same schedule pruning every `frequency` steps (at least 1).
    ///
    /// ```
    /// use ndprune::schedule::{PolynomialDecay, Schedule};
    /// let s = PolynomialDecay::new(0.0, 0.5, 3, 10).unwrap().with_frequency(2).unwrap();
    /// assert!(s.prunes_at(3) && !s.prunes_at(4) && s.prunes_at(9) && !s.prunes_at(11));
    /// ```
    pub fn with_frequency(self, frequency: i64) -> Result<Self, PruneError> {
        if frequency < 1 {
            return Err(invalid("frequency", frequency as f64, "must be > 0"));
        }
        Ok(PolynomialDecay { frequency, ..self })
    }

    /// The sparsity at `step` in `f32`, as TF-MOT returns it.
    ///
    /// ```
    /// use ndprune::schedule::PolynomialDecay;
    /// let s = PolynomialDecay::new(0.1, 0.7, 0, 3).unwrap();
    /// // Before begin_step: TF-MOT's f32(0.1 − 0.7) + f32(0.7), one ULP off 0.1.
    /// assert_eq!(s.sparsity_f32(-5), (0.1f64 - 0.7) as f32 + 0.7f32);
    /// assert_eq!(s.sparsity_f32(3), 0.7f32);
    /// ```
    pub fn sparsity_f32(&self, step: i64) -> f32 {
        // `tf.cast(step - begin_step, tf.float32)`: an int64 rounded once.
        let elapsed = (i128::from(step) - i128::from(self.begin_step)) as f32;
        // The Python integer `end_step - begin_step` made an f32 constant.
        let span = ((self.end_step - self.begin_step) as f64) as f32;
        let p = (elapsed / span).clamp(0.0, 1.0);
        let scale = (self.initial_sparsity - self.final_sparsity) as f32;
        scale * (1.0f32 - p).powf(self.power) + self.final_sparsity as f32
    }
}

impl Schedule for PolynomialDecay {
    fn sparsity(&self, step: i64) -> f64 {
        f64::from(self.sparsity_f32(step))
    }

    fn prunes_at(&self, step: i64) -> bool {
        step >= self.begin_step
            && step <= self.end_step
            && (step - self.begin_step) % self.frequency == 0
    }
}
