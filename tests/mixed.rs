//! Checkpoints mixing float dtypes, in memory (`MixedCheckpoint`): the
//! sharded PyTorch fixture (bf16, f16 and f32 tensors) loaded whole,
//! pruned tensor by tensor and globally across dtypes, against the masks
//! PyTorch computed for it (`tools/make_sharded_fixture.py`); global
//! pruning across dtypes against the same values all in f32; round trips;
//! failing calls that change nothing.
#![cfg(feature = "half")]

use std::path::{Path, PathBuf};

use half::{bf16, f16};
use ndarray::ArrayD;
use ndprune::io::{
    Checkpoint, CheckpointError, CheckpointFiles, Dtype, LoadOptions, MixedCheckpoint, PairProblem,
    SafetensorsView, SafetensorsWriter, TensorSpec,
};
use ndprune::prelude::*;
use proptest::prelude::*;

#[path = "support/tensors.rs"]
mod tensors;
use tensors::{expected, Tensors};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded")
}

/// The whole sharded fixture, loaded through its files.
fn load_fixture() -> MixedCheckpoint {
    let files = CheckpointFiles::open(fixture()).unwrap();
    assert!(files.is_sharded());
    MixedCheckpoint::from_files(&files, &LoadOptions::default()).unwrap()
}

/// Every tensor the checkpoint saves: name, dtype, shape, bytes.
fn saved(ckpt: &MixedCheckpoint) -> Tensors {
    let bytes = ckpt.to_bytes().unwrap();
    let view = SafetensorsView::parse(&bytes).unwrap();
    view.entries()
        .iter()
        .map(|e| {
            (
                e.name().to_string(),
                (e.dtype(), e.shape().to_vec(), e.data().to_vec()),
            )
        })
        .collect()
}

/// Checks every mask of `case` against PyTorch's, in its dtype, bit for
/// bit.
fn assert_masks(case: &str, ckpt: &MixedCheckpoint) {
    let want = expected(case);
    assert_eq!(want.len(), 16, "{case}");
    let got = saved(ckpt);
    let dtypes: std::collections::BTreeSet<Dtype> = want.values().map(|w| w.0).collect();
    assert_eq!(dtypes.len(), 3, "bf16, f16 and f32 tensors");
    for (name, (dtype, shape, bytes)) in &want {
        assert_eq!(ckpt.dtype_of(name).unwrap(), *dtype, "{case} {name}");
        let mask = &got[&format!("{name}_mask")];
        assert_eq!((&mask.0, &mask.1), (dtype, shape), "{case} {name}");
        assert!(
            mask.2 == *bytes,
            "{case}: {name}'s mask differs from PyTorch's"
        );
        // The original is the tensor as it was, in its dtype.
        let orig = &got[&format!("{name}_orig")];
        assert_eq!(orig.0, *dtype, "{case} {name}");
    }
}

/// The names PyTorch pruned, in the order it pruned them (sorted).
fn targets() -> Vec<String> {
    expected("global").into_keys().collect()
}

/// Applies a method of any dtype to the tensor `name` in its own tree.
fn apply_in_own_dtype<P>(ckpt: &mut MixedCheckpoint, name: &str, method: &P)
where
    P: PruningMethod<f32> + PruningMethod<f64> + PruningMethod<bf16> + PruningMethod<f16>,
{
    match ckpt.dtype_of(name).unwrap() {
        Dtype::F64 => prune::apply(ckpt.part_mut::<f64>(), name, method, None),
        Dtype::F32 => prune::apply(ckpt.part_mut::<f32>(), name, method, None),
        Dtype::BF16 => prune::apply(ckpt.part_mut::<bf16>(), name, method, None),
        Dtype::F16 => prune::apply(ckpt.part_mut::<f16>(), name, method, None),
        other => panic!("{name}: {other} is no float dtype"),
    }
    .unwrap();
}

#[test]
fn global_pruning_across_bf16_f16_and_f32_gives_pytorchs_masks() {
    let mut ckpt = load_fixture();
    let names = targets();
    ckpt.global_unstructured(&names, Amount::Fraction(0.3), TieBreak::Torch)
        .unwrap();
    assert_masks("global", &ckpt);
    // Each target records its share of one global call.
    let history = ckpt
        .part::<bf16>()
        .pruning_history("model.embed_tokens.weight")
        .unwrap();
    assert_eq!(
        history,
        [PruningStep::Global {
            method: Box::new(PruningStep::L1Unstructured {
                amount: Amount::Fraction(0.3),
                tie_break: TieBreak::Torch,
                importance_scores: false,
            }),
            tensors: 16,
        }]
    );
}

#[test]
fn global_pruning_after_earlier_steps_in_each_dtype_gives_pytorchs_masks() {
    // The fixture's three-step case: structured, then unstructured, each
    // tensor in its own dtype, then global over what is left of all.
    let names = targets();
    let mut ckpt = load_fixture();
    for name in names.iter().filter(|n| n.ends_with("_proj.weight")) {
        ckpt.ln_structured(name, Amount::Fraction(0.25), Norm::L(2.0), Dim(0))
            .unwrap();
    }
    for name in &names {
        let amount = if name == "lm_head.weight" { 0.1 } else { 0.3 };
        ckpt.l1_unstructured(name, Amount::Fraction(amount))
            .unwrap();
    }
    ckpt.global_unstructured(&names, Amount::Fraction(0.2), TieBreak::Torch)
        .unwrap();
    assert_masks("recipe", &ckpt);
}

#[test]
fn global_pruning_ranks_in_the_order_of_the_names_given() {
    // PyTorch's tie order follows the concatenation order: the fixture's
    // bf16 magnitudes tie at the cut, so the lowest-index rule (over the
    // same order) gives other masks, and so does another order with
    // PyTorch's rule; both prune the same number of entries.
    let names = targets();
    let mut torch = load_fixture();
    torch
        .global_unstructured(&names, Amount::Fraction(0.3), TieBreak::Torch)
        .unwrap();
    let mut lowest = load_fixture();
    lowest
        .global_unstructured(&names, Amount::Fraction(0.3), TieBreak::LowestIndex)
        .unwrap();
    let count = |c: &MixedCheckpoint| -> usize {
        names
            .iter()
            .map(|n| {
                let t = &saved(c)[&format!("{n}_mask")];
                let size = t.2.len() / t.1.iter().product::<usize>();
                t.2.chunks(size)
                    .filter(|b| b.iter().all(|&x| x == 0))
                    .count()
            })
            .sum()
    };
    assert_eq!(count(&torch), (0.3f64 * 5376.0).round() as usize);
    assert_eq!(count(&lowest), count(&torch));
    assert_ne!(saved(&torch), saved(&lowest));
}

#[test]
fn each_tensor_prunes_in_its_own_dtype_as_pytorch_does() {
    let names = targets();

    let mut l1 = load_fixture();
    for name in &names {
        l1.l1_unstructured(name, Amount::Fraction(0.25)).unwrap();
    }
    assert_masks("l1", &l1);

    let mut ln = load_fixture();
    for name in &names {
        ln.ln_structured(name, Amount::Fraction(0.5), Norm::L(2.0), Dim(0))
            .unwrap();
    }
    assert_masks("ln", &ln);

    // PyTorch's generator, seeded once, drawn through the tensors in the
    // order of their names, each in its own dtype.
    let mut rand = load_fixture();
    let gen = TorchGenerator::manual_seed(7);
    for name in &names {
        let method = RandomUnstructured::with_torch_generator(Amount::Fraction(0.3), &gen).unwrap();
        apply_in_own_dtype(&mut rand, name, &method);
    }
    assert_masks("rand", &rand);

    let mut rands = load_fixture();
    let gen = TorchGenerator::manual_seed(8);
    for name in &names {
        let method =
            RandomStructured::with_torch_generator(Amount::Fraction(0.5), Dim(0), &gen).unwrap();
        apply_in_own_dtype(&mut rands, name, &method);
    }
    assert_masks("rands", &rands);
}

#[test]
fn every_tensor_is_listed_with_its_dtype_in_state_dict_order() {
    let ckpt = load_fixture();
    let on_disk = tensors::of_checkpoint(&fixture());
    let listed = ckpt.tensor_specs();
    assert_eq!(listed.len(), on_disk.len());
    for spec in &listed {
        let (dtype, shape, _) = &on_disk[spec.name()];
        assert_eq!((spec.dtype(), spec.shape()), (*dtype, shape.as_slice()));
    }
    // Module by module, numbers by value: every module of this model holds
    // one tensor, so the order is that of the names' components.
    let key = |name: &str| -> Vec<(u8, u64, String)> {
        name.split('.')
            .map(|c| match c.parse::<u64>() {
                Ok(n) => (0, n, String::new()),
                Err(_) => (1, 0, c.to_string()),
            })
            .collect()
    };
    let names: Vec<&str> = listed.iter().map(TensorSpec::name).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| key(n));
    assert_eq!(names, sorted);
    assert_eq!(names[0], "lm_head.weight");
    // Parameters: all of them here (no buffers).
    assert_eq!(ckpt.parameter_specs(), listed);
    let dtypes: std::collections::BTreeSet<Dtype> = listed.iter().map(|s| s.dtype()).collect();
    assert_eq!(
        dtypes,
        [Dtype::BF16, Dtype::F16, Dtype::F32].into_iter().collect()
    );
    assert_eq!(ckpt.metadata().unwrap()["format"], "pt");
}

#[test]
fn load_save_load_keeps_every_tensor_byte_for_byte() {
    let ckpt = load_fixture();
    assert_eq!(saved(&ckpt), tensors::of_checkpoint(&fixture()));
    let bytes = ckpt.to_bytes().unwrap();
    let again = MixedCheckpoint::from_bytes(&bytes).unwrap();
    assert_eq!(again.to_bytes().unwrap(), bytes);
    assert_eq!(again.metadata(), ckpt.metadata());

    // Pruned, saved to a file, loaded: the same pruned tensors, pruned.
    let mut pruned = load_fixture();
    pruned
        .global_unstructured(&targets(), Amount::Fraction(0.3), TieBreak::Torch)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ndprune-mixed-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pruned.safetensors");
    pruned.save(&path).unwrap();
    let loaded = MixedCheckpoint::load(&path).unwrap();
    assert_eq!(saved(&loaded), saved(&pruned));
    for name in targets() {
        assert!(loaded.is_pruned(&name), "{name}");
    }
    assert_masks("global", &loaded);
    // And remove makes each plain again, in its dtype: orig * mask.
    let mut removed = loaded.clone();
    for name in targets() {
        removed.remove(&name).unwrap();
        assert!(!removed.is_pruned(&name));
    }
    let plain = saved(&removed);
    let w = removed
        .part::<bf16>()
        .parameter("model.embed_tokens.weight")
        .unwrap();
    let orig = loaded
        .part::<bf16>()
        .parameter("model.embed_tokens.weight_orig")
        .unwrap();
    let mask = loaded
        .part::<bf16>()
        .buffer("model.embed_tokens.weight_mask")
        .unwrap();
    assert_eq!(w, &(orig * mask));
    assert_eq!(plain["model.embed_tokens.weight"].0, Dtype::BF16);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_single_dtype_checkpoint_lists_the_float_tensors_it_keeps_raw() {
    let mixed = load_fixture();
    let bytes = mixed.to_bytes().unwrap();
    let ckpt = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    let raw: Vec<&str> = ckpt.raw_float_tensors().iter().map(|r| r.name()).collect();
    let on_disk = tensors::of_checkpoint(&fixture());
    let want: Vec<&str> = on_disk
        .iter()
        .filter(|(_, t)| t.0 != Dtype::F32)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(raw, want);
    assert_eq!(raw.len(), 15, "the bf16 and f16 tensors");
    // Everything of f32 is in the model, and nothing else.
    let model: Vec<String> = ckpt
        .model()
        .state_dict()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(model.len() + raw.len(), on_disk.len());
    assert!(model.iter().all(|n| on_disk[n].0 == Dtype::F32));
}

#[test]
fn a_failing_call_changes_nothing() {
    let names = targets();
    let mut ckpt = load_fixture();
    ckpt.l1_unstructured("lm_head.weight", Amount::Fraction(0.5))
        .unwrap();
    let before = ckpt.to_bytes().unwrap();
    let unchanged = |c: &MixedCheckpoint| assert!(c.to_bytes().unwrap() == before);

    // A bad name last in the list: nothing pruned, even the ones before.
    let mut bad = names.clone();
    bad.push("model.layers.9.mlp.up_proj.weight".into());
    let err = ckpt
        .global_unstructured(&bad, Amount::Fraction(0.3), TieBreak::Torch)
        .unwrap_err();
    assert_eq!(err.tensor(), Some("model.layers.9.mlp.up_proj.weight"));
    unchanged(&ckpt);

    // A name given twice, across dtypes.
    let twice = [
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.embed_tokens.weight",
    ];
    let err = ckpt
        .global_unstructured(&twice, Amount::Count(3), TieBreak::Torch)
        .unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::DuplicateTarget { .. }),
        "{err}"
    );
    unchanged(&ckpt);

    // More than is left (lm_head.weight has 256 of 512 left), a NaN
    // fraction, a fraction past 1.
    for amount in [
        Amount::Count(5376 - 256 + 1),
        Amount::Fraction(f64::NAN),
        Amount::Fraction(1.5),
    ] {
        let err = ckpt
            .global_unstructured(&names, amount, TieBreak::Torch)
            .unwrap_err();
        if let Amount::Count(_) = amount {
            assert_eq!(
                err.kind(),
                &PruneErrorKind::AmountTooLarge {
                    requested: 5121,
                    available: 5120
                }
            );
            assert_eq!(err.tensor(), None, "{err}");
        }
        unchanged(&ckpt);
    }
    // The count that is exactly what is left works.
    let mut all = ckpt.clone();
    all.global_unstructured(&names, Amount::Count(5376 - 256), TieBreak::Torch)
        .unwrap();

    // By name, in one dtype.
    assert!(ckpt
        .l1_unstructured("model.norm.bias", Amount::Count(1))
        .is_err());
    assert!(ckpt
        .ln_structured(
            "model.embed_tokens.weight",
            Amount::Count(1),
            Norm::L(2.0),
            Dim(2)
        )
        .is_err());
    assert!(ckpt.remove("model.embed_tokens.weight").is_err());
    unchanged(&ckpt);
}

#[test]
fn a_pair_of_two_dtypes_is_refused_naming_the_tensor() {
    let specs = vec![
        TensorSpec::new("fc.weight_orig", Dtype::F32, vec![2]),
        TensorSpec::new("fc.weight_mask", Dtype::BF16, vec![2]),
    ];
    let mut w = SafetensorsWriter::new(Vec::new(), specs, None).unwrap();
    while let Some(name) = w.next_tensor().map(|s| s.name().to_string()) {
        let bytes: Vec<u8> = if name.ends_with("_orig") {
            [1.5f32, -2.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect()
        } else {
            [bf16::ONE, bf16::ZERO]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect()
        };
        w.write_tensor_bytes(&name, &bytes).unwrap();
    }
    let bytes = w.finish().unwrap();
    let err = MixedCheckpoint::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(
            &err,
            CheckpointError::BadPair {
                tensor,
                problem: PairProblem::MixedDtypes { orig: Dtype::F32, mask: Dtype::BF16 },
                ..
            } if tensor == "fc.weight"
        ),
        "{err}"
    );
}

#[test]
fn a_name_in_two_trees_is_an_error_not_a_guess() {
    let mut ckpt = MixedCheckpoint::new();
    let ones = |n| ArrayD::<f32>::ones(vec![n]);
    ckpt.part_mut::<f32>()
        .add_child("fc", Layer::new().with_parameter("w", ones(3)).unwrap())
        .unwrap();
    ckpt.part_mut::<f64>()
        .add_child(
            "fc",
            Layer::new()
                .with_parameter("w", ArrayD::<f64>::ones(vec![3]))
                .unwrap(),
        )
        .unwrap();
    let err = ckpt.dtype_of("fc.w").unwrap_err();
    assert!(matches!(err.kind(), PruneErrorKind::DuplicateTensor { .. }));
    assert!(ckpt.l1_unstructured("fc.w", Amount::Count(1)).is_err());
    assert!(matches!(
        ckpt.to_bytes().unwrap_err(),
        CheckpointError::BadName { .. }
    ));
}

/// Magnitudes from a small set, so that ties are common; all exact in
/// bf16.
fn values(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-12i32..=12).prop_map(|k| k as f32 / 4.0), len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Global pruning across a bf16 and an f32 tensor is global pruning of
    /// the same values all in f32 (PyTorch promotes bf16 to f32 exactly),
    /// whatever the order of the names, the ties and an earlier pruning.
    #[test]
    fn global_across_bf16_and_f32_equals_all_in_f32(
        a in values(1..24),
        b in values(1..24),
        pre in 0usize..6,
        k in 0usize..48,
        reversed in any::<bool>(),
        lowest in any::<bool>(),
    ) {
        let pre = pre.min(b.len());
        let k = k.min(a.len() + b.len() - pre);
        let ties = if lowest { TieBreak::LowestIndex } else { TieBreak::Torch };
        let names = if reversed { ["b.w", "a.w"] } else { ["a.w", "b.w"] };
        let arr = |v: &[f32]| ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).unwrap();

        let mut mixed = MixedCheckpoint::new();
        let a16: ArrayD<bf16> = arr(&a).mapv(bf16::from_f32);
        mixed.part_mut::<bf16>().add_child("a", Layer::new().with_parameter("w", a16).unwrap()).unwrap();
        mixed.part_mut::<f32>().add_child("b", Layer::new().with_parameter("w", arr(&b)).unwrap()).unwrap();
        mixed.l1_unstructured("b.w", Amount::Count(pre)).unwrap();
        mixed.global_unstructured(&names, Amount::Count(k), ties).unwrap();

        let mut all = Sequential::<f32>::new()
            .with_child("a", Layer::new().with_parameter("w", arr(&a)).unwrap()).unwrap()
            .with_child("b", Layer::new().with_parameter("w", arr(&b)).unwrap()).unwrap();
        prune::l1_unstructured(&mut all, "b.w", Amount::Count(pre), None).unwrap();
        let method = L1Unstructured::new(Amount::Count(k)).unwrap().with_tie_break(ties);
        prune::global_unstructured(&mut all, &names, &method, None).unwrap();

        let a_mask = mixed.part::<bf16>().buffer("a.w_mask").unwrap().mapv(f32::from);
        prop_assert_eq!(&a_mask, all.buffer("a.w_mask").unwrap());
        prop_assert_eq!(mixed.part::<f32>().buffer("b.w_mask").unwrap(), all.buffer("b.w_mask").unwrap());
        // The bf16 tensor stays bf16: its original is the values given.
        prop_assert_eq!(
            mixed.part::<bf16>().parameter("a.w_orig").unwrap().mapv(f32::from),
            arr(&a)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// bf16 with f16 ranks in f32 (PyTorch's promotion of the two), and
    /// f64 with f32 in f64: the same masks as the same values all in the
    /// common dtype.
    #[test]
    fn global_across_other_dtype_pairs_equals_all_in_the_common_dtype(
        a in values(1..16),
        b in values(1..16),
        k in 0usize..32,
    ) {
        let k = k.min(a.len() + b.len());
        let names = ["a.w", "b.w"];
        let arr = |v: &[f32]| ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).unwrap();
        let method = L1Unstructured::new(Amount::Count(k)).unwrap();

        let mut halves = MixedCheckpoint::new();
        halves.part_mut::<bf16>().add_child("a", Layer::new().with_parameter("w", arr(&a).mapv(bf16::from_f32)).unwrap()).unwrap();
        halves.part_mut::<f16>().add_child("b", Layer::new().with_parameter("w", arr(&b).mapv(f16::from_f32)).unwrap()).unwrap();
        halves.global_unstructured(&names, Amount::Count(k), TieBreak::Torch).unwrap();
        let mut all = Sequential::<f32>::new()
            .with_child("a", Layer::new().with_parameter("w", arr(&a)).unwrap()).unwrap()
            .with_child("b", Layer::new().with_parameter("w", arr(&b)).unwrap()).unwrap();
        prune::global_unstructured(&mut all, &names, &method, None).unwrap();
        prop_assert_eq!(halves.part::<bf16>().buffer("a.w_mask").unwrap().mapv(f32::from), all.buffer("a.w_mask").unwrap().clone());
        prop_assert_eq!(halves.part::<f16>().buffer("b.w_mask").unwrap().mapv(f32::from), all.buffer("b.w_mask").unwrap().clone());

        let mut wide = MixedCheckpoint::new();
        wide.part_mut::<f64>().add_child("a", Layer::new().with_parameter("w", arr(&a).mapv(f64::from)).unwrap()).unwrap();
        wide.part_mut::<f32>().add_child("b", Layer::new().with_parameter("w", arr(&b)).unwrap()).unwrap();
        wide.global_unstructured(&names, Amount::Count(k), TieBreak::Torch).unwrap();
        let mut all = Sequential::<f64>::new()
            .with_child("a", Layer::new().with_parameter("w", arr(&a).mapv(f64::from)).unwrap()).unwrap()
            .with_child("b", Layer::new().with_parameter("w", arr(&b).mapv(f64::from)).unwrap()).unwrap();
        prune::global_unstructured(&mut all, &names, &method, None).unwrap();
        prop_assert_eq!(wide.part::<f64>().buffer("a.w_mask").unwrap(), all.buffer("a.w_mask").unwrap());
        prop_assert_eq!(wide.part::<f32>().buffer("b.w_mask").unwrap().mapv(f64::from), all.buffer("b.w_mask").unwrap().clone());
    }
}

/// A file whose `fc.weight` is bf16 and which also holds a stray
/// `fc.weight_mask` (or `fc.weight_orig`) of another dtype: f32, so in the
/// f32 tree, or u8, so kept raw. Loading it is fine (a plain tensor of that
/// name); every way of pruning `fc.weight` would make a second tensor of
/// that name, so each is refused naming it, and the checkpoint is byte for
/// byte what it was (and still saves).
#[test]
fn pruning_refuses_names_another_dtype_or_a_raw_tensor_holds() {
    use ndprune::io::RawTensor;
    use rand::SeedableRng;
    let w = ndarray::array![[1.0f32, -2.0], [3.0, 0.5]]
        .into_dyn()
        .mapv(bf16::from_f32);
    for stray in ["fc.weight_mask", "fc.weight_orig"] {
        let strays = [
            RawTensor::new(
                stray,
                Dtype::F32,
                vec![2, 2],
                [1.0f32, 0.0, 1.0, 1.0]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            )
            .unwrap(),
            RawTensor::new(stray, Dtype::U8, vec![2, 2], vec![1, 0, 1, 1]).unwrap(),
        ];
        for raw in strays {
            let mut c = MixedCheckpoint::new();
            c.part_mut::<bf16>()
                .add_child(
                    "fc",
                    Layer::new().with_parameter("weight", w.clone()).unwrap(),
                )
                .unwrap();
            c.push_raw(raw);
            let bytes = c.to_bytes().unwrap();
            let mut c = MixedCheckpoint::from_bytes(&bytes).unwrap();
            type Call = fn(&mut MixedCheckpoint) -> Result<(), PruneError>;
            let calls: [Call; 5] = [
                |c| c.l1_unstructured("fc.weight", Amount::Count(1)),
                |c| c.ln_structured("fc.weight", Amount::Count(1), Norm::L(2.0), Dim(0)),
                |c| {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
                    c.random_unstructured("fc.weight", Amount::Count(1), &mut rng)
                },
                |c| {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
                    c.random_structured("fc.weight", Amount::Count(1), Dim(0), &mut rng)
                },
                |c| c.global_unstructured(&["fc.weight"], Amount::Count(1), TieBreak::Torch),
            ];
            for call in calls {
                let err = call(&mut c).unwrap_err();
                assert!(
                    matches!(err.kind(), PruneErrorKind::DuplicateTensor { name } if name == stray),
                    "{stray}: {err}"
                );
                assert_eq!(err.tensor(), Some("fc.weight"));
                assert_eq!(c.to_bytes().unwrap(), bytes, "{stray}");
            }
        }
    }
}
