//! No output ever replaces a file of its input: for every kind of input
//! (a safetensors file, a directory of one, shards and their index,
//! PyTorch `.bin` shards, a lone `.pth`, a directory of one
//! `pytorch_model.bin`), every file `CheckpointFiles::input_files` lists
//! and a symbolic link to it are refused as an output, by the library
//! (`Output::check_for`, and the writers that call it) and by `ndprune
//! prune`, `remove` and `shrink` (a usage error, status 2), and the
//! input's files are byte for byte what they were.
#![cfg(feature = "cli")]

use std::fs;
use std::path::{Path, PathBuf};

use ndprune::io::{
    CheckpointError, CheckpointFiles, FilePruner, FileShrinker, Output, ShrinkGroups, StreamMethod,
    TargetProblem,
};
use ndprune::Amount;

#[path = "support/cli.rs"]
mod cli;
use cli::{dir, ndprune, s, stderr};
#[path = "support/files.rs"]
mod files;
use files::snapshot;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The inputs, each in a directory of its own under `root`: (directory,
/// the path named as IN).
fn inputs(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut v = Vec::new();
    let one = root.join("one");
    fs::create_dir_all(&one).unwrap();
    fs::copy(
        fixture("pth/model.safetensors"),
        one.join("model.safetensors"),
    )
    .unwrap();
    fs::write(one.join("config.json"), b"{}").unwrap();
    v.push((one.clone(), one.join("model.safetensors")));
    v.push((one.clone(), one.clone()));

    let sharded = root.join("sharded");
    copy_dir(&fixture("sharded"), &sharded);
    v.push((
        sharded.clone(),
        sharded.join("model.safetensors.index.json"),
    ));
    v.push((sharded.clone(), sharded.clone()));

    let bins = root.join("bin-sharded");
    copy_dir(&fixture("pth/bin-sharded"), &bins);
    v.push((bins.clone(), bins.join("pytorch_model.bin.index.json")));
    v.push((bins.clone(), bins.clone()));

    let pth = root.join("pth");
    fs::create_dir_all(&pth).unwrap();
    fs::copy(fixture("pth/model.pth"), pth.join("model.pth")).unwrap();
    v.push((pth.clone(), pth.join("model.pth")));

    let bin_dir = root.join("bin-dir");
    fs::create_dir_all(&bin_dir).unwrap();
    fs::copy(fixture("pth/model.pth"), bin_dir.join("pytorch_model.bin")).unwrap();
    fs::write(bin_dir.join("config.json"), b"{}").unwrap();
    v.push((bin_dir.clone(), bin_dir.join("pytorch_model.bin")));
    v.push((bin_dir.clone(), bin_dir.clone()));
    v
}

fn is_input_file(err: &CheckpointError) -> bool {
    matches!(
        err,
        CheckpointError::BadTarget {
            problem: TargetProblem::InputFile { .. },
            ..
        }
    )
}

#[test]
fn no_output_replaces_a_file_of_its_input() {
    let root = dir("out-is-in");
    let links = root.join("links");
    fs::create_dir_all(&links).unwrap();
    let mut checked = 0;
    for (n, (home, input)) in inputs(&root).into_iter().enumerate() {
        let before = snapshot(&home);
        let files = CheckpointFiles::open(&input).unwrap();
        // The files of IN that are the user's (not the temporary
        // conversions of PyTorch files), and a link to each.
        let mut targets: Vec<PathBuf> = files
            .input_files()
            .into_iter()
            .filter(|f| f.starts_with(&home) && f.is_file())
            .map(Path::to_path_buf)
            .collect();
        targets.sort();
        targets.dedup();
        assert!(!targets.is_empty(), "{}", input.display());
        for (k, t) in targets.clone().into_iter().enumerate() {
            let link = links.join(format!("{n}-{k}"));
            std::os::unix::fs::symlink(&t, &link).unwrap();
            targets.push(link);
        }
        for out in &targets {
            let o = Output::File(out.clone());
            assert!(
                is_input_file(&o.check_for(&files).unwrap_err()),
                "{}",
                out.display()
            );
            let err = FilePruner::new(StreamMethod::L1Unstructured, Amount::Fraction(0.5))
                .run(&files, &o, &mut ())
                .unwrap_err();
            assert!(is_input_file(&err), "{err}");
            let err = FileShrinker::new(ShrinkGroups::Chain)
                .run(&files, &o)
                .unwrap_err();
            assert!(is_input_file(&err), "{err}");
            for args in [
                &[
                    "prune",
                    s(&input),
                    s(out),
                    "--method",
                    "l1_unstructured",
                    "--amount",
                    "0.5",
                ][..],
                &["remove", s(&input), s(out)],
                &["shrink", s(&input), s(out), "--amount", "0.5"],
            ] {
                let r = ndprune(args);
                assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
                // A directory or an index as IN makes a directory OUT,
                // which no file of IN can be either.
                let e = stderr(&r);
                let dir_out = input.is_dir() || s(&input).ends_with(".index.json");
                assert!(
                    e.contains("OUT must not be IN")
                        || (dir_out && e.contains("a directory output replaces nothing")),
                    "{args:?}: {e}"
                );
            }
            checked += 1;
        }
        drop(files);
        assert_eq!(snapshot(&home), before, "{}", input.display());
    }
    // Every kind of file was tried: shards, indexes, configs, PyTorch
    // files, and links to them.
    assert!(checked >= 30, "{checked}");
    fs::remove_dir_all(&root).unwrap();
}
