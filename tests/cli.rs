//! The `ndprune` command line, run as a program on a mixed-dtype checkpoint.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Command;

use half::bf16;
use ndarray::ArrayD;
use ndprune::io::{Checkpoint, Dtype, RawTensor, SafetensorsView};
use ndprune::prelude::*;
use rand::SeedableRng;
use serde_json::json;

#[path = "support/cli.rs"]
mod cli;
use cli::{dir, ndprune, ok, prune_args, s, stderr};

/// f32 conv, norm and linear layers, a bf16 adapter, an int64 counter and
/// a uint8 table.
#[path = "support/files.rs"]
mod files;

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
    // By default: a line per module (few here), the totals, the bytes.
    let report = String::from_utf8(out.stdout).unwrap();
    let module = |m: &str| report.lines().any(|l| l.starts_with(&format!("{m} ")));
    assert!(
        module("adapter") && module("head") && module("enc.0"),
        "{report}"
    );
    assert!(
        report.contains(
            "4 tensors pruned: 213 of 426 entries (50.0%); 7 other tensors copied unchanged"
        ),
        "{report}"
    );
    assert!(
        report.contains("pruned tensors: 3.2 KiB stored; remove saves 1.6 KiB"),
        "{report}"
    );
    assert!(
        !report.contains("adapter.weight"),
        "no tensor rows without -v:\n{report}"
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
    // Half of the conv's output channels, whole; the linear's 4 of 8 rows.
    assert_eq!(report["tensors"][0]["channels_pruned"], json!([3, 0, 0, 0]));
    assert_eq!(report["tensors"][1]["channels_pruned"], json!([4, 0]));
    // The library's report: written removed, no mask bytes to save; the
    // pruned channels dropped would save half of each weight.
    let lib = &report["report"];
    assert_eq!(lib["tensors"][0]["name"], "enc.0.weight");
    assert_eq!(lib["tensors"][0]["shrunk_shape"], json!([3, 3, 3, 3]));
    assert_eq!(lib["total"]["remove_saves"], 0);
    assert_eq!(lib["total"]["shrink_saves"], (81 + 96) * 4);
    assert_eq!(lib["total"]["pruned"], report["total"]["pruned"]);
}

/// `-v` lists every pruned tensor with its channels pruned per dim, and
/// every module; past a dozen modules, only `-v` lists them.
#[test]
fn verbose_lists_tensors_and_modules() {
    let d = dir("verbose");
    let (input, output) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mixed_file(&input);
    let structured = [
        "--method",
        "ln_structured",
        "--amount",
        "0.5",
        "--n",
        "1",
        "--dim",
        "0",
    ];
    let r = ndprune(&prune_args(
        s(&input),
        s(&output),
        &[&structured[..], &["-v"]].concat(),
    ));
    ok(&r);
    let text = String::from_utf8(r.stdout).unwrap();
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
            .to_string()
    };
    let conv = row("enc.0.weight");
    assert!(
        conv.contains("[6, 3, 3, 3]") && conv.contains("50.0%"),
        "{conv}"
    );
    assert!(conv.trim_end().ends_with("[3, 0, 0, 0]"), "{conv}");
    assert!(
        row("adapter.weight").trim_end().ends_with("[2, 0]"),
        "{text}"
    );
    assert!(row("enc.0 ").contains("81"), "{text}");
    assert!(text.contains("channels pruned per dim"), "{text}");
    assert_eq!(
        ndprune(&prune_args(
            s(&input),
            s(&output),
            &[&structured[..], &["-v", "-q"]].concat()
        ))
        .status
        .code(),
        Some(2),
        "-v and -q conflict"
    );

    // 20 modules: a note by default, every one with -v.
    let many = d.join("many.safetensors");
    let mut model = Sequential::new();
    for i in 0..20 {
        model = model
            .with_child(
                &format!("block{i}"),
                Layer::<f32>::new()
                    .with_parameter("weight", ArrayD::from_elem(vec![2, 2], 1.0))
                    .unwrap(),
            )
            .unwrap();
    }
    Checkpoint::new(model).save(&many).unwrap();
    let out = d.join("many-out.safetensors");
    let r = ndprune(&prune_args(s(&many), s(&out), L1));
    ok(&r);
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(
        text.contains("(20 modules hold pruned tensors; -v lists them)"),
        "{text}"
    );
    assert!(!text.contains("block7 "), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    let r = ndprune(&prune_args(s(&many), s(&out), &[L1, &["-v"]].concat()));
    ok(&r);
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("block7 ")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("block7.weight ")),
        "{text}"
    );
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
    // Zeros of an integer tensor are no sparsity.
    assert!(tokens["sparsity"].is_null());
    // The library's report: the int tensors listed, not counted.
    let report = &doc["report"];
    let counter = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "enc.norm.num_batches_tracked")
        .unwrap();
    assert_eq!(counter["counting"], "not_counted");
    assert!(counter["pruned"].is_null() && counter["channels_pruned"].is_null());
    // The zeros: the running mean's 6 and 3 of the adapter's 40.
    assert_eq!(report["total"]["counted"], 9);
    assert_eq!(report["total"]["pruned"], 9);
    let text = String::from_utf8(ndprune(&["inspect", s(&input)]).stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("tokens ")).unwrap();
    assert!(line.trim_end().ends_with('-'), "{line}");
    assert!(
        text.contains("sparsity: 9 of 456 entries pruned (2.0%) in 9 tensors (2 more not counted)"),
        "{text}"
    );
    assert!(text.contains("\nbytes: "), "{text}");
}

/// A pruned file: each pair is its tensor `X`, counted by its mask, with
/// its channels fully pruned per dim (in the text, and in `--json`).
#[test]
fn inspect_reports_pruned_tensors_by_their_masks() {
    let d = dir("inspect-pruned");
    let (input, output) = (d.join("in.safetensors"), d.join("out.safetensors"));
    mixed_file(&input);
    ok(&ndprune(&prune_args(
        s(&input),
        s(&output),
        &[
            "--method",
            "ln_structured",
            "--amount",
            "2",
            "--n",
            "2",
            "--dim",
            "1",
            "--include",
            "enc.2.weight",
            "-q",
        ],
    )));
    let r = ndprune(&["inspect", s(&output)]);
    ok(&r);
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(
        text.contains(
            "pruned: enc.2.weight (8.3% of its mask is 0; channels fully pruned per dim [0, 2])"
        ),
        "{text}"
    );
    // The mask's 16 zeros count once: 9 + 16 of the same 456 entries.
    assert!(
        text.contains("sparsity: 25 of 456 entries pruned"),
        "{text}"
    );
    let r = ndprune(&["inspect", s(&output), "--json"]);
    ok(&r);
    let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let t = doc["report"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "enc.2.weight")
        .unwrap();
    assert_eq!(t["counting"], "mask");
    assert_eq!(t["channels_pruned"], json!([0, 2]));
    assert_eq!(t["mask_bytes"], 192 * 4);
    assert_eq!(doc["report"]["total"]["remove_saves"], 192 * 4);
    // The raw rows still list both parts, the mask's zeros as they are.
    let mask_row = text
        .lines()
        .find(|l| l.starts_with("enc.2.weight_mask "))
        .unwrap();
    assert!(mask_row.trim_end().ends_with("8.3%"), "{mask_row}");
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

// ---- files: what the messages say, IN never written, OUT whole or absent ----

#[cfg(target_os = "linux")]
#[path = "support/child.rs"]
mod child;

/// A `.pth` written by `torch.save(model.state_dict())` (feature `pth`,
/// which `cli` turns on) prunes to what its safetensors twin prunes to.
#[test]
fn a_pth_file_prunes_to_what_its_safetensors_twin_prunes_to() {
    let d = dir("pth");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth");
    let (a, b) = (
        d.join("from-pth.safetensors"),
        d.join("from-twin.safetensors"),
    );
    for (input, out) in [("nested.pth", &a), ("model.safetensors", &b)] {
        let r = ndprune(&prune_args(s(&fixtures.join(input)), s(out), L1));
        assert!(r.status.success(), "{input}: {}", stderr(&r));
    }
    let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let masks = |bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
        let view = ndprune::io::SafetensorsView::parse(bytes).unwrap();
        view.entries()
            .iter()
            .map(|e| (e.name().to_string(), e.data().to_vec()))
            .collect()
    };
    let (ma, mb) = (masks(&a), masks(&b));
    assert!(ma.iter().filter(|(n, _)| n.ends_with("_mask")).count() >= 4);
    assert_eq!(ma, mb);
    let r = ndprune(&["inspect", s(&fixtures.join("model.pth"))]);
    assert!(r.status.success(), "{}", stderr(&r));
}

/// A directory holding `pytorch_model.bin` beside `config.json` and no
/// index (transformers' `save_pretrained(safe_serialization=False)` of a
/// small model) prunes into a directory holding `model.safetensors` and
/// the config, with the masks its safetensors twin prunes to.
#[test]
fn a_directory_of_one_bin_file_prunes_into_a_safetensors_directory() {
    let d = dir("bin-dir");
    let fixtures = cli::fixtures_pth();
    let model = cli::bin_dir_model(&d);
    let (out, twin) = (d.join("out"), d.join("twin.safetensors"));
    for (input, output) in [(&model, &out), (&fixtures.join("model.safetensors"), &twin)] {
        let r = ndprune(&prune_args(s(input), s(output), L1));
        assert!(r.status.success(), "{}: {}", input.display(), stderr(&r));
    }
    assert_eq!(files::names(&out), ["config.json", "model.safetensors"]);
    assert_eq!(files::names(&model), ["config.json", "pytorch_model.bin"]);
    assert_eq!(
        std::fs::read(out.join("config.json")).unwrap(),
        std::fs::read(model.join("config.json")).unwrap()
    );
    let tensors = |path: &Path| -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        let view = SafetensorsView::parse(&bytes).unwrap();
        let mut v: Vec<_> = view
            .entries()
            .iter()
            .map(|e| (e.name().to_string(), e.data().to_vec()))
            .collect();
        v.sort();
        v
    };
    let (got, want) = (tensors(&out.join("model.safetensors")), tensors(&twin));
    assert!(got.iter().filter(|(n, _)| n.ends_with("_mask")).count() >= 4);
    assert_eq!(got, want);
    // Beside a Trainer's second PyTorch file, pytorch_model.bin is the
    // model, as for transformers' from_pretrained; the other is copied.
    std::fs::copy(fixtures.join("nested.pth"), model.join("training_args.bin")).unwrap();
    let again = d.join("again");
    let r = ndprune(&prune_args(s(&model), s(&again), L1));
    ok(&r);
    assert_eq!(
        files::names(&again),
        ["config.json", "model.safetensors", "training_args.bin"]
    );
    assert_eq!(tensors(&again.join("model.safetensors")), want);
    // Without that name, which is the model is not guessed: the error
    // names both, and nothing is written.
    std::fs::rename(model.join("pytorch_model.bin"), model.join("weights.bin")).unwrap();
    let third = d.join("third");
    let r = ndprune(&prune_args(s(&model), s(&third), L1));
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    for says in ["weights.bin", "training_args.bin", "name the file"] {
        assert!(stderr(&r).contains(says), "{}", stderr(&r));
    }
    assert!(!third.exists());
}

const L1: &[&str] = &["--method", "l1_unstructured", "--amount", "0.5"];

#[test]
fn pruning_errors_name_the_file_and_its_tensor() {
    let d = dir("names");
    let input = d.join("model.safetensors");
    mixed_file(&input);
    let o = d.join("out.safetensors");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--method",
                "l1_unstructured",
                "--amount",
                "1000",
                "--include",
                "head.weight",
            ],
            "head.weight",
        ),
        (
            &[
                "--method",
                "ln_structured",
                "--amount",
                "1",
                "--n",
                "1",
                "--dim",
                "5",
                "--include",
                "enc.0.weight",
            ],
            "enc.0.weight",
        ),
        (
            &[
                "--method",
                "random_structured",
                "--amount",
                "1",
                "--dim",
                "0",
                "--include",
                "head.bias",
            ],
            "head.bias",
        ),
        (
            &["--method", "global", "--amount", "100000"],
            "selected tensors",
        ),
    ];
    for (args, tensor) in cases {
        let r = ndprune(&prune_args(s(&input), s(&o), args));
        assert_eq!(r.status.code(), Some(1), "{args:?}: {}", stderr(&r));
        let err = stderr(&r);
        assert!(err.contains(s(&input)), "{args:?}: names the file: {err}");
        assert!(err.contains(tensor), "{args:?}: names `{tensor}`: {err}");
        assert!(
            !err.contains("`t`") && !err.contains("``"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("<bytes>"), "{args:?}: {err}");
        assert!(!o.exists());
    }
}

#[cfg(target_os = "linux")]
#[test]
fn inputs_a_user_will_try_get_a_hint_and_never_hang() {
    let d = dir("inputs");
    let o = d.join("out.safetensors");
    let fifo = d.join("pipe.safetensors");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let zip = d.join("pytorch_model.bin");
    std::fs::write(&zip, b"PK\x03\x04\x14\0\0\0\0\0archive/data.pkl").unwrap();
    let index = d.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        br#"{"metadata": {}, "weight_map": {"w": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let model_dir = d.join("model");
    std::fs::create_dir(&model_dir).unwrap();
    let cases = [
        (&fifo, "FIFO"),
        (&zip, "cannot read it as a PyTorch checkpoint"),
        (&index, "model-00001-of-00002.safetensors"),
        (&model_dir, "directory"),
    ];
    for (input, hint) in cases {
        for args in [vec!["inspect", s(input)], prune_args(s(input), s(&o), L1)] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ndprune"));
            cmd.args(&args);
            let r = child::run(cmd, std::time::Duration::from_secs(10), 4 << 30);
            assert_eq!(r.code(), Some(1), "{args:?}: {}", r.describe());
            let err = r.stderr_text();
            assert!(
                err.contains(s(input)) && err.contains(hint),
                "{args:?}: {err}"
            );
            assert!(!o.exists());
        }
    }
}

#[cfg(unix)]
#[test]
fn out_that_cannot_work_is_a_usage_error_before_any_work() {
    let d = dir("out-paths");
    // A missing IN: were OUT checked only after reading, this would be status 1.
    let missing = d.join("missing.safetensors");
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink(&fifo, d.join("to-fifo")).unwrap();
    std::os::unix::fs::symlink(&d, d.join("to-dir")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
    let long = "x".repeat(256);
    let outs = [
        d.clone(),
        d.join("no/such/dir/out.safetensors"),
        d.join(&long),
        fifo.clone(),
        d.join("to-fifo"),
        d.join("to-dir"),
        d.join("dangling"),
    ];
    for out in &outs {
        let r = ndprune(&prune_args(s(&missing), s(out), L1));
        assert_eq!(r.status.code(), Some(2), "{out:?}: {}", stderr(&r));
        assert!(stderr(&r).contains("OUT"), "{}", stderr(&r));
    }
    // The special files are still what they were.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(d.join("dangling"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A name of 255 bytes works: the temporary's name is cut to fit.
    let input = d.join("in.safetensors");
    mixed_file(&input);
    let out = d.join("y".repeat(255));
    ok(&ndprune(&prune_args(
        s(&input),
        s(&out),
        &[L1, &["-q"]].concat(),
    )));
    assert!(out.exists());
}

#[cfg(unix)]
#[test]
fn a_device_node_as_out_is_refused() {
    // As root, `ndprune prune in /dev/null` would replace /dev/null: try a
    // copy of the node in a scratch directory (needs root to make one).
    let d = dir("device");
    let node = d.join("null");
    let c = std::ffi::CString::new(s(&node)).unwrap();
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } != 0 {
        eprintln!("skipped: cannot make a device node here (not root)");
        return;
    }
    let input = d.join("in.safetensors");
    mixed_file(&input);
    for out in [node.clone(), PathBuf::from("/dev/null")] {
        let r = ndprune(&prune_args(s(&input), s(&out), L1));
        assert_eq!(r.status.code(), Some(2), "{out:?}: {}", stderr(&r));
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&node)
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::symlink_metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[cfg(unix)]
#[test]
fn in_is_never_out_in_any_spelling() {
    let d = dir("same");
    let input = d.join("in.safetensors");
    mixed_file(&input);
    let before = std::fs::read(&input).unwrap();
    std::fs::hard_link(&input, d.join("hard.safetensors")).unwrap();
    std::os::unix::fs::symlink(&input, d.join("soft.safetensors")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    let spellings = [
        s(&input).to_string(),
        format!("{}/./in.safetensors", s(&d)),
        format!("{}/sub/../in.safetensors", s(&d)),
        format!("{}//in.safetensors", s(&d)),
        s(&d.join("hard.safetensors")).to_string(),
        s(&d.join("soft.safetensors")).to_string(),
    ];
    for out in &spellings {
        let r = ndprune(&prune_args(s(&input), out, L1));
        assert_eq!(r.status.code(), Some(2), "{out}: {}", stderr(&r));
        assert!(stderr(&r).contains("OUT must not be IN"), "{}", stderr(&r));
    }
    // Relative to the working directory.
    let r = Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .current_dir(&d)
        .args(prune_args("in.safetensors", "./in.safetensors", L1))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    // A bind mount of IN as OUT: the same device and inode, another path.
    let target = d.join("bound.safetensors");
    std::fs::write(&target, b"").unwrap();
    let bound = Command::new("mount")
        .args(["--bind", s(&input), s(&target)])
        .output()
        .is_ok_and(|o| o.status.success());
    if bound {
        let r = ndprune(&prune_args(s(&input), s(&target), L1));
        let _ = Command::new("umount").arg(&target).output();
        assert_eq!(r.status.code(), Some(2), "bind mount: {}", stderr(&r));
    } else {
        eprintln!("skipped the bind mount: cannot mount here");
    }
    assert_eq!(std::fs::read(&input).unwrap(), before, "IN untouched");
    assert_eq!(
        files::names(&d),
        [
            "bound.safetensors",
            "hard.safetensors",
            "in.safetensors",
            "soft.safetensors",
            "sub"
        ]
    );
}

#[cfg(unix)]
#[test]
fn out_keeps_the_permissions_of_what_it_replaces_else_of_in() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("perms");
    let input = d.join("in.safetensors");
    mixed_file(&input);
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = d.join("fresh.safetensors");
    ok(&ndprune(&prune_args(
        s(&input),
        s(&fresh),
        &[L1, &["-q"]].concat(),
    )));
    assert_eq!(
        mode(&fresh),
        0o600,
        "a private input gives a private output"
    );
    let existing = d.join("existing.safetensors");
    std::fs::write(&existing, b"old").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&ndprune(&prune_args(
        s(&input),
        s(&existing),
        &[L1, &["-q"]].concat(),
    )));
    assert_eq!(mode(&existing), 0o640);
}

#[test]
fn long_names_print_and_pairs_keep_their_dtypes() {
    let d = dir("long");
    let input = d.join("in.safetensors");
    let long = format!("enc.{}.weight", "w".repeat(70_000));
    let mut ckpt = Checkpoint::new(Sequential::<f32>::new());
    ckpt.model_mut()
        .store_mut()
        .add_parameter(
            "plain",
            ArrayD::from_shape_vec(vec![2, 2], vec![1.0, -2.0, 3.0, -4.0]).unwrap(),
        )
        .unwrap();
    let bf16s = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
            .collect()
    };
    ckpt.push_raw(
        RawTensor::new(
            &long,
            Dtype::F32,
            vec![2, 2],
            [1f32, 2., 3., 4.]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        )
        .unwrap(),
    );
    // An f32 original with a bf16 mask.
    ckpt.push_raw(
        RawTensor::new(
            "mix.w_orig",
            Dtype::F32,
            vec![4],
            [1f32, -2., 3., -4.]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        )
        .unwrap(),
    );
    ckpt.push_raw(
        RawTensor::new("mix.w_mask", Dtype::BF16, vec![4], bf16s(&[1., 1., 0., 1.])).unwrap(),
    );
    ckpt.save(&input).unwrap();
    for extra in [&[][..], &["-v"][..], &["--json"][..]] {
        let out = d.join("out.safetensors");
        let args = prune_args(
            s(&input),
            s(&out),
            &[L1, &["--include", "*"], extra].concat(),
        );
        let r = ndprune(&args);
        ok(&r);
        // By default the module's line, with -v and in JSON the tensor's.
        let module = long.strip_suffix(".weight").unwrap();
        let name = if extra.is_empty() {
            module
        } else {
            long.as_str()
        };
        assert!(
            String::from_utf8_lossy(&r.stdout).contains(name),
            "{extra:?}"
        );
        let bytes = std::fs::read(&out).unwrap();
        let view = SafetensorsView::parse(&bytes).unwrap();
        assert_eq!(view.get("mix.w_mask").unwrap().dtype(), Dtype::BF16);
        assert_eq!(view.get("mix.w_orig").unwrap().dtype(), Dtype::F32);
        // 0.5 of the 3 left: 2 more pruned (round half to even of 1.5).
        let mask = view.get("mix.w_mask").unwrap().data();
        let zeros = mask.chunks(2).filter(|c| c == &[0, 0]).count();
        assert_eq!(zeros, 3, "{mask:?}");
    }
    let r = ndprune(&["inspect", s(&input)]);
    ok(&r);
}

#[cfg(target_os = "linux")]
#[test]
fn inspect_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let d = dir("pipe");
    let input = d.join("in.safetensors");
    let mut model = Sequential::new();
    for i in 0..5000 {
        model = model
            .with_child(
                &i.to_string(),
                Layer::<f32>::new()
                    .with_parameter("weight", ArrayD::zeros(vec![1]))
                    .unwrap(),
            )
            .unwrap();
    }
    Checkpoint::new(model).save(&input).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(["inspect", s(&input)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// A file of `n` f32 tensors of `len` entries each (written tensor by
/// tensor: never all in memory).
#[cfg(target_os = "linux")]
fn big_file(path: &Path, n: usize, len: usize) {
    big_file_named(path, "layers", n, len)
}

/// [`big_file`] with tensors named `PREFIX.NNN.weight`.
#[cfg(target_os = "linux")]
fn big_file_named(path: &Path, prefix: &str, n: usize, len: usize) {
    use ndprune::io::{SafetensorsWriter, TensorSpec};
    let specs = (0..n)
        .map(|i| {
            TensorSpec::new(
                format!("{prefix}.{i:03}.weight"),
                Dtype::F32,
                vec![len / 64, 64],
            )
        })
        .collect();
    let mut w = SafetensorsWriter::create(path, specs, None).unwrap();
    let data: Vec<u8> = (0..len)
        .flat_map(|j| ((j * 7919 % 1000) as f32 - 500.0).to_le_bytes())
        .collect();
    for i in 0..n {
        w.write_tensor_bytes(&format!("{prefix}.{i:03}.weight"), &data)
            .unwrap();
    }
    w.commit().unwrap();
}

#[cfg(target_os = "linux")]
fn temporaries(d: &Path) -> Vec<String> {
    files::names(d)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Starts pruning `input` into `output`, waits until the temporary output
/// exists, then calls `interrupt(pid)`; returns the finished run.
#[cfg(target_os = "linux")]
fn interrupt_mid_write(
    input: &Path,
    output: &Path,
    interrupt: impl FnOnce(u32),
) -> (std::process::ExitStatus, String) {
    use std::process::Stdio;
    let d = output.parent().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(prune_args(s(input), s(output), &[L1, &["-q"]].concat()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if !temporaries(d).is_empty() {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before its output was interrupted: make the input larger"
        );
        assert!(start.elapsed().as_secs() < 60, "no temporary file appeared");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    interrupt(child.id());
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn a_signal_mid_write_leaves_no_partial_out_and_no_temporary() {
    use std::os::unix::process::ExitStatusExt;
    let d = dir("signals");
    let input = d.join("in.safetensors");
    big_file(&input, 48, 1 << 18); // 48 MiB: a second or so of pruning
    let before = std::fs::read(&input).unwrap();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let output = d.join("out.safetensors");
        let (status, err) = interrupt_mid_write(&input, &output, |pid| {
            assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
        });
        assert_eq!(
            status.signal(),
            Some(sig),
            "ended by the signal: {status:?} {err}"
        );
        assert!(!output.exists(), "no partial OUT");
        assert_eq!(temporaries(&d), Vec::<String>::new(), "signal {sig}");
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[cfg(target_os = "linux")]
#[test]
fn a_signal_mid_write_of_a_sharded_output_leaves_nothing_behind() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let d = dir("signals-sharded");
    let input = d.join("in");
    std::fs::create_dir(&input).unwrap();
    let mut map = serde_json::Map::new();
    let shards = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    for (shard, prefix) in shards.iter().zip(["a", "b"]) {
        big_file_named(&input.join(shard), prefix, 24, 1 << 18);
        for i in 0..24 {
            map.insert(format!("{prefix}.{i:03}.weight"), (*shard).into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(
        input.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::write(input.join("config.json"), b"{}").unwrap();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let output = d.join("out");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ndprune"))
            .args(prune_args(s(&input), s(&output), &[L1, &["-q"]].concat()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the temporary directory holds a finished shard and the
        // next one is being written: the cleanup has files to remove.
        let start = std::time::Instant::now();
        loop {
            let done = temporaries(&d)
                .iter()
                .any(|t| files::names(&d.join(t)).iter().any(|n| n == shards[0]));
            if done {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before its output was interrupted: make the input larger"
            );
            assert!(
                start.elapsed().as_secs() < 60,
                "no temporary directory appeared"
            );
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(sig),
            "ended by the signal: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!output.exists(), "no partial OUT");
        assert_eq!(
            files::names(&d),
            ["in"],
            "signal {sig}: nothing left behind"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_input_truncated_mid_run_is_reported_not_a_crash() {
    let d = dir("sigbus");
    let input = d.join("in.safetensors");
    big_file(&input, 48, 1 << 18);
    let output = d.join("out.safetensors");
    let (status, err) = interrupt_mid_write(&input, &output, |_| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap();
        f.set_len(4096).unwrap();
    });
    assert_eq!(status.code(), Some(1), "{status:?}: {err}");
    assert!(
        err.contains("truncated") && err.contains(s(&input)),
        "{err}"
    );
    assert!(!output.exists());
    assert_eq!(temporaries(&d), Vec::<String>::new());
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_allocation_leaves_no_temporary() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let d = dir("oom");
    let input = d.join("in.safetensors");
    // One 64 MiB tensor: the map fits under the limit, decoding it does not.
    big_file(&input, 1, 1 << 24);
    let len = std::fs::metadata(&input).unwrap().len();
    let output = d.join("out.safetensors");
    let mut aborted = 0;
    for extra_mib in [16u64, 48, 96, 160, 256] {
        let limit = len + (extra_mib << 20) + (64 << 20);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ndprune"));
        cmd.args(prune_args(s(&input), s(&output), &[L1, &["-q"]].concat()));
        // SAFETY: only setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                libc::setrlimit(libc::RLIMIT_AS, &l);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        if out.status.signal() == Some(libc::SIGABRT) {
            aborted += 1;
            assert!(!output.exists());
        }
        assert_eq!(
            temporaries(&d),
            Vec::<String>::new(),
            "limit {limit}: {:?}",
            out.status
        );
        let _ = std::fs::remove_file(&output);
    }
    assert!(aborted > 0, "no limit made an allocation fail mid-write");
}

/// Every tensor of a checkpoint (a file, an index or a directory) by
/// name, with its bytes, sorted by name.
fn tensor_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    let files = ndprune::io::CheckpointFiles::open(path).unwrap();
    let view = files.view().unwrap();
    let mut v: Vec<(String, Vec<u8>)> = view
        .entries()
        .iter()
        .map(|e| (e.name().to_string(), e.data().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn max_shard_size_reshards_a_file_or_a_sharded_checkpoint() {
    let d = dir("reshard");
    let single = d.join("in.safetensors");
    mixed_file(&single);
    let sharded = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded");
    for (tag, input) in [("file", &single), ("sharded", &sharded)] {
        let whole = d.join(format!("{tag}.safetensors"));
        ok(&ndprune(&prune_args(s(input), s(&whole), L1)));
        let out = d.join(format!("{tag}-shards"));
        ok(&ndprune(&prune_args(
            s(input),
            s(&out),
            &[L1, &["--max-shard-size", "1KB", "-q"]].concat(),
        )));
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let shards: std::collections::BTreeSet<&str> = index["weight_map"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(shards.len() >= 2, "{tag}: {shards:?}");
        assert!(shards
            .iter()
            .all(|n| n.starts_with("model-") && out.join(n).is_file()));
        // The same tensors, byte for byte, as the single-file output.
        let want = tensor_bytes(&whole);
        assert_eq!(tensor_bytes(&out), want, "{tag}");
        // What fits in one shard: a lone model.safetensors, no index, as
        // transformers writes it; the same bytes of tensors.
        let one = d.join(format!("{tag}-one"));
        ok(&ndprune(&prune_args(
            s(input),
            s(&one),
            &[L1, &["--max-shard-size", "1GB", "-q"]].concat(),
        )));
        let written = if tag == "sharded" {
            vec!["config.json", "model.safetensors"]
        } else {
            vec!["model.safetensors"]
        };
        assert_eq!(files::names(&one), written, "{tag}");
        assert_eq!(tensor_bytes(&one.join("model.safetensors")), want, "{tag}");
    }
    // Bad sizes, and a file as OUT, are usage errors: nothing written.
    for (size, out, says) in [
        ("0", "zero", "0 bytes"),
        ("5XB", "unit", "unknown unit"),
        ("1.5GB", "frac", "no size"),
        ("1KB", "bad.safetensors", "directory of shards"),
    ] {
        let out = d.join(out);
        let r = ndprune(&prune_args(
            s(&single),
            s(&out),
            &[L1, &["--max-shard-size", size]].concat(),
        ));
        assert_eq!(r.status.code(), Some(2), "{size}: {}", stderr(&r));
        assert!(stderr(&r).contains(says), "{size}: {}", stderr(&r));
        assert!(!out.exists());
    }
}

#[test]
fn a_toml_recipe_prunes_pytorch_shards_into_a_safetensors_checkpoint() {
    let d = dir("toml-bin");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth/bin-sharded");
    let (toml, json) = (d.join("r.toml"), d.join("r.json"));
    std::fs::write(
        &toml,
        "[[steps]]\nmethod = \"l1_unstructured\"\namount = 0.5\n\n[[steps]]\nmethod = \"global\"\namount = 3\n",
    )
    .unwrap();
    std::fs::write(
        &json,
        r#"{"steps": [{"method": "l1_unstructured", "amount": 0.5}, {"method": "global", "amount": 3}]}"#,
    )
    .unwrap();
    let (a, b) = (d.join("from-toml"), d.join("from-json"));
    ok(&ndprune(&[
        "prune",
        s(&input),
        s(&a),
        "--recipe",
        s(&toml),
        "-q",
    ]));
    ok(&ndprune(&[
        "prune",
        s(&input),
        s(&b),
        "--recipe",
        s(&json),
        "-q",
    ]));
    assert_eq!(
        files::names(&a),
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json"
        ]
    );
    for name in files::names(&a) {
        assert_eq!(
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
            "{name}"
        );
    }
    // A recipe of another kind, or a TOML error: usage errors naming it.
    let yaml = d.join("r.yaml");
    std::fs::write(&yaml, "steps: []").unwrap();
    let r = ndprune(&["prune", s(&input), s(&d.join("x")), "--recipe", s(&yaml)]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains(".json or .toml"), "{}", stderr(&r));
    std::fs::write(&toml, "[[steps]]\nmethod = \"global\"\namount = 1.5\n").unwrap();
    let r = ndprune(&["prune", s(&input), s(&d.join("x")), "--recipe", s(&toml)]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("step 1: `amount`"), "{}", stderr(&r));
    assert!(!d.join("x").exists());
}

/// Writes a PyTorch file as `torch.save` writes a state_dict (a zip
/// archive, stored, holding a protocol-2 pickle and one data entry per
/// tensor): `n` f32 tensors `layers.NNN.weight` of `len` entries each.
#[cfg(target_os = "linux")]
fn torch_file(path: &Path, n: usize, len: usize) {
    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: usize) {
        p.push(b'J');
        p.extend_from_slice(&(v as i32).to_le_bytes());
    }
    let mut pickle = vec![0x80, 2, b'}'];
    for i in 0..n {
        unicode(&mut pickle, &format!("layers.{i:03}.weight"));
        pickle.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        unicode(&mut pickle, "storage");
        pickle.extend_from_slice(b"ctorch\nFloatStorage\n");
        unicode(&mut pickle, &i.to_string());
        unicode(&mut pickle, "cpu");
        int(&mut pickle, len);
        pickle.extend_from_slice(b"tQ");
        int(&mut pickle, 0);
        pickle.push(b'(');
        int(&mut pickle, len / 64);
        int(&mut pickle, 64);
        pickle.extend_from_slice(b"t(");
        int(&mut pickle, 64);
        int(&mut pickle, 1);
        pickle.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtRs");
    }
    pickle.push(b'.');
    let data: Vec<u8> = (0..len)
        .flat_map(|j| ((j * 7919 % 1000) as f32 - 500.0).to_le_bytes())
        .collect();
    let mut entries: Vec<(String, &[u8])> = vec![
        ("archive/data.pkl".into(), &pickle),
        ("archive/byteorder".into(), b"little"),
        ("archive/version".into(), b"3\n"),
    ];
    for i in 0..n {
        entries.push((format!("archive/data/{i}"), &data));
    }
    // A zip archive of stored entries: local headers with the data, the
    // central directory, its end record.
    let (mut zip, mut central) = (Vec::new(), Vec::new());
    for (name, bytes) in &entries {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        let offset = zip.len() as u32;
        let common = |out: &mut Vec<u8>| {
            for v in [20u16, 0, 0, 0, 0x21] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc.sum(), bytes.len() as u32, bytes.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
        };
        zip.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut zip);
        zip.extend_from_slice(name.as_bytes());
        zip.extend_from_slice(bytes);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        for v in [0u16, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let at = zip.len() as u32;
    zip.extend_from_slice(&central);
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    let count = entries.len() as u16;
    for v in [0u16, 0, count, count] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&(central.len() as u32).to_le_bytes());
    zip.extend_from_slice(&at.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    std::fs::write(path, zip).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_signal_mid_write_removes_the_conversion_of_a_pytorch_input() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let d = dir("signals-pth");
    let (input, tmp) = (d.join("in.pth"), d.join("tmp"));
    std::fs::create_dir(&tmp).unwrap();
    torch_file(&input, 48, 1 << 18); // 48 MiB
                                     // The file reads as what it claims to be.
    let tensors = ndprune::io::pth::read_state_dict(&input).unwrap();
    assert_eq!(tensors.len(), 48);
    assert_eq!(tensors[0].shape(), &[(1 << 18) / 64, 64]);
    drop(tensors);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let output = d.join("out.safetensors");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ndprune"))
            .args(prune_args(s(&input), s(&output), &[L1, &["-q"]].concat()))
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once converted (the conversion is in TMPDIR) and OUT's
        // temporary is being written.
        let start = std::time::Instant::now();
        while temporaries(&d).is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before its output was interrupted: make the input larger"
            );
            assert!(
                start.elapsed().as_secs() < 120,
                "no temporary file appeared"
            );
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert_eq!(files::names(&tmp).len(), 1, "the conversion's directory");
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(sig),
            "ended by the signal: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!output.exists(), "no partial OUT");
        assert_eq!(temporaries(&d), Vec::<String>::new(), "signal {sig}");
        assert_eq!(
            files::names(&tmp),
            Vec::<String>::new(),
            "signal {sig}: conversion left"
        );
    }
    // As soon as the conversion's directory exists (most likely while
    // the conversion is under way): removed too.
    let output = d.join("out.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(prune_args(s(&input), s(&output), &[L1, &["-q"]].concat()))
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while files::names(&tmp).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "finished too soon");
        assert!(start.elapsed().as_secs() < 120, "no conversion appeared");
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));
    assert!(!output.exists());
    assert_eq!(temporaries(&d), Vec::<String>::new());
    assert_eq!(files::names(&tmp), Vec::<String>::new(), "conversion left");
}

/// A write that fails midway (the file size limit, `EFBIG`) on the writing
/// thread of a global run: exit 1, the writer's error, no output and no
/// temporary left, for a file and for a directory output.
#[cfg(target_os = "linux")]
#[test]
fn a_write_failing_midway_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    let d = dir("fsize");
    let input = d.join("in.safetensors");
    // 8 tensors of 8 MiB: the output passes the limit after a few.
    big_file(&input, 8, 1 << 21);
    let limit = std::fs::metadata(&input).unwrap().len() / 3;
    for output in [d.join("out.safetensors"), d.join("out-dir")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ndprune"));
        cmd.args(prune_args(
            s(&input),
            s(&output),
            &[
                "--method", "global", "--amount", "0.5", "--remove", "--ties", "written", "-q",
            ],
        ));
        // SAFETY: only signal and setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // A write past the limit then fails with EFBIG instead of
                // killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let l = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &l);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("writing"), "{}", stderr(&out));
        assert!(!output.exists(), "{output:?}");
        assert_eq!(temporaries(&d), Vec::<String>::new());
        assert_eq!(files::names(&d), ["in.safetensors"]);
    }
}

/// A Hugging Face directory often ships the same model as safetensors and
/// as PyTorch (and TensorFlow) weights: the pruned output holds the
/// pruned safetensors and the config, not the unpruned twins, and the
/// run says what it left out.
#[test]
fn weights_in_other_formats_are_not_copied_and_the_run_says_so() {
    let d = dir("twins");
    let input = d.join("in");
    std::fs::create_dir_all(&input).unwrap();
    mixed_file(&input.join("model.safetensors"));
    for name in [
        "pytorch_model.bin",
        "tf_model.h5",
        "config.json",
        "tokenizer.json",
    ] {
        std::fs::write(input.join(name), b"{}").unwrap();
    }
    let out = d.join("out");
    let r = ndprune(&prune_args(
        s(&input),
        s(&out),
        &["--method", "l1_unstructured", "--amount", "0.5"],
    ));
    ok(&r);
    let listing = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        listing(&out),
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    let err = stderr(&r);
    assert!(
        err.contains("not copied to OUT: pytorch_model.bin, tf_model.h5"),
        "{err}"
    );
    // Quiet runs say nothing; the output is the same.
    let out2 = d.join("out2");
    let r = ndprune(&prune_args(
        s(&input),
        s(&out2),
        &["--method", "l1_unstructured", "--amount", "0.5", "-q"],
    ));
    ok(&r);
    assert!(stderr(&r).is_empty(), "{}", stderr(&r));
    assert_eq!(listing(&out2), listing(&out));
    std::fs::remove_dir_all(&d).unwrap();
}
