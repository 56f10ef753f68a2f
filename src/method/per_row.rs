//! `PerRowUnstructured`: the same share of every output row.

use ndarray::{ArrayD, ArrayViewD};

use super::{PruningKind, PruningMethod};
use crate::mask::{flat_mut, standard};
use crate::{Amount, PruneError, PruneErrorKind, PruneFloat, Rounding};

/// Prunes, in every row of the tensor (every slice along dim 0: an output
/// row of a Linear weight `[out_features, in_features]`, an output channel
/// of a conv), the `amount` entries of smallest importance magnitude among
/// the row's entries still unpruned. Rows are compared only within
/// themselves: this is the comparison group of Wanda (Sun et al. 2023; see
/// [`crate::wanda`]), which gives it its scores, and with no scores it is
/// per-row magnitude pruning.
///
/// ```text
/// for each row r:  open_r = entries of r still unpruned
///                  k_r    = Count(k): k        Fraction(f): rounding(f × open_r)
///                  prune the k_r of open_r of smallest |score|; ties: lower index first
/// ```
///
/// The selection is Wanda's reference one: a stable ascending sort of the
/// row's scores, its first `k_r` pruned. So among equal scores the lower
/// index goes first; NaN scores rank above every number. Fractions round
/// by [`Rounding::HalfEven`] by default (as every [`Amount::Fraction`] in
/// ndprune); [`Rounding::Down`] is the reference code's `int(f × n)`.
///
/// Its [`PruningKind`] is [`PruningKind::Global`]: a later call sees the
/// whole tensor and its current mask, and counts each row's entries left.
/// It cannot be used in `global_unstructured` (which compares across
/// tensors).
///
/// ```
/// use ndprune::prelude::*;
/// use ndprune::{PerRowUnstructured, Rounding};
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let w = array![[0.1f32, -4.0, 2.0, 0.3], [5.0, 6.0, 7.0, 8.0]].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// let half = PerRowUnstructured::new(Amount::Fraction(0.5))?;
/// prune::apply(&mut layer, "weight", &half, None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(),
///            &array![[0.0f32, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]].into_dyn());
/// // Again: half of the 2 left in each row.
/// prune::apply(&mut layer, "weight", &half, None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(),
///            &array![[0.0f32, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]].into_dyn());
/// // 0.5 of 1 left: 0.5 rounds to 0 (half to even), and down to 0.
/// let down = half.with_rounding(Rounding::Down);
/// prune::apply(&mut layer, "weight", &down, None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap().sum(), 2.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerRowUnstructured {
    amount: Amount,
    rounding: Rounding,
}

impl PerRowUnstructured {
    /// The method pruning `amount` of each row; fails for a fraction
    /// outside `[0, 1]` (a NaN fraction fails in the pruning call).
    ///
    /// ```
    /// use ndprune::{Amount, PerRowUnstructured};
    /// assert!(PerRowUnstructured::new(Amount::Count(2)).is_ok());
    /// assert!(PerRowUnstructured::new(Amount::Fraction(2.0)).is_err());
    /// ```
    pub fn new(amount: Amount) -> Result<Self, PruneError> {
        amount.validate()?;
        Ok(PerRowUnstructured {
            amount,
            rounding: Rounding::HalfEven,
        })
    }

    /// The same method with fractions rounded by `rounding`.
    ///
    /// ```
    /// use ndprune::{Amount, PerRowUnstructured, Rounding};
    /// let m = PerRowUnstructured::new(Amount::Fraction(0.5)).unwrap().with_rounding(Rounding::Down);
    /// assert_eq!(m.rounding(), Rounding::Down);
    /// ```
    pub fn with_rounding(self, rounding: Rounding) -> Self {
        PerRowUnstructured { rounding, ..self }
    }

    /// The amount per row.
    ///
    /// ```
    /// use ndprune::{Amount, PerRowUnstructured};
    /// assert_eq!(PerRowUnstructured::new(Amount::Count(2)).unwrap().amount(), Amount::Count(2));
    /// ```
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// How fractions become counts.
    ///
    /// ```
    /// use ndprune::{Amount, PerRowUnstructured, Rounding};
    /// assert_eq!(PerRowUnstructured::new(Amount::Count(2)).unwrap().rounding(), Rounding::HalfEven);
    /// ```
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }
}

impl<T: PruneFloat> PruningMethod<T> for PerRowUnstructured {
    fn kind(&self) -> PruningKind {
        PruningKind::Global
    }

    fn compute_mask(
        &self,
        t: ArrayViewD<'_, T>,
        default_mask: ArrayViewD<'_, T>,
    ) -> Result<ArrayD<T>, PruneError> {
        super::check_scores_shape(t.shape(), default_mask.shape())?;
        if t.ndim() < 2 {
            return Err(PruneErrorKind::NotMultidimensional {
                shape: t.shape().to_vec(),
            }
            .into());
        }
        let scores = t.as_standard_layout();
        let scores = scores
            .as_slice()
            .expect("as_standard_layout gives contiguous row-major data");
        let mut mask = standard(default_mask.to_owned());
        let rows = t.shape()[0];
        let width = t.len().checked_div(rows).unwrap_or(0);
        let out = flat_mut(&mut mask);
        // The amount against a whole row, also where there is no row (a
        // NaN or too large amount is refused on every shape).
        self.rounding.count_of(self.amount, width)?;
        // Each row's count first: a call that fails changes nothing.
        let mut counts = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = &out[r * width..(r + 1) * width];
            let open = row.iter().filter(|&&m| m == T::one()).count();
            counts.push(self.rounding.count_of(self.amount, open)?);
        }
        let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(width);
        for (r, &k) in counts.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let row = &mut out[r * width..(r + 1) * width];
            let s = &scores[r * width..(r + 1) * width];
            keyed.clear();
            keyed.extend(
                row.iter()
                    .zip(s)
                    .enumerate()
                    .filter(|(_, (&m, _))| m == T::one())
                    .map(|(j, (_, &x))| (x.magnitude_key(), j)),
            );
            // (key, index) pairs are distinct: the k smallest are those of
            // a stable ascending sort by key.
            if k < keyed.len() {
                keyed.select_nth_unstable(k - 1);
            }
            for &(_, j) in &keyed[..k] {
                row[j] = T::zero();
            }
        }
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ties_go_lowest_index_first_and_nan_last() {
        let m = PerRowUnstructured::new(Amount::Count(2)).unwrap();
        let t = array![[1.0f64, 1.0, f64::NAN, 1.0], [-0.0, 0.0, 3.0, 0.0]].into_dyn();
        let ones = ArrayD::ones(vec![2, 4]);
        let mask = m.compute_mask(t.view(), ones.view()).unwrap();
        assert_eq!(
            mask,
            array![[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]].into_dyn()
        );
    }

    #[test]
    fn too_large_a_count_fails_for_any_row() {
        let m = PerRowUnstructured::new(Amount::Count(2)).unwrap();
        let t = array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
        let mask = array![[1.0f32, 1.0], [1.0, 0.0]].into_dyn();
        let err = m.compute_mask(t.view(), mask.view()).unwrap_err();
        assert!(matches!(
            err.kind(),
            PruneErrorKind::AmountTooLarge {
                requested: 2,
                available: 1
            }
        ));
        let flat = array![1.0f32, 2.0].into_dyn();
        assert!(m.compute_mask(flat.view(), flat.view()).is_err());
    }
}
