//! Re-sharding by a maximum shard size (`Output::Shards`): the same
//! tensors as a single-file output, a valid index, shards within the limit
//! (but for a tensor larger than it), pruned pairs kept together.
#![cfg(feature = "half")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ndprune::io::{
    parse_shard_size, Checkpoint, CheckpointError, CheckpointFiles, FilePruner, Output,
    ShardSizeError, StreamMethod, TargetProblem,
};
use ndprune::prelude::*;

#[path = "support/tensors.rs"]
mod tensors;
use tensors::{of_checkpoint, of_files, Tensors};

#[path = "support/files.rs"]
mod files;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-reshard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checks the re-sharded directory `out` against the limit `max` and
/// returns, for each shard by name, the tensors it holds. What fits in one
/// shard is `model.safetensors` alone, with no index, as transformers'
/// `save_pretrained` writes it.
fn check_shards(out: &Path, max: u64) -> BTreeMap<String, Tensors> {
    let listed = files::names(out);
    assert!(
        !listed.iter().any(|n| n.ends_with(".index.json"))
            || out.join("model.safetensors.index.json").is_file(),
        "an index of another name: {listed:?}"
    );
    if !out.join("model.safetensors.index.json").exists() {
        assert!(
            listed.iter().all(|n| !n.starts_with("model-")),
            "numbered shards and no index: {listed:?}"
        );
        let files = CheckpointFiles::open_file(out.join("model.safetensors")).unwrap();
        let tensors = of_files(&files);
        let data: u64 = tensors.values().map(|t| t.2.len() as u64).sum();
        assert!(
            data <= max || tensors.len() == 1,
            "{data} bytes in one shard of at most {max}"
        );
        assert_eq!(
            listed
                .iter()
                .filter(|n| n.ends_with(".safetensors"))
                .count(),
            1,
            "{listed:?}"
        );
        // Opened as the directory, the one file is the model.
        let whole = CheckpointFiles::open(out).unwrap();
        assert!(!whole.is_sharded());
        assert_eq!(whole.file_names(), ["model.safetensors"]);
        return BTreeMap::from([("model.safetensors".to_string(), tensors)]);
    }
    assert!(
        !out.join("model.safetensors").exists(),
        "a model.safetensors beside an index: {listed:?}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let weight_map = index["weight_map"].as_object().unwrap();
    let mut shards: BTreeMap<String, Tensors> = BTreeMap::new();
    let names: BTreeSet<&str> = weight_map.values().map(|v| v.as_str().unwrap()).collect();
    let n = names.len();
    assert!(n >= 2, "an index for one shard");
    for (i, name) in names.iter().enumerate() {
        // Hugging Face's names, numbered from 1 with the count.
        assert_eq!(
            *name,
            format!("model-{:05}-of-{n:05}.safetensors", i + 1),
            "shard names"
        );
        let files = CheckpointFiles::open_file(out.join(name)).unwrap();
        shards.insert(name.to_string(), of_files(&files));
    }
    // Every tensor of every shard listed once, for its shard, and nothing
    // listed that no shard holds.
    let mut listed = 0;
    let mut total = 0u64;
    for (shard, tensors) in &shards {
        for (tensor, (_, _, bytes)) in tensors {
            assert_eq!(
                weight_map[tensor].as_str(),
                Some(shard.as_str()),
                "{tensor}"
            );
            listed += 1;
            total += bytes.len() as u64;
        }
        let data: u64 = tensors.values().map(|t| t.2.len() as u64).sum();
        assert!(
            data <= max || tensors.len() == 1,
            "{shard} holds {data} bytes of tensors, more than {max}"
        );
    }
    assert_eq!(listed, weight_map.len());
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
    // A pair is split only when it does not fit in one shard.
    for (shard, tensors) in &shards {
        for (tensor, (_, _, bytes)) in tensors {
            if let Some(base) = tensor.strip_suffix("_orig") {
                let mask = format!("{base}_mask");
                let mask_bytes = weight_map
                    .get(&mask)
                    .map(|s| shards[s.as_str().unwrap()][&mask].2.len() as u64);
                if let Some(m) = mask_bytes {
                    if bytes.len() as u64 + m <= max {
                        assert_eq!(weight_map[&mask].as_str(), Some(shard.as_str()), "{base}");
                    }
                }
            }
        }
    }
    shards
}

#[test]
fn resharded_output_holds_the_same_tensors_as_one_file() {
    let files = CheckpointFiles::open(fixture()).unwrap();
    let dir = scratch("same");
    let pruner = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3));
    let single = dir.join("single.safetensors");
    pruner
        .run(&files, &Output::File(single.clone()), &mut ())
        .unwrap();
    let want = of_checkpoint(&single);
    let total: u64 = want.values().map(|t| t.2.len() as u64).sum();
    // Tiny (every tensor alone), small, medium, and all in one shard.
    for max in [1, 700, 2000, 5000, total] {
        let out = dir.join(format!("out-{max}"));
        let report = pruner
            .run(
                &files,
                &Output::Shards {
                    dir: out.clone(),
                    max_shard_bytes: max,
                },
                &mut (),
            )
            .unwrap();
        let shards = check_shards(&out, max);
        assert_eq!(of_checkpoint(&out), want, "max {max}");
        // The input's config.json is copied, and the report lists the
        // shards and the index.
        assert!(out.join("config.json").is_file());
        assert_eq!(report.other_files, 1);
        // The index only for shards.
        let indexed = usize::from(shards.len() > 1);
        assert_eq!(report.files.len(), shards.len() + indexed);
        if max == 1 {
            assert!(shards.values().all(|t| t.len() == 1), "one tensor a shard");
        }
        if max == total {
            // Everything fits in one: model.safetensors, no index.
            assert_eq!(files::names(&out), ["config.json", "model.safetensors"]);
            assert_eq!(
                report.files,
                [PathBuf::from("model.safetensors")],
                "the report names the file written"
            );
        }
    }
}

#[test]
fn a_single_file_is_resharded_and_pairs_stay_together() {
    let dir = scratch("single");
    let input = dir.join("in.safetensors");
    let mut model = Sequential::new();
    for i in 0..4 {
        let w =
            ndarray::ArrayD::from_shape_fn(vec![4, 8], |ix| (ix[0] * 8 + ix[1] + i) as f32 - 9.5);
        model = model
            .with_child(
                &format!("fc{i}"),
                Layer::new().with_parameter("weight", w).unwrap(),
            )
            .unwrap();
    }
    Checkpoint::new(model).save(&input).unwrap();
    let files = CheckpointFiles::open(&input).unwrap();
    let pruner = FilePruner::new(StreamMethod::L1Unstructured, Amount::Fraction(0.5));
    let single = dir.join("single.safetensors");
    pruner
        .run(&files, &Output::File(single.clone()), &mut ())
        .unwrap();
    // Each pair is 256 bytes: two fit in 600, with room left that no
    // whole pair fits in.
    let out = dir.join("out");
    pruner
        .run(
            &files,
            &Output::Shards {
                dir: out.clone(),
                max_shard_bytes: 600,
            },
            &mut (),
        )
        .unwrap();
    let shards = check_shards(&out, 600);
    assert_eq!(shards.len(), 2);
    assert!(shards.values().all(|t| t.len() == 4));
    assert_eq!(of_checkpoint(&out), of_checkpoint(&single));
}

#[test]
fn bad_shard_sizes_are_refused_and_nothing_is_written() {
    let files = CheckpointFiles::open(fixture()).unwrap();
    let out = scratch("zero").join("out");
    let err = FilePruner::new(StreamMethod::Global, Amount::Fraction(0.3))
        .run(
            &files,
            &Output::Shards {
                dir: out.clone(),
                max_shard_bytes: 0,
            },
            &mut (),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::BadTarget {
            problem: TargetProblem::ShardSize(ShardSizeError::Zero),
            ..
        }
    ));
    assert!(!out.exists());
    assert_eq!(listing_len(out.parent().unwrap()), 0);
    assert_eq!(parse_shard_size("5GB"), Ok(5_000_000_000));
    assert_eq!(parse_shard_size("2GiB"), Ok(2 << 30));
    for bad in ["", "five", "5 GB B", "5PB", "-1", "0MB", "1e9"] {
        assert!(parse_shard_size(bad).is_err(), "{bad:?}");
    }
}

fn listing_len(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Into one shard or several, the output's index (or its absence) is the
/// only word on its files: no index of the input is copied, and no
/// safetensors file the input's index does not list (a stale
/// `model.safetensors` that transformers would read before the index).
#[test]
fn no_stale_index_or_weights_reach_a_resharded_output() {
    let dir = scratch("stale");
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, input.join(p.file_name().unwrap())).unwrap();
    }
    // Left over from other saves: a whole-model file the index does not
    // list, an index of PyTorch shards, a shard of another layout.
    std::fs::copy(
        input.join("model-00003-of-00003.safetensors"),
        input.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        input.join("pytorch_model.bin.index.json"),
        r#"{"metadata": {}, "weight_map": {"w": "pytorch_model.bin"}}"#,
    )
    .unwrap();
    std::fs::copy(
        input.join("model-00001-of-00003.safetensors"),
        input.join("model-00001-of-00009.safetensors"),
    )
    .unwrap();
    let before: Vec<(String, Vec<u8>)> = files::names(&input)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(input.join(&n)).unwrap()))
        .collect();
    let files = CheckpointFiles::open(&input).unwrap();
    assert!(files.is_sharded());
    assert_eq!(files.other_files(), [input.join("config.json")]);
    let pruner = FilePruner::new(StreamMethod::L1Unstructured, Amount::Fraction(0.5));
    let single = dir.join("single.safetensors");
    pruner
        .run(&files, &Output::File(single.clone()), &mut ())
        .unwrap();
    let want = of_checkpoint(&single);
    for (tag, max) in [("one", u64::MAX), ("several", 2000)] {
        let out = dir.join(tag);
        pruner
            .run(
                &files,
                &Output::Shards {
                    dir: out.clone(),
                    max_shard_bytes: max,
                },
                &mut (),
            )
            .unwrap();
        let shards = check_shards(&out, max);
        // The files written and config.json: nothing else.
        let mut written: Vec<String> = shards.keys().cloned().collect();
        written.push("config.json".into());
        if shards.len() > 1 {
            written.push("model.safetensors.index.json".into());
        }
        written.sort();
        assert_eq!(files::names(&out), written, "{tag}");
        assert_eq!(shards.len() > 1, tag == "several", "{tag}");
        assert_eq!(of_checkpoint(&out), want, "{tag}");
    }
    // The input is as it was.
    let after: Vec<(String, Vec<u8>)> = files::names(&input)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(input.join(&n)).unwrap()))
        .collect();
    assert_eq!(after, before);
}
