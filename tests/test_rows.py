"""The direct method's compiled CPU loop (trueconv._methods.rows): every dtype it takes, 1-3
dims, broadcast batches and every mode against scipy/numpy; the same sums as shift-and-add;
gradients (twice) against finite differences and shift-and-add's; the fallbacks."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import rel_err
from trueconv._methods import direct, rows, rows_separable

pytestmark = pytest.mark.skipif(not rows.AVAILABLE, reason="numba is not installed")

SHAPES = [
    ((50,), (7,)),
    ((3, 40), (5,)),
    ((1,), (9,)),
    ((23, 31), (4, 3)),
    ((2, 17, 19), (6, 5)),
    ((9, 10, 11), (3, 4, 2)),
    ((2, 7, 6, 5), (3, 2, 4)),
]
DTYPES = [torch.float32, torch.float64, torch.complex64, torch.complex128, torch.int64]


def _data(shape, dtype, rng):
    if dtype.is_complex:
        v = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    elif dtype.is_floating_point:
        v = rng.standard_normal(shape)
    else:
        v = rng.integers(-20, 20, shape)
    return torch.from_numpy(np.asarray(v)).to(dtype)


def _oracle(x, k, mode):
    """scipy's direct sum in float64/complex128, per leading batch index."""
    xa, ka = x.numpy(), k.numpy()
    wide = np.complex128 if x.is_complex() else (np.float64 if x.is_floating_point() else None)
    if wide is not None:
        xa, ka = xa.astype(wide), ka.astype(wide)
    ka = ka.reshape((1,) * (xa.ndim - ka.ndim) + ka.shape)
    return scipy.signal.convolve(xa, ka, mode, method="direct")


@pytest.fixture
def loop_only(monkeypatch):
    """Fail if the direct method falls back to shift-and-add: the loop must be what ran."""

    def boom(*args, **kwargs):
        raise AssertionError("shift_add ran instead of the compiled loop")

    monkeypatch.setattr(direct, "shift_add", boom)


CASES = [
    (xs, ks, mode)
    for xs, ks in SHAPES
    for mode in ("full", "same", "valid")
    # 'valid' where the input dominates in every dim, or the kernel does (then they swap)
    if mode != "valid"
    or all(a >= b for a, b in zip(xs[::-1], ks[::-1]))
    or all(a <= b for a, b in zip(xs[::-1], ks[::-1]))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("xs", "ks", "mode"), CASES)
def test_matches_scipy(loop_only, xs, ks, dtype, mode):
    rng = np.random.default_rng(len(xs) * 100 + len(ks))
    x, k = _data(xs, dtype, rng), _data(ks, dtype, rng)
    assert direct.variant(1, 1, dtype, "cpu", ks) == "rows"
    y = trueconv.convolve(x, k, mode, method="direct")
    ref = _oracle(x, k, mode)
    assert y.dtype == dtype
    if dtype == torch.int64:
        np.testing.assert_array_equal(y.numpy(), ref.round().astype(np.int64))
    else:
        bound = 1e-5 if dtype in (torch.float32, torch.complex64) else 1e-13
        assert rel_err(y.numpy(), ref) < bound


#: trueconv's boundaries as np.pad modes (None: the implicit zero padding; 'fill' with FILL)
NP_PAD = {None: "constant", "reflect": "reflect", "symmetric": "symmetric", "wrap": "wrap",
          "replicate": "edge", "fill": "constant"}  # fmt: skip
FILL = -3  # every dtype holds it
#: the loop's strips: none, of one or a few rows, unbounded (the rows' samples a strip holds)
BANDS = (0, 900, 1 << 30)
#: output rows one at a time (0), two at a time wherever the loop can outside strips (1) and
#: in strips too (2) (kernels of two or more rows; rows.paired picks them for calls)
PAIRS = (0, 1, 2)
#: rows of the ring as strips over bands of copied rows: never (0), of 1, 3 or 50 rows, the
#: bands of 3-D kernels holding whole planes or not
BROWS = ((0, False), (1, False), (3, False), (50, False), (1, True), (3, True), (50, True))


def _pad(x, pads, rule):
    """np.pad's extension of ``x`` by ``pads`` (the leading dims unpadded)."""
    pads = [(0, 0)] * (x.ndim - len(pads)) + list(pads)
    if rule == "fill":
        return np.pad(x, pads, mode="constant", constant_values=FILL)
    return np.pad(x, pads, mode=NP_PAD[rule])


@pytest.mark.parametrize(("width", "mode"), [(2049, "same"), (2046, "full"), (4100, "full")])
def test_rows_wider_than_a_tile(monkeypatch, loop_only, width, mode):
    # rows longer than rows.TILE are cut into equal tiles (2049 samples: 1040 and 1009, not
    # 2048 and 1), every tile edge inside a row, through the public call (RING_BYTES 0: no
    # tile wider than TILE however small the ring)
    monkeypatch.setattr(rows, "RING_BYTES", 0)
    rng = np.random.default_rng(width)
    x, k = _data((2, 9, width), torch.float64, rng), _data((3, 5), torch.float64, rng)
    got = trueconv.convolve(x, k, mode, method="direct")
    assert rel_err(got, _oracle(x, k, mode)) < 1e-13


@pytest.mark.parametrize("rule", list(NP_PAD))
@pytest.mark.parametrize(
    ("xs", "ks", "pads"),
    [
        ((2, 9, 8, 30), (3, 4, 5), ((2, 1), (3, 0), (4, 4))),  # 60 taps: passes of <= GROUP
        ((3, 25, 41), (5, 4), ((0, 0), (3, 3))),  # 'valid' rows, padded columns
        ((40, 33), (7, 3), ((6, 6), (2, 2))),  # 'full': output rows with no input row
        ((3, 5, 4), (9, 7), ((8, 8), (6, 6))),  # pads longer than the input: maps repeat
    ],
)
def test_chunks_tiles_and_passes(xs, ks, pads, rule):
    # the loop itself, with column tiles narrower than the rows and any number of chunks: each
    # chunk fills its own ring of input rows, every chunk boundary and tile edge lands
    # somewhere inside a row or a plane; the padding zero fill or an extension read through
    # the index maps, against np.pad's extension and scipy
    rng = np.random.default_rng(sum(xs))
    x, k = _data(xs, torch.float64, rng), _data(ks, torch.float64, rng)
    nd = len(ks)
    padded = _pad(x.numpy(), pads, rule)
    ref = _oracle(torch.from_numpy(padded), k, "valid")
    kb = k.reshape((1,) * (x.ndim - nd) + k.shape)  # aligned, as the front door passes it
    lay = rows._layout(tuple(x.shape), tuple(kb.shape), pads, rule)
    kernel = rows._kernel()
    a2, b2 = x.numpy().reshape(lay.a_rows), kb.numpy().reshape(lay.b_rows)
    cases = [(7, 1), (7, 5), (5, 23), (1000, 3), (3, 10_000)]
    for (tile, parts), band, pair, brows in itertools.product(cases, BANDS, PAIRS, BROWS):
        out = np.full(lay.out_shape, np.nan)
        fill = rows.fill_array(rule, FILL, out.dtype)
        o2 = out.reshape(lay.o_rows)
        args = (a2, b2, lay.dims, *lay.maps, lay.p2, fill, o2, tile, parts, band, pair, *brows)
        assert kernel(*args)
        assert rel_err(out, ref) < 1e-13, (tile, parts, band, pair, brows)


@pytest.mark.parametrize("rule", list(NP_PAD))
@pytest.mark.parametrize(
    ("xs", "ks", "pads"),
    [
        ((2, 40, 1100), (3, 3), ((1, 1), (1, 1))),  # 'same' 3x3 over rows of three tiles
        ((5, 6, 700), (2, 3, 3), ((1, 0), (1, 1), (2, 0))),  # 3-D, uneven pads
        ((3, 500), (5,), ((2, 2),)),  # 1-D rows
        ((30, 400), (4, 2), ((3, 0), (0, 1))),  # even taps, one-sided pads
    ],
)
def test_rows_read_in_place_and_edges(xs, ks, pads, rule):
    # rows wide enough that the taps read the input's rows in place (DIRECT_MIN, EDGE_COST),
    # with their edge samples summed one by one, next to rows and tiles that take the ring
    # (narrow tiles, rows of the fill value); NaN and ±Inf inside the rows and at their edges;
    # against np.pad's extension and scipy's direct sum
    rng = np.random.default_rng(sum(xs))
    x, k = _data(xs, torch.float64, rng), _data(ks, torch.float64, rng)
    flat = x.view(-1)
    for i, v in zip(rng.integers(0, flat.numel(), 4), (np.nan, np.inf, -np.inf, np.nan)):
        flat[int(i)] = v
    flat[0], flat[-1] = np.inf, np.nan  # the first and last samples: edge terms
    nd = len(ks)
    ref = _oracle(torch.from_numpy(_pad(x.numpy(), pads, rule)), k, "valid")
    kb = k.reshape((1,) * (x.ndim - nd) + k.shape)
    lay = rows._layout(tuple(x.shape), tuple(kb.shape), pads, rule)
    kernel = rows._kernel()
    a2, b2 = x.numpy().reshape(lay.a_rows), kb.numpy().reshape(lay.b_rows)
    cases = [(2048, 1), (2048, 6), (512, 3), (130, 7), (7, 5)]
    first = None
    for (tile, parts), band, pair, brows in itertools.product(cases, BANDS, PAIRS, BROWS):
        out = np.full(lay.out_shape, 7.0)
        fill = rows.fill_array(rule, FILL, out.dtype)
        o2 = out.reshape(lay.o_rows)
        args = (a2, b2, lay.dims, *lay.maps, lay.p2, fill, o2, tile, parts, band, pair, *brows)
        assert kernel(*args)
        why = str((tile, parts, band, pair, brows))
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg=why)
        np.testing.assert_array_equal(out[np.isinf(ref)], ref[np.isinf(ref)])
        fin = np.isfinite(ref)
        assert rel_err(out[fin], ref[fin]) < 1e-13, why
        # strips and pairs add the same terms in the same order as rows one by one
        first = out if first is None else first
        np.testing.assert_array_equal(out, first, err_msg=why)


@pytest.fixture
def no_extended_array(monkeypatch):
    """Fail if an extended copy of the input is built: the loop must read the boundary
    through its index maps."""

    def boom(*args, **kwargs):
        raise AssertionError("the input was extended before the loop")

    from trueconv import _problem

    monkeypatch.setattr(_problem, "extend", boom)
    monkeypatch.setattr(rows, "extend", boom)


def _boundary_oracle(x, k, mode, rule):
    """numpy.pad by the boundary, then scipy's direct sum ('same': the centred slice)."""
    nd = k.ndim
    wide = x.numpy().astype(np.complex128 if x.is_complex() else np.float64)
    pads = [(0, 0)] * (x.ndim - nd) + [(m - 1, m - 1) for m in k.shape]
    full = _oracle(torch.from_numpy(_pad(wide, pads, rule)), k, "valid")
    if mode == "full":
        return full
    lead = (slice(None),) * (x.ndim - nd)
    return full[lead + tuple(slice((m - 1) // 2, (m - 1) // 2 + n) for m, n in
                             zip(k.shape, x.shape[-nd:]))]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ["reflect", "symmetric", "wrap", "replicate", "fill"])
@pytest.mark.parametrize(
    ("xs", "ks", "mode"),
    [((50,), (7,), "same"), ((3, 4), (9,), "full"), ((2, 17, 19), (6, 5), "same"),
     ((23, 31), (4, 3), "full"), ((9, 10, 11), (3, 4, 2), "same"), ((2, 3), (5, 7), "full")],
)  # fmt: skip
def test_boundaries_read_in_place(loop_only, no_extended_array, xs, ks, mode, rule, dtype):
    # 'reflect' & co. and a non-zero fill through the loop's index maps (pads longer than
    # the input included: 'full' of (3, 4) by a 9-tap kernel), every dtype the loop takes,
    # against np.pad + scipy
    rng = np.random.default_rng(len(xs) + sum(ks))
    x, k = _data(xs, dtype, rng), _data(ks, dtype, rng)
    y = trueconv.convolve(x, k, mode, boundary=rule, fill_value=FILL, method="direct")
    ref = _boundary_oracle(x, k, mode, rule)
    if dtype == torch.int64:
        np.testing.assert_array_equal(y.numpy(), ref.round().astype(np.int64))
    else:
        bound = 1e-5 if dtype in (torch.float32, torch.complex64) else 1e-13
        assert rel_err(y.numpy(), ref) < bound
    assert torch.equal(x, _data(xs, dtype, np.random.default_rng(len(xs) + sum(ks))))


@st.composite
def _extended_calls(draw):
    """A loop call: 1-3 convolved dims, a leading batch dim of 1 or 2 on each operand
    (broadcast), any pads (longer than the input too) and any rule; the output at least one
    sample long."""
    nd = draw(st.integers(1, 3))
    ns = draw(st.lists(st.integers(1, 7), min_size=nd, max_size=nd))
    ks = draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd))
    pads = []
    for n, k in zip(ns, ks):
        p = draw(st.integers(0, 8))
        q = draw(st.integers(max(0, k - n - p), 8))
        pads.append((p, q))
    xb, kb = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    rule = draw(st.sampled_from(list(NP_PAD)))
    return (xb, *ns), (kb, *ks), tuple(pads), rule


@given(_extended_calls(), st.integers(0, 2**32 - 1))
def test_extensions_are_np_pad_then_valid(call, seed):
    # the loop's index maps (every rule, pads of any length) against np.pad's extension and
    # scipy's direct valid convolution per batch item, batch dims broadcast
    xs, ks, pads, rule = call
    rng = np.random.default_rng(seed)
    x, k = _data(xs, torch.float64, rng), _data(ks, torch.float64, rng)
    y = rows.valid_conv(x, k, pads, rule, FILL)
    padded = _pad(x.numpy(), pads, rule)
    ref = np.stack([
        scipy.signal.convolve(padded[i % xs[0]], k.numpy()[i % ks[0]], "valid", method="direct")
        for i in range(max(xs[0], ks[0]))
    ])  # fmt: skip
    assert y.shape == ref.shape
    assert rel_err(y.numpy(), ref) < 1e-13


@pytest.mark.parametrize("rule", ["reflect", "wrap"])
def test_boundaries_with_nonfinite_values(rule):
    # an extension's samples are terms: NaN and Inf in the input reach every output whose
    # window holds one of their copies; a NaN tap reaches every output
    x = torch.tensor([[1.0, np.nan, 2.0, 3.0, 4.0], [1.0, 2.0, np.inf, 3.0, -1.0]])
    k = torch.tensor([[1.0, 0.5, 2.0]])
    ref = _boundary_oracle(x.double(), k.double(), "same", rule)
    y = trueconv.convolve(x.double(), k.double(), "same", boundary=rule, method="direct")
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ref))
    np.testing.assert_array_equal(y.numpy()[~np.isnan(ref)], ref[~np.isnan(ref)])
    bad = torch.tensor([[1.0, np.nan, 2.0]], dtype=torch.float64)
    y = trueconv.convolve(x.double(), bad, "same", boundary=rule, method="direct")
    assert torch.isnan(y).all()


@pytest.mark.parametrize("rule", ["reflect", "replicate"])
def test_boundary_gradients_twice(loop_only, rule):
    # with a graph the input is extended first (the extension's backward sums the copies'
    # gradients into their sources), then the loop's own autograd
    rng = np.random.default_rng(9)
    x = _data((2, 6, 7), torch.float64, rng).requires_grad_()
    k = _data((3, 4), torch.float64, rng).requires_grad_()

    def f(a, b):
        return trueconv.convolve(a, b, "same", boundary=rule, method="direct")

    assert torch.autograd.gradcheck(f, (x, k))
    assert torch.autograd.gradgradcheck(f, (x, k))


def test_integers_wrap_like_numpy(loop_only):
    x = torch.tensor([2**62, 2**62, 3], dtype=torch.int64)
    k = torch.tensor([3, 5], dtype=torch.int64)
    ref = np.convolve(x.numpy(), k.numpy())  # numpy's int64 arithmetic wraps
    np.testing.assert_array_equal(trueconv.convolve(x, k, method="direct").numpy(), ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_same_sums_as_shift_and_add(dtype):
    # the loop adds each output's terms in shift-and-add's order (torch's add_ with alpha may
    # fuse the multiply-add, so not always to the last bit)
    rng = np.random.default_rng(5)
    for xs, ks in SHAPES:
        x, k = _data(xs, dtype, rng), _data(ks, dtype, rng)
        nd = len(ks)
        pads = tuple((n - 1, n - 1) for n in ks)
        kb = k.reshape((1,) * (x.ndim - nd) + k.shape)
        got = rows.valid_conv(x, kb, pads)
        want = direct.shift_add(x, kb, pads)
        torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)


def test_broadcast_batches_of_both_operands(loop_only):
    rng = np.random.default_rng(2)
    x = _data((3, 1, 30), torch.float64, rng)
    k = _data((1, 4, 5), torch.float64, rng)
    y = trueconv.convolve(x, k, dims=-1, method="direct")
    ref = np.stack(
        [[np.convolve(x[i, 0].numpy(), k[0, j].numpy()) for j in range(4)] for i in range(3)]
    )
    assert y.shape == (3, 4, 34)
    assert rel_err(y.numpy(), ref) < 1e-13


def test_nonfinite_terms_as_numpy(loop_only):
    x = torch.tensor([1.0, np.nan, 1.0, 1.0, np.inf, 2.0])
    k = torch.tensor([1.0, 0.0, 1.0])
    ref = np.convolve(x.numpy().astype(np.float64), k.numpy().astype(np.float64))
    y = trueconv.convolve(x, k, method="direct").numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[~np.isnan(y)], ref[~np.isnan(ref)])


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("xs", "ks"), [((12,), (4,)), ((2, 6, 7), (3, 2)), ((5, 4, 6), (2, 3, 2))])
def test_gradients_twice(loop_only, xs, ks, mode):
    rng = np.random.default_rng(7)
    x = _data(xs, torch.float64, rng).requires_grad_()
    k = _data(ks, torch.float64, rng).requires_grad_()

    def f(a, b):
        return trueconv.convolve(a, b, mode, method="direct")

    assert torch.autograd.gradcheck(f, (x, k))
    assert torch.autograd.gradgradcheck(f, (x, k))


def test_complex_gradients_match_shift_and_add(monkeypatch):
    rng = np.random.default_rng(8)
    x0 = _data((3, 9, 8), torch.complex128, rng)
    k0 = _data((4, 3), torch.complex128, rng)
    g = _data((3, 12, 10), torch.complex128, rng)
    grads = []
    for use in ("rows", "shift_add"):
        monkeypatch.setattr(direct, "variant", lambda *a, v=use: v)
        x, k = x0.clone().requires_grad_(), k0.clone().requires_grad_()
        (trueconv.convolve(x, k, method="direct") * g).real.sum().backward()
        grads.append((x.grad, k.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-12)


def test_falls_back_where_data_cannot_be_read():
    x, k = torch.randn(20, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    want = np.convolve(x.numpy(), k.numpy())
    assert not rows.usable(x.to("meta"), k.to("meta"), [(2, 2)])
    seen = []

    def probe(a):
        seen.append(rows.usable(a, k, [(2, 2)]))
        return a.sum()

    torch.func.vmap(probe)(x[None])
    assert seen == [False]
    assert rows.usable(x, k, [(2, 2)])
    assert rel_err(trueconv.convolve(x, k, method="direct"), want) < 1e-13
    assert not rows.usable(x.half(), k.half(), [(2, 2)])  # not a dtype the loop takes
    assert not rows.usable(torch.randn(2, 2, 2, 2), torch.randn(2, 2, 2, 2), [(1, 1)] * 4)


def test_without_numba_shift_and_add_runs(monkeypatch):
    monkeypatch.setattr(rows, "AVAILABLE", False)
    assert direct.variant(9, 1000, torch.float32, "cpu", (3, 3)) == "shift_add"


def test_threads_call_it_concurrently(loop_only):
    rng = np.random.default_rng(9)
    x = _data((64, 300), torch.float64, rng)
    k = _data((5, 5), torch.float64, rng)
    want = scipy.signal.convolve(x.numpy(), k.numpy(), "same")
    errors = []

    def work():
        for _ in range(20):
            got = trueconv.convolve(x, k, "same", method="direct")
            errors.append(rel_err(got.numpy(), want))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 80
    assert max(errors) < 1e-13


_CACHED = """
import torch
from trueconv._methods import rows, rows_separable
x = torch.linspace(-1, 1, 4096, dtype=torch.float64).reshape(64, 64)
k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
assert rows.usable(x, k[:, None] * k, [(2, 2), (2, 2)])
rows._run(x, k[:, None] * k, ((2, 2), (2, 2)))
rows_separable._run(x, k, k, ((2, 2), (2, 2)), check=True)
hits = [sum(f().stats.cache_hits.values()) for f in (rows._kernel, rows_separable._kernel)]
print(*hits)
"""


def test_a_new_process_loads_the_loops_from_numbas_cache():
    """The loops are compiled once per machine, not once per process (a loop whose closure
    held a numba dispatcher was compiled again by every process: 10-12 s per dtype)."""
    for kernel in (rows._kernel(), rows_separable._kernel()):
        assert all(
            not hasattr(c.cell_contents, "py_func") for c in kernel.py_func.__closure__ or ()
        ), kernel.py_func.__name__
    # the signatures the child uses, compiled (or loaded) here first; it must load both
    exec(_CACHED.replace("print(*hits)", ""), {})
    run = subprocess.run(
        [sys.executable, "-c", _CACHED], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert [int(h) > 0 for h in run.stdout.split()] == [True, True], run.stdout


@pytest.mark.parametrize(
    ("ring_rows", "itemsize", "widest"),
    [(1, 4, 131072), (3, 4, 43690), (11, 4, 11915), (15, 8, 4369), (31, 8, 2114), (64, 8, 2048)],
)
def test_widest_tile(ring_rows, itemsize, widest):
    # TILE, or wider as far as the ring of ring_rows rows fits RING_BYTES (512 KiB)
    assert rows.widest_tile(ring_rows, itemsize) == widest
    fits = rows.RING_BYTES // (ring_rows * itemsize)
    for floor in (7, 100_000):  # a floor of its own (the separable loop's TILE, a test's 7)
        assert rows.widest_tile(ring_rows, itemsize, floor) == max(floor, fits)


@pytest.mark.parametrize("mode", ["same", "full"])
def test_rows_in_wide_tiles_against_scipy(loop_only, mode):
    # a 1-D kernel over rows of 70000 samples (one tile of 65536 float64 at most: two equal
    # tiles), and a 3×3 kernel over 9000-sample rows in one tile; the same values as with
    # tiles of at most TILE, bitwise
    rng = np.random.default_rng(21)
    for xs, ks in (((2, 70000), (1, 9)), ((5, 9000), (3, 3))):
        x, k = _data(xs, torch.float64, rng), _data(ks, torch.float64, rng)
        got = trueconv.convolve(x, k, mode, method="direct")
        assert rel_err(got, _oracle(x, k, mode)) < 1e-13
        ring = rows.RING_BYTES
        rows.RING_BYTES = 0
        try:
            assert torch.equal(trueconv.convolve(x, k, mode, method="direct"), got)
        finally:
            rows.RING_BYTES = ring


def test_few_rows_keep_every_thread_busy(monkeypatch, loop_only):
    # a 1-D signal is one row: at 2 threads its tiles are cut so that every chunk gets one
    # (as many tiles as chunks, none narrower than TILE), not one tile as wide as the ring
    # allows (which left a thread idle); images with many rows keep the widest tiles
    seen = []
    parallel = rows.parallel
    monkeypatch.setattr(rows, "parallel", lambda k, *a: seen.append(a[-6:-4]) or parallel(k, *a))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows._kernel()  # loads numba
        if rows.numba_threads() < 2:
            pytest.skip("numba runs one thread here")
        rng = np.random.default_rng(22)
        for xs, ks in (((1 << 16,), (16,)), ((64, 4096), (3, 3))):
            x, k = _data(xs, torch.float32, rng), _data(ks, torch.float32, rng)
            got = trueconv.convolve(x, k, "same", method="direct")
            assert rel_err(got, _oracle(x, k, "same")) < 1e-6
    finally:
        torch.set_num_threads(previous)
    (tile_1d, parts), (tile_2d, _) = seen
    assert parts == 8
    assert tile_1d == (1 << 16) // 8  # 8 tiles of 8192 for 8 chunks
    # 64 rows: one tile a row (a ring of 3 rows, or 4 where the rows are paired)
    assert tile_2d == rows.widest_tile(3 + rows.paired(3, 3), 4) > 4096
