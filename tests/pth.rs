//! PyTorch checkpoints (feature `pth`): `.pth` files written by
//! `torch.save` (tools/make_pth_fixture.py) read to the same tensors as
//! their safetensors twins, prune to the same masks through
//! `CheckpointFiles::open` and `FilePruner`, and damaged or hostile files
//! fail with typed errors.
#![cfg(feature = "pth")]

use std::path::{Path, PathBuf};

use ndprune::io::{
    pth, CheckpointError, CheckpointFiles, Dtype, FilePruner, Output, PthDirectoryProblem,
    StreamMethod,
};
use ndprune::{Amount, Dim, Norm};

#[path = "support/tensors.rs"]
mod tensors;
use tensors::{of_files as tensors, Tensors};

#[path = "support/files.rs"]
mod files;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-pth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read(path: &Path) -> Tensors {
    pth::read_state_dict(path)
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.name().to_string(),
                (t.dtype(), t.shape().to_vec(), t.data().to_vec()),
            )
        })
        .collect()
}

#[test]
fn pth_and_nested_pth_read_as_their_safetensors_twin() {
    let twin = tensors(&CheckpointFiles::open(fixture("model.safetensors")).unwrap());
    let dtypes: std::collections::BTreeSet<Dtype> = twin.values().map(|t| t.0).collect();
    for d in [Dtype::F32, Dtype::BF16, Dtype::F16, Dtype::F64, Dtype::I64] {
        assert!(dtypes.contains(&d), "the fixture has {d:?}");
    }
    assert_eq!(twin["1.num_batches_tracked"].0, Dtype::I64);
    for name in ["model.pth", "nested.pth"] {
        assert_eq!(read(&fixture(name)), twin, "{name}, read_state_dict");
        let files = CheckpointFiles::open(fixture(name)).unwrap();
        assert!(files.is_converted());
        assert_eq!(files.origin(), fixture(name));
        assert_eq!(tensors(&files), twin, "{name}, CheckpointFiles::open");
    }
    // The nested file's key is kept in the metadata; the plain one has none.
    let nested = CheckpointFiles::open(fixture("nested.pth")).unwrap();
    assert_eq!(
        nested.view().unwrap().metadata(0).unwrap()["pth_key"],
        "state_dict"
    );
}

#[test]
fn views_and_shared_storages_read_as_their_values() {
    let twin = tensors(&CheckpointFiles::open(fixture("views.safetensors")).unwrap());
    assert_eq!(twin.len(), 4);
    assert_eq!(read(&fixture("views.pth")), twin);
    // The transposed view: element [i][j] is base[j][i] = (8 j + i) / 4 - 3.
    let w = &twin["fc.weight"];
    assert_eq!(w.1, [8, 5]);
    let at =
        |i: usize, j: usize| f32::from_le_bytes(w.2[4 * (5 * i + j)..][..4].try_into().unwrap());
    assert_eq!(at(3, 2), (8 * 2 + 3) as f32 * 0.25 - 3.0);
}

#[test]
fn convert_to_safetensors_writes_the_twin_and_removes_the_temporary_file() {
    let dir = scratch("convert");
    let out = dir.join("model.safetensors");
    assert_eq!(
        pth::convert_to_safetensors(fixture("model.pth"), &out).unwrap(),
        13
    );
    let twin = tensors(&CheckpointFiles::open(fixture("model.safetensors")).unwrap());
    assert_eq!(tensors(&CheckpointFiles::open(&out).unwrap()), twin);

    let files = CheckpointFiles::open(fixture("model.pth")).unwrap();
    let temp = files.files()[0].path().to_path_buf();
    assert!(temp.exists());
    drop(files);
    assert!(
        !temp.exists(),
        "the conversion is removed with the CheckpointFiles"
    );

    // A failing conversion leaves nothing at OUT.
    let bad = dir.join("bad.pth");
    std::fs::write(&bad, b"PK\x03\x04 and nothing else").unwrap();
    let out2 = dir.join("bad.safetensors");
    assert!(pth::convert_to_safetensors(&bad, &out2).is_err());
    assert!(!out2.exists());
}

#[test]
fn pruning_a_pth_gives_the_masks_of_its_twin() {
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
    ];
    let twin = CheckpointFiles::open(fixture("model.safetensors")).unwrap();
    let dir = scratch("prune");
    for input in ["model.pth", "nested.pth"] {
        let files = CheckpointFiles::open(fixture(input)).unwrap();
        for (case, method, amount) in &cases {
            let (a, b) = (
                dir.join(format!("{input}-{case}.safetensors")),
                dir.join(format!("twin-{case}.safetensors")),
            );
            let pruner = FilePruner::new(*method, *amount);
            let ra = pruner
                .run(&files, &Output::File(a.clone()), &mut ())
                .unwrap();
            let rb = pruner
                .run(&twin, &Output::File(b.clone()), &mut ())
                .unwrap();
            assert_eq!(ra.tensors.len(), rb.tensors.len(), "{input} {case}");
            assert!(!ra.tensors.is_empty(), "{input} {case}");
            let (ta, tb) = (
                tensors(&CheckpointFiles::open(&a).unwrap()),
                tensors(&CheckpointFiles::open(&b).unwrap()),
            );
            let masks = ta.keys().filter(|k| k.ends_with("_mask")).count();
            assert!(masks >= 4, "{input} {case}: {masks} masks");
            assert_eq!(ta, tb, "{input} {case}: the output differs from the twin's");
        }
    }
}

fn pth_error(bytes: &[u8], name: &str) -> CheckpointError {
    let dir = scratch(&format!("hostile-{name}"));
    let path = dir.join("model.pth");
    std::fs::write(&path, bytes).unwrap();
    let err = pth::read_state_dict(&path).unwrap_err();
    assert!(
        matches!(err, CheckpointError::Pth { .. }),
        "{name}: {err:?}"
    );
    assert_eq!(err.path(), path);
    // Shorter than a safetensors header's length: opened, and truncated
    // safetensors to read.
    let open = match CheckpointFiles::open(&path) {
        Ok(files) if bytes.len() < 8 => files.view().unwrap_err(),
        opened => opened.unwrap_err(),
    };
    assert!(
        (bytes.len() < 8 && matches!(open, CheckpointError::Truncated { .. }))
            || matches!(open, CheckpointError::Pth { .. }),
        "{name}: {open:?}"
    );
    err
}

#[test]
fn damaged_and_hostile_files_fail_with_typed_errors() {
    let good = std::fs::read(fixture("model.pth")).unwrap();
    // Truncated at many points.
    for cut in [
        4,
        30,
        100,
        good.len() / 3,
        good.len() / 2,
        good.len() - 30,
        good.len() - 1,
    ] {
        pth_error(&good[..cut], &format!("cut{cut}"));
    }
    // Random bytes after the zip magic, and after a pickle's.
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    for (i, magic) in [&b"PK\x03\x04"[..], &[0x80, 0x02][..], &[0x80, 0x05][..]]
        .iter()
        .enumerate()
    {
        for n in [0, 10, 1000] {
            let mut bytes = magic.to_vec();
            bytes.extend(noise(n));
            pth_error(&bytes, &format!("noise{i}-{n}"));
        }
    }
    // Bytes flipped inside the archive: an error or (a flip in padding) a
    // read, never a panic.
    for at in (0..good.len()).step_by(97) {
        let mut bytes = good.clone();
        bytes[at] ^= 0x55;
        let path = scratch("flip").join("model.pth");
        std::fs::write(&path, &bytes).unwrap();
        let _ = pth::read_state_dict(&path);
    }
    // Pickles that are no dictionary: protocol 2, `[1, 2]` and an int.
    let err = pth_error(b"\x80\x02]q\x00(K\x01K\x02e.", "list");
    assert!(err.to_string().contains("not a dictionary"), "{err}");
    pth_error(b"\x80\x02J\x01\x02\x03\x04.", "int");
}

#[test]
fn a_safetensors_file_is_not_converted() {
    let files = CheckpointFiles::open(fixture("model.safetensors")).unwrap();
    assert!(!files.is_converted());
    // Nor one whose header is 896 (0x380) bytes long: it starts as a
    // protocol-3 pickle does.
    let header = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    let header = format!("{header:<896}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.push(7);
    assert!(pth::looks_like_torch(&bytes));
    let path = scratch("not-converted").join("m.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let files = CheckpointFiles::open(&path).unwrap();
    assert!(!files.is_converted());
    assert_eq!(files.view().unwrap().get("w").unwrap().data(), [7]);
}

#[test]
fn sharded_bin_files_prune_to_the_masks_of_their_safetensors_twin() {
    // tools/make_bin_sharded_fixture.py: two PyTorch shards and their
    // index, as transformers writes them, and the whole state_dict in
    // one safetensors file.
    let twin = CheckpointFiles::open(fixture("bin-sharded-twin.safetensors")).unwrap();
    let dir = scratch("bin-sharded");
    let index = fixture("bin-sharded").join("pytorch_model.bin.index.json");
    for input in [fixture("bin-sharded"), index.clone()] {
        let files = CheckpointFiles::open(&input).unwrap();
        assert!(files.is_sharded() && files.is_converted());
        assert_eq!(
            files.file_names(),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        assert_eq!(tensors(&files), tensors(&twin));
        let tag = input.file_name().unwrap().to_string_lossy().into_owned();
        for (case, method) in [
            ("global", StreamMethod::Global),
            ("l1", StreamMethod::L1Unstructured),
        ] {
            let (a, b) = (
                dir.join(format!("{tag}-{case}")),
                dir.join(format!("twin-{tag}-{case}.safetensors")),
            );
            let pruner = FilePruner::new(method, Amount::Fraction(0.4));
            pruner
                .run(&files, &Output::Directory(a.clone()), &mut ())
                .unwrap();
            pruner
                .run(&twin, &Output::File(b.clone()), &mut ())
                .unwrap();
            // A safetensors checkpoint: shards named as transformers names
            // them, a safetensors index, the config copied.
            let mut listing: Vec<String> = std::fs::read_dir(&a)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            listing.sort();
            assert_eq!(
                listing,
                [
                    "config.json",
                    "model-00001-of-00002.safetensors",
                    "model-00002-of-00002.safetensors",
                    "model.safetensors.index.json"
                ]
            );
            let (ta, tb) = (
                tensors(&CheckpointFiles::open(&a).unwrap()),
                tensors(&CheckpointFiles::open(&b).unwrap()),
            );
            assert_eq!(ta.keys().filter(|k| k.ends_with("_mask")).count(), 4);
            assert_eq!(ta, tb, "{tag} {case}");
        }
    }
    // One shard alone is part of a model: refused, as a safetensors shard.
    let err =
        CheckpointFiles::open(fixture("bin-sharded").join("pytorch_model-00001-of-00002.bin"))
            .unwrap_err();
    assert!(matches!(err, CheckpointError::OneShard { .. }), "{err}");
    // An index naming a missing shard: a typed error, no temporary left.
    let bad = scratch("bin-missing");
    std::fs::write(
        bad.join("pytorch_model.bin.index.json"),
        r#"{"metadata": {}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}"#,
    )
    .unwrap();
    assert!(CheckpointFiles::open(&bad).is_err());
}

/// A directory as transformers' `save_pretrained(safe_serialization=False)`
/// leaves a small model: `pytorch_model.bin` (here the `.pth` fixture
/// under that name) beside `config.json`, and no index.
fn bin_directory(name: &str) -> PathBuf {
    let dir = scratch(name).join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fixture("model.pth"), dir.join("pytorch_model.bin")).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "test"}"#).unwrap();
    dir
}

#[test]
fn a_directory_of_one_bin_file_prunes_to_the_masks_of_its_twin() {
    let dir = bin_directory("bin-dir");
    let before = files::names(&dir);
    let twin = CheckpointFiles::open(fixture("model.safetensors")).unwrap();
    let files = CheckpointFiles::open(&dir).unwrap();
    assert!(files.is_converted() && !files.is_sharded());
    assert_eq!(files.origin(), dir);
    // Named as transformers names the safetensors twin; config.json goes
    // along as beside a safetensors file.
    assert_eq!(files.file_names(), ["model.safetensors"]);
    assert_eq!(files.other_files(), [dir.join("config.json")]);
    assert_eq!(tensors(&files), tensors(&twin));
    let out = dir.parent().unwrap();
    for (case, method) in [
        ("global", StreamMethod::Global),
        ("l1", StreamMethod::L1Unstructured),
    ] {
        let (a, b) = (
            out.join(format!("out-{case}")),
            out.join(format!("twin-{case}.safetensors")),
        );
        let pruner = FilePruner::new(method, Amount::Fraction(0.4));
        let report = pruner
            .run(&files, &Output::Directory(a.clone()), &mut ())
            .unwrap();
        pruner
            .run(&twin, &Output::File(b.clone()), &mut ())
            .unwrap();
        // A safetensors checkpoint as transformers writes one that fits
        // in one file: model.safetensors, no index, the config copied.
        assert_eq!(
            files::names(&a),
            ["config.json", "model.safetensors"],
            "{case}"
        );
        assert_eq!(report.other_files, 1);
        assert_eq!(
            std::fs::read(a.join("config.json")).unwrap(),
            std::fs::read(dir.join("config.json")).unwrap()
        );
        let (ta, tb) = (
            tensors(&CheckpointFiles::open(&a).unwrap()),
            tensors(&CheckpointFiles::open(&b).unwrap()),
        );
        assert!(ta.keys().filter(|k| k.ends_with("_mask")).count() >= 4);
        assert_eq!(ta, tb, "{case}: the masks differ from the twin's");
    }
    // The input is as it was, and the conversion goes with the files.
    let temp = files.converted_dir().unwrap().to_path_buf();
    drop(files);
    assert!(!temp.exists());
    assert_eq!(files::names(&dir), before);
}

#[test]
fn a_directory_of_one_pth_or_pt_file_opens_under_a_safetensors_name() {
    for (name, converted) in [
        ("weights.pt", "weights.safetensors"),
        ("model.pth", "model.safetensors"),
    ] {
        let dir = scratch(&format!("one-{name}"));
        std::fs::copy(fixture("nested.pth"), dir.join(name)).unwrap();
        let files = CheckpointFiles::open(&dir).unwrap();
        assert_eq!(files.file_names(), [converted], "{name}");
        assert!(files.other_files().is_empty(), "{name}");
        assert_eq!(
            tensors(&files),
            tensors(&CheckpointFiles::open(fixture("model.safetensors")).unwrap())
        );
    }
}

/// A safetensors file under a PyTorch name (`pytorch_model.bin`) opens
/// as it does when named alone: read as safetensors, not refused as no
/// PyTorch file, and named `model.safetensors` in a directory output.
#[test]
fn a_safetensors_file_named_bin_in_a_directory_opens_as_when_named() {
    let dir = scratch("safetensors-named-bin");
    std::fs::copy(fixture("model.safetensors"), dir.join("pytorch_model.bin")).unwrap();
    std::fs::write(dir.join("config.json"), b"{}").unwrap();
    let in_dir = CheckpointFiles::open(&dir).unwrap();
    let named = CheckpointFiles::open(dir.join("pytorch_model.bin")).unwrap();
    assert!(!in_dir.is_converted() && !named.is_converted());
    assert_eq!(in_dir.file_names(), ["model.safetensors"]);
    assert_eq!(in_dir.other_files(), [dir.join("config.json")]);
    assert_eq!(tensors(&in_dir), tensors(&named));
}

#[test]
fn a_directory_of_several_pytorch_files_and_no_index_is_refused() {
    let dir = bin_directory("bin-several");
    // As a Trainer leaves beside the model: pytorch_model.bin is the
    // model, as transformers' from_pretrained takes it, and the others are
    // other files.
    std::fs::copy(fixture("nested.pth"), dir.join("training_args.bin")).unwrap();
    std::fs::copy(fixture("views.pth"), dir.join("optimizer.pt")).unwrap();
    let files = CheckpointFiles::open(&dir).unwrap();
    assert_eq!(files.file_names(), ["model.safetensors"]);
    let others: Vec<String> = files
        .other_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(others.contains(&"optimizer.pt".to_string()), "{others:?}");
    assert!(
        others.contains(&"training_args.bin".to_string()),
        "{others:?}"
    );
    drop(files);
    // Without transformers' name, several files are refused.
    std::fs::rename(dir.join("pytorch_model.bin"), dir.join("weights.bin")).unwrap();
    let before = files::names(&dir);
    let err = CheckpointFiles::open(&dir).unwrap_err();
    match &err {
        CheckpointError::PthDirectory {
            path,
            files,
            problem: PthDirectoryProblem::Several,
            ..
        } => {
            assert_eq!(path, &dir);
            assert_eq!(files, &["optimizer.pt", "training_args.bin", "weights.bin"]);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    for says in [
        "optimizer.pt",
        "weights.bin",
        "training_args.bin",
        "name the file to open",
    ] {
        assert!(text.contains(says), "{text}");
    }
    assert_eq!(files::names(&dir), before);
    // Named, the one file opens (as a file: no other files).
    let files = CheckpointFiles::open(dir.join("weights.bin")).unwrap();
    assert!(files.other_files().is_empty());
    // A safetensors file beside them is the checkpoint: no PyTorch file
    // is read.
    std::fs::copy(fixture("views.safetensors"), dir.join("model.safetensors")).unwrap();
    let files = CheckpointFiles::open(&dir).unwrap();
    assert!(!files.is_converted());
    assert_eq!(tensors(&files).len(), 4);
}
