//! Tensors kept as bytes: every tensor a checkpoint does not decode.

use std::fmt;

use safetensors::Dtype;

use super::dtype::check_byte_len;
use super::{CheckpointError, TensorSpec};

/// A tensor kept exactly as the file stored it: name, dtype, shape and
/// little-endian bytes. A [`Checkpoint`](super::Checkpoint) keeps every
/// tensor that is not of its element type this way (an `I64`
/// `num_batches_tracked`, a `BOOL` or `U8` mask, floats of another dtype)
/// and writes it back byte for byte.
///
/// ```
/// use ndprune::io::{Dtype, RawTensor};
///
/// # fn main() -> Result<(), ndprune::io::CheckpointError> {
/// let steps = RawTensor::new("bn.num_batches_tracked", Dtype::I64, vec![], 42i64.to_le_bytes().to_vec())?;
/// assert_eq!(steps.shape(), &[] as &[usize]);
/// // Shape and bytes must agree.
/// assert!(RawTensor::new("x", Dtype::I64, vec![2], vec![0; 8]).is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RawTensor {
    spec: TensorSpec,
    data: Vec<u8>,
}

impl fmt::Debug for RawTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec.debug_with_bytes(f, "RawTensor", self.data.len())
    }
}

impl RawTensor {
    /// A tensor from its parts; fails if `data` is not as long as `shape`
    /// and `dtype` call for.
    ///
    /// ```
    /// use ndprune::io::{Dtype, RawTensor};
    /// let flags = RawTensor::new("flags", Dtype::BOOL, vec![3], vec![1, 0, 1]).unwrap();
    /// assert_eq!(flags.data(), &[1, 0, 1]);
    /// ```
    pub fn new(
        name: impl Into<String>,
        dtype: Dtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    ) -> Result<Self, CheckpointError> {
        let name = name.into();
        check_byte_len(&name, dtype, &shape, data.len() as u64)?;
        Ok(Self::from_parts(name, dtype, shape, data))
    }

    /// A tensor from parts already checked to agree.
    pub(crate) fn from_parts(name: String, dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Self {
        RawTensor {
            spec: TensorSpec::new(name, dtype, shape),
            data,
        }
    }

    /// Its name, dtype and shape.
    ///
    /// ```
    /// use ndprune::io::{Dtype, RawTensor, TensorSpec};
    /// let ids = RawTensor::new("ids", Dtype::U8, vec![1, 1], vec![7]).unwrap();
    /// assert_eq!(ids.spec(), &TensorSpec::new("ids", Dtype::U8, vec![1, 1]));
    /// ```
    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    /// Its name.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, RawTensor};
    /// assert_eq!(RawTensor::new("ids", Dtype::U8, vec![1], vec![7]).unwrap().name(), "ids");
    /// ```
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// Its dtype.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, RawTensor};
    /// assert_eq!(RawTensor::new("ids", Dtype::U8, vec![1], vec![7]).unwrap().dtype(), Dtype::U8);
    /// ```
    pub fn dtype(&self) -> Dtype {
        self.spec.dtype()
    }

    /// Its shape (`[]` for a scalar).
    ///
    /// ```
    /// # use ndprune::io::{Dtype, RawTensor};
    /// assert_eq!(RawTensor::new("ids", Dtype::U8, vec![1, 1], vec![7]).unwrap().shape(), &[1, 1]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        self.spec.shape()
    }

    /// Its bytes, little-endian and row-major as safetensors stores them.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, RawTensor};
    /// assert_eq!(RawTensor::new("ids", Dtype::U8, vec![1], vec![7]).unwrap().data(), &[7]);
    /// ```
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}
