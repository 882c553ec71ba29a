"""The cost model's two halves, kept apart: operation counts and per-device constants.

Each method counts its own operations when it plans a problem (``Plan.counts``, see
:mod:`trueconv._problem`); this module supplies the shared transform model and the constants
that turn counts into seconds. The constants are fitted by ``benchmarks/fit_cost.py`` from recorded
calibration timings and stored in ``cost_constants.json`` beside this file, which names the
results file and the machine they came from. A device type without fitted constants uses the
provisional table below, marked as such.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from trueconv.core.static import register

CONSTANTS_FILE = Path(__file__).with_name("cost_constants.json")

#: Used where no fitted constants exist for a device type (seconds per unit; see each
#: method's ``cost``). Provenance: hand-set orders of magnitude, *unfitted*.
PROVISIONAL: dict[str, Any] = {
    "source": "provisional, unfitted (hand-set orders of magnitude)",
    "float32": {
        "rows_call": 2e-5,
        "rows_mac": 1e-10,
        "fused_call": 2e-5,
        "fused_mac": 1e-10,
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
        "rows_call": 2e-5,
        "rows_mac": 2e-10,
        "fused_call": 2e-5,
        "fused_mac": 2e-10,
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
COMPLEX_FACTOR = {
    "rows": 4.0,
    "fused": 4.0,
    "shift_add": 4.0,
    "conv": 4.0,
    "fft": 2.0,
    "overlap_add": 2.0,
    "nn_direct": 4.0,
    "nn_fft": 2.0,
}


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    try:
        return dict(json.loads(CONSTANTS_FILE.read_text())["devices"])
    except (OSError, ValueError, KeyError):
        return {}


#: Returns this machine's calibrated CPU constants (per dtype class) or None; installed by
#: :mod:`trueconv.calibration` (this layer imports nothing above it).
_CALIBRATION: Callable[[], dict[str, Any] | None] | None = None


def use_calibration(provider: Callable[[], dict[str, Any] | None] | None) -> None:
    """Price the CPU with ``provider()``'s constants where it returns some (merged over the
    shipped ones), from the next prediction on."""
    global _CALIBRATION
    _CALIBRATION = provider
    _merged.cache_clear()


def constants(device_type: str) -> dict[str, Any]:
    """The constants for a device type: this machine's calibration for the CPU when there is
    one (:mod:`trueconv.calibration`), else the fitted ones when recorded, else
    :data:`PROVISIONAL`."""
    if device_type == "cpu" and _CALIBRATION is not None:
        return _merged(torch.get_num_threads())
    return _table().get(device_type, PROVISIONAL)


@functools.lru_cache(maxsize=64)
def _merged(threads: int) -> dict[str, Any]:
    """The shipped CPU table with the calibrated values over it (per torch thread count: a
    calibration holds for the count it was made at)."""
    base = _table().get("cpu", PROVISIONAL)
    user = _CALIBRATION() if _CALIBRATION is not None else None
    if not user:
        return base
    out = {key: dict(v) if isinstance(v, dict) else v for key, v in base.items()}
    for dclass, values in user.items():
        out.setdefault(dclass, {}).update(values)
    out["source"] = "calibrated on this machine (trueconv.calibration.in_use())"
    return out


class Counts(NamedTuple):
    """What a method does for one call: Python-level calls, and its work unit count."""

    #: names the constants: the signal API's 'rows', 'fused' (the separable kernel's compiled
    #: loop, :mod:`trueconv._methods.rows_separable`), 'shift_add', 'conv', 'fft', 'overlap_add',
    #: and the NN API's 'nn_direct' (``F.convNd``) and 'nn_fft' (channel-mixing FFT)
    variant: str
    calls: float
    units: float  # multiply-adds, output samples per tap, or transform work (P log2 P)
    #: elements moved by copies, pads, products and merges (transforms); the compiled loops'
    #: output samples ('rows', 'fused')
    passes: float = 0.0
    #: a second count where one method has two kinds of work: nn_fft's complex multiply-adds
    #: of the per-frequency channel mixing; nn_direct's unfolded (im2col) matrix elements
    #: where F.convNd has no oneDNN kernel; the compiled direct loop's passes over output
    #: row tiles ('rows': :func:`trueconv._methods.direct.rows_counts`; 'fused': its tap
    #: groups' passes over output row tiles)
    aux: float = 0.0
    #: the input's and output's samples where they do not fit in the cache together
    #: (:func:`memory`): what streaming them from memory adds
    memory: float = 0.0


UNIT = {
    "rows": "mac",
    "fused": "mac",
    "shift_add": "elem",
    "conv": "mac",
    "fft": "work",
    "overlap_add": "work",
    "nn_direct": "mac",
    "nn_fft": "work",
}


def has_constants(variants: tuple[str, ...], device_type: str) -> bool:
    """Whether the device type's constants price every variant (both dtype classes)."""
    table = constants(device_type)
    return all(
        f"{v}_call" in table.get(dclass, {}) for v in variants for dclass in ("float32", "float64")
    )


def predict(c: Counts, dtype: torch.dtype, device_type: str) -> float:
    """Seconds: ``calls · c_call + units · c_unit + passes · c_pass + aux · c_aux + memory ·
    c_memory``, with the dtype's constants."""
    table = constants(device_type)
    real = dtype.to_real() if dtype.is_complex else dtype
    row = table["float64" if real == torch.float64 or not real.is_floating_point else "float32"]
    factor = COMPLEX_FACTOR[c.variant] if dtype.is_complex else 1.0
    per_unit = row[f"{c.variant}_{UNIT[c.variant]}"]
    per_pass = row.get(f"{c.variant}_pass", 0.0)
    per_aux = row.get(f"{c.variant}_aux", 0.0)
    per_memory = row.get(f"{c.variant}_memory", 0.0)
    work = c.units * per_unit + c.passes * per_pass + c.aux * per_aux + c.memory * per_memory
    return c.calls * row[f"{c.variant}_call"] + factor * work


#: Bytes of input and output from which a call no longer runs in the last-level cache (this
#: project's 2-core EPYC VM: 32 MiB of L3). Provenance: on the calibration grid
#: (benchmarks/results/calibration-cpu.json, 2026-12-03) every method ran 1.4-2.6x slower than
#: its fitted constants said on exactly the problems past it (2048² float64 ⊛ 5×5 by the
#: direct loop 0.38x of its measured time predicted, the FFT of 2048² float64 ⊛ 31² 0.45x,
#: overlap-add of 3 × 2048² ⊛ 63² 0.42x) and on no other; with :func:`memory` as a fifth
#: count the worst predictions became 0.69x / 0.67x / 0.65x, the median errors of overlap-add
#: 12% / 17% to 8% / 10% (float32 / float64).
CACHE_BYTES = 32 << 20


def memory(in_elems: int, out_elems: int, itemsize: int) -> float:
    """The :attr:`Counts.memory` of a call: its input's and output's samples when together
    they take :data:`CACHE_BYTES` or more, else zero. A cache of that size does not hold
    both beside everything else a call touches: 2048² float32 'same' (exactly 32 MiB)
    ran like the larger problems (the fused separable loop's time predicted without it
    0.62x of the measured one, 2026-12-05) and was counted with the smaller ones before."""
    total = in_elems + out_elems
    return float(total) if total * itemsize >= CACHE_BYTES else 0.0


#: Transform length from which a transform (or a batch of blocks) no longer fits in cache;
#: beyond it each doubling of the longest dim costs about one more pass. Provenance: on the
#: 2-core CPU of benchmarks/results/calibration-cpu.json a 1-D real transform of 1.1M points
#: took ~4x the time of a 2-D one of 1152^2 points, and overlap-add's best blocks (module
#: docstring of trueconv._methods.overlap_add) follow the same curve.
CACHE_KNEE = 32768.0


def transform_work(points: int, count: float, longest: int | None = None) -> float:
    """``count`` transforms of ``points`` points each, longest dim ``longest``:
    ``count · P log2 P · (1 + log2(1 + longest / CACHE_KNEE))``."""
    if points <= 1:
        return count * points
    longest = points if longest is None else longest
    return count * points * math.log2(points) * (1.0 + math.log2(1.0 + longest / CACHE_KNEE))


#: Seconds a transform method must save before ``'auto'`` leaves the direct method, per device
#: type, at most (:func:`direct_margin`). Direct sums are exact on integer-valued data and
#: their rounding error does not grow with a transform's length, so a saving within the cost
#: model's own error is not worth it; scipy's ``choose_conv_method`` likewise keeps small
#: problems direct, and scipy's own tests expect exact results there. A GPU call costs tens of
#: microseconds, so its margin is ten times smaller (:data:`OTHER_MARGIN_S`).
DIRECT_MARGIN_S = {"cpu": 5e-4}
OTHER_MARGIN_S = 5e-5

#: The share of the direct method's predicted time a transform must save when that is less
#: than the device's margin in seconds: the model's error is relative (its median 4-22% per
#: method and dtype on the CPU), and an absolute 0.5 ms kept direct problems of 0.3-2.5 ms
#: whose transforms it priced 17-60% cheaper. Measured (2026-12-05, shipped constants,
#: interleaved: ``benchmarks/direct_margin.py``, ``results/direct_margin.txt``) on a sweep of
#: 1-D, rows, 2-D and 3-D shapes: 20% moves 17 problems off the direct method, and the
#: transform took 0.45-0.85x the direct time on 15 at two threads (128² ⊛ 31² 0.45-0.67x, 32³
#: ⊛ 7³ 0.49-0.51x, 2^18 ⊛ 256 float64 0.73x) and 0.28-0.69x at one, 1.32-1.41x / 1.17-1.21x
#: on float32 2^14 ⊛ 1024 'full' and 'same' (the model prices that FFT at half its time). 10%
#: moves 29, 6 of them slower (64³ ⊛ 5³ 1.31x; 64 × 16384 rows ⊛ 129, 0.97-1.02x there, ran
#: 0.77x to 1.23x the direct time in four runs of the day: overlap-add's many small
#: transforms at two threads).
DIRECT_MARGIN_FRACTION = 0.2


def direct_margin(direct_seconds: float, device_type: str) -> float:
    """Seconds a transform must save against the direct method's predicted
    ``direct_seconds`` before ``'auto'`` leaves it: :data:`DIRECT_MARGIN_FRACTION` of them,
    at most the device's :data:`DIRECT_MARGIN_S` (:data:`OTHER_MARGIN_S` elsewhere)."""
    cap = DIRECT_MARGIN_S.get(device_type, OTHER_MARGIN_S)
    return min(cap, DIRECT_MARGIN_FRACTION * direct_seconds)


register(Counts)  # rebuilt from plain tuples under torch.compile
