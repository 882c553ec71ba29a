"""``trueconv.ndimage`` against ``scipy.ndimage``: every mode, origin, axes, dtype and filter
parameter drawn by hypothesis and compared with scipy in float64 (exact for integer outputs);
output handling, autograd, errors, and the documented differences, each shown against scipy.

Tolerances are scale-free: ``||out - ref|| <= tol * scale`` with ``scale`` the size the result
could have (``||x|| * sum|w|``), since a filter whose weights cancel (a derivative) can give a
result far smaller than its terms, known only to their rounding. ``tol`` is 1e-12 for float64
and complex128 (scipy computes in float64), 1e-5 for float32 and complex64 (trueconv computes
in float32, scipy in float64 stored as float32; observed errors stay near 1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trueconv
import trueconv.ndimage as tnd

MODES = (
    "reflect",
    "grid-mirror",
    "mirror",
    "nearest",
    "wrap",
    "grid-wrap",
    "constant",
    "grid-constant",
)
NP_PAD = {
    "reflect": "symmetric",
    "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
    "grid-wrap": "wrap",
    "constant": "constant",
    "grid-constant": "constant",
}
INT_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
FLOAT_DTYPES = ("float64", "float32")
COMPLEX_DTYPES = ("complex128", "complex64")
ALL_DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES, "bool")
TOL = {"float64": 1e-12, "complex128": 1e-12, "float32": 1e-5, "complex64": 1e-5}

FEW = settings(max_examples=60, deadline=None)
MANY = settings(max_examples=120, deadline=None)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def numpy_of(t: torch.Tensor) -> np.ndarray:
    assert isinstance(t, torch.Tensor), f"expected a tensor, got {type(t).__name__}"
    return t.detach().cpu().resolve_conj().numpy()


def check(got: torch.Tensor, ref: np.ndarray, scale: float = 0.0) -> None:
    """Same dtype and shape as scipy; integers and bools exact, floats within ``TOL``."""
    out = numpy_of(got)
    if ref.dtype == bool:  # scipy's bool holds the byte of a C cast: true where nonzero
        ref = ref.view(np.uint8) != 0
    assert out.dtype == ref.dtype, f"dtype {out.dtype} != scipy's {ref.dtype}"
    assert out.shape == ref.shape
    if ref.dtype.kind in "biu":
        bad = np.flatnonzero(out != ref)
        assert bad.size == 0, (
            f"{bad.size} differ, e.g. {out.ravel()[bad[:5]]} vs {ref.ravel()[bad[:5]]}"
        )
        return
    err = np.linalg.norm((out.astype(np.complex128) - ref).ravel())
    bound = TOL[ref.dtype.name] * max(scale, np.linalg.norm(ref.ravel().astype(np.complex128)))
    assert err <= bound, f"error {err:.3g} > {bound:.3g}"


def scale_of(x: np.ndarray, w: np.ndarray | float = 1.0, cval: complex = 0) -> float:
    """A bound on the size of a filter's result: ``||x|| * sum|w|`` (with the fill value)."""
    size = np.linalg.norm(x.astype(np.complex128).ravel()) + abs(cval) * np.sqrt(max(x.size, 1))
    return float(size * max(1.0, float(np.abs(np.asarray(w)).sum())))


def make(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("u"):
        return rng.integers(0, 30, shape).astype(dtype)
    if dtype.startswith("int"):
        return rng.integers(-30, 30, shape).astype(dtype)
    a = rng.standard_normal(shape) * 4
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def weights_of(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    if kind == "int":
        return rng.integers(-3, 4, shape).astype(np.int64)
    if kind == "quarters":
        return rng.integers(-8, 9, shape) / 4.0
    if kind == "complex":
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return rng.standard_normal(shape)


def reference(x, w, mode, cval, origins):
    """N-D correlation with ``numpy.pad`` extension, in float64/complex128 (the oracle where
    scipy.ndimage.correlate reads a wrong sample, see test_nd_reflect_far_extension)."""
    x = np.asarray(x, np.complex128)
    pads = [(k // 2 + o, k - 1 - (k // 2 + o)) for k, o in zip(w.shape, origins)]
    kw = {"constant_values": cval} if NP_PAD[mode] == "constant" else {}
    xp = np.pad(x, pads, mode=NP_PAD[mode], **kw)
    windows = np.lib.stride_tricks.sliding_window_view(xp, w.shape)
    return np.einsum(windows, [*range(2 * x.ndim)], w, [*range(x.ndim, 2 * x.ndim)])


def far_reflect(mode: str, shape, lengths, origins) -> bool:
    """Whether scipy.ndimage.correlate's reflect offsets misread (an extension of ``4 n`` or
    more before an axis of length ``n``)."""
    return NP_PAD[mode] == "symmetric" and any(
        k // 2 + o >= 4 * n for n, k, o in zip(shape, lengths, origins)
    )


seeds = st.integers(0, 2**32 - 1)
modes = st.sampled_from(MODES)
cvals = st.sampled_from([0.0, 2.0, -1.0, 0.5])


# --------------------------------------------------------------------------------------------
# correlate1d / convolve1d
# --------------------------------------------------------------------------------------------


@MANY
@given(
    seed=seeds,
    dtype=st.sampled_from(ALL_DTYPES),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    k=st.integers(1, 9),
    kind=st.sampled_from(["int", "quarters", "float", "complex"]),
    mode=modes,
    cval=cvals,
    data=st.data(),
)
def test_correlate1d_convolve1d(seed, dtype, shape, k, kind, mode, cval, data):
    """Every mode (incl. grid-*), every origin of the allowed range, kernels longer than the
    input, inputs of length 1 and 2, every dtype; integer outputs exact (truncated, wrapped)."""
    rng = np.random.default_rng(seed)
    x, w = make(rng, shape, dtype), weights_of(rng, k, kind)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    origin = data.draw(st.integers(-(k // 2), (k - 1) // 2))
    for name in ("correlate1d", "convolve1d"):
        ref = getattr(sp, name)(x, w, axis=axis, mode=mode, cval=cval, origin=origin)
        got = getattr(tnd, name)(torch.from_numpy(x), w, axis, None, mode, cval, origin)
        check(got, ref, scale_of(x, w, cval))


@FEW
@given(
    seed=seeds,
    dtype=st.sampled_from(FLOAT_DTYPES + INT_DTYPES),
    out_dtype=st.sampled_from(("float64", "float32", "int16", "uint8", "int64", "bool")),
    k=st.integers(1, 7),
    kind=st.sampled_from(["int", "quarters", "float"]),
    mode=modes,
)
def test_output_dtype(seed, dtype, out_dtype, k, kind, mode):
    """``output=`` a dtype: computed as scipy and stored in it (float inputs truncated into
    integer outputs, integer inputs computed in float64 for float outputs)."""
    rng = np.random.default_rng(seed)
    x, w = make(rng, (3, 5), dtype), weights_of(rng, k, kind)
    ref = sp.correlate1d(x, w, output=np.dtype(out_dtype), mode=mode)
    check(tnd.correlate1d(x, w, output=out_dtype, mode=mode), ref, scale_of(x, w))
    ref = sp.correlate(x, w[None, :], output=np.dtype(out_dtype), mode=mode)
    got = tnd.correlate(x, w[None, :], output=getattr(torch, out_dtype), mode=mode)
    check(got, ref, scale_of(x, w))
    for f, args in ((sp.gaussian_filter, (0.9,)), (sp.uniform_filter, (k,)), (sp.prewitt, ())):
        ref = f(x, *args, output=np.dtype(out_dtype), mode=mode)
        got = getattr(tnd, f.__name__)(x, *args, output=out_dtype, mode=mode)
        check(got, ref, 10 * scale_of(x))


# --------------------------------------------------------------------------------------------
# N-D correlate / convolve
# --------------------------------------------------------------------------------------------


@MANY
@given(
    seed=seeds,
    dtype=st.sampled_from(ALL_DTYPES),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    kind=st.sampled_from(["int", "quarters", "float", "complex"]),
    mode=modes,
    cval=cvals,
    data=st.data(),
)
def test_correlate_convolve(seed, dtype, shape, kind, mode, cval, data):
    """N-D, with ``axes`` (any subset, any order, negative), origins scalar or per axis (the
    whole allowed range), weights longer than the input."""
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype)
    ndim = len(shape)
    if data.draw(st.booleans()):
        axes = None
        filtered = list(range(ndim))
    else:
        filtered = data.draw(st.permutations(range(ndim)))[: data.draw(st.integers(1, ndim))]
        axes = tuple(a - ndim if data.draw(st.booleans()) else a for a in filtered)
    lengths = {a: data.draw(st.integers(1, 7)) for a in filtered}
    w = weights_of(rng, [lengths[a] for a in sorted(filtered)], kind)
    per_axis = data.draw(st.booleans())
    if per_axis:
        origin = [
            data.draw(st.integers(-(lengths[a] // 2), (lengths[a] - 1) // 2)) for a in filtered
        ]
    else:
        top = min(lengths.values())
        origin = data.draw(st.integers(-(top // 2), (top - 1) // 2))
    given_origin = origin if per_axis else [origin] * len(filtered)
    by_axis = dict(zip(filtered, given_origin))
    full = [lengths.get(a, 1) for a in range(ndim)]
    for name in ("correlate", "convolve"):
        # the correlation origins ndimage applies (convolve: negated, even lengths one less)
        corr = [
            0
            if a not in by_axis
            else by_axis[a]
            if name == "correlate"
            else -by_axis[a] - (1 - lengths[a] % 2)
            for a in range(ndim)
        ]
        got = getattr(tnd, name)(torch.from_numpy(x), w, None, mode, cval, origin, axes=axes)
        if far_reflect(mode, shape, full, corr):
            wc = w.reshape(full)
            wc = np.conj(wc) if name == "correlate" else wc[(slice(None, None, -1),) * ndim]
            ref = reference(x, wc, mode, cval, corr)
            if x.dtype.kind in "biu" or np.iscomplexobj(x) or np.iscomplexobj(w):
                continue  # the float64 oracle covers the real floating-point cases
            ref = ref.real.astype(x.dtype)
        else:
            # scipy pairs origins with `axes` unless axes names every axis (then with axis
            # 0, 1, ...): see test_origins_follow_axes
            sp_origin = [by_axis[a] for a in range(ndim)] if len(filtered) == ndim else origin
            ref = getattr(sp, name)(x, w, mode=mode, cval=cval, origin=sp_origin, axes=axes)
        check(got, ref, scale_of(x, w, cval))


# --------------------------------------------------------------------------------------------
# Gaussian, uniform, sobel, prewitt, laplace
# --------------------------------------------------------------------------------------------


@MANY
@given(
    seed=seeds,
    dtype=st.sampled_from((*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES)),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    sigma=st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.7, 3.0]),
    order=st.integers(0, 3),
    truncate=st.sampled_from([4.0, 2.5, 1.0]),
    radius=st.one_of(st.none(), st.integers(0, 6)),
    data=st.data(),
)
def test_gaussian(seed, dtype, shape, sigma, order, truncate, radius, data):
    """``gaussian_filter`` (per-axis sigma, order, mode and radius; ``axes``) and
    ``gaussian_filter1d``; integer inputs truncate after every axis, as scipy."""
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype)
    integer = dtype.startswith(("int", "uint"))
    if integer:
        order = 0  # derivative kernels are ours to rounding: see test_gaussian_derivative_ints
    ndim = len(shape)
    axes = data.draw(st.one_of(st.none(), st.permutations(range(ndim)).map(lambda p: p[:1])))
    n = ndim if axes is None else len(axes)
    per = data.draw(st.booleans())
    sigmas = [data.draw(st.sampled_from([0.0, 0.6, 1.2, 2.0])) for _ in range(n)] if per else sigma
    orders = [data.draw(st.integers(0, 2)) for _ in range(n)] if per and not integer else order
    ms = [data.draw(modes) for _ in range(n)] if per else data.draw(modes)
    radii = [data.draw(st.integers(0, 5)) for _ in range(n)] if per and radius else radius
    cval = data.draw(cvals)
    kw = {"order": orders, "mode": ms, "cval": cval, "truncate": truncate, "radius": radii}
    ref = sp.gaussian_filter(x, sigmas, axes=axes, **kw)
    check(tnd.gaussian_filter(torch.from_numpy(x), sigmas, axes=axes, **kw), ref, scale_of(x))
    if sigma > 0:
        axis = data.draw(st.integers(-ndim, ndim - 1))
        kw1 = {"order": order, "mode": data.draw(modes), "cval": cval, "truncate": truncate}
        ref = sp.gaussian_filter1d(x, sigma, axis, radius=radius, **kw1)
        check(tnd.gaussian_filter1d(x, sigma, axis, radius=radius, **kw1), ref, scale_of(x))


def test_gaussian_kernel_values():
    """The kernels themselves, through an impulse, for orders 0-4: scipy's to 1e-13."""
    x = np.zeros(41)
    x[20] = 1
    for sigma in (0.5, 1.0, 2.5, 4.0):
        for order in range(5):
            ref = sp.gaussian_filter1d(x, sigma, order=order, mode="constant")
            got = tnd.gaussian_filter1d(x, sigma, order=order, mode="constant")
            assert np.abs(numpy_of(got) - ref).max() <= 1e-13 * max(1, np.abs(ref).max())


@MANY
@given(
    seed=seeds,
    dtype=st.sampled_from((*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES)),
    shape=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    cval=cvals,
    data=st.data(),
)
def test_uniform(seed, dtype, shape, cval, data):
    """``uniform_filter`` (per-axis size, origin, mode; ``axes``; sizes 0 and 1 skip the axis)
    and ``uniform_filter1d``; integer outputs follow ndimage's running sum bit for bit."""
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype)
    ndim = len(shape)
    axes = data.draw(st.one_of(st.none(), st.permutations(range(ndim)).map(lambda p: p[:1])))
    n = ndim if axes is None else len(axes)
    sizes = [data.draw(st.integers(0, 7)) for _ in range(n)]
    origins = [data.draw(st.integers(-(max(s, 1) // 2), (max(s, 1) - 1) // 2)) for s in sizes]
    ms = [data.draw(modes) for _ in range(n)]
    ref = sp.uniform_filter(x, sizes, mode=ms, cval=cval, origin=origins, axes=axes)
    got = tnd.uniform_filter(x, sizes, mode=ms, cval=cval, origin=origins, axes=axes)
    check(got, ref, scale_of(x))
    size = data.draw(st.integers(1, 9))
    origin = data.draw(st.integers(-(size // 2), (size - 1) // 2))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    mode = data.draw(modes)
    ref = sp.uniform_filter1d(x, size, axis, mode=mode, cval=cval, origin=origin)
    got = tnd.uniform_filter1d(x, size, axis, mode=mode, cval=cval, origin=origin)
    check(got, ref, scale_of(x))


@MANY
@given(
    seed=seeds,
    dtype=st.sampled_from((*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES)),
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    cval=cvals,
    data=st.data(),
)
def test_sobel_prewitt_laplace(seed, dtype, shape, cval, data):
    rng = np.random.default_rng(seed)
    x = make(rng, shape, dtype)
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    ms = [data.draw(modes) for _ in range(ndim)] if data.draw(st.booleans()) else "reflect"
    if dtype != "uint64":  # see test_uint64_beyond_2_53
        for name in ("sobel", "prewitt"):
            ref = getattr(sp, name)(x, axis, mode=ms, cval=cval)
            check(getattr(tnd, name)(x, axis, mode=ms, cval=cval), ref, 16 * scale_of(x))
    axes = data.draw(st.one_of(st.none(), st.permutations(range(ndim)).map(lambda p: p[:1])))
    lm = ms if axes is None else data.draw(modes)
    ref = sp.laplace(x, mode=lm, cval=cval, axes=axes)
    check(tnd.laplace(x, mode=lm, cval=cval, axes=axes), ref, 4 * ndim * scale_of(x))


@FEW
@given(
    seed=seeds,
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    mode=st.sampled_from([m for m in MODES if "constant" not in m]),
    data=st.data(),
)
def test_modes_as_the_engines_boundaries(seed, shape, mode, data):
    """The non-constant modes are the engine's boundaries (read in place by its loops), with
    any origin and extensions longer than the input: scipy's results."""
    rng = np.random.default_rng(seed)
    x = make(rng, shape, "float64")
    lengths = [data.draw(st.integers(1, 7)) for _ in shape]
    w = rng.standard_normal(lengths)
    origin = [data.draw(st.integers(-(k // 2), (k - 1) // 2)) for k in lengths]
    for name in ("correlate", "convolve"):
        ref = getattr(sp, name)(x, w, mode=mode, origin=origin)
        check(getattr(tnd, name)(x, w, mode=mode, origin=origin), ref, scale_of(x, w))
    ref = sp.gaussian_filter(x, 0.8, mode=mode)
    check(tnd.gaussian_filter(x, 0.8, mode=mode), ref, scale_of(x))
    ref = sp.uniform_filter(x, lengths, mode=mode, origin=origin)
    check(tnd.uniform_filter(x, lengths, mode=mode, origin=origin), ref, scale_of(x))


# --------------------------------------------------------------------------------------------
# Integer outputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64"])
def test_integer_outputs_truncate_and_wrap(dtype):
    """Fractions truncate toward zero, positive and negative; results past the dtype wrap."""
    x = np.array([0, 1, 0, 0, -3, 0, 0, 7, 9], dtype=np.int64).astype(dtype)
    for w in ([0.5, 0.3], [0.5, 0.5], [-1.5, 0.25], [40.0, 41.0]):
        ref = sp.correlate1d(x, w, mode="constant")
        check(tnd.correlate1d(x, w, mode="constant"), ref)
    got = tnd.correlate1d(torch.tensor([1, -3, 4]), [0.5, 0.5], mode="constant")
    assert got.tolist() == [0, -1, 0]  # 0.5 -> 0, -1.5 -> -1, 0.5 -> 0


def test_bool_output_is_the_low_byte():
    x = np.array([True, False, True, True])
    for w in ([0.5, 0.0], [256.0, 0.0], [-1.0, 0.0], [1.0, 1.0]):
        ref = sp.correlate1d(x, w, mode="constant")
        check(tnd.correlate1d(x, w, mode="constant"), ref)
    # the separable filters store each pass in that byte and read it back as 0-255
    y = np.random.default_rng(4).standard_normal((9, 10)) * 50
    for f, args in ((sp.gaussian_filter, (1.3,)), (sp.uniform_filter, (4,)), (sp.sobel, (0,))):
        for out in (bool, np.uint8, np.int16):
            ref = f(y, *args, output=out, mode="constant", cval=2.5)
            check(getattr(tnd, f.__name__)(y, *args, output=out, mode="constant", cval=2.5), ref)


def test_flat_uint8_gaussian_bitwise():
    """A flat uint8 image: float64 sums land within a rounding of the integer, and truncation
    makes that a whole unit (scipy turns a flat 3 into 2 at sigma 0.5): trueconv adds the terms
    in ndimage's order and gets the same bytes for every level and sigma."""
    levels = np.arange(256, dtype=np.uint8)
    for sigma in (0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0):
        x = np.repeat(levels[:, None], 24, axis=1)
        ref = sp.gaussian_filter(x, sigma, axes=1)
        check(tnd.gaussian_filter(x, sigma, axes=1), ref)
        ref = sp.uniform_filter(x, [1, 5])
        check(tnd.uniform_filter(x, [1, 5]), ref)
        box = np.full((3, 3), 1 / 9)
        check(tnd.correlate(x, box), sp.correlate(x, box))
    assert sp.gaussian_filter1d(np.full(9, 3, np.uint8), 0.5)[4] == 2


def test_separable_filters_truncate_each_pass():
    """scipy stores each axis's pass in the output dtype: an integer result truncates (and
    wraps) after every pass, which changes the result; trueconv does the same."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 13)).astype(np.uint8)
    once = sp.gaussian_filter(x.astype(float), 1.3)
    ref = sp.gaussian_filter(x, 1.3)
    assert not np.array_equal(ref, np.trunc(once).astype(np.uint8))
    check(tnd.gaussian_filter(x, 1.3), ref)
    y = rng.integers(-100, 100, (6, 7)).astype(np.int8)
    check(tnd.sobel(y, 0), sp.sobel(y, 0))  # the first pass wraps before the second
    check(tnd.uniform_filter(y, 3), sp.uniform_filter(y, 3))


# --------------------------------------------------------------------------------------------
# Complex
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["correlate", "convolve", "correlate1d", "convolve1d"])
@pytest.mark.parametrize(
    ("xdt", "wdt"),
    [
        ("float64", "complex128"),
        ("complex128", "float64"),
        ("complex64", "complex64"),
        ("int16", "complex64"),
        ("complex128", "complex128"),
    ],
)
@pytest.mark.parametrize("cval", [0.0, 5.0, 2 - 3j])
def test_complex(name, xdt, wdt, cval):
    """Complex inputs and/or weights (correlations conjugate the weights, as ndimage), complex
    cval with complex inputs; the output dtype is numpy's promotion with complex64."""
    rng = np.random.default_rng(1)
    x, w = make(rng, (4, 5), xdt), make(rng, (3, 2), wdt)
    w = w[0] if name.endswith("1d") else w
    if isinstance(cval, complex) and not np.iscomplexobj(x):
        with pytest.raises(ValueError, match=r"cval=.*complex"):
            getattr(tnd, name)(x, w, mode="constant", cval=cval)
        return
    ref = getattr(sp, name)(x, w, mode="constant", cval=cval)
    check(getattr(tnd, name)(x, w, mode="constant", cval=cval), ref, scale_of(x, w, cval))


def test_complex_filters():
    rng = np.random.default_rng(2)
    x = make(rng, (6, 7), "complex128")
    for f, args in (
        (sp.gaussian_filter, (1.2,)),
        (sp.uniform_filter, (3,)),
        (sp.sobel, ()),
        (sp.prewitt, ()),
        (sp.laplace, ()),
    ):
        ref = f(x, *args, mode="constant", cval=1 + 2j)
        check(
            getattr(tnd, f.__name__)(x, *args, mode="constant", cval=1 + 2j), ref, 10 * scale_of(x)
        )


def test_complex_output_promotion_warns():
    x = np.arange(6.0).reshape(2, 3)
    w = np.array([[1, 1j]])
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex") as rec:
        got = tnd.correlate(x, w, output=np.float32)
    assert got.dtype == torch.complex64
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex") as rec2:
        tnd.sobel(x + 1j, output=torch.float64)
    assert rec[0].filename == rec2[0].filename == __file__  # the caller's line
    with pytest.raises(ValueError, match="result is complex"):
        tnd.correlate(x, w, output=torch.zeros(2, 3))


# --------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------


def test_array_likes_follow_numpy():
    """Lists become what ``numpy.asarray`` makes (float64, int64), as in scipy; the result is a
    tensor; numpy views with negative strides and read-only arrays are accepted."""
    got = tnd.correlate1d([1.0, 2.0, 3.0], [1, 1])
    assert got.dtype == torch.float64
    assert tnd.correlate1d([1, 2, 3], [1, 1]).dtype == torch.int64
    x = np.arange(10.0)
    check(tnd.gaussian_filter(x[::-2], 1), sp.gaussian_filter(x[::-2], 1))
    x.setflags(write=False)
    check(tnd.uniform_filter(x, 3), sp.uniform_filter(x, 3))


def test_output_tensor_is_written_and_returned():
    x = torch.arange(12.0).reshape(3, 4)
    out = torch.empty(3, 4, dtype=torch.float32)
    got = tnd.gaussian_filter(x, 1.0, output=out)
    assert got is out
    check(out, sp.gaussian_filter(x.numpy(), 1.0), 1e3)
    out16 = torch.zeros(3, 4, dtype=torch.int16)
    assert tnd.sobel(x, 0, out16) is out16
    check(out16, sp.sobel(x.numpy(), 0, np.zeros((3, 4), np.int16)))


def test_output_numpy_array_is_written():
    x = np.arange(12.0).reshape(3, 4)
    out = np.zeros((3, 4), np.float32)
    got = tnd.uniform_filter(x, 3, output=out)
    assert isinstance(got, torch.Tensor)
    assert np.shares_memory(numpy_of(got), out)
    np.testing.assert_allclose(out, sp.uniform_filter(x, 3), rtol=1e-6)


def test_output_may_be_the_input():
    """In place, as scipy allows: the result is computed before anything is written."""
    x = torch.arange(16.0).reshape(4, 4)
    ref = sp.correlate(x.numpy(), np.ones((3, 3)))
    assert tnd.correlate(x, np.ones((3, 3)), output=x) is x
    check(x, ref, 1e3)
    a = np.arange(16).reshape(4, 4)
    ref = sp.correlate1d(a, [2])
    tnd.correlate1d(a, [2], output=a)
    np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize("spec", [np.float32, np.dtype("float32"), "float32", "f", torch.float32])
def test_output_dtype_spellings(spec):
    got = tnd.uniform_filter1d([1, 2, 3], 2, output=spec)
    assert got.dtype == torch.float32


def test_half_precision_inputs():
    """float16 and bfloat16 are computed in float32 (scipy refuses float16)."""
    x = torch.linspace(0, 1, 20, dtype=torch.float64).reshape(4, 5)
    ref = sp.gaussian_filter(x.numpy(), 1.0)
    for dt in (torch.float16, torch.bfloat16):
        got = tnd.gaussian_filter(x.to(dt), 1.0)
        assert got.dtype == dt
        np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-2)


def test_empty_and_zero_dim():
    assert tnd.correlate1d(np.zeros(0), [1, 1]).shape == (0,)
    assert tnd.correlate(np.zeros((0, 3)), np.ones((2, 2))).shape == (0, 3)
    assert tnd.uniform_filter(np.zeros(0), [1]).shape == (0,)
    assert tnd.gaussian_filter(torch.tensor(2.0), 1.0).item() == 2.0
    x = torch.arange(4.0)
    for same in (tnd.gaussian_filter(x, 0), tnd.uniform_filter(x, 1), tnd.laplace(x, axes=())):
        assert torch.equal(same, x)
        assert same.data_ptr() != x.data_ptr()  # a copy, as scipy's


# --------------------------------------------------------------------------------------------
# The engine, autograd, devices
# --------------------------------------------------------------------------------------------


def test_runs_on_the_engine(monkeypatch):
    """Floating-point results are computed by trueconv's public signal API."""
    calls = []
    for name in ("convolve_separable", "correlate"):
        real = getattr(trueconv.signal, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(trueconv.signal, name, spy)
    x = torch.rand(8, 9)
    tnd.gaussian_filter(x, 1.0)
    tnd.correlate(x, torch.rand(3, 3))
    tnd.uniform_filter1d(x, 4)
    assert calls == ["convolve_separable", "correlate", "correlate"]


def test_autograd():
    torch.manual_seed(0)
    x = torch.rand(5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    w1 = torch.rand(4, dtype=torch.float64, requires_grad=True)
    for mode in ("reflect", "mirror", "nearest", "wrap", "constant"):
        assert torch.autograd.gradcheck(
            lambda a, b, m=mode: tnd.correlate(a, b, mode=m, cval=0.5, origin=(1, -1)), (x, w)
        )
        assert torch.autograd.gradcheck(
            lambda a, b, m=mode: tnd.convolve1d(a, b, 0, mode=m, origin=-1), (x, w1)
        )
    fns = [
        lambda a: tnd.gaussian_filter(a, [1.0, 0.7], order=[0, 1], mode=["reflect", "wrap"]),
        lambda a: tnd.uniform_filter(a, 3, mode="constant", cval=2.0),
        lambda a: tnd.sobel(a, 0),
        lambda a: tnd.prewitt(a, 1, mode="mirror"),
        lambda a: tnd.laplace(a),
    ]
    for f in fns:
        assert torch.autograd.gradcheck(f, (x,))
    out = torch.zeros(5, 6, dtype=torch.float64)
    tnd.gaussian_filter(x, 1.0, output=out).sum().backward()
    assert x.grad is not None
    big = torch.rand(9, 8, dtype=torch.float64, requires_grad=True)  # boundaries, origins
    assert torch.autograd.gradcheck(lambda a: tnd.gaussian_filter(a, 0.7, mode="wrap"), (big,))
    assert torch.autograd.gradcheck(lambda a, b: tnd.correlate(a, b, origin=(1, -1)), (big, w))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda():
    x = torch.rand(32, 33, device="cuda", dtype=torch.float64)
    for f, args in ((tnd.gaussian_filter, (2.0,)), (tnd.sobel, ()), (tnd.uniform_filter, (4,))):
        got = f(x, *args)
        assert got.device.type == "cuda"
        check(got, getattr(sp, f.__name__)(x.cpu().numpy(), *args), scale_of(x.cpu().numpy()))
    got = tnd.convolve(x, torch.rand(5, 4, device="cuda", dtype=torch.float64))
    assert got.device.type == "cuda"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_errors():
    x = np.ones((4, 5))
    with pytest.raises(
        ValueError, match=r"mode must be one of 'reflect', .*'grid-wrap'; got 'bogus'"
    ):
        tnd.correlate(x, np.ones((3, 3)), mode="bogus")
    with pytest.raises(
        ValueError, match=r"'symmetric' is a boundary name .* ndimage calls it 'reflect'"
    ):
        tnd.gaussian_filter(x, 1, mode="symmetric")
    with pytest.raises(ValueError, match=r"origin 2 .* allowed -1 to 1"):
        tnd.correlate1d(x, [1, 2, 3], origin=2)
    with pytest.raises(ValueError, match=r"origin -2 along axis 1 .* allowed -1 to 0"):
        tnd.convolve(x, np.ones((2, 2)), origin=[0, -2])
    with pytest.raises(ValueError, match="origin must be a scalar or hold one entry per"):
        tnd.correlate(x, np.ones((3, 3)), origin=[0, 0, 0])
    with pytest.raises(ValueError, match=r"axis 2 in axes=\(2,\) is out of range .* -2 to 1"):
        tnd.gaussian_filter(x, 1, axes=(2,))
    with pytest.raises(ValueError, match="axes must be unique"):
        tnd.laplace(x, axes=(1, -1))
    with pytest.raises(TypeError, match="axes must be None, an int or a sequence of ints"):
        tnd.uniform_filter(x, 3, axes=(1.5,))
    with pytest.raises(ValueError, match=r"axis 3 is out of range for an input of 2 dims"):
        tnd.sobel(x, 3)
    with pytest.raises(ValueError, match=r"weights must have one dim per filtered axis \(2\)"):
        tnd.correlate(x, np.ones(3))
    with pytest.raises(ValueError, match="weights must be 1-D"):
        tnd.correlate1d(x, np.ones((2, 2)))
    with pytest.raises(ValueError, match="weights must be 1-D with at least one"):
        tnd.convolve1d(x, [])
    with pytest.raises(ValueError, match="a sequence of modes is for the separable filters"):
        tnd.convolve(x, np.ones((3, 3)), mode=["reflect", "wrap"])
    with pytest.raises(
        ValueError, match=r"mode must be a scalar or hold one entry per filtered axis \(2\)"
    ):
        tnd.uniform_filter(x, 3, mode=["reflect"])
    with pytest.raises(ValueError, match=r"output must have the input's shape \(4, 5\)"):
        tnd.gaussian_filter(x, 1, output=torch.zeros(5, 4))
    with pytest.raises(TypeError, match="output must be None, a dtype or a tensor"):
        tnd.gaussian_filter(x, 1, output=3)
    with pytest.raises(TypeError, match="output dtype object is not supported"):
        tnd.gaussian_filter(x, 1, output=object)
    with pytest.raises(ValueError, match="sigma must be finite and positive"):
        tnd.gaussian_filter1d(x, 0)
    with pytest.raises(ValueError, match="sigma must be finite and non-negative"):
        tnd.gaussian_filter(x, -1)
    with pytest.raises(ValueError, match="radius must be None or a non-negative int"):
        tnd.gaussian_filter1d(x, 1, radius=1.5)
    with pytest.raises(ValueError, match="order must be a non-negative int"):
        tnd.gaussian_filter(x, 1, order=-1)
    with pytest.raises(ValueError, match="size must be at least 1"):
        tnd.uniform_filter1d(x, 0)
    with pytest.raises(TypeError, match="input must hold numbers"):
        tnd.laplace(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="cval must be a number"):
        tnd.laplace(x, cval="1")
    # where scipy raises RuntimeError, the error is also one (code written for scipy catches it)
    with pytest.raises(RuntimeError) as info:
        tnd.correlate(x, np.ones((2, 2)), mode=["reflect", "wrap"])
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, tnd.FilterArgumentError)


# --------------------------------------------------------------------------------------------
# Documented differences from scipy.ndimage
# --------------------------------------------------------------------------------------------


def test_nd_reflect_far_extension():
    """scipy.ndimage.correlate (N-D) in mode 'reflect' misreads where the extension reaches
    4 n samples or more before an axis of length n; its correlate1d and numpy.pad agree with
    each other, and trueconv follows them."""
    x = np.array([1.0, 2.0])
    w = np.zeros(9)
    w[0] = 1  # reads x at offset -8 = -4 n
    got = numpy_of(tnd.correlate(x, w, origin=4))
    ref = sp.correlate1d(x, w, origin=4)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, reference(x, w, "reflect", 0, [4]).real)
    assert not np.array_equal(sp.correlate(x, w, origin=4), ref)  # scipy's N-D function


def test_origins_follow_axes():
    """Per-axis origins pair with the entries of ``axes``, as scipy documents and does when
    ``axes`` leaves an axis out; when ``axes`` names every axis in another order, scipy pairs
    them with axes 0, 1, ... instead. trueconv keeps the documented pairing."""
    x = np.arange(20.0).reshape(4, 5)
    w = np.ones((3, 1))  # axis 0 length 3, axis 1 length 1
    got = numpy_of(tnd.correlate(x, w, origin=[0, 1], axes=(1, 0)))  # axis 0 gets origin 1
    np.testing.assert_array_equal(got, sp.correlate(x, w, origin=[1, 0]))
    with pytest.raises(ValueError, match="Invalid origin"):
        sp.correlate(x, w, origin=[0, 1], axes=(1, 0))  # scipy gives origin 1 to axis 1
    x3 = np.arange(60.0).reshape(3, 4, 5)
    got = numpy_of(tnd.correlate(x3, w, origin=[0, 1], axes=(2, 0)))
    np.testing.assert_array_equal(got, sp.correlate(x3, w, origin=[0, 1], axes=(2, 0)))


def test_tiny_weights_kept():
    """scipy.ndimage.correlate leaves weights with |w| <= 2.2e-16 out of its footprint;
    trueconv's floating-point results use them."""
    x = np.arange(1.0, 6.0)
    w = np.array([1e-17, 0.0, 0.0, 0.0])
    assert not sp.correlate(x, w).any()
    np.testing.assert_allclose(numpy_of(tnd.correlate(x, w)), sp.correlate1d(x, w), rtol=1e-15)


def test_uint64_beyond_2_53():
    """uint64 values of 2**53 and more (a wrapped negative in a later sobel pass): scipy's
    float64 sums round them; trueconv's integer weights compute modulo 2**64."""
    x = np.array([[3, 2, 5], [5, 8, 3], [5, 6, 9]], np.uint64)
    got = numpy_of(tnd.sobel(x, 0))
    exact = sp.sobel(x.astype(np.int64), 0).astype(np.uint64)  # int64 wraps as uint64 does
    np.testing.assert_array_equal(got, exact)
    assert not np.array_equal(sp.sobel(x, 0), exact)


def test_int32_overflow_wraps():
    """Past an int32 output's range the result wraps (scipy's cast is undefined there)."""
    x = np.array([2**31 - 1, 2**31 - 1, 0], np.int32)
    got = tnd.correlate1d(x, [1.0, 1.0], mode="constant")
    assert got.tolist() == [2**31 - 1, -2, 2**31 - 1]


def test_gaussian_derivative_ints():
    """Integer outputs of derivative kernels (order >= 1): the kernels equal scipy's to
    rounding, not bit for bit, so a sum within a rounding of an integer may truncate the other
    way; elsewhere the results are equal."""
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 50, (40, 41)).astype(np.int32)
    for order in (1, 2, 3):
        ref = sp.gaussian_filter1d(x.astype(float), 1.5, order=order)
        got = numpy_of(tnd.gaussian_filter1d(x, 1.5, order=order))
        exp = sp.gaussian_filter1d(x, 1.5, order=order)
        near = np.abs(ref - np.round(ref)) < 1e-9
        np.testing.assert_array_equal(got[~near], exp[~near])
        assert np.abs(got.astype(float) - exp).max() <= 1


@pytest.mark.parametrize("slab", [7, 50, 1 << 17])
@pytest.mark.parametrize("dtype", ["uint8", "int16"])
@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
def test_integer_output_passes_by_slabs_equal_scipy(monkeypatch, slab, dtype, mode):
    # integer outputs with fractional weights are summed in ndimage's order in float64, a
    # slab at a time (trueconv.ndimage._slabs): slabs of single lines (7), several lines
    # (50), or the whole array, on every axis of a 3-D array; bitwise scipy's
    import trueconv.ndimage as module

    monkeypatch.setattr(module, "_SLAB", slab)
    rng = np.random.default_rng(slab)
    x = rng.integers(0, 200, (5, 9, 13)).astype(dtype)
    xt = torch.from_numpy(x)
    weights = np.array([0.1, -0.35, 0.8, 0.3, 0.05])  # neither symmetric nor antisymmetric
    for axis in range(3):
        got = tnd.correlate1d(xt, weights, axis=axis, mode=mode, cval=3.0)
        ref = sp.correlate1d(x, weights, axis=axis, mode=mode, cval=3.0)
        np.testing.assert_array_equal(got.numpy(), ref)
    got = tnd.gaussian_filter(xt, (1.0, 0.7, 1.5), mode=mode, cval=3.0)
    np.testing.assert_array_equal(
        got.numpy(), sp.gaussian_filter(x, (1.0, 0.7, 1.5), mode=mode, cval=3.0)
    )
    got = tnd.uniform_filter(xt, (3, 4, 2), mode=mode, cval=3.0)
    np.testing.assert_array_equal(got.numpy(), sp.uniform_filter(x, (3, 4, 2), mode=mode, cval=3.0))
    got = tnd.sobel(xt, axis=1, mode=mode, cval=3.0)
    np.testing.assert_array_equal(got.numpy(), sp.sobel(x, axis=1, mode=mode, cval=3.0))
    # laplace adds its terms in place in the output dtype (wrapping as ndimage's output += tmp)
    before = xt.clone()
    for output in (None, np.int8, np.int64):
        got = tnd.laplace(xt, output=output, mode=mode, cval=3.0)
        ref = sp.laplace(x, output=output, mode=mode, cval=3.0)
        np.testing.assert_array_equal(got.numpy(), ref)
    assert torch.equal(xt, before)
