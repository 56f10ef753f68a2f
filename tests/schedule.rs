//! Schedules against torch.ao's CubicSL (values PyTorch computed) and a
//! transcription of TF-MOT's PolynomialDecay, and the gradual pruner's
//! properties: the count reached at every step, masks that only gain
//! zeros, per tensor and global.

use std::collections::HashMap;

use ndarray::ArrayD;
use ndprune::io::Checkpoint;
use ndprune::prelude::*;
use ndprune::schedule::{
    ConstantSparsity, CubicSL, GradualPruner, PolynomialDecay, Schedule, Scope,
};
use ndprune::Rounding;
use proptest::prelude::*;
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/schedule_cases.json")).expect("valid JSON")
}

fn f64_of(v: &Value) -> f64 {
    f64::from_bits(v.as_u64().expect("u64 bits"))
}

#[test]
fn cubic_sl_equals_torch_ao_bit_for_bit() {
    let doc = fixtures();
    let cases = doc["cubic"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    let mut checked = 0;
    for case in cases {
        let s = CubicSL::new(f64_of(&case["final_sl"]))
            .and_then(|s| s.with_init_sl(f64_of(&case["init_sl"])))
            .and_then(|s| {
                s.with_steps(
                    case["init_t"].as_i64().unwrap(),
                    case["delta_t"].as_i64().unwrap(),
                    case["total_t"].as_i64().unwrap(),
                )
            })
            .unwrap()
            .with_initially_zero(case["initially_zero"].as_bool().unwrap());
        for key in ["driven", "direct"] {
            for pair in case[key].as_array().unwrap() {
                let t = pair[0].as_i64().unwrap();
                let expected = f64_of(&pair[1]);
                assert_eq!(
                    s.sparsity(t).to_bits(),
                    expected.to_bits(),
                    "{key} t={t} {s:?}: {} vs torch.ao {expected}",
                    s.sparsity(t)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked} values");
}

#[test]
fn polynomial_decay_equals_tf_mot_transcription() {
    let doc = fixtures();
    let cases = doc["polynomial"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let power = f32::from_bits(case["power"].as_u64().unwrap() as u32);
        let s = PolynomialDecay::new(
            f64_of(&case["initial_sparsity"]),
            f64_of(&case["final_sparsity"]),
            case["begin_step"].as_i64().unwrap(),
            case["end_step"].as_i64().unwrap(),
        )
        .and_then(|s| s.with_power(power))
        .and_then(|s| s.with_frequency(case["frequency"].as_i64().unwrap()))
        .unwrap();
        for v in case["values"].as_array().unwrap() {
            let step = v[0].as_i64().unwrap();
            let bits = v[1].as_u64().unwrap() as u32;
            assert_eq!(s.sparsity_f32(step).to_bits(), bits, "step {step} {s:?}");
            assert_eq!(s.sparsity(step), f64::from(f32::from_bits(bits)));
            assert_eq!(s.prunes_at(step), v[2].as_bool().unwrap(), "step {step}");
        }
    }
}

fn schedule_error(r: Result<impl std::fmt::Debug, PruneError>) -> &'static str {
    match r.unwrap_err().kind() {
        PruneErrorKind::InvalidSchedule { parameter, .. } => parameter,
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_parameters_are_typed_errors_naming_the_parameter() {
    assert_eq!(schedule_error(ConstantSparsity::new(-0.1)), "sparsity");
    assert_eq!(schedule_error(CubicSL::new(f64::NAN)), "final_sl");
    assert_eq!(
        schedule_error(CubicSL::new(0.5).unwrap().with_init_sl(0.7)),
        "init_sl"
    );
    assert_eq!(
        schedule_error(CubicSL::new(0.5).unwrap().with_steps(0, 0, 3)),
        "delta_t"
    );
    assert_eq!(
        schedule_error(CubicSL::new(0.5).unwrap().with_steps(0, 3, 0)),
        "total_t"
    );
    assert_eq!(
        schedule_error(CubicSL::new(0.5).unwrap().with_steps(0, i64::MAX, 2)),
        "total_t"
    );
    assert_eq!(
        schedule_error(PolynomialDecay::new(0.0, 0.5, -1, 3)),
        "begin_step"
    );
    assert_eq!(
        schedule_error(PolynomialDecay::new(0.0, 0.5, 3, 3)),
        "end_step"
    );
    assert_eq!(
        schedule_error(PolynomialDecay::new(0.0, 1.0, 0, 3)),
        "final_sparsity"
    );
    assert_eq!(
        schedule_error(PolynomialDecay::new(0.6, 0.5, 0, 3)),
        "initial_sparsity"
    );
    let p = PolynomialDecay::new(0.0, 0.5, 0, 3).unwrap();
    assert_eq!(schedule_error(p.with_power(f32::INFINITY)), "power");
    assert_eq!(schedule_error(p.with_power(-1.0)), "power");
    assert_eq!(schedule_error(p.with_frequency(0)), "frequency");
}

/// A model of Linear-shaped weights `[out, in]` with values from `values`
/// (cycled), so equal magnitudes occur.
fn model_of(shapes: &[(usize, usize)], values: &[f32]) -> Sequential<f32> {
    let mut it = values.iter().cycle();
    shapes
        .iter()
        .enumerate()
        .fold(Sequential::new(), |m, (i, &(o, n))| {
            let w: Vec<f32> = (0..o * n).map(|_| *it.next().unwrap()).collect();
            let layer = Layer::new()
                .with_parameter("weight", ArrayD::from_shape_vec(vec![o, n], w).unwrap())
                .unwrap()
                .with_parameter("bias", ArrayD::zeros(vec![o]))
                .unwrap();
            m.with_child(&format!("l{i}"), layer).unwrap()
        })
}

fn paths(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("l{i}.weight")).collect()
}

fn pruned(model: &Sequential<f32>, path: &str) -> usize {
    model
        .buffer(&format!("{path}_mask"))
        .map_or(0, |m| m.iter().filter(|&&v| v == 0.0).count())
}

fn mask_or_ones(model: &Sequential<f32>, path: &str) -> ArrayD<f32> {
    model
        .buffer(&format!("{path}_mask"))
        .cloned()
        .unwrap_or_else(|| ArrayD::ones(model.tensor(path).unwrap().raw_dim()))
}

fn check_run<S: Schedule>(
    model: &mut Sequential<f32>,
    pruner: &GradualPruner<S>,
    steps: std::ops::RangeInclusive<i64>,
    rounding: Rounding,
    scope: Scope,
) -> Result<(), TestCaseError> {
    let targets = pruner.targets().to_vec();
    for step in steps {
        let before: Vec<ArrayD<f32>> = targets.iter().map(|p| mask_or_ones(model, p)).collect();
        let done = pruner.step(model, step).unwrap();
        let s = pruner.schedule().sparsity(step);
        let sizes: Vec<usize> = targets
            .iter()
            .map(|p| model.tensor(p).unwrap().len())
            .collect();
        let expected = match scope {
            Scope::Global => rounding.count(s, sizes.iter().sum()).unwrap(),
            Scope::PerTensor => sizes.iter().map(|&n| rounding.count(s, n).unwrap()).sum(),
        };
        let counted: usize = targets.iter().map(|p| pruned(model, p)).sum();
        prop_assert_eq!(done.target, expected);
        if pruner.schedule().prunes_at(step) {
            prop_assert_eq!(counted, expected, "step {}", step);
            prop_assert_eq!(done.after, expected);
        } else {
            prop_assert_eq!(done.after, done.before);
        }
        if scope == Scope::PerTensor && pruner.schedule().prunes_at(step) {
            for (p, &n) in targets.iter().zip(&sizes) {
                prop_assert_eq!(pruned(model, p), rounding.count(s, n).unwrap());
            }
        }
        for (p, old) in targets.iter().zip(&before) {
            let new = mask_or_ones(model, p);
            // Masks only gain zeros.
            prop_assert!(old.iter().zip(new.iter()).all(|(&a, &b)| b <= a));
            if let Some(orig) = model.parameter(&format!("{p}_orig")) {
                prop_assert_eq!(model.tensor(p).unwrap(), &(orig * &new));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cubic_gradual_pruning_hits_the_count_at_every_step(
        shapes in prop::collection::vec((1usize..7, 1usize..9), 1..4),
        values in prop::collection::vec(prop_oneof![Just(0.5f32), Just(-0.5), -2.0f32..2.0], 1..40),
        init in 0.0f64..0.5,
        extra in 0.0f64..0.5,
        t0 in -3i64..3,
        dt in 1i64..3,
        n in 1i64..6,
        global in any::<bool>(),
        down in any::<bool>(),
    ) {
        let scope = if global { Scope::Global } else { Scope::PerTensor };
        let rounding = if down { Rounding::Down } else { Rounding::HalfEven };
        let schedule = CubicSL::new(init + extra).unwrap().with_init_sl(init).unwrap()
            .with_steps(t0, dt, n).unwrap();
        let mut model = model_of(&shapes, &values);
        let pruner = GradualPruner::new(schedule, paths(shapes.len()), scope).unwrap()
            .with_rounding(rounding);
        let end = schedule.end_step();
        check_run(&mut model, &pruner, t0 - 2..=end + 2, rounding, scope)?;
    }

    #[test]
    fn polynomial_gradual_pruning_prunes_only_on_its_steps(
        shapes in prop::collection::vec((1usize..7, 1usize..9), 1..4),
        values in prop::collection::vec(-2.0f32..2.0, 1..40),
        fin in 0.0f64..0.99,
        end in 1i64..12,
        freq in 1i64..4,
        global in any::<bool>(),
    ) {
        let scope = if global { Scope::Global } else { Scope::PerTensor };
        let schedule = PolynomialDecay::new(0.0, fin, 0, end).unwrap()
            .with_frequency(freq).unwrap();
        let mut model = model_of(&shapes, &values);
        let pruner = GradualPruner::new(schedule, paths(shapes.len()), scope).unwrap();
        check_run(&mut model, &pruner, -1..=end + 3, Rounding::HalfEven, scope)?;
    }
}

#[test]
fn a_model_pruned_beyond_the_schedule_is_left_until_the_schedule_passes_it() {
    let mut model = model_of(&[(4, 5), (3, 4)], &[0.3, -1.0, 2.0, 0.7, -0.1]);
    prune::l1_unstructured(&mut model, "l0.weight", Amount::Count(12), None).unwrap();
    let schedule = CubicSL::new(0.9).unwrap().with_steps(0, 1, 4).unwrap();
    let pruner = GradualPruner::new(schedule, paths(2), Scope::Global).unwrap();
    // 32 entries: targets 0, 17 (0.9 × (1 − 0.75³) × 32 = 16.65), …, 29.
    let first = pruner.step(&mut model, 0).unwrap();
    assert_eq!((first.target, first.before, first.after), (0, 12, 12));
    let second = pruner.step(&mut model, 1).unwrap();
    assert_eq!((second.target, second.before, second.after), (17, 12, 17));
    let last = pruner.step(&mut model, 4).unwrap();
    assert_eq!((last.target, last.after), (29, 29));
}

#[test]
fn a_failing_step_changes_nothing() {
    let mut model = model_of(&[(4, 5), (3, 4)], &[0.3, -1.0, 2.0, 0.7, -0.1]);
    let before = model.clone();
    let schedule = ConstantSparsity::new(0.5).unwrap();
    let targets = ["l0.weight", "l1.nope"];
    for scope in [Scope::PerTensor, Scope::Global] {
        let pruner = GradualPruner::new(schedule, targets, scope).unwrap();
        assert!(pruner.step(&mut model, 0).is_err());
        assert_eq!(model.state_dict(), before.state_dict());
    }
    // Scores of the wrong shape, for the second target.
    let pruner = GradualPruner::new(schedule, paths(2), Scope::PerTensor).unwrap();
    let scores = HashMap::from([("l1.weight".to_string(), ArrayD::<f32>::ones(vec![4, 3]))]);
    let err = pruner.step_with_scores(&mut model, 0, &scores).unwrap_err();
    assert_eq!(err.tensor(), Some("l1.weight"));
    assert_eq!(model.state_dict(), before.state_dict());
}

#[derive(Debug)]
struct Wild;

impl Schedule for Wild {
    fn sparsity(&self, step: i64) -> f64 {
        if step < 2 {
            0.5
        } else {
            1.5
        }
    }
}

#[test]
fn user_schedules_out_of_range_and_falling() {
    let mut model = model_of(&[(4, 5)], &[0.3, -1.0, 2.0, 0.7, -0.1]);
    let pruner = GradualPruner::new(Wild, paths(1), Scope::Global).unwrap();
    assert_eq!(pruner.step(&mut model, 0).unwrap().after, 10);
    let err = pruner.step(&mut model, 2).unwrap_err();
    assert!(
        matches!(err.kind(), PruneErrorKind::ScheduledSparsity { step: 2, value } if *value == 1.5)
    );
    // Falling: a constant below what is pruned prunes nothing.
    let lower =
        GradualPruner::new(ConstantSparsity::new(0.2).unwrap(), paths(1), Scope::Global).unwrap();
    let done = lower.step(&mut model, 3).unwrap();
    assert_eq!((done.target, done.after), (4, 10));
}

#[test]
fn gradual_pruning_survives_a_checkpoint_and_ends_in_remove() {
    let values = [0.3, -1.0, 2.0, 0.7, -0.1, 0.25, -0.25, 1.5];
    let schedule = CubicSL::new(0.8).unwrap().with_steps(0, 1, 6).unwrap();
    let pruner = GradualPruner::new(schedule, paths(2), Scope::Global).unwrap();
    let mut straight = model_of(&[(6, 5), (4, 6)], &values);
    for step in 0..=6 {
        pruner.step(&mut straight, step).unwrap();
    }
    let mut resumed = model_of(&[(6, 5), (4, 6)], &values);
    for step in 0..=3 {
        pruner.step(&mut resumed, step).unwrap();
    }
    let bytes = Checkpoint::from_module(&resumed).to_bytes().unwrap();
    let mut loaded = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    for step in 4..=6 {
        pruner.step(loaded.model_mut(), step).unwrap();
    }
    assert_eq!(loaded.model().state_dict(), straight.state_dict());
    for p in paths(2) {
        prune::remove(&mut straight, &p).unwrap();
    }
    let zeros: usize = paths(2)
        .iter()
        .map(|p| {
            straight
                .tensor(p)
                .unwrap()
                .iter()
                .filter(|&&v| v == 0.0)
                .count()
        })
        .sum();
    assert_eq!(zeros, 43); // round(0.8 × 54)
}
