//! `ndprune prune --method wanda --act-norms FILE`: the same masks as the
//! library's `wanda::prune`, and typed errors naming the tensor.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::ArrayD;
use ndprune::io::Checkpoint;
use ndprune::prelude::*;
use ndprune::wanda::{self, ActivationNorms};
use rand::SeedableRng;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-cli-wanda-{tag}-{}", std::process::id()));
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

fn model() -> Sequential<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    Sequential::new()
        .with_child("fc1", Layer::linear(12, 8, &mut rng))
        .unwrap()
        .with_child("fc2", Layer::linear(8, 4, &mut rng))
        .unwrap()
}

/// A norms file: a 1-D tensor per weight name.
fn norms_file(path: &Path, norms: &[(&str, Vec<f32>)]) {
    let holder = norms.iter().fold(Sequential::new(), |m, (name, v)| {
        let (module, tensor) = name.rsplit_once('.').unwrap();
        let layer = Layer::new()
            .with_parameter(
                tensor,
                ArrayD::from_shape_vec(vec![v.len()], v.clone()).unwrap(),
            )
            .unwrap();
        m.with_child(module, layer).unwrap()
    });
    Checkpoint::new(holder).save(path).unwrap();
}

fn norms_of(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|j| ((j as u32 * 7 + seed) % 11) as f32 * 0.5)
        .collect()
}

#[test]
fn wanda_from_the_command_line_equals_the_library() {
    let d = dir("ok");
    let (input, norms, out) = (
        d.join("in.safetensors"),
        d.join("norms.safetensors"),
        d.join("out.safetensors"),
    );
    Checkpoint::new(model()).save(&input).unwrap();
    let n1 = norms_of(12, 1);
    let n2 = norms_of(8, 4);
    norms_file(
        &norms,
        &[("fc1.weight", n1.clone()), ("fc2.weight", n2.clone())],
    );
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "wanda",
        "--act-norms",
        s(&norms),
        "--amount",
        "0.5",
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let mut expected = model();
    for (w, n) in [("fc1.weight", &n1), ("fc2.weight", &n2)] {
        let n = ActivationNorms::new(n.iter().map(|&x| f64::from(x)).collect()).unwrap();
        wanda::prune(&mut expected, w, &n, Amount::Fraction(0.5)).unwrap();
    }
    let written = Checkpoint::<f32>::load(&out).unwrap();
    for w in ["fc1.weight", "fc2.weight"] {
        let mask = format!("{w}_mask");
        assert_eq!(written.model().buffer(&mask), expected.buffer(&mask), "{w}");
        // Half of each row, rounded down.
        let m = written.model().buffer(&mask).unwrap();
        for row in m.outer_iter() {
            assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), row.len() / 2);
        }
    }
}

#[test]
fn missing_or_misshapen_norms_fail_naming_the_tensor_and_write_nothing() {
    let d = dir("bad");
    let (input, norms, out) = (
        d.join("in.safetensors"),
        d.join("norms.safetensors"),
        d.join("out.safetensors"),
    );
    Checkpoint::new(model()).save(&input).unwrap();

    norms_file(&norms, &[("fc1.weight", norms_of(12, 1))]);
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "wanda",
        "--act-norms",
        s(&norms),
        "--amount",
        "0.5",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fc2.weight") && err.contains("no activation norms"),
        "{err}"
    );
    assert!(!out.exists());

    norms_file(
        &norms,
        &[
            ("fc1.weight", norms_of(12, 1)),
            ("fc2.weight", norms_of(7, 1)),
        ],
    );
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "wanda",
        "--act-norms",
        s(&norms),
        "--amount",
        "0.5",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fc2.weight") && err.contains("7 given"),
        "{err}"
    );
    assert!(!out.exists());

    norms_file(&norms, &[("fc1.weight", vec![1.0, -1.0])]);
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "wanda",
        "--act-norms",
        s(&norms),
        "--amount",
        "0.5",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fc1.weight") && err.contains("norm 1 is -1"),
        "{err}"
    );

    // Usage errors (status 2): wanda without norms, norms without wanda.
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "wanda",
        "--amount",
        "0.5",
    ]);
    assert_eq!(r.status.code(), Some(2));
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--method",
        "l1_unstructured",
        "--act-norms",
        s(&norms),
        "--amount",
        "0.5",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(!out.exists());
}
