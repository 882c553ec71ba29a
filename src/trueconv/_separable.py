"""Separable (rank-1) kernels: one 1-D pass per convolved dim.

A kernel is separable when ``k[m0, ..., m_{d-1}] = f0[m0] · f1[m1] · ...``. Its convolution is
then the 1-D convolutions along each dim in turn (the sums factor), which costs
``sum(k_i)`` multiply-adds per output instead of ``prod(k_i)``: a 7×7 Gaussian 14 instead of 49,
a 31×31 one 62 instead of 961. Box, Gaussian, Sobel, Prewitt and most built-in kernels of the
CLI are separable.

Where it applies. ``method='auto'`` on the CPU (:data:`SEPARABLE_AUTO_DEVICES`), one kernel for
every signal (no kernel batch), the kernel in the kernel role (no ``'valid'`` swap), at least
two convolved dims longer than one, the kernel's values readable (not under ``torch.compile``,
tracing or ``torch.func``, not on the meta device) and not requiring a gradient (the passes
take factors, not the kernel). Each pass is a problem of its own, planned by
:func:`trueconv._plan.cheapest` (so it runs by the compiled direct loop, the FFT or
overlap-add, whichever is cheapest for that pass), and the separable plan is taken only when
the cost model prices it below the dense plan. Boundaries: an index-map extension
(``'reflect'``, ...) along one dim commutes with the passes along the others, so each pass gets
its own dim's (the fused loop and the direct passes read it in place, no extended copy is
made); a fill value does not commute and is applied to the whole input first (by the fused loop
in place for a 2-D kernel). The implicit zero padding of ``'full'``/``'same'`` splits per dim.
Either way the result is the dense call's.

Detection (:func:`factors`), from the largest-magnitude element ``p`` of the kernel and the
fibres ``f_i`` through it (``k ≈ f0 ⊗ f1 ⊗ ... / p^(d-1)``):

- integers and bool: exactly. The fibres are made primitive (divided by their gcd) and the
  remaining integer factor folded into the first; the outer product of the factors must equal
  the kernel element for element (kernels with entries up to ``2**20``, so the check cannot
  overflow). Integer passes run in int64 and wrap as the dense sum does.
- floating kernels: the factors, rounded to the compute dtype, must rebuild every element
  within ``T·u·|k[m]|`` (``T`` taps, ``u`` the unit roundoff: ``2**-24`` float32, ``2**-53``
  float64), computed in float64. A zero element must be rebuilt as exactly zero. Then each
  output's change from using the factors is at most ``T·u·sum_m |k[m]| |x[j - m]|``: the
  direct sum's own a-priori error bound (``γ_T = T·u / (1 - T·u)``). With the passes' own
  rounding the separable result stays within about twice the direct method's bound.
- complex kernels, NaN or ±Inf in the kernel, and the all-zero kernel: not separable here.

The analysis (rank 1, then the low ranks) of a kernel of up to :data:`MEMO_ELEMENTS` elements
is kept, keyed by the kernel's bytes, dtype, shape and device (:func:`_memo`): the same values
again are not analysed again, whatever tensor holds them; changed values are.

NaN and ±Inf in the input land where the dense direct sum puts them: every pass places them
(:func:`trueconv._plan.run`), and a term ``k[m] x[p]`` of the dense sum is the pass terms'
product ``f1[m1] (f0[m0] x[p])``, non-finite and of the same sign exactly when it is (so the
fused loop, a direct sum of the same terms grouped, places them too, unchecked).

Low-rank kernels (``method='low_rank'``). A 2-D floating kernel of rank ``r`` (a difference of
Gaussians, a Laplacian of Gaussian, a Gabor filter: rank 2) is ``sum_q f0[q] ⊗ f1[q]``; the
fused loop runs all ``r`` pairs in one pass over the image (each term's vertical taps into a
row of its own, its horizontal taps from there added into the output row), ``r·(k0 + k1)``
multiply-adds per output instead of ``k0·k1``: 1.16-2.72x the dense plan on 11-31 taps, about
1.0-1.3x on 7 (``benchmarks/results/low_rank.txt``). Where: ``'auto'``, the CPU with numba,
float32 and float64, a kernel whose only dims longer than one are the last two convolved dims,
no kernel batch, not separable, and the fused loop for ``r`` terms priced
(:func:`_fused_seconds`, plus :data:`LOW_RANK_CHECK_S` and :data:`SVD_S_PER_CUBE` for the
check) below the dense plan, for ``r`` up to :data:`MAX_RANK`. The factors come from the SVD in
float64 (:func:`low_rank_factors`), rounded to the compute dtype, for the smallest ``r`` that
passes both checks below (``T`` taps, ``u`` the unit roundoff, ``k~`` the rounded factors'
terms, ``K+ = sum_q |f0[q]| ⊗ |f1[q]|``):

- ``sum_m |k~[m] - k[m]| <= T·u·sum_m |k[m]|``: using ``k~`` for ``k`` changes output ``j`` by
  at most ``T·u·sum|k|·M_j``, with ``M_j`` the largest ``|x|`` in its window;
- ``(k0 + r·k1)·sum K+ <= T·sum|k|``: the loop's rounding, at most
  ``γ_(k0 + r·k1)·sum_m K+[m] |x[j - m]|`` (``k0`` vertical taps, then ``r·k1`` horizontal ones),
  is then at most ``γ_T·sum|k|·M_j``.

So ``|y~_j - y_j| <= 2·γ_T·sum|k|·M_j``: twice the direct sum's a-priori bound
``γ_T·sum_m |k[m]| |x[j - m]|`` in its window-wise form (the one its elementwise form implies;
not elementwise, as the terms may cancel where ``k`` is small: a LoG's zero crossing). The
second check refuses kernels whose terms cancel too much (the 3×3 Laplacian's SVD terms make
its zero corners from non-zero products); random kernels fail the first (full rank).
Integer, bool and complex kernels keep rank 1 (exact). NaN and ±Inf: the loop reports a
non-finite input and the dense plan runs (the terms' sum would put ``+Inf + -Inf = NaN`` where
the dense sum has one infinite term); so do tensors the loop cannot read (compile, tracing,
``torch.func``).

Terms given by the caller (:func:`trueconv.convolve_separable` with ``(r, k_d)`` factors,
:func:`terms_plan`): the same fused loop where it runs; elsewhere (no numba, an accelerator,
more than two long dims) the terms one after the other, each by the rank-1 plan, summed
(``chains``), the signal checked finite first (one reduction; else the dense plan).

The fused loop. On the CPU with numba, float32/float64, the passes along the last two dims
run as one compiled loop instead (:mod:`trueconv._methods.rows_separable`: no full-size
intermediate; the plan's ``fused``, priced as one call of the direct loop with the two
passes' multiply-adds; the passes run in its order, :func:`_order`). Where it cannot run
(compile, tracing, ``torch.func``, meta tensors, other dtypes, factors that require a
gradient, forward-mode AD) or where a factor or the fill value is NaN or ±Inf (it would
multiply the zero padding), the passes run.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trueconv import _nonfinite, _plan
from trueconv._methods import rows, rows_separable
from trueconv._methods import scratch as _scratch
from trueconv._problem import Extension, Plan, Problem
from trueconv.core import cost
from trueconv.core.dtypes import exact_dtype, is_integer
from trueconv.core.static import register

#: Below this predicted dense time a kernel is analysed for a separable plan only when it
#: repeats (:data:`SIGHTINGS`); from it on, on every call. The analysis reads the kernel (on
#: the CPU, for a kernel not seen before, about 30-40 us with the quick test of
#: :func:`_clearly_not_rank1`; 2-4 us for one kept by :func:`_memo`), which a small problem
#: with a kernel used once cannot win back. Measured (2026-12-04, float32, 'auto' against 2e-4
#: before, separate processes alternating, fastest of 15 calls, 1 / 2 threads): Gaussians
#: 256² ⊛ 7×7 1.73x / 1.28x, 9×9 2.14x / 1.55x, 512² ⊛ 5×5 1.57x / 1.37x (now separable);
#: random kernels repeated 0.96-1.03x on 256²-512² ⊛ 3-9 taps, and 0.95-1.29x on 3-D and
#: batched problems of 0.15-0.8 ms. The cost: a fresh random kernel every call (median call of
#: 150, 2 / 1 threads) on 256² ⊛ 7×7 115 → 156 / 198 → 240 us, 512² ⊛ 5×5 208 → 235 / 347 →
#: 393 (the analysis: 29 us a fresh 7×7 kernel, 19 of them in :func:`factors`, 11 in its
#: quick test). Below it (2026-12-04 evening, one thread, ``benchmarks/separable_threshold.py``)
#: analysing every kernel ran Gaussians on 96²-192² ⊛ 7×7-9×9 1.6-2.1x faster and fresh
#: random kernels 0.68-0.84x: hence :data:`SIGHTINGS` there.
MIN_DENSE_S = 1e-4

#: Below :data:`MIN_DENSE_S`, a kernel is analysed on its ``SIGHTINGS``-th call (the same
#: bytes, dtype, shape and device; counted for the last :data:`MEMO_SIZE` kernels, by hash)
#: and kept by :func:`_memo` from then on: a filter applied image after image runs its
#: separable plan from its second call, and a kernel used once costs its count instead of
#: its analysis. 0 never analyses there (the rule before 2026-12-05). Measured against 0
#: (2026-12-05, one thread, ``benchmarks/separable_threshold.py --sightings 0 2``, results in
#: ``benchmarks/results/separable_sightings.txt``): a Gaussian repeated on 96²-256² ⊛ 5×5-9×9,
#: where the fused loop is priced below the dense one, 1.78-2.50x faster (11 cells; 128² ⊛
#: 7×7 float32 79.8 → 44.3 us); a fresh random kernel every call on those cells 0.92-0.96x
#: (7-9 us a call: its bytes read, counted, and the checks before; 5 us in a loop of its own),
#: every other cell 0.98-1.02x.
SIGHTINGS = 2

#: The fused loop (:func:`fused_counts`) must be predicted to take at most this fraction of
#: the dense plan's time. Its constants are fitted on calls repeated back to back, where 3-tap
#: factors on 768²-1024² are priced at 0.82-0.94 of the dense loop and ran 0.80-1.04x its
#: time (2 threads; 0.68-0.95x at one). The ranking depends on what runs between calls: among
#: OpenCV's calls and a copy (the image grid in its fixed order, two runs an hour apart;
#: trueconv's times, which that order slowed by a median 1.04x) the loop ran 1024² ⊛
#: 3-tap Gaussians 1.15-1.49x faster than the dense loop at 2 threads (at one: 0.64-1.51x
#: its speed); among FFT and overlap-add calls of the same image
#: (``benchmarks/auto_vs_best.py``, interleaved medians) 1.12-1.47x slower, and right after
#: one such call (1024² and 3 × 1024², float32/float64, 1 and 2 threads, median of 25)
#: 0.93-1.31x the dense loop's time (back to back in the same run 0.80-1.20x). 0.85 would keep
#: those cells dense and also 128² ⊛ 7×7 (priced at 0.86-0.93, run 1.33-1.54x faster
#: fused): kept at 1.0, what the measured constants say (2026-12-05).
FUSED_FRACTION = 1.0

#: The separable plan made of passes (not the fused loop: :data:`FUSED_FRACTION`) must be
#: predicted to take at most this fraction of the dense
#: plan's time: the cost model prices each pass alone, and the intermediate array and second pass
#: cost more than it says for short kernels (1024^2 float32 * 3x3 Gaussian: passes 2.86 ms,
#: dense 2.25 ms, where the model priced the passes lower); from 5 taps per dim on the saving
#: is large (10 multiply-adds per output instead of 25).
MAX_FRACTION = 0.75

#: Private switch: False runs the passes instead of the fused loop (the benchmark compares
#: them). Read when a plan is made and when it runs: after changing it,
#: :func:`trueconv._plan.forget` reprices the plans.
_FUSE = True

_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64}

#: Integer kernels whose entries are below this are checked exactly in int64.
_INT_LIMIT = 2**20


@dataclass(frozen=True)
class SeparablePlan:
    """One 1-D pass per convolved dim longer than one (:func:`_order`: the second last dim,
    the last, then the others), each planned as a
    problem of its own: along the last dim a 1-D problem (the other dims batch dims), by its
    cheapest method; along another dim a kernel ``1 × ... × k_i × ... × 1`` by the direct
    method, which runs it in place."""

    problem: Problem
    dims: tuple[int, ...]  # the convolved dim (index among the convolved dims) of each pass
    passes: tuple[Plan, ...]
    seconds: float  # predicted: the passes' sum, or the fused loop's and the later passes'
    method: str = "separable"
    #: the first two passes (the last two dims) run as one compiled loop where it can
    #: (:mod:`trueconv._methods.rows_separable`); the passes remain its fallback
    fused: bool = False
    #: rank-1 terms of the kernel: 1 for a separable kernel; ``r > 1`` for a low-rank one
    #: (``method='low_rank'``: the fused loop with ``r`` pairs of factors, no passes)
    rank: int = 1
    #: for ``rank > 1``: the dense plan, which runs where the fused loop cannot (a non-finite
    #: input, whose NaN and ±Inf the sum of terms would not place as the dense sum does;
    #: tensors the loop cannot read)
    dense: Plan | None = None
    #: for ``rank > 1``: the terms run one after the other, each as this plan's rank-1 form
    #: (its passes, or the fused loop with one pair of factors), and are summed: where the
    #: fused loop cannot take ``r`` pairs (no numba, an accelerator, more than two long
    #: dims; :func:`terms_plan`)
    chains: bool = False

    def run(
        self, a: torch.Tensor, fs: tuple[torch.Tensor, ...], b: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The dense plan's result from the factors ``fs`` (:func:`factors`; for ``rank > 1``
        each of shape ``(rank, k_d)``, :func:`low_rank_factors`, and ``b`` the kernel for the
        dense plan); ``a`` is the
        signal unextended. The problem's :class:`~trueconv._problem.Extension` is applied
        without an extended copy where it can be: an index-map boundary by each pass along
        its own dim (:func:`_per_pass`; the fused loop and the direct passes read it through
        their index maps), a fill value by the fused loop of a 2-D kernel; otherwise to the
        whole input before the passes."""
        if self.chains:  # the terms one after the other, summed
            if _summable(a):
                one = dataclasses.replace(self, rank=1, dense=None, chains=False)
                y = None
                for q in range(self.rank):
                    term = one.run(a, tuple(f[q] for f in fs))
                    y = term if y is None else y + term
                assert y is not None, "a plan of terms has at least two"
                return y
            assert self.dense is not None, "a plan of terms holds its dense plan"
            assert b is not None, "a plan of terms needs its kernel"
            return _plan.run(self.dense, a, b)
        nd = len(self.problem.sb)
        dims = self.dims
        ext = self.problem.extension
        per_pass = _per_pass(self.problem, dims)
        signal = a
        if ext is not None and not per_pass and not (self.fused and nd == 2):
            a, ext = ext.apply(a), None
        # an intermediate result (a 3-D kernel's fused result; the first pass's result where
        # passes run) is the next pass's input alone: in the thread's scratch memory
        # (trueconv._methods.scratch says why), unless autograd records it (a pass whose
        # factor needs a gradient keeps its input for the backward). A 2-D kernel's fused
        # result is the output.
        keep = self.rank == 1 and not (self.fused and len(dims) == 2)
        keep = keep and len(dims) >= 2 and not torch.compiler.is_compiling()
        if not keep or _scratch.recorded(a, *fs):
            return self._chain(a, fs, b, ext, per_pass, signal, False)
        held = _scratch.take("pass")
        try:
            y = self._chain(a, fs, b, ext, per_pass, signal, held)
            return y.clone() if held and _scratch.holds(y) else y  # not expected
        finally:
            if held:
                _scratch.give_back("pass")

    def _chain(
        self,
        a: torch.Tensor,
        fs: tuple[torch.Tensor, ...],
        b: torch.Tensor | None,
        ext: Extension | None,
        per_pass: bool,
        signal: torch.Tensor,
        held: bool,
    ) -> torch.Tensor:
        """:meth:`run`'s fused loop and passes (``a`` extended already where the passes do not
        extend it); with ``held``, the fused result in the thread's scratch memory."""
        nd = len(self.problem.sb)
        dims, passes = self.dims, self.passes
        y = None
        f0, f1 = fs[nd - 2], fs[nd - 1]
        if self.fused and _FUSE and rows_separable.usable(a, f0, f1):
            pads = self.problem.pads[nd - 2 :] if ext is None else ext.pads[nd - 2 :]
            rule, fill = (None, 0) if ext is None else (ext.rule, ext.fill)
            if held:
                y = rows_separable.separable_conv(a, f0, f1, pads, rule, fill, scratch=True)
            else:
                y = rows_separable.separable_conv(a, f0, f1, pads, rule, fill)
        if self.rank > 1:
            if y is not None:
                return y
            assert self.dense is not None, "a low-rank plan holds its dense plan"
            assert b is not None, "a low-rank plan needs its kernel"
            return _plan.run(self.dense, signal, b)
        if y is not None:
            a, dims, passes = y, dims[2:], passes[2:]
        elif ext is not None and not per_pass:
            a = ext.apply(a)  # the fused loop could not run: the passes take it extended
        for i, (d, p) in enumerate(zip(dims, passes)):
            shape = [1] * a.ndim
            shape[a.ndim - nd + d] = fs[d].shape[0]
            f = fs[d].reshape(shape)
            if held and y is None and i == 0 and len(dims) > 1:
                # the first pass's result, read by the second alone (a loop's output: the
                # direct passes; other methods allocate their own)
                with _scratch.redirect("pass"):
                    a = _plan.run(p, a, f)
            else:
                a = _plan.run(p, a, f)  # extends along d where p says
        return a


@functools.lru_cache(maxsize=1024)
def plan(problem: Problem, device: torch.device, method: str = "auto") -> SeparablePlan | None:
    """The separable plan of ``problem`` (from shapes alone), ``None`` where it cannot apply;
    each pass by its cheapest method, or by ``method``."""
    nd = len(problem.sb)
    dims = _order(problem)
    if problem.batch_b != 1 or len(dims) < 2:
        return None
    ext = problem.extension if _per_pass(problem, dims) else None
    cur = list(problem.sa)
    if ext is not None:  # the input comes unextended; each pass extends its own dim
        cur = [n - p - q for n, (p, q) in zip(problem.sa, ext.pads)]
    passes = []
    for d in dims:
        # this pass's extension: along d only, as a 1-D problem's and as the N-D one's
        line: Extension | None = None
        plane: Extension | None = None
        if ext is not None and any(ext.pads[d]):
            cur[d] += sum(ext.pads[d])
            line = Extension(ext.rule, (ext.pads[d],), ext.fill)
            only = tuple(ext.pads[d] if i == d else (0, 0) for i in range(nd))
            plane = Extension(ext.rule, only, ext.fill)
        out = cur[d] + sum(problem.pads[d]) - problem.sb[d] + 1
        if d == nd - 1:
            # along the last dim: a 1-D problem, every other dim a batch dim
            rest = math.prod(cur[:-1])
            step = Problem(
                sa=(cur[d],),
                sb=(problem.sb[d],),
                pads=(problem.pads[d],),
                out=(out,),
                batch_a=problem.batch_a * rest,
                batch_b=1,
                batch=problem.batch * rest,
                dtype=problem.dtype,
                extension=line,
            )
            use = method
        else:
            # along another dim, a kernel 1 x ... x k x ... x 1, which the direct method
            # runs in place (the transforms would transform the whole slab for it, and their
            # counts are not fitted to such kernels): 'auto' keeps it direct
            step = Problem(
                sa=tuple(cur),
                sb=tuple(problem.sb[i] if i == d else 1 for i in range(nd)),
                pads=tuple(problem.pads[i] if i == d else (0, 0) for i in range(nd)),
                out=tuple(out if i == d else cur[i] for i in range(nd)),
                batch_a=problem.batch_a,
                batch_b=1,
                batch=problem.batch,
                dtype=problem.dtype,
                extension=plane,
            )
            use = "direct" if method == "auto" else method
        if use == "auto":
            passes.append(_plan.cheapest(step, device))
        else:
            passes.append(_plan.forced_problem(step, device, use))
        cur[d] = out
    assert tuple(cur) == problem.out
    total = sum(_plan.seconds(p, device) for p in passes)
    fused = _fusable(problem, device, method, dims)
    if fused:
        total = _fused_seconds(problem, device)
        total += sum(_plan.seconds(p, device) for p in passes[2:])
    return SeparablePlan(problem, dims, tuple(passes), total, fused=fused)


def _order(problem: Problem) -> tuple[int, ...]:
    """The passes' dims in the order they run: the second last, the last, then the others
    from the third last down (those longer than one). The fused loop runs the first two in
    this order (its vertical taps read the input's rows in place), so the passes add the
    same terms in the same order."""
    nd = len(problem.sb)
    order = (nd - 2, nd - 1, *reversed(range(nd - 2))) if nd >= 2 else (0,)
    return tuple(d for d in order if problem.sb[d] > 1)


def _summable(a: torch.Tensor) -> bool:
    """Whether terms run one after the other may be summed for the dense kernel's result: the
    signal's values can be read and are finite (a NaN or ±Inf sample would meet each term's
    own sign: ``+Inf + -Inf`` is NaN where the dense sum has one infinite term), one
    reduction (:func:`trueconv._nonfinite.all_finite`)."""
    return _nonfinite.checkable(a) and _nonfinite.all_finite(a)


def _per_pass(problem: Problem, dims: tuple[int, ...]) -> bool:
    """Whether each pass extends its own dim (the input goes in unextended): an index-map
    boundary, whose extension along one dim commutes with the passes along the others, and
    every extended dim has a pass. A fill value does not commute (a pass along another dim
    turns the constant ``c`` into ``c · sum(f)``), so it extends the whole input first."""
    ext = problem.extension
    if ext is None or ext.rule == "fill":
        return False
    return all(d in dims or not any(p) for d, p in enumerate(ext.pads))


def _fusable(problem: Problem, device: torch.device, method: str, dims: tuple[int, ...]) -> bool:
    """Whether the fused loop is planned: the CPU with numba, float32/float64, the last two
    dims both convolved, and 'auto' or 'direct' (the loop is a direct sum) for the passes."""
    nd = len(problem.sb)
    return (
        _FUSE
        and device.type == "cpu"
        and rows.AVAILABLE
        and method in ("auto", "direct")
        and exact_dtype(problem.dtype) in rows_separable.DTYPES
        and dims[:2] == (nd - 2, nd - 1)
    )


def fused_counts(problem: Problem, rank: int = 1) -> cost.Counts:
    """The fused loop's operation counts (variant ``'fused'``, constants of its own, fitted
    by ``benchmarks/fit_cost.py`` and ``trueconv calibrate``): one call; the multiply-adds it
    makes, each of ``rank`` terms' ``k0`` vertical taps over ``o0`` rows of ``o1 + k1 - 1``
    columns (its vertical sums cover the extended columns) and ``k1`` horizontal taps over the
    output; its output samples (passes); its tap groups' passes over output row tiles (aux);
    the input's and output's samples where they leave the cache (memory). Where the loop
    makes rows' vertical sums two at a time (:func:`trueconv._methods.rows_separable.paired`)
    a vertical tap counts as the mean of its multiply-add and its share of the pair's loads,
    as :func:`trueconv._methods.direct.rows_counts` counts the dense loop's pairs.

    Before it was fitted (until 2026-12-05) the loop was priced as the direct loop's counts
    times a factor (1.55), which measured 0.80-1.08x at 2 threads and 1.0-3.7x at one, and
    kept 3-tap factors on the dense loop where the loop ran them 1.04-1.28x faster (512²-1024²,
    2 threads) and 1.1-1.5x at one thread."""
    (k0, k1), (o0, o1) = problem.sb[-2:], problem.out[-2:]
    batch = problem.batch * math.prod(problem.sa[:-2])
    vertical = float(k0)  # units per vertical sum
    groups: float = -(-rank * k0 // rows.GROUP) - rank * (-k1 // rows.GROUP)
    ext = problem.extension
    n1 = problem.sa[-1] - (sum(ext.pads[-1]) if ext is not None else 0)
    if rows_separable.paired(n1, o1, k0, k1, problem.dtype.itemsize):
        # a pair's vertical sums: k0 + 1 loads for 2·k0 multiply-adds, priced as the dense
        # loop prices its pairs (direct.rows_counts: the mean of the two); one pass per two
        # rows, or (more than PAIR_TAPS taps) a pass for each row's own input row and
        # passes of at most VERTICAL_GROUP[1] over the rows both read
        vertical = (k0 + (k0 + 1) / 2) / 2
        vpasses = 1.0
        if k0 > min(rows_separable.PAIR_TAPS, rows_separable.VERTICAL_GROUP[0]):
            vpasses = 2 - (-(k0 - 1) // rows_separable.VERTICAL_GROUP[1])
        groups = rank * vpasses / 2 - rank * (-k1 // rows.GROUP)
    macs = float(batch) * rank * o0 * ((o1 + k1 - 1) * vertical + o1 * k1)
    tiles = batch * o0 * -(-o1 // rows_separable.TILE)
    return cost.Counts(
        "fused",
        1,
        macs,
        passes=float(batch * o0 * o1),
        aux=float(tiles * groups),
        memory=problem.memory,
    )


def _fused_seconds(problem: Problem, device: torch.device, rank: int = 1) -> float:
    """The fused loop's predicted time (:func:`fused_counts`)."""
    return cost.predict(fused_counts(problem, rank), exact_dtype(problem.dtype), device.type)


_plan.priced_cache(plan.cache_clear)


def choice(
    dense: Plan, b: torch.Tensor, device: torch.device, eager: bool = False
) -> tuple[SeparablePlan, tuple[torch.Tensor, ...]] | None:
    """The separable or low-rank plan and the kernel's factors where one applies to the
    kernel ``b`` (kernel role, compute dtype, batch dims of size one) and the cost model
    prices it below ``dense``, else ``None``: rank 1 first (:func:`factors`), then the
    smallest rank up to :data:`MAX_RANK` that is priced below ``dense`` and that
    :func:`low_rank_factors` finds. Below :data:`MIN_DENSE_S` the kernel is analysed on its
    :data:`SIGHTINGS`-th call, or at once where ``eager`` (:func:`trueconv.choose_method`,
    whose answer the calls after it then follow: the analysis is kept)."""
    # not under torch.compile, asked first so that none of the pricing below is traced; then
    # the price (shapes alone, cached), which turns most calls away (the dense 3×3 of every
    # image) before the kernel's own checks: 2 us a call saved between convolutions
    if torch.compiler.is_compiling():
        return None
    sep = by_price(dense, device)
    if sep is None:
        return None  # a rank-1 plan not cheaper than the dense one: no higher rank is
    # the kernel's values must be readable (not under tracing or torch.func)
    if (b.requires_grad and torch.is_grad_enabled()) or not _nonfinite.checkable(b):
        return None
    nd = len(dense.problem.sb)
    low = low_rank_plans(dense, device)
    max_rank = low[-1].rank if low else 1
    eager = eager or not _small(dense, device)
    if b.numel() > MEMO_ELEMENTS:
        found = _analyse(b, nd, max_rank) if eager else None
    else:
        found = _memo(b, nd, max_rank, eager)
    if found is None:
        return None
    if found[-1].ndim == 1:
        return sep, found
    return low[found[-1].shape[0] - 2], found


#: Kernels of at most this many elements have their analysis (:func:`_analyse`) kept, keyed
#: by their bytes (:func:`_memo`): a call that repeats a kernel (a filter applied to image
#: after image) reads it (2-4 us) instead of analysing it again. Measured (2026-12-04, 1024²
#: float32 ⊛ 5×5 LoG, 2 threads, interleaved with the dense plan's calls): the analysis cost
#: 27 us in a tight loop of its own but 70-90 us a call between convolutions (its numpy code
#: cold), 11-15% of the 0.6 ms call.
MEMO_ELEMENTS = 1 << 14


def _bytes(b: torch.Tensor) -> bytes:
    """The kernel's elements' bytes in C order, the key of :func:`_memo`: through numpy
    where it takes the tensor as it is (a CPU tensor of a numpy dtype: 1.0 us for 7×7
    float32, against 3.2 for the general form's five torch calls)."""
    if b.is_cpu and b.dtype in _NUMPY_FLOAT:
        try:  # one call where numpy takes the tensor as it is (1.9 against 4.5 us a call
            return b.numpy().tobytes()  # between convolutions, one thread)
        except RuntimeError:  # it refuses a conjugate or negative view, or one with a graph
            pass
    b = b.detach().resolve_conj().resolve_neg()  # the values, not a view's storage
    if b.is_cpu and b.dtype in _NUMPY_FLOAT:
        return b.numpy().tobytes()
    return b.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


#: How many kernels' analyses :func:`_memo` keeps (the least recently used go first).
MEMO_SIZE = 64
_MEMO: collections.OrderedDict[tuple[Any, ...], tuple[torch.Tensor, ...] | None] = (
    collections.OrderedDict()
)
_MEMO_LOCK = threading.Lock()  # Dask's threads plan calls at once
#: Calls seen of kernels not analysed yet (:data:`SIGHTINGS`), by their key's hash.
_SEEN: collections.OrderedDict[int, int] = collections.OrderedDict()


def _memo(
    b: torch.Tensor, nd: int, max_rank: int, eager: bool = True
) -> tuple[torch.Tensor, ...] | None:
    """:func:`_analyse` of ``b``, kept for :data:`MEMO_SIZE` kernels keyed by ``b``'s bytes
    (:func:`_bytes`), dtype, shape and device, and the question (``nd``, ``max_rank``). The
    factors never share memory with ``b``: a kernel changed in place has new bytes, and the
    factors kept for the old ones stay as they were. A kernel not seen before is analysed as
    it is, not rebuilt from its bytes (3-5 us saved); with ``eager`` false only on its
    :data:`SIGHTINGS`-th call (``None`` before: no plan but the dense one)."""
    key = (_bytes(b), b.dtype, tuple(b.shape), b.device, nd, max_rank)
    with _MEMO_LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
        if not eager:
            h = hash(key)
            seen = _SEEN.pop(h, 0) + 1
            if seen < SIGHTINGS:  # (SIGHTINGS < 1 never gets here: by_price says no)
                _SEEN[h] = seen
                while len(_SEEN) > MEMO_SIZE:
                    _SEEN.popitem(last=False)
                return None
    found = _analyse(b, nd, max_rank)  # which reads it detached, views resolved
    with _MEMO_LOCK:
        _MEMO[key] = found
        while len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)
    return found


def _analyse(b: torch.Tensor, nd: int, max_rank: int) -> tuple[torch.Tensor, ...] | None:
    """The kernel's factors: rank 1 (:func:`factors`, 1-D factors), else the smallest rank up
    to ``max_rank`` (:func:`low_rank_factors`, factors of shape ``(r, k_d)``), else ``None``.
    A conjugate or negative view (``z.conj().imag``) is read as its values: numpy refuses it."""
    b = b.detach().resolve_conj().resolve_neg()
    fs = factors(b, nd)
    if fs is not None or max_rank < 2:
        return fs
    return low_rank_factors(b, nd, max_rank)


#: The device types on which 'auto' weighs a separable plan: those whose cost constants were
#: fitted with its passes timed. Not CUDA: the constants fitted on an H200 (2026-11-26) came
#: before the separable plans, and with them 'auto' took passes where they lost
#: (benchmarks/RESULTS_CUDA.md, 2026-12-04, Gaussian kernels, median of 5: float64 3×4096²
#: ⊛ 3×3 20.9 ms against 3.3 by the dense direct sum, 1024² ⊛ 3×3 1.22 against 0.45; float32
#: 1024² ⊛ 7×7 0.66 against 0.46 by the FFT, 3×4096² ⊛ 3×3 3.6 against 2.4); the passes beat
#: every dense method on 3 of 48 Gaussian cells, by at most 1.19x (median: 1.64x slower).
#: :func:`trueconv.convolve_separable` runs rank-1 factors as passes on any device (its terms,
#: under 'auto', as the dense kernel elsewhere).
SEPARABLE_AUTO_DEVICES = frozenset({"cpu"})


@functools.lru_cache(maxsize=4096)
def by_price(dense: Plan, device: torch.device) -> SeparablePlan | None:
    """The separable plan where the cost model prefers it to ``dense`` for a separable kernel
    (from shapes alone; :func:`choice` adds the checks on the kernel), else ``None``. Cached
    per dense plan and device: pricing the dense plan took 1.5 of the 5.4 us this question
    cost a 32² ⊛ 3² call, one thread, that the answer (no) did not need."""
    if device.type not in SEPARABLE_AUTO_DEVICES:
        return None
    if SIGHTINGS < 1 and _small(dense, device):
        return None
    sep = plan(dense.problem, device)
    if sep is None:
        return None
    fraction = FUSED_FRACTION if sep.fused else MAX_FRACTION
    if sep.seconds > fraction * _plan.seconds(dense, device):
        return None
    return sep


_plan.priced_cache(by_price.cache_clear)


@functools.lru_cache(maxsize=4096)
def _small(dense: Plan, device: torch.device) -> bool:
    """Whether ``dense`` is priced below :data:`MIN_DENSE_S` (cached: 3 us a call saved)."""
    return _plan.seconds(dense, device) < MIN_DENSE_S


_plan.priced_cache(_small.cache_clear)


#: The largest rank of a low-rank plan: difference-of-Gaussians, Laplacian-of-Gaussian and
#: Gabor kernels are rank 2, a sum of three Gaussians rank 3. Each term costs the fused
#: loop's rank-1 multiply-adds again, so the cost model rarely lets more through.
MAX_RANK = 4

#: Added to a low-rank plan's price: reading the kernel, its SVD and the checks
#: (:func:`low_rank_factors`), ``LOW_RANK_CHECK_S + SVD_S_PER_CUBE · k0 · k1 · min(k0, k1)``
#: seconds. Measured (2026-12-03, one call of :func:`choice` after the rank-1 check): 70-110
#: us on 7×7-31×31 kernels; numpy's SVD alone 14 us (7²), 0.11 ms (31²), 0.41 ms (63²), 2.2
#: ms (127²), 10 ms (255²). With it the 1024² ⊛ 7×7 cells (the loop priced at 0.94-0.97 of
#: the dense loop, measured 0.95-1.19) stay dense.
LOW_RANK_CHECK_S = 1e-4
SVD_S_PER_CUBE = 1.6e-9


@functools.lru_cache(maxsize=4096)
def low_rank_plans(dense: Plan, device: torch.device) -> tuple[SeparablePlan, ...]:
    """The low-rank plans of ranks 2, 3, ... (up to :data:`MAX_RANK`) that the cost model
    prices below ``dense``, from shapes alone: the fused loop with ``r`` pairs of factors,
    where it runs (the CPU with numba, float32/float64, a kernel whose only dims longer than
    one are the last two, no kernel batch). ``()`` where none is."""
    problem = dense.problem
    limit = _plan.seconds(dense, device)
    dims = _terms_dims(problem, device, "auto")
    if limit < MIN_DENSE_S or dims is None:
        return ()
    found = []
    k0, k1 = problem.sb[-2:]
    check = LOW_RANK_CHECK_S + SVD_S_PER_CUBE * k0 * k1 * min(k0, k1)
    for r in range(2, min(MAX_RANK, k0, k1) + 1):
        seconds = _fused_seconds(problem, device, r) + check
        if seconds > limit:
            break
        found.append(SeparablePlan(problem, dims, (), seconds, "low_rank", True, r, dense))
    return tuple(found)


_plan.priced_cache(low_rank_plans.cache_clear)


@functools.lru_cache(maxsize=1024)
def terms_plan(
    dense: Plan, device: torch.device, rank: int, method: str = "auto"
) -> SeparablePlan | None:
    """The fused loop for a kernel given as ``rank`` separable terms
    (:func:`trueconv.convolve_separable` with factors of shape ``(rank, k_d)``), from shapes
    alone: where the loop runs (as :func:`low_rank_plans`) and, for ``'auto'``, is priced
    below ``dense`` as :func:`low_rank_plans` prices it, :data:`LOW_RANK_CHECK_S` included
    although no kernel is analysed: without it the loop was taken on 5-tap terms where it
    ran 1.0-1.45x the dense loop's time (`benchmarks/results/low_rank.txt`, 2026-12-04: the
    loop's short-kernel cost is underpriced by about that much), and with it the terms run
    where 'auto' would run the kernel's own terms (but for the SVD's price). For
    ``'direct'`` wherever it runs (the loop is a direct sum).

    Where the loop cannot take the terms together (no numba, an accelerator, more than two long
    dims), the terms one after the other (``chains``), each by the rank-1 plan (:func:`plan`:
    its passes, or the fused loop with one pair of factors), summed: priced ``r`` times that
    plan plus the sums' memory traffic, and taken under ``'auto'`` as the rank-1 plan is
    (:func:`by_price`: at most :data:`MAX_FRACTION` of the dense plan for passes; only on
    :data:`SEPARABLE_AUTO_DEVICES`). Measured (2026-12-04, float64, 2 threads, interleaved,
    fastest of 10): without the fused loop 2 × 700 × 650 ⊛ 15 × 13 rank 2 6.4 against the dense
    plan's 12.3 ms, 1024² ⊛ 15² 6.4 against 9.9, 1024² ⊛ 9² 4.8 against 3.9 (priced 1.7 against
    3.1: short passes are underpriced, as ``MAX_FRACTION`` says); 3-D float32 with the fused
    loop for the last two dims, 64 × 128² ⊛ 9³, 96³ ⊛ 5³ and 32 × 256² ⊛ 7³, rank 2: 7.7, 5.1
    and 8.6 against 14.6, 7.7 and 26.8 ms. ``None`` otherwise (a forced transform: the dense
    kernel's transform costs one term's): the caller runs the dense kernel."""
    problem = dense.problem
    limit = _plan.seconds(dense, device)
    dims = _terms_dims(problem, device, method)
    if dims is not None:
        seconds = _fused_seconds(problem, device, rank) + LOW_RANK_CHECK_S
        if method == "auto" and seconds > limit:
            return None
        return SeparablePlan(problem, dims, (), seconds, "low_rank", True, rank, dense)
    # the terms one after the other, each by the rank-1 plan, where the fused loop cannot
    # take them together
    if method not in ("auto", "direct"):
        return None  # a transform of the dense kernel costs what one term's would
    if method == "auto" and device.type not in SEPARABLE_AUTO_DEVICES:
        return None  # the passes are not priced there (SEPARABLE_AUTO_DEVICES)
    one = plan(problem, device, method)
    if one is None:
        return None
    # and each sum after the first reads two outputs and writes one: priced as the compiled
    # loop's memory traffic where the device's constants have it (the CPU's), else as one
    # shift-and-add pass over the output (the constants fitted for CUDA have no 'rows' term:
    # KeyError on an H200, 2026-12-04)
    if cost.has_constants(("rows",), device.type):
        size = max(4, problem.dtype.itemsize)
        add = cost.Counts(
            "rows", 0, 0.0, memory=cost.memory(2 * problem.out_elems, problem.out_elems, size)
        )
    else:
        add = cost.Counts("shift_add", 1, float(problem.out_elems))
    seconds = rank * one.seconds + (rank - 1) * cost.predict(
        add, exact_dtype(problem.dtype), device.type
    )
    if method == "auto" and seconds > (FUSED_FRACTION if one.fused else MAX_FRACTION) * limit:
        return None
    return dataclasses.replace(
        one, seconds=seconds, method="low_rank", rank=rank, dense=dense, chains=True
    )


_plan.priced_cache(terms_plan.cache_clear)


def _terms_dims(problem: Problem, device: torch.device, method: str) -> tuple[int, ...] | None:
    """The passes' dims (second last, then last) where the fused loop can run a sum of terms:
    the only kernel dims longer than one are the last two, no kernel batch, and the loop runs
    for ``method`` (:func:`_fusable`); else ``None``."""
    nd = len(problem.sb)
    dims = _order(problem)
    if (
        problem.batch_b != 1
        or dims != (nd - 2, nd - 1)
        or not _fusable(problem, device, method, dims)
    ):
        return None
    return dims


def low_rank_factors(b: torch.Tensor, nd: int, max_rank: int) -> tuple[torch.Tensor, ...] | None:
    """Factors of shape ``(r, k_d)`` per convolved dim (``(r, 1)`` ones for dims of length
    one) whose terms ``sum_q outer(f0[q], f1[q])`` are the 2-D floating kernel ``b`` within
    the module's low-rank bound, for the smallest ``2 <= r <= max_rank``; else ``None``.

    From the SVD ``k = U diag(s) V^T`` in float64: ``f0[q] = sqrt(s_q) U[:, q]``, ``f1[q] =
    sqrt(s_q) V[:, q]``, rounded to the compute dtype. Accepted where, in float64, with ``T``
    taps and ``u`` the unit roundoff, ``sum |k~ - k| <= T·u·sum |k|`` (``k~`` the rounded
    factors' terms) and ``(k0 + r·k1) · sum_q sum |f0[q]| ⊗ |f1[q]| <= T · sum |k|``."""
    if b.dtype not in _NUMPY_FLOAT:
        return None  # complex, integer and bool kernels: rank 1 only (exactly)
    sizes = tuple(b.shape[-nd:])
    if any(n > 1 for n in sizes[:-2]):
        return None
    k0, k1 = sizes[-2:]
    arr = b.detach().reshape(k0, k1).cpu().numpy().astype(np.float64)
    total = float(np.abs(arr).sum())
    if not math.isfinite(total) or total == 0:
        return None
    u = torch.finfo(b.dtype).eps / 2
    taps = k0 * k1
    left, sv, right = np.linalg.svd(arr)
    for r in range(2, min(max_rank, k0, k1) + 1):
        root = np.sqrt(sv[:r])
        a0 = (left[:, :r] * root).T.astype(_NUMPY_FLOAT[b.dtype])
        a1 = (right[:r] * root[:, None]).astype(_NUMPY_FLOAT[b.dtype])
        w0, w1 = a0.astype(np.float64), a1.astype(np.float64)
        if float(np.abs(w0.T @ w1 - arr).sum()) > taps * u * total:
            continue  # the terms do not rebuild k yet: one more
        if (k0 + r * k1) * float((np.abs(w0).T @ np.abs(w1)).sum()) > taps * total:
            return None  # the terms cancel too much (more terms cancel more)
        one = torch.ones((r, 1), dtype=b.dtype, device=b.device)
        out = [one] * nd
        out[nd - 2] = torch.from_numpy(a0).to(b.device)
        out[nd - 1] = torch.from_numpy(a1).to(b.device)
        return tuple(out)
    return None


def factors(b: torch.Tensor, nd: int) -> tuple[torch.Tensor, ...] | None:
    """One 1-D factor per convolved dim whose outer product is the kernel ``b`` (the last
    ``nd`` dims; leading dims of size one) within the module's bound, or ``None``. Dims of
    length one get the factor ``[1]`` (the plan runs no pass for them)."""
    if b.is_complex() or (b.is_floating_point() and b.dtype not in _NUMPY_FLOAT):
        return None  # complex; half precision is computed in float32 before it gets here
    sizes = tuple(b.shape[-nd:])
    long = [d for d in range(nd) if sizes[d] > 1]
    k = b.detach().reshape([sizes[d] for d in long]).cpu()
    if len(long) == 2 and k.dtype in _NUMPY_FLOAT and _clearly_not_rank1(k):
        return None
    integer = is_integer(k.dtype)
    arr = k.numpy().astype(np.int64 if integer else np.float64)
    if not integer and not np.isfinite(arr).all():
        return None
    if integer and np.abs(arr).max(initial=0) >= _INT_LIMIT:
        return None
    pivot = tuple(int(i) for i in np.unravel_index(int(np.abs(arr).argmax()), arr.shape))
    p = arr[pivot]
    if p == 0:
        return None
    m = len(long)
    fibres = [_fibre(arr, pivot, d) for d in range(m)]
    if integer:
        fs = _integer_factors(fibres, pivot, int(p))
        if fs is None or not np.array_equal(functools.reduce(np.multiply.outer, fs), arr):
            return None
        found = [torch.from_numpy(f) for f in fs]
    else:
        # in numpy until accepted: most kernels that get here are not separable, and each
        # torch call costs microseconds (this check ran 160-200 us with torch conversions)
        fibres[0] = fibres[0] / p ** (m - 1)
        rounded = [f.astype(_NUMPY_FLOAT[b.dtype]) for f in fibres]
        rebuilt = functools.reduce(np.multiply.outer, [f.astype(np.float64) for f in rounded])
        u = torch.finfo(b.dtype).eps / 2  # unit roundoff
        if not np.all(np.abs(rebuilt - arr) <= arr.size * u * np.abs(arr)):
            return None
        found = [torch.from_numpy(f) for f in rounded]
    one = torch.ones(1, dtype=b.dtype, device=b.device)
    out = [one] * nd
    for d, f in zip(long, found):
        out[d] = f.to(device=b.device, dtype=b.dtype)
    return tuple(out)


#: How many elements :func:`_clearly_not_rank1` tests at most.
QUICK_TESTS = 16


def _clearly_not_rank1(k: torch.Tensor) -> bool:
    """Whether the 2-D floating kernel ``k`` (on the CPU) fails :func:`factors`' test at one of
    its first :data:`QUICK_TESTS` elements off the pivot's row and column, computed in Python
    floats: most kernels asked about are not separable, and the first such element shows it.
    Reads the pivot (numpy's ``argmax``) and a few rows, whatever the kernel's size: 5.7-8.5
    us for 3×3-63×63 in a tight loop (``tolist`` of the whole kernel took 2.6 us for 3×3 but
    77 for 31×31 and 320 for 63×63). Measured (2026-12-04, fresh 5×5 float32 random kernels,
    each between two 512² convolutions): :func:`factors` took 56 us a kernel without it (25
    in a tight loop), 19 with it (9).

    Sound: where :func:`factors` accepts, its factors ``f0 = k[:, q] / p`` and ``f1 = k[p, :]``
    (pivot ``p = k[p0, q]``), rounded to the dtype (``u`` its unit roundoff), rebuild each
    element within ``S·u·|k[i, j]|`` (``S`` elements); the rounding moves the product by at
    most ``3.01·u`` of it, so ``|k[i, j]·p - k[i, q]·k[p0, j]| <= (S + 4)·u·(|k[i, j]·p| +
    |k[i, q]·k[p0, j]|)``, and float64's own rounding of that test adds less than ``4·u``
    more. An element past ``(S + 8)·u`` of it proves the kernel not rank 1; NaN and ±Inf
    never do (they make the test false; :func:`factors` refuses them itself)."""
    arr = k.numpy()
    n0, n1 = arr.shape
    p0, q = divmod(int(np.abs(arr).argmax()), n1)
    need = -(-QUICK_TESTS // max(1, n1 - 1))  # rows besides the pivot's
    others = [i for i in range(min(n0, need + 1)) if i != p0][:need]
    rows = arr[[p0, *others]].tolist()
    pivot = rows[0]
    p = pivot[q]
    tol = (n0 * n1 + 8) * torch.finfo(k.dtype).eps / 2
    tests = 0
    for row in rows[1:]:
        for j, v in enumerate(row):
            if j == q:
                continue
            lhs, rhs = v * p, row[q] * pivot[j]
            if abs(lhs - rhs) > tol * (abs(lhs) + abs(rhs)):
                return True
            tests += 1
            if tests == QUICK_TESTS:
                return False
    return False


def _fibre(arr: np.ndarray, pivot: tuple[int, ...], d: int) -> np.ndarray:
    """The 1-D line of ``arr`` along dim ``d`` through ``pivot`` (a copy)."""
    index: list[Any] = list(pivot)
    index[d] = slice(None)
    return np.array(arr[tuple(index)])


def _integer_factors(
    fibres: list[np.ndarray], pivot: tuple[int, ...], p: int
) -> list[np.ndarray] | None:
    """Integer factors of an integer rank-1 kernel: primitive fibres, the rest folded into the
    first. ``None`` when the division is not exact (then the kernel is not rank-1)."""
    fs = []
    for f in fibres:
        g = int(np.gcd.reduce(np.abs(f)))
        fs.append(f // g)
    scale = math.prod(int(f[i]) for f, i in zip(fs, pivot))
    if scale == 0 or p % scale:
        return None
    fs[0] = fs[0] * (p // scale)
    return fs


register(SeparablePlan)  # rebuilt from plain tuples under torch.compile
