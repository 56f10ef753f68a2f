//! Group importance: one score per channel from every tensor of a group.

use ndarray::Axis;

use super::spec::{ChannelGroup, Role};
use crate::{Module, Norm, PruneError, PruneErrorKind, PruneFloat};

/// How the members' per-channel norms combine into one score per channel.
///
/// ```
/// use ndprune::group::Reduction;
/// assert_eq!(Reduction::default(), Reduction::Sum);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The norm of all the channel's entries in every ranked member taken
    /// together (for `Norm::L(p)`, `(Σ_members Σ |x|^p)^(1/p)`; for
    /// `Norm::Inf`, the largest magnitude). Within one group this orders
    /// channels as Torch-Pruning's `GroupMagnitudeImportance` does (its
    /// per-member sums of `|x|^p`, reduced by sum or mean; its normalizer
    /// divides the whole vector by one number and keeps the order).
    #[default]
    Sum,
    /// The largest of the members' per-channel norms.
    Max,
    /// The primary producer's per-channel norm alone (what
    /// `ln_structured` on that tensor ranks by).
    Primary,
}

/// Ranks the channels of a [`ChannelGroup`] by the magnitude of everything
/// they own: each ranked member ([`Role::Producer`] and [`Role::Consumer`];
/// [`Role::Stats`] never) gives a per-channel norm over the channel's
/// slice, and a [`Reduction`] combines them. Scores are computed in `f64`
/// from the tensors as they are now (pruned entries count as zero, as in
/// `ln_structured`).
///
/// ```
/// use ndprune::group::{ChannelGroup, GroupImportance};
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let model = Sequential::new()
///     .with_child("a", Layer::new().with_parameter("weight", array![[3.0f32, 0.0], [0.0, 1.0]].into_dyn())?)?
///     .with_child("b", Layer::new().with_parameter("weight", array![[1.0f32, 2.0]].into_dyn())?)?;
/// let g = ChannelGroup::new(2).producer("a.weight", Dim(0)).consumer("b.weight", Dim(1));
/// let scores = GroupImportance::default().scores(&model, &g)?;
/// // Channel 0: sqrt(3² + 1²); channel 1: sqrt(1² + 2²).
/// assert!((scores[0] - 10f64.sqrt()).abs() < 1e-12);
/// assert!((scores[1] - 5f64.sqrt()).abs() < 1e-12);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupImportance {
    norm: Norm,
    reduction: Reduction,
}

impl Default for GroupImportance {
    /// L2 over everything each channel owns ([`Reduction::Sum`]).
    fn default() -> Self {
        GroupImportance {
            norm: Norm::L(2.0),
            reduction: Reduction::Sum,
        }
    }
}

impl GroupImportance {
    /// Importance by `norm` (`Norm::L(p)` with `p > 0` finite, or
    /// `Norm::Inf`), reduced by `reduction`.
    ///
    /// ```
    /// use ndprune::group::{GroupImportance, Reduction};
    /// use ndprune::Norm;
    /// assert!(GroupImportance::new(Norm::L(1.0), Reduction::Max).is_ok());
    /// assert!(GroupImportance::new(Norm::L(0.0), Reduction::Sum).is_err());
    /// assert!(GroupImportance::new(Norm::Fro, Reduction::Sum).is_err());
    /// ```
    pub fn new(norm: Norm, reduction: Reduction) -> Result<Self, PruneError> {
        match norm {
            Norm::L(p) if p > 0.0 && p.is_finite() => {}
            Norm::Inf => {}
            Norm::L(p) => return Err(PruneErrorKind::InvalidNorm { p }.into()),
            _ => return Err(PruneErrorKind::InvalidNorm { p: f64::NAN }.into()),
        }
        Ok(GroupImportance { norm, reduction })
    }

    /// One score per channel of `group` in `model` (the group is checked
    /// first). A NaN in a channel's entries makes its score NaN, which
    /// ranks as the largest (never pruned first), as everywhere in ndprune.
    ///
    /// ```
    /// use ndprune::group::{ChannelGroup, GroupImportance, Reduction};
    /// use ndprune::prelude::*;
    /// use ndarray::array;
    /// # fn main() -> Result<(), PruneError> {
    /// let l = Layer::new()
    ///     .with_parameter("weight", array![[1.0f64, 1.0], [0.0, 5.0]].into_dyn())?
    ///     .with_parameter("bias", array![4.0, 0.0].into_dyn())?;
    /// let g = ChannelGroup::new(2).producer("weight", Dim(0)).producer("bias", Dim(0));
    /// let primary = GroupImportance::new(Norm::L(1.0), Reduction::Primary)?.scores(&l, &g)?;
    /// assert_eq!(primary, vec![2.0, 5.0]);
    /// let sum = GroupImportance::new(Norm::L(1.0), Reduction::Sum)?.scores(&l, &g)?;
    /// assert_eq!(sum, vec![6.0, 5.0]);
    /// # Ok(()) }
    /// ```
    pub fn scores<T: PruneFloat, M: Module<T> + ?Sized>(
        &self,
        model: &M,
        group: &ChannelGroup,
    ) -> Result<Vec<f64>, PruneError> {
        let dims = group.check(model)?;
        let primary = group
            .members()
            .iter()
            .position(|m| m.role() == Role::Producer)
            .expect("checked: a group has a producer");
        let mut acc = vec![0.0f64; group.channels()];
        for (i, (m, &dim)) in group.members().iter().zip(&dims).enumerate() {
            if !self.ranks(m.role(), i == primary) {
                continue;
            }
            let t = model
                .tensor(m.tensor())
                .expect("checked: every member's tensor is there");
            let mut local = vec![0.0f64; group.channels()];
            for (j, lane) in t.axis_iter(Axis(dim)).enumerate() {
                let v = &mut local[j / m.block()];
                for &x in lane.iter() {
                    self.add(v, x.as_f64());
                }
            }
            self.member_done(&mut local);
            self.reduce(&mut acc, &local);
        }
        self.finish(&mut acc);
        Ok(acc)
    }

    /// Whether a member of this role (the primary producer or not) is
    /// ranked.
    pub(crate) fn ranks(&self, role: Role, primary: bool) -> bool {
        match self.reduction {
            Reduction::Primary => primary,
            _ => role != Role::Stats,
        }
    }

    /// Adds one entry `x` to its channel's accumulator in one member:
    /// `|x|^p`, or the largest `|x|` for `Norm::Inf` (NaN sticks).
    pub(crate) fn add(&self, v: &mut f64, x: f64) {
        let a = x.abs();
        match self.norm {
            Norm::L(p) => {
                *v += if p == 1.0 {
                    a
                } else if p == 2.0 {
                    a * a
                } else {
                    a.powf(p)
                }
            }
            _ => {
                *v = if v.is_nan() || a.is_nan() {
                    f64::NAN
                } else {
                    v.max(a)
                }
            }
        }
    }

    /// After a member's entries: for `Reduction::Max`, its sums become
    /// norms, so that members compare as norms.
    pub(crate) fn member_done(&self, local: &mut [f64]) {
        if let (Norm::L(p), Reduction::Max) = (self.norm, self.reduction) {
            for v in local {
                *v = v.powf(1.0 / p);
            }
        }
    }

    /// Combines one member's per-channel values into the group's.
    pub(crate) fn reduce(&self, acc: &mut [f64], local: &[f64]) {
        for (a, &l) in acc.iter_mut().zip(local) {
            *a = match (self.reduction, self.norm) {
                (_, Norm::Inf) | (Reduction::Max, _) => {
                    if a.is_nan() || l.is_nan() {
                        f64::NAN
                    } else {
                        a.max(l)
                    }
                }
                _ => *a + l,
            };
        }
    }

    /// The scores from the combined sums: their `p`-th root where they are
    /// sums of `|x|^p`.
    pub(crate) fn finish(&self, acc: &mut [f64]) {
        if let Norm::L(p) = self.norm {
            if self.reduction != Reduction::Max {
                for a in acc {
                    *a = a.powf(1.0 / p);
                }
            }
        }
    }
}
