//! Streamed global pruning against a plain reference: over any mix of bf16
//! and f32 tensors, plain or pruned before, with many equal magnitudes,
//! `FilePruner` with `StreamTies::WriteOrder` prunes the `k` unpruned
//! entries of smallest magnitude (NaN largest), equal magnitudes in the
//! order the tensors are written, earlier entries first; with `remove`,
//! each tensor becomes `orig * mask` in its dtype. The reference here is a
//! stable sort of all the unpruned entries, independent of the library's
//! radix selection, its passes and its per-tensor shares of the ties.
#![cfg(feature = "half")]

use std::path::{Path, PathBuf};

use half::bf16;
use ndprune::io::{
    CheckpointFiles, Dtype, FilePruner, MappedFile, Output, SafetensorsWriter, StreamMethod,
    StreamTies, TensorSpec,
};
use ndprune::Amount;
use proptest::prelude::*;

/// One tensor of the input: dtype, values (exact in the dtype), and the
/// mask it was pruned with before (`None`: plain).
#[derive(Debug, Clone)]
struct Input {
    bf16: bool,
    values: Vec<f32>,
    prior: Option<Vec<bool>>,
}

fn scratch(name: &str, case: u64) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ndprune-stream-global-{name}-{}-{case}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn encode(bf16_: bool, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        if bf16_ {
            out.extend_from_slice(&bf16::from_f32(v).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        other => panic!("no such dtype in these tests: {other:?}"),
    }
}

/// Writes the inputs as `t{i}.weight`, or `t{i}.weight_orig` and
/// `t{i}.weight_mask` (the mask in the tensor's dtype).
fn write(path: &Path, inputs: &[Input]) {
    let mut specs = Vec::new();
    let mut data = Vec::new();
    for (i, t) in inputs.iter().enumerate() {
        let dtype = if t.bf16 { Dtype::BF16 } else { Dtype::F32 };
        // Two dims: what a run with no selection prunes.
        let shape = vec![1, t.values.len()];
        match &t.prior {
            None => {
                specs.push(TensorSpec::new(format!("t{i}.weight"), dtype, shape));
                data.push(encode(t.bf16, &t.values));
            }
            Some(p) => {
                specs.push(TensorSpec::new(
                    format!("t{i}.weight_orig"),
                    dtype,
                    shape.clone(),
                ));
                data.push(encode(t.bf16, &t.values));
                specs.push(TensorSpec::new(format!("t{i}.weight_mask"), dtype, shape));
                let m: Vec<f32> = p.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
                data.push(encode(t.bf16, &m));
            }
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name().to_string()).collect();
    let mut w = SafetensorsWriter::create(path, specs, None).unwrap();
    // The writer asks for the tensors in its own (alignment) order.
    while let Some(next) = w.next_tensor().map(|s| s.name().to_string()) {
        let at = names.iter().position(|n| *n == next).unwrap();
        w.write_tensor_bytes(&next, &data[at]).unwrap();
    }
    w.commit().unwrap();
}

/// The reference masks: the `k` unpruned entries of smallest magnitude
/// over all tensors concatenated in `order`, ties to the earlier.
fn reference(inputs: &[Input], order: &[usize], k: usize) -> Vec<Vec<bool>> {
    let mut open = Vec::new();
    for &t in order {
        for (i, &v) in inputs[t].values.iter().enumerate() {
            if inputs[t].prior.as_ref().is_none_or(|p| p[i]) {
                open.push((t, i, v));
            }
        }
    }
    // NaN ranks above every number; a stable sort keeps the order of ties.
    let key = |v: f32| (v.is_nan(), if v.is_nan() { 0.0 } else { v.abs() });
    open.sort_by(|a, b| key(a.2).partial_cmp(&key(b.2)).unwrap());
    let mut masks: Vec<Vec<bool>> = inputs
        .iter()
        .map(|t| {
            t.prior
                .clone()
                .unwrap_or_else(|| vec![true; t.values.len()])
        })
        .collect();
    for &(t, i, _) in &open[..k] {
        masks[t][i] = false;
    }
    masks
}

fn value() -> impl Strategy<Value = f32> {
    // Few distinct magnitudes, both signs, zeros, infinities and NaN: many
    // ties at the cut; and some f32 values that bf16 cannot hold (their
    // keys differ from a bf16 neighbour's only in the low 16 bits).
    prop_oneof![
        6 => prop::sample::select(vec![0.0f32, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, 2.0, -2.0]),
        2 => -4.0f32..4.0,
        1 => prop::sample::select(vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0 + f32::EPSILON]),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<bool>(),
        prop::collection::vec(value(), 1..200),
        any::<bool>(),
    )
        .prop_flat_map(|(bf16_, values, pruned)| {
            let n = values.len();
            let values: Vec<f32> = if bf16_ {
                values.iter().map(|&v| bf16::from_f32(v).to_f32()).collect()
            } else {
                values
            };
            let prior = if pruned {
                prop::collection::vec(prop::bool::weighted(0.7), n)
                    .prop_map(Some)
                    .boxed()
            } else {
                Just(None).boxed()
            };
            (Just(bf16_), Just(values), prior)
        })
        .prop_map(|(bf16_, values, prior)| Input {
            bf16: bf16_,
            values,
            prior,
        })
}

fn case() -> impl Strategy<Value = (Vec<Input>, f64)> {
    (prop::collection::vec(input(), 1..6), 0.0f64..=1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn streamed_global_with_written_ties_equals_a_stable_sort(
        (inputs, share) in case(),
        id in any::<u64>(),
    ) {
        let d = scratch("masks", id);
        let input = d.join("in.safetensors");
        write(&input, &inputs);
        let open: usize = inputs
            .iter()
            .map(|t| t.prior.as_ref().map_or(t.values.len(), |p| p.iter().filter(|k| **k).count()))
            .sum();
        let k = (share * open as f64).floor() as usize;
        let files = CheckpointFiles::open(&input).unwrap();

        let out = d.join("masks.safetensors");
        let report = FilePruner::new(StreamMethod::Global, Amount::Count(k))
            .ties(StreamTies::WriteOrder)
            .run(&files, &Output::File(out.clone()), &mut ())
            .unwrap();
        prop_assert_eq!(report.tensors.iter().map(|t| t.after - t.before).sum::<usize>(), k);

        let file = MappedFile::open(&out).unwrap();
        let view = file.view().unwrap();
        let base = file.bytes().as_ptr() as usize;
        // The order the masks were written in: their places in the file.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        let place = |t: usize| {
            view.get(&format!("t{t}.weight_mask")).unwrap().data().as_ptr() as usize - base
        };
        order.sort_by_key(|&t| place(t));
        let expected = reference(&inputs, &order, k);
        for (t, want) in expected.iter().enumerate() {
            let mask = view.get(&format!("t{t}.weight_mask")).unwrap();
            prop_assert_eq!(mask.dtype(), if inputs[t].bf16 { Dtype::BF16 } else { Dtype::F32 });
            let got: Vec<bool> = decode(mask.dtype(), mask.data()).iter().map(|&m| m == 1.0).collect();
            prop_assert_eq!(&got, want, "tensor t{}", t);
            // The original is kept byte for byte.
            let orig = view.get(&format!("t{t}.weight_orig")).unwrap();
            prop_assert_eq!(orig.data(), &encode(inputs[t].bf16, &inputs[t].values)[..]);
        }

        // With `remove`: each tensor is `orig * mask`, multiplied in its
        // dtype (a pruned NaN or infinity gives NaN, a pruned -x gives -0).
        let removed = d.join("removed.safetensors");
        FilePruner::new(StreamMethod::Global, Amount::Count(k))
            .ties(StreamTies::WriteOrder)
            .remove(true)
            .run(&files, &Output::File(removed.clone()), &mut ())
            .unwrap();
        let file = MappedFile::open(&removed).unwrap();
        let view = file.view().unwrap();
        for (t, want) in expected.iter().enumerate() {
            let w = view.get(&format!("t{t}.weight")).unwrap();
            let product: Vec<f32> = inputs[t]
                .values
                .iter()
                .zip(want)
                .map(|(&v, &k)| v * if k { 1.0 } else { 0.0 })
                .collect();
            prop_assert_eq!(w.data(), &encode(inputs[t].bf16, &product)[..], "tensor t{}", t);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A recipe of two global steps (counted eagerly, read in other
    /// orders by the second step) equals two runs of one step each.
    #[test]
    fn two_global_steps_in_one_run_equal_two_runs(
        (inputs, share) in case(),
        id in any::<u64>(),
    ) {
        let d = scratch("steps", id);
        let input = d.join("in.safetensors");
        write(&input, &inputs);
        let amount = Amount::Fraction(share / 2.0);
        let recipe = format!(
            r#"{{"steps": [{{"method": "global", "amount": {a}}}, {{"method": "global", "amount": {a}}}]}}"#,
            a = share / 2.0
        );
        let files = CheckpointFiles::open(&input).unwrap();
        let recipe = ndprune::io::Recipe::from_json(&recipe).unwrap();
        let both = d.join("both.safetensors");
        recipe
            .pruner(&files)
            .unwrap()
            .ties(StreamTies::WriteOrder)
            .run(&files, &Output::File(both.clone()), &mut ())
            .unwrap();
        let once = d.join("once.safetensors");
        FilePruner::new(StreamMethod::Global, amount)
            .ties(StreamTies::WriteOrder)
            .run(&files, &Output::File(once.clone()), &mut ())
            .unwrap();
        let once_files = CheckpointFiles::open(&once).unwrap();
        let twice = d.join("twice.safetensors");
        FilePruner::new(StreamMethod::Global, amount)
            .ties(StreamTies::WriteOrder)
            .run(&once_files, &Output::File(twice.clone()), &mut ())
            .unwrap();
        let read = |p: &Path| {
            let f = MappedFile::open(p).unwrap();
            let v = f.view().unwrap();
            let mut all: Vec<(String, Vec<u8>)> = v
                .entries()
                .iter()
                .map(|e| (e.name().to_string(), e.data().to_vec()))
                .collect();
            all.sort();
            all
        };
        prop_assert_eq!(read(&both), read(&twice));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Tensors large enough to be masked in blocks on several threads (each
/// block's share of the ties counted first), with the cut among many
/// equal magnitudes that straddle blocks: the same masks as the stable
/// sort, and `orig * mask` with `remove`.
#[test]
fn large_tensors_masked_in_blocks_equal_a_stable_sort() {
    // A fixed xorshift stream: few distinct magnitudes, both signs.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let levels = [0.0f32, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0];
    let mut inputs = Vec::new();
    for (n, bf16_, pruned) in [
        (700_001, true, false),
        (300_000, false, true),
        (5, true, false),
        // Written in several pieces of the writing thread's buffers.
        (9_000_001, true, false),
    ] {
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let r = next();
                let v = levels[(r % 8) as usize] * if r & 8 == 0 { 1.0 } else { -1.0 };
                if bf16_ || r & 16 == 0 {
                    v
                } else {
                    // Not a bf16 value: differs from v in its low 16 bits.
                    v * (1.0 + f32::EPSILON)
                }
            })
            .collect();
        let prior = pruned.then(|| (0..n).map(|_| next() % 5 != 0).collect());
        inputs.push(Input {
            bf16: bf16_,
            values,
            prior,
        });
    }
    let d = scratch("large", 0);
    let input = d.join("in.safetensors");
    write(&input, &inputs);
    let files = CheckpointFiles::open(&input).unwrap();
    let open: usize = inputs
        .iter()
        .map(|t| {
            t.prior
                .as_ref()
                .map_or(t.values.len(), |p| p.iter().filter(|k| **k).count())
        })
        .sum();
    for share in [0.3, 0.5, 0.77] {
        let k = (share * open as f64) as usize;
        let out = d.join("masks.safetensors");
        let _ = std::fs::remove_file(&out);
        FilePruner::new(StreamMethod::Global, Amount::Count(k))
            .ties(StreamTies::WriteOrder)
            .run(&files, &Output::File(out.clone()), &mut ())
            .unwrap();
        let file = MappedFile::open(&out).unwrap();
        let view = file.view().unwrap();
        let base = file.bytes().as_ptr() as usize;
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&t| {
            view.get(&format!("t{t}.weight_mask"))
                .unwrap()
                .data()
                .as_ptr() as usize
                - base
        });
        let expected = reference(&inputs, &order, k);
        for (t, want) in expected.iter().enumerate() {
            let mask = view.get(&format!("t{t}.weight_mask")).unwrap();
            let got: Vec<bool> = decode(mask.dtype(), mask.data())
                .iter()
                .map(|&m| m == 1.0)
                .collect();
            assert!(got == *want, "share {share}, tensor t{t}");
        }
        let removed = d.join("removed.safetensors");
        let _ = std::fs::remove_file(&removed);
        FilePruner::new(StreamMethod::Global, Amount::Count(k))
            .ties(StreamTies::WriteOrder)
            .remove(true)
            .run(&files, &Output::File(removed.clone()), &mut ())
            .unwrap();
        let file = MappedFile::open(&removed).unwrap();
        let view = file.view().unwrap();
        for (t, want) in expected.iter().enumerate() {
            let product: Vec<f32> = inputs[t]
                .values
                .iter()
                .zip(want)
                .map(|(&v, &k)| v * if k { 1.0 } else { 0.0 })
                .collect();
            let w = view.get(&format!("t{t}.weight")).unwrap();
            assert!(
                w.data() == &encode(inputs[t].bf16, &product)[..],
                "share {share}, tensor t{t}"
            );
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}
