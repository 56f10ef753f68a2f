//! Physical channel removal: the empty channels of each group cut out of
//! every tensor of the group.

use std::collections::BTreeSet;

use ndarray::{Axis, Slice};

use super::spec::{ChannelGroup, Role};
use super::txn::Snapshot;
use crate::module::split_path;
use crate::{Module, PruneError, PruneErrorKind, PruneFloat};

/// What [`shrink`] does with a channel that is zero in the group's primary
/// producer while another producer (a bias, a norm layer's shift) still
/// holds a nonzero value there: in the model as it is, that channel feeds
/// the next layer a constant, so removing it changes the output.
///
/// ```
/// use ndprune::group::Inexact;
/// assert!(matches!(Inexact::default(), Inexact::Refuse));
/// let relu: fn(f64) -> f64 = |x| x.max(0.0);
/// let _fold = Inexact::Fold(relu);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub enum Inexact {
    /// Fail with [`PruneErrorKind::InexactShrink`], changing nothing.
    #[default]
    Refuse,
    /// Remove the channel anyway (the report lists it): the shrunk model
    /// differs from the masked one by that constant.
    Drop,
    /// Fold the constant into the consumers' biases, where that is exact:
    /// the nonzero producer is a single 1-D tensor (a Linear's or conv's
    /// bias `b`), the group holds nothing else before its consumers (no
    /// norm layer, whose scale and statistics would change the constant,
    /// no parallel projection), the channel's output is the constant `activation(b[c])`
    /// (the function given: identity, ReLU, ...; every op between the
    /// layers must keep a constant channel constant, as activations and
    /// pooling do), and each consumer is a 2-D weight read along dim 1
    /// with a plain `bias` beside it (a Linear, also after a flatten):
    /// `bias[j] += Σ W[j, c's block] · activation(b[c])`. Anything else
    /// fails with [`PruneErrorKind::NoFold`], changing nothing.
    Fold(fn(f64) -> f64),
}

/// What [`shrink`] did to one group.
///
/// ```
/// let g = ndprune::group::GroupShrink::default();
/// assert!(g.removed.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupShrink {
    /// The channels removed, ascending (in the group's numbering before).
    pub removed: Vec<usize>,
    /// The channels left.
    pub kept: usize,
    /// Removed channels that fed a constant (see [`Inexact`]), ascending.
    pub inexact: Vec<usize>,
    /// Of those, the ones whose constant was folded into the consumers.
    pub folded: Vec<usize>,
}

/// What [`shrink`] did.
///
/// ```
/// let r = ndprune::group::ShrinkReport::default();
/// assert_eq!(r.entries_removed(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShrinkReport {
    /// One entry per group, in the order given.
    pub groups: Vec<GroupShrink>,
    /// Entries of the groups' tensors before (each tensor once).
    pub entries_before: usize,
    /// And after.
    pub entries_after: usize,
}

impl ShrinkReport {
    /// Entries removed from the groups' tensors.
    ///
    /// ```
    /// let r = ndprune::group::ShrinkReport::default();
    /// assert_eq!(r.entries_removed(), 0);
    /// ```
    pub fn entries_removed(&self) -> usize {
        self.entries_before - self.entries_after
    }

    /// Whether the shrunk model computes exactly what the masked model did
    /// (no channel was dropped with a constant left unfolded), given that
    /// the activations map 0 to 0.
    ///
    /// ```
    /// assert!(ndprune::group::ShrinkReport::default().is_exact());
    /// ```
    pub fn is_exact(&self) -> bool {
        self.groups
            .iter()
            .all(|g| g.inexact.len() == g.folded.len())
    }
}

/// Removes, from every tensor of each group, the channels that are entirely
/// zero in the group's primary producer: the tensors get smaller and the
/// model loads into the smaller architecture. A pruned tensor's original,
/// mask and product are cut alike, so the model stays pruned; a plain one
/// is cut as it is.
///
/// The groups are handled in the order given, each on the model the ones
/// before it left (so a column removed by one group can make a row of the
/// next group's primary entirely zero, which then goes too). The result is
/// exact, the shrunk model computing what the masked one did, when every
/// other producer of a removed channel is zero there too (prune with
/// [`crate::group::prune_group`], which masks them all) and the
/// activations map 0 to 0 (ReLU, GELU, SiLU, tanh; not sigmoid). Where it
/// would not be, `inexact` decides (see [`Inexact`]). No tensor may be in
/// two groups along the same dim. A failing call changes nothing.
///
/// ```
/// use ndprune::group::{self, GroupImportance, Inexact};
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut model = Sequential::<f32>::new()
///     .push(Layer::linear(4, 8, &mut rng))
///     .push(Layer::linear(8, 3, &mut rng));
/// let groups = group::infer_chain(&model)?;
/// group::prune_group(&mut model, &groups[0], Amount::Fraction(0.5), &GroupImportance::default())?;
/// let report = group::shrink(&mut model, &groups, Inexact::Refuse)?;
/// assert!(report.is_exact());
/// assert_eq!(report.groups[0].kept, 4);
/// assert_eq!(model.tensor("0.weight").unwrap().shape(), &[4, 4]);
/// assert_eq!(model.tensor("1.weight").unwrap().shape(), &[3, 4]);
/// # Ok(()) }
/// ```
pub fn shrink<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    groups: &[ChannelGroup],
    inexact: Inexact,
) -> Result<ShrinkReport, PruneError> {
    let mut cut_dims = BTreeSet::new();
    let mut tensors = BTreeSet::new();
    for g in groups {
        let dims = g.check(model)?;
        for (m, d) in g.members().iter().zip(dims) {
            if !cut_dims.insert((m.tensor().to_string(), d)) {
                return Err(PruneError::new(m.tensor(), PruneErrorKind::DuplicateMember));
            }
            tensors.insert(m.tensor().to_string());
        }
    }
    let size = |model: &M| -> usize {
        tensors
            .iter()
            .map(|t| {
                model
                    .tensor(t)
                    .expect("every member was checked to be in the model")
                    .len()
            })
            .sum()
    };
    let entries_before = size(model);
    let touched: Vec<String> = tensors
        .iter()
        .cloned()
        .chain(tensors.iter().map(|t| format!("{}.bias", split_path(t).0)))
        .collect();
    let snapshot = Snapshot::take(model, touched.iter().map(String::as_str));
    let mut report = ShrinkReport {
        groups: Vec::with_capacity(groups.len()),
        entries_before,
        entries_after: 0,
    };
    for g in groups {
        match shrink_one(model, g, inexact) {
            Ok(done) => report.groups.push(done),
            Err(e) => {
                snapshot.restore(model);
                return Err(e);
            }
        }
    }
    report.entries_after = size(model);
    Ok(report)
}

/// Whether the channel's slice of `t` along `dim` is all zero.
fn channel_is_zero<T: PruneFloat>(
    t: &ndarray::ArrayD<T>,
    dim: usize,
    c: usize,
    block: usize,
) -> bool {
    t.slice_axis(Axis(dim), Slice::from(c * block..(c + 1) * block))
        .iter()
        .all(|&x| x == T::zero())
}

fn shrink_one<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    g: &ChannelGroup,
    inexact: Inexact,
) -> Result<GroupShrink, PruneError> {
    let dims = g.check(model)?;
    let members = g.members();
    let primary_at = members
        .iter()
        .position(|m| m.role() == Role::Producer)
        .expect("checked: a group has a producer");
    let primary = &members[primary_at];
    let values = |model: &M, path: &str| {
        model
            .tensor(path)
            .expect("checked: every member's tensor is there")
            .clone()
    };
    let p = values(model, primary.tensor());
    let removed: Vec<usize> = (0..g.channels())
        .filter(|&c| channel_is_zero(&p, dims[primary_at], c, primary.block()))
        .collect();
    // Producers other than the primary that are not zero on a removed channel.
    let mut leftovers: Vec<(usize, Vec<usize>)> = Vec::new();
    for &c in &removed {
        let live: Vec<usize> = members
            .iter()
            .enumerate()
            .filter(|(i, m)| *i != primary_at && m.role() == Role::Producer)
            .filter(|(i, m)| !channel_is_zero(&values(model, m.tensor()), dims[*i], c, m.block()))
            .map(|(i, _)| i)
            .collect();
        if !live.is_empty() {
            leftovers.push((c, live));
        }
    }
    let mut done = GroupShrink {
        removed: removed.clone(),
        kept: g.channels() - removed.len(),
        inexact: leftovers.iter().map(|(c, _)| *c).collect(),
        folded: Vec::new(),
    };
    match inexact {
        Inexact::Refuse => {
            if let Some((c, live)) = leftovers.first() {
                return Err(PruneError::new(
                    members[live[0]].tensor(),
                    PruneErrorKind::InexactShrink {
                        channel: *c,
                        primary: primary.tensor().to_string(),
                    },
                ));
            }
        }
        Inexact::Drop => {}
        Inexact::Fold(activation) => {
            for (c, live) in &leftovers {
                fold(model, g, &dims, *c, live, activation)?;
                done.folded.push(*c);
            }
        }
    }
    let kept: Vec<usize> = (0..g.channels())
        .filter(|c| removed.binary_search(c).is_err())
        .collect();
    for (m, &dim) in members.iter().zip(&dims) {
        let idx: Vec<usize> = kept
            .iter()
            .flat_map(|&c| c * m.block()..(c + 1) * m.block())
            .collect();
        let (module, name) = split_path(m.tensor());
        model
            .store_at_mut(module)
            .expect("checked: every member's module is there")
            .keep_along(name, dim, &idx);
    }
    Ok(done)
}

/// Folds the constant output of channel `c` (made by the single 1-D
/// producer `live`) into every consumer's bias.
fn fold<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    g: &ChannelGroup,
    dims: &[usize],
    c: usize,
    live: &[usize],
    activation: fn(f64) -> f64,
) -> Result<(), PruneError> {
    let members = g.members();
    let source = &members[live[0]];
    let no_fold = |path: &str, reason| PruneError::new(path, PruneErrorKind::NoFold { reason });
    if live.len() > 1 {
        return Err(no_fold(
            source.tensor(),
            "the channel's constant comes from more than one tensor (a bias and a norm layer)",
        ));
    }
    // The channel's output is `activation(bias[c])` only where nothing
    // but the zeroed weight and that bias makes it: a norm layer (its
    // weight, bias or statistics) or a parallel projection between them
    // and the consumers changes it, even where it is zero on `c` (a norm
    // layer's zero scale sends its shift on, not the bias).
    let primary_at = members
        .iter()
        .position(|m| m.role() == Role::Producer)
        .expect("checked: a group has a producer");
    if let Some((_, other)) = members
        .iter()
        .enumerate()
        .find(|&(i, m)| i != primary_at && i != live[0] && m.role() != Role::Consumer)
    {
        return Err(no_fold(
            other.tensor(),
            "the group holds more than a weight and its bias before the consumers (a norm layer, its statistics, a parallel projection): the channel's output is not activation(bias)",
        ));
    }
    let bias = model
        .tensor(source.tensor())
        .expect("checked: every member's tensor is there");
    if bias.ndim() != 1 || source.block() != 1 {
        return Err(no_fold(
            source.tensor(),
            "the nonzero producer is not a 1-D bias",
        ));
    }
    let constant = activation(bias[[c]].as_f64());
    let consumers: Vec<(usize, usize)> = members
        .iter()
        .zip(dims)
        .enumerate()
        .filter(|(_, (m, _))| m.role() == Role::Consumer)
        .map(|(i, (_, &d))| (i, d))
        .collect();
    if consumers.is_empty() {
        return Err(no_fold(
            source.tensor(),
            "the group has no consumer: the constant is part of the model's output",
        ));
    }
    // Check every consumer before changing any.
    let mut updates = Vec::new();
    for &(i, dim) in &consumers {
        let m = &members[i];
        let w = model
            .tensor(m.tensor())
            .expect("checked: every member's tensor is there");
        if w.ndim() != 2 || dim != 1 {
            return Err(no_fold(
                m.tensor(),
                "only a 2-D weight read along dim 1 (a Linear) takes a constant exactly",
            ));
        }
        let (module, _) = split_path(m.tensor());
        let bias_path = if module.is_empty() {
            "bias".to_string()
        } else {
            format!("{module}.bias")
        };
        let is_plain = model
            .store_at(module)
            .is_some_and(|s| s.parameter("bias").is_some() && !s.is_pruned("bias"));
        if !is_plain {
            return Err(no_fold(
                m.tensor(),
                "no plain (unpruned) `bias` parameter beside it",
            ));
        }
        let add: Vec<f64> = w
            .axis_iter(Axis(0))
            .map(|row| {
                row.slice(ndarray::s![c * m.block()..(c + 1) * m.block()])
                    .iter()
                    .map(|&x| x.as_f64() * constant)
                    .sum()
            })
            .collect();
        let b = model.tensor(&bias_path).expect("checked just above");
        if b.shape() != [w.shape()[0]] {
            return Err(no_fold(
                m.tensor(),
                "its `bias` does not have one entry per output row",
            ));
        }
        updates.push((bias_path, add));
    }
    for (path, add) in updates {
        let mut b = model
            .parameter_mut(&path)
            .expect("checked: a plain bias parameter");
        for (x, a) in b.iter_mut().zip(add) {
            *x = T::from_f64(x.as_f64() + a);
        }
    }
    Ok(())
}
