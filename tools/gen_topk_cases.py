#!/usr/bin/env python3
"""Writes tests/fixtures/torch-topk.jsonl: which indices torch.topk picks on
the CPU when values tie, for ndprune's tie-order test (tests/torch_topk.rs).

Run with a Python that has torch (outside the repository):
    ~/torchenv/bin/python tools/gen_topk_cases.py > tests/fixtures/torch-topk.jsonl
Each line: {"values": [...], "k": k, "largest": bool, "indices": [...sorted]}.
Values are float32, non-negative or NaN (as pruning scores are), drawn from
a few levels so that ties are everywhere.
"""
import json, random, sys
import torch

def main():
    rng = random.Random(20261128)
    sizes = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 48, 64, 65, 100, 127, 128, 129, 200, 257, 600, 1000, 3000]
    for n in sizes:
        for _ in range(8):
            levels = rng.choice([1, 2, 3, 5, 20])
            vals = [float(rng.randrange(levels)) * 0.5 for _ in range(n)]
            if rng.random() < 0.25:
                for _ in range(rng.randrange(1, 4)):
                    vals[rng.randrange(n)] = float("nan")
            for largest in (False, True):
                # k across both of torch's regimes: 64*k <= n (partial_sort) and nth_element.
                k = rng.choice([1, max(1, n // 64), max(1, n // 64 + 1), rng.randrange(1, n + 1), n])
                t = torch.tensor(vals, dtype=torch.float32)
                idx = sorted(torch.topk(t, k=k, largest=largest).indices.tolist())
                out = ["NaN" if v != v else v for v in vals]
                print(json.dumps({"values": out, "k": k, "largest": largest, "indices": idx}))

if __name__ == "__main__":
    main()
