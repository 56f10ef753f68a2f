//! Safetensors checkpoints: round trips, PyTorch's naming, mixed dtypes,
//! a PyTorch-written fixture, and malformed files (errors, never panics).
#![cfg(feature = "safetensors")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::ArrayD;
use ndprune::io::{
    Checkpoint, CheckpointError, Dtype, LoadOptions, PairProblem, RawTensor, SafetensorsView,
    SafetensorsWriter, TargetProblem, TensorSpec,
};
use ndprune::prelude::*;
use proptest::prelude::*;
use rand::SeedableRng;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ndprune-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect()
}

/// A small model (conv, batch norm, linear inside a named child) with an
/// int64 counter, a uint8 table, a bool flag, bf16 and f64 tensors, and
/// metadata.
fn mixed_checkpoint() -> Checkpoint<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let bn = Layer::new()
        .with_parameter("weight", ArrayD::from_elem(vec![4], 1.5f32))
        .unwrap()
        .with_parameter("bias", ArrayD::from_elem(vec![4], -0.5f32))
        .unwrap()
        .with_buffer(
            "running_mean",
            ArrayD::from_shape_vec(vec![4], vec![0.1f32, 0.2, 0.3, 0.4]).unwrap(),
        )
        .unwrap()
        .with_buffer("running_var", ArrayD::from_elem(vec![4], 0.9f32))
        .unwrap();
    let encoder = Sequential::new()
        .push(Layer::conv2d(2, 4, 3, &mut rng))
        .push(bn)
        .push(Layer::linear(12, 10, &mut rng));
    let model = Sequential::new()
        .with_child("encoder", encoder)
        .unwrap()
        .with_child("head", Layer::linear(10, 3, &mut rng))
        .unwrap();
    let mut ckpt = Checkpoint::new(model);
    ckpt.push_raw(
        RawTensor::new(
            "encoder.1.num_batches_tracked",
            Dtype::I64,
            vec![],
            12345i64.to_le_bytes().to_vec(),
        )
        .unwrap(),
    );
    ckpt.push_raw(
        RawTensor::new("vocab.ids", Dtype::U8, vec![2, 3], vec![1, 2, 3, 250, 0, 9]).unwrap(),
    );
    ckpt.push_raw(RawTensor::new("flags", Dtype::BOOL, vec![3], vec![1, 0, 1]).unwrap());
    ckpt.push_raw(
        RawTensor::new(
            "adapter.weight",
            Dtype::BF16,
            vec![2, 2],
            bf16_bytes(&[1.0, -2.5, 0.0, 3.0]),
        )
        .unwrap(),
    );
    ckpt.push_raw(
        RawTensor::new(
            "stats.scale",
            Dtype::F64,
            vec![2],
            [0.25f64.to_le_bytes(), (-8.0f64).to_le_bytes()].concat(),
        )
        .unwrap(),
    );
    let meta = ckpt.metadata_mut().get_or_insert_with(BTreeMap::new);
    meta.insert("format".into(), "pt".into());
    meta.insert("note".into(), "mixed \"dtypes\" ✓".into());
    ckpt
}

/// Every store of the tree, by module path: equal snapshots mean identical
/// stores (parameters, buffers, pruned tensors, order and history).
fn snapshot<T: PruneFloat, M: Module<T>>(m: &M) -> Vec<(String, TensorStore<T>)> {
    let mut out = Vec::new();
    m.visit_stores("", &mut |path, store| {
        out.push((path.to_string(), store.clone()))
    });
    out
}

/// state_dict and pruned tensors as maps (order-free).
type Tensors<T> = BTreeMap<String, ArrayD<T>>;
fn contents<T: PruneFloat, M: Module<T>>(m: &M) -> (Tensors<T>, Tensors<T>) {
    let sd = m
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.clone()))
        .collect();
    let pruned = m
        .named_pruned()
        .into_iter()
        .map(|(n, t)| (n, t.clone()))
        .collect();
    (sd, pruned)
}

/// Equal contents, NaN equal to NaN.
fn same_contents<T: PruneFloat>(
    a: &(Tensors<T>, Tensors<T>),
    b: &(Tensors<T>, Tensors<T>),
) -> bool {
    let same = |x: &Tensors<T>, y: &Tensors<T>| {
        x.len() == y.len()
            && x.iter().zip(y).all(|((n, s), (m, t))| {
                n == m
                    && s.shape() == t.shape()
                    && s.iter()
                        .zip(t)
                        .all(|(&u, &v)| u == v || (u.is_nan() && v.is_nan()))
            })
    };
    same(&a.0, &b.0) && same(&a.1, &b.1)
}

/// What the `safetensors` crate itself reads from `bytes`: name -> (dtype, shape, bytes).
fn read_with_crate(bytes: &[u8]) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).expect("the safetensors crate reads it");
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

#[test]
fn round_trip_load_prune_save_load() {
    let dir = temp_dir("roundtrip");
    let first = dir.join("first.safetensors");
    mixed_checkpoint().save(&first).unwrap();

    let mut ckpt = Checkpoint::<f32>::load(&first).unwrap();
    assert!(ckpt.buffer("encoder.1.running_mean").is_some());
    assert!(ckpt.parameter("encoder.1.weight").is_some());
    prune::ln_structured(
        &mut ckpt,
        "encoder.0.weight",
        Amount::Fraction(0.5),
        Norm::L(2.0),
        Dim(0),
        None,
    )
    .unwrap();
    prune::l1_unstructured(&mut ckpt, "encoder.0.weight", Amount::Fraction(0.3), None).unwrap();
    let l1 = L1Unstructured::new(Amount::Fraction(0.4)).unwrap();
    prune::global_unstructured(&mut ckpt, &["encoder.2.weight", "head.weight"], &l1, None).unwrap();
    let second = dir.join("second.safetensors");
    ckpt.save(&second).unwrap();

    let loaded = Checkpoint::<f32>::load(&second).unwrap();
    assert_eq!(contents(&loaded), contents(&ckpt));
    assert_eq!(loaded.raw_tensors(), ckpt.raw_tensors());
    assert_eq!(loaded.metadata(), ckpt.metadata());
    for name in ["encoder.0.weight", "encoder.2.weight", "head.weight"] {
        let (module, tensor) = name.rsplit_once('.').unwrap();
        assert!(loaded.store_at(module).unwrap().is_pruned(tensor), "{name}");
    }
    // Pruning goes on from the restored masks, as on the original.
    let mut a = loaded;
    let mut b = ckpt;
    for m in [&mut a, &mut b] {
        prune::l1_unstructured(m, "head.weight", Amount::Fraction(0.5), None).unwrap();
    }
    assert_eq!(contents(&a), contents(&b));

    // load -> save -> load is the identity on stores, to the history.
    let third = dir.join("third.safetensors");
    a.save(&third).unwrap();
    let x = Checkpoint::<f32>::load(&third).unwrap();
    x.save(&first).unwrap();
    let y = Checkpoint::<f32>::load(&first).unwrap();
    assert_eq!(snapshot(&x), snapshot(&y));
    assert_eq!(x.raw_tensors(), y.raw_tensors());
    assert_eq!(
        std::fs::read(&third).unwrap(),
        std::fs::read(&first).unwrap()
    );

    // No temporary files are left beside the outputs.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "first.safetensors",
            "second.safetensors",
            "third.safetensors"
        ]
    );
}

#[test]
fn written_files_are_valid_for_the_safetensors_crate() {
    let mut ckpt = mixed_checkpoint();
    prune::l1_unstructured(&mut ckpt, "head.weight", Amount::Count(7), None).unwrap();
    let bytes = ckpt.to_bytes().unwrap();
    let read = read_with_crate(&bytes);
    let names: Vec<&String> = read.keys().collect();
    assert_eq!(names, ckpt.tensor_names().iter().collect::<Vec<_>>());
    for (name, t) in ckpt.state_dict() {
        let (dtype, shape, data) = &read[&name];
        assert_eq!(
            (*dtype, shape.as_slice()),
            (Dtype::F32, t.shape()),
            "{name}"
        );
        let expected: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(data, &expected, "{name}");
    }
    for raw in ckpt.raw_tensors() {
        assert_eq!(
            read[raw.name()],
            (raw.dtype(), raw.shape().to_vec(), raw.data().to_vec())
        );
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: BTreeMap<String, String> = meta.metadata().clone().unwrap().into_iter().collect();
    assert_eq!(Some(&meta), ckpt.metadata());
    // Tensors are laid out aligned to their element size.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(header_len % 8, 0);
    let view = SafetensorsView::parse(&bytes).unwrap();
    for e in view.entries() {
        let offset = e.data().as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % (e.dtype().bitsize() / 8), 0, "{}", e.name());
    }
    // The file on disk is the same bytes.
    let path = temp_dir("valid").join("m.safetensors");
    ckpt.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn keys_follow_pytorch_state_dict_naming() {
    let mut ckpt = mixed_checkpoint();
    let before = ckpt.tensor_names();
    assert!(before.contains(&"head.weight".to_string()));
    prune::l1_unstructured(&mut ckpt, "head.weight", Amount::Count(3), None).unwrap();
    prune::ln_structured(
        &mut ckpt,
        "encoder.0.weight",
        Amount::Count(1),
        Norm::L(1.0),
        Dim(0),
        None,
    )
    .unwrap();
    let pruned = Checkpoint::<f32>::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    let names = pruned.tensor_names();
    for n in [
        "head.weight_orig",
        "head.weight_mask",
        "encoder.0.weight_orig",
        "encoder.0.weight_mask",
    ] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(!names.contains(&"head.weight".to_string()));
    assert_eq!(names.len(), before.len() + 2);
    // state_dict order within the file's model: parameters, then buffers.
    let head: Vec<String> = pruned
        .state_dict()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("head."))
        .collect();
    assert_eq!(head, ["head.bias", "head.weight_orig", "head.weight_mask"]);

    let mut removed = pruned;
    prune::remove(&mut removed, "head.weight").unwrap();
    prune::remove(&mut removed, "encoder.0.weight").unwrap();
    let names = Checkpoint::<f32>::from_bytes(&removed.to_bytes().unwrap())
        .unwrap()
        .tensor_names();
    assert_eq!(names, before);
}

#[test]
fn mixed_dtypes_stay_byte_identical() {
    let original = mixed_checkpoint();
    let bytes = original.to_bytes().unwrap();
    let as_f32 = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    let raw_names: Vec<String> = as_f32
        .raw_tensors()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(
        raw_names,
        [
            "adapter.weight",
            "encoder.1.num_batches_tracked",
            "flags",
            "stats.scale",
            "vocab.ids"
        ]
    );
    let mut pruned = as_f32;
    prune::l1_unstructured(&mut pruned, "encoder.2.weight", Amount::Fraction(0.5), None).unwrap();
    let again = read_with_crate(&pruned.to_bytes().unwrap());
    let first = read_with_crate(&bytes);
    for name in raw_names {
        assert_eq!(again[&name], first[&name], "{name}");
    }
    assert_eq!(
        &first["encoder.1.num_batches_tracked"].2,
        &12345i64.to_le_bytes()
    );

    // As f64: only `stats.scale` is in the tree; the f32 tensors stay raw and identical.
    let as_f64 = Checkpoint::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(
        as_f64.parameter("stats.scale").unwrap().as_slice().unwrap(),
        &[0.25, -8.0]
    );
    assert_eq!(read_with_crate(&as_f64.to_bytes().unwrap()), first);
}

#[cfg(feature = "half")]
#[test]
fn half_checkpoints_prune_their_own_dtype() {
    use half::bf16;
    let bytes = mixed_checkpoint().to_bytes().unwrap();
    let mut ckpt = Checkpoint::<bf16>::from_bytes(&bytes).unwrap();
    let w = ckpt.parameter("adapter.weight").unwrap();
    assert_eq!(
        w.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
        [1.0, -2.5, 0.0, 3.0]
    );
    prune::l1_unstructured(&mut ckpt, "adapter.weight", Amount::Count(2), None).unwrap();
    let out = read_with_crate(&ckpt.to_bytes().unwrap());
    assert_eq!(
        out["adapter.weight_mask"].2,
        bf16_bytes(&[0.0, 1.0, 0.0, 1.0])
    );
    assert_eq!(
        out["adapter.weight_orig"].2,
        bf16_bytes(&[1.0, -2.5, 0.0, 3.0])
    );
    let first = read_with_crate(&bytes);
    assert_eq!(out["head.weight"], first["head.weight"]);
}

#[test]
fn buffer_names_are_configurable() {
    let bytes = mixed_checkpoint().to_bytes().unwrap();
    let none = LoadOptions::new().buffer_names(Vec::<String>::new());
    let ckpt = Checkpoint::<f32>::from_bytes_with(&bytes, &none).unwrap();
    assert!(ckpt.parameter("encoder.1.running_mean").is_some());
    let ckpt = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    let mut ckpt = ckpt;
    // Buffers cannot be pruned.
    assert!(
        prune::l1_unstructured(&mut ckpt, "encoder.1.running_var", Amount::Count(1), None).is_err()
    );
}

#[test]
fn names_outside_the_tree_are_kept_raw() {
    let specs = vec![
        TensorSpec::new("a..b", Dtype::F32, vec![1]),
        TensorSpec::new(".lead", Dtype::F32, vec![1]),
        TensorSpec::new("trail.", Dtype::F32, vec![1]),
        TensorSpec::new("", Dtype::F32, vec![1]),
        TensorSpec::new("ok.w", Dtype::F32, vec![1]),
    ];
    let mut w = SafetensorsWriter::new(Vec::new(), specs, None).unwrap();
    for name in ["a..b", ".lead", "trail.", "", "ok.w"] {
        w.write_tensor_bytes(name, &1.0f32.to_le_bytes()).unwrap();
    }
    let bytes = w.finish().unwrap();
    let ckpt = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.raw_tensors().len(), 4);
    assert!(ckpt.parameter("ok.w").is_some());
    assert_eq!(
        read_with_crate(&ckpt.to_bytes().unwrap()),
        read_with_crate(&bytes)
    );
}

#[test]
fn saving_fails_cleanly() {
    let dir = temp_dir("savefail");
    let mut ckpt = mixed_checkpoint();
    // A raw tensor under a name the model uses too.
    ckpt.push_raw(RawTensor::new("head.bias", Dtype::U8, vec![1], vec![0]).unwrap());
    let path = dir.join("out.safetensors");
    let err = ckpt.save(&path).unwrap_err();
    assert!(
        matches!(err, CheckpointError::BadName { ref tensor, .. } if tensor == "head.bias"),
        "{err}"
    );
    assert_eq!(err.path(), path);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "nothing written"
    );
    // A missing directory.
    let err = mixed_checkpoint()
        .save(dir.join("no/such/dir.safetensors"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::BadTarget {
                problem: TargetProblem::NoDirectory,
                ..
            }
        ),
        "{err}"
    );
    // Saving over the file a checkpoint was loaded from replaces it whole.
    mixed_checkpoint().save(&path).unwrap();
    let mut ckpt = Checkpoint::<f32>::load(&path).unwrap();
    prune::l1_unstructured(&mut ckpt, "head.weight", Amount::Count(2), None).unwrap();
    ckpt.save(&path).unwrap();
    assert!(Checkpoint::<f32>::load(&path)
        .unwrap()
        .buffer("head.weight_mask")
        .is_some());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

// ---- the PyTorch fixture ------------------------------------------------

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_pruned.safetensors")
}

fn sidecar() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_path().with_extension("json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn loads_what_pytorch_pruned() {
    let side = sidecar();
    let ckpt = Checkpoint::<f32>::load(fixture_path()).unwrap();
    for name in ["0.weight", "3.weight"] {
        let (module, tensor) = name.split_once('.').unwrap();
        assert!(ckpt.store_at(module).unwrap().is_pruned(tensor), "{name}");
        let mask = ckpt.buffer(&format!("{name}_mask")).unwrap();
        assert_eq!(
            mask.iter().copied().collect::<Vec<_>>(),
            floats(&side["masks"][name]),
            "{name}"
        );
        let weight = ckpt.tensor(name).unwrap();
        assert_eq!(
            weight.iter().copied().collect::<Vec<_>>(),
            floats(&side["weights"][name]),
            "{name}"
        );
    }
    assert!(ckpt.buffer("1.running_mean").is_some() && ckpt.buffer("1.running_var").is_some());
    let counter = ckpt.raw_tensor("1.num_batches_tracked").unwrap();
    assert_eq!(counter.dtype(), Dtype::I64);
    let n = side["num_batches_tracked"].as_i64().unwrap();
    assert_eq!(counter.data(), &n.to_le_bytes());
    let meta = ckpt.metadata().unwrap();
    for (k, v) in side["metadata"].as_object().unwrap() {
        assert_eq!(meta[k], v.as_str().unwrap());
    }
    // Pruning goes on with PyTorch's semantics: 25 % of the 56 left.
    let mut ckpt = ckpt;
    prune::l1_unstructured(&mut ckpt, "3.weight", Amount::Fraction(0.25), None).unwrap();
    assert_eq!(ckpt.buffer("3.weight_mask").unwrap().sum(), 42.0);
}

#[test]
fn writes_back_what_pytorch_wrote() {
    let side = sidecar();
    let original = std::fs::read(fixture_path()).unwrap();
    let path = temp_dir("torch").join("back.safetensors");
    Checkpoint::<f32>::load(fixture_path())
        .unwrap()
        .save(&path)
        .unwrap();
    let written = std::fs::read(&path).unwrap();
    let (a, b) = (read_with_crate(&original), read_with_crate(&written));
    let keys: Vec<&str> = side["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(b.keys().map(String::as_str).collect::<Vec<_>>(), sorted);
    for key in keys {
        let dtype = match side["dtypes"][key].as_str().unwrap() {
            "float32" => Dtype::F32,
            "int64" => Dtype::I64,
            other => panic!("unexpected dtype {other}"),
        };
        let shape: Vec<usize> = side["shapes"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!((b[key].0, &b[key].1), (dtype, &shape), "{key}");
        // Every tensor is byte-identical, num_batches_tracked included.
        assert_eq!(b[key], a[key], "{key}");
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&written).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
}

// ---- malformed files ----------------------------------------------------

/// A file with the given header JSON and data bytes.
fn file_with(header: &str, data: &[u8]) -> Vec<u8> {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(data);
    f
}

fn load(bytes: &[u8]) -> Result<Checkpoint<f32>, CheckpointError> {
    Checkpoint::<f32>::from_bytes(bytes)
}

#[test]
fn truncated_files_are_errors() {
    let mut ckpt = mixed_checkpoint();
    prune::l1_unstructured(&mut ckpt, "head.weight", Amount::Count(2), None).unwrap();
    let bytes = ckpt.to_bytes().unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for cut in 0..bytes.len() {
        let err = load(&bytes[..cut]).expect_err("a truncated file loads");
        if cut < 8 || cut >= header_end {
            assert!(
                matches!(err, CheckpointError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }
    assert!(load(&bytes).is_ok());
    // A truncated file on disk names the path.
    let path = temp_dir("trunc").join("t.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = Checkpoint::<f32>::load(&path).unwrap_err();
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("t.safetensors"), "{err}");
}

#[test]
fn corrupted_header_bytes_never_panic() {
    let bytes = mixed_checkpoint().to_bytes().unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for v in [0u8, b'"', b'{', b'}', b'9', b',', 0xff, bytes[i] ^ 0x20] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = load(&b);
            let _ = Checkpoint::<f64>::from_bytes(&b);
        }
    }
}

#[test]
fn malformed_headers_give_the_right_errors() {
    use CheckpointError as E;
    let f32s = [0u8; 8];
    type Case = (&'static str, Vec<u8>, fn(&CheckpointError) -> bool);
    let cases: Vec<Case> = vec![
        ("too short", vec![1, 2, 3], |e| {
            matches!(e, E::Truncated { needed: 8, .. })
        }),
        ("huge header length", u64::MAX.to_le_bytes().to_vec(), |e| {
            matches!(e, E::BadHeader { .. })
        }),
        (
            "header past the end",
            {
                let mut f = 100u64.to_le_bytes().to_vec();
                f.extend_from_slice(b"{}");
                f
            },
            |e| matches!(e, E::Truncated { needed: 108, .. }),
        ),
        (
            "not utf-8",
            file_with("{\u{0}}", &[])
                .into_iter()
                .map(|b| if b == 0 { 0xff } else { b })
                .collect(),
            |e| matches!(e, E::BadHeader { .. }),
        ),
        ("not json", file_with("{nope", &[]), |e| {
            matches!(e, E::BadHeader { .. })
        }),
        ("not an object", file_with("[1,2]", &[]), |e| {
            matches!(e, E::BadHeader { .. })
        }),
        ("entry not an object", file_with(r#"{"w":3}"#, &[]), |e| {
            matches!(e, E::BadHeader { .. })
        }),
        (
            "missing dtype",
            file_with(r#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, &f32s),
            |e| matches!(e, E::BadHeader { .. }),
        ),
        (
            "unknown dtype",
            file_with(
                r#"{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
                &f32s,
            ),
            |e| matches!(e, E::UnknownDtype { tensor, dtype, .. } if tensor == "w" && dtype == "F33"),
        ),
        (
            "negative dim",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                &f32s,
            ),
            |e| matches!(e, E::BadHeader { .. }),
        ),
        (
            "shape and length disagree",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &f32s,
            ),
            |e| {
                matches!(
                    e,
                    E::SizeMismatch {
                        expected: Some(12),
                        got: 8,
                        ..
                    }
                )
            },
        ),
        (
            "shape overflows",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                &f32s,
            ),
            |e| matches!(e, E::SizeMismatch { expected: None, .. }),
        ),
        (
            "end before start",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
                &f32s,
            ),
            |e| matches!(e, E::BadOffsets { .. }),
        ),
        (
            "offsets out of range",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#,
                &[0; 16],
            ),
            |e| matches!(e, E::BadOffsets { tensor, .. } if tensor == "v"),
        ),
        (
            "overlapping",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &[0; 12],
            ),
            |e| matches!(e, E::BadOffsets { tensor, .. } if tensor == "v"),
        ),
        (
            "gap",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &[0; 12],
            ),
            |e| matches!(e, E::BadOffsets { .. }),
        ),
        (
            "trailing bytes",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 9],
            ),
            |e| matches!(e, E::BadOffsets { .. }),
        ),
        (
            "huge offsets",
            file_with(
                r#"{"w":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]}}"#,
                &[],
            ),
            |e| matches!(e, E::Truncated { .. } | E::BadOffsets { .. }),
        ),
        (
            "metadata not strings",
            file_with(r#"{"__metadata__":{"a":1}}"#, &[]),
            |e| matches!(e, E::BadHeader { .. }),
        ),
        (
            "bad mask",
            {
                let mut d = Vec::new();
                for v in [1.0f32, 2.0, 0.5, 1.0] {
                    d.extend_from_slice(&v.to_le_bytes());
                }
                file_with(
                    r#"{"w_orig":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w_mask":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
                    &d,
                )
            },
            |e| {
                matches!(e, E::BadPair { tensor, problem: PairProblem::NotBinary { index: 0, value }, .. }
                    if tensor == "w" && *value == 0.5)
            },
        ),
        (
            "mask of another shape",
            file_with(
                r#"{"m.w_orig":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"m.w_mask":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]}}"#,
                &[0; 16],
            ),
            |e| {
                matches!(e, E::BadPair { tensor, problem: PairProblem::ShapeMismatch { .. }, .. }
                    if tensor == "m.w")
            },
        ),
        (
            "pruned and plain",
            file_with(
                r#"{"w_orig":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w_mask":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                &[0; 12],
            ),
            |e| {
                matches!(e, E::BadPair { tensor, problem: PairProblem::AlsoPlain, .. }
                    if tensor == "w")
            },
        ),
    ];
    for (what, bytes, expected) in cases {
        let err = load(&bytes).expect_err(what);
        assert!(expected(&err), "{what}: got {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn byte_ranges_in_any_order_load() {
    // Offsets need not follow the header's key order.
    let mut d = Vec::new();
    for v in [1.0f32, 2.0, 3.0] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    let f = file_with(
        r#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[12,12]}}"#,
        &d,
    );
    let ckpt = load(&f).unwrap();
    assert_eq!(
        ckpt.parameter("a").unwrap().as_slice().unwrap(),
        &[1.0, 2.0]
    );
    assert_eq!(ckpt.parameter("b").unwrap().as_slice().unwrap(), &[3.0]);
    assert_eq!(ckpt.parameter("e").unwrap().len(), 0);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn valid_files() -> Vec<Vec<u8>> {
    let mut pruned = mixed_checkpoint();
    prune::l1_unstructured(&mut pruned, "head.weight", Amount::Count(4), None).unwrap();
    vec![
        mixed_checkpoint().to_bytes().unwrap(),
        pruned.to_bytes().unwrap(),
        std::fs::read(fixture_path()).unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_files_load_or_fail_without_panic(
        which in 0usize..3,
        // Most mutations land in the header, where parsing is decided.
        in_header in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = valid_files().swap_remove(which);
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for m in mutations {
            let len = bytes.len().max(1);
            let span = if in_header { header_end.min(len) } else { len };
            match m {
                Mutation::Flip(i, x) => { if !bytes.is_empty() { bytes[i % span] ^= x } }
                Mutation::Set(i, v) => { if !bytes.is_empty() { bytes[i % span] = v } }
                Mutation::Insert(i, v) => bytes.insert(i % (span + 1).min(bytes.len() + 1), v),
                Mutation::Delete(i) => { if !bytes.is_empty() { bytes.remove(i % span); } }
                Mutation::Truncate(i) => bytes.truncate(i % len),
            }
        }
        if let Ok(ckpt) = load(&bytes) {
            // Whatever loads saves, and loads back the same.
            let again = load(&ckpt.to_bytes().unwrap()).unwrap();
            // (A mutated byte may make a value NaN, which must come back NaN.)
            prop_assert!(same_contents(&contents(&again), &contents(&ckpt)));
            prop_assert_eq!(again.raw_tensors(), ckpt.raw_tensors());
        }
        let _ = Checkpoint::<f64>::from_bytes(&bytes);
        let _ = SafetensorsView::parse(&bytes);
    }
}

#[test]
fn tensor_names_are_unique_per_file() {
    // Two raw tensors may not share a name with the model's.
    let mut ckpt = Checkpoint::new(
        Sequential::<f32>::new()
            .with_child(
                "m",
                Layer::new()
                    .with_parameter("w", ArrayD::zeros(vec![1]))
                    .unwrap(),
            )
            .unwrap(),
    );
    ckpt.push_raw(RawTensor::new("m.w", Dtype::I8, vec![1], vec![0]).unwrap());
    assert!(matches!(
        ckpt.to_bytes(),
        Err(CheckpointError::BadName { .. })
    ));
    let reserved = RawTensor::new("__metadata__", Dtype::I8, vec![1], vec![0]).unwrap();
    let mut ckpt = Checkpoint::new(Sequential::<f32>::new());
    ckpt.push_raw(reserved);
    assert!(matches!(
        ckpt.to_bytes(),
        Err(CheckpointError::BadName { .. })
    ));
}

// ---- files a user will try, and the limits of what a header can ask ----

#[test]
fn inputs_that_are_no_safetensors_file_say_what_they_are() {
    use ndprune::io::{FileKind, ForeignFormat};
    let dir = temp_dir("foreign");
    let err = Checkpoint::<f32>::load(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::NotAFile {
                kind: FileKind::Directory,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.path(), dir);
    #[cfg(unix)]
    {
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.join("pipe.safetensors");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = Checkpoint::<f32>::load(&fifo).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::NotAFile {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{err}"
        );
    }
    let cases: [(&str, &[u8], ForeignFormat); 4] = [
        ("model.pth", b"PK\x03\x04\x14\0\0\0\0\0archive/data.pkl", ForeignFormat::TorchZip),
        ("old.bin", b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.", ForeignFormat::TorchPickle),
        (
            "model.safetensors.index.json",
            br#"{"metadata": {"total_size": 16}, "weight_map": {"w": "model-00001-of-00002.safetensors"}}"#,
            ForeignFormat::ShardIndex,
        ),
        ("config.json", b"{\"hidden_size\": 768}", ForeignFormat::Json),
    ];
    for (name, bytes, format) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = Checkpoint::<f32>::load(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::NotSafetensors { format: f, .. } if f == format),
            "{name}: {err}"
        );
        let text = err.to_string();
        assert!(text.starts_with(path.to_str().unwrap()), "{text}");
        assert!(!text.contains("<bytes>"), "{text}");
    }
}

#[test]
fn errors_of_a_file_name_the_file() {
    // An entry of a mapped file names the file in its errors too.
    let dir = temp_dir("entry-path");
    let path = dir.join("m.safetensors");
    mixed_checkpoint().save(&path).unwrap();
    let file = ndprune::io::MappedFile::open(&path).unwrap();
    let view = file.view().unwrap();
    let err = view
        .get("head.weight")
        .unwrap()
        .to_array::<f64>()
        .unwrap_err();
    assert_eq!(err.path(), path);
    assert!(!err.to_string().contains("<bytes>"), "{err}");
}

#[test]
fn deep_names_load_without_recursion() {
    for depth in [63, 64, 7000, 100_000] {
        let name = format!("{}weight", "a.".repeat(depth));
        let specs = vec![TensorSpec::new(name.clone(), Dtype::F32, vec![1])];
        let mut w = SafetensorsWriter::new(Vec::new(), specs, None).unwrap();
        w.write_tensor_bytes(&name, &1.0f32.to_le_bytes()).unwrap();
        let bytes = w.finish().unwrap();
        let ckpt = load(&bytes).unwrap();
        // Up to 64 components a tree path, deeper a raw tensor.
        assert_eq!(ckpt.parameter(&name).is_some(), depth < 64, "{depth}");
        assert_eq!(ckpt.raw_tensor(&name).is_some(), depth >= 64, "{depth}");
        assert_eq!(
            read_with_crate(&ckpt.to_bytes().unwrap()),
            read_with_crate(&bytes)
        );
    }
}

#[test]
fn pairs_are_checked_whatever_their_float_dtypes() {
    // An f32 original with a bf16 mask: a valid pair keeps each dtype ...
    let pair = |mask: [u16; 2]| {
        let specs = vec![
            TensorSpec::new("m.w_orig", Dtype::F32, vec![2]),
            TensorSpec::new("m.w_mask", Dtype::BF16, vec![2]),
        ];
        let mut w = SafetensorsWriter::new(Vec::new(), specs, None).unwrap();
        w.write_tensor_bytes(
            "m.w_orig",
            &[1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat(),
        )
        .unwrap();
        w.write_tensor_bytes(
            "m.w_mask",
            &[mask[0].to_le_bytes(), mask[1].to_le_bytes()].concat(),
        )
        .unwrap();
        w.finish().unwrap()
    };
    let good = pair([0x3f80, 0x0000]);
    let ckpt = load(&good).unwrap();
    assert_eq!(
        read_with_crate(&ckpt.to_bytes().unwrap()),
        read_with_crate(&good)
    );
    // ... a mask holding 0.5 is refused, by the view and every loader.
    let bad = pair([0x3f80, 0x3f00]);
    for err in [
        SafetensorsView::parse(&bad).unwrap_err(),
        load(&bad).unwrap_err(),
        Checkpoint::<f64>::from_bytes(&bad).unwrap_err(),
    ] {
        assert!(
            matches!(&err, CheckpointError::BadPair { tensor, problem: PairProblem::NotBinary { index: 1, value }, .. }
                if tensor == "m.w" && *value == 0.5),
            "{err}"
        );
    }
}

#[test]
fn a_header_cannot_name_a_tensor_twice() {
    let f = file_with(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        &[0; 8],
    );
    let err = load(&f).unwrap_err();
    assert!(
        matches!(err, CheckpointError::BadName { ref tensor, .. } if tensor == "w"),
        "{err}"
    );
}

#[test]
fn shapes_no_array_can_hold_are_refused_not_allocated() {
    // No entries, but dims whose product passes isize::MAX.
    let f = file_with(
        r#"{"w":{"dtype":"F32","shape":[0,4611686018427387904,3],"data_offsets":[0,0]}}"#,
        &[],
    );
    let err = load(&f).unwrap_err();
    assert!(
        matches!(err, CheckpointError::ShapeTooLarge { .. }),
        "{err}"
    );
    // [0, 2^40] is fine: no entries, nothing allocated.
    let f = file_with(
        r#"{"w":{"dtype":"F32","shape":[0,1099511627776],"data_offsets":[0,0]}}"#,
        &[],
    );
    assert_eq!(
        load(&f).unwrap().parameter("w").unwrap().shape(),
        &[0, 1 << 40]
    );
}

#[cfg(unix)]
#[test]
fn saving_checks_the_target_and_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("target");
    let ckpt = mixed_checkpoint();
    // A directory, a FIFO, a dangling link, a name too long: refused, nothing written.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink(dir.join("nothing"), dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink(&fifo, dir.join("to-fifo")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    for (name, ok) in [
        ("sub", false),
        ("fifo", false),
        ("dangling", false),
        ("to-fifo", false),
        (&*"n".repeat(256), false),
        (&*"n".repeat(255), true),
    ] {
        let path = dir.join(name);
        let result = ckpt.save(&path);
        assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
        if let Err(err) = result {
            assert!(matches!(err, CheckpointError::BadTarget { .. }), "{err}");
        }
    }
    std::fs::remove_file(dir.join("n".repeat(255))).unwrap();
    let mut left = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    left.sort();
    assert_eq!(
        left,
        ["dangling", "fifo", "sub", "to-fifo"],
        "no temporary left"
    );
    // The file replaced keeps its permissions.
    let path = dir.join("kept.safetensors");
    ckpt.save(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    ckpt.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}
