//! Masks, in one home: the forms the crate holds them in (dense, one bit
//! an entry, one flag per channel), the helpers that read and write them,
//! and the store's holder of a pruned tensor's mask.
//!
//! None of this is public: users see masks only as the dense 0/1
//! `name_mask` tensors PyTorch has, and hand them in as arrays (checked at
//! the door). The invariants below (shapes agree, bit vectors hold
//! `ceil(len / 64)` words, channel flags one per channel, dense masks in
//! standard layout and 0/1) hold because only this crate builds masks.

mod bits;
mod buf;
pub(crate) mod channels;
mod layout;
pub(crate) mod segments;

pub(crate) use bits::{bit, count_bits, set_run};
pub(crate) use buf::MaskBuf;
use channels::{view3, write_channels};
pub(crate) use layout::{flat, flat_mut, standard};

use ndarray::{ArrayD, IxDyn};

use crate::{par, PruneFloat};

/// Whether the mask a method updates is the all-ones mask of a first
/// pruning, or the mask earlier pruning left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskState {
    /// First pruning of the tensor: the mask is all ones and the method sees
    /// the whole tensor.
    Fresh,
    /// The tensor was pruned before: the method sees what its kind allows.
    Existing,
}

/// A 0/1 mask in the form a built-in method hands it over.
///
/// A structured method needs one flag per channel, not one value per entry,
/// so it may hand over [`Mask::Channels`]; the store then computes the
/// pruned tensor straight from the flags and writes the dense `*_mask`
/// buffer only when someone asks for it (PyTorch's `weight_mask` is a dense
/// tensor of the parameter's dtype, and so is what ndprune hands out).
#[derive(Debug, Clone, PartialEq)]
pub enum Mask<T> {
    /// A dense 0/1 tensor in standard layout (build it with
    /// [`Mask::dense`]).
    Dense(ArrayD<T>),
    /// Whole channels along `dim` of a tensor of `shape`: channel `c` is
    /// all ones where `keep[c]`, all zeros elsewhere.
    Channels {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The channel dim (resolved, `< shape.len()`).
        dim: usize,
        /// One flag per channel (`keep.len() == shape[dim]`).
        keep: Vec<bool>,
    },
    /// One bit an entry, in row-major order: bit `i % 64` of word `i / 64`
    /// is set where entry `i` is kept.
    Bits {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// `ceil(len / 64)` words.
        bits: Vec<u64>,
    },
}

impl<T: PruneFloat> Mask<T> {
    /// A dense mask, in standard layout whatever the layout of `m`.
    pub(crate) fn dense(m: ArrayD<T>) -> Self {
        Mask::Dense(standard(m))
    }

    /// The shape of the tensor the mask is for.
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Mask::Dense(m) => m.shape(),
            Mask::Channels { shape, .. } | Mask::Bits { shape, .. } => shape,
        }
    }

    /// The mask as a dense 0/1 tensor.
    pub(crate) fn to_dense(&self) -> ArrayD<T> {
        match self {
            Mask::Dense(m) => m.clone(),
            Mask::Channels { shape, dim, keep } => {
                let mut dense = crate::fresh::zeros(IxDyn(shape));
                write_channels(&mut dense, *dim, keep, true);
                dense
            }
            Mask::Bits { shape, bits } => {
                let mut dense = crate::fresh::zeros(IxDyn(shape));
                let values = [T::zero(), T::one()];
                par::for_chunks_mut(flat_mut(&mut dense), |offset, chunk| {
                    // Chunks start on a word: `offset` is a multiple of 64.
                    for (run, &word) in chunk.chunks_mut(64).zip(&bits[offset / 64..]) {
                        for (b, v) in run.iter_mut().enumerate() {
                            *v = values[((word >> b) & 1) as usize];
                        }
                    }
                });
                dense
            }
        }
    }

    /// The mask as bits (`Mask::Bits`), for unstructured updates in place.
    pub(crate) fn to_bits(&self) -> Vec<u64> {
        let n: usize = self.shape().iter().product();
        let mut bits = vec![0u64; n.div_ceil(64)];
        match self {
            Mask::Bits { bits: b, .. } => return b.clone(),
            Mask::Dense(m) => {
                for (i, &v) in m.iter().enumerate() {
                    if v == T::one() {
                        bits[i / 64] |= 1u64 << (i % 64);
                    }
                }
            }
            Mask::Channels { shape, dim, keep } => {
                let (_, channels, inner) = view3(shape, *dim);
                if channels > 0 && inner > 0 {
                    for r in 0..n / inner {
                        if keep[r % channels] {
                            set_run(&mut bits, r * inner, inner);
                        }
                    }
                }
            }
        }
        bits
    }

    /// The mask as a dense 0/1 tensor, without a copy when it is one.
    pub(crate) fn into_dense(self) -> ArrayD<T> {
        match self {
            Mask::Dense(m) => m,
            other => other.to_dense(),
        }
    }

    /// `out = orig * mask`, elementwise, in one pass (a masked NaN or
    /// infinity gives NaN, as in PyTorch).
    pub(crate) fn product_into(&self, out: &mut ArrayD<T>, orig: &ArrayD<T>) {
        // The store checks every shape at its door and hands out only views
        // of fixed shape, so the three agree.
        assert!(
            out.shape() == orig.shape() && orig.shape() == self.shape(),
            "a pruned tensor's parts have one shape"
        );
        let (o, out) = (flat(orig), flat_mut(out));
        match self {
            Mask::Dense(m) => {
                let m = flat(m);
                par::for_chunks_mut(out, |offset, chunk| {
                    let (o, m) = (&o[offset..], &m[offset..]);
                    for ((v, &w), &k) in chunk.iter_mut().zip(o).zip(m) {
                        *v = w * k;
                    }
                });
            }
            Mask::Channels { dim, keep, .. } => {
                let (_, channels, inner) = view3(orig.shape(), *dim);
                if channels == 0 || inner == 0 {
                    return;
                }
                let k: Vec<T> = keep
                    .iter()
                    .map(|&k| if k { T::one() } else { T::zero() })
                    .collect();
                if inner == 1 {
                    // Channels are the last dim: whole rows against `k`.
                    let rows_per_block = (par::CHUNK / channels).max(1);
                    par::for_blocks_mut(out, rows_per_block * channels, |offset, block| {
                        for (r, row) in block.chunks_mut(channels).enumerate() {
                            let o = &o[offset + r * channels..];
                            for ((v, &w), &k) in row.iter_mut().zip(o).zip(&k) {
                                *v = w * k;
                            }
                        }
                    });
                } else {
                    // Runs of `inner` entries, run r in channel r mod channels.
                    let runs_per_block = (par::CHUNK / inner).max(1);
                    par::for_blocks_mut(out, runs_per_block * inner, |offset, block| {
                        let first_run = offset / inner;
                        for (j, run) in block.chunks_mut(inner).enumerate() {
                            let k = k[(first_run + j) % channels];
                            let o = &o[offset + j * inner..];
                            for (v, &w) in run.iter_mut().zip(o) {
                                *v = w * k;
                            }
                        }
                    });
                }
            }
            Mask::Bits { bits, .. } => {
                let values = [T::zero(), T::one()];
                par::for_chunks_mut(out, |offset, chunk| {
                    // Chunks start on a word: `offset` is a multiple of 64.
                    let runs = chunk.chunks_mut(64).zip(o[offset..].chunks(64));
                    for ((run, o), &word) in runs.zip(&bits[offset / 64..]) {
                        // A product, not a select: a pruned NaN or
                        // infinity gives NaN, as in PyTorch.
                        for (b, (v, &w)) in run.iter_mut().zip(o).enumerate() {
                            *v = w * values[((word >> b) & 1) as usize];
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_the_same_dense_mask_bits_and_product() {
        for (shape, dim) in [
            (vec![3, 70], 0),
            (vec![70, 3], 1),
            (vec![2, 5, 13], 1),
            (vec![4, 3, 2, 3], 2),
        ] {
            let c = shape[dim];
            let keep: Vec<bool> = (0..c).map(|i| i % 3 != 1).collect();
            let channels = Mask::<f32>::Channels {
                shape: shape.clone(),
                dim,
                keep,
            };
            let dense = channels.to_dense();
            let bits = Mask::<f32>::Bits {
                shape: shape.clone(),
                bits: channels.to_bits(),
            };
            assert_eq!(bits.to_dense(), dense);
            assert_eq!(Mask::Dense(dense.clone()).to_bits(), channels.to_bits());
            let n: usize = shape.iter().product();
            let orig = ArrayD::from_shape_vec(
                shape.clone(),
                (0..n).map(|i| (i % 7) as f32 - 3.5).collect(),
            )
            .unwrap();
            let want = &orig * &dense;
            for form in [Mask::Dense(dense.clone()), channels.clone(), bits.clone()] {
                let mut out = ArrayD::zeros(shape.clone());
                form.product_into(&mut out, &orig);
                assert_eq!(out, want);
            }
        }
    }
}
