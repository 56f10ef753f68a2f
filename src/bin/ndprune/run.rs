//! Carrying out a pruning call: tensor by tensor from the input's memory
//! map to the output file.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::ArrayD;
use ndprune::io::{
    CheckpointError, CheckpointFloat, Dtype, MappedFile, PendingFile, SafetensorsView,
    SafetensorsWriter, TensorEntry,
};
use ndprune::prelude::*;
use ndprune::select::StreamingSelect;

use crate::args::{Method, PruneJob};
use crate::cleanup;
use crate::plan::{plan, Group, Source, Target};

/// Why a call failed (exit status 1). Every message names the file, and
/// the tensor by its name in the file.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: pruning `{tensor}`: {source}", path.display())]
    Prune {
        path: PathBuf,
        tensor: String,
        source: Box<PruneError>,
    },
    #[error(
        "{}: cannot prune {amount} of the {available} entries left in the {tensors} selected tensors",
        path.display()
    )]
    GlobalAmount {
        path: PathBuf,
        amount: Amount,
        available: usize,
        tensors: usize,
    },
}

/// Pruning errors of the tensor `tensor` of the file `path`.
fn pruning<'a>(path: &'a Path, tensor: &'a str) -> impl Fn(PruneError) -> Failure + 'a {
    move |source| Failure::Prune {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        source: Box::new(source),
    }
}

/// A module holding one tensor of the file under the tensor's own name,
/// so that what the pruning calls say names it as the file does.
///
/// The name may be anything a header holds (`a..b`, a trailing dot, no
/// dot at all): the pruning calls split a path at its last dot into a
/// module path and a local name, and this module answers to exactly that
/// module path with its one store, instead of walking children.
#[derive(Debug)]
struct Single<T: PruneFloat> {
    module: String,
    local: String,
    store: TensorStore<T>,
}

impl<T: PruneFloat> Single<T> {
    fn new(name: &str) -> Self {
        // As the pruning calls split a path.
        let (module, local) = name.rsplit_once('.').unwrap_or(("", name));
        Single {
            module: module.to_string(),
            local: local.to_string(),
            store: TensorStore::new(),
        }
    }

    fn mask(&self) -> &ArrayD<T> {
        self.store
            .buffer(&format!("{}_mask", self.local))
            .expect("a pruned tensor has its mask")
    }
}

impl<T: PruneFloat> Module<T> for Single<T> {
    fn store(&self) -> &TensorStore<T> {
        &self.store
    }

    fn store_mut(&mut self) -> &mut TensorStore<T> {
        &mut self.store
    }

    fn store_at(&self, module_path: &str) -> Option<&TensorStore<T>> {
        (module_path == self.module).then_some(&self.store)
    }

    fn store_at_mut(&mut self, module_path: &str) -> Option<&mut TensorStore<T>> {
        (module_path == self.module).then_some(&mut self.store)
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

/// A one-tensor module holding `group` under its name (pruned if it was),
/// and how many entries its mask had pruned.
fn single_of<U: CheckpointFloat>(
    entries: &[TensorEntry<'_>],
    group: &Group,
    path: &Path,
) -> Result<(Single<U>, usize), Failure> {
    let mut single = Single::<U>::new(&group.name);
    let orig = load_as::<U>(&entries[group.orig()])?;
    let err = pruning(path, &group.name);
    let local = single.local.clone();
    let before = match group.target {
        Target::Plain(_) => {
            single.store.add_parameter(&local, orig).map_err(&err)?;
            0
        }
        Target::Pair { mask, .. } => {
            // The view checked the pair: same shape, only 0 and 1.
            let mask = load_as::<U>(&entries[mask])?;
            let before = zeros(&mask);
            single
                .store
                .restore_pruned(&local, orig, mask)
                .map_err(&err)?;
            before
        }
    };
    Ok((single, before))
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

/// The entries of an array made standard layout by `values_and_mask`.
fn standard<U>(a: &ArrayD<U>) -> &[U] {
    a.as_slice()
        .expect("values_and_mask returns arrays in standard layout")
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
        let mut before = vec![0; groups.len()];
        let mut open = 0;
        for &g in order {
            let numel = entries[groups[g].orig()].len();
            if let Target::Pair { mask, .. } = groups[g].target {
                before[g] = zeros(&load_as::<U>(&entries[mask])?);
            }
            open += numel - before[g];
        }
        let k = job
            .amount
            .count_of(open)
            .map_err(|_| Failure::GlobalAmount {
                path: job.input.clone(),
                amount: job.amount,
                available: open,
                tensors: groups.len(),
            })?;
        let mut select = StreamingSelect::new::<U>(k);
        // Small tensors are fed together: each feed pays for a whole
        // histogram of the digit, which 100 000 one-entry tensors would
        // pay 100 000 times a pass. (Same order, so the same ties.)
        const BATCH: usize = 1 << 16;
        let one = U::from_f64(1.0);
        let (mut vals, mut masks) = (Vec::<U>::new(), Vec::<U>::new());
        let flush = |select: &mut StreamingSelect, vals: &mut Vec<U>, masks: &mut Vec<U>| {
            if !vals.is_empty() {
                select.feed(vals, Some(masks));
                vals.clear();
                masks.clear();
            }
        };
        while select.pending() {
            for &g in order {
                let (values, mask) = values_and_mask::<U>(entries, &groups[g])?;
                if values.len() >= BATCH {
                    flush(&mut select, &mut vals, &mut masks);
                    select.feed(standard(&values), mask.as_ref().map(standard));
                    continue;
                }
                vals.extend_from_slice(standard(&values));
                match &mask {
                    Some(m) => masks.extend_from_slice(standard(m)),
                    None => masks.resize(vals.len(), one),
                }
                if vals.len() >= BATCH {
                    flush(&mut select, &mut vals, &mut masks);
                }
            }
            flush(&mut select, &mut vals, &mut masks);
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
                standard(&values),
                mask.as_ref().map(standard),
                &mut self.ties_left,
            );
            let new: Vec<D> = new.into_iter().map(|m| D::from_f64(m.as_f64())).collect();
            let new = ArrayD::from_shape_vec(group.shape.clone(), new)
                .expect("a mask has one entry per value, and values have the group's shape");
            Ok((new, before))
        })
    }
}

/// Computes group `g`'s mask (or, with `remove`, its pruned values) in its
/// own dtype `T` and writes it as the next output tensor (a mask in the
/// dtype of the mask it replaces: each tensor of a pair keeps its dtype).
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
    let err = pruning(&job.input, &group.name);
    let (mask, before, removed) = if let Some(global) = global {
        let (mask, before) = global.mask::<T>(entries, group, g)?;
        let removed = remove.then(|| {
            let mut w = entries[group.orig()]
                .to_array::<T>()
                .expect("the group's dtype is its original's");
            w.zip_mut_with(&mask, |w, &m| *w = *w * m);
            w
        });
        (mask, before, removed)
    } else {
        let (mut single, before) = single_of::<T>(entries, group, &job.input)?;
        let path = group.name.as_str();
        match job.method {
            Method::L1Unstructured => prune::l1_unstructured(&mut single, path, job.amount, None),
            Method::LnStructured => prune::ln_structured(
                &mut single,
                path,
                job.amount,
                job.norm
                    .expect("args::check requires --n for ln_structured"),
                job.dim
                    .expect("args::check requires --dim for ln_structured"),
                None,
            ),
            Method::RandomUnstructured => {
                RandomUnstructured::new(job.amount, seed_for(job.seed, &group.name))
                    .and_then(|m| prune::apply(&mut single, path, &m, None))
            }
            Method::RandomStructured => RandomStructured::new(
                job.amount,
                job.dim
                    .expect("args::check requires --dim for random_structured"),
                seed_for(job.seed, &group.name),
            )
            .and_then(|m| prune::apply(&mut single, path, &m, None)),
            Method::Global => unreachable!("global pruning has its masks computed"),
        }
        .map_err(&err)?;
        let mask = single.mask().clone();
        let removed = if remove {
            prune::remove(&mut single, path).map_err(&err)?;
            let local = single.local.clone();
            Some(
                single
                    .store
                    .parameter(&local)
                    .expect("remove leaves the tensor as a parameter")
                    .clone(),
            )
        } else {
            None
        };
        (mask, before, removed)
    };
    let (numel, after) = (mask.len(), zeros(&mask));
    match removed {
        Some(w) => out.write_array(name, w.view())?,
        None => with_float!(group.mask_dtype, M => {
            let mask = mask.mapv(|m| M::from_f64(m.as_f64()));
            out.write_array(name, mask.view())?
        }),
    }
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

/// Prunes `job.input` into `job.output`. On error nothing is written and
/// nothing is left behind (see `cleanup` for signals).
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
    let out = cleanup::creating(
        || SafetensorsWriter::create_like(&job.output, &job.input, specs, view.metadata()),
        |made| made.as_ref().ok().map(|w| w.get_ref().temp_path()),
    );
    let written = out.map_err(Failure::from).and_then(|mut out| {
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
        out.commit()?;
        bar.finish_and_clear();
        Ok(reports)
    });
    // Renamed into place, or dropped (and so removed) on an error.
    cleanup::done();
    if written.is_err() {
        // A write from a map whose file shrank fails with EFAULT: say so.
        file.check_unchanged()?;
    }
    Ok(Report {
        tensors: written?.into_iter().flatten().collect(),
        copied: plan.copied,
        written: plan.outputs.len(),
    })
}
