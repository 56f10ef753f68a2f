//! Pruning recipes: several steps in one pass over a checkpoint's files
//! equal the same steps run one call each (through intermediate files),
//! and equal PyTorch doing them (`tools/make_sharded_fixture.py`, case
//! `recipe`); bad recipes are typed errors.
#![cfg(feature = "half")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndprune::io::{
    CheckpointError, CheckpointFiles, FilePruner, Output, Recipe, RecipeError, StreamMethod,
    TieOrder,
};
use ndprune::{Amount, Dim, Norm};

#[path = "support/tensors.rs"]
mod tensors;
use tensors::{expected, of_checkpoint as tensors};

const THREE_STEPS: &str = r#"{"steps": [
    {"method": "ln_structured", "amount": 0.25, "n": 2, "dim": 0, "include": ["**.*_proj.weight"]},
    {"method": "l1_unstructured", "amount": 0.3, "overrides": {"lm_head.weight": 0.1}},
    {"method": "global", "amount": 0.2}
]}"#;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndprune-recipe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file of a directory, by name, with its bytes.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn run_recipe(text: &str, input: &Path, out: &Path) -> ndprune::io::StreamReport {
    let recipe = Recipe::from_json(text).unwrap();
    let files = CheckpointFiles::open(input).unwrap();
    let report = recipe
        .pruner(&files)
        .unwrap()
        .run(&files, &Output::Directory(out.to_path_buf()), &mut ())
        .unwrap();
    report
}

#[test]
fn a_three_step_recipe_in_one_call_equals_three_calls_and_pytorch() {
    let dir = scratch("three");
    let one = dir.join("one");
    let report = run_recipe(THREE_STEPS, &fixture(), &one);
    assert_eq!(report.tensors.len(), 16);
    // bf16 magnitudes tie at the global cut: PyTorch's order decided.
    assert_eq!(report.ties, TieOrder::Torch);

    // The same steps, one call each, through intermediate directories.
    let steps: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Value>(THREE_STEPS)
        .unwrap()["steps"]
        .as_array()
        .unwrap()
        .clone();
    let mut input = fixture();
    for (i, step) in steps.iter().enumerate() {
        let out = dir.join(format!("step{i}"));
        let text = serde_json::json!({ "steps": [step] }).to_string();
        run_recipe(&text, &input, &out);
        input = out;
    }
    assert_eq!(
        files_of(&one),
        files_of(&input),
        "recipe vs three recipe calls"
    );

    // And with FilePruner alone (the override as a call of its own).
    type Call = (StreamMethod, Amount, fn(&str, usize) -> bool);
    let calls: Vec<Call> = vec![
        (
            StreamMethod::LnStructured {
                norm: Norm::L(2.0),
                dim: Dim(0),
            },
            Amount::Fraction(0.25),
            |n, _| n.ends_with("_proj.weight"),
        ),
        (
            StreamMethod::L1Unstructured,
            Amount::Fraction(0.3),
            |n, d| d >= 2 && n != "lm_head.weight",
        ),
        (
            StreamMethod::L1Unstructured,
            Amount::Fraction(0.1),
            |n, _| n == "lm_head.weight",
        ),
        (StreamMethod::Global, Amount::Fraction(0.2), |_, d| d >= 2),
    ];
    let mut input = fixture();
    for (i, (method, amount, select)) in calls.into_iter().enumerate() {
        let out = dir.join(format!("call{i}"));
        let files = CheckpointFiles::open(&input).unwrap();
        FilePruner::new(method, amount)
            .select(move |spec| select(spec.name(), spec.shape().len()))
            .run(&files, &Output::Directory(out.clone()), &mut ())
            .unwrap();
        input = out;
    }
    assert_eq!(
        files_of(&one),
        files_of(&input),
        "recipe vs FilePruner calls"
    );

    // PyTorch, doing the three steps.
    let want = expected("recipe");
    assert_eq!(want.len(), 16);
    let got = tensors(&one);
    for (name, (dtype, shape, bytes)) in &want {
        let mask = &got[&format!("{name}_mask")];
        assert_eq!((&mask.0, &mask.1), (dtype, shape), "{name}");
        assert!(mask.2 == *bytes, "{name}'s mask differs from PyTorch's");
    }
}

#[test]
fn a_global_step_between_per_tensor_steps_equals_separate_calls() {
    let text = r#"{"steps": [
        {"method": "l1_unstructured", "amount": 0.2},
        {"method": "global", "amount": 0.3, "exclude": ["lm_head.weight"]},
        {"method": "ln_structured", "amount": 1, "n": "fro", "dim": 1, "include": ["**.down_proj.weight"]},
        {"method": "global", "amount": 0.1}
    ]}"#;
    let dir = scratch("between");
    let one = dir.join("one");
    run_recipe(text, &fixture(), &one);
    let steps: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Value>(text).unwrap()
        ["steps"]
        .as_array()
        .unwrap()
        .clone();
    let mut input = fixture();
    for (i, step) in steps.iter().enumerate() {
        let out = dir.join(format!("step{i}"));
        run_recipe(
            &serde_json::json!({ "steps": [step] }).to_string(),
            &input,
            &out,
        );
        input = out;
    }
    assert_eq!(files_of(&one), files_of(&input));
}

#[test]
fn max_sparsity_clamps_per_tensor_steps_and_refuses_a_global_step_past_it() {
    let dir = scratch("cap");
    let out = dir.join("out");
    let text = r#"{"max_sparsity": 0.5, "steps": [
        {"method": "l1_unstructured", "amount": 0.4},
        {"method": "l1_unstructured", "amount": 0.4},
        {"method": "ln_structured", "amount": 0.9, "n": 1, "dim": 0, "include": ["**.q_proj.weight"]}
    ]}"#;
    let report = run_recipe(text, &fixture(), &out);
    for t in &report.tensors {
        let limit = t.numel / 2;
        // 0.4 then 0.4 of what is left is 0.64: clamped to the cap exactly.
        assert_eq!(t.after, limit, "{}", t.name);
    }
    // A global step is not clamped: past the cap, nothing is written.
    let text = r#"{"max_sparsity": 0.5, "steps": [{"method": "global", "amount": 0.6}]}"#;
    let recipe = Recipe::from_json(text).unwrap();
    let files = CheckpointFiles::open(fixture()).unwrap();
    let out = dir.join("global");
    let err = recipe
        .pruner(&files)
        .unwrap()
        .run(&files, &Output::Directory(out.clone()), &mut ())
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::SparsityCap { step: 0, .. }),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn skip_exclude_and_overrides_choose_the_tensors_and_amounts() {
    let dir = scratch("skip");
    let out = dir.join("out");
    let text = r#"{"skip": ["lm_head.weight"], "steps": [
        {"method": "l1_unstructured", "amount": 0.5, "exclude": ["model.embed_tokens.weight"],
         "overrides": {"**.o_proj.weight": 3}}
    ]}"#;
    let report = run_recipe(text, &fixture(), &out);
    let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
    assert!(!names.contains(&"lm_head.weight"));
    assert!(!names.contains(&"model.embed_tokens.weight"));
    assert_eq!(names.len(), 14);
    for t in &report.tensors {
        let want = if t.name.ends_with("o_proj.weight") {
            3
        } else {
            t.numel / 2
        };
        assert_eq!(t.after, want, "{}", t.name);
    }
    let got = tensors(&out);
    assert!(got.contains_key("lm_head.weight") && !got.contains_key("lm_head.weight_mask"));
}

#[test]
fn bad_recipes_are_errors_naming_the_step_and_field() {
    let field = |text: &str| match Recipe::from_json(text).unwrap_err() {
        RecipeError::Field { step, field, .. } => (step, field),
        other => panic!("{other:?}"),
    };
    let s = |body: &str| {
        format!(r#"{{"steps": [{{"method": "l1_unstructured", "amount": 0.1}}, {body}]}}"#)
    };
    assert_eq!(
        field(&s(r#"{"method": "l0", "amount": 0.1}"#)),
        (Some(2), "method".into())
    );
    assert_eq!(field(&s(r#"{"amount": 0.1}"#)), (Some(2), "method".into()));
    assert_eq!(
        field(&s(r#"{"method": "global"}"#)),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s(r#"{"method": "global", "amount": 1.5}"#)),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s(r#"{"method": "global", "amount": -1}"#)),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s(r#"{"method": "global", "amount": "half"}"#)),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s(
            r#"{"method": "ln_structured", "amount": 0.1, "dim": 0}"#
        )),
        (Some(2), "n".into())
    );
    assert_eq!(
        field(&s(r#"{"method": "ln_structured", "amount": 0.1, "n": 2}"#)),
        (Some(2), "dim".into())
    );
    assert_eq!(
        field(&s(r#"{"method": "random_unstructured", "amount": 0.1}"#)),
        (Some(2), "seed".into())
    );
    assert_eq!(
        field(&s(
            r#"{"method": "l1_unstructured", "amount": 0.1, "dim": 0}"#
        )),
        (Some(2), "dim".into())
    );
    assert_eq!(
        field(&s(
            r#"{"method": "l1_unstructured", "amount": 0.1, "amout": 0.2}"#
        )),
        (Some(2), "amout".into())
    );
    assert_eq!(
        field(&s(
            r#"{"method": "global", "amount": 0.1, "overrides": {"a": 0.2}}"#
        )),
        (Some(2), "overrides".into())
    );
    assert_eq!(
        field(&s(
            r#"{"method": "global", "amount": 0.1, "include": ["a..b"]}"#
        )),
        (Some(2), "include".into())
    );
    assert_eq!(
        field(r#"{"steps": [], "max_sparsity": 2}"#),
        (None, "max_sparsity".into())
    );
    assert_eq!(field(r#"{"step": []}"#), (None, "step".into()));
    assert!(matches!(
        Recipe::from_json("[1"),
        Err(RecipeError::Json { .. })
    ));

    // An include (or an override) matching no tensor of the checkpoint.
    let files = CheckpointFiles::open(fixture()).unwrap();
    let r = Recipe::from_json(
        r#"{"steps": [{"method": "global", "amount": 0.1, "include": ["conv*.weight"]}]}"#,
    )
    .unwrap();
    assert!(matches!(
        r.pruner(&files).unwrap_err(),
        RecipeError::NoMatch { step: 1, ref field, .. } if field == "include"
    ));
    let r = Recipe::from_json(
        r#"{"steps": [{"method": "l1_unstructured", "amount": 0.1, "overrides": {"model.norm.weight": 0.2}}]}"#,
    )
    .unwrap();
    assert!(matches!(
        r.pruner(&files).unwrap_err(),
        RecipeError::NoMatch { step: 1, ref field, .. } if field == "overrides"
    ));
}

#[cfg(feature = "cli")]
fn ndprune(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ndprune"))
        .args(args)
        .output()
        .unwrap()
}

#[cfg(feature = "cli")]
#[test]
fn the_command_line_runs_a_recipe_dry_runs_it_and_removes_pruning() {
    let dir = scratch("cli");
    let recipe = dir.join("r.json");
    std::fs::write(&recipe, THREE_STEPS).unwrap();
    let (fx, r) = (fixture(), recipe.to_str().unwrap().to_string());
    let fx = fx.to_str().unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();

    // --dry-run prints the plan and writes nothing.
    let out = ndprune(&[
        "prune",
        fx,
        &p("dry"),
        "--recipe",
        &r,
        "--dry-run",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("dry").exists());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3);
    let planned = plan["tensors"].as_array().unwrap();
    assert_eq!(planned.len(), 16);

    // The run reaches the sparsity the plan said, and equals the library's.
    let out = ndprune(&["prune", fx, &p("cli"), "--recipe", &r, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (t, planned) in report["tensors"].as_array().unwrap().iter().zip(planned) {
        assert_eq!(t["name"], planned["name"]);
        assert_eq!(t["pruned_after"], planned["pruned_after_each_step"][2]);
    }
    run_recipe(THREE_STEPS, &fixture(), &dir.join("lib"));
    assert_eq!(files_of(&dir.join("cli")), files_of(&dir.join("lib")));

    // remove: every pair becomes X = X_orig * X_mask, nothing else changes.
    let out = ndprune(&["remove", &p("cli"), &p("removed")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pruned = tensors(&dir.join("cli"));
    let removed = tensors(&dir.join("removed"));
    assert_eq!(removed.len(), pruned.len() - 16);
    let orig = tensors(&fixture());
    for (name, (dtype, shape, bytes)) in &removed {
        if pruned.contains_key(name) {
            assert_eq!(&pruned[name].2, bytes, "{name} copied");
            continue;
        }
        let (o, m) = (
            &pruned[&format!("{name}_orig")],
            &pruned[&format!("{name}_mask")],
        );
        assert_eq!((&o.0, &o.1), (dtype, shape));
        assert_eq!(o.2, orig[name].2);
        let numel = shape.iter().product::<usize>();
        let (width, mw) = (o.2.len() / numel, m.2.len() / numel);
        for (i, chunk) in bytes.chunks(width).enumerate() {
            let kept = m.2[i * mw..(i + 1) * mw].iter().any(|&b| b != 0);
            let zero = chunk.iter().all(|&b| b == 0)
                || (chunk.iter().take(width - 1).all(|&b| b == 0) && chunk[width - 1] == 0x80);
            if kept {
                assert_eq!(chunk, &o.2[i * width..(i + 1) * width], "{name}[{i}] kept");
            } else {
                assert!(zero, "{name}[{i}] pruned");
            }
        }
    }

    // Usage errors exit 2 and write nothing.
    let out = ndprune(&["prune", fx, &p("x"), "--recipe", &r, "--method", "global"]);
    assert_eq!(out.status.code(), Some(2));
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"steps": [{"method": "global", "amount": 0.2, "include": ["conv*.weight"]}]}"#,
    )
    .unwrap();
    let out = ndprune(&["prune", fx, &p("x"), "--recipe", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no tensor"));
    std::fs::write(
        &bad,
        r#"{"steps": [{"method": "global", "amount": 0.2, "n": 2}]}"#,
    )
    .unwrap();
    let out = ndprune(&["prune", fx, &p("x"), "--recipe", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("step 1: `n`"));
    // A global step past max_sparsity fails the run: status 1.
    std::fs::write(
        &bad,
        r#"{"max_sparsity": 0.1, "steps": [{"method": "global", "amount": 0.5}]}"#,
    )
    .unwrap();
    let out = ndprune(&["prune", fx, &p("x"), "--recipe", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("x").exists());
}

/// [`THREE_STEPS`] in TOML.
const THREE_STEPS_TOML: &str = r#"
[[steps]]
method = "ln_structured"
amount = 0.25
n = 2
dim = 0
include = ["**.*_proj.weight"]

[[steps]]
method = "l1_unstructured"
amount = 0.3
overrides = { "lm_head.weight" = 0.1 }

[[steps]]
method = "global"
amount = 0.2
"#;

#[test]
fn a_toml_recipe_prunes_as_its_json_twin() {
    let dir = scratch("toml");
    let (json, toml) = (dir.join("r.json"), dir.join("r.TOML"));
    std::fs::write(&json, THREE_STEPS).unwrap();
    std::fs::write(&toml, THREE_STEPS_TOML).unwrap();
    let (a, b) = (
        Recipe::from_path(&json).unwrap(),
        Recipe::from_path(&toml).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a, Recipe::from_toml(THREE_STEPS_TOML).unwrap());
    let files = CheckpointFiles::open(fixture()).unwrap();
    for (recipe, out) in [(&a, "json-out"), (&b, "toml-out")] {
        recipe
            .pruner(&files)
            .unwrap()
            .run(&files, &Output::Directory(dir.join(out)), &mut ())
            .unwrap();
    }
    assert_eq!(
        files_of(&dir.join("json-out")),
        files_of(&dir.join("toml-out"))
    );
    // Other extensions, and missing files, are typed errors.
    assert!(matches!(
        Recipe::from_path(dir.join("r.yaml")),
        Err(RecipeError::UnknownFormat { .. })
    ));
    assert!(matches!(
        Recipe::from_path(dir.join("none.toml")),
        Err(RecipeError::Read { .. })
    ));
}

#[test]
fn toml_errors_name_the_step_and_field() {
    let field = |text: &str| match Recipe::from_toml(text).unwrap_err() {
        RecipeError::Field { step, field, .. } => (step, field),
        other => panic!("{other:?}"),
    };
    let first = "[[steps]]\nmethod = \"l1_unstructured\"\namount = 0.1\n\n[[steps]]\n";
    let s = |body: &str| format!("{first}{body}\n");
    assert_eq!(
        field(&s("method = \"l0\"\namount = 0.1")),
        (Some(2), "method".into())
    );
    assert_eq!(
        field(&s("method = \"global\"\namount = 1.5")),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s("method = \"global\"\namount = -1")),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s("method = \"global\"\namount = inf")),
        (Some(2), "amount".into())
    );
    assert_eq!(
        field(&s("method = \"ln_structured\"\namount = 0.1\nn = 2")),
        (Some(2), "dim".into())
    );
    assert_eq!(
        field(&s("method = \"global\"\namount = 0.1\ncolour = 1")),
        (Some(2), "colour".into())
    );
    assert_eq!(
        field(&s("method = \"global\"\namount = 0.1\ninclude = \"a\"")),
        (Some(2), "include".into())
    );
    assert_eq!(
        field(&s("method = \"random_unstructured\"\namount = 0.1")),
        (Some(2), "seed".into())
    );
    assert_eq!(
        field("max_sparsity = 2.0\nsteps = []"),
        (None, "max_sparsity".into())
    );
    // nan and inf, which JSON cannot hold, are named as written.
    for (text, word) in [
        ("max_sparsity = nan\nsteps = []", "NaN"),
        ("max_sparsity = -inf\nsteps = []", "-inf"),
    ] {
        let err = Recipe::from_toml(text).unwrap_err();
        assert!(
            matches!(&err, RecipeError::Field { step: None, field, .. } if field == "max_sparsity"),
            "{err}"
        );
        assert!(
            err.to_string().contains(word) && !err.to_string().contains("null"),
            "{err}"
        );
    }
    assert_eq!(field("step = []"), (None, "step".into()));
    assert!(matches!(
        Recipe::from_toml("[[steps]\nmethod ="),
        Err(RecipeError::Toml { .. })
    ));
}

#[test]
fn a_torch_seeded_step_is_pytorchs_stream_as_the_library_call() {
    let files = CheckpointFiles::open(fixture()).unwrap();
    let dir = scratch("torch-seed");
    let cases = [
        (
            r#"{"steps": [{"method": "random_unstructured", "amount": 0.3, "torch_seed": 7}]}"#,
            StreamMethod::TorchRandomUnstructured { seed: 7 },
            "rand",
        ),
        (
            r#"{"steps": [{"method": "random_structured", "amount": 0.5, "dim": 0, "torch_seed": 8}]}"#,
            StreamMethod::TorchRandomStructured {
                dim: Dim(0),
                seed: 8,
            },
            "rands",
        ),
    ];
    for (text, method, case) in cases {
        let recipe = Recipe::from_json(text).unwrap();
        assert_eq!(recipe.steps()[0].method(), method);
        let (r, l) = (
            dir.join(format!("{case}-recipe")),
            dir.join(format!("{case}-lib")),
        );
        let amount = recipe.steps()[0].amount();
        recipe
            .pruner(&files)
            .unwrap()
            .run(&files, &Output::Directory(r.clone()), &mut ())
            .unwrap();
        FilePruner::new(method, amount)
            .run(&files, &Output::Directory(l.clone()), &mut ())
            .unwrap();
        assert_eq!(files_of(&r), files_of(&l), "{case}");
        // And those are PyTorch's masks.
        let got = tensors(&r);
        for (name, (_, _, bytes)) in expected(case) {
            assert!(got[&format!("{name}_mask")].2 == bytes, "{case}: {name}");
        }
    }
    // Both seeds, a seed on a method without one, or PyTorch's stream in
    // a recipe of several steps: errors naming the step and field.
    let field = |text: &str| match Recipe::from_json(text).unwrap_err() {
        RecipeError::Field { step, field, .. } => (step, field),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(
            r#"{"steps": [{"method": "random_unstructured", "amount": 0.3, "seed": 1, "torch_seed": 7}]}"#
        ),
        (Some(1), "torch_seed".into())
    );
    assert_eq!(
        field(r#"{"steps": [{"method": "l1_unstructured", "amount": 0.3, "torch_seed": 7}]}"#),
        (Some(1), "torch_seed".into())
    );
    assert_eq!(
        field(
            r#"{"steps": [{"method": "global", "amount": 0.1}, {"method": "random_unstructured", "amount": 0.3, "torch_seed": 7}]}"#
        ),
        (Some(2), "torch_seed".into())
    );
    assert_eq!(
        field(
            r#"{"max_sparsity": 0.5, "steps": [{"method": "random_unstructured", "amount": 0.3, "torch_seed": 7}]}"#
        ),
        (Some(1), "torch_seed".into())
    );
}
