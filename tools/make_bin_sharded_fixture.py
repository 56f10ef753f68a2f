#!/usr/bin/env python3
"""Writes tests/fixtures/pth/bin-sharded/: a small model's state_dict saved
as PyTorch shards the way transformers' save_pretrained writes them with
safe_serialization=False, and its safetensors twin, for ndprune's reading
of sharded `.bin` checkpoints (tests/pth.rs, feature `pth`).

Run with a Python that has torch and safetensors (outside the repository):
    ~/torchenv/bin/python tools/make_bin_sharded_fixture.py

Files (a few kilobytes each):
- bin-sharded/pytorch_model-00001-of-00002.bin, ...-00002-of-00002.bin:
  torch.save of consecutive parts of the state_dict (f32, bf16 and f16
  weights, f32 biases, an int64 counter), cut as transformers cuts them:
  a new shard when the next tensor would take the current one past the
  limit (1000 bytes here).
- bin-sharded/pytorch_model.bin.index.json: {"metadata": {"total_size"},
  "weight_map": {tensor: shard file}}, as transformers writes it.
- bin-sharded/config.json: a stand-in for the model's configuration.
- bin-sharded-twin.safetensors: safetensors.torch.save_file of the whole
  state_dict, the twin the shards are compared with.
"""
import json
import os
import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pth")
OUT = os.path.join(HERE, "bin-sharded")
MAX_SHARD = 1000  # bytes of tensor data, as transformers' max_shard_size


def main():
    torch.manual_seed(20261203)
    sd = {}
    for i, (fan_in, fan_out, dtype) in enumerate(
        [(8, 12, torch.float32), (12, 16, torch.bfloat16), (16, 10, torch.float16), (10, 6, torch.float32)]
    ):
        layer = nn.Linear(fan_in, fan_out).to(dtype)
        sd[f"layers.{i}.weight"] = layer.weight.detach().clone()
        sd[f"layers.{i}.bias"] = layer.bias.detach().clone()
    sd["steps"] = torch.tensor(42, dtype=torch.int64)

    # transformers' sharding: in the state_dict's order, a new shard when
    # the next tensor does not fit in the current one.
    shards, current, size = [], {}, 0
    for name, t in sd.items():
        n = t.numel() * t.element_size()
        if current and size + n > MAX_SHARD:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += n
    shards.append(current)
    assert len(shards) == 2, [list(s) for s in shards]

    os.makedirs(OUT, exist_ok=True)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, os.path.join(OUT, name))
        for k, t in shard.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(OUT, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump({"model_type": "ndprune-fixture", "num_layers": 4}, f, indent=2)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(HERE, "bin-sharded-twin.safetensors"))


if __name__ == "__main__":
    main()
