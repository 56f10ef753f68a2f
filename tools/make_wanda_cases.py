"""Writes tests/fixtures/wanda_cases.json: Wanda's masks, computed by PyTorch.

The reference computation is written here from the paper's description
(Sun, Liu, Bair & Kolter 2023, "A Simple and Effective Pruning Approach for
Large Language Models", arXiv:2306.11695, section 3): for a Linear weight
W [out, in] and its inputs X [tokens, in],

    S[i, j] = |W[i, j]| * ||X[:, j]||_2

and in every output row i, the entries are sorted by S ascending (a stable
sort: among equal scores the lower index first) and the first
int(in_features * ratio) are pruned.

ndprune keeps norms in float64 and rounds each score once to the weight's
dtype, so here: norms = sqrt(sum(X.double()**2, 0)), S = (|W|.double() *
norms).to(W.dtype). Each case stores W and X (or the norms, for cases that
supply them) as IEEE bits, and these masks (flattened, row-major, 0/1):

- mask_down: the reference selection, int(open * ratio) per row;
- mask_half: the same with Python's round (half to even), PyTorch's rounding
  of amounts;
- mask_iter: mask_down, then again with ratio2 of the entries each row has
  left (int(open * ratio2)), ranked by the scores of W * mask (the same
  scores on the entries still open).

Run: ~/torchenv/bin/python tools/make_wanda_cases.py
"""

import json
from pathlib import Path

import numpy as np
import torch


def bits(t):
    t = t.contiguous().flatten()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().astype(np.uint32).tolist()
    if t.dtype == torch.float64:
        return t.view(torch.int64).numpy().astype(np.uint64).tolist()
    raise ValueError(t.dtype)


def scores_of(w, norms):
    return (w.double().abs() * norms.unsqueeze(0)).to(w.dtype)


def prune_rows(scores, mask, ratio, rounding):
    """Per row: the open entries sorted stably ascending by score, the first
    `count(open * ratio)` pruned. Returns a new mask."""
    mask = mask.clone()
    for i in range(scores.shape[0]):
        open_idx = torch.nonzero(mask[i] == 1).flatten()
        k = rounding(len(open_idx) * ratio)
        if k == 0:
            continue
        order = torch.sort(scores[i, open_idx], stable=True).indices
        mask[i, open_idx[order[:k]]] = 0
    return mask


def case(name, dtype, out_f, in_f, tokens, ratio, ratio2, seed, ties=False, norms=None):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, generator=g, dtype=torch.float64)
    if ties:
        # Few distinct magnitudes, so equal scores straddle the cut.
        w = torch.round(w * 2) / 2
    w = w.to(dtype)
    doc = {"name": name, "dtype": str(dtype).removeprefix("torch."), "out": out_f, "in": in_f}
    if norms is None:
        x = torch.randn(tokens, in_f, generator=g, dtype=torch.float64)
        # Features of very different scales, as in LLMs' outlier features.
        x = x * torch.logspace(-1, 1, in_f, dtype=torch.float64)[torch.randperm(in_f, generator=g)]
        if ties:
            x = torch.round(x)
        x = x.to(dtype)
        norms_used = (x.double() ** 2).sum(0).sqrt()
        doc["tokens"] = tokens
        doc["x"] = bits(x)
    else:
        norms_used = torch.tensor(norms, dtype=torch.float64)
        doc["norms"] = bits(norms_used)
    s = scores_of(w, norms_used)
    ones = torch.ones(out_f, in_f, dtype=torch.int64)
    down = prune_rows(s, ones, ratio, int)
    half = prune_rows(s, ones, ratio, round)
    # Second step: scores of the pruned weight, the same on open entries.
    s2 = scores_of(w * down.to(dtype), norms_used)
    again = prune_rows(s2, down, ratio2, int)
    doc.update(
        {
            "w": bits(w),
            "ratio": ratio,
            "ratio2": ratio2,
            "mask_down": down.flatten().tolist(),
            "mask_half": half.flatten().tolist(),
            "mask_iter": again.flatten().tolist(),
        }
    )
    return doc


def main():
    cases = [
        case("f32 16x32 half", torch.float32, 16, 32, 40, 0.5, 0.5, 1),
        case("f32 8x10 0.35", torch.float32, 8, 10, 12, 0.35, 0.25, 2),
        case("f32 8x10 0.25", torch.float32, 8, 10, 12, 0.25, 0.5, 3),
        case("f64 12x24 0.7", torch.float64, 12, 24, 30, 0.7, 0.3, 4),
        case("f32 ties", torch.float32, 10, 16, 6, 0.5, 0.5, 5, ties=True),
        case("f64 ties", torch.float64, 10, 16, 6, 0.45, 0.45, 6, ties=True),
        case("f32 32x64", torch.float32, 32, 64, 24, 0.6, 0.5, 7),
        case("f32 1x7 0.9", torch.float32, 1, 7, 3, 0.9, 0.5, 8),
        case(
            "f32 given norms with zeros",
            torch.float32,
            6,
            8,
            0,
            0.5,
            0.5,
            9,
            norms=[0.0, 1.5, 0.0, 2.0, 1e-3, 7.0, 0.0, 0.25],
        ),
        case("f64 given norms", torch.float64, 5, 6, 0, 0.5, 0.34, 10, norms=[3.0, 1.0, 0.5, 2.0, 2.0, 10.0]),
    ]
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wanda_cases.json"
    doc = {"torch": torch.__version__, "cases": cases}
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
