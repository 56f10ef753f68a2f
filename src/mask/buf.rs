//! The store's holder of a pruned tensor's mask.

use std::sync::OnceLock;

use ndarray::ArrayD;

use super::Mask;
use crate::PruneFloat;

/// A mask as the store holds it: as the method handed it over (dense, or
/// per channel), with the dense form built on first request.
#[derive(Debug, Clone)]
pub(crate) struct MaskBuf<T> {
    pub(crate) mask: Mask<T>,
    dense: OnceLock<ArrayD<T>>,
}

impl<T: PruneFloat> MaskBuf<T> {
    pub(crate) fn new(mask: Mask<T>) -> Self {
        MaskBuf {
            mask,
            dense: OnceLock::new(),
        }
    }

    /// The dense 0/1 mask, the `name_mask` buffer PyTorch has.
    pub(crate) fn view(&self) -> &ArrayD<T> {
        match &self.mask {
            Mask::Dense(m) => m,
            other => self.dense.get_or_init(|| other.to_dense()),
        }
    }

    /// The dense mask, to change in place (a per-channel mask becomes
    /// dense for good).
    pub(crate) fn dense_mut(&mut self) -> &mut ArrayD<T> {
        if !matches!(self.mask, Mask::Dense(_)) {
            let dense = self.dense.take().unwrap_or_else(|| self.mask.to_dense());
            self.mask = Mask::Dense(dense);
        }
        match &mut self.mask {
            Mask::Dense(m) => m,
            _ => unreachable!("the mask was made dense just above"),
        }
    }

    /// The mask in whatever form it is held, to change in place; the dense
    /// form built for readers is dropped.
    pub(crate) fn compact_mut(&mut self) -> &mut Mask<T> {
        self.dense.take();
        &mut self.mask
    }
}

impl<T: PruneFloat> PartialEq for MaskBuf<T> {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}
