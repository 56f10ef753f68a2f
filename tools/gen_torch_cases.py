#!/usr/bin/env python3
"""Writes conformance cases computed by PyTorch, in the format of
tests/fixtures/FORMAT.md, for ndprune's conformance checker.

Run with a Python that has torch (outside the repository):
    ~/torchenv/bin/python tools/gen_torch_cases.py --seed 7001 --per-family 25 \
        --out tests/fixtures/torch-cases-extra.jsonl
and check them with
    cargo run --release --example torch_conformance -- tests/fixtures/torch-cases-extra.jsonl

Each case is a small random program (modules, then pruning steps). It is kept
only when its expected state is determined:
- float precision: the program is run again with every tensor in the other
  float dtype; a case whose masks differ between the two runs sits on a near
  tie that rounding decides, and is dropped (exact ties, such as zeros or
  repeated values, give the same masks in both runs and are kept);
- randomness: a case with a random step is run under 16 torch seeds and
  kept only when every mask holds the same number of ones under all of them.
With --torch-seeded, a random case instead runs after torch.manual_seed of a
seed it records (`torch_seed`) and its masks are exact. With --one-stream,
torch.manual_seed(--seed) is called once and the random cases run one after
the other on that stream, in file order, with exact masks: the way the
checker replays cases whose ids are FAMILY/SEED/INDEX.
With --dtypes (for example `bfloat16,float16`), each case takes one of those
dtypes, and the family `wide` joins the default families: tensors with many
channels whose norms collide once rounded to a half dtype. Half-dtype
(bfloat16, float16) cases are not dropped when their masks differ from the
masks of a float32 run (stderr counts them): in a half dtype PyTorch rounds norms and compares magnitudes in
the dtype, so ties and roundings that decide masks are what the cases test
(FORMAT.md, "Half-precision cases"). Cases whose PyTorch run raises
NotImplementedError (the nuclear norm has no half kernel) are left out.
float32 and float64 in --dtypes keep the near-tie filter. Without --dtypes,
cases are float32 or float64 as before (same draws, same files).

    ~/torchenv/bin/python tools/gen_torch_cases.py --seed 1003 --per-family 25 \
        --dtypes bfloat16,float16 --one-stream --max-side 5 --wide-max 128 \
        --out tests/fixtures/torch-cases-half-extra.jsonl

The counts of dropped cases go to stderr.
"""
import argparse
import builtins
import copy
import json
import math
import random
import sys

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

KINDS = ("ValueError", "IndexError", "AssertionError", "AttributeError", "RuntimeError")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
HALF = ("bfloat16", "float16")


# ---------------------------------------------------------------- encoding


def enc_value(v):
    if v != v:
        return "NaN"
    if v == math.inf:
        return "Infinity"
    if v == -math.inf:
        return "-Infinity"
    return v


def enc(t):
    return {"shape": list(t.shape), "data": [enc_value(v) for v in t.flatten().tolist()]}


def dec(d, dtype):
    data = [float(x) if not isinstance(x, str) else float(x.replace("Infinity", "inf")) for x in d["data"]]
    return torch.tensor(data, dtype=dtype).reshape(d["shape"])


def dec_amount(a):
    if "int" in a:
        return a["int"]
    f = a["float"]
    return float("nan") if f == "NaN" else float(f)


def dec_n(n):
    if n in ("fro", "nuc"):
        return n
    if n == "inf":
        return math.inf
    if n == "-inf":
        return -math.inf
    return float(n)


# ---------------------------------------------------------------- running


def build(case, dtype):
    mods = {}
    for mname, tensors in case["modules"].items():
        m = nn.Module()
        for tname, t in tensors.items():
            m.register_parameter(tname, nn.Parameter(dec(t, dtype)))
        mods[mname] = m
    return mods


def run_step(mods, step, dtype):
    op = step["op"]
    if op == "global_unstructured":
        params = [(mods[a], b) for a, b in step["parameters"]]
        method = {"l1_unstructured": prune.L1Unstructured, "random_unstructured": prune.RandomUnstructured}[step["method"]]
        imp = None
        if "importance_scores" in step:
            imp = {}
            for key, t in step["importance_scores"].items():
                a, b = key.split(".")
                imp[(mods[a], b)] = dec(t, dtype)
        prune.global_unstructured(params, pruning_method=method, importance_scores=imp, amount=dec_amount(step["amount"]))
        return
    m = mods[step["module"]]
    name = step["name"]
    imp = dec(step["importance_scores"], dtype) if "importance_scores" in step else None
    if op == "identity":
        prune.identity(m, name)
    elif op == "remove":
        prune.remove(m, name)
    elif op == "l1_unstructured":
        prune.l1_unstructured(m, name, amount=dec_amount(step["amount"]), importance_scores=imp)
    elif op == "random_unstructured":
        prune.random_unstructured(m, name, amount=dec_amount(step["amount"]))
    elif op == "ln_structured":
        prune.ln_structured(m, name, amount=dec_amount(step["amount"]), n=dec_n(step["n"]), dim=step["dim"], importance_scores=imp)
    elif op == "random_structured":
        prune.random_structured(m, name, amount=dec_amount(step["amount"]), dim=step["dim"])
    elif op == "custom_from_mask":
        prune.custom_from_mask(m, name, mask=dec(step["mask"], dtype))
    else:
        raise SystemExit(f"unknown op {op}")


def snapshot(mods):
    state = {}
    for mname, m in mods.items():
        params = {k: v.detach().clone() for k, v in m._parameters.items() if v is not None}
        bufs = {k: v.detach().clone() for k, v in m._buffers.items() if v is not None}
        pruned = {}
        for k in params:
            if k.endswith("_orig"):
                base = k[: -len("_orig")]
                if base + "_mask" in bufs:
                    pruned[base] = params[k] * bufs[base + "_mask"]
        state[mname] = {"parameters": params, "buffers": bufs, "pruned": pruned, "is_pruned": prune.is_pruned(m)}
    return state


def run(case, dtype, seed=0):
    """Runs a case; returns (state, error) where error is (step, kind, message) or None.

    With seed=None the random steps go on drawing from PyTorch's generator as it is."""
    if seed is not None:
        torch.manual_seed(seed)
    mods = build(case, dtype)
    for i, step in enumerate(case["steps"]):
        before = snapshot(mods)
        try:
            run_step(mods, step, dtype)
        except Exception as e:  # noqa: BLE001 - the kind is the result
            # the category of FORMAT.md: torch.linalg.LinAlgError is a RuntimeError
            kind = next((k for k in KINDS if isinstance(e, getattr(builtins, k))), type(e).__name__)
            # (a RuntimeError too, but not one of FORMAT.md's: a kernel missing for the dtype)
            if isinstance(e, NotImplementedError):
                kind = "NotImplementedError"
            return before, (i, kind, str(e))
    return snapshot(mods), None


def masks(state):
    return {(m, k): v for m, s in state.items() for k, v in s["buffers"].items()}


def same_masks(a, b):
    ma, mb = masks(a), masks(b)
    return ma.keys() == mb.keys() and all(torch.equal(ma[k].double(), mb[k].double()) for k in ma)


def encode_expect(state, exact):
    out = {}
    for mname, s in state.items():
        e = {
            "parameters": {k: enc(v) for k, v in sorted(s["parameters"].items())},
            "buffers": {},
            "pruned": {},
            "is_pruned": s["is_pruned"],
        }
        for k, v in sorted(s["buffers"].items()):
            e["buffers"][k] = enc(v) if exact else {"shape": list(v.shape), "sum": float(v.sum().item())}
        for k, v in sorted(s["pruned"].items()):
            e["pruned"][k] = enc(v) if exact else {"shape": list(v.shape)}
        out[mname] = e
    return out


# ---------------------------------------------------------------- drawing


class Draw:
    def __init__(self, rng, max_side=8, wide_max=128):
        self.r = rng
        self.max_side = max_side
        self.wide_max = wide_max

    def shape(self, min_dims=1, max_dims=4, max_side=None):
        max_side = max_side or self.max_side
        if self.r.random() < 0.1:
            max_dims, max_side = 5, min(4, max_side)
        nd = self.r.randint(min_dims, max_dims)
        return [self.r.randint(1, max_side) for _ in range(nd)]

    def values(self, shape, style=None):
        n = math.prod(shape)
        style = style or self.r.choice(["normal"] * 6 + ["ties", "zeros", "small_ints"])
        if style == "normal":
            vals = [self.r.gauss(0.0, 1.0) for _ in range(n)]
        elif style == "ties":
            levels = [self.r.gauss(0, 1) for _ in range(self.r.randint(1, 4))]
            vals = [self.r.choice(levels) * self.r.choice([1, -1]) for _ in range(n)]
        elif style == "zeros":
            vals = [0.0 if self.r.random() < 0.4 else self.r.gauss(0, 1) for _ in range(n)]
        elif style == "small_ints":
            vals = [float(self.r.randint(-3, 3)) for _ in range(n)]
        elif style == "narrow":
            # magnitudes within a few percent of one level: norms that differ in float32
            # and collide in a half dtype
            level = self.r.choice([0.1, 1.0, 10.0]) * abs(self.r.gauss(0, 1)) + 1e-3
            spread = self.r.choice([0.01, 0.03, 0.1])
            vals = [level * (1 + self.r.gauss(0, spread)) * self.r.choice([1, -1]) for _ in range(n)]
        elif style == "nonfinite":
            specials = [math.nan, math.inf, -math.inf, 0.0]
            vals = [self.r.choice(specials) if self.r.random() < 0.25 else self.r.gauss(0, 1) for _ in range(n)]
        else:
            raise ValueError(style)
        return {"shape": list(shape), "data": vals}

    def mask(self, shape, p_one=None):
        n = math.prod(shape)
        p = self.r.choice([0.0, 0.5, 0.8, 1.0]) if p_one is None else p_one
        return {"shape": list(shape), "data": [1.0 if self.r.random() < p else 0.0 for _ in range(n)]}

    def channel_mask(self, shape):
        """A mask that zeroes whole channels along a random dim, plus a few entries."""
        t = torch.ones(shape, dtype=torch.float64)
        if len(shape) >= 2:
            d = self.r.randrange(len(shape))
            for c in range(shape[d]):
                if self.r.random() < 0.35:
                    t.narrow(d, c, 1).zero_()
        flat = t.flatten()
        for i in range(len(flat)):
            if self.r.random() < 0.1:
                flat[i] = 0.0
        return enc(flat.reshape(shape))

    def amount(self, size, allow_bad=False):
        r = self.r.random()
        if allow_bad and r < 0.5:
            return self.r.choice(
                [
                    {"int": -self.r.randint(1, 5)},
                    {"int": size + self.r.randint(1, 5)},
                    {"float": self.r.choice([-0.1, 1.0001, 1.5, 100.0, -1e-9])},
                    {"float": "NaN"},
                ]
            )
        r = self.r.random()
        if r < 0.35:
            return {"int": self.r.randint(0, size)}
        if r < 0.55:
            return {"float": self.r.choice([0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9, 1.0])}
        return {"float": round(self.r.random(), 4)}

    def n(self, ndims):
        choices = [1, 2, 3, 0, -1, -2, 0.5, 1.5, "inf", "-inf", "fro"]
        if ndims == 3:
            choices += ["nuc", "nuc"]
        return self.r.choice(choices)

    def dim(self, ndims):
        d = self.r.randrange(ndims)
        return d - ndims if self.r.random() < 0.4 else d


# ---------------------------------------------------------------- programs


def single_module(d, with_bias=True, min_dims=1):
    shape = d.shape(min_dims=min_dims)
    mods = {"m": {"weight": d.values(shape)}}
    if with_bias and d.r.random() < 0.7:
        bshape = [shape[0]] if d.r.random() < 0.6 else shape
        mods["m"]["bias"] = d.values(bshape)
    return mods


def size_of(mods, m, name):
    return math.prod(mods[m][name]["shape"])


def step_for(d, mods, state, kind, m="m", name=None, allow_bad=False, random_ops=False):
    """One step on module m. `state` tracks pruned names (for remove)."""
    names = list(mods[m].keys())
    name = name or d.r.choice(names)
    shape = mods[m][name]["shape"]
    size = math.prod(shape)
    nd = len(shape)
    step = {"op": kind, "module": m, "name": name}
    if kind in ("l1_unstructured", "random_unstructured"):
        step["amount"] = d.amount(size, allow_bad)
        if kind == "l1_unstructured" and d.r.random() < 0.25:
            step["importance_scores"] = d.values(shape)
    elif kind in ("ln_structured", "random_structured"):
        step["amount"] = d.amount(shape[0] if nd else 1, allow_bad)
        if nd >= 1:
            step["dim"] = d.dim(nd)
            chans = shape[step["dim"]]
            if "int" in step["amount"] and not allow_bad:
                step["amount"] = {"int": d.r.randint(0, chans)}
        else:
            step["dim"] = 0
        if kind == "ln_structured":
            step["n"] = d.n(nd)
            if d.r.random() < 0.2:
                step["importance_scores"] = d.values(shape)
    elif kind == "custom_from_mask":
        step["mask"] = d.channel_mask(shape) if d.r.random() < 0.5 else d.mask(shape)
    return step


def fam_basic(d):
    mods = single_module(d)
    steps = []
    for _ in range(d.r.randint(1, 3)):
        kind = d.r.choice(["identity", "custom_from_mask", "remove"])
        steps.append(step_for(d, mods, None, kind))
    return mods, steps


def fam_l1(d):
    mods = single_module(d)
    steps = [step_for(d, mods, None, "l1_unstructured")]
    return mods, steps


def fam_ln(d):
    mods = single_module(d, min_dims=2)
    steps = [step_for(d, mods, None, "ln_structured", name="weight")]
    return mods, steps


def fam_iterative(d):
    mods = single_module(d, min_dims=2 if d.r.random() < 0.8 else 1)
    target = "weight" if d.r.random() < 0.8 or "bias" not in mods["m"] else "bias"
    steps = []
    for _ in range(d.r.randint(2, 6)):
        kind = d.r.choice(["l1_unstructured"] * 3 + ["ln_structured"] * 3 + ["custom_from_mask", "identity", "remove"])
        s = step_for(d, mods, None, kind, name=target)
        steps.append(s)
    return mods, steps


def fam_channels(d):
    mods = single_module(d, with_bias=False, min_dims=2)
    shape = mods["m"]["weight"]["shape"]
    steps = [
        {"op": "custom_from_mask", "module": "m", "name": "weight", "mask": d.channel_mask(shape)},
        step_for(d, mods, None, "ln_structured", name="weight"),
    ]
    if d.r.random() < 0.4:
        steps.append(step_for(d, mods, None, d.r.choice(["ln_structured", "l1_unstructured"]), name="weight"))
    return mods, steps


def global_modules(d):
    mods = {}
    for i in range(d.r.randint(1, 4)):
        shape = d.shape(min_dims=1)
        mods[f"layer{i}"] = {"weight": d.values(shape), "bias": d.values([shape[0]])}
    return mods


def global_step(d, mods, method="l1_unstructured", allow_bad=False):
    targets = []
    for m, ts in mods.items():
        for t in ts:
            if t == "weight" or d.r.random() < 0.3:
                targets.append([m, t])
    total = sum(size_of(mods, m, t) for m, t in targets)
    step = {"op": "global_unstructured", "parameters": targets, "method": method, "amount": d.amount(total, allow_bad)}
    if method == "l1_unstructured" and d.r.random() < 0.3:
        imp = {}
        for m, t in targets:
            if d.r.random() < 0.7:
                imp[f"{m}.{t}"] = d.values(mods[m][t]["shape"])
        if imp:
            step["importance_scores"] = imp
    return step


def fam_global(d):
    mods = global_modules(d)
    steps = []
    if d.r.random() < 0.4:
        m = d.r.choice(list(mods))
        kind = d.r.choice(["l1_unstructured", "custom_from_mask", "ln_structured"])
        if kind == "ln_structured" and len(mods[m]["weight"]["shape"]) < 2:
            kind = "l1_unstructured"
        steps.append(step_for(d, mods, None, kind, m=m, name="weight"))
    steps.append(global_step(d, mods))
    if d.r.random() < 0.3:
        steps.append(global_step(d, mods))
    return mods, steps


def fam_random(d):
    mods = single_module(d, with_bias=False, min_dims=1)
    steps = []
    if d.r.random() < 0.3:
        mods["m2"] = {"weight": d.values(mods["m"]["weight"]["shape"])}
    for _ in range(d.r.randint(1, 3)):
        r = d.r.random()
        if r < 0.35:
            steps.append(step_for(d, mods, None, "random_unstructured", name="weight"))
        elif r < 0.65 and len(mods["m"]["weight"]["shape"]) >= 2:
            steps.append(step_for(d, mods, None, "random_structured", name="weight"))
        elif r < 0.8 and "m2" in mods:
            steps.append(global_step(d, mods, method="random_unstructured"))
        else:
            steps.append(step_for(d, mods, None, d.r.choice(["custom_from_mask", "l1_unstructured"]), name="weight"))
    return mods, steps


def fam_nonfinite(d):
    shape = d.shape(min_dims=1)
    mods = {"m": {"weight": d.values(shape, "nonfinite")}}
    if len(shape) >= 2 and d.r.random() < 0.6:
        s = step_for(d, mods, None, "ln_structured", name="weight")
    else:
        s = step_for(d, mods, None, "l1_unstructured", name="weight")
    if "importance_scores" in s and d.r.random() < 0.5:
        s["importance_scores"] = d.values(shape, "nonfinite")
    steps = [s]
    if d.r.random() < 0.3:
        steps.append(step_for(d, mods, None, "l1_unstructured", name="weight"))
    return mods, steps


def fam_rounding(d):
    # sizes and fractions whose product lands on or near .5
    size = d.r.choice([2, 4, 6, 8, 10, 12, 14, 18, 20, 30])
    frac = d.r.choice([0.05, 0.1, 0.15, 0.25, 0.3, 0.35, 0.45, 0.5, 0.55, 0.65, 0.75, 0.85, 0.95])
    if d.r.random() < 0.5:
        shape = [size]
        kind = "l1_unstructured"
    else:
        other = d.r.randint(1, 4)
        shape = [size, other] if d.r.random() < 0.5 else [other, size]
        kind = "ln_structured"
    mods = {"m": {"weight": d.values(shape, "normal")}}
    s = step_for(d, mods, None, kind, name="weight")
    s["amount"] = {"float": frac}
    if kind == "ln_structured":
        s["dim"] = shape.index(size) if shape[0] != shape[-1] else 0
    return mods, [s]


def fam_error(d):
    mods = single_module(d)
    steps = []
    for _ in range(d.r.randint(0, 2)):
        kind = d.r.choice(["l1_unstructured", "identity", "custom_from_mask", "ln_structured"])
        if kind == "ln_structured" and len(mods["m"]["weight"]["shape"]) < 2:
            kind = "l1_unstructured"
        steps.append(step_for(d, mods, None, kind, name="weight"))
    shape = mods["m"]["weight"]["shape"]
    nd = len(shape)
    bad = d.r.choice(["amount", "amount", "dim", "structured_1d", "scores", "mask", "name", "remove", "nuc", "global", "nan_and"])
    nan_and = bad == "nan_and"
    if nan_and:
        # a NaN fraction fails only when it becomes a count: which error comes first
        bad = d.r.choice(["dim", "structured_1d", "scores", "name", "global"])
    if bad == "amount":
        s = step_for(d, mods, None, d.r.choice(["l1_unstructured", "ln_structured", "random_unstructured", "random_structured"]), name="weight", allow_bad=True)
    elif bad == "dim":
        s = step_for(d, mods, None, d.r.choice(["ln_structured", "random_structured"]), name="weight")
        s["dim"] = d.r.choice([nd, nd + 1, -nd - 1, -nd - 3])
    elif bad == "structured_1d":
        mods["m"]["bias"] = d.values([shape[0]])
        s = step_for(d, mods, None, d.r.choice(["ln_structured", "random_structured"]), name="bias")
        s["dim"] = d.r.choice([0, -1])
        if s["op"] == "ln_structured":
            s["n"] = d.r.choice([1, 2, "inf"])
    elif bad == "scores":
        s = step_for(d, mods, None, d.r.choice(["l1_unstructured", "ln_structured"]) if nd >= 2 else "l1_unstructured", name="weight")
        wrong = list(shape) + [2] if d.r.random() < 0.5 else [math.prod(shape) + 1]
        s["importance_scores"] = d.values(wrong)
        if s["op"] == "ln_structured":
            s["n"] = d.r.choice([1, 2, "inf", "fro"])
    elif bad == "mask":
        s = {"op": "custom_from_mask", "module": "m", "name": "weight", "mask": d.mask([math.prod(shape) + 1])}
    elif bad == "name":
        s = step_for(d, mods, None, d.r.choice(["l1_unstructured", "identity", "custom_from_mask"]), name="weight")
        s["name"] = d.r.choice(["weights", "w", "bias_orig"]) if "bias" not in mods["m"] else "missing"
        if s["op"] == "custom_from_mask":
            s["mask"] = d.mask(shape)
    elif bad == "remove":
        s = {"op": "remove", "module": "m", "name": d.r.choice(list(mods["m"]))}
    elif bad == "nuc":
        if nd == 3 or nd < 2:
            s = step_for(d, mods, None, "ln_structured", name="weight")
            s["n"] = "nuc" if nd == 2 else d.r.choice([1, 2])
        else:
            s = step_for(d, mods, None, "ln_structured", name="weight")
            s["n"] = "nuc"
            if nd != 2:
                s["n"] = 2
                s["dim"] = nd + 2
    else:
        mods["m2"] = {"weight": d.values(d.shape())}
        s = global_step(d, mods, allow_bad=not nan_and)
    if nan_and and "amount" in s:
        s["amount"] = {"float": "NaN"}
        if s["op"] == "global_unstructured" and d.r.random() < 0.5:
            s["parameters"].append(["m", "missing"])
    steps.append(s)
    return mods, steps


def fam_flat(d):
    """Structured pruning of a 1-dim tensor that is already pruned: PyTorch
    runs it on a [1, n] (or [0, n]) view instead of refusing it."""
    n = d.r.randint(1, 8)
    mods = {"m": {"weight": d.values([n])}}
    first = d.r.choice(["custom_from_mask", "custom_from_mask", "l1_unstructured", "identity"])
    s0 = step_for(d, mods, None, first, name="weight")
    if first == "custom_from_mask" and d.r.random() < 0.3:
        s0["mask"] = d.mask([n], p_one=0.0)
    s1 = step_for(d, mods, None, d.r.choice(["ln_structured", "ln_structured", "random_structured"]), name="weight", allow_bad=d.r.random() < 0.2)
    s1["dim"] = d.r.choice([0, 0, -1, -1, 1, -2])
    if s1["op"] == "ln_structured" and s1["n"] == "nuc":
        s1["n"] = 2
    if s1["op"] == "random_structured":
        return mods, [s0, s1]
    if "int" in s1["amount"] and d.r.random() < 0.7:
        s1["amount"] = {"int": d.r.randint(0, n if s1["dim"] == -1 else 1)}
    return mods, [s0, s1]


def fam_wide(d):
    """Many channels with few entries each (half-dtype cases): their norms
    collide once rounded to the dtype, so the dtype's rounding and topk's
    tie order decide which channels go. The same step may run again (the
    pruned channels then tie at norm 0), after an l1_unstructured step or not."""
    chans = d.r.randint(max(16, d.wide_max // 4), d.wide_max)
    rest = [d.r.randint(2, 4)] + [d.r.randint(1, 4) for _ in range(d.r.choice([0, 0, 1, 2]))]
    while math.prod(rest) > 8:
        rest[d.r.randrange(1, len(rest))] = 1
    pos = d.r.randrange(len(rest) + 1) if d.r.random() < 0.3 else 0
    shape = rest[:pos] + [chans] + rest[pos:]
    style = d.r.choice(["normal"] * 2 + ["narrow"] * 3 + ["ties", "small_ints", "zeros"])
    mods = {"m": {"weight": d.values(shape, style)}}
    s = step_for(d, mods, None, "ln_structured", name="weight")
    s.pop("importance_scores", None)
    # (max, min and count norms are exact in any dtype: mostly the others)
    s["n"] = d.r.choice([1, 1, 2, 2, 3, 0.5, -1, 1.5, "fro", "fro", "inf", "-inf", 0])
    if d.r.random() < 0.85:
        s["dim"] = pos if d.r.random() < 0.6 else pos - len(shape)
    s["amount"] = {"float": d.r.choice([0.1, 0.2, 0.25, 0.3, 0.5, 0.7])} if d.r.random() < 0.8 else {"int": d.r.randint(0, shape[s["dim"]])}
    steps = [s]
    r = d.r.random()
    if r < 0.35:
        steps.append(step_for(d, mods, None, "l1_unstructured", name="weight"))
        steps[-1].pop("importance_scores", None)
        steps[-1]["amount"] = {"float": d.r.choice([0.2, 0.5])}
        if d.r.random() < 0.5:
            steps.append(copy.deepcopy(s))
    elif r < 0.6:
        steps.append(copy.deepcopy(s))
    return mods, steps


FAMILIES = {
    "basic": fam_basic,
    "l1_unstructured": fam_l1,
    "ln_structured": fam_ln,
    "iterative": fam_iterative,
    "channels": fam_channels,
    "global": fam_global,
    "random": fam_random,
    "nonfinite": fam_nonfinite,
    "rounding": fam_rounding,
    "error": fam_error,
    "flat": fam_flat,
}
# (not in the default families of float32/float64 runs, whose files stay as they were)
EXTRA_FAMILIES = {"wide": fam_wide}


def representable(mods, steps, dtype):
    """Rounds every drawn value to the case's dtype, so the JSON holds it exactly."""
    def fix(t):
        t["data"] = [enc_value(v) for v in dec(t, dtype).flatten().tolist()]

    for ts in mods.values():
        for t in ts.values():
            fix(t)
    for s in steps:
        for key in ("mask", "importance_scores"):
            if key in s:
                if s["op"] == "global_unstructured":
                    for t in s[key].values():
                        fix(t)
                else:
                    fix(s[key])


def unkept(case, err):
    """Why a case that ran to (state, err) is left out, or None."""
    if err is not None and err[1] == "NotImplementedError":
        return "no kernel for the dtype"
    if err is not None and err[1] not in KINDS:
        return "other exception"
    # PyTorch takes "nuc" on tensors that are not 3-dim without an error: left out (FORMAT.md)
    for i, s in enumerate(case["steps"]):
        target = case["modules"].get(s.get("module"), {}).get(s.get("name"))
        if s.get("n") == "nuc" and target is not None and len(target["shape"]) != 3 and (err is None or err[0] > i):
            return "nuc on a tensor that is not 3-dim"
    return None


def finished(case, state, err, exact):
    """The case with its expected state (and error), keys in FORMAT.md's order."""
    case["exact"] = exact
    case["expect"] = encode_expect(state, exact)
    if err is not None:
        case["error"] = {"step": err[0], "kind": err[1], "torch_message": err[2]}
    keys = ("id", "dtype", "exact", "torch_seed", "modules", "steps", "expect", "error")
    return {k: case[k] for k in keys if k in case}


def make_case(d, fam, idx, seed, dropped, torch_seeded=False, one_stream=False, dtypes=None):
    mods, steps = {**FAMILIES, **EXTRA_FAMILIES}[fam](d)
    if dtypes is None:
        dtype_name = "float64" if d.r.random() < 0.25 else "float32"
    else:
        dtype_name = d.r.choice(dtypes)
    dtype = DTYPES[dtype_name]
    other = torch.float32 if dtype_name == "float64" else torch.float64
    representable(mods, steps, dtype)
    case = {"id": f"{fam}/{seed}/{idx}", "dtype": dtype_name, "modules": mods, "steps": steps}
    has_random = any(s["op"].startswith("random") or s.get("method") == "random_unstructured" for s in steps)
    if has_random and torch_seeded:
        return make_seeded_case(d, case, dtype, dropped)
    if has_random and one_stream:
        return make_stream_case(case, dtype, dropped)
    # (one_stream: no reseeding, which would restart the stream of the random cases)
    base_seed = None if one_stream else 0
    state, err = run(case, dtype, seed=base_seed)
    why = unkept(case, err)
    if why is not None:
        dropped[why] += 1
        if why == "other exception":
            print("other exception:", err, steps[err[0]].get("op"), file=sys.stderr)
        return None
    if dtype_name in HALF:
        # kept whatever float32 would give: the half dtype's rounding is what is tested
        # (a count only; one_stream: the float32 run gives its draws back)
        before = torch.get_rng_state()
        state2, err2 = run(case, torch.float32, seed=base_seed)
        torch.set_rng_state(before)
        if (err is None) != (err2 is None) or not same_masks(state, state2):
            dropped["kept, masks differ in float32"] += 1
    else:
        # float precision decides nothing
        state2, err2 = run(case, other, seed=base_seed)
        if (err is None) != (err2 is None) or not same_masks(state, state2):
            dropped["near tie"] += 1
            return None
    if has_random:
        for s2 in range(1, 16):
            st, e = run(case, dtype, seed=s2)
            if (e is None) != (err is None):
                dropped["random outcome"] += 1
                return None
            sums = {k: float(v.sum()) for k, v in masks(st).items()}
            if sums != {k: float(v.sum()) for k, v in masks(state).items()}:
                dropped["random outcome"] += 1
                return None
    return finished(case, state, err, exact=not has_random)


def make_seeded_case(d, case, dtype, dropped):
    """A case whose random steps draw from torch.manual_seed(torch_seed): exact."""
    case["torch_seed"] = d.r.randrange(2**32)
    state, err = run(case, dtype, seed=case["torch_seed"])
    why = unkept(case, err)
    if why is not None:
        dropped[why] += 1
        return None
    return finished(case, state, err, exact=True)


def make_stream_case(case, dtype, dropped):
    """A case whose random steps go on drawing from the one stream that
    main() started with torch.manual_seed(--seed): exact, and kept whatever
    PyTorch drew. A dropped case gives its draws back, so the stream of the
    file is the stream of the cases written, in order."""
    before = torch.get_rng_state()
    state, err = run(case, dtype, seed=None)
    why = unkept(case, err)
    if why is not None:
        dropped[why] += 1
        torch.set_rng_state(before)
        return None
    return finished(case, state, err, exact=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--per-family", type=int, default=40)
    ap.add_argument("--out", required=True, help="the JSON-lines file to write")
    ap.add_argument(
        "--torch-seeded",
        action="store_true",
        help="give random cases a `torch_seed` (run after torch.manual_seed) and exact masks",
    )
    ap.add_argument(
        "--one-stream",
        action="store_true",
        help="run all random cases on one stream, after torch.manual_seed(--seed), in file order, "
        "and give them exact masks (as the checker replays ids FAMILY/SEED/INDEX)",
    )
    ap.add_argument(
        "--dtypes",
        help="comma-separated dtypes the cases draw from (float32, float64, bfloat16, float16); "
        "without it, float32 or float64 as before. Adds the family `wide` to the default families",
    )
    ap.add_argument("--wide-max", type=int, default=128, help="most channels of a `wide` case")
    ap.add_argument("--max-side", type=int, default=8, help="longest side of a drawn shape (smaller files)")
    ap.add_argument("--families", default=None, help="comma-separated families (default: all)")
    args = ap.parse_args()
    dtypes = None
    if args.dtypes:
        dtypes = args.dtypes.split(",")
        bad = [t for t in dtypes if t not in DTYPES]
        if bad:
            ap.error(f"unknown dtypes {bad}")
    families = args.families or ",".join(list(FAMILIES) + (list(EXTRA_FAMILIES) if dtypes else []))
    torch.manual_seed(args.seed)
    # (a file, not stdout: oneMKL prints its own complaints to stdout)
    out = open(args.out, "w")
    rng = random.Random(args.seed)
    d = Draw(rng, max_side=args.max_side, wide_max=args.wide_max)
    dropped = {"other exception": 0, "nuc on a tensor that is not 3-dim": 0, "near tie": 0, "random outcome": 0}
    if dtypes:
        dropped["no kernel for the dtype"] = 0
        dropped["kept, masks differ in float32"] = 0
    written = 0
    for fam in families.split(","):
        idx = 0
        attempts = 0
        while idx < args.per_family and attempts < args.per_family * 20:
            attempts += 1
            case = make_case(d, fam, idx, args.seed, dropped, args.torch_seeded, args.one_stream, dtypes)
            if case is None:
                continue
            out.write(json.dumps(case) + "\n")
            idx += 1
            written += 1
    kept = {k: dropped.pop(k) for k in list(dropped) if k.startswith("kept")}
    print(f"{written} cases written; dropped: {dropped}" + (f"; {kept}" if kept else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
