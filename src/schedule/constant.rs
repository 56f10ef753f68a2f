//! The constant schedule.

use super::{check_sparsity, Schedule};
use crate::PruneError;

/// The same sparsity at every step: a [`GradualPruner`](super::GradualPruner)
/// with it prunes to that sparsity on its first step; later steps find the
/// count reached and prune nothing more.
///
/// ```
/// use ndprune::schedule::{ConstantSparsity, Schedule};
/// # fn main() -> Result<(), ndprune::PruneError> {
/// let s = ConstantSparsity::new(0.75)?;
/// assert_eq!((s.sparsity(-3), s.sparsity(0), s.sparsity(1 << 40)), (0.75, 0.75, 0.75));
/// assert!(ConstantSparsity::new(1.01).is_err());
/// assert!(ConstantSparsity::new(f64::NAN).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantSparsity {
    sparsity: f64,
}

impl ConstantSparsity {
    /// The schedule at `sparsity`, in `[0, 1]`
    /// ([`PruneErrorKind::InvalidSchedule`](crate::PruneErrorKind::InvalidSchedule)
    /// otherwise).
    ///
    /// ```
    /// assert!(ndprune::schedule::ConstantSparsity::new(0.0).is_ok());
    /// ```
    pub fn new(sparsity: f64) -> Result<Self, PruneError> {
        check_sparsity("sparsity", sparsity)?;
        Ok(ConstantSparsity { sparsity })
    }
}

impl Schedule for ConstantSparsity {
    fn sparsity(&self, _step: i64) -> f64 {
        self.sparsity
    }
}
