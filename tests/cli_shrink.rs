//! `ndprune shrink`, run as a program.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndprune::io::Checkpoint;
use ndprune::prelude::*;
use rand::SeedableRng;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-cli-shrink-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ndprune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
