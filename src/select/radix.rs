//! Finding the cut: where the `k` smallest candidates end, by a radix
//! select on the magnitude keys (parallel histograms, no sorting, no copy
//! of the scores).

use crate::mask::bit;
use crate::par;
use crate::PruneFloat;

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
pub(super) struct Cut {
    pub(super) key: u64,
    pub(super) ties: usize,
    pub(super) at_key: usize,
}

impl Cut {
    /// Whether the entry with this key is pruned without looking at ties.
    pub(super) fn below(self, key: u64) -> bool {
        key < self.key || (key == self.key && self.ties == self.at_key)
    }

    /// The smallest key not pruned without looking at ties (`None`: every
    /// key is pruned): `below(key)` is `key < kept_from`.
    pub(super) fn kept_from(self) -> Option<u64> {
        if self.ties == self.at_key {
            self.key.checked_add(1)
        } else {
            Some(self.key)
        }
    }
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
    /// Whether entry `i` is a candidate.
    #[inline]
    pub(super) fn at(self, i: usize) -> bool {
        match self {
            Open::All => true,
            Open::Dense(m) => m[i] == T::one(),
            Open::Bits(b) => bit(b, i),
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
pub(super) fn digit_histogram<T: PruneFloat>(
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
pub(super) fn digits(bits: u32) -> Vec<(u32, u32)> {
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
pub(super) fn smallest_cut<T: PruneFloat>(
    scores: &[&[T]],
    masks: &[Open<'_, T>],
    k: usize,
) -> Option<Cut> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_cover_every_key_bit() {
        for bits in [16, 32, 64] {
            let d = digits(bits);
            assert_eq!(d.iter().map(|&(_, w)| w).sum::<u32>(), bits);
            assert_eq!(d.last().map(|&(s, _)| s), Some(0));
            assert!(d.windows(2).all(|p| p[0].0 == p[1].0 + p[1].1));
        }
    }
}
