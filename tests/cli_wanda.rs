//! `ndprune prune --method wanda --act-norms FILE` (and its N:M form,
//! `--n N --m M`): the same masks as the library's `wanda::prune` and
//! `wanda::prune_nm`, and typed errors naming the tensor.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Output;

use half::bf16;
use ndarray::ArrayD;
use ndprune::io::Checkpoint;
use ndprune::prelude::*;
use ndprune::wanda::{self, ActivationNorms};
use rand::SeedableRng;

#[path = "support/cli.rs"]
mod cli;
use cli::{dir, ndprune, ok, s, stderr};

/// A fresh scratch directory's input, norms and output paths.
fn paths(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir(tag);
    (
        d.join("in.safetensors"),
        d.join("norms.safetensors"),
        d.join("out.safetensors"),
    )
}

/// `ndprune prune INPUT OUT --method wanda --act-norms NORMS`, then `rest`.
fn wanda_cli(input: &Path, out: &Path, norms: &Path, rest: &[&str]) -> Output {
    let mut args = vec![
        "prune",
        s(input),
        s(out),
        "--method",
        "wanda",
        "--act-norms",
        s(norms),
    ];
    args.extend_from_slice(rest);
    ndprune(&args)
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
    let (input, norms, out) = paths("ok");
    Checkpoint::new(model()).save(&input).unwrap();
    let n1 = norms_of(12, 1);
    let n2 = norms_of(8, 4);
    norms_file(
        &norms,
        &[("fc1.weight", n1.clone()), ("fc2.weight", n2.clone())],
    );
    let r = wanda_cli(&input, &out, &norms, &["--amount", "0.5", "-q"]);
    ok(&r);

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
    let (input, norms, out) = paths("bad");
    Checkpoint::new(model()).save(&input).unwrap();

    norms_file(&norms, &[("fc1.weight", norms_of(12, 1))]);
    let r = wanda_cli(&input, &out, &norms, &["--amount", "0.5"]);
    let err = stderr(&r);
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
    let r = wanda_cli(&input, &out, &norms, &["--amount", "0.5"]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fc2.weight") && err.contains("7 given"),
        "{err}"
    );
    assert!(!out.exists());

    norms_file(&norms, &[("fc1.weight", vec![1.0, -1.0])]);
    let r = wanda_cli(&input, &out, &norms, &["--amount", "0.5"]);
    let err = stderr(&r);
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

/// Two Linear weights of `T` (and their biases): `fc1.weight` [8, 12] and
/// `fc2.weight` [4, 8] a few bf16 steps above 1 in magnitude, so that their
/// f32 scores often round to equal bf16 ones.
fn near_model<T: PruneFloat>() -> Sequential<T> {
    let weight = |out: usize, inf: usize, seed: usize| {
        ArrayD::from_shape_fn(vec![out, inf], |ix| {
            let (i, j) = (ix[0], ix[1]);
            let k = ((i * 3 + j * 5 + seed) % 4) as f64;
            let sign = if (i + j * 7 + seed) % 3 == 0 {
                -1.0
            } else {
                1.0
            };
            T::from_f64(sign * (1.0 + k / 128.0))
        })
    };
    let bias = |n: usize| ArrayD::from_elem(vec![n], T::from_f64(0.5));
    let layer = |w: ArrayD<T>, b: ArrayD<T>| {
        Layer::new()
            .with_parameter("weight", w)
            .unwrap()
            .with_parameter("bias", b)
            .unwrap()
    };
    Sequential::new()
        .with_child("fc1", layer(weight(8, 12, 1), bias(8)))
        .unwrap()
        .with_child("fc2", layer(weight(4, 8, 2), bias(4)))
        .unwrap()
}

/// Norms a fraction of a bf16 step above 1.
fn near_norms(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|j| 1.0 + ((j * 37 + seed * 11) % 128) as f32 / 16384.0)
        .collect()
}

fn activation_norms(v: &[f32]) -> ActivationNorms {
    ActivationNorms::new(v.iter().map(|&x| f64::from(x)).collect()).unwrap()
}

/// Runs `ndprune prune IN OUT --method wanda --act-norms F --n N --m M` on
/// a `T` checkpoint and checks its masks against `wanda::prune_nm`.
fn cli_nm_equals_library<T: ndprune::io::CheckpointFloat>(tag: &str, n: usize, m: usize) -> bool {
    let (input, norms, out) = paths(tag);
    Checkpoint::new(near_model::<T>()).save(&input).unwrap();
    let (n1, n2) = (near_norms(12, 1), near_norms(8, 2));
    norms_file(
        &norms,
        &[("fc1.weight", n1.clone()), ("fc2.weight", n2.clone())],
    );
    let (ns, ms) = (n.to_string(), m.to_string());
    let r = wanda_cli(&input, &out, &norms, &["--n", &ns, "--m", &ms, "-q"]);
    ok(&r);
    let written = Checkpoint::<T>::load(&out).unwrap();
    let mut expected = near_model::<T>();
    let mut rounded = near_model::<T>();
    for (w, v) in [("fc1.weight", &n1), ("fc2.weight", &n2)] {
        let norms = activation_norms(v);
        wanda::prune_nm(&mut expected, w, &norms, n, m).unwrap();
        let nm = NmStructured::new(n, m, Dim(1)).unwrap();
        wanda::prune_with(&mut rounded, w, &norms, &nm).unwrap();
    }
    let mut differs = false;
    for w in ["fc1.weight", "fc2.weight"] {
        let mask = format!("{w}_mask");
        let got = written.model().buffer(&mask).unwrap();
        assert_eq!(Some(got), expected.buffer(&mask), "{tag}: {w}");
        assert_eq!(written.model().tensor(w), expected.tensor(w), "{tag}: {w}");
        // n of every m kept in each row.
        for row in got.outer_iter() {
            for group in row.as_slice().unwrap().chunks(m) {
                assert_eq!(group.iter().filter(|&&v| v == T::one()).count(), n);
            }
        }
        differs |= rounded.buffer(&mask) != Some(got);
    }
    // The biases are not pruned (1-D).
    assert!(written.model().buffer("fc1.bias_mask").is_none());
    differs
}

#[test]
fn wanda_nm_from_the_command_line_equals_the_library_in_f32_and_bf16() {
    cli_nm_equals_library::<f32>("nm-f32", 2, 4);
    // bf16: ranked in f32, as the library (and the reference) ranks it;
    // ranking the scores rounded to bf16 would have pruned other entries.
    assert!(cli_nm_equals_library::<bf16>("nm-bf16", 2, 4));
    // 1:4 keeps one of four.
    cli_nm_equals_library::<bf16>("nm-bf16-1-4", 1, 4);
}

#[test]
fn wanda_nm_arguments_are_checked() {
    let (input, norms, out) = paths("nm-args");
    Checkpoint::new(model()).save(&input).unwrap();
    norms_file(
        &norms,
        &[
            ("fc1.weight", norms_of(12, 1)),
            ("fc2.weight", norms_of(8, 4)),
        ],
    );
    let run = |extra: &[&str]| wanda_cli(&input, &out, &norms, extra);
    // --amount with --n/--m, half of --n/--m, a bad pattern, --dim: usage errors.
    for extra in [
        &["--n", "2", "--m", "4", "--amount", "0.5"][..],
        &["--n", "2"],
        &["--m", "4"],
        &["--n", "5", "--m", "4"],
        &["--n", "two", "--m", "4"],
        &["--n", "2", "--m", "4", "--dim", "0"],
    ] {
        let r = run(extra);
        assert_eq!(r.status.code(), Some(2), "{extra:?}: {}", stderr(&r));
        assert!(!out.exists());
    }
    let err = stderr(&run(&["--n", "2", "--m", "4", "--amount", "0.5"]));
    assert!(err.contains("takes no --amount"), "{err}");
    // A row of 12 in groups of 8: the run fails naming the tensor.
    let r = run(&["--n", "4", "--m", "8"]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("fc1.weight"), "{err}");
    assert!(!out.exists());
    // fc2 alone divides by 8.
    let r = run(&["--n", "4", "--m", "8", "--include", "fc2.weight", "-q"]);
    ok(&r);
    let mut expected = model();
    let n2 = ActivationNorms::new(norms_of(8, 4).iter().map(|&x| f64::from(x)).collect()).unwrap();
    wanda::prune_nm(&mut expected, "fc2.weight", &n2, 4, 8).unwrap();
    let written = Checkpoint::<f32>::load(&out).unwrap();
    assert_eq!(
        written.model().buffer("fc2.weight_mask"),
        expected.buffer("fc2.weight_mask")
    );
    assert!(written.model().buffer("fc1.weight_mask").is_none());
}

#[test]
fn recipes_take_wanda_steps_with_act_norms() {
    let (input, norms, out) = paths("recipe");
    Checkpoint::new(near_model::<bf16>()).save(&input).unwrap();
    let (n1, n2) = (near_norms(12, 1), near_norms(8, 2));
    norms_file(
        &norms,
        &[("fc1.weight", n1.clone()), ("fc2.weight", n2.clone())],
    );
    // Wanda at 25 % per row on fc1, then 2:4 on both.
    let recipe = input.with_file_name("recipe.json");
    std::fs::write(
        &recipe,
        r#"{"steps": [
            {"method": "wanda", "amount": 0.25, "include": ["fc1.weight"]},
            {"method": "wanda_nm", "n": 2, "m": 4}
        ]}"#,
    )
    .unwrap();
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--recipe",
        s(&recipe),
        "--act-norms",
        s(&norms),
        "-q",
    ]);
    ok(&r);
    let mut expected = near_model::<bf16>();
    let (a1, a2) = (activation_norms(&n1), activation_norms(&n2));
    wanda::prune(&mut expected, "fc1.weight", &a1, Amount::Fraction(0.25)).unwrap();
    wanda::prune_nm(&mut expected, "fc1.weight", &a1, 2, 4).unwrap();
    wanda::prune_nm(&mut expected, "fc2.weight", &a2, 2, 4).unwrap();
    let written = Checkpoint::<bf16>::load(&out).unwrap();
    for w in ["fc1.weight_mask", "fc2.weight_mask"] {
        assert_eq!(written.model().buffer(w), expected.buffer(w), "{w}");
    }
    std::fs::remove_file(&out).unwrap();

    // Wanda steps without norms, norms without Wanda steps: usage errors.
    let r = ndprune(&["prune", s(&input), s(&out), "--recipe", s(&recipe)]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let plain = input.with_file_name("plain.json");
    std::fs::write(
        &plain,
        r#"{"steps": [{"method": "global", "amount": 0.5}]}"#,
    )
    .unwrap();
    let r = ndprune(&[
        "prune",
        s(&input),
        s(&out),
        "--recipe",
        s(&plain),
        "--act-norms",
        s(&norms),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(!out.exists());

    // A wanda_nm step takes no amount and no dim; a wanda step needs one.
    for bad in [
        r#"{"steps": [{"method": "wanda_nm", "n": 2, "m": 4, "amount": 0.5}]}"#,
        r#"{"steps": [{"method": "wanda_nm", "n": 2, "m": 4, "dim": 1}]}"#,
        r#"{"steps": [{"method": "wanda_nm", "n": 2}]}"#,
        r#"{"steps": [{"method": "wanda_nm", "n": 5, "m": 4}]}"#,
        r#"{"steps": [{"method": "wanda"}]}"#,
        r#"{"steps": [{"method": "wanda", "amount": 0.5, "n": 2}]}"#,
    ] {
        let err = ndprune::io::Recipe::from_json(bad).unwrap_err();
        assert!(
            matches!(err, ndprune::io::RecipeError::Field { step: Some(1), .. }),
            "{bad}: {err}"
        );
    }
    let r =
        ndprune::io::Recipe::from_json(r#"{"steps": [{"method": "wanda_nm", "n": 2, "m": 4}]}"#)
            .unwrap();
    assert_eq!(
        r.steps()[0].method(),
        ndprune::io::StreamMethod::WandaNm { n: 2, m: 4 }
    );
}
