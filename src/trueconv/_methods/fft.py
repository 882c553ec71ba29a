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
import itertools
import math
from collections.abc import Callable, Collection, Iterator, Sequence

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
    if x.device.type != "cpu":  # the MKL fault is CPU-only; cuFFT plans the N-D inverse whole
        return torch.fft.irfftn(x, s=s, dim=dim)
    for n, d in zip(s[:-1], dim[:-1]):
        x = torch.fft.ifft(x, n=n, dim=d)
    return torch.fft.irfft(x, n=s[-1], dim=dim[-1])


def _fftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    if x.device.type != "cpu":
        return torch.fft.fftn(x, s=s, dim=dim)
    for n, d in zip(s, dim):
        x = torch.fft.fft(x, n=n, dim=d)
    return x


def _ifftn(x: torch.Tensor, s: Sequence[int], dim: Sequence[int]) -> torch.Tensor:
    if x.device.type != "cpu":
        return torch.fft.ifftn(x, s=s, dim=dim)
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
        return crop(a * b, starts, lengths)  # every convolved dim has a length-1 operand
    if _traced(a, b) or a.device.type != "cpu":  # GPUs: cuFFT N-D plans, no MKL fault
        fwd, inv = transforms(real)
        fft_dims = [i - nd for i in dims]
        y = inv(fwd(a, s=lens, dim=fft_dims) * fwd(b, s=lens, dim=fft_dims), s=lens, dim=fft_dims)
        return crop(y, starts, lengths)
    return _run_sliced(a, b, nd, dims, lens, starts, lengths, real)


def _traced(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the call is recorded (autograd, ``torch.compile``, ``torch.func``): then the
    plain out-of-place composition runs, which every tracer understands; the sliced in-place
    one of :func:`_run_sliced` is for plain (inference) calls."""
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return True
    if torch.compiler.is_compiling():
        return True
    return bool(torch._C._are_functorch_transforms_active())


#: Slabs in which :func:`_run_sliced` finishes the kernel's spectrum, and the fewest elements
#: worth a slab of their own. Each slab costs two calls (a transform or matrix product, and the
#: product), and its temporaries are ``1 / SLABS`` of a spectrum. Measured peak extra memory on
#: the benchmark grid: at most 2.6x (input + output) with 4 slabs, 2.8x with 2, 3.1x with 1.
SLABS = 4
SLAB_MIN_ELEMENTS = 1 << 15


def _slabs(shape: Sequence[int], keep: Collection[int]) -> Iterator[list[tuple[int, int, int]]]:
    """Cut the index space of ``shape`` into about :data:`SLABS` slabs that never split a dim in
    ``keep``; each slab is a list of ``(dim, start, length)``, one per dim not in ``keep``."""
    budget = max(SLAB_MIN_ELEMENTS, -(-math.prod(shape) // SLABS))
    free = [d for d in range(len(shape)) if d not in keep]
    if not free:
        yield []
        return

    def unit(i: int) -> int:  # elements of a slab one index wide along dim i
        return math.prod(n for j, n in enumerate(shape) if j != i and (j > i or j in keep))

    split = next((i for i in free if unit(i) <= budget), free[-1])
    n = shape[split]
    count = -(-n // max(1, budget // unit(split)))
    width = -(-n // count)
    outer = [d for d in free if d < split]
    whole = [(d, 0, shape[d]) for d in free if d > split]
    for index in itertools.product(*(range(shape[d]) for d in outer)):
        fixed = [(d, i, 1) for d, i in zip(outer, index)]
        for s in range(0, n, width):
            yield [*fixed, (split, s, min(width, n - s)), *whole]


def _narrow(t: torch.Tensor, cut: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """``t`` narrowed to a slab of :func:`_slabs`."""
    for d, s, n in cut:
        if s or n != t.shape[d]:
            t = t.narrow(d, s, n)
    return t


def _run_sliced(
    a: torch.Tensor,
    b: torch.Tensor,
    nd: int,
    dims: Sequence[int],
    lens: Sequence[int],
    starts: Sequence[int],
    lengths: Sequence[int],
    real: bool,
) -> torch.Tensor:
    """The FFT convolution for calls that record no graph, holding about two spectra at most.

    ``run``'s plain composition holds the input's and the kernel's spectra, and every 1-D
    inverse allocates a new spectrum while the previous ones are still referenced: 4-5
    spectrum-sized arrays at once. Here:

    1. ``spec``: the input's forward transform over every transformed dim (``rfftn``).
    2. The kernel transformed along all transformed dims but the first, so it stays
       kernel-sized along that one; then, slab by slab (cut along the other dims), finished by
       a 1-D transform along the first dim and multiplied into ``spec`` in place. The kernel's
       spectrum is never whole.
    3. The 1-D inverses as in ``run``, each result replacing the previous one, and the wanted
       samples along the first dim cut out before the last (``irfft``), which so runs on fewer
       rows.

    With one transformed dim, or where the kernel broadcasts against the input (its spectrum is
    then small along the broadcast dims), the kernel's spectrum is made whole and multiplied in
    at once.
    """
    lead = a.ndim - nd
    tdims = [lead + i for i in dims]
    first = tdims[0]
    spec = torch.fft.rfftn(a, s=lens, dim=tdims) if real else _fftn(a, lens, tdims)
    inv = torch.fft.irfft if real else torch.fft.ifft
    if len(tdims) == 1:
        spec = _multiply(spec, (torch.fft.rfft if real else torch.fft.fft)(b, n=lens[0], dim=first))
        return crop(inv(spec, n=lens[0], dim=first), starts, lengths)

    if KERNEL_MODE == "full" or (KERNEL_MODE == "auto" and not _gemm_ok(lens[0], b.shape[first])):
        kspec = torch.fft.rfftn(b, s=lens, dim=tdims) if real else _fftn(b, lens, tdims)
        spec = _multiply(spec, kspec)
        del kspec
    else:
        # the kernel transformed along all transformed dims but the first
        part = (
            torch.fft.rfftn(b, s=lens[1:], dim=tdims[1:]) if real else _fftn(b, lens[1:], tdims[1:])
        )
        if all(p == q for d, (p, q) in enumerate(zip(part.shape, spec.shape)) if d != first):
            for cut in _slabs(spec.shape, (first,)):
                _narrow(spec, cut).mul_(_short_fft(_narrow(part, cut), lens[0], first))
        else:
            spec = _multiply(spec, _short_fft(part, lens[0], first))
        del part
    for n, d in zip(lens[:-1], tdims[:-1]):
        spec = torch.fft.ifft(spec, n=n, dim=d)
    spec = spec.narrow(first, starts[dims[0]], lengths[dims[0]])
    y = inv(spec, n=lens[-1], dim=tdims[-1])
    return crop(y, [0 if i == dims[0] else s for i, s in enumerate(starts)], lengths)


#: The most entries ``n * m`` of a cached DFT matrix (2 MiB in complex128).
DFT_MATRIX_MAX = 1 << 17


def _short_fft(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """``torch.fft.fft(x, n=n, dim=dim)`` for an ``x`` short along ``dim`` (zero-padded to ``n``).

    For ``m = x.shape[dim]`` up to about ``6 log2 n`` a product with the ``n × m`` DFT matrix
    is cheaper than the padded transform (2-7x for ``m`` = 3-31 and ``n`` = 112-1152; even at
    ``m = 63``, ``n = 1080``) and lays the result out like ``x``, where an FFT puts ``dim``
    innermost; the product with the input's spectrum that follows is then 2.5x faster.
    """
    m = x.shape[dim]
    if not _gemm_ok(n, m):
        return torch.fft.fft(x, n=n, dim=dim)
    xm = x.movedim(dim, 0)
    y = _dft_matrix(n, m, x.dtype, x.device) @ xm.reshape(m, -1)
    return y.reshape(n, *xm.shape[1:]).movedim(0, dim)


KERNEL_MODE = "auto"
GEMM_FACTOR = 8.0


def _gemm_ok(n: int, m: int) -> bool:
    return m <= GEMM_FACTOR * math.log2(n) and n * m <= DFT_MATRIX_MAX


@functools.lru_cache(maxsize=8)
def _dft_matrix(n: int, m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``W[j, t] = exp(-2πi jt / n)`` for ``j < n``, ``t < m``; angles reduced exactly."""
    turns = torch.arange(n, dtype=torch.float64, device=device) * (-2 * math.pi / n)
    roots = torch.polar(torch.ones_like(turns), turns).to(dtype)
    j = torch.arange(n, device=device)
    return roots[(j[:, None] * torch.arange(m, device=device)) % n]


def _multiply(spec: torch.Tensor, kspec: torch.Tensor) -> torch.Tensor:
    """``spec * kspec``, in place in ``spec`` when the shapes allow."""
    if spec.shape == torch.broadcast_shapes(spec.shape, kspec.shape):
        return spec.mul_(kspec)
    return spec * kspec
