//! The tie rule: how equal scores at the cut are chosen between, and which
//! tied candidates each rule prunes.

use super::radix::{count_candidates, Cut, Open};
use super::topk;
use crate::mask::count_bits;
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

/// The tied candidates at `cut` that go, as `(segment, index)`, chosen by
/// `ties` among the candidates `open` (of the `k` smallest, the ones whose
/// key equals the cut's): none when the cut takes every candidate at its
/// key, or when there is no cut.
pub(super) fn tied_to_prune<T: PruneFloat>(
    scores: &[&[T]],
    open: &[Open<'_, T>],
    cut: Option<Cut>,
    k: usize,
    ties: TieBreak,
) -> Vec<(usize, usize)> {
    match cut {
        Some(cut) if cut.ties < cut.at_key => match ties {
            TieBreak::LowestIndex => first_at_key(scores, open, cut.key, cut.ties),
            TieBreak::Torch => torch_tied(scores, open, cut.key, k)
                .unwrap_or_else(|| first_at_key(scores, open, cut.key, cut.ties)),
        },
        _ => Vec::new(),
    }
}

/// The first `count` candidates whose key is `key`, in order.
fn first_at_key<T: PruneFloat>(
    scores: &[&[T]],
    open: &[Open<'_, T>],
    key: u64,
    count: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(count);
    for (seg, (s, m)) in scores.iter().zip(open).enumerate() {
        for (i, &x) in s.iter().enumerate() {
            if out.len() == count {
                return out;
            }
            if m.at(i) && x.magnitude_key() == key {
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
    open: &[Open<'_, T>],
    key: u64,
    k: usize,
) -> Option<Vec<(usize, usize)>> {
    let positions = || {
        scores
            .iter()
            .zip(open)
            .enumerate()
            .flat_map(|(seg, (s, &m))| {
                s.iter()
                    .enumerate()
                    .filter(move |&(i, _)| m.at(i))
                    .map(move |(i, &x)| (seg, i, x.magnitude_key()))
            })
    };
    let candidates: usize = open
        .iter()
        .zip(scores)
        .map(|(m, s)| match *m {
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
        topk::smallest_tied::<u32>(keys, candidates, T::KEY_BITS, k, key)?
    } else {
        topk::smallest_tied::<u64>(keys, candidates, T::KEY_BITS, k, key)?
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
