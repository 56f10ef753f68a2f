#!/usr/bin/env python3
"""Writes tests/fixtures/pth/: a small model's state_dict as torch.save
writes it, and its safetensors twin, for ndprune's `.pth` reader
(tests/pth.rs, feature `pth`).

Run with a Python that has torch and safetensors (outside the repository):
    ~/torchenv/bin/python tools/make_pth_fixture.py

Files (a few kilobytes each):
- model.pth: torch.save(model.state_dict()) of conv + batchnorm + linear
  (f32), a bf16 and an f16 linear, an f64 buffer; the batchnorm's
  num_batches_tracked is int64.
- nested.pth: {"state_dict": state_dict, "epoch": 3, "optimizer": "sgd"}.
- views.pth: tensors that share one storage, a transposed view and an
  offset slice (torch.save keeps the storage, not the view's copy).
- model.safetensors: safetensors.torch.save_file of the same state_dict
  (views made contiguous), the twin every .pth is compared with.
"""
import os
import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pth")


def main():
    torch.manual_seed(20261202)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(16, 8),
    )
    # A step so that the batchnorm's running statistics are not 0/1.
    model.train()
    model(torch.randn(5, 2, 4, 4))
    sd = dict(model.state_dict())
    half = nn.Linear(8, 6).to(torch.bfloat16)
    sd["head.weight"] = half.weight.detach()
    sd["head.bias"] = half.bias.detach()
    f16 = nn.Linear(6, 4).to(torch.float16)
    sd["out.weight"] = f16.weight.detach()
    sd["scale"] = torch.randn(3, dtype=torch.float64)
    os.makedirs(OUT, exist_ok=True)

    torch.save(sd, os.path.join(OUT, "model.pth"))
    torch.save({"state_dict": sd, "epoch": 3, "optimizer": "sgd"}, os.path.join(OUT, "nested.pth"))
    save_file({k: v.contiguous().clone() for k, v in sd.items()}, os.path.join(OUT, "model.safetensors"))

    # Views: one storage of 40 floats, saved through three views of it.
    base = torch.arange(40, dtype=torch.float32).reshape(5, 8) * 0.25 - 3.0
    views = {
        "fc.weight": base.t(),            # strided (transposed) 8 x 5
        "fc.bias": base[2, 1:6],           # an offset slice, 5 elements
        "whole": base,                     # the storage itself
        "cols": base[:, ::2],              # strided columns, 5 x 4
    }
    torch.save(views, os.path.join(OUT, "views.pth"))
    save_file({k: v.contiguous().clone() for k, v in views.items()}, os.path.join(OUT, "views.safetensors"))


if __name__ == "__main__":
    main()
