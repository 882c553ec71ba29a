"""Boundary rules against numpy.pad and scipy.signal.convolve2d.

``core.boundary.source_index``/``extend`` must be ``np.pad`` (including pads several periods longer
than the input); ``convolve(..., boundary=...)`` must be ``convolve2d(boundary=...)`` where scipy
has the rule, and everywhere the independent recipe ``np.pad`` + scipy ``'valid'``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv._methods import REGISTRY
from trueconv.core import boundary as boundary_module
from trueconv.core.boundary import _pad_runs, extend, source_index
from trueconv.core.names import BOUNDARIES, BOUNDARY_ALIASES

METHODS = ["auto", *sorted(REGISTRY)]
EXPLICIT = sorted(REGISTRY)
TOL = REL_TOL[torch.float64]

#: our canonical name -> numpy.pad mode
NP_MODE = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}
#: our canonical name -> scipy.signal.convolve2d boundary (it has no reflect/replicate)
SCIPY_2D = {"fill": "fill", "wrap": "wrap", "symmetric": "symm"}


def test_tables_cover_every_boundary():
    assert set(NP_MODE) == set(BOUNDARIES)
    assert set(BOUNDARY_ALIASES.values()) <= set(BOUNDARIES)


def np_pad(x: np.ndarray, pads, boundary: str, fill_value=0) -> np.ndarray:
    if boundary == "fill":
        return np.pad(x, pads, "constant", constant_values=fill_value)
    return np.pad(x, pads, NP_MODE[boundary])


# --- source_index / extend against np.pad ---------------------------------------------------

NON_FILL = [b for b in BOUNDARIES if b != "fill"]
PADS = [(0, 0), (1, 0), (0, 2), (1, 1), (3, 2), (5, 7), (13, 4), (0, 17)]


@pytest.mark.parametrize("boundary", NON_FILL)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_source_index_is_np_pad(boundary, n):
    """Every (before, after), including pads several periods longer than the input."""
    for before, after in PADS:
        got = source_index(n, before, after, boundary)
        ref = np.pad(np.arange(n), (before, after), NP_MODE[boundary])
        np.testing.assert_array_equal(got.numpy(), ref, err_msg=f"pads {(before, after)}")


@given(
    st.sampled_from(NON_FILL),
    st.integers(1, 9),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_source_index_is_np_pad_random(boundary, n, before, after):
    got = source_index(n, before, after, boundary)
    ref = np.pad(np.arange(n), (before, after), NP_MODE[boundary])
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("shape", "dims", "pads"),
    [
        ((5,), (0,), ((2, 3),)),
        ((1,), (0,), ((4, 3),)),
        ((3,), (0,), ((8, 11),)),
        ((4, 3), (0, 1), ((1, 2), (7, 0))),
        ((2, 3, 4), (1, 2), ((5, 5), (0, 9))),
        ((2, 1, 4), (0, 1, 2), ((3, 0), (2, 2), (1, 6))),
        ((3, 2, 5), (2,), ((0, 0),)),
    ],
)
def test_extend_is_np_pad(boundary, shape, dims, pads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    full = [(0, 0)] * x.ndim
    for d, p in zip(dims, pads):
        full[d] = p
    xt = torch.from_numpy(x)
    before = xt.clone()
    got = extend(xt, dims, pads, boundary, fill_value=2.5)
    np.testing.assert_array_equal(to_numpy(got), np_pad(x, full, boundary, fill_value=2.5))
    assert torch.equal(xt, before)


@pytest.mark.parametrize("fill", [0, 3, -1.5, 2 - 1j])
def test_extend_fill_complex(fill):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    got = extend(torch.from_numpy(x), (0, 1), ((2, 1), (3, 5)), "fill", fill_value=fill)
    ref = np.pad(x, ((2, 1), (3, 5)), "constant", constant_values=fill)
    np.testing.assert_array_equal(to_numpy(got), ref)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_extend_integer_tensor(boundary):
    x = np.arange(-3, 4, dtype=np.int64).reshape(1, 7)
    got = extend(torch.from_numpy(x), (1,), ((9, 10),), boundary, fill_value=5)
    np.testing.assert_array_equal(to_numpy(got), np_pad(x, ((0, 0), (9, 10)), boundary, 5))


# --- extend's eager in-place path (core.boundary._extend_in_place) ---------------------------

#: dtype name -> (torch dtype, numpy values drawn from a seed and a shape)
EXTEND_DTYPES = {
    "float64": torch.float64,
    "int64": torch.int64,
    "bool": torch.bool,
    "complex128": torch.complex128,
}


def _values(dtype: torch.dtype, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == torch.bool:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype == torch.int64:
        return rng.integers(-50, 50, shape)
    if dtype == torch.complex128:
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return rng.standard_normal(shape)


def _layout(x: np.ndarray, layout: str) -> torch.Tensor:
    """``x`` as a tensor with the same values, contiguous or a non-contiguous view."""
    if layout == "contiguous":
        return torch.from_numpy(x.copy())
    if layout == "transposed":  # the values of x, stored with reversed strides
        t = torch.from_numpy(np.ascontiguousarray(x.transpose()))
        return t.permute(*reversed(range(t.ndim)))
    # strided: every other element of a larger buffer along each dim
    big = torch.zeros([2 * s for s in x.shape], dtype=torch.from_numpy(x[:0]).dtype)
    view = big[tuple(slice(None, None, 2) for _ in x.shape)]
    view.copy_(torch.from_numpy(x.copy()))
    return view


@contextlib.contextmanager
def _in_place(max_runs: int = boundary_module.MAX_RUNS):
    """The in-place path for every size (not only from MIN_IN_PLACE elements on), with
    ``max_runs`` as the threshold between run copies and a side's gather."""
    saved = boundary_module.MIN_IN_PLACE, boundary_module.MAX_RUNS
    boundary_module.MIN_IN_PLACE, boundary_module.MAX_RUNS = 0, max_runs
    try:
        yield
    finally:
        boundary_module.MIN_IN_PLACE, boundary_module.MAX_RUNS = saved


@st.composite
def _extend_case(draw):
    ndim = draw(st.integers(1, 3))
    boundary = draw(st.sampled_from(NON_FILL))
    shape = draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    pads = [(draw(st.integers(0, 3 * shape[d])), draw(st.integers(0, 3 * shape[d]))) for d in dims]
    return boundary, tuple(shape), tuple(dims), tuple(pads)


@given(
    _extend_case(),
    st.sampled_from(sorted(EXTEND_DTYPES)),
    st.sampled_from(["contiguous", "transposed", "strided"]),
    st.sampled_from([-1, 3, 10**9]),
    st.integers(0, 2**32 - 1),
)
def test_extend_in_place_is_np_pad(case, dtype_name, layout, max_runs, seed):
    """The eager path against np.pad: 1-3 dims, any subset and order of them, pads 0..3n (many
    periods: several runs per side), every dtype kind, non-contiguous inputs, and each way of
    filling a side (runs only, the default threshold, gathers only); the input is unchanged."""
    boundary, shape, dims, pads = case
    dtype = EXTEND_DTYPES[dtype_name]
    x = _values(dtype, shape, seed)
    xt = _layout(x, layout)
    before = xt.clone()
    full = [(0, 0)] * x.ndim
    for d, p in zip(dims, pads):
        full[d] = p
    assert boundary_module._in_place_ok(xt)
    with _in_place(max_runs):
        got = extend(xt, dims, pads, boundary)
    assert got.dtype == dtype
    np.testing.assert_array_equal(to_numpy(got), np_pad(x, full, boundary))
    assert torch.equal(xt, before)
    if any(b or a for b, a in pads):
        assert got.data_ptr() != xt.data_ptr()
        got.fill_(0)
        assert torch.equal(xt, before)  # the result shares no memory with the input


@given(
    _extend_case(),
    st.sampled_from(sorted(EXTEND_DTYPES)),
    st.sampled_from(["contiguous", "transposed"]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_extend_padded_is_np_pad_then_zeros(case, dtype_name, layout, eager, seed):
    """``extend_padded`` against np.pad followed by zeros at the end of each extended dim, on
    the eager path (written into the padded array) and the gather path (padded after); with
    a fill value too; the input is unchanged."""
    boundary, shape, dims, pads = case
    dtype = EXTEND_DTYPES[dtype_name]
    x = _values(dtype, shape, seed)
    xt = _layout(x, layout)
    before = xt.clone()
    rng = np.random.default_rng(seed)
    full = [(0, 0)] * x.ndim
    for d, p in zip(dims, pads):
        full[d] = p
    for rule, fill in ((boundary, 0), ("fill", 0), ("fill", 3)):
        if dtype == torch.bool and fill == 3:
            continue
        ext = np_pad(x, full, rule, fill)
        lengths = [ext.shape[d] + int(rng.integers(0, 4)) for d in dims]
        want = np.zeros(
            [lengths[dims.index(d)] if d in dims else n for d, n in enumerate(ext.shape)],
            dtype=ext.dtype,
        )
        want[tuple(slice(0, n) for n in ext.shape)] = ext
        with _in_place() if eager else contextlib.nullcontext():
            got = boundary_module.extend_padded(xt, dims, pads, rule, fill, lengths)
        assert got.dtype == dtype
        np.testing.assert_array_equal(to_numpy(got), want)
        assert torch.equal(xt, before)


@pytest.mark.parametrize("method", ["fft", "overlap_add"])
@pytest.mark.parametrize(
    ("boundary", "fill"), [("reflect", 0), ("wrap", 0), ("fill", 2.0), ("fill", float("nan"))]
)
def test_transforms_extending_place_nonfinite(method, boundary, fill, monkeypatch):
    """The FFT extends the input into its padded operand; with NaN or ±Inf in the input (or a
    NaN fill value) it takes the extended input and NaN and ±Inf land where the direct sum
    puts them; finite inputs take the padded extension. The direct sum in float64 is the
    oracle."""
    from trueconv._methods import fft

    calls = []
    real = fft.extend_padded
    monkeypatch.setattr(fft, "extend_padded", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 280))
    k = rng.standard_normal((9, 7))
    for bad in (None, np.nan, np.inf):
        xb = x.copy()
        if bad is not None:
            xb[0, 3] = bad
            xb[150, 140] = -bad
        xt, kt = torch.from_numpy(xb), torch.from_numpy(k)
        kw = {"boundary": boundary, "fill_value": fill}
        ref = trueconv.convolve(xt, kt, "same", method="direct", **kw).numpy()
        out = trueconv.convolve(xt, kt, "same", method=method, **kw).numpy()
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
        fin = np.isfinite(ref)
        assert fin.any() or not np.isfinite(fill)
        np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(np.sign(out[np.isinf(out)]), np.sign(ref[np.isinf(ref)]))
        if method == "fft":  # the padded extension ran exactly where nothing was to place
            assert calls == ([1] if bad is None and np.isfinite(fill) else []), (bad, fill)
        calls.clear()


@given(
    st.sampled_from(NON_FILL),
    st.integers(1, 9),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_pad_runs_rebuild_source_index(boundary, n, before, after):
    """Each side's runs, expanded, are source_index on that side."""
    want = source_index(n, before, after, boundary).tolist()
    got = list(want)
    for first, runs in _pad_runs(n, before, after, boundary):
        for pos, start, length, kind in runs:
            if kind == boundary_module._ASCENDING:
                got[first + pos : first + pos + length] = range(start, start + length)
            elif kind == boundary_module._DESCENDING:
                got[first + pos : first + pos + length] = range(start + length - 1, start - 1, -1)
            else:
                got[first + pos : first + pos + length] = [start] * length
            covered = set(range(first + pos, first + pos + length))
            assert covered <= set(range(before)) | set(range(before + n, before + n + after))
    assert got == want
    total = sum(r[2] for _, runs in _pad_runs(n, before, after, boundary) for r in runs)
    assert total == before + after


@pytest.mark.parametrize("boundary", NON_FILL)
def test_extend_conj_and_neg_views(boundary):
    """Lazily conjugated / negated views are resolved by the copies."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    xt = torch.from_numpy(x)
    pads = ((2, 5), (4, 1))
    for view, ref in ((xt.conj(), np.conj(x)), (xt.conj().imag, np.conj(x).imag)):
        with _in_place():
            got = extend(view, (0, 1), pads, boundary)
        np.testing.assert_array_equal(to_numpy(got), np_pad(ref, pads, boundary))


@pytest.mark.parametrize("boundary", NON_FILL)
def test_extend_paths_agree(boundary):
    """The in-place path, the index_select path (autograd recording) and the slices of the
    compiled path give identical results, also on a channels_last batch."""
    x = torch.randn(2, 3, 5, 4).to(memory_format=torch.channels_last)
    dims, pads = (2, 3), ((3, 7), (6, 2))
    with _in_place():
        fast = extend(x, dims, pads, boundary)
    recorded = extend(x.clone().requires_grad_(), dims, pads, boundary)
    assert recorded.grad_fn is not None  # the gather path ran
    assert torch.equal(fast, recorded.detach())
    sliced = x
    for d, (b, a) in zip(dims, pads):
        parts = [
            sliced.narrow(d, s, n).flip(d) if f else sliced.narrow(d, s, n)
            for s, n, f in boundary_module._runs(x.shape[d], b, a, boundary)
        ]
        sliced = torch.cat(parts, d)
    assert torch.equal(fast, sliced)


def test_extend_path_choice():
    """In place only where nothing records: not under autograd, forward AD, torch.func."""
    ok = boundary_module._in_place_ok
    x = torch.randn(3, 4)
    assert ok(x)
    leaf = x.clone().requires_grad_()
    assert not ok(leaf)
    with torch.no_grad():
        assert ok(leaf)
    with torch.inference_mode():
        assert ok(torch.randn(3, 4))
    with torch.autograd.forward_ad.dual_level():
        assert not ok(x)
    seen = []
    torch.func.vmap(lambda t: seen.append(ok(t)) or t)(x)
    assert seen == [False]


def test_extend_small_inputs_gather(monkeypatch):
    """Below MIN_IN_PLACE elements the gathers run, from it on the copies; same values."""
    ran = []
    real = boundary_module._extend_in_place
    monkeypatch.setattr(boundary_module, "_extend_in_place", lambda *a: ran.append(1) or real(*a))
    n = boundary_module.MIN_IN_PLACE
    small, large = torch.randn(n - 1), torch.randn(n)
    got = extend(small, (0,), ((3, 4),), "reflect")
    assert ran == []
    np.testing.assert_array_equal(to_numpy(got), np.pad(to_numpy(small), (3, 4), "reflect"))
    got = extend(large, (0,), ((3, 4),), "reflect")
    assert ran == [1]
    np.testing.assert_array_equal(to_numpy(got), np.pad(to_numpy(large), (3, 4), "reflect"))


@pytest.mark.parametrize("boundary", NON_FILL)
def test_extend_gradcheck(boundary):
    """The recorded path (index_select) differentiates to np.pad's adjoint, twice."""
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def f(t):
        return extend(t, (0, 1), ((2, 7), (5, 1)), boundary)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.filterwarnings("error:There is a performance drop")  # a missing batching rule
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch.func.jvp's own
@pytest.mark.parametrize("boundary", NON_FILL)
def test_extend_under_torch_func(boundary):
    """vmap, grad and jvp see the gather path and agree with the eager result."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    dims, pads = (0, 1), ((4, 2), (1, 6))
    batched = torch.func.vmap(lambda t: extend(t, dims, pads, boundary))(x)
    for i in range(2):
        assert torch.equal(batched[i], extend(x[i], dims, pads, boundary))
    w = torch.randn(extend(x[0], dims, pads, boundary).shape, dtype=torch.float64)
    g = torch.func.grad(lambda t: (extend(t, dims, pads, boundary) * w).sum())(x[0])
    xr = x[0].clone().requires_grad_()
    (extend(xr, dims, pads, boundary) * w).sum().backward()
    assert torch.equal(g, xr.grad)
    v = torch.randn_like(x[0])
    out, tangent = torch.func.jvp(lambda t: extend(t, dims, pads, boundary), (x[0],), (v,))
    assert torch.equal(out, extend(x[0], dims, pads, boundary))
    assert torch.equal(tangent, extend(v, dims, pads, boundary))
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x[0], v)
        unpacked = torch.autograd.forward_ad.unpack_dual(extend(dual, dims, pads, boundary))
        assert torch.equal(unpacked.tangent, tangent)


def test_extend_inference_and_meta():
    x = torch.randn(3, 5)
    with torch.inference_mode(), _in_place():
        got = extend(x, (0, 1), ((2, 2), (9, 0)), "reflect")
    np.testing.assert_array_equal(to_numpy(got), np.pad(to_numpy(x), ((2, 2), (9, 0)), "reflect"))
    with _in_place():
        meta = extend(torch.empty(3, 5, device="meta"), (0, 1), ((2, 2), (9, 0)), "wrap")
    assert meta.device.type == "meta"
    assert tuple(meta.shape) == (7, 14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("boundary", NON_FILL)
def test_extend_cuda(boundary):
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    dims, pads = (1, 2), ((3, 9), (0, 4))
    with _in_place():
        got = extend(x.cuda().transpose(1, 2).contiguous().transpose(1, 2), dims, pads, boundary)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), extend(x, dims, pads, boundary))


# --- convolve(boundary=...) against scipy.signal.convolve2d --------------------------------

SHAPES_2D = [
    ((6, 7), (3, 3)),
    ((6, 7), (2, 4)),
    ((5, 5), (1, 2)),
    ((3, 2), (5, 6)),  # kernel larger than the input: pads longer than the input
    ((4, 6), (4, 1)),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", sorted(SCIPY_2D))
@pytest.mark.parametrize(("xs", "ks"), SHAPES_2D)
def test_against_convolve2d(xs, ks, boundary, method):
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    fill = 0.75
    for mode in ("full", "same"):
        ref = scipy.signal.convolve2d(x, k, mode, boundary=SCIPY_2D[boundary], fillvalue=fill)
        out = trueconv.convolve(
            torch.from_numpy(x),
            torch.from_numpy(k),
            mode,
            boundary=boundary,
            fill_value=fill,
            method=method,
        )
        assert tuple(out.shape) == ref.shape, mode
        assert rel_err(out, ref) < TOL, mode


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize("boundary", sorted(SCIPY_2D))
def test_against_convolve2d_complex(boundary, method):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6)) + 1j * rng.standard_normal((5, 6))
    k = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    fill = 1 - 2j
    for mode in ("full", "same"):
        ref = scipy.signal.convolve2d(x, k, mode, boundary=SCIPY_2D[boundary], fillvalue=fill)
        out = trueconv.convolve(
            torch.from_numpy(x),
            torch.from_numpy(k),
            mode,
            boundary=boundary,
            fill_value=fill,
            method=method,
        )
        assert rel_err(out, ref) < REL_TOL[torch.complex128], mode


# --- every boundary against np.pad + scipy 'valid' ------------------------------------------


def recipe(x: np.ndarray, k: np.ndarray, mode: str, boundary: str, axes, fill_value=0):
    """The independent oracle: extend with np.pad, then scipy's 'valid' convolution."""
    pads = [(0, 0)] * x.ndim
    for a in axes:
        kk = k.shape[a]
        pads[a] = (kk - 1, kk - 1) if mode == "full" else (kk - 1 - (kk - 1) // 2, (kk - 1) // 2)
    if np.iscomplexobj(k) or isinstance(fill_value, complex):
        x = x.astype(np.complex128)
    return scipy.signal.convolve(np_pad(x, pads, boundary, fill_value), k, "valid", "direct")


RECIPE_SHAPES = [
    ((9,), (3,)),
    ((9,), (4,)),
    ((3,), (8,)),  # pads of 7 on a length-3 input: several periods
    ((1,), (4,)),
    ((2,), (9,)),
    ((5, 6), (3, 2)),
    ((2, 3), (6, 7)),
    ((4, 3, 5), (2, 3, 2)),
    ((2, 2, 3), (4, 5, 3)),
]


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(("xs", "ks"), RECIPE_SHAPES)
def test_against_np_pad_recipe(xs, ks, boundary, method):
    rng = np.random.default_rng(5)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    fill = -1.25
    for mode in ("full", "same"):
        ref = recipe(x, k, mode, boundary, range(x.ndim), fill)
        out = trueconv.convolve(
            torch.from_numpy(x),
            torch.from_numpy(k),
            mode,
            boundary=boundary,
            fill_value=fill,
            method=method,
        )
        assert tuple(out.shape) == ref.shape, mode
        assert rel_err(out, ref) < TOL, mode


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_recipe_with_batch_dims(boundary, method):
    """A 1-D kernel on a batch of rows: only the filtered dim is extended."""
    rng = np.random.default_rng(6)
    x, k = rng.standard_normal((2, 3, 5)), rng.standard_normal((4,))
    for mode in ("full", "same"):
        ref = recipe(x, k[None, None], mode, boundary, [2], fill_value=0.5)
        out = trueconv.convolve(
            torch.from_numpy(x),
            torch.from_numpy(k),
            mode,
            boundary=boundary,
            fill_value=0.5,
            method=method,
        )
        assert rel_err(out, ref) < TOL, mode


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_recipe_with_explicit_dims(boundary, method):
    """dims=(0,) on a (7, 3) input with per-column kernels."""
    rng = np.random.default_rng(7)
    x, k = rng.standard_normal((7, 3)), rng.standard_normal((3, 3))
    out = trueconv.convolve(
        torch.from_numpy(x), torch.from_numpy(k), "same", dims=0, boundary=boundary, method=method
    )
    ref = np.stack(
        [recipe(x[:, c], k[:, c], "same", boundary, [0]) for c in range(3)],
        axis=1,
    )
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_correlate_boundary_against_recipe(boundary, method):
    """correlate with a boundary = the np.pad recipe with the flipped, conjugated kernel."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5))
    k = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for mode in ("full", "same"):
        ref = recipe(x, np.conj(k[::-1, ::-1]), mode, boundary, range(2), fill_value=1j)
        out = trueconv.correlate(
            torch.from_numpy(x),
            torch.from_numpy(k),
            mode,
            boundary=boundary,
            fill_value=1j,
            method=method,
        )
        assert rel_err(out, ref) < REL_TOL[torch.complex128], mode


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize(
    ("x_complex", "k_complex", "fill"),
    [(True, False, 2 + 3j), (False, True, -1j), (True, True, 0.5 - 0.5j), (True, True, 0)],
)
def test_complex_fill(x_complex, k_complex, fill, method):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 5)) + (1j * rng.standard_normal((4, 5)) if x_complex else 0)
    k = rng.standard_normal((2, 3)) + (1j * rng.standard_normal((2, 3)) if k_complex else 0)
    for mode in ("full", "same"):
        ref = recipe(x, k, mode, "fill", range(2), fill_value=complex(fill))
        out = trueconv.convolve(
            torch.from_numpy(x), torch.from_numpy(k), mode, fill_value=fill, method=method
        )
        assert out.dtype == torch.complex128
        assert rel_err(out, ref) < REL_TOL[torch.complex128], mode


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_integer_boundaries_exact(dtype, boundary):
    rng = np.random.default_rng(10)
    x = rng.integers(0, 6, (4, 6))
    k = rng.integers(0, 4, (3, 2))
    for mode in ("full", "same"):
        ref = recipe(x, k, mode, boundary, range(2), fill_value=2)
        out = trueconv.convolve(
            torch.tensor(x, dtype=dtype),
            torch.tensor(k, dtype=dtype),
            mode,
            boundary=boundary,
            fill_value=2,
        )
        assert out.dtype == dtype
        np.testing.assert_array_equal(to_numpy(out), ref.astype(to_numpy(out).dtype), mode)


# --- aliases and 'valid' ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize(("alias", "canonical"), sorted(BOUNDARY_ALIASES.items()))
def test_aliases_are_identical(alias, canonical, mode):
    rng = np.random.default_rng(11)
    x, k = rng.standard_normal((3, 5)), rng.standard_normal((2, 4))
    xt, kt = torch.from_numpy(x), torch.from_numpy(k)
    ref = recipe(x, k, mode, canonical, range(2), fill_value=0.25)
    for method in METHODS:
        a = trueconv.convolve(xt, kt, mode, boundary=alias, fill_value=0.25, method=method)
        c = trueconv.convolve(xt, kt, mode, boundary=canonical, fill_value=0.25, method=method)
        assert torch.equal(a, c), method
        assert rel_err(a, ref) < TOL, method
        ca = trueconv.correlate(xt, kt, mode, boundary=alias, fill_value=0.25, method=method)
        cc = trueconv.correlate(xt, kt, mode, boundary=canonical, fill_value=0.25, method=method)
        assert torch.equal(ca, cc), method


VALID_BOUNDARIES = [
    *((b, 0) for b in BOUNDARIES),
    *((a, 0) for a in BOUNDARY_ALIASES),
    ("fill", 7.5),
    ("constant", -3),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("xs", "ks"), [((9,), (4,)), ((3,), (7,)), ((5, 6), (2, 3)), ((2, 3), (4, 3))]
)
def test_valid_ignores_boundary(xs, ks, method):
    rng = np.random.default_rng(12)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    ref = scipy.signal.convolve(x, k, "valid", "direct")
    for boundary, fill in VALID_BOUNDARIES:
        out = trueconv.convolve(
            torch.from_numpy(x),
            torch.from_numpy(k),
            "valid",
            boundary=boundary,
            fill_value=fill,
            method=method,
        )
        assert tuple(out.shape) == ref.shape, (boundary, fill)
        assert rel_err(out, ref) < TOL, (boundary, fill)


@pytest.mark.parametrize("method", METHODS)
def test_nonzero_fill_with_kernel_larger_than_input(method):
    """'full' with fill != 0 and a larger kernel must not swap the operands."""
    x, k = np.array([1.0, 2.0]), np.array([1.0, -1.0, 2.0, 0.5, 3.0])
    for mode in ("full", "same"):
        ref = recipe(x, k, mode, "fill", [0], fill_value=4.0)
        out = trueconv.convolve(
            torch.from_numpy(x), torch.from_numpy(k), mode, fill_value=4.0, method=method
        )
        assert rel_err(out, ref) < TOL, mode


@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=3),
    st.lists(st.integers(1, 8), min_size=3, max_size=3),
    st.sampled_from(BOUNDARIES),
    st.sampled_from(["full", "same"]),
    st.sampled_from(METHODS),
    st.integers(0, 2**32 - 1),
)
def test_random_against_recipe(xs, ks_pool, boundary, mode, method, seed):
    ks = ks_pool[: len(xs)]
    rng = np.random.default_rng(seed)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    ref = recipe(x, k, mode, boundary, range(x.ndim), fill_value=1.5)
    out = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(k),
        mode,
        boundary=boundary,
        fill_value=1.5,
        method=method,
    )
    assert rel_err(out, ref) < TOL


def test_input_not_modified_by_extension():
    x = torch.arange(6.0).reshape(2, 3)
    before = x.clone()
    for boundary in BOUNDARIES:
        out = trueconv.convolve(x, torch.ones(3, 3), "same", boundary=boundary, fill_value=9)
        ref = recipe(to_numpy(before), np.ones((3, 3)), "same", boundary, range(2), 9)
        assert rel_err(out, ref) < REL_TOL[torch.float32]
    assert torch.equal(x, before)
