"""FFT convolution: ``rfftn`` (real) or ``fftn`` (complex) over the convolved dims only.

Only the dims where both operands are longer than one are transformed; along the others the
convolution is a broadcast product. Batch dims ride along, so one kernel spectrum serves a
whole batch. Transform lengths are the smallest 7-smooth multiples of 4 that avoid aliasing
(:func:`trueconv.core.transforms.next_fast_len` has the measurements: a single factor 2 made
MKL's transforms 1.1-1.5x slower per point).

Aliasing rule: a circular convolution of length ``L >= max(len a, len b)`` equals the linear
one folded modulo ``L``, ``yc[j] = sum_t y[j + tL]``. The samples wanted are ``y[s : e]``; they
are unaliased when ``L >= e`` and ``s + L >= len(y)``. For ``'valid'`` that allows ``L`` as
small as the larger operand, for ``'same'`` about ``n + k/2`` instead of ``n + k - 1``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import torch

from trueconv._problem import Extension, Problem
from trueconv.core import cost
from trueconv.core.boundary import extend_padded
from trueconv.core.dtypes import transform_dtype as compute_dtype
from trueconv.core.static import register
from trueconv.core.transforms import (
    crop,
    dft_matrix,
    fftn,
    multiply,
    next_fast_len,
    traced,
    transforms,
    unaliased_length,
    wanted,
)

#: Rounds integer problems (exact only while ``|y| < 2**52``): ``'auto'`` never picks it for them.
EXACT = False

_HALF = (torch.float16, torch.bfloat16)


def layout(
    sa: Sequence[int], sb: Sequence[int], pads: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Transformed dims (as indices into the convolved dims), their lengths, and the wanted
    ``starts``/``lengths`` of the full convolution."""
    starts, lengths = wanted(sa, sb, pads)
    dims = [i for i, (n, k) in enumerate(zip(sa, sb)) if n > 1 and k > 1]
    sizes = [unaliased_length(sa[i], sb[i], starts[i], lengths[i]) for i in dims]
    lens = [next_fast_len(m) for m in sizes]  # even: rfftn halves the last
    return dims, lens, starts, lengths


@dataclass(frozen=True)
class FFTPlan:
    """The FFT method's plan: what is transformed, at which lengths, and what is kept."""

    problem: Problem
    dims: tuple[int, ...]  # transformed dims, as indices into the convolved dims
    lens: tuple[int, ...]  # their transform lengths
    starts: tuple[int, ...]  # the wanted slice of the full convolution, per convolved dim
    lengths: tuple[int, ...]
    #: the kernel's spectrum along the first transformed dim from a DFT-matrix product
    #: (:func:`_dft_ok`; calls that record no graph)
    dft_first: bool
    counts: cost.Counts
    compute_dtype: torch.dtype
    method: str = "fft"
    places_nonfinite: bool = False  # a transform mixes every sample into every output
    #: the signal may come unextended (told by its shape) and is then extended into the
    #: transform's zero-padded operand (CPU plans with an extension; :func:`_extended`)
    extends: bool = False

    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return run(self, a, b)


def plan(problem: Problem, device: torch.device, forced: bool = False) -> FFTPlan:
    """The FFT method applies to every problem. Counts: three transforms' calls; work =
    transforms × ``P log2 P`` for ``P`` points each, and one pass over each spectrum. A
    convolved dim that is not transformed (one operand has length one there) multiplies the
    transforms of the operand that is longer there, and of the output (:func:`along`).

    ``aux``: the three calls' set-up, the sum of their transformed lengths. torch's CPU
    transforms (MKL) set each call up afresh, in time proportional to the length: one
    ``rfft`` of 16384 float32 points took 194 us at one thread, 21 us a row in a batch of
    60 (32768: 383 / 50 us; 2026-12-05), so a 1-D signal's FFT costs several times its
    transforms' work, and 'auto' had priced float32 2^14 ⊛ 1024 at 0.25 ms against 0.45-0.77
    measured."""
    sa, sb = problem.sa, problem.sb
    dims, lens, starts, lengths = layout(sa, sb, problem.pads)
    points = math.prod(lens)
    if points <= 1:
        counts = cost.Counts("fft", 1, float(problem.out_elems), memory=problem.memory)
    else:
        count = float(sum(along(problem, dims)))
        work = cost.transform_work(points, count, max(lens))
        counts = cost.Counts(
            "fft",
            3,
            work,
            passes=float(count * points),
            aux=3.0 * sum(lens),
            memory=problem.memory,
        )
    dft_first = len(dims) > 1 and _dft_ok(lens[0], sb[dims[0]])
    return FFTPlan(
        problem,
        tuple(dims),
        tuple(lens),
        tuple(starts),
        tuple(lengths),
        dft_first,
        counts,
        compute_dtype(problem.dtype),
        extends=problem.extension is not None and device.type == "cpu",
    )


def along(problem: Problem, transformed: Collection[int]) -> tuple[int, int, int]:
    """How many transforms of ``P`` points the signal's, the kernel's and the output's
    transform each amount to: each is batched over its batch dims and over the convolved dims
    that are not ``transformed``, where the operand longer than one transforms once per sample
    (3 × 2048² ⊛ 1 × 31² transforms three images, not one: counted as one, ``'auto'`` took the
    FFT at 225 ms over overlap-add's 127)."""
    fa = fb = fo = 1
    for i, (n, k) in enumerate(zip(problem.sa, problem.sb)):
        if i not in transformed:
            fa, fb, fo = fa * n, fb * k, fo * max(n, k)
    return problem.batch_a * fa, problem.batch_b * fb, problem.batch * fo


def run(plan: FFTPlan, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    nd = len(plan.problem.pads)
    dims, lens, starts, lengths = plan.dims, plan.lens, plan.starts, plan.lengths
    ext = plan.problem.extension if plan.extends else None
    real = not (a.is_complex() or b.is_complex())
    # recorded calls and GPUs: the plain composition (GPUs: cuFFT N-D plans, no MKL fault)
    plain = traced(a, b) or a.device.type != "cpu"
    if ext is not None and tuple(a.shape[a.ndim - nd :]) != plan.problem.sa:  # unextended
        a = ext.apply(a) if plain or not dims else _extended(plan, a, ext)
    if not dims:
        return crop(a * b, starts, lengths)  # every convolved dim has a length-1 operand
    if plain:
        fwd, inv = transforms(real)
        fft_dims = [i - nd for i in dims]
        y = inv(fwd(a, s=lens, dim=fft_dims) * fwd(b, s=lens, dim=fft_dims), s=lens, dim=fft_dims)
        return crop(y, starts, lengths)
    return _run_grouped(plan, a, b, real)


def _extended(plan: FFTPlan, a: torch.Tensor, ext: Extension) -> torch.Tensor:
    """``a`` extended and zero-padded to the transform lengths in one array
    (:func:`trueconv.core.boundary.extend_padded`), which the forward transform then takes
    as it is. The extension and the transform's padded copy of it were two such arrays:
    2048² float64 ⊛ 31² ``'reflect'`` took 103 ms against 94 with zero fill, 2048² float32
    42 against 31 (2 threads)."""
    nd = len(plan.problem.pads)
    sizes = list(plan.problem.sa)
    for i, n in zip(plan.dims, plan.lens):
        sizes[i] = n
    dims = tuple(range(a.ndim - nd, a.ndim))
    return extend_padded(a, dims, ext.pads, ext.rule, ext.fill, sizes)


#: Most spectrum bytes that :func:`_run_grouped` transforms in one batch. MKL's batched
#: multi-dim transforms (and the copies torch makes for them along strided dims) slow down
#: once a batch leaves the cache; a loop over smaller batches does not. Provenance: 2 threads,
#: this project's 2-core EPYC (32 MiB L3), forced 'fft', batches of g images per call,
#: alternating in one process (2026-12-03 evening): 8 × 1024² float32 ⊛ 31² took 50 / 61 / 56
#: / 76 ms at g = 1 / 2 / 4 / 8 (4.2 MiB of spectrum an image), float64 105 / 121 / 183 / 178;
#: 16 × 512² float32 ⊛ 15² 39 / 25 / 23 / 22 / 23 ms at g = 1-16 (1.1 MiB an image), float64
#: 62 / 43 / 42 / 44 / 85; 16 × 256² fastest in one batch. Against the 20 MiB of before, 8
#: MiB ran 3 × 1024² float32 ⊛ 15²-31² 1.6-1.9x faster, float64 1.16-1.30x (1 thread:
#: 0.82-1.27x), 4 × 1024² float64 1.13 / 1.53x (2 / 1 threads); 8 × 512² float32 0.80 /
#: 0.93x; shapes that both settings group alike moved by up to 15% (this VM's noise). 1-D
#: transforms batch well (4 × 2^20 float64 ⊛ 255 grouped: 0.55x the speed of one batch): they
#: are never grouped.
GROUP_BYTES = 8 << 20


def _run_grouped(plan: FFTPlan, a: torch.Tensor, b: torch.Tensor, real: bool) -> torch.Tensor:
    """:func:`_run_sliced` over groups of the output along one dim that is not transformed (a
    batch dim, or a convolved dim where one operand has length one), each group's spectra at
    most :data:`GROUP_BYTES`; one call where they all fit, no such dim exists, or the
    transforms are 1-D. A kernel shared by every group is transformed once (one that is short
    along the first transformed dim is finished per group by a small matrix product)."""
    dims, lens, starts, lengths, short = (
        plan.dims, plan.lens, plan.starts, plan.lengths, plan.dft_first
    )  # fmt: skip
    nd = len(plan.problem.pads)
    lead = a.ndim - nd
    tdims = {lead + i for i in dims}
    full = [max(p, q) for p, q in zip(a.shape, b.shape)]  # along untransformed dims
    out = [*full[:lead], *lengths]
    per = math.prod(lens[:-1]) * (lens[-1] // 2 + 1 if real else lens[-1])
    per *= max(t.element_size() * (1 if t.is_complex() else 2) for t in (a, b))
    free = [d for d in range(a.ndim) if d not in tdims and out[d] > 1]
    batch = math.prod(out[d] for d in free)
    if batch <= 1 or len(dims) < 2 or per * batch <= GROUP_BYTES:
        return _run_sliced(a, b, nd, dims, lens, starts, lengths, real, short)
    d = max(free, key=out.__getitem__)
    step = max(1, GROUP_BYTES // (per * (batch // out[d])))
    offset = starts[d - lead] if d >= lead else 0
    kernel = None
    if not short and b.shape[d] == 1:  # one kernel spectrum for every group
        fwd: Callable[..., torch.Tensor] = torch.fft.rfftn if real else fftn
        kernel = fwd(b, s=lens, dim=sorted(tdims))
    result: torch.Tensor | None = None
    for j in range(0, out[d], step):
        n = min(step, out[d] - j)
        pa, pb = (t.narrow(d, offset + j, n) if t.shape[d] > 1 else t for t in (a, b))
        s, ln = list(starts), list(lengths)
        if d >= lead:
            s[d - lead], ln[d - lead] = 0, n
        y = _run_sliced(pa, pb, nd, dims, lens, s, ln, real, short, kernel)
        if result is None:
            result = y.new_empty([*y.shape[:d], out[d], *y.shape[d + 1 :]])
        result.narrow(d, j, n).copy_(y)
    assert result is not None
    return result


#: Slabs in which :func:`_run_sliced` finishes the kernel's spectrum, and the fewest elements
#: worth a slab of their own. Each slab costs two calls (a matrix product and a product in
#: place) and a temporary of ``1 / SLABS`` of a spectrum. Peak extra memory on the benchmark
#: grid's 2-D and 3-D cases (``trueconv.cli.bench_harness._peak_extra_bytes``, 3 calls each):
#: at most 2.2x (input + output) bytes with 4 slabs, 2.9x with 2, 3.8x with 1.
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
    short: bool,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """The FFT convolution of a call that records no graph, holding two or three spectra
    (``kernel``: ``b``'s spectrum when the caller has it, and not ``short``).

    The plain composition of :func:`run` holds the input's and the kernel's spectra while each
    1-D inverse allocates another spectrum-sized array, the earlier ones still referenced: four
    to five at once, 3-4.5x (input + output) bytes on the benchmark grid. Here each array is
    released as soon as the next one exists, and:

    * When the kernel is short along the first transformed dim (``short``, the plan's
      ``dft_first``: :func:`_dft_ok`), its spectrum is never whole: the kernel is transformed
      along the other dims only (kernel-sized along the first), and finished slab by slab by
      a product with the DFT matrix (:func:`_dft`),
      each slab multiplied into the input's spectrum in place. Peak: the input's spectrum and
      ``rfftn``'s zero-padded copy of the input. The matrix product also costs less than the
      padded kernel's transform (and ``rfftn`` of a mostly zero array).
    * Otherwise the kernel's spectrum is made whole (three spectra at the peak;
      :func:`kernel_spectrum`), multiplied in, and released.
    * Before the last inverse (``irfft``), the first transformed dim is cut to the wanted
      samples, so the last transform runs on fewer rows and the output is smaller.
    """
    lead = a.ndim - nd
    tdims = [lead + i for i in dims]
    first = tdims[0]
    fwd: Callable[..., torch.Tensor] = torch.fft.rfftn if real else fftn
    spec = fwd(a, s=lens, dim=tdims)
    if short:
        part = fwd(b, s=lens[1:], dim=tdims[1:])  # the kernel, untransformed along `first`
        if all(p == q for d, (p, q) in enumerate(zip(part.shape, spec.shape)) if d != first):
            for cut in _slabs(spec.shape, (first,)):
                _narrow(spec, cut).mul_(_dft(_narrow(part, cut), lens[0], first))
        else:  # the kernel broadcasts against the input: its spectrum is small there
            spec = multiply(spec, _dft(part, lens[0], first))
        del part
    else:
        spec = multiply(spec, kernel_spectrum(b, lens, tdims, real) if kernel is None else kernel)
    for n, d in zip(lens[:-1], tdims[:-1]):
        spec = torch.fft.ifft(spec, n=n, dim=d)
    starts = list(starts)
    if len(tdims) > 1:
        spec = spec.narrow(first, starts[dims[0]], lengths[dims[0]])
        starts[dims[0]] = 0
    inv = torch.fft.irfft if real else torch.fft.ifft
    return crop(inv(spec, n=lens[-1], dim=tdims[-1]), starts, lengths)


def kernel_spectrum(
    b: torch.Tensor, lens: Sequence[int], tdims: Sequence[int], real: bool
) -> torch.Tensor:
    """The kernel's spectrum ``rfftn(b, s=lens, dim=tdims)`` (``fftn`` if complex), pruned: a
    kernel at most half as long as the transform along the first transformed dim is first
    transformed along the other dims at its own length there (its zero padding along the first
    dim is never transformed), then along the first dim. The same values as the whole
    transform (the 1-D transforms of a multi-dim one commute), and no padded copy of the
    kernel.

    The result is laid out with the first dim innermost (torch's FFT along a dim that is not
    the last); it is multiplied into the input's spectrum as it is: a copy to the input's
    layout cost more (0.8-2.3 ms for 1120² complex, with its fresh pages) than the strided
    product (+0.3-0.8 ms). Measured (``benchmarks/kernel_spectrum.py``, 2026-12-04, two
    runs, the median of each round's ratio): 2-D ``'same'`` through the FFT, 1024² ⊛
    63²-127² float64 1.04-1.15x faster at 1 and 2 threads, float32 1.01-1.11x, 2048² ⊛ 63²
    1.02-1.09x; 3-D 96³ ⊛ 17³ 0.98-1.02x (controls on the DFT-matrix route 0.97-1.02x). The
    kernel's transform alone, 1120² ⊛ 63² float64: 3.8 ms against 8.0 (1 thread). Not used
    by overlap-add, whose kernel spectrum is small and multiplied into every block (there,
    with the strided product per block, 0.86-1.03x, median 0.93: one run, by the earlier
    harness that compared medians of times, not the rounds' ratios)."""
    fwd: Callable[..., torch.Tensor] = torch.fft.rfftn if real else fftn
    first = tdims[0]
    if len(tdims) < 2 or 2 * b.shape[first] > lens[0]:
        return fwd(b, s=lens, dim=tdims)
    return torch.fft.fft(fwd(b, s=lens[1:], dim=tdims[1:]), n=lens[0], dim=first)


#: Kernel lengths ``m`` along the first transformed dim (of length ``n``) up to
#: ``DFT_FACTOR * log2(n)`` are transformed by a matrix product (:func:`_dft`), if the matrix
#: has at most ``DFT_MATRIX_MAX`` entries (2 MiB in complex128; :func:`dft_matrix` caches 8).
#: Provenance: 2-D 1024² float32/float64, 2 threads: ``m`` = 3-31 at ``n`` ≈ 1050 ran 5-25%
#: faster than the whole kernel's ``rfftn``, ``m`` = 63 4-12% slower; 3-D 96³ at ``m`` = 17.
#: Against the pruned transform of :func:`kernel_spectrum` (2026-12-04, 1024² and 2048² ⊛
#: 15²-31², float32/float64, 1 and 2 threads): the matrix route took 0.54-0.99x its time
#: (``benchmarks/kernel_spectrum.py --dft``, the median of each round's ratio).
DFT_FACTOR = 4.0
DFT_MATRIX_MAX = 1 << 17


def _dft_ok(n: int, m: int) -> bool:
    return m <= DFT_FACTOR * math.log2(n) and n * m <= DFT_MATRIX_MAX


def _dft(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """``torch.fft.fft(x, n=n, dim=dim)`` as a product with the ``n × m`` DFT matrix, for an
    ``x`` short along ``dim`` (``m`` samples, zero-padded to ``n``).

    Cheaper than the padded transform for short ``x`` (2-7x at ``m`` = 3-31, ``n`` = 112-1152),
    and the result is laid out like ``x``, where an FFT puts ``dim`` innermost: multiplying it
    into the input's spectrum is then 2.5x faster than with the transposed layout.
    """
    m = x.shape[dim]
    xm = x.movedim(dim, 0)
    y = dft_matrix(n, m, x.dtype, x.device) @ xm.reshape(m, -1)
    return y.reshape(n, *xm.shape[1:]).movedim(0, dim)


register(FFTPlan)  # rebuilt from plain tuples under torch.compile
