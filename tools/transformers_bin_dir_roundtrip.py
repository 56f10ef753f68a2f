#!/usr/bin/env python3
"""A transformers model directory of one PyTorch file, pruned by ndprune,
loaded back by transformers.

Builds a small LLaMA (random weights, nothing downloaded) and writes it as
transformers 4 writes a small model with `save_pretrained(...,
safe_serialization=False)`: `pytorch_model.bin` (the state_dict, by
`torch.save`) beside `config.json`, no index. Then, for each way of
writing OUT, runs `ndprune prune DIR OUT --method l1_unstructured
--amount 0.3 --include '*.weight' --remove` and checks that

1. OUT holds what transformers' `save_pretrained` writes: `config.json`
   and a lone `model.safetensors` (a directory output, and a re-sharded
   one that fits in one shard), or numbered shards and their
   `model.safetensors.index.json` (`--max-shard-size` below the model's
   size);
2. `from_pretrained(OUT)` loads it with no missing, unexpected or
   mismatched key, and
3. every weight equals `torch.nn.utils.prune.l1_unstructured(amount=0.3)`
   of the original, made permanent with `prune.remove`.

Usage (from the repository's root, after
`cargo build --release --features cli --bin ndprune`):

    ~/torchenv/bin/python tools/transformers_bin_dir_roundtrip.py \
        --ndprune target/release/ndprune

Needs torch and transformers; prints one line per case and exits non-zero
on a failure.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.utils.prune as prune
from transformers import LlamaConfig, LlamaForCausalLM

AMOUNT = 0.3


def build() -> LlamaForCausalLM:
    torch.manual_seed(20261203)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config).eval()


def pruned_by_torch(model: LlamaForCausalLM) -> dict:
    """Every `*.weight` of `model` pruned by l1_unstructured, removed."""
    pruned = build()
    pruned.load_state_dict(model.state_dict())
    for _, module in pruned.named_modules():
        if isinstance(getattr(module, "weight", None), torch.nn.Parameter):
            prune.l1_unstructured(module, "weight", amount=AMOUNT)
            prune.remove(module, "weight")
    return pruned.state_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ndprune", required=True, help="the ndprune binary")
    args = parser.parse_args()

    model = build()
    want = pruned_by_torch(model)
    root = Path(tempfile.mkdtemp(prefix="ndprune-bin-dir-"))
    src = root / "model"
    src.mkdir()
    model.config.save_pretrained(src)
    torch.save(model.state_dict(), src / "pytorch_model.bin")

    failures = 0
    cases = [
        ("directory", [], ["config.json", "model.safetensors"]),
        ("one shard", ["--max-shard-size", "10GB"], ["config.json", "model.safetensors"]),
        ("shards", ["--max-shard-size", "40KB"], None),
    ]
    for i, (case, extra, layout) in enumerate(cases):
        out = root / f"out{i}"
        run = subprocess.run(
            [args.ndprune, "prune", str(src), str(out), "--method", "l1_unstructured",
             "--amount", str(AMOUNT), "--include", "*.weight", "--remove", "-q", *extra],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            print(f"FAIL {case}: ndprune exited {run.returncode}: {run.stderr}")
            failures += 1
            continue
        names = sorted(p.name for p in out.iterdir())
        if layout is None:
            shards = [n for n in names if n.startswith("model-")]
            ok_layout = len(shards) >= 2 and names == sorted(
                ["config.json", "model.safetensors.index.json", *shards]
            )
        else:
            ok_layout = names == layout
        loaded, info = LlamaForCausalLM.from_pretrained(out, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        got = loaded.state_dict()
        differing = [k for k, v in want.items() if not torch.equal(v, got[k])]
        ok = ok_layout and not problems and not differing
        failures += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {case}: {names}; loading problems {problems or 'none'}; "
            f"{len(differing)} of {len(want)} tensors differ from torch's"
            + (f" ({differing[:3]})" if differing else "")
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
