"""Every supported dtype: result dtype, accuracy against float64 references, exact integers.

The result dtype is ``torch.result_type(input, kernel)``. Floating results are checked against
scipy on the same (already rounded) values in float64/complex128 with per-dtype bounds; integer
and bool results must equal numpy's exactly, including numpy's wraparound on overflow.
"""

from __future__ import annotations

import itertools

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
MODES = ["full", "same", "valid"]
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
COMPLEX = [torch.complex64, torch.complex128]
INTS = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def np_dtype(dtype: torch.dtype) -> np.dtype:
    return to_numpy(torch.zeros(0, dtype=dtype)).dtype


def exact64(t: torch.Tensor) -> torch.Tensor:
    """``t`` widened exactly for comparison (numpy, hence ``rel_err``, has no bfloat16)."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def ref64(x: torch.Tensor, k: torch.Tensor, mode: str, fn=scipy.signal.convolve) -> np.ndarray:
    """scipy's direct result on the operands' exact values, in float64 or complex128."""
    wide = torch.complex128 if (x.is_complex() or k.is_complex()) else torch.float64
    return fn(to_numpy(x.to(wide)), to_numpy(k.to(wide)), mode, method="direct")


SHAPES = [((17,), (5,)), ((12,), (4,)), ((3,), (6,)), ((6, 7), (3, 4)), ((3, 4, 5), (2, 3, 2))]


# --- floating and complex dtypes ------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("xs", "ks"), SHAPES)
@pytest.mark.parametrize("dtype", FLOATS + COMPLEX)
def test_float_and_complex_dtypes(dtype, xs, ks, method):
    g = torch.Generator().manual_seed(sum(xs) + 10 * sum(ks))
    x = torch.randn(xs, generator=g, dtype=torch.float64).to(dtype)
    k = torch.randn(ks, generator=g, dtype=torch.float64).to(dtype)
    if dtype.is_complex:
        x = x + 1j * torch.randn(xs, generator=g, dtype=torch.float64).to(dtype)
        k = k - 1j * torch.randn(ks, generator=g, dtype=torch.float64).to(dtype)
    funcs = [
        (trueconv.convolve, scipy.signal.convolve),
        (trueconv.correlate, scipy.signal.correlate),
    ]
    for (fn, ref_fn), mode in itertools.product(funcs, MODES):
        out = fn(x, k, mode, method=method)
        assert out.dtype == dtype  # float16/bfloat16 keep their own dtype
        assert out.device == x.device
        ref = ref64(x, k, mode, ref_fn)
        assert rel_err(exact64(out), ref) < REL_TOL[dtype], (fn.__name__, mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_float64_never_passes_through_float32(dtype, method):
    """Steps of 1e-9 on values near 1: float32 (eps 1.2e-7) cannot even represent them."""
    x = (1 + 1e-9 * torch.arange(16, dtype=torch.float64)).to(dtype)
    k = torch.tensor([1.0, -1.0], dtype=dtype)
    out = trueconv.convolve(x, k, "valid", method=method)
    assert out.dtype == dtype
    err = np.abs(to_numpy(out) - 1e-9).max()
    assert err < 1e-13, err  # a float32 detour would be off by ~1e-9 (the whole value)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("dtype", "n"), [(torch.float16, 3000), (torch.bfloat16, 600)])
def test_half_precision_accumulates_in_float32(dtype, n, method):
    """Summing n ones stalls at 2048 in float16 and at 256 in bfloat16; float32 does not."""
    x = torch.ones(n, dtype=dtype)
    out = trueconv.convolve(x, x, method=method)
    assert out.dtype == dtype
    assert out[n - 1].item() == n  # exactly representable in the dtype
    ref = np.convolve(np.ones(n), np.ones(n))
    assert rel_err(exact64(out), ref) < REL_TOL[dtype]


# --- integers and bool: exact, wrapping like numpy -------------------------------------------


def int_operands(dtype: torch.dtype, xs, ks, rng, big: bool):
    """Random operands of ``dtype``; ``big`` values make the sums overflow narrow dtypes."""
    if dtype == torch.bool:
        return rng.integers(0, 2, xs).astype(bool), rng.integers(0, 2, ks).astype(bool)
    info = torch.iinfo(dtype)
    if big:
        lo, hi = max(info.min, -(2**16)), min(info.max, 2**16)
    else:
        lo, hi = max(info.min, -9), min(info.max, 9)
    npdt = np_dtype(dtype)
    return (
        rng.integers(lo, hi, xs, endpoint=True).astype(npdt),
        rng.integers(lo, hi, ks, endpoint=True).astype(npdt),
    )


def exact_ref(x: np.ndarray, k: np.ndarray, mode: str) -> np.ndarray:
    """Exact int64 convolution (scipy direct), then cast like numpy's integer arithmetic."""
    wide = scipy.signal.convolve(x.astype(np.int64), k.astype(np.int64), mode, method="direct")
    out_dt = np.result_type(x, k)
    return (wide != 0) if out_dt == np.bool_ else wide.astype(out_dt)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("xs", "ks"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.bool, *INTS])
def test_integer_dtypes_exact(dtype, xs, ks, method):
    """Exact for every method, wrapping on overflow (values up to 2**16 overflow the narrow
    dtypes); an FFT result is rounded, exact while |y| < 2**52, as scipy's."""
    rng = np.random.default_rng(sum(xs) * 31 + sum(ks))
    x, k = int_operands(dtype, xs, ks, rng, big=True)
    for mode in MODES:
        out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
        assert out.dtype == dtype
        np.testing.assert_array_equal(to_numpy(out), exact_ref(x, k, mode), err_msg=mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.bool, *INTS])
def test_integer_1d_matches_np_convolve_and_correlate(dtype, method):
    """numpy itself as the oracle, in the operands' own dtype (bool: OR of ANDs)."""
    rng = np.random.default_rng(5)
    # values up to 2**16: narrow dtypes overflow (and wrap); |y| stays far below 2**52, where
    # a rounded transform result would stop being exact
    x, k = int_operands(dtype, (14,), (5,), rng, big=True)
    xt, kt = torch.from_numpy(x), torch.from_numpy(k)
    for mode in MODES:
        out = trueconv.convolve(xt, kt, mode, method=method)
        assert out.dtype == dtype
        np.testing.assert_array_equal(to_numpy(out), np.convolve(x, k, mode), err_msg=mode)
        out = trueconv.correlate(xt, kt, mode, method=method)
        np.testing.assert_array_equal(to_numpy(out), np.correlate(x, k, mode), err_msg=mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("dtype", "x", "k"),
    [
        (torch.int8, [100, 100, -128, 127], [2, 3, -1]),
        (torch.uint8, [200, 250, 255, 7], [3, 255]),
        (torch.int16, [30000, -32768, 32767, 12345], [7, -9, 3]),
        (torch.int32, [2**30, -(2**31), 2**31 - 1], [5, 3]),
    ],
)
def test_integer_overflow_wraps_like_numpy(dtype, x, k, method):
    npdt = np_dtype(dtype)
    xn, kn = np.array(x, dtype=npdt), np.array(k, dtype=npdt)
    ref = np.convolve(xn, kn)
    out = trueconv.convolve(torch.from_numpy(xn), torch.from_numpy(kn), method=method)
    assert out.dtype == dtype
    np.testing.assert_array_equal(to_numpy(out), ref)
    # the wrapped values really differ from the true sums: the test is about overflow
    assert not np.array_equal(ref.astype(np.int64), np.convolve(xn.astype(np.int64), kn))


@pytest.mark.parametrize("method", ["auto", "direct"])
def test_int64_beyond_float64_precision_is_exact(method):
    """|y| ~ 2**60: exact only without any floating-point detour."""
    x = np.array([2**57 + 1, -(2**57) + 3, 2**56 - 5, 7, 2**55 + 11], dtype=np.int64)
    k = np.array([3, -1, 2], dtype=np.int64)
    for mode in MODES:
        out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
        assert out.dtype == torch.int64
        np.testing.assert_array_equal(to_numpy(out), np.convolve(x, k, mode))


@pytest.mark.parametrize(("xs", "ks"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_explicit_fft_on_integers_rounds_like_scipy(dtype, xs, ks):
    rng = np.random.default_rng(9)
    npdt = np_dtype(dtype)
    x = rng.integers(-300, 300, xs).astype(npdt)
    k = rng.integers(-300, 300, ks).astype(npdt)
    for mode in MODES:
        ref = scipy.signal.convolve(x, k, mode, method="fft")
        assert ref.dtype == npdt  # scipy rounds integer results too
        out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method="fft")
        assert out.dtype == dtype
        np.testing.assert_array_equal(to_numpy(out), ref, err_msg=mode)


def test_bool_convolution_is_numpy_or_of_ands():
    x = np.array([True, False, False, True, False, False, False, True])
    k = np.array([True, True, False])
    for method in METHODS:
        for mode in MODES:
            out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
            assert out.dtype == torch.bool
            np.testing.assert_array_equal(to_numpy(out), np.convolve(x, k, mode))


# --- promotion: torch.result_type -----------------------------------------------------------

PAIRS = [
    (torch.int8, torch.uint8),
    (torch.bool, torch.int8),
    (torch.bool, torch.uint8),
    (torch.uint8, torch.int16),
    (torch.int32, torch.int64),
    (torch.int16, torch.float16),
    (torch.int64, torch.float32),
    (torch.uint8, torch.bfloat16),
    (torch.float16, torch.bfloat16),
    (torch.bfloat16, torch.float32),
    (torch.float32, torch.float64),
    (torch.float32, torch.complex64),
    (torch.float64, torch.complex64),
    (torch.int8, torch.complex64),
    (torch.bool, torch.float64),
    (torch.bfloat16, torch.complex64),
    (torch.float16, torch.complex128),
    (torch.int32, torch.complex128),
]


def _operand(dtype: torch.dtype, shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.randint(0, 50, shape, generator=g).to(dtype)
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    if dtype.is_complex:
        t = t + 1j * torch.randn(shape, generator=g, dtype=torch.float64)
    return t.to(dtype)


def check_against_reference(out: torch.Tensor, x: torch.Tensor, k: torch.Tensor, mode: str):
    dtype = out.dtype
    if dtype.is_floating_point or dtype.is_complex:
        assert rel_err(exact64(out), ref64(x, k, mode)) < REL_TOL[dtype]
    else:
        xn = to_numpy(x.to(dtype))
        kn = to_numpy(k.to(dtype))
        np.testing.assert_array_equal(to_numpy(out), exact_ref(xn, kn, mode))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("dx", "dk"), PAIRS)
def test_mixed_dtype_pairs_promote_like_torch(dx, dk, method):
    for (a, b), mode in itertools.product(((dx, dk), (dk, dx)), MODES):
        x, k = _operand(a, (3, 9), 1), _operand(b, (2, 4), 2)
        expected = torch.result_type(x, k)
        out = trueconv.convolve(x, k, mode, method=method)
        assert out.dtype == expected, (a, b, mode)
        check_against_reference(out, x, k, mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("dx", "dk"),
    [
        (torch.float16, torch.float64),  # same category: the dimensioned operand wins
        (torch.int8, torch.int64),
        (torch.uint8, torch.int64),
        (torch.int16, torch.float64),  # higher category: the 0-d operand's dtype
        (torch.bool, torch.int32),
        (torch.float32, torch.complex128),
        (torch.bfloat16, torch.float32),
    ],
)
def test_zero_dim_kernel_promotes_like_torch(dx, dk, method):
    x = _operand(dx, (7,), 3)
    k = torch.tensor(3, dtype=dk) if dk != torch.bool else torch.tensor(True)
    if dk.is_floating_point:
        k = torch.tensor(-1.5, dtype=dk)
    if dk.is_complex:
        k = torch.tensor(2 - 1j, dtype=dk)
    expected = torch.result_type(x, k)
    for mode in MODES:
        out = trueconv.convolve(x, k, mode, method=method)
        assert out.dtype == expected
        assert out.shape == x.shape
        check_against_reference(out, x, k.reshape(1), mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("dx", "dk"),
    [(torch.float64, torch.float32), (torch.int64, torch.int8), (torch.float64, torch.int16)],
)
def test_zero_dim_input_with_dims(dx, dk, method):
    """A 0-d input with dims=0 is a length-1 signal; promotion treats it as 0-d."""
    x = torch.tensor(2, dtype=dx)
    k = _operand(dk, (5,), 4)
    expected = torch.result_type(x, k)
    out = trueconv.convolve(x, k, "full", dims=0, method=method)
    assert out.dtype == expected
    check_against_reference(out, x.reshape(1), k, "full")


def test_both_zero_dim():
    x = torch.tensor(3, dtype=torch.int64)
    k = torch.tensor(0.5, dtype=torch.float32)
    out = trueconv.convolve(x, k)
    assert out.dtype == torch.result_type(x, k) == torch.float32
    assert out.shape == ()
    assert out.item() == 1.5


# --- random integer problems (hypothesis) ----------------------------------------------------


@given(
    st.sampled_from([torch.bool, *INTS]),
    st.lists(st.integers(1, 6), min_size=1, max_size=2),
    st.lists(st.integers(1, 6), min_size=2, max_size=2),
    st.sampled_from(MODES),
    st.sampled_from(["auto", "direct"]),
    st.integers(0, 2**32 - 1),
)
def test_random_integer_problems_exact(dtype, xs, ks_pool, mode, method, seed):
    ks = ks_pool[: len(xs)]
    if mode == "valid" and not (
        all(a >= b for a, b in zip(xs, ks)) or all(b >= a for a, b in zip(xs, ks))
    ):
        mode = "full"
    rng = np.random.default_rng(seed)
    x, k = int_operands(dtype, xs, ks, rng, big=True)
    out = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), mode, method=method)
    assert out.dtype == dtype
    np.testing.assert_array_equal(to_numpy(out), exact_ref(x, k, mode))
