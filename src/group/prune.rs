//! Pruning whole channel groups through the reparametrization.

use std::cmp::Ordering;

use ndarray::{ArrayD, Axis, Slice};

use super::importance::GroupImportance;
use super::spec::ChannelGroup;
use super::txn::Snapshot;
use crate::module::split_path;
use crate::{prune, Amount, Module, PruneError, PruneErrorKind, PruneFloat};

/// The channels of `group` already pruned: those entirely zero in the
/// primary producer's mask (none if the primary is not pruned).
pub(crate) fn pruned_channels<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &M,
    group: &ChannelGroup,
    dims: &[usize],
) -> Vec<bool> {
    let (at, primary) = group
        .members()
        .iter()
        .enumerate()
        .find(|(_, m)| m.role() == super::Role::Producer)
        .expect("checked: a group has a producer");
    let mask_path = format!("{}_mask", primary.tensor());
    let mut pruned = vec![false; group.channels()];
    let (module, name) = split_path(primary.tensor());
    let is_pruned = model.store_at(module).is_some_and(|s| s.is_pruned(name));
    if !is_pruned {
        return pruned;
    }
    let mask = model
        .buffer(&mask_path)
        .expect("a pruned tensor has its mask buffer");
    let block = primary.block();
    for (c, p) in pruned.iter_mut().enumerate() {
        let slab = mask.slice_axis(Axis(dims[at]), Slice::from(c * block..(c + 1) * block));
        *p = slab.iter().all(|&m| m == T::zero());
    }
    pruned
}

/// Prunes `amount` of the channels of `group` not yet pruned, those of
/// lowest group importance, from every masked member at once (through
/// `custom_from_mask`, so each member's mask is the product of its steps,
/// as PyTorch combines them). Channels already pruned in the primary
/// producer count as pruned and are pruned in every member too, so the
/// group stays consistent. Returns the channels pruned by this call,
/// ascending.
///
/// Ties: equal scores go lowest channel first; NaN scores rank largest.
/// The amount is measured on the channels not yet pruned (a fraction
/// rounds half to even, as everywhere in ndprune). The group is checked
/// first; a failing call changes nothing.
///
/// ```
/// use ndprune::group::{self, ChannelGroup, GroupImportance};
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut model = Sequential::new()
///     .with_child("a", Layer::new()
///         .with_parameter("weight", array![[3.0f32, 0.0], [0.1, 0.1], [2.0, 2.0]].into_dyn())?
///         .with_parameter("bias", array![1.0f32, 1.0, 1.0].into_dyn())?)?
///     .with_child("b", Layer::new().with_parameter("weight", array![[1.0f32, 1.0, 1.0]].into_dyn())?)?;
/// let g = ChannelGroup::new(3)
///     .producer("a.weight", Dim(0))
///     .producer("a.bias", Dim(0))
///     .consumer("b.weight", Dim(1));
/// let pruned = group::prune_group(&mut model, &g, Amount::Count(1), &GroupImportance::default())?;
/// assert_eq!(pruned, vec![1]);
/// assert_eq!(model.tensor("a.bias").unwrap(), &array![1.0f32, 0.0, 1.0].into_dyn());
/// assert_eq!(model.tensor("b.weight").unwrap(), &array![[1.0f32, 0.0, 1.0]].into_dyn());
/// # Ok(()) }
/// ```
pub fn prune_group<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    group: &ChannelGroup,
    amount: Amount,
    importance: &GroupImportance,
) -> Result<Vec<usize>, PruneError> {
    let dims = group.check(model)?;
    let already = pruned_channels(model, group, &dims);
    let open: Vec<usize> = (0..group.channels()).filter(|&c| !already[c]).collect();
    let k = amount.count_of(open.len()).map_err(|e| {
        let primary = group.primary().expect("checked: a group has a producer");
        e.in_tensor(primary.tensor())
    })?;
    let scores = importance.scores(model, group)?;
    let mut order = open;
    order.sort_by(|&a, &b| rank(scores[a], scores[b]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order.into_iter().take(k).collect();
    chosen.sort_unstable();
    apply_channels(model, group, &dims, &chosen, &already)?;
    Ok(chosen)
}

/// Prunes the given channels of `group` from every masked member (and the
/// channels already pruned in the primary producer, as
/// [`prune_group`] does). Fails, changing nothing, on a channel out of
/// range or named twice.
///
/// ```
/// use ndprune::group::{self, ChannelGroup};
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut l = Layer::new().with_parameter("weight", array![[1.0f64, 2.0], [3.0, 4.0]].into_dyn())?;
/// let g = ChannelGroup::new(2).producer("weight", Dim(1));
/// group::prune_channels(&mut l, &g, &[0])?;
/// assert_eq!(l.tensor("weight").unwrap(), &array![[0.0, 2.0], [0.0, 4.0]].into_dyn());
/// assert!(group::prune_channels(&mut l, &g, &[2]).is_err());
/// # Ok(()) }
/// ```
pub fn prune_channels<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    group: &ChannelGroup,
    channels: &[usize],
) -> Result<(), PruneError> {
    let dims = group.check(model)?;
    let mut chosen = channels.to_vec();
    chosen.sort_unstable();
    let primary = group.primary().expect("checked: a group has a producer");
    if let Some(&c) = chosen.last().filter(|&&c| c >= group.channels()) {
        return Err(PruneError::new(
            primary.tensor(),
            PruneErrorKind::AmountTooLarge {
                requested: c + 1,
                available: group.channels(),
            },
        ));
    }
    if chosen.windows(2).any(|w| w[0] == w[1]) {
        return Err(PruneError::new(
            primary.tensor(),
            PruneErrorKind::DuplicateMember,
        ));
    }
    let already = pruned_channels(model, group, &dims);
    apply_channels(model, group, &dims, &chosen, &already)
}

/// NaN ranks largest; otherwise the usual order.
fn rank(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).expect("neither is NaN"),
    }
}

/// Masks `chosen` and `already` in every masked member, all or nothing.
fn apply_channels<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &mut M,
    group: &ChannelGroup,
    dims: &[usize],
    chosen: &[usize],
    already: &[bool],
) -> Result<(), PruneError> {
    let snapshot = Snapshot::take(model, group.members().iter().map(|m| m.tensor()));
    let result = (|| {
        for (m, &dim) in group.members().iter().zip(dims) {
            if !m.role().is_masked() {
                continue;
            }
            let shape = model
                .tensor(m.tensor())
                .expect("checked: every member's tensor is there")
                .shape()
                .to_vec();
            let mut mask = ArrayD::<T>::ones(shape);
            let drops = chosen
                .iter()
                .copied()
                .chain((0..already.len()).filter(|&c| already[c]));
            for c in drops {
                mask.slice_axis_mut(Axis(dim), Slice::from(c * m.block()..(c + 1) * m.block()))
                    .fill(T::zero());
            }
            prune::custom_from_mask(model, m.tensor(), mask.view())?;
        }
        Ok(())
    })();
    if result.is_err() {
        snapshot.restore(model);
    }
    result
}
