//! Carrying out a pruning call: tensor by tensor from the input's memory
//! map to the output file.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::ArrayD;
use ndprune::io::{
    CheckpointError, CheckpointFloat, Dtype, MappedFile, PendingFile, SafetensorsView,
    SafetensorsWriter, TensorEntry,
};
use ndprune::prelude::*;
use ndprune::select::StreamingSelect;

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

/// A group's values and, if PyTorch pruned it before, its mask, as `U`.
fn values_and_mask<U: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
) -> Result<(ArrayD<U>, Option<ArrayD<U>>), Failure> {
    let values = load_as::<U>(&entries[group.orig()])?
        .as_standard_layout()
        .into_owned();
    let mask = match group.target {
        Target::Plain(_) => None,
        Target::Pair { mask, .. } => Some(
            load_as::<U>(&entries[mask])?
                .as_standard_layout()
                .into_owned(),
        ),
    };
    Ok((values, mask))
}

/// Global pruning over the selected tensors, streamed: a first pass counts
/// the unpruned entries, then one pass per radix digit finds the cut
/// (`StreamingSelect`), each holding one tensor at a time; the masks are
/// computed when the tensors are written. Magnitudes are compared in the
/// groups' common dtype, or in `f64` when they differ (exact for every
/// float dtype). Ties at the cut go in the order the tensors are written.
struct Global {
    dtype: Dtype,
    select: StreamingSelect,
    ties_left: usize,
    before: Vec<usize>,
}

impl Global {
    fn compute(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        order: &[usize],
        job: &PruneJob,
    ) -> Result<Self, Failure> {
        let first = groups.first().map_or(Dtype::F64, |g| g.dtype);
        let dtype = if groups.iter().all(|g| g.dtype == first) {
            first
        } else {
            Dtype::F64
        };
        with_float!(dtype, U => Self::compute_as::<U>(entries, groups, order, job, dtype))
    }

    fn compute_as<U: CheckpointFloat>(
        entries: &[TensorEntry<'_>],
        groups: &[Group],
        order: &[usize],
        job: &PruneJob,
        dtype: Dtype,
    ) -> Result<Self, Failure> {
        let what = format!("{} tensors together", groups.len());
        let mut before = vec![0; groups.len()];
        let mut open = 0;
        for &g in order {
            let numel: usize = groups[g].shape.iter().product();
            if let Target::Pair { mask, .. } = groups[g].target {
                before[g] = zeros(&load_as::<U>(&entries[mask])?);
            }
            open += numel - before[g];
        }
        let k = job.amount.count_of(open).map_err(pruning(&what))?;
        let mut select = StreamingSelect::new::<U>(k);
        while select.pending() {
            for &g in order {
                let (values, mask) = values_and_mask::<U>(entries, &groups[g])?;
                select.feed(
                    values.as_slice().unwrap_or(&[]),
                    mask.as_ref().and_then(|m| m.as_slice()),
                );
            }
            select.end_pass();
        }
        let ties_left = select.ties();
        Ok(Global {
            dtype,
            select,
            ties_left,
            before,
        })
    }

    /// Group `g`'s new mask, as `D`, and how many entries it had pruned
    /// before. Call in the order of the passes.
    fn mask<D: CheckpointFloat>(
        &mut self,
        entries: &[TensorEntry<'_>],
        group: &Group,
        g: usize,
    ) -> Result<(ArrayD<D>, usize), Failure> {
        let before = self.before[g];
        with_float!(self.dtype, U => {
            let (values, mask) = values_and_mask::<U>(entries, group)?;
            let new = self.select.mask_for(
                values.as_slice().unwrap_or(&[]),
                mask.as_ref().and_then(|m| m.as_slice()),
                &mut self.ties_left,
            );
            let new: Vec<D> = new.into_iter().map(|m| D::from_f64(m.as_f64())).collect();
            let new = ArrayD::from_shape_vec(group.shape.clone(), new).map_err(|_| Failure::Prune {
                tensor: group.name.clone(),
                source: PruneError::new(
                    group.name.clone(),
                    PruneErrorKind::ShapeMismatch {
                        what: "mask",
                        expected: group.shape.clone(),
                        got: values.shape().to_vec(),
                    },
                ),
            })?;
            Ok((new, before))
        })
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
    global: Option<&mut Global>,
    out: &mut SafetensorsWriter<PendingFile>,
    name: &str,
    remove: bool,
) -> Result<TensorReport, Failure> {
    let (numel, before, after) = if let Some(global) = global {
        let (mask, before) = global.mask::<T>(entries, group, g)?;
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
    // The groups in the order their outputs are written.
    let order: Vec<usize> = plan
        .outputs
        .iter()
        .filter_map(|(_, source)| match *source {
            Source::Mask(g) | Source::Removed(g) => Some(g),
            _ => None,
        })
        .collect();
    let mut global = match job.method {
        Method::Global if !plan.groups.is_empty() => {
            Some(Global::compute(entries, &plan.groups, &order, job)?)
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
                    entries, group, g, job, global.as_mut(), &mut out, spec.name(), remove
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
