#!/usr/bin/env python3
"""Does a 2:4 checkpoint written by ndprune pass the layout check of
torch.sparse.to_sparse_semi_structured?

    cargo build --release --features cli --bin ndprune
    ~/torchenv/bin/python tools/check_semi_structured.py [--ndprune target/release/ndprune]

Builds a checkpoint of f16 and bf16 Linear-shaped weights (safetensors,
written by the `safetensors` package), prunes it with
`ndprune prune IN OUT --method nm --n 2 --m 4 --remove`, loads OUT back with
`safetensors.torch.load_file` and checks each weight against what
torch/sparse/semi_structured.py's `_validate_device_dim_dtype_shape`
requires of a tensor, and what the 2:4 format itself requires:

  - dtype f16 or bf16 (both backends take them);
  - 2-D and contiguous;
  - rows and columns at least, and a multiple of, the backend's minimum
    (CUTLASS: 32 x 64 for f16/bf16; cuSPARSELt: 16 x 16);
  - at most 2 nonzeros in every group of 4 consecutive entries of a row,
    and the nonzeros are exactly the entries of largest magnitude.

Then it calls torch.sparse.to_sparse_semi_structured itself: on a machine
without CUDA that function refuses every CPU tensor before it looks at
the data ("Only CUDA tensors are currently supported"), which the script
reports; with CUDA it converts each weight and checks that the dense form
of the result equals the weight.

Prints one line per tensor and exits 1 if any check fails.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

# torch/sparse/semi_structured.py: _DTYPE_SHAPE_CONSTRAINTS, (sparse_min_rows, sparse_min_cols).
MIN_SHAPE = {
    "cutlass": {torch.float16: (32, 64), torch.bfloat16: (32, 64)},
    "cusparselt": {torch.float16: (16, 16), torch.bfloat16: (16, 16)},
}


def layout_problems(name, t, orig):
    problems = []
    if t.dtype not in (torch.float16, torch.bfloat16):
        problems.append(f"dtype {t.dtype}")
    if t.dim() != 2:
        problems.append(f"{t.dim()} dims")
        return problems
    if not t.is_contiguous():
        problems.append("not contiguous")
    m, n = t.shape
    for backend, table in MIN_SHAPE.items():
        r, c = table.get(t.dtype, (1, 1))
        if m < r or m % r or n < c or n % c:
            problems.append(f"shape {tuple(t.shape)} not a multiple of {backend}'s ({r}, {c})")
    groups = (t != 0).reshape(m, n // 4, 4).sum(-1)
    if int(groups.max()) > 2:
        problems.append(f"a group of 4 holds {int(groups.max())} nonzeros")
    # The kept entries are the 2 of largest magnitude of each group (exact:
    # the test data has distinct magnitudes in every group).
    a = orig.abs().float().reshape(m, n // 4, 4)
    top = torch.zeros_like(a, dtype=torch.bool).scatter_(-1, a.topk(2, dim=-1).indices, True)
    if not torch.equal(top.reshape(m, n), t != 0):
        problems.append("the nonzeros are not the 2 largest magnitudes of each group")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ndprune", default=os.environ.get("NDPRUNE", "target/release/ndprune"))
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for dtype, tag in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        for shape in [(64, 128), (128, 256), (32, 64)]:
            # Distinct magnitudes in every group of 4, by construction (random
            # draws in f16/bf16 tie too often to be rejected until none do):
            # a random order of 1, 2, 3, 4 times a power of two per group,
            # with random signs, all exact in both dtypes.
            rows, groups = shape[0], shape[1] // 4
            order = torch.rand(rows, groups, 4, generator=g).argsort(-1).float() + 1
            scale = torch.exp2(torch.randint(-6, 3, (rows, groups, 1), generator=g).float())
            sign = torch.where(torch.rand(rows, groups, 4, generator=g) < 0.5, -1.0, 1.0)
            w = (order * scale * sign).reshape(shape).to(dtype)
            a = w.abs().float().reshape(rows, groups, 4).sort(-1).values
            assert bool((a[..., 1:] > a[..., :-1]).all()), "magnitudes distinct per group"
            tensors[f"{tag}_{shape[0]}x{shape[1]}.weight"] = w.contiguous()
    failed = False
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        save_file(tensors, src)
        cmd = [args.ndprune, "prune", src, dst, "--method", "nm", "--n", "2", "--m", "4", "--remove", "-q"]
        subprocess.run(cmd, check=True)
        out = load_file(dst)
    for name, orig in tensors.items():
        t = out[name]
        problems = layout_problems(name, t, orig)
        try:
            sparse = torch.sparse.to_sparse_semi_structured(t.cuda() if torch.cuda.is_available() else t)
            if not torch.equal(sparse.to_dense().cpu(), t):
                problems.append("to_sparse_semi_structured(t).to_dense() != t")
            conv = "converted by to_sparse_semi_structured, round trip equal"
        except RuntimeError as e:
            conv = f"to_sparse_semi_structured refused: {str(e).splitlines()[0]}"
            if torch.cuda.is_available():
                problems.append(conv)
        print(f"{name} {t.dtype} {tuple(t.shape)}: layout {'FAIL ' + '; '.join(problems) if problems else 'ok'}; {conv}")
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
