#!/usr/bin/env python3
"""Runs a file of conformance cases in PyTorch the way ndprune's checker runs
them in Rust, to check the checker's model of how the cases were drawn.

    ~/torchenv/bin/python tools/replay_torch_stream.py tests/fixtures/torch-cases.jsonl
    ~/torchenv/bin/python tools/replay_torch_stream.py tests/fixtures/torch-cases.jsonl --reseed 1

The model (tests/support/conformance.rs, `Streams`): the random steps of all
cases whose id is FAMILY/SEED/INDEX draw, in file order, from one stream per
SEED that starts as torch.manual_seed(SEED) leaves PyTorch's generator; a
case with a `torch_seed` draws from torch.manual_seed(torch_seed) alone.
Each case's end state is compared with its `expect` (exact masks, or the
number of ones for inexact cases). `--reseed K` adds K to every stream's
seed: a model that matters makes cases fail then.

`--gauss` also reports, per family, how many of the case tensors' values are
draws of Python's random.Random(SEED).gauss (either of the pair one call
makes), the generator the cases' tensors came from.

Prints the failing ids, then `N passed, N failed`.
"""
import argparse
import json
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_torch_cases as g  # noqa: E402  (run)


def id_seed(case):
    parts = case["id"].split("/")
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1])
    return None


def end_state(case, seed):
    """The state `expect` describes: after the last step, or before the failing one."""
    dtype = g.DTYPES[case["dtype"]]
    return g.run(case, dtype, seed=seed)[0]


def differs(case, state):
    for mname, want in case["expect"].items():
        for name, t in want["buffers"].items():
            got = state[mname]["buffers"].get(name)
            if got is None:
                return f"{mname}.{name} missing"
            if case["exact"]:
                if got.flatten().tolist() != [float(v) for v in t["data"]]:
                    return f"{mname}.{name} differs"
            elif float(got.sum()) != t["sum"]:
                return f"{mname}.{name}: {float(got.sum())} ones, expected {t['sum']}"
    return None


def gauss_report(cases):
    seeds = sorted({s for s in map(id_seed, cases) if s is not None})
    for seed in seeds:
        r = random.Random(seed)
        u = [r.random() for _ in range(400_000)]
        drawn32, drawn64 = set(), set()
        for a, b in zip(u, u[1:]):
            rad = math.sqrt(-2.0 * math.log(1.0 - b))
            for z in (math.cos(a * math.tau) * rad, math.sin(a * math.tau) * rad):
                drawn64.add(z)
                drawn32.add(torch.tensor(z, dtype=torch.float32).item())
        found, total = {}, {}
        for c in cases:
            if id_seed(c) != seed:
                continue
            fam = c["id"].split("/")[0]
            drawn = drawn64 if c["dtype"] == "float64" else drawn32
            for m in c["modules"].values():
                for t in m.values():
                    for v in t["data"]:
                        if isinstance(v, float) and v != int(v):
                            total[fam] = total.get(fam, 0) + 1
                            found[fam] = found.get(fam, 0) + (v in drawn)
        for fam in total:
            print(f"seed {seed} {fam}: {found[fam]} of {total[fam]} non-integer values are gauss draws", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--reseed", type=int, default=0, help="add this to every stream's seed")
    ap.add_argument("--gauss", action="store_true")
    args = ap.parse_args()
    cases = [json.loads(line) for line in open(args.file) if line.strip()]
    if args.gauss:
        gauss_report(cases)
    streams = {}  # seed -> the generator state where its stream stands
    passed, failed = 0, 0
    for case in cases:
        seed = id_seed(case)
        if "torch_seed" in case or seed is None:
            state = end_state(case, case.get("torch_seed"))
        else:
            if seed not in streams:
                torch.manual_seed(seed + args.reseed)
                streams[seed] = torch.get_rng_state()
            torch.set_rng_state(streams[seed])
            state = end_state(case, None)
            streams[seed] = torch.get_rng_state()
        why = differs(case, state)
        if why is None:
            passed += 1
        else:
            failed += 1
            print(f"{case['id']}: {why}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
