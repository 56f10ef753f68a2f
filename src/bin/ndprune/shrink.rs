//! `ndprune shrink`: the library's [`FileShrinker`] with the command
//! line's groups, report and signal cleanup.

use std::io::{self, Write};
use std::path::Path;

use ndprune::group::{ChannelGroup, Inexact, Member, Role};
use ndprune::io::{
    CheckpointError, CheckpointFiles, FileShrinkReport, FileShrinker, LayerWidths, Output,
    ShrinkGroups, INDEX_SUFFIX,
};
use ndprune::Dim;
use serde_json::{json, Value};

use crate::args::{usage_error, ShrinkArgs};
use crate::{cleanup, run};

/// Reads a JSON file of groups (see `--groups`); a usage error names what
/// is wrong.
fn read_groups(path: &Path) -> Vec<ChannelGroup> {
    let bad = |what: String| -> ! { usage_error(format!("--groups {}: {what}", path.display())) };
    let text = std::fs::read(path).unwrap_or_else(|e| bad(format!("cannot read it: {e}")));
    let doc: Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| bad(format!("not JSON: {e}")));
    let Some(list) = doc.as_array() else {
        bad("not a JSON list of groups".into())
    };
    let mut groups = Vec::with_capacity(list.len());
    for (i, g) in list.iter().enumerate() {
        let count = |v: Option<&Value>, what: &str| -> usize {
            v.and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(|| bad(format!("group {i}: `{what}` must be a whole number")))
        };
        let mut group = ChannelGroup::new(count(g.get("channels"), "channels"));
        let Some(members) = g.get("members").and_then(Value::as_array) else {
            bad(format!("group {i}: no `members` list"))
        };
        for m in members {
            let tensor = m
                .get("tensor")
                .and_then(Value::as_str)
                .unwrap_or_else(|| bad(format!("group {i}: a member has no `tensor` name")));
            let dim = m
                .get("dim")
                .and_then(Value::as_i64)
                .and_then(|d| isize::try_from(d).ok())
                .unwrap_or_else(|| bad(format!("group {i}: `{tensor}` has no whole `dim`")));
            let role = match m.get("role").and_then(Value::as_str) {
                Some("producer") => Role::Producer,
                Some("consumer") => Role::Consumer,
                Some("stats") => Role::Stats,
                _ => bad(format!(
                    "group {i}: `{tensor}`: `role` must be producer, consumer or stats"
                )),
            };
            let block = match m.get("block") {
                None => 1,
                v => count(v, "block"),
            };
            group = group.with(Member::new(tensor, Dim(dim), role).with_block(block));
        }
        groups.push(group);
    }
    groups
}

/// Runs `ndprune shrink`.
pub fn shrink(a: ShrinkArgs) -> Result<(), CheckpointError> {
    let groups = match a.groups.as_str() {
        "chain" => ShrinkGroups::Chain,
        "decoder" => ShrinkGroups::Decoder,
        file => ShrinkGroups::Declared(read_groups(Path::new(file))),
    };
    let mut shrinker = FileShrinker::new(groups);
    if let Some(amount) = a.amount {
        shrinker = shrinker.amount(amount);
    }
    if a.drop_inexact {
        shrinker = shrinker.inexact(Inexact::Drop);
    }
    if a.pad_layers {
        if !matches!(a.groups.as_str(), "decoder") {
            usage_error("--pad-layers is for --groups decoder".into());
        }
        shrinker = shrinker.layer_widths(LayerWidths::PadToWidest);
    }
    // As for `prune`: a directory or an index (of safetensors or of
    // PyTorch shards) as IN makes a directory OUT, unless OUT names a
    // safetensors file.
    let sharded_in = a.input.is_dir()
        || a.input.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.ends_with(INDEX_SUFFIX) || n.ends_with(".bin.index.json")
        });
    let to_file = a.output.extension().is_some_and(|e| e == "safetensors");
    let output = if sharded_in && !to_file {
        Output::Directory(a.output.clone())
    } else {
        Output::File(a.output.clone())
    };
    cleanup::install(&a.input);
    // A PyTorch input's conversion is removed on a signal, as for `prune`.
    let input = CheckpointFiles::open_watched(&a.input, &mut crate::Conversion)?;
    crate::refuse_out_in(&input, &output);
    if !a.dry_run {
        crate::note_left_out(&input, &output, a.quiet);
    }
    let report = if a.dry_run {
        shrinker.plan(&input)?
    } else {
        shrinker.run_with(&input, &output, &mut run::Shown::new(a.quiet))?
    };
    if a.quiet && !a.dry_run {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    let printed = if a.json {
        print_json(&mut out, &report, a.dry_run)
    } else {
        print(&mut out, &report, a.dry_run)
    };
    if let Err(e) = printed.and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("ndprune: warning: cannot print the report: {e}");
        }
    }
    Ok(())
}

fn print(out: &mut impl Write, r: &FileShrinkReport, dry_run: bool) -> io::Result<()> {
    if dry_run {
        writeln!(out, "(dry run: nothing written)")?;
    }
    writeln!(
        out,
        "{:<56} {:>9} {:>9} {:>9}",
        "group (primary tensor)", "channels", "removed", "inexact"
    )?;
    for (g, s) in &r.groups {
        let name = g.primary().map_or("", |m| m.tensor());
        writeln!(
            out,
            "{name:<56} {:>9} {:>9} {:>9}",
            g.channels(),
            s.removed.len(),
            s.inexact.len()
        )?;
    }
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    writeln!(
        out,
        "tensor data: {:.1} MiB -> {:.1} MiB ({:.1} % smaller)",
        mib(r.bytes_before),
        mib(r.bytes_after),
        if r.bytes_before == 0 {
            0.0
        } else {
            100.0 * (1.0 - r.bytes_after as f64 / r.bytes_before as f64)
        }
    )?;
    for (k, v) in &r.config {
        writeln!(out, "config.json: {k} = {v}")?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

fn print_json(out: &mut impl Write, r: &FileShrinkReport, dry_run: bool) -> io::Result<()> {
    let groups: Vec<Value> = r
        .groups
        .iter()
        .map(|(g, s)| {
            json!({
                "primary": g.primary().map(|m| m.tensor()),
                "channels": g.channels(),
                "removed": s.removed,
                "kept": s.kept,
                "inexact": s.inexact,
            })
        })
        .collect();
    serde_json::to_writer_pretty(
        &mut *out,
        &json!({
            "dry_run": dry_run,
            "groups": groups,
            "bytes_before": r.bytes_before,
            "bytes_after": r.bytes_after,
            "config": r.config,
            "notes": r.notes,
        }),
    )?;
    writeln!(out)
}
