//! Selection inside groups: the `k` smallest keys of one small group (an
//! N:M group, a block of block sparsity), and of one large set (the blocks
//! of a tensor), with equal keys at the cut chosen by a [`TieBreak`].
//!
//! Keys are integers that order what is ranked (see
//! [`crate::PruneFloat::magnitude_key`]); the callers shift them so that an
//! entry pruned before has key 0, below every live one.

use super::topk::topk_indices;
use crate::TieBreak;

/// Groups up to this size are ranked by counting (`O(m²)` compares on
/// the stack, no allocation); larger ones by a selection in `O(m)`.
const RANK_UP_TO: usize = 16;

/// Sets `pruned[i]` (one flag per key) for the `k` smallest of `keys`.
/// Among equal keys straddling the cut, [`TieBreak::LowestIndex`] prunes
/// the lower index first and [`TieBreak::Torch`] picks what
/// `torch.topk(keys, k, largest=False)` returns on the CPU.
pub(crate) fn smallest_in_group(keys: &[u64], k: usize, ties: TieBreak, pruned: &mut [bool]) {
    let m = keys.len();
    debug_assert_eq!(pruned.len(), m);
    if k == 0 || k >= m {
        pruned.fill(k > 0);
        return;
    }
    if m <= RANK_UP_TO {
        let mut straddle = false;
        for (i, &key) in keys.iter().enumerate() {
            let (mut less, mut equal, mut equal_before) = (0usize, 0usize, 0usize);
            for (j, &other) in keys.iter().enumerate() {
                less += usize::from(other < key);
                equal += usize::from(other == key);
                equal_before += usize::from(other == key && j < i);
            }
            pruned[i] = if less + equal <= k {
                true
            } else if less >= k {
                false
            } else {
                // Equal keys straddle the cut: the lower index goes first.
                straddle = true;
                less + equal_before < k
            };
        }
        if !(straddle && ties == TieBreak::Torch) {
            return;
        }
    }
    let chosen = smallest_of_many(keys, k, ties);
    pruned.fill(false);
    for i in chosen {
        pruned[i] = true;
    }
}

/// The indices, in increasing order, of the `k` smallest of `keys`, equal
/// keys at the cut chosen by `ties` (as in [`smallest_in_group`]). Takes
/// 16 bytes a key of working memory.
pub(crate) fn smallest_of_many(keys: &[u64], k: usize, ties: TieBreak) -> Vec<usize> {
    let k = k.min(keys.len());
    match ties {
        TieBreak::Torch => topk_indices(keys.iter().copied(), k, false)
            .expect("group and block counts are checked to fit in u32"),
        TieBreak::LowestIndex => {
            if k == 0 {
                return Vec::new();
            }
            let mut pairs: Vec<(u64, usize)> = keys.iter().copied().zip(0..).collect();
            pairs.select_nth_unstable(k - 1);
            let mut out: Vec<usize> = pairs[..k].iter().map(|p| p.1).collect();
            out.sort_unstable();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(keys: &[u64], k: usize, ties: TieBreak) -> Vec<usize> {
        let mut pruned = vec![false; keys.len()];
        smallest_in_group(keys, k, ties, &mut pruned);
        (0..keys.len()).filter(|&i| pruned[i]).collect()
    }

    #[test]
    fn distinct_keys_give_the_k_smallest_whatever_the_rule() {
        let keys = [5, 1, 4, 2, 3, 9, 0, 7];
        for ties in [TieBreak::Torch, TieBreak::LowestIndex] {
            assert_eq!(pick(&keys, 3, ties), vec![1, 3, 6]);
            assert_eq!(pick(&keys, 0, ties), Vec::<usize>::new());
            assert_eq!(pick(&keys, 8, ties), (0..8).collect::<Vec<_>>());
            assert_eq!(smallest_of_many(&keys, 3, ties), vec![1, 3, 6]);
        }
    }

    #[test]
    fn ties_at_the_cut_follow_the_rule() {
        let keys = [2, 2, 2, 2];
        assert_eq!(pick(&keys, 2, TieBreak::LowestIndex), vec![0, 1]);
        // The small-group path and the replay agree on the torch rule.
        let torch = pick(&keys, 2, TieBreak::Torch);
        assert_eq!(torch, smallest_of_many(&keys, 2, TieBreak::Torch));
        assert_eq!(torch.len(), 2);
        // Ties below the cut are all pruned, above it all kept.
        assert_eq!(pick(&[0, 0, 5, 7], 2, TieBreak::Torch), vec![0, 1]);
        assert_eq!(pick(&[1, 9, 9, 9], 1, TieBreak::Torch), vec![0]);
        // Large groups take the selection path.
        let big: Vec<u64> = (0..40).map(|i| i % 3).collect();
        let low = pick(&big, 20, TieBreak::LowestIndex);
        assert_eq!(low.len(), 20);
        assert!(low.iter().all(|&i| big[i] <= 1));
        assert_eq!(low.iter().filter(|&&i| big[i] == 0).count(), 14);
    }
}
