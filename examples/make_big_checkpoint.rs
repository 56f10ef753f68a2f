//! Writes a synthetic sharded bf16 checkpoint of LLaMA-like shapes, of any
//! size, tensor by tensor (never more than one tensor in memory): the input
//! of the larger-than-memory benchmark in the README.
//!
//! ```text
//! cargo run --release --example make_big_checkpoint -- DIR [--gib 28] [--shards 8]
//! ```
//!
//! `DIR` gets `model-0000K-of-0000N.safetensors`, a
//! `model.safetensors.index.json` and a `config.json`. Each decoder layer
//! holds q/k/v/o projections of 4096×4096, gate/up of 11008×4096, down of
//! 4096×11008 (bf16) and two f32 norm scales; layers are added until the
//! size is reached, and shards are cut at layer boundaries. Values are
//! pseudo-random (a fixed xorshift stream), normal-looking in magnitude.

use std::path::{Path, PathBuf};

use ndprune::io::{Dtype, SafetensorsWriter, TensorSpec};

const HIDDEN: usize = 4096;
const INTER: usize = 11008;

/// The tensors of decoder layer `i`: name, dtype, shape.
fn layer(i: usize) -> Vec<(String, Dtype, Vec<usize>)> {
    let p = format!("model.layers.{i}");
    let mut t = Vec::new();
    for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
        t.push((
            format!("{p}.self_attn.{proj}.weight"),
            Dtype::BF16,
            vec![HIDDEN, HIDDEN],
        ));
    }
    t.push((
        format!("{p}.mlp.gate_proj.weight"),
        Dtype::BF16,
        vec![INTER, HIDDEN],
    ));
    t.push((
        format!("{p}.mlp.up_proj.weight"),
        Dtype::BF16,
        vec![INTER, HIDDEN],
    ));
    t.push((
        format!("{p}.mlp.down_proj.weight"),
        Dtype::BF16,
        vec![HIDDEN, INTER],
    ));
    for norm in ["input_layernorm", "post_attention_layernorm"] {
        t.push((format!("{p}.{norm}.weight"), Dtype::F32, vec![HIDDEN]));
    }
    t
}

fn bytes_of(spec: &(String, Dtype, Vec<usize>)) -> u64 {
    let n: usize = spec.2.iter().product();
    n as u64 * if spec.1 == Dtype::F32 { 4 } else { 2 }
}

/// Fills `out` with the bytes of `n` values of `dtype` from the stream.
fn fill(state: &mut u64, dtype: Dtype, n: usize, out: &mut Vec<u8>) {
    out.clear();
    for _ in 0..n {
        // xorshift64*; two 16-bit uniforms summed: a triangular value in
        // (-1, 1), scaled like a weight of a 4096-wide layer.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let u = ((r >> 48) as f32 + (r >> 32 & 0xffff) as f32) / 65536.0 - 1.0;
        let x = u * 0.03;
        match dtype {
            Dtype::F32 => out.extend_from_slice(&(1.0 + x).to_le_bytes()),
            // bf16: the top half of the f32, rounded to nearest even.
            _ => {
                let b = x.to_bits();
                let rounded = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
                out.extend_from_slice(&(rounded as u16).to_le_bytes());
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let (mut gib, mut shards) = (28u64, 8usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gib" => gib = args.next().ok_or("--gib needs a number")?.parse()?,
            "--shards" => shards = args.next().ok_or("--shards needs a number")?.parse()?,
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let dir = dir.ok_or("usage: make_big_checkpoint DIR [--gib N] [--shards K]")?;
    std::fs::create_dir_all(&dir)?;
    let target = gib << 30;
    let per_layer: u64 = layer(0).iter().map(bytes_of).sum();
    let layers = target.div_ceil(per_layer).max(1) as usize;
    let shards = shards.clamp(1, layers);
    let per_shard = layers.div_ceil(shards);
    let names: Vec<String> = (0..shards)
        .map(|k| format!("model-{:05}-of-{:05}.safetensors", k + 1, shards))
        .collect();
    let mut weight_map = serde_json::Map::new();
    let (mut total, mut state, mut buf) = (0u64, 0x9e37_79b9_7f4a_7c15u64, Vec::new());
    for (k, name) in names.iter().enumerate() {
        let specs: Vec<(String, Dtype, Vec<usize>)> = (k * per_shard
            ..((k + 1) * per_shard).min(layers))
            .flat_map(layer)
            .collect();
        write_shard(&dir.join(name), &specs, &mut state, &mut buf)?;
        for s in &specs {
            weight_map.insert(s.0.clone(), name.clone().into());
            total += bytes_of(s);
        }
        eprintln!("{name}: {} tensors", specs.len());
    }
    let index =
        serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&index)?,
    )?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": layers, "torch_dtype": "bfloat16",
        "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    println!(
        "{}: {layers} layers in {shards} shards, {total} bytes ({:.1} GiB)",
        dir.display(),
        total as f64 / (1u64 << 30) as f64
    );
    Ok(())
}

fn write_shard(
    path: &Path,
    specs: &[(String, Dtype, Vec<usize>)],
    state: &mut u64,
    buf: &mut Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    let plan = specs
        .iter()
        .map(|(n, d, s)| TensorSpec::new(n.clone(), *d, s.clone()))
        .collect();
    let mut w = SafetensorsWriter::create(path, plan, None)?;
    while let Some(spec) = w.next_tensor().cloned() {
        fill(state, spec.dtype(), spec.shape().iter().product(), buf);
        w.write_tensor_bytes(spec.name(), buf)?;
    }
    w.commit()?;
    Ok(())
}
