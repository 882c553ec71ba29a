"""Pure operation counts for each method, and the per-device constants that turn them into time.

The counts depend on shapes only. The constants are *provisional*: chosen by hand so that the
crossovers land where quick measurements on a 2-core x86 CPU (torch 2.13, MKL FFT, oneDNN) put
them. Issue #4 replaces them with constants fitted by ``benchmarks/fit_cost.py`` from recorded
benchmark results, and each constant will then name the file it came from.
"""

from __future__ import annotations

import math

from trueconv._methods import overlap_add
from trueconv._methods.fft import next_fast_len
from trueconv._spec import ConvSpec

#: seconds per operation; provenance: provisional, hand-set (see module docstring)
CONSTANTS: dict[str, dict[str, float]] = {
    "cpu": {"direct_mac": 1.0e-9, "fft_point": 4.0e-9, "call": 2.0e-5},
    "cuda": {"direct_mac": 2.0e-12, "fft_point": 4.0e-11, "call": 2.0e-5},  # unfitted
}


def operands(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Lengths of the signal and kernel roles along the convolved dims, after extension."""
    if spec.swap:
        return spec.k, spec.n
    return tuple(n + b + a for n, (b, a) in zip(spec.n, spec.pads)), spec.k


def direct_ops(spec: ConvSpec) -> float:
    """Multiply-adds of the direct method: one per output sample and kernel tap."""
    _, b = operands(spec)
    out = math.prod(spec.out_shape)
    return float(out * math.prod(b))


def fft_ops(spec: ConvSpec) -> float:
    """Transform work ``L log2 L`` summed over the three transforms (two forward, one inverse)."""
    a, b = operands(spec)
    lens = [next_fast_len(n + k - 1) for n, k in zip(a, b) if n > 1 and k > 1]
    size = math.prod(lens)
    batch = max(1, math.prod(spec.batch_shape))
    if size <= 1:
        return float(batch * math.prod(spec.out_shape[d] for d in spec.dims))
    return 3.0 * batch * size * math.log2(size)


def overlap_add_ops(spec: ConvSpec) -> float:
    """Transform work of overlap-add: blocked dims cost ``nb · L`` points instead of ``L_full``."""
    a, b = operands(spec)
    points, size = 1, 1  # points transformed for the signal; points of one kernel transform
    for n, k, s in zip(a, b, overlap_add.blocked_dims(a, b)):
        if s is not None:
            points *= -(-n // s) * (s + k - 1)
            size *= s + k - 1
        elif n > 1 and k > 1:
            points *= next_fast_len(n + k - 1)
            size *= next_fast_len(n + k - 1)
    batch = max(1, math.prod(spec.batch_shape))
    if size <= 1:
        return float(batch * math.prod(spec.out_shape[d] for d in spec.dims))
    return (2.0 * batch * points + size) * math.log2(size)


def seconds(method: str, spec: ConvSpec, device_type: str) -> float:
    c = CONSTANTS.get(device_type, CONSTANTS["cpu"])
    if method == "direct":
        return c["call"] + c["direct_mac"] * direct_ops(spec)
    if method == "fft":
        return 3 * c["call"] + c["fft_point"] * fft_ops(spec)
    if method == "overlap_add":
        return 6 * c["call"] + c["fft_point"] * overlap_add_ops(spec)
    raise AssertionError(method)
