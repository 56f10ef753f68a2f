//! Choosing which entries or channels to prune, in O(n), without sorting.
//!
//! # The tie rule
//!
//! Entries are ranked by the magnitude of their importance score and
//! channels by their norm; the `k` smallest are pruned. NaN ranks above
//! every number (as in `torch.topk`), infinities rank as numbers, and `-0.0`
//! equals `0.0`. Among equal scores the one that comes first is pruned
//! first: the lower flat (row-major) index, the lower channel index, and in
//! global pruning the earlier tensor in the list. The result is therefore
//! one exact, documented set for any input, and the number pruned is always
//! exactly the amount.

use rand::{Rng, RngExt};

use crate::float::score_key;
use crate::PruneFloat;

/// Width of one radix digit of the selection keys.
const DIGIT_BITS: u32 = 16;
const BUCKETS: usize = 1 << DIGIT_BITS;

/// Where the `k` smallest candidates end: every candidate whose key is below
/// `key` is pruned, and so are the first `ties` candidates whose key equals
/// `key`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    key: u64,
    ties: usize,
}

/// A run of entries: their scores and the current mask. An entry is a
/// candidate for pruning where its mask is 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment<'a, T> {
    pub scores: &'a [T],
    pub mask: &'a [T],
}

impl<'a, T: PruneFloat> Segment<'a, T> {
    fn candidate_keys(self) -> impl Iterator<Item = u64> + 'a {
        self.scores
            .iter()
            .zip(self.mask)
            .filter(|(_, &m)| m == T::one())
            .map(|(&s, _)| s.magnitude_key())
    }
}

/// Number of entries whose mask is 1.
pub(crate) fn count_candidates<T: PruneFloat>(mask: &[T]) -> usize {
    mask.iter().filter(|&&m| m == T::one()).count()
}

/// The cut below which the `k` candidates of smallest magnitude lie, by
/// radix selection on the magnitude keys: one histogram pass per 16-bit
/// digit, each over the candidates that share the digits found so far.
/// `k` must not exceed the number of candidates; `None` when `k == 0`.
pub(crate) fn smallest_cut<T: PruneFloat>(segments: &[Segment<'_, T>], k: usize) -> Option<Cut> {
    if k == 0 {
        return None;
    }
    let mut hist = vec![0usize; BUCKETS];
    let mut prefix = 0u64;
    let mut rank = k; // 1-based rank of the cut among keys matching `prefix`
    let mut shift = T::KEY_BITS.div_ceil(DIGIT_BITS) * DIGIT_BITS;
    let mut first = true;
    while shift > 0 {
        shift -= DIGIT_BITS;
        hist.fill(0);
        for seg in segments {
            for key in seg.candidate_keys() {
                if first || key >> (shift + DIGIT_BITS) == prefix {
                    hist[((key >> shift) as usize) & (BUCKETS - 1)] += 1;
                }
            }
        }
        let mut below = 0;
        for (bucket, &count) in hist.iter().enumerate() {
            if below + count >= rank {
                prefix = (prefix << DIGIT_BITS) | bucket as u64;
                rank -= below;
                break;
            }
            below += count;
        }
        first = false;
    }
    Some(Cut {
        key: prefix,
        ties: rank,
    })
}

/// Zeroes the mask of every candidate below `cut`, and of the first
/// `ties_left` candidates at it; `ties_left` carries over between segments.
pub(crate) fn apply_cut<T: PruneFloat>(scores: &[T], mask: &mut [T], cut: Cut, ties_left: &mut usize) {
    for (&s, m) in scores.iter().zip(mask.iter_mut()) {
        if *m != T::one() {
            continue;
        }
        let key = s.magnitude_key();
        if key < cut.key {
            *m = T::zero();
        } else if key == cut.key && *ties_left > 0 {
            *m = T::zero();
            *ties_left -= 1;
        }
    }
}

impl Cut {
    /// How many tied candidates at the cut are pruned.
    pub(crate) fn ties(self) -> usize {
        self.ties
    }
}

/// The `k` eligible channels of smallest norm (NaN largest, lower index
/// first among equals), in increasing channel order.
pub(crate) fn smallest_channels(norms: &[f64], eligible: &[bool], k: usize) -> Vec<usize> {
    let mut ranked: Vec<(u64, usize)> = norms
        .iter()
        .zip(eligible)
        .enumerate()
        .filter(|(_, (_, &e))| e)
        .map(|(i, (&n, _))| (score_key(n), i))
        .collect();
    if k == 0 {
        return Vec::new();
    }
    if k < ranked.len() {
        ranked.select_nth_unstable(k - 1);
    }
    let mut chosen: Vec<usize> = ranked.into_iter().take(k).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen
}

/// Chooses `k` of `n` items uniformly at random, in one pass (selection
/// sampling): `pick` is called for each of the `n` items in order and
/// answers whether it is taken. Exactly `k` are taken.
pub(crate) fn sample_in_order<R: Rng + ?Sized>(rng: &mut R, n: usize, k: usize) -> impl FnMut() -> bool + '_ {
    let mut left = n;
    let mut wanted = k.min(n);
    move || {
        if left == 0 {
            return false;
        }
        let take = wanted > 0 && rng.random_range(0..left) < wanted;
        left -= 1;
        if take {
            wanted -= 1;
        }
        take
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn prune_smallest(scores: &[f32], mask: &mut [f32], k: usize) {
        let seg = [Segment { scores, mask }];
        if let Some(cut) = smallest_cut(&seg, k) {
            let mut ties = cut.ties();
            apply_cut(scores, mask, cut, &mut ties);
            assert_eq!(ties, 0);
        }
    }

    #[test]
    fn prunes_exactly_k_smallest_with_lower_index_first_on_ties() {
        let scores = [3.0f32, -1.0, 2.0, 1.0, f32::NAN, -0.0, 0.0, f32::INFINITY];
        for k in 0..=scores.len() {
            let mut mask = [1.0f32; 8];
            prune_smallest(&scores, &mut mask, k);
            let mut order: Vec<usize> = (0..8).collect();
            order.sort_by_key(|&i| (scores[i].magnitude_key(), i));
            for (rank, &i) in order.iter().enumerate() {
                assert_eq!(mask[i], if rank < k { 0.0 } else { 1.0 }, "k={k} i={i}");
            }
        }
    }

    #[test]
    fn only_candidates_count() {
        let scores = [0.1f32, 0.2, 0.3, 0.4];
        let mut mask = [0.0f32, 1.0, 0.0, 1.0];
        prune_smallest(&scores, &mut mask, 1);
        assert_eq!(mask, [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn f64_keys_use_four_digits() {
        let scores: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 * 1e-3).collect();
        let mut mask = vec![1.0f64; 1000];
        let seg = [Segment { scores: &scores, mask: &mask }];
        let cut = smallest_cut(&seg, 500).unwrap();
        let mut ties = cut.ties();
        apply_cut(&scores, &mut mask, cut, &mut ties);
        for (s, m) in scores.iter().zip(&mask) {
            assert_eq!(*m == 0.0, *s < 0.5);
        }
    }

    #[test]
    fn channels_rank_nan_last() {
        let norms = [1.0, f64::NAN, 0.5, 1.0];
        assert_eq!(smallest_channels(&norms, &[true; 4], 2), vec![0, 2]);
        assert_eq!(smallest_channels(&norms, &[true, true, false, true], 3), vec![0, 1, 3]);
    }

    #[test]
    fn sampling_takes_exactly_k() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (n, k) in [(10, 0), (10, 3), (10, 10), (1, 1)] {
            let mut pick = sample_in_order(&mut rng, n, k);
            let taken = (0..n).filter(|_| pick()).count();
            assert_eq!(taken, k);
        }
    }
}
