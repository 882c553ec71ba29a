"""trueconv against oracles we did not write: scipy.signal and numpy, in float64/complex128.

Covers every mode × method (including ``'auto'``) × 1-D to 4-D × even/odd kernels × kernels
larger than the input × size-1 axes, the ``dims`` rules (trailing alignment when ``None``,
broadcasting batch dims when given), scipy's ``'valid'`` swap and its mixed-dominance error,
and the seed example.
"""

from __future__ import annotations

import functools
import itertools
import zlib

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv._methods import REGISTRY

METHODS = ["auto", *sorted(REGISTRY)]
EXPLICIT = sorted(REGISTRY)  # where 'auto' adds nothing (it runs one of these)
MODES = ["full", "same", "valid"]
TOL = REL_TOL[torch.float64]
CTOL = REL_TOL[torch.complex128]

FUNCS = {
    "convolve": (trueconv.convolve, scipy.signal.convolve),
    "correlate": (trueconv.correlate, scipy.signal.correlate),
}


def rand(rng: np.random.Generator, shape, complex_: bool = False) -> np.ndarray:
    x = rng.standard_normal(shape)
    if complex_:
        x = x + 1j * rng.standard_normal(shape)
    return x


def valid_ok(xs, ks) -> bool:
    """scipy's rule: 'valid' needs one operand at least as large in every dim."""
    return all(n >= k for n, k in zip(xs, ks)) or all(k >= n for n, k in zip(xs, ks))


# (input shape, kernel shape): 1-D to 4-D, even and odd kernels, kernels larger than the
# input, equal sizes, size-1 axes on either operand.
SHAPES = [
    ((9,), (3,)),
    ((9,), (4,)),
    ((8,), (1,)),
    ((1,), (1,)),
    ((1,), (5,)),
    ((4,), (7,)),
    ((5,), (5,)),
    ((6,), (6,)),
    ((7, 8), (3, 2)),
    ((6, 5), (4, 5)),
    ((5, 7), (1, 2)),
    ((1, 9), (1, 4)),
    ((3, 4), (5, 6)),
    ((6, 1), (2, 1)),
    ((2, 3), (2, 3)),
    ((4, 6), (7, 2)),
    ((5, 4, 6), (2, 3, 3)),
    ((4, 1, 5), (3, 1, 2)),
    ((2, 3, 2), (3, 4, 5)),
    ((3, 4, 3, 5), (2, 3, 2, 2)),
    ((3, 2, 4, 3), (1, 2, 3, 2)),
    ((2, 2, 1, 3), (3, 3, 2, 4)),
    ((3, 3, 2, 2, 3), (2, 1, 2, 2, 2)),
]


def modes_for(xs, ks) -> list[str]:
    """Every mode, less 'valid' where neither operand dominates (tested separately)."""
    return MODES if valid_ok(xs, ks) else ["full", "same"]


def _id(xs, ks) -> str:
    return f"{'x'.join(map(str, xs))}*{'x'.join(map(str, ks))}"


def check_against_scipy(fname, x, k, method, tol, **kwargs):
    """Every legal mode of ``fname`` against scipy's direct method on the same operands."""
    ours, ref_fn = FUNCS[fname]
    for mode in modes_for(x.shape, k.shape):
        ref = ref_fn(x, k, mode=mode, method="direct")
        out = ours(torch.from_numpy(x), torch.from_numpy(k), mode, method=method, **kwargs)
        assert out.dtype == (torch.complex128 if np.iscomplexobj(ref) else torch.float64), mode
        assert tuple(out.shape) == ref.shape, mode
        assert rel_err(out, ref) < tol, mode


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("xs", "ks"), SHAPES, ids=[_id(*s) for s in SHAPES])
def test_real_nd_against_scipy_direct(xs, ks, method):
    rng = np.random.default_rng(zlib.crc32(repr((xs, ks)).encode()))
    check_against_scipy("convolve", rand(rng, xs), rand(rng, ks), method, TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("xs", "ks"), SHAPES[1::2], ids=[_id(*s) for s in SHAPES[1::2]])
def test_real_nd_correlate_against_scipy_direct(xs, ks, method):
    rng = np.random.default_rng(zlib.crc32(repr((xs, ks)).encode()))
    check_against_scipy("correlate", rand(rng, xs), rand(rng, ks), method, TOL)


COMPLEX_SHAPES = [((9,), (4,)), ((3,), (6,)), ((5, 6), (2, 3)), ((2, 2, 3, 2), (2, 1, 2, 2))]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("xs", "ks"), COMPLEX_SHAPES, ids=[_id(*s) for s in COMPLEX_SHAPES])
@pytest.mark.parametrize(
    ("fname", "which"),
    [("convolve", "both"), ("correlate", "both"), ("convolve", "input"), ("correlate", "kernel")],
)
def test_complex_against_scipy(fname, which, xs, ks, method):
    """Complex operands; ``correlate`` conjugates the kernel exactly as scipy's does."""
    rng = np.random.default_rng(7)
    x = rand(rng, xs, complex_=which in ("both", "input"))
    k = rand(rng, ks, complex_=which in ("both", "kernel"))
    check_against_scipy(fname, x, k, method, CTOL)


def test_correlate_conjugates_the_kernel():
    """A hand-checkable case: correlate([1, 2, 3, 4], [1, 1j]) in 'valid' mode."""
    x = np.array([1, 2, 3, 4], dtype=np.complex128)
    k = np.array([1, 1j])
    ref = scipy.signal.correlate(x, k, "valid")
    np.testing.assert_allclose(ref, [1 - 2j, 2 - 3j, 3 - 4j])
    for method in METHODS:
        out = trueconv.correlate(torch.from_numpy(x), torch.from_numpy(k), "valid", method=method)
        assert rel_err(out, ref) < CTOL


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize(("n", "k"), [(10, 3), (10, 4), (7, 7), (3, 8), (1, 4), (6, 1)])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_1d_against_numpy(n, k, method, complex_):
    """np.convolve / np.correlate (numpy also conjugates the second operand in correlate)."""
    rng = np.random.default_rng(n * 100 + k)
    x, h = rand(rng, (n,), complex_), rand(rng, (k,), complex_)
    tol = CTOL if complex_ else TOL
    for mode in MODES:
        # np.convolve/np.correlate 'same' returns max(n, k) samples; scipy (and we) return n.
        if mode == "same" and k > n:
            ref_c = scipy.signal.convolve(x, h, "same", method="direct")
            ref_r = scipy.signal.correlate(x, h, "same", method="direct")
        else:
            ref_c, ref_r = np.convolve(x, h, mode), np.correlate(x, h, mode)
        out_c = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(h), mode, method=method)
        out_r = trueconv.correlate(torch.from_numpy(x), torch.from_numpy(h), mode, method=method)
        assert rel_err(out_c, ref_c) < tol, mode
        assert rel_err(out_r, ref_r) < tol, mode


# --- dims=None: the kernel's dims align with the input's trailing dims ---------------------


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize(
    ("xs", "ks"),
    [
        ((3, 9), (4,)),
        ((2, 3, 8), (3,)),
        ((2, 3, 4), (6,)),  # kernel longer than every row: 'valid' swaps per row
        ((2, 6, 7), (3, 2)),
        ((3, 1, 5), (1, 2)),
        ((2, 2, 4, 3), (2, 2, 2)),
    ],
)
def test_lower_ndim_kernel_filters_every_trailing_slice(xs, ks, method):
    rng = np.random.default_rng(11)
    x, k = rand(rng, xs), rand(rng, ks)
    batch = xs[: len(xs) - len(ks)]
    for (fname, (ours, ref_fn)), mode in itertools.product(FUNCS.items(), MODES):
        out = ours(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
        assert tuple(out.shape[: len(batch)]) == batch, (fname, mode)
        ref = np.stack([ref_fn(x[idx], k, mode, method="direct") for idx in np.ndindex(*batch)])
        ref = ref.reshape(*batch, *ref.shape[1:])
        assert rel_err(out, ref) < TOL, (fname, mode)


def test_lower_ndim_kernel_on_complex_batch():
    rng = np.random.default_rng(3)
    x, k = rand(rng, (2, 3, 7), True), rand(rng, (3,), True)
    for fname, (ours, ref_fn) in FUNCS.items():
        out = ours(torch.from_numpy(x), torch.from_numpy(k), "same")
        ref = np.stack([[ref_fn(r, k, "same") for r in plane] for plane in x])
        assert rel_err(out, ref) < CTOL, fname


# --- explicit dims: every other dim broadcasts ----------------------------------------------

# (input shape, kernel shape, dims): per-signal kernels, kernel batches broadcasting against the
# input batch, kernels with more dims than the input, non-trailing and negative dims.
DIMS_CASES = [
    ((4, 10), (4, 3), -1),
    ((4, 10), (4, 3), (1,)),
    ((4, 10), (1, 3), 1),
    ((1, 10), (4, 3), -1),
    ((3, 1, 10), (1, 5, 4), -1),
    ((3, 1, 10), (5, 4), 2),
    ((10,), (3, 4), -1),
    ((10,), (2, 3, 4), (2,)),
    ((6, 7), (2, 3, 3, 2), (-2, -1)),
    ((9, 3), (4, 1), 0),
    ((9, 3, 2), (4, 3, 1), (0,)),
    ((8, 3, 9), (4, 1, 5), (0, 2)),
    ((8, 2, 9), (3, 2, 4), (-3, -1)),
    ((2, 5, 6, 3), (2, 1, 3, 3), (1, 2)),
    ((3, 4), (5, 6), (0, 1)),
    ((2, 4, 5), (3, 4, 2), (0, 2)),
]


def _aligned(x: np.ndarray, k: np.ndarray, dims):
    """Both operands aligned by their trailing dims, their batch dims broadcast
    (np.broadcast_to), and ``dims`` as sorted non-negative axes of that layout."""
    ndim = max(x.ndim, k.ndim)
    axes = tuple(sorted(d % ndim for d in ((dims,) if isinstance(dims, int) else dims)))
    xa = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    ka = k.reshape((1,) * (ndim - k.ndim) + k.shape)
    batch = {d: max(xa.shape[d], ka.shape[d]) for d in range(ndim) if d not in axes}
    xa = np.broadcast_to(xa, [batch.get(d, xa.shape[d]) for d in range(ndim)])
    ka = np.broadcast_to(ka, [batch.get(d, ka.shape[d]) for d in range(ndim)])
    return xa, ka, axes


def _dims_valid_ok(xs, ks, dims) -> bool:
    xa, ka, axes = _aligned(np.empty(xs), np.empty(ks), dims)
    return valid_ok([xa.shape[d] for d in axes], [ka.shape[d] for d in axes])


DIMS_BAD_VALID = [(xs, ks, dims) for xs, ks, dims in DIMS_CASES if not _dims_valid_ok(xs, ks, dims)]


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize(("xs", "ks", "dims"), DIMS_CASES)
def test_explicit_dims_against_fftconvolve_axes(xs, ks, dims, method):
    rng = np.random.default_rng(5)
    x, k = rand(rng, xs), rand(rng, ks)
    # broadcast first: scipy's 'same' would crop a broadcast batch dim back to in1's size
    xa, ka, axes = _aligned(x, k, dims)
    for mode in MODES if _dims_valid_ok(xs, ks, dims) else ["full", "same"]:
        ref = scipy.signal.fftconvolve(xa, ka, mode, axes=axes)
        out = trueconv.convolve(
            torch.from_numpy(x), torch.from_numpy(k), mode, dims=dims, method=method
        )
        assert out.dtype == torch.float64, mode
        assert tuple(out.shape) == ref.shape, mode
        assert rel_err(out, ref) < TOL, mode


@pytest.mark.parametrize(("xs", "ks", "dims"), DIMS_BAD_VALID)
def test_explicit_dims_valid_mixed_dominance_raises(xs, ks, dims):
    x, k = np.ones(xs), np.ones(ks)
    xa, ka, axes = _aligned(x, k, dims)
    with pytest.raises(ValueError, match="at least as large"):
        scipy.signal.fftconvolve(xa, ka, "valid", axes=axes)
    with pytest.raises(ValueError, match="valid"):
        trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), "valid", dims=dims)


@pytest.mark.parametrize("method", EXPLICIT)
@pytest.mark.parametrize(
    ("xs", "ks", "dims"),
    [
        ((3, 10), (3, 4), -1),
        ((2, 1, 7), (1, 3, 3), 2),
        ((7,), (2, 3), 1),
        ((6, 2, 5), (3, 2, 2), (0, 2)),
        ((2, 3, 4, 5), (1, 3, 1, 2), (1, 3)),
    ],
)
def test_explicit_dims_against_per_slice_scipy(xs, ks, dims, method):
    """Broadcast both operands (np.broadcast_to) and loop scipy over every batch index."""
    rng = np.random.default_rng(17)
    x, k = rand(rng, xs, True), rand(rng, ks, True)
    xb, kb, axes = _aligned(x, k, dims)
    batch_axes = [d for d in range(xb.ndim) if d not in axes]
    batch = tuple(xb.shape[d] for d in batch_axes)
    xm = np.moveaxis(xb, batch_axes, range(len(batch_axes)))
    km = np.moveaxis(kb, batch_axes, range(len(batch_axes)))
    for (fname, (ours, ref_fn)), mode in itertools.product(FUNCS.items(), MODES):
        slices = [ref_fn(xm[idx], km[idx], mode, method="direct") for idx in np.ndindex(*batch)]
        ref = np.stack(slices).reshape(*batch, *slices[0].shape)
        ref = np.moveaxis(ref, range(len(batch_axes)), batch_axes)
        out = ours(torch.from_numpy(x), torch.from_numpy(k), mode, dims=dims, method=method)
        assert tuple(out.shape) == ref.shape, (fname, mode)
        assert rel_err(out, ref) < CTOL, (fname, mode)


# --- 'valid': scipy's swap and its mixed-dominance error ----------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("xs", "ks"),
    [((3,), (8,)), ((4,), (4,)), ((3, 4), (5, 6)), ((3, 4), (3, 7)), ((2, 1, 3), (4, 1, 3))],
)
def test_valid_swaps_when_kernel_dominates(xs, ks, method):
    rng = np.random.default_rng(23)
    x, k = rand(rng, xs, True), rand(rng, ks, True)
    for fname, (ours, ref_fn) in FUNCS.items():
        ref = ref_fn(x, k, "valid", method="direct")
        assert ref.shape == tuple(abs(a - b) + 1 for a, b in zip(xs, ks))
        out = ours(torch.from_numpy(x), torch.from_numpy(k), "valid", method=method)
        assert tuple(out.shape) == ref.shape, fname
        assert rel_err(out, ref) < CTOL, fname


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("xs", "ks", "dims"),
    [
        ((3, 6), (5, 2), None),
        ((6, 3), (2, 5), None),
        ((2, 4, 6), (5, 3), None),
        ((4, 3, 7), (1, 5, 2), (1, 2)),
        ((2, 2, 2, 2), (1, 1, 3, 1), None),
    ],
)
def test_valid_mixed_dominance_raises(xs, ks, dims, method):
    x, k = np.ones(xs), np.ones(ks)
    # scipy agrees that this is an error (fftconvolve drops axes where an operand has size 1,
    # so the N-D cases ask scipy.signal.convolve)
    if dims is None and len(xs) == len(ks):
        oracle = functools.partial(scipy.signal.convolve, x, k, "valid")
    else:
        xa, ka, axes = _aligned(x, k, range(x.ndim - k.ndim, x.ndim) if dims is None else dims)
        oracle = functools.partial(scipy.signal.fftconvolve, xa, ka, "valid", axes=axes)
    with pytest.raises(ValueError, match="at least as large"):
        oracle()
    for ours in (trueconv.convolve, trueconv.correlate):
        with pytest.raises(ValueError, match="valid"):
            ours(torch.from_numpy(x), torch.from_numpy(k), "valid", dims=dims, method=method)


# --- the seed example ------------------------------------------------------------------------

SEED_EXPECTED = [
    [0, 0, 0, 0, 0, 0],
    [0, -1, 0, 0, 1, 0],
    [0, -1, 0, 0, 1, 0],
    [0, -1, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0],
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.float64, torch.float32, torch.int32])
def test_seed_example(dtype, method):
    image = torch.zeros(5, 7, dtype=dtype)
    image[1:4, 2:5] = 1
    kernel = torch.tensor([[-1, 1]], dtype=dtype)
    out = trueconv.convolve(image, kernel, mode="valid", method=method)
    assert out.dtype == dtype
    expected = torch.tensor(SEED_EXPECTED, dtype=dtype)
    np.testing.assert_array_equal(
        scipy.signal.convolve(to_numpy(image), to_numpy(kernel), "valid"), to_numpy(expected)
    )
    if dtype.is_floating_point:
        # FFT round-off is allowed, within the dtype's tolerance
        assert rel_err(out, expected) < REL_TOL[dtype]
    else:
        assert torch.equal(out, expected)


def test_seed_example_direct_is_exact_in_float():
    image = torch.zeros(5, 7, dtype=torch.float64)
    image[1:4, 2:5] = 1
    out = trueconv.convolve(image, [[-1.0, 1.0]], mode="valid", method="direct")
    assert torch.equal(out, torch.tensor(SEED_EXPECTED, dtype=torch.float64))


# --- random shapes (hypothesis) -------------------------------------------------------------


@st.composite
def problems(draw):
    nd = draw(st.integers(1, 3))
    xs = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    ks = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    mode = draw(st.sampled_from(MODES if valid_ok(xs, ks) else ["full", "same"]))
    return xs, ks, mode


@given(
    problems(),
    st.sampled_from(METHODS),
    st.sampled_from(sorted(FUNCS)),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_random_shapes_against_scipy(problem, method, fname, complex_, seed):
    xs, ks, mode = problem
    ours, ref_fn = FUNCS[fname]
    rng = np.random.default_rng(seed)
    x, k = rand(rng, xs, complex_), rand(rng, ks, complex_)
    ref = ref_fn(x, k, mode, method="direct")
    out = ours(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
    assert tuple(out.shape) == ref.shape
    assert rel_err(out, ref) < TOL


def test_correlate2d_same_is_full_sliced_from_half_the_kernel():
    """The README's port of scipy.signal.correlate2d: 'same' starts at k // 2 of 'full'
    (trueconv.correlate, like scipy.signal.correlate, starts at (k - 1) // 2)."""
    rng = np.random.default_rng(0)
    for shape, kshape in [((5, 7), (2, 3)), ((6, 6), (4, 4)), ((7, 5), (3, 2)), ((4, 9), (1, 6))]:
        x, k = rng.standard_normal(shape), rng.standard_normal(kshape)
        full = trueconv.correlate(torch.from_numpy(x), torch.from_numpy(k), "full")
        r0, c0 = kshape[0] // 2, kshape[1] // 2
        got = full[r0 : r0 + shape[0], c0 : c0 + shape[1]].numpy()
        np.testing.assert_allclose(got, scipy.signal.correlate2d(x, k, "same"), atol=1e-12)
