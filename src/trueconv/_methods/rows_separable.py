"""Both passes of a separable 2-D convolution in one compiled loop (issue 14).

The separable plan's passes (:class:`trueconv._separable.SeparablePlan`) write the whole
result of the first pass to memory and read it back for the second: for 3-tap factors the
intermediate costs more than the taps it saves (1024² float32 ⊛ 3×3 Gaussian, 2 threads:
passes 2.86 ms, dense 2.25 ms), and it kept the passes at about 0.8× the speed of OpenCV's
``sepFilter2D``, which fuses its row and column filters. This loop fuses them too. Threads
take runs of output rows (chunks: one parallel region, :func:`_call`); for each output row
the vertical taps read the input rows it needs in place (a pass of up to
:data:`VERTICAL_GROUP` taps over the row tile) into ``xp``, one row of the vertical sums with
its extended columns, in L1; the horizontal taps then read ``xp`` at their shifts (up to
`rows.GROUP` taps per pass) into the output row. The input is read where it lies (its rows
stay in L2 for the ``k0`` output rows that read them), the output written once, no copy of
an input row and no full-size intermediate is made. Measured numbers:
``benchmarks/RESULTS_SEPARABLE.md``.

Why vertical first (2026-12-05). The loop of before made the horizontal pass first: each input
row was copied with its padding into a row buffer, its horizontal sums went into a ring of
``k0`` rows, and the vertical taps read the ring. Taking the vertical taps first drops the copy
(and the check it carried, below) and the ring's upkeep, and the padded row the horizontal taps
need is the vertical sums' own row: per output sample ``k0 + k1`` loads and 2 stores where there
were ``k0 + k1 + 2`` and 3. Against it, with the strips below, in pairs of processes
(``benchmarks/fused_vertical.py``, ``benchmarks/results/fused_vertical.txt``; 'same',
Gaussians of 3-31 taps, 512²-2048² and 3 × 1024², through ``convolve_separable``, each
process's time over ``sepFilter2D``'s): float32 a median 1.11x faster at 1 thread (0.84-1.28)
and 1.05x at 2, float64 1.05x / 1.10x; against ``sepFilter2D`` at 1 thread float32 0.96x
(0.87x before; 14 of 26 cells below 1.0, 16 before), float64 1.28x (1.16x). What it loses:
31 taps on 512² (0.84x: six vertical passes and three horizontal ones where the ring took
three and three). The vertical taps' rows are often 4 KiB apart, so a pass over many of them
evicts its own inputs from L1: passes of at most six taps where an output row has more than
eight (:data:`VERTICAL_GROUP`).

Strips. Where the input's rows are short (at most :data:`STRIP_ROW_BYTES`) and the output's
rows as long (one tile, 'same' along the rows), with at most :data:`STRIP_TAPS` horizontal
taps, a run of consecutive output rows whose vertical taps read input rows only, in order, is
one strip of at most :data:`BAND` samples: each vertical tap reads the strip's input rows as one
flat run (they are consecutive in memory), the vertical sums go to a buffer in the same layout,
and each horizontal tap reads that buffer at its shift as one flat run; the ``k1 - 1`` edge
samples of each row, whose shifted reads cross into the next row, are then summed one by one
through the column map (the per-row path's terms in its order: bitwise the same sums). A
pass's set-up (its tap list, the vectorised loop's checks and remainder) is paid per strip,
not per row (the rows one by one cost 55-76 ns a row besides their taps, float32, 3-7 taps,
one thread); the edge samples cost ``(k1 - 1)·k1`` scalar terms a row. Against rows one by one
(2026-12-05, one thread, the loop alone, interleaved): 512² float32/float64 and 1024² float32 ⊛
5-15 taps 1.02-1.24x; rows of 8 KiB (2048 float32, 1024 float64) 0.90-1.08x and 31 taps
0.80-0.88x (the edge samples' 930 terms a row), so those keep rows one by one. Measured again
(2026-12-05): strips of 16384-32768 samples, and rows up to 16 KiB in strips, ran 1.00-1.21x
faster in the loop alone called again and again on the same data, but interleaved with
``cv2.sepFilter2D`` and a copy, as the image grid runs (the data out of cache), 0.88-1.06x
(1024²-2048² float32 and float64 ⊛ 3-15 taps, 1 and 2 threads; rows of 8 KiB in strips of
8192 samples 0.92-1.05x): not kept. The strips' vertical sums two rows at a time (2026-12-05,
evening; one pass of ``k0 + 1`` loads per pair of rows, as the dense loop pairs a 3×3
kernel's rows, bitwise the same sums): through ``convolve_separable`` at one thread,
interleaved with ``cv2.sepFilter2D``, 512²-1024² float32/float64 and 3 × 1024² ⊛ 3-5 taps
0.90-1.04x the strips' single pass over all their rows (a pass per pair of rows costs its
set-up each time): not kept.

Pairs. Rows that are not run as strips (rows over :data:`STRIP_ROW_BYTES`: 2048 float32 or
1024 float64 samples and more, several column tiles, 'full' or 'valid' along the rows) make
their vertical sums two output rows at a time where every vertical tap of both reads an input
row and there are 2 or more: the pair's ``k0 + 1`` input rows are each loaded once and feed
both rows' sums, each sum's terms in tap order, as rows one by one add them (bitwise the
same), into two rows of vertical sums; then the horizontal taps of each as before: ``k0 + 1``
loads of input rows a pair where rows one by one make ``2·k0``. Up to :data:`PAIR_TAPS` taps
in one pass (:func:`_compile`'s ``vertical_pair``); more as the dense loop splits its pairs
(:mod:`trueconv._methods.rows`, Pairs): the second row's tap 0, passes of at most
``VERTICAL_GROUP[1]`` rows both read (``rows.add_pair``), the first row's last tap. Against
rows one by one (2026-12-05, ``benchmarks/fused_pairs.py``, ``benchmarks/results/
fused_pairs.txt``: ``convolve_separable`` 'same' with Gaussians, interleaved with
``cv2.sepFilter2D``) on 2048², 3 × 2048², 1024² float64 and 3 × 1024² float64: 3-7 taps
0.81-0.93x the time at one thread, 0.78-0.92x at two; 11-63 taps 0.76-0.93x / 0.78-0.95x
(float64 2048² ⊛ 63, one thread: 51.5 → 40.4 ms). A pair's horizontal passes go through the
same call of the tap-group routine as a single row's (each inlined copy of its twelve
vectorised loops costs numba about 14 s of compile: ``rows.add_row`` has the numbers): with
the pairs the loop compiles in 94 s for float32 and float64 together, 83 s without (a fresh
cache, after the dense loop; 139 s with the pairs' passes called from three more places). The strips
keep their single pass over all their rows (pairs in strips measured 0.90-1.04x: above).
Rows of up to 4 KiB as pairs instead of strips (``BAND = 0``), two runs: one 512²-1024²
image ⊛ 5-7 taps 0.69-0.97x the strips' time, 3 taps 0.92-1.07x, but 3 × 1024² float32
1.01-1.19x: strips kept (a rule by image size would rest on two runs of one VM).

Semantics are the passes' (:func:`trueconv._separable._order` runs the vertical pass first
too): the terms of each output are added in their order (vertical taps, then horizontal taps,
each in tap order, as :mod:`trueconv._methods.rows` adds them), every term is multiplied. The
vertical taps read the input's rows through the row map (a boundary's rows, or rows of a fill
value, which are terms); ``xp``'s columns outside the input are zeros that are not terms
(implicit zero padding), the vertical sum of a column of the fill value (one number per term,
set once per tile), or for a boundary the sum of the input column the column map names (copied
from ``xp`` where the tile has it, else summed there in the same order). The padding's zeros
times the horizontal factor add exact zeros (the factors are checked finite), so the sums are
the passes' up to the sign of a zero result (tested bitwise otherwise). OpenCV's trick for
symmetric factors, adding the two samples that share a weight before multiplying (half the
multiplies), measured no faster in the loop of before (0.75-1.0x with 3-11 taps): the loop is
bound by loads, stores and per-row work, not multiplies.

NaN and ±Inf. With one pair of factors the loop places them as the dense direct sum does, and
no check is made: each output's sum groups the dense sum's terms (the vertical sum of each
column, then the horizontal sum of those), a term ``f1[m1]·(f0[m0]·x)`` is NaN or ±Inf (of
the same sign) exactly when the dense term ``k[m]·x`` is (:mod:`trueconv._separable`: a zero
kernel element is an exactly zero product of factors, a non-zero one has the same sign), and
a sum of groups is NaN, +Inf, -Inf or finite exactly when the sum of all their terms is
(overflow aside: finite operands whose sums overflow give the passes' sums, ±Inf and NaN
included). The loop of before checked every input row for them (0.37-0.66 ms for the whole
input as a torch reduction; in the loop, a vectorised reduction per row) and ran the passes.
With ``r > 1`` pairs (a low-rank kernel) the terms' sums would put ``+Inf + -Inf = NaN`` where
the dense sum has one infinite term, so each output row is checked (in L1, a vectorised
reduction of ``y · 0``, which is NaN exactly when a sample is NaN or ±Inf): a non-finite row
makes :func:`separable_conv` return ``None`` and the caller runs the dense kernel. A non-finite
factor or fill value returns ``None`` before the loop runs (they would multiply the zero
padding).

Float32 and float64 only (other dtypes keep the passes), plain CPU tensors whose data can be
read (:func:`usable`: not under ``torch.compile``, tracing, ``torch.func`` or on meta
tensors), numba present (:data:`trueconv._methods.rows.AVAILABLE`). Autograd for the input
only: the input's gradient is the same loop on the output gradient with the flipped factors
and the complementary pads (:class:`_FusedConv`), itself differentiable; factors that require
a gradient keep the passes.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from trueconv import _nonfinite
from trueconv._methods import rows
from trueconv._methods import scratch as _scratch
from trueconv.core.torch_internals import forward_ad_active, functorch_active, functorch_wrapped

#: Dtypes the fused loop computes in.
DTYPES = frozenset({torch.float32, torch.float64})

#: The vertical taps' passes (they read the input's rows in place): one pass where an output
#: row has at most ``VERTICAL_GROUP[0]`` of them, else passes of at most ``VERTICAL_GROUP[1]``.
#: The input's rows are often a multiple of 4 KiB apart (1024 float32 or 512 float64
#: samples), so a pass's rows fall in one set of the 8-way L1 cache and a pass over more of
#: them than it holds evicts its own inputs. Measured (2026-12-05, one thread, the loop alone,
#: passes of at most 12 / 8 / 6 / 4 taps): 1024² float32 ⊛ 11 taps 1.45 / 1.12 / 1.09 / 1.11
#: ms, 31 taps 4.03 / 3.28 / 3.15 / 3.20, 2048² ⊛ 11 7.11 / 5.84 / 5.51 / 5.56; float64 alike
#: (1024² ⊛ 31: 7.76 / 6.46 / 6.32 / 6.50); 7 taps in one pass 0.70 ms against 0.74 in two.
VERTICAL_GROUP = (8, 6)

#: Whether output rows outside strips have their vertical sums made two rows at a time, and
#: the most vertical taps made in one pass a pair (the module's docstring, Pairs; the
#: one-pass routine has a branch for each count up to 8, and never more than
#: ``VERTICAL_GROUP[0]``); more taps take a pass of their own for each row's own input row
#: and passes of at most ``VERTICAL_GROUP[1]`` over the rows both read.
VERTICAL_PAIRS = True
PAIR_TAPS = 8

#: Most output samples of one strip (0: rows one by one), the longest input rows (bytes) and
#: the most horizontal taps that are run in strips (the module's docstring, Strips).
BAND = 8192
STRIP_ROW_BYTES = 4096
STRIP_TAPS = 16

#: Column tiles (:func:`tile_width`): up to ``TILE`` samples wide, or wider as far as the
#: ``k0`` input rows a tile's output row reads stay within
#: :data:`trueconv._methods.rows.RING_BYTES` (each is read again by the next ``k0 - 1``
#: output rows). Wider rows are split into equal tiles.
TILE = 2048


def tile_width(o1: int, held_rows: int, itemsize: int) -> int:
    """Samples per column tile of output rows ``o1`` samples long, where a tile keeps
    ``held_rows`` rows of ``itemsize`` bytes in cache: the fewest equal tiles no wider than
    :func:`trueconv._methods.rows.widest_tile` allows.

    Measured for the loop of before (a ring of ``k0`` horizontal rows per tile), against a
    fixed 2048 (2026-12-04, ``benchmarks/loop_tiles.py``, 'auto' on
    Gaussian kernels, 4096² and 1024 × 8192, two runs, the median of each round's ratio,
    bitwise the same results): float32 ⊛ 7-31 taps 1.08-1.25x at 1 thread, 1.05-1.20x at 2;
    float64 ⊛ 7-15 taps 1.06-1.19x / 1.02-1.12x (31 float64 taps keep tiles of 2048:
    0.95-1.02x). Narrower tiles than 2048 lost (the loop alone, 1024² float32 ⊛ 3-11 taps:
    512 samples 0.76-0.86x, 256 0.52-0.63x)."""
    widest = rows.widest_tile(held_rows, itemsize, TILE)
    tiles = -(-o1 // widest)
    return -(-o1 // tiles)


def paired(n1: int, o1: int, k0: int, k1: int, itemsize: int) -> bool:
    """Whether the loop makes the vertical sums of output rows ``o1`` samples long two rows
    at a time (:data:`VERTICAL_PAIRS`: kernels of 2 rows or more, rows not run as strips),
    for input rows of ``n1`` samples and factors of ``k0`` and ``k1`` taps. Rows at the
    input's top and bottom edges, whose vertical taps read rows outside it, are made one by
    one whatever this says."""
    if not (VERTICAL_PAIRS and k0 >= 2):
        return False
    # the loop runs strips where _layout hands it a band and the rows fit one tile as long
    # as the input's (fused2's own test)
    strips = _band(n1, k1, itemsize) > 0 and o1 == n1 and n1 >= 2 * k1
    return not (strips and tile_width(o1, k0, itemsize) >= o1)


def _band(n1: int, k1: int, itemsize: int) -> int:
    """The strip length handed to the loop for input rows of ``n1`` samples and ``k1``
    horizontal taps: :data:`BAND`, or 0 (rows one by one) for rows over
    :data:`STRIP_ROW_BYTES` or more than :data:`STRIP_TAPS` taps."""
    return BAND if n1 * itemsize <= STRIP_ROW_BYTES and k1 <= STRIP_TAPS else 0


_KERNEL: Callable[..., bool] | None = None
_passes: Any = None  # the loop's helpers (_compile sets them)
_nonfinite_row: Any = None
_strip: Any = None
_vertical_pair: Any = None  # two output rows' vertical sums in one pass
_pair_pass: Any = None  # one pass of two rows over their shared loads (rows.add_pair)
_fused2: Any = None  # the loop over one run of output rows
_LOCK = threading.Lock()


def _compile() -> Callable[..., bool]:
    """The loop over a range of output rows, and the parallel region over runs of them; they
    release the GIL, so threads run it on
    several ranges at once (:func:`_call`)."""
    global _passes, _pair_pass, _nonfinite_row, _strip, _vertical_pair
    numba = rows.numba
    if numba is None:  # rows compiles its loop (and imports numba) first: _kernel()
        raise RuntimeError("numba is not loaded")

    @numba.njit(fastmath={"reassoc"}, cache=True)  # type: ignore[untyped-decorator]
    def nonfinite_row(d, dd, n):  # type: ignore[no-untyped-def]  # pragma: no cover
        # True if one of d[dd : dd + n] is NaN or ±Inf: the sum of d * 0 is 0 for finite
        # samples, NaN otherwise ('reassoc' alone lets LLVM vectorise the sum; it cannot fold
        # x * 0 to 0 without 'nnan' and 'nsz'; unsigned offsets, as rows._group takes them; a
        # call of its own, as an inlined routine would compile with the caller's flags)
        s = d[dd] * 0
        for t in range(n):
            s += d[dd + t] * 0
        return s != s

    # fused2 reads them as module globals: a closure over a dispatcher is never loaded from
    # numba's cache (rows.add_group says why); rows.add_taps: every tap of a row in the fewest
    # group passes, the sum started from zero or from what the row holds
    _passes = rows.add_taps
    _pair_pass = rows.add_pair
    _nonfinite_row = nonfinite_row

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def strip(
        a, f0, f1, row, r, run, map1, p1, const, colfill, out, vbuf, voffs, hoffs, vg, group, zero
    ):  # type: ignore[no-untyped-def]  # pragma: no cover
        # Output rows r .. r + run - 1 (one tile, as long as the input's rows), whose vertical
        # tap k0 - 1 reads input rows row, row + 1, ...: each pass runs over the whole run as
        # one flat strip. The vertical sums go to vbuf (term q's at q·vstride + k1, the rows
        # one after the other); the horizontal taps read them at their shifts, which for the
        # k1 - 1 edge samples of each row cross into the next row or the slack: those are
        # then summed one by one through the column map (the per-row path's terms in its
        # order: its xp holds the same vertical sums, or the fill's, or zeros).
        n1 = a.shape[1]
        nr = f0.shape[0]
        k0 = f0.shape[1]
        k1 = f1.shape[1]
        vstride = vbuf.size // nr
        aflat = a.reshape(a.size)
        oflat = out.reshape(out.size)
        f0flat = f0.reshape(f0.size)
        f1flat = f1.reshape(f1.size)
        width = np.uint64(run * n1)
        for q in range(nr):
            for m0 in range(k0):
                voffs[q * k0 + m0] = np.uint64((row + k0 - 1 - m0) * n1)
        for q in range(nr):
            vd = np.uint64(q * vstride + k1)
            _passes(vbuf, vd, aflat, voffs, f0flat, q * k0, k0, vg, width, True, zero)
        for q in range(nr):
            _passes(
                oflat,
                np.uint64(r * n1),
                vbuf,
                hoffs,
                f1flat,
                q * k1,
                k1,
                group,
                width,
                q == 0,
                zero,
            )
        for rr in range(run):
            for e in range(k1 - 1):
                j = e if e < p1 else n1 - (k1 - 1) + e
                s = zero
                for q in range(nr):
                    base = q * vstride + k1 + rr * n1
                    for m1 in range(k1):
                        v = map1[j + k1 - 1 - m1]
                        if v >= 0:
                            s += f1[q, m1] * vbuf[base + v]
                        else:
                            s += f1[q, m1] * (colfill[q] if const else zero)
                out[r + rr, j] = s

    _strip = strip

    @numba.njit  # type: ignore[untyped-decorator]
    def vertical_pair(d0, dd0, d1, dd1, src, o, w, m, k, width, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # The vertical sums of two consecutive output rows in one pass over their k + 1 input
        # rows (2 <= k <= 8 taps, weights w[m : m + k]): o[0] is the row only the second
        # reads (its tap 0), o[s] for 0 < s < k the rows both read (the first's tap s - 1,
        # the second's tap s), o[k] the row only the first reads (its tap k - 1). Each sum's
        # terms in tap order from zero, as one pass of _group adds them (bitwise the rows one
        # by one); k + 1 loads and two stores for two rows where those make 2k loads. A
        # function of its own, as rows.add_pair (why there).
        o0 = o[0]
        u0 = w[m]
        o1 = o[1]
        u1 = w[m + 1]
        o2 = o[2]
        if k == 2:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                s0 += u1 * src[o2 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u2 = w[m + 2]
        o3 = o[3]
        if k == 3:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                s0 += u2 * src[o3 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u3 = w[m + 3]
        o4 = o[4]
        if k == 4:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                a = src[o3 + j]
                s0 += u2 * a
                s1 += u3 * a
                s0 += u3 * src[o4 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u4 = w[m + 4]
        o5 = o[5]
        if k == 5:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                a = src[o3 + j]
                s0 += u2 * a
                s1 += u3 * a
                a = src[o4 + j]
                s0 += u3 * a
                s1 += u4 * a
                s0 += u4 * src[o5 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u5 = w[m + 5]
        o6 = o[6]
        if k == 6:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                a = src[o3 + j]
                s0 += u2 * a
                s1 += u3 * a
                a = src[o4 + j]
                s0 += u3 * a
                s1 += u4 * a
                a = src[o5 + j]
                s0 += u4 * a
                s1 += u5 * a
                s0 += u5 * src[o6 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u6 = w[m + 6]
        o7 = o[7]
        if k == 7:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                a = src[o3 + j]
                s0 += u2 * a
                s1 += u3 * a
                a = src[o4 + j]
                s0 += u3 * a
                s1 += u4 * a
                a = src[o5 + j]
                s0 += u4 * a
                s1 += u5 * a
                a = src[o6 + j]
                s0 += u5 * a
                s1 += u6 * a
                s0 += u6 * src[o7 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        u7 = w[m + 7]
        o8 = o[8]
        if k == 8:
            for j in range(width):
                s1 = zero + u0 * src[o0 + j]
                a = src[o1 + j]
                s0 = zero + u0 * a
                s1 += u1 * a
                a = src[o2 + j]
                s0 += u1 * a
                s1 += u2 * a
                a = src[o3 + j]
                s0 += u2 * a
                s1 += u3 * a
                a = src[o4 + j]
                s0 += u3 * a
                s1 += u4 * a
                a = src[o5 + j]
                s0 += u4 * a
                s1 += u5 * a
                a = src[o6 + j]
                s0 += u5 * a
                s1 += u6 * a
                a = src[o7 + j]
                s0 += u6 * a
                s1 += u7 * a
                s0 += u7 * src[o8 + j]
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return

    _vertical_pair = vertical_pair

    @numba.njit(nogil=True, cache=True)  # type: ignore[untyped-decorator]
    def fused2(r0, r1, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group, vgroups, band, pairs):  # type: ignore[no-untyped-def]  # pragma: no cover
        # a (nz·n0, n1), out (nz·o0, o1), dims = (nz, n0, o0, p0), the factors f0 (nr, k0) and
        # f1 (nr, k1), one row per rank-1 term; e the extension of a by the index maps
        # (e[z, s, t] = a[z, map0[s], map1[t]]; where a map is -1, fill[0], or with an empty
        # 'fill' a zero that is not a term; map1 is the identity shifted by p1 on
        # [p1, p1 + n1)):
        #   v[q, z, i, t] = sum_m0 f0[q, m0] e[z, i + k0-1-m0, t]  (rows that are terms)
        #   out[z, i, j] = sum_q sum_m1 f1[q, m1] v[q, z, i, j + k1-1-m1]
        # each sum in tap order, term after term. This call makes output rows [r0, r1) of
        # the nz·o0 rows, per column tile: the vertical taps read the input's rows in place
        # into xp[q] (a row of v with its extended columns), the horizontal taps read xp[q].
        # With more than one term, True if an output row is not finite (the caller then
        # runs the dense kernel); False otherwise.
        _, n0, o0, p0 = dims
        n1 = a.shape[1]
        o1 = out.shape[1]
        nr = f0.shape[0]
        k0 = f0.shape[1]
        k1 = f1.shape[1]
        tiles = (o1 + cw - 1) // cw
        bad = False
        zero = np.zeros(1, dtype=out.dtype)[0]  # a literal 0.0 would compute in float64
        const = fill.size > 0  # the samples outside are fill[0], terms
        fv = fill[0] if const else zero
        # flat arrays at unsigned offsets (rows._group says why)
        aflat = a.reshape(a.size)
        oflat = out.reshape(out.size)
        f1flat = f1.reshape(f1.size)
        xstride = cw + k1 - 1
        xp = np.zeros(nr * xstride, dtype=out.dtype)  # term q's row of v at q·xstride
        # pairs of output rows (the module's docstring, Pairs): the second row's v in xp2
        pairs = pairs and k0 >= 2
        onepass = k0 <= min(PAIR_TAPS, vgroups[0])  # else lead, shared rows' passes, tail
        xp2 = np.zeros(nr * xstride if pairs else 0, dtype=out.dtype)
        p_offs = np.empty(k0 + 1, dtype=np.uint64)  # the pair's input rows, last first
        pw0 = np.empty(k0 + 1, dtype=out.dtype)  # p_offs[s]'s weight in the first row
        pw1 = np.empty(k0 + 1, dtype=out.dtype)  # and in the second
        shared = k0 - 1
        spasses = (shared + vgroups[1] - 1) // vgroups[1]
        f0flat = f0.reshape(f0.size)
        frow = np.full(xstride, fv)  # where the vertical taps read a row of the fill
        h_offs = np.empty(nr * k1, dtype=np.uint64)  # term q's tap m1 reads xp[j + k1-1-m1]
        for t in range(nr * k1):
            h_offs[t] = np.uint64((t // k1) * xstride + k1 - 1 - t % k1)
        v_offs = np.empty(nr * k0, dtype=np.uint64)  # as the weights: one row per term
        v_fill = np.empty(k0, dtype=np.bool_)  # the tap reads a row of the fill
        rws = np.empty(k0, dtype=np.int64)  # its input row (the edge columns' sums)
        wv = np.empty(nr * k0, dtype=out.dtype)
        # a column of the fill (with 'const', every row of it a term): v is one number a term
        colfill = np.empty(nr, dtype=out.dtype)
        for q in range(nr):
            s = zero
            for m0 in range(k0):
                s += f0[q, m0] * fv
            colfill[q] = s
        # strips (one tile, rows as long as the input's, not too short): at most 'band' samples
        srows = 1
        if band > 0 and tiles == 1 and o1 == n1 and n1 >= 2 * k1:
            srows = max(1, min(band // n1, r1 - r0, o0))
        vstride = srows * n1 + 2 * k1 if srows > 1 else 0
        vbuf = np.zeros(nr * vstride, dtype=out.dtype)  # term q's vertical sums at q·vstride + k1
        s_voffs = np.empty(nr * k0, dtype=np.uint64)
        s_hoffs = np.empty(nr * k1, dtype=np.uint64)  # term q's tap m1 in vbuf
        for t in range(nr * k1):
            s_hoffs[t] = np.uint64((t // k1) * vstride + k1 + k1 - 1 - t % k1 - p1)
        svg = vgroups[0] if k0 <= vgroups[0] else vgroups[1]
        for c in range(tiles):
            c0 = c * cw
            c1 = min(o1, c0 + cw)
            width = c1 - c0
            uwidth = np.uint64(width)
            span = width + k1 - 1
            # xp[q, t] for t in [t0, t1) sums the input's column t + c0 - p1; the columns
            # outside are the map's: zeros that are not terms, the fill's, or input columns
            t0 = min(span, max(0, p1 - c0))
            t1 = max(t0, min(span, n1 + p1 - c0))
            inner = np.uint64(t1 - t0)
            for q in range(nr):
                for t in range(span):
                    if t < t0 or t >= t1:
                        xp[q * xstride + t] = colfill[q] if map1[c0 + t] < 0 and const else zero
                        if pairs:
                            xp2[q * xstride + t] = xp[q * xstride + t]
            r = r0
            while r < r1:
                z = r // o0
                i = r - z * o0
                # a strip: the rows from r (of this z, at most srows) whose vertical taps all
                # read input rows in order, rows p0 <= i <= p0 + n0 - k0
                run = 0
                if srows > 1:
                    while (
                        run < srows
                        and r + run < r1
                        and i + run < o0
                        and p0 <= i + run <= p0 + n0 - k0
                    ):
                        run += 1
                if run > 1:
                    row = z * n0 + i - p0
                    _strip(
                        a,
                        f0,
                        f1,
                        row,
                        r,
                        run,
                        map1,
                        p1,
                        const,
                        colfill,
                        out,
                        vbuf,
                        s_voffs,
                        s_hoffs,
                        svg,
                        group,
                        zero,
                    )
                    if nr > 1 and _nonfinite_row(oflat, np.uint64(r * o1), np.uint64(run * o1)):
                        bad = True
                    r += run
                    continue
                # rows r and r + 1 as a pair where every vertical tap of both reads an input
                # row (the module's docstring, Pairs), else row r alone
                pair = pairs and r + 1 < r1 and i + 1 < o0 and p0 <= i and i + 1 <= p0 + n0 - k0
                nrows = 2 if pair else 1
                row = z * n0 + i - p0  # a pair's input row of the first row's last tap
                g = 0
                if pair:
                    g = k0
                    for t in range(k0 + 1):
                        p_offs[t] = np.uint64((row + k0 - t) * n1 + t0 + c0 - p1)
                    for gi in range(k0):
                        v_fill[gi] = False
                        for q in range(nr):
                            wv[q * k0 + gi] = f0[q, gi]
                else:
                    # the vertical taps whose rows are terms, in tap order; term q's weights
                    # and offsets at [q·k0 + tap]
                    for m0 in range(k0):
                        rs = map0[i + k0 - 1 - m0]
                        if rs < 0 and not const:
                            continue
                        v_fill[g] = rs < 0
                        rws[g] = z * n0 + rs
                        off = np.uint64(0 if rs < 0 else (z * n0 + rs) * n1 + t0 + c0 - p1)
                        for q in range(nr):
                            v_offs[q * k0 + g] = off
                            wv[q * k0 + g] = f0[q, m0]
                        g += 1
                for q in range(nr):
                    xq = q * xstride
                    xd = np.uint64(xq + t0)
                    if pair and onepass:
                        _vertical_pair(
                            xp, xd, xp2, xd, aflat, p_offs, f0flat, q * k0, k0, inner, zero
                        )
                    elif pair:
                        # the second row's tap 0, the rows both read in passes of at most
                        # vgroups[1] loads (rows.add_pair), the first row's last tap; the
                        # single taps as loops of their own (through _passes, each call would
                        # inline the group routine's twelve loops again: about 14 s of
                        # compile each, the module's docstring, Pairs)
                        wl = f0[q, 0]
                        ol = p_offs[0]
                        for jj in range(inner):
                            xp2[xd + jj] = zero + wl * aflat[ol + jj]
                        for t in range(1, k0):
                            pw0[t] = f0[q, t - 1]
                            pw1[t] = f0[q, t]
                        for sp in range(spasses):
                            m = 1 + shared * sp // spasses
                            cnt = shared * (sp + 1) // spasses - shared * sp // spasses
                            _pair_pass(
                                xp, xd, xp2, xd, aflat, p_offs, pw0, pw1, m, cnt, inner,
                                sp == 0, zero,
                            )  # fmt: skip
                        wl = f0[q, k0 - 1]
                        ol = p_offs[k0]
                        for jj in range(inner):
                            xp[xd + jj] += wl * aflat[ol + jj]
                    else:
                        if g == 0:
                            for t in range(t0, t1):
                                xp[xq + t] = zero
                        # runs of taps reading the input or the fill, each in its own passes
                        # (of at most vgroups[1] taps, or one of up to vgroups[0]:
                        # VERTICAL_GROUP)
                        vg = vgroups[0] if g <= vgroups[0] else vgroups[1]
                        m = 0
                        while m < g:
                            e = m + 1
                            while e < g and v_fill[e] == v_fill[m]:
                                e += 1
                            src = frow if v_fill[m] else aflat
                            _passes(
                                xp, xd, src, v_offs, wv, q * k0 + m, e - m, vg, inner, m == 0, zero
                            )
                            m = e
                    for h in range(nrows):
                        x = xp2 if h else xp
                        if pair:
                            for gi in range(k0):
                                rws[gi] = row + h + k0 - 1 - gi
                        # edge columns that read input columns (a boundary's map): the sum of
                        # the column where the tile has it, else summed here in the same order
                        for e in range(t0 + span - t1):
                            t = e if e < t0 else t1 + e - t0
                            v = map1[c0 + t]
                            if v < 0:
                                continue
                            u = v + p1 - c0
                            if u >= t0 and u < t1:
                                x[xq + t] = x[xq + u]
                            else:
                                s = zero
                                for gi in range(g):
                                    s += wv[q * k0 + gi] * (fv if v_fill[gi] else a[rws[gi], v])
                                x[xq + t] = s
                        od = np.uint64((r + h) * o1 + c0)
                        _passes(
                            oflat, od, x, h_offs, f1flat, q * k1, k1, group, uwidth, q == 0, zero
                        )
                if nr > 1:
                    for h in range(nrows):
                        if _nonfinite_row(oflat, np.uint64((r + h) * o1 + c0), uwidth):
                            bad = True
                r += nrows
        return bad

    global _fused2
    _fused2 = fused2  # fused_all reads it as a global (rows.add_group says why)

    @numba.njit(parallel=True, nogil=True, cache=True)  # type: ignore[untyped-decorator]
    def fused_all(
        chunks, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group, vgroups, band, pairs
    ):  # type: ignore[no-untyped-def]  # pragma: no cover
        # the output rows in 'chunks' equal runs, one parallel region: True if a run of a sum
        # of terms saw a non-finite output
        total = out.shape[0]
        bad = np.zeros(chunks, dtype=np.bool_)
        for c in numba.prange(chunks):
            r0 = total * c // chunks
            r1 = total * (c + 1) // chunks
            bad[c] = _fused2(
                r0, r1, a, f0, f1, dims, map0, map1, p1, fill, out, cw, group, vgroups, band, pairs
            )
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
    dtype = a.dtype
    if not rows.AVAILABLE or dtype not in DTYPES or a.ndim < 2:
        return False
    # attribute reads (is_cpu, not device.type: 0.05 against 0.29 us a tensor) before the
    # process-wide questions, each asked once: 3.5 us a call before, 2.0 after (one thread)
    for t in (a, f0, f1):
        if t.dtype != dtype or not t.is_cpu or t.layout != torch.strided:
            return False
        if type(t) is not torch.Tensor or functorch_wrapped(t):
            return False
    if torch.is_grad_enabled() and (f0.requires_grad or f1.requires_grad):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or forward_ad_active():
        return False
    return not functorch_active() and rows._loads()


def separable_conv(
    a: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    pads: tuple[tuple[int, int], ...],
    rule: str | None = None,
    fill: bool | complex = 0,
    scratch: bool = False,
) -> torch.Tensor | None:
    """The valid convolution of ``a`` extended by ``pads`` (one pair per last two dims; zero
    padding where ``rule`` is None, else the boundary ``rule`` with ``fill`` for ``'fill'``,
    read through the maps of :func:`trueconv._methods.rows.valid_conv`) with ``outer(f0,
    f1)``; leading dims are batch dims. Factors of shape ``(r, k0)`` and ``(r, k1)`` are ``r``
    rank-1 terms: the kernel is ``sum_q outer(f0[q], f1[q])`` (each term's vertical sums in
    a row of their own, every term's horizontal taps added into the output row). ``None``
    where a factor or the fill value is not finite (the caller runs the passes), or for
    ``r > 1`` where an output is not finite (the caller runs the dense plan). Requires
    :func:`usable`. With ``scratch``, for a caller holding the scratch slot ``'pass'``
    (:func:`trueconv._methods.scratch.take`) whose next step consumes the result (not
    recorded by autograd), the result is written to that slot where it fits
    (:mod:`trueconv._methods.scratch` says why)."""
    if torch.is_grad_enabled() and a.requires_grad:
        if rule is not None:  # the extension's own backward records the graph
            a, pads = rows._extended(a, pads, rule, fill)
            rule = None
        # the values are needed before the graph records: the factors' (a non-finite factor
        # times the zero padding would put NaN where the passes add no term), and for a sum
        # of terms the input's (the check _run makes on the fly would come too late)
        terms = f0.dim() > 1 and f0.shape[0] > 1
        if not (_nonfinite.all_finite(a, f0, f1) if terms else _nonfinite.all_finite(f0, f1)):
            return None
        out: torch.Tensor = _FusedConv.apply(a, f0, f1, pads)
        return out
    return _run(a, f0, f1, pads, check=True, rule=rule, fill=fill, scratch=scratch)


def _run(
    a: torch.Tensor,
    f0: torch.Tensor,
    f1: torch.Tensor,
    pads: tuple[tuple[int, int], ...],
    check: bool,
    rule: str | None = None,
    fill: bool | complex = 0,
    scratch: bool = False,
) -> torch.Tensor | None:
    tunables = (TILE, rows.RING_BYTES, STRIP_ROW_BYTES, STRIP_TAPS, BAND)
    lay = _layout(tuple(a.shape), f0.shape[-1], f1.shape[-1], pads, rule, a.dtype, tunables)
    held = _scratch.array("pass", lay.out_shape, a.dtype) if scratch else None
    out, o_np = held if held is not None else rows._empty(lay.out_shape, a.dtype)
    if o_np.size == 0:
        return out
    x = rows._readable(a, None).reshape(lay.a_rows)
    # one row per rank-1 term (a 1-D factor is one term); reshaped as numpy arrays (a torch
    # reshape costs about 1.5 us a call, a numpy one 0.3)
    w0 = rows._readable(f0, None).reshape(-1, lay.k0)
    w1 = rows._readable(f1, None).reshape(-1, lay.k1)
    if check:
        # a non-finite constant fill: the loop's check sees only the input's rows
        finite_fill = rule != "fill" or math.isfinite(abs(complex(fill)))
        # a finite sum proves every factor finite (an overflowing one refuses finite
        # factors: the passes run them then); one reduction per factor, not two
        if not (finite_fill and math.isfinite(_sum(w0) + _sum(w1))):
            return None
    fills = rows.fill_array(rule, fill, o_np.dtype)
    ok = _call(x, w0, w1, lay, fills, o_np.reshape(lay.o_rows))
    return out if ok or not check else None


def _sum(w: Any) -> float:
    """The sum of a factor's elements (NaN or ±Inf if one is): in Python floats for short
    factors, where numpy's reduction costs more to start than to run (two 5-tap factors, one
    thread, between calls of the loop: 1.1-1.8 us against 5.5 for ``np.add.reduce``)."""
    if w.size <= 256:
        return sum(w.ravel().tolist())  # type: ignore[no-any-return]
    return float(np.add.reduce(w, None))


class _FusedLayout(NamedTuple):
    """How :func:`_run` lays out one call for the loop (from shapes alone)."""

    out_shape: tuple[int, ...]
    a_rows: tuple[int, int]  # the input as rows, batch dims flattened
    o_rows: tuple[int, int]  # the output alike
    dims: tuple[int, int, int, int]  # (nz, n0, o0, p0), as the loop takes them
    k0: int  # the factors' lengths
    k1: int
    p1: int  # the padding before the first column
    maps: tuple[Any, Any]  # row and column maps (rows._index_map)
    cw: int  # column tile width (tile_width)
    band: int  # strip length (BAND), or 0: rows one by one


@functools.lru_cache(maxsize=1024)
def _layout(
    shape: tuple[int, ...],
    k0: int,
    k1: int,
    pads: tuple[tuple[int, int], ...],
    rule: str | None,
    dtype: torch.dtype,
    tunables: tuple[int, ...],
) -> _FusedLayout:
    """The layout of a call of these shapes. Depends on shapes alone and on the module's
    tunables (``tunables``: :data:`TILE`, the ring budget, :data:`STRIP_ROW_BYTES`,
    :data:`STRIP_TAPS`, :data:`BAND`, read per call and part of the key, so that setting one
    takes effect), so a repeated call does not work it out again. With the other per-call
    savings of 2026-12-05 (:func:`_sum`, :func:`usable`, ``trueconv._separable._bytes``),
    ``convolve`` of 512² float32 ⊛ 5×5 Gaussian, interleaved with ``cv2.sepFilter2D`` (whose
    calls evict the Python code's data from the caches): 163 → 147 us at one thread, 116-119
    → 102-107 at two; the loop alone 107 / 62, so the rest of the call went from about 55 to
    40 us."""
    (p0, q0), (p1, q1) = pads
    n0, n1 = shape[-2:]
    o0, o1 = n0 + p0 + q0 - k0 + 1, n1 + p1 + q1 - k1 + 1
    batch = shape[:-2]
    nz = math.prod(batch)
    itemsize = dtype.itemsize
    return _FusedLayout(
        (*batch, o0, o1),
        (nz * n0, n1),
        (nz * o0, o1),
        (nz, n0, o0, p0),
        k0,
        k1,
        p1,
        (rows._index_map(n0, p0, q0, rule), rows._index_map(n1, p1, q1, rule)),
        tile_width(o1, k0, itemsize),
        _band(n1, k1, itemsize),
    )


def _call(x: Any, w0: Any, w1: Any, lay: _FusedLayout, fill: Any, out: Any) -> bool:
    """The loop over all output rows in one parallel region (numba's ``prange``, as the
    dense loop's), in runs of consecutive rows: ``4 · threads`` runs of at least ``4 · k0``
    rows, one with one thread (the floor dates from the loop of before, whose every run
    computed ``k0 - 1`` horizontal rows again; the vertical-first loop repeats no work per
    run, and the floor was not measured again). One run per thread (2026-12-05; numba's
    OpenMP layer shares a ``prange`` out statically, so the extra runs balance nothing): the
    loop alone on the same data again and again 1.02-1.10x faster at 2 threads on 512² ⊛ 3-5
    taps, but through ``convolve_separable`` interleaved with ``cv2.sepFilter2D`` and a copy
    (the data out of cache, as the image grid runs) 0.92-1.01x on 512²-2048²: not kept.

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
    threads = rows.numba_threads()
    total, k0 = out.shape[0], w0.shape[1]
    chunks = max(1, min(4 * threads, total // max(1, 4 * k0))) if threads > 1 else 1
    m0, m1 = lay.maps
    args = (x, w0, w1, lay.dims, m0, m1, lay.p1, fill, out, lay.cw)
    pairs = VERTICAL_PAIRS
    return not rows.parallel(kernel, chunks, *args, rows.GROUP, VERTICAL_GROUP, lay.band, pairs)


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
