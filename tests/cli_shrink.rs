//! `ndprune shrink`, run as a program.
#![cfg(feature = "cli")]

use std::path::Path;

use ndprune::io::Checkpoint;
use ndprune::prelude::*;
use rand::SeedableRng;

#[path = "support/cli.rs"]
mod cli;
use cli::{dir, ndprune, s};

fn mlp(path: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let m = Sequential::<f32>::new()
        .push(Layer::linear(6, 10, &mut rng))
        .push(Layer::new())
        .push(Layer::linear(10, 8, &mut rng))
        .push(Layer::new())
        .push(Layer::linear(8, 2, &mut rng));
    Checkpoint::new(m).save(path).unwrap();
}

#[test]
fn shrink_by_amount_then_dry_run_and_json() {
    let d = dir("amount");
    let (input, out) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mlp(&input);
    let r = ndprune(&["shrink", s(&input), s(&out), "--amount", "0.5"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(text.contains("smaller"), "{text}");
    let small = Checkpoint::<f32>::load(&out).unwrap();
    assert_eq!(small.tensor("0.weight").unwrap().shape(), &[5, 6]);
    assert_eq!(small.tensor("2.weight").unwrap().shape(), &[4, 5]);
    assert_eq!(small.tensor("4.weight").unwrap().shape(), &[2, 4]);

    // A dry run writes nothing; --json is machine-readable.
    let out2 = d.join("dry.safetensors");
    let r = ndprune(&[
        "shrink",
        s(&input),
        s(&out2),
        "--amount",
        "3",
        "--dry-run",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!out2.exists());
    let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(doc["groups"][0]["kept"], 7);
    assert_eq!(doc["groups"][1]["removed"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn declared_groups_from_json_and_bad_files_are_usage_errors() {
    let d = dir("declared");
    let (input, out) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mlp(&input);
    let groups = d.join("groups.json");
    std::fs::write(
        &groups,
        r#"[{"channels": 10, "members": [
            {"tensor": "0.weight", "dim": 0, "role": "producer"},
            {"tensor": "0.bias", "dim": 0, "role": "producer"},
            {"tensor": "2.weight", "dim": 1, "role": "consumer"}]}]"#,
    )
    .unwrap();
    let r = ndprune(&[
        "shrink",
        s(&input),
        s(&out),
        "--groups",
        s(&groups),
        "--amount",
        "4",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let small = Checkpoint::<f32>::load(&out).unwrap();
    assert_eq!(small.tensor("2.weight").unwrap().shape(), &[8, 6]);
    assert_eq!(small.tensor("4.weight").unwrap().shape(), &[2, 8]);

    std::fs::write(
        &groups,
        r#"[{"channels": 10, "members": [{"tensor": "0.weight", "dim": 0, "role": "maker"}]}]"#,
    )
    .unwrap();
    let out2 = d.join("bad.safetensors");
    let r = ndprune(&["shrink", s(&input), s(&out2), "--groups", s(&groups)]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("role"));
    // A group that does not fit the file: an error naming the tensor.
    std::fs::write(
        &groups,
        r#"[{"channels": 9, "members": [{"tensor": "0.weight", "dim": 0, "role": "producer"}]}]"#,
    )
    .unwrap();
    let r = ndprune(&["shrink", s(&input), s(&out2), "--groups", s(&groups)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("0.weight"));
    assert!(!out2.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

/// A directory holding `pytorch_model.bin` beside `config.json` and no
/// index shrinks into a directory holding `model.safetensors` and the
/// config, the same tensors as its safetensors twin shrinks to.
#[test]
fn a_directory_of_one_bin_file_shrinks_into_a_safetensors_directory() {
    let d = dir("bin-dir");
    let fixtures = cli::fixtures_pth();
    let model = cli::bin_dir_model(&d);
    // The linear 3 (f32) feeds the bf16 head.
    let groups = d.join("groups.json");
    std::fs::write(
        &groups,
        r#"[{"channels": 8, "members": [
            {"tensor": "3.weight", "dim": 0, "role": "producer"},
            {"tensor": "3.bias", "dim": 0, "role": "producer"},
            {"tensor": "head.weight", "dim": 1, "role": "consumer"}]}]"#,
    )
    .unwrap();
    let (out, twin) = (d.join("out"), d.join("twin.safetensors"));
    for (input, output) in [(&model, &out), (&fixtures.join("model.safetensors"), &twin)] {
        let r = ndprune(&[
            "shrink",
            s(input),
            s(output),
            "--groups",
            s(&groups),
            "--amount",
            "3",
            "-q",
        ]);
        assert!(
            r.status.success(),
            "{}: {}",
            input.display(),
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"]);
    let tensors = |path: &Path| {
        let files = ndprune::io::CheckpointFiles::open(path).unwrap();
        let view = files.view().unwrap();
        let mut v: Vec<(String, Vec<usize>, Vec<u8>)> = view
            .entries()
            .iter()
            .map(|e| (e.name().to_string(), e.shape().to_vec(), e.data().to_vec()))
            .collect();
        v.sort();
        v
    };
    let got = tensors(&out.join("model.safetensors"));
    let shape = |name: &str| got.iter().find(|t| t.0 == name).unwrap().1.clone();
    assert_eq!(shape("3.weight"), [5, 16]);
    assert_eq!(shape("head.weight"), [6, 5]);
    assert_eq!(got, tensors(&twin));
}

/// A two-layer decoder MLP (intermediate 6, hidden 4) in a directory with
/// its config, layer 0 with channels 1 and 3 zero, layer 1 with channel 0.
fn uneven_decoder(d: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut layers = Sequential::<f32>::new();
    for (layer, zero) in [(0, &[1usize, 3][..]), (1, &[0][..])] {
        let mut w = |out: usize, inp: usize, rows: &[usize]| {
            let mut a = ndarray::Array2::<f32>::from_shape_fn((out, inp), |_| {
                rand::RngExt::random_range(&mut rng, 0.5f32..1.0)
            });
            for &r in rows {
                a.row_mut(r).fill(0.0);
            }
            Layer::new().with_parameter("weight", a.into_dyn()).unwrap()
        };
        let mlp = Sequential::new()
            .with_child("gate_proj", w(6, 4, zero))
            .unwrap()
            .with_child("up_proj", w(6, 4, zero))
            .unwrap()
            .with_child("down_proj", w(4, 6, &[]))
            .unwrap();
        layers = layers
            .with_child(
                &layer.to_string(),
                Sequential::new().with_child("mlp", mlp).unwrap(),
            )
            .unwrap();
    }
    let m = Sequential::new()
        .with_child(
            "model",
            Sequential::new().with_child("layers", layers).unwrap(),
        )
        .unwrap();
    std::fs::create_dir_all(d).unwrap();
    Checkpoint::new(m)
        .save(d.join("model.safetensors"))
        .unwrap();
    std::fs::write(
        d.join("config.json"),
        r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 4, "intermediate_size": 6}"#,
    )
    .unwrap();
}

#[test]
fn uneven_decoder_layers_are_refused_or_padded_with_pad_layers() {
    let d = dir("pad-layers");
    let input = d.join("in");
    uneven_decoder(&input);
    let out = d.join("out");
    let r = ndprune(&["shrink", s(&input), s(&out), "--groups", "decoder"]);
    assert!(!r.status.success());
    assert!(
        cli::stderr(&r).contains("different widths"),
        "{}",
        cli::stderr(&r)
    );
    assert!(!out.exists());

    let r = ndprune(&[
        "shrink",
        s(&input),
        s(&out),
        "--groups",
        "decoder",
        "--pad-layers",
    ]);
    cli::ok(&r);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["intermediate_size"], 5);
    let small = Checkpoint::<f32>::load(out.join("model.safetensors")).unwrap();
    for l in 0..2 {
        let gate = small
            .tensor(&format!("model.layers.{l}.mlp.gate_proj.weight"))
            .unwrap();
        assert_eq!(gate.shape(), &[5, 4]);
        // Layer 0 kept one of its two zero channels.
        let zero_rows = gate
            .outer_iter()
            .filter(|r| r.iter().all(|&x| x == 0.0))
            .count();
        assert_eq!(zero_rows, if l == 0 { 1 } else { 0 });
    }

    let out2 = d.join("out2.safetensors");
    let r = ndprune(&["shrink", s(&input), s(&out2), "--pad-layers"]);
    assert!(!r.status.success());
    assert!(cli::stderr(&r).contains("--pad-layers is for --groups decoder"));
    assert!(!out2.exists());
    std::fs::remove_dir_all(&d).unwrap();
}
