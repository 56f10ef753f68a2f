//! The exact choice `torch.topk` makes on the CPU, ties included.
//!
//! PyTorch's CPU `topk` fills a vector of `(value, index)` pairs in index
//! order and runs the C++ standard library's `partial_sort` (when
//! `64·k ≤ n`) or `nth_element` on it with a comparator that looks at the
//! values only (NaN above everything). Among equal values the set it
//! returns is therefore decided by how those algorithms move elements. This
//! module replays the GNU libstdc++ algorithms PyTorch's Linux builds use,
//! step for step, so that ndprune's choice among equal scores is PyTorch's.
//! It is checked against `torch.topk` itself in `tests/torch_topk.rs`.

/// Indices (in increasing order) of the `k` entries `torch.topk(values, k,
/// largest)` returns on the CPU, where `keys` are order-preserving keys of
/// the values (equal values, equal keys; NaN the largest key). `None` when
/// there are more than `u32::MAX` entries.
pub(crate) fn topk_indices<K: Copy + Ord>(
    keys: impl Iterator<Item = K>,
    k: usize,
    largest: bool,
) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = topk_queue(keys, 0, k, largest)?
        .iter()
        .map(|e| e.1 as usize)
        .collect();
    out.sort_unstable();
    Some(out)
}

/// The `k` `(key, index)` pairs `torch.topk` keeps, in the order its
/// algorithm leaves them: the queue itself, cut to `k`, so that no second
/// buffer is needed. `len` is the number of keys, when known (0 if not).
pub(crate) fn topk_queue<K: Copy + Ord>(
    keys: impl Iterator<Item = K>,
    len: usize,
    k: usize,
    largest: bool,
) -> Option<Vec<(K, u32)>> {
    let mut queue = Vec::with_capacity(len.max(keys.size_hint().0));
    for (i, key) in keys.enumerate() {
        queue.push((key, u32::try_from(i).ok()?));
    }
    let n = queue.len();
    let k = k.min(n);
    if k == 0 {
        queue.clear();
        return Some(queue);
    }
    let less = |a: &(K, u32), b: &(K, u32)| if largest { a.0 > b.0 } else { a.0 < b.0 };
    if k * 64 <= n {
        heap_select(&mut queue, k, &less);
    } else {
        nth_element(&mut queue, k - 1, &less);
    }
    queue.truncate(k);
    Some(queue)
}

/// An integer key type for [`smallest_tied`]: `u32` for keys of up to 32
/// bits, `u64` for wider ones.
pub(crate) trait Code: Copy + Ord + TryFrom<u64> + Into<u64> {
    /// The largest value.
    const MAX: Self;
}

impl Code for u32 {
    const MAX: Self = u32::MAX;
}

impl Code for u64 {
    const MAX: Self = u64::MAX;
}

/// Which entries whose key is `tie` are among the `k` that
/// `torch.topk(values, k, largest=False)` returns, as ordinals among those
/// tied entries (in increasing order). `keys` are the candidates' keys of
/// `key_bits` bits, in order: each below `2^(key_bits - 1)`, or all ones
/// (NaN).
///
/// The same replay as [`topk_queue`], on keys alone (4 bytes a candidate
/// for 32-bit keys instead of 8): the algorithms only compare and move
/// entries, so each tied entry is given a code of its own from the range
/// no key uses, which compares as `tie` and says which entry it is. `None`
/// when there are more tied entries than such codes, or more candidates
/// than `u32` indexes.
pub(crate) fn smallest_tied<K: Code>(
    keys: impl Iterator<Item = u64>,
    len: usize,
    key_bits: u32,
    k: usize,
    tie: u64,
) -> Option<Vec<usize>> {
    let code_bits = 8 * std::mem::size_of::<K>() as u32;
    // Free codes: from 2^(key_bits - 1) when keys fill the type (their top
    // bit is clear but for NaN), else from 2^key_bits; up to MAX - 1.
    let spare_lo: u64 = if key_bits >= code_bits {
        1 << (code_bits - 1)
    } else {
        1 << key_bits
    };
    let spare_hi: u64 = K::MAX.into() - 1;
    let mut next = spare_lo;
    let mut codes: Vec<K> = Vec::with_capacity(len);
    for key in keys {
        let code = if key == tie {
            if next > spare_hi {
                return None;
            }
            next += 1;
            next - 1
        } else {
            key
        };
        codes.push(K::try_from(code).ok()?);
    }
    let n = codes.len();
    u32::try_from(n).ok()?;
    let k = k.min(n);
    if k == 0 {
        return Some(Vec::new());
    }
    let (lo, hi, tie) = (
        K::try_from(spare_lo).ok()?,
        K::try_from(spare_hi).ok()?,
        K::try_from(tie).ok()?,
    );
    let value = |x: K| if lo <= x && x <= hi { tie } else { x };
    let less = |a: &K, b: &K| value(*a) < value(*b);
    if k * 64 <= n {
        heap_select(&mut codes, k, &less);
    } else {
        nth_element(&mut codes, k - 1, &less);
    }
    let mut chosen: Vec<usize> = codes[..k]
        .iter()
        .filter(|&&c| lo <= c && c <= hi)
        .map(|&c| (c.into() - spare_lo) as usize)
        .collect();
    chosen.sort_unstable();
    Some(chosen)
}

/// `std::nth_element` (libstdc++ `__introselect`).
fn nth_element<E: Copy>(v: &mut [E], nth: usize, less: &impl Fn(&E, &E) -> bool) {
    let (mut first, mut last) = (0usize, v.len());
    if first == last || nth == last {
        return;
    }
    let mut depth = 2 * v.len().ilog2();
    while last - first > 3 {
        if depth == 0 {
            heap_select(&mut v[first..last], nth + 1 - first, less);
            v.swap(first, nth);
            return;
        }
        depth -= 1;
        let cut = if last - first >= BLOCKED_FROM {
            partition_pivot_blocked(v, first, last, less)
        } else {
            partition_pivot(v, first, last, less)
        };
        if cut <= nth {
            first = cut;
        } else {
            last = cut;
        }
    }
    insertion_sort(&mut v[first..last], less);
}

/// `__unguarded_partition_pivot`: median of three moved to `first`, then an
/// unguarded Hoare partition of `first + 1 .. last` around it.
fn partition_pivot<E: Copy>(
    v: &mut [E],
    first: usize,
    last: usize,
    less: &impl Fn(&E, &E) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    let (mut lo, mut hi) = (first + 1, last);
    loop {
        while less(&v[lo], &v[first]) {
            lo += 1;
        }
        hi -= 1;
        while less(&v[first], &v[hi]) {
            hi -= 1;
        }
        if lo >= hi {
            return lo;
        }
        v.swap(lo, hi);
        lo += 1;
    }
}

/// Ranges at least this long are partitioned by [`partition_pivot_blocked`].
const BLOCKED_FROM: usize = 1024;

/// Positions a scanner of [`partition_pivot_blocked`] examines at a time.
const BLOCK: usize = 256;

/// The same result as [`partition_pivot`], entry for entry, without its
/// data-dependent branches.
///
/// Hoare's unguarded partition swaps the `t`-th entry from the left that
/// does not belong left of the pivot (`L_t`, by original values) with the
/// `t`-th from the right that does not belong right of it (`R_t`), for as
/// long as `L_t < R_t`, and returns `min(L_t, R_{t-1})` for the first `t`
/// where that fails (the left scan stops at the last swapped position at
/// the latest, which now holds a left stopper; the right scan stops at the
/// last swapped left position, or at the pivot). The scanners here find
/// the `L_t` and `R_t` a block at a time (recording every position and
/// advancing by the comparison's outcome, as BlockQuicksort does), each
/// reading only positions the other side has not swapped yet.
fn partition_pivot_blocked<E: Copy>(
    v: &mut [E],
    first: usize,
    last: usize,
    less: &impl Fn(&E, &E) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    let pivot = v[first];
    // Left scanner: positions from `li` up, stoppers are !(x < pivot).
    let (mut left, mut l_at, mut l_len, mut li) = ([0usize; BLOCK], 0usize, 0usize, first + 1);
    // Right scanner: positions from `rj - 1` down, stoppers are !(pivot < x).
    let (mut right, mut r_at, mut r_len, mut rj) = ([0usize; BLOCK], 0usize, 0usize, last);
    // The last swapped pair: the scans' bounds.
    let (mut l_prev, mut r_prev) = (first, last);
    loop {
        while l_at == l_len && li < r_prev {
            // Refill from positions the right side has not swapped.
            let end = (li + BLOCK).min(r_prev);
            l_at = 0;
            l_len = 0;
            for (i, x) in v[li..end].iter().enumerate() {
                left[l_len] = li + i;
                l_len += usize::from(!less(x, &pivot));
            }
            li = end;
        }
        let Some(&l) = left[..l_len].get(l_at) else {
            // No stopper before the last swapped right position.
            return r_prev;
        };
        l_at += 1;
        let r = loop {
            if r_at < r_len {
                break Some(right[r_at]);
            }
            let start = rj.saturating_sub(BLOCK).max(l_prev + 1);
            if start >= rj {
                break None;
            }
            r_at = 0;
            r_len = 0;
            for j in (start..rj).rev() {
                right[r_len] = j;
                r_len += usize::from(!less(&pivot, &v[j]));
            }
            rj = start;
        };
        match r {
            Some(r) if l < r => {
                r_at += 1;
                v.swap(l, r);
                (l_prev, r_prev) = (l, r);
            }
            _ => return l.min(r_prev),
        }
    }
}

fn move_median_to_first<E: Copy>(
    v: &mut [E],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &impl Fn(&E, &E) -> bool,
) {
    let pick = if less(&v[a], &v[b]) {
        if less(&v[b], &v[c]) {
            b
        } else if less(&v[a], &v[c]) {
            c
        } else {
            a
        }
    } else if less(&v[a], &v[c]) {
        a
    } else if less(&v[b], &v[c]) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

/// `__insertion_sort`.
fn insertion_sort<E: Copy>(v: &mut [E], less: &impl Fn(&E, &E) -> bool) {
    for i in 1..v.len() {
        let val = v[i];
        if less(&val, &v[0]) {
            v.copy_within(0..i, 1);
            v[0] = val;
        } else {
            let mut j = i;
            while less(&val, &v[j - 1]) {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = val;
        }
    }
}

/// `__heap_select`: the first `middle` entries become a max-heap (by
/// `less`) of the `middle` least entries.
fn heap_select<E: Copy>(v: &mut [E], middle: usize, less: &impl Fn(&E, &E) -> bool) {
    make_heap(&mut v[..middle], less);
    for i in middle..v.len() {
        if less(&v[i], &v[0]) {
            // __pop_heap(first, middle, i): v[i] takes the top's place.
            let value = v[i];
            v[i] = v[0];
            adjust_heap(&mut v[..middle], 0, value, less);
        }
    }
}

fn make_heap<E: Copy>(v: &mut [E], less: &impl Fn(&E, &E) -> bool) {
    let len = v.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = v[parent];
        adjust_heap(v, parent, value, less);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

/// `__adjust_heap` with `__push_heap`, over the whole of `v`.
fn adjust_heap<E: Copy>(v: &mut [E], mut hole: usize, value: E, less: &impl Fn(&E, &E) -> bool) {
    let len = v.len();
    let top = hole;
    let mut second = hole;
    while second < len.saturating_sub(1) / 2 {
        second = 2 * (second + 1);
        if less(&v[second], &v[second - 1]) {
            second -= 1;
        }
        v[hole] = v[second];
        hole = second;
    }
    if len & 1 == 0 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        v[hole] = v[second - 1];
        hole = second - 1;
    }
    // __push_heap
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(&v[parent], &value) {
            break;
        }
        v[hole] = v[parent];
        hole = parent;
    }
    v[hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PruneFloat;

    /// Every line of the fixture `torch.topk` itself produced.
    #[test]
    fn replays_torch_topk_on_ties() {
        let text = include_str!("../../tests/fixtures/torch-topk.jsonl");
        let mut checked = 0;
        for line in text.lines() {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let keys: Vec<u64> = case["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32).magnitude_key())
                .collect();
            let k = case["k"].as_u64().unwrap() as usize;
            let largest = case["largest"].as_bool().unwrap();
            let want: Vec<usize> = case["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(
                topk_indices(keys.iter().copied(), k, largest),
                Some(want),
                "n={} k={k} largest={largest}",
                keys.len()
            );
            checked += 1;
        }
        assert!(checked > 300);
    }

    #[test]
    fn the_key_only_replay_picks_what_the_pair_replay_picks() {
        // Heavily tied keys (and NaN), both regimes of topk, both code widths.
        let mut state = 12345u64;
        for n in [1usize, 2, 5, 17, 64, 65, 200, 1000, 5000] {
            for levels in [1u64, 2, 3, 7] {
                let keys: Vec<u64> = (0..n)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match (state >> 33) % (levels + 1) {
                            0 if levels > 2 => u64::from(u32::MAX),
                            l => 1000 + l,
                        }
                    })
                    .collect();
                for k in [1, n / 64, n / 64 + 1, n / 3, n / 2, n] {
                    if k == 0 {
                        continue;
                    }
                    let queue = topk_queue(keys.iter().copied(), n, k, false).unwrap();
                    let mut cut_keys: Vec<u64> = queue.iter().map(|e| e.0).collect();
                    cut_keys.sort_unstable();
                    let tie = *cut_keys.last().unwrap();
                    let ordinals = |picked: Vec<usize>| -> Vec<usize> {
                        let tied: Vec<usize> = (0..n).filter(|&i| keys[i] == tie).collect();
                        picked.into_iter().map(|j| tied[j]).collect()
                    };
                    let mut want: Vec<usize> = queue
                        .iter()
                        .filter(|e| e.0 == tie)
                        .map(|e| e.1 as usize)
                        .collect();
                    want.sort_unstable();
                    let got32 = smallest_tied::<u32>(keys.iter().copied(), n, 32, k, tie).unwrap();
                    assert_eq!(ordinals(got32), want, "u32 n={n} k={k}");
                    let wide: Vec<u64> = keys
                        .iter()
                        .map(|&x| {
                            if x == u64::from(u32::MAX) {
                                u64::MAX
                            } else {
                                x
                            }
                        })
                        .collect();
                    let wide_tie = if tie == u64::from(u32::MAX) {
                        u64::MAX
                    } else {
                        tie
                    };
                    let got64 = smallest_tied::<u64>(wide.into_iter(), n, 64, k, wide_tie).unwrap();
                    assert_eq!(ordinals(got64), want, "u64 n={n} k={k}");
                }
            }
        }
    }

    #[test]
    fn the_blocked_partition_moves_entries_as_hoares_does() {
        // Same array and same cut as the libstdc++ partition, on tie-heavy,
        // sorted, reversed and random inputs of many lengths.
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for n in [
            4usize, 5, 7, 64, 255, 256, 257, 511, 1000, 1024, 3000, 20_000,
        ] {
            for shape in 0..5 {
                let base: Vec<(u64, u32)> = (0..n)
                    .map(|i| {
                        let key = match shape {
                            0 => next() % 3,
                            1 => next() % 1000,
                            2 => i as u64,
                            3 => (n - i) as u64,
                            _ => next(),
                        };
                        (key, i as u32)
                    })
                    .collect();
                let less = |a: &(u64, u32), b: &(u64, u32)| a.0 < b.0;
                for (first, last) in [(0, n), (1, n), (0, n - 1), (n / 3, n)] {
                    if last - first < 4 {
                        continue;
                    }
                    let mut a = base.clone();
                    let mut b = base.clone();
                    let ca = partition_pivot(&mut a, first, last, &less);
                    let cb = partition_pivot_blocked(&mut b, first, last, &less);
                    assert_eq!(ca, cb, "cut, n={n} shape={shape} range={first}..{last}");
                    assert!(a == b, "entries, n={n} shape={shape} range={first}..{last}");
                }
            }
        }
    }

    #[test]
    fn distinct_values_give_the_k_extremes() {
        let keys: Vec<u64> = (0..200).map(|i| (i * 7919 % 200) as u64).collect();
        for k in [0, 1, 2, 3, 4, 50, 199, 200] {
            let small = topk_indices(keys.iter().copied(), k, false).unwrap();
            assert_eq!(small.len(), k);
            assert!(small.iter().all(|&i| keys[i] < k as u64));
            let large = topk_indices(keys.iter().copied(), k, true).unwrap();
            assert!(large.iter().all(|&i| keys[i] >= (200 - k) as u64));
        }
    }
}
