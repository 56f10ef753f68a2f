//! Parallel loops over fixed chunks.
//!
//! Work is always split the same way, whatever the number of threads, and
//! floating-point partial results are combined in chunk order, so every
//! result is identical with 1 thread or with many. Without the `rayon`
//! feature the same chunks run one after another.

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// Elements per chunk of an elementwise pass (a multiple of 64, so that
/// chunks of a tensor start on a word of its bit mask).
pub(crate) const CHUNK: usize = 1 << 16;

/// Below this many elements a pass runs on the calling thread.
#[cfg(feature = "rayon")]
const PARALLEL_FROM: usize = 1 << 18;

/// `f(i)` for `i in 0..n`, in order.
pub(crate) fn map_ordered<R: Send>(
    n: usize,
    work: usize,
    f: impl Fn(usize) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "rayon")]
    if work >= PARALLEL_FROM {
        return (0..n).into_par_iter().map(f).collect();
    }
    let _ = work;
    (0..n).map(f).collect()
}

/// Calls `f(offset, out_chunk)` on consecutive chunks of `out`.
pub(crate) fn for_chunks_mut<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
    for_blocks_mut(out, CHUNK, f);
}

/// Calls `f(offset, block)` on consecutive blocks of `block` elements of
/// `out` (the last may be shorter).
pub(crate) fn for_blocks_mut<T: Send>(
    out: &mut [T],
    block: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    for_weighted_blocks_mut(out, block, 1, f);
}

/// [`for_blocks_mut`] where each element of `out` stands for `weight`
/// elements of work (a word of a bit mask: 64), which decides whether the
/// blocks run in parallel.
pub(crate) fn for_weighted_blocks_mut<T: Send>(
    out: &mut [T],
    block: usize,
    weight: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let block = block.max(1);
    #[cfg(feature = "rayon")]
    if out.len().saturating_mul(weight) >= PARALLEL_FROM {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(i, c)| f(i * block, c));
        return;
    }
    let _ = weight;
    for (i, c) in out.chunks_mut(block).enumerate() {
        f(i * block, c);
    }
}

/// `f(i, a_block, b_block)` over consecutive blocks: the `i`-th block
/// of `block` elements of `a` with the `i`-th of `block * per` elements of
/// `b` (the last ones may be shorter); the results in order.
#[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // used by io only
pub(crate) fn map_blocks_mut2<A: Send, B: Send, R: Send>(
    a: &mut [A],
    b: &mut [B],
    block: usize,
    per: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) -> R + Sync + Send,
) -> Vec<R> {
    let block = block.max(1);
    let per = per.max(1);
    #[cfg(feature = "rayon")]
    if a.len() >= PARALLEL_FROM {
        return a
            .par_chunks_mut(block)
            .zip(b.par_chunks_mut(block * per))
            .enumerate()
            .map(|(i, (x, y))| f(i, x, y))
            .collect();
    }
    a.chunks_mut(block)
        .zip(b.chunks_mut(block * per))
        .enumerate()
        .map(|(i, (x, y))| f(i, x, y))
        .collect()
}

/// How many threads the parallel loops use.
#[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // used by io only
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    1
}

/// Sums `f(offset, chunk, counters)` over consecutive chunks of `data` into
/// a vector of `len` integer counters (integer sums: any order gives the
/// same result). Each thread's share is cut into a few parts, each counting
/// into its own vector, so that only a few vectors are made.
pub(crate) fn count_into<T: Sync>(
    data: &[T],
    len: usize,
    f: impl Fn(usize, &[T], &mut [usize]) + Sync + Send,
) -> Vec<usize> {
    let count_part = |start: usize, part: &[T]| {
        let mut acc = vec![0usize; len];
        for (i, c) in part.chunks(CHUNK).enumerate() {
            f(start + i * CHUNK, c, &mut acc);
        }
        acc
    };
    #[cfg(feature = "rayon")]
    if data.len() >= PARALLEL_FROM {
        let parts = 4 * rayon::current_num_threads();
        let part = data.len().div_ceil(parts).div_ceil(CHUNK) * CHUNK;
        return data
            .par_chunks(part)
            .enumerate()
            .map(|(i, p)| count_part(i * part, p))
            .reduce(
                || vec![0usize; len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
    }
    count_part(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_once() {
        let mut v = vec![0u32; 3 * CHUNK + 17];
        for_chunks_mut(&mut v, |off, c| {
            for (j, x) in c.iter_mut().enumerate() {
                *x = (off + j) as u32;
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| x as usize == i));
        let counts = count_into(&v, 2, |_, c, acc| {
            for &x in c {
                acc[(x % 2) as usize] += 1;
            }
        });
        assert_eq!(counts[0] + counts[1], v.len());
        assert_eq!(map_ordered(5, 0, |i| i * 2), vec![0, 2, 4, 6, 8]);
    }
}
