"""FFT convolution: ``rfftn`` (real) or ``fftn`` (complex) over the convolved dims only.

Only the dims where both operands are longer than one are transformed; along the others the
convolution is a broadcast product. Batch dims ride along, so one kernel spectrum serves a
whole batch. Transform lengths are the smallest 2·3·5·7-smooth numbers that avoid aliasing
(even ones for real transforms, which MKL/pocketfft and cuFFT run fastest).

Aliasing rule: a circular convolution of length ``L >= max(len a, len b)`` equals the linear
one folded modulo ``L``, ``yc[j] = sum_t y[j + tL]``. The samples wanted are ``y[s : e]``; they
are unaliased when ``L >= e`` and ``s + L >= len(y)``. For ``'valid'`` that allows ``L`` as
small as the larger operand, for ``'same'`` about ``n + k/2`` instead of ``n + k - 1``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch

from trueconv import _cost
from trueconv._spec import ConvSpec

_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in _HALF:
        return torch.float32  # cuFFT's half transforms need power-of-two sizes; fp32 accumulates
    if dtype.is_floating_point or dtype.is_complex:
        return dtype
    return torch.float64  # integers: exact after rounding while |y| < 2**52 (as scipy)


@functools.lru_cache(maxsize=4096)
def next_fast_len(n: int, real: bool = True) -> int:
    """Smallest ``m >= n`` with no prime factor above 7; even (for ``n > 1``) when ``real``.

    Examples
    --------
    >>> from trueconv._methods.fft import next_fast_len
    >>> next_fast_len(1021), next_fast_len(16875), next_fast_len(16875, real=False)
    (1024, 17010, 16875)
    """
    if n <= 2:
        return max(n, 1)
    best = 1 << (n - 1).bit_length()  # a power of two always qualifies
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < n:
                    m *= 2
                if real and m % 2:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def wanted(
    sa: Sequence[int], sb: Sequence[int], pads: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """Per dim, the slice ``[start, start + length)`` of the full linear convolution wanted."""
    starts = [k - 1 - before for (before, _), k in zip(pads, sb)]
    lengths = [n + before + after - k + 1 for (before, after), n, k in zip(pads, sa, sb)]
    return starts, lengths


def unaliased_length(n: int, k: int, start: int, length: int) -> int:
    """Smallest circular length whose fold leaves ``y[start : start + length]`` intact."""
    return max(start + length, n + k - 1 - start, n, k)


# torch 2.13.0+cpu (MKL) corrupts the heap in multi-dim complex-to-complex and complex-to-real
# transforms of some 3-D shapes: ``torch.fft.irfftn`` over a (20, 512, 512) float32 tensor, or
# ``ifftn`` over two of its dims, abort the process ("free(): corrupted unsorted chunks"), with
# one thread or two. Sequences of 1-D transforms (how a multi-dim FFT is computed anyway, row by
# column) are unaffected and as fast for the inverse, so every inverse and every complex
# transform here is composed from 1-D ones. The real forward ``rfftn`` never failed in any
# probe and is 2.6-4x faster than its composition (1152^2, 112^3), so it stays.
# tests/test_fft_heap_regression.py runs the shapes that crashed.


def _irfftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    for n, d in zip(s[:-1], dim[:-1]):
        x = torch.fft.ifft(x, n=n, dim=d)
    return torch.fft.irfft(x, n=s[-1], dim=dim[-1])


def _fftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    for n, d in zip(s, dim):
        x = torch.fft.fft(x, n=n, dim=d)
    return x


def _ifftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    for n, d in zip(s, dim):
        x = torch.fft.ifft(x, n=n, dim=d)
    return x


def transforms(real: bool) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """The forward and inverse N-D transforms (half-spectrum for real data), composed from
    1-D transforms; called as ``f(x, s=lengths, dim=dims)``."""
    if real:
        return torch.fft.rfftn, _irfftn
    return _fftn, _ifftn


def crop(y: torch.Tensor, starts: Sequence[int], lengths: Sequence[int]) -> torch.Tensor:
    """Views of the wanted slices along the trailing ``len(starts)`` dims."""
    nd = len(starts)
    for i, (s, ln) in enumerate(zip(starts, lengths)):
        if s or y.shape[i - nd] != ln:
            y = y.narrow(i - nd, s, ln)
    return y


def plan(
    sa: Sequence[int], sb: Sequence[int], pads: Sequence[tuple[int, int]], real: bool
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Transformed dims (as indices into the convolved dims), their lengths, and the wanted
    ``starts``/``lengths`` of the full convolution."""
    starts, lengths = wanted(sa, sb, pads)
    dims = [i for i, (n, k) in enumerate(zip(sa, sb)) if n > 1 and k > 1]
    sizes = [unaliased_length(sa[i], sb[i], starts[i], lengths[i]) for i in dims]
    # the last transformed dim is the halved one in rfftn: it must be even
    lens = [next_fast_len(m, real and j == len(sizes) - 1) for j, m in enumerate(sizes)]
    return dims, lens, starts, lengths


def counts(spec: ConvSpec, device: torch.device) -> _cost.Counts:
    """Three transforms' calls; work = transforms × ``P log2 P`` for ``P`` points each."""
    sa, sb, pads = _cost.canonical(spec)
    s = _cost.sizes(spec)
    _, lens, _, _ = plan(sa, sb, pads, not spec.dtype.is_complex)
    points = math.prod(lens)
    if points <= 1:
        return _cost.Counts("fft", 1, float(s.out_elems))
    count = s.batch_a + s.batch_b + s.batch
    work = _cost.transform_work(points, count, max(lens))
    return _cost.Counts("fft", 3, work, passes=float(count * points))


def cost(spec: ConvSpec, device: torch.device) -> float:
    return _cost.predict(counts(spec, device), spec.dtype, device.type)


def run(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    sa, sb = a.shape[a.ndim - nd :], b.shape[b.ndim - nd :]
    real = not (a.is_complex() or b.is_complex())
    dims, lens, starts, lengths = plan(sa, sb, pads, real)
    if not dims:
        y = a * b  # every convolved dim has a length-1 operand: a broadcast product
    else:
        fwd, inv = transforms(real)
        fft_dims = [i - nd for i in dims]
        spec = fwd(a, s=lens, dim=fft_dims)
        kspec = fwd(b, s=lens, dim=fft_dims)
        if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
            spec = spec * kspec
        else:
            spec = (
                spec.mul_(kspec)
                if spec.shape == torch.broadcast_shapes(spec.shape, kspec.shape)
                else spec * kspec
            )
        y = inv(spec, s=lens, dim=fft_dims)
    return crop(y, starts, lengths)
