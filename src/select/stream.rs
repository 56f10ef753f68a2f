//! Selection over tensors that are not all in memory at once: the same
//! radix select as the in-memory kernels, fed one tensor at a time, pass by
//! pass (a memory-mapped checkpoint, read tensor by tensor).

use super::radix::{digit_histogram, digits, Open};
use crate::PruneFloat;

/// Finds the `k` candidates of smallest magnitude among tensors fed one at
/// a time, in as many passes as the key has radix digits (two for `f32`).
/// Among equal magnitudes at the cut, the earlier entry (in feed order) is
/// pruned first: a stream cannot replay PyTorch's `topk`.
///
/// ```
/// use ndprune::select::StreamingSelect;
///
/// let tensors = [vec![0.5f32, -3.0, 0.1], vec![2.0f32, 0.2]];
/// let mut select = StreamingSelect::new::<f32>(2);
/// while select.pending() {
///     for t in &tensors {
///         select.feed(t, None); // scores, and the mask if the tensor has one
///     }
///     select.end_pass();
/// }
/// let mut ties = select.ties();
/// let masks: Vec<Vec<f32>> = tensors.iter().map(|t| select.mask_for(t, None, &mut ties)).collect();
/// assert_eq!(masks, [vec![1.0, 1.0, 0.0], vec![1.0, 0.0]]);
/// ```
#[derive(Debug, Clone)]
pub struct StreamingSelect {
    digits: Vec<(u32, u32)>,
    pass: usize,
    rank: usize,
    prefix: Option<u64>,
    hist: Vec<usize>,
    at_key: usize,
}

#[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // used by io only
impl StreamingSelect {
    /// A selection of the `k` smallest magnitudes of element type `T`
    /// (`k` must not exceed the number of candidates fed).
    pub fn new<T: PruneFloat>(k: usize) -> Self {
        let digits = if k == 0 {
            Vec::new()
        } else {
            digits(T::KEY_BITS)
        };
        let hist = vec![0; digits.first().map_or(0, |&(_, w)| 1usize << w)];
        StreamingSelect {
            digits,
            pass: 0,
            rank: k,
            prefix: None,
            hist,
            at_key: 0,
        }
    }

    /// Whether another pass over all tensors is needed.
    pub fn pending(&self) -> bool {
        self.pass < self.digits.len()
    }

    /// Counts one tensor in the current pass: its scores and, if it was
    /// pruned before, its mask (entries at 1 are the candidates).
    pub fn feed<T: PruneFloat>(&mut self, scores: &[T], mask: Option<&[T]>) {
        let Some(&digit) = self.digits.get(self.pass) else {
            return;
        };
        let open = mask.map_or(Open::All, Open::Dense);
        let h = digit_histogram(&[scores], &[open], digit, self.prefix);
        self.hist.iter_mut().zip(&h).for_each(|(t, c)| *t += c);
    }

    /// The digit the current pass counts, as (shift, width) of the key's
    /// bits; `None` once all passes are done.
    pub(crate) fn current_digit(&self) -> Option<(u32, u32)> {
        self.digits.get(self.pass).copied()
    }

    /// The high digits of the cut fixed by the passes so far.
    pub(crate) fn prefix(&self) -> Option<u64> {
        self.prefix
    }

    /// Counts `count` candidates into `bucket` of the current pass's
    /// histogram, without feeding them (their digit known otherwise).
    pub(crate) fn add_to_bucket(&mut self, bucket: usize, count: usize) {
        self.hist[bucket] += count;
    }

    /// How many entries of `scores` (the candidates among them: `open`)
    /// have the cut's magnitude, after all passes (0 before).
    pub(crate) fn count_tied<T: PruneFloat>(&self, scores: &[T], open: Option<&[bool]>) -> usize {
        if self.digits.is_empty() || self.pending() {
            return 0;
        }
        let Some(c) = self.prefix else { return 0 };
        match open {
            None => scores.iter().filter(|x| x.magnitude_key() == c).count(),
            Some(m) => scores
                .iter()
                .zip(m)
                .filter(|(x, &o)| o && x.magnitude_key() == c)
                .count(),
        }
    }

    /// Appends to `out` whether each entry of `scores` stays, after all
    /// passes (`open`: whether it is a candidate; pruned before otherwise):
    /// the flags [`StreamingSelect::mask_for`] makes ones.
    pub(crate) fn keep_flags<T: PruneFloat>(
        &self,
        scores: &[T],
        open: Option<&[bool]>,
        ties_left: &mut usize,
        out: &mut Vec<bool>,
    ) {
        let at = out.len();
        out.resize(at + scores.len(), false);
        self.keep_into(scores, open, ties_left, &mut out[at..]);
    }

    /// [`StreamingSelect::keep_flags`] into `out[..scores.len()]`.
    pub(crate) fn keep_into<T: PruneFloat>(
        &self,
        scores: &[T],
        open: Option<&[bool]>,
        ties_left: &mut usize,
        out: &mut [bool],
    ) {
        let out = &mut out[..scores.len()];
        let cut = if self.digits.is_empty() || self.pending() {
            None
        } else {
            self.prefix
        };
        let Some(c) = cut else {
            // Nothing is pruned: the candidates stay.
            match open {
                None => out.fill(true),
                Some(m) => out.copy_from_slice(&m[..scores.len()]),
            }
            return;
        };
        // Without branches on the values: which entries go is as random
        // as the values are, and a mispredicted branch per entry would
        // cost more than the rest of the loop. Where no tie goes, or every
        // one of them, no count runs from entry to entry.
        let mut left = *ties_left;
        if left == 0 || left >= scores.len() {
            let all = left > 0;
            let mut tied = 0usize;
            match open {
                None => out.iter_mut().zip(scores).for_each(|(o, x)| {
                    let key = x.magnitude_key();
                    tied += usize::from(key == c);
                    *o = !((key < c) | (all & (key == c)));
                }),
                Some(m) => out
                    .iter_mut()
                    .zip(scores.iter().zip(m))
                    .for_each(|(o, (x, &k))| {
                        let key = x.magnitude_key();
                        tied += usize::from(k & (key == c));
                        *o = k & !((key < c) | (all & (key == c)));
                    }),
            }
            if all {
                *ties_left = left - tied;
            }
            return;
        }
        let mut step = |open: bool, x: &T| {
            let key = x.magnitude_key();
            let tie = open & (key == c) & (left > 0);
            left -= usize::from(tie);
            open & !((key < c) | tie)
        };
        match open {
            None => out
                .iter_mut()
                .zip(scores)
                .for_each(|(o, x)| *o = step(true, x)),
            Some(m) => out
                .iter_mut()
                .zip(scores.iter().zip(m))
                .for_each(|(o, (x, &k))| *o = step(k, x)),
        }
        *ties_left = left;
    }

    /// Passes still to make (counting the current one).
    pub(crate) fn passes_left(&self) -> usize {
        self.digits.len().saturating_sub(self.pass)
    }

    /// Adds a histogram of the current pass's digit, counted elsewhere
    /// (over candidates whose higher digits equal [`StreamingSelect::prefix`]),
    /// as [`StreamingSelect::feed`] would have counted it.
    pub(crate) fn add_histogram(&mut self, counts: &[usize]) {
        self.hist.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
    }

    /// Ends the current pass: fixes one more digit of the cut.
    pub fn end_pass(&mut self) {
        let Some(&(_, width)) = self.digits.get(self.pass) else {
            return;
        };
        let mut below = 0;
        for (bucket, &count) in self.hist.iter().enumerate() {
            if below + count >= self.rank {
                self.prefix = Some((self.prefix.unwrap_or(0) << width) | bucket as u64);
                self.rank -= below;
                self.at_key = count;
                break;
            }
            below += count;
        }
        self.pass += 1;
        let next = self.digits.get(self.pass).map_or(0, |&(_, w)| 1usize << w);
        self.hist = vec![0; next];
    }

    /// How many candidates have the cut's magnitude (once every pass is
    /// done; 0 when nothing is pruned). Where `0 < ties() < tied()`, equal
    /// magnitudes straddle the cut, and which of them are pruned is a
    /// matter of the tie rule.
    ///
    /// ```
    /// use ndprune::select::StreamingSelect;
    /// let mut s = StreamingSelect::new::<f32>(2);
    /// while s.pending() {
    ///     s.feed(&[1.0f32, 1.0, 1.0, 5.0], None);
    ///     s.end_pass();
    /// }
    /// assert_eq!((s.ties(), s.tied()), (2, 3));
    /// ```
    pub fn tied(&self) -> usize {
        if self.digits.is_empty() {
            0
        } else {
            self.at_key
        }
    }

    /// How many candidates equal to the cut go (to pass to
    /// [`StreamingSelect::mask_for`], which counts it down).
    pub fn ties(&self) -> usize {
        if self.digits.is_empty() {
            0
        } else {
            self.rank
        }
    }

    /// The new 0/1 mask of one tensor, after all passes: candidates below
    /// the cut go, and so do candidates at the cut while `ties_left` lasts.
    /// Feed the tensors in the same order as in the passes.
    pub fn mask_for<T: PruneFloat>(
        &self,
        scores: &[T],
        mask: Option<&[T]>,
        ties_left: &mut usize,
    ) -> Vec<T> {
        let cut = if self.digits.is_empty() || self.pending() {
            None
        } else {
            self.prefix
        };
        scores
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let open = mask.is_none_or(|m| m[i] == T::one());
                if !open {
                    return T::zero();
                }
                let key = x.magnitude_key();
                let pruned = match cut {
                    Some(c) if key < c => true,
                    Some(c) if key == c && *ties_left > 0 => {
                        *ties_left -= 1;
                        true
                    }
                    _ => false,
                };
                if pruned {
                    T::zero()
                } else {
                    T::one()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::{prune_smallest, MaskSlot, TieBreak};

    #[test]
    fn streaming_matches_the_in_memory_selection_lowest_index_first() {
        let a: Vec<f32> = (0..300)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..200)
            .map(|i| ((i * 11 % 53) as f32 - 26.0) / 4.0)
            .collect();
        let mut b_mask = vec![1.0f32; 200];
        b_mask.iter_mut().step_by(3).for_each(|m| *m = 0.0);
        let open = 300 + b_mask.iter().filter(|&&m| m == 1.0).count();
        for k in [0, 1, 77, 250, open] {
            let mut select = StreamingSelect::new::<f32>(k);
            while select.pending() {
                select.feed(&a, None);
                select.feed(&b, Some(&b_mask));
                select.end_pass();
            }
            let mut ties = select.ties();
            let got_a = select.mask_for(&a, None, &mut ties);
            let got_b = select.mask_for(&b, Some(&b_mask), &mut ties);
            let mut want_a = vec![0.0f32; 300];
            let mut want_b = b_mask.clone();
            prune_smallest(
                &[&a, &b],
                &mut [
                    MaskSlot::Fresh(&mut want_a),
                    MaskSlot::Existing(&mut want_b),
                ],
                k,
                TieBreak::LowestIndex,
            );
            assert_eq!((got_a, got_b), (want_a, want_b), "k={k}");
        }
    }
}
