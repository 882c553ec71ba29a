"""Both passes of a separable 2-D convolution in one compiled loop (issue 14).

The separable plan's passes (:class:`trueconv._separable.SeparablePlan`) write the whole
result of the pass along the last dim to memory and read it back for the pass along the
other dim: for 3-tap factors the intermediate costs more than the taps it saves
(1024² float32 ⊛ 3×3 Gaussian, 2 threads: passes 2.86 ms, dense 2.25 ms), and it kept the
passes at about 0.8× the speed of OpenCV's ``sepFilter2D``, which fuses its row and column
filters. This loop does the same: it makes a run of output rows (a chunk: one parallel
region takes the chunks, :func:`_call`); for each output row it computes the horizontal pass of the
input rows that row needs and no earlier row computed, into a ring of ``k0`` rows that stays
in the L2 cache, then adds the vertical taps from the ring into the output row while that
row sits in L1, up to `rows.GROUP` taps per pass over a row. Each input row is read once per chunk
(plus ``k0 - 1`` rows at the start of each chunk), the output written once, no full-size
intermediate exists. Measured numbers: ``benchmarks/RESULTS_SEPARABLE.md``.

Semantics are the passes': the terms of each output are added in the passes' order
(horizontal taps, then vertical taps, each in tap order, as :mod:`trueconv._methods.rows`
adds them), every term is multiplied. The horizontal pass reads each input row from a copy
with its zero padding or its boundary extension (one row of the tile, in L1; the extension
through index maps, as :mod:`trueconv._methods.rows` reads it), so the taps run over whole
rows with no per-tap edge ranges and no extended input is built; the padding's terms add
exact zeros (the factors are checked finite), so the sums are the passes' up to the sign of
a zero result (tested bitwise otherwise).
Against the per-tap ranges of before this is 1.2-1.35x faster on 1024² float32 and 1.8-2.2x
on 4096 rows of 256 (one thread; the old loop spent about 0.3 µs per row on its edges);
float64 1.0-1.7x. Reading the row in place with only the edges from a padded copy measured
slower (three calls per tap group: 1.15-1.45x the old loop against 1.2-2.2x). OpenCV's
trick for symmetric factors, adding the two samples that share a weight before multiplying
(half the multiplies), measured no faster here (0.75-1.0x with 3-11 taps): the loop is
bound by loads, stores and per-row work, not multiplies. The per-row work, measured
(2026-12-04, one thread, float32, ``_run`` on (2048, 128) against (128, 2048)): 87 / 97 /
118 ns per output row for 3 / 5 / 7 taps, 45-60 us of a 512² call's 140-220 (its copy, its
edges through the maps, two tap-group calls, the vertical tap list); in the same minutes the
bare loop took 157 / 193 / 235 us on 512² against ``sepFilter2D``'s 146 / 205 / 274. The
tap-group calls read and write flat arrays at unsigned offsets since 2026-12-04 (a view per
tap left numba's reference counting in place, about 45 ns a call: ``rows._group``): this loop
1.06-1.27x faster on 512²-1024² float32, 1.01-1.15x float64, 2048² unchanged (one thread,
``benchmarks/results/flat_group.txt``).

NaN and ±Inf: the copy of each input row checks it (one vectorised reduction of ``x · 0``,
NaN exactly when a sample is NaN or ±Inf, where :func:`trueconv._nonfinite.all_finite` on
the whole input took 0.37-0.66 ms, 20-40% of a 3-tap call); any non-finite sample, or a
non-finite factor, makes :func:`separable_conv` return ``None`` and the caller runs the
passes, which place non-finite values as the dense direct sum does. Every input sample is
copied at least once (it is a term of some output: the pads are at most ``k - 1``). With
finite operands the loop computes the passes' very sums, overflow to ±Inf included.

Float32 and float64 only (other dtypes keep the passes), plain CPU tensors whose data can be
read (:func:`usable`: not under ``torch.compile``, tracing, ``torch.func`` or on meta
tensors), numba present (:data:`trueconv._methods.rows.AVAILABLE`). Autograd for the input
only: the input's gradient is the same loop on the output gradient with the flipped factors
and the complementary pads (:class:`_FusedConv`), itself differentiable; factors that require
a gradient keep the passes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from trueconv import _nonfinite
from trueconv._methods import rows
from trueconv.core.torch_internals import forward_ad_active, functorch_active, functorch_wrapped

#: Dtypes the fused loop computes in.
DTYPES = frozenset({torch.float32, torch.float64})

#: Column tiles (:func:`tile_width`): up to ``TILE`` samples wide, or wider as far as a
#: tile's ring of horizontal rows (``k0`` per rank-1 term) stays within
#: :data:`trueconv._methods.rows.RING_BYTES`. Wider rows are split into equal tiles, each with
#: its own ring.
TILE = 2048


def tile_width(o1: int, ring_rows: int, itemsize: int) -> int:
    """Samples per column tile of output rows ``o1`` samples long, for a ring of
    ``ring_rows`` rows of ``itemsize`` bytes: the fewest equal tiles no wider than
    :func:`trueconv._methods.rows.widest_tile` allows.

    Against a fixed 2048 before (2026-12-04, ``benchmarks/loop_tiles.py``, 'auto' on
    Gaussian kernels, 4096² and 1024 × 8192, two runs, the median of each round's ratio,
    bitwise the same results): float32 ⊛ 7-31 taps 1.08-1.25x at 1 thread, 1.05-1.20x at 2;
    float64 ⊛ 7-15 taps 1.06-1.19x / 1.02-1.12x (31 float64 taps keep tiles of 2048:
    0.95-1.02x). Narrower tiles than 2048 lost (the loop alone, 1024² float32 ⊛ 3-11 taps:
    512 samples 0.76-0.86x, 256 0.52-0.63x)."""
    widest = rows.widest_tile(ring_rows, itemsize, TILE)
    tiles = -(-o1 // widest)
    return -(-o1 // tiles)


_KERNEL: Callable[..., bool] | None = None
_copy_check: Any = None  # the loop's helpers (_compile sets them)
_add_taps: Any = None
_row_stride: Any = None
_fused2: Any = None  # the loop over one run of output rows
_LOCK = threading.Lock()


def _compile() -> Callable[..., bool]:
    """The loop over a range of output rows, and the parallel region over runs of them; they
    release the GIL, so threads run it on
    several ranges at once (:func:`_call`)."""
    global _copy_check, _add_taps, _row_stride
    numba = rows.numba
    if numba is None:  # rows compiles its loop (and imports numba) first: _kernel()
        raise RuntimeError("numba is not loaded")

    @numba.njit(fastmath={"reassoc"}, cache=True)  # type: ignore[untyped-decorator]
    def copy_check(d, x, n):  # type: ignore[no-untyped-def]  # pragma: no cover
        # d[:n] = x[:n]; True if a copied sample is NaN or ±Inf: the sum of x * 0 is 0 for
        # finite samples, NaN otherwise ('reassoc' alone lets LLVM vectorise the sum; it
        # cannot fold x * 0 to 0 without 'nnan' and 'nsz')
        s = x[0] * 0 if n > 0 else d[0] * 0
        for t in range(n):
            v = x[t]
            d[t] = v
            s += v * 0
        return s != s

    # fused2 reads both as module globals: a closure over a dispatcher is never loaded from
    # numba's cache (rows.add_group says why)
    _copy_check = copy_check
    _add_taps = rows.add_taps  # the taps of a row in passes of up to 'group' (rows.py)
    _row_stride = rows.row_stride  # the ring's row length (rows.py)

    @numba.njit(nogil=True, cache=True)  # type: ignore[untyped-decorator]
    def fused2(r0, r1, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group):  # type: ignore[no-untyped-def]  # pragma: no cover
        # a (nz·n0, n1), out (nz·o0, o1), dims = (nz, n0, o0), the factors f0 (nr, k0) and
        # f1 (nr, k1), one row per rank-1 term; e the extension of a by the index maps
        # (e[z, s, t] = a[z, map0[s], map1[t]]; where a map is -1, fill[0], or with an empty
        # 'fill' a zero that is not a term; map1 is the identity shifted by p1 on
        # [p1, p1 + n1)):
        #   h[q, z, s, j] = sum_m1 f1[q, m1] e[z, s, j + k1-1-m1]
        #   out[z, i, j] = sum_q sum_m0 f0[q, m0] h[q, z, i + k0-1-m0, j]  (rows that are terms)
        # This call makes output rows [r0, r1) of the nz·o0 rows; per column tile a ring of
        # nr·k0 rows holds h[q, z, s] at row q·k0 + s % k0. True if it saw a non-finite h.
        _, n0, o0 = dims
        n1 = a.shape[1]
        o1 = out.shape[1]
        nr = f0.shape[0]
        k0 = f0.shape[1]
        k1 = f1.shape[1]
        tiles = (o1 + cw - 1) // cw
        bad = False
        ring = np.empty((nr * k0, _row_stride(cw, out.itemsize)), dtype=out.dtype)
        # the taps read and write flat arrays at unsigned offsets (rows._group says why)
        rstride = ring.shape[1]
        rflat = ring.reshape(ring.size)
        oflat = out.reshape(out.size)
        f1flat = f1.reshape(f1.size)
        # the extended input row of the tile: xp[t] = e[., t + c0]
        xp = np.empty(cw + k1 - 1, dtype=out.dtype)
        h_offs = np.empty(nr * k1, dtype=np.uint64)  # term q's tap m1 reads xp[j + k1-1-m1]
        for t in range(nr * k1):
            h_offs[t] = np.uint64(k1 - 1 - t % k1)
        v_offs = np.empty(nr * k0, dtype=np.uint64)
        ws = np.empty(nr * k0, dtype=out.dtype)
        zero = np.zeros(1, dtype=out.dtype)[0]  # a literal 0.0 would compute in float64
        const = fill.size > 0  # the samples outside are fill[0], terms
        fv = fill[0] if const else zero
        for c in range(tiles):
            c0 = c * cw
            c1 = min(o1, c0 + cw)
            width = c1 - c0
            span = width + k1 - 1
            # xp[t] for t in [t0, t1) is the input row's, the map's outside
            t0 = min(span, max(0, p1 - c0))
            t1 = max(t0, min(span, n1 + p1 - c0))
            uwidth = np.uint64(width)
            pad = xp
            dx = xp[t0:t1]
            have = -1  # rows h[z, s] for extended s <= have are in the ring (this z)
            zc = -1
            for r in range(r0, r1):
                z = r // o0
                i = r - z * o0
                if z != zc:
                    zc = z
                    have = -1
                for s in range(max(i, have + 1), i + k0):
                    rs = map0[s]
                    if rs < 0 and not const:
                        continue
                    if rs < 0:  # a row of the constant fill (a finite one: _run checks)
                        for t in range(span):
                            pad[t] = fv
                    else:
                        line = a[z * n0 + rs]
                        for t in range(t0):
                            v = map1[c0 + t]
                            pad[t] = line[v] if v >= 0 else fv
                        for t in range(t1, span):
                            v = map1[c0 + t]
                            pad[t] = line[v] if v >= 0 else fv
                        if _copy_check(dx, line[t0 + c0 - p1 : t1 + c0 - p1], t1 - t0):
                            bad = True
                    for q in range(nr):
                        hd = np.uint64((q * k0 + s % k0) * rstride)
                        _add_taps(rflat, hd, xp, h_offs, f1flat, q * k1, k1, group, uwidth, zero)
                have = i + k0 - 1
                # the vertical taps whose rows exist, term by term, each in tap order
                g = 0
                for q in range(nr):
                    for m0 in range(k0):
                        s = i + k0 - 1 - m0
                        if map0[s] >= 0 or const:
                            v_offs[g] = np.uint64((q * k0 + s % k0) * rstride)
                            ws[g] = f0[q, m0]
                            g += 1
                od = np.uint64(r * o1 + c0)
                _add_taps(oflat, od, rflat, v_offs, ws, 0, g, group, uwidth, zero)
        return bad

    global _fused2
    _fused2 = fused2  # fused_all reads it as a global (rows.add_group says why)

    @numba.njit(parallel=True, nogil=True, cache=True)  # type: ignore[untyped-decorator]
    def fused_all(chunks, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group):  # type: ignore[no-untyped-def]  # pragma: no cover
        # the output rows in 'chunks' equal runs, one parallel region: True if a run saw a
        # non-finite horizontal row
        total = out.shape[0]
        bad = np.zeros(chunks, dtype=np.bool_)
        for c in numba.prange(chunks):
            r0 = total * c // chunks
            r1 = total * (c + 1) // chunks
            bad[c] = _fused2(r0, r1, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group)
        return bad.any()

    return fused_all  # type: ignore[no-any-return]


def _kernel() -> Callable[..., bool]:
    global _KERNEL
    if _KERNEL is None:
        rows._kernel()  # imports numba
        with _LOCK:
            if _KERNEL is None:
                _KERNEL = _compile()
    return _KERNEL


def usable(a: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor) -> bool:
    """Whether :func:`separable_conv` can run: numba loads, plain strided CPU tensors of one
    dtype in :data:`DTYPES` whose data can be read, the factors needing no gradient, no
    forward-mode AD."""
    if not rows.AVAILABLE or a.dtype not in DTYPES or a.ndim < 2:
        return False
    for t in (a, f0, f1):
        if (
            t.dtype != a.dtype
            or t.device.type != "cpu"
            or t.layout != torch.strided
            or type(t) is not torch.Tensor
        ):
            return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or forward_ad_active():
        return False
    if functorch_active() or any(functorch_wrapped(t) for t in (a, f0, f1)):
        return False
    if torch.is_grad_enabled() and (f0.requires_grad or f1.requires_grad):
        return False
    return rows._loads()


def separable_conv(
    a: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    pads: tuple[tuple[int, int], ...],
    rule: str | None = None,
    fill: bool | complex = 0,
) -> torch.Tensor | None:
    """The valid convolution of ``a`` extended by ``pads`` (one pair per last two dims; zero
    padding where ``rule`` is None, else the boundary ``rule`` with ``fill`` for ``'fill'``,
    read through the maps of :func:`trueconv._methods.rows.valid_conv`) with ``outer(f0,
    f1)``; leading dims are batch dims. Factors of shape ``(r, k0)`` and ``(r, k1)`` are ``r``
    rank-1 terms: the kernel is ``sum_q outer(f0[q], f1[q])`` (each term's horizontal rows
    in a ring of their own, every term's vertical taps added into the output row in one
    pass group). ``None`` where a non-finite value appeared (the caller runs the passes, or
    the dense plan for ``r > 1``). Requires :func:`usable`."""
    if torch.is_grad_enabled() and a.requires_grad:
        if rule is not None:  # the extension's own backward records the graph
            a, pads = rows._extended(a, pads, rule, fill)
            rule = None
        # the input's values are needed before the graph records: the check that _run
        # makes on the fly would come too late to choose the passes; the factors too, as
        # _run checks them only when it checks the rows (a non-finite factor times the zero
        # padding of a row would put NaN where the passes add no term)
        if not _nonfinite.all_finite(a, f0, f1):
            return None
        out: torch.Tensor = _FusedConv.apply(a, f0, f1, pads)
        return out
    return _run(a, f0, f1, pads, check=True, rule=rule, fill=fill)


def _run(
    a: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    pads: tuple[tuple[int, int], ...],
    check: bool,
    rule: str | None = None,
    fill: bool | complex = 0,
) -> torch.Tensor | None:
    (p0, q0), (p1, q1) = pads
    n0, n1 = a.shape[-2:]
    k0, k1 = f0.shape[-1], f1.shape[-1]
    o0, o1 = n0 + p0 + q0 - k0 + 1, n1 + p1 + q1 - k1 + 1
    batch = tuple(a.shape[:-2])
    out, o_np = rows._empty((*batch, o0, o1), a.dtype)
    if o_np.size == 0:
        return out
    nz = math.prod(batch)
    x = rows._readable(a, None).reshape(nz * n0, n1)
    # one row per rank-1 term (a 1-D factor is one term); reshaped as numpy arrays (a torch
    # reshape costs about 1.5 us a call, a numpy one 0.3)
    w0 = rows._readable(f0, None).reshape(-1, k0)
    w1 = rows._readable(f1, None).reshape(-1, k1)
    # a non-finite constant fill: the loop's check sees only the input's rows
    finite_fill = rule != "fill" or math.isfinite(abs(complex(fill)))
    # a finite sum proves every factor finite (an overflowing one refuses finite factors:
    # the passes run them then); one reduction per factor, not two
    if check and not (math.isfinite(w0.sum()) and math.isfinite(w1.sum()) and finite_fill):
        return None
    cw = tile_width(o1, w0.shape[0] * k0, o_np.itemsize)
    maps = rows._index_map(n0, p0, q0, rule), rows._index_map(n1, p1, q1, rule)
    fills = rows.fill_array(rule, fill, o_np.dtype)
    ok = _call(x, w0, w1, (nz, n0, o0), maps, p1, fills, o_np.reshape(nz * o0, o1), cw)
    return out if ok or not check else None


def _call(
    x: Any,
    w0: Any,
    w1: Any,
    dims: tuple[int, int, int],
    maps: tuple[Any, Any],
    p1: int,
    fill: Any,
    out: Any,
    cw: int,
) -> bool:
    """The loop over all output rows in one parallel region (numba's ``prange``, as the
    dense loop's), in runs of consecutive rows, each with its own ring: ``4 · threads`` runs
    of at least ``4 · k0`` rows (every run computes ``k0 - 1`` horizontal rows again), one
    with one thread.

    Before, the calling thread and a pool of Python threads took the runs in turn (so that a
    thread the OS does not schedule would cost nothing). At 2 threads that was often slower
    than one: the pool's thread woke late, and whenever torch's own OpenMP threads were
    spinning after an op (a ``copy_`` between two calls) it shared a core with them (1024²
    float32 ⊛ 11-tap Gaussian: 2.17 ms with a ``copy_`` between calls, 0.93 ms without, 1.24
    ms at one thread; 512² ⊛ 7 taps at 2 threads 0.97 ms in the image benchmark against 0.47
    at one). The parallel region (2026-12-03, 2 threads, a ``copy_`` between calls): 512²-2048²
    float32 / float64 with 5-15 taps 1.3-1.9x its 1-thread time and 1.12-2.63x
    ``cv2.sepFilter2D``'s; under one competing busy process it holds as the dense loop's does
    (``benchmarks/RESULTS_LOAD.md``). Open: with two busy processes (both cores taken) a
    2-thread region waits for a descheduled thread, as the dense loop's does (1024² float32 ⊛
    7-tap Gaussian: median 6.84 ms, best 0.63, against 1.22 quiet at 1 thread and 1.76 loaded
    at 1 thread; the dense 7×7 loop 5.74 against 3.09).
    """
    kernel = _kernel()
    total = out.shape[0]
    threads = rows.numba_threads()
    k0 = w0.shape[1]
    chunks = max(1, min(4 * threads, total // max(1, 4 * k0))) if threads > 1 else 1
    bad = rows.parallel(kernel, chunks, x, w0, w1, dims, *maps, p1, fill, out, cw, rows.GROUP)
    return not bad


class _FusedConv(torch.autograd.Function):
    """:func:`_run` with the input's gradient by the same loop: for ``y = a_p ⊛ outer(f0,
    f1)`` (valid), ``grad_a`` is the valid convolution of ``g`` padded by ``(k - 1 - before,
    k - 1 - after)`` per dim with the flipped factors (real dtypes: no conjugate)."""

    @staticmethod
    def forward(
        a: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, pads: tuple[tuple[int, int], ...]
    ) -> Any:
        return _run(a, f0, f1, pads, check=False)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _, f0, f1, pads = inputs
        ctx.save_for_backward(f0, f1)
        ctx.pads = pads

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        f0, f1 = ctx.saved_tensors
        (p0, q0), (p1, q1) = ctx.pads
        k0, k1 = f0.shape[-1], f1.shape[-1]
        back = ((k0 - 1 - p0, k0 - 1 - q0), (k1 - 1 - p1, k1 - 1 - q1))
        r0, r1 = f0.flip(-1), f1.flip(-1)
        if torch.is_grad_enabled() and g.requires_grad:  # double backward: record again
            ga: torch.Tensor = _FusedConv.apply(g, r0, r1, back)
        else:
            ga = _run(g, r0, r1, back, check=False)  # type: ignore[assignment]
        return ga, None, None, None
