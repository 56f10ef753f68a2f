"""Builds tests/fixtures/sharded/ (a sharded, mixed-dtype checkpoint as
Hugging Face writes them) and tests/fixtures/sharded_expected.safetensors
(the masks PyTorch computes for it).

The model is a tiny decoder with LLaMA's names: bf16 embedding and
projections, f32 norms and an f32 lm_head, f16 o_proj. Its state_dict is
saved with safetensors.torch.save_file in shards of at most MAX_SHARD
bytes, with a model.safetensors.index.json ({"metadata": {"total_size"},
"weight_map"}) and a config.json beside them.

The expected masks, one tensor per (case, name) as "CASE/NAME":

- global/NAME: prune.global_unstructured over every float tensor of 2 or
  more dims, L1, amount 0.3, the tensors given in the order of their names
  (which is the order ndprune writes them in). PyTorch concatenates them in
  their common dtype (float32 here) and ranks there.
- l1/NAME: prune.l1_unstructured(amount=0.25) of each such tensor, in its
  own dtype.
- ln/NAME: prune.ln_structured(amount=0.5, n=2, dim=0) of each.
- rand/NAME: torch.manual_seed(7), then prune.random_unstructured(amount=0.3)
  of each, in the order of their names.
- rands/NAME: torch.manual_seed(8), then prune.random_structured(amount=0.5,
  dim=0) of each, in the order of their names.

    ~/torchenv/bin/python tools/make_sharded_fixture.py

With --check DIR, it instead loads DIR (a checkpoint ndprune wrote from
the fixture by global pruning without --remove) into the model with
prune.identity on each pruned tensor and load_state_dict(strict=True), and
checks every mask against PyTorch's own global pruning.
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
OUT = os.path.join(FIXTURES, "sharded")
EXPECTED = os.path.join(FIXTURES, "sharded_expected.safetensors")
MAX_SHARD = 6000
HIDDEN, INTER, VOCAB, LAYERS = 16, 24, 32, 2


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = nn.ModuleDict(
            {p: nn.Linear(HIDDEN, HIDDEN, bias=False) for p in ["q_proj", "k_proj", "v_proj", "o_proj"]}
        )
        self.mlp = nn.ModuleDict(
            {
                "gate_proj": nn.Linear(HIDDEN, INTER, bias=False),
                "up_proj": nn.Linear(HIDDEN, INTER, bias=False),
                "down_proj": nn.Linear(INTER, HIDDEN, bias=False),
            }
        )
        self.input_layernorm = nn.LayerNorm(HIDDEN, bias=False)
        self.post_attention_layernorm = nn.LayerNorm(HIDDEN, bias=False)


def build():
    torch.manual_seed(2026)
    model = nn.Module()
    model.model = nn.Module()
    model.model.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
    model.model.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
    model.model.norm = nn.LayerNorm(HIDDEN, bias=False)
    model.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)
    model.model.embed_tokens.to(torch.bfloat16)
    for layer in model.model.layers:
        layer.self_attn.to(torch.bfloat16)
        layer.mlp.to(torch.bfloat16)
        layer.self_attn["o_proj"].to(torch.float16)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:  # norms not all ones
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def targets(model):
    """(name, module, "weight") of every float tensor of 2 or more dims, by name."""
    mods = dict(model.named_modules())
    out = []
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            mod, local = name.rsplit(".", 1)
            out.append((name, mods[mod], local))
    return sorted(out, key=lambda t: t[0])


def write_shards(state, out):
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    shards, cur, size = [], {}, 0
    for name in state:  # state_dict order, as Hugging Face shards
        nbytes = state[name].numel() * state[name].element_size()
        if cur and size + nbytes > MAX_SHARD:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = state[name].contiguous()
        size += nbytes
    shards.append(cur)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(out, fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    config = {"architectures": ["TinyDecoder"], "hidden_size": HIDDEN, "intermediate_size": INTER,
              "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "torch_dtype": "bfloat16"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return len(shards)


def global_masks(model):
    ts = targets(model)
    prune.global_unstructured([(m, l) for _, m, l in ts], pruning_method=prune.L1Unstructured, amount=0.3)
    return {name: getattr(m, l + "_mask") for name, m, l in ts}


def recipe_masks(model):
    """The three steps of tests/recipe.rs, one after the other."""
    ts = targets(model)
    for n, m, l in ts:
        if n.endswith("_proj.weight"):
            prune.ln_structured(m, l, amount=0.25, n=2, dim=0)
    for n, m, l in ts:
        prune.l1_unstructured(m, l, amount=0.1 if n == "lm_head.weight" else 0.3)
    prune.global_unstructured([(m, l) for _, m, l in ts], pruning_method=prune.L1Unstructured, amount=0.2)
    return {name: getattr(m, l + "_mask") for name, m, l in ts}


def seeded(seed, model, method):
    """torch.manual_seed(seed), then `method` on each target in name order."""
    torch.manual_seed(seed)
    out = {}
    for n, m, l in targets(model):
        method(m, l)
        out[n] = getattr(m, l + "_mask")
    return out


def expected():
    out = {}
    for case, run in [
        ("global", global_masks),
        ("recipe", recipe_masks),
        ("l1", lambda model: {n: prune.l1_unstructured(m, l, amount=0.25) and getattr(m, l + "_mask")
                              for n, m, l in targets(model)}),
        ("ln", lambda model: {n: prune.ln_structured(m, l, amount=0.5, n=2, dim=0) and getattr(m, l + "_mask")
                              for n, m, l in targets(model)}),
        ("rand", lambda model: seeded(7, model, lambda m, l: prune.random_unstructured(m, l, amount=0.3))),
        ("rands", lambda model: seeded(8, model, lambda m, l: prune.random_structured(m, l, amount=0.5, dim=0))),
    ]:
        for name, mask in run(build()).items():
            out[f"{case}/{name}"] = mask.contiguous()
    return out


def check(path):
    model = build()
    want = global_masks(build())
    # The tensors ndprune pruned: X_orig in the output's weight_map.
    with open(os.path.join(path, "model.safetensors.index.json")) as f:
        index = json.load(f)
    state = {}
    for fname in sorted(set(index["weight_map"].values())):
        state.update(load_file(os.path.join(path, fname)))
    mods = dict(model.named_modules())
    for key in index["weight_map"]:
        if key.endswith("_orig"):
            mod, local = key[: -len("_orig")].rsplit(".", 1)
            prune.identity(mods[mod], local)
    model.load_state_dict(state, strict=True)
    bad = 0
    for name, mask in want.items():
        mod, local = name.rsplit(".", 1)
        got = getattr(mods[mod], local + "_mask")
        if got.dtype != mask.dtype or not torch.equal(got, mask):
            bad += 1
            print("differs:", name, got.dtype, mask.dtype, int((got != mask).sum()))
    print(f"{len(want) - bad} masks equal, {bad} differ; loaded with strict=True")
    raise SystemExit(1 if bad else 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", metavar="DIR")
    args = parser.parse_args()
    if args.check:
        check(args.check)
    n = write_shards(build().state_dict(), OUT)
    exp = expected()
    save_file(exp, EXPECTED, metadata={"torch_version": torch.__version__,
                                       "made_by": "tools/make_sharded_fixture.py"})
    print(f"{n} shards in {OUT}; {len(exp)} expected masks in {EXPECTED} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
