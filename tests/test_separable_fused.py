"""The fused separable loop (trueconv._methods.rows_separable): both passes of a separable 2-D
convolution in one compiled loop. Oracles: scipy's direct sum in float64 of the dense
outer-product kernel (after numpy.pad for the boundary), the dense direct method for NaN/Inf
placement, finite differences (gradcheck); the fallbacks to the passes."""

from __future__ import annotations

import concurrent.futures
import itertools

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import rel_err
from trueconv import _plan, _separable
from trueconv._methods import rows, rows_separable, scratch
from trueconv._problem import Problem
from trueconv._spec import normalize

pytestmark = pytest.mark.skipif(not rows.AVAILABLE, reason="numba is not installed")

BOUNDARIES = ["fill", "wrap", "symmetric", "reflect", "replicate"]
NP_PAD = {"wrap": "wrap", "symmetric": "symmetric", "reflect": "reflect", "replicate": "edge"}
TOL = {torch.float32: 2e-6, torch.float64: 1e-13}


def gaussian(k, sigma):
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / sigma) ** 2)
    return g / g.sum()


def _oracle(x, kernel, mode, boundary, fill=0):
    """numpy.pad for the boundary, then scipy's direct sum in float64 (leading batch dims of
    x, the kernel over the last dims)."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if x.ndim > kernel.ndim:
        # one batch element at a time: scipy's 'valid' would weigh the batch dims too, and
        # refuse a kernel larger than a 1-sample signal beside a batch of 2 (trueconv swaps)
        lead = x.shape[: x.ndim - kernel.ndim]
        flat = x.reshape(-1, *x.shape[len(lead) :])
        ys = [_oracle(xi, kernel, mode, boundary, fill) for xi in flat]
        return np.stack(ys).reshape(*lead, *ys[0].shape)
    if (boundary == "fill" and fill == 0) or mode == "valid":
        return scipy.signal.convolve(x, kernel, mode, method="direct")
    pads = [(k - 1, k - 1) for k in kernel.shape]
    if boundary == "fill":
        padded = np.pad(x, pads, constant_values=fill)
    else:
        padded = np.pad(x, pads, mode=NP_PAD[boundary])
    full = scipy.signal.convolve(padded, kernel, "valid")
    if mode == "full":
        return full
    starts = [(k - 1) // 2 for k in kernel.shape]
    return full[tuple(slice(s, s + n) for s, n in zip(starts, x.shape))]


@pytest.fixture
def fused_ran(monkeypatch):
    """The results of the fused loop's calls (None: it saw a non-finite value)."""
    results = []
    original = rows_separable.separable_conv

    def counted(*args, **kwargs):
        y = original(*args, **kwargs)
        results.append(y)
        return y

    monkeypatch.setattr(rows_separable, "separable_conv", counted)
    return results


def _by_the_passes(*args):
    """``trueconv.convolve_separable(*args)`` by the passes alone (the fused loop off)."""
    _separable._FUSE = False
    _plan.forget()
    try:
        return trueconv.convolve_separable(*args)
    finally:
        _separable._FUSE = True
        _plan.forget()


@given(
    n0=st.integers(1, 12),
    n1=st.integers(1, 12),
    k0=st.integers(2, 7),
    k1=st.integers(2, 7),
    batch=st.sampled_from([(), (2,), (2, 3)]),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(BOUNDARIES),
    double=st.booleans(),
)
def test_equals_the_dense_oracle(n0, n1, k0, k1, batch, mode, boundary, double):
    if mode == "valid" and not ((n0 >= k0 and n1 >= k1) or (n0 <= k0 and n1 <= k1)):
        return  # neither operand dominates: refused, as by convolve()
    dtype = torch.float64 if double else torch.float32
    rng = np.random.default_rng(n0 * 1000 + n1 * 100 + k0 * 10 + k1)
    x = rng.standard_normal((*batch, n0, n1))
    f0, f1 = rng.standard_normal(k0), rng.standard_normal(k1)
    xt = torch.from_numpy(x).to(dtype)
    fs = [torch.from_numpy(f).to(dtype) for f in (f0, f1)]
    seen = []
    original = rows_separable.separable_conv
    try:
        rows_separable.separable_conv = lambda *a, **kw: seen.append(1) or original(*a, **kw)
        y = trueconv.convolve_separable(xt, fs, mode, boundary=boundary)
    finally:
        rows_separable.separable_conv = original
    stand_in = torch.empty(k0, k1, dtype=dtype)
    swap = normalize("convolve", xt, stand_in, mode, None, "auto", boundary, 0)[2].swap
    assert bool(seen) == (not swap)  # a larger kernel swaps the roles: that call runs dense
    ref = _oracle(xt.double().numpy(), np.outer(*(f.double().numpy() for f in fs)), mode, boundary)
    assert y.dtype == dtype
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("shape", "k"), [((3, 1024, 1024), 5), ((2, 700, 650), 5),
                                          ((2, 700, 650), 7), ((2, 300, 320), 31)])  # fmt: skip
def test_auto_takes_the_fused_plan_for_gaussians(fused_ran, dtype, shape, k):
    x = torch.from_numpy(np.random.default_rng(k).standard_normal(shape)).to(dtype)
    kernel = torch.from_numpy(np.outer(gaussian(k, k / 6), gaussian(k, k / 6))).to(dtype)
    assert trueconv.choose_method(x, kernel, "same") == "separable"
    y = trueconv.convolve(x, kernel, "same")
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    ref = _oracle(x.double().numpy(), kernel.double().numpy(), "same", "fill")
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float32, ("direct", "separable", "direct", "direct")),
        (torch.float64, ("separable",) * 2 + ("direct",) * 2),
    ],
)
def test_three_tap_factors_fuse_in_the_caches_only(dtype, expected):
    # 3-tap factors, 2 threads, against the dense loop with 3×3 rows in pairs (2026-12-05,
    # night, after the dense loop's refit; dense / fused time, interleaved): float32 768²
    # 1.03x and 1024² 1.11x (the constants pick the fused loop from 1024²: near-ties), 2048²
    # 0.83x; float64 768²-1024² 0.91-0.94x (priced a little lower: a near-tie), 2048² 0.89x.
    # So never past the cache. 5 taps fuse everywhere (fused 1.22-1.45x faster on
    # 2048²-4096²)
    five_gauss = np.outer(gaussian(5, 1.1), gaussian(5, 1.1))
    three = torch.from_numpy(np.outer(gaussian(3, 0.8), gaussian(3, 0.8))).to(dtype)
    five = torch.from_numpy(five_gauss).to(dtype)
    for n, method in zip((768, 1024, 2048, 4096), expected):
        x = torch.zeros(n, n, dtype=dtype)
        assert trueconv.choose_method(x, three, "same") == method, n
        assert trueconv.choose_method(x, five, "same") == "separable", n


def test_seven_taps_fuse_where_the_passes_were_not_cheaper(no_fused_loop):
    # the fused loop is priced below the dense loop from 7-tap factors on 2048²
    x, k = torch.empty(2048, 2048), torch.empty(7, 7)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    dense = _plan.plan(spec, torch.device("cpu"))
    assert _separable.plan(dense.problem, torch.device("cpu")).fused is False
    _separable._FUSE = True
    _plan.forget()
    found = _separable.choice(dense, torch.ones(7, 7), torch.device("cpu"))
    assert found is not None
    sep = found[0]
    assert sep.fused
    assert sep.seconds < _plan.seconds(dense, torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_same_sums_as_the_passes(no_fused_loop, dtype, mode):
    # the terms in the passes' order: equal to rounding (bitwise where every pass runs the
    # compiled direct loop)
    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.standard_normal((3, 90, 110))).to(dtype)
    fs = [torch.from_numpy(rng.standard_normal(k)).to(dtype) for k in (5, 4)]
    old = trueconv.convolve_separable(x, fs, mode, method="direct")
    _separable._FUSE = True
    _plan.forget()
    new = trueconv.convolve_separable(x, fs, mode, method="direct")
    torch.testing.assert_close(new, old, rtol=0, atol=0)


def test_three_dims_fuse_the_last_two(fused_ran):
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.standard_normal((2, 20, 30, 40)))
    f = [gaussian(5, 1.5), np.array([1.0, -2.0, 0.5, 1.0]), gaussian(7, 2.0)]
    y = trueconv.convolve_separable(x, f, "same", boundary="reflect")
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    ref = np.stack([_oracle(x[i].numpy(), np.einsum("i,j,k->ijk", *f), "same", "reflect")
                    for i in range(2)])  # fmt: skip
    assert rel_err(y, ref) < 1e-13


@pytest.mark.parametrize("boundary", ["fill", "reflect"])
def test_three_dims_intermediate_in_scratch(fused_ran, monkeypatch, boundary):
    # the fused result is the last pass's input alone, so it goes to the thread's scratch
    # memory (trueconv._methods.scratch); the results never lie there (a second call leaves
    # the first's as it was), threads hold their own, and without scratch memory (or under
    # autograd, which keeps the intermediate) the sums are bitwise the same
    monkeypatch.setattr(scratch, "SCRATCH_MIN", 0)  # small volumes: their arrays too
    rng = np.random.default_rng(19)
    f = [gaussian(3, 1.0), np.array([1.0, -2.0, 0.5, 1.0]), gaussian(5, 1.5)]
    kernel = np.einsum("i,j,k->ijk", *f)
    xs = [torch.from_numpy(rng.standard_normal((14, 17 + i // 2, 19))) for i in range(6)]
    refs = [_oracle(x.numpy(), kernel, "same", boundary) for x in xs]

    def conv(x):
        return trueconv.convolve_separable(x, f, "same", boundary=boundary)

    y0 = conv(xs[0])
    kept = y0.clone()
    assert scratch._STATE.bufs.get("pass") is not None
    assert not scratch._STATE.busy
    y1 = conv(xs[1])
    assert torch.equal(y0, kept)
    assert not scratch.holds(y0)
    assert not scratch.holds(y1)
    assert rel_err(y0, refs[0]) < 1e-13
    assert rel_err(y1, refs[1]) < 1e-13
    assert len(fused_ran) == 2
    assert all(scratch.holds(y) for y in fused_ran)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        ys = list(pool.map(conv, xs))
    for y, ref in zip(ys, refs):
        assert rel_err(y, ref) < 1e-13
    grad = xs[2].clone().requires_grad_()
    assert torch.equal(conv(grad).detach(), ys[2])
    monkeypatch.setattr(scratch, "SCRATCH_BYTES", 0)
    fused_ran.clear()
    assert torch.equal(conv(xs[3]), ys[3])
    assert not scratch.holds(fused_ran[0])


@pytest.mark.parametrize("rule", [None, "wrap", "symmetric", "reflect", "replicate", "fill"])
@pytest.mark.parametrize("rank", [1, 3])
def test_tasks_and_column_tiles(monkeypatch, rule, rank):
    # more tasks than threads, runs that cross batch items, columns split into tiles: every
    # ring restart and tile edge; zero padding or an extension read through the index maps;
    # one pair of factors (1-D) or three (a low-rank kernel: one ring per term)
    monkeypatch.setattr(rows_separable, "TILE", 7)
    monkeypatch.setattr(rows, "RING_BYTES", 0)  # tiles no wider than TILE
    assert rows_separable.tile_width(23 + 1 + 4 - 5 + 1, 4, 8) < 23
    rng = np.random.default_rng(10)
    x = torch.from_numpy(rng.standard_normal((3, 11, 23)))
    f0 = torch.from_numpy(rng.standard_normal((rank, 4)))
    f1 = torch.from_numpy(rng.standard_normal((rank, 5)))
    if rank == 1:
        f0, f1 = f0[0], f1[0]
    pads = ((3, 2), (1, 4))
    if rule in (None, "fill"):
        padded = np.pad(x.numpy(), [(0, 0), *pads], constant_values=0 if rule is None else 1.5)
    else:
        padded = np.pad(x.numpy(), [(0, 0), *pads], mode=NP_PAD[rule])
    dense = np.einsum("qi,qj->ij", f0.reshape(rank, 4).numpy(), f1.reshape(rank, 5).numpy())
    ref = _oracle(padded, dense, "valid", "fill")
    y = rows_separable.separable_conv(x, f0, f1, pads, rule, 1.5)
    assert rel_err(y, ref) < 1e-14
    out = np.empty(ref.shape)
    kernel = rows_separable._kernel()
    rows_out = 3 * ref.shape[1]  # output rows, batch included
    maps = rows._index_map(11, 3, 2, rule), rows._index_map(23, 1, 4, rule)
    # runs of rows, column tiles of 7, and passes of 2 (3 + 2 taps, 2 + 2) or all taps; the
    # vertical taps in one pass of up to vgroups[0], else passes of up to vgroups[1]
    groups = ((2, (2, 2)), (rows.GROUP, rows_separable.VERTICAL_GROUP), (rows.GROUP, (3, 1)))
    # and output rows one by one or with their vertical sums in pairs (vgroups[0] >= k0)
    for chunks, (group, vgroups), pairs in itertools.product(
        (1, 2, 5, 13, rows_out), groups, (False, True)
    ):
        out.fill(np.nan)
        rows_o = out.reshape(-1, ref.shape[2])
        bad = kernel(chunks, x.numpy().reshape(33, 23), f0.reshape(rank, 4).numpy(),
                     f1.reshape(rank, 5).numpy(),
                     (3, 11, ref.shape[1], 3), *maps, 1, rows.fill_array(rule, 1.5, out.dtype),
                     rows_o, 7, group, vgroups, 0, pairs)  # fmt: skip
        assert not bad
        assert rel_err(out, ref) < 1e-14
    # and through the parallel region, with more threads than chunks and than rows
    for threads in (2, 3, 8):
        torch.set_num_threads(threads)
        try:
            y = rows_separable.separable_conv(x, f0, f1, pads, rule, 1.5)
        finally:
            torch.set_num_threads(1)
        assert rel_err(y, ref) < 1e-14


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rule", [None, "fill", "wrap", "symmetric", "reflect", "replicate"])
@pytest.mark.parametrize("rank", [1, 2])
def test_strips_are_the_rows_sums(monkeypatch, dtype, rule, rank):
    # runs of rows as one strip (short rows, one tile, 'same' along the rows): bitwise the
    # sums of the rows one by one, whatever the strip's length (one row, a few, all), and
    # those are the oracle's; pads of 'same', of 'full' (no strips: rows longer than the
    # input's) and uneven ones; and the rows one by one with their vertical sums two rows at
    # a time (VERTICAL_PAIRS, kernels of 2-8 rows): bitwise the same too
    rng = np.random.default_rng(14)
    bands = []  # the strip length each call handed the loop (its last argument but one)
    parallel = rows.parallel
    monkeypatch.setattr(rows, "parallel", lambda k, *a: bands.append(a[-2]) or parallel(k, *a))
    shapes = ((40, 50, 5, 7), (21, 64, 11, 3), (64, 17, 1, 5), (12, 30, 13, 9), (23, 19, 8, 3))
    for n0, n1, k0, k1 in (*shapes, (9, 33, 2, 4)):
        x = torch.from_numpy(rng.standard_normal((2, n0, n1))).to(dtype)
        f0 = torch.from_numpy(rng.standard_normal((rank, k0))).to(dtype)
        f1 = torch.from_numpy(rng.standard_normal((rank, k1))).to(dtype)
        if rank == 1:
            f0, f1 = f0[0], f1[0]
        dense = np.einsum("qi,qj->ij", f0.reshape(rank, k0).numpy(), f1.reshape(rank, k1).numpy())
        for pads in (
            ((k0 // 2, (k0 - 1) // 2), (k1 // 2, (k1 - 1) // 2)),
            ((k0 - 1, k0 - 1), (k1 - 1, k1 - 1)),
            ((0, k0 - 1), (k1 - 1, 0)),
        ):
            monkeypatch.setattr(rows_separable, "BAND", 0)
            monkeypatch.setattr(rows_separable, "VERTICAL_PAIRS", False)
            rows_one = rows_separable.separable_conv(x, f0, f1, pads, rule, 1.5)
            assert bands[-1] == 0
            # the rows' vertical sums two at a time: the same sums
            monkeypatch.setattr(rows_separable, "VERTICAL_PAIRS", True)
            paired = rows_separable.separable_conv(x, f0, f1, pads, rule, 1.5)
            torch.testing.assert_close(paired, rows_one, rtol=0, atol=0)
            for band in (n1, 3 * n1 + 1, 1 << 20):
                monkeypatch.setattr(rows_separable, "BAND", band)
                y = rows_separable.separable_conv(x, f0, f1, pads, rule, 1.5)
                assert bands[-1] == band  # the setting reached the loop (the layout's cache)
                torch.testing.assert_close(y, rows_one, rtol=0, atol=0)
            if rule in (None, "fill"):
                padded = np.pad(x.numpy(), [(0, 0), *pads],
                                constant_values=0 if rule is None else 1.5)  # fmt: skip
            else:
                padded = np.pad(x.numpy(), [(0, 0), *pads], mode=NP_PAD[rule])
            ref = _oracle(padded, dense, "valid", "fill")
            bound = max(TOL[dtype], 2 * rank * k0 * k1 * torch.finfo(dtype).eps)
            assert rel_err(rows_one, ref) < bound


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("boundary", ["wrap", "symmetric", "reflect", "replicate", "fill"])
def test_boundaries_read_in_place(monkeypatch, fused_ran, boundary, dtype):
    # 'auto' on a Gaussian with a boundary (a non-zero fill value for 'fill'): the fused loop
    # reads the extension through its maps, no extended input is built (pads longer than the
    # input included)
    from trueconv import _problem

    def boom(*args, **kwargs):
        raise AssertionError("the input was extended before the loop")

    monkeypatch.setattr(_problem, "extend", boom)
    rng = np.random.default_rng(12)
    for shape, k in (((2, 200, 240), 9), ((5, 6), 15)):
        x = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
        g = gaussian(k, k / 5)
        if shape[-1] > k:
            kern = torch.from_numpy(np.outer(g, g)).to(dtype)
            y = trueconv.convolve(x, kern, "same", boundary=boundary, fill_value=1.5)
        else:  # too small for 'auto' to split: the factors given
            fs = [torch.from_numpy(g).to(dtype)] * 2
            y = trueconv.convolve_separable(x, fs, "same", boundary=boundary, fill_value=1.5)
        assert fused_ran[-1] is not None
        ref = _oracle(x.numpy(), np.outer(g, g), "same", boundary, 1.5)
        # within twice the direct sum's bound (k² terms, the unit roundoff): 15 × 15 float32
        # taps over a 5 × 6 input, every output sums the wrapped input 6-9 times over
        assert rel_err(y, ref) < max(TOL[dtype], k * k * torch.finfo(dtype).eps)


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_nonfinite_fill_runs_the_passes(fused_ran, fill):
    # the loop's check sees the input's rows only: a non-finite fill value goes to the
    # passes, which place it as the dense direct sum does (the fill samples are terms)
    x = torch.from_numpy(np.random.default_rng(14).standard_normal((30, 40)))
    g = gaussian(5, 1.0)
    y = trueconv.convolve_separable(x, [torch.from_numpy(g)] * 2, "same", fill_value=fill)
    assert fused_ran == [None]
    ref = scipy.signal.convolve(np.pad(x.numpy(), 2, constant_values=fill), np.outer(g, g),
                                "valid", method="direct")  # fmt: skip
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y.numpy()), np.isinf(ref))
    finite = np.isfinite(ref)
    assert rel_err(y.numpy()[finite], ref[finite]) < 1e-13


def test_boundary_with_nan_lands_where_the_dense_sum_puts_it(fused_ran):
    # the loop reads the NaN through the maps and places it as the dense direct sum of the
    # extended input does (its copies are terms)
    x = torch.from_numpy(np.random.default_rng(13).standard_normal((200, 240)))
    x[0, 3] = np.nan
    g = gaussian(7, 1.5)
    k = torch.from_numpy(np.outer(g, g))
    y = trueconv.convolve_separable(x, [torch.from_numpy(g)] * 2, "same", boundary="reflect")
    y = y.numpy()
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    padded = np.pad(np.nan_to_num(x.numpy(), nan=0.0), 3, mode="reflect")
    mask = np.pad(np.isnan(x.numpy()).astype(float), 3, mode="reflect")
    ref = scipy.signal.convolve(padded, k.numpy(), "valid", method="direct")
    hit = scipy.signal.convolve(mask, np.ones((7, 7)), "valid") > 0.5
    np.testing.assert_array_equal(np.isnan(y), hit)
    assert rel_err(y[~hit], ref[~hit]) < 1e-13


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_and_inf_land_where_the_dense_sum_puts_them(fused_ran, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 300, 280))
    x[0, 10, 20] = np.nan
    x[0, 100, 200] = np.inf
    x[0, 101, 203] = -np.inf
    x[1, 250, 30] = np.inf
    f0 = np.array([1.0, 2.0, 0.0, 2.0, 1.0, -1, 1, 1, 1])
    f1 = gaussian(9, 2.0)
    xt = torch.from_numpy(x).to(dtype)
    y = trueconv.convolve_separable(xt, [f0, f1]).numpy()
    # the loop ran: each sum groups the dense sum's terms (a vertical sum of a column, then
    # the horizontal sum of those), a term non-finite exactly when the dense one is and of
    # its sign, so a sum is NaN, ±Inf or finite exactly when the dense sum is
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    dense = torch.from_numpy(np.outer(f0, f1)).to(dtype)
    ref = trueconv.convolve(xt, dense, method="direct").numpy()
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(y), test(ref))
    finite = np.isfinite(ref)
    assert rel_err(y[finite], ref[finite]) < TOL[dtype]
    # and through 'auto' on the dense kernel
    fused_ran.clear()
    assert trueconv.choose_method(xt, dense) == "separable"
    z = trueconv.convolve(xt, dense).numpy()
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    np.testing.assert_array_equal(np.isnan(z), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(z), np.isinf(ref))


def test_nonfinite_factor_runs_the_passes(fused_ran):
    x = torch.randn(40, 50, dtype=torch.float64)
    f0 = torch.tensor([1.0, float("inf"), 0.0], dtype=torch.float64)
    f1 = torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=torch.float64)
    y = trueconv.convolve_separable(x, [f0, f1], "same")
    assert fused_ran == [None]
    ref = _by_the_passes(x, [f0, f1], "same")
    torch.testing.assert_close(y, ref, rtol=0, atol=0, equal_nan=True)
    assert torch.isinf(y).any()


def test_only_a_sum_of_terms_refuses_a_nonfinite_input():
    # one term: the loop places NaN and ±Inf as the dense sum does, and runs; a sum of terms
    # (+Inf from one term and -Inf from another would be NaN where the dense sum has one
    # infinite term) reports them, from the output rows it checks in L1
    x = torch.randn(64, 64)
    f = torch.tensor([0.25, 0.5, 0.25])
    terms = torch.tensor([[0.25, 0.5, 0.25], [1.0, -2.0, 1.0]])
    assert rows_separable.separable_conv(x, terms, terms, ((1, 1), (1, 1))) is not None
    x[5, 63] = float("nan")
    y = rows_separable.separable_conv(x, f, f, ((1, 1), (1, 1)))
    assert y is not None
    assert torch.isnan(y).nonzero().tolist() == [[r, c] for r in (4, 5, 6) for c in (62, 63)]
    assert rows_separable.separable_conv(x, terms, terms, ((1, 1), (1, 1))) is None
    x[5, 63] = float("-inf")
    assert rows_separable.separable_conv(x, terms, terms, ((0, 0), (0, 0))) is None


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("k0", [3, 11])
def test_a_sum_of_terms_checks_both_rows_of_a_pair(monkeypatch, pairs, k0):
    # rows one by one, or two at a time (one pass, or split for 11 taps): a NaN that only
    # the first output row reads (input row 0, 'valid') or only the last (the last input
    # row: the second of the last pair) is reported all the same
    monkeypatch.setattr(rows_separable, "VERTICAL_PAIRS", pairs)
    terms0 = torch.randn(2, k0, dtype=torch.float64)
    terms1 = torch.tensor([[0.25, 0.5, 0.25], [1.0, -2.0, 1.0]], dtype=torch.float64)
    for row in (0, 63):
        x = torch.randn(64, 40, dtype=torch.float64)
        assert rows_separable.separable_conv(x, terms0, terms1, ((0, 0), (0, 0))) is not None
        x[row, 7] = float("nan")
        assert rows_separable.separable_conv(x, terms0, terms1, ((0, 0), (0, 0))) is None


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_gradcheck_through_the_fused_loop(fused_ran, mode):
    rng = np.random.default_rng(12)
    x = torch.from_numpy(rng.standard_normal((2, 9, 11))).requires_grad_()
    fs = [torch.from_numpy(rng.standard_normal(k)) for k in (4, 3)]

    def f(a):
        return trueconv.convolve_separable(a, fs, mode, boundary="fill")

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    assert fused_ran
    assert all(y is not None for y in fused_ran)


def test_gradient_of_a_large_input(fused_ran):
    x = torch.randn(300, 320, dtype=torch.float64, requires_grad=True)
    k = torch.from_numpy(np.outer(gaussian(11, 2.0), gaussian(9, 1.5)))
    g = torch.randn(310, 328, dtype=torch.float64)
    (trueconv.convolve(x, k) * g).sum().backward()
    assert len(fused_ran) == 1  # the forward; the backward calls the loop itself
    assert type(fused_ran[0].grad_fn).__name__ == "_FusedConvBackward"
    ref = scipy.signal.correlate(g.numpy(), k.numpy(), "valid")
    assert rel_err(x.grad, ref) < 1e-13


def test_factors_that_require_grad_run_the_passes(fused_ran):
    rng = np.random.default_rng(13)
    x = torch.from_numpy(rng.standard_normal((9, 11))).requires_grad_()
    f0 = torch.from_numpy(rng.standard_normal(4)).requires_grad_()
    f1 = torch.from_numpy(rng.standard_normal(3))

    def f(a, u):
        return trueconv.convolve_separable(a, [u, f1], "same")

    assert torch.autograd.gradcheck(f, (x, f0))
    assert not fused_ran


def test_nonfinite_input_that_requires_grad(fused_ran):
    # one term: the loop runs and places the NaN; its gradient is the loop again
    x = torch.randn(30, 30, dtype=torch.float64)
    x[3, 4] = float("nan")
    x.requires_grad_()
    f = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    y = trueconv.convolve_separable(x, [f, f], "same")
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    assert int(torch.isnan(y).sum()) == 9
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_not_planned_without_numba_on_cuda_or_for_other_dtypes(monkeypatch):
    x, k = torch.empty(1024, 1024), torch.empty(9, 9)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    problem = Problem.of(spec)
    cpu = torch.device("cpu")
    assert _separable.plan(problem, cpu).fused
    assert not _separable.plan(problem, torch.device("cuda")).fused
    assert not _separable.plan(problem, cpu, "fft").fused
    for dtype in (torch.complex64, torch.int64):
        other = Problem(**{**problem.__dict__, "dtype": dtype})
        assert not _separable.plan(other, cpu).fused
    monkeypatch.setattr(rows, "AVAILABLE", False)  # as TRUECONV_NO_JIT=1 or no numba
    _plan.forget()
    try:
        assert not _separable.plan(problem, cpu).fused
    finally:
        monkeypatch.undo()
        _plan.forget()


def test_without_numba_the_passes_run(monkeypatch, fused_ran):
    monkeypatch.setattr(rows, "AVAILABLE", False)
    _plan.forget()
    try:
        x = torch.randn(50, 60, dtype=torch.float64)
        f = [gaussian(5, 1.0), gaussian(3, 1.0)]
        y = trueconv.convolve_separable(x, f, "same")
    finally:
        monkeypatch.undo()
        _plan.forget()
    assert not fused_ran
    assert rel_err(y, _oracle(x.numpy(), np.outer(*f), "same", "fill")) < 1e-13


def test_where_data_cannot_be_read_the_passes_run(monkeypatch, fused_ran):
    x = torch.randn(2, 20, 30, dtype=torch.float64)
    f = [torch.from_numpy(gaussian(5, 1.0)), torch.from_numpy(gaussian(3, 1.0))]
    ref = _oracle(x.numpy(), np.outer(f[0], f[1]), "same", "fill")
    # torch.func: vmap over the batch, and grad
    y = torch.func.vmap(lambda a: trueconv.convolve_separable(a, f, "same"))(x)
    assert rel_err(y, ref) < 1e-13
    g = torch.func.grad(lambda a: trueconv.convolve_separable(a, f, "same").sum())(x[0])
    assert g.shape == x[0].shape
    # meta tensors: shapes only
    m = trueconv.convolve_separable(x.to("meta"), [t.to("meta") for t in f], "same")
    assert m.shape == x.shape
    assert m.device.type == "meta"
    assert not fused_ran
    # while compiling (the check the loop makes; torch.compile itself is tested elsewhere)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not rows_separable.usable(x, *f)


def test_under_torch_compile_the_passes_run(fused_ran):
    x = torch.randn(20, 30, dtype=torch.float64)
    f = [torch.from_numpy(gaussian(5, 1.0)), torch.from_numpy(gaussian(3, 1.0))]

    @torch.compile(backend="eager", fullgraph=False)
    def run(a):
        return trueconv.convolve_separable(a, f, "same")

    y = run(x)
    assert not fused_ran
    assert rel_err(y, _oracle(x.numpy(), np.outer(f[0], f[1]), "same", "fill")) < 1e-13


def test_nonfinite_factor_with_autograd_runs_the_passes(fused_ran):
    # the recording branch checks the factors too: an Inf factor times the zero padding the
    # loop reads would be NaN where the passes add no term
    x = torch.randn(30, 40, dtype=torch.float64, requires_grad=True)
    f0 = torch.tensor([1.0, float("inf"), 0.5], dtype=torch.float64)
    f1 = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    y = trueconv.convolve_separable(x, [f0, f1], "same")
    assert fused_ran == [None]
    ref = _by_the_passes(x, [f0, f1], "same")
    torch.testing.assert_close(y, ref, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_overflow_gives_the_passes_sums(fused_ran, mode):
    # finite operands whose sums overflow: the loop checks its input rows, not its sums, and
    # adds the passes' terms in their order, so the infinities and NaNs land where theirs do
    x = torch.full((20, 30), 3e38, dtype=torch.float32)
    x[::3] *= -1
    x[:, ::4] *= 0.5
    fs = [torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, -1.0, 1.0, 0.5])]
    y = trueconv.convolve_separable(x, fs, mode)
    assert len(fused_ran) == 1
    assert fused_ran[0] is not None
    assert torch.isinf(y).any()
    assert torch.isnan(y).any()
    ref = _by_the_passes(x, fs, mode)
    torch.testing.assert_close(y, ref, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(
    ("o1", "ring_rows", "itemsize", "width"),
    [
        (16384, 3, 4, 16384),  # a short float32 ring: one tile, however long the row
        (16384, 15, 8, 4096),  # 15 float64 rows of 4096 = 480 KiB: four tiles
        (16384, 31, 8, 2048),  # 31 float64 rows: the ring allows 2114, so eight tiles of 2048
        (4229, 31, 8, 1410),  # equal tiles: three of 1410, not two of 2114 and one of 1
        (100, 31, 8, 100),  # a row shorter than a tile
    ],
)
def test_tile_width(o1, ring_rows, itemsize, width):
    # the fewest equal tiles, each no wider than TILE or than its ring fitting RING_BYTES
    assert rows_separable.tile_width(o1, ring_rows, itemsize) == width
    w = rows_separable.tile_width(o1, ring_rows, itemsize)
    tiles = -(-o1 // w)
    assert (tiles - 1) * w < o1 <= tiles * w
    assert w <= max(rows_separable.TILE, rows.RING_BYTES // (ring_rows * itemsize))


def test_wide_rows_one_tile_against_scipy():
    # rows wider than TILE that the ring lets run as one tile (3 float32 rows of 5000), and
    # in tiles of TILE (RING_BYTES 0): the same values, bitwise, and scipy's
    rng = np.random.default_rng(14)
    x = torch.from_numpy(rng.standard_normal((6, 5000)).astype(np.float32))
    f0 = torch.tensor([0.25, 0.5, 0.25])
    f1 = torch.tensor([1.0, -2.0, 0.5, 0.75, 3.0])
    assert rows_separable.tile_width(5000 - 4, 3, 4) == 4996
    y = rows_separable.separable_conv(x, f0, f1, ((0, 0), (0, 0)))
    ref = scipy.signal.convolve2d(x.double().numpy(), np.outer(f0, f1), "valid")
    assert rel_err(y, ref) < 1e-6
    ring = rows.RING_BYTES
    rows.RING_BYTES = 0
    try:
        assert torch.equal(rows_separable.separable_conv(x, f0, f1, ((0, 0), (0, 0))), y)
    finally:
        rows.RING_BYTES = ring
