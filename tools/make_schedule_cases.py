"""Writes tests/fixtures/schedule_cases.json: sparsity schedules' values.

- torch.ao's CubicSL, computed by PyTorch itself: each case drives a real
  `torch.ao.pruning.scheduler.CubicSL` wrapped around a WeightNormSparsifier
  (recording `get_last_sl()` after construction and after each
  `sparsifier.step(); scheduler.step()`), and calls its static
  `sparsity_compute_fn` over a range of steps, negative ones included.
- TF-MOT's PolynomialDecay: TensorFlow is not installed here, so its values
  come from a transcription of TF-MOT's `PolynomialDecay.__call__`
  (tensorflow_model_optimization/python/core/sparsity/keras/pruning_schedule.py)
  into numpy float32, operation for operation: the cast of `step -
  begin_step` to float32, the division by the float32 constant `end_step -
  begin_step`, the clamp to [0, 1], `(1 - p) ** power` in float32, the
  float32 constants `initial - final` (subtracted in Python floats) and
  `final`. `should_prune` is `_should_prune_in_step`. `pow` is C's `powf`
  (see `powf` below). These cases check
  ndprune against that transcription, not against TensorFlow.

Values are stored as their IEEE bits (f64: u64, f32: u32), so nothing is
lost in JSON. Run: ~/torchenv/bin/python tools/make_schedule_cases.py
"""

import ctypes
import ctypes.util
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.ao.pruning import WeightNormSparsifier
from torch.ao.pruning.scheduler.cubic_scheduler import CubicSL

try:  # noqa: SIM105
    import tensorflow_model_optimization  # noqa: F401

    TF_AVAILABLE = True
except ImportError:
    TF_AVAILABLE = False


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", np.float32(x)))[0]


CUBIC = [
    # init_sl, final_sl, init_t, delta_t, total_t, initially_zero
    (0.0, 0.9, 0, 1, 10, False),
    (0.0, 0.5, 0, 10, 100, False),  # torch.ao's defaults
    (0.1, 0.8, 3, 2, 7, False),
    (0.1, 0.8, 3, 2, 7, True),
    (0.25, 0.75, -4, 3, 5, False),
    (0.3, 0.3, 2, 1, 4, False),
    (0.0, 1.0, 5, 1, 3, True),
    (0.05, 0.95, 0, 7, 13, False),
    (0.2, 0.6, 10, 5, 9, True),
    (1e-3, 0.999, 1, 1, 300, False),
]


def cubic_cases():
    cases = []
    for init_sl, final_sl, init_t, delta_t, total_t, initially_zero in CUBIC:
        model = torch.nn.Sequential(torch.nn.Linear(4, 4))
        sparsifier = WeightNormSparsifier(sparsity_level=final_sl)
        sparsifier.prepare(model, config=[{"tensor_fqn": "0.weight"}])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = CubicSL(
                sparsifier,
                init_sl=init_sl,
                init_t=init_t,
                delta_t=delta_t,
                total_t=total_t,
                initially_zero=initially_zero,
            )
            end = init_t + delta_t * total_t
            driven = [(scheduler.last_epoch, scheduler.get_last_sl()[0])]
            for _ in range(max(end, 0) + 5):
                sparsifier.step()
                scheduler.step()
                driven.append((scheduler.last_epoch, scheduler.get_last_sl()[0]))
        direct = []
        for t in list(range(init_t - 6, end + 6)) + [end * 3 + 1, -1000]:
            s = CubicSL.sparsity_compute_fn(
                init_sl, final_sl, t, init_t, delta_t, total_t, initially_zero
            )
            direct.append((t, s))
        cases.append(
            {
                "init_sl": f64_bits(init_sl),
                "final_sl": f64_bits(final_sl),
                "init_t": init_t,
                "delta_t": delta_t,
                "total_t": total_t,
                "initially_zero": initially_zero,
                "driven": [[t, f64_bits(s)] for t, s in driven],
                "direct": [[t, f64_bits(s)] for t, s in direct],
            }
        )
    return cases


POLY = [
    # initial, final, begin, end, power, frequency
    (0.0, 0.9, 0, 10, 3, 1),
    (0.5, 0.8, 0, 1000, 3, 100),
    (0.1, 0.7, 5, 37, 2, 4),
    (0.0, 0.95, 100, 1100, 3, 50),
    (0.2, 0.2, 0, 9, 3, 3),
    (0.05, 0.5, 3, 16, 1.5, 1),
    (0.0, 0.99, 0, 7, 1, 2),
    (0.3, 0.6, 1, 2, 4, 1),
]


# C's powf (glibc's is correctly rounded in practice), which Rust's
# f32::powf calls too. numpy's and torch's vectorised float32 pow differ
# from it by an ULP on a good share of inputs (numpy 2.4: 20 % of random
# cubes), and TensorFlow's Eigen kernel may as well: that is the one step
# of the transcription that cannot be pinned to TensorFlow without it.
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.powf.restype = ctypes.c_float
_LIBM.powf.argtypes = [ctypes.c_float, ctypes.c_float]


def powf(x, y):
    return np.float32(_LIBM.powf(float(x), float(y)))


def tf_polynomial_decay(initial, final, begin, end, power, step):
    """TF-MOT's PolynomialDecay.__call__, transcribed to numpy float32."""
    f32 = np.float32
    with np.errstate(all="raise"):
        elapsed = f32(np.int64(step) - np.int64(begin))  # tf.cast(.., float32)
        span = f32(end - begin)  # a Python int made a float32 constant
        p = np.minimum(f32(1.0), np.maximum(f32(0.0), elapsed / span))
        scale = f32(initial - final)  # Python floats, then float32
        return scale * powf(f32(1) - p, f32(power)) + f32(final)


def tf_should_prune(begin, end, frequency, step):
    in_range = step >= begin and (step <= end or end < 0)
    return in_range and (step - begin) % frequency == 0


def poly_cases():
    cases = []
    for initial, final, begin, end, power, frequency in POLY:
        steps = sorted(
            set(range(begin - 5, end + 2 * frequency + 3))
            | {0, -1, end * 4 + 7}
        )
        values = [
            [
                s,
                f32_bits(tf_polynomial_decay(initial, final, begin, end, power, s)),
                tf_should_prune(begin, end, frequency, s),
            ]
            for s in steps
        ]
        cases.append(
            {
                "initial_sparsity": f64_bits(initial),
                "final_sparsity": f64_bits(final),
                "begin_step": begin,
                "end_step": end,
                "power": f32_bits(power),
                "frequency": frequency,
                "values": values,
            }
        )
    return cases


def main():
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "schedule_cases.json"
    doc = {
        "torch": torch.__version__,
        "polynomial_decay_source": "TF-MOT" if TF_AVAILABLE else "numpy float32 transcription of TF-MOT",
        "cubic": cubic_cases(),
        "polynomial": poly_cases(),
    }
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {out}: {len(doc['cubic'])} CubicSL cases, {len(doc['polynomial'])} PolynomialDecay cases")


if __name__ == "__main__":
    main()
