//! `ndprune inspect`: a file's tensors, dtypes, shapes and zeros.

use std::collections::HashMap;
use std::io::Write;

use ndprune::io::{is_prunable, CheckpointError, CheckpointFiles, Dtype, TensorEntry};
use ndprune::{Counting, SparsityReport};
use serde_json::json;

use crate::run::Failure;

/// Zero entries of a tensor, where the dtype's zeros are known: `±0.0` for
/// the IEEE floats, all-zero bytes for integers and `BOOL`.
fn zeros(e: &TensorEntry<'_>) -> Option<usize> {
    let data = e.data();
    let count = |size: usize, is_zero: &dyn Fn(&[u8]) -> bool| {
        data.chunks_exact(size).filter(|c| is_zero(c)).count()
    };
    let all_zero = |c: &[u8]| c.iter().all(|&b| b == 0);
    // The sign bit is the top bit of the last (little-endian) byte.
    let float_zero = |c: &[u8]| {
        let (last, rest) = c
            .split_last()
            .expect("chunks_exact gives chunks of the element size, at least 2");
        last & 0x7f == 0 && rest.iter().all(|&b| b == 0)
    };
    Some(match e.dtype() {
        Dtype::F64 => count(8, &float_zero),
        Dtype::F32 => count(4, &float_zero),
        Dtype::F16 | Dtype::BF16 => count(2, &float_zero),
        Dtype::BOOL | Dtype::U8 | Dtype::I8 => count(1, &all_zero),
        Dtype::I16 | Dtype::U16 => count(2, &all_zero),
        Dtype::I32 | Dtype::U32 => count(4, &all_zero),
        Dtype::I64 | Dtype::U64 => count(8, &all_zero),
        _ => return None,
    })
}

/// The natural-order key of a dotted name: component by component,
/// numbers by value and before words.
fn natural_key(s: &str) -> Vec<(bool, usize, &str)> {
    s.split('.')
        .map(|c| {
            let num = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
            let t = if num { c.trim_start_matches('0') } else { c };
            (!num, if num { t.len() } else { 0 }, t)
        })
        .collect()
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Why `inspect` failed: reading the file (exit status 1), or printing.
#[derive(Debug)]
pub enum Error {
    Read(Failure),
    Print(std::io::Error),
}

impl<E: Into<Failure>> From<E> for Error {
    fn from(e: E) -> Self {
        Error::Read(e.into())
    }
}

fn print(e: std::io::Error) -> Error {
    Error::Print(e)
}

/// Prints the table (or JSON) of `path`'s tensors to `out`.
pub fn inspect(out: &mut impl Write, path: &std::path::Path, as_json: bool) -> Result<(), Error> {
    // A shard alone is fine to list (nothing is ranked across the model).
    let files = match CheckpointFiles::open(path) {
        Err(CheckpointError::OneShard { .. }) => CheckpointFiles::open_file(path)?,
        other => other?,
    };
    let view = files.view()?;
    let mut entries: Vec<&TensorEntry<'_>> = view.entries().iter().collect();
    // One key per entry, not two per comparison.
    entries.sort_by_cached_key(|e| (natural_key(e.name()), e.name()));
    // Pruned pairs as their tensor `X`, by mask; float tensors by zeros.
    let report = SparsityReport::of_view(&view);
    // The zeros the report counted already (of a float tensor, of a
    // pair's mask) are not counted again.
    let mut counted: HashMap<String, usize> = HashMap::new();
    for t in report.tensors() {
        match (t.counting(), t.pruned()) {
            (Counting::Zeros, Some(p)) => counted.insert(t.name().to_string(), p),
            (Counting::Mask, Some(p)) => counted.insert(format!("{}_mask", t.name()), p),
            _ => None,
        };
    }
    let rows: Vec<(&TensorEntry<'_>, Option<usize>)> = entries
        .iter()
        .map(|e| (*e, counted.get(e.name()).copied().or_else(|| zeros(e))))
        .collect();
    if as_json {
        let tensors: Vec<_> = rows
            .iter()
            .map(|(e, z)| {
                json!({
                    "name": e.name(),
                    "dtype": e.dtype().to_string(),
                    "shape": e.shape(),
                    "numel": e.len(),
                    "bytes": e.data().len(),
                    "zeros": z,
                    // Zeros of an integer tensor (a step counter, token
                    // ids) are values, not pruning: no sparsity for them.
                    "sparsity": z.filter(|_| is_prunable(e.dtype())).map(|z| percent(z, e.len()) / 100.0),
                })
            })
            .collect();
        let pruned: Vec<&str> = view
            .pruned_pairs()
            .into_iter()
            .map(|(base, _, _)| base)
            .collect();
        let doc = json!({
            "file": path.display().to_string(),
            "metadata": view.metadata(0),
            "tensors": tensors,
            "pruned": pruned,
            "report": report.to_json(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)
            .map_err(std::io::Error::from)
            .map_err(print)?;
        return writeln!(out).map_err(print);
    }
    let width = rows
        .iter()
        .map(|(e, _)| e.name().len())
        .max()
        .unwrap_or(6)
        .clamp(6, crate::NAME_COLUMN);
    writeln!(out, "{}", path.display()).map_err(print)?;
    if let Some(meta) = view.metadata(0) {
        for (k, v) in meta {
            writeln!(out, "  metadata {k} = {v}").map_err(print)?;
        }
    }
    writeln!(
        out,
        "{:<width$}  {:<7} {:<18} {:>12} {:>9}",
        "tensor", "dtype", "shape", "numel", "zeros"
    )
    .map_err(print)?;
    let (mut total, mut bytes) = (0usize, 0u64);
    for (e, z) in &rows {
        total = total.saturating_add(e.len());
        bytes += e.data().len() as u64;
        let shape = format!("{:?}", e.shape());
        // Zeros of an integer tensor are values, not pruning: not shown.
        let zeros = z.filter(|_| is_prunable(e.dtype())).map_or_else(
            || "-".to_string(),
            |z| format!("{:.1}%", percent(z, e.len())),
        );
        writeln!(
            out,
            "{:<width$}  {:<7} {:<18} {:>12} {:>9}",
            e.name(),
            e.dtype().to_string(),
            shape,
            e.len(),
            zeros
        )
        .map_err(print)?;
    }
    let sums = report.total();
    writeln!(
        out,
        "{} tensors, {total} entries, {} of data",
        rows.len(),
        ndprune::report::human_bytes(bytes)
    )
    .map_err(print)?;
    // A pruned pair counts once, by its mask; int and bool tensors not.
    writeln!(out, "sparsity: {sums}").map_err(print)?;
    writeln!(out, "bytes: {}", sums.bytes_line()).map_err(print)?;
    for t in report
        .tensors()
        .iter()
        .filter(|t| t.counting() == Counting::Mask)
    {
        writeln!(
            out,
            "pruned: {} ({:.1}% of its mask is 0; channels fully pruned per dim {:?})",
            t.name(),
            // Filtered to `Counting::Mask`: a mask's zeros and channels
            // are always counted.
            100.0
                * t.sparsity()
                    .expect("a tensor counted by its mask has a sparsity"),
            t.channels_pruned()
                .expect("a tensor counted by its mask has its channels counted"),
        )
        .map_err(print)?;
    }
    Ok(())
}
