//! How much to prune: a count, or a fraction of what is left.

use std::fmt;

use crate::{PruneError, PruneErrorKind};

/// How much of a tensor to prune, as PyTorch's `amount` argument.
///
/// A [`Amount::Fraction`] is measured on what is still unpruned and becomes a
/// count the way Python's `round(fraction * size)` does: halves round to even.
///
/// ```text
/// count = round_half_even(fraction × size)      fraction ∈ [0, 1]
/// ```
///
/// ```
/// use ndprune::Amount;
///
/// # fn main() -> Result<(), ndprune::PruneError> {
/// assert_eq!(Amount::Fraction(0.5).count_of(5)?, 2);   // 2.5 rounds to 2
/// assert_eq!(Amount::Fraction(0.5).count_of(7)?, 4);   // 3.5 rounds to 4
/// assert_eq!(Amount::Fraction(0.25).count_of(2)?, 0);  // 0.5 rounds to 0
/// assert_eq!(Amount::Count(3).count_of(10)?, 3);
/// assert!(Amount::Count(11).count_of(10).is_err());
/// assert!(Amount::Fraction(f64::NAN).count_of(10).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Prune exactly this many entries (or channels).
    Count(usize),
    /// Prune this fraction, in `[0, 1]`, of what is left.
    Fraction(f64),
}

impl Amount {
    /// A count from a signed integer, as PyTorch accepts it: negative counts
    /// are an error.
    ///
    /// ```
    /// use ndprune::Amount;
    ///
    /// assert_eq!(Amount::from_int(3), Ok(Amount::Count(3)));
    /// assert!(Amount::from_int(-1).is_err());
    /// ```
    pub fn from_int(count: i64) -> Result<Amount, PruneError> {
        usize::try_from(count)
            .map(Amount::Count)
            .map_err(|_| PruneErrorKind::NegativeCount { count }.into())
    }

    /// Checks what PyTorch checks when a method is made: a fraction must not
    /// lie outside `[0, 1]`.
    ///
    /// A NaN fraction passes here, as in PyTorch (whose comparisons with NaN
    /// are false), and fails in [`Amount::count_of`], when the pruning call
    /// turns it into a count. So a call with a NaN amount reports a missing
    /// tensor, wrong scores or a bad dim first, as PyTorch does.
    ///
    /// ```
    /// use ndprune::Amount;
    ///
    /// assert!(Amount::Fraction(1.0).validate().is_ok());
    /// assert!(Amount::Fraction(1.0001).validate().is_err());
    /// assert!(Amount::Fraction(f64::NAN).validate().is_ok());
    /// assert!(Amount::Fraction(f64::NAN).count_of(10).is_err());
    /// ```
    pub fn validate(self) -> Result<(), PruneError> {
        match self {
            Amount::Fraction(f) if !f.is_nan() && !(0.0..=1.0).contains(&f) => {
                Err(PruneErrorKind::InvalidAmount { amount: self }.into())
            }
            _ => Ok(()),
        }
    }

    /// How many of `size` remaining entries (or channels) this amount prunes.
    ///
    /// Fails when the amount is invalid or larger than `size`. The error
    /// names no tensor; the pruning calls add the one they prune.
    ///
    /// ```
    /// use ndprune::Amount;
    ///
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// assert_eq!(Amount::Fraction(0.3).count_of(10)?, 3);
    /// assert_eq!(Amount::Fraction(1.0).count_of(0)?, 0);
    /// # Ok(()) }
    /// ```
    pub fn count_of(self, size: usize) -> Result<usize, PruneError> {
        self.validate()?;
        if matches!(self, Amount::Fraction(f) if f.is_nan()) {
            return Err(PruneErrorKind::InvalidAmount { amount: self }.into());
        }
        let count = match self {
            Amount::Count(k) => k,
            // `f * size` in f64, then Python's round: exactly what PyTorch
            // computes. The product lies in [0, size], so the cast is exact.
            Amount::Fraction(f) => (f * size as f64).round_ties_even() as usize,
        };
        if count > size {
            return Err(PruneErrorKind::AmountTooLarge {
                requested: count,
                available: size,
            }
            .into());
        }
        Ok(count)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(k) => write!(f, "{k}"),
            Amount::Fraction(x) => write!(f, "{x:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_round_half_to_even_like_python() {
        // Python: round(0.5 * 5) == 2, round(1.5) == 2, round(2.5) == 2, round(0.3 * 10) == 3
        assert_eq!(Amount::Fraction(0.5).count_of(5).unwrap(), 2);
        assert_eq!(Amount::Fraction(0.5).count_of(3).unwrap(), 2);
        assert_eq!(Amount::Fraction(0.3).count_of(10).unwrap(), 3);
        assert_eq!(Amount::Fraction(0.125).count_of(4).unwrap(), 0);
        assert_eq!(Amount::Fraction(0.375).count_of(4).unwrap(), 2);
        assert_eq!(Amount::Fraction(1.0).count_of(9).unwrap(), 9);
        assert_eq!(Amount::Fraction(0.0).count_of(9).unwrap(), 0);
    }

    #[test]
    fn invalid_amounts_are_rejected() {
        for f in [-0.1, 1.0001, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Amount::Fraction(f).count_of(10).unwrap_err().kind(),
                PruneErrorKind::InvalidAmount { .. }
            ));
        }
        assert!(matches!(
            Amount::Count(4).count_of(3).unwrap_err().kind(),
            PruneErrorKind::AmountTooLarge {
                requested: 4,
                available: 3,
            }
        ));
        assert!(Amount::from_int(-3).is_err());
    }
}
