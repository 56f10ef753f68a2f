//! Bit masks: one bit an entry, in row-major order; bit `i % 64` of word
//! `i / 64` is set where entry `i` is kept.

/// Bit `i` of a bit mask.
#[inline]
pub(crate) fn bit(bits: &[u64], i: usize) -> bool {
    (bits[i / 64] >> (i % 64)) & 1 == 1
}

/// Number of set bits among the first `n` of a bit mask.
pub(crate) fn count_bits(bits: &[u64], n: usize) -> usize {
    let full = n / 64;
    let mut count: usize = bits[..full].iter().map(|w| w.count_ones() as usize).sum();
    if n % 64 != 0 {
        count += (bits[full] & ((1u64 << (n % 64)) - 1)).count_ones() as usize;
    }
    count
}

/// Sets bits `start .. start + len`, a word at a time.
pub(crate) fn set_run(bits: &mut [u64], start: usize, len: usize) {
    let end = start + len;
    let mut i = start;
    while i < end {
        let offset = i % 64;
        let take = (64 - offset).min(end - i);
        let ones = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << offset
        };
        bits[i / 64] |= ones;
        i += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_set_exactly_their_bits() {
        for (start, len) in [(0, 0), (0, 64), (3, 70), (63, 2), (64, 128), (5, 1)] {
            let mut bits = vec![0u64; 4];
            set_run(&mut bits, start, len);
            for i in 0..256 {
                assert_eq!(
                    bit(&bits, i),
                    (start..start + len).contains(&i),
                    "{start} {len} {i}"
                );
            }
            assert_eq!(count_bits(&bits, 256), len);
        }
    }
}
