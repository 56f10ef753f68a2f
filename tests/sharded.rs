//! Sharded checkpoints (an index and its shards, as Hugging Face writes
//! them): opened as one model, pruned across shards into a new directory,
//! against the masks PyTorch computed for the same checkpoint
//! (`tools/make_sharded_fixture.py`); and every way an index can be wrong.
#![cfg(feature = "half")]

use std::path::{Path, PathBuf};

use ndprune::io::{
    CheckpointError, CheckpointFiles, Dtype, FilePruner, Output, SafetensorsWriter, StreamMethod,
    StreamTies, TargetProblem, TensorSpec, TieOrder,
};
use ndprune::{Amount, Dim, Norm};

#[path = "support/tensors.rs"]
mod tensors;
use tensors::{expected, of_checkpoint as tensors, Tensors};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-sharded-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the fixture's files in a scratch directory.
fn copy_fixture(name: &str) -> PathBuf {
    let d = scratch(name).join("in");
    std::fs::create_dir(&d).unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
    }
    d
}

/// The tensors of one safetensors file.
fn file_tensors(path: &Path) -> Tensors {
    tensors::of_files(&CheckpointFiles::open_file(path).unwrap())
}

/// Writes `tensors` as the safetensors file `path`.
fn write_file(path: &Path, tensors: &Tensors) {
    let specs = tensors
        .iter()
        .map(|(n, (d, s, _))| TensorSpec::new(n.clone(), *d, s.clone()))
        .collect();
    let mut w = SafetensorsWriter::create(path, specs, None).unwrap();
    while let Some(next) = w.next_tensor().map(|s| s.name().to_string()) {
        w.write_tensor_bytes(&next, &tensors[&next].2).unwrap();
    }
    w.commit().unwrap();
}

/// A directory's file names, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn index_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap())
        .unwrap()
}

#[test]
fn a_sharded_checkpoint_prunes_to_pytorchs_masks_in_every_dtype() {
    // (The random cases follow PyTorch's stream through the tensors in
    // the order of their names, whatever order they are written in.)
    let input = fixture();
    let files = CheckpointFiles::open(&input).unwrap();
    assert!(files.is_sharded());
    assert_eq!(files.files().len(), 3);
    let cases = [
        ("global", StreamMethod::Global, Amount::Fraction(0.3)),
        ("l1", StreamMethod::L1Unstructured, Amount::Fraction(0.25)),
        (
            "ln",
            StreamMethod::LnStructured {
                norm: Norm::L(2.0),
                dim: Dim(0),
            },
            Amount::Fraction(0.5),
        ),
        (
            "rand",
            StreamMethod::TorchRandomUnstructured { seed: 7 },
            Amount::Fraction(0.3),
        ),
        (
            "rands",
            StreamMethod::TorchRandomStructured {
                dim: Dim(0),
                seed: 8,
            },
            Amount::Fraction(0.5),
        ),
    ];
    for (case, method, amount) in cases {
        let out = scratch(case).join("out");
        let report = FilePruner::new(method, amount)
            .run(&files, &Output::Directory(out.clone()), &mut ())
            .unwrap();
        let want = expected(case);
        assert_eq!(want.len(), 16, "{case}");
        assert_eq!(report.tensors.len(), 16, "{case}");
        let got = tensors(&out);
        let dtypes: std::collections::BTreeSet<Dtype> = want.values().map(|w| w.0).collect();
        assert_eq!(dtypes.len(), 3, "bf16, f16 and f32 tensors");
        for (name, (dtype, shape, bytes)) in &want {
            let mask = &got[&format!("{name}_mask")];
            assert_eq!((&mask.0, &mask.1), (dtype, shape), "{case} {name}");
            assert!(
                mask.2 == *bytes,
                "{case}: {name}'s mask differs from PyTorch's"
            );
        }
        if case == "global" {
            // bf16 magnitudes tie at the cut: PyTorch's order decided.
            assert_eq!(report.ties, TieOrder::Torch);
        }
    }
}

#[test]
fn the_output_directory_is_a_valid_sharded_checkpoint_of_the_same_model() {
    let input = fixture();
    let out = scratch("valid").join("out");
    let files = CheckpointFiles::open(&input).unwrap();
    let report = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .run(&files, &Output::Directory(out.clone()), &mut ())
        .unwrap();
    // The same shard names, a new index, config.json byte for byte.
    assert_eq!(listing(&out), listing(&input));
    assert_eq!(
        std::fs::read(out.join("config.json")).unwrap(),
        std::fs::read(input.join("config.json")).unwrap()
    );
    assert_eq!(report.other_files, 1);
    let index = index_of(&out);
    let map = index["weight_map"].as_object().unwrap();
    let before = tensors(&input);
    let after = tensors(&out);
    assert_eq!(map.len(), after.len());
    // Every tensor is in the shard the index names, and only there.
    let mut total = 0u64;
    for (shard, names) in listing(&out)
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .map(|n| (n.clone(), file_tensors(&out.join(n))))
    {
        for (name, (_, _, bytes)) in names {
            assert_eq!(map[&name], shard.as_str(), "{name}");
            total += bytes.len() as u64;
        }
    }
    assert_eq!(index["metadata"]["total_size"], total);
    // X becomes X_orig (the same bytes) and X_mask, in X's shard; the rest
    // is copied.
    let old_index = index_of(&input);
    for (name, (dtype, shape, bytes)) in &before {
        match after.get(&format!("{name}_orig")) {
            Some(orig) => {
                assert_eq!(orig, &(*dtype, shape.clone(), bytes.clone()), "{name}");
                assert_eq!(map[&format!("{name}_orig")], old_index["weight_map"][name]);
                assert_eq!(map[&format!("{name}_mask")], old_index["weight_map"][name]);
            }
            None => assert_eq!(
                after[name],
                (*dtype, shape.clone(), bytes.clone()),
                "{name}"
            ),
        }
    }
    // Pruning the output again with nothing to prune changes no mask.
    let again = scratch("valid-again").join("out");
    let out_files = CheckpointFiles::open(&out).unwrap();
    FilePruner::new(StreamMethod::Global, Amount::Count(0))
        .run(&out_files, &Output::Directory(again.clone()), &mut ())
        .unwrap();
    assert_eq!(tensors(&again), after);
    // Merged into one file: the same tensors.
    let merged = scratch("merged").join("all.safetensors");
    FilePruner::new(StreamMethod::Global, Amount::Count(0))
        .run(&out_files, &Output::File(merged.clone()), &mut ())
        .unwrap();
    assert!(!CheckpointFiles::open(&merged).unwrap().is_sharded());
    assert_eq!(tensors(&merged), after);
}

#[test]
fn global_pruning_spans_every_shard_and_write_order_ties_are_reported() {
    let files = CheckpointFiles::open(fixture()).unwrap();
    let out = scratch("written").join("out");
    let report = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .ties(StreamTies::WriteOrder)
        .run(&files, &Output::Directory(out.clone()), &mut ())
        .unwrap();
    // 30 % of all selected entries, counted over all shards together.
    let (numel, pruned) = report
        .tensors
        .iter()
        .fold((0, 0), |(n, p), t| (n + t.numel, p + t.after));
    assert_eq!(numel, 5376);
    assert_eq!(pruned, (0.3f64 * 5376.0).round() as usize);
    assert!(matches!(report.ties, TieOrder::WriteOrder { .. }));
    // A budget too small for PyTorch's order falls back, and says so.
    let small = scratch("small-budget").join("out");
    let report = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .ties(StreamTies::Torch { max_bytes: 1000 })
        .run(&files, &Output::Directory(small.clone()), &mut ())
        .unwrap();
    assert!(
        matches!(report.ties, TieOrder::WriteOrder { needed_bytes, .. } if needed_bytes > 1000)
    );
    assert_eq!(tensors(&small), tensors(&out));
}

#[test]
fn a_shard_alone_is_refused_and_the_ways_to_name_the_model_all_work() {
    let input = fixture();
    let shard = input.join("model-00002-of-00003.safetensors");
    let err = CheckpointFiles::open(&shard).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::OneShard { index, .. } if index.ends_with("model.safetensors.index.json")),
        "{err}"
    );
    assert!(err.to_string().contains("open the index or its directory"));
    // On purpose: one file as a whole.
    assert!(!CheckpointFiles::open_file(&shard).unwrap().is_sharded());
    // The directory and the index are the same model.
    let by_dir = CheckpointFiles::open(&input).unwrap();
    let by_index = CheckpointFiles::open(input.join("model.safetensors.index.json")).unwrap();
    assert_eq!(by_dir.file_names(), by_index.file_names());
    assert_eq!(by_dir.other_files(), by_index.other_files());
}

/// Writes `index` into a copy of the fixture and opens it.
fn open_with_index(name: &str, index: &str) -> Result<CheckpointFiles, CheckpointError> {
    let d = copy_fixture(name);
    std::fs::write(d.join("model.safetensors.index.json"), index).unwrap();
    CheckpointFiles::open(&d)
}

#[test]
fn every_wrong_index_is_a_bad_index_error_naming_what_is_wrong() {
    let good =
        String::from_utf8(std::fs::read(fixture().join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let first = "model-00001-of-00003.safetensors";
    let second = "model-00002-of-00003.safetensors";
    let cases: Vec<(&str, String, &str)> = vec![
        ("not-json", "{".into(), "not JSON"),
        ("array", "[]".into(), "not a JSON object"),
        ("no-map", r#"{"metadata": {}}"#.into(), "weight_map"),
        (
            "not-string",
            r#"{"weight_map": {"w": 3}}"#.into(),
            "not a string",
        ),
        (
            "bad-metadata",
            r#"{"metadata": 3, "weight_map": {}}"#.into(),
            "metadata",
        ),
        (
            "traversal",
            good.replacen(first, "../../etc/passwd", 1),
            "no file name",
        ),
        (
            "absolute",
            good.replacen(first, "/etc/passwd", 1),
            "no file name",
        ),
        (
            "missing-shard",
            good.replacen(first, "model-00009-of-00009.safetensors", 1),
            "cannot be opened",
        ),
        // The first tensor listed in the second shard: it is in the first.
        (
            "wrong-shard",
            good.replacen(first, second, 1),
            "but it is in",
        ),
        (
            "unlisted",
            good.replacen(
                "\"model.embed_tokens.weight\"",
                "\"model.embed_tokens.other\"",
                1,
            ),
            "not in the weight_map",
        ),
    ];
    for (name, index, says) in cases {
        let err = open_with_index(name, &index).unwrap_err();
        assert!(
            matches!(err, CheckpointError::BadIndex { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(says), "{name}: {err}");
        assert!(
            err.to_string().contains("model.safetensors.index.json"),
            "{name}: {err}"
        );
    }
    // A tensor in two shards: the first shard gets a copy of one of the
    // second's (the index still lists it in the second).
    let d = copy_fixture("twice");
    let mut all = file_tensors(&d.join(first));
    let (dup, t) = file_tensors(&d.join(second)).into_iter().next().unwrap();
    all.insert(dup, t);
    write_file(&d.join(first), &all);
    let err = CheckpointFiles::open(&d).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::BadIndex { reason, .. } if reason.contains("in both")),
        "{err}"
    );
}

#[test]
fn a_directory_output_is_written_whole_or_not_at_all() {
    let files = CheckpointFiles::open(fixture()).unwrap();
    let d = scratch("whole");
    // A directory that is not empty is refused before any work.
    let full = d.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"mine").unwrap();
    let err = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .run(&files, &Output::Directory(full.clone()), &mut ())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::BadTarget {
                problem: TargetProblem::NotEmpty,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(listing(&full), ["keep.txt"]);
    // An empty one is filled.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .run(&files, &Output::Directory(empty.clone()), &mut ())
        .unwrap();
    assert_eq!(listing(&empty), listing(&fixture()));
    // A failure half-way (too large an amount, found before writing; a
    // structured pruning of a 1-dim tensor, found while writing) leaves
    // no output and no temporary.
    let out = d.join("out");
    let err = FilePruner::new(StreamMethod::Global, Amount::Count(1 << 40))
        .run(&files, &Output::Directory(out.clone()), &mut ())
        .unwrap_err();
    assert!(matches!(err, CheckpointError::GlobalAmount { .. }), "{err}");
    let err = FilePruner::new(
        StreamMethod::LnStructured {
            norm: Norm::L(2.0),
            dim: Dim(0),
        },
        Amount::Count(1),
    )
    .select(|_| true)
    .run(&files, &Output::Directory(out.clone()), &mut ())
    .unwrap_err();
    assert!(matches!(err, CheckpointError::Prune { .. }), "{err}");
    assert!(!out.exists());
    assert_eq!(listing(&d), ["empty", "full"]);
}

#[cfg(unix)]
#[test]
fn the_command_line_takes_a_directory_or_an_index_and_refuses_a_shard() {
    use std::process::Command;
    let ndprune = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ndprune"))
            .args(args)
            .output()
            .unwrap()
    };
    let input = fixture();
    let d = scratch("cli");
    for (i, from) in [input.clone(), input.join("model.safetensors.index.json")]
        .iter()
        .enumerate()
    {
        let out = d.join(format!("out{i}"));
        let r = ndprune(&[
            "prune",
            from.to_str().unwrap(),
            out.to_str().unwrap(),
            "--method",
            "global",
            "--amount",
            "0.3",
            "--quiet",
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let want = expected("global");
        let got = tensors(&out);
        for (name, (_, _, bytes)) in &want {
            assert!(got[&format!("{name}_mask")].2 == *bytes, "{name}");
        }
    }
    // PyTorch's stream: the same entries as PyTorch prunes.
    let out = d.join("rand");
    let r = ndprune(&[
        "prune",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--method",
        "random_unstructured",
        "--amount",
        "0.3",
        "--torch-seed",
        "7",
        "--quiet",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = tensors(&out);
    for (name, (_, _, bytes)) in &expected("rand") {
        assert!(got[&format!("{name}_mask")].2 == *bytes, "{name}");
    }
    // One shard: an error naming the index, nothing written.
    let out = d.join("one.safetensors");
    let shard = input.join("model-00001-of-00003.safetensors");
    let r = ndprune(&[
        "prune",
        shard.to_str().unwrap(),
        out.to_str().unwrap(),
        "--method",
        "global",
        "--amount",
        "0.3",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("one shard") && err.contains("model.safetensors.index.json"),
        "{err}"
    );
    assert!(!out.exists());
    // OUT one of IN's shards: a usage error.
    let copy = copy_fixture("cli-in");
    let before = std::fs::read(copy.join("model-00001-of-00003.safetensors")).unwrap();
    let r = ndprune(&[
        "prune",
        copy.to_str().unwrap(),
        copy.join("model-00001-of-00003.safetensors")
            .to_str()
            .unwrap(),
        "--method",
        "l1_unstructured",
        "--amount",
        "0.3",
    ]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        std::fs::read(copy.join("model-00001-of-00003.safetensors")).unwrap(),
        before
    );
}

#[cfg(target_os = "linux")]
#[test]
fn special_files_in_a_checkpoint_directory_never_hang_or_get_copied() {
    let fifo = |p: &Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    // A FIFO beside the shards is no file to copy: it is left out.
    let d = copy_fixture("fifo-beside");
    fifo(&d.join("events.pipe"));
    let files = CheckpointFiles::open(&d).unwrap();
    assert!(files
        .other_files()
        .iter()
        .all(|p| p.file_name().unwrap() != "events.pipe"));
    let out = d.parent().unwrap().join("out");
    FilePruner::new(StreamMethod::L1Unstructured, Amount::Count(1))
        .run(&files, &Output::Directory(out.clone()), &mut ())
        .unwrap();
    assert!(!out.join("events.pipe").exists());
    // A shard that is a FIFO, or a directory: refused at once.
    for (name, make) in [
        ("fifo-shard", &fifo as &dyn Fn(&Path)),
        ("dir-shard", &|p: &Path| std::fs::create_dir(p).unwrap()),
    ] {
        let d = copy_fixture(name);
        let shard = d.join("model-00002-of-00003.safetensors");
        std::fs::remove_file(&shard).unwrap();
        make(&shard);
        let err = CheckpointFiles::open(&d).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::BadIndex { reason, .. } if reason.contains("model-00002-of-00003.safetensors")),
            "{name}: {err}"
        );
    }
    // An index that is a FIFO: refused, whether opened or found beside a
    // file opened alone.
    let d = copy_fixture("fifo-index");
    let index = d.join("model.safetensors.index.json");
    std::fs::remove_file(&index).unwrap();
    fifo(&index);
    assert!(matches!(
        CheckpointFiles::open(&index).unwrap_err(),
        CheckpointError::BadIndex { .. }
    ));
    assert!(
        !CheckpointFiles::open(d.join("model-00001-of-00003.safetensors"))
            .unwrap()
            .is_sharded()
    );
}

/// Without the feature `pth`, a directory of PyTorch files (a lone
/// `pytorch_model.bin`, or the index of `.bin` shards) is refused with an
/// error that says to enable it.
#[cfg(not(feature = "pth"))]
#[test]
fn a_directory_of_pytorch_files_asks_for_the_feature_pth() {
    use ndprune::io::PthDirectoryProblem;
    let pth = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth");
    let lone = scratch("no-pth-lone");
    std::fs::copy(pth.join("model.pth"), lone.join("pytorch_model.bin")).unwrap();
    std::fs::write(lone.join("config.json"), "{}").unwrap();
    for (dir, names) in [
        (lone, vec!["pytorch_model.bin"]),
        (
            pth.join("bin-sharded"),
            vec![
                "pytorch_model.bin.index.json",
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
            ],
        ),
    ] {
        let err = CheckpointFiles::open(&dir).unwrap_err();
        match &err {
            CheckpointError::PthDirectory {
                path,
                files,
                problem: PthDirectoryProblem::FeatureOff,
            } => {
                assert_eq!(path, &dir);
                let mut names = names.clone();
                names.sort();
                assert_eq!(files, &names);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("feature `pth`"), "{err}");
    }
}
