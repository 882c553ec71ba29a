"""Extend a tensor beyond its edges, with :func:`numpy.pad` semantics.

Every non-constant rule is an index map ``i -> source index`` on the extended range. The maps
are periodic, so pads larger than the input repeat exactly as ``np.pad`` does (which applies
its reflections repeatedly):

=============  ==================  =====================================  =================
rule           numpy ``np.pad``    source of extended index ``j``          period
=============  ==================  =====================================  =================
``wrap``       ``wrap``            ``j mod n``                             ``n``
``symmetric``  ``symmetric``       ``m = j mod 2n``; ``m`` or ``2n-1-m``   ``2n``
``reflect``    ``reflect``         ``m = j mod (2n-2)``; ``m`` or          ``2n - 2``
                                   ``2n-2-m`` (``n = 1``: always 0)
``replicate``  ``edge``            ``clamp(j, 0, n-1)``                    (none)
=============  ==================  =====================================  =================

(``j`` counts from the first original sample, so the samples added before it have ``j < 0``.)

:func:`extend` builds the map in one of three ways:

- **In place** (:func:`_extend_in_place`), eagerly wherever nothing records the call (see
  :func:`_in_place_ok`) and ``x`` has at least :data:`MIN_IN_PLACE` elements: the result is
  allocated once, ``x`` copied into its interior with one slice copy, then each dim's pads are
  copied from the part of the result already filled, run by run (:func:`_pad_runs`), as
  ``scipy.ndimage`` extends its lines. Measured against one
  ``index_select`` per dim (``benchmarks/boundary_extend.py``, 1 thread, min of 27 calls, two
  runs on a 2-core machine that others were loading; pads (4, 4) and (15, 15) on both dims,
  each rule): float32 2048² 0.79-1.6 ms against 3.2-4.5 ms; float32 3 × 1024² 0.58-1.0 ms
  against 22-27 ms (a gather along a middle dim is slow); float64 3 × 1024² 1.4-2.8 ms against
  26-53 ms; float64 2048² 17-27 ms against 32-79 ms, both dominated by page faults (glibc maps
  a block above 32 MB afresh on each call: filling a fresh 2056² float64 tensor took 28 ms,
  a reused one 1.2 ms), of which the gathers have two, the copies one. ``convolve(x, k,
  'same', boundary='reflect')``, float32, the two runs: 2048² with a 3×3 kernel 12.1/8.5 ->
  5.9/5.7 ms, 9×9 38.6/28.2 -> 33.1/25.1 ms; 1024² 3×3 1.31/2.79 -> 0.92/1.66 ms, 9×9 6.7/8.3
  -> 6.3/7.7 ms. At 2 threads the load decided: with the second core free the copies took
  0.4-0.8 ms (float32) against 3.1-28 ms; while it was busy, every parallel op (``x.clone()``
  included) waited 4-12 ms for it, and the copies, more ops than the gathers, then lost (up
  to 64 ms against 27 ms for 3 × 1024² by (15, 15)). A side of more than :data:`MAX_RUNS`
  runs, a pad of more than about twice a short input, is one ``index_select`` of the interior
  instead: each run costs a few copies' dispatch (5-15 µs), and gathering the side beat the
  runs from about 4 runs per side on (measured 4 × M inputs, M = 100 to 10⁵, both dims: at 3
  runs the two were even, at 4 the gather 1.1x faster in the geometric mean, at 6 1.4-1.7x).
- **Recorded** (autograd on ``x``, forward-mode tangents, ``torch.func`` transforms,
  ``torch.jit.trace``, tensor subclasses): one ``index_select`` per dim. It is differentiable
  (gradients flow back into the original samples, tested with ``gradcheck``) and
  ``torch.func`` batches it, where the in-place copies would record one ``CopySlices`` node
  each and would write through ``torch.func``'s wrappers, which trueconv keeps to
  out-of-place ops (:mod:`trueconv.core.torch_internals`).
- **Compiled** (``torch.compile``): slices, flips and ``cat`` from :func:`_runs` (why: there).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from trueconv.core.dtypes import static_shape
from trueconv.core.static import static
from trueconv.core.torch_internals import forward_ad_active, functorch_active, functorch_wrapped


def source_index(n: int, before: int, after: int, boundary: str) -> torch.Tensor:
    """Indices into a length-``n`` axis that build its extension by ``(before, after)``."""
    j = torch.arange(-before, n + after, dtype=torch.int64)
    if boundary == "wrap":
        return j.remainder(n)
    if boundary == "symmetric":
        m = j.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if boundary == "reflect":
        if n == 1:
            return torch.zeros_like(j)
        m = j.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if boundary == "replicate":
        return j.clamp(0, n - 1)
    raise AssertionError(f"unknown boundary {boundary!r}")  # _spec canonicalised it


def _source_list(n: int, before: int, after: int, boundary: str) -> list[int]:
    """:func:`source_index` in Python ints, for :func:`_runs`: no torch op, so that nothing of
    it is traced (``torch.export`` traces Python with fake tensors, whose values are unknown).
    Python's ``%`` is torch's ``remainder`` (the divisor's sign); equal to
    :func:`source_index` (tested)."""
    out = []
    for j in range(-before, n + after):
        if boundary == "wrap":
            out.append(j % n)
        elif boundary == "symmetric":
            m = j % (2 * n)
            out.append(m if m < n else 2 * n - 1 - m)
        elif boundary == "reflect":
            m = j % (2 * n - 2) if n > 1 else 0
            out.append(m if m < n else 2 * n - 2 - m)
        else:  # replicate
            out.append(min(max(j, 0), n - 1))
    return out


def extend(
    x: torch.Tensor,
    dims: Sequence[int],
    pads: Sequence[tuple[int, int]],
    boundary: str,
    fill_value: bool | complex = 0,
) -> torch.Tensor:
    """Return ``x`` extended along ``dims`` by ``pads[i] = (before, after)`` samples.

    ``boundary`` is a canonical name (see :mod:`trueconv.core.names`); ``'fill'`` uses
    ``fill_value``. The result is a new tensor; ``x`` is never modified.
    """
    if not any(b or a for b, a in pads):
        return x
    sizes = static_shape(x)  # plain ints, also under torch.jit.trace
    if boundary == "fill":
        shape = list(sizes)
        region = [slice(None)] * x.ndim
        for d, (b, a) in zip(dims, pads):
            shape[d] += b + a
            region[d] = slice(b, b + sizes[d])
        out = x.new_full(shape, fill_value)
        out[tuple(region)] = x
        return out
    if _in_place_ok(x) and math.prod(sizes) >= MIN_IN_PLACE:  # static sizes: traceable
        return _extend_in_place(x, dims, pads, boundary, sizes)
    compiling = torch.compiler.is_compiling()
    for d, (b, a) in zip(dims, pads):
        if not (b or a):
            continue
        if compiling:
            parts = [
                x.narrow(d, start, length).flip(d) if flipped else x.narrow(d, start, length)
                for start, length, flipped in _runs(sizes[d], b, a, boundary)
            ]
            x = parts[0] if len(parts) == 1 else torch.cat(parts, d)
        else:
            x = x.index_select(d, source_index(sizes[d], b, a, boundary).to(x.device))
    return x


def extend_padded(
    x: torch.Tensor,
    dims: Sequence[int],
    pads: Sequence[tuple[int, int]],
    boundary: str,
    fill_value: bool | complex,
    lengths: Sequence[int],
) -> torch.Tensor:
    """:func:`extend`, then zeros appended along each of ``dims`` up to ``lengths`` (at least
    the extended lengths): the operand of a zero-padded transform, built in one array.

    ``torch.fft.rfftn(extend(x, ...), s=lengths)`` builds two arrays of about this size, the
    extension and the transform's zero-padded copy of it, each written once and, when large,
    faulted in page by page (see :class:`trueconv._methods.fft.FFTPlan`'s ``extends``).
    Eagerly the extension is written straight into the padded array; elsewhere (recorded
    calls, small inputs) it is padded after.
    """
    sizes = static_shape(x)
    shape = list(sizes)
    region = [slice(None)] * x.ndim
    for d, (b, a), n in zip(dims, pads, lengths):
        shape[d] = n
        region[d] = slice(0, sizes[d] + b + a)
    if not (_in_place_ok(x) and math.prod(sizes) >= MIN_IN_PLACE):
        y = extend(x, dims, pads, boundary, fill_value)
        out = y.new_zeros(shape)
        out[tuple(region)] = y
        return out
    out = x.new_empty(shape)
    for d, (b, a), n in zip(dims, pads, lengths):
        if n > sizes[d] + b + a:
            out.narrow(d, sizes[d] + b + a, n - sizes[d] - b - a).zero_()
    view = out[tuple(region)]
    if boundary == "fill":
        inner = [slice(None)] * x.ndim
        for d, (b, _) in zip(dims, pads):
            inner[d] = slice(b, b + sizes[d])
        view.fill_(fill_value)
        view[tuple(inner)] = x
    else:
        _extend_in_place(x, dims, pads, boundary, sizes, view)
    return out


def _in_place_ok(x: torch.Tensor) -> bool:
    """Whether :func:`_extend_in_place` may run: eager, nothing recorded (no autograd graph,
    no forward-mode tangent, no ``torch.func`` transform, no trace), a plain strided tensor."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if type(x) is not torch.Tensor and type(x) is not torch.nn.Parameter:
        return False  # a subclass may give in-place writes its own meaning
    if x.layout != torch.strided or x.is_quantized:
        return False
    if torch.is_grad_enabled() and x.requires_grad:
        return False
    return not (forward_ad_active() or functorch_active() or functorch_wrapped(x))


def _extend_in_place(
    x: torch.Tensor,
    dims: Sequence[int],
    pads: Sequence[tuple[int, int]],
    boundary: str,
    sizes: tuple[int, ...],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`extend`'s eager path: the result allocated once (or ``out``, of the extended
    shape), ``x`` copied into its interior,
    then each dim's pads copied, dim after dim, from the part of the result already filled.

    Along dim ``d``, the dims extended before it span their whole extended range (their pads
    are filled) and the dims after it only their interior (their pads are filled later, from
    these samples), so every sample is written once. A side's pads are runs of consecutive
    source indices (:func:`_pad_runs`): an ascending run is one slice copy, a descending one a
    flipped slice, a repeated index (``replicate``) one broadcast copy; a side of more than
    :data:`MAX_RUNS` runs (a pad that wraps around a short input many times) is one
    ``index_select`` of the source slab instead.
    """
    shape = list(sizes)
    region = [slice(None)] * x.ndim
    for d, (b, a) in zip(dims, pads):
        shape[d] += b + a
        region[d] = slice(b, b + sizes[d])
    if out is None:
        out = x.new_empty(shape)
    out[tuple(region)] = x
    for d, (b, a) in zip(dims, pads):
        if not (b or a):
            continue
        region[d] = slice(None)  # the pads of earlier dims are filled: copy them along
        filled = out[tuple(region)]
        interior = filled.narrow(d, b, sizes[d])
        for first, runs in _pad_runs(sizes[d], b, a, boundary):
            if len(runs) > MAX_RUNS:
                length = b if first == 0 else a
                idx = source_index(sizes[d], b, a, boundary)[first : first + length]
                idx, part = idx.to(x.device), filled.narrow(d, first, length)
                if part.stride(d) == 1:  # a gather of short rows: into a contiguous temporary
                    part.copy_(interior.index_select(d, idx))
                else:  # whole rows: straight into the result
                    torch.index_select(interior, d, idx, out=part)
                continue
            for pos, start, n, kind in runs:
                part = filled.narrow(d, first + pos, n)
                if kind == _ASCENDING:
                    part.copy_(interior.narrow(d, start, n))
                elif kind == _DESCENDING:
                    part.copy_(interior.narrow(d, start, n).flip(d))
                else:
                    part.copy_(interior.narrow(d, start, 1).expand_as(part))
    return out


#: Inputs of fewer elements take the gathers, also eagerly: a copy's dispatch outweighs the
#: data there (1 thread, pads 1 and 4 on both dims of n² float32: up to 128² the gathers took
#: 16-64 µs, the copies 37-101 µs; from 256² on the copies won, 1.3-2.4x, replicate at 256²
#: p=1 excepted, 0.85x; 512² 12-15x).
MIN_IN_PLACE = 1 << 16

#: More runs than this on one side of one dim, and :func:`_extend_in_place` gathers that side
#: with one ``index_select`` instead of copying run by run (see the module docstring).
MAX_RUNS = 3

_ASCENDING, _DESCENDING, _REPEATED = 0, 1, 2


@functools.lru_cache(maxsize=256)
def _pad_runs(
    n: int, before: int, after: int, boundary: str
) -> tuple[tuple[int, tuple[tuple[int, int, int, int], ...]], ...]:
    """The pads of :func:`source_index` as runs, per side: ``(first, runs)`` with ``first`` the
    side's first position in the extended axis and each run ``(position in the side, source
    start, length, kind)``; ``kind`` ascending, descending (source ``start + length - 1``
    down to ``start``) or repeated (``length`` copies of ``start``). Eager only (cached by
    shapes with ``functools.lru_cache``, which Dynamo does not trace)."""
    src = _source_list(n, before, after, boundary)
    sides = []
    for first, side in ((0, src[:before]), (before + n, src[before + n :])):
        if not side:
            continue
        runs: list[tuple[int, int, int, int]] = []
        pos = 0
        while pos < len(side):
            end, step = pos + 1, side[pos + 1] - side[pos] if pos + 1 < len(side) else 0
            if step not in (-1, 0, 1):
                step = 0
            while end < len(side) and side[end] - side[end - 1] == step:
                end += 1
            if end - pos == 1:
                step = 1
            kind = {1: _ASCENDING, -1: _DESCENDING, 0: _REPEATED}[step]
            runs.append((pos, min(side[pos], side[end - 1]), end - pos, kind))
            pos = end
        sides.append((first, tuple(runs)))
    return tuple(sides)


@static
def _runs(n: int, before: int, after: int, boundary: str) -> tuple[tuple[int, int, bool], ...]:
    """:func:`source_index` as runs of consecutive indices, ``(start, length, descending)``:
    the extension as a concatenation of slices (flipped where they descend).

    What :func:`extend` builds under ``torch.compile``, at trace time from shapes: torch 2.13's
    inductor corrupts the heap on CPU when it fuses the backward of ``index_select`` along two
    dims with a convolution's backward (a compiled training step of a
    ``padding_mode='reflect'`` layer aborted with "free(): corrupted unsorted chunks", float32
    and float64, also without trueconv's flip); slices, flips and ``cat`` compile without it.
    """
    runs: list[list[int]] = []
    for i in _source_list(n, before, after, boundary):
        run = runs[-1] if runs else []
        step = run[1] - run[0] if len(run) > 1 else i - run[-1] if run else 0
        if run and abs(step) == 1 and i - run[-1] == step:
            run.append(i)
        else:
            runs.append([i])
    return tuple((min(r[0], r[-1]), len(r), len(r) > 1 and r[1] < r[0]) for r in runs)
