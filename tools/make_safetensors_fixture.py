"""Builds tests/fixtures/torch_pruned.safetensors and its JSON sidecar.

A small model (Conv2d + BatchNorm2d + Flatten + Linear) is pruned with
torch.nn.utils.prune (ln_structured, then l1_unstructured, on the conv;
l1_unstructured on the linear), and its state_dict() is saved with
safetensors.torch.save_file. The sidecar records what PyTorch had: the keys
in state_dict order, each key's dtype and shape, the masks, and the pruned
weights (module.weight, which the state_dict does not hold).

    ~/torchenv/bin/pip install torch safetensors
    ~/torchenv/bin/python tools/make_safetensors_fixture.py

With --check FILE, it instead loads FILE (a checkpoint ndprune wrote back)
into the same model, pruned the same way, with load_state_dict(strict=True),
and checks that every tensor equals the fixture's.
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
OUT = os.path.join(FIXTURES, "torch_pruned.safetensors")
SIDECAR = os.path.join(FIXTURES, "torch_pruned.json")
METADATA = {"format": "pt", "made_by": "tools/make_safetensors_fixture.py"}


def build():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),  # weight [4, 2, 3, 3]
        nn.BatchNorm2d(4),  # running stats, num_batches_tracked (int64)
        nn.Flatten(),
        nn.Linear(16, 5),  # weight [5, 16]
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running stats and a counter of 3
            model(torch.randn(6, 2, 4, 4))
    prune.ln_structured(model[0], "weight", amount=0.5, n=2, dim=0)
    prune.l1_unstructured(model[0], "weight", amount=0.25)
    prune.l1_unstructured(model[3], "weight", amount=0.3)
    return model


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", metavar="FILE")
    args = parser.parse_args()
    model = build()
    sd = model.state_dict()
    if args.check:
        loaded = load_file(args.check)
        assert sorted(loaded) == sorted(sd), (sorted(loaded), sorted(sd))
        fresh = build()
        fresh.load_state_dict(loaded, strict=True)
        for k, v in sd.items():
            assert loaded[k].dtype == v.dtype, k
            assert torch.equal(loaded[k], v), k
        print(f"{args.check}: {len(loaded)} tensors, same keys, dtypes and values as PyTorch's")
        return
    save_file({k: v.contiguous() for k, v in sd.items()}, OUT, metadata=METADATA)
    sidecar = {
        "torch_version": torch.__version__,
        "metadata": METADATA,
        "keys": list(sd.keys()),
        "dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in sd.items()},
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "masks": {
            "0.weight": flat(model[0].weight_mask),
            "3.weight": flat(model[3].weight_mask),
        },
        "weights": {
            "0.weight": flat(model[0].weight),
            "3.weight": flat(model[3].weight),
        },
        "num_batches_tracked": int(model[1].num_batches_tracked),
    }
    with open(SIDECAR, "w") as f:
        json.dump(sidecar, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes) and {SIDECAR}")


if __name__ == "__main__":
    main()
