"""Transforms both engines use: fast lengths, the aliasing rule, N-D transforms composed where
a torch build needs it, DFT matrices, crops and in-place products.

The signal API's FFT and overlap-add methods (:mod:`trueconv._methods`) and the NN API's FFT
engine (:mod:`trueconv.nn`) import these public names; neither imports the other's internals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch

from trueconv.core import torch_internals
from trueconv.core.static import static


@static  # under torch.compile a constant of the trace, not Python traced through a cache
def next_fast_len(n: int) -> int:
    """Smallest ``m >= n`` of the form ``4 · 2^a 3^b 5^c 7^d`` (``n`` itself for ``n <= 2``):
    the length every transformed dim is padded to, the halved last dim of a real transform
    and the complex dims alike.

    Why multiples of 4 and not any 7-smooth length (even for the halved dim: the rule until
    2026-12-05): on torch's CPU FFT (MKL, torch 2.13) a length with a single factor 2
    (``2 · odd``: 1050, 4050, 17010) took 1.3-1.5x the time per point of its 7-smooth
    neighbours in float32 and 1.1-1.3x in float64. Over every ``n`` in 200-320, 900-1200,
    1900-2400, 3800-4800 and 15000-18000 (``benchmarks/fft_lengths.py``,
    ``benchmarks/results/fft_lengths.txt``; a forward and inverse 1-D transform of about
    2^20 points, one thread), against the fastest measured length in ``[n, 1.25 n]``, the
    mean time of this rule's length was 1.12x / 1.04x (float32, the real last dim / a complex
    dim) and 1.05x / 1.04x (float64), the old rule's 1.20x / 1.16x and 1.08x / 1.08x (two
    threads: 1.18x / 1.08x and 1.12x / 1.16x, against 1.24x / 1.20x and 1.13x / 1.16x). Whole
    calls, planned under both rules and interleaved (the same script, ``--calls``): float32
    1024² ⊛ 31² ``'same'``, 1050² before and 1080² now, 0.87-0.95x the time at one thread
    (three runs) and 0.87x at two, float64 1.00-1.02x; the other cells of that list keep
    their lengths. 5-smooth multiples of 4 (scipy's rule for real transforms is 5-smooth)
    measured 1.11x / 1.03x and 1.04x / 1.02x per dim, but padded 1024² ⊛ 127² ``'same'`` to
    1152² instead of 1120², 1.10x the time of the whole call.

    Examples
    --------
    >>> from trueconv.core.transforms import next_fast_len
    >>> next_fast_len(1021), next_fast_len(1039), next_fast_len(16875)
    (1024, 1080, 17280)
    """
    return _next_fast_len(n)


@functools.lru_cache(maxsize=4096)
def _next_fast_len(n: int) -> int:
    if n <= 2:
        return max(n, 1)
    quarter = -(-n // 4)
    best = 1 << (quarter - 1).bit_length()  # a power of two always qualifies
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < quarter:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return 4 * best


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


#: Whether CPU multi-dim inverse and complex transforms are composed from 1-D ones.
#:
#: torch 2.13.0+cpu (MKL) corrupts the heap in multi-dim complex-to-complex and complex-to-real
#: transforms of some 3-D shapes: ``torch.fft.irfftn`` over a (20, 512, 512) float32 tensor, or
#: ``ifftn`` over two of its dims, abort the process ("free(): corrupted unsorted chunks"), with
#: one thread or two. Sequences of 1-D transforms (how a multi-dim FFT is computed anyway, row
#: by column) are unaffected and as fast for the inverse. The real forward ``rfftn`` never
#: failed in any probe and is 2.6-4x faster than its composition (1152^2, 112^3), so it stays.
#: The fault is MKL's: builds whose CPU transforms are pocketfft's (``torch.backends.mkl`` not
#: available: the aarch64 wheels, for one) and cuFFT call the N-D transforms whole. Other MKL
#: builds were not probed; they keep the composition, since a crash costs more than it does.
#: tests/test_fft_heap_regression.py runs the shapes that crashed.
COMPOSE_CPU_TRANSFORMS = torch.backends.mkl.is_available()


def _composed(x: torch.Tensor) -> bool:
    return COMPOSE_CPU_TRANSFORMS and x.device.type == "cpu"


def _along(
    fn: Callable[..., torch.Tensor], x: torch.Tensor, s: Sequence[int], dim: Sequence[int]
) -> torch.Tensor:
    """1-D transforms ``fn`` along ``dim`` one after another (lengths ``s``)."""
    for n, d in zip(s, dim):
        x = fn(x, n=n, dim=d)
    return x


def _irfftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    if not _composed(x):
        return torch.fft.irfftn(x, s=s, dim=dim)
    return torch.fft.irfft(_along(torch.fft.ifft, x, s[:-1], dim[:-1]), n=s[-1], dim=dim[-1])


def fftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    """``torch.fft.fftn``, composed from 1-D transforms where :data:`COMPOSE_CPU_TRANSFORMS`."""
    return _along(torch.fft.fft, x, s, dim) if _composed(x) else torch.fft.fftn(x, s=s, dim=dim)


def _ifftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    return _along(torch.fft.ifft, x, s, dim) if _composed(x) else torch.fft.ifftn(x, s=s, dim=dim)


def transforms(real: bool) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """The forward and inverse N-D transforms (half-spectrum for real data), composed from
    1-D transforms where needed (:data:`COMPOSE_CPU_TRANSFORMS`); called as
    ``f(x, s=lengths, dim=dims)``."""
    if real:
        return torch.fft.rfftn, _irfftn
    return fftn, _ifftn


def crop(y: torch.Tensor, starts: Sequence[int], lengths: Sequence[int]) -> torch.Tensor:
    """Views of the wanted slices along the trailing ``len(starts)`` dims."""
    nd = len(starts)
    for i, (s, ln) in enumerate(zip(starts, lengths)):
        if s or y.shape[i - nd] != ln:
            y = y.narrow(i - nd, s, ln)
    return y


def traced(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the call is recorded (autograd, ``torch.compile``, ``torch.func``,
    ``torch.jit.trace``): then the
    plain out-of-place composition runs, which every tracer understands; the sliced in-place
    one of :func:`_run_sliced` is for plain (inference) calls."""
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return True
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    return torch_internals.functorch_active()


@functools.lru_cache(maxsize=8)
def dft_matrix(n: int, m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``W[j, t] = exp(-2πi jt / n)`` for ``j < n``, ``t < m``, angles reduced mod ``2π``
    exactly (``jt mod n``) and computed in float64."""
    turns = torch.arange(n, dtype=torch.float64, device=device) * (-2 * math.pi / n)
    roots = torch.polar(torch.ones_like(turns), turns).to(dtype)
    j = torch.arange(n, device=device)
    return roots[(j[:, None] * torch.arange(m, device=device)) % n]


def multiply(spec: torch.Tensor, kspec: torch.Tensor) -> torch.Tensor:
    """``spec * kspec``, in place in ``spec`` when the shapes allow."""
    if spec.shape == torch.broadcast_shapes(spec.shape, kspec.shape):
        return spec.mul_(kspec)
    return spec * kspec
