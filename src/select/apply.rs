//! Applying a cut: pruning the `k` smallest candidates of one or more
//! segments by writing their masks (dense or bits, existing or fresh).

use super::radix::{smallest_cut, Cut, Open};
use super::tie::{tied_to_prune, TieBreak};
use crate::par;
use crate::PruneFloat;

/// The bits of `run` whose key is at least `kept_from` (bit `b` for
/// `run[b]`), in a form the compiler vectorizes.
fn kept_bits<T: PruneFloat>(run: &[T], kept_from: Option<u64>) -> u64 {
    let Some(from) = kept_from else {
        return 0;
    };
    // One 0/1 byte a key (a loop that vectorizes), then each eight bytes
    // gathered into eight bits by one multiplication: the product's top byte
    // holds byte j's low bit at bit j (no two terms meet there).
    let mut flags = [0u8; 64];
    for (f, x) in flags.iter_mut().zip(run) {
        *f = u8::from(x.magnitude_key() >= from);
    }
    let mut word = 0u64;
    for (i, eight) in flags.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(eight);
        let gathered = u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        word |= gathered << (8 * i);
    }
    word
}

/// A mask being updated: an existing one (entries at 1 are candidates and
/// may only go to 0), or a fresh one (every entry is a candidate, and every
/// entry is written); dense, or one bit an entry (bit set = kept).
#[derive(Debug)]
pub(crate) enum MaskSlot<'a, T> {
    /// An existing 0/1 mask.
    Existing(&'a mut [T]),
    /// A buffer to fill with the mask of a first pruning.
    Fresh(&'a mut [T]),
    /// An existing bit mask.
    ExistingBits(&'a mut [u64]),
    /// Bits to fill with the mask of a first pruning.
    FreshBits(&'a mut [u64]),
}

impl<T: PruneFloat> MaskSlot<'_, T> {
    /// Which of its entries are candidates.
    fn open(&self) -> Open<'_, T> {
        match self {
            MaskSlot::Existing(m) => Open::Dense(m),
            MaskSlot::ExistingBits(b) => Open::Bits(b),
            MaskSlot::Fresh(_) | MaskSlot::FreshBits(_) => Open::All,
        }
    }

    /// Prunes entry `i`.
    fn prune(&mut self, i: usize) {
        match self {
            MaskSlot::Existing(m) | MaskSlot::Fresh(m) => m[i] = T::zero(),
            MaskSlot::ExistingBits(b) | MaskSlot::FreshBits(b) => b[i / 64] &= !(1u64 << (i % 64)),
        }
    }
}

/// Prunes the `k` candidates of smallest magnitude across `scores` (with
/// their masks, in order), choosing among equal magnitudes by `ties`. `k`
/// must not exceed the number of candidates. Fresh masks are written whole.
pub(crate) fn prune_smallest<T: PruneFloat>(
    scores: &[&[T]],
    masks: &mut [MaskSlot<'_, T>],
    k: usize,
    ties: TieBreak,
) {
    // The cut, and the tied entries at the cut that go as (segment,
    // index): both chosen before any mask changes, since candidates are
    // read from the masks.
    let (cut, tied) = {
        let open: Vec<Open<'_, T>> = masks.iter().map(MaskSlot::open).collect();
        let cut = smallest_cut(scores, &open, k);
        (cut, tied_to_prune(scores, &open, cut, k, ties))
    };
    for (s, slot) in scores.iter().zip(masks.iter_mut()) {
        match slot {
            MaskSlot::Existing(m) => {
                let Some(cut) = cut else { continue };
                par::for_chunks_mut(m, |offset, chunk| {
                    for (j, v) in chunk.iter_mut().enumerate() {
                        if *v == T::one() && cut.below(s[offset + j].magnitude_key()) {
                            *v = T::zero();
                        }
                    }
                });
            }
            MaskSlot::Fresh(m) => par::for_chunks_mut(m, |offset, chunk| {
                for (j, v) in chunk.iter_mut().enumerate() {
                    let pruned = cut.is_some_and(|c| c.below(s[offset + j].magnitude_key()));
                    *v = if pruned { T::zero() } else { T::one() };
                }
            }),
            MaskSlot::ExistingBits(b) => {
                let Some(cut) = cut else { continue };
                par::for_weighted_blocks_mut(b, par::CHUNK / 64, 64, |first_word, words| {
                    for (w, word) in words.iter_mut().enumerate() {
                        let base = (first_word + w) * 64;
                        let mut live = *word;
                        while live != 0 {
                            let b = live.trailing_zeros() as usize;
                            live &= live - 1;
                            if s.get(base + b)
                                .is_some_and(|x| cut.below(x.magnitude_key()))
                            {
                                *word &= !(1u64 << b);
                            }
                        }
                    }
                });
            }
            MaskSlot::FreshBits(b) => {
                // No cut: every key is kept.
                let kept_from = cut.map_or(Some(0), Cut::kept_from);
                par::for_weighted_blocks_mut(b, par::CHUNK / 64, 64, |first_word, words| {
                    for (w, word) in words.iter_mut().enumerate() {
                        let base = (first_word + w) * 64;
                        // A bit mask has ceil(len / 64) words: `base < len`.
                        let run = &s[base..(base + 64).min(s.len())];
                        *word = kept_bits(run, kept_from);
                    }
                })
            }
        }
    }
    for (seg, i) in tied {
        masks[seg].prune(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_bits_sets_bit_b_for_run_b() {
        let run: Vec<f32> = (0..64).map(|i| ((i * 37) % 64) as f32).collect();
        for from in [0.0f32, 1.0, 17.0, 63.0, 64.0] {
            let word = kept_bits(&run, Some(from.magnitude_key()));
            for (b, x) in run.iter().enumerate() {
                assert_eq!((word >> b) & 1 == 1, *x >= from, "from {from} bit {b}");
            }
            let short = kept_bits(&run[..13], Some(from.magnitude_key()));
            assert_eq!(short, word & ((1 << 13) - 1));
        }
        assert_eq!(kept_bits(&run, None), 0);
    }

    fn prune_one(scores: &[f32], mask: &mut [f32], k: usize) {
        prune_smallest(
            &[scores],
            &mut [MaskSlot::Existing(mask)],
            k,
            TieBreak::Torch,
        );
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
    fn lowest_index_prunes_the_first_ties_and_fresh_masks_are_written_whole() {
        let scores = [0.0f32, 1.0, 0.0, 0.0, 2.0, 0.0];
        let mut mask = [7.0f32; 6]; // garbage: a fresh buffer is overwritten
        prune_smallest(
            &[&scores],
            &mut [MaskSlot::Fresh(&mut mask)],
            3,
            TieBreak::LowestIndex,
        );
        assert_eq!(mask, [0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        let mut fresh = [7.0f32; 6];
        let mut existing = [1.0f32; 6];
        prune_smallest(
            &[&scores],
            &mut [MaskSlot::Fresh(&mut fresh)],
            3,
            TieBreak::Torch,
        );
        prune_smallest(
            &[&scores],
            &mut [MaskSlot::Existing(&mut existing)],
            3,
            TieBreak::Torch,
        );
        assert_eq!(fresh, existing);
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
        prune_smallest(
            &[&scores],
            &mut [MaskSlot::Existing(&mut mask)],
            500,
            TieBreak::Torch,
        );
        for (s, m) in scores.iter().zip(&mask) {
            assert_eq!(*m == 0.0, *s < 0.5);
        }
    }
}
