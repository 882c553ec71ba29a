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
from collections.abc import Sequence

import torch

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


def run(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    sa, sb = a.shape[a.ndim - nd :], b.shape[b.ndim - nd :]
    # wanted slice [start, start + length) of the full linear convolution, per dim
    starts = [k - 1 - before for (before, _), k in zip(pads, sb)]
    lengths = [n + before + after - k + 1 for (before, after), n, k in zip(pads, sa, sb)]

    fft_dims, sizes = [], []
    for i, (n, k, s, ln) in enumerate(zip(sa, sb, starts, lengths)):
        if n > 1 and k > 1:
            fft_dims.append(i - nd)
            sizes.append(max(s + ln, n + k - 1 - s, n, k))

    if not fft_dims:
        y = a * b  # every convolved dim has a length-1 operand: a broadcast product
    else:
        real = not (a.is_complex() or b.is_complex())
        fwd, inv = (
            (torch.fft.rfftn, torch.fft.irfftn) if real else (torch.fft.fftn, torch.fft.ifftn)
        )
        # the last transformed dim is the halved one in rfftn: it must be even
        lens = [next_fast_len(m, real and i == len(sizes) - 1) for i, m in enumerate(sizes)]
        spec = fwd(a, s=lens, dim=fft_dims)
        spec = spec * fwd(b, s=lens, dim=fft_dims)
        y = inv(spec, s=lens, dim=fft_dims)

    for i, (s, ln) in enumerate(zip(starts, lengths)):
        if s or y.shape[i - nd] != ln:
            y = y.narrow(i - nd, s, ln)
    return y
