//! `NmStructured`: N:M semi-structured sparsity (2:4, 4:8, ...).

use ndarray::{ArrayD, ArrayViewD};

use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::channels::view3;
use crate::mask::segments::{for_segments_bits, for_segments_dense, SegmentMask, SegmentWork};
use crate::mask::{flat_mut, set_run, Mask, MaskState};
use crate::select::smallest_in_group;
use crate::{Dim, PruneError, PruneErrorKind, PruneFloat, PruningStep, TieBreak};

/// Keeps, in every group of `m` consecutive entries along `dim`, the `n`
/// of largest magnitude (of the importance scores if given, else of the
/// tensor): the N:M pattern that sparse tensor cores run (2:4 on NVIDIA's
/// Ampere and later).
///
/// ```text
/// groups:  entries (.., g·m .. g·m + m, ..) along dim, the other indices fixed
/// kept:    the n largest |score| of each group's live entries
/// ```
///
/// * **Default dim:** give `Dim(1)`, the input dim of a Linear `[out, in]`
///   or a conv `[out, in, kh, kw]` weight (NVIDIA ASP's grouping and
///   `torch.ao`'s `sparse_block_shape = (1, m)` on a Linear).
/// * **Length not a multiple of `m`:** a typed error
///   ([`PruneErrorKind::IndivisibleGroups`]). `torch.ao` pads the tensor,
///   but then hands back a mask of the padded shape that no longer fits
///   the weight (and its `zeros_per_block < block size` path with a
///   sparsity level below 1 fails outright), and the hardware N:M
///   kernels need whole groups anyway.
/// * **Ties** (equal magnitudes across the cut of a group): by default
///   the entries `torch.topk(group, m - n, largest=False)` returns on the
///   CPU are pruned, so a mask equals `torch.ao`'s even on ties;
///   [`TieBreak::LowestIndex`] prunes the lower index first. Either is a
///   function of the scores alone.
/// * **NaN** ranks above every number (kept first); `-0.0` equals `0.0`.
/// * **Later calls:** an entry pruned before stays pruned and counts as
///   one of the group's pruned entries (it ranks below every live entry),
///   so a group with at most `n` live entries is left as it is, and every
///   group keeps at most `n` after any number of calls. The method's kind
///   is [`PruningKind::Global`]: it sees the whole tensor and its mask.
///
/// Work: one pass over the scores, `O(m)` per entry for `m ≤ 16` and
/// `O(1)` expected per entry above, in parallel chunks with the same
/// result on any number of threads; the mask is held as one bit an entry.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let w = array![[0.1f32, -3.0, 0.2, 2.0, 5.0, 0.0, -1.0, 0.3]].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// prune::apply(&mut layer, "weight", &NmStructured::new(2, 4, Dim(1))?, None)?;
/// assert_eq!(
///     layer.buffer("weight_mask").unwrap(),
///     &array![[0.0f32, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]].into_dyn()
/// );
/// // 1:4 next: one of the two kept in each group stays.
/// prune::apply(&mut layer, "weight", &NmStructured::new(1, 4, Dim(1))?, None)?;
/// assert_eq!(
///     layer.buffer("weight_mask").unwrap(),
///     &array![[0.0f32, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]].into_dyn()
/// );
/// assert!(NmStructured::new(5, 4, Dim(1)).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmStructured {
    n: usize,
    m: usize,
    dim: Dim,
    ties: TieBreak,
}

impl NmStructured {
    /// Keep `n` of every `m` consecutive entries along `dim`; fails for
    /// `m == 0`, `n > m` or `m > u32::MAX`
    /// ([`PruneErrorKind::InvalidNm`]). `n == m` prunes nothing, `n == 0`
    /// everything.
    ///
    /// ```
    /// use ndprune::{Dim, NmStructured};
    /// assert!(NmStructured::new(2, 4, Dim(1)).is_ok());
    /// assert!(NmStructured::new(4, 8, Dim(-1)).is_ok());
    /// assert!(NmStructured::new(1, 0, Dim(1)).is_err());
    /// ```
    pub fn new(n: usize, m: usize, dim: Dim) -> Result<Self, PruneError> {
        if m == 0 || n > m || u32::try_from(m).is_err() {
            return Err(PruneErrorKind::InvalidNm { n, m }.into());
        }
        Ok(NmStructured {
            n,
            m,
            dim,
            ties: TieBreak::Torch,
        })
    }

    /// The same method with another rule for equal magnitudes at the cut
    /// of a group (default [`TieBreak::Torch`]).
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use ndprune::TieBreak;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let m = NmStructured::new(2, 4, Dim(0))?.with_tie_break(TieBreak::LowestIndex);
    /// let t = array![1.0f32, 1.0, 1.0, 1.0].into_dyn();
    /// let mask = m.compute_mask(t.view(), ndarray::ArrayD::ones(vec![4]).view())?;
    /// assert_eq!(mask, array![0.0f32, 0.0, 1.0, 1.0].into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn with_tie_break(self, ties: TieBreak) -> Self {
        NmStructured { ties, ..self }
    }

    /// Entries kept per group.
    ///
    /// ```
    /// assert_eq!(ndprune::NmStructured::new(2, 4, ndprune::Dim(1)).unwrap().n(), 2);
    /// ```
    pub fn n(&self) -> usize {
        self.n
    }

    /// Entries per group.
    ///
    /// ```
    /// assert_eq!(ndprune::NmStructured::new(2, 4, ndprune::Dim(1)).unwrap().m(), 4);
    /// ```
    pub fn m(&self) -> usize {
        self.m
    }

    /// The dim the groups lie along.
    ///
    /// ```
    /// use ndprune::{Dim, NmStructured};
    /// assert_eq!(NmStructured::new(2, 4, Dim(1)).unwrap().dim(), Dim(1));
    /// ```
    pub fn dim(&self) -> Dim {
        self.dim
    }

    /// The resolved dim, its `inner` stride and segment length, checked
    /// against `shape` and the scores' shape.
    fn layout(&self, shape: &[usize], scores: &[usize]) -> Result<(usize, usize), PruneError> {
        super::check_scores_shape(scores, shape)?;
        let d = self.dim.resolve(shape.len())?;
        let (_, len, inner) = view3(shape, d);
        if len % self.m != 0 {
            return Err(PruneErrorKind::IndivisibleGroups {
                shape: shape.to_vec(),
                dim: d,
                len,
                group: self.m,
            }
            .into());
        }
        let unit = self.m.saturating_mul(inner).max(1);
        Ok((inner, unit.saturating_mul((SEGMENT / unit).max(1))))
    }
}

/// The per-segment work: a segment is a whole number of units, a unit
/// `m` runs of `inner` entries (the channels `g·m .. g·m + m` at one
/// outer index) holding `inner` groups.
struct Groups<'a, T> {
    scores: &'a [T],
    n: usize,
    m: usize,
    inner: usize,
    seg: usize,
    ties: TieBreak,
}

/// Entries per segment handed to a worker at a time (whole units).
const SEGMENT: usize = 4096;

impl<T: PruneFloat> SegmentWork for Groups<'_, T> {
    fn run<S: SegmentMask>(&self, segment: usize, len: usize, mask: &mut S) {
        let (m, inner) = (self.m, self.inner);
        let unit = m * inner;
        let base = segment * self.seg;
        let scores = &self.scores[base..base + len];
        let mut small_keys = [0u64; 16];
        let mut small_pruned = [false; 16];
        let mut big_keys = Vec::new();
        let mut big_pruned = Vec::new();
        let (keys, pruned): (&mut [u64], &mut [bool]) = if m <= 16 {
            (&mut small_keys[..m], &mut small_pruned[..m])
        } else {
            big_keys.resize(m, 0);
            big_pruned.resize(m, false);
            (&mut big_keys, &mut big_pruned)
        };
        let k = m - self.n;
        for (u, i) in (0..len / unit).flat_map(|u| (0..inner).map(move |i| (u, i))) {
            let first = u * unit + i;
            let mut live = 0;
            for (j, key) in keys.iter_mut().enumerate() {
                let at = first + j * inner;
                *key = if mask.live(at) {
                    live += 1;
                    // Pruned entries take key 0, below every live one.
                    scores[at].magnitude_key().saturating_add(1)
                } else {
                    0
                };
            }
            if live <= self.n {
                continue;
            }
            if m <= 16 {
                let keep = kept_bits(keys, k, self.ties, pruned);
                for j in 0..m {
                    if keep >> j & 1 == 0 {
                        mask.prune(first + j * inner);
                    }
                }
                continue;
            }
            smallest_in_group(keys, k, self.ties, pruned);
            for (j, &p) in pruned.iter().enumerate() {
                if p {
                    mask.prune(first + j * inner);
                }
            }
        }
    }
}

impl NmStructured {
    fn work<'a, T: PruneFloat>(&self, scores: &'a [T], inner: usize, seg: usize) -> Groups<'a, T> {
        Groups {
            scores,
            n: self.n,
            m: self.m,
            inner,
            seg,
            ties: self.ties,
        }
    }
}

impl NmStructured {
    /// A first pruning whose groups are runs of `m ≤ 16` entries: the kept
    /// bits written straight into zeroed words, nothing read but the
    /// scores (the same masks as the general path).
    fn fresh_contiguous<T: PruneFloat>(&self, scores: &[T], bits: &mut [u64]) {
        match self.m {
            2 => self.fresh_groups::<T, 2>(scores, bits),
            4 => self.fresh_groups::<T, 4>(scores, bits),
            8 => self.fresh_groups::<T, 8>(scores, bits),
            16 => self.fresh_groups::<T, 16>(scores, bits),
            _ => self.fresh_any(scores, bits),
        }
    }

    /// [`NmStructured::fresh_contiguous`] for a group size `M` known at
    /// compile time that divides 64, so a group never straddles a word of
    /// the mask: [`kept_bits`] unrolled, and a group's kept bits written
    /// with one shift.
    fn fresh_groups<T: PruneFloat, const M: usize>(&self, scores: &[T], bits: &mut [u64]) {
        debug_assert!(64 % M == 0);
        let k = M - self.n;
        let per = (crate::par::CHUNK / 64).max(1) * 64;
        crate::par::for_weighted_blocks_mut(bits, per / 64, 64, |word_off, words| {
            let first = word_off * 64;
            let count = (words.len() * 64).min(scores.len() - first);
            let mut pruned = [false; M];
            for (g, group) in scores[first..first + count].chunks_exact(M).enumerate() {
                let keys: [u64; M] = std::array::from_fn(|j| group[j].magnitude_key());
                let keep = kept_bits(&keys, k, self.ties, &mut pruned);
                let pos = g * M;
                words[pos / 64] |= keep << (pos % 64);
            }
        });
    }

    /// [`NmStructured::fresh_contiguous`] for any `m <= 16`.
    fn fresh_any<T: PruneFloat>(&self, scores: &[T], bits: &mut [u64]) {
        let (m, k) = (self.m, self.m - self.n);
        let unit = m / gcd(m, 64) * 64;
        let per = (crate::par::CHUNK / unit).max(1) * unit;
        crate::par::for_weighted_blocks_mut(bits, per / 64, 64, |word_off, words| {
            let first = word_off * 64;
            let count = (words.len() * 64).min(scores.len() - first);
            let mut keys = [0u64; 16];
            let mut pruned = [false; 16];
            for (g, group) in scores[first..first + count].chunks_exact(m).enumerate() {
                for (key, &x) in keys.iter_mut().zip(group) {
                    *key = x.magnitude_key();
                }
                let keep = kept_bits(&keys[..m], k, self.ties, &mut pruned[..m]);
                let pos = g * m;
                for j in 0..m {
                    if keep >> j & 1 == 1 {
                        words[(pos + j) / 64] |= 1u64 << ((pos + j) % 64);
                    }
                }
            }
        });
    }
}

/// The kept entries of one group of at most 64 `keys` (bit `j` set: entry
/// `j` kept) when its `k` smallest are pruned, `pruned` being scratch of
/// the group's length. Without ties the ranks (entries strictly smaller)
/// of `m` keys are `0..m` in some order, which sum to `m(m-1)/2`; equal
/// keys rank alike and make the sum smaller, and only then does the group
/// go through the tie rule.
#[inline(always)]
fn kept_bits(keys: &[u64], k: usize, ties: TieBreak, pruned: &mut [bool]) -> u64 {
    let m = keys.len();
    debug_assert!(m <= 64 && pruned.len() == m);
    let (mut keep, mut rank_sum) = (0u64, 0usize);
    for (a, &ka) in keys.iter().enumerate() {
        let less: usize = keys.iter().map(|&kb| usize::from(kb < ka)).sum();
        rank_sum += less;
        keep |= u64::from(less >= k) << a;
    }
    if rank_sum != m * (m - 1) / 2 {
        smallest_in_group(keys, k, ties, pruned);
        keep = pruned
            .iter()
            .enumerate()
            .fold(0, |acc, (j, &p)| acc | u64::from(!p) << j);
    }
    keep
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl<T: PruneFloat> PruningMethod<T> for NmStructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Global
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::fast::update_existing(self, t, default_mask)
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for NmStructured {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        PruningStep::NmStructured {
            n: self.n,
            m: self.m,
            dim: self.dim,
            tie_break: self.ties,
            importance_scores,
        }
    }

    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let shape = importance.shape().to_vec();
        let (inner, seg) = self.layout(&shape, &shape)?;
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        let numel = scores.len();
        let mut bits = vec![0u64; numel.div_ceil(64)];
        if inner == 1 && self.m <= 16 {
            self.fresh_contiguous(scores, &mut bits);
            return Ok(Mask::Bits { shape, bits });
        }
        set_run(&mut bits, 0, numel);
        for_segments_bits(&mut bits, numel, seg, &self.work(scores, inner, seg));
        Ok(Mask::Bits { shape, bits })
    }

    fn update_compact(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut Mask<T>,
    ) -> Option<Result<(), PruneError>> {
        if let Mask::Dense(_) = mask {
            return None;
        }
        let (inner, seg) = match self.layout(mask.shape(), importance.shape()) {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        if let Mask::Channels { shape, .. } = mask {
            let shape = shape.clone();
            let bits = mask.to_bits();
            *mask = Mask::Bits { shape, bits };
        }
        let Mask::Bits { bits, .. } = mask else {
            return None;
        };
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        for_segments_bits(bits, scores.len(), seg, &self.work(scores, inner, seg));
        Some(Ok(()))
    }

    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        let (inner, seg) = self.layout(mask.shape(), importance.shape())?;
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        for_segments_dense(flat_mut(mask), seg, &self.work(scores, inner, seg));
        Ok(())
    }
}
