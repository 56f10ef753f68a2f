#!/usr/bin/env python3
"""The decoder shrink against Hugging Face transformers.

Builds a small LLaMA (random weights, nothing downloaded), saves it in
shards with `save_pretrained`, shrinks it with `ndprune shrink --groups
decoder --amount A`, then checks with transformers that

1. the shrunk checkpoint loads into the smaller config (`config.json` as
   ndprune rewrote it) with no missing, unexpected or mismatched key, and
2. its logits equal those of the original model with the removed MLP
   channels and key/value heads masked (zeroed) in place.

With --fixture DIR it also writes the saved input checkpoint and the
channels ndprune removed there (tests/fixtures/hf-llama/ in the crate).

Usage (from the repository's root, after
`cargo build --release --features cli --bin ndprune`):

    ~/torchenv/bin/python tools/transformers_shrink_roundtrip.py \
        --ndprune target/release/ndprune [--amount 0.5] [--dtype bfloat16] \
        [--fixture tests/fixtures/hf-llama]

Needs torch, transformers and safetensors; prints one line per check and
exits non-zero on a failure.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def build(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    # Random weights of a trained model's scale, not the init's zeros.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


def masked(model: LlamaForCausalLM, report: dict) -> LlamaForCausalLM:
    """The model with every removed channel zeroed where ndprune cut it."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per = cfg.num_attention_heads // cfg.num_key_value_heads
    params = dict(model.named_parameters())
    with torch.no_grad():
        for g in report["groups"]:
            primary = g["primary"]
            removed = g["removed"]
            if primary.endswith("mlp.gate_proj.weight"):
                p = primary[: -len("gate_proj.weight")]
                for c in removed:
                    params[p + "gate_proj.weight"][c, :] = 0
                    params[p + "up_proj.weight"][c, :] = 0
                    params[p + "down_proj.weight"][:, c] = 0
            elif primary.endswith("self_attn.q_proj.weight"):
                p = primary[: -len("q_proj.weight")]
                for c in removed:
                    q = slice(c * per * head_dim, (c + 1) * per * head_dim)
                    kv = slice(c * head_dim, (c + 1) * head_dim)
                    params[p + "q_proj.weight"][q, :] = 0
                    params[p + "k_proj.weight"][kv, :] = 0
                    params[p + "v_proj.weight"][kv, :] = 0
                    params[p + "o_proj.weight"][:, q] = 0
            else:
                raise SystemExit(f"unexpected group {primary}")
    return model


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ndprune", required=True)
    ap.add_argument("--amount", default="0.5")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fixture", type=Path)
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                    help="the dtype the checkpoint is saved in (logits compared in float32)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ndprune-hf-"))
    try:
        src, out = work / "in", work / "out"
        dtype = getattr(torch, args.dtype)
        model = build(args.seed).to(dtype)
        model.save_pretrained(src, safe_serialization=True, max_shard_size="20KB")
        shards = sorted(p.name for p in src.glob("*.safetensors"))
        print(f"saved {len(shards)} shards with {src.joinpath('model.safetensors.index.json').exists() and 'an index' or 'no index'}")
        run = subprocess.run(
            [args.ndprune, "shrink", str(src), str(out), "--groups", "decoder",
             "--amount", args.amount, "--json"],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return 1
        report = json.loads(run.stdout)
        print("ndprune rewrote config:", report["config"])

        small, info = LlamaForCausalLM.from_pretrained(
            out, output_loading_info=True, dtype=torch.float32)
        small.eval()
        problems = {k: v for k, v in info.items() if v}
        print("strict load (missing/unexpected/mismatched keys):", problems or "none")
        ok = not problems

        ids = torch.randint(0, model.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            # The saved input, loaded as the output is (float32), masked.
            original = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
            want = masked(original, report)(ids).logits
            got = small(ids).logits
        diff = (want - got).abs().max().item()
        scale = want.abs().max().item()
        close = torch.allclose(want, got, rtol=1e-5, atol=1e-5)
        print(f"logits: max |masked - shrunk| = {diff:.3g} (max |logit| {scale:.3g}): {'equal' if close else 'DIFFERENT'}")
        ok = ok and close
        n_before = sum(p.numel() for p in model.parameters())
        n_after = sum(p.numel() for p in small.parameters())
        print(f"parameters: {n_before} -> {n_after}")

        if args.fixture:
            if args.fixture.exists():
                shutil.rmtree(args.fixture)
            shutil.copytree(src, args.fixture / "in")
            removed = {g["primary"]: g["removed"] for g in report["groups"]}
            (args.fixture / "expected.json").write_text(json.dumps({
                "amount": args.amount,
                "dtype": args.dtype,
                "removed": removed,
                "config": report["config"],
                "max_abs_logit_diff": diff,
            }, indent=1) + "\n")
            print(f"fixture written to {args.fixture}")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
