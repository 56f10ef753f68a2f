//! `ndprune prune --method nm` and `--method block`, and their recipe
//! steps, run as a program: the files written equal the library's results.
#![cfg(feature = "cli")]

use std::path::Path;

use half::bf16;
use ndarray::ArrayD;
use ndprune::io::{Checkpoint, Dtype, RawTensor};
use ndprune::prelude::*;
use ndprune::BlockNorm;
use rand::SeedableRng;

#[path = "support/cli.rs"]
mod cli;
use cli::{dir, ndprune, ok, prune_args, s};

/// Two f32 linear layers (rows of 16 and 8), a conv and a bf16 `[4, 8]`
/// adapter.
fn model_file(path: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let model = Sequential::<f32>::new()
        .push(Layer::linear(16, 8, &mut rng))
        .push(Layer::linear(8, 4, &mut rng))
        .push(Layer::conv2d(4, 4, 3, &mut rng));
    let mut ckpt = Checkpoint::new(model);
    let adapter: Vec<u8> = (0..32)
        .flat_map(|i| bf16::from_f32(((i * 7 % 13) as f32 - 6.0) / 4.0).to_le_bytes())
        .collect();
    ckpt.push_raw(RawTensor::new("adapter.weight", Dtype::BF16, vec![4, 8], adapter).unwrap());
    ckpt.save(path).unwrap();
}

#[test]
fn nm_prunes_like_the_library_and_again_on_its_output() {
    let d = dir("nm");
    let (input, out1, out2) = (
        d.join("in.safetensors"),
        d.join("a.safetensors"),
        d.join("b.safetensors"),
    );
    model_file(&input);
    let (i, a, b) = (s(&input), s(&out1), s(&out2));
    // Every float tensor of 2 dims or more: the linears, the conv (input
    // dim 4) and the bf16 adapter.
    ok(&ndprune(&prune_args(
        i,
        a,
        &["--method", "nm", "--n", "2", "--m", "4", "-q"],
    )));
    let mut want = Checkpoint::<f32>::load(&input).unwrap();
    for t in ["0.weight", "1.weight", "2.weight"] {
        prune::nm_structured(&mut want, t, 2, 4, Dim(1), None).unwrap();
    }
    let got = Checkpoint::<f32>::load(&out1).unwrap();
    for (name, t) in want.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    let mut adapter = Checkpoint::<bf16>::load(&out1).unwrap();
    let mask = adapter.buffer("adapter.weight_mask").unwrap().clone();
    for row in mask.rows() {
        for g in row.as_slice().unwrap().chunks(4) {
            assert_eq!(g.iter().filter(|&&v| v == bf16::ONE).count(), 2);
        }
    }
    // 1:4 on the pruned file: one of each kept pair stays.
    ok(&ndprune(&prune_args(
        a,
        b,
        &[
            "--method",
            "nm",
            "--n",
            "1",
            "--m",
            "4",
            "--include",
            "*.weight",
            "-q",
        ],
    )));
    for t in ["0.weight", "1.weight", "2.weight"] {
        prune::nm_structured(&mut want, t, 1, 4, Dim(1), None).unwrap();
    }
    prune::nm_structured(&mut adapter, "adapter.weight", 1, 4, Dim(1), None).unwrap();
    let got = Checkpoint::<f32>::load(&out2).unwrap();
    for (name, t) in want.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    let got = Checkpoint::<bf16>::load(&out2).unwrap();
    assert_eq!(
        got.buffer("adapter.weight_mask"),
        adapter.buffer("adapter.weight_mask")
    );
}

#[test]
fn block_prunes_like_the_library_and_recipes_run_both() {
    let d = dir("block");
    let (input, out, via) = (
        d.join("in.safetensors"),
        d.join("out.safetensors"),
        d.join("via.safetensors"),
    );
    model_file(&input);
    ok(&ndprune(&prune_args(
        s(&input),
        s(&out),
        &[
            "--method",
            "block",
            "--block",
            "1x4",
            "--zeros-per-block",
            "2",
            "--amount",
            "0.5",
            "--block-norm",
            "l1",
            "--include",
            "[01].weight",
            "-q",
        ],
    )));
    let method = BlockSparsity::new(0.5, (1, 4))
        .unwrap()
        .with_zeros_per_block(2)
        .unwrap()
        .with_norm(BlockNorm::L1);
    let mut want = Checkpoint::<f32>::load(&input).unwrap();
    for t in ["0.weight", "1.weight"] {
        prune::block_sparsity(&mut want, t, &method, None).unwrap();
    }
    let got = Checkpoint::<f32>::load(&out).unwrap();
    for (name, t) in want.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    assert!(got.buffer("2.weight_mask").is_none());
    // The same block step, then a 2:4 step, from a recipe.
    let recipe = d.join("r.json");
    std::fs::write(
        &recipe,
        r#"{"steps": [
            {"method": "block_sparsity", "amount": 0.5, "block": [1, 4], "zeros_per_block": 2,
             "block_norm": "l1", "include": ["0.weight", "1.weight"]},
            {"method": "nm_structured", "n": 2, "m": 4, "include": ["0.weight"]}
        ]}"#,
    )
    .unwrap();
    ok(&ndprune(&[
        "prune",
        s(&input),
        s(&via),
        "--recipe",
        s(&recipe),
        "-q",
    ]));
    prune::nm_structured(&mut want, "0.weight", 2, 4, Dim(1), None).unwrap();
    let got = Checkpoint::<f32>::load(&via).unwrap();
    for (name, t) in want.state_dict() {
        assert_eq!(got.tensor(&name), Some(t), "{name}");
    }
    // A conv is not 2-D: block sparsity of it fails, naming it; nothing is written.
    let bad = d.join("bad.safetensors");
    let r = ndprune(&prune_args(
        s(&input),
        s(&bad),
        &["--method", "block", "--block", "2x2", "--amount", "0.5"],
    ));
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("2.weight"));
    assert!(!bad.exists());
}

#[test]
fn bad_nm_and_block_arguments_are_usage_errors() {
    let d = dir("usage");
    let input = d.join("in.safetensors");
    model_file(&input);
    let out = d.join("out.safetensors");
    let (i, o) = (s(&input), s(&out));
    let cases: &[&[&str]] = &[
        &["--method", "nm", "--n", "2"],
        &["--method", "nm", "--m", "4"],
        &["--method", "nm", "--n", "5", "--m", "4"],
        &["--method", "nm", "--n", "2", "--m", "4", "--amount", "0.5"],
        &["--method", "nm", "--n", "two", "--m", "4"],
        &["--method", "block", "--amount", "0.5"],
        &["--method", "block", "--block", "0x4", "--amount", "0.5"],
        &["--method", "block", "--block", "1x4", "--amount", "3"],
        &[
            "--method",
            "block",
            "--block",
            "1x4",
            "--zeros-per-block",
            "5",
            "--amount",
            "0.5",
        ],
        &["--method", "l1_unstructured", "--amount", "0.5", "--m", "4"],
        &[
            "--method",
            "l1_unstructured",
            "--amount",
            "0.5",
            "--block",
            "1x4",
        ],
        &[
            "--method",
            "ln_structured",
            "--amount",
            "0.5",
            "--n",
            "abc",
            "--dim",
            "0",
        ],
    ];
    for rest in cases {
        let r = ndprune(&prune_args(i, o, rest));
        assert_eq!(
            r.status.code(),
            Some(2),
            "{rest:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!out.exists(), "{rest:?}");
    }
    // The issue's spelling works.
    ok(&ndprune(&prune_args(
        i,
        o,
        &[
            "--method",
            "nm",
            "--n",
            "2",
            "--m",
            "4",
            "--include",
            "[01].weight",
            "-q",
        ],
    )));
    let m: ArrayD<f32> = Checkpoint::<f32>::load(&out)
        .unwrap()
        .buffer("1.weight_mask")
        .unwrap()
        .clone();
    assert_eq!(m.sum(), 16.0);
}
