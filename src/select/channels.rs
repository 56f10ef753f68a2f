//! Structured selection: which channels stay, by norm.

use super::tie::TieBreak;
use super::topk;
use crate::PruneFloat;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
