#!/usr/bin/env python3
"""Conformance cases for ndprune's BlockSparsity / NmStructured against
torch.ao.pruning.WeightNormSparsifier.

    ~/torchenv/bin/python tools/make_ao_cases.py            # writes tests/fixtures/ao/*.json

For each case a module with one parameter `weight` (2-D, of the case's dtype)
is prepared with WeightNormSparsifier(sparsity_level, sparse_block_shape,
zeros_per_block, norm) and stepped once (or once per level of `levels`, the
same sparsifier stepped again after its config's level is changed, which is
what a schedule does); the mask after each step is recorded.

Data: standard normal values cast to the dtype ("random"), or small
integers ("ties": many equal norms, so equal scores straddle the cuts and
the result depends on how torch.topk orders ties). For "random" cases the
generator redraws until no equal scores straddle a cut (block means at the
block cut, entry norms inside chosen blocks), so their masks do not depend
on the tie rule at all.

Cases torch.ao cannot run (a zeros_per_block below the block size on a
tensor whose sides are not multiples of the block) are recorded with what
torch did ("raises" with the exception class, or "padded_mask" with the
shape of the mask it returned); ndprune refuses them with a typed error.

Each file: {"torch": version, "cases": [...]}, a case:
  name, dtype ("f32" | "f64" | "f16" | "bf16"), shape [h, w],
  block [r, c], zeros_per_block, norm (1 | 2), levels [..],
  data: "random" | "ties", weight: hex of the little-endian bytes,
  masks: ["0101..." per step] (row-major), or torch_error / torch_mask_shape,
  nm: [n, m] when the case is torch.ao's N:M (level 1, block (1, m)),
  abs_order_same: the entries' |w| order within every block equals their
  norm order (ties included), so NmStructured (ranking by |w|) must agree.
"""
import json
import math
import os
import random
import sys
import warnings

import torch
from torch import nn
from torch.ao.pruning import WeightNormSparsifier

warnings.filterwarnings("ignore")

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ao")


def hexbytes(t):
    if t.dtype == torch.bfloat16:
        arr = t.contiguous().view(torch.int16).numpy()
    else:
        arr = t.contiguous().numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes().hex()


def norm_values(w, norm):
    return w.abs() if norm == 1 else w * w


def block_means(w, block, norm):
    import torch.nn.functional as F
    e = norm_values(w, norm)
    if block[0] * block[1] == 1:
        return e.flatten()
    return F.avg_pool2d(e[None, None], kernel_size=block, stride=block, ceil_mode=True).flatten()


def tie_free(w, block, zpb, levels, norm):
    """No equal scores straddle a cut of the first step."""
    h, wd = w.shape
    vpb = block[0] * block[1]
    level = levels[0]
    if level <= 0 or zpb == 0:
        return True
    means = block_means(w, block, norm).double()
    n = len(means)
    if level < 1:
        k = max(0, min(n - 1, round(level * n)))
        if 0 < k < n:
            s, _ = torch.sort(means)
            if s[k - 1] == s[k]:
                return False
    if zpb < vpb:
        e = norm_values(w, norm).double()
        br, bc = block
        for i in range(0, h, br):
            for j in range(0, wd, bc):
                vals, _ = torch.sort(e[i:i + br, j:j + bc].flatten())
                if vals[zpb - 1] == vals[zpb]:
                    return False
    return True


def abs_order_same(w, block, norm):
    """Within every block, |w| ties and orders exactly as the norm values do."""
    e = norm_values(w, norm).double()
    a = w.abs().double()
    h, wd = w.shape
    br, bc = block
    for i in range(0, h, br):
        for j in range(0, wd, bc):
            ev = e[i:i + br, j:j + bc].flatten()
            av = a[i:i + br, j:j + bc].flatten()
            if not torch.equal(ev[:, None] < ev[None, :], av[:, None] < av[None, :]):
                return False
            if not torch.equal(ev[:, None] == ev[None, :], av[:, None] == av[None, :]):
                return False
    return True


def run_torch(w, block, zpb, levels, norm):
    model = nn.Sequential(nn.Module())
    model[0].register_parameter("weight", nn.Parameter(w.clone()))
    sp = WeightNormSparsifier(sparsity_level=levels[0], sparse_block_shape=tuple(block),
                              zeros_per_block=zpb, norm=norm)
    sp.prepare(model, [{"tensor_fqn": "0.weight"}])
    masks = []
    for level in levels:
        sp.groups[0]["sparsity_level"] = level
        try:
            sp.step()
        except Exception as e:  # torch.ao refuses the case
            return {"torch_error": type(e).__name__}
        mask = model[0].parametrizations.weight[0].mask
        if tuple(mask.shape) != tuple(w.shape):
            return {"torch_mask_shape": list(mask.shape)}
        masks.append("".join("1" if v else "0" for v in mask.flatten().bool().tolist()))
    return {"masks": masks}


def make(rng, gen, name, dtype, shape, block, zpb, levels, norm, data, nm=None):
    dt = DTYPES[dtype]
    for attempt in range(200):
        if data == "ties":
            w = torch.randint(-3, 4, shape, generator=gen).to(dt)
        else:
            w = torch.randn(shape, generator=gen).to(dt)
        padded = shape[0] % block[0] or shape[1] % block[1]
        if data == "ties" or (zpb < block[0] * block[1] and padded) or tie_free(w, block, zpb, levels, norm):
            break
    else:
        return None
    case = {"name": name, "dtype": dtype, "shape": list(shape), "block": list(block),
            "zeros_per_block": zpb, "norm": norm, "levels": levels, "data": data,
            "weight": hexbytes(w)}
    case.update(run_torch(w, block, zpb, levels, norm))
    if nm is not None:
        case["nm"] = list(nm)
        case["abs_order_same"] = abs_order_same(w, block, norm)
    return case


def main():
    rng = random.Random(20261203)
    gen = torch.Generator().manual_seed(20261203)
    shapes = [(4, 8), (8, 16), (16, 16), (7, 12), (12, 7), (33, 64), (64, 33), (1, 16),
              (16, 1), (5, 5), (32, 96), (96, 32), (64, 64), (3, 40)]
    blocks = [(1, 4), (1, 2), (1, 8), (2, 2), (4, 4), (2, 4), (4, 1), (3, 5), (1, 1), (8, 8)]
    levels = [0.0, 0.1, 0.3, 0.5, 0.75, 0.99, 1.0]
    files = {"block": [], "nm": [], "iterative": [], "refused": []}
    for dtype in DTYPES:
        for i in range(60):
            shape = rng.choice(shapes)
            block = rng.choice(blocks)
            vpb = block[0] * block[1]
            zpb = rng.choice(sorted({vpb, max(vpb - 1, 0), vpb // 2, 1, 0}))
            level = rng.choice(levels)
            norm = rng.choice([1, 2])
            data = "ties" if i % 4 == 3 else "random"
            c = make(rng, gen, f"{dtype}-block-{i}", dtype, shape, block, zpb, [level], norm, data)
            if c is None:
                continue
            files["refused" if "masks" not in c else "block"].append(c)
        for (n, m) in [(2, 4), (1, 4), (4, 8), (3, 8), (1, 2), (2, 8), (0, 4), (4, 4)]:
            for shape in [(8, 16), (16, 32), (3, 24), (64, 8)]:
                for norm in [2, 1]:
                    for data in ["random", "ties"]:
                        if shape[1] % m:
                            continue
                        c = make(rng, gen, f"{dtype}-nm{n}:{m}-{shape[0]}x{shape[1]}-L{norm}-{data}",
                                 dtype, shape, (1, m), m - n, [1.0], norm, data, nm=(n, m))
                        if c is not None:
                            files["nm"].append(c)
        # Repeated whole-block steps of f16/bf16 are left out: torch.ao's
        # mask is then float32 (torch.ones), so its next step ranks the
        # weight promoted to float32 (w*w and the block means unrounded),
        # where ndprune ranks in the tensor's dtype.
        for i in range(12 if dtype in ("f32", "f64") else 0):
            shape = rng.choice([(16, 16), (8, 32), (32, 64)])
            block = rng.choice([(1, 4), (2, 2), (4, 4), (1, 8)])
            # Whole blocks: with zeros_per_block below the block size, torch.ao's
            # next step may drop a block chosen before and give back the
            # entries it had pruned; ndprune never revives an entry.
            zpb = block[0] * block[1]
            first = rng.choice([0.2, 0.3, 0.5])
            c = make(rng, gen, f"{dtype}-iter-{i}", dtype, shape, block, zpb,
                     [first, min(1.0, first + rng.choice([0.2, 0.4]))], rng.choice([1, 2]), "random")
            if c is not None:
                files["iterative"].append(c)
        # N:M then a sparser N:M (2:4, then 1:4): the step's zeros_per_block
        # changes.
        for shape in [(8, 16), (16, 32)]:
            w = torch.randn(shape, generator=gen).to(DTYPES[dtype])
            masks = []
            model = nn.Sequential(nn.Module())
            model[0].register_parameter("weight", nn.Parameter(w.clone()))
            sp = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, 4), zeros_per_block=2)
            sp.prepare(model, [{"tensor_fqn": "0.weight"}])
            for z in [2, 3]:
                sp.groups[0]["zeros_per_block"] = z
                sp.step()
                mask = model[0].parametrizations.weight[0].mask
                masks.append("".join("1" if v else "0" for v in mask.flatten().bool().tolist()))
            files["iterative"].append({"name": f"{dtype}-nm-2:4-then-1:4-{shape}", "dtype": dtype,
                                       "shape": list(shape), "block": [1, 4], "zeros_per_block": [2, 3],
                                       "norm": 2, "levels": [1.0, 1.0], "data": "random",
                                       "weight": hexbytes(w), "masks": masks})
        # The N:M cases on a row not made of whole groups: torch.ao pads.
        for (shape, block, zpb, level) in [((5, 6), (1, 4), 2, 1.0), ((5, 6), (1, 4), 2, 0.5),
                                           ((6, 5), (2, 2), 1, 0.5), ((1, 6), (2, 3), 2, 0.5)]:
            c = make(rng, gen, f"{dtype}-refused-{shape}-{block}-{level}", dtype, shape, block, zpb,
                     [level], 2, "random")
            files["refused"].append(c)
    os.makedirs(OUT, exist_ok=True)
    for key, cases in files.items():
        with open(os.path.join(OUT, f"{key}.json"), "w") as f:
            json.dump({"torch": torch.__version__, "cases": cases}, f, indent=0)
        print(key, len(cases), file=sys.stderr)


if __name__ == "__main__":
    main()
