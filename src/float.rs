//! The element types ndprune prunes.

use std::fmt;

use num_traits::Float;

/// A floating-point element type that tensors can be pruned in.
///
/// Implemented for `f32` and `f64`. Besides [`num_traits::Float`], it gives
/// the two things the kernels need: a lossless widening to `f64` (norms are
/// accumulated in `f64`), and an order-preserving integer key of the
/// magnitude, used by the selection kernel.
///
/// ```
/// use ndprune::PruneFloat;
///
/// // Keys order magnitudes; NaN is the largest of all, as in `torch.topk`.
/// assert!(1.5f32.magnitude_key() > (-1.0f32).magnitude_key());
/// assert_eq!(0.0f32.magnitude_key(), (-0.0f32).magnitude_key());
/// assert!(f32::NAN.magnitude_key() > f32::INFINITY.magnitude_key());
/// assert_eq!(f32::KEY_BITS, 32);
/// ```
pub trait PruneFloat: Float + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// Number of significant bits of [`PruneFloat::magnitude_key`].
    const KEY_BITS: u32;

    /// Significant bits of the format, the implicit one included (C++'s
    /// `numeric_limits<T>::digits`): 24 for `f32`, 53 for `f64`, 11 for
    /// `f16`, 8 for `bf16`. PyTorch's `torch.rand` in `f32` and `f64` keeps
    /// that many random bits (see [`crate::TorchGenerator`]).
    const MANTISSA_DIGITS: u32;

    /// The value as `f64` (exact for `f32` and `f64`).
    fn as_f64(self) -> f64;

    /// The nearest value of this type to `x`.
    fn from_f64(x: f64) -> Self;

    /// A reduction accumulated in `f64` (a norm), as PyTorch returns it in
    /// this dtype: rounded once to `f32` and `f64` (PyTorch accumulates
    /// them in their own type), and for `bf16` and `f16` rounded to `f32`,
    /// the type of PyTorch's accumulator, then to the dtype, as PyTorch
    /// casts its result.
    ///
    /// ```
    /// use ndprune::PruneFloat;
    /// assert_eq!(f32::from_accumulator(0.1), 0.1f32);
    /// assert_eq!(f64::from_accumulator(0.1), 0.1);
    /// ```
    fn from_accumulator(x: f64) -> Self {
        Self::from_f64(x)
    }

    /// An integer key that orders `|self|`: `a.abs() < b.abs()` implies
    /// `a.magnitude_key() < b.magnitude_key()`, equal magnitudes give equal
    /// keys (`-0.0` and `0.0` alike), and every NaN gets the largest key,
    /// `2^KEY_BITS - 1`.
    fn magnitude_key(self) -> u64;
}

impl PruneFloat for f32 {
    const KEY_BITS: u32 = 32;
    const MANTISSA_DIGITS: u32 = f32::MANTISSA_DIGITS;

    fn as_f64(self) -> f64 {
        f64::from(self)
    }

    fn from_f64(x: f64) -> Self {
        // Rounding to the nearest f32 is the documented intent of this cast.
        x as f32
    }

    fn magnitude_key(self) -> u64 {
        if self.is_nan() {
            u64::from(u32::MAX)
        } else {
            u64::from(self.to_bits() & 0x7fff_ffff)
        }
    }
}

impl PruneFloat for f64 {
    const KEY_BITS: u32 = 64;
    const MANTISSA_DIGITS: u32 = f64::MANTISSA_DIGITS;

    fn as_f64(self) -> f64 {
        self
    }

    fn from_f64(x: f64) -> Self {
        x
    }

    fn magnitude_key(self) -> u64 {
        if self.is_nan() {
            u64::MAX
        } else {
            self.to_bits() & 0x7fff_ffff_ffff_ffff
        }
    }
}

/// `bf16` and `f16` (feature `half`): magnitudes are ranked in the dtype,
/// and norms are accumulated in `f64`, then rounded to `f32` and to the
/// dtype, as PyTorch computes and returns them, so the 16-bit types prune
/// exactly as PyTorch prunes them (equal rounded norms tie).
///
/// ```
/// # #[cfg(feature = "half")] {
/// use half::bf16;
/// use ndprune::PruneFloat;
/// assert_eq!(bf16::KEY_BITS, 16);
/// assert!(bf16::from_f32(-3.0).magnitude_key() > bf16::from_f32(2.0).magnitude_key());
/// assert_eq!(bf16::from_f32(0.5).as_f64(), 0.5);
/// # }
/// ```
#[cfg(feature = "half")]
mod half_impls {
    use super::PruneFloat;
    use half::{bf16, f16};

    /// Both 16-bit formats keep the sign in the top bit and order
    /// magnitudes as integers below it, so one key serves both.
    macro_rules! half_float {
        ($t:ty, $digits:expr) => {
            impl PruneFloat for $t {
                const KEY_BITS: u32 = 16;
                const MANTISSA_DIGITS: u32 = $digits;

                fn as_f64(self) -> f64 {
                    self.to_f64()
                }

                fn from_f64(x: f64) -> Self {
                    <$t>::from_f64(x)
                }

                fn from_accumulator(x: f64) -> Self {
                    // f64 -> f32 -> half: PyTorch's f32 accumulator, cast.
                    <$t>::from_f32(x as f32)
                }

                fn magnitude_key(self) -> u64 {
                    if self.is_nan() {
                        0xffff
                    } else {
                        u64::from(self.to_bits() & 0x7fff)
                    }
                }
            }
        };
    }

    half_float!(bf16, 8);
    half_float!(f16, 11);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_magnitudes_and_put_nan_last() {
        let values = [0.0f32, 1e-45, 0.5, 1.0, 3.0e38, f32::INFINITY];
        for pair in values.windows(2) {
            assert!(pair[0].magnitude_key() < pair[1].magnitude_key());
            assert!((-pair[1]).magnitude_key() > pair[0].magnitude_key());
        }
        assert!(f32::NAN.magnitude_key() > f32::INFINITY.magnitude_key());
        assert_eq!((-f32::NAN).magnitude_key(), f32::NAN.magnitude_key());
        assert!(f64::NAN.magnitude_key() > f64::INFINITY.magnitude_key());
    }
}
