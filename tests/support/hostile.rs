//! A structure-aware generator of malformed and adversarial safetensors
//! files: each case is a small file built field by field (header JSON,
//! shapes, offsets, names, data) to attack one thing a reader trusts.
//! Used by `tests/hostile.rs`; the byte layouts also seed the fuzz corpus
//! (`fuzz/corpus/load_checkpoint`, written by `tests/hostile.rs` when
//! `NDPRUNE_WRITE_CORPUS` is set).
#![allow(dead_code)]

use serde_json::{json, Map, Value};

/// What a case must give when loaded as a `Checkpoint<f32>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// It loads (and saves and loads back the same).
    Loads,
    /// It is refused with a typed error.
    Refused,
    /// Either: what matters is no panic, bounded cost.
    Either,
}

/// One hostile file.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub expect: Expect,
    /// Whether the CLI should prune it too (some cases are only about reading).
    pub prune: bool,
}

/// The 8-byte length, the header, then the data.
pub fn raw_file(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(data);
    f
}

/// A header entry.
pub fn entry(dtype: &str, shape: Value, start: u64, end: u64) -> Value {
    json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end]})
}

/// A file from header entries (in the order given) and data.
pub fn file(entries: Vec<(String, Value)>, data: &[u8]) -> Vec<u8> {
    let mut map = Map::new();
    for (k, v) in entries {
        map.insert(k, v);
    }
    raw_file(&serde_json::to_vec(&Value::Object(map)).unwrap(), data)
}

/// A well-formed file of F32 tensors with the given names and shapes, data
/// in order (values 1, 2, 3, …, or `fill` if given).
pub fn f32_file(tensors: &[(&str, Vec<usize>)], fill: Option<f32>) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let start = data.len() as u64;
        for i in 0..n {
            data.extend_from_slice(&fill.unwrap_or(i as f32 + 1.0).to_le_bytes());
        }
        entries.push((
            name.to_string(),
            entry("F32", json!(shape), start, data.len() as u64),
        ));
    }
    file(entries, &data)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn case(name: &str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect,
        prune: true,
    }
}

/// A pruned pair `w_orig` / `w_mask` of the given dtypes, shapes and mask values.
fn pair(orig_shape: &[usize], mask_shape: &[usize], mask: &[f32]) -> Vec<u8> {
    let n: usize = orig_shape.iter().product();
    let orig: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
    let mut data = f32s(&orig);
    let split = data.len() as u64;
    data.extend_from_slice(&f32s(mask));
    file(
        vec![
            ("m.w_orig".into(), entry("F32", json!(orig_shape), 0, split)),
            (
                "m.w_mask".into(),
                entry("F32", json!(mask_shape), split, data.len() as u64),
            ),
        ],
        &data,
    )
}

/// Every case, small enough that the whole suite runs in seconds.
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let mut out = Vec::new();
    let good = f32_file(&[("fc.weight", vec![4, 3]), ("fc.bias", vec![4])], None);
    out.push(case("good", good.clone(), Loads));

    // ---- lengths and headers ------------------------------------------
    out.push(case("empty", vec![], Refused));
    out.push(case("seven bytes", vec![1; 7], Refused));
    out.push(case(
        "header length u64::MAX",
        u64::MAX.to_le_bytes().to_vec(),
        Refused,
    ));
    out.push(case(
        "header length past the end",
        raw_file(b"{}", &[])
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { 200 } else { b })
            .collect(),
        Refused,
    ));
    out.push(case(
        "not utf-8",
        raw_file(b"{\"\xff\xfe\": 1}", &[]),
        Refused,
    ));
    out.push(case("not json", raw_file(b"{nope", &[]), Refused));
    out.push(case("json array", raw_file(b"[1, 2, 3]", &[]), Refused));
    out.push(case(
        "deeply nested json",
        raw_file(
            format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000)).as_bytes(),
            &[],
        ),
        Refused,
    ));
    out.push(case(
        "duplicate keys",
        raw_file(
            br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &[0; 8],
        ),
        Refused,
    ));
    out.push(case(
        "metadata not strings",
        raw_file(br#"{"__metadata__":{"a":[1,2]}}"#, &[]),
        Refused,
    ));
    out.push(case(
        "metadata of 20000 keys",
        {
            let meta: Map<String, Value> =
                (0..20_000).map(|i| (format!("k{i}"), json!("v"))).collect();
            raw_file(
                &serde_json::to_vec(&json!({"__metadata__": meta})).unwrap(),
                &[],
            )
        },
        Loads,
    ));
    out.push(case(
        "unknown dtype",
        file(vec![("w".into(), entry("F33", json!([1]), 0, 4))], &[0; 4]),
        Refused,
    ));
    out.push(case(
        "sub-byte dtype with odd count",
        file(vec![("w".into(), entry("F4", json!([3]), 0, 1))], &[0; 1]),
        Refused,
    ));

    // ---- shapes --------------------------------------------------------
    out.push(case(
        "shape product overflows u64",
        file(
            vec![(
                "w".into(),
                entry("F32", json!([1u64 << 32, 1u64 << 32]), 0, 4),
            )],
            &[0; 4],
        ),
        Refused,
    ));
    out.push(case(
        "shape bits overflow u64",
        file(
            vec![("w".into(), entry("F64", json!([1u64 << 62]), 0, 8))],
            &[0; 8],
        ),
        Refused,
    ));
    out.push(case(
        "dim beyond u64",
        raw_file(
            br#"{"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        Refused,
    ));
    out.push(case(
        "negative dim",
        raw_file(
            br#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        Refused,
    ));
    for (label, shape) in [
        ("zero-size [0, 2^40]", json!([0u64, 1u64 << 40])),
        ("zero-size [2^40, 0]", json!([1u64 << 40, 0u64])),
        (
            "zero-size [2^31, 2^31, 0]",
            json!([1u64 << 31, 1u64 << 31, 0u64]),
        ),
    ] {
        out.push(case(
            label,
            file(
                vec![("layer.weight".into(), entry("F32", shape, 0, 0))],
                &[],
            ),
            Loads,
        ));
    }
    // No array can have these dims (the product of the non-zero ones
    // passes isize::MAX), though the tensor has no entries.
    out.push(case(
        "zero-size [0, 2^62, 3]",
        file(
            vec![(
                "layer.weight".into(),
                entry("F32", json!([0u64, 1u64 << 62, 3u64]), 0, 0),
            )],
            &[],
        ),
        Refused,
    ));
    out.push(case(
        "zero-size pair [0, 2^40]",
        file(
            vec![
                (
                    "m.w_orig".into(),
                    entry("F32", json!([0u64, 1u64 << 40]), 0, 0),
                ),
                (
                    "m.w_mask".into(),
                    entry("F32", json!([0u64, 1u64 << 40]), 0, 0),
                ),
            ],
            &[],
        ),
        Loads,
    ));
    out.push(case(
        "4096 dims of 1",
        file(
            vec![("w".into(), entry("F32", json!(vec![1; 4096]), 0, 4))],
            &[0; 4],
        ),
        Either,
    ));

    // ---- offsets -------------------------------------------------------
    out.push(case(
        "end before start",
        file(vec![("w".into(), entry("F32", json!([0]), 8, 0))], &[0; 8]),
        Refused,
    ));
    out.push(case(
        "overlapping ranges",
        file(
            vec![
                ("a".into(), entry("F32", json!([2]), 0, 8)),
                ("b".into(), entry("F32", json!([2]), 4, 12)),
            ],
            &[0; 12],
        ),
        Refused,
    ));
    out.push(case(
        "same range twice",
        file(
            vec![
                ("a".into(), entry("F32", json!([2]), 0, 8)),
                ("b".into(), entry("F32", json!([2]), 0, 8)),
            ],
            &[0; 8],
        ),
        Refused,
    ));
    out.push(case(
        "gap",
        file(vec![("w".into(), entry("F32", json!([1]), 4, 8))], &[0; 8]),
        Refused,
    ));
    out.push(case(
        "trailing bytes",
        file(vec![("w".into(), entry("F32", json!([1]), 0, 4))], &[0; 5]),
        Refused,
    ));
    out.push(case(
        "range past the end",
        file(
            vec![("w".into(), entry("U8", json!([1u64 << 60]), 0, 1u64 << 60))],
            &[],
        ),
        Refused,
    ));
    out.push(case(
        "offset beyond u64",
        raw_file(
            br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,1e30]}}"#,
            &[0; 4],
        ),
        Refused,
    ));
    out.push(case(
        "zero-size tensors sharing an offset",
        file(
            vec![
                ("a.w".into(), entry("F32", json!([0, 5]), 4, 4)),
                ("b.w".into(), entry("F32", json!([1]), 0, 4)),
                ("c.w".into(), entry("F32", json!([3, 0]), 4, 4)),
            ],
            &f32s(&[2.0]),
        ),
        Loads,
    ));

    // ---- names ---------------------------------------------------------
    let deep = |n: usize| format!("{}weight", "a.".repeat(n));
    out.push(case(
        "7000 dots in a name",
        f32_file(&[(&deep(7000), vec![2, 2])], None),
        Loads,
    ));
    out.push(case(
        "100000 dots in a name",
        f32_file(&[(&deep(100_000), vec![2, 2])], None),
        Loads,
    ));
    out.push(case(
        "64 KiB name",
        f32_file(&[(&"w".repeat(64 * 1024), vec![2, 2])], None),
        Loads,
    ));
    out.push(case(
        "1 MiB name",
        f32_file(&[(&"w".repeat(1 << 20), vec![2, 2])], None),
        Loads,
    ));
    out.push(case(
        "odd names",
        f32_file(
            &[
                ("", vec![2, 2]),
                (".", vec![2, 2]),
                ("a..b", vec![2, 2]),
                ("_orig", vec![2, 2]),
                ("_mask", vec![2, 2]),
                ("ünï.cödé\u{202e}", vec![2, 2]),
                ("tab\tnew\nline", vec![2, 2]),
            ],
            None,
        ),
        Loads,
    ));

    // ---- many tensors --------------------------------------------------
    let many: Vec<(String, Vec<usize>)> = (0..20_000)
        .map(|i| (format!("layers.{i}.w"), vec![1, 1]))
        .collect();
    let many: Vec<(&str, Vec<usize>)> = many.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    out.push(case("20000 modules", f32_file(&many, None), Loads));
    let flat: Vec<(String, Vec<usize>)> = (0..20_000)
        .map(|i| (format!("m.t{i}"), vec![1, 1]))
        .collect();
    let flat: Vec<(&str, Vec<usize>)> = flat.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    out.push(case(
        "20000 tensors in one module",
        f32_file(&flat, None),
        Loads,
    ));
    out.push(case(
        "10000 pruned pairs in one module",
        {
            let mut entries = Vec::new();
            let mut data = Vec::new();
            for i in 0..10_000 {
                for (part, v) in [("orig", 2.0f32), ("mask", 1.0)] {
                    let start = data.len() as u64;
                    data.extend_from_slice(&f32s(&[v, v]));
                    entries.push((
                        format!("m.w{i}_{part}"),
                        entry("F32", json!([1, 2]), start, data.len() as u64),
                    ));
                }
            }
            file(entries, &data)
        },
        Loads,
    ));
    out.push(case(
        "30000 zero-size tensors",
        {
            let entries = (0..30_000)
                .map(|i| (format!("z.{i}"), entry("F32", json!([0, 1u64 << 40]), 0, 0)))
                .collect();
            file(entries, &[])
        },
        Loads,
    ));

    // ---- pruned pairs --------------------------------------------------
    out.push(case(
        "good pair",
        pair(&[2, 2], &[2, 2], &[1.0, 0.0, 1.0, 1.0]),
        Loads,
    ));
    out.push(case(
        "pair, mask of another shape",
        pair(&[2, 2], &[4, 1], &[1.0, 0.0, 1.0, 1.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask of fewer dims",
        pair(&[2, 2], &[4], &[1.0, 0.0, 1.0, 1.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask of fewer entries",
        pair(&[2, 2], &[2, 1], &[1.0, 0.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask holds 0.5",
        pair(&[2, 2], &[2, 2], &[1.0, 0.5, 1.0, 1.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask holds 2",
        pair(&[2, 2], &[2, 2], &[1.0, 2.0, 1.0, 1.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask holds NaN",
        pair(&[2, 2], &[2, 2], &[1.0, f32::NAN, 1.0, 1.0]),
        Refused,
    ));
    out.push(case(
        "pair, mask holds -1",
        pair(&[2, 2], &[2, 2], &[1.0, -1.0, 1.0, 0.0]),
        Refused,
    ));
    out.push(case(
        "pair, bf16 mask of an f32 tensor",
        {
            let mut data = f32s(&[1.0, -2.0, 3.0, -4.0]);
            // bf16 1, 0, 1, 1
            data.extend_from_slice(&[0x80, 0x3f, 0, 0, 0x80, 0x3f, 0x80, 0x3f]);
            file(
                vec![
                    ("m.w_orig".into(), entry("F32", json!([2, 2]), 0, 16)),
                    ("m.w_mask".into(), entry("BF16", json!([2, 2]), 16, 24)),
                ],
                &data,
            )
        },
        Loads,
    ));
    out.push(case(
        "pair, bf16 mask of an f32 tensor holding 0.5",
        {
            let mut data = f32s(&[1.0, -2.0, 3.0, -4.0]);
            data.extend_from_slice(&[0x80, 0x3f, 0, 0x3f, 0x80, 0x3f, 0x80, 0x3f]);
            file(
                vec![
                    ("m.w_orig".into(), entry("F32", json!([2, 2]), 0, 16)),
                    ("m.w_mask".into(), entry("BF16", json!([2, 2]), 16, 24)),
                ],
                &data,
            )
        },
        Refused,
    ));
    out.push(case(
        "pair and plain tensor of one name",
        {
            let mut data = f32s(&[1.0, 2.0, 3.0, 4.0]);
            data.extend_from_slice(&f32s(&[1.0, 0.0, 9.0, 9.0]));
            file(
                vec![
                    ("m.w_orig".into(), entry("F32", json!([1, 2]), 0, 8)),
                    ("m.w_mask".into(), entry("F32", json!([1, 2]), 8, 16)),
                    ("m.w".into(), entry("F32", json!([1, 2]), 16, 24)),
                ],
                &data,
            )
        },
        Refused,
    ));

    // ---- other formats a user will try -----------------------------------
    out.push(case(
        "zip (torch.save)",
        b"PK\x03\x04\x14\0\0\0\0\0archive/data.pkl".to_vec(),
        Refused,
    ));
    out.push(case(
        "pickle (legacy torch.save)",
        b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.".to_vec(),
        Refused,
    ));
    out.push(case(
        "sharded index json",
        br#"{"metadata": {"total_size": 16}, "weight_map": {"fc.weight": "model-00001-of-00002.safetensors"}}"#.to_vec(),
        Refused,
    ));
    out
}
