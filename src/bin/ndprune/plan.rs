//! Which tensors to prune, and what the output file holds, in what order.

use std::collections::HashSet;

use ndprune::io::{alignment_rank, Dtype, LoadOptions, SafetensorsView, TensorSpec};

use crate::args::PruneJob;

/// Whether ndprune prunes tensors of this dtype.
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F64 | Dtype::BF16 | Dtype::F16)
}

/// A tensor to prune: a plain one, or one PyTorch pruned already.
#[derive(Debug, Clone)]
pub enum Target {
    /// Entry index of a plain tensor `X`.
    Plain(usize),
    /// Entry indices of `X_orig` and `X_mask`.
    Pair { orig: usize, mask: usize },
}

/// One tensor to prune: its name (`X`), dtype, shape and where it is.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// The dtype of the values (`X`, or `X_orig`).
    pub dtype: Dtype,
    /// The dtype of the mask written: `X_mask`'s where there is one (a
    /// pair may mix float dtypes, and each tensor keeps its own).
    pub mask_dtype: Dtype,
    pub shape: Vec<usize>,
    pub target: Target,
}

impl Group {
    /// The entry holding the unpruned values (`X`, or `X_orig`).
    pub fn orig(&self) -> usize {
        match self.target {
            Target::Plain(i) | Target::Pair { orig: i, .. } => i,
        }
    }
}

/// Where an output tensor's bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// An input tensor, byte for byte.
    Copy(usize),
    /// The unpruned values of group `g` (`X_orig`), byte for byte.
    Orig(usize),
    /// The mask of group `g`, computed.
    Mask(usize),
    /// `X_orig * X_mask` of group `g`, computed (`--remove`).
    Removed(usize),
}

/// The output file: tensors in order, with their sources.
#[derive(Debug)]
pub struct Plan {
    pub groups: Vec<Group>,
    pub outputs: Vec<(TensorSpec, Source)>,
    /// Input tensors copied unchanged.
    pub copied: usize,
}

/// Selects the tensors to prune and lays out the output.
pub fn plan(view: &SafetensorsView<'_>, job: &PruneJob) -> Plan {
    let entries = view.entries();
    let buffers = LoadOptions::default();

    // PyTorch's pruned pairs: X_orig with X_mask (checked by the view).
    let mut paired = HashSet::new();
    let mut candidates: Vec<Group> = Vec::new();
    for (base, o, m) in view.pruned_pairs() {
        paired.insert(o);
        paired.insert(m);
        candidates.push(Group {
            name: base.to_string(),
            dtype: entries[o].dtype(),
            mask_dtype: entries[m].dtype(),
            shape: entries[o].shape().to_vec(),
            target: Target::Pair { orig: o, mask: m },
        });
    }
    // A pair of which one is no float (a bool mask, say) is no pruned
    // tensor ndprune can go on pruning: both are copied as they are.
    for (i, e) in entries.iter().enumerate() {
        if let Some(base) = e.name().strip_suffix("_orig").filter(|b| !b.is_empty()) {
            if let Some(m) = view.position(&format!("{base}_mask")) {
                paired.insert(i);
                paired.insert(m);
            }
        }
    }
    for (i, e) in entries.iter().enumerate() {
        if !paired.contains(&i) && is_float(e.dtype()) && !buffers.is_buffer(e.name()) {
            candidates.push(Group {
                name: e.name().to_string(),
                dtype: e.dtype(),
                mask_dtype: e.dtype(),
                shape: e.shape().to_vec(),
                target: Target::Plain(i),
            });
        }
    }
    // A tensor with no entries has nothing to prune: it is copied as it is.
    // (Its dims, which a header may claim at 2^40, then size no work.)
    // Nor is a tensor of empty name pruned: its `_orig` and `_mask` would
    // read back as two plain tensors of those names.
    candidates.retain(|g| !g.shape.contains(&0) && !g.name.is_empty());
    let mut groups: Vec<Group> = candidates
        .into_iter()
        .filter(|g| match &job.include {
            Some(include) => include.is_match(&g.name),
            None => g.shape.len() >= 2,
        })
        .filter(|g| !job.exclude.is_match(&g.name))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));

    let mut taken = HashSet::new();
    let mut outputs = Vec::new();
    // (dtype, key, part) orders the output: aligned, then by name, with a
    // pruned tensor's X_orig right before its X_mask.
    let mut keys = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        taken.insert(group.orig());
        if let Target::Pair { mask, .. } = group.target {
            taken.insert(mask);
        }
        let spec = |name: String| TensorSpec::new(name, group.dtype, group.shape.clone());
        if job.remove {
            keys.push((group.dtype, group.name.clone(), 0));
            outputs.push((spec(group.name.clone()), Source::Removed(g)));
        } else {
            keys.push((group.dtype, group.name.clone(), 0));
            outputs.push((spec(format!("{}_orig", group.name)), Source::Orig(g)));
            keys.push((group.mask_dtype, group.name.clone(), 1));
            outputs.push((
                TensorSpec::new(
                    format!("{}_mask", group.name),
                    group.mask_dtype,
                    group.shape.clone(),
                ),
                Source::Mask(g),
            ));
        }
    }
    let mut copied = 0;
    for (i, e) in entries.iter().enumerate() {
        if !taken.contains(&i) {
            copied += 1;
            keys.push((e.dtype(), e.name().to_string(), 0));
            outputs.push((
                TensorSpec::new(e.name(), e.dtype(), e.shape().to_vec()),
                Source::Copy(i),
            ));
        }
    }
    let mut order: Vec<usize> = (0..outputs.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (&keys[a], &keys[b]);
        (alignment_rank(ka.0), &ka.1, ka.2).cmp(&(alignment_rank(kb.0), &kb.1, kb.2))
    });
    let mut slots: Vec<Option<(TensorSpec, Source)>> = outputs.into_iter().map(Some).collect();
    let outputs = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Plan {
        groups,
        outputs,
        copied,
    }
}
