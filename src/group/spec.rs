//! What a channel group is: the tensors and dims that share one channel
//! index, and the checks that tie a group to a model.

use std::collections::BTreeSet;

use crate::module::split_path;
use crate::{Dim, Module, PruneError, PruneErrorKind, PruneFloat};

/// How a tensor takes part in a [`ChannelGroup`].
///
/// ```
/// use ndprune::group::Role;
/// assert!(Role::Producer.is_masked());
/// assert!(!Role::Stats.is_masked());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Its slices along the dim make the channels' outputs: a weight's
    /// output rows, its bias, a following norm layer's weight and bias, a
    /// gate or up projection's rows. Masked when the group is pruned,
    /// ranked by the group importance, and cut by [`crate::group::shrink`].
    /// The first producer of a group is its *primary*: a channel whose
    /// every entry there is zero is one [`crate::group::shrink`] removes.
    Producer,
    /// It reads the channels: the next layer's input dim (a Linear's or
    /// conv's dim 1, a down projection's columns). Masked, ranked and cut
    /// like a producer.
    Consumer,
    /// Statistics kept per channel (a BatchNorm's `running_mean` and
    /// `running_var`): never masked (a masked variance would divide by
    /// almost zero), never ranked, only cut.
    Stats,
}

impl Role {
    /// Whether pruning the group masks this member.
    ///
    /// ```
    /// assert!(ndprune::group::Role::Consumer.is_masked());
    /// ```
    pub fn is_masked(self) -> bool {
        !matches!(self, Role::Stats)
    }
}

/// One tensor of a [`ChannelGroup`]: channel `c` is the run of `block`
/// indices `c * block .. (c + 1) * block` along `dim` of `tensor`.
///
/// `block` is 1 for a plain coupling, `H * W` where a conv's output is
/// flattened into a Linear (`Flatten` of `[C, H, W]`), and `head_dim`
/// (times the query heads per key/value head) for attention heads.
///
/// ```
/// use ndprune::group::{Member, Role};
/// use ndprune::Dim;
/// let m = Member::new("3.weight", Dim(1), Role::Consumer).with_block(16);
/// assert_eq!((m.tensor(), m.dim(), m.block()), ("3.weight", Dim(1), 16));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    tensor: String,
    dim: Dim,
    block: usize,
    role: Role,
}

impl Member {
    /// `tensor` (a dotted path) along `dim`, one index per channel.
    ///
    /// ```
    /// use ndprune::group::{Member, Role};
    /// let m = Member::new("0.bias", ndprune::Dim(0), Role::Producer);
    /// assert_eq!(m.block(), 1);
    /// ```
    pub fn new(tensor: impl Into<String>, dim: Dim, role: Role) -> Self {
        Member {
            tensor: tensor.into(),
            dim,
            block: 1,
            role,
        }
    }

    /// The same member with `block` consecutive indices per channel (0 is
    /// refused when the group is checked).
    ///
    /// ```
    /// use ndprune::group::{Member, Role};
    /// assert_eq!(Member::new("fc.weight", ndprune::Dim(1), Role::Consumer).with_block(49).block(), 49);
    /// ```
    pub fn with_block(self, block: usize) -> Self {
        Member { block, ..self }
    }

    /// The tensor's dotted path.
    ///
    /// ```
    /// # use ndprune::group::{Member, Role};
    /// assert_eq!(Member::new("a.b", ndprune::Dim(0), Role::Stats).tensor(), "a.b");
    /// ```
    pub fn tensor(&self) -> &str {
        &self.tensor
    }

    /// The channel dim, as given.
    ///
    /// ```
    /// # use ndprune::group::{Member, Role};
    /// assert_eq!(Member::new("w", ndprune::Dim(-1), Role::Consumer).dim(), ndprune::Dim(-1));
    /// ```
    pub fn dim(&self) -> Dim {
        self.dim
    }

    /// Indices per channel along the dim.
    ///
    /// ```
    /// # use ndprune::group::{Member, Role};
    /// assert_eq!(Member::new("w", ndprune::Dim(0), Role::Producer).block(), 1);
    /// ```
    pub fn block(&self) -> usize {
        self.block
    }

    /// How the tensor takes part.
    ///
    /// ```
    /// # use ndprune::group::{Member, Role};
    /// assert_eq!(Member::new("w", ndprune::Dim(0), Role::Stats).role(), Role::Stats);
    /// ```
    pub fn role(&self) -> Role {
        self.role
    }
}

/// The tensors and dims that share one channel index, so that a channel is
/// pruned (and removed) from all of them at once, as Torch-Pruning's
/// dependency groups: a conv's output channel is its weight's dim 0, its
/// bias, the following BatchNorm's four vectors and the next conv's dim 1.
///
/// Build one by hand for any architecture, or let
/// [`crate::group::infer_chain`] find the groups of a chain of layers.
///
/// ```
/// use ndprune::group::ChannelGroup;
/// use ndprune::Dim;
///
/// // Linear(4 -> 8) -> ReLU -> Linear(8 -> 3): the 8 hidden units.
/// let g = ChannelGroup::new(8)
///     .producer("0.weight", Dim(0))
///     .producer("0.bias", Dim(0))
///     .consumer("2.weight", Dim(1));
/// assert_eq!(g.channels(), 8);
/// assert_eq!(g.members().len(), 3);
/// assert_eq!(g.primary().map(|m| m.tensor()), Some("0.weight"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelGroup {
    channels: usize,
    members: Vec<Member>,
}

impl ChannelGroup {
    /// A group of `channels` channels, with no members yet.
    ///
    /// ```
    /// assert!(ndprune::group::ChannelGroup::new(4).members().is_empty());
    /// ```
    pub fn new(channels: usize) -> Self {
        ChannelGroup {
            channels,
            members: Vec::new(),
        }
    }

    /// Adds `member`.
    ///
    /// ```
    /// use ndprune::group::{ChannelGroup, Member, Role};
    /// let g = ChannelGroup::new(2).with(Member::new("w", ndprune::Dim(0), Role::Producer));
    /// assert_eq!(g.members().len(), 1);
    /// ```
    pub fn with(mut self, member: Member) -> Self {
        self.members.push(member);
        self
    }

    /// Adds a [`Role::Producer`] along `dim`, one index per channel.
    ///
    /// ```
    /// let g = ndprune::group::ChannelGroup::new(2).producer("0.weight", ndprune::Dim(0));
    /// assert_eq!(g.members()[0].tensor(), "0.weight");
    /// ```
    pub fn producer(self, tensor: &str, dim: Dim) -> Self {
        self.with(Member::new(tensor, dim, Role::Producer))
    }

    /// Adds a [`Role::Consumer`] along `dim`, one index per channel.
    ///
    /// ```
    /// let g = ndprune::group::ChannelGroup::new(2).consumer("1.weight", ndprune::Dim(1));
    /// assert_eq!(g.members()[0].role(), ndprune::group::Role::Consumer);
    /// ```
    pub fn consumer(self, tensor: &str, dim: Dim) -> Self {
        self.with(Member::new(tensor, dim, Role::Consumer))
    }

    /// Adds a [`Role::Stats`] member along `dim`.
    ///
    /// ```
    /// let g = ndprune::group::ChannelGroup::new(2).stats("1.running_var", ndprune::Dim(0));
    /// assert!(!g.members()[0].role().is_masked());
    /// ```
    pub fn stats(self, tensor: &str, dim: Dim) -> Self {
        self.with(Member::new(tensor, dim, Role::Stats))
    }

    /// The number of channels.
    ///
    /// ```
    /// assert_eq!(ndprune::group::ChannelGroup::new(3).channels(), 3);
    /// ```
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The members, in the order given.
    ///
    /// ```
    /// assert!(ndprune::group::ChannelGroup::new(3).members().is_empty());
    /// ```
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The first producer: where [`crate::group::shrink`] looks for
    /// channels that are entirely zero.
    ///
    /// ```
    /// assert!(ndprune::group::ChannelGroup::new(3).primary().is_none());
    /// ```
    pub fn primary(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == Role::Producer)
    }

    /// Checks the group against `model`: at least one producer, every
    /// member's tensor there, its dim in range and `channels * block` long,
    /// no tensor twice. Returns the resolved dims, one per member.
    ///
    /// ```
    /// use ndprune::group::ChannelGroup;
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let model = Sequential::<f32>::new().push(Layer::linear(4, 8, &mut rng)).push(Layer::linear(8, 2, &mut rng));
    /// let good = ChannelGroup::new(8).producer("0.weight", Dim(0)).consumer("1.weight", Dim(1));
    /// assert_eq!(good.check(&model).unwrap(), vec![0, 1]);
    /// let wrong = ChannelGroup::new(8).producer("0.weight", Dim(1));
    /// assert!(wrong.check(&model).is_err());
    /// ```
    pub fn check<T: PruneFloat, M: Module<T> + ?Sized>(
        &self,
        model: &M,
    ) -> Result<Vec<usize>, PruneError> {
        self.check_shapes(&|path| logical_shape(model, path))
    }

    /// [`ChannelGroup::check`] against tensors known by their shapes only
    /// (`shape_of` gives a tensor's shape, or the error for a missing one).
    pub(crate) fn check_shapes(
        &self,
        shape_of: &dyn Fn(&str) -> Result<Vec<usize>, PruneError>,
    ) -> Result<Vec<usize>, PruneError> {
        if self.primary().is_none() {
            return Err(PruneErrorKind::NoProducer.into());
        }
        let mut seen = BTreeSet::new();
        let mut dims = Vec::with_capacity(self.members.len());
        for m in &self.members {
            if !seen.insert(m.tensor.as_str()) {
                return Err(PruneError::new(&m.tensor, PruneErrorKind::DuplicateMember));
            }
            let shape = shape_of(&m.tensor)?;
            let dim = m
                .dim
                .resolve(shape.len())
                .map_err(|e| e.in_tensor(&m.tensor))?;
            let size = shape[dim];
            if m.block == 0 || self.channels.checked_mul(m.block) != Some(size) {
                return Err(PruneError::new(
                    &m.tensor,
                    PruneErrorKind::ChannelsMismatch {
                        dim,
                        size,
                        channels: self.channels,
                        block: m.block,
                    },
                ));
            }
            dims.push(dim);
        }
        Ok(dims)
    }
}

/// The shape of the tensor a user names at `path`: a plain parameter or
/// buffer, or a pruned tensor (whose original and mask have its shape). A
/// pruning mask or a pruned tensor's original is refused: a group names
/// the tensor itself.
pub(crate) fn logical_shape<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &M,
    path: &str,
) -> Result<Vec<usize>, PruneError> {
    let (module, name) = split_path(path);
    let store = model.store_at(module).ok_or_else(|| {
        PruneError::new(
            path,
            PruneErrorKind::NoSuchModule {
                path: module.to_string(),
            },
        )
    })?;
    if let Some(base) = name.strip_suffix("_orig").filter(|b| store.is_pruned(b)) {
        return Err(PruneError::new(
            path,
            PruneErrorKind::PartOfPruning {
                of: join_module(module, base),
            },
        ));
    }
    if let Some(base) = name.strip_suffix("_mask").filter(|b| store.is_pruned(b)) {
        return Err(PruneError::new(
            path,
            PruneErrorKind::PartOfPruning {
                of: join_module(module, base),
            },
        ));
    }
    store
        .get(name)
        .map(|t| t.shape().to_vec())
        .ok_or_else(|| PruneError::new(path, PruneErrorKind::NoSuchTensor))
}

fn join_module(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}.{name}")
    }
}
