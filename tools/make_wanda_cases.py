"""Writes tests/fixtures/wanda_cases.json: Wanda's masks, computed by PyTorch.

The reference computation follows the reference code (locuslab/wanda,
lib/prune.py, `prune_wanda`) and the paper (Sun, Liu, Bair & Kolter 2023,
"A Simple and Effective Pruning Approach for Large Language Models",
arXiv:2306.11695, section 3): for a Linear weight W [out, in] and its inputs
X [tokens, in],

    S[i, j] = |W[i, j]| * ||X[:, j]||_2

in the dtype PyTorch promotes the product to. The reference's norms
(`scaler_row`) are float32, so P = float64 for a float64 weight and float32
for a float32, bfloat16 or float16 one; here:

    norms = sqrt(sum(X.double()**2, 0))          (float64, as ndprune keeps them)
    S     = W.abs().to(P) * norms.to(P)          (one rounding to P)

For bf16/f16 weights the scores are float32 and ranked as float32 (rounding
them to the weight's dtype would tie entries the reference orders).

Masks (flattened, row-major, 0/1), each case storing W and X (or the norms,
for cases that supply them) as IEEE bits:

- mask_down: the reference selection, in every row the entries sorted by S
  ascending (torch.sort stable=True: among equal scores the lower index
  first) and the first int(open * ratio) pruned;
- mask_half: the same with Python's round (half to even), PyTorch's
  rounding of amounts;
- mask_iter: mask_down, then again with ratio2 of the entries each row has
  left (int(open * ratio2)), ranked by the scores of W * mask (the same
  scores on the entries still open);
- mask_nm: for "n:m" = "2:4" and "4:8" (where m divides in), the reference's
  N:M selection: for each group of m consecutive inputs,
  torch.topk(S[:, g:g+m].float(), m - n, dim=1, largest=False) pruned (the
  reference's prune_n = m - n; n here, as in ndprune, is the count kept).
  `.float()` rounds float64 scores to float32, as the reference does (the
  "f64 near" case has float64 scores that differ and round to equal
  float32s; the script asserts that `.float()` changes an N:M mask there).
  Equal scores in a group go as PyTorch's CPU topk orders them, which is
  ndprune's NmStructured tie rule (TieBreak::Torch).
- mask_down_rounded, mask_nm_rounded (bf16/f16 cases only): the same
  selections on the scores rounded to the weight's dtype, which is not the
  reference; the script asserts that they differ from mask_down and mask_nm
  in at least one case of each half dtype.

Tie-heavy cases: "ties" cases (weights on a 0.5 grid, integer inputs) have
equal scores at the cut; the "near" bf16/f16 cases have float32 scores that
differ but would round to equal bf16/f16 values across the cut, and the
script asserts that such pairs straddle the cut (one pruned, one kept) in
at least one case of each half dtype, for the per-row and the N:M masks.

Run: ~/torchenv/bin/python tools/make_wanda_cases.py
"""

import json
from pathlib import Path

import numpy as np
import torch

NM = [(2, 4), (4, 8)]


def bits(t):
    t = t.contiguous().flatten()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().astype(np.uint32).tolist()
    if t.dtype == torch.float64:
        return t.view(torch.int64).numpy().astype(np.uint64).tolist()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().astype(np.uint16).tolist()
    raise ValueError(t.dtype)


def promoted(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def scores_of(w, norms):
    p = promoted(w.dtype)
    s = w.abs().to(p) * norms.to(p).unsqueeze(0)
    assert s.dtype == p
    return s


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


def prune_nm(scores, n, m, to_float=True):
    """The reference's N:M loop: in each group of m columns, the m - n
    smallest of the float32 scores pruned (torch.topk, largest=False).
    `to_float=False` ranks float64 scores as they are (not the reference)."""
    mask = torch.ones(scores.shape, dtype=torch.int64)
    for g in range(0, scores.shape[1], m):
        tmp = scores[:, g : g + m]
        if to_float:
            tmp = tmp.float()
        idx = torch.topk(tmp, m - n, dim=1, largest=False)[1]
        mask.scatter_(1, g + idx, 0)
    return mask


def half_straddles(s32, mask, groups, half):
    """Whether some pruned and some kept entry of one comparison group (a row,
    or a group of `groups` columns of a row) have float32 scores that differ
    but are equal rounded to `half`."""
    out_f, in_f = s32.shape
    width = groups or in_f
    for i in range(out_f):
        for g in range(0, in_f, width):
            s = s32[i, g : g + width]
            k = mask[i, g : g + width]
            pruned, kept = s[k == 0], s[k == 1]
            if len(pruned) == 0 or len(kept) == 0:
                continue
            differ = pruned.unsqueeze(1) != kept.unsqueeze(0)
            tie = pruned.to(half).unsqueeze(1) == kept.to(half).unsqueeze(0)
            if bool((differ & tie).any()):
                return True
    return False


def finish(doc, w, norms_used, ratio, ratio2):
    dtype = w.dtype
    out_f, in_f = w.shape
    s = scores_of(w, norms_used)
    ones = torch.ones(out_f, in_f, dtype=torch.int64)
    down = prune_rows(s, ones, ratio, int)
    half = prune_rows(s, ones, ratio, round)
    # Second step: scores of the pruned weight, the same on open entries.
    s2 = scores_of(w * down.to(dtype), norms_used)
    again = prune_rows(s2, down, ratio2, int)
    nm = {f"{n}:{m}": prune_nm(s, n, m) for n, m in NM if in_f % m == 0}
    doc.update(
        {
            "w": bits(w),
            "ratio": ratio,
            "ratio2": ratio2,
            "mask_down": down.flatten().tolist(),
            "mask_half": half.flatten().tolist(),
            "mask_iter": again.flatten().tolist(),
            "mask_nm": {k: v.flatten().tolist() for k, v in nm.items()},
        }
    )
    if dtype == torch.float64:
        # The reference's `.float()` before its N:M topk matters where f64
        # scores differ but their f32 roundings tie.
        doc["_float_matters"] = any(
            not torch.equal(prune_nm(s, n, m, to_float=False), nm[f"{n}:{m}"])
            for n, m in NM
            if in_f % m == 0
        )
    if dtype in (torch.bfloat16, torch.float16):
        # What ranking the scores rounded to the weight's dtype gives (what
        # ndprune did before ranking in float32): kept to check that the
        # fixture tells the two apart.
        rounded = s.to(dtype)
        down_r = prune_rows(rounded, ones, ratio, int)
        nm_r = {f"{n}:{m}": prune_nm(rounded, n, m) for n, m in NM if in_f % m == 0}
        doc["mask_down_rounded"] = down_r.flatten().tolist()
        doc["mask_nm_rounded"] = {k: v.flatten().tolist() for k, v in nm_r.items()}
        doc["_straddle"] = {
            "down": half_straddles(s, down, None, dtype),
            "nm": any(half_straddles(s, v, int(k.split(":")[1]), dtype) for k, v in nm.items()),
        }
        doc["_differs"] = {
            "down": not torch.equal(down_r, down),
            "nm": any(not torch.equal(nm_r[k], v) for k, v in nm.items()),
        }
    return doc


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
    return finish(doc, w, norms_used, ratio, ratio2)


def near_case(name, dtype, out_f, in_f, ratio, ratio2, seed):
    """Weights a few steps of `dtype` above 1 (random signs) and norms a
    fraction of a step above 1: float32 scores that are (mostly) distinct,
    but that rounding to `dtype` would merge into a few values. For float64,
    steps of float32 (plus a fraction of one on the weights): float64 scores
    that the reference's `.float()` merges before its N:M topk."""
    g = torch.Generator().manual_seed(seed)
    ranked = torch.float32 if dtype == torch.float64 else dtype
    step = torch.finfo(ranked).eps  # spacing in [1, 2)
    w = 1 + step * torch.randint(0, 4, (out_f, in_f), generator=g, dtype=torch.float64)
    if dtype == torch.float64:
        w = w + step / 64 * torch.randint(0, 64, (out_f, in_f), generator=g, dtype=torch.float64)
    w = w * (torch.randint(0, 2, (out_f, in_f), generator=g) * 2 - 1)
    assert torch.equal(w.to(dtype).double(), w)
    norms = 1 + step / 128 * torch.randint(0, 128, (in_f,), generator=g, dtype=torch.float64)
    doc = {"name": name, "dtype": str(dtype).removeprefix("torch."), "out": out_f, "in": in_f}
    doc["norms"] = bits(norms)
    return finish(doc, w.to(dtype), norms, ratio, ratio2)


def main():
    bf16, f16 = torch.bfloat16, torch.float16
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
        case("bf16 16x32 half", bf16, 16, 32, 40, 0.5, 0.5, 11),
        case("f16 16x32 half", f16, 16, 32, 40, 0.5, 0.5, 12),
        case("bf16 8x10 0.35", bf16, 8, 10, 12, 0.35, 0.25, 13),
        case("f16 12x24 0.7", f16, 12, 24, 30, 0.7, 0.3, 14),
        case("bf16 ties", bf16, 10, 16, 6, 0.5, 0.5, 15, ties=True),
        case("f16 ties", f16, 10, 16, 6, 0.45, 0.45, 16, ties=True),
        near_case("bf16 near", bf16, 16, 32, 0.5, 0.5, 17),
        near_case("f16 near", f16, 16, 32, 0.5, 0.5, 18),
        near_case("bf16 near 0.3", bf16, 12, 24, 0.3, 0.4, 19),
        near_case("f64 near", torch.float64, 8, 16, 0.5, 0.5, 21),
        case(
            "bf16 given norms",
            bf16,
            4,
            8,
            0,
            0.5,
            0.5,
            20,
            norms=[0.1, 1.0 / 3.0, 0.0, 2.0, 1e-3, 7.0, 0.2, 0.3],
        ),
    ]
    # The fixture must test f32 ranking of half weights: pairs whose float32
    # scores differ but whose half scores tie, one pruned and one kept.
    for dtype in ("bfloat16", "float16"):
        for mask in ("down", "nm"):
            assert any(
                c.get("_straddle", {}).get(mask) for c in cases if c["dtype"] == dtype
            ), f"no {dtype} case has scores tied in {dtype} across the {mask} cut"
            assert any(
                c.get("_differs", {}).get(mask) for c in cases if c["dtype"] == dtype
            ), f"no {dtype} case's {mask} mask changes when scores are rounded to {dtype}"
    assert any(c.get("_float_matters") for c in cases), "no f64 case where .float() matters"
    for c in cases:
        c.pop("_float_matters", None)
    straddling = [c["name"] for c in cases if any(c.pop("_straddle", {}).values())]
    differing = [c["name"] for c in cases if any(c.pop("_differs", {}).values())]
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wanda_cases.json"
    doc = {"torch": torch.__version__, "cases": cases}
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {out}: {len(cases)} cases")
    print(f"  half ties across the cut among distinct f32 scores: {straddling}")
    print(f"  masks that ranking rounded half scores would change: {differing}")


if __name__ == "__main__":
    main()
