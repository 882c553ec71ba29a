"""Overlap-add: the long operand cut into blocks, all blocks transformed in one batched FFT.

Along a convolved dim of signal length ``n`` and kernel length ``k``, the signal is cut into
``nb = ceil(n / S)`` blocks of length ``S``; each block's full convolution with the kernel has
length ``S + k - 1``, computed with a circular transform of length ``L = S + k - 1`` (no
aliasing), and the block results are added back at offsets ``0, S, 2S, ...``. Work per dim is
``nb · L log L`` instead of ``L_full log L_full`` for one transform of the whole length, and the
spectra held at once are about ``n · L / S`` instead of ``n + k``.

Block length: ``L`` runs over the powers of two with ``S = L - k + 1 >= k - 1`` and ``S < n``,
and the one with the least ``nb · block_work(L)`` wins. The continuous optimum of ``L log L /
(L - k + 1)`` alone solves ``L - (k - 1)(ln L + 1) = 0`` (scipy's ``oaconvolve`` solves it with
Lambert's W), i.e. ``L`` a few times ``k``. Measured here (2**20 samples, float32, 2 threads,
MKL), batched transforms also pay a fixed cost per block and slow down once a batch of long
blocks leaves the cache, and MKL batches odd smooth lengths (2268, 46080) poorly; the best
blocks were L = 256, 2048 and 16384 for k = 16, 256 and 4096. ``block_work`` models both
effects (``BLOCK_OVERHEAD`` and ``trueconv._cost.CACHE_KNEE``) and reproduces those optima.
Whether blocking beats one transform of the whole dim is the planner's call, with the fitted
cost constants.

``S >= k - 1`` makes every block's tail (``k - 1`` samples) shorter than a block, so the
overlap-add is two shifted adds of ``nb · S`` samples each.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from trueconv import _cost
from trueconv._methods import fft
from trueconv._methods.fft import next_fast_len
from trueconv._spec import ConvSpec, broadcast_shape

compute_dtype = fft.compute_dtype


#: Fixed cost of one block's transform, in transform-work points (``L log2 L``). Provenance: the
#: block-length sweep described in the module docstring.
BLOCK_OVERHEAD = 300.0


def block_work(length: int) -> float:
    """Modelled work of one block transform of ``length`` points (see the module docstring):
    the shared transform model of :func:`trueconv._cost.transform_work` plus a fixed cost."""
    return _cost.transform_work(length, 1) + BLOCK_OVERHEAD


@functools.lru_cache(maxsize=4096)
def block_length(n: int, k: int) -> int | None:
    """Block length ``S`` for a dim with signal ``n`` and kernel ``k``; ``None``: no blocking
    (a length-1 operand, or no power-of-two block shorter than the signal)."""
    if n <= 1 or k <= 1:
        return None
    best_s, best_cost = None, math.inf
    length = 1 << max(1, (2 * k - 3).bit_length())  # smallest power of two >= 2k - 2
    while length - k + 1 < n:
        s = length - k + 1
        cost = -(-n // s) * block_work(length)
        if cost < best_cost:
            best_s, best_cost = s, cost
        length *= 2
    return best_s


def blocked_dims(sa: Sequence[int], sb: Sequence[int]) -> list[int | None]:
    """Per convolved dim, the block length, or ``None`` where the dim is not blocked."""
    return [block_length(n, k) for n, k in zip(sa, sb)]


def counts(spec: ConvSpec, device: torch.device) -> _cost.Counts:
    """Transform work of all blocks of the signal and of the outputs, plus one kernel
    transform; blocked dims contribute ``nb`` blocks of ``L = S + k - 1`` points."""
    sa, sb, pads = _cost.canonical(spec)
    s = _cost.sizes(spec)
    starts, lengths = fft.wanted(sa, sb, pads)
    real = not spec.dtype.is_complex
    points, blocks_total, longest, nblocked = 1, 1, 1, 0
    for i, (n, k, blk) in enumerate(zip(sa, sb, blocked_dims(sa, sb))):
        length = 1
        if blk is not None:
            length = blk + k - 1
            blocks_total *= -(-n // blk)
            nblocked += 1
        elif n > 1 and k > 1:
            length = next_fast_len(fft.unaliased_length(n, k, starts[i], lengths[i]), real)
        points *= length
        longest = max(longest, length)
    if points <= 1:
        return _cost.Counts("overlap_add", 1, float(s.out_elems))
    count = blocks_total * (s.batch_a + s.batch) + s.batch_b
    work = _cost.transform_work(points, count, longest) + count * BLOCK_OVERHEAD
    # per blocked dim: a padded, reshaped copy of the signal and a two-slab merge of the output
    passes = float(count * points * (1 + 2 * nblocked))
    return _cost.Counts("overlap_add", 6 * segments(sa, sb, s.batch), work, passes)


def segmenting(sa: Sequence[int], sb: Sequence[int], batch: int) -> tuple[int, int] | None:
    """How :func:`run` cuts the signal (see :data:`SEGMENT_SAMPLES`): the convolved dim it cuts
    (the first blocked one) and the segment length along it (whole blocks); ``None``: one
    piece."""
    blocks = blocked_dims(sa, sb)
    first = next((i for i, s in enumerate(blocks) if s is not None), None)
    if first is None or batch * math.prod(sa) <= 2 * SEGMENT_SAMPLES:
        return None
    s = blocks[first]
    assert s is not None
    per_block = batch * math.prod(sa) // sa[first] * s  # samples in one block slab
    return first, s * max(1, SEGMENT_SAMPLES // per_block)


def segments(sa: Sequence[int], sb: Sequence[int], batch: int) -> int:
    """How many pieces :func:`run` convolves one after another."""
    cut = segmenting(sa, sb, batch)
    return 1 if cut is None else -(-sa[cut[0]] // cut[1])


def cost(spec: ConvSpec, device: torch.device) -> float:
    return _cost.predict(counts(spec, device), spec.dtype, device.type)


def _overlap_add(y: torch.Tensor, pos: int, s: int) -> torch.Tensor:
    """Merge dims ``(nb, L)`` at ``pos, pos + 1`` into one of length ``(nb + 1) · s``."""
    y = y.movedim((pos, pos + 1), (-2, -1))
    *lead, nb, length = y.shape
    head = y[..., :s].reshape(*lead, nb * s)
    tail = F.pad(y[..., s:], (0, 2 * s - length)).reshape(*lead, nb * s)
    out = F.pad(head, (0, s)) + F.pad(tail, (s, 0))
    return out.movedim(-1, pos)


#: Signal samples (times batch) transformed at once. Larger signals are cut into segments of
#: whole blocks along the first blocked dim, each segment's full convolution added into one
#: output buffer, so the block spectra held at once stay bounded by the segment, not the
#: signal: one hour of stereo 48 kHz audio otherwise held 8.6x its output in temporaries.
SEGMENT_SAMPLES = 1 << 18


def run(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    nd = len(pads)
    lead = a.ndim - nd
    sa, sb = a.shape[lead:], b.shape[lead:]
    batch = math.prod(broadcast_shape(a.shape[:lead], b.shape[:lead]))
    cut = segmenting(sa, sb, batch)
    if cut is None or segments(sa, sb, batch) == 1:
        return _run_once(a, b, pads)
    first, seg = cut  # segments of whole blocks along the first blocked dim
    d = lead + first
    full = [(k - 1, k - 1) for k in sb]
    out: torch.Tensor | None = None
    for start in range(0, sa[first], seg):
        piece = a.narrow(d, start, min(seg, sa[first] - start))
        y = _run_once(piece, b, full)  # the segment's full convolution
        if out is None:
            shape = (*y.shape[:lead], *(n + k - 1 for n, k in zip(sa, sb)))
            out = y.new_zeros(shape)
        out.narrow(d, start, y.shape[d]).add_(y)  # autograd records the in-place add
    assert out is not None
    starts, lengths = fft.wanted(sa, sb, pads)
    return fft.crop(out, starts, lengths)


def _run_once(a: torch.Tensor, b: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """All blocks of ``a`` in one batched transform."""
    nd = len(pads)
    assert a.ndim == b.ndim, "operands are aligned by the front door"
    lead = a.ndim - nd
    sa, sb = a.shape[lead:], b.shape[lead:]
    starts, lengths = fft.wanted(sa, sb, pads)
    blocks = blocked_dims(sa, sb)

    # Split each blocked dim of a into (nb, S), and give b a size-1 block dim to match. From the
    # last dim backwards, so the positions of the dims not yet visited stay put.
    for i in reversed(range(nd)):
        s = blocks[i]
        if s is not None:
            p, nb = lead + i, -(-sa[i] // s)
            a = F.pad(a.movedim(p, -1), (0, nb * s - sa[i]))
            a = a.unflatten(-1, (nb, s)).movedim((-2, -1), (p, p + 1))
            b = b.unsqueeze(p)

    # Where each convolved dim now sits, and the transform over it: blocked dims at the block
    # length (an even fast length by construction), the others as the 'fft' method does.
    real = not (a.is_complex() or b.is_complex())
    positions, tdims, tlens = [], [], []
    p = lead
    for i, (n, k, s) in enumerate(zip(sa, sb, blocks)):
        positions.append(p)
        if s is not None:
            tdims.append(p + 1)
            tlens.append(s + k - 1)
        elif n > 1 and k > 1:
            tdims.append(p)
            # rfftn halves its last dim, which must then be even
            even = real and not any(m > 1 and q > 1 for m, q in zip(sa[i + 1 :], sb[i + 1 :]))
            tlens.append(next_fast_len(fft.unaliased_length(n, k, starts[i], lengths[i]), even))
        p += 2 if s is not None else 1
    if not tdims:
        return fft.crop(a * b, starts, lengths)
    fwd, inv = fft.transforms(real)
    y = inv(fwd(a, s=tlens, dim=tdims) * fwd(b, s=tlens, dim=tdims), s=tlens, dim=tdims)

    for i in reversed(range(nd)):
        s = blocks[i]
        if s is not None:
            y = _overlap_add(y, positions[i], s)
    return fft.crop(y, starts, lengths)
