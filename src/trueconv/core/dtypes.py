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


def _category(dtype: torch.dtype) -> int:
    if dtype.is_complex:
        return 3
    if dtype.is_floating_point:
        return 2
    return 0 if dtype == torch.bool else 1


def result_type(x: torch.Tensor, k: torch.Tensor) -> torch.dtype:
    """``torch.result_type(x, k)`` from dtypes and dim counts alone.

    ``torch.compile`` cannot record ``torch.result_type`` (it returns a dtype, not a tensor),
    while this is plain Python on static facts. torch's rule: a dimensioned tensor's dtype wins
    over a zero-dim one's of the same or a lower category (bool < integer < floating <
    complex); otherwise the two dtypes promote, except that a floating tensor meeting a
    zero-dim complex one keeps its own width. Equal to torch's for every pair of dtypes and
    dim counts (tested)."""
    if (x.ndim == 0) == (k.ndim == 0):
        return torch.promote_types(x.dtype, k.dtype)
    dim, zero = (k, x) if x.ndim == 0 else (x, k)
    if _category(zero.dtype) <= _category(dim.dtype):
        return dim.dtype
    if zero.dtype.is_complex and dim.dtype.is_floating_point:
        return _COMPLEX_OF[dim.dtype]  # the dimensioned tensor's width, made complex
    return torch.promote_types(dim.dtype, zero.dtype)


_COMPLEX_OF = {
    torch.float16: torch.complex32,
    torch.bfloat16: torch.complex64,
    torch.float32: torch.complex64,
    torch.float64: torch.complex128,
}
