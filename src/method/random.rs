//! `RandomUnstructured` and `RandomStructured`: prune uniformly at random.

use ndarray::{ArrayD, ArrayViewD};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::fast::FastPath;
use super::ln::structured_dim;
use super::{PruningKind, PruningMethod};
use crate::mask::channels::{open_channels, write_channels};
use crate::mask::{flat, flat_mut, MaskState};
use crate::select::sample_in_order;
use crate::select::topk::topk_indices;
use crate::{
    Amount, Dim, PruneError, PruneErrorKind, PruneFloat, PruningStep, RandomSource, TorchGenerator,
};

/// Where a random method draws from.
#[derive(Debug, Clone)]
enum Draw {
    /// A `rand` generator seeded afresh with this seed for every call: the
    /// same seed, tensor and mask give the same mask.
    Seed(u64),
    /// PyTorch's stream, advancing with every call as PyTorch's does.
    Torch(TorchGenerator),
}

impl Draw {
    fn source(&self) -> RandomSource {
        match self {
            Draw::Seed(seed) => RandomSource::Seed(*seed),
            Draw::Torch(_) => RandomSource::Torch,
        }
    }
}

impl PartialEq for Draw {
    fn eq(&self, other: &Draw) -> bool {
        match (self, other) {
            (Draw::Seed(a), Draw::Seed(b)) => a == b,
            (Draw::Torch(a), Draw::Torch(b)) => a.same_stream(b),
            _ => false,
        }
    }
}

/// Which `k` of `n` open entries `RandomUnstructured` prunes, as a function
/// answering in order for each open entry. With PyTorch's stream: draw
/// `torch.rand_like` over the open entries (in the tensor's dtype) and prune
/// the `k` largest, as `torch.topk` picks them.
fn unstructured_picks<'a, T: PruneFloat>(
    draw: &'a Draw,
    rng: &'a mut StdRng,
    n: usize,
    k: usize,
) -> Box<dyn FnMut() -> bool + 'a> {
    match draw {
        Draw::Seed(_) => Box::new(sample_in_order(rng, n, k)),
        Draw::Torch(gen) => {
            let probs: Vec<T> = gen.rand(n);
            // `topk_indices` is `None` only beyond u32::MAX entries; there the
            // choice falls back to the seeded sampler (documented).
            match topk_indices(probs.iter().map(|p| p.magnitude_key()), k, true) {
                Some(chosen) => {
                    let mut chosen = chosen.into_iter().peekable();
                    let mut i = 0usize;
                    Box::new(move || {
                        let take = chosen.next_if_eq(&i).is_some();
                        i += 1;
                        take
                    })
                }
                None => Box::new(sample_in_order(rng, n, k)),
            }
        }
    }
}

/// The number of unpruned entries of several masks: all entries of a fresh
/// one (it stands for all ones), the entries at 1 of an existing one.
fn open_entries<T: PruneFloat>(masks: &[ArrayD<T>], states: &[MaskState]) -> usize {
    masks
        .iter()
        .zip(states)
        .map(|(m, state)| match state {
            MaskState::Fresh => m.len(),
            MaskState::Existing => crate::select::count_candidates(flat(m)),
        })
        .sum()
}

/// Prunes `amount` of the unpruned entries, chosen uniformly at random
/// (PyTorch's `RandomUnstructured`). Made with a seed, the choice is a
/// function of the seed: the same seed, tensor and mask give the same mask.
/// Made with [`RandomUnstructured::with_torch_generator`], it draws from
/// PyTorch's stream and picks what PyTorch picks.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let method = RandomUnstructured::new(Amount::Count(3), 42)?;
/// let t = ArrayD::<f32>::ones(vec![10]);
/// let mask = method.compute_mask(t.view(), t.view())?;
/// assert_eq!(mask.sum(), 7.0);
/// assert_eq!(mask, method.compute_mask(t.view(), t.view())?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RandomUnstructured {
    amount: Amount,
    draw: Draw,
}

impl RandomUnstructured {
    /// The method for `amount`, drawing with a generator seeded by `seed`.
    ///
    /// ```
    /// use ndprune::{Amount, RandomUnstructured};
    /// assert!(RandomUnstructured::new(Amount::Fraction(0.3), 7).is_ok());
    /// assert!(RandomUnstructured::new(Amount::Fraction(1.5), 7).is_err());
    /// // NaN fails when the pruning call turns it into a count, as in PyTorch.
    /// assert!(RandomUnstructured::new(Amount::Fraction(f64::NAN), 7).is_ok());
    /// ```
    pub fn new(amount: Amount, seed: u64) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomUnstructured {
            amount,
            draw: Draw::Seed(seed),
        })
    }

    /// The method for `amount`, drawing from PyTorch's stream `gen` as
    /// PyTorch's `RandomUnstructured` does: `torch.rand_like` over the
    /// entries it may prune (in the tensor's dtype), then the `amount`
    /// largest draws, as `torch.topk` picks them, are pruned. Each call that
    /// prunes at least one entry advances `gen`. (Up to 2³² open entries; a
    /// call on more, beyond what the `topk` replay indexes, samples from a
    /// fixed seed instead.)
    ///
    /// ```
    /// use ndprune::prelude::*;
    ///
    /// # fn main() -> Result<(), PruneError> {
    /// // torch.manual_seed(0)
    /// // prune.random_unstructured(m, "weight", amount=3)   # weight: 8 entries
    /// let gen = TorchGenerator::manual_seed(0);
    /// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![8]))?;
    /// let method = RandomUnstructured::with_torch_generator(Amount::Count(3), &gen)?;
    /// prune::apply(&mut layer, "weight", &method, None)?;
    /// let mask: Vec<f32> = layer.buffer("weight_mask").unwrap().iter().copied().collect();
    /// assert_eq!(mask, [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    /// # Ok(()) }
    /// ```
    pub fn with_torch_generator(amount: Amount, gen: &TorchGenerator) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomUnstructured {
            amount,
            draw: Draw::Torch(gen.clone()),
        })
    }

    /// The method for `amount`, seeded from `rng`.
    ///
    /// ```
    /// use ndprune::{Amount, RandomUnstructured};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert!(RandomUnstructured::from_rng(Amount::Fraction(0.2), &mut rng).is_ok());
    /// ```
    pub fn from_rng<R: Rng + ?Sized>(amount: Amount, rng: &mut R) -> Result<Self, PruneError> {
        Self::new(amount, rng.random())
    }
}

impl<T: PruneFloat> PruningMethod<T> for RandomUnstructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Unstructured
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        let mut chosen = ArrayD::ones(t.raw_dim());
        FastPath::update_mask(self, t, &mut chosen, MaskState::Fresh)?;
        Ok(crate::mask::standard(chosen * &default_mask))
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for RandomUnstructured {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        let _ = importance_scores; // a random method takes none.
        PruningStep::RandomUnstructured {
            amount: self.amount,
            source: self.draw.source(),
        }
    }

    fn update_mask(
        &self,
        importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        _state: MaskState,
    ) -> Result<(), PruneError> {
        // A fresh mask here is already all ones: update it as it stands.
        let existing = [MaskState::Existing];
        self.update_masks_jointly(&[importance], std::slice::from_mut(mask), &existing)
    }

    fn update_masks_jointly(
        &self,
        _importances: &[ArrayViewD<'_, T>],
        masks: &mut [ArrayD<T>],
        states: &[MaskState],
    ) -> Result<(), PruneError> {
        let fresh = |i: usize| states[i] == MaskState::Fresh;
        let open = open_entries(masks, states);
        let k = self.amount.count_of(open)?;
        for (i, m) in masks.iter_mut().enumerate() {
            if fresh(i) {
                m.fill(T::one());
            }
        }
        if k == 0 {
            // PyTorch draws nothing when there is nothing to prune.
            return Ok(());
        }
        let seed = match self.draw {
            Draw::Seed(seed) => seed,
            Draw::Torch(_) => 0,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pick = unstructured_picks::<T>(&self.draw, &mut rng, open, k);
        for m in masks.iter_mut() {
            for v in flat_mut(m).iter_mut().filter(|v| **v == T::one()) {
                if pick() {
                    *v = T::zero();
                }
            }
        }
        Ok(())
    }
}

/// The most draws a structured random pruning of a tensor with no entries
/// makes to keep PyTorch's stream in step (`2^30`, 4 GB of PyTorch's `f32`
/// draws; a second of this generator's time).
const MAX_EMPTY_DRAWS: usize = 1 << 30;

/// Prunes `amount` of the channels along `dim` not yet pruned, chosen
/// uniformly at random (PyTorch's `RandomStructured`).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let method = RandomStructured::new(Amount::Count(2), Dim(0), 7)?;
/// let t = ArrayD::<f32>::ones(vec![5, 3]);
/// let mask = method.compute_mask(t.view(), t.view())?;
/// assert_eq!(mask.sum(), 9.0); // 3 of 5 rows kept
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RandomStructured {
    amount: Amount,
    dim: Dim,
    draw: Draw,
}

impl RandomStructured {
    /// The method for `amount` of the channels along `dim`, drawing with a
    /// generator seeded by `seed`.
    ///
    /// ```
    /// use ndprune::{Amount, Dim, RandomStructured};
    /// assert!(RandomStructured::new(Amount::Count(1), Dim(0), 7).is_ok());
    /// ```
    pub fn new(amount: Amount, dim: Dim, seed: u64) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomStructured {
            amount,
            dim,
            draw: Draw::Seed(seed),
        })
    }

    /// The method for `amount` of the channels along `dim`, drawing from
    /// PyTorch's stream `gen` as PyTorch's `RandomStructured` does: one
    /// `f32` draw per channel it may prune (`torch.rand(channels)`), and
    /// the channels whose draw is at most the `amount`-th smallest
    /// (`torch.kthvalue`) are pruned. Each call that prunes at least one
    /// channel advances `gen`.
    ///
    /// ```
    /// use ndprune::prelude::*;
    ///
    /// # fn main() -> Result<(), PruneError> {
    /// // torch.manual_seed(0)
    /// // prune.random_structured(m, "weight", amount=2, dim=0)   # weight: 5 x 3
    /// let gen = TorchGenerator::manual_seed(0);
    /// let mut layer = Layer::<f64>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![5, 3]))?;
    /// let method = RandomStructured::with_torch_generator(Amount::Count(2), Dim(0), &gen)?;
    /// prune::apply(&mut layer, "weight", &method, None)?;
    /// let mask = layer.buffer("weight_mask").unwrap();
    /// let rows: Vec<f64> = mask.outer_iter().map(|r| r[0]).collect();
    /// assert_eq!(rows, [1.0, 1.0, 0.0, 0.0, 1.0]);
    /// # Ok(()) }
    /// ```
    pub fn with_torch_generator(
        amount: Amount,
        dim: Dim,
        gen: &TorchGenerator,
    ) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(RandomStructured {
            amount,
            dim,
            draw: Draw::Torch(gen.clone()),
        })
    }

    /// The method, seeded from `rng`.
    ///
    /// ```
    /// use ndprune::{Amount, Dim, RandomStructured};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert!(RandomStructured::from_rng(Amount::Count(1), Dim(-1), &mut rng).is_ok());
    /// ```
    pub fn from_rng<R: Rng + ?Sized>(
        amount: Amount,
        dim: Dim,
        rng: &mut R,
    ) -> Result<Self, PruneError> {
        Self::new(amount, dim, rng.random())
    }
}

impl<T: PruneFloat> PruningMethod<T> for RandomStructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Structured { dim: self.dim }
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        let mut mask = crate::mask::standard(default_mask.to_owned());
        FastPath::update_mask(self, t, &mut mask, MaskState::Fresh)?;
        Ok(mask)
    }

    fn fast_path(&self) -> Option<&dyn FastPath<T>> {
        Some(self)
    }
}

impl<T: PruneFloat> FastPath<T> for RandomStructured {
    fn method(&self) -> &dyn PruningMethod<T> {
        self
    }

    fn step(&self, importance_scores: bool) -> PruningStep {
        let _ = importance_scores; // a random method takes none.
        PruningStep::RandomStructured {
            amount: self.amount,
            dim: self.dim,
            source: self.draw.source(),
        }
    }

    fn update_mask(
        &self,
        _importance: ArrayViewD<'_, T>,
        mask: &mut ArrayD<T>,
        state: MaskState,
    ) -> Result<(), PruneError> {
        let d = structured_dim(mask.shape(), self.dim, state)?;
        if mask.is_empty() {
            // Nothing to prune, and nothing is allocated per channel (a
            // crafted file can claim 2^40 channels of nothing). PyTorch
            // still draws one value per channel when it prunes any (as a
            // pruned 1-dim tensor's `[0, n]` view does), so its stream is
            // advanced as far, up to MAX_EMPTY_DRAWS (beyond, PyTorch's own
            // draw of 4 GB or more is refused here as too large).
            let open = if state == MaskState::Fresh {
                mask.shape()[d]
            } else {
                0
            };
            let k = self.amount.count_of(open)?;
            if let (Draw::Torch(gen), true) = (&self.draw, k > 0) {
                if open > MAX_EMPTY_DRAWS {
                    return Err(PruneErrorKind::TooLarge {
                        what: "random draws, one per channel",
                        count: open,
                    }
                    .into());
                }
                gen.skip_f32(open);
            }
            return Ok(());
        }
        let mut keep = open_channels(mask, d, state);
        let open = keep.iter().filter(|&&l| l).count();
        let k = self.amount.count_of(open)?;
        if k == 0 {
            return Ok(());
        }
        match &self.draw {
            Draw::Seed(seed) => {
                let mut rng = StdRng::seed_from_u64(*seed);
                let mut pick = sample_in_order(&mut rng, open, k);
                for c in keep.iter_mut().filter(|l| **l) {
                    if pick() {
                        *c = false;
                    }
                }
            }
            Draw::Torch(gen) => {
                // torch.rand(channels) is f32 whatever the tensor's dtype; a
                // channel goes when its draw is at most the k-th smallest.
                let probs: Vec<f32> = gen.rand(open);
                let mut sorted = probs.clone();
                sorted.sort_unstable_by(f32::total_cmp);
                // 1 <= k <= open == sorted.len(): checked by `count_of` and above.
                let threshold = sorted[k - 1];
                for (c, p) in keep.iter_mut().filter(|l| **l).zip(&probs) {
                    if *p <= threshold {
                        *c = false;
                    }
                }
            }
        }
        write_channels(mask, d, &keep, false);
        Ok(())
    }
}
