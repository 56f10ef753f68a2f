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
//! the magnitude bits (parallel histograms, no sorting, no copy of the
//! scores); only when ties straddle the cut does [`TieBreak::Torch`] replay
//! PyTorch's order over the candidates, which costs O(n) expected time and a
//! temporary of 4 bytes per candidate (`f32`; 8 for `f64`).
//! [`TieBreak::LowestIndex`] skips that replay: among equal scores at the
//! cut, the lower index (the earlier tensor, in global pruning) is pruned
//! first.

mod stream;
pub(crate) mod topk;

pub use stream::StreamingSelect;

use rand::{Rng, RngExt};

use crate::mask::{bit, count_bits};
use crate::par;
use crate::PruneFloat;

/// How equal scores at the cut are chosen between.
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::TieBreak;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// // Four equal magnitudes, two to prune.
/// let t = array![1.0f32, -1.0, 1.0, 1.0].into_dyn();
/// let ones = ndarray::ArrayD::ones(vec![4]);
/// let lowest = L1Unstructured::new(Amount::Count(2))?.with_tie_break(TieBreak::LowestIndex);
/// assert_eq!(lowest.compute_mask(t.view(), ones.view())?, array![0.0f32, 0.0, 1.0, 1.0].into_dyn());
/// // PyTorch's CPU topk picks another pair; TieBreak::Torch (the default) picks the same.
/// let torch = L1Unstructured::new(Amount::Count(2))?;
/// assert_eq!(torch.compute_mask(t.view(), ones.view())?.sum(), 2.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieBreak {
    /// Exactly PyTorch's choice (its CPU `topk`), at the cost of a replay
    /// when equal scores straddle the cut. The default.
    #[default]
    Torch,
    /// The lower index first: no extra pass or memory, whatever the ties.
    LowestIndex,
}

/// Width of the first radix digit of the selection keys: two passes for
/// `f32` keys, four for `f64`, one for the 16-bit types (narrower digits
/// and interleaved copies of the histogram measured slower here: the
/// passes are bound by memory, not by the counting).
const FIRST_DIGIT_BITS: u32 = 16;
/// Width of the later digits.
const DIGIT_BITS: u32 = 16;
/// Copies of the first histogram.
const COPIES: usize = 1;

/// Where the `k` smallest candidates end: every candidate whose key is below
/// `key` is pruned, and `ties` of the `at_key` candidates whose key equals
/// `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    key: u64,
    ties: usize,
    at_key: usize,
}

impl Cut {
    /// Whether the entry with this key is pruned without looking at ties.
    fn below(self, key: u64) -> bool {
        key < self.key || (key == self.key && self.ties == self.at_key)
    }

    /// The smallest key not pruned without looking at ties (`None`: every
    /// key is pruned): `below(key)` is `key < kept_from`.
    fn kept_from(self) -> Option<u64> {
        if self.ties == self.at_key {
            self.key.checked_add(1)
        } else {
            Some(self.key)
        }
    }
}

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

/// Which entries of a segment are candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Open<'a, T> {
    /// Every entry.
    All,
    /// Those whose mask is 1.
    Dense(&'a [T]),
    /// Those whose bit is set.
    Bits(&'a [u64]),
}

impl<T: PruneFloat> Open<'_, T> {
    #[inline]
    fn at(self, i: usize) -> bool {
        match self {
            Open::All => true,
            Open::Dense(m) => m[i] == T::one(),
            Open::Bits(b) => bit(b, i),
        }
    }
}

impl<T: PruneFloat> MaskSlot<'_, T> {
    fn open(&self) -> Open<'_, T> {
        match self {
            MaskSlot::Existing(m) => Open::Dense(m),
            MaskSlot::ExistingBits(b) => Open::Bits(b),
            MaskSlot::Fresh(_) | MaskSlot::FreshBits(_) => Open::All,
        }
    }

    fn is_candidate(&self, i: usize) -> bool {
        self.open().at(i)
    }

    fn prune(&mut self, i: usize) {
        match self {
            MaskSlot::Existing(m) | MaskSlot::Fresh(m) => m[i] = T::zero(),
            MaskSlot::ExistingBits(b) | MaskSlot::FreshBits(b) => b[i / 64] &= !(1u64 << (i % 64)),
        }
    }
}

/// Number of entries whose mask is 1.
pub(crate) fn count_candidates<T: PruneFloat>(mask: &[T]) -> usize {
    par::count_into(mask, 1, |_, c, acc| {
        acc[0] += c.iter().filter(|&&m| m == T::one()).count();
    })[0]
}

/// Histogram of one radix digit of the candidates' keys: the `width` bits
/// at `shift`, counted over the candidates whose higher bits equal `prefix`
/// (all candidates on the first pass).
fn digit_histogram<T: PruneFloat>(
    scores: &[&[T]],
    masks: &[Open<'_, T>],
    (shift, width): (u32, u32),
    prefix: Option<u64>,
) -> Vec<usize> {
    let buckets = 1usize << width;
    let digit = |key: u64| ((key >> shift) as usize) & (buckets - 1);
    let matches = |key: u64| prefix.is_none_or(|p| key >> (shift + width) == p);
    let mut total = vec![0usize; buckets];
    for (s, m) in scores.iter().zip(masks) {
        let h = par::count_into(s, COPIES * buckets, |offset, chunk, acc| {
            match (*m, prefix) {
                // First pass over a fresh tensor: every entry counts.
                (Open::All, None) => {
                    let mut quads = chunk.chunks_exact(COPIES);
                    for q in &mut quads {
                        for (copy, &x) in q.iter().enumerate() {
                            acc[copy * buckets + digit(x.magnitude_key())] += 1;
                        }
                    }
                    for &x in quads.remainder() {
                        acc[digit(x.magnitude_key())] += 1;
                    }
                }
                (Open::All, Some(_)) => {
                    for &x in chunk {
                        let key = x.magnitude_key();
                        if matches(key) {
                            acc[digit(key)] += 1;
                        }
                    }
                }
                (Open::Dense(m), _) => {
                    for (&x, &k) in chunk.iter().zip(&m[offset..]) {
                        let key = x.magnitude_key();
                        if k == T::one() && matches(key) {
                            acc[digit(key)] += 1;
                        }
                    }
                }
                (Open::Bits(bits), _) => {
                    // Chunks start on a word; walk the set bits only.
                    for (w, &word) in bits[offset / 64..]
                        .iter()
                        .take(chunk.len().div_ceil(64))
                        .enumerate()
                    {
                        let mut live = word;
                        while live != 0 {
                            let b = live.trailing_zeros() as usize;
                            live &= live - 1;
                            if let Some(x) = chunk.get(w * 64 + b) {
                                let key = x.magnitude_key();
                                if matches(key) {
                                    acc[digit(key)] += 1;
                                }
                            }
                        }
                    }
                }
            }
        });
        for copy in h.chunks_exact(buckets) {
            total.iter_mut().zip(copy).for_each(|(t, c)| *t += c);
        }
    }
    total
}

/// The radix digits of a key of `bits` bits, highest first, as
/// `(shift, width)`.
fn digits(bits: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut left = bits;
    let mut width = FIRST_DIGIT_BITS.min(bits);
    while left > 0 {
        out.push((left - width, width));
        left -= width;
        width = DIGIT_BITS.min(left);
    }
    out
}

/// The cut below which the `k` candidates of smallest magnitude lie, by
/// radix selection on the magnitude keys: one histogram pass per digit
/// (12 bits, then 10), each over the candidates that share the digits
/// found so far.
/// `k` must not exceed the number of candidates; `None` when `k == 0`.
fn smallest_cut<T: PruneFloat>(scores: &[&[T]], masks: &[Open<'_, T>], k: usize) -> Option<Cut> {
    if k == 0 {
        return None;
    }
    let mut prefix = None;
    let mut rank = k; // 1-based rank of the cut among keys matching `prefix`
    let mut at_key = 0;
    for (shift, width) in digits(T::KEY_BITS) {
        let hist = digit_histogram(scores, masks, (shift, width), prefix);
        let mut below = 0;
        for (bucket, &count) in hist.iter().enumerate() {
            if below + count >= rank {
                prefix = Some((prefix.unwrap_or(0) << width) | bucket as u64);
                rank -= below;
                at_key = count;
                break;
            }
            below += count;
        }
    }
    Some(Cut {
        key: prefix.unwrap_or(0),
        ties: rank,
        at_key,
    })
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
    let cut = {
        let open: Vec<Open<'_, T>> = masks.iter().map(MaskSlot::open).collect();
        smallest_cut(scores, &open, k)
    };
    // The tied entries at the cut that go, as (segment, index): chosen
    // before any mask changes, since candidates are read from the masks.
    let tied: Vec<(usize, usize)> = match cut {
        Some(cut) if cut.ties < cut.at_key => match ties {
            TieBreak::LowestIndex => first_at_key(scores, masks, cut.key, cut.ties),
            TieBreak::Torch => torch_tied(scores, masks, cut.key, k)
                .unwrap_or_else(|| first_at_key(scores, masks, cut.key, cut.ties)),
        },
        _ => Vec::new(),
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

/// The first `count` candidates whose key is `key`, in order.
fn first_at_key<T: PruneFloat>(
    scores: &[&[T]],
    masks: &[MaskSlot<'_, T>],
    key: u64,
    count: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(count);
    for (seg, (s, m)) in scores.iter().zip(masks).enumerate() {
        for (i, &x) in s.iter().enumerate() {
            if out.len() == count {
                return out;
            }
            if m.is_candidate(i) && x.magnitude_key() == key {
                out.push((seg, i));
            }
        }
    }
    out
}

/// The candidates with key `key` among the `k` PyTorch's `topk` picks, by
/// replaying it over all candidates; `None` when there are too many
/// candidates to index with `u32`.
fn torch_tied<T: PruneFloat>(
    scores: &[&[T]],
    masks: &[MaskSlot<'_, T>],
    key: u64,
    k: usize,
) -> Option<Vec<(usize, usize)>> {
    let positions = || {
        scores
            .iter()
            .zip(masks)
            .enumerate()
            .flat_map(|(seg, (s, m))| {
                s.iter()
                    .enumerate()
                    .filter(move |&(i, _)| m.is_candidate(i))
                    .map(move |(i, &x)| (seg, i, x.magnitude_key()))
            })
    };
    let open: usize = masks
        .iter()
        .zip(scores)
        .map(|(m, s)| match m.open() {
            Open::All => s.len(),
            Open::Dense(d) => count_candidates(d),
            Open::Bits(b) => count_bits(b, s.len()),
        })
        .sum();
    // Which of the tied candidates PyTorch keeps among its k (ordinals
    // among the tied ones): the rest of the k lie below the cut anyway.
    // Keys of at most 32 bits replay as u32: 4 bytes a candidate.
    let keys = positions().map(|(_, _, x)| x);
    let chosen = if T::KEY_BITS <= 32 {
        topk::smallest_tied::<u32>(keys, open, T::KEY_BITS, k, key)?
    } else {
        topk::smallest_tied::<u64>(keys, open, T::KEY_BITS, k, key)?
    };
    let mut chosen = chosen.into_iter().peekable();
    let mut out = Vec::with_capacity(chosen.len());
    let tied = positions().filter(|&(_, _, x)| x == key);
    for (ordinal, (seg, i, _)) in tied.enumerate() {
        if chosen.peek().is_none() {
            break;
        }
        if chosen.peek() == Some(&ordinal) {
            chosen.next();
            out.push((seg, i));
        }
    }
    Some(out)
}

/// Which channels stay when only the `keep` live channels of largest norm
/// stay (NaN largest), chosen among equal norms by `ties` (PyTorch picks with
/// `topk(norm, keep, largest=True)`). Dead channels stay dead.
pub(crate) fn channels_to_keep<T: PruneFloat>(
    norms: &[T],
    live: &[bool],
    keep: usize,
    ties: TieBreak,
) -> Vec<bool> {
    let live_idx: Vec<usize> = (0..norms.len()).filter(|&c| live[c]).collect();
    let keys: Vec<u64> = live_idx.iter().map(|&c| norms[c].magnitude_key()).collect();
    let kept = match ties {
        TieBreak::Torch => topk::topk_indices(keys.iter().copied(), keep, true),
        TieBreak::LowestIndex => None,
    };
    let kept = kept.unwrap_or_else(|| {
        // The largest `keep`; among equals the higher index stays, so the
        // lower one is pruned first.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by_key(|&j| std::cmp::Reverse((keys[j], j)));
        let mut kept: Vec<usize> = order.into_iter().take(keep).collect();
        kept.sort_unstable();
        kept
    });
    let mut out = vec![false; norms.len()];
    for j in kept {
        out[live_idx[j]] = true;
    }
    out
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
    use rand::SeedableRng;

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
    fn digits_cover_every_key_bit() {
        for bits in [16, 32, 64] {
            let d = digits(bits);
            assert_eq!(d.iter().map(|&(_, w)| w).sum::<u32>(), bits);
            assert_eq!(d.last().map(|&(s, _)| s), Some(0));
            assert!(d.windows(2).all(|p| p[0].0 == p[1].0 + p[1].1));
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

    #[test]
    fn channels_keep_the_largest_nan_first() {
        let norms = [1.0, f64::NAN, 0.5, 2.0];
        let live = [true, true, false, true];
        for ties in [TieBreak::Torch, TieBreak::LowestIndex] {
            let all = [true; 4];
            assert_eq!(
                channels_to_keep(&norms, &all, 2, ties),
                [false, true, false, true]
            );
            assert_eq!(
                channels_to_keep(&norms, &live, 1, ties),
                [false, true, false, false]
            );
            assert_eq!(channels_to_keep(&norms, &all, 0, ties), [false; 4]);
        }
        let equal = [1.0; 4];
        let lowest = channels_to_keep(&equal, &[true; 4], 1, TieBreak::LowestIndex);
        assert_eq!(lowest, [false, false, false, true]);
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
