"""Algebraic properties of the signal API, on shapes, modes, methods, boundaries and dtypes drawn
by hypothesis.

Each property is checked between trueconv calls *and* against an oracle we did not write:
``scipy.signal.convolve(method='direct')`` in float64/complex128 on the drawn data, with the
boundary applied by ``numpy.pad`` beforehand (see :func:`oracle`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv._methods import REGISTRY

METHODS = sorted(REGISTRY)
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symmetric", "reflect", "replicate")
NP_PAD_MODE = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}
FLOAT_DTYPES = (torch.float64, torch.float32, torch.complex128)


# Heavier properties run a fraction of the profile's examples (40 under 'ci').
_FEWER = settings(max_examples=max(10, settings.default.max_examples // 2))


# --------------------------------------------------------------------------------------------
# The oracle: scipy.signal.convolve (direct) per batch item, boundary applied with numpy.pad
# --------------------------------------------------------------------------------------------


def _out_len(n: int, k: int, mode: str) -> int:
    if n == 0 or k == 0:
        return 0
    return {"full": n + k - 1, "same": n, "valid": abs(n - k) + 1}[mode]


def _oracle_one(x, k, mode, boundary, fill_value):
    """One signal, one kernel, same ndim; every dim convolved."""
    if any(n == 0 or m == 0 for n, m in zip(x.shape, k.shape)):
        return np.zeros([_out_len(n, m, mode) for n, m in zip(x.shape, k.shape)], x.dtype)
    if mode == "valid":
        return scipy.signal.convolve(x, k, mode="valid", method="direct")
    if mode == "full":
        pads = [(m - 1, m - 1) for m in k.shape]
    else:  # numpy/scipy 'same': the slice of 'full' that starts at (k - 1) // 2
        pads = [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in k.shape]
    kw = {"constant_values": fill_value} if boundary == "fill" else {}
    xp = np.pad(x, pads, mode=NP_PAD_MODE[boundary], **kw)
    return scipy.signal.convolve(xp, k, mode="valid", method="direct")


def oracle(x, k, mode="full", *, dims=None, boundary="fill", fill_value=0, correlate=False):
    """Float64/complex128 reference for ``trueconv.convolve``/``correlate`` with broadcasting."""
    x = to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)
    k = to_numpy(k) if isinstance(k, torch.Tensor) else np.asarray(k)
    cplx = np.iscomplexobj(x) or np.iscomplexobj(k) or isinstance(fill_value, complex)
    dt = np.complex128 if cplx else np.float64
    x, k = x.astype(dt), k.astype(dt)
    if dims is None:
        ndim, conv = x.ndim, list(range(x.ndim - k.ndim, x.ndim))
    else:
        ndim = max(x.ndim, k.ndim)
        dims = (dims,) if isinstance(dims, int) else dims
        conv = sorted(d % ndim for d in dims)
    x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    k = k.reshape((1,) * (ndim - k.ndim) + k.shape)
    nd = len(conv)
    trailing = list(range(ndim - nd, ndim))
    x, k = np.moveaxis(x, conv, trailing), np.moveaxis(k, conv, trailing)
    batch = np.broadcast_shapes(x.shape[: ndim - nd], k.shape[: ndim - nd])
    x = np.broadcast_to(x, batch + x.shape[ndim - nd :])
    k = np.broadcast_to(k, batch + k.shape[ndim - nd :])
    if correlate:
        k = np.conj(k[(Ellipsis, *([slice(None, None, -1)] * nd))])
    out_sp = tuple(_out_len(n, m, mode) for n, m in zip(x.shape[ndim - nd :], k.shape[ndim - nd :]))
    out = np.zeros(batch + out_sp, dt)
    for idx in np.ndindex(*batch):
        out[idx] = _oracle_one(x[idx], k[idx], mode, boundary, fill_value)
    return np.moveaxis(out, trailing, conv)


def assert_close(out, ref, dtype, factor=1.0):
    tol = REL_TOL.get(dtype, 0.0) * factor
    err = rel_err(out, ref)
    assert err <= tol, f"relative error {err:.3g} > {tol:.3g}"


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


def make(rng: np.random.Generator, shape, dtype: torch.dtype) -> torch.Tensor:
    if dtype.is_complex:
        a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    elif dtype.is_floating_point:
        a = rng.standard_normal(shape)
    else:
        a = rng.integers(-4, 5, size=shape)
    return torch.as_tensor(np.asarray(a)).to(dtype)


@st.composite
def conv_shapes(draw, mode: str, max_nd: int = 3, max_n: int = 6, max_k: int = 5):
    """Sizes of signal and kernel along 1..max_nd convolved dims; 'valid' keeps one dominant."""
    nd = draw(st.integers(1, max_nd))
    ns = draw(st.lists(st.integers(1, max_n), min_size=nd, max_size=nd))
    ks = draw(st.lists(st.integers(1, max_k), min_size=nd, max_size=nd))
    if mode == "valid" and not (
        all(n >= k for n, k in zip(ns, ks)) or all(k >= n for n, k in zip(ns, ks))
    ):
        if draw(st.booleans()):
            ks = [min(n, k) for n, k in zip(ns, ks)]
        else:
            ks = [max(n, k) for n, k in zip(ns, ks)]
    return tuple(ns), tuple(ks)


seeds = st.integers(0, 2**32 - 1)
modes = st.sampled_from(MODES)
boundaries = st.sampled_from(BOUNDARIES)


def fill_values(dtype: torch.dtype):
    if dtype.is_complex:
        return st.sampled_from([0, 1.5, -0.5 + 2j])
    if dtype.is_floating_point:
        return st.sampled_from([0, 1.5, -2.0])
    return st.sampled_from([0, 3, -1])


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data(), seed=seeds, dtype=st.sampled_from((*FLOAT_DTYPES, torch.int64)))
def test_commutative_in_full(method, data, seed, dtype):
    ns, ks = data.draw(conv_shapes("full"))
    rng = np.random.default_rng(seed)
    x, k = make(rng, ns, dtype), make(rng, ks, dtype)
    xk = trueconv.convolve(x, k, "full", method=method)
    kx = trueconv.convolve(k, x, "full", method=method)
    ref = oracle(x, k, "full")
    if dtype.is_floating_point or dtype.is_complex:
        assert_close(xk, kx, dtype, 10)
        assert_close(xk, ref, dtype)
    else:
        assert torch.equal(xk, kx)
        np.testing.assert_array_equal(to_numpy(xk), ref)


@pytest.mark.parametrize("method", METHODS)
@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    boundary=boundaries,
    dtype=st.sampled_from(FLOAT_DTYPES),
    ab=st.tuples(st.sampled_from([2.0, -0.5, 3.0]), st.sampled_from([1.0, -1.5, 0.25])),
)
def test_linear_in_input(method, data, seed, mode, boundary, dtype, ab):
    ns, ks = data.draw(conv_shapes(mode))
    rng = np.random.default_rng(seed)
    x1, x2, k = make(rng, ns, dtype), make(rng, ns, dtype), make(rng, ks, dtype)
    a, b = ab

    def conv(x):
        return trueconv.convolve(x, k, mode, method=method, boundary=boundary)

    lhs = conv(a * x1 + b * x2)
    rhs = a * conv(x1) + b * conv(x2)
    assert_close(lhs, rhs, dtype, 10)
    assert_close(conv(x1), oracle(x1, k, mode, boundary=boundary), dtype)


@pytest.mark.parametrize("method", METHODS)
@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    boundary=boundaries,
    dtype=st.sampled_from(FLOAT_DTYPES),
    ab=st.tuples(st.sampled_from([2.0, -0.5, 3.0]), st.sampled_from([1.0, -1.5, 0.25])),
)
def test_linear_in_kernel(method, data, seed, mode, boundary, dtype, ab):
    ns, ks = data.draw(conv_shapes(mode))
    fill = data.draw(fill_values(dtype))
    rng = np.random.default_rng(seed)
    x, k1, k2 = make(rng, ns, dtype), make(rng, ks, dtype), make(rng, ks, dtype)
    a, b = ab

    def conv(k):
        return trueconv.convolve(x, k, mode, method=method, boundary=boundary, fill_value=fill)

    lhs = conv(a * k1 + b * k2)
    rhs = a * conv(k1) + b * conv(k2)
    assert_close(lhs, rhs, dtype, 10)
    ref = oracle(x, k1, mode, boundary=boundary, fill_value=fill)
    assert_close(conv(k1), ref, dtype)


def _crop_full(full: np.ndarray, ns, ks, mode: str) -> np.ndarray:
    """The documented window of 'full' for 'same' and 'valid'."""
    if mode == "full":
        return full
    index = []
    for n, k in zip(ns, ks):
        if mode == "same":
            index.append(slice((k - 1) // 2, (k - 1) // 2 + n))
        else:
            index.append(slice(min(n, k) - 1, max(n, k)))
    return full[tuple(index)]


@pytest.mark.parametrize("method", [*METHODS, "auto"])
@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    dtype=st.sampled_from((*FLOAT_DTYPES, torch.int64)),
)
def test_impulse_is_shift(method, data, seed, mode, dtype):
    """A unit impulse at ``p`` reproduces the kernel at offset ``p`` of 'full' (and vice versa)."""
    ns, ks = data.draw(conv_shapes(mode))
    p = tuple(data.draw(st.integers(0, n - 1)) for n in ns)
    rng = np.random.default_rng(seed)
    k = make(rng, ks, dtype)
    delta = torch.zeros(ns, dtype=dtype)
    delta[p] = 1

    full = np.zeros([n + m - 1 for n, m in zip(ns, ks)], dtype=to_numpy(k).dtype)
    full[tuple(slice(q, q + m) for q, m in zip(p, ks))] = to_numpy(k)
    expected = _crop_full(full, ns, ks, mode)
    out = trueconv.convolve(delta, k, mode, method=method)
    assert out.dtype == dtype
    assert tuple(out.shape) == expected.shape
    # a sum of products with exact zeros is exact for real direct sums; torch's complex conv
    # runs as three real convolutions (Gauss), which round
    exact = not (dtype.is_floating_point or dtype.is_complex) or (
        method == "direct" and not dtype.is_complex
    )
    if exact:
        np.testing.assert_array_equal(to_numpy(out), expected)
    else:
        assert_close(out, expected, dtype)

    # the impulse as the kernel shifts the signal: 'full' holds the signal at offset p
    x = make(rng, ks, dtype)  # the signal takes the kernel's sizes here
    full = np.zeros([n + m - 1 for n, m in zip(ns, ks)], dtype=to_numpy(x).dtype)
    full[tuple(slice(q, q + m) for q, m in zip(p, ks))] = to_numpy(x)
    out = trueconv.convolve(x, delta, "full", method=method)
    if exact:
        np.testing.assert_array_equal(to_numpy(out), full)
    else:
        assert_close(out, full, dtype)


@pytest.mark.parametrize("method", METHODS)
@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    boundary=boundaries,
    dtype=st.sampled_from((torch.complex128, torch.complex64)),
)
def test_correlate_is_convolve_with_flipped_conjugate(method, data, seed, mode, boundary, dtype):
    ns, ks = data.draw(conv_shapes(mode))
    fill = data.draw(fill_values(dtype))
    rng = np.random.default_rng(seed)
    x, k = make(rng, ns, dtype), make(rng, ks, dtype)
    kw = {"method": method, "boundary": boundary, "fill_value": fill}
    corr = trueconv.correlate(x, k, mode, **kw)
    conv = trueconv.convolve(x, k.flip(list(range(k.ndim))).conj(), mode, **kw)
    assert corr.dtype == dtype
    assert_close(corr, conv, dtype, 10)
    ref = oracle(x, k, mode, boundary=boundary, fill_value=fill, correlate=True)
    assert_close(corr, ref, dtype)
    if boundary == "fill" and fill == 0:
        assert_close(corr, scipy.signal.correlate(to_numpy(x), to_numpy(k), mode), dtype)


@pytest.mark.parametrize("method", METHODS)
@_FEWER
@given(data=st.data(), seed=seeds, dtype=st.sampled_from((*FLOAT_DTYPES, torch.int64)))
def test_associative_in_full(method, data, seed, dtype):
    nd = data.draw(st.integers(1, 3))
    sizes = st.lists(st.integers(1, 4), min_size=nd, max_size=nd)
    ns, as_, bs = data.draw(sizes), data.draw(sizes), data.draw(sizes)
    rng = np.random.default_rng(seed)
    x, a, b = make(rng, ns, dtype), make(rng, as_, dtype), make(rng, bs, dtype)
    left = trueconv.convolve(trueconv.convolve(x, a, method=method), b, method=method)
    right = trueconv.convolve(x, trueconv.convolve(a, b, method=method), method=method)
    ref = oracle(oracle(x, a), b)
    if dtype.is_floating_point or dtype.is_complex:
        assert_close(left, right, dtype, 10)
        assert_close(left, ref, dtype, 10)
    else:
        assert torch.equal(left, right)
        np.testing.assert_array_equal(to_numpy(left), ref)


@pytest.mark.parametrize("method", METHODS)
@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    boundary=boundaries,
    dtype=st.sampled_from(FLOAT_DTYPES),
    kind=st.sampled_from(("shared", "shared_dims", "per_signal", "outer")),
)
def test_batch_equals_per_item_calls(method, data, seed, mode, boundary, dtype, kind):
    """A batched call equals one call per signal, for every way kernels can be shared."""
    ns, ks = data.draw(conv_shapes(mode))
    nd = len(ns)
    nb = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    kw = {"method": method, "boundary": boundary}

    if kind == "shared":  # one kernel for all: dims=None aligns it with the trailing dims
        x, k = make(rng, (nb, *ns), dtype), make(rng, ks, dtype)
        out = trueconv.convolve(x, k, mode, **kw)
        items = [trueconv.convolve(x[i], k, mode, **kw) for i in range(nb)]
        assert_close(out, torch.stack(items), dtype, 10)
        assert_close(out, oracle(x, k, mode, boundary=boundary), dtype)
    else:
        if kind == "shared_dims":  # one kernel for all, explicit dims
            x, k = make(rng, (nb, *ns), dtype), make(rng, ks, dtype)
        elif kind == "per_signal":
            x, k = make(rng, (nb, *ns), dtype), make(rng, (nb, *ks), dtype)
        else:  # signals along dim 0, kernels along dim 1: every pair
            x, k = make(rng, (nb, 1, *ns), dtype), make(rng, (2, *ks), dtype)
        # the convolved dims go to a drawn position (dims need not be trailing)
        ndim = x.ndim
        pos = data.draw(st.integers(0, ndim - nd))
        order = list(range(ndim - nd))
        spatial = list(range(ndim - nd, ndim))
        perm = order[:pos] + spatial + order[pos:]
        xp = x.permute(perm)
        kp = k.reshape((1,) * (ndim - k.ndim) + tuple(k.shape)).permute(perm)
        dims = tuple(range(pos, pos + nd))
        out = trueconv.convolve(xp, kp, mode, dims=dims, **kw)
        out = out.permute([perm.index(d) for d in range(ndim)])  # back to (*batch, *spatial)
        if kind == "shared_dims":
            items = [trueconv.convolve(x[i], k, mode, **kw) for i in range(nb)]
            assert_close(out, torch.stack(items), dtype, 10)
        elif kind == "per_signal":
            items = [trueconv.convolve(x[i], k[i], mode, **kw) for i in range(nb)]
            assert_close(out, torch.stack(items), dtype, 10)
        else:
            items = [
                torch.stack([trueconv.convolve(x[i, 0], k[j], mode, **kw) for j in range(2)])
                for i in range(nb)
            ]
            assert_close(out, torch.stack(items), dtype, 10)
        ref = oracle(xp, kp, mode, dims=dims, boundary=boundary)
        assert_close(out, np.transpose(ref, [perm.index(d) for d in range(ndim)]), dtype)


@given(
    data=st.data(),
    seed=seeds,
    mode=modes,
    boundary=boundaries,
    dtype=st.sampled_from((torch.float64, torch.complex128, torch.int32)),
    fname=st.sampled_from(("convolve", "correlate")),
    method=st.sampled_from([*METHODS, "auto"]),
    numpy_in=st.booleans(),
    numpy_k=st.booleans(),
)
def test_inputs_unchanged(data, seed, mode, boundary, dtype, fname, method, numpy_in, numpy_k):
    """Inputs are bitwise unchanged by the call, and by writing into its result afterwards."""
    ns, ks = data.draw(conv_shapes(mode))
    rng = np.random.default_rng(seed)
    x, k = make(rng, (2, *ns), dtype), make(rng, ks, dtype)
    x_in = to_numpy(x).copy() if numpy_in else x.clone()
    k_in = to_numpy(k).copy() if numpy_k else k.clone()
    fn = getattr(trueconv, fname)
    out = fn(x_in, k_in, mode, method=method, boundary=boundary)
    out.add_(1)  # the result must not alias an input either
    for given_, orig in ((x_in, x), (k_in, k)):
        if isinstance(given_, np.ndarray):
            np.testing.assert_array_equal(given_, to_numpy(orig))
        else:
            assert torch.equal(given_, orig)
            assert given_.dtype == orig.dtype
    ref = oracle(x, k, mode, boundary=boundary, correlate=fname == "correlate") + 1
    if dtype.is_complex:
        assert_close(out, ref, dtype)
    else:
        # exact paths for integers; fft rounds a float64 result of small integers: exact too
        np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-12, atol=1e-9)


@st.composite
def broadcast_problem(draw, mode):
    """Operand shapes with up to 2 batch dims that broadcast, and ``dims`` (None or explicit)."""
    ns, ks = draw(conv_shapes(mode, max_n=5, max_k=4))
    if draw(st.booleans()):  # an empty convolved dim in one operand: zero-length output dim
        i = draw(st.integers(0, len(ns) - 1))
        if draw(st.booleans()):
            ns = (*ns[:i], 0, *ns[i + 1 :])
        else:
            ks = (*ks[:i], 0, *ks[i + 1 :])
    nbatch = draw(st.integers(0, 2))
    xb, kb = [], []
    for _ in range(nbatch):
        s = draw(st.integers(2, 3))
        xb.append(draw(st.sampled_from([s, 1])))
        kb.append(draw(st.sampled_from([s, 1])))
    # fewer leading dims on one operand: aligned by trailing dims, broadcast by torch rules
    x_drop = draw(st.integers(0, nbatch))
    k_drop = draw(st.integers(0, nbatch))
    explicit = nbatch > 0 or draw(st.booleans())
    if not explicit:  # dims=None: the kernel's dims are the convolved ones
        return tuple(xb) + ns, ks, None
    nd, ndim = len(ns), nbatch + len(ns)
    pos = draw(st.integers(0, nbatch))
    x_shape = xb[:pos] + list(ns) + xb[pos:]
    k_shape = kb[:pos] + list(ks) + kb[pos:]
    # only leading batch dims may be left off (they then broadcast as size 1)
    x_drop, k_drop = min(x_drop, pos), min(k_drop, pos)
    x_shape, k_shape = x_shape[x_drop:], k_shape[k_drop:]
    common = ndim - min(x_drop, k_drop)  # dims index the layout of the longer operand
    dims = tuple(range(pos - (ndim - common), pos - (ndim - common) + nd))
    if draw(st.booleans()):
        dims = tuple(d - common for d in dims)  # negative dims index the same layout
    return tuple(x_shape), tuple(k_shape), dims


def _expected_shape(x_shape, k_shape, mode, dims):
    """The documented output shape, derived independently of trueconv."""
    if dims is None:
        ndim = len(x_shape)
        conv = set(range(ndim - len(k_shape), ndim))
    else:
        ndim = max(len(x_shape), len(k_shape))
        conv = {d % ndim for d in dims}
    xs = (1,) * (ndim - len(x_shape)) + tuple(x_shape)
    ks = (1,) * (ndim - len(k_shape)) + tuple(k_shape)
    out = []
    for d in range(ndim):
        if d in conv:
            out.append(_out_len(xs[d], ks[d], mode))
        else:
            out.append(max(xs[d], ks[d]) if 1 in (xs[d], ks[d]) else xs[d])
    return tuple(out)


@pytest.mark.parametrize("method", [*METHODS, "auto"])
@given(data=st.data(), seed=seeds, mode=modes, boundary=boundaries)
def test_output_shape_is_the_documented_formula(method, data, seed, mode, boundary):
    x_shape, k_shape, dims = data.draw(broadcast_problem(mode))
    rng = np.random.default_rng(seed)
    x, k = make(rng, x_shape, torch.float64), make(rng, k_shape, torch.float64)
    out = trueconv.convolve(x, k, mode, dims=dims, method=method, boundary=boundary)
    expected = _expected_shape(x_shape, k_shape, mode, dims)
    assert tuple(out.shape) == expected
    assert out.dtype == torch.float64
    if math.prod(expected) and math.prod(expected) <= 400:
        ref = oracle(x, k, mode, dims=dims, boundary=boundary)
        assert_close(out, ref, torch.float64)
