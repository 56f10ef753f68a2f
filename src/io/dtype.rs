//! Element types a checkpoint's module tree can hold, and their bytes.

use std::path::PathBuf;

use safetensors::Dtype;

use super::CheckpointError;
use crate::PruneFloat;

/// A [`PruneFloat`] that safetensors files store: its dtype tag and its
/// little-endian bytes.
///
/// Implemented for `f32` (`F32`), `f64` (`F64`), and with feature `half`
/// for `half::bf16` (`BF16`) and `half::f16` (`F16`).
///
/// ```
/// use ndprune::io::{CheckpointFloat, Dtype};
///
/// assert_eq!(f32::DTYPE, Dtype::F32);
/// let mut bytes = Vec::new();
/// 1.5f32.write_le(&mut bytes);
/// assert_eq!(bytes, 1.5f32.to_le_bytes());
/// assert_eq!(f32::read_le(&bytes), 1.5);
/// ```
pub trait CheckpointFloat: PruneFloat {
    /// The safetensors dtype of this type.
    ///
    /// ```
    /// use ndprune::io::{CheckpointFloat, Dtype};
    /// assert_eq!(f64::DTYPE, Dtype::F64);
    /// ```
    const DTYPE: Dtype;

    /// Bytes per element.
    ///
    /// ```
    /// use ndprune::io::CheckpointFloat;
    /// assert_eq!(<f64 as CheckpointFloat>::SIZE, 8);
    /// ```
    const SIZE: usize;

    /// The value stored in `bytes` (at least [`CheckpointFloat::SIZE`] of
    /// them, little-endian; the first `SIZE` are read).
    ///
    /// ```
    /// use ndprune::io::CheckpointFloat;
    /// assert_eq!(f64::read_le(&2.5f64.to_le_bytes()), 2.5);
    /// ```
    fn read_le(bytes: &[u8]) -> Self;

    /// Appends the value's little-endian bytes to `out`.
    ///
    /// ```
    /// use ndprune::io::CheckpointFloat;
    /// let mut out = vec![7u8];
    /// (-1.0f64).write_le(&mut out);
    /// assert_eq!(out.len(), 9);
    /// ```
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! impl_checkpoint_float {
    ($t:ty, $dtype:expr, $size:expr) => {
        impl CheckpointFloat for $t {
            const DTYPE: Dtype = $dtype;
            const SIZE: usize = $size;

            fn read_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; $size];
                b.copy_from_slice(&bytes[..$size]);
                <$t>::from_le_bytes(b)
            }

            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

impl_checkpoint_float!(f32, Dtype::F32, 4);
impl_checkpoint_float!(f64, Dtype::F64, 8);
#[cfg(feature = "half")]
impl_checkpoint_float!(half::bf16, Dtype::BF16, 2);
#[cfg(feature = "half")]
impl_checkpoint_float!(half::f16, Dtype::F16, 2);

/// Decodes little-endian elements (`bytes.len()` a multiple of `T::SIZE`).
pub(crate) fn decode<T: CheckpointFloat>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::SIZE).map(T::read_le).collect()
}

/// `got` bytes of data for tensor `name` of `dtype` and `shape`: an error
/// unless that is exactly its size (and addressable in memory).
pub(crate) fn check_byte_len(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    got: u64,
) -> Result<(), CheckpointError> {
    let expected = byte_len(dtype, shape);
    if expected != Some(got) || usize::try_from(got).is_err() {
        return Err(CheckpointError::SizeMismatch {
            path: PathBuf::new(),
            tensor: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            expected,
            got,
        });
    }
    Ok(())
}

/// Bytes of one element of `dtype`, if a whole number.
pub(crate) fn byte_len(dtype: Dtype, shape: &[usize]) -> Option<u64> {
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))?;
    let bits = elements.checked_mul(dtype.bitsize() as u64)?;
    (bits % 8 == 0).then_some(bits / 8)
}
