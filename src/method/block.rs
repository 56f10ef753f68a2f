//! `BlockSparsity`: `torch.ao.pruning.WeightNormSparsifier`'s block
//! sparsity of a matrix, N:M inside the chosen blocks included.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD};

use super::fast::FastPath;
use super::{PruningKind, PruningMethod};
use crate::mask::segments::{for_segments_bits, for_segments_dense, SegmentMask, SegmentWork};
use crate::mask::{bit, flat, flat_mut, set_run, Mask, MaskState};
use crate::select::{smallest_in_group, smallest_of_many};
use crate::{par, PruneError, PruneErrorKind, PruneFloat, PruningStep, TieBreak};

/// What [`BlockSparsity`] ranks an entry by: `torch.ao`'s `norm` argument
/// of `WeightNormSparsifier` (`norm=1` or `norm=2`, the default), applied
/// to each entry in the tensor's dtype before blocks are averaged.
///
/// ```
/// use ndprune::BlockNorm;
/// assert_eq!(BlockNorm::default(), BlockNorm::L2);
/// assert_eq!(BlockNorm::L1.to_string(), "L1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BlockNorm {
    /// `|w|` (`norm=1`).
    L1,
    /// `w * w`, rounded to the dtype (`norm=2`, the default).
    #[default]
    L2,
}

impl fmt::Display for BlockNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockNorm::L1 => "L1",
            BlockNorm::L2 => "L2",
        })
    }
}

impl BlockNorm {
    #[inline]
    fn of<T: PruneFloat>(self, x: T) -> T {
        match self {
            BlockNorm::L1 => x.abs(),
            BlockNorm::L2 => x * x,
        }
    }
}

/// Block sparsity of a 2-D tensor with the semantics of
/// `torch.ao.pruning.WeightNormSparsifier` (PyTorch's
/// `torch/ao/pruning/sparsifier/weight_norm_sparsifier.py`): the tensor is
/// cut into blocks of `rows × cols` starting at index 0; the
/// `sparsity_level` fraction of blocks of smallest average norm is chosen;
/// in each chosen block the `zeros_per_block` entries of smallest norm are
/// pruned (the whole block by default).
///
/// ```text
/// e(w)          = |w| (BlockNorm::L1) or w·w (BlockNorm::L2, default), in the dtype
/// block score   = mean of e over the block's entries inside the tensor
///                 (f32 accumulator, f64 for f64; rounded to the dtype)
/// blocks chosen = round_half_even(level × blocks), at most blocks − 1 when level < 1;
///                 every block when level ≥ 1
/// in a chosen block: the zeros_per_block entries of smallest e are pruned
/// ```
///
/// As in `torch.ao`: a level of 0 or a `zeros_per_block` of 0 prunes
/// nothing; a level of 1 with whole blocks prunes everything; the sides
/// of the tensor need not be multiples of the block (the last blocks are
/// cut short and averaged over what they hold) when whole blocks are
/// pruned. When `zeros_per_block` is below the block size and the level
/// above 0, a tensor whose sides are not multiples of the block is
/// refused ([`PruneErrorKind::IndivisibleGroups`]): `torch.ao` then fails
/// (level below 1) or hands back a mask of the padded shape (level 1).
/// Only 2-D tensors ([`PruneErrorKind::NotTwoDimensional`]), as in
/// `torch.ao`.
///
/// `BlockSparsity::nm(n, m)` (level 1, block `(1, m)`, `m − n` zeros per
/// block) is `torch.ao`'s N:M; [`NmStructured`](crate::NmStructured)
/// gives the same masks by `|w|` (no rounding of `w·w`), on any dim and
/// number of dims.
///
/// **Ties and NaN.** NaN ranks above every number. Equal scores across a
/// cut go as `torch.topk(..., largest=False)` on the CPU sends them
/// ([`TieBreak::Torch`], the default: masks equal `torch.ao`'s even then)
/// or lower index first ([`TieBreak::LowestIndex`]).
///
/// **Later calls.** The kind is [`PruningKind::Global`]: a later call
/// sees the whole tensor (by default the pruned tensor, pruned entries as
/// zeros, as `torch.ao`'s next `step()` does) and never revives an entry.
/// `sparsity_level` is the level the call reaches, not an increment:
/// blocks whose entries are all pruned count as chosen first, and entries
/// pruned before count as a chosen block's first zeros. This is what
/// `torch.ao` reaches by stepping again with whole blocks or a level of 1
/// (tested); with fewer zeros than the block size `torch.ao` recomputes
/// the mask from scratch and may drop a block chosen before, giving its
/// pruned entries back, which ndprune never does. (For `f16`/`bf16`,
/// `torch.ao`'s mask after whole-block pruning is `float32`, so its next
/// step ranks the weight promoted to `float32`; ndprune ranks in the
/// tensor's dtype, which can order equal-looking scores differently.)
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let w = array![
///     [1.0f32, 2.0, 0.1, 0.2],
///     [3.0, 4.0, 0.3, 0.1],
/// ].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// // Half of the 2×2 blocks: the right one has the smaller mean of w².
/// prune::block_sparsity(&mut layer, "weight", &BlockSparsity::new(0.5, (2, 2))?, None)?;
/// assert_eq!(
///     layer.buffer("weight_mask").unwrap(),
///     &array![[1.0f32, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]].into_dyn()
/// );
/// assert!(BlockSparsity::new(1.5, (2, 2)).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSparsity {
    level: f64,
    rows: usize,
    cols: usize,
    zeros: usize,
    norm: BlockNorm,
    ties: TieBreak,
}

impl BlockSparsity {
    /// Whole blocks of `block = (rows, cols)`, the `sparsity_level`
    /// fraction of them, ranked by [`BlockNorm::L2`]. Fails for a level
    /// that is NaN or outside `[0, 1]`
    /// ([`PruneErrorKind::InvalidSparsityLevel`]; `torch.ao` takes any
    /// float and clamps it) and for a side of 0 or a block above
    /// `u32::MAX` entries ([`PruneErrorKind::InvalidBlock`]).
    ///
    /// ```
    /// use ndprune::BlockSparsity;
    /// let b = BlockSparsity::new(0.5, (1, 4)).unwrap();
    /// assert_eq!(b.zeros_per_block(), 4);
    /// assert!(BlockSparsity::new(0.5, (0, 4)).is_err());
    /// assert!(BlockSparsity::new(f64::NAN, (1, 4)).is_err());
    /// ```
    pub fn new(sparsity_level: f64, block: (usize, usize)) -> Result<Self, PruneError> {
        if !(0.0..=1.0).contains(&sparsity_level) {
            return Err(PruneErrorKind::InvalidSparsityLevel {
                level: sparsity_level,
            }
            .into());
        }
        let (rows, cols) = block;
        let size = rows.checked_mul(cols).filter(|&s| s > 0);
        let Some(size) = size.filter(|&s| u32::try_from(s).is_ok()) else {
            return Err(PruneErrorKind::InvalidBlock {
                rows,
                cols,
                zeros_per_block: rows.saturating_mul(cols),
            }
            .into());
        };
        Ok(BlockSparsity {
            level: sparsity_level,
            rows,
            cols,
            zeros: size,
            norm: BlockNorm::L2,
            ties: TieBreak::Torch,
        })
    }

    /// `torch.ao`'s N:M: keep `n` of every `m` consecutive entries of
    /// each row (level 1, block `(1, m)`, `m − n` zeros per block). Fails
    /// as [`NmStructured::new`](crate::NmStructured::new) does.
    ///
    /// ```
    /// use ndprune::BlockSparsity;
    /// let b = BlockSparsity::nm(2, 4).unwrap();
    /// assert_eq!((b.sparsity_level(), b.block(), b.zeros_per_block()), (1.0, (1, 4), 2));
    /// assert!(BlockSparsity::nm(3, 2).is_err());
    /// ```
    pub fn nm(n: usize, m: usize) -> Result<Self, PruneError> {
        if m == 0 || n > m || u32::try_from(m).is_err() {
            return Err(PruneErrorKind::InvalidNm { n, m }.into());
        }
        BlockSparsity::new(1.0, (1, m))?.with_zeros_per_block(m - n)
    }

    /// The same method pruning `zeros` entries in each chosen block (at
    /// most the block's size: else [`PruneErrorKind::InvalidBlock`]).
    ///
    /// ```
    /// use ndprune::BlockSparsity;
    /// let b = BlockSparsity::new(0.5, (2, 2)).unwrap();
    /// assert_eq!(b.with_zeros_per_block(2).unwrap().zeros_per_block(), 2);
    /// assert!(b.with_zeros_per_block(5).is_err());
    /// ```
    pub fn with_zeros_per_block(self, zeros: usize) -> Result<Self, PruneError> {
        if zeros > self.rows * self.cols {
            return Err(PruneErrorKind::InvalidBlock {
                rows: self.rows,
                cols: self.cols,
                zeros_per_block: zeros,
            }
            .into());
        }
        Ok(BlockSparsity { zeros, ..self })
    }

    /// The same method ranking by `norm`.
    ///
    /// ```
    /// use ndprune::{BlockNorm, BlockSparsity};
    /// let b = BlockSparsity::new(0.5, (1, 4)).unwrap().with_norm(BlockNorm::L1);
    /// assert_eq!(b.norm(), BlockNorm::L1);
    /// ```
    pub fn with_norm(self, norm: BlockNorm) -> Self {
        BlockSparsity { norm, ..self }
    }

    /// The same method with another rule for equal scores at a cut
    /// (default [`TieBreak::Torch`]).
    ///
    /// ```
    /// use ndprune::{BlockSparsity, TieBreak};
    /// let _b = BlockSparsity::new(0.5, (1, 4)).unwrap().with_tie_break(TieBreak::LowestIndex);
    /// ```
    pub fn with_tie_break(self, ties: TieBreak) -> Self {
        BlockSparsity { ties, ..self }
    }

    /// The sparsity level: the fraction of blocks chosen.
    ///
    /// ```
    /// assert_eq!(ndprune::BlockSparsity::new(0.3, (4, 4)).unwrap().sparsity_level(), 0.3);
    /// ```
    pub fn sparsity_level(&self) -> f64 {
        self.level
    }

    /// The block shape `(rows, cols)`.
    ///
    /// ```
    /// assert_eq!(ndprune::BlockSparsity::new(0.3, (4, 2)).unwrap().block(), (4, 2));
    /// ```
    pub fn block(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Entries pruned in each chosen block.
    ///
    /// ```
    /// assert_eq!(ndprune::BlockSparsity::new(0.3, (4, 2)).unwrap().zeros_per_block(), 8);
    /// ```
    pub fn zeros_per_block(&self) -> usize {
        self.zeros
    }

    /// What entries are ranked by.
    ///
    /// ```
    /// assert_eq!(ndprune::BlockSparsity::new(0.3, (4, 2)).unwrap().norm(), ndprune::BlockNorm::L2);
    /// ```
    pub fn norm(&self) -> BlockNorm {
        self.norm
    }
}

/// The mask as the block averages read it: all live, bits or dense.
#[derive(Clone, Copy)]
enum Live<'a, T> {
    All,
    Bits(&'a [u64]),
    Dense(&'a [T]),
}

impl<T: PruneFloat> Live<'_, T> {
    #[inline]
    fn at(&self, i: usize) -> bool {
        match self {
            Live::All => true,
            Live::Bits(b) => bit(b, i),
            Live::Dense(d) => d[i] == T::one(),
        }
    }
}

/// What a call does to the mask, decided before it is touched.
enum Plan {
    /// Nothing.
    Keep,
    /// Every entry.
    PruneAll,
    /// The chosen blocks (one flag per block, row-major), whole or their
    /// `zeros` smallest entries.
    Blocks(Vec<bool>),
}

impl BlockSparsity {
    /// Checks the tensor and decides which blocks are chosen.
    fn plan<T: PruneFloat>(
        &self,
        shape: &[usize],
        scores_shape: &[usize],
        scores: Option<&[T]>,
        live: Live<'_, T>,
    ) -> Result<Plan, PruneError> {
        super::check_scores_shape(scores_shape, shape)?;
        let &[h, w] = shape else {
            return Err(PruneErrorKind::NotTwoDimensional {
                shape: shape.to_vec(),
            }
            .into());
        };
        let size = self.rows * self.cols;
        if self.level <= 0.0 || self.zeros == 0 {
            return Ok(Plan::Keep);
        }
        if self.level >= 1.0 && self.zeros == size {
            return Ok(Plan::PruneAll);
        }
        if self.zeros < size {
            for (d, (len, side)) in [(h, self.rows), (w, self.cols)].into_iter().enumerate() {
                if len % side != 0 {
                    return Err(PruneErrorKind::IndivisibleGroups {
                        shape: shape.to_vec(),
                        dim: d,
                        len,
                        group: side,
                    }
                    .into());
                }
            }
        }
        if h == 0 || w == 0 {
            return Ok(Plan::Keep);
        }
        let (br, bc) = (h.div_ceil(self.rows), w.div_ceil(self.cols));
        let blocks = br * bc;
        if u32::try_from(blocks).is_err() {
            return Err(PruneErrorKind::TooLarge {
                what: "blocks to rank",
                count: blocks,
            }
            .into());
        }
        if self.level >= 1.0 {
            return Ok(Plan::Blocks(vec![true; blocks]));
        }
        let k = ((self.level * blocks as f64).round_ties_even() as usize).min(blocks - 1);
        let scores = scores.expect("scores are read when blocks are ranked");
        let keys: Vec<u64> =
            par::map_ordered(br, h * w, |r| self.block_row_keys(scores, live, w, h, r))
                .into_iter()
                .flatten()
                .collect();
        let mut chosen = vec![false; blocks];
        for b in smallest_of_many(&keys, k, self.ties) {
            chosen[b] = true;
        }
        Ok(Plan::Blocks(chosen))
    }

    /// The ranking keys of the blocks of block row `r`: 0 for a block
    /// whose entries are all pruned, else 1 + the key of its mean norm.
    fn block_row_keys<T: PruneFloat>(
        &self,
        scores: &[T],
        live: Live<'_, T>,
        w: usize,
        h: usize,
        r: usize,
    ) -> Vec<u64> {
        let rows = r * self.rows..((r + 1) * self.rows).min(h);
        (0..w.div_ceil(self.cols))
            .map(|c| {
                let cols = c * self.cols..((c + 1) * self.cols).min(w);
                let count = rows.len() * cols.len();
                let mut any_live = false;
                let entries = rows
                    .clone()
                    .flat_map(|a| cols.clone().map(move |b| a * w + b));
                let mean = if T::KEY_BITS == 64 {
                    let mut sum = 0.0f64;
                    for i in entries {
                        any_live |= live.at(i);
                        sum += self.norm.of(scores[i]).as_f64();
                    }
                    T::from_f64(sum / count as f64)
                } else {
                    // PyTorch's f32 accumulator (exact widening of f32,
                    // f16, bf16), then one rounding to the dtype.
                    let mut sum = 0.0f32;
                    for i in entries {
                        any_live |= live.at(i);
                        sum += self.norm.of(scores[i]).as_f64() as f32;
                    }
                    T::from_f64(f64::from(sum / count as f32))
                };
                if any_live {
                    mean.magnitude_key().saturating_add(1)
                } else {
                    0
                }
            })
            .collect()
    }
}

/// The per-segment work: a segment is a row of blocks (`rows` rows of the
/// tensor, the last one maybe fewer).
struct BlockRows<'a, T> {
    method: &'a BlockSparsity,
    scores: &'a [T],
    chosen: &'a [bool],
    w: usize,
}

impl<T: PruneFloat> SegmentWork for BlockRows<'_, T> {
    fn run<S: SegmentMask>(&self, segment: usize, len: usize, mask: &mut S) {
        let BlockSparsity {
            rows, cols, zeros, ..
        } = *self.method;
        let w = self.w;
        let in_rows = len / w;
        let base = segment * rows * w;
        let blocks = w.div_ceil(cols);
        let size = rows * cols;
        let whole = zeros == size;
        let mut keys = vec![0u64; if whole { 0 } else { size }];
        let mut pruned = vec![false; keys.len()];
        for c in 0..blocks {
            if !self.chosen[segment * blocks + c] {
                continue;
            }
            let col_range = c * cols..((c + 1) * cols).min(w);
            if whole {
                for a in 0..in_rows {
                    for b in col_range.clone() {
                        mask.prune(a * w + b);
                    }
                }
                continue;
            }
            // Divisible (checked): a full block, entries in row-major order
            // as `unfold` lays them out.
            let mut live = 0;
            for a in 0..rows {
                for (j, b) in col_range.clone().enumerate() {
                    let at = a * w + b;
                    keys[a * cols + j] = if mask.live(at) {
                        live += 1;
                        let e = self.method.norm.of(self.scores[base + at]);
                        e.magnitude_key().saturating_add(1)
                    } else {
                        0
                    };
                }
            }
            if live + zeros <= size {
                continue;
            }
            smallest_in_group(&keys, zeros, self.method.ties, &mut pruned);
            for (i, &p) in pruned.iter().enumerate() {
                if p {
                    mask.prune((i / cols) * w + c * cols + i % cols);
                }
            }
        }
    }
}

impl BlockSparsity {
    fn work<'a, T: PruneFloat>(
        &'a self,
        scores: &'a [T],
        chosen: &'a [bool],
        w: usize,
    ) -> BlockRows<'a, T> {
        BlockRows {
            method: self,
            scores,
            chosen,
            w,
        }
    }
}

impl<T: PruneFloat> PruningMethod<T> for BlockSparsity {
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

impl<T: PruneFloat> FastPath<T> for BlockSparsity {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        PruningStep::BlockSparsity {
            sparsity_level: self.level,
            block: (self.rows, self.cols),
            zeros_per_block: self.zeros,
            norm: self.norm,
            tie_break: self.ties,
            importance_scores,
        }
    }

    fn fresh_mask(&self, importance: ArrayViewD<'_, T>) -> Result<Mask<T>, PruneError> {
        let shape = importance.shape().to_vec();
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        let plan = self.plan(&shape, &shape, Some(scores), Live::All)?;
        let numel = scores.len();
        let mut bits = vec![0u64; numel.div_ceil(64)];
        match plan {
            Plan::Keep => set_run(&mut bits, 0, numel),
            Plan::PruneAll => {}
            Plan::Blocks(chosen) => {
                set_run(&mut bits, 0, numel);
                let w = shape[1];
                let work = self.work(scores, &chosen, w);
                for_segments_bits(&mut bits, numel, self.rows * w, &work);
            }
        }
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
        if let Mask::Channels { shape, .. } = mask {
            let shape = shape.clone();
            let bits = mask.to_bits();
            *mask = Mask::Bits { shape, bits };
        }
        let Mask::Bits { shape, bits } = mask else {
            return None;
        };
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        let plan = match self.plan(shape, importance.shape(), Some(scores), Live::Bits(bits)) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        match plan {
            Plan::Keep => {}
            Plan::PruneAll => bits.fill(0),
            Plan::Blocks(chosen) => {
                let w = shape[1];
                let work = self.work(scores, &chosen, w);
                for_segments_bits(bits, scores.len(), self.rows * w, &work);
            }
        }
        Some(Ok(()))
    }

    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        let scores = importance.as_standard_layout();
        let scores = scores.as_slice().expect("standard layout");
        let plan = self.plan(
            mask.shape(),
            importance.shape(),
            Some(scores),
            Live::Dense(flat(mask)),
        )?;
        match plan {
            Plan::Keep => {}
            Plan::PruneAll => mask.fill(T::zero()),
            Plan::Blocks(chosen) => {
                let w = mask.shape()[1];
                let work = self.work(scores, &chosen, w);
                for_segments_dense(flat_mut(mask), self.rows * w, &work);
            }
        }
        Ok(())
    }
}
