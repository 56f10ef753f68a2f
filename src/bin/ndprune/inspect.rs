//! `ndprune inspect`: a file's tensors, dtypes, shapes and zeros.

use ndprune::io::{Dtype, MappedFile, TensorEntry};
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
        let (last, rest) = c.split_last().unwrap_or((&0, &[]));
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

fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> Vec<(bool, usize, String)> {
        s.split('.')
            .map(|c| {
                let num = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
                let t = if num { c.trim_start_matches('0') } else { c };
                (!num, if num { t.len() } else { 0 }, t.to_string())
            })
            .collect()
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Prints the table (or JSON) of `path`'s tensors.
pub fn inspect(path: &std::path::Path, as_json: bool) -> Result<(), Failure> {
    let file = MappedFile::open(path)?;
    let view = file.view()?;
    let mut entries: Vec<&TensorEntry<'_>> = view.entries().iter().collect();
    entries.sort_by(|a, b| natural(a.name(), b.name()));
    let rows: Vec<(&TensorEntry<'_>, Option<usize>)> =
        entries.iter().map(|e| (*e, zeros(e))).collect();
    let pruned: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.name().strip_suffix("_orig"))
        .filter(|base| view.get(&format!("{base}_mask")).is_some())
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
                    "sparsity": z.map(|z| percent(z, e.len()) / 100.0),
                })
            })
            .collect();
        let doc = json!({
            "file": path.display().to_string(),
            "metadata": view.metadata(),
            "tensors": tensors,
            "pruned": pruned,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(e, _)| e.name().len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{}", path.display());
    if let Some(meta) = view.metadata() {
        for (k, v) in meta {
            println!("  metadata {k} = {v}");
        }
    }
    println!(
        "{:<width$}  {:<7} {:<18} {:>12} {:>9}",
        "tensor", "dtype", "shape", "numel", "zeros"
    );
    let (mut total, mut bytes) = (0usize, 0usize);
    for (e, z) in &rows {
        total += e.len();
        bytes += e.data().len();
        let shape = format!("{:?}", e.shape());
        let zeros = z.map_or_else(
            || "-".to_string(),
            |z| format!("{:.1}%", percent(z, e.len())),
        );
        println!(
            "{:<width$}  {:<7} {:<18} {:>12} {:>9}",
            e.name(),
            e.dtype().to_string(),
            shape,
            e.len(),
            zeros
        );
    }
    println!(
        "{} tensors, {total} entries, {bytes} bytes of data",
        rows.len()
    );
    for base in pruned {
        if let Some(mask) = view.get(&format!("{base}_mask")) {
            if let Some(z) = zeros(mask) {
                println!(
                    "pruned: {base} ({:.1}% of its mask is 0)",
                    percent(z, mask.len())
                );
            }
        }
    }
    Ok(())
}
