//! Masks updated one contiguous segment at a time (an N:M method's run of
//! groups, a row of blocks), in parallel chunks that are cut the same way
//! whatever the number of threads, so the result never depends on it.
//!
//! A segment's worker sees the segment's mask through [`SegmentMask`]:
//! which entries are live, and a way to prune one. The mask may be bits
//! (chunks start on a 64-entry word) or dense (standard layout).

use super::bits::bit;
use crate::{par, PruneFloat};

/// One segment of a mask, as its worker sees it (indices are relative to
/// the segment's first entry).
pub(crate) trait SegmentMask {
    /// Whether entry `i` is kept now.
    fn live(&self, i: usize) -> bool;
    /// Prunes entry `i`.
    fn prune(&mut self, i: usize);
}

/// The work done on each segment: `segment` is its number, `len` its
/// length (the segment length, or less for the tensor's last segment).
pub(crate) trait SegmentWork: Sync {
    /// Updates one segment's mask.
    fn run<S: SegmentMask>(&self, segment: usize, len: usize, mask: &mut S);
}

struct BitsSegment<'a> {
    words: &'a mut [u64],
    start: usize,
}

impl SegmentMask for BitsSegment<'_> {
    #[inline]
    fn live(&self, i: usize) -> bool {
        bit(self.words, self.start + i)
    }
    #[inline]
    fn prune(&mut self, i: usize) {
        let j = self.start + i;
        self.words[j / 64] &= !(1u64 << (j % 64));
    }
}

struct DenseSegment<'a, T> {
    values: &'a mut [T],
}

impl<T: PruneFloat> SegmentMask for DenseSegment<'_, T> {
    #[inline]
    fn live(&self, i: usize) -> bool {
        self.values[i] == T::one()
    }
    #[inline]
    fn prune(&mut self, i: usize) {
        self.values[i] = T::zero();
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Runs `work` on every segment of `seg_len` entries of a bit mask of
/// `numel` entries (the last segment may be shorter).
pub(crate) fn for_segments_bits<W: SegmentWork>(
    bits: &mut [u64],
    numel: usize,
    seg_len: usize,
    work: &W,
) {
    if numel == 0 || seg_len == 0 {
        return;
    }
    // A chunk is a whole number of segments and of words.
    let unit = (seg_len / gcd(seg_len, 64)).saturating_mul(64);
    let per = (par::CHUNK / unit).max(1).saturating_mul(unit);
    par::for_weighted_blocks_mut(bits, (per / 64).max(1), 64, |word_off, words| {
        let first = word_off * 64;
        let count = (words.len() * 64).min(numel - first);
        let segments = count.div_ceil(seg_len);
        for s in 0..segments {
            let start = s * seg_len;
            let len = seg_len.min(count - start);
            let mut view = BitsSegment { words, start };
            work.run(first / seg_len + s, len, &mut view);
        }
    });
}

/// Runs `work` on every segment of `seg_len` entries of a dense mask (the
/// last segment may be shorter).
pub(crate) fn for_segments_dense<T: PruneFloat, W: SegmentWork>(
    values: &mut [T],
    seg_len: usize,
    work: &W,
) {
    if values.is_empty() || seg_len == 0 {
        return;
    }
    let per = (par::CHUNK / seg_len).max(1).saturating_mul(seg_len);
    par::for_blocks_mut(values, per, |off, chunk| {
        for (s, seg) in chunk.chunks_mut(seg_len).enumerate() {
            let len = seg.len();
            let mut view = DenseSegment { values: seg };
            work.run(off / seg_len + s, len, &mut view);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{count_bits, set_run};

    /// Prunes the first entry of every segment.
    struct First;
    impl SegmentWork for First {
        fn run<S: SegmentMask>(&self, _segment: usize, len: usize, mask: &mut S) {
            if len > 0 && mask.live(0) {
                mask.prune(0);
            }
        }
    }

    #[test]
    fn every_segment_is_visited_once_in_bits_and_dense() {
        for (numel, seg) in [
            (1000usize, 7usize),
            (64, 64),
            (3 * par::CHUNK + 5, 96),
            (10, 3),
        ] {
            let mut bits = vec![0u64; numel.div_ceil(64)];
            set_run(&mut bits, 0, numel);
            for_segments_bits(&mut bits, numel, seg, &First);
            assert_eq!(count_bits(&bits, numel), numel - numel.div_ceil(seg));
            let mut dense = vec![1.0f32; numel];
            for_segments_dense(&mut dense, seg, &First);
            for (i, &v) in dense.iter().enumerate() {
                assert_eq!(v == 0.0, i % seg == 0);
                assert_eq!(bit(&bits, i), v == 1.0);
            }
        }
    }
}
