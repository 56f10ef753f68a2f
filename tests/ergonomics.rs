//! Library ergonomics: cloning models, the trainable tensor of a possibly
//! pruned name, the typed pruning history, loading a state dict into a
//! model of one's own, and selecting tensors by glob, rank and dtype.

use std::collections::HashMap;

use ndarray::{array, ArrayD};
use ndprune::prelude::*;
use ndprune::{Glob, KeyShape, LoadReport, PruningKind, PruningStep, RandomSource, Selector};
use proptest::prelude::*;
use rand::SeedableRng;

/// A user's own model: named fields, not a `Sequential`.
#[derive(Debug, Clone)]
struct Net {
    own: TensorStore<f32>,
    conv: Layer<f32>,
    bn: Layer<f32>,
    fc: Layer<f32>,
}

impl Module<f32> for Net {
    fn store(&self) -> &TensorStore<f32> {
        &self.own
    }
    fn store_mut(&mut self) -> &mut TensorStore<f32> {
        &mut self.own
    }
    fn children(&self) -> Vec<(&str, &dyn Module<f32>)> {
        vec![("conv", &self.conv), ("bn", &self.bn), ("fc", &self.fc)]
    }
    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<f32>)> {
        vec![
            ("conv", &mut self.conv),
            ("bn", &mut self.bn),
            ("fc", &mut self.fc),
        ]
    }
}

fn net(seed: u64) -> Net {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Net {
        own: TensorStore::new(),
        conv: Layer::conv2d(1, 4, 3, &mut rng),
        bn: Layer::new()
            .with_parameter("weight", ArrayD::ones(vec![4]))
            .and_then(|l| l.with_buffer("running_mean", ArrayD::zeros(vec![4])))
            .expect("fresh names"),
        fc: Layer::linear(16, 3, &mut rng),
    }
}

fn owned(m: &dyn Module<f32>) -> Vec<(String, ArrayD<f32>)> {
    m.state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.clone()))
        .collect()
}

fn keys(report_keys: &[String]) -> Vec<&str> {
    report_keys.iter().map(String::as_str).collect()
}

// ---- Clone ----

#[test]
fn sequential_clone_is_independent() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let inner = Sequential::<f32>::new().push(Layer::linear(4, 4, &mut rng));
    let mut model = Sequential::new()
        .with_child("features", inner)
        .unwrap()
        .push(Net::clone(&net(2)));
    prune::l1_unstructured(&mut model, "features.0.weight", Amount::Count(3), None).unwrap();
    let before = owned(&model);

    let mut copy = model.clone();
    assert_eq!(owned(&copy), before);
    assert_eq!(
        copy.pruning_history("features.0.weight"),
        model.pruning_history("features.0.weight")
    );

    // Change the copy every way there is: the original does not move.
    prune::l1_unstructured(&mut copy, "features.0.weight", Amount::Count(2), None).unwrap();
    prune::identity(&mut copy, "1.fc.weight").unwrap();
    copy.trainable_mut("1.conv.bias").unwrap().fill(9.0);
    prune::remove(&mut copy, "features.0.weight").unwrap();
    assert_eq!(owned(&model), before);
    assert!(model.store_at("features.0").unwrap().is_pruned("weight"));
    assert!(!model.store_at("1.fc").unwrap().is_pruned("weight"));

    // And the other way round.
    let mut copy = model.clone();
    model.trainable_mut("1.fc.bias").unwrap().fill(-1.0);
    assert_ne!(copy.parameter("1.fc.bias"), model.parameter("1.fc.bias"));
    prune::identity(&mut copy, "1.bn.weight").unwrap();
    assert!(
        model.tensor("1.bn.weight").is_some()
            && !model.store_at("1.bn").unwrap().is_pruned("weight")
    );
}

#[test]
fn from_module_copies_a_user_model() {
    let mut n = net(3);
    prune::ln_structured(
        &mut n,
        "conv.weight",
        Amount::Count(1),
        Norm::L(1.0),
        Dim(0),
        None,
    )
    .unwrap();
    let copy = Sequential::from_module(&n);
    assert_eq!(owned(&copy), owned(&n));
    assert_eq!(copy.named_pruned().len(), 1);
    assert_eq!(
        copy.pruning_history("conv.weight"),
        n.pruning_history("conv.weight")
    );
    // Buffers stay buffers.
    assert!(copy.buffer("bn.running_mean").is_some());
    assert!(copy.parameter("bn.running_mean").is_none());
}

// ---- Trainable tensor ----

#[test]
fn trainable_is_the_parameter_or_the_original() {
    let mut m = net(4);
    // Not pruned: the parameter itself.
    assert_eq!(m.trainable("fc.weight"), m.parameter("fc.weight"));
    m.trainable_mut("fc.weight").unwrap().fill(2.0);
    assert!(m.parameter("fc.weight").unwrap().iter().all(|&w| w == 2.0));

    // Pruned: the original; the pruned tensor follows after a recompute.
    prune::l1_unstructured(&mut m, "conv.weight", Amount::Fraction(0.5), None).unwrap();
    assert_eq!(m.trainable("conv.weight"), m.parameter("conv.weight_orig"));
    m.trainable_mut("conv.weight").unwrap().fill(3.0);
    assert!(m
        .parameter("conv.weight_orig")
        .unwrap()
        .iter()
        .all(|&w| w == 3.0));
    m.recompute_pruned();
    let mask = m.buffer("conv.weight_mask").unwrap().clone();
    assert_eq!(m.tensor("conv.weight").unwrap(), &(mask * 3.0));

    // Buffers and unknown names are not trainable.
    assert!(m.trainable("bn.running_mean").is_none());
    assert!(m.trainable_mut("nothing.weight").is_none());
    assert!(m.trainable("conv.weight_mask").is_none());
}

#[test]
fn update_trainable_recomputes_and_fails_cleanly() {
    let mut m = net(5);
    let step =
        |m: &mut Net, path: &str| m.update_trainable(path, |mut w| w.mapv_inplace(|x| x + 1.0));
    let before = m.parameter("fc.weight").unwrap().clone();
    step(&mut m, "fc.weight").unwrap();
    assert_eq!(m.parameter("fc.weight").unwrap(), &(&before + 1.0));

    prune::l1_unstructured(&mut m, "fc.weight", Amount::Fraction(0.25), None).unwrap();
    let orig = m.parameter("fc.weight_orig").unwrap().clone();
    step(&mut m, "fc.weight").unwrap();
    let mask = m.buffer("fc.weight_mask").unwrap();
    assert_eq!(m.parameter("fc.weight_orig").unwrap(), &(&orig + 1.0));
    assert_eq!(m.tensor("fc.weight").unwrap(), &((&orig + 1.0) * mask));

    let snapshot = owned(&m);
    for (path, kind) in [
        ("bn.running_mean", PruneErrorKind::NoSuchTensor),
        ("fc.nothing", PruneErrorKind::NoSuchTensor),
    ] {
        let err = step(&mut m, path).unwrap_err();
        assert_eq!(err.kind(), &kind);
        assert_eq!(err.tensor(), Some(path));
    }
    let err = step(&mut m, "nowhere.weight").unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::NoSuchModule { .. }));
    let err = step(&mut m, "fc..weight").unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::InvalidPath { .. }));
    assert_eq!(owned(&m), snapshot);
}

// ---- Typed history ----

#[derive(Debug)]
struct KeepAll;

impl PruningMethod<f32> for KeepAll {
    fn kind(&self) -> PruningKind {
        PruningKind::Global
    }
    fn compute_mask(
        &self,
        _t: ndarray::ArrayViewD<'_, f32>,
        default_mask: ndarray::ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, PruneError> {
        Ok(default_mask.to_owned())
    }
    fn describe(&self) -> String {
        "KeepAll()".into()
    }
}

#[test]
fn history_records_every_step_typed() {
    let mut m = net(6);
    let scores = ArrayD::from_elem(vec![4, 1, 3, 3], 1.0f32);
    prune::identity(&mut m, "conv.weight").unwrap();
    prune::l1_unstructured(
        &mut m,
        "conv.weight",
        Amount::Fraction(0.25),
        Some(scores.view()),
    )
    .unwrap();
    prune::ln_structured(
        &mut m,
        "conv.weight",
        Amount::Count(1),
        Norm::Inf,
        Dim(-4),
        None,
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let seeded = RandomUnstructured::new(Amount::Count(1), 11).unwrap();
    prune::apply(&mut m, "conv.weight", &seeded, None).unwrap();
    let gen = TorchGenerator::manual_seed(0);
    let torch = RandomStructured::with_torch_generator(Amount::Count(1), Dim(0), &gen).unwrap();
    prune::apply(&mut m, "conv.weight", &torch, None).unwrap();
    let mask = ArrayD::ones(vec![4, 1, 3, 3]);
    prune::custom_from_mask(&mut m, "conv.weight", mask.view()).unwrap();
    prune::apply(&mut m, "conv.weight", &KeepAll, Some(scores.view())).unwrap();

    let expected = vec![
        PruningStep::Identity,
        PruningStep::L1Unstructured {
            amount: Amount::Fraction(0.25),
            tie_break: TieBreak::Torch,
            importance_scores: true,
        },
        PruningStep::LnStructured {
            amount: Amount::Count(1),
            norm: Norm::Inf,
            dim: Dim(-4),
            tie_break: TieBreak::Torch,
            importance_scores: false,
        },
        PruningStep::RandomUnstructured {
            amount: Amount::Count(1),
            source: RandomSource::Seed(11),
        },
        PruningStep::RandomStructured {
            amount: Amount::Count(1),
            dim: Dim(0),
            source: RandomSource::Torch,
        },
        PruningStep::CustomFromMask,
        PruningStep::User {
            kind: PruningKind::Global,
            description: "KeepAll()".into(),
            importance_scores: true,
        },
    ];
    assert_eq!(
        m.pruning_history("conv.weight").unwrap(),
        expected.as_slice()
    );
    let shown: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "Identity",
            "L1Unstructured(amount=0.25, importance scores given)",
            "LnStructured(amount=1, n=inf, dim=-4)",
            "RandomUnstructured(amount=1, seed=11)",
            "RandomStructured(amount=1, dim=0, torch generator)",
            "CustomFromMask",
            "KeepAll() (importance scores given)",
        ]
    );
    assert!(expected[1].importance_scores() && !expected[2].importance_scores());

    // A failing call records nothing.
    let before = m.pruning_history("conv.weight").unwrap().to_vec();
    assert!(prune::l1_unstructured(&mut m, "conv.weight", Amount::Count(1000), None).is_err());
    assert_eq!(m.pruning_history("conv.weight").unwrap(), before.as_slice());

    // `remove` ends the history; pruning again starts a new one.
    prune::remove(&mut m, "conv.weight").unwrap();
    assert_eq!(m.pruning_history("conv.weight"), None);
    prune::random_unstructured(&mut m, "conv.weight", Amount::Count(1), &mut rng).unwrap();
    assert_eq!(m.pruning_history("conv.weight").map(<[_]>::len), Some(1));
}

#[test]
fn global_history_names_the_method_and_scores_per_tensor() {
    let mut m = net(7);
    prune::identity(&mut m, "fc.weight").unwrap();
    let method = L1Unstructured::new(Amount::Fraction(0.5))
        .unwrap()
        .with_tie_break(TieBreak::LowestIndex);
    let scores = HashMap::from([("conv.weight".to_string(), ArrayD::ones(vec![4, 1, 3, 3]))]);
    prune::global_unstructured(
        &mut m,
        &["conv.weight", "fc.weight"],
        &method,
        Some(&scores),
    )
    .unwrap();
    let global = |scores: bool| PruningStep::Global {
        method: Box::new(PruningStep::L1Unstructured {
            amount: Amount::Fraction(0.5),
            tie_break: TieBreak::LowestIndex,
            importance_scores: scores,
        }),
        tensors: 2,
    };
    assert_eq!(m.pruning_history("conv.weight").unwrap(), [global(true)]);
    assert_eq!(
        m.pruning_history("fc.weight").unwrap(),
        [PruningStep::Identity, global(false)]
    );
    assert_eq!(
        global(true).to_string(),
        "global L1Unstructured(amount=0.5, ties=LowestIndex, importance scores given) over 2 tensors"
    );
}

// ---- load_state_dict ----

#[test]
fn load_state_dict_round_trips_and_prunes_plain_parameters() {
    let mut source = net(8);
    prune::l1_unstructured(&mut source, "fc.weight", Amount::Fraction(0.5), None).unwrap();
    prune::ln_structured(
        &mut source,
        "conv.weight",
        Amount::Count(2),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    source
        .bn
        .store_mut()
        .trainable_mut("weight")
        .unwrap()
        .fill(0.5);

    let mut target = net(9);
    let report = target.load_state_dict(owned(&source), true).unwrap();
    assert_eq!(owned(&target), owned(&source));
    assert_eq!(keys(&report.newly_pruned), ["conv.weight", "fc.weight"]);
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert_eq!(report.loaded.len(), source.state_dict().len());
    // The forward tensors are the products; the roles are the target's.
    for path in ["conv.weight", "fc.weight"] {
        assert_eq!(target.tensor(path), source.tensor(path));
        assert_eq!(target.pruning_history(path).unwrap(), [PruningStep::Loaded]);
    }
    assert!(target.buffer("bn.running_mean").is_some());

    // Loading into a module already pruned the same way replaces the
    // original and mask and recomputes.
    let mut again = net(10);
    prune::identity(&mut again, "fc.weight").unwrap();
    let report = again.load_state_dict(owned(&source), true).unwrap();
    assert_eq!(keys(&report.newly_pruned), ["conv.weight"]);
    assert_eq!(owned(&again), owned(&source));
    assert_eq!(again.tensor("fc.weight"), source.tensor("fc.weight"));
    assert_eq!(
        again.pruning_history("fc.weight").unwrap(),
        [PruningStep::Loaded]
    );
}

#[test]
fn strict_load_reports_every_problem_and_changes_nothing() {
    let mut target = net(11);
    prune::identity(&mut target, "fc.weight").unwrap();
    let before = owned(&target);
    let state = vec![
        ("conv.weight".to_string(), ArrayD::zeros(vec![4, 1, 3, 3])),
        ("conv.bias".to_string(), ArrayD::zeros(vec![5])), // wrong shape
        ("fc.weight".to_string(), ArrayD::zeros(vec![3, 16])), // pruned in the module
        ("bn.weight".to_string(), ArrayD::zeros(vec![4])),
        ("bn.weight".to_string(), ArrayD::zeros(vec![4])), // twice
        ("head.weight".to_string(), ArrayD::zeros(vec![1])), // no such module
    ];
    let err = target.load_state_dict(state.clone(), true).unwrap_err();
    assert_eq!(err.torch_kind(), "RuntimeError");
    let PruneErrorKind::LoadStateDict {
        missing,
        unexpected,
        mismatched,
        duplicated,
    } = err.kind()
    else {
        panic!("expected LoadStateDict, got {err}");
    };
    assert_eq!(
        keys(missing),
        [
            "bn.running_mean",
            "fc.bias",
            "fc.weight_orig",
            "fc.weight_mask"
        ]
    );
    assert_eq!(keys(unexpected), ["fc.weight", "head.weight"]);
    assert_eq!(
        mismatched,
        &[KeyShape {
            key: "conv.bias".into(),
            expected: vec![4],
            got: vec![5],
        }]
    );
    assert_eq!(keys(duplicated), ["bn.weight"]);
    let text = err.to_string();
    for needle in [
        "missing keys",
        "unexpected keys",
        "shape mismatches",
        "given twice",
    ] {
        assert!(text.contains(needle), "{text}");
    }
    assert_eq!(owned(&target), before);

    // Not strict: shapes and repeats still fail, and change nothing.
    assert!(target.load_state_dict(state.clone(), false).is_err());
    assert_eq!(owned(&target), before);

    // Not strict, without them: missing and unexpected are reported.
    let fine: Vec<_> = state
        .into_iter()
        .filter(|(k, _)| k != "conv.bias")
        .take(3)
        .chain([("head.weight".to_string(), ArrayD::zeros(vec![1]))])
        .collect();
    let report: LoadReport = target.load_state_dict(fine, false).unwrap();
    assert_eq!(keys(&report.loaded), ["conv.weight", "bn.weight"]);
    assert_eq!(keys(&report.unexpected), ["fc.weight", "head.weight"]);
    assert!(report.missing.contains(&"fc.weight_orig".to_string()));
    assert!(target
        .parameter("conv.weight")
        .unwrap()
        .iter()
        .all(|&w| w == 0.0));
    assert!(target.store_at("fc").unwrap().is_pruned("weight"));
}

#[test]
fn a_bad_mask_or_half_a_pair_is_refused() {
    let mut target = net(12);
    let before = owned(&target);
    let mut state = owned(&target);
    state.retain(|(k, _)| k != "fc.weight");
    state.push(("fc.weight_orig".into(), ArrayD::ones(vec![3, 16])));
    let mut bad = ArrayD::ones(vec![3, 16]);
    bad[[1, 2]] = 0.5;
    state.push(("fc.weight_mask".into(), bad));
    let err = target.load_state_dict(state.clone(), true).unwrap_err();
    assert!(matches!(
        err.kind(),
        PruneErrorKind::InvalidMask { index: 18, .. }
    ));
    assert_eq!(err.tensor(), Some("fc.weight_mask"));
    assert_eq!(owned(&target), before);

    // Half a pair: the original alone has no place, and `fc.weight` is missing.
    state.pop();
    let err = target.load_state_dict(state, true).unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::LoadStateDict { missing, unexpected, .. }
        if keys(missing) == ["fc.weight"] && keys(unexpected) == ["fc.weight_orig"])
    );
    assert_eq!(owned(&target), before);

    // A pair beside a plain `fc.weight` is no pair: both parts are unexpected.
    let mut state = owned(&target);
    state.push(("fc.weight_orig".into(), ArrayD::ones(vec![3, 16])));
    state.push(("fc.weight_mask".into(), ArrayD::ones(vec![3, 16])));
    let err = target.load_state_dict(state.clone(), true).unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::LoadStateDict { missing, unexpected, .. }
        if missing.is_empty() && keys(unexpected) == ["fc.weight_orig", "fc.weight_mask"])
    );
    assert_eq!(owned(&target), before);
    let report = target.load_state_dict(state, false).unwrap();
    assert!(report.newly_pruned.is_empty() && !target.store_at("fc").unwrap().is_pruned("weight"));

    // A pair whose original has another shape than the plain parameter.
    let mut state = owned(&target);
    state.retain(|(k, _)| k != "fc.weight");
    state.push(("fc.weight_orig".into(), ArrayD::ones(vec![16, 3])));
    state.push(("fc.weight_mask".into(), ArrayD::ones(vec![3, 16])));
    let err = target.load_state_dict(state, true).unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::LoadStateDict { mismatched, .. }
        if mismatched.len() == 1 && mismatched[0].key == "fc.weight_orig")
    );
    assert_eq!(owned(&target), before);
}

#[test]
fn a_mask_of_a_tensor_pruned_in_the_module_is_checked_and_restarts_history() {
    let mut target = net(13);
    prune::l1_unstructured(&mut target, "fc.bias", Amount::Count(1), None).unwrap();
    let mut state = owned(&target);
    let at = state.iter().position(|(k, _)| k == "fc.bias_mask").unwrap();
    state[at].1 = array![1.0f32, 2.0, 1.0].into_dyn();
    let before = owned(&target);
    assert!(target.load_state_dict(state.clone(), true).is_err());
    assert_eq!(owned(&target), before);
    state[at].1 = array![0.0f32, 0.0, 1.0].into_dyn();
    target.load_state_dict(state, true).unwrap();
    let orig = target.parameter("fc.bias_orig").unwrap();
    assert_eq!(target.tensor("fc.bias").unwrap()[[2]], orig[[2]]);
    assert_eq!(target.tensor("fc.bias").unwrap()[[0]], 0.0);
    assert_eq!(
        target.pruning_history("fc.bias").unwrap(),
        [PruningStep::Loaded]
    );
}

proptest! {
    /// Whatever was pruned, a model's own state dict loads strictly into a
    /// fresh copy of the model and gives the same state and forward tensors.
    #[test]
    fn any_pruned_state_loads_into_a_fresh_model(
        seed in 0u64..1000,
        picks in proptest::collection::vec((0usize..5, 0usize..4), 0..6),
    ) {
        let paths = ["conv.weight", "conv.bias", "bn.weight", "fc.weight", "fc.bias"];
        let mut source = net(seed);
        for (p, k) in picks {
            let _ = prune::l1_unstructured(&mut source, paths[p], Amount::Count(k), None);
        }
        let mut target = net(seed + 1);
        let report = target.load_state_dict(owned(&source), true).unwrap();
        prop_assert_eq!(owned(&target), owned(&source));
        for path in paths {
            prop_assert_eq!(target.tensor(path), source.tensor(path));
        }
        prop_assert_eq!(report.newly_pruned.len(), source.named_pruned().len());
    }
}

// ---- Selection ----

fn selection_model() -> Sequential<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let features = Sequential::new()
        .push(Layer::conv2d(1, 4, 3, &mut rng))
        .push(
            Layer::new()
                .with_parameter("weight", ArrayD::ones(vec![4]))
                .and_then(|l| l.with_buffer("running_var", ArrayD::ones(vec![4])))
                .unwrap(),
        );
    Sequential::new()
        .with_child("features", features)
        .unwrap()
        .with_child("conv1", Layer::conv2d(4, 4, 1, &mut rng))
        .unwrap()
        .with_child(
            "conv1_bn",
            Layer::new()
                .with_parameter("weight", ArrayD::ones(vec![4]))
                .unwrap(),
        )
        .unwrap()
        .with_child("fc", Layer::linear(4, 2, &mut rng))
        .unwrap()
}

fn select(model: &Sequential<f32>, include: &[&str], exclude: &[&str]) -> Vec<String> {
    let mut s = Selector::new();
    for p in include {
        s = s.include(p).unwrap();
    }
    for p in exclude {
        s = s.exclude(p).unwrap();
    }
    s.select(model).unwrap()
}

#[test]
fn selector_globs_stay_within_segments() {
    let m = selection_model();
    assert_eq!(
        select(&m, &[], &[]),
        [
            "features.0.weight",
            "features.0.bias",
            "features.1.weight",
            "conv1.weight",
            "conv1.bias",
            "conv1_bn.weight",
            "fc.weight",
            "fc.bias"
        ]
    );
    assert_eq!(
        select(&m, &["conv*.weight"], &[]),
        ["conv1.weight", "conv1_bn.weight"]
    );
    assert_eq!(select(&m, &["conv?.weight"], &[]), ["conv1.weight"]);
    assert_eq!(select(&m, &["conv*.weight"], &["*_bn.*"]), ["conv1.weight"]);
    assert_eq!(
        select(&m, &["*.weight"], &[]),
        ["conv1.weight", "conv1_bn.weight", "fc.weight"]
    );
    assert_eq!(
        select(&m, &["features.**"], &["**.bias"]),
        ["features.0.weight", "features.1.weight"]
    );
    assert_eq!(
        select(&m, &["**.0.*"], &[]),
        ["features.0.weight", "features.0.bias"]
    );
    // Buffers are never candidates.
    let err = Selector::new()
        .include("**.running_var")
        .unwrap()
        .select(&m)
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &PruneErrorKind::NoMatch {
            pattern: "**.running_var".into()
        }
    );
    assert_eq!(err.torch_kind(), "ValueError");
    // Each include must match; an exclude need not.
    assert!(Selector::new()
        .include("fc.*")
        .unwrap()
        .include("nope")
        .unwrap()
        .select(&m)
        .is_err());
    assert_eq!(select(&m, &["fc.*"], &["nope"]), ["fc.weight", "fc.bias"]);
}

#[test]
fn selector_by_rank_and_after_pruning() {
    let mut m = selection_model();
    let matrices = Selector::new().include("**.weight").unwrap().ndim(2..);
    let targets = matrices.select(&m).unwrap();
    assert_eq!(targets, ["features.0.weight", "conv1.weight", "fc.weight"]);
    assert_eq!(
        Selector::new().ndim(..2).select(&m).unwrap().len(),
        5,
        "the 1-dim tensors"
    );
    assert!(Selector::new().ndim(5..).select(&m).unwrap().is_empty());

    // The selection feeds global pruning directly, and a pruned tensor is
    // selected again by its own name.
    let l1 = L1Unstructured::new(Amount::Fraction(0.5)).unwrap();
    prune::global_unstructured(&mut m, &targets, &l1, None).unwrap();
    assert_eq!(matrices.select(&m).unwrap(), targets);
    let again = matrices.select(&m).unwrap();
    prune::global_unstructured(&mut m, &again, &l1, None).unwrap();
    assert!(!select(&m, &["**"], &[])
        .iter()
        .any(|p| p.ends_with("_orig")));
}

#[test]
fn invalid_patterns_are_refused() {
    for bad in [
        "", ".a", "a.", "a..b", "a**", "**b.c", "x.[ab]", "{a,b}", "a\\.b",
    ] {
        let err = Glob::new(bad).unwrap_err();
        assert!(
            matches!(err.kind(), PruneErrorKind::InvalidPattern { pattern, .. } if pattern == bad),
            "{bad:?}: {err}"
        );
        assert!(Selector::new().include(bad).is_err());
        assert!(Selector::new().exclude(bad).is_err());
    }
}

/// A plain recursive matcher, written independently of the crate's
/// table-driven one.
fn reference_match(pattern: &[&str], path: &[&str]) -> bool {
    fn seg(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| seg(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && seg(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && seg(rest, &t[1..]),
        }
    }
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| reference_match(rest, &path[i..])),
        Some((p, rest)) => {
            !path.is_empty()
                && seg(
                    &p.chars().collect::<Vec<_>>(),
                    &path[0].chars().collect::<Vec<_>>(),
                )
                && reference_match(rest, &path[1..])
        }
    }
}

proptest! {
    #[test]
    fn glob_matches_as_the_reference_does(
        pattern in proptest::collection::vec(
            prop_oneof![Just("**".to_string()), "[ab*?_]{1,4}"], 1..5),
        path in proptest::collection::vec("[ab_]{1,3}", 1..6),
    ) {
        let glob = Glob::new(&pattern.join("."));
        // `**` inside a segment is refused; every other pattern is valid.
        if pattern.iter().any(|s| s != "**" && s.contains("**")) {
            prop_assert!(glob.is_err());
            return Ok(());
        }
        let glob = glob.unwrap();
        let p: Vec<&str> = pattern.iter().map(String::as_str).collect();
        let t: Vec<&str> = path.iter().map(String::as_str).collect();
        prop_assert_eq!(glob.is_match(&path.join(".")), reference_match(&p, &t));
    }

    #[test]
    fn a_literal_pattern_matches_exactly_itself(
        path in proptest::collection::vec("[a-z0-9_]{1,5}", 1..5),
        other in proptest::collection::vec("[a-z0-9_]{1,5}", 1..5),
    ) {
        let glob = Glob::new(&path.join(".")).unwrap();
        prop_assert!(glob.is_match(&path.join(".")));
        prop_assert_eq!(glob.is_match(&other.join(".")), other == path);
    }
}
