"""The cost model's two halves, kept apart: operation counts and per-device constants.

Each method module counts its own operations from a spec (``cost(spec, device)``); this module
supplies what they share — the problem sizes in the method's terms — and the constants that
turn counts into seconds. The constants are fitted by ``benchmarks/fit_cost.py`` from recorded
calibration timings and stored in ``_cost_constants.json`` beside this file, which names the
results file and the machine they came from. A device type without fitted constants uses the
provisional table below, marked as such.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trueconv._spec import ConvSpec

CONSTANTS_FILE = Path(__file__).with_name("_cost_constants.json")

#: Used where no fitted constants exist for a device type (seconds per unit; see each
#: method's ``cost``). Provenance: hand-set orders of magnitude, *unfitted*.
PROVISIONAL: dict[str, Any] = {
    "source": "provisional, unfitted (hand-set orders of magnitude)",
    "float32": {
        "shift_add_call": 8e-6,
        "shift_add_elem": 4e-10,
        "conv_call": 3e-5,
        "conv_mac": 2e-10,
        "fft_call": 4e-5,
        "fft_work": 6e-10,
        "overlap_add_call": 8e-5,
        "overlap_add_work": 6e-10,
    },
    "float64": {
        "shift_add_call": 8e-6,
        "shift_add_elem": 8e-10,
        "conv_call": 3e-5,
        "conv_mac": 2e-9,
        "fft_call": 4e-5,
        "fft_work": 1.2e-9,
        "overlap_add_call": 8e-5,
        "overlap_add_work": 1.2e-9,
    },
}

#: Complex data: a complex multiply-add is four real ones; a complex transform of length L
#: costs about twice the real (half-spectrum) transform of the same length.
COMPLEX_FACTOR = {"shift_add": 4.0, "conv": 4.0, "fft": 2.0, "overlap_add": 2.0}


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    try:
        return dict(json.loads(CONSTANTS_FILE.read_text())["devices"])
    except (OSError, ValueError, KeyError):
        return {}


def constants(device_type: str) -> dict[str, Any]:
    """The constants for a device type: fitted when recorded, else :data:`PROVISIONAL`."""
    return _table().get(device_type, PROVISIONAL)


def seconds(
    variant: str, dtype: torch.dtype, device_type: str, calls: float, units: float
) -> float:
    """``calls * c_call + units * c_unit`` for a method variant, with the dtype's constants."""
    table = constants(device_type)
    real = dtype.to_real() if dtype.is_complex else dtype
    row = table["float64" if real == torch.float64 or not real.is_floating_point else "float32"]
    factor = COMPLEX_FACTOR[variant] if dtype.is_complex else 1.0
    unit = "elem" if variant == "shift_add" else ("mac" if variant == "conv" else "work")
    return calls * row[f"{variant}_call"] + factor * units * row[f"{variant}_{unit}"]


@dataclass(frozen=True)
class Sizes:
    """A spec in the terms of the canonical problem the methods solve."""

    a: tuple[int, ...]  # signal-role lengths along the convolved dims, padding included
    b: tuple[int, ...]  # kernel-role lengths
    out: tuple[int, ...]  # output lengths along the convolved dims
    batch_a: int  # signals (product of the signal role's batch dims)
    batch_b: int  # kernels
    batch: int  # outputs

    @property
    def taps(self) -> int:
        return math.prod(self.b)

    @property
    def out_elems(self) -> int:
        return self.batch * math.prod(self.out)


def sizes(spec: ConvSpec) -> Sizes:
    xb = math.prod(s for d, s in enumerate(spec.x_shape) if d not in spec.dims)
    kb = math.prod(s for d, s in enumerate(spec.k_shape) if d not in spec.dims)
    if spec.swap:
        a, b, ba, bb = spec.k, spec.n, kb, xb
    else:
        a = tuple(n + bf + af for n, (bf, af) in zip(spec.n, spec.pads))
        b, ba, bb = spec.k, xb, kb
    out = tuple(spec.out_shape[d] for d in spec.dims)
    return Sizes(a, b, out, ba, bb, math.prod(spec.batch_shape))


def canonical(
    spec: ConvSpec,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The convolved lengths of ``a`` and ``b`` and the implicit pads, as ``run`` sees them."""
    if spec.swap:
        return spec.k, spec.n, spec.method_pads
    if spec.extend_explicitly:
        return sizes(spec).a, spec.k, spec.method_pads
    return spec.n, spec.k, spec.method_pads


def transform_work(points: int, count: float) -> float:
    """``count`` transforms of ``points`` points: ``count * points * log2(points)``."""
    return count * points * math.log2(points) if points > 1 else count * points
