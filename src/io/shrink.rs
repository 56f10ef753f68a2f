//! Shrinking checkpoint files: the empty (or least important) channels of
//! each group cut out of every tensor of the group, one tensor at a time,
//! shard by shard, in memory bounded by the largest tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use serde_json::{Map, Value};

use super::error::ConfigProblem;
use super::files::{CheckpointFiles, ModelView};
use super::shard::SHARD_INDEX;
use super::writer::alignment_rank;
use super::{
    CheckpointError, LoadOptions, Output, PendingDir, Progress, SafetensorsWriter, TargetProblem,
    TensorSpec, INDEX_SUFFIX,
};
use crate::group::{
    infer_layers, ChannelGroup, GroupImportance, GroupShrink, Inexact, Member, Role, Shapes,
};
use crate::mask::channels::view3;
use crate::{Amount, Dim, PruneError, PruneErrorKind};

/// Where [`FileShrinker`] gets its channel groups.
///
/// ```
/// use ndprune::io::ShrinkGroups;
/// assert!(matches!(ShrinkGroups::Chain, ShrinkGroups::Chain));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShrinkGroups {
    /// Inferred as for a chain of layers, from the tensors' names and
    /// shapes (see [`crate::group::infer_chain`]): `features.0.weight`,
    /// `features.1.running_mean`, ... in natural order.
    Chain,
    /// A Hugging Face decoder (LLaMA, Mistral, Qwen naming): per layer, the
    /// MLP's intermediate channels (`mlp.gate_proj` and `mlp.up_proj` rows,
    /// `mlp.down_proj` columns) and, with a `config.json` beside the
    /// shards, the key/value heads (`self_attn.q_proj` rows of the query
    /// heads that share a key/value head, `k_proj` and `v_proj` rows of the
    /// head, `o_proj` columns; biases where present). `config.json` is
    /// rewritten in the output (`intermediate_size`,
    /// `num_attention_heads`, `num_key_value_heads`, and `head_dim` kept
    /// explicit), which needs every layer to keep the same widths.
    Decoder,
    /// The groups given, by the tensors' names in the files.
    Declared(Vec<ChannelGroup>),
}

/// What [`FileShrinker`] does when the layers of a decoder
/// ([`ShrinkGroups::Decoder`]) would keep different widths (layers pruned
/// unevenly before the shrink, say) and `config.json` holds one width for
/// all of them, as LLaMA's, Mistral's and Qwen's do. A config whose
/// `intermediate_size` is a list with one width per layer takes each
/// layer's own width whatever this says.
///
/// ```
/// use ndprune::io::LayerWidths;
/// assert_eq!(LayerWidths::default(), LayerWidths::Refuse);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerWidths {
    /// Fail with [`ConfigProblem::NonUniform`], naming the widths: the
    /// default, since the other choice removes less than was pruned.
    #[default]
    Refuse,
    /// Every layer keeps the widest layer's width: a layer that would keep
    /// fewer channels keeps some of those it would lose, the ones of
    /// highest group importance (ties: lowest channel first). A kept
    /// channel that was pruned stays zero, so the shrunk model still
    /// computes what the masked one did; it is only less small.
    PadToWidest,
}

/// Shrinks checkpoint files: for each channel group, the channels entirely
/// zero in its primary producer (pruned by ndprune or PyTorch, as
/// `X_orig`/`X_mask` or after `remove`), and optionally a further
/// [`FileShrinker::amount`] of the rest ranked by a [`GroupImportance`],
/// are cut out of every tensor of the group (all three forms of a pruned
/// tensor alike). Every other tensor and file is copied as it is.
///
/// Each group is judged on the tensors as the files hold them. A removed
/// channel that another producer of the group still feeds with a nonzero
/// value (a bias) changes the model; [`Inexact::Refuse`] (the default)
/// fails, [`Inexact::Drop`] removes it and reports it, and
/// [`Inexact::Fold`] needs the model in memory ([`crate::group::shrink`]).
/// The output is written as the input is sharded (or to one file), whole
/// or not at all; memory holds one cut tensor at a time.
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointFiles, FileShrinker, Output, ShrinkGroups};
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = Sequential::<f32>::new()
///     .push(Layer::linear(6, 8, &mut rng))
///     .push(Layer::linear(8, 2, &mut rng));
/// let dir = std::env::temp_dir().join("ndprune-doc-file-shrink");
/// # let _ = std::fs::remove_dir_all(&dir); // a fresh directory
/// std::fs::create_dir_all(&dir)?;
/// let (input, output) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
/// Checkpoint::new(model).save(&input)?;
///
/// // Half of the hidden units, by group importance, cut from the file.
/// let report = FileShrinker::new(ShrinkGroups::Chain)
///     .amount(Amount::Fraction(0.5))
///     .run(&CheckpointFiles::open(&input)?, &Output::File(output.clone()))?;
/// assert_eq!(report.groups[0].1.kept, 4);
/// let small = Checkpoint::<f32>::load(&output)?;
/// assert_eq!(small.tensor("0.weight").unwrap().shape(), &[4, 6]);
/// assert_eq!(small.tensor("1.weight").unwrap().shape(), &[2, 4]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileShrinker {
    groups: ShrinkGroups,
    amount: Option<Amount>,
    importance: GroupImportance,
    inexact: Inexact,
    widths: LayerWidths,
}

/// What [`FileShrinker`] did, or would do.
///
/// ```
/// let r = ndprune::io::FileShrinkReport::default();
/// assert_eq!(r.bytes_before, r.bytes_after);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FileShrinkReport {
    /// Each group and what was cut from it.
    pub groups: Vec<(ChannelGroup, GroupShrink)>,
    /// Bytes of tensor data before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
    /// The fields of `config.json` rewritten ([`ShrinkGroups::Decoder`]),
    /// with their new values.
    pub config: Map<String, Value>,
    /// What was not done and why (attention heads without a
    /// `config.json`, say).
    pub notes: Vec<String>,
    /// The files written, by name.
    pub files: Vec<PathBuf>,
}

/// Per entry of the input, the cuts to make: (dim, indices kept).
type Cuts = Vec<Vec<(usize, Vec<usize>)>>;

/// A tensor as a user names it: plain, or pruned as `X_orig` and `X_mask`.
#[derive(Debug, Clone)]
struct Logical {
    shape: Vec<usize>,
    dtype: Dtype,
    /// Entry indices: `[plain]` or `[orig, mask]`.
    parts: Vec<usize>,
}

impl FileShrinker {
    /// A shrinker of the groups `groups`, removing only the channels that
    /// are entirely zero in each group's primary producer.
    ///
    /// ```
    /// use ndprune::io::{FileShrinker, ShrinkGroups};
    /// let _ = FileShrinker::new(ShrinkGroups::Decoder);
    /// ```
    pub fn new(groups: ShrinkGroups) -> Self {
        FileShrinker {
            groups,
            amount: None,
            importance: GroupImportance::default(),
            inexact: Inexact::Refuse,
            widths: LayerWidths::Refuse,
        }
    }

    /// Also removes `amount` of each group's remaining channels, those of
    /// lowest importance (ties lowest channel first, NaN largest; a
    /// fraction rounds half to even), as [`crate::group::prune_group`]
    /// followed by [`crate::group::shrink`] would.
    ///
    /// ```
    /// use ndprune::io::{FileShrinker, ShrinkGroups};
    /// let _ = FileShrinker::new(ShrinkGroups::Chain).amount(ndprune::Amount::Fraction(0.25));
    /// ```
    pub fn amount(mut self, amount: Amount) -> Self {
        self.amount = Some(amount);
        self
    }

    /// How channels are ranked for [`FileShrinker::amount`] (default: L2
    /// over everything a channel owns).
    ///
    /// ```
    /// use ndprune::group::{GroupImportance, Reduction};
    /// use ndprune::io::{FileShrinker, ShrinkGroups};
    /// let imp = GroupImportance::new(ndprune::Norm::L(1.0), Reduction::Primary).unwrap();
    /// let _ = FileShrinker::new(ShrinkGroups::Chain).importance(imp);
    /// ```
    pub fn importance(mut self, importance: GroupImportance) -> Self {
        self.importance = importance;
        self
    }

    /// What to do with a removed channel that still feeds a constant (see
    /// [`Inexact`]; [`Inexact::Fold`] is refused on files).
    ///
    /// ```
    /// use ndprune::group::Inexact;
    /// use ndprune::io::{FileShrinker, ShrinkGroups};
    /// let _ = FileShrinker::new(ShrinkGroups::Chain).inexact(Inexact::Drop);
    /// ```
    pub fn inexact(mut self, inexact: Inexact) -> Self {
        self.inexact = inexact;
        self
    }

    /// What to do when a decoder's layers would keep different widths
    /// (see [`LayerWidths`]; default [`LayerWidths::Refuse`]).
    ///
    /// ```
    /// use ndprune::io::{FileShrinker, LayerWidths, ShrinkGroups};
    /// let _ = FileShrinker::new(ShrinkGroups::Decoder).layer_widths(LayerWidths::PadToWidest);
    /// ```
    pub fn layer_widths(mut self, widths: LayerWidths) -> Self {
        self.widths = widths;
        self
    }

    /// The groups and the channels that would go, without writing.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles, FileShrinker, ShrinkGroups};
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let model = Sequential::<f32>::new().push(Layer::linear(3, 4, &mut rng)).push(Layer::linear(4, 1, &mut rng));
    /// let path = std::env::temp_dir().join("ndprune-doc-shrink-plan.safetensors");
    /// Checkpoint::new(model).save(&path)?;
    /// let plan = FileShrinker::new(ShrinkGroups::Chain).plan(&CheckpointFiles::open(&path)?)?;
    /// assert_eq!(plan.groups.len(), 1);
    /// assert!(plan.groups[0].1.removed.is_empty()); // nothing is zero yet
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    pub fn plan(&self, input: &CheckpointFiles) -> Result<FileShrinkReport, CheckpointError> {
        let view = input.view()?;
        self.plan_view(input, &view).map(|(report, _)| report)
    }

    /// Shrinks `input` into `output` ([`Output::File`] or
    /// [`Output::Directory`], as the input is sharded). The input is never
    /// written; the output appears whole or not at all.
    ///
    /// ```
    /// use ndprune::io::{CheckpointFiles, FileShrinker, Output, ShrinkGroups};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-shrink-run.safetensors");
    /// # ndprune::io::Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// let out = std::env::temp_dir().join("ndprune-doc-shrink-run-out");
    /// let err = FileShrinker::new(ShrinkGroups::Chain)
    ///     .run(&CheckpointFiles::open(&path)?, &Output::Shards { dir: out, max_shard_bytes: 1 << 30 });
    /// assert!(err.is_err()); // re-sharding is not offered here
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    pub fn run(
        &self,
        input: &CheckpointFiles,
        output: &Output,
    ) -> Result<FileShrinkReport, CheckpointError> {
        self.run_with(input, output, &mut ())
    }

    /// [`FileShrinker::run`], telling `progress` what is written (as
    /// [`crate::io::FilePruner::run`] does).
    ///
    /// ```
    /// use ndprune::io::{CheckpointFiles, FileShrinker, Output, ShrinkGroups};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-shrink-with.safetensors");
    /// # ndprune::io::Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// let out = std::env::temp_dir().join("ndprune-doc-shrink-with-out.safetensors");
    /// FileShrinker::new(ShrinkGroups::Chain).run_with(&CheckpointFiles::open(&path)?, &Output::File(out.clone()), &mut ())?;
    /// assert!(out.exists());
    /// # std::fs::remove_file(&path)?; std::fs::remove_file(&out)?;
    /// # Ok(()) }
    /// ```
    pub fn run_with(
        &self,
        input: &CheckpointFiles,
        output: &Output,
        progress: &mut dyn Progress,
    ) -> Result<FileShrinkReport, CheckpointError> {
        if let Output::Shards { dir, .. } = output {
            return Err(CheckpointError::BadTarget {
                path: dir.clone(),
                problem: TargetProblem::Unsupported {
                    what: "re-sharding while shrinking (shrink into a directory, then re-shard)",
                },
            });
        }
        output.check_for(input)?;
        let view = input.view()?;
        let (mut report, cuts) = self.plan_view(input, &view)?;
        report.files = write(input, &view, &cuts, output, &report.config, progress)?;
        if matches!(output, Output::File(_)) && !report.config.is_empty() {
            report.notes.push(format!(
                "the output is one file, with no config.json beside it: the model's config must become {}",
                Value::Object(report.config.clone())
            ));
        }
        Ok(report)
    }

    fn plan_view(
        &self,
        input: &CheckpointFiles,
        view: &ModelView<'_>,
    ) -> Result<(FileShrinkReport, Cuts), CheckpointError> {
        let entries = view.entries();
        let origin = input.origin().to_path_buf();
        let fail = |tensor: String, e: PruneError| CheckpointError::Prune {
            path: origin.clone(),
            tensor,
            source: Box::new(e),
        };
        if matches!(self.inexact, Inexact::Fold(_)) {
            return Err(fail(
                String::new(),
                PruneErrorKind::NoFold {
                    reason: "folding needs the model in memory (load it and use group::shrink)",
                }
                .into(),
            ));
        }
        let logical = logical_tensors(view);
        let mut notes = Vec::new();
        let mut config_in = None;
        let groups = match &self.groups {
            ShrinkGroups::Declared(g) => g.clone(),
            ShrinkGroups::Chain => {
                chain_groups(&logical).map_err(|e| fail(e.tensor().unwrap_or("").to_owned(), e))?
            }
            ShrinkGroups::Decoder => {
                let config = read_config(input)?;
                let g = decoder_groups(&logical, config.as_ref(), &mut notes).map_err(|p| {
                    CheckpointError::Config {
                        path: config_path(input),
                        problem: p,
                    }
                })?;
                config_in = config;
                g
            }
        };
        let shape_of = |name: &str| {
            logical
                .get(name)
                .map(|l| l.shape.clone())
                .ok_or_else(|| PruneError::new(name, PruneErrorKind::NoSuchTensor))
        };
        // Members are cut and read element by element: their elements
        // must be whole bytes (no packed 4- or 6-bit dtypes).
        for m in groups.iter().flat_map(ChannelGroup::members) {
            if let Some(l) = logical.get(m.tensor()) {
                for &e in &l.parts {
                    let d = entries[e].dtype();
                    if d.bitsize() % 8 != 0 || d.bitsize() == 0 {
                        return Err(CheckpointError::WrongDtype {
                            path: origin.clone(),
                            tensor: entries[e].name().to_string(),
                            wanted: Dtype::U8,
                            found: d,
                        });
                    }
                }
            }
        }
        // First the channels each group would lose, then (decoder layers of
        // different widths, padded) some of them kept, then the cuts.
        let mut chosen = Vec::with_capacity(groups.len());
        for g in &groups {
            let dims = g
                .check_shapes(&shape_of)
                .map_err(|e| fail(e.tensor().unwrap_or("").to_owned(), e))?;
            let members = g.members();
            let pi = members
                .iter()
                .position(|m| m.role() == Role::Producer)
                .expect("checked: a group has a producer");
            let zero = |m: &Member, dim: usize| {
                let l = &logical[m.tensor()];
                zero_channels(view, l, dim, m.block(), g.channels())
            };
            let zeros = zero(&members[pi], dims[pi]);
            let mut removed: Vec<usize> = (0..g.channels()).filter(|&c| zeros[c]).collect();
            // Other producers still live on a zero channel.
            let mut inexact = Vec::new();
            for (i, m) in members.iter().enumerate() {
                if i == pi || m.role() != Role::Producer || removed.is_empty() {
                    continue;
                }
                let z = zero(m, dims[i]);
                for &c in &removed {
                    if !z[c] {
                        if matches!(self.inexact, Inexact::Refuse) {
                            return Err(fail(
                                m.tensor().to_owned(),
                                PruneError::new(
                                    m.tensor(),
                                    PruneErrorKind::InexactShrink {
                                        channel: c,
                                        primary: members[pi].tensor().to_string(),
                                    },
                                ),
                            ));
                        }
                        inexact.push(c);
                    }
                }
            }
            inexact.sort_unstable();
            inexact.dedup();
            if let Some(amount) = self.amount {
                let open: Vec<usize> = (0..g.channels()).filter(|&c| !zeros[c]).collect();
                let primary = members[pi].tensor();
                let k = amount
                    .count_of(open.len())
                    .map_err(|e| fail(primary.to_owned(), e.in_tensor(primary)))?;
                let scores = self.scores(view, &logical, g, &dims);
                let mut order = open;
                order.sort_by(|&a, &b| rank(scores[a], scores[b]).then(a.cmp(&b)));
                removed.extend(order.into_iter().take(k));
                removed.sort_unstable();
            }
            chosen.push((dims, removed, inexact));
        }
        if matches!(self.groups, ShrinkGroups::Decoder) && self.widths == LayerWidths::PadToWidest {
            self.pad_to_widest(view, &logical, &groups, &mut chosen);
        }
        let mut results = Vec::with_capacity(groups.len());
        let mut cuts: Vec<Vec<(usize, Vec<usize>)>> = vec![Vec::new(); entries.len()];
        let mut cut_dims = std::collections::BTreeSet::new();
        for (g, (dims, removed, inexact)) in groups.iter().zip(chosen) {
            let members = g.members();
            let kept: Vec<usize> = (0..g.channels())
                .filter(|c| removed.binary_search(c).is_err())
                .collect();
            for (m, &dim) in members.iter().zip(&dims) {
                if !cut_dims.insert((m.tensor().to_string(), dim)) {
                    return Err(fail(
                        m.tensor().to_owned(),
                        PruneError::new(m.tensor(), PruneErrorKind::DuplicateMember),
                    ));
                }
                let idx: Vec<usize> = kept
                    .iter()
                    .flat_map(|&c| c * m.block()..(c + 1) * m.block())
                    .collect();
                for &e in &logical[m.tensor()].parts {
                    cuts[e].push((dim, idx.clone()));
                }
            }
            let done = GroupShrink {
                kept: kept.len(),
                removed,
                inexact,
                ..GroupShrink::default()
            };
            results.push((g.clone(), done));
        }
        let config = match (&self.groups, config_in) {
            (ShrinkGroups::Decoder, Some(cfg)) => {
                decoder_config(&cfg, &results).map_err(|p| CheckpointError::Config {
                    path: config_path(input),
                    problem: p,
                })?
            }
            (ShrinkGroups::Decoder, None) => {
                // No config to rewrite: say what it must become.
                let empty = Map::new();
                let cut = results.iter().any(|(_, r)| !r.removed.is_empty());
                match decoder_config(&empty, &results) {
                    Ok(wanted) => {
                        if let Some(w) = wanted.get("intermediate_size").filter(|_| cut) {
                            notes.push(format!(
                                "no config.json beside the checkpoint: the model's intermediate_size is now {w}"
                            ));
                        }
                    }
                    Err(problem @ ConfigProblem::NothingKept { .. }) => {
                        return Err(CheckpointError::Config {
                            path: config_path(input),
                            problem,
                        })
                    }
                    Err(problem) => notes.push(format!(
                        "no config.json beside the checkpoint, and no one config could describe the result: {problem}"
                    )),
                }
                Map::new()
            }
            _ => Map::new(),
        };
        let bytes_before: u64 = entries.iter().map(|e| e.data().len() as u64).sum();
        let bytes_after: u64 = entries
            .iter()
            .zip(&cuts)
            .map(|(e, c)| {
                let (shape, _) = cut_shape(e.shape(), c);
                let n: usize = shape.iter().product();
                let full: usize = e.shape().iter().product();
                match e.data().len().checked_div(full) {
                    Some(per) => (per * n) as u64,
                    None => e.data().len() as u64,
                }
            })
            .sum();
        Ok((
            FileShrinkReport {
                groups: results,
                bytes_before,
                bytes_after,
                config,
                notes,
                files: Vec::new(),
            },
            cuts,
        ))
    }

    /// [`LayerWidths::PadToWidest`]: among the groups of one kind (MLP
    /// channels, key/value heads) and one size, each keeps as many
    /// channels as the one that keeps most, by giving back the channels
    /// it would lose of highest importance. `chosen` holds each group's
    /// dims, removed channels and inexact channels.
    #[allow(clippy::type_complexity)]
    fn pad_to_widest(
        &self,
        view: &ModelView<'_>,
        logical: &BTreeMap<String, Logical>,
        groups: &[ChannelGroup],
        chosen: &mut [(Vec<usize>, Vec<usize>, Vec<usize>)],
    ) {
        let mut widest: BTreeMap<(bool, usize), usize> = BTreeMap::new();
        for (g, (_, removed, _)) in groups.iter().zip(chosen.iter()) {
            let w = widest.entry((is_mlp(g), g.channels())).or_default();
            *w = (*w).max(g.channels() - removed.len());
        }
        for (g, (dims, removed, inexact)) in groups.iter().zip(chosen.iter_mut()) {
            let target = widest[&(is_mlp(g), g.channels())];
            let back = target - (g.channels() - removed.len());
            if back == 0 {
                continue;
            }
            let scores = self.scores(view, logical, g, dims);
            let mut order = removed.clone();
            order.sort_by(|&a, &b| rank(scores[b], scores[a]).then(a.cmp(&b)));
            let keep: std::collections::BTreeSet<usize> = order.into_iter().take(back).collect();
            removed.retain(|c| !keep.contains(c));
            inexact.retain(|c| !keep.contains(c));
        }
    }

    /// Group importance of each channel, from the files' bytes.
    fn scores(
        &self,
        view: &ModelView<'_>,
        logical: &BTreeMap<String, Logical>,
        g: &ChannelGroup,
        dims: &[usize],
    ) -> Vec<f64> {
        let members = g.members();
        let pi = members
            .iter()
            .position(|m| m.role() == Role::Producer)
            .expect("checked: a group has a producer");
        let mut acc = vec![0.0f64; g.channels()];
        for (i, (m, &dim)) in members.iter().zip(dims).enumerate() {
            if !self.importance.ranks(m.role(), i == pi) {
                continue;
            }
            let l = &logical[m.tensor()];
            let mut local = vec![0.0f64; g.channels()];
            for_each_value(view, l, dim, |j, x| {
                self.importance.add(&mut local[j / m.block()], x);
            });
            self.importance.member_done(&mut local);
            self.importance.reduce(&mut acc, &local);
        }
        self.importance.finish(&mut acc);
        acc
    }
}

/// NaN ranks largest; otherwise the usual order.
fn rank(a: f64, b: f64) -> std::cmp::Ordering {
    a.is_nan()
        .cmp(&b.is_nan())
        .then(a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal))
}

/// Every tensor by the name a user gives it: plain tensors, and pruned
/// ones (their `X_orig` and `X_mask`) under `X`.
fn logical_tensors(view: &ModelView<'_>) -> BTreeMap<String, Logical> {
    let entries = view.entries();
    let mut out = BTreeMap::new();
    let mut paired = std::collections::HashSet::new();
    for (base, o, m) in view.pruned_pairs() {
        paired.insert(o);
        paired.insert(m);
        out.insert(
            base.to_string(),
            Logical {
                shape: entries[o].shape().to_vec(),
                dtype: entries[o].dtype(),
                parts: vec![o, m],
            },
        );
    }
    for (i, e) in entries.iter().enumerate() {
        if !paired.contains(&i) {
            out.insert(
                e.name().to_string(),
                Logical {
                    shape: e.shape().to_vec(),
                    dtype: e.dtype(),
                    parts: vec![i],
                },
            );
        }
    }
    out
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

fn chain_groups(logical: &BTreeMap<String, Logical>) -> Result<Vec<ChannelGroup>, PruneError> {
    let buffers = LoadOptions::default();
    let mut modules: BTreeMap<String, (Shapes, Shapes)> = BTreeMap::new();
    for (name, l) in logical {
        if !is_float(l.dtype) {
            continue;
        }
        let (module, local) = name.rsplit_once('.').unwrap_or(("", name));
        let slot = modules.entry(module.to_string()).or_default();
        let item = (local.to_string(), l.shape.clone());
        if buffers.is_buffer(name) {
            slot.1.push(item);
        } else {
            slot.0.push(item);
        }
    }
    infer_layers(modules.into_iter().map(|(m, (p, b))| (m, p, b)).collect())
}

fn config_path(input: &CheckpointFiles) -> PathBuf {
    input
        .other_files()
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "config.json"))
        .cloned()
        .unwrap_or_else(|| input.origin().join("config.json"))
}

/// The input's `config.json`, if it has one beside the shards.
fn read_config(input: &CheckpointFiles) -> Result<Option<Map<String, Value>>, CheckpointError> {
    let Some(path) = input
        .other_files()
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "config.json"))
    else {
        return Ok(None);
    };
    let text = std::fs::read(path)
        .map_err(|e| CheckpointError::io(path, "reading the model config", e))?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(CheckpointError::Config {
            path: path.clone(),
            problem: ConfigProblem::NotAnObject,
        }),
        Err(e) => Err(CheckpointError::Config {
            path: path.clone(),
            problem: ConfigProblem::Json {
                reason: e.to_string(),
            },
        }),
    }
}

/// A config value that is a positive whole number that fits.
fn positive_count(v: &Value) -> Option<usize> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
}

fn count_field(
    config: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<usize>, ConfigProblem> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => positive_count(v)
            .map(Some)
            .ok_or(ConfigProblem::BadField { field }),
    }
}

/// The config's attention heads, key/value heads (default: as many) and
/// head width (`head_dim`, else `hidden_size / heads`), checked to divide.
fn head_counts(cfg: &Map<String, Value>) -> Result<(usize, usize, usize), ConfigProblem> {
    let heads = count_field(cfg, "num_attention_heads")?.ok_or(ConfigProblem::MissingField {
        field: "num_attention_heads",
    })?;
    let kv = count_field(cfg, "num_key_value_heads")?.unwrap_or(heads);
    let head_dim = match count_field(cfg, "head_dim")? {
        Some(d) => d,
        None => count_field(cfg, "hidden_size")?
            .map(|h| h / heads)
            .ok_or(ConfigProblem::MissingField { field: "head_dim" })?,
    };
    if heads % kv != 0 {
        return Err(ConfigProblem::HeadsNotDivisible {
            heads,
            kv_heads: kv,
        });
    }
    Ok((heads, kv, head_dim))
}

/// The decoder's groups: each layer's MLP channels and key/value heads.
fn decoder_groups(
    logical: &BTreeMap<String, Logical>,
    config: Option<&Map<String, Value>>,
    notes: &mut Vec<String>,
) -> Result<Vec<ChannelGroup>, ConfigProblem> {
    let has = |n: &str| logical.contains_key(n);
    let mut groups = Vec::new();
    for (name, l) in logical {
        if let Some(p) = name.strip_suffix("mlp.gate_proj.weight") {
            let t = |s: &str| format!("{p}mlp.{s}");
            if !(has(&t("up_proj.weight")) && has(&t("down_proj.weight"))) || l.shape.len() != 2 {
                continue;
            }
            let mut g = ChannelGroup::new(l.shape[0])
                .producer(&t("gate_proj.weight"), Dim(0))
                .producer(&t("up_proj.weight"), Dim(0));
            for b in ["gate_proj.bias", "up_proj.bias"] {
                if has(&t(b)) {
                    g = g.producer(&t(b), Dim(0));
                }
            }
            groups.push(g.consumer(&t("down_proj.weight"), Dim(1)));
        }
    }
    let attention: Vec<&String> = logical
        .keys()
        .filter(|n| n.ends_with("self_attn.q_proj.weight"))
        .collect();
    if !attention.is_empty() {
        match config {
            None => notes.push(
                "attention heads not grouped: no config.json beside the shards gives the head counts"
                    .into(),
            ),
            Some(cfg) => {
                let (heads, kv, head_dim) = head_counts(cfg)?;
                let per = heads / kv;
                for name in attention {
                    let p = name.strip_suffix("q_proj.weight").expect("filtered above");
                    let t = |s: &str| format!("{p}{s}");
                    if !["k_proj.weight", "v_proj.weight", "o_proj.weight"].iter().all(|s| has(&t(s))) {
                        continue;
                    }
                    // The head counts must be this checkpoint's.
                    for (proj, field, n) in [("q_proj.weight", "num_attention_heads", heads), ("k_proj.weight", "num_key_value_heads", kv)] {
                        let rows = logical[&t(proj)].shape.first().copied();
                        if rows != Some(n * head_dim) {
                            return Err(ConfigProblem::Disagrees {
                                field,
                                config: format!("{n} heads of {head_dim} ({} rows of {})", n * head_dim, t(proj)),
                                tensors: match rows {
                                    Some(r) => format!("{r} rows"),
                                    None => "a scalar".into(),
                                },
                            });
                        }
                    }
                    let mut g = ChannelGroup::new(kv)
                        .with(Member::new(t("q_proj.weight"), Dim(0), Role::Producer).with_block(per * head_dim))
                        .with(Member::new(t("k_proj.weight"), Dim(0), Role::Producer).with_block(head_dim))
                        .with(Member::new(t("v_proj.weight"), Dim(0), Role::Producer).with_block(head_dim));
                    for (b, block) in [("q_proj.bias", per * head_dim), ("k_proj.bias", head_dim), ("v_proj.bias", head_dim)] {
                        if has(&t(b)) {
                            g = g.with(Member::new(t(b), Dim(0), Role::Producer).with_block(block));
                        }
                    }
                    groups.push(g.with(Member::new(t("o_proj.weight"), Dim(1), Role::Consumer).with_block(per * head_dim)));
                }
            }
        }
    }
    Ok(groups)
}

/// Whether `g` is a decoder layer's MLP group (else its key/value heads).
fn is_mlp(g: &ChannelGroup) -> bool {
    primary_name(g).ends_with("mlp.gate_proj.weight")
}

/// The layer number `N` of a tensor named `...layers.N....`, for ordering
/// layers as numbers (`layers.2` before `layers.10`).
fn layer_number(name: &str) -> Option<usize> {
    let (_, rest) = name.split_once("layers.")?;
    rest.split('.').next()?.parse().ok()
}

/// `width` of each group of one kind (MLP or key/value heads), in layer
/// order.
fn in_layer_order(
    results: &[(ChannelGroup, GroupShrink)],
    mlp: bool,
    width: impl Fn(&ChannelGroup, &GroupShrink) -> usize,
) -> Vec<usize> {
    let mut w: Vec<(Option<usize>, &str, usize)> = results
        .iter()
        .filter(|(g, _)| is_mlp(g) == mlp)
        .map(|(g, r)| (layer_number(primary_name(g)), primary_name(g), width(g, r)))
        .collect();
    w.sort();
    w.into_iter().map(|(_, _, width)| width).collect()
}

/// The first producer of a decoder group, which names its layer.
fn primary_name(g: &ChannelGroup) -> &str {
    g.primary()
        .expect("a decoder group is built with its producers")
        .tensor()
}

/// Checks that `cfg`'s MLP widths are those of the checkpoint the groups
/// were read from (before the cut), so that a config of another model is
/// refused rather than rewritten.
fn check_config_matches(
    cfg: &Map<String, Value>,
    results: &[(ChannelGroup, GroupShrink)],
) -> Result<(), ConfigProblem> {
    let mlp = in_layer_order(results, true, |g, _| g.channels());
    let disagrees = |config: String| ConfigProblem::Disagrees {
        field: "intermediate_size",
        config,
        tensors: format!("{mlp:?} (per layer)"),
    };
    let field = "intermediate_size";
    match cfg.get(field) {
        _ if mlp.is_empty() => {}
        Some(Value::Array(list)) => {
            if list.len() != mlp.len() {
                return Err(ConfigProblem::ListLength {
                    field,
                    len: list.len(),
                    layers: mlp.len(),
                });
            }
            let stated = list
                .iter()
                .map(positive_count)
                .collect::<Option<Vec<usize>>>()
                .ok_or(ConfigProblem::BadField { field })?;
            if stated != mlp {
                return Err(disagrees(format!("{stated:?}")));
            }
        }
        _ => {
            if let Some(n) = count_field(cfg, field)? {
                if mlp.iter().any(|&w| w != n) {
                    return Err(disagrees(n.to_string()));
                }
            }
        }
    }
    // The head counts made the attention groups, checked against the
    // tensors there (`decoder_groups`).
    Ok(())
}

/// The rewritten fields of a decoder's config. `intermediate_size` given
/// as a list (one width per layer) gets each layer's width; a single
/// number, and the head counts, need every layer to keep the same width.
fn decoder_config(
    cfg: &Map<String, Value>,
    results: &[(ChannelGroup, GroupShrink)],
) -> Result<Map<String, Value>, ConfigProblem> {
    let mut out = Map::new();
    let uniform =
        |what: &'static str, widths: Vec<usize>| -> Result<Option<usize>, ConfigProblem> {
            match widths.first() {
                None => Ok(None),
                Some(&w) if widths.iter().all(|&x| x == w) => Ok(Some(w)),
                Some(_) => Err(ConfigProblem::NonUniform { what, widths }),
            }
        };
    if let Some((g, _)) = results.iter().find(|(_, r)| r.kept == 0) {
        return Err(ConfigProblem::NothingKept {
            what: if is_mlp(g) {
                "intermediate_size"
            } else {
                "num_key_value_heads"
            },
            tensor: primary_name(g).to_string(),
        });
    }
    check_config_matches(cfg, results)?;
    let mlp = in_layer_order(results, true, |_, r| r.kept);
    let kv = in_layer_order(results, false, |_, r| r.kept);
    match cfg.get("intermediate_size") {
        Some(Value::Array(per_layer)) if !mlp.is_empty() => {
            let new: Vec<Value> = mlp.iter().map(|&w| Value::from(w)).collect();
            if per_layer != &new {
                out.insert("intermediate_size".into(), Value::Array(new));
            }
        }
        _ => {
            if let Some(w) = uniform("intermediate_size", mlp)? {
                if count_field(cfg, "intermediate_size")? != Some(w) {
                    out.insert("intermediate_size".into(), Value::from(w));
                }
            }
        }
    }
    if let Some(k) = uniform("num_key_value_heads", kv)? {
        // Key/value groups exist only where `decoder_groups` read these.
        let (heads, old_kv, head_dim) = head_counts(cfg)?;
        if k != old_kv {
            out.insert(
                "num_attention_heads".into(),
                Value::from(k * (heads / old_kv)),
            );
            out.insert("num_key_value_heads".into(), Value::from(k));
            out.insert("head_dim".into(), Value::from(head_dim));
        }
    }
    Ok(out)
}

/// Bytes per element of a dtype whose elements are whole bytes.
fn elem_size(dtype: Dtype) -> usize {
    dtype.bitsize() / 8
}

/// Whether the element at `b` is zero (±0 for floats), and whether it is
/// finite.
fn zero_and_finite(dtype: Dtype, b: &[u8]) -> (bool, bool) {
    match dtype {
        Dtype::F16 | Dtype::BF16 => {
            let v = u16::from_le_bytes([b[0], b[1]]);
            let exp = if dtype == Dtype::F16 { 0x7c00 } else { 0x7f80 };
            (v & 0x7fff == 0, v & exp != exp)
        }
        Dtype::F32 => {
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (v & 0x7fff_ffff == 0, v & 0x7f80_0000 != 0x7f80_0000)
        }
        Dtype::F64 => {
            let v = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            (
                v & 0x7fff_ffff_ffff_ffff == 0,
                v & 0x7ff0_0000_0000_0000 != 0x7ff0_0000_0000_0000,
            )
        }
        _ => (b.iter().all(|&x| x == 0), true),
    }
}

/// The element at `b` as f64 (floats; other dtypes as their bytes say
/// nothing of magnitude and are never ranked).
fn value(dtype: Dtype, b: &[u8]) -> f64 {
    match dtype {
        Dtype::BF16 => f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16) as f64,
        Dtype::F16 => f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
        Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        Dtype::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        _ => f64::NAN,
    }
}

/// IEEE half precision to f64, exactly (every f16 is an f64).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// For each channel (runs of `block` along `dim`), whether the tensor's
/// values are all zero there (a pruned tensor's value is `orig * mask`:
/// zero where orig is zero, or where the mask is and orig is finite).
fn zero_channels(
    view: &ModelView<'_>,
    l: &Logical,
    dim: usize,
    block: usize,
    channels: usize,
) -> Vec<bool> {
    let entries = view.entries();
    let mut zero = vec![true; channels];
    let (outer, size, inner) = view3(&l.shape, dim);
    let orig = &entries[l.parts[0]];
    let es = elem_size(orig.dtype());
    let mask = l.parts.get(1).map(|&m| &entries[m]);
    let ms = mask.map_or(0, |m| elem_size(m.dtype()));
    for o in 0..outer {
        for j in 0..size {
            let c = j / block;
            if !zero[c] {
                continue;
            }
            let start = (o * size + j) * inner;
            let all = (start..start + inner).all(|k| {
                let (oz, of) = zero_and_finite(orig.dtype(), &orig.data()[k * es..]);
                match mask {
                    None => oz,
                    Some(m) => oz || (of && zero_and_finite(m.dtype(), &m.data()[k * ms..]).0),
                }
            });
            zero[c] = all;
        }
    }
    zero
}

/// Calls `f(j, x)` for every value `x` of the tensor, `j` its index along
/// `dim` (a pruned tensor's value is `orig * mask`).
fn for_each_value(view: &ModelView<'_>, l: &Logical, dim: usize, mut f: impl FnMut(usize, f64)) {
    let entries = view.entries();
    let (outer, size, inner) = view3(&l.shape, dim);
    let orig = &entries[l.parts[0]];
    let es = elem_size(orig.dtype());
    let mask = l.parts.get(1).map(|&m| &entries[m]);
    let ms = mask.map_or(0, |m| elem_size(m.dtype()));
    for o in 0..outer {
        for j in 0..size {
            let start = (o * size + j) * inner;
            for k in start..start + inner {
                let mut x = value(orig.dtype(), &orig.data()[k * es..]);
                if let Some(m) = mask {
                    x *= value(m.dtype(), &m.data()[k * ms..]);
                }
                f(j, x);
            }
        }
    }
}

/// The shape after the cuts, and whether anything is cut.
fn cut_shape(shape: &[usize], cuts: &[(usize, Vec<usize>)]) -> (Vec<usize>, bool) {
    let mut s = shape.to_vec();
    for (dim, idx) in cuts {
        s[*dim] = idx.len();
    }
    let changed = s != shape;
    (s, changed)
}

/// The bytes of a tensor keeping only `idx` along `dim` (runs of
/// consecutive indices copied at once).
fn cut_bytes(data: &[u8], shape: &[usize], elem: usize, dim: usize, idx: &[usize]) -> Vec<u8> {
    let (outer, size, inner) = view3(shape, dim);
    let run = inner * elem;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in idx {
        match runs.last_mut() {
            Some((s, n)) if *s + *n == i => *n += 1,
            _ => runs.push((i, 1)),
        }
    }
    let mut out = Vec::with_capacity(outer * idx.len() * run);
    for o in 0..outer {
        let base = o * size * run;
        for &(s, n) in &runs {
            out.extend_from_slice(&data[base + s * run..base + (s + n) * run]);
        }
    }
    out
}

/// Writes the shrunk files; returns their names.
fn write(
    input: &CheckpointFiles,
    view: &ModelView<'_>,
    cuts: &[Vec<(usize, Vec<usize>)>],
    output: &Output,
    config: &Map<String, Value>,
    progress: &mut dyn Progress,
) -> Result<Vec<PathBuf>, CheckpointError> {
    let entries = view.entries();
    let n_files = match output {
        Output::File(_) => 1,
        _ => input.files().len(),
    };
    let mut files: Vec<Vec<usize>> = vec![Vec::new(); n_files];
    for i in 0..entries.len() {
        let f = if n_files == 1 { 0 } else { view.shard_of(i) };
        files[f].push(i);
    }
    for f in &mut files {
        f.sort_by(|&a, &b| {
            (alignment_rank(entries[a].dtype()), entries[a].name())
                .cmp(&(alignment_rank(entries[b].dtype()), entries[b].name()))
        });
    }
    let spec_of = |i: usize| {
        let e = &entries[i];
        TensorSpec::new(e.name(), e.dtype(), cut_shape(e.shape(), &cuts[i]).0)
    };
    let bytes: u64 = files.iter().flatten().map(|&i| spec_of(i).byte_len()).sum();
    progress.start(entries.len(), bytes);
    let result = write_all(input, view, cuts, output, config, &files, progress);
    progress.finished();
    result
}

#[allow(clippy::too_many_arguments)]
fn write_all(
    input: &CheckpointFiles,
    view: &ModelView<'_>,
    cuts: &[Vec<(usize, Vec<usize>)>],
    output: &Output,
    config: &Map<String, Value>,
    files: &[Vec<usize>],
    progress: &mut dyn Progress,
) -> Result<Vec<PathBuf>, CheckpointError> {
    let entries = view.entries();
    let spec_of = |i: usize| {
        let e = &entries[i];
        TensorSpec::new(e.name(), e.dtype(), cut_shape(e.shape(), &cuts[i]).0)
    };
    let write_file = |out: &mut SafetensorsWriter<super::PendingFile>,
                      list: &[usize],
                      progress: &mut dyn Progress| {
        for (j, &i) in list.iter().enumerate() {
            if let Some(&next) = list.get(j + 1) {
                input.files()[view.shard_of(next)].prefetch(entries[next].data());
            }
            let e = &entries[i];
            if cuts[i].is_empty() {
                out.write_tensor_bytes(e.name(), e.data())?;
            } else {
                let mut shape = e.shape().to_vec();
                let mut bytes: Option<Vec<u8>> = None;
                for (dim, idx) in &cuts[i] {
                    let data = bytes.as_deref().unwrap_or(e.data());
                    let next = cut_bytes(data, &shape, elem_size(e.dtype()), *dim, idx);
                    shape[*dim] = idx.len();
                    bytes = Some(next);
                }
                out.write_tensor_bytes(e.name(), bytes.as_deref().expect("at least one cut"))?;
            }
            progress.wrote(e.name(), spec_of(i).byte_len());
        }
        Ok::<(), CheckpointError>(())
    };
    match output {
        Output::File(path) => {
            let specs = files[0].iter().map(|&i| spec_of(i)).collect();
            progress.creating();
            let made = SafetensorsWriter::create_like(
                path,
                input.files()[0].path(),
                specs,
                view.metadata(0),
            );
            progress.created(made.as_ref().ok().map(|w| w.get_ref().temp_path()));
            let mut out = made?;
            write_file(&mut out, &files[0], progress)?;
            out.commit()?;
            Ok(vec![PathBuf::from(path.file_name().unwrap_or_default())])
        }
        Output::Directory(path) | Output::Shards { dir: path, .. } => {
            let index: Option<(PathBuf, &Path)> = input.index().map(|index| {
                let name = index
                    .file_name()
                    .filter(|n| n.to_string_lossy().ends_with(INDEX_SUFFIX))
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(SHARD_INDEX));
                (name, index)
            });
            progress.creating();
            let made = PendingDir::create(path);
            progress.created(made.as_ref().ok().map(PendingDir::temp_path));
            let dir = made?;
            let mut names = Vec::new();
            let mut weight_map = Map::new();
            let mut total: u64 = 0;
            for (s, list) in files.iter().enumerate() {
                let name = input.file_names()[s].clone();
                let specs: Vec<TensorSpec> = list.iter().map(|&i| spec_of(i)).collect();
                for spec in &specs {
                    total += spec.byte_len();
                    weight_map.insert(spec.name().to_string(), Value::String(name.clone()));
                }
                let mut out = SafetensorsWriter::create_like(
                    dir.temp_path().join(&name),
                    input.files()[s].path(),
                    specs,
                    view.metadata(s),
                )?;
                write_file(&mut out, list, progress)?;
                out.commit()?;
                names.push(PathBuf::from(name));
            }
            if let Some((name, like)) = &index {
                let mut metadata = input.index_metadata();
                metadata.insert("total_size".into(), Value::from(total));
                let doc = serde_json::json!({ "metadata": metadata, "weight_map": weight_map });
                let mut text = serde_json::to_vec_pretty(&doc)
                    .expect("a JSON value of strings and numbers serializes");
                text.push(b'\n');
                dir.write_file(name, &text, like)?;
                names.push(name.clone());
            }
            for other in input.other_files() {
                let name = PathBuf::from(other.file_name().expect("a listed file has a name"));
                if name.as_os_str() == "config.json" && !config.is_empty() {
                    let text = std::fs::read(other)
                        .map_err(|e| CheckpointError::io(other, "reading the model config", e))?;
                    let mut cfg: Map<String, Value> =
                        serde_json::from_slice(&text).map_err(|e| CheckpointError::Config {
                            path: other.clone(),
                            problem: ConfigProblem::Json {
                                reason: e.to_string(),
                            },
                        })?;
                    for (k, v) in config {
                        cfg.insert(k.clone(), v.clone());
                    }
                    let mut text = serde_json::to_vec_pretty(&Value::Object(cfg))
                        .expect("a JSON object read from JSON serializes");
                    text.push(b'\n');
                    dir.write_file(&name, &text, other)?;
                } else {
                    dir.copy_file(other, &name)?;
                }
                names.push(name);
            }
            dir.commit()?;
            Ok(names)
        }
    }
}
