"""The direct method's compiled CPU loop: every tap applied to one tile of an output row
before the next tile (the ``'rows'`` variant of :mod:`trueconv._methods.direct`).

Why a compiled loop. Shift-and-add (:func:`trueconv._methods.direct.shift_add`) makes one
torch call and one pass over the whole output per kernel tap, so a K×K kernel moves about
3·K² times the output's bytes and pays K² fork-joins; on a 2-core EPYC (torch 2.13, float32,
1024², 2 threads) that was 1.8 ms for 3×3 and about 10 ms from 5×5 on, where OpenCV's
``filter2D`` takes 0.97-6.5 ms. The alternatives, measured on the same machine:

- oneDNN (``F.conv2d``) on one channel: 7-40× slower than shift-and-add for 1-D, float64
  and 3×3, with a 14× jump between 512² and 1024² at 7×7 (benchmarks/results/
  calibration-cpu.json); oneDNN depthwise on row strips laid out as channels: 1.6-5.8 ms
  float32 at 5×5-7×7, poor for float64.
- torch calls per cache-sized tile: the Python call count grows to taps × tiles (~5 µs each:
  4 ms of calls for 7×7 on 1024²).
- This loop (numba, no compiler needed at install): 1024² float32, 2 threads, 0.46 / 1.31 /
  2.18 / 5.0 ms for 3×3 / 5×5 / 7×7 / 11×11 (OpenCV 0.97 / 1.72 / 2.85 / 6.47).
- An OpenCV backend (2026-12-05, ``benchmarks/opencv_backend.py``,
  ``benchmarks/results/opencv_backend.txt``): ``cv2.filter2D`` on each plane of the tensor's
  memory into a torch output, the kernel flipped, against ``'auto'`` with this loop
  (interleaved, 512²-2048² and 3 × 1024², random 3×3-31×31, the median of the rounds'
  backend / auto ratios). At 2 threads the backend was slower on 45 of 48 cells, faster on
  float64 ⊛ 31×31 of 3 × 1024² and 2048² (0.70x, 0.82x: 'auto' runs transforms there) and 3
  × 1024² float32 ⊛ 11×11 (0.97x); at one thread it was faster on float32 ⊛ 5×5-11×11
  (0.72-0.91x) and on float64 ⊛ 15×15-31×31 of 3 × 1024² and 2048² and 1024² ⊛ 31×31
  (0.72-0.85x), slower elsewhere (3×3 0.94-1.23x, float64 ⊛ 3×3-11×11 1.16-4.1x, float32 ⊛
  15×15-31×31 1.16-1.89x). Not adopted: from 13×13 on ``filter2D``
  runs a DFT that puts NaN on nearly every output for one NaN input (59 536 of 65 536 on 256²
  ⊛ 13×13, where the direct sum puts 169), so a backend needs a finiteness pass first; it
  computes no complex, integer or half dtype and no 3-D kernel; OpenCV's thread pool is a
  third one beside torch's and numba's, whose spinning threads slow each other's next call
  (``benchmarks/timing.alternating``); and OpenCV is the yardstick the image benchmarks
  measure against, not a dependency the computation rests on.

Its structure. Threads take chunks of consecutive output rows of one column tile (four chunks
per thread, one at one thread; one parallel region per call: one fork-join, not one per tap,
the collapse under load of issue 14; at one thread too: the same loop compiled without
``parallel`` was 1 us faster on 16² ⊛ 3×3 but 1.3-2.1x slower on 64²-512² ⊛ 3×3-5×5,
2026-12-04, as numba compiles a parallel region's body as a function of its own). Each chunk
keeps a ring of the input rows its output rows read (the rows of every kernel plane), each a
copy of the tile's input row with its zero padding along the last dim, so the taps run over
whole rows with no per-tap edge ranges; an input row is copied once per chunk, not once per
kernel row. Every tap of an output row whose input row exists is then added in as few passes
over the output row as the group routine allows (:data:`GROUP` taps per pass, the taps shared
out evenly), while the row sits in L1. Where an output row's taps read no row of the fill, the
samples of the row whose taps read only input samples (all but the ``k - 1`` or so at the
edges) read the input's rows in place, no copy in the ring, and the edge samples are summed one
by one through the extension's map (in the same order; only where the edge terms are few:
:data:`EDGE_COST`). The copies were one pass over the input: against the ring alone
(interleaved, 512²-2048², 2026-12-03) 3×3 kernels ran 1.05-1.27x faster at 1 thread and
1.12-1.43x at 2 (1024² float32 at 2 threads 0.316 → 0.220 ms), 5×5-11×11 0.95-1.13x. A pass
runs at about 0.46 ns per 16-lane vector tap in L1 (10 taps over 1024 float32 samples, one
thread); one that feeds each of its 10 loads to two output rows (20 taps) ran only 1.15x faster
per tap, so the passes are bound by their multiplies and adds more than by their
(line-splitting, shifted) loads, as OpenCV's are: a hand-written 3×3 loop making two rows per
pass gained 1.3x from the rows' bookkeeping and stores, and needs its code per kernel shape;
written and measured again against this loop (2026-12-04, commit da159c9,
``benchmarks/results/rows_3x3.txt``): the same sums bit for bit but no faster (this loop / it
0.83-1.29, median 1.0, over 40 cells of 256²-2048² at 1 and 2 threads; bare, 1024² float32, one
thread, 381 against 390 us), so not kept. Two rows per pass for any k×k, measured again as a
bare loop (2026-12-05, ``benchmarks/paired_rows.py``, ``results/paired_rows.txt``; float32, one
thread, data in L1, one pass generated per k): 1.18-1.28x this loop's passes per tap on 3×3,
1.17-1.26x on 5×5, 1.08-1.15x on 7×7 (its 49 weights no longer fit the vector registers), the
sums bitwise the same. In this loop since (Pairs, below). Strips: where the output rows read
their taps' rows in place and are as long as the input's rows (one column tile, no kernel
planes: 'same' images with small kernels, 3×3 above all), a run of consecutive rows whose taps
read consecutive input rows is one strip of the flat output (at most :data:`BAND` samples):
every tap sits at one offset from each sample of the strip in the flat input, so a pass adds
its taps to the whole run, and the samples between the rows' in-place parts are then
overwritten by the rows' edge samples (the same terms in the same order: bitwise the same
result). A pass's set-up (its views and the vectorised loop's checks) costs about 50-80 ns,
against about 150 ns of arithmetic for 9 taps over 512 float32 samples. Against rows one by one
(2026-12-04, ``benchmarks/loop_strips.py``, ``benchmarks/results/ loop_strips.txt``, the median
of rounds' ratios): 3×3 float32 512²-2048² 1.09-1.27x at 1 thread and 1.09-1.30x at 2, 3 ×
1024² 1.10x / 1.18x, ``'reflect'`` 1024² 1.13x / 1.22x, 2048² ⊛ 5×5 1.16x / 1.15x; float64
512²-1024² 1.07-1.19x; 4096² and float64 2048² 0.96-1.01x (bound by memory). Measured and
dropped: strips for the rows that read the ring (5×5-11×11 at 512²-2048²) from a band of padded
input rows copied as the ring copies them, the strip's rows copied out: 0.46-0.96x at
1024²-2048² (the copies cost more than the passes' set-up saved), 1.0-1.07x at 512²; and
summing the edge samples one by one for more rows in place (a lower :data:`EDGE_COST`: 1024² ⊛
5×5 0.78-0.92x). Each output row costs about 90 ns besides its taps (1 thread, 3×3: (2048, 128)
against (128, 2048) float32, before the strips), about 20-40 of it the edge samples; reusing an
interior row's tap list for the next rows (their rows moved, the row's bookkeeping skipped)
measured no faster (2026-12-04, ``benchmarks/results/rows_tap_reuse.txt``: 1 thread median
0.95x, 2 threads 1.05x). Against the loop of before (a padded copy per kernel row, eight taps
per pass; same process, interleaved, one thread, 2026-12-03): 512²-2048² float32 1.07-1.30x
faster (3×3 1.27-1.30x), float64 0.99-1.30x. The passes run at about 1.3 cycles per vector tap,
near this CPU's one vector multiply and one vector load per cycle; with FMA contraction the
loop was no faster (1.02x, measured again), so the rest is the row copies, the first touch of
the output and about 70 ns of work per output row. The shifted reads do cost: a bare pass of 10
taps whose rows start on 64-byte lines ran at 0.36-0.38 ns per vector tap against 0.50-0.54 for
the shifted, line-splitting reads the taps make (float32 and float64, 1024 samples, one
thread); but a ring with one aligned copy of each row per shift (``k2`` copies, every tap's
read aligned) was slower: 0.78-0.94x float32 3×3-7×7, 0.42x float64 5×5 (2026-12-04, one
thread, the copies and a ring ``k2`` times larger cost more than the splits).

Vertical sums first, measured and dropped (2026-12-05). For a kernel of two or more rows, sum
each shift's column taps first (``v[m2] = sum over the rows of b[row, m2] · row``, the loads
of each input row shared by up to six shifts' sums, the loads aligned where the rows are),
then add the ``k2`` sums at their shifts: a third to a half of the loads that split cache
lines. As a bare loop (one thread, float32, 'valid', in-process against this loop's passes
over the same rows) it ran 1.19-1.37x faster on 512²-1024² ⊛ 4²-12² (3×3 0.89-1.12x). Inside
this loop, with a routine per (shifts, rows) pair generated for numba (30-96 loops), it gained
only on 11×11 (512² / 1024² float32, one thread: 5×5 0.92x / 1.05x, 7×7 0.82-0.97x / 0.79-0.94x
with groups of 6 and 8, 11×11 0.96-1.08x / 1.05-1.14x) and made numba's compile of this loop
take 56-106 s per dtype instead of 33.

The taps' ceiling, measured in C (2026-12-05, ``benchmarks/tap_ceiling.c``,
``results/tap_ceiling.txt``; 5×5 over 512 float32 samples in L1, one thread): the passes as
LLVM vectorises them (shifted 64-byte loads, four accumulators) run at 0.48 ns per 16-lane
tap, 32-byte loads at 0.49, and two aligned loads per input row with the shifted vectors made
in registers (``valignd``) at 0.41: 1.17x, the most any rearrangement of the loads could give
the taps here (this loop's passes: 0.52-0.58 ns), and it needs vector code per instruction set
that numba does not write from a scalar loop. Not pursued. Where the rest of a call's time
goes (2026-12-05, ``benchmarks/pass_rate.py``, ``results/pass_rate.txt``; float32, one thread,
1024², interleaved; ns per 16-lane tap): a bare numba loop making only this loop's tap passes
over a padded input, rows read in place, one output row after another, ran at 0.60-0.62 for
5×5-11×11 (0.54-0.58 with every pass on one row held in L1), ``cv2.filter2D``'s whole
``'same'`` call at 0.56-0.61: the passes alone take 0.98-1.09x OpenCV's call. This loop's
``'valid'`` call on the padded input ran at 0.66-0.68 (8-13% over its passes: the per-row
work), its ``'same'`` call at 0.69-0.77 (another 5-13%: the ring's row copies and the edge
samples), 1.22-1.25x ``filter2D``. That work around the passes is the gap at one thread.
Sampled by ``perf`` (1024² ⊛ 5×5 ``'same'``, one thread): the passes' vectorised loops took
67% of the samples (AVX-512, per tap a multiply with its unaligned 64-byte load folded in,
which spans two cache lines, and an add), the ring's row copies 8% (their loads are the
input's first touch), the tap lists about 1%, Python 3-5%.

Pairs (2026-12-05). Two consecutive output rows of a plane read ``k1 + 1`` input rows of each
kernel plane, ``k1 - 1`` of them both: where every row their taps read exists (no zero
padding rows among them) and the kernel plane has at least :data:`PAIR_ROWS` rows and
:data:`PAIR_TAPS` taps (:func:`paired`), the loop computes the two rows together. Per kernel
plane: the second row's kernel row 0 (a pass of its own), then the rows both read, each
vector loaded once and fed to both rows' sums (:func:`_compile`'s pair routine, up to
:data:`GROUP` loads a pass), then the first row's last kernel row. Each output's terms are
added in the same order as one row at a time, so the results are bitwise the same (306
problems: float32/64, complex64, int64, 1-D to 3-D kernels, every mode, ``'reflect'``,
``'wrap'``, a fill value; 1 and 2 threads). The ring holds ``k1 + 1`` rows of a plane.
Against rows one by one (``benchmarks/paired_passes.py``, ``results/paired_passes.txt``,
three runs): as bare passes over 1024² float32 (one thread, ns per 16-lane tap, rows one by
one 0.59-0.70) 5×5 0.51-0.58, 7×7 0.49-0.55, 11×11 0.48-0.51; 3×5, 5×3, 4×4 and 3×7
0.97-1.10x, 2×8 0.95-1.02x; 3×3 0.86-0.90x (its two single-row passes cost more than the
loads saved). Whole 'same' calls, old and new code in alternating processes, each
interleaved with ``cv2.filter2D`` (two pairs of processes, the median of the rounds' ratios to
it): one thread, float32 512²-2048² and 3 × 1024² ⊛ 5×5-11×11 1.08-1.43x faster but 2048² ⊛
5×5 (1.03x: its rows are read in place as strips, which take a row before the pairs do; with
the strips off the pairs ran 0.94x / 1.00x the strips' time there at 1 / 2 threads, 1.12-1.14x
on 4096² ⊛ 5×5, 1.05-1.09x on float64 2048² ⊛ 5×5 and 3 × 2048², 0.86-0.93x on 2048² ⊛ 4×4:
strips kept first; column tiles of 1024 or 512 samples measured slower, 0.67-0.87x, and on
float64 2048² ⊛ 5×5-7×7), float64 1024² ⊛ 5×5-15×15 1.22-1.39x;
two threads 0.96-1.47x, 7×7-15×15 1.08-1.47x but 512² ⊛ 7×7 (0.99x). 3×3 kernels (not paired
then) 0.93-1.06x at one thread and 0.84-0.95x at two in the same runs; six more pairs of
processes at two threads put them at 0.88-0.97x, each cell's times overlapping between old and
new (a process's times move by up to 1.7x at two threads here).

3×3 pairs (2026-12-05, evening). A 3×3 plane's pair is one pass of its own (``add_pair3``): the
four rows' 12 loads, 18 multiply-adds, each output stored once (rows one by one: 9 loads for
9), as bare passes over 1024² float32 (``benchmarks/paired_passes.py``, one thread) 0.60 → 0.48
ns per 16-lane tap (5×5 0.60 → 0.54). Strips (above) of a 3×3 kernel compute their rows in
pairs too (:data:`STRIP_PAIRS`), each pair's pass as long as a row (the rows' edge samples in
between are summed one by one afterwards, as before): whole 'same' calls against the strips one
row at a time, interleaved with ``cv2.filter2D`` in one process, bitwise the same results,
512²-4096² float32 / float64: one thread 0.96-1.25x / 1.01-1.27x (two runs, medians 1.07x /
1.12x), two threads 0.93-1.07x / 1.03-1.13x. Other kernels' strips stay one row at a time: the
loop alone (``benchmarks/strip_pairs.py``, ``results/strip_pairs.txt``, one thread, two runs)
ran 3×3 strips in pairs 1.06-1.26x faster on 1024²-4096² float32 and float64, and 4×4, 5×5, 3×5
and 5×3 at 0.68-1.27x, with no pattern by size, dtype or run (2048² float32 ⊛ 5×3 1.01x, then
0.68x): not kept.

Bands (2026-12-05, night). Rows whose taps read the ring pay each pass's set-up per row: a
96-sample row of a 5³ kernel makes about 20 passes (in pairs: 10 a row) of six 16-lane
vectors each, and 3-D volumes ran at 0.087 ns a multiply-add where 2-D images of long rows
run at 0.035 (float32, one thread; 96³ ⊛ 5³ 'same' 9.6 ms, the FFT 8.6). Where the output
rows are short (at most :data:`BAND_ROW_BYTES`, :func:`band_rows`) the loop copies the
extended input rows a run of a plane's output rows reads, per kernel plane, into one band of
rows laid end to end (each as long as an extended row, no gaps), so that every tap lies at
one offset from each sample of the run: the run is one strip, each group of taps one pass
over it, and its rows are then copied out of the strip (the samples between them, past each
row's end, are discarded). The rows of the zero padding are zeros in the band: their terms
add exact zeros where rows one by one skip them, so the sums are the same bit for bit. Whole
planes: a 3-D kernel's output planes read each input plane ``k0`` times, and bands copied per
strip copied it as often; where the ``k0`` extended planes fit in :data:`PLANE_BYTES`
(:func:`whole_planes`) each band holds a whole extended plane in a ring of ``k0`` (a chunk
copies each input plane once, and the strips read their rows where they lie). Against rows
one by one (``benchmarks/loop_bands.py``, ``results/loop_bands.txt``, interleaved, the
median of the rounds' ratios, 2026-12-05): 3-D 32³-200³ ⊛ 3³-7³ float32 1.34-3.83x at one
thread and 1.50-3.21x at two (96³ ⊛ 5³ 2.02x / 2.16x, 256 × 256 × 64 ⊛ 5³ 2.70x / 2.62x),
float64 1.32-2.56x / 1.33-2.53x; 2-D 64²-256² float32 1.15-1.45x, float64 64²-128²
1.06-1.22x. Whole planes against bands per strip (``--whole``): 1.05-1.41x on every 3-D cell
where they apply. Longer rows lost (an earlier run, bands for every length): 3-D rows of
512-2048 samples 0.55-0.96x, 2-D float64 256² 0.90-0.98x and 512² 0.73-0.87x, float32 512²
⊛ 7×7 0.88-0.91x (the copies out, and the pairs they give up), hence the limit of 1 KiB a
row. Rows that strips read in place (:func:`_strip`: kernels of one column, most of all the
vertical passes of a separable kernel) stay there: with bands 96³ ⊛ (1, 5, 1) ran 0.85x;
since, 0.91-1.01x (noise) where (5, 1, 1) and (1, 1, 5) run 1.73-3.71x faster than rows one
by one (``results/loop_bands.txt``).

Boundaries. The ring's copy of an input row is where the padding is made, so a boundary
(``'reflect'``, ``'symmetric'``, ``'wrap'``, ``'replicate'``, a non-zero fill value) costs
nothing more: each loop dim has a map from extended index to input index (-1: the fill value,
or for the implicit zero padding a zero that is not a term and whose row is skipped), the
rows are picked through the first two maps and each row's edges through the last, its
interior copied in one run. The input is not extended first: building the extended array took
8-13 ms of a 2048² float32 ⊛ 3×3 ``'reflect'`` call whose zero-fill form took 2.4 ms (a fresh
16.8 MB array: about 5 700 page faults per call).

The terms of each output are added in the order shift-and-add adds them (the results agree
to rounding: torch's ``add_`` may fuse a multiply-add); every term is multiplied
(``0 · NaN`` is NaN, as in the direct sum).

numba is optional (``pip install trueconv[fast]``): :data:`AVAILABLE` is False without it and
the direct method keeps shift-and-add. The loop runs on plain CPU tensors of the dtypes in
:data:`DTYPES` with up to three convolved dims; :func:`usable` says when a call qualifies
(not under ``torch.compile``, ``torch.func`` or tracing, where data cannot be read).
Autograd: :class:`_RowsConv`'s backward is two calls of the same loop (the input's gradient is
a convolution of the output gradient with the flipped, conjugated kernel; the kernel's is one
of the input with the flipped output gradient), so it is differentiable twice.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from trueconv import _nonfinite
from trueconv.core.boundary import extend, source_index
from trueconv.core.dtypes import broadcast_shape
from trueconv.core.torch_internals import forward_ad_active, functorch_active, functorch_wrapped

#: Whether the compiled loop can run here: numba (the optional 'fast' extra) is installed and
#: the environment variable ``TRUECONV_NO_JIT`` is unset or empty. numba is imported at the
#: first call that uses it (importing it takes about half a second).
AVAILABLE = importlib.util.find_spec("numba") is not None and not os.environ.get("TRUECONV_NO_JIT")

#: Dtypes the loop computes in (others use shift-and-add: the direct method computes half
#: precision in float32 and integers in int64 before it gets here).
DTYPES = frozenset({torch.float32, torch.float64, torch.complex64, torch.complex128, torch.int64})

#: The most taps one pass over an output row adds (the compiled group routine's size).
GROUP = 12

#: Fewest output samples of a tile row whose taps read the input's rows in place (no copy in
#: the ring), and how many times the terms of its edge samples (summed one by one, about 1.7
#: ns a term against about 0.1 ns a sample for the ring's copy, float32, measured) they must
#: number: 1024² ⊛ 5×5 with its 4 × 25 edge terms per row in place ran 0.87x, 3×3 1.17x.
DIRECT_MIN = 64
EDGE_COST = 16

#: Output samples per tile of a row where a wider tile's ring would not fit
#: :data:`RING_BYTES` (:func:`widest_tile`; it was the width of every tile before, chosen so
#: that the output row's tile, 16 KiB of float64, stayed in L1: wider ones measured faster).
#: Rows no longer than the widest tile are one tile; longer ones are cut into equal tiles
#: (2100 samples under a limit of 2048: two of 1050), as the separable loop cuts them.
TILE = 2048

#: Most output samples of one strip of the direct loop (0: rows one by one; the module's
#: docstring, Strips). 8192 float32 samples (32 KiB): a strip of several passes stays in L1/L2.
#: 32768 (2026-12-05): 1.01-1.05x faster in the loop alone on the same data again and again,
#: 0.92-1.01x interleaved with ``cv2.filter2D`` and a copy as the image grid runs (512²-4096²
#: float32, 1024²-2048² float64 ⊛ 3×3, 1 and 2 threads): not kept.
BAND = 8192

#: Kernels whose output rows the dense loop computes two at a time (:func:`paired`): at least
#: this many rows and taps per kernel plane.
PAIR_ROWS = 3
PAIR_TAPS = 15


#: Whether strips (:data:`BAND`) of a 3×3 kernel compute their rows in pairs too (the
#: module's docstring, Pairs).
STRIP_PAIRS = True


def paired(k1: int, k2: int) -> bool:
    """Whether the dense loop computes output rows two at a time for kernel planes of ``k1``
    rows of ``k2`` taps (the module's docstring, Pairs): 3×3 planes in one pass each, others
    of at least :data:`PAIR_ROWS` rows and :data:`PAIR_TAPS` taps."""
    return (k1, k2) == (3, 3) or (k1 >= PAIR_ROWS and k1 * k2 >= PAIR_TAPS)


#: Longest output rows (bytes) the dense loop computes as strips over bands of copied input
#: rows (:func:`band_rows`; 0: never; the module's docstring, Bands).
BAND_ROW_BYTES = 1024


def band_rows(w: int, o1: int, k0: int, k1: int, k2: int, itemsize: int) -> int:
    """How many output rows of ``w`` samples one strip over bands of copied input rows
    takes (the module's docstring, Bands) in planes of ``o1`` output rows, for kernels of
    ``k0`` planes of ``k1`` rows of ``k2`` taps; 0: rows one by one (rows longer than
    :data:`BAND_ROW_BYTES`, or one row a plane). A strip holds at most :data:`BAND` samples
    and its bands at most :data:`RING_BYTES`."""
    if w * itemsize > BAND_ROW_BYTES or o1 < 2:
        return 0
    span = w + k2 - 1
    most = min(BAND // span, RING_BYTES // (k0 * span * itemsize) - (k1 - 1))
    return max(1, most)


#: Whether bands of a 3-D kernel hold whole extended planes where they fit (:func:`whole_planes`).
WHOLE_PLANES = True
#: Bytes the bands of whole planes may take (:func:`whole_planes`), per thread: planes past
#: the L2 cache still ran faster than bands copied per strip (256³ ⊛ 5³ float32, 1.35 MB,
#: 1.10x; 200³ ⊛ 7³, 1.19 MB, 1.07-1.10x; 1 and 2 threads).
PLANE_BYTES = 2 << 20


def whole_planes(w: int, o1: int, k0: int, k1: int, k2: int, itemsize: int) -> bool:
    """Whether the bands of a 3-D kernel (``k0`` planes) hold whole extended planes of
    ``o1 + k1 - 1`` rows of ``w + k2 - 1`` samples, kept for every output plane that reads
    them (the module's docstring, Bands): where :data:`WHOLE_PLANES` and the ``k0`` planes
    fit in :data:`PLANE_BYTES`."""
    size = k0 * (o1 + k1 - 1) * (w + k2 - 1) * itemsize
    return WHOLE_PLANES and k0 > 1 and size <= PLANE_BYTES


#: Bytes a compiled loop's ring of input rows may take (:func:`widest_tile`): half of this
#: machine's 1 MiB L2 cache (31 × 2048 float64 = 496 KiB).
RING_BYTES = 512 << 10


def widest_tile(ring_rows: int, itemsize: int, tile: int | None = None) -> int:
    """The widest column tile (samples) of a compiled loop whose ring holds ``ring_rows``
    rows of ``itemsize``-byte samples: ``tile`` (default :data:`TILE`), or wider as far as
    the ring stays within :data:`RING_BYTES`. Rows are cut into the fewest equal tiles no
    wider than this.

    Each tile of a row costs its own per-row work (the row's copy, tap lists, the passes'
    set-up: about 0.1 us), so tiles narrower than the ring allows cost time, while an
    output row tile larger than the L1 cache cost nothing measurable. Against a fixed 2048
    (2026-12-04, ``benchmarks/loop_tiles.py``, two runs, the median of each round's ratio,
    bitwise the same results): the dense loop on 4096² ⊛ 3²-11² float32 1.13-1.35x at 1
    thread and 1.06-1.21x at 2, float64 1.05-1.13x / 0.97-1.06x; 1-D 2^20 ⊛ 3-16
    1.04-1.21x; 3-D 64² × 1024 ⊛ 3³ (one tile either way) 0.96-1.02x. The fused separable
    loop: :func:`trueconv._methods.rows_separable.tile_width`.
    """
    floor = TILE if tile is None else tile
    return max(floor, RING_BYTES // max(1, ring_rows * itemsize))


_LOCK = threading.Lock()  # numba's 'workqueue' threading layer is not thread-safe;
_KERNEL: Callable[..., None] | None = None  # also guards the first compilation
numba: Any = None
#: The tap-group routine both compiled loops inline (:func:`_compile` makes it): numba's cache
#: keys a compiled loop by its own file only, so an edit here needs the loops' files touched
#: too (rows_separable.py) or their caches cleared. The loops call it as a module global, not
#: a closure variable: numba keys a cached closure by its pickled cells, and a pickled
#: dispatcher differs in every process, so a loop that closed over it was compiled again by
#: every process (10-12 s per dtype on this machine) and never loaded from the cache.
add_group: Any = None
row_stride: Any = None  # the rings' row length (also compiled by _compile)
add_taps: Any = None  # every tap of an output row in the fewest group passes (_compile)
add_row: Any = None  # add_taps as a function of its own, not inlined (_compile)
add_pair: Any = None  # one pass of two output rows over their shared loads (_compile)
add_pairs: Any = None  # the shared loads of two output rows in the fewest passes (_compile)
add_pair3: Any = None  # two output rows of a 3×3 kernel plane in one pass (_compile)
pair_plane: Any = None  # one kernel plane's terms of two output rows (_compile)
add_strip: Any = None  # a run of output rows as one strip (_compile)
add_band: Any = None  # a run of output rows as one strip over copied rows (_compile)
in_place: Any = None  # which samples of a tile row read the input's rows in place (_compile)


def _compile() -> Callable[..., None]:
    """The loop, compiled lazily (importing trueconv compiles nothing; numba caches the
    machine code on disk, so a later process loads it in milliseconds)."""
    global numba, add_group, add_taps, add_row, add_pair, add_pairs, add_pair3, add_strip
    global in_place, row_stride, pair_plane, add_band
    numba = importlib.import_module("numba")
    prange = numba.prange

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _group(d, dd, src, offs, ws, m, g, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # d[dd + j] (+)= ws[m] src[offs[m] + j] + ... for j < width and the g <= 12 taps
        # from m, the terms added one after another to each sample (the one-tap loop's order
        # and rounding; 'first': the sum starts from zero instead of d). d and src are flat
        # (1-D) arrays, dd, offs and width unsigned (uint64): an index that may be negative
        # costs a wraparound check that stops vectorising (6x slower, measured). One pass over
        # d for up to 12 taps: the passes' loads and stores of d are what a group saves (the
        # loop is bound by its multiplies and loads, one vector tap per cycle: with FMA
        # contraction or the products summed as a tree it was no faster, measured).
        # Why flat arrays and offsets, not a view per tap (as before 2026-12-04): numba
        # counts references to the array a view shares, and in a routine of twelve branches
        # its pruning left each view's increment and decrement (calls, atomic) in place:
        # about 45 ns per pass, a third of a 9-tap pass over 512 float32 samples (186 against
        # 135 ns, 4 taps over 64 samples 46 against 20). Not kept: one branch per group size
        # making only its own views (0.89-0.93x in the loop).
        o0 = offs[m]
        w0 = ws[m]
        if g == 1:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                d[dd + j] = s
            return
        o1 = offs[m + 1]
        w1 = ws[m + 1]
        if g == 2:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                d[dd + j] = s
            return
        o2 = offs[m + 2]
        w2 = ws[m + 2]
        if g == 3:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                d[dd + j] = s
            return
        o3 = offs[m + 3]
        w3 = ws[m + 3]
        if g == 4:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                d[dd + j] = s
            return
        o4 = offs[m + 4]
        w4 = ws[m + 4]
        if g == 5:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                d[dd + j] = s
            return
        o5 = offs[m + 5]
        w5 = ws[m + 5]
        if g == 6:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                d[dd + j] = s
            return
        o6 = offs[m + 6]
        w6 = ws[m + 6]
        if g == 7:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                s += w6 * src[o6 + j]
                d[dd + j] = s
            return
        o7 = offs[m + 7]
        w7 = ws[m + 7]
        if g == 8:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                s += w6 * src[o6 + j]
                s += w7 * src[o7 + j]
                d[dd + j] = s
            return
        o8 = offs[m + 8]
        w8 = ws[m + 8]
        if g == 9:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                s += w6 * src[o6 + j]
                s += w7 * src[o7 + j]
                s += w8 * src[o8 + j]
                d[dd + j] = s
            return
        o9 = offs[m + 9]
        w9 = ws[m + 9]
        if g == 10:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                s += w6 * src[o6 + j]
                s += w7 * src[o7 + j]
                s += w8 * src[o8 + j]
                s += w9 * src[o9 + j]
                d[dd + j] = s
            return
        o10 = offs[m + 10]
        w10 = ws[m + 10]
        if g == 11:
            for j in range(width):
                s = zero if first else d[dd + j]
                s += w0 * src[o0 + j]
                s += w1 * src[o1 + j]
                s += w2 * src[o2 + j]
                s += w3 * src[o3 + j]
                s += w4 * src[o4 + j]
                s += w5 * src[o5 + j]
                s += w6 * src[o6 + j]
                s += w7 * src[o7 + j]
                s += w8 * src[o8 + j]
                s += w9 * src[o9 + j]
                s += w10 * src[o10 + j]
                d[dd + j] = s
            return
        o11 = offs[m + 11]
        w11 = ws[m + 11]
        for j in range(width):
            s = zero if first else d[dd + j]
            s += w0 * src[o0 + j]
            s += w1 * src[o1 + j]
            s += w2 * src[o2 + j]
            s += w3 * src[o3 + j]
            s += w4 * src[o4 + j]
            s += w5 * src[o5 + j]
            s += w6 * src[o6 + j]
            s += w7 * src[o7 + j]
            s += w8 * src[o8 + j]
            s += w9 * src[o9 + j]
            s += w10 * src[o10 + j]
            s += w11 * src[o11 + j]
            d[dd + j] = s

    @numba.njit  # type: ignore[untyped-decorator]
    def _pair(d0, dd0, d1, dd1, src, offs, w0, w1, m, g, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # Two output rows at once: for j < width and the g <= 12 loads from m,
        #   d0[dd0 + j] (+)= w0[m] src[offs[m] + j] + ...
        #   d1[dd1 + j] += w1[m] src[offs[m] + j] + ...
        # each load feeding both rows' sums, the terms added one after another as _group adds
        # them ('first': d0's sum starts from zero; d1's never does: its first kernel row,
        # which d0 does not read, was added before). d0 and d1 are the same flat output at
        # two offsets, passed twice and compiled as a function of its own, not inlined: LLVM
        # then vectorises it with a run-time check that the rows do not overlap. Inlined, or
        # with one array argument, it was vectorised in one caller and not in another (2.0-3.1
        # ns per 16-lane tap against 0.50, 2026-12-05, benchmarks/paired_passes.py).
        o0 = offs[m + 0]
        u0 = w0[m + 0]
        v0 = w1[m + 0]
        if g == 1:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o1 = offs[m + 1]
        u1 = w0[m + 1]
        v1 = w1[m + 1]
        if g == 2:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o2 = offs[m + 2]
        u2 = w0[m + 2]
        v2 = w1[m + 2]
        if g == 3:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o3 = offs[m + 3]
        u3 = w0[m + 3]
        v3 = w1[m + 3]
        if g == 4:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o4 = offs[m + 4]
        u4 = w0[m + 4]
        v4 = w1[m + 4]
        if g == 5:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o5 = offs[m + 5]
        u5 = w0[m + 5]
        v5 = w1[m + 5]
        if g == 6:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o6 = offs[m + 6]
        u6 = w0[m + 6]
        v6 = w1[m + 6]
        if g == 7:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                a = src[o6 + j]
                s0 += u6 * a
                s1 += v6 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o7 = offs[m + 7]
        u7 = w0[m + 7]
        v7 = w1[m + 7]
        if g == 8:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                a = src[o6 + j]
                s0 += u6 * a
                s1 += v6 * a
                a = src[o7 + j]
                s0 += u7 * a
                s1 += v7 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o8 = offs[m + 8]
        u8 = w0[m + 8]
        v8 = w1[m + 8]
        if g == 9:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                a = src[o6 + j]
                s0 += u6 * a
                s1 += v6 * a
                a = src[o7 + j]
                s0 += u7 * a
                s1 += v7 * a
                a = src[o8 + j]
                s0 += u8 * a
                s1 += v8 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o9 = offs[m + 9]
        u9 = w0[m + 9]
        v9 = w1[m + 9]
        if g == 10:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                a = src[o6 + j]
                s0 += u6 * a
                s1 += v6 * a
                a = src[o7 + j]
                s0 += u7 * a
                s1 += v7 * a
                a = src[o8 + j]
                s0 += u8 * a
                s1 += v8 * a
                a = src[o9 + j]
                s0 += u9 * a
                s1 += v9 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o10 = offs[m + 10]
        u10 = w0[m + 10]
        v10 = w1[m + 10]
        if g == 11:
            for j in range(width):
                s0 = zero if first else d0[dd0 + j]
                s1 = d1[dd1 + j]
                a = src[o0 + j]
                s0 += u0 * a
                s1 += v0 * a
                a = src[o1 + j]
                s0 += u1 * a
                s1 += v1 * a
                a = src[o2 + j]
                s0 += u2 * a
                s1 += v2 * a
                a = src[o3 + j]
                s0 += u3 * a
                s1 += v3 * a
                a = src[o4 + j]
                s0 += u4 * a
                s1 += v4 * a
                a = src[o5 + j]
                s0 += u5 * a
                s1 += v5 * a
                a = src[o6 + j]
                s0 += u6 * a
                s1 += v6 * a
                a = src[o7 + j]
                s0 += u7 * a
                s1 += v7 * a
                a = src[o8 + j]
                s0 += u8 * a
                s1 += v8 * a
                a = src[o9 + j]
                s0 += u9 * a
                s1 += v9 * a
                a = src[o10 + j]
                s0 += u10 * a
                s1 += v10 * a
                d0[dd0 + j] = s0
                d1[dd1 + j] = s1
            return
        o11 = offs[m + 11]
        u11 = w0[m + 11]
        v11 = w1[m + 11]
        for j in range(width):
            s0 = zero if first else d0[dd0 + j]
            s1 = d1[dd1 + j]
            a = src[o0 + j]
            s0 += u0 * a
            s1 += v0 * a
            a = src[o1 + j]
            s0 += u1 * a
            s1 += v1 * a
            a = src[o2 + j]
            s0 += u2 * a
            s1 += v2 * a
            a = src[o3 + j]
            s0 += u3 * a
            s1 += v3 * a
            a = src[o4 + j]
            s0 += u4 * a
            s1 += v4 * a
            a = src[o5 + j]
            s0 += u5 * a
            s1 += v5 * a
            a = src[o6 + j]
            s0 += u6 * a
            s1 += v6 * a
            a = src[o7 + j]
            s0 += u7 * a
            s1 += v7 * a
            a = src[o8 + j]
            s0 += u8 * a
            s1 += v8 * a
            a = src[o9 + j]
            s0 += u9 * a
            s1 += v9 * a
            a = src[o10 + j]
            s0 += u10 * a
            s1 += v10 * a
            a = src[o11 + j]
            s0 += u11 * a
            s1 += v11 * a
            d0[dd0 + j] = s0
            d1[dd1 + j] = s1

    @numba.njit  # type: ignore[untyped-decorator]
    def _pair3(d0, dd0, d1, dd1, src, o, w0, w1, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # Two output rows of a 3×3 kernel plane in one pass, all 12 loads (the pair's four
        # input rows, three shifts each): o[0:3] feed d1 only (its kernel row 0, weights
        # w1[0:3]), o[3:9] both (w0 and w1), o[9:12] d0 only (its kernel row 2, w0[9:12]):
        # each output's terms in its tap order, as the three passes of a pair add them
        # ('first': both sums start from zero). The split pair makes two single-row passes
        # of three loads each besides the shared pass, which cost 3×3 more than its loads
        # saved (Pairs); here the pair stores each output once and loads 12 vectors for 18
        # multiply-adds, where rows one by one load 9 for 9. A function of its own, the
        # output passed twice, as _pair (why there).
        a0 = o[0]
        a1 = o[1]
        a2 = o[2]
        b0 = o[3]
        b1 = o[4]
        b2 = o[5]
        b3 = o[6]
        b4 = o[7]
        b5 = o[8]
        c0 = o[9]
        c1 = o[10]
        c2 = o[11]
        v0 = w1[0]
        v1 = w1[1]
        v2 = w1[2]
        u3 = w0[3]
        u4 = w0[4]
        u5 = w0[5]
        u6 = w0[6]
        u7 = w0[7]
        u8 = w0[8]
        v3 = w1[3]
        v4 = w1[4]
        v5 = w1[5]
        v6 = w1[6]
        v7 = w1[7]
        v8 = w1[8]
        u9 = w0[9]
        u10 = w0[10]
        u11 = w0[11]
        for j in range(width):
            s0 = zero if first else d0[dd0 + j]
            s1 = zero if first else d1[dd1 + j]
            s1 += v0 * src[a0 + j]
            s1 += v1 * src[a1 + j]
            s1 += v2 * src[a2 + j]
            a = src[b0 + j]
            s0 += u3 * a
            s1 += v3 * a
            a = src[b1 + j]
            s0 += u4 * a
            s1 += v4 * a
            a = src[b2 + j]
            s0 += u5 * a
            s1 += v5 * a
            a = src[b3 + j]
            s0 += u6 * a
            s1 += v6 * a
            a = src[b4 + j]
            s0 += u7 * a
            s1 += v7 * a
            a = src[b5 + j]
            s0 += u8 * a
            s1 += v8 * a
            s0 += u9 * src[c0 + j]
            s0 += u10 * src[c1 + j]
            s0 += u11 * src[c2 + j]
            d0[dd0 + j] = s0
            d1[dd1 + j] = s1

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _stride(n, itemsize):  # type: ignore[no-untyped-def]  # pragma: no cover
        # Row length (samples) of a ring holding rows of n samples: an odd number of 64-byte
        # lines, so the rows one pass reads fall in different sets of the L1 cache. Rows a
        # multiple of 4 KiB apart (1024 float32, 2048 float64 samples) all map to one set, and
        # a pass over more rows than the cache's 8 ways evicted its own inputs: 12 taps over
        # 12 rows ran at 0.67-0.88x the speed of 8 + 4 (measured, fused loop, 512²-2048²).
        lines = (n * itemsize + 63) // 64
        if lines % 2 == 0:
            lines += 1
        return lines * 64 // itemsize

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _taps(d, dd, src, offs, ws, base, g, group, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # d[dd + j] = the sum of the terms of the g taps from 'base' (zero if g == 0), for j <
        # width, in the fewest passes of at most 'group' taps, the taps shared out evenly (9 =
        # 9, not 8 + 1); flat arrays and unsigned offsets as _group takes them. Not 'first':
        # the terms are added to d instead (the fused loop's later runs of taps and terms).
        # Skipping the divisions for a single pass saved about 20 ns a call in isolation and
        # nothing in the loops (0.95-1.07x, 512²-1024² float32, 3-7 taps, dense and fused, one
        # thread, five alternating processes, 2026-12-04)
        if g == 0 and first:
            for j in range(width):
                d[dd + j] = zero
        passes = (g + group - 1) // group
        for q in range(passes):
            m = g * q // passes
            n = g * (q + 1) // passes - m
            _group(d, dd, src, offs, ws, base + m, n, width, first and q == 0, zero)

    @numba.njit  # type: ignore[untyped-decorator]
    def _row(d, dd, src, offs, ws, base, g, group, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # _taps compiled as a function of its own: the dense loop calls it from four places,
        # and each inlined copy of the group routine's twelve vectorised loops cost numba
        # about 14 s of the loop's compile (float32, 2026-12-05: four copies and the pair
        # routine 86 s, this function and the pair routine 45 s, two copies before the pairs
        # 36 s)
        _taps(d, dd, src, offs, ws, base, g, group, width, first, zero)

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _pairs(d, dd0, dd1, src, offs, w0, w1, g, width, first, zero):  # type: ignore[no-untyped-def]  # pragma: no cover
        # The g loads from 0 of two output rows (_pair) in the fewest passes of at most GROUP
        # loads, the loads shared out evenly as _taps shares out taps
        passes = (g + GROUP - 1) // GROUP
        for q in range(passes):
            m = g * q // passes
            n = g * (q + 1) // passes - m
            _pair(d, dd0, d, dd1, src, offs, w0, w1, m, n, width, first and q == 0, zero)

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _pair_plane(
        d, dd0, dd1, src, rowoff, b, rb, k1, k2, fo, ws, po, pw0, pw1, width, first, zero
    ):  # type: ignore[no-untyped-def]  # pragma: no cover
        # One kernel plane's terms of two output rows (the module's docstring, Pairs): the
        # plane's weights are b's rows rb .. rb + k1 - 1, rowoff[s] is the flat offset of
        # the first tap's sample in input row s of the pair's k1 + 1 (s = 0: the row only the
        # first output row reads, its kernel row k1 - 1; s = k1: the row only the second
        # reads, its kernel row 0). 3×3 planes in one pass (add_pair3); others as the second
        # row's kernel row 0, the rows both read (add_pairs), the first row's last kernel row.
        if k1 == 3 and k2 == 3:
            t = 0
            for m2 in range(3):
                po[t] = np.uint64(rowoff[3] - m2)
                pw1[t] = b[rb, m2]
                t += 1
            for m1 in range(2):
                for m2 in range(3):
                    po[t] = np.uint64(rowoff[2 - m1] - m2)
                    pw0[t] = b[rb + m1, m2]
                    pw1[t] = b[rb + m1 + 1, m2]
                    t += 1
            for m2 in range(3):
                po[t] = np.uint64(rowoff[0] - m2)
                pw0[t] = b[rb + 2, m2]
                t += 1
            add_pair3(d, dd0, d, dd1, src, po, pw0, pw1, width, first, zero)
            return
        for m2 in range(k2):
            fo[m2] = np.uint64(rowoff[k1] - m2)
            ws[m2] = b[rb, m2]
        add_row(d, dd1, src, fo, ws, 0, k2, GROUP, width, first, zero)
        t = 0
        for m1 in range(k1 - 1):
            for m2 in range(k2):
                po[t] = np.uint64(rowoff[k1 - 1 - m1] - m2)
                pw0[t] = b[rb + m1, m2]
                pw1[t] = b[rb + m1 + 1, m2]
                t += 1
        add_pairs(d, dd0, dd1, src, po, pw0, pw1, t, width, first, zero)
        for m2 in range(k2):
            fo[m2] = np.uint64(rowoff[0] - m2)
            ws[m2] = b[rb + k1 - 1, m2]
        add_row(d, dd0, src, fo, ws, 0, k2, GROUP, width, False, zero)

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _inside(w, t0, n2, p2, k2, g):  # type: ignore[no-untyped-def]  # pragma: no cover
        # The samples [c0, c1) of a tile row of w samples from t0 whose taps read input
        # samples only, and whether they read the input's rows in place (the rest, the edge
        # samples, summed one by one: only where their terms are few, EDGE_COST)
        c0 = min(w, max(0, p2 - t0))
        c1 = max(c0, min(w, n2 + p2 - (k2 - 1) - t0))
        return c0, c1, c1 - c0 >= max(DIRECT_MIN, EDGE_COST * g * (c0 + w - c1))

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _strip(
        a,
        b,
        dims,
        map0,
        map1,
        map2,
        p2,
        const,
        fv,
        out,
        item,
        end,
        most,
        fo,
        ws,
        pair,
        po,
        pw0,
        pw1,
        rowoff,
        zero,
    ):  # type: ignore[no-untyped-def]  # pragma: no cover
        # valid3's output rows item, item + 1, ... (fewer than 'end', at most 'most', one
        # plane; k0 == 1, one column tile, rows as long as the input's) as one strip where
        # they read their taps' rows in place: the number of rows done, 0 if none (the row
        # 'item' is not such a row). The sums are the per-row path's, term for term. With
        # 'pair', the strip's rows two at a time (pair_plane), each pair's passes as long as
        # a whole row (from a row's first in-place sample to the next row's, so no scalar
        # remainder where rows are a multiple of 16 samples): what they write past the first
        # row's in-place part is its right edge and the next row's left edge, which the edge
        # samples below overwrite; the strip's last pair stops at its in-place part (past it
        # lie rows another chunk may be writing), as an odd last row does.
        za_n, n0, n1, zb_n, _, k1, _, o0, o1 = dims
        n2 = a.shape[1]
        k2 = b.shape[1]
        w = out.shape[1]
        z = item // (o0 * o1)
        i0 = (item // o1) % o0
        i1 = item % o1
        r0 = map0[i0]
        if r0 < 0:
            return 0
        c0, c1, direct = in_place(w, 0, n2, p2, k2, k1 * k2)
        if not direct:
            return 0
        for m1 in range(k1):
            if map1[i1 + m1] < 0:
                return 0
        # the next rows read the next input rows with every tap
        last = min(end - item, o1 - i1, most)
        run = 1
        while run < last:
            for m1 in range(k1):
                if map1[i1 + run + m1] != map1[i1 + m1] + run:
                    last = run
            if run < last:
                run += 1
        za = z if za_n > 1 else 0
        zb = z if zb_n > 1 else 0
        base = (za * n0 + r0) * n1
        aflat = a.reshape(a.size)
        oflat = out.reshape(out.size)
        q = 0  # rows done in pairs
        if pair:
            uw = np.uint64(w)
            while q + 1 < run:
                for s1 in range(k1 + 1):
                    rowoff[s1] = (base + map1[i1 + q + s1]) * n2 + c0 - p2 + k2 - 1
                dd0 = np.uint64((item + q) * w + c0)
                width = uw if q + 2 < run else np.uint64(c1 - c0)
                pair_plane(
                    oflat,
                    dd0,
                    dd0 + uw,
                    aflat,
                    rowoff,
                    b,
                    zb * k1,
                    k1,
                    k2,
                    fo,
                    ws,
                    po,
                    pw0,
                    pw1,
                    width,
                    True,
                    zero,
                )
                q += 2
        g = 0
        for m1 in range(k1):
            first = (base + map1[i1 + q + k1 - 1 - m1]) * n2 + c0 - p2 + k2 - 1
            for m2 in range(k2):
                fo[g] = np.uint64(first - m2)
                ws[g] = b[zb * k1 + m1, m2]
                g += 1
        if q < run:
            length = np.uint64((run - 1 - q) * w + c1 - c0)
            start = np.uint64((item + q) * w + c0)
            add_row(oflat, start, aflat, fo, ws, 0, g, GROUP, length, True, zero)
        # the edge samples of each row, their terms in tap order through the extension's map
        # (they overwrite what the strip left between the rows' in-place parts)
        for q in range(run):
            for e in range(c0 + w - c1):
                j = e if e < c0 else c1 + e - c0
                s = zero
                t = 0
                for m1 in range(k1):
                    row = base + map1[i1 + k1 - 1 - m1] + q
                    for m2 in range(k2):
                        v = map2[j + k2 - 1 - m2]
                        s += ws[t] * (a[row, v] if v >= 0 else fv)
                        t += 1
                out[item + q, j] = s
        return run

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def _band(
        a,
        b,
        dims,
        map0,
        map1,
        map2,
        p2,
        const,
        fv,
        out,
        item,
        end,
        most,
        whole,
        keys,
        buf,
        tmp,
        fo,
        ws,
        zero,
    ):  # type: ignore[no-untyped-def]  # pragma: no cover
        # valid3's output rows item, item + 1, ... (fewer than 'end', at most 'most', one
        # plane, one column tile: rows as long as the output's) as one strip over bands of
        # extended input rows (the module's docstring, Bands), one band per kernel plane in
        # buf, each of 'rb' rows of 'span' samples laid end to end, so that each tap lies at
        # one offset from every sample of the strip; the strip's passes write tmp (rows of
        # 'span' samples) and each row's first w samples are copied out. 'whole': a band
        # holds a whole extended plane (rb = o1 + k1 - 1 rows), kept in a ring of k0 bands
        # (slot s0 % k0, 'keys' saying which plane each holds) for the next output planes
        # that read it; else the strip's own rows i1 .. i1 + run + k1 - 2 of each kernel
        # plane, copied for each strip. The rows of the zero padding are zeros here (valid3
        # has checked that the taps are finite), so their terms add exact zeros where rows one
        # by one skip them: the same sums (a sum starts from +0 and never becomes -0 by
        # adding a zero). Returns the number of rows done.
        za_n, n0, n1, zb_n, k0, k1, _, o0, o1 = dims
        n2 = a.shape[1]
        k2 = b.shape[1]
        w = out.shape[1]
        span = w + k2 - 1
        z = item // (o0 * o1)
        i0 = (item // o1) % o0
        i1 = item % o1
        za = z if za_n > 1 else 0
        zb = z if zb_n > 1 else 0
        left = min(end - item, o1 - i1)
        count = (left + most - 1) // most
        run = (left + count - 1) // count  # the plane's rows left, in equal strips
        rb = o1 + k1 - 1 if whole else most + k1 - 1  # rows of a band
        first = 0 if whole else i1  # the extended row a band starts at
        bflat = buf.reshape(buf.size)
        tflat = tmp.reshape(tmp.size)
        oflat = out.reshape(out.size)
        aflat = a.reshape(a.size)
        u0 = min(span, max(0, p2))
        u1 = max(u0, min(span, n2 + p2))
        g = 0
        for m0 in range(k0):
            s0 = i0 + k0 - 1 - m0
            r0 = map0[s0]
            if r0 < 0 and not const:
                continue  # a plane of the zero padding: no terms
            slot = s0 % k0 if whole else m0
            key = za * (o0 + k0 - 1) + s0
            if not whole or keys[slot] != key:
                keys[slot] = key
                for s in range(rb if whole else run + k1 - 1):
                    r1 = map1[first + s]
                    pb = (slot * rb + s) * span
                    if r0 < 0 or r1 < 0:  # a row of the fill (or of zeros)
                        for t in range(span):
                            bflat[pb + t] = fv
                        continue
                    lb = ((za * n0 + r0) * n1 + r1) * n2
                    for t in range(u0):
                        v = map2[t]
                        bflat[pb + t] = aflat[lb + v] if v >= 0 else fv
                    db = np.uint64(pb + u0)
                    sb = np.uint64(lb + u0 - p2)
                    for t in range(np.uint64(u1 - u0)):
                        bflat[db + t] = aflat[sb + t]
                    for t in range(u1, span):
                        v = map2[t]
                        bflat[pb + t] = aflat[lb + v] if v >= 0 else fv
            for m1 in range(k1):
                rw = (zb * k0 + m0) * k1 + m1
                row = slot * rb + i1 - first + k1 - 1 - m1
                for m2 in range(k2):
                    fo[g] = np.uint64(row * span + k2 - 1 - m2)
                    ws[g] = b[rw, m2]
                    g += 1
        length = np.uint64((run - 1) * span + w)
        add_row(tflat, np.uint64(0), bflat, fo, ws, 0, g, GROUP, length, True, zero)
        for q in range(run):
            db = np.uint64((item + q) * w)
            sb = np.uint64(q * span)
            for t in range(np.uint64(w)):
                oflat[db + t] = tflat[sb + t]
        return run

    add_group = _group  # valid3 reads them as globals (see add_group)
    add_taps = _taps
    add_pair = _pair
    add_row = _row
    add_pairs = _pairs
    add_pair3 = _pair3
    pair_plane = _pair_plane
    add_strip = _strip
    add_band = _band
    in_place = _inside
    row_stride = _stride

    @numba.njit(parallel=True, nogil=True, cache=True)  # type: ignore[untyped-decorator]
    def valid3(a, b, dims, map0, map1, map2, p2, fill, out, tile, parts, band, pair, brows, whole):  # type: ignore[no-untyped-def]  # pragma: no cover
        # The operands as rows: a (za_n·n0·n1, n2), b (zb_n·k0·k1, k2), out (nz·o0·o1, o2);
        # dims = (za_n, n0, n1, zb_n, k0, k1, nz, o0, o1). With e the extension of a by the
        # index maps (e[z, s0, s1, s2] = a[z, map0[s0], map1[s1], map2[s2]]; where a map is
        # -1, fill[0], or with an empty 'fill' a zero that is not a term; map2 is the
        # identity shifted by p2 on [p2, p2 + n2)),
        #   out[z, i0, i1, j] = sum over taps (m0, m1, m2) of
        #     b[z, m0, m1, m2] * e[z, i0 + k0-1-m0, i1 + k1-1-m1, j + k2-1-m2]
        # for the terms whose rows (dims 0, 1) are not such zeros, added in tap order; along
        # the last dim the row is read from a copy with its extension (False, nothing done,
        # if a tap of b is not finite: it would multiply the zeros). Batch dims of size 1
        # broadcast. 'band' > 0: the most output samples of a strip (below), 0: no strips.
        # 'pair': output rows are computed two at a time where they can be (below): 0 never,
        # 1 outside strips, 2 in strips too. 'brows' > 0: rows whose taps read the ring are
        # computed as strips over bands of copied rows (add_band) of at most 'brows' rows;
        # 'whole': each band a whole extended plane, kept for the next output planes.
        za_n, n0, n1, zb_n, k0, k1, nz, o0, o1 = dims
        n2 = a.shape[1]
        k2 = b.shape[1]
        o2 = out.shape[1]
        # equal column tiles of at most 'tile' samples, a multiple of 16 where that fits: with
        # tiles of 'tile' and a remainder, 2049 samples were a tile of 2048 and one of 1, and
        # the chunks of the narrow tile (the last half of the items) left one thread of two
        # idle (1024 rows of 2049-3000 ⊛ 3×3-15×15: 1.3-1.8x slower per sample at 2 threads)
        tiles = max(1, (o2 + tile - 1) // tile)
        cw = (o2 + tiles - 1) // tiles
        if (cw + 15) // 16 * 16 <= tile:
            cw = (cw + 15) // 16 * 16
        cw = max(1, min(o2, cw))
        tiles = (o2 + cw - 1) // cw
        nrows = nz * o0 * o1
        items = nrows * tiles
        # 'parts' chunks (a few per thread) of consecutive output rows of one column tile,
        # each with its own ring of input rows: a copy of each input row (with its extension
        # along the last dim) is made once per chunk, not once per tap row
        chunks = max(1, min(items, parts))
        zero = np.zeros(1, dtype=out.dtype)[0]  # a literal 0.0 would compute in float64
        const = fill.size > 0  # the samples outside are fill[0], terms
        fv = fill[0] if const else zero
        # the taps multiply the zero fill, which adds exact zeros for finite taps only: with
        # a NaN or ±Inf tap, refuse (the caller computes it another way)
        check = zero
        for t in range(b.size):
            check += b.flat[t] * 0
        if check != check:
            return False
        taps = k0 * k1 * k2
        # Strips (one column tile, rows as long as the input's, no kernel planes): a run of
        # output rows that read their taps' rows in place (see 'direct' below), each tap's
        # rows consecutive input rows, is one strip of the flat output over the flat input:
        # the tap (m1, m2) of every sample of the run sits at one offset from the sample's
        # place, so each pass over the strip adds its taps to all the run's rows at once (a
        # pass's set-up is paid per run, not per row). The samples between the rows' in-place
        # parts are then overwritten by the edge samples, summed one by one as before.
        strips = band > 0 and tiles == 1 and k0 == 1 and o2 == n2
        srows = max(1, band // o2) if strips else 1  # most rows per strip
        # Pairs ('pair'; the module's docstring, Pairs): two consecutive output rows of a plane
        # whose taps' rows all exist read k1 + 1 input rows of each kernel plane, k1 - 1 of
        # them both. Per plane, in each row's tap order: the second row's first kernel row,
        # then the shared rows, each load feeding both rows' sums (add_pairs), then the first
        # row's last kernel row. The ring then holds k1 + 1 rows of each plane.
        pair = pair if k1 >= 2 else 0  # one kernel row: no input row shared
        kr = k1 + 1 if pair else k1
        # Bands (add_band; the module's docstring): rows through the ring as strips where
        # one column tile of short rows, not where strips read the rows in place (kernels of
        # one or two columns: 96³ ⊛ (1, 5, 1) ran 1.18x slower with bands for its rows, 1.07x
        # with bands for the rows that read the padding's rows only)
        bands = (
            brows > 0 and tiles == 1 and not (strips and in_place(o2, 0, n2, p2, k2, k1 * k2)[2])
        )
        bh = brows if bands else 0
        for c in prange(chunks):
            # ring row m0·kr + s1 % kr: extended row s1 of the plane tap m0 reads
            ring = np.empty((k0 * kr, row_stride(cw + k2 - 1, out.itemsize)), dtype=out.dtype)
            rws = np.empty(taps, dtype=np.int64)
            offs = np.empty(taps, dtype=np.int64)
            ws = np.empty(taps, dtype=out.dtype)
            fo = np.empty(taps, dtype=np.uint64)  # the taps' offsets in the flat rows
            po = np.empty((k1 + 1) * k2, dtype=np.uint64)  # a pair's loads (offsets)
            pw0 = np.empty((k1 + 1) * k2, dtype=out.dtype)  # their taps for the first row
            pw1 = np.empty((k1 + 1) * k2, dtype=out.dtype)  # and for the second
            rowoff = np.empty(k1 + 1, dtype=np.int64)  # a pair's input rows (pair_plane)
            brb = (o1 if whole else bh) + k1 - 1  # rows of a band
            bbuf = np.empty(k0 * brb * (o2 + k2 - 1) if bands else 1, dtype=out.dtype)
            bkeys = np.full(k0, -1, dtype=np.int64)  # the plane each band holds (whole)
            btmp = np.empty(bh * (o2 + k2 - 1) if bands else 1, dtype=out.dtype)
            aflat = a.reshape(a.size)
            rflat = ring.reshape(ring.size)
            rstride = ring.shape[1]
            oflat = out.reshape(out.size)
            key = -1  # the (column tile, z, i0) whose rows the ring holds
            have = -1  # extended rows s1 <= have of that key are in the ring
            done = -1  # items before this one were computed by a strip
            end = items * (c + 1) // chunks
            for item in range(items * c // chunks, end):
                if item < done:
                    continue
                if strips:
                    run = add_strip(
                        a,
                        b,
                        dims,
                        map0,
                        map1,
                        map2,
                        p2,
                        const,
                        fv,
                        out,
                        item,
                        end,
                        srows,
                        fo,
                        ws,
                        pair == 2,
                        po,
                        pw0,
                        pw1,
                        rowoff,
                        zero,
                    )
                    if run > 0:
                        done = item + run
                        continue
                if bands:
                    done = item + add_band(
                        a,
                        b,
                        dims,
                        map0,
                        map1,
                        map2,
                        p2,
                        const,
                        fv,
                        out,
                        item,
                        end,
                        bh,
                        whole,
                        bkeys,
                        bbuf,
                        btmp,
                        fo,
                        ws,
                        zero,
                    )
                    continue
                ti = item // nrows
                r = item - ti * nrows
                t0 = ti * cw
                t1 = min(o2, t0 + cw)
                w = t1 - t0
                span = w + k2 - 1
                # ring[., t] = e[row, t0 + t]: a[row, t + t0 - p2] for t in [u0, u1), the
                # extension's map outside
                u0 = min(span, max(0, p2 - t0))
                u1 = max(u0, min(span, n2 + p2 - t0))
                z = r // (o0 * o1)
                i0 = (r // o1) % o0
                i1 = r % o1
                za = z if za_n > 1 else 0
                zb = z if zb_n > 1 else 0
                # the taps of this output row whose rows exist (all of them with the fill)
                g = 0
                for m0 in range(k0):
                    if map0[i0 + k0 - 1 - m0] >= 0 or const:
                        for m1 in range(k1):
                            if map1[i1 + k1 - 1 - m1] >= 0 or const:
                                g += k2
                # output samples [c0, c1) of the tile read input samples only. When no row
                # their taps read is the fill, they read the rows of a in place (no copy in
                # the ring) and the few edge samples outside are summed one by one
                c0, c1, direct = in_place(w, t0, n2, p2, k2, g)
                # this row and the next as a pair: the next row in this chunk and plane, and
                # every row their taps read exists
                paired = pair > 0 and g > 0 and item + 1 < end and i1 + 1 < o1
                if paired and not const:
                    for s1 in range(i1, i1 + k1 + 1):
                        if map1[s1] < 0:
                            paired = False
                nq = 2 if paired else 1  # output rows done by this item
                if direct and const:
                    for m0 in range(k0):
                        if map0[i0 + k0 - 1 - m0] < 0:
                            direct = False
                    for s1 in range(i1, i1 + k1 + nq - 1):
                        if map1[s1] < 0:
                            direct = False
                src = aflat
                stride = n2
                lo, hi = c0, c1
                if not direct:
                    src = rflat
                    stride = ring.shape[1]
                    lo, hi = 0, w
                    if (ti * nz + z) * o0 + i0 != key:
                        key = (ti * nz + z) * o0 + i0
                        have = -1
                    for s1 in range(max(i1, have + 1), i1 + k1 + nq - 1):
                        r1 = map1[s1]
                        if r1 < 0 and not const:
                            continue
                        for m0 in range(k0):
                            r0 = map0[i0 + k0 - 1 - m0]
                            if r0 < 0 and not const:
                                continue
                            # ring row m0·kr + s1 % kr, written through the flat arrays (the
                            # interior at unsigned offsets, as add_group reads them): no views,
                            # whose reference counts cost (add_group). Against four views a row
                            # (2026-12-05, float32 'same', interleaved with filter2D, pairs of
                            # processes): 1024² ⊛ 7×7-11×11 1.04x faster at one thread, 3×3-5×5
                            # and 2048² 0.97-1.03x; at 2 threads 0.91-1.06x, median 0.98
                            # (three pairs, 512²-2048² ⊛ 3×3-11×11: within the noise there)
                            pb = (m0 * kr + s1 % kr) * rstride
                            if r0 < 0 or r1 < 0:  # a row of the constant fill
                                for t in range(span):
                                    rflat[pb + t] = fv
                                continue
                            lb = ((za * n0 + r0) * n1 + r1) * n2
                            for t in range(u0):
                                v = map2[t0 + t]
                                rflat[pb + t] = aflat[lb + v] if v >= 0 else fv
                            db = np.uint64(pb + u0)
                            sb = np.uint64(lb + u0 + t0 - p2)
                            for t in range(np.uint64(u1 - u0)):
                                rflat[db + t] = aflat[sb + t]
                            for t in range(u1, span):
                                v = map2[t0 + t]
                                rflat[pb + t] = aflat[lb + v] if v >= 0 else fv
                    have = i1 + k1 + nq - 2
                dd = np.uint64(r * o2 + t0 + lo)
                width = np.uint64(hi - lo)
                col = (c0 + t0 - p2 if direct else 0) + k2 - 1  # the first tap's shift
                if paired:
                    done = item + 2
                    # per kernel plane: the second row's kernel row 0 (input row i1 + k1),
                    # the rows both read (i1 + k1 - 1 - m1: the first row's kernel row m1, the
                    # second's m1 + 1), the first row's kernel row k1 - 1 (input row i1)
                    p0 = True  # the sums start from zero
                    for m0 in range(k0):
                        r0 = map0[i0 + k0 - 1 - m0]
                        if r0 < 0 and not const:
                            continue
                        lead = (za * n0 + r0) * n1  # the plane's rows of a
                        for s1 in range(k1 + 1):
                            row = lead + map1[i1 + s1] if direct else m0 * kr + (i1 + s1) % kr
                            rowoff[s1] = row * stride + col
                        d1 = dd + np.uint64(o2)  # the second row
                        rb = (zb * k0 + m0) * k1
                        pair_plane(
                            oflat,
                            dd,
                            d1,
                            src,
                            rowoff,
                            b,
                            rb,
                            k1,
                            k2,
                            fo,
                            ws,
                            po,
                            pw0,
                            pw1,
                            width,
                            p0,
                            zero,
                        )
                        p0 = False
                    if not direct:
                        continue
                for q in range(nq):
                    # the taps of output row r + q in tap order: their rows (of a, or of the
                    # ring) and shifts
                    g = 0
                    for m0 in range(k0):
                        r0 = map0[i0 + k0 - 1 - m0]
                        if r0 < 0 and not const:
                            continue
                        for m1 in range(k1):
                            s1 = i1 + q + k1 - 1 - m1
                            r1 = map1[s1]
                            if r1 < 0 and not const:
                                continue
                            rb = (zb * k0 + m0) * k1 + m1
                            row = (za * n0 + r0) * n1 + r1 if direct else m0 * kr + s1 % kr
                            for m2 in range(k2):
                                rws[g] = row
                                offs[g] = col - m2
                                fo[g] = np.uint64(row * stride + offs[g])
                                ws[g] = b[rb, m2]
                                g += 1
                    if not paired:
                        add_row(oflat, dd, src, fo, ws, 0, g, GROUP, width, True, zero)
                    if direct:
                        # the edge samples [0, c0) and [c1, w), their terms in the same order
                        # through the extension's map
                        for e in range(c0 + w - c1):
                            j = e if e < c0 else c1 + e - c0
                            s = zero
                            for t in range(g):
                                v = map2[t0 + j + offs[t] - (c0 + t0 - p2)]
                                s += ws[t] * (a[rws[t], v] if v >= 0 else fv)
                            out[r + q, t0 + j] = s
        return True

    return valid3  # type: ignore[no-any-return]


def _kernel() -> Callable[..., None]:
    global _KERNEL
    if _KERNEL is None:
        with _LOCK:
            if _KERNEL is None:
                _KERNEL = _compile()
    return _KERNEL


def _loads() -> bool:
    """Whether numba imports (an installed numba may refuse the installed numpy); if not,
    the loop is off for the process and the direct method uses shift-and-add, once warned."""
    global AVAILABLE
    if _KERNEL is not None:
        return True
    try:
        _kernel()
    except Exception as exc:  # ImportError, or numba's own error for an unsupported numpy
        AVAILABLE = False
        warnings.warn(
            f"trueconv: numba is installed but does not load ({type(exc).__name__}: {exc}); "
            "the direct method uses shift-and-add instead of its compiled loop.",
            RuntimeWarning,
            stacklevel=4,
        )
        return False
    return True


def usable(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> bool:
    """Whether :func:`valid_conv` can run this call: numba present, plain strided CPU
    tensors of one dtype in :data:`DTYPES` whose data can be read (not under
    ``torch.compile``, ``torch.jit.trace`` or a ``torch.func`` transform), 1-3 convolved
    dims."""
    if not AVAILABLE or a.dtype != b.dtype or a.dtype not in DTYPES:
        return False
    nd = len(pads)
    if not 1 <= nd <= 3 or a.ndim < nd or b.ndim < nd:
        return False
    for t in (a, b):
        if type(t) is not torch.Tensor or not t.is_cpu or t.layout != torch.strided:
            return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if functorch_active() or functorch_wrapped(a) or functorch_wrapped(b):
        return False
    return _loads()


def valid_conv(
    a: torch.Tensor,
    b: torch.Tensor,
    pads: Sequence[tuple[int, int]],
    rule: str | None = None,
    fill: bool | complex = 0,
) -> torch.Tensor:
    """The valid convolution of ``a`` extended by ``pads`` with ``b`` over the last
    ``len(pads)`` dims, batch dims broadcast; autograd-aware. ``rule``: ``None`` pads with
    zeros that are not terms (the direct sum's implicit padding); a boundary (``'reflect'``,
    ``'symmetric'``, ``'wrap'``, ``'replicate'``, or ``'fill'`` with ``fill``) extends ``a``
    with samples that are terms, which the loop reads through per-dim index maps as it copies
    its rows (no extended array is built). Requires :func:`usable`."""
    if type(pads) is not tuple or any(type(p) is not tuple for p in pads):
        pads = tuple((int(p), int(q)) for p, q in pads)
    if (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)) or forward_ad_active():
        if rule is not None:  # the extension's own backward (a gather's) records the graph
            a, pads = _extended(a, pads, rule, fill)
        if not _nonfinite.all_finite(b):
            return _outside(a, b, pads)
        out: torch.Tensor = _RowsConv.apply(a, b, pads)
        return out
    return _run(a, b, pads, rule, fill)


def _extended(
    a: torch.Tensor, pads: tuple[tuple[int, int], ...], rule: str, fill: bool | complex = 0
) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    """``a`` extended by ``pads`` under ``rule`` (an array built), and no padding left."""
    nd = len(pads)
    return extend(a, tuple(range(a.ndim - nd, a.ndim)), pads, rule, fill), ((0, 0),) * nd


def _outside(a: torch.Tensor, b: torch.Tensor, pads: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """The convolution without the loop, for a ``b`` with NaN or ±Inf: the loop reads rows
    with their zero padding, and ``0 · Inf`` would put NaN where the direct sum has no term
    (the padding is not a term); shift-and-add never multiplies it (:data:`outside`)."""
    if outside is None:  # pragma: no cover - trueconv._methods.direct sets it on import
        raise RuntimeError("trueconv._methods.direct is not loaded")
    return outside(a, b, pads)


#: The direct method's shift-and-add (set by :mod:`trueconv._methods.direct`, which imports
#: this module: a hook rather than an import cycle).
outside: (
    Callable[[torch.Tensor, torch.Tensor, tuple[tuple[int, int], ...]], torch.Tensor] | None
) = None


class _Layout(NamedTuple):
    """How :func:`_run` lays out one call's operands for the loop (from shapes alone)."""

    out_shape: tuple[int, ...]  # the result
    a_expand: tuple[int, ...] | None  # the full batch an operand is expanded to, or None
    b_expand: tuple[int, ...] | None
    a_rows: tuple[int, int]  # the operands and the output as rows, as the loop takes them
    b_rows: tuple[int, int]
    o_rows: tuple[int, int]
    dims: tuple[int, ...]  # (za_n, n0, n1, zb_n, k0, k1, nz, o0, o1)
    maps: tuple[Any, Any, Any]  # per loop dim, extended index -> input index, -1: the fill
    p2: int  # the extension's leading samples along the last dim


@functools.lru_cache(maxsize=1024)
def _layout(
    a_shape: tuple[int, ...],
    b_shape: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    rule: str | None = None,
) -> _Layout | None:
    """The layout of a call of these shapes (``None``: an empty result). Depends on shapes
    alone, so a repeated call does not work it out again (it took 4 of the 15 us that
    :func:`_run` spent on an 8-sample input and a 3-tap kernel, one thread)."""
    nd = len(pads)
    nb_a, nb_b = len(a_shape) - nd, len(b_shape) - nd
    sa, sb = a_shape[nb_a:], b_shape[nb_b:]
    batch = broadcast_shape(a_shape[:nb_a], b_shape[:nb_b])
    out_sz = tuple(n + p + q - k + 1 for n, k, (p, q) in zip(sa, sb, pads))
    out_shape = (*batch, *out_sz)
    if math.prod(out_shape) == 0:
        return None
    nz = math.prod(batch)

    def expand(shape: tuple[int, ...], nb: int, s: tuple[int, ...]) -> tuple[int, ...] | None:
        # batch dims flattened to 1 or the full batch (one that broadcasts only partly is
        # expanded to it)
        lead = math.prod(shape[:nb])
        return None if lead == 1 or shape[:nb] == batch[len(batch) - nb :] else (*batch, *s)

    lift = (1,) * (3 - nd)
    za = math.prod(a_shape[:nb_a])
    zb = math.prod(b_shape[:nb_b])
    a3, b3, o3 = (*lift, *sa), (*lift, *sb), (*lift, *out_sz)
    p3 = ((0, 0),) * (3 - nd) + pads
    za = 1 if za == 1 else nz
    zb = 1 if zb == 1 else nz
    return _Layout(
        out_shape,
        expand(a_shape, nb_a, sa),
        expand(b_shape, nb_b, sb),
        (za * a3[0] * a3[1], a3[2]),
        (zb * b3[0] * b3[1], b3[2]),
        (nz * o3[0] * o3[1], o3[2]),
        (za, a3[0], a3[1], zb, b3[0], b3[1], nz, o3[0], o3[1]),
        tuple(_index_map(n, p, q, rule) for n, (p, q) in zip(a3, p3)),  # type: ignore[arg-type]
        p3[2][0],
    )


@functools.lru_cache(maxsize=256)
def _index_map(n: int, before: int, after: int, rule: str | None) -> Any:
    """Extended index ``j`` (``0 <= j < before + n + after``) -> the input index it copies
    (:func:`trueconv.core.boundary.source_index`), or -1 (``rule`` None or ``'fill'``: the
    fill), as a read-only int64 numpy array."""
    if rule is None or rule == "fill":
        j = np.arange(-before, n + after, dtype=np.int64)
        idx = np.where((j >= 0) & (j < n), j, -1)
    else:
        idx = source_index(n, before, after, rule).numpy()
    idx.setflags(write=False)
    return idx


def _run(
    a: torch.Tensor,
    b: torch.Tensor,
    pads: tuple[tuple[int, int], ...],
    rule: str | None = None,
    fill: bool | complex = 0,
) -> torch.Tensor:
    """The compiled loop on data: operands viewed as rows (batch and leading dims flattened),
    one call."""
    lay = _layout(tuple(a.shape), tuple(b.shape), pads, rule)
    if lay is None:
        nd = len(pads)
        nb_a, nb_b = a.ndim - nd, b.ndim - nd
        batch = broadcast_shape(a.shape[:nb_a], b.shape[:nb_b])
        out_sz = (n + p + q - k + 1 for n, k, (p, q) in zip(a.shape[nb_a:], b.shape[nb_b:], pads))
        return torch.empty((*batch, *out_sz), dtype=a.dtype)
    out, o_np = _output(lay.out_shape, a.dtype)
    # numpy views from here: a numpy reshape costs ~0.3 us, a torch one ~3 us (small calls
    # are made of little else)
    a2 = _readable(a, lay.a_expand).reshape(lay.a_rows)
    b2 = _readable(b, lay.b_expand).reshape(lay.b_rows)
    fills = fill_array(rule, fill, o_np.dtype)
    if not _call(a2, b2, lay, fills, o_np.reshape(lay.o_rows)):
        if rule is not None:
            a, pads = _extended(a, pads, rule, fill)
        return _outside(a, b, pads)
    return out


def fill_array(rule: str | None, fill: bool | complex, dtype: Any) -> Any:
    """What the loops take for the samples their maps mark -1: ``[fill]`` (``rule`` 'fill':
    they are terms), else an empty array (zeros that are not terms, or none)."""
    if rule == "fill":
        return np.full(1, fill, dtype=dtype)
    return _NO_FILL[dtype]  # keyed by the dtype object: its .name takes ~5 us


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, Any]:
    """An uninitialised CPU tensor in memory from numpy's allocator, and the same memory as a
    numpy array (no second conversion).

    The loop writes its output once, so the first touch of fresh pages is a large part of its
    cost for big outputs; numpy asks Linux for transparent huge pages on large arrays
    (``madvise``), torch's CPU allocator does not. Measured for 3 x 2048^2 float32 (48 MiB):
    allocate and write 9.2 ms from numpy, 31.4 ms from ``torch.empty``.

    The huge pages are faulted in here, by the calling thread (one byte per
    :data:`HUGE_PAGE`), not by the loop's threads: two threads faulting huge pages at once ran
    slowly for the first calls of a process on this VM (4096² float32 ⊛ 7-tap Gaussian, fused
    loop, 2 threads: 86-118 ms for the first 5-10 calls, then 19-20; faulted here first: 19-23
    ms from the first call; a reused output 14-15; ``torch.empty`` 36-39).
    """
    if dtype not in _NUMPY:
        t = torch.empty(shape, dtype=dtype)
        return t, t.numpy()
    arr = np.empty(shape, dtype=_NUMPY[dtype])
    if arr.nbytes >= 2 * HUGE_PAGE:
        arr.reshape(-1).view(np.uint8)[::HUGE_PAGE] = 0  # the loop overwrites every element
    return torch.from_numpy(arr), arr


class _Redirect(threading.local):
    to: Callable[[tuple[int, ...], torch.dtype], tuple[torch.Tensor, Any] | None] | None = None


#: Per thread: where the next output of :func:`_run` goes instead of fresh memory (set by
#: :func:`trueconv._methods.scratch.redirect`: a separable plan's intermediate, which only its
#: next pass reads), taken by that call alone.
REDIRECT = _Redirect()


def _output(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, Any]:
    """:func:`_empty`, or the memory :data:`REDIRECT` names for this one output."""
    to = REDIRECT.to
    if to is not None:
        REDIRECT.to = None
        got = to(shape, dtype)
        if got is not None:
            return got
    return _empty(shape, dtype)


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised tensor for an output that will be written once: on the CPU from
    numpy's allocator, its huge pages faulted in by the calling thread (:func:`_empty`);
    elsewhere ``torch.empty``."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    return _empty(shape, dtype)[0]


#: Bytes of a transparent huge page on x86-64 (where only one byte per page is touched
#: without huge pages, a negligible cost).
HUGE_PAGE = 1 << 21


_NUMPY = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.complex64: "complex64",
    torch.complex128: "complex128",
    torch.int64: "int64",
}
#: the empty fill array of each dtype (:func:`fill_array`)
_NO_FILL = {np.dtype(name): np.empty(0, dtype=name) for name in _NUMPY.values()}


def _readable(t: torch.Tensor, expand: tuple[int, ...] | None) -> Any:
    """``t`` as a C-contiguous numpy array, expanded to ``expand`` first where given."""
    if expand is None and not t.requires_grad:
        try:  # the common case in one call (about 1 us of the checks below saved)
            arr = t.numpy()  # refuses conjugate and negative views
        except RuntimeError:
            pass
        else:
            if arr.flags.c_contiguous:
                return arr
    if t.requires_grad:  # .numpy() refuses a tensor that records a graph
        t = t.detach()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    if expand is not None:
        t = t.expand(expand)
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


_STATE = threading.local()  # per thread: the thread count last handed to numba (its own
# setting is per thread too)
_SAFE = False  # numba's threading layer is known to be thread-safe


def _call(a: Any, b: Any, lay: _Layout, fill: Any, out: Any) -> bool:
    kernel = _kernel()  # imports numba first
    threads = numba_threads()
    m0, m1, m2 = lay.maps
    # a few chunks per thread; one at one thread (each chunk allocates its ring and tap lists
    # and fills its ring: 4 chunks at one thread cost 0.4-0.7 us a call on 16²-64² ⊛ 3²-7²,
    # 1.03-1.10x, and 0.1-0.8% on 256²-1024², 2026-12-05)
    parts = 4 * threads if threads > 1 else 1
    k0, k1, k2 = lay.dims[4], lay.dims[5], b.shape[1]
    pair = (2 if STRIP_PAIRS and (k1, k2) == (3, 3) else 1) if paired(k1, k2) else 0
    tile = widest_tile(k0 * (k1 + (pair > 0)), out.itemsize)  # a ring of k1 (+ 1) rows a plane
    nrows, width = out.shape
    if threads > 1 and nrows * -(-width // tile) < parts:
        # the chunks share out row tiles: with few rows (a 1-D signal) wide tiles left
        # threads idle (2^16 ⊛ 16 float32, 2 threads: 0.78x tiles of 2048); as many tiles as
        # chunks, none narrower than TILE
        tile = min(tile, max(TILE, -(-width // -(-parts // nrows))))
    o1 = lay.dims[8]
    brows = band_rows(width, o1, k0, k1, k2, out.itemsize) if width <= tile else 0
    whole = brows > 0 and whole_planes(width, o1, k0, k1, k2, out.itemsize)
    args = (a, b, lay.dims, m0, m1, m2, lay.p2, fill, out, tile, parts, BAND, pair, brows, whole)
    return bool(parallel(kernel, *args))


def numba_threads() -> int:
    """The thread count of the compiled loops' parallel regions for this call: torch's
    (``torch.set_num_threads`` governs trueconv as it governs torch), at most numba's pool;
    handed to numba when it changed for the calling thread."""
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if getattr(_STATE, "threads", None) != threads:
        users = torch.get_num_threads()
        numba.set_num_threads(threads)
        if torch.get_num_threads() != users:
            # numba's first call starts its OpenMP pool, which sets the calling thread's
            # OpenMP thread count (the one torch reads and sets too) to all of numba's
            # threads: the user's torch.set_num_threads(1) became 2, measured
            torch.set_num_threads(users)
        _STATE.threads = threads
    return threads


def parallel(kernel: Callable[..., Any], *args: Any) -> Any:
    """``kernel(*args)`` for a compiled loop with a parallel region, under the lock where
    numba's threading layer is not thread-safe."""
    if _SAFE or _threadsafe():
        return kernel(*args)
    with _LOCK:
        return kernel(*args)


def _threadsafe() -> bool:
    """numba's OpenMP and TBB layers accept parallel calls from several threads (Dask's
    threaded scheduler); its fallback 'workqueue' layer aborts the process on them."""
    global _SAFE
    try:
        _SAFE = bool(numba.threading_layer() != "workqueue")
    except ValueError:  # no parallel region has run yet: the first call takes the lock
        return False
    return _SAFE


def _flip(t: torch.Tensor, nd: int) -> torch.Tensor:
    return t.flip(list(range(-nd, 0)))


class _RowsConv(torch.autograd.Function):
    """:func:`_run` with its gradients computed by the same loop.

    For one dim, ``y[j] = sum_m b[m] a_p[j + k - 1 - m]`` with ``a_p`` the padded input.
    Then ``grad_a`` is the valid convolution of ``g`` padded by ``(k - 1 - before,
    k - 1 - after)`` with ``conj(flip(b))``, and ``grad_b = flip(z)`` with ``z`` the valid
    convolution of ``conj(a)`` padded by ``pads`` with ``flip(g)`` (length ``k``): both are
    calls of :func:`valid_conv`, so the backward is itself differentiable.
    """

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor, pads: tuple[tuple[int, int], ...]) -> Any:
        return _run(a, b, pads)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        a, b, pads = inputs
        ctx.save_for_backward(a, b)
        ctx.save_for_forward(a, b)
        ctx.pads = pads

    @staticmethod
    def jvp(ctx: Any, da: torch.Tensor | None, db: torch.Tensor | None, _: Any) -> Any:
        """Forward mode: the product rule of a bilinear map, ``da ⊛ b + a ⊛ db``."""
        a, b = ctx.saved_tensors
        out = None if da is None else valid_conv(da, b, ctx.pads)
        if db is not None:
            term = valid_conv(a, db, ctx.pads)
            out = term if out is None else out + term
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        a, b = ctx.saved_tensors
        pads = ctx.pads
        nd = len(pads)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            back = tuple((k - 1 - p, k - 1 - q) for (p, q), k in zip(pads, b.shape[-nd:]))
            ga = valid_conv(g, _flip(b, nd).conj(), back).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            z = valid_conv(a.conj(), _flip(g, nd), pads)
            gb = _flip(z, nd).sum_to_size(b.shape)
        return ga, gb, None
