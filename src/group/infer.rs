//! Groups found from a model's tensors: a chain of layers, each feeding the
//! next, in the natural order of their module paths.

use std::cmp::Ordering;

use super::spec::{ChannelGroup, Member, Role};
use crate::{Dim, Module, PruneError, PruneErrorKind, PruneFloat, TensorStore};

/// One layer as inference sees it.
enum Kind {
    /// A weight of 2 or more dims (Linear `[out, in]`, conv `[out, in, ...]`).
    Producer {
        out: usize,
        input: usize,
        spatial: bool,
        bias: bool,
    },
    /// Per-channel vectors with running statistics (a BatchNorm).
    Norm {
        len: usize,
        params: Vec<String>,
        stats: Vec<String>,
    },
    /// No tensors (an activation, a pooling, a flatten).
    Empty,
}

/// Tensor names with their shapes.
pub(crate) type Shapes = Vec<(String, Vec<usize>)>;

/// The names of a store's tensors as a user sees them: a pruned `weight`
/// once (not its `weight_orig` and `weight_mask`), then the buffers.
fn logical<T: PruneFloat>(store: &TensorStore<T>) -> (Shapes, Shapes) {
    let mut params = Vec::new();
    for (name, t) in store.parameters() {
        match name.strip_suffix("_orig").filter(|b| store.is_pruned(b)) {
            Some(base) => params.push((base.to_string(), t.shape().to_vec())),
            None => params.push((name.to_string(), t.shape().to_vec())),
        }
    }
    let buffers = store
        .own_buffers()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect();
    (params, buffers)
}

fn classify(path: &str, params: &Shapes, buffers: &Shapes) -> Result<Kind, PruneError> {
    if params.is_empty() && buffers.iter().all(|(_, s)| s.len() != 1) {
        return Ok(Kind::Empty);
    }
    if let Some((_, w)) = params.iter().find(|(n, s)| n == "weight" && s.len() >= 2) {
        let bias = params
            .iter()
            .any(|(n, s)| n == "bias" && s.as_slice() == [w[0]]);
        return Ok(Kind::Producer {
            out: w[0],
            input: w[1],
            spatial: w.len() > 2,
            bias,
        });
    }
    let vectors: Vec<&(String, Vec<usize>)> = params
        .iter()
        .chain(buffers.iter())
        .filter(|(_, s)| s.len() == 1)
        .collect();
    let len = vectors.first().map(|(_, s)| s[0]);
    let has_stats = buffers.iter().any(|(n, _)| n == "running_mean")
        && buffers.iter().any(|(n, _)| n == "running_var");
    match len {
        Some(len) if has_stats && vectors.iter().all(|(_, s)| s[0] == len) => Ok(Kind::Norm {
            len,
            params: params
                .iter()
                .filter(|(_, s)| s.len() == 1)
                .map(|(n, _)| n.clone())
                .collect(),
            stats: buffers
                .iter()
                .filter(|(_, s)| s.len() == 1)
                .map(|(n, _)| n.clone())
                .collect(),
        }),
        _ => Err(PruneErrorKind::AmbiguousLayer {
            layer: path.to_string(),
        }
        .into()),
    }
}

/// Module paths compared segment by segment, numbers as numbers
/// (`features.2` before `features.10`), so that a checkpoint's
/// alphabetical names come back in layer order.
fn natural(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

fn join(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}.{name}")
    }
}

/// The channel groups of a chain of layers, such as a [`crate::Sequential`]
/// of Linear, conv, BatchNorm and activation layers, or a checkpoint of
/// one: the modules holding tensors, in the natural order of their paths
/// (`features.2` before `features.10`), each feeding the next.
///
/// - A layer with a `weight` of 2 or more dims (Linear, conv) makes
///   `weight.shape[0]` channels: its weight's dim 0 and its `bias` are
///   producers.
/// - A layer of 1-D tensors with `running_mean` and `running_var` (a
///   BatchNorm) that follows joins that group: its parameters as producers,
///   its 1-D buffers as [`Role::Stats`].
/// - The next layer with a weight reads the channels along its dim 1: one
///   index per channel, or a block of `in / channels` when a conv's output
///   is flattened into a Linear (`in` a multiple of the channels).
/// - Layers without tensors (activations, pooling, flatten) pass through.
///
/// The last layer's outputs are the model's outputs and form no group.
/// Inference assumes a chain and checks the widths: a layer that reads a
/// width other than the previous one's (a grouped or depthwise conv, a
/// residual connection that breaks the chain) fails with
/// [`PruneErrorKind::NotAChain`], a LayerNorm or GroupNorm (1-D tensors
/// without running statistics, which mix channels) with
/// [`PruneErrorKind::AmbiguousLayer`]. For anything else, declare the
/// groups with [`ChannelGroup`]. A chain with matching widths that is not
/// really a chain (a residual block whose widths happen to agree) cannot
/// be told from its tensors: inference is for chains.
///
/// ```
/// use ndprune::group::{self, Role};
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let bn = Layer::<f32>::new()
///     .with_parameter("weight", ArrayD::ones(vec![4]))?
///     .with_parameter("bias", ArrayD::zeros(vec![4]))?
///     .with_buffer("running_mean", ArrayD::zeros(vec![4]))?
///     .with_buffer("running_var", ArrayD::ones(vec![4]))?;
/// let model = Sequential::<f32>::new()
///     .push(Layer::conv2d(1, 4, 3, &mut rng)) // 0: [4, 1, 3, 3]
///     .push(bn)                               // 1
///     .push(Layer::new())                     // 2: ReLU
///     .push(Layer::linear(4 * 5 * 5, 10, &mut rng)); // 3: after a flatten of [4, 5, 5]
/// let groups = group::infer_chain(&model)?;
/// assert_eq!(groups.len(), 1);
/// let g = &groups[0];
/// assert_eq!(g.channels(), 4);
/// let names: Vec<_> = g.members().iter().map(|m| (m.tensor(), m.role(), m.block())).collect();
/// assert_eq!(names, [
///     ("0.weight", Role::Producer, 1), ("0.bias", Role::Producer, 1),
///     ("1.weight", Role::Producer, 1), ("1.bias", Role::Producer, 1),
///     ("1.running_mean", Role::Stats, 1), ("1.running_var", Role::Stats, 1),
///     ("3.weight", Role::Consumer, 25),
/// ]);
/// # Ok(()) }
/// ```
pub fn infer_chain<T: PruneFloat, M: Module<T> + ?Sized>(
    model: &M,
) -> Result<Vec<ChannelGroup>, PruneError> {
    let mut stores: Vec<(String, Shapes, Shapes)> = Vec::new();
    model.visit_stores("", &mut |path, store| {
        let (params, buffers) = logical(store);
        stores.push((path.to_string(), params, buffers));
    });
    infer_layers(stores)
}

/// [`infer_chain`] over layers given as (module path, parameters,
/// buffers), each tensor by its name in the module and its shape.
pub(crate) fn infer_layers(
    stores: Vec<(String, Shapes, Shapes)>,
) -> Result<Vec<ChannelGroup>, PruneError> {
    let mut layers: Vec<(String, Kind)> = Vec::new();
    for (path, params, buffers) in &stores {
        match classify(path, params, buffers)? {
            Kind::Empty => {}
            k => layers.push((path.clone(), k)),
        }
    }
    layers.sort_by(|a, b| natural(&a.0, &b.0));
    let mut groups = Vec::new();
    // The open group: the last producer's channels, and whether they are
    // spatial (a conv's, so a flatten may follow).
    let mut open: Option<(ChannelGroup, bool)> = None;
    for (path, kind) in layers {
        match kind {
            Kind::Producer {
                out,
                input,
                spatial,
                bias,
            } => {
                if let Some((g, was_spatial)) = open.take() {
                    let c = g.channels();
                    let block = if input == c {
                        1
                    } else if was_spatial && !spatial && c > 0 && input % c == 0 {
                        input / c
                    } else {
                        return Err(PruneErrorKind::NotAChain {
                            layer: path,
                            reads: input,
                            channels: c,
                        }
                        .into());
                    };
                    groups.push(
                        g.with(
                            Member::new(join(&path, "weight"), Dim(1), Role::Consumer)
                                .with_block(block),
                        ),
                    );
                }
                let mut g = ChannelGroup::new(out).producer(&join(&path, "weight"), Dim(0));
                if bias {
                    g = g.producer(&join(&path, "bias"), Dim(0));
                }
                open = Some((g, spatial));
            }
            Kind::Norm { len, params, stats } => {
                let Some((mut g, spatial)) = open.take() else {
                    return Err(PruneErrorKind::NotAChain {
                        layer: path,
                        reads: len,
                        channels: 0,
                    }
                    .into());
                };
                if len != g.channels() {
                    return Err(PruneErrorKind::NotAChain {
                        layer: path,
                        reads: len,
                        channels: g.channels(),
                    }
                    .into());
                }
                for p in params {
                    g = g.producer(&join(&path, &p), Dim(0));
                }
                for s in stats {
                    g = g.stats(&join(&path, &s), Dim(0));
                }
                open = Some((g, spatial));
            }
            Kind::Empty => {}
        }
    }
    Ok(groups)
}
