//! The `ndprune` command line, run as a program on a mixed-dtype checkpoint.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use half::bf16;
use ndarray::ArrayD;
use ndprune::io::{Checkpoint, Dtype, RawTensor, SafetensorsView};
use ndprune::prelude::*;
use rand::SeedableRng;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-cli-{tag}-{}", std::process::id()));
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

/// f32 conv, norm and linear layers, a bf16 adapter, an int64 counter and
/// a uint8 table.
fn mixed_file(path: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let norm = Layer::new()
        .with_parameter("weight", ArrayD::from_elem(vec![6], 1.0f32))
        .unwrap()
        .with_buffer("running_mean", ArrayD::zeros(vec![6]))
        .unwrap();
    let enc = Sequential::new()
        .push(Layer::conv2d(3, 6, 3, &mut rng))
        .with_child("norm", norm)
        .unwrap()
        .push(Layer::linear(24, 8, &mut rng));
    let model = Sequential::new()
        .with_child("enc", enc)
        .unwrap()
        .with_child("head", Layer::linear(8, 4, &mut rng))
        .unwrap();
    let mut ckpt = Checkpoint::new(model);
    let adapter: Vec<u8> = (0..40)
        .flat_map(|i| bf16::from_f32(((i * 7 % 13) as f32 - 6.0) / 4.0).to_le_bytes())
        .collect();
    ckpt.push_raw(RawTensor::new("adapter.weight", Dtype::BF16, vec![5, 8], adapter).unwrap());
    ckpt.push_raw(
        RawTensor::new(
            "enc.norm.num_batches_tracked",
            Dtype::I64,
            vec![],
            99i64.to_le_bytes().to_vec(),
        )
        .unwrap(),
    );
    ckpt.push_raw(RawTensor::new("tokens", Dtype::U8, vec![4], vec![0, 1, 2, 255]).unwrap());
    ckpt.metadata_mut()
        .get_or_insert_with(Default::default)
        .insert("format".into(), "pt".into());
    ckpt.save(path).unwrap();
}

fn raw_bytes(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let view = SafetensorsView::parse(&bytes).unwrap();
    view.get(name)
        .unwrap_or_else(|| panic!("{name}"))
        .data()
        .to_vec()
}

fn names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let view = SafetensorsView::parse(&bytes).unwrap();
    let mut n: Vec<String> = view
        .entries()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    n.sort();
    n
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn l1_prunes_every_float_dtype_and_copies_the_rest() {
    let d = dir("l1");
    let (input, output) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mixed_file(&input);
    let before = std::fs::read(&input).unwrap();
    let out = ndprune(&[
        "prune",
        s(&input),
        s(&output),
        "--method",
        "l1_unstructured",
        "--amount",
        "0.5",
    ]);
    ok(&out);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is untouched"
    );

    // f32: the same masks as the library computes in-process.
    let mut expected = Checkpoint::<f32>::load(&input).unwrap();
    for t in ["enc.0.weight", "enc.2.weight", "head.weight"] {
        prune::l1_unstructured(&mut expected, t, Amount::Fraction(0.5), None).unwrap();
    }
    let got = Checkpoint::<f32>::load(&output).unwrap();
    let keys = |c: &Checkpoint<f32>| {
        c.state_dict()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&got), keys(&expected));
    for (name, t) in expected.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    // 1-dim tensors (biases, the norm's weight) are not selected by default.
    assert!(got.parameter("enc.norm.weight").is_some() && got.parameter("head.bias").is_some());

    // bf16: pruned in bf16.
    let mut expected = Checkpoint::<bf16>::load(&input).unwrap();
    prune::l1_unstructured(&mut expected, "adapter.weight", Amount::Fraction(0.5), None).unwrap();
    let got = Checkpoint::<bf16>::load(&output).unwrap();
    assert_eq!(
        got.buffer("adapter.weight_mask"),
        expected.buffer("adapter.weight_mask")
    );
    assert_eq!(got.buffer("adapter.weight_mask").unwrap().len(), 40);

    // Non-float tensors and unselected floats are byte-identical.
    for name in [
        "enc.norm.num_batches_tracked",
        "tokens",
        "enc.norm.running_mean",
        "head.bias",
    ] {
        assert_eq!(raw_bytes(&output, name), raw_bytes(&input, name), "{name}");
    }
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("adapter.weight") && report.contains("head.weight"),
        "{report}"
    );
}

#[test]
fn structured_with_globs_and_remove() {
    let d = dir("ln");
    let (input, output) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mixed_file(&input);
    let out = ndprune(&[
        "prune",
        s(&input),
        s(&output),
        "--method",
        "ln_structured",
        "--amount",
        "0.5",
        "--n",
        "2",
        "--dim",
        "0",
        "--include",
        "enc.*.weight",
        "--exclude",
        "*norm*",
        "--remove",
        "--json",
    ]);
    ok(&out);
    let mut expected = Checkpoint::<f32>::load(&input).unwrap();
    for t in ["enc.0.weight", "enc.2.weight"] {
        prune::ln_structured(
            &mut expected,
            t,
            Amount::Fraction(0.5),
            Norm::L(2.0),
            Dim(0),
            None,
        )
        .unwrap();
        prune::remove(&mut expected, t).unwrap();
    }
    let got = Checkpoint::<f32>::load(&output).unwrap();
    assert_eq!(names(&output), names(&input), "--remove writes plain names");
    for (name, t) in expected.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    // Half of the conv's 6 output channels are zero.
    let w = got.parameter("enc.0.weight").unwrap();
    let zero_rows = w
        .outer_iter()
        .filter(|r| r.iter().all(|&x| x == 0.0))
        .count();
    assert_eq!(zero_rows, 3);
    assert_eq!(
        raw_bytes(&output, "head.weight"),
        raw_bytes(&input, "head.weight")
    );
    assert_eq!(
        raw_bytes(&output, "adapter.weight"),
        raw_bytes(&input, "adapter.weight")
    );

    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pruned: Vec<&str> = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(pruned, ["enc.0.weight", "enc.2.weight"]);
    assert_eq!(report["tensors"][0]["pruned_after"], 81);
}

#[test]
fn global_ranks_all_selected_tensors_together() {
    let d = dir("global");
    let (input, output) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mixed_file(&input);
    // Only f32 tensors: the same masks as the library's global pruning.
    ok(&ndprune(&[
        "prune",
        s(&input),
        s(&output),
        "--method",
        "global",
        "--amount",
        "0.6",
        "--exclude",
        "adapter.*",
    ]));
    let mut expected = Checkpoint::<f32>::load(&input).unwrap();
    let l1 = L1Unstructured::new(Amount::Fraction(0.6)).unwrap();
    prune::global_unstructured(
        &mut expected,
        &["enc.0.weight", "enc.2.weight", "head.weight"],
        &l1,
        None,
    )
    .unwrap();
    let got = Checkpoint::<f32>::load(&output).unwrap();
    for (name, t) in expected.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    // f32 and bf16 together: ranked by exact magnitude across dtypes.
    let mixed = d.join("mixed.safetensors");
    ok(&ndprune(&[
        "prune",
        s(&input),
        s(&mixed),
        "--method",
        "global",
        "--amount",
        "100",
        "-q",
    ]));
    let f = Checkpoint::<f32>::load(&mixed).unwrap();
    let b = Checkpoint::<bf16>::load(&mixed).unwrap();
    let zeros_f: f32 = ["enc.0.weight", "enc.2.weight", "head.weight"]
        .iter()
        .map(|t| {
            f.buffer(&format!("{t}_mask"))
                .unwrap()
                .iter()
                .filter(|&&m| m == 0.0)
                .count() as f32
        })
        .sum();
    let zeros_b = b
        .buffer("adapter.weight_mask")
        .unwrap()
        .iter()
        .filter(|m| m.to_f32() == 0.0)
        .count() as f32;
    assert_eq!(zeros_f + zeros_b, 100.0);
}

#[test]
fn random_methods_are_seeded_and_pruning_goes_on() {
    let d = dir("random");
    let input = d.join("in.safetensors");
    mixed_file(&input);
    let run = |out: &Path, seed: &str| {
        ok(&ndprune(&[
            "prune",
            s(&input),
            s(out),
            "--method",
            "random_unstructured",
            "--amount",
            "0.25",
            "--seed",
            seed,
        ]))
    };
    let (a, b, c) = (
        d.join("a.safetensors"),
        d.join("b.safetensors"),
        d.join("c.safetensors"),
    );
    run(&a, "3");
    run(&b, "3");
    run(&c, "4");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let got = Checkpoint::<f32>::load(&a).unwrap();
    let mask = got.buffer("head.weight_mask").unwrap();
    assert_eq!(mask.iter().filter(|&&m| m == 0.0).count(), 8); // 25 % of 32

    // Pruning the output again measures the amount on what is left.
    let again = d.join("again.safetensors");
    ok(&ndprune(&[
        "prune",
        s(&a),
        s(&again),
        "--method",
        "random_structured",
        "--amount",
        "1",
        "--dim",
        "-1",
        "--seed",
        "1",
        "--include",
        "head.weight",
    ]));
    let got = Checkpoint::<f32>::load(&again).unwrap();
    let old = mask.clone();
    let new = got.buffer("head.weight_mask").unwrap();
    assert!(
        new.iter().zip(old.iter()).all(|(&n, &o)| n <= o),
        "only more is pruned"
    );
    let zero_cols = (0..8)
        .filter(|&j| {
            new.index_axis(ndarray::Axis(1), j)
                .iter()
                .all(|&m| m == 0.0)
        })
        .count();
    assert!(zero_cols >= 1);
    assert_eq!(
        got.parameter("head.weight_orig"),
        Checkpoint::<f32>::load(&a)
            .unwrap()
            .parameter("head.weight_orig")
    );
}

#[test]
fn bad_arguments_are_usage_errors_and_write_nothing() {
    let d = dir("usage");
    let input = d.join("in.safetensors");
    mixed_file(&input);
    let out = d.join("out.safetensors");
    let o = s(&out);
    let i = s(&input);
    let cases: &[&[&str]] = &[
        &[
            "prune",
            i,
            o,
            "--method",
            "ln_structured",
            "--amount",
            "0.5",
            "--n",
            "2",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "ln_structured",
            "--amount",
            "0.5",
            "--dim",
            "0",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "0.5",
            "--n",
            "2",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "0.5",
            "--seed",
            "2",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "1.5",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "-3",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "lots",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "0.5",
            "--include",
            "[oops",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "ln_structured",
            "--amount",
            "0.5",
            "--n",
            "two",
            "--dim",
            "0",
        ],
        &["prune", i, o, "--method", "magic", "--amount", "0.5"],
        &["prune", i, o, "--amount", "0.5"],
        &["prune", i, "--method", "l1_unstructured", "--amount", "0.5"],
        &[
            "prune",
            i,
            i,
            "--method",
            "l1_unstructured",
            "--amount",
            "0.5",
        ],
        &["frobnicate"],
    ];
    for args in cases {
        let r = ndprune(args);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!out.exists(), "{args:?} wrote a file");
        assert!(!r.stderr.is_empty());
    }
    // Failures while pruning: status 1, nothing written either.
    let missing = d.join("missing.safetensors");
    let runtime: &[&[&str]] = &[
        &[
            "prune",
            i,
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "1000",
        ],
        &[
            "prune",
            i,
            o,
            "--method",
            "ln_structured",
            "--amount",
            "1",
            "--n",
            "1",
            "--dim",
            "0",
            "--include",
            "*bias",
        ],
        &[
            "prune",
            s(&missing),
            o,
            "--method",
            "l1_unstructured",
            "--amount",
            "1",
        ],
    ];
    for args in runtime {
        let r = ndprune(args);
        assert_eq!(
            r.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!out.exists(), "{args:?} wrote a file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["in.safetensors"]);
    // A malformed input is an error, not a crash.
    let bad = d.join("bad.safetensors");
    std::fs::write(&bad, b"\x10\0\0\0\0\0\0\0{\"a\": [1, 2, 3]}").unwrap();
    let r = ndprune(&[
        "prune",
        s(&bad),
        o,
        "--method",
        "l1_unstructured",
        "--amount",
        "1",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(ndprune(&["inspect", s(&bad)]).status.code(), Some(1));
}

#[test]
fn inspect_lists_tensors() {
    let d = dir("inspect");
    let input = d.join("in.safetensors");
    mixed_file(&input);
    let out = ndprune(&["inspect", s(&input)]);
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["adapter.weight", "BF16", "I64", "[5, 8]", "format = pt"] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    let out = ndprune(&["inspect", s(&input), "--json"]);
    ok(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tokens")
        .unwrap();
    assert_eq!(tokens["zeros"], 1);
    assert_eq!(tokens["dtype"], "U8");
}

/// Global pruning streams its passes; a second run on a file that PyTorch's
/// names mark as pruned measures the amount on what is left, keeps pruned
/// entries pruned, and gives the library's masks.
#[test]
fn global_again_on_a_pruned_file_matches_the_library() {
    let d = dir("global-again");
    let (input, once, twice) = (
        d.join("in.safetensors"),
        d.join("once.safetensors"),
        d.join("twice.safetensors"),
    );
    mixed_file(&input);
    let args = |from: &Path, to: &Path, amount: &'static str| {
        ok(&ndprune(&[
            "prune",
            s(from),
            s(to),
            "--method",
            "global",
            "--amount",
            amount,
            "--exclude",
            "adapter.*",
            "-q",
        ]))
    };
    args(&input, &once, "0.3");
    args(&once, &twice, "0.5");
    let targets = ["enc.0.weight", "enc.2.weight", "head.weight"];
    let mut expected = Checkpoint::<f32>::load(&input).unwrap();
    for amount in [0.3, 0.5] {
        let l1 = L1Unstructured::new(Amount::Fraction(amount)).unwrap();
        prune::global_unstructured(&mut expected, &targets, &l1, None).unwrap();
    }
    let first = Checkpoint::<f32>::load(&once).unwrap();
    let got = Checkpoint::<f32>::load(&twice).unwrap();
    for t in targets {
        let mask = format!("{t}_mask");
        assert_eq!(got.buffer(&mask), expected.buffer(&mask), "{mask}");
        let (a, b) = (first.buffer(&mask).unwrap(), got.buffer(&mask).unwrap());
        assert!(
            a.iter().zip(b).all(|(&x, &y)| y <= x),
            "{mask}: a pruned entry came back"
        );
    }
}
