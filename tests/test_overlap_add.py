"""Overlap-add's block and box layouts, against scipy.

The block lengths the planner picks only block long signals, so small shapes would run the
plain FFT (one block per dim). Here the block lengths are drawn instead (any ``S >= k - 1``,
not only the planner's powers of two) and the boxes made small, so every path of
:mod:`trueconv._methods.overlap_add` — partial last blocks, single-block boxes, many boxes
per dim, blocked next to unblocked and untransformed dims, broadcast batches, complex data,
recorded (autograd) calls — meets an oracle we did not write: ``scipy.signal.convolve``
(direct) in float64/complex128.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv import _plan, _spec
from trueconv._methods import overlap_add


@st.composite
def problems(draw):
    nd = draw(st.integers(1, 3))
    sa = draw(st.lists(st.integers(1, 23 if nd < 3 else 11), min_size=nd, max_size=nd))
    sb = draw(st.lists(st.integers(1, 6), min_size=nd, max_size=nd))
    extra = draw(st.lists(st.integers(0, 7), min_size=nd, max_size=nd))
    blocks = []
    for n, k, e in zip(sa, sb, extra):
        s = max(1, k - 1) + e
        blocks.append(s if n > 1 and k > 1 and s < n and draw(st.booleans()) else None)
    batch_a = draw(st.sampled_from([(), (1,), (2,), (2, 1)]))
    batch_b = draw(st.sampled_from([(), (1,), (3,), (1, 3)] if batch_a != (2,) else [(), (1,)]))
    dtype = draw(st.sampled_from([torch.float64, torch.complex128]))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    box = draw(st.sampled_from([1, 37, 400, 1 << 20]))
    return sa, sb, blocks, batch_a, batch_b, dtype, mode, box


def _forced(monkeypatch, box):
    """The drawn block lengths for the drawn shapes (both operand orders: 'valid' may swap
    them), and boxes of at most ``box`` buffer elements. The cached plans are dropped first:
    a forced plan made by an earlier test would be served again, blocked its own way."""
    _plan.forget()
    table = {}

    def blocked_dims(sa, sb, covered=None, spectrum_itemsize=0):
        return list(table.get((tuple(sa), tuple(sb)), [None] * len(sa)))

    monkeypatch.setattr(overlap_add, "blocked_dims", blocked_dims)
    monkeypatch.setattr(overlap_add, "BOX_MIN", box)
    monkeypatch.setattr(overlap_add, "BOX_MAX", box)
    monkeypatch.setattr(overlap_add, "MIN_BOX_BLOCKS", 1)  # boxes of one block too
    return table


def _oracle(x: np.ndarray, k: np.ndarray, nd: int, mode: str) -> np.ndarray:
    """scipy's direct convolution of every broadcast (batch) pair."""
    batch = np.broadcast_shapes(x.shape[: x.ndim - nd], k.shape[: k.ndim - nd])
    xb = np.broadcast_to(x, batch + x.shape[x.ndim - nd :])
    kb = np.broadcast_to(k, batch + k.shape[k.ndim - nd :])
    outs = [scipy.signal.convolve(xb[i], kb[i], mode, "direct") for i in np.ndindex(*batch)]
    return np.stack(outs).reshape(batch + outs[0].shape)


@given(problems())
def test_blocks_and_boxes_match_scipy(problem):
    sa, sb, blocks, batch_a, batch_b, dtype, mode, box = problem
    if mode == "valid" and not (
        all(n >= k for n, k in zip(sa, sb)) or all(k >= n for n, k in zip(sa, sb))
    ):
        mode = "full"  # neither operand dominates: 'valid' is an error (tested elsewhere)
    g = torch.Generator().manual_seed(sum(sa) * 31 + sum(sb))
    x = torch.randn((*batch_a, *sa), generator=g, dtype=dtype)
    k = torch.randn((*batch_b, *sb), generator=g, dtype=dtype)
    dims = tuple(range(-len(sa), 0))
    ref = _oracle(to_numpy(x), to_numpy(k), len(sa), mode)
    with pytest.MonkeyPatch.context() as mp:
        table = _forced(mp, box)
        table[tuple(sa), tuple(sb)] = blocks
        table[tuple(sb), tuple(sa)] = [None] * len(sa)  # swapped 'valid': signal is x still
        out = trueconv.convolve(x, k, mode, dims=dims, method="overlap_add")
        assert rel_err(out, ref) < REL_TOL[dtype]
        # a recorded call (autograd) takes the out-of-place merge: same values
        xr = x.clone().requires_grad_(True)
        out_r = trueconv.convolve(xr, k, mode, dims=dims, method="overlap_add")
        assert rel_err(out_r, ref) < REL_TOL[dtype]


@pytest.mark.parametrize("box", [1, 300, 1 << 20])
def test_gradients_through_blocks_match_finite_differences(monkeypatch, box):
    """Blocked along one of two dims, float64: autograd's gradients of both operands against
    finite differences (``torch.autograd.gradcheck``)."""
    table = _forced(monkeypatch, box)
    table[(9, 7), (3, 2)] = [4, None]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: trueconv.convolve(a, b, "same", method="overlap_add"), (x, k)
    )


@pytest.mark.parametrize("itemsize", [4, 8, 16])
def test_boxes_cover_every_block_once_within_budget(itemsize):
    """The budget counts float32 elements: float64 and complex boxes hold as many bytes."""
    sa = (1000, 90, 7)  # kernel (31, 5, 7): blocks of 96 and 12 transformed at 127 and 16
    blocks = [96, 12, None]
    extents = [127, 16, 7]
    budget = 1 << 12
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(overlap_add, "BOX_MIN", budget)
        mp.setattr(overlap_add, "BOX_MAX", budget)
        boxes = overlap_add._boxes(sa, blocks, extents, 2, itemsize)
    budget //= itemsize // 4
    counts = [math.ceil(n / s) for n, s in zip(sa, blocks) if s is not None]
    seen = []
    for box in boxes:
        ranges = [range(j, j + g) for j, g in box]
        seen += list(itertools.product(*ranges))
        size = 2 * extents[2] * math.prod(e * g for e, (_, g) in zip(extents, box))
        assert size <= budget or all(g == 1 for _, g in box[1:]), box
    assert sorted(seen) == list(itertools.product(*(range(c) for c in counts)))


@pytest.mark.parametrize("itemsize", [4, 8])
def test_one_dim_boxes_hold_at_least_eight_long_blocks(itemsize):
    """Boxes of one blocked dim: at least MIN_BOX_BLOCKS blocks whatever the budget, up to
    LONG_BOX_MAX elements (float32 elements: float64 boxes hold as many bytes)."""
    scale = itemsize // 4
    # 2^20 ⊛ 65536: 16 blocks transformed at 2^17 (the budget alone gave 2 per box)
    boxes = overlap_add._boxes((2**20,), [65537], [2**17], 1, itemsize)
    assert [g for ((_, g),) in boxes] == [8, 8]
    # stereo audio by a long response: 2 × 2^19 elements a block, the cap allows 4
    per = 2 * 2**19
    boxes = overlap_add._boxes((28_800_000,), [380_000], [2**19], 2, itemsize)
    widths = [g for ((_, g),) in boxes]
    assert max(widths) == overlap_add.LONG_BOX_MAX // scale // per
    assert sum(widths) == math.ceil(28_800_000 / 380_000)
    # short blocks: the budget already holds more
    boxes = overlap_add._boxes((2**20,), [12289], [16384], 1, itemsize)
    assert min(g for ((_, g),) in boxes[:-1]) >= overlap_add.MIN_BOX_BLOCKS


def test_long_signals_run_in_boxes_and_match_scipy(monkeypatch):
    """The planner's own blocks on a long 1-D batch and a 2-D image, many boxes each."""
    boxes = []
    real_boxes = overlap_add._boxes
    monkeypatch.setattr(
        overlap_add, "_boxes", lambda *args: boxes.append(real_boxes(*args)) or boxes[-1]
    )
    g = torch.Generator().manual_seed(1)
    for xs, ks, dims in [((3, 200_000), (300,), (-1,)), ((1100, 1000), (3, 4), (0, 1))]:
        assert all(overlap_add.block_length(xs[d], ks[d]) for d in dims)
        x = torch.randn(xs, generator=g, dtype=torch.float64)
        k = torch.randn(ks, generator=g, dtype=torch.float64)
        for mode in ("full", "same"):
            boxes.clear()
            out = trueconv.convolve(x, k, mode, dims=dims, method="overlap_add")
            assert len(boxes) == 1
            assert len(boxes[0]) > 2
            xn, kn = to_numpy(x), to_numpy(k).reshape((1,) * (x.ndim - k.ndim) + ks)
            ref = scipy.signal.fftconvolve(xn, kn, mode, axes=dims)
            assert rel_err(out, ref) < REL_TOL[torch.float64]


@pytest.mark.parametrize(
    ("xs", "ks"),
    [
        ((3, 40, 36), (1, 9, 7)),  # a channel dim: convolved, the kernel of length one there
        ((2, 3, 40, 36), (1, 1, 9, 7)),  # and a batch dim
        ((2, 3, 40, 36), (2, 1, 9, 7)),  # a batch of kernels: only the channel dim is cut
    ],
)
def test_boxes_of_many_images_hold_a_few_of_them_and_match_scipy(monkeypatch, xs, ks):
    """Where one block of every image would pass the box budget, the boxes run over groups
    of images (``OverlapAddPlan.images``, :func:`overlap_add._image_groups`): every group
    written once, the result scipy's."""
    groups = []
    real = overlap_add._image_groups

    def spy(*args):
        for group in real(*args):
            groups.append(group[0].shape)
            yield group

    with pytest.MonkeyPatch.context() as mp:
        table = _forced(mp, 200)
        nd = 3
        table[xs[-nd:], ks[-nd:]] = [None, 20, 18]
        mp.setattr(overlap_add, "_image_groups", spy)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(xs, generator=g, dtype=torch.float64)
        k = torch.randn(ks, generator=g, dtype=torch.float64)
        dims = tuple(range(-nd, 0))
        _, _, spec = _spec.normalize("convolve", x, k, "same", dims, "overlap_add", "fill", 0)
        plan = _plan.forced(spec, x.device)
        assert plan.images >= 1  # type: ignore[attr-defined]
        for mode in ("same", "full"):
            groups.clear()
            out = trueconv.convolve(x, k, mode, dims=dims, method="overlap_add")
            assert len(groups) > 1, mode
            ref = _oracle(to_numpy(x), to_numpy(k), nd, mode)
            assert rel_err(out, ref) < REL_TOL[torch.float64], mode


def test_images_past_the_whole_spectrum_limit_run_the_planners_blocks(monkeypatch):
    """An image whose whole transform's spectrum passes ``WHOLE_SPECTRUM_BYTES`` (lowered
    here, so a small image does) is blocked where the powers of two decline, by 'auto' and
    by the forced method, and matches scipy, alone and in a batch."""
    monkeypatch.setattr(overlap_add, "WHOLE_SPECTRUM_BYTES", 0)
    overlap_add.block_length.cache_clear()
    _plan.forget()
    try:
        g = torch.Generator().manual_seed(3)
        x = torch.randn(140, 120, generator=g, dtype=torch.float64)
        k = torch.randn(15, 13, generator=g, dtype=torch.float64)
        # the powers of two decline both dims
        assert overlap_add.block_length(140, 15) is overlap_add.block_length(120, 13) is None
        for mode in ("full", "same", "valid"):
            _, _, spec = _spec.normalize("convolve", x, k, mode, None, "auto", "fill", 0)
            plan = overlap_add.plan(_spec_problem(spec), x.device)
            assert plan is not None, mode
            assert all(s is not None for s in plan.layout.blocks), mode
            ref = scipy.signal.fftconvolve(to_numpy(x), to_numpy(k), mode)
            out = trueconv.convolve(x, k, mode, method="overlap_add")
            assert rel_err(out, ref) < REL_TOL[torch.float64], mode
        xb = torch.stack([x, -x])
        _, _, spec = _spec.normalize("convolve", xb, k, "same", None, "auto", "fill", 0)
        plan = overlap_add.plan(_spec_problem(spec), x.device)
        assert plan is not None
        assert all(s is not None for s in plan.layout.blocks[-2:])
        out = trueconv.convolve(xb, k, "same", method="overlap_add")
        ref = scipy.signal.fftconvolve(to_numpy(xb), to_numpy(k)[None], "same", axes=(1, 2))
        assert rel_err(out, ref) < REL_TOL[torch.float64]
    finally:
        monkeypatch.undo()
        overlap_add.block_length.cache_clear()
        _plan.forget()


def _spec_problem(spec):
    from trueconv._problem import Problem

    return Problem.of(spec)


@given(
    st.integers(1, 40),
    st.integers(1, 9),
    st.integers(1, 12),
    st.integers(-12, 12),
    st.integers(0, 6),
    st.integers(1, 6),
)
def test_overlap_save_windows_read_the_signal_and_zeros_outside(n, k, s, start, j0, g):
    """The pieces of :func:`overlap_add._windows` fill every block of a box with its window
    of the signal, ``start + j·s - (k - 1)`` on, zeros outside ``[0, n)`` (any start: padding
    past ``k - 1`` reads windows wholly outside), each block flagged for zeroing exactly when
    its window leaves the signal."""
    length = s + k - 1
    a = np.arange(1, n + 1, dtype=np.float64)
    buf = np.full((g, length), np.nan)
    flagged = set()
    for (f0, count, stride, b0, i0, width), zeros in overlap_add._windows(n, k, s, start, j0, g):
        assert stride == s
        if zeros:
            assert count == 1
            flagged.add(b0)
            buf[b0] = 0.0
        for t in range(count):
            buf[b0 + t, i0 : i0 + width] = a[f0 + t * s : f0 + t * s + width]
    for t in range(g):
        w0 = start + (j0 + t) * s - (k - 1)
        want = [a[w0 + u] if 0 <= w0 + u < n else 0.0 for u in range(length)]
        np.testing.assert_array_equal(buf[t], want)
        assert (t in flagged) == (w0 < 0 or w0 + length > n)


def test_overlap_save_runs_on_the_operands_device():
    """The output comes from numpy's allocator on the CPU only: elsewhere it is made where the
    operands are. ``meta`` tensors stand in for a GPU (no CUDA here): the planned boxes run
    on them and give a meta result of the planned shape."""
    x, k = torch.zeros(2, 100_000), torch.zeros(1, 300)
    spec = _spec.normalize("convolve", x, k, "same", None, "overlap_add", "fill", 0)[2]
    p = _plan.forced(spec, x.device, "overlap_add")
    assert len(p.boxes) > 1  # type: ignore[attr-defined]
    y = overlap_add._run_boxes(x.to("meta"), k.to("meta"), p.layout, p.boxes)  # type: ignore[attr-defined]
    assert y.device.type == "meta"
    assert y.shape == (2, 100_000)
