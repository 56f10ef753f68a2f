//! Choosing which entries or channels to prune.
//!
//! # Ranking and ties
//!
//! Entries are ranked by the magnitude of their importance score and
//! channels by their norm; the `k` smallest are pruned (for channels: all
//! but the `n − k` largest are). NaN ranks above every number (as in
//! `torch.topk`), infinities rank as numbers, and `-0.0` equals `0.0`.
//!
//! Where equal scores straddle the cut (say 10 zeros and 4 of them to
//! prune), ndprune picks exactly the ones PyTorch picks: its CPU `topk`
//! runs the C++ library's `nth_element` or `partial_sort` on `(value,
//! index)` pairs, and ndprune replays those algorithms step for step.
//! That choice is deterministic (a function of the scores alone), and it is
//! tested against `torch.topk` itself on hundreds of tie-heavy inputs.
//!
//! Unstructured selection first finds the cut in O(n) by a radix select on
//! the magnitude bits, without sorting or copying; only when ties straddle
//! the cut does it replay PyTorch's order over the candidates (O(n)
//! expected, with a temporary of 16 bytes per candidate).

mod topk;

use rand::{Rng, RngExt};

use crate::float::score_key;
use crate::PruneFloat;

/// Width of one radix digit of the selection keys.
const DIGIT_BITS: u32 = 16;
const BUCKETS: usize = 1 << DIGIT_BITS;

/// Where the `k` smallest candidates end: every candidate whose key is below
/// `key` is pruned, and `ties` of the `at_key` candidates whose key equals
/// `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    key: u64,
    ties: usize,
    at_key: usize,
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
    let mut at_key = 0;
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
                at_key = count;
                break;
            }
            below += count;
        }
        first = false;
    }
    Some(Cut {
        key: prefix,
        ties: rank,
        at_key,
    })
}

/// Zeroes the masks of the `k` candidates of smallest magnitude across
/// `segments` (scores with their masks, in order), choosing among equal
/// magnitudes as `torch.topk` does. `k` must not exceed the number of
/// candidates.
pub(crate) fn prune_smallest<T: PruneFloat>(scores: &[&[T]], masks: &mut [&mut [T]], k: usize) {
    let segments: Vec<Segment<'_, T>> = scores
        .iter()
        .zip(masks.iter())
        .map(|(s, m)| Segment { scores: s, mask: m })
        .collect();
    let Some(cut) = smallest_cut(&segments, k) else {
        return;
    };
    if cut.ties == cut.at_key {
        // Everything at the cut goes: the set is the same under any order.
        for (s, m) in scores.iter().zip(masks.iter_mut()) {
            for (&x, v) in s.iter().zip(m.iter_mut()) {
                if *v == T::one() && x.magnitude_key() <= cut.key {
                    *v = T::zero();
                }
            }
        }
        return;
    }
    // Ties straddle the cut: PyTorch's order over all candidates decides.
    let keys: Vec<u64> = segments
        .iter()
        .flat_map(|seg| seg.candidate_keys())
        .collect();
    drop(segments);
    let chosen = topk::topk_indices(&keys, k, false);
    let mut next = chosen.iter().copied().peekable();
    let mut position = 0;
    for m in masks.iter_mut() {
        for v in m.iter_mut().filter(|v| **v == T::one()) {
            if next.peek() == Some(&position) {
                *v = T::zero();
                next.next();
            }
            position += 1;
        }
    }
}

/// The live channels to prune so that the `keep` live channels of largest
/// norm remain, as PyTorch's `topk(norm, keep, largest=True)` picks them
/// (NaN largest; ties in its order), in increasing channel order.
pub(crate) fn channels_to_prune(norms: &[f64], live: &[bool], keep: usize) -> Vec<usize> {
    let live_idx: Vec<usize> = (0..norms.len()).filter(|&c| live[c]).collect();
    let keys: Vec<u64> = live_idx.iter().map(|&c| score_key(norms[c])).collect();
    let kept = topk::topk_indices(&keys, keep, true);
    let mut kept = kept.into_iter().peekable();
    let mut pruned = Vec::with_capacity(live_idx.len().saturating_sub(keep));
    for (j, &c) in live_idx.iter().enumerate() {
        if kept.peek() == Some(&j) {
            kept.next();
        } else {
            pruned.push(c);
        }
    }
    pruned
}

/// Chooses `k` of `n` items uniformly at random, in one pass (selection
/// sampling): `pick` is called for each of the `n` items in order and
/// answers whether it is taken. Exactly `k` are taken.
pub(crate) fn sample_in_order<R: Rng + ?Sized>(
    rng: &mut R,
    n: usize,
    k: usize,
) -> impl FnMut() -> bool + '_ {
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

    fn prune_one(scores: &[f32], mask: &mut [f32], k: usize) {
        prune_smallest(&[scores], &mut [mask], k);
    }

    #[test]
    fn prunes_exactly_the_k_smallest_distinct_values() {
        let scores = [3.0f32, -1.0, 2.0, 1.5, f32::NAN, -0.25, 0.0, f32::INFINITY];
        for k in 0..=scores.len() {
            let mut mask = [1.0f32; 8];
            prune_one(&scores, &mut mask, k);
            let mut order: Vec<usize> = (0..8).collect();
            order.sort_by_key(|&i| scores[i].magnitude_key());
            for (rank, &i) in order.iter().enumerate() {
                assert_eq!(mask[i], if rank < k { 0.0 } else { 1.0 }, "k={k} i={i}");
            }
        }
    }

    #[test]
    fn straddling_ties_prune_exactly_k() {
        let scores = [0.0f32, 1.0, -0.0, 0.0, 2.0, 0.0];
        for k in 0..=6 {
            let mut mask = [1.0f32; 6];
            prune_one(&scores, &mut mask, k);
            assert_eq!(mask.iter().filter(|&&m| m == 0.0).count(), k);
            if k <= 4 {
                assert!(mask[1] == 1.0 && mask[4] == 1.0);
            }
        }
    }

    #[test]
    fn only_candidates_count() {
        let scores = [0.1f32, 0.2, 0.3, 0.4];
        let mut mask = [0.0f32, 1.0, 0.0, 1.0];
        prune_one(&scores, &mut mask, 1);
        assert_eq!(mask, [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn f64_keys_use_four_digits() {
        let scores: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 * 1e-3)
            .collect();
        let mut mask = vec![1.0f64; 1000];
        prune_smallest(&[&scores], &mut [&mut mask], 500);
        for (s, m) in scores.iter().zip(&mask) {
            assert_eq!(*m == 0.0, *s < 0.5);
        }
    }

    #[test]
    fn channels_keep_the_largest_nan_first() {
        let norms = [1.0, f64::NAN, 0.5, 2.0];
        assert_eq!(channels_to_prune(&norms, &[true; 4], 2), vec![0, 2]);
        assert_eq!(
            channels_to_prune(&norms, &[true, true, false, true], 1),
            vec![0, 3]
        );
        assert_eq!(channels_to_prune(&norms, &[true; 4], 0), vec![0, 1, 2, 3]);
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
