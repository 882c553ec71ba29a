"""Dtype rules and shape helpers shared by both engines."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trueconv.core.torch_internals import untraced_shape

__all__ = ["broadcast_shape", "exact_dtype", "is_integer", "static_shape", "transform_dtype"]

_HALF = (torch.float16, torch.bfloat16)

#: ``t.shape`` as Python ints, also under ``torch.jit.trace`` (see
#: :func:`trueconv.core.torch_internals.untraced_shape`).
static_shape = untraced_shape


def is_integer(dtype: torch.dtype) -> bool:
    """Integer and bool dtypes: computed exactly, never through a transform."""
    return not (dtype.is_floating_point or dtype.is_complex)


def exact_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a direct sum computes a result of ``dtype`` in: float16/bfloat16 accumulate
    in float32; integers and bool run exactly in int64 (the result wraps like numpy's when
    cast back); the others as they are."""
    if dtype in _HALF:
        return torch.float32
    if is_integer(dtype):
        return torch.int64
    return dtype


def transform_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an FFT computes a result of ``dtype`` in: float16/bfloat16 in float32
    (cuFFT's half transforms need power-of-two sizes, and float32 accumulates); integers in
    float64 (exact after rounding while ``|y| < 2**52``, as scipy); the others as they are."""
    if dtype in _HALF:
        return torch.float32
    if is_integer(dtype):
        return torch.float64
    return dtype


def broadcast_shape(s: Sequence[int], t: Sequence[int]) -> tuple[int, ...]:
    """Broadcast two shapes of equal length that were already validated (cheaper than
    ``torch.broadcast_shapes`` in the per-call path)."""
    return tuple(q if p == 1 else p for p, q in zip(s, t))
