"""Overlap-add: the long operand cut into blocks, the blocks transformed in batched FFTs.

Along a convolved dim of signal length ``n`` and kernel length ``k``, the signal is cut into
``nb = ceil(n / S)`` blocks of length ``S``; each block's full convolution with the kernel has
length ``S + k - 1``, computed with a circular transform of length ``L = S + k - 1`` (no
aliasing), and the block results are added back at offsets ``0, S, 2S, ...``. Work per dim is
``nb · L log L`` instead of ``L_full log L_full`` for one transform of the whole length, and the
spectra held at once are about ``n · L / S`` instead of ``n + k``.

Block length: ``L`` runs over the powers of two (blocks of 1-D transforms) or the transform
lengths of :func:`trueconv.core.transforms.next_fast_len` (blocks of multi-dim transforms:
:func:`blocked_dims` has the measurements) with ``S = L - k + 1 >= k - 1`` and ``S < n``, and
the one with the least ``nb · block_work(L)`` wins. The continuous optimum of ``L log L /
(L - k + 1)`` alone solves ``L - (k - 1)(ln L + 1) = 0`` (scipy's ``oaconvolve`` solves it with
Lambert's W), i.e. ``L`` a few times ``k``. Measured here (2**20 samples, float32, 2 threads,
MKL), batched transforms also pay a fixed cost per block and slow down once a batch of long
blocks leaves the cache, and MKL batches odd smooth lengths (2268, 46080) poorly; the best
blocks were L = 256, 2048 and 16384 for k = 16, 256 and 4096. ``block_work`` models both
effects (``BLOCK_OVERHEAD`` and ``trueconv.cost.CACHE_KNEE``) and reproduces those optima;
blocks longer than :data:`BLOCK_MAX` are only taken when the kernel needs them. A dim is
blocked only when its blocks cost less than one transform of the whole dim (scipy's
``oaconvolve`` declines alike); whether blocking beats the 'fft' method over all dims is the
planner's call, with the fitted cost constants.

How the blocks' results reach the output. A call that records no graph places them by
overlap-save (:func:`_run_boxes`): output block ``j`` of the wanted slice is the last ``S``
samples of the circular convolution of the signal's window of ``S + k - 1`` samples ending
there, copied into the output once; no block result is added to another. A recorded call
(autograd, ``torch.compile``, ``torch.func``) adds them (:func:`_run_traced`): ``S >= k - 1``
makes every block's tail (``k - 1`` samples) shorter than a block, so each block's result
lands on the output in two pieces, its head (``S`` samples) at ``jS`` and its tail on the
next block's head. Either way the blocks are transformed in boxes of bounded size
(:func:`_boxes`), so memory stays near the input's size.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from trueconv._methods import fft, rows
from trueconv._problem import Problem
from trueconv.core import cost
from trueconv.core import transforms as tr
from trueconv.core.dtypes import broadcast_shape
from trueconv.core.dtypes import transform_dtype as compute_dtype
from trueconv.core.static import register

#: Rounds integer problems, as the FFT method: ``'auto'`` never picks it for them.
EXACT = False


#: Fixed cost of one block's transform, in transform-work points (``L log2 L``). Provenance: the
#: block-length sweep described in the module docstring.
BLOCK_OVERHEAD = 300.0


#: Longest block worth choosing when a shorter one is allowed: past it a transform leaves the
#: cache and costs about twice as much per point. Provenance: 2**20 samples * 65536 taps,
#: 2 threads, forced block lengths: L = 131072 took 17.1 ms (float32) / 23.2 ms (float64),
#: L = 262144 33.7 / 33.5 ms, though ``block_work`` rates them alike; at 4096 and 256 taps
#: every L past 2**17 was 1.5-2x slower than the best.
BLOCK_MAX = 1 << 17


#: :data:`BLOCK_OVERHEAD` for a dim of a multi-dim block (``smooth`` in :func:`block_length`):
#: a block's fixed cost is shared by every dim's samples of a much larger block. Provenance:
#: three sweeps of every length (2026-12-06; ``benchmarks/block_lengths.py --landscape``, 1
#: and 2 threads, two of them timing one call after another length's, one in steady state),
#: the geometric mean of each pick's time over the fastest length's with 0, 30, 100 and 300
#: points: 1.17-1.31, 1.13-1.18, 1.04-1.14 and 1.07-1.16 (a joint model of the d-dim blocks,
#: ``nb^d (W(L^d) + O)``, 1.05-1.13 at its best ``O``: not worth its search); 300 took blocks
#: of 360 for 3 × 1024² ⊛ 15², 1.3x the time of 128's.
BLOCK_OVERHEAD_ND = 100.0

#: Largest spectrum (bytes) of one transform of a whole image (at the ``'full'`` lengths) for
#: which the powers of two decide whether a dim is blocked (:func:`blocked_dims`); past it,
#: every FFT length may block an image. Their 1-D price (:func:`block_length`) sees one dim
#: and kept one transform of 2176² points for 2048² ⊛ 127², whose spectrum (19 MiB in
#: float32, 37 in float64) leaves the cache, where four blocks of 1152² ran 1.3-2.3x faster.
#: Measured (2026-12-06, ``benchmarks/whole_spectrum.py``, ``results/whole_spectrum.txt``;
#: 'auto' with the powers of two's gate and without, steady state, alternating): on 13
#: images of 18.5-63 MiB of spectrum (1536²-2560² ⊛ 45²-255², 512 × 8192 ⊛ 63², float32
#: and float64) the blocks ran a median 1.29x faster at two threads (per image, the median
#: of up to four runs: 1.02-2.03x; float64 2048² ⊛ 127² 2.01x) and 1.61x at one
#: (1.08-2.25x); the runs' spread is this VM's (one two-thread run put the float32 images at
#: 0.72-0.97x, the next at 1.03-1.32x). Twice the FFT method's own limit
#: (:data:`trueconv._methods.fft.GROUP_BYTES`): with 8 MiB, float64 1024² (9-10 MiB) flipped
#: either way at two threads (⊛ 31²: 0.69-1.10x over six runs) and the planner priced its
#: blocks far too low (⊛ 21²: 6.9 ms priced, 17.4 measured, the FFT 13.2), though one
#: thread gained 0.96-1.96x on float64 1024² and float32 1536². Batches of images (the
#: spectrum counted for one image) ungated too, since their boxes hold groups of images
#: (:func:`_images_per_box`): 2-3 × 1536²-2048² ⊛ 63²-255², a batch or a channel dim,
#: float32/float64, 0.84-2.25x at two threads over two runs (median 1.20x; float64 3 ×
#: 2048² ⊛ 127² 2.21-2.25x) and 1.00-2.04x (1.20x) at one; before the groups, when a box held
#: one block of every image, 3 × 2048² float32 ⊛ 127² had run 0.90x / 1.08x ungated. Volumes
#: stay gated (three transformed dims): 192³ float32 ⊛ 15³ 0.74x / 0.97x. CPU plans only:
#: a GPU's caches and transforms are others (no GPU measured it).
WHOLE_SPECTRUM_BYTES = 2 * fft.GROUP_BYTES


def block_work(length: int) -> float:
    """Modelled work of one block transform of ``length`` points (see the module docstring):
    the shared transform model of :func:`trueconv.cost.transform_work` plus a fixed cost."""
    return cost.transform_work(length, 1) + BLOCK_OVERHEAD


@functools.lru_cache(maxsize=4096)
def block_length(
    n: int, k: int, smooth: bool = False, covered: int = 0, gated: bool = True
) -> int | None:
    """Block length ``S`` for a dim with signal ``n`` and kernel ``k``; ``None``: no blocking
    (a length-1 operand, or no power-of-two block shorter than the signal worth its
    transforms). The transform lengths ``L = S + k - 1`` tried: powers of two, or with
    ``smooth``, every length :func:`~trueconv.core.transforms.next_fast_len` makes
    (:func:`blocked_dims`), where a power of two is worth it unless not ``gated``, the blocks
    counted over the ``covered`` output samples (``'full'``: ``n + k - 1``; default ``n``)."""
    if n <= 1 or k <= 1:
        return None
    best_s, best_cost = None, block_work(tr.next_fast_len(n + k - 1))  # one block: no blocking
    if smooth:
        if gated and block_length(n, k) is None:
            return None
        length = tr.next_fast_len(2 * k - 2)
    else:
        length = 1 << max(1, (2 * k - 3).bit_length())  # smallest power of two >= 2k - 2
    first = length
    m = (covered or n) if smooth else n
    overhead = BLOCK_OVERHEAD_ND if smooth else BLOCK_OVERHEAD
    while length - k + 1 < n and (length == first or length <= BLOCK_MAX):
        s = length - k + 1
        price = -(-m // s) * (cost.transform_work(length, 1) + overhead)
        if price < best_cost:
            best_s, best_cost = s, price
        length = tr.next_fast_len(length + 1) if smooth else 2 * length
    return best_s


def blocked_dims(
    sa: Sequence[int],
    sb: Sequence[int],
    covered: Sequence[int] | None = None,
    spectrum_itemsize: int = 0,
) -> list[int | None]:
    """Per convolved dim, the block length, or ``None`` where the dim is not blocked;
    ``covered``: the output samples the blocks make per dim (the wanted slice; default the
    signal's length); ``spectrum_itemsize``: bytes of one element of the spectrum (8 for
    float32 data, 16 for float64; 0: unknown, the powers of two decide as below).

    Where more than one dim is transformed, the block lengths come from every transform length
    the FFT method uses (``smooth``), not only powers of two, priced with
    :data:`BLOCK_OVERHEAD_ND` and counted over the output the blocks make: the block count
    then fits the output closely (2048 ⊛ 63 ``'same'``: 4 blocks of ``S = 514`` at ``L =
    576`` against 5 of 450 at 512, the last one mostly padding) at lengths MKL transforms as
    fast per point. Measured (2026-12-06, ``benchmarks/block_lengths.py``,
    ``results/block_lengths.txt``): every length up to 1300 forced in steady state on 2048² ⊛
    15²-63² float32/float64, 4096² ⊛ 31², 1024² ⊛ 15² and 3 × 2048² ⊛ 31², the pick's time
    over the fastest length's, geometric mean 1.14 / 1.07 at two / one threads (worst 1.24 /
    1.26), the powers of two's 1.27 / 1.23 (1.44 / 1.42); ``'auto'`` before and after, each
    with the constants it ships, 2048²-4096² ⊛ 31²-63² images of one and three channels
    (02:35 run): ``'same'`` 1.01-1.34x (median 1.21x) at two threads and 1.06-1.39x (1.18x)
    at one, ``'full'`` 0.98-1.21x (1.09x) and 0.97-1.24x (1.11x). Blocks of 1-D transforms keep the
    powers of two: every length ran 2^20 ⊛ 256 and ⊛ 4096 and 64 rows × 16384 ⊛ 129 at
    0.71-0.97x their speed (1 and 2 threads), MKL batching long odd-factor 1-D transforms
    slower (the module notes).

    Whether a dim is blocked at all is the powers of two's call, but for images (two
    transformed dims, ``spectrum_itemsize`` given) whose whole transform's spectrum
    (at the ``'full'`` lengths) exceeds :data:`WHOLE_SPECTRUM_BYTES`: there every length may
    block it, and the planner weighs the blocks against the FFT method as always. Where
    every length may block smaller images (1024² ⊛ 31²-63², 3 × 512² ⊛ 31²: few blocks of
    288-576), 'auto' (refitted) took overlap-add for float64 1024² ⊛ 31² at 1.32x the FFT's
    time at two threads (0.76-0.84x at one), and 3 × 1024² ⊛ 63² ran 0.87-0.93x the old
    plan's speed."""
    transformed = [i for i, (n, k) in enumerate(zip(sa, sb)) if n > 1 and k > 1]
    smooth = len(transformed) > 1
    cover = sa if covered is None else covered
    gated = True
    if len(transformed) == 2 and spectrum_itemsize:
        lens = [tr.next_fast_len(sa[i] + sb[i] - 1) for i in transformed]
        whole = math.prod(lens[:-1]) * (lens[-1] // 2 + 1) * spectrum_itemsize
        gated = whole <= WHOLE_SPECTRUM_BYTES
    return [block_length(n, k, smooth, m, gated) for n, k, m in zip(sa, sb, cover)]


#: Elements of the block buffer (blocks at their transform length, batch included) transformed
#: at once by :func:`run`: a quarter of the signal, at least :data:`BOX_MIN` and at most
#: :data:`BOX_MAX`. A call holds about three such buffers (the blocks, their spectrum, the
#: inverse's output) besides its output, so the temporaries stay near the input's size whatever
#: the block expansion ``(L / S) ** d``; before, the whole signal's spectra (up to ``8x`` its
#: size for 3-D blocks) were held at once.
BOX_FRACTION = 4
#: Both count float32 elements: a box of float64 or complex data holds as many bytes, so fewer
#: elements (:func:`_boxes`). Provenance, 2 threads, forced overlap-add, float64 boxes of
#: 2^16-2^19 elements interleaved: 2^18 (2 MiB) was 1.06-1.20x faster than 2^19 on 2048²
#: ⊛ 31²-63², 4096² ⊛ 31² and 3 × 2048² ⊛ 31², 1.03-1.08x on 2^20 ⊛ 256-4096; float32 kept
#: 2^19 (smaller boxes 0.58-0.99x). A transform's inverse slows down past a few MiB of
#: spectrum per batch: 512² float64, 0.7 ms per block inverted alone, 1.0 by two, 3.0 by four.
#: The cost model still counts the calls of float32's boxes (its constants were fitted with
#: them; priced per box, the cut made overlap-add look 20% dearer and lose 3 × 2048² ⊛ 31²
#: float64 to the FFT, 265 ms against about 180). Only boxes of multi-dim transforms are cut:
#: 1-D transforms batch well (a batch is what their threads share; the FFT method never
#: groups them either), and a box of one 2^17-point block left one of 2 threads idle: 2^20 ⊛
#: 65536 float64 took 59-63 ms with float64's boxes against 24 with float32's; 2^20 ⊛
#: 256-4096 and 64 rows × 16384 ⊛ 129 1.12-1.30x faster, 2^22 ⊛ 1024 0.93-1.0 (alternating
#: processes, 2 threads, 2026-12-03).
BOX_MIN = 1 << 16
BOX_MAX = 1 << 19
#: Fewest blocks a box of one blocked dim holds (where the signal has them), up to
#: :data:`LONG_BOX_MAX` elements, whatever the budget: long blocks made boxes of one to four
#: (2^20 ⊛ 65536: 8 boxes of 2 blocks of 2^17 points), each box a chain of about eight torch
#: ops whose threads a batch of two blocks barely shares, and each op a fork-join that waits
#: a time slice when another process holds a core. Measured (2026-12-04, forced overlap-add,
#: float32, min1 = before, interleaved; quiet 2 threads / quiet 1 thread / one busy process
#: at 2 threads, ms): 2^20 ⊛ 65536 13.8 → 7.2 / 16.8 → 11.3 / 22.4 → 16.6; 2^20 ⊛ 16384 6.5
#: → 4.8 / 8.8 → 7.3; 2^21 ⊛ 65536 17.3 → 12.9 / 23.9 → 21.0; 8 rows × 2^17 ⊛ 16384 6.3 →
#: 4.6 / 9.0 → 8.3 / 10.9 → 4.6; 2^22 ⊛ 131072 53.8 → 30.5 / 67.3 → 52.3 / 147 → 72; boxes
#: of short blocks (2^20 ⊛ 4096: 16 blocks each) unchanged. Multi-dim boxes keep the budget.
MIN_BOX_BLOCKS = 8
#: The most elements (float32; float64 and complex half as many) such a box may take: 16 MiB,
#: three buffers of it about 48 MiB, so hour-long audio by a seconds-long impulse response
#: stays within the CLI's memory estimate (``SCRATCH_1D_OVERLAP_ADD``).
LONG_BOX_MAX = 1 << 22

#: A piece of one blocked dim, mapping a flat range onto blocks:
#: ``(flat_start, count, stride, block_start, inner_start, length)`` pairs the windows of
#: ``length`` samples at ``flat_start, flat_start + stride, ...`` (``count`` of them; they
#: overlap where ``length > stride``) of the flat dim with blocks ``[block_start,
#: block_start + count)`` at ``[inner_start, inner_start + length)`` of each block. An
#: unblocked dim has ``count = 0``: both sides are narrowed to ``length`` (from
#: ``flat_start`` and ``inner_start``).
Piece = tuple[int, int, int, int, int, int]


def _paired(
    flat: torch.Tensor, blocked: torch.Tensor, lead: int, dims: Sequence[Sequence[Piece]]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Views of ``flat`` (one dim per convolved dim) and ``blocked`` (two per blocked dim)
    that correspond element for element: every combination of one piece per dim."""
    pairs = [(flat, blocked)]
    p = lead
    for pieces in dims:
        nxt = []
        for f, b in pairs:
            for f0, count, stride, b0, i0, length in pieces:
                if count == 0:
                    nxt.append((f.narrow(p, f0, length), b.narrow(p, i0, length)))
                    continue
                span = (count - 1) * stride + length
                fv = f.narrow(p, f0, span).unfold(p, length, stride).movedim(-1, p + 1)
                nxt.append((fv, b.narrow(p, b0, count).narrow(p + 1, i0, length)))
        pairs = nxt
        p += 2 if any(piece[1] for piece in pieces) else 1
    return pairs


def _windows(n: int, k: int, s: int, start: int, j0: int, g: int) -> list[tuple[Piece, bool]]:
    """Along a blocked dim, the signal samples the box's blocks ``[j0, j0 + g)`` read: block
    ``j`` is the window of ``L = s + k - 1`` samples from ``start + j·s - (k - 1)``, zeros
    outside ``[0, n)``. Pieces (:data:`Piece`, over the box's blocks) with whether their
    blocks hold zeros too: the blocks whose window lies inside the signal in one piece, each
    block past an edge its own (its samples inside, possibly none)."""
    length = s + k - 1
    pieces: list[tuple[Piece, bool]] = []

    def inside(first: int, count: int) -> None:
        pieces.append(((start + (j0 + first) * s - (k - 1), count, s, first, 0, length), False))

    run: list[int] = []  # the blocks of the current piece inside the signal
    for t in range(g):
        w0 = start + (j0 + t) * s - (k - 1)
        if w0 >= 0 and w0 + length <= n:
            run.append(t)
            continue
        if run:
            inside(run[0], len(run))
            run = []
        lo, hi = max(0, -w0), min(length, n - w0)
        pieces.append(((w0 + lo, 1, s, t, lo, max(0, hi - lo)), True))
    if run:
        inside(run[0], len(run))
    return pieces


class Layout(NamedTuple):
    """Per convolved dim: how :func:`run` transforms it, and the samples it keeps (tuples: the
    plan that holds it is hashed, as the separable plan's price cache keys on it)."""

    blocks: tuple[int | None, ...]  # block length S; None: not blocked
    #: transform length; None: not transformed. Blocked dims at S + k - 1 (a power of two),
    #: the others as the 'fft' method does
    tlens: tuple[int | None, ...]
    starts: tuple[int, ...]  # the wanted slice of the full convolution
    lengths: tuple[int, ...]


def _layout(
    sa: Sequence[int],
    sb: Sequence[int],
    pads: Sequence[tuple[int, int]],
    spectrum_itemsize: int = 0,
) -> Layout:
    """The :class:`Layout` of a problem (``spectrum_itemsize``: :func:`blocked_dims`)."""
    starts, lengths = tr.wanted(sa, sb, pads)
    blocks = blocked_dims(sa, sb, lengths, spectrum_itemsize)
    tlens: list[int | None] = []
    for i, (n, k, s) in enumerate(zip(sa, sb, blocks)):
        if s is not None:
            tlens.append(s + k - 1)
        elif n > 1 and k > 1:  # even, as rfftn needs of the dim it halves
            tlens.append(tr.next_fast_len(tr.unaliased_length(n, k, starts[i], lengths[i])))
        else:
            tlens.append(None)
    return Layout(tuple(blocks), tuple(tlens), tuple(starts), tuple(lengths))


def _boxes(
    sa: Sequence[int],
    blocks: Sequence[int | None],
    extents: Sequence[int],
    batch: int,
    itemsize: int = 4,
) -> list[list[tuple[int, int]]]:
    """The boxes of blocks :func:`run` transforms one after another: per blocked dim (in
    order) ``(first block, blocks)``. A box holds at most the :data:`BOX_FRACTION` budget of
    block-buffer elements (``extents``: a block's length per blocked dim, the transform or
    signal length per other dim), or with one blocked dim at least :data:`MIN_BOX_BLOCKS`
    blocks up to :data:`LONG_BOX_MAX` elements; the first blocked dims are split first."""
    ranges = [
        [(j, min(g, nb - j)) for j in range(0, nb, g)]
        for nb, g in _widths(sa, blocks, extents, batch, itemsize)
    ]
    return [list(box) for box in itertools.product(*ranges)]


def _box_budget(sa: Sequence[int], batch: int, itemsize: int) -> int:
    """Elements a box of blocks may hold (:data:`BOX_FRACTION` of the signal, within
    :data:`BOX_MIN` and :data:`BOX_MAX` float32 elements; fewer for wider elements)."""
    scale = max(1, itemsize // 4)  # the budget is in bytes of float32 elements
    return min(BOX_MAX, max(BOX_MIN, batch * math.prod(sa) // BOX_FRACTION)) // scale


def _widths(
    sa: Sequence[int],
    blocks: Sequence[int | None],
    extents: Sequence[int],
    batch: int,
    itemsize: int = 4,
) -> list[tuple[int, int]]:
    """Per blocked dim, its blocks and the blocks of a box along it (:func:`_boxes`)."""
    scale = max(1, itemsize // 4)  # LONG_BOX_MAX counts float32 elements too
    budget = _box_budget(sa, batch, itemsize)
    counts = [-(-n // s) for n, s in zip(sa, blocks) if s is not None]
    size = batch * math.prod(
        e * (-(-n // s) if s is not None else 1) for n, s, e in zip(sa, blocks, extents)
    )
    out = []
    for nb in counts:
        per = size // nb  # elements of a box one block wide along this dim
        fewest = min(MIN_BOX_BLOCKS, LONG_BOX_MAX // scale // per) if len(counts) == 1 else 1
        g = nb if size <= budget else min(nb, max(1, fewest, budget // per))
        size = per * g
        out.append((nb, g))
    return out


def _covered(sa: Sequence[int], lay: Layout) -> list[int]:
    """Per convolved dim, the samples its blocks cover: the wanted output's where blocked
    (:func:`_run_boxes` makes output blocks), the signal's elsewhere."""
    return [ln if s is not None else n for n, s, ln in zip(sa, lay.blocks, lay.lengths)]


def _extents(sa: Sequence[int], tlens: Sequence[int | None]) -> list[int]:
    """Per convolved dim, the block buffer's length: a block's transform length where
    blocked, else the transform length or, untransformed, the signal's."""
    return [t if t is not None else n for n, t in zip(sa, tlens)]


@dataclass(frozen=True)
class OverlapAddPlan:
    """Overlap-add's plan: the layout (blocked dims, transform lengths), the boxes of blocks
    transformed together, and the counts priced from them; or, where no dim is worth
    blocking and the method was asked for, the FFT method's plan as its one pass (``inner``)."""

    problem: Problem
    layout: Layout
    boxes: tuple[tuple[tuple[int, int], ...], ...]  # per box, (first block, blocks) per dim
    counts: cost.Counts
    compute_dtype: torch.dtype
    inner: fft.FFTPlan | None = None
    method: str = "overlap_add"
    places_nonfinite: bool = False  # a block's transform mixes its samples into its outputs
    extends: bool = False  # as its inner plan; else the signal comes extended (_plan.run)
    #: images (of the batch and of convolved dims where the kernel has length one) a box
    #: holds, where a box of one block per blocked dim and every image would pass the budget
    #: (:func:`_images_per_box`); 0: every image
    images: int = 0

    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return run(self, a, b)


def _images_per_box(
    sa: Sequence[int],
    sb: Sequence[int],
    blocks: Sequence[int | None],
    extents: Sequence[int],
    batch: int,
    itemsize: int,
) -> int:
    """How many images a box of one block along every blocked dim may hold within the box
    budget (:func:`_widths`'s), or 0 where all of them fit. The images are the batch's and
    those along convolved dims where the kernel has length one (a channel dim): 3 × 2048²
    float64 ⊛ 63² made boxes of one 576² block of each of the three images, 8 MiB where the
    budget is 2 MiB, and ran 1.34x slower than three images one by one (1.14-1.19x float32;
    2 and 1 threads, 2026-12-06). Measured (``benchmarks/image_groups.py``,
    ``results/image_groups.txt``; 'auto' with groups and without, steady state): 3 × 2048²
    float32 and float64 ⊛ 63² (a batch dim or a channel dim), 3 × 4096² float32 ⊛ 63²,
    ``'same'`` and ``'full'``: 0.97-1.27x (median 1.11x) at two threads over two runs,
    1.00-1.38x (1.24x) at one. Where one block of every image fits (⊛ 31²: 3 × 288²) the
    batch was as fast as the images one by one or faster (0.94-1.09x), and is not grouped.
    CPU plans only (no GPU measured it)."""
    budget = _box_budget(sa, batch, itemsize)
    images = batch * math.prod(n for n, k, s in zip(sa, sb, blocks) if s is None and k == 1)
    per_image = math.prod(
        e for n, k, s, e in zip(sa, sb, blocks, extents) if not (s is None and k == 1)
    )
    if images <= 1 or images * per_image <= budget:
        return 0
    return max(1, budget // per_image)


def plan(problem: Problem, device: torch.device, forced: bool = False) -> OverlapAddPlan | None:
    """Overlap-add applies where some dim gets blocks (:func:`blocked_dims`); elsewhere it is
    the FFT with more steps, and ``None`` unless ``forced``.

    Counts: per box (:func:`_boxes`), the blocks' windows copied in, a forward transform, a
    product and an inverse, and the blocks' results copied out (priced as the ``2 ** d +
    3 ** d`` calls of the overlap-add proper the constants were first fitted with); one
    kernel transform. Work: ``nb`` transforms of ``L = S + k - 1`` points per blocked dim, for
    the signal's blocks and the outputs'. Aux: where more than one dim is transformed, the
    two copies torch's inverse makes of each block's spectrum (:func:`_run_boxes`), a cost
    1-D blocks do not have. Without it one set of constants priced both: the fit put
    multi-dim boxes' time on the calls, and float32 3 × 1024² ⊛ 15² (as many boxes as one
    image, each three times larger) was priced at 8.9 ms, measured 14.8 (the refit's worst
    row, 0.60x), so 'auto' ran it over the direct loop's 10.0 ms (12.9, 2 threads). Refitted
    on the recorded rows (2026-12-06, ``benchmarks/results/calibration-cpu.json``): median
    |log2(predicted / measured)| 0.108 / 0.138 → 0.104 / 0.117 (float32 / float64), the
    worst rows 0.60 / 0.47 → 0.79 / 0.71; of 300 problems (1-D, rows, 2-D 512²-4096² ⊛ 3²-127²
    of one and three channels, 3-D; both dtypes and modes) only that one changed its pick,
    and of 416 more (Gaussians and rank-2 kernels on 128²-4096², 1-D signals and rows of
    2^14-2^20 ⊛ 16-4096) one: float64 2^18 ⊛ 256 ``'full'``, from the direct loop to
    overlap-add, 2.32 → 1.43 ms at two threads (4.49 → 1.92 at one).
    """
    sa, sb = problem.sa, problem.sb
    dtype = compute_dtype(problem.dtype)
    # a real spectrum holds complex numbers of twice the data's size (complex data: its own);
    # the CPU's caches only (WHOLE_SPECTRUM_BYTES; GPUs keep the powers of two's gate)
    cpu = device.type == "cpu"
    item = dtype.itemsize * (1 if dtype.is_complex else 2) if cpu else 0
    lay = _layout(sa, sb, problem.pads, item)
    if all(s is None for s in lay.blocks):
        if not forced:
            return None
        # one block along every dim is the plain FFT (scipy's oaconvolve falls back to
        # fftconvolve alike), and the 'fft' method holds fewer spectra at once
        inner = fft.plan(problem, device)
        return OverlapAddPlan(
            problem, lay, (), inner.counts, inner.compute_dtype, inner, extends=inner.extends
        )
    lens = [t for t in lay.tlens if t is not None]
    points = math.prod(lens)
    nblocked = sum(b is not None for b in lay.blocks)
    cover = _covered(sa, lay)
    blocks_total = math.prod(-(-n // b) for n, b in zip(cover, lay.blocks) if b is not None)
    signals, kernels, outputs = fft.along(problem, [i for i, t in enumerate(lay.tlens) if t])
    count = blocks_total * (signals + outputs) + kernels
    work = cost.transform_work(points, count, max(lens)) + count * BLOCK_OVERHEAD
    extents = _extents(sa, lay.tlens)
    multi = sum(t is not None for t in lay.tlens) > 1  # 1-D transforms: float32's boxes
    boxes = _boxes(cover, lay.blocks, extents, problem.batch, dtype.itemsize if multi else 4)
    # calls per box of the float32 budget, which the fitted constants were measured with:
    # wider data is cut into more boxes for the cache, a cut that measured no slower (BOX_MAX)
    priced = math.prod(-(-nb // g) for nb, g in _widths(cover, lay.blocks, extents, problem.batch))
    calls = 1 + priced * (3 + len(lens) + 2**nblocked + 3**nblocked)
    # the windows' copy-in, spectrum product, and the copy-out (priced as fitted)
    passes = float(count * points * 3)
    # a multi-dim inverse: torch's two copies of each block's spectrum (_run_boxes)
    aux = float(2 * blocks_total * outputs * points) if multi else 0.0
    counts = cost.Counts("overlap_add", calls, work, passes, aux, problem.memory)
    frozen = tuple(tuple(box) for box in boxes)
    per_box = (
        _images_per_box(
            cover, sb, lay.blocks, extents, problem.batch, dtype.itemsize if multi else 4
        )
        if cpu
        else 0  # measured on the CPU only: a GPU's boxes keep every image
    )
    return OverlapAddPlan(problem, lay, frozen, counts, dtype, images=per_box)


def run(plan: OverlapAddPlan, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    assert a.ndim == b.ndim, "operands are aligned by the front door"
    if plan.inner is not None:
        return plan.inner.run(a, b)
    if tr.traced(a, b):
        return _run_traced(a, b, plan.layout)
    return _run_boxes(a, b, plan.layout, plan.boxes, plan.images)


def _transformed(
    lead: int, blocks: Sequence[int | None], tlens: Sequence[int | None]
) -> tuple[list[int], list[int]]:
    """Positions (in the blocked layout: two dims per blocked dim) and lengths of the
    transformed dims."""
    tdims, tl = [], []
    p = lead
    for s, t in zip(blocks, tlens):
        if t is not None:
            tdims.append(p + 1 if s is not None else p)
            tl.append(t)
        p += 2 if s is not None else 1
    return tdims, tl


def _run_boxes(
    a: torch.Tensor,
    b: torch.Tensor,
    lay: Layout,
    boxes: Sequence[Sequence[tuple[int, int]]],
    images: int = 0,
) -> torch.Tensor:
    """Overlap-add of a call that records no graph, box by box (:func:`_boxes`), its blocks
    placed by overlap-save.

    The kernel's spectrum is made once. Along a blocked dim, output block ``j`` (``S``
    samples of the wanted slice, from ``start + j·S``) is the last ``S`` samples of the
    circular convolution of the signal's window of ``L = S + k - 1`` samples that ends there
    (:func:`_windows`): the first ``k - 1`` samples are the ones the circular fold spoils.
    Per box, the windows are copied into a buffer at their transform length (made once per
    box shape and zeroed once: only the blocks past an edge of the signal are zeroed again),
    transformed, multiplied in place and transformed back, and each block's last ``S``
    samples are copied into the output. Against adding each block's whole result into a
    zeroed output (overlap-add proper, before 2026-12-03): no zero-filled output or buffers
    (their fills and first page faults were 10 of the 67 ms of 2048² float64 ⊛ 63², 2
    threads), one copy per output sample instead of ``3 ** d`` strided adds, and the output
    is the wanted slice itself, from :func:`trueconv._methods.rows.empty` (huge pages on the
    CPU), not a view of a larger array. Old and new interleaved in one process, fastest of 9 (2
    threads / 1 thread): 2048² ⊛ 31²-63² float64 1.07-1.55x / 1.08-1.24x, float32 ⊛ 63²
    1.12x / 1.09x, 3 × 2048² ⊛ 31² float32 1.45x / 1.26x, 4096² ⊛ 31² float32 1.13x /
    1.27x, 1-D 2^20 ⊛ 256-4096 and 64 × 16384 ⊛ 129 1.02-1.14x. The transforms are the rest
    (45 of about 55 ms for 2048² float64 ⊛ 63²).

    Of those, torch's inverse copies the spectrum twice (profiled, 2048² float64 ⊛ 15², one
    thread: the two copies 38% of a box's time, the transforms proper 62%): the forward
    leaves each block's spectrum contiguous, and a transform along the first blocked dim has two
    batch dims (the block index and the halved last dim) that torch cannot fold into one, so
    it copies, and the real inverse along the last dim copies again. Measured and not kept
    (2026-12-04): the buffer with its first transformed dim outermost, which makes that
    complex transform copy-free on its own (3.2 against 11.5 ms), gained 1.00-1.09x on
    whole boxes (float32/float64, 256²-512² blocks, 1 and 2 threads, page faults turned off
    to see it at all).

    With ``images`` (the plan's :func:`_images_per_box`), the boxes run over groups of that
    many images at a time (:func:`_image_groups`), so a box holds one block of a few images,
    not of all of them.
    """
    blocks, tlens, _, lengths = lay
    lead = a.ndim - len(blocks)
    sb = b.shape[lead:]
    real = not (a.is_complex() or b.is_complex())
    tdims, tl = _transformed(lead, blocks, tlens)
    kb = b
    for i, s in enumerate(blocks):  # size-1 block dims, so the kernel's spectrum broadcasts
        if s is not None:
            kb = kb.unsqueeze(lead + i + sum(q is not None for q in blocks[:i]))
    fwd: Callable[..., torch.Tensor] = torch.fft.rfftn if real else fft.fftn
    kspec = fwd(kb, s=tl, dim=tdims)
    batch_shape = broadcast_shape(a.shape[:lead], b.shape[:lead])
    out = rows.empty((*batch_shape, *lengths), torch.promote_types(a.dtype, b.dtype), a.device)
    buffers: dict[tuple[int, ...], torch.Tensor] = {}
    for group, part, wanted in _image_groups(a, b, out, lead, blocks, lengths, images):
        _fill_boxes(group, sb, part, lay, wanted, boxes, kspec, real, buffers)
    return out


def _image_groups(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor,
    lead: int,
    blocks: Sequence[int | None],
    lengths: Sequence[int],
    images: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, Sequence[int]]]:
    """The signal, the output and the wanted lengths, whole (``images`` 0) or as groups of
    about ``images`` images along the longest dim that holds images and along which the
    kernel has length one (a batch dim, or an unblocked convolved dim: a channel dim)."""
    nd = len(blocks)
    sb = b.shape[lead:]
    free = [d for d in range(lead) if b.shape[d] == 1 and a.shape[d] > 1]
    free += [
        lead + i for i in range(nd) if blocks[i] is None and sb[i] == 1 and a.shape[lead + i] > 1
    ]
    if not images or not free:
        yield a, out, lengths
        return
    d = max(free, key=lambda i: a.shape[i])
    others = math.prod(a.shape[i] for i in free if i != d)
    step = max(1, images // others)
    for j in range(0, a.shape[d], step):
        n = min(step, a.shape[d] - j)
        cut = list(lengths)
        if d >= lead:
            cut[d - lead] = n
        yield a.narrow(d, j, n), out.narrow(d, j, n), cut


def _fill_boxes(
    a: torch.Tensor,
    sb: Sequence[int],
    out: torch.Tensor,
    lay: Layout,
    lengths: Sequence[int],
    boxes: Sequence[Sequence[tuple[int, int]]],
    kspec: torch.Tensor,
    real: bool,
    buffers: dict[tuple[int, ...], torch.Tensor],
) -> None:
    """:func:`_run_boxes`'s boxes on ``a`` (the wanted ``lengths`` of its output ``out``),
    the kernel's spectrum ``kspec``; the block buffers kept in ``buffers`` by shape."""
    blocks, tlens, starts = lay.blocks, lay.tlens, lay.starts
    lead = a.ndim - len(blocks)
    sa = a.shape[lead:]
    tdims, tl = _transformed(lead, blocks, tlens)
    fwd: Callable[..., torch.Tensor] = torch.fft.rfftn if real else fft.fftn
    extents = _extents(sa, tlens)
    for box in boxes:
        ranges = iter(box)
        shape, gather, scatter, edges = list(a.shape[:lead]), [], [], []
        region = out  # the output samples the box's blocks make
        pos = lead  # the position of the dim (its block index, if blocked) in the buffer
        for i, (n, k, s, e) in enumerate(zip(sa, sb, blocks, extents)):
            if s is None:
                shape.append(e)
                gather.append([(0, 0, 0, 0, 0, n)])  # the rest stays zero from the start
                scatter.append([(0, 0, 0, 0, starts[i], lengths[i])])
                pos += 1
                continue
            j0, g = next(ranges)
            m = min(g * s, lengths[i] - j0 * s)
            region = region.narrow(lead + i, j0 * s, m)
            f, r = divmod(m, s)
            shape += [g, e]
            windows = _windows(n, k, s, starts[i], j0, g)
            gather.append([piece for piece, _ in windows if piece[5] > 0])
            edges += [(pos, piece[3]) for piece, zeros in windows if zeros]
            scatter.append(
                [(0, f, s, 0, k - 1, s)] * (f > 0) + [(f * s, 1, r, f, k - 1, r)] * (r > 0)
            )
            pos += 2
        buf = buffers.get(tuple(shape))
        if buf is None:
            buf = buffers[tuple(shape)] = a.new_zeros(shape)
        for p, j in edges:
            buf.narrow(p, j, 1).zero_()
        for src, dst in _paired(a, buf, lead, gather):
            dst.copy_(src)
        spec = fwd(buf, s=tl, dim=tdims)
        spec = tr.multiply(spec, kspec)
        for n, d in zip(tl[:-1], tdims[:-1]):
            spec = torch.fft.ifft(spec, n=n, dim=d)
        inv = torch.fft.irfft if real else torch.fft.ifft
        y = inv(spec, n=tl[-1], dim=tdims[-1])
        del spec
        for dst, src in _paired(region, y, lead, scatter):
            dst.copy_(src)
        del y


def _run_traced(a: torch.Tensor, b: torch.Tensor, lay: Layout) -> torch.Tensor:
    """Overlap-add of a recorded call (autograd, ``torch.compile``, ``torch.func``): every
    block in one batched transform and out-of-place merges, which every tracer understands
    (and the graph keeps the spectra anyway)."""
    blocks, tlens, starts, lengths = lay
    nd = len(blocks)
    lead = a.ndim - nd
    sa = a.shape[lead:]
    # Split each blocked dim of a into (nb, S), and give b a size-1 block dim to match. From the
    # last dim backwards, so the positions of the dims not yet visited stay put.
    for i in reversed(range(nd)):
        s = blocks[i]
        if s is not None:
            p, nb = lead + i, -(-sa[i] // s)
            a = F.pad(a.movedim(p, -1), (0, nb * s - sa[i]))
            a = a.unflatten(-1, (nb, s)).movedim((-2, -1), (p, p + 1))
            b = b.unsqueeze(p)
    tdims, tl = _transformed(lead, blocks, tlens)
    fwd, inv = tr.transforms(not (a.is_complex() or b.is_complex()))
    y = inv(fwd(a, s=tl, dim=tdims) * fwd(b, s=tl, dim=tdims), s=tl, dim=tdims)
    for i in reversed(range(nd)):  # merge from the last dim, so earlier positions stay put
        s = blocks[i]
        if s is not None:
            y = _overlap_add(y, lead + i + sum(q is not None for q in blocks[:i]), s)
    return tr.crop(y, starts, lengths)


def _overlap_add(y: torch.Tensor, pos: int, s: int) -> torch.Tensor:
    """Merge dims ``(nb, L)`` at ``pos, pos + 1`` into one of length ``(nb + 1) · s``."""
    y = y.movedim((pos, pos + 1), (-2, -1))
    *lead, nb, length = y.shape
    head = y[..., :s].reshape(*lead, nb * s)
    tail = F.pad(y[..., s:], (0, 2 * s - length)).reshape(*lead, nb * s)
    out = F.pad(head, (0, s)) + F.pad(tail, (s, 0))
    return out.movedim(-1, pos)


register(OverlapAddPlan, Layout)  # rebuilt from plain tuples under torch.compile
