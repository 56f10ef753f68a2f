//! How a fraction of a size becomes a whole count.

use crate::{Amount, PruneError, PruneErrorKind};

/// How `fraction × size` becomes a count of entries.
///
/// ```text
/// HalfEven:  count = round_half_even(fraction × size)   (Python's round, PyTorch's amounts)
/// Down:      count = floor(fraction × size)             (Python's int(), Wanda's reference code)
/// ```
///
/// The product is taken in `f64` either way, as Python takes it.
///
/// ```
/// use ndprune::Rounding;
///
/// # fn main() -> Result<(), ndprune::PruneError> {
/// assert_eq!(Rounding::HalfEven.count(0.35, 10)?, 4); // 3.5000000000000004 rounds to 4
/// assert_eq!(Rounding::Down.count(0.35, 10)?, 3);
/// assert_eq!(Rounding::HalfEven.count(0.25, 10)?, 2); // 2.5 rounds to even
/// assert_eq!(Rounding::Down.count(0.999, 10)?, 9);
/// assert!(Rounding::Down.count(1.5, 10).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// Halves to even, as [`Amount::Fraction`] everywhere in ndprune
    /// (Python's `round`, so PyTorch's `torch.nn.utils.prune`).
    #[default]
    HalfEven,
    /// Towards zero, as Python's `int(fraction * size)`: never more than
    /// the fraction asks.
    Down,
}

impl Rounding {
    /// The count of `size` that `fraction` (in `[0, 1]`) asks for.
    ///
    /// ```
    /// use ndprune::Rounding;
    /// assert_eq!(Rounding::Down.count(0.5, 7), Ok(3));
    /// assert!(Rounding::HalfEven.count(f64::NAN, 7).is_err());
    /// ```
    pub fn count(self, fraction: f64, size: usize) -> Result<usize, PruneError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(PruneErrorKind::InvalidAmount {
                amount: Amount::Fraction(fraction),
            }
            .into());
        }
        let x = fraction * size as f64;
        // In [0, size]: the cast is exact.
        Ok(match self {
            Rounding::HalfEven => x.round_ties_even(),
            Rounding::Down => x.floor(),
        } as usize)
    }

    /// The count `amount` asks for out of `size` left, with fractions
    /// rounded this way (a count is taken as it is). Fails for an invalid
    /// amount or a count above `size`.
    ///
    /// ```
    /// use ndprune::{Amount, Rounding};
    /// assert_eq!(Rounding::Down.count_of(Amount::Fraction(0.5), 5), Ok(2));
    /// assert_eq!(Rounding::Down.count_of(Amount::Count(5), 5), Ok(5));
    /// assert!(Rounding::Down.count_of(Amount::Count(6), 5).is_err());
    /// ```
    pub fn count_of(self, amount: Amount, size: usize) -> Result<usize, PruneError> {
        match (self, amount) {
            (Rounding::Down, Amount::Fraction(f)) => self.count(f, size),
            _ => amount.count_of(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_truncates_and_half_even_matches_amount() {
        for size in 0..40 {
            for f in [0.0, 0.1, 0.25, 0.3, 0.35, 0.5, 0.75, 0.9, 1.0] {
                let half = Rounding::HalfEven.count(f, size).unwrap();
                assert_eq!(half, Amount::Fraction(f).count_of(size).unwrap());
                let down = Rounding::Down.count(f, size).unwrap();
                assert_eq!(down, (f * size as f64) as usize);
                assert!(down <= half && half - down <= 1);
            }
        }
        assert!(Rounding::Down.count(-0.0, 3).is_ok());
        assert!(Rounding::Down.count(-0.1, 3).is_err());
    }
}
