//! Carrying out a pruning call: tensor by tensor from the input's memory
//! map to the output file.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::ArrayD;
use ndprune::io::{
    CheckpointError, CheckpointFloat, Dtype, MappedFile, PendingFile, SafetensorsView,
    SafetensorsWriter, TensorEntry,
};
use ndprune::prelude::*;

use crate::args::{Method, PruneJob};
use crate::plan::{plan, Group, Source, Target};

/// Why a pruning call failed (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("pruning `{tensor}`: {source}")]
    Prune { tensor: String, source: PruneError },
}

fn pruning(tensor: &str) -> impl Fn(PruneError) -> Failure + '_ {
    move |source| Failure::Prune {
        tensor: tensor.to_string(),
        source,
    }
}

/// Calls `$body` with `$T` the element type of a float dtype.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            Dtype::F32 => {
                type $T = f32;
                $body
            }
            Dtype::F64 => {
                type $T = f64;
                $body
            }
            Dtype::BF16 => {
                type $T = half::bf16;
                $body
            }
            Dtype::F16 => {
                type $T = half::f16;
                $body
            }
            other => unreachable!("{other} is no float dtype the plan selects"),
        }
    };
}

/// What pruning did to one tensor.
#[derive(Debug, Clone)]
pub struct TensorReport {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub numel: usize,
    /// Entries pruned (mask 0) before and after.
    pub before: usize,
    pub after: usize,
}

/// What a pruning call did.
#[derive(Debug)]
pub struct Report {
    pub tensors: Vec<TensorReport>,
    pub copied: usize,
    pub written: usize,
}

fn zeros<T: PruneFloat>(a: &ArrayD<T>) -> usize {
    a.iter().filter(|x| **x == T::zero()).count()
}

/// A seed for one tensor: `--seed` mixed with the tensor's name, so a
/// tensor's mask does not depend on which others are selected.
fn seed_for(seed: u64, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64
    let mut z = (seed ^ h).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A tensor of the input as `U`, whatever float dtype it has (exact: every
/// float dtype widens to `f64` exactly, and masks are 0 and 1).
fn load_as<U: CheckpointFloat>(entry: &TensorEntry<'_>) -> Result<ArrayD<U>, Failure> {
    if entry.dtype() == U::DTYPE {
        return Ok(entry.to_array::<U>()?);
    }
    with_float!(entry.dtype(), T => {
        let a = entry.to_array::<T>()?;
        Ok(a.mapv(|x| U::from_f64(x.as_f64())))
    })
}

/// A one-tensor module holding `group` as `t` (pruned if it was).
fn layer_of<U: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
) -> Result<(Layer<U>, usize), Failure> {
    let mut layer = Layer::<U>::new();
    let orig = load_as::<U>(&entries[group.orig()])?;
    let before = match group.target {
        Target::Plain(_) => {
            layer
                .store_mut()
                .add_parameter("t", orig)
                .map_err(pruning(&group.name))?;
            0
        }
        Target::Pair { mask, .. } => {
            let mask = load_as::<U>(&entries[mask])?;
            let before = zeros(&mask);
            layer
                .store_mut()
                .restore_pruned("t", orig, mask)
                .map_err(pruning(&group.name))?;
            before
        }
    };
    Ok((layer, before))
}

/// Masks of a global pruning, in one module tree of element type `U`
/// (child `g` holds group `g` as `t`).
struct GlobalMasks<U: CheckpointFloat> {
    tree: Sequential<U>,
    before: Vec<usize>,
}

impl<U: CheckpointFloat> GlobalMasks<U> {
    fn compute(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        job: &PruneJob,
    ) -> Result<Self, Failure> {
        let mut tree = Sequential::<U>::new();
        let mut before = Vec::with_capacity(groups.len());
        for group in groups {
            let (layer, b) = layer_of::<U>(entries, group)?;
            tree = tree.push(layer);
            before.push(b);
        }
        let paths: Vec<String> = (0..groups.len()).map(|g| format!("{g}.t")).collect();
        let targets: Vec<&str> = paths.iter().map(String::as_str).collect();
        let l1 = L1Unstructured::new(job.amount).map_err(pruning("(global)"))?;
        let what = format!("{} tensors together", groups.len());
        prune::global_unstructured(&mut tree, &targets, &l1, None).map_err(pruning(&what))?;
        Ok(GlobalMasks { tree, before })
    }

    fn mask<D: CheckpointFloat>(&self, g: usize) -> ArrayD<D> {
        self.tree
            .buffer(&format!("{g}.t_mask"))
            .map(|m| m.mapv(|x| D::from_f64(x.as_f64())))
            .unwrap_or_else(|| ArrayD::zeros(vec![0]))
    }
}

/// The global tree in the groups' common dtype, or `f64` when they differ.
enum Global {
    F32(GlobalMasks<f32>),
    F64(GlobalMasks<f64>),
    BF16(GlobalMasks<half::bf16>),
    F16(GlobalMasks<half::f16>),
}

impl Global {
    fn compute(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        job: &PruneJob,
    ) -> Result<Self, Failure> {
        let first = groups.first().map_or(Dtype::F64, |g| g.dtype);
        let common = if groups.iter().all(|g| g.dtype == first) {
            first
        } else {
            Dtype::F64
        };
        Ok(match common {
            Dtype::F32 => Global::F32(GlobalMasks::compute(entries, groups, job)?),
            Dtype::BF16 => Global::BF16(GlobalMasks::compute(entries, groups, job)?),
            Dtype::F16 => Global::F16(GlobalMasks::compute(entries, groups, job)?),
            _ => Global::F64(GlobalMasks::compute(entries, groups, job)?),
        })
    }

    fn mask<D: CheckpointFloat>(&self, g: usize) -> (ArrayD<D>, usize) {
        match self {
            Global::F32(m) => (m.mask(g), m.before[g]),
            Global::F64(m) => (m.mask(g), m.before[g]),
            Global::BF16(m) => (m.mask(g), m.before[g]),
            Global::F16(m) => (m.mask(g), m.before[g]),
        }
    }
}

/// Computes group `g`'s mask (or, with `remove`, its pruned values) in its
/// own dtype `T` and writes it as the next output tensor.
#[allow(clippy::too_many_arguments)]
fn write_pruned<T: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
    g: usize,
    job: &PruneJob,
    global: Option<&Global>,
    out: &mut SafetensorsWriter<PendingFile>,
    name: &str,
    remove: bool,
) -> Result<TensorReport, Failure> {
    let (numel, before, after) = if let Some(global) = global {
        let (mask, before) = global.mask::<T>(g);
        let after = zeros(&mask);
        if remove {
            let mut w = entries[group.orig()].to_array::<T>()?;
            w.zip_mut_with(&mask, |w, &m| *w = *w * m);
            out.write_array(name, w.view())?;
        } else {
            out.write_array(name, mask.view())?;
        }
        (mask.len(), before, after)
    } else {
        let (mut layer, before) = layer_of::<T>(entries, group)?;
        let err = pruning(&group.name);
        match job.method {
            Method::L1Unstructured => prune::l1_unstructured(&mut layer, "t", job.amount, None),
            Method::LnStructured => prune::ln_structured(
                &mut layer,
                "t",
                job.amount,
                job.norm.unwrap_or(Norm::L(2.0)),
                job.dim.unwrap_or(Dim(0)),
                None,
            ),
            Method::RandomUnstructured => {
                RandomUnstructured::new(job.amount, seed_for(job.seed, &group.name))
                    .and_then(|m| prune::apply(&mut layer, "t", &m, None))
            }
            Method::RandomStructured => RandomStructured::new(
                job.amount,
                job.dim.unwrap_or(Dim(0)),
                seed_for(job.seed, &group.name),
            )
            .and_then(|m| prune::apply(&mut layer, "t", &m, None)),
            Method::Global => unreachable!("global pruning has its masks computed"),
        }
        .map_err(&err)?;
        let mask = layer.buffer("t_mask").expect("pruned");
        let (numel, after) = (mask.len(), zeros(mask));
        if remove {
            prune::remove(&mut layer, "t").map_err(&err)?;
            out.write_array(name, layer.parameter("t").expect("removed").view())?;
        } else {
            out.write_array(name, mask.view())?;
        }
        (numel, before, after)
    };
    Ok(TensorReport {
        name: group.name.clone(),
        dtype: group.dtype,
        shape: group.shape.clone(),
        numel,
        before,
        after,
    })
}

fn progress(n: usize, job: &PruneJob) -> ProgressBar {
    const MANY: usize = 16;
    if job.quiet || n < MANY {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} tensors {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prunes `job.input` into `job.output`. On error nothing is written.
pub fn run(job: &PruneJob) -> Result<Report, Failure> {
    let file = MappedFile::open(&job.input)?;
    let view: SafetensorsView<'_> = file.view()?;
    let entries = view.entries();
    let plan = plan(&view, job);
    let global = match job.method {
        Method::Global if !plan.groups.is_empty() => {
            Some(Global::compute(entries, &plan.groups, job)?)
        }
        _ => None,
    };
    let specs = plan.outputs.iter().map(|(s, _)| s.clone()).collect();
    let mut out = SafetensorsWriter::create(&job.output, specs, view.metadata())?;
    let bar = progress(plan.outputs.len(), job);
    let mut reports: Vec<Option<TensorReport>> = vec![None; plan.groups.len()];
    for (spec, source) in &plan.outputs {
        bar.set_message(spec.name().to_string());
        match *source {
            Source::Copy(i) => out.write_tensor_bytes(spec.name(), entries[i].data())?,
            Source::Orig(g) => {
                out.write_tensor_bytes(spec.name(), entries[plan.groups[g].orig()].data())?
            }
            Source::Mask(g) | Source::Removed(g) => {
                let group = &plan.groups[g];
                let remove = matches!(source, Source::Removed(_));
                let report = with_float!(group.dtype, T => write_pruned::<T>(
                    entries, group, g, job, global.as_ref(), &mut out, spec.name(), remove
                ))?;
                reports[g] = Some(report);
            }
        }
        bar.inc(1);
    }
    out.commit().map_err(Failure::from)?;
    bar.finish_and_clear();
    Ok(Report {
        tensors: reports.into_iter().flatten().collect(),
        copied: plan.copied,
        written: plan.outputs.len(),
    })
}
