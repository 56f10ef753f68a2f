//! Shrinking checkpoint files: equal to shrinking in memory; Hugging Face
//! decoder groups (MLP channels, key/value heads) with the config
//! rewritten; failures leave nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndprune::group::{self, ChannelGroup, GroupImportance, Inexact};
use ndprune::io::{
    Checkpoint, CheckpointError, CheckpointFiles, ConfigProblem, FileShrinker, LayerWidths, Output,
    ShrinkGroups,
};
use ndprune::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[path = "support/models.rs"]
mod models;
use models::{bn, uniform};

#[path = "support/files.rs"]
mod files;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ndprune-shrink-files-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn cnn(rng: &mut StdRng) -> Sequential<f32> {
    let mut features = Sequential::new();
    for (i, l) in [
        Layer::conv2d(3, 8, 3, rng),
        bn(8, rng),
        Layer::new(),
        Layer::conv2d(8, 6, 3, rng),
        bn(6, rng),
        Layer::new(),
        Layer::new(),
        Layer::new(),
        Layer::new(),
        Layer::new(),
        Layer::conv2d(6, 5, 1, rng),
    ]
    .into_iter()
    .enumerate()
    {
        features = features.with_child(&i.to_string(), l).unwrap();
    }
    let classifier = Sequential::new()
        .push(Layer::linear(5 * 4, 7, rng))
        .push(Layer::new())
        .push(Layer::linear(7, 3, rng));
    Sequential::new()
        .with_child("features", features)
        .unwrap()
        .with_child("classifier", classifier)
        .unwrap()
}

fn all(m: &impl Module<f32>) -> Vec<(String, ArrayD<f32>)> {
    let mut v: Vec<_> = m
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_pruned_checkpoint_shrinks_in_files_as_in_memory() {
    let dir = scratch("chain");
    let mut rng = StdRng::seed_from_u64(11);
    let mut model = cnn(&mut rng);
    // `features.10` (children 0..10: "10" after "9") and the flatten block
    // of 4 into the classifier.
    let groups = group::infer_chain(&model).unwrap();
    assert_eq!(groups.len(), 4);
    for g in &groups {
        group::prune_group(
            &mut model,
            g,
            Amount::Fraction(0.4),
            &GroupImportance::default(),
        )
        .unwrap();
    }
    let input = dir.join("in.safetensors");
    Checkpoint::from_module(&model).save(&input).unwrap();

    let mut expected = model.clone();
    group::shrink(&mut expected, &groups, Inexact::Refuse).unwrap();

    let out = dir.join("out.safetensors");
    let report = FileShrinker::new(ShrinkGroups::Chain)
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::File(out.clone()),
        )
        .unwrap();
    assert_eq!(report.groups.len(), 4);
    assert!(report.bytes_after < report.bytes_before);
    let got = Checkpoint::<f32>::load(&out).unwrap();
    assert_eq!(all(&got), all(&expected));

    // Declared groups (the same ones) give the same file.
    let out2 = dir.join("declared.safetensors");
    FileShrinker::new(ShrinkGroups::Declared(groups.clone()))
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::File(out2.clone()),
        )
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&out2).unwrap());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_amount_in_files_equals_group_pruning_then_shrink() {
    let dir = scratch("amount");
    let mut rng = StdRng::seed_from_u64(12);
    let model = cnn(&mut rng);
    let input = dir.join("in.safetensors");
    Checkpoint::from_module(&model).save(&input).unwrap();
    let groups = group::infer_chain(&model).unwrap();
    let mut expected = model.clone();
    for g in &groups {
        group::prune_group(
            &mut expected,
            g,
            Amount::Fraction(0.5),
            &GroupImportance::default(),
        )
        .unwrap();
    }
    group::shrink(&mut expected, &groups, Inexact::Refuse).unwrap();
    for name in expected
        .named_pruned()
        .into_iter()
        .map(|(n, _)| n)
        .collect::<Vec<_>>()
    {
        prune::remove(&mut expected, &name).unwrap();
    }
    let out = dir.join("out.safetensors");
    FileShrinker::new(ShrinkGroups::Chain)
        .amount(Amount::Fraction(0.5))
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::File(out.clone()),
        )
        .unwrap();
    let got = Checkpoint::<f32>::load(&out).unwrap();
    assert_eq!(all(&got), all(&expected));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_inexact_channel_is_refused_and_nothing_is_written() {
    let dir = scratch("inexact");
    let mut rng = StdRng::seed_from_u64(13);
    let mut model = Sequential::<f32>::new()
        .push(Layer::linear(4, 6, &mut rng))
        .push(Layer::linear(6, 2, &mut rng));
    prune::ln_structured(
        &mut model,
        "0.weight",
        Amount::Count(2),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    let input = dir.join("in.safetensors");
    Checkpoint::from_module(&model).save(&input).unwrap();
    let before = fs::read(&input).unwrap();
    let out = dir.join("out.safetensors");
    let err = FileShrinker::new(ShrinkGroups::Chain)
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::File(out.clone()),
        )
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::Prune { ref tensor, .. } if tensor == "0.bias"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(fs::read(&input).unwrap(), before);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
    // Dropped on request, and reported.
    let r = FileShrinker::new(ShrinkGroups::Chain)
        .inexact(Inexact::Drop)
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::File(out.clone()),
        )
        .unwrap();
    assert_eq!(r.groups[0].1.inexact.len(), 2);
    fs::remove_dir_all(&dir).unwrap();
}

/// A small LLaMA-shaped decoder: hidden 8, 4 query heads of 2 in 2
/// key/value groups, intermediate 6, two layers, split into two shards.
fn decoder(dir: &Path, rng: &mut StdRng, with_config: bool) {
    let layer = |rng: &mut StdRng| {
        let lin = |out: usize, inp: usize, rng: &mut StdRng| {
            Layer::new()
                .with_parameter("weight", uniform(vec![out, inp], rng))
                .unwrap()
        };
        let attn = Sequential::new()
            .with_child("q_proj", lin(8, 8, rng))
            .unwrap()
            .with_child("k_proj", lin(4, 8, rng))
            .unwrap()
            .with_child("v_proj", lin(4, 8, rng))
            .unwrap()
            .with_child("o_proj", lin(8, 8, rng))
            .unwrap();
        let mlp = Sequential::new()
            .with_child("gate_proj", lin(6, 8, rng))
            .unwrap()
            .with_child("up_proj", lin(6, 8, rng))
            .unwrap()
            .with_child("down_proj", lin(8, 6, rng))
            .unwrap();
        Sequential::new()
            .with_child("self_attn", attn)
            .unwrap()
            .with_child("mlp", mlp)
            .unwrap()
            .with_child(
                "input_layernorm",
                Layer::new()
                    .with_parameter("weight", ArrayD::ones(vec![8]))
                    .unwrap(),
            )
            .unwrap()
    };
    let mut index = serde_json::Map::new();
    for i in 0..2 {
        let m = Sequential::new()
            .with_child(
                "model",
                Sequential::new()
                    .with_child(
                        "layers",
                        Sequential::new()
                            .with_child(&i.to_string(), layer(rng))
                            .unwrap(),
                    )
                    .unwrap(),
            )
            .unwrap();
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        let ckpt = Checkpoint::from_module(&m);
        for (n, _) in m.state_dict() {
            index.insert(n, serde_json::Value::String(name.clone()));
        }
        ckpt.save(dir.join(&name)).unwrap();
    }
    let doc = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": index });
    fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    if with_config {
        let cfg = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 6,
            "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        });
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
    }
    fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
}

#[test]
fn a_decoder_loses_mlp_channels_and_kv_heads_with_its_config() {
    let dir = scratch("decoder");
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = StdRng::seed_from_u64(14);
    decoder(&input, &mut rng, true);
    let files = CheckpointFiles::open(&input).unwrap();
    let plan = FileShrinker::new(ShrinkGroups::Decoder)
        .plan(&files)
        .unwrap();
    // Two MLP groups and two attention groups.
    assert_eq!(plan.groups.len(), 4);
    let out = dir.join("out");
    let report = FileShrinker::new(ShrinkGroups::Decoder)
        .amount(Amount::Fraction(0.5))
        .run(&files, &Output::Directory(out.clone()))
        .unwrap();
    assert_eq!(
        report.config.get("intermediate_size"),
        Some(&serde_json::json!(3))
    );
    assert_eq!(
        report.config.get("num_key_value_heads"),
        Some(&serde_json::json!(1))
    );
    assert_eq!(
        report.config.get("num_attention_heads"),
        Some(&serde_json::json!(2))
    );
    assert_eq!(report.config.get("head_dim"), Some(&serde_json::json!(2)));
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["intermediate_size"], 3);
    assert_eq!(cfg["hidden_size"], 8);
    assert_eq!(cfg["num_key_value_heads"], 1);
    assert!(out.join("tokenizer.json").exists());
    let got = Checkpoint::<f32>::load(out.join("model-00001-of-00002.safetensors")).unwrap();
    let p = "model.layers.0.";
    let shape = |n: &str| got.tensor(&format!("{p}{n}")).unwrap().shape().to_vec();
    assert_eq!(shape("mlp.gate_proj.weight"), [3, 8]);
    assert_eq!(shape("mlp.down_proj.weight"), [8, 3]);
    assert_eq!(shape("self_attn.q_proj.weight"), [4, 8]);
    assert_eq!(shape("self_attn.k_proj.weight"), [2, 8]);
    assert_eq!(shape("self_attn.o_proj.weight"), [8, 4]);
    // The kept head's rows are the input's rows, untouched.
    let orig = Checkpoint::<f32>::load(input.join("model-00001-of-00002.safetensors")).unwrap();
    let removed = &report
        .groups
        .iter()
        .find(|(g, _)| g.primary().unwrap().tensor() == "model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .1
        .removed;
    let kept_head = 1 - removed[0];
    let k_in = orig
        .tensor("model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    assert_eq!(
        got.tensor("model.layers.0.self_attn.k_proj.weight")
            .unwrap(),
        &k_in
            .slice(ndarray::s![kept_head * 2..kept_head * 2 + 2, ..])
            .to_owned()
            .into_dyn()
    );
    let q_in = orig
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(
        got.tensor("model.layers.0.self_attn.q_proj.weight")
            .unwrap(),
        &q_in
            .slice(ndarray::s![kept_head * 4..kept_head * 4 + 4, ..])
            .to_owned()
            .into_dyn()
    );
    // The index lists every tensor with the new total size.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert_eq!(index["weight_map"].as_object().unwrap().len(), 2 * 8);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_decoder_without_config_groups_only_its_mlp_and_uneven_layers_are_refused() {
    let dir = scratch("decoder-noconfig");
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = StdRng::seed_from_u64(15);
    decoder(&input, &mut rng, false);
    let plan = FileShrinker::new(ShrinkGroups::Decoder)
        .plan(&CheckpointFiles::open(&input).unwrap())
        .unwrap();
    assert_eq!(plan.groups.len(), 2);
    assert_eq!(plan.notes.len(), 1);

    // With a config, layers that would keep different widths are refused.
    let dir2 = scratch("decoder-uneven");
    let input2 = dir2.join("in");
    fs::create_dir_all(&input2).unwrap();
    decoder(&input2, &mut rng, true);
    let shard = input2.join("model-00001-of-00002.safetensors");
    let mut ckpt = Checkpoint::<f32>::load(&shard).unwrap();
    let g = ChannelGroup::new(6)
        .producer("model.layers.0.mlp.gate_proj.weight", Dim(0))
        .producer("model.layers.0.mlp.up_proj.weight", Dim(0))
        .consumer("model.layers.0.mlp.down_proj.weight", Dim(1));
    group::prune_channels(&mut ckpt, &g, &[2]).unwrap();
    for m in g.members() {
        prune::remove(&mut ckpt, m.tensor()).unwrap();
    }
    ckpt.save(&shard).unwrap();
    let out = dir2.join("out");
    let err = FileShrinker::new(ShrinkGroups::Decoder)
        .run(
            &CheckpointFiles::open(&input2).unwrap(),
            &Output::Directory(out.clone()),
        )
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::Config { problem: ConfigProblem::NonUniform { ref widths, .. }, .. } if widths == &[5, 6]),
        "{err}"
    );
    assert!(!out.exists());
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&dir2).unwrap();
}

/// Prunes MLP channels `channels` of layer `layer` of the decoder in
/// `input` (made by [`decoder`]), gate and up rows and down columns, and
/// makes it permanent in its shard.
fn prune_mlp(input: &Path, layer: usize, channels: &[usize]) {
    let shard = input.join(format!("model-0000{}-of-00002.safetensors", layer + 1));
    let mut ckpt = Checkpoint::<f32>::load(&shard).unwrap();
    let p = format!("model.layers.{layer}.mlp.");
    let g = ChannelGroup::new(6)
        .producer(&format!("{p}gate_proj.weight"), Dim(0))
        .producer(&format!("{p}up_proj.weight"), Dim(0))
        .consumer(&format!("{p}down_proj.weight"), Dim(1));
    group::prune_channels(&mut ckpt, &g, channels).unwrap();
    for m in g.members() {
        prune::remove(&mut ckpt, m.tensor()).unwrap();
    }
    ckpt.save(&shard).unwrap();
}

/// Layers pruned unevenly (layer 0: 2 channels, layer 1: 1) under a config
/// of one width: padded, every layer keeps 5, layer 0 keeps back the
/// pruned channel of larger importance (its down_proj column), still zero,
/// and every kept row and column is the input's.
#[test]
fn uneven_layers_padded_keep_the_widest_width_exactly() {
    let dir = scratch("decoder-pad");
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = StdRng::seed_from_u64(16);
    decoder(&input, &mut rng, true);
    prune_mlp(&input, 0, &[2, 4]);
    prune_mlp(&input, 1, &[1]);
    let files = CheckpointFiles::open(&input).unwrap();
    let refused = FileShrinker::new(ShrinkGroups::Decoder)
        .plan(&files)
        .unwrap_err();
    assert!(
        matches!(refused, CheckpointError::Config { problem: ConfigProblem::NonUniform { ref widths, .. }, .. } if widths == &[4, 5]),
        "{refused}"
    );
    let out = dir.join("out");
    let report = FileShrinker::new(ShrinkGroups::Decoder)
        .layer_widths(LayerWidths::PadToWidest)
        .run(&files, &Output::Directory(out.clone()))
        .unwrap();
    assert_eq!(
        report.config.get("intermediate_size"),
        Some(&serde_json::json!(5))
    );
    let orig = Checkpoint::<f32>::load(input.join("model-00001-of-00002.safetensors")).unwrap();
    let down = orig.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    let norm = |c: usize| down.index_axis(ndarray::Axis(1), c).mapv(|x| x * x).sum();
    // Group importance of a pruned channel: its down_proj column alone.
    let back = if norm(2) >= norm(4) { 2 } else { 4 };
    let gone = 6 - back;
    let mlp0 = report
        .groups
        .iter()
        .find(|(g, _)| g.primary().unwrap().tensor() == "model.layers.0.mlp.gate_proj.weight")
        .unwrap();
    assert_eq!(mlp0.1.removed, vec![gone]);
    assert_eq!(mlp0.1.kept, 5);
    let got = Checkpoint::<f32>::load(out.join("model-00001-of-00002.safetensors")).unwrap();
    let kept: Vec<usize> = (0..6).filter(|&c| c != gone).collect();
    for (name, axis) in [("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)] {
        let t = format!("model.layers.0.mlp.{name}.weight");
        let want = orig.tensor(&t).unwrap().select(ndarray::Axis(axis), &kept);
        assert_eq!(got.tensor(&t).unwrap(), &want, "{t}");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["intermediate_size"], 5);
    fs::remove_dir_all(&dir).unwrap();
}

/// A config whose `intermediate_size` is a list (one width per layer)
/// gets each layer's own width, with no padding and no refusal; a list of
/// the wrong length is refused.
#[test]
fn a_per_layer_config_takes_each_layers_width() {
    let dir = scratch("decoder-per-layer");
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = StdRng::seed_from_u64(17);
    decoder(&input, &mut rng, true);
    prune_mlp(&input, 0, &[2, 4]);
    prune_mlp(&input, 1, &[1]);
    let cfg_path = input.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!([6, 6]);
    fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let out = dir.join("out");
    let report = FileShrinker::new(ShrinkGroups::Decoder)
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::Directory(out.clone()),
        )
        .unwrap();
    assert_eq!(
        report.config.get("intermediate_size"),
        Some(&serde_json::json!([4, 5]))
    );
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(written["intermediate_size"], serde_json::json!([4, 5]));
    let got = Checkpoint::<f32>::load(out.join("model-00002-of-00002.safetensors")).unwrap();
    assert_eq!(
        got.tensor("model.layers.1.mlp.down_proj.weight")
            .unwrap()
            .shape(),
        &[8, 5]
    );

    cfg["intermediate_size"] = serde_json::json!([6, 6, 6]);
    fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let out2 = dir.join("out2");
    let err = FileShrinker::new(ShrinkGroups::Decoder)
        .run(
            &CheckpointFiles::open(&input).unwrap(),
            &Output::Directory(out2.clone()),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::Config {
                problem: ConfigProblem::ListLength {
                    field: "intermediate_size",
                    len: 3,
                    layers: 2
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(!out2.exists());
    fs::remove_dir_all(&dir).unwrap();
}

/// The checkpoint `tools/transformers_shrink_roundtrip.py` saved with
/// transformers' `save_pretrained` (a bf16 LLaMA in two shards, with its
/// config): shrunk here as there, the same channels go (the script checked
/// that the result loads into the smaller config and gives the masked
/// model's logits), and every kept row is the input's.
#[test]
fn a_transformers_checkpoint_shrinks_as_the_round_trip_checked() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-llama");
    let expected: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    let amount: f64 = expected["amount"].as_str().unwrap().parse().unwrap();
    let dir = scratch("hf-llama");
    let out = dir.join("out");
    let input = CheckpointFiles::open(fixture.join("in")).unwrap();
    let report = FileShrinker::new(ShrinkGroups::Decoder)
        .amount(Amount::Fraction(amount))
        .run(&input, &Output::Directory(out.clone()))
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(report.config.clone()),
        expected["config"]
    );
    for (g, r) in &report.groups {
        let name = g.primary().unwrap().tensor();
        let want: Vec<usize> = expected["removed"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} in expected.json"))
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(r.removed, want, "{name}");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    for (k, v) in expected["config"].as_object().unwrap() {
        assert_eq!(&cfg[k], v, "{k}");
    }
    // Kept MLP rows are the input's, byte for byte (bf16 read as raw).
    let view_in = input.view().unwrap();
    let files_out = CheckpointFiles::open(&out).unwrap();
    let view_out = files_out.view().unwrap();
    let name = "model.layers.1.mlp.up_proj.weight";
    let (a, b) = (view_in.get(name).unwrap(), view_out.get(name).unwrap());
    let removed = &report
        .groups
        .iter()
        .find(|(g, _)| g.primary().unwrap().tensor() == "model.layers.1.mlp.gate_proj.weight")
        .unwrap()
        .1
        .removed;
    let row = a.shape()[1] * 2;
    let kept: Vec<u8> = (0..a.shape()[0])
        .filter(|r| !removed.contains(r))
        .flat_map(|r| a.data()[r * row..(r + 1) * row].to_vec())
        .collect();
    assert_eq!(b.data(), kept.as_slice());
    // Tensors outside the groups are copied as they are.
    for n in [
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.norm.weight",
    ] {
        assert_eq!(
            view_in.get(n).unwrap().data(),
            view_out.get(n).unwrap().data(),
            "{n}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A config that does not describe the checkpoint beside it (widths,
/// head counts, a per-layer list of another length or of other things
/// than widths) is refused, naming what is wrong, and so is a shrink that
/// would leave a layer no MLP channel or no key/value head (a width of 0,
/// which no config describes and which ndprune would not read back), with
/// a config or without: nothing is written and the input is unchanged.
#[test]
fn configs_that_do_not_describe_the_checkpoint_and_empty_layers_are_refused() {
    let dir = scratch("decoder-bad-config");
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = StdRng::seed_from_u64(18);
    decoder(&input, &mut rng, true);
    let cfg_path = input.join("config.json");
    let good: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    let out = dir.join("out");
    let refused = |amount: Amount, want: &dyn Fn(&ConfigProblem) -> bool| {
        let before = files::snapshot(&input);
        let err = FileShrinker::new(ShrinkGroups::Decoder)
            .amount(amount)
            .run(
                &CheckpointFiles::open(&input).unwrap(),
                &Output::Directory(out.clone()),
            )
            .unwrap_err();
        match &err {
            CheckpointError::Config { problem, .. } => assert!(want(problem), "{err}"),
            other => panic!("{other}"),
        }
        assert!(!out.exists());
        assert_eq!(files::snapshot(&input), before);
        err.to_string()
    };
    let with = |field: &str, value: serde_json::Value| {
        let mut cfg = good.clone();
        cfg[field] = value;
        fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    };
    let half = Amount::Fraction(0.5);

    with("intermediate_size", serde_json::json!(100));
    let msg = refused(half, &|p| {
        matches!(
            p,
            ConfigProblem::Disagrees {
                field: "intermediate_size",
                ..
            }
        )
    });
    assert!(
        msg.contains("says 100 but the tensors beside it say [6, 6]"),
        "{msg}"
    );
    with("intermediate_size", serde_json::json!([6, 5]));
    refused(half, &|p| {
        matches!(
            p,
            ConfigProblem::Disagrees {
                field: "intermediate_size",
                ..
            }
        )
    });
    for bad in [
        serde_json::json!(["a", "b"]),
        serde_json::json!([6, -1]),
        serde_json::json!([6, 6.5]),
        serde_json::json!([6, 0]),
    ] {
        with("intermediate_size", bad);
        refused(half, &|p| {
            matches!(
                p,
                ConfigProblem::BadField {
                    field: "intermediate_size"
                }
            )
        });
    }
    with("intermediate_size", serde_json::json!([6]));
    refused(half, &|p| {
        matches!(
            p,
            ConfigProblem::ListLength {
                len: 1,
                layers: 2,
                ..
            }
        )
    });
    with("num_key_value_heads", serde_json::json!(1));
    let msg = refused(half, &|p| {
        matches!(
            p,
            ConfigProblem::Disagrees {
                field: "num_key_value_heads",
                ..
            }
        )
    });
    assert!(
        msg.contains("k_proj.weight) but the tensors beside it say 4 rows"),
        "{msg}"
    );
    with("num_key_value_heads", serde_json::json!(3));
    let msg = refused(half, &|p| {
        matches!(
            p,
            ConfigProblem::HeadsNotDivisible {
                heads: 4,
                kv_heads: 3
            }
        )
    });
    assert!(msg.contains("not a multiple"), "{msg}");

    // Two channels of every group: both key/value heads of each layer.
    with("num_key_value_heads", serde_json::json!(2));
    let msg = refused(Amount::Count(2), &|p| {
        matches!(
            p,
            ConfigProblem::NothingKept {
                what: "num_key_value_heads",
                ..
            }
        )
    });
    assert!(msg.contains("prune less"), "{msg}");
    // Everything: the MLP channels too, also without a config.
    refused(Amount::Fraction(1.0), &|p| {
        matches!(p, ConfigProblem::NothingKept { .. })
    });
    fs::remove_file(&cfg_path).unwrap();
    refused(Amount::Fraction(1.0), &|p| {
        matches!(
            p,
            ConfigProblem::NothingKept {
                what: "intermediate_size",
                ..
            }
        )
    });
    fs::remove_dir_all(&dir).unwrap();
}
