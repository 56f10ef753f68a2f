//! Structured masks: reading and writing whole channels, walking memory in
//! order through the `[outer, channels, inner]` view around the channel dim.

use ndarray::ArrayD;

use super::{flat, flat_mut, MaskState};
use crate::{par, PruneFloat};

/// `(outer, channels, inner)`: the tensor seen as `[outer, channels, inner]`
/// around `dim`.
pub(crate) fn view3(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

/// Which channels along `dim` still hold a 1 somewhere in the mask.
pub(crate) fn live_channels<T: PruneFloat>(mask: &ArrayD<T>, dim: usize) -> Vec<bool> {
    let (_, channels, inner) = view3(mask.shape(), dim);
    let mut live = vec![false; channels];
    if channels == 0 || inner == 0 {
        return live;
    }
    for slab in flat(mask).chunks_exact(channels * inner) {
        for (l, run) in live.iter_mut().zip(slab.chunks_exact(inner)) {
            *l = *l || run.iter().any(|&m| m != T::zero());
        }
    }
    live
}

/// The channels a structured method may prune: all of them on a first
/// pruning, those still holding a 1 on a later one.
pub(crate) fn open_channels<T: PruneFloat>(
    mask: &ArrayD<T>,
    dim: usize,
    state: MaskState,
) -> Vec<bool> {
    match state {
        MaskState::Fresh => vec![true; mask.shape()[dim]],
        MaskState::Existing => live_channels(mask, dim),
    }
}

/// Writes a structured mask along `dim`: a fresh mask gets 1 for the kept
/// channels and 0 elsewhere (every entry written); an existing mask gets
/// the dropped channels zeroed and the rest left as they are.
pub(crate) fn write_channels<T: PruneFloat>(
    mask: &mut ArrayD<T>,
    dim: usize,
    keep: &[bool],
    fresh: bool,
) {
    let (_, channels, inner) = view3(mask.shape(), dim);
    if channels == 0 || inner == 0 {
        return;
    }
    let put = |run: &mut [T], c: usize| {
        if fresh {
            run.fill(if keep[c] { T::one() } else { T::zero() });
        } else if !keep[c] {
            run.fill(T::zero());
        }
    };
    let data = flat_mut(mask);
    if inner == 1 {
        // Channels are the last dim: walk whole rows.
        let rows_per_block = (par::CHUNK / channels).max(1);
        par::for_blocks_mut(data, rows_per_block * channels, |_, block| {
            for row in block.chunks_mut(channels) {
                for (c, v) in row.iter_mut().enumerate() {
                    put(std::slice::from_mut(v), c);
                }
            }
        });
    } else {
        // Runs of `inner` entries, run r belonging to channel r mod channels.
        let runs_per_block = (par::CHUNK / inner).max(1);
        par::for_blocks_mut(data, runs_per_block * inner, |offset, block| {
            let first_run = offset / inner;
            for (j, run) in block.chunks_mut(inner).enumerate() {
                put(run, (first_run + j) % channels);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;

    #[test]
    fn writes_match_index_axis_for_every_dim() {
        let shape = vec![3, 4, 5];
        for dim in 0..3 {
            let c = shape[dim];
            let keep: Vec<bool> = (0..c).map(|i| i % 2 == 0).collect();
            let mut fresh = ArrayD::<f32>::from_elem(shape.clone(), 7.0);
            write_channels(&mut fresh, dim, &keep, true);
            let mut existing = ArrayD::<f32>::ones(shape.clone());
            existing[[0, 0, 0]] = 0.0;
            write_channels(&mut existing, dim, &keep, false);
            for (ch, &kept) in keep.iter().enumerate() {
                let f = fresh.index_axis(Axis(dim), ch);
                assert!(f.iter().all(|&v| v == if kept { 1.0 } else { 0.0 }));
                let e = existing.index_axis(Axis(dim), ch);
                assert!(kept || e.iter().all(|&v| v == 0.0));
            }
            assert_eq!(existing[[0, 0, 0]], 0.0);
            assert_eq!(live_channels(&fresh, dim), keep);
        }
    }
}
