//! A tensor's name, dtype and shape.

use std::fmt;

use safetensors::Dtype;

/// What a tensor of a safetensors file is besides its bytes: name, dtype,
/// shape. A [`SafetensorsWriter`](super::SafetensorsWriter) writes tensors
/// to specs; a [`RawTensor`](super::RawTensor) and a
/// [`TensorEntry`](super::TensorEntry) are a spec plus bytes (their
/// `spec()`).
///
/// ```
/// use ndprune::io::{Dtype, TensorSpec};
/// let spec = TensorSpec::new("fc.weight", Dtype::F32, vec![10, 64]);
/// assert_eq!((spec.name(), spec.dtype(), spec.shape()), ("fc.weight", Dtype::F32, &[10usize, 64][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub(crate) name: String,
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
}

impl TensorSpec {
    /// `Debug` of a tensor of this spec holding `bytes` bytes of data (its
    /// bytes counted, not listed).
    pub(crate) fn debug_with_bytes(
        &self,
        f: &mut fmt::Formatter<'_>,
        type_name: &str,
        bytes: usize,
    ) -> fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &bytes)
            .finish()
    }

    /// A tensor to write.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorSpec};
    /// let spec = TensorSpec::new("bn.num_batches_tracked", Dtype::I64, vec![]);
    /// assert!(spec.shape().is_empty());
    /// ```
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// The bytes a tensor of this spec holds (saturating at `u64::MAX`
    /// for a shape no file can hold).
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorSpec};
    /// assert_eq!(TensorSpec::new("w", Dtype::BF16, vec![3, 4]).byte_len(), 24);
    /// ```
    pub fn byte_len(&self) -> u64 {
        super::dtype::byte_len(self.dtype, &self.shape).unwrap_or(u64::MAX)
    }

    /// The name.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorSpec};
    /// assert_eq!(TensorSpec::new("w", Dtype::F16, vec![2]).name(), "w");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dtype.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorSpec};
    /// assert_eq!(TensorSpec::new("w", Dtype::F16, vec![2]).dtype(), Dtype::F16);
    /// ```
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape.
    ///
    /// ```
    /// # use ndprune::io::{Dtype, TensorSpec};
    /// assert_eq!(TensorSpec::new("w", Dtype::F16, vec![2]).shape(), &[2]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}
