//! A tensor dimension, counted from the front or (negative) from the back.

use std::fmt;

use crate::{PruneError, PruneErrorKind};

/// A dimension index as PyTorch takes it: `Dim(0)` is the first, `Dim(-1)`
/// the last.
///
/// ```
/// use ndprune::Dim;
///
/// # fn main() -> Result<(), ndprune::PruneError> {
/// assert_eq!(Dim(-1).resolve(4)?, 3);
/// assert_eq!(Dim(1).resolve(4)?, 1);
/// assert!(Dim(4).resolve(4).is_err());
/// assert!(Dim(-5).resolve(4).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim(pub isize);

impl Dim {
    /// The non-negative index of this dim in a tensor of `ndim` dims, or
    /// a [`PruneErrorKind::DimOutOfRange`] error (naming no tensor; the
    /// pruning calls add the one they prune).
    ///
    /// ```
    /// use ndprune::Dim;
    /// assert_eq!(Dim(-2).resolve(3), Ok(1));
    /// ```
    pub fn resolve(self, ndim: usize) -> Result<usize, PruneError> {
        let n = ndim as isize;
        let d = if self.0 < 0 { self.0 + n } else { self.0 };
        if (0..n).contains(&d) {
            Ok(d as usize)
        } else {
            Err(PruneErrorKind::DimOutOfRange { dim: self.0, ndim }.into())
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
