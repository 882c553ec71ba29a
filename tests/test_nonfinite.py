"""NaN and ±Inf land exactly where the direct sum puts them, whatever the method.

Oracles we did not write: ``numpy.convolve``/``numpy.correlate`` and
``scipy.signal.convolve``/``correlate(method='direct')`` in float64 (complex128). The direct sum
runs over the terms where both operands are defined; implicit zero padding is not a term, as in
``numpy.convolve`` and scipy's 1-D direct path. scipy's N-D direct path zero-pads ``'full'`` and
``'same'`` explicitly, so its pads meet the kernel (``0 · Inf = NaN``): for N-D problems the
oracle is therefore :func:`full_sum`, ``numpy.convolve`` along the last dim summed over the
others, itself checked against scipy wherever scipy's pads meet only finite values
(:func:`test_full_sum_is_scipys_direct_sum`).

Every case runs each method with the others made to raise, so a silent fallback fails
(:func:`only`); overlap-add runs with small forced blocks (and the plain FFT made to raise), so
a NaN in one block must not reach the others.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv import _nonfinite, _plan
from trueconv._methods import REGISTRY, direct, overlap_add

METHODS = sorted(REGISTRY)
MODES = ("full", "same", "valid")
NAN, INF = float("nan"), float("inf")
F64 = torch.float64
NP_PAD = {"wrap": "wrap", "symmetric": "symmetric", "reflect": "reflect", "replicate": "edge"}


# --------------------------------------------------------------------------------------------
# oracles and comparison
# --------------------------------------------------------------------------------------------


def full_sum(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The 'full' direct sum over the defined terms only: ``numpy.convolve`` along the last
    dim, summed over every pair of rows of the leading dims that meet."""
    if x.ndim == 1:
        return np.convolve(x, k)
    out = np.zeros(tuple(n + m - 1 for n, m in zip(x.shape, k.shape)), dtype=np.result_type(x, k))
    for i, j in itertools.product(range(x.shape[0]), range(k.shape[0])):
        out[i + j] += full_sum(x[i], k[j])
    return out


def crop(y: np.ndarray, xs, ks, mode: str) -> np.ndarray:
    """The documented slice of 'full': 'same' from ``(k - 1) // 2``, length ``n``; 'valid'
    from ``min(n, k) - 1``, length ``|n - k| + 1``."""
    index = []
    for n, k in zip(xs, ks):
        if mode == "full":
            index.append(slice(None))
        elif mode == "same":
            index.append(slice((k - 1) // 2, (k - 1) // 2 + n))
        else:
            index.append(slice(min(n, k) - 1, min(n, k) - 1 + abs(n - k) + 1))
    return y[tuple(index)]


def reference(x, k, mode: str) -> np.ndarray:
    """The direct sum in float64/complex128: numpy for 1-D, :func:`full_sum` beyond."""
    x, k = _wide(x), _wide(k)
    with np.errstate(invalid="ignore"):  # NaN from 0 * Inf and Inf - Inf is the point
        if x.ndim == 1 and mode != "same":
            return np.convolve(x, k, mode)
        return crop(full_sum(x, k), x.shape, k.shape, mode)


def _wide(a) -> np.ndarray:
    a = to_numpy(a) if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def assert_placed(out: torch.Tensor, ref: np.ndarray, tol: float = REL_TOL[torch.float64]):
    """NaN, +Inf and -Inf exactly where ``ref`` has them; finite values within ``tol``."""
    got = _wide(out)
    assert got.shape == ref.shape, f"shape {got.shape} != {ref.shape}"
    finite = np.isfinite(ref)
    if np.iscomplexobj(ref):
        np.testing.assert_array_equal(~np.isfinite(got), ~finite)
    else:
        np.testing.assert_array_equal(np.where(finite, 0, got), np.where(finite, 0, ref))
    assert rel_err(got[finite], ref[finite]) <= tol


@pytest.fixture
def only(monkeypatch):
    """``only(method)``: the other methods raise; overlap-add runs with forced small blocks and
    the plain FFT raising. Returns a list that records the method's calls. The cached plans
    are dropped before and after: a forced plan made by an earlier test (without the small
    blocks) would be served again (:func:`trueconv._plan.forced` keeps them)."""
    _plan.forget()
    yield _use(monkeypatch)
    _plan.forget()


def _use(monkeypatch):  # type: ignore[no-untyped-def]
    def use(method: str) -> list[int]:
        calls: list[int] = []
        for name, module in REGISTRY.items():
            if name == method:
                run = module.run

                def spy(a, b, pads, _run=run):
                    calls.append(1)
                    return _run(a, b, pads)

                monkeypatch.setattr(module, "run", spy)
            else:
                monkeypatch.setattr(module, "run", _refuse(name))
        if method == "overlap_add":
            monkeypatch.setattr(overlap_add, "blocked_dims", _small_blocks)
        return calls

    return use


def _small_blocks(sa, sb, covered=None, spectrum_itemsize=0):
    """Blocks of ``k`` samples (``k - 1`` where the dim is too short) wherever a dim can be
    cut: small problems get several blocks."""
    blocks = []
    for n, k in zip(sa, sb):
        s = max(1, k - 1) + 1 if max(1, k - 1) + 1 < n else max(1, k - 1)
        blocks.append(s if n > 1 and k > 1 and s < n else None)
    return blocks


def _refuse(name: str):
    def run(*args, **kwargs):
        raise AssertionError(f"method {name!r} ran")

    return run


def _operands(xs, ks, where: str, kind: str, seed: int, dtype=torch.float64):
    """Random operands with zeros in both (so ``0 · Inf`` occurs) and non-finite values of
    ``kind`` at the first, a middle and the last position of the operands ``where`` says."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks)
    for a in (x, k):
        a.flat[rng.choice(a.size, size=max(1, a.size // 4), replace=False)] = 0.0
    values = {"nan": [NAN], "inf": [INF], "-inf": [-INF], "mixed": [NAN, INF, -INF, INF]}[kind]
    targets = {"input": (x,), "kernel": (k,), "both": (x, k)}[where]
    for a in targets:
        spots = sorted({0, a.size // 2, a.size - 1, int(rng.integers(a.size))})
        for i, spot in enumerate(spots):
            a.flat[spot] = values[i % len(values)]
    return torch.tensor(x, dtype=dtype), torch.tensor(k, dtype=dtype)


# --------------------------------------------------------------------------------------------
# the audit's examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_audit_example_zero_tap_meets_nan(only, method):
    """``[1, nan, 1, 1] ⊛ [1, 0, 1]``: the zero tap meets the NaN (0 · NaN = NaN)."""
    calls = only(method)
    out = trueconv.convolve([1.0, NAN, 1.0, 1.0], [1.0, 0.0, 1.0], method=method)
    expected = np.convolve([1.0, NAN, 1.0, 1.0], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(expected, [1.0, NAN, NAN, NAN, 1.0, 1.0])
    np.testing.assert_array_equal(to_numpy(out), expected)
    np.testing.assert_array_equal(
        to_numpy(out),
        scipy.signal.convolve([1.0, NAN, 1.0, 1.0], [1.0, 0.0, 1.0], "full", "direct"),
    )
    assert calls


def test_audit_example_direct_zero_tap_with_the_python_scalar_path():
    """The fast path of the direct method (taps as Python scalars: no graph, one kernel)."""
    x = torch.tensor([1.0, NAN, 1.0, 1.0])
    k = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        out = direct.shift_add(x, k, [(2, 2)])
    np.testing.assert_array_equal(to_numpy(out), [1.0, NAN, NAN, NAN, 1.0, 1.0])
    # and Inf against the zero tap
    out = direct.shift_add(torch.tensor([1.0, INF, 1.0]), k, [(2, 2)])
    np.testing.assert_array_equal(to_numpy(out), np.convolve([1.0, INF, 1.0], [1.0, 0.0, 1.0]))


@pytest.mark.parametrize("mode", ["full", "same"])
def test_auto_k301_n1000_spreads_no_further_than_scipy(mode):
    """The audit's 'auto' example (k=301, n=1000; with the compiled direct loop 'auto' now
    runs it directly), scaled until 'auto' takes a transform: one NaN reaches the k outputs of
    scipy's direct sum (not all of them)."""
    rng = np.random.default_rng(301)
    x, k = rng.standard_normal(20_000), rng.standard_normal(3001)
    x[5000] = NAN
    assert trueconv.choose_method(torch.tensor(x), torch.tensor(k), mode) in ("fft", "overlap_add")
    out = trueconv.convolve(torch.tensor(x), torch.tensor(k), mode)
    ref = scipy.signal.convolve(x, k, mode, method="direct")
    assert np.isnan(ref).sum() == 3001
    assert torch.isnan(out).sum() == 3001
    assert_placed(out, ref)


# --------------------------------------------------------------------------------------------
# every method, mode, dimensionality, operand and kind of non-finite value
# --------------------------------------------------------------------------------------------

SHAPES = {1: ((23,), (5,)), 2: ((9, 11), (3, 4)), 3: ((7, 6, 5), (3, 2, 3))}


@pytest.mark.parametrize("kind", ["nan", "inf", "-inf", "mixed"])
@pytest.mark.parametrize("where", ["input", "kernel", "both"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_matches_the_direct_sum(only, method, mode, nd, where, kind):
    xs, ks = SHAPES[nd]
    x, k = _operands(xs, ks, where, kind, seed=nd * 100 + len(where) * 10 + len(kind))
    calls = only(method)
    out = trueconv.convolve(x, k, mode, method=method)
    assert calls
    assert_placed(out, reference(x, k, mode))
    # the kernel larger than the input: the operands swap ('valid', and 'full' with zero fill)
    if mode != "same":
        out = trueconv.convolve(k, x, mode, method=method)
        assert_placed(out, reference(k, x, mode))


@pytest.mark.parametrize("method", METHODS)
def test_zero_times_inf_is_nan(only, method):
    only(method)
    cases = [
        ([1.0, INF, 1.0, 2.0], [1.0, 0.0, 1.0]),  # Inf in the input meets a zero tap
        ([1.0, 0.0, 1.0, 2.0], [INF, 2.0]),  # an infinite tap meets a zero sample
        ([0.0, 0.0, 0.0, 0.0], [0.0, -INF, 0.0]),
    ]
    for x, k in cases:
        out = trueconv.convolve(
            torch.tensor(x, dtype=F64), torch.tensor(k, dtype=F64), method=method
        )
        ref = np.convolve(x, k)
        assert np.isnan(ref).any()
        assert_placed(out, ref)


@pytest.mark.parametrize("method", METHODS)
def test_plus_inf_meets_minus_inf(only, method):
    only(method)
    cases = [
        ([1.0, 1.0, 1.0, 3.0], [INF, -INF]),  # both signs from the kernel
        ([INF, -INF, 2.0, 5.0, 1.0], [1.0, 1.0]),  # both from the input
        ([INF, INF, 3.0, 5.0, 1.0], [1.0, -1.0]),  # one from each sign of the kernel
        ([INF, 2.0, -3.0, 5.0, INF], [-INF, 1.0, INF]),  # both operands infinite
    ]
    for x, k in cases:
        out = trueconv.convolve(
            torch.tensor(x, dtype=F64), torch.tensor(k, dtype=F64), method=method
        )
        ref = np.convolve(x, k)
        assert np.isnan(ref).any()
        assert np.isinf(ref).any()
        assert_placed(out, ref)


@pytest.mark.parametrize(
    "kernel",
    [
        [[1.0, 2.0, 0.5], [3.0, 1.0, 4.0]],  # positive
        [[-1.0, -2.0, -0.5], [-3.0, -1.0, -4.0]],  # negative
        [[1.0, -2.0, 0.5], [3.0, 1.0, -4.0]],  # both signs, no zero
        [[1.0, 0.0, 0.5], [-3.0, 1.0, 4.0]],  # a zero
        [[1.0, NAN, 0.5], [3.0, 1.0, 4.0]],  # a NaN
    ],
    ids=["positive", "negative", "mixed", "zero", "nan"],
)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_infinite_input_against_kernels_of_every_sign(only, method, mode, kernel):
    """Kernels of one sign and without zeros count their terms by window sums, the others by
    the method: both paths, every mode, both operand orders."""
    x = np.random.default_rng(47).standard_normal((6, 13))
    x[0, 0], x[2, 5], x[2, 7], x[5, 12], x[4, 1] = INF, -INF, INF, -INF, NAN
    k = np.array(kernel)
    only(method)
    for a, b in ((x, k), (k, x)):
        if mode == "same" and a is k:
            continue
        out = trueconv.convolve(torch.tensor(a), torch.tensor(b), mode, method=method)
        assert_placed(out, reference(a, b, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_many_non_finite_values(only, method, mode):
    """Non-finite samples all over the input (the sparse shortcuts of the window sums find
    nothing to skip), a kernel with a zero and both signs: every kind of output occurs."""
    rng = np.random.default_rng(53)
    x, k = rng.standard_normal((16, 19)), np.array([[1.0, -2.0, 0.0], [0.5, 3.0, -1.0]])
    draw = rng.random(x.shape)
    x[draw < 0.05], x[(draw > 0.1) & (draw < 0.2)] = NAN, INF
    x[(draw > 0.2) & (draw < 0.25)], x[draw > 0.9] = -INF, 0.0
    only(method)
    out = trueconv.convolve(torch.tensor(x), torch.tensor(k), mode, method=method)
    ref = reference(x, k, mode)
    assert_placed(out, ref)
    for kind in (np.isnan, np.isposinf, np.isneginf, np.isfinite):
        assert kind(ref).any()


def test_implicit_zero_padding_is_not_a_term():
    """An infinite tap reaching past the input meets no sample there ('full'), as
    ``numpy.convolve`` and scipy's 1-D direct path; scipy's N-D path pads with explicit zeros
    (0 · Inf = NaN), so a (1, n) problem, which is 1-D, shows the difference."""
    x, k = np.array([[1.0, 2.0, 3.0]]), np.array([[INF, 1.0]])
    ref = np.convolve(x[0], k[0])[None]
    np.testing.assert_array_equal(ref, [[INF, INF, INF, 3.0]])
    assert np.isnan(scipy.signal.convolve(x, k, method="direct")).any()  # scipy's N-D path
    for method in METHODS:
        assert_placed(trueconv.convolve(torch.tensor(x), torch.tensor(k), method=method), ref)


# --------------------------------------------------------------------------------------------
# boundaries, fill values, batches, correlate, complex, dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", sorted(NP_PAD))
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_boundaries_extend_with_real_samples(only, method, nd, mode, boundary):
    """An explicit extension copies NaN/Inf samples; then a 'valid' direct sum (scipy)."""
    xs, ks = SHAPES[nd]
    x, k = _operands(xs, ks, "both", "mixed", seed=7 + nd)
    only(method)
    out = trueconv.convolve(x, k, mode, method=method, boundary=boundary)
    pads = [(m - 1, m - 1) if mode == "full" else (m - 1 - (m - 1) // 2, (m - 1) // 2) for m in ks]
    xp = np.pad(to_numpy(x), pads, mode=NP_PAD[boundary])
    assert_placed(out, scipy.signal.convolve(xp, to_numpy(k), "valid", method="direct"))


@pytest.mark.parametrize("fill_value", [NAN, INF, -INF, 2.5])
@pytest.mark.parametrize("method", METHODS)
def test_fill_values_are_real_samples(only, method, fill_value):
    xs, ks = SHAPES[2]
    x, k = _operands(xs, ks, "input", "nan", seed=11)
    only(method)
    out = trueconv.convolve(x, k, "same", method=method, fill_value=fill_value)
    pads = [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in ks]
    xp = np.pad(to_numpy(x), pads, constant_values=fill_value)
    assert_placed(out, scipy.signal.convolve(xp, to_numpy(k), "valid", method="direct"))


@pytest.mark.parametrize(
    ("x_shape", "k_shape"),
    [
        ((3, 30), (5,)),  # one kernel for every signal
        ((3, 30), (3, 5)),  # a kernel per signal
        ((1, 30), (4, 5)),  # one signal, many kernels
        ((3, 1, 30), (1, 2, 5)),  # both broadcast
    ],
)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_batches_and_per_signal_kernels(only, method, mode, x_shape, k_shape):
    x, k = _operands(x_shape, k_shape, "both", "mixed", seed=len(x_shape) + k_shape[0])
    only(method)
    out = trueconv.convolve(x, k, mode, dims=-1, method=method)
    batch = np.broadcast_shapes(x_shape[:-1], k_shape[:-1])
    xb = np.broadcast_to(to_numpy(x), batch + x_shape[-1:])
    kb = np.broadcast_to(to_numpy(k), batch + k_shape[-1:])
    ref = np.stack([reference(xb[i], kb[i], mode) for i in np.ndindex(*batch)])
    assert_placed(out, ref.reshape(out.shape))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_correlate(only, method, mode):
    only(method)
    x, k = _operands((31,), (6,), "both", "mixed", seed=13)
    ref = scipy.signal.correlate(to_numpy(x), to_numpy(k), mode, method="direct")
    if mode == "same":  # scipy's 1-D direct path is numpy's there; numpy has no scipy 'same'
        ref = crop(np.correlate(to_numpy(x), to_numpy(k), "full"), (31,), (6,), mode)
    assert_placed(trueconv.correlate(x, k, mode, method=method), ref)
    # 2-D: correlate is convolve with the kernel flipped (scipy 'valid' has no padding)
    x2, k2 = _operands((9, 11), (3, 4), "both", "mixed", seed=14)
    out = trueconv.correlate(x2, k2, mode, method=method)
    if mode == "valid":
        ref = scipy.signal.correlate(to_numpy(x2), to_numpy(k2), "valid", method="direct")
    else:
        ref = reference(x2, k2.flip(0, 1), mode)
    assert_placed(out, ref)


@pytest.mark.parametrize("where", ["input", "kernel", "both"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_complex_placement(only, method, mode, where):
    """Complex: the non-finite outputs exactly placed; the transforms give them NaN."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((8, 12)) + 1j * rng.standard_normal((8, 12))
    k = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    if where != "kernel":
        x[0, 0], x[4, 7] = complex(INF, 0.0), complex(1.0, NAN)
    if where != "input":
        k[1, 2] = complex(0.0, -INF)
    only(method)
    out = trueconv.convolve(torch.tensor(x), torch.tensor(k), mode, method=method)
    ref = reference(x, k, mode)
    assert_placed(out, ref)
    if method != "direct":
        bad = ~torch.isfinite(out)
        assert bad.any()
        assert torch.isnan(out.real[bad]).all()
        assert torch.isnan(out.imag[bad]).all()


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16, torch.complex64], ids=str
)
@pytest.mark.parametrize("method", METHODS)
def test_low_precision_dtypes(only, method, dtype):
    xs, ks = SHAPES[2]
    x, k = _operands(xs, ks, "both", "mixed", seed=19)
    only(method)
    out = trueconv.convolve(x.to(dtype), k.to(dtype), "same", method=method)
    assert out.dtype == dtype
    ref = reference(x.to(dtype), k.to(dtype), "same")  # the rounded operands, in float64
    assert_placed(out, ref, tol=REL_TOL[dtype])


# --------------------------------------------------------------------------------------------
# property test: any shapes, positions and values
# --------------------------------------------------------------------------------------------


@st.composite
def problems(draw):
    nd = draw(st.integers(1, 2))
    xs = tuple(draw(st.lists(st.integers(1, 14), min_size=nd, max_size=nd)))
    ks = tuple(draw(st.lists(st.integers(1, 6), min_size=nd, max_size=nd)))
    mode = draw(st.sampled_from(MODES))
    if mode == "valid" and not (
        all(n >= k for n, k in zip(xs, ks)) or all(k >= n for n, k in zip(xs, ks))
    ):
        mode = "full"
    special = st.sampled_from([NAN, INF, -INF, 0.0])
    marks = []
    for shape in (xs, ks):
        size = int(np.prod(shape))
        spots = draw(st.lists(st.integers(0, size - 1), max_size=min(size, 4), unique=True))
        marks.append([(s, draw(special)) for s in spots])
    method = draw(st.sampled_from(METHODS))
    return xs, ks, mode, marks, method, draw(st.integers(0, 2**16))


@given(problems())
def test_property_every_method_places_like_the_direct_sum(problem):
    xs, ks, mode, marks, method, seed = problem
    rng = np.random.default_rng(seed)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    for a, spots in zip((x, k), marks):
        for s, v in spots:
            a.flat[s] = v
    out = trueconv.convolve(torch.tensor(x), torch.tensor(k), mode, method=method)
    assert_placed(out, reference(x, k, mode))


# --------------------------------------------------------------------------------------------
# the oracle itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_full_sum_is_scipys_direct_sum(nd, mode):
    """Where scipy's explicit pads meet only finite values (non-finite values in the larger
    operand, which scipy pads), :func:`reference` is scipy's direct sum."""
    xs, ks = SHAPES[nd]
    x, k = _operands(xs, ks, "input", "mixed", seed=23)
    x, k = to_numpy(x), to_numpy(k)
    ref = scipy.signal.convolve(x, k, mode, method="direct")
    got = reference(x, k, mode)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(
        np.where(np.isfinite(ref), 0, got), np.where(np.isfinite(ref), 0, ref)
    )
    assert rel_err(got[np.isfinite(ref)], ref[np.isfinite(ref)]) <= REL_TOL[torch.float64]


# --------------------------------------------------------------------------------------------
# autograd, the direct method's fast path, recorded calls
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_gradients_of_finite_inputs_unchanged(only, method):
    only(method)
    g = torch.Generator().manual_seed(29)
    x = torch.randn(2, 9, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    for mode in MODES:
        assert torch.autograd.gradcheck(
            lambda a, b, mode=mode: trueconv.convolve(a, b, mode, method=method), (x, k)
        )


@pytest.mark.parametrize("method", METHODS)
def test_gradients_with_non_finite_inputs(only, method):
    """Values placed as without autograd; backward runs."""
    only(method)
    x, k = _operands((2, 40), (4,), "input", "mixed", seed=31)
    ref = np.stack([reference(row, k, "same") for row in x])
    x.requires_grad_()
    k.requires_grad_()
    out = trueconv.convolve(x, k, "same", method=method)
    assert_placed(out, ref)
    finite = torch.isfinite(out)
    gx, gk = torch.autograd.grad(out.where(finite, 0).sum(), (x, k))
    assert gx.shape == x.shape
    assert gk.shape == k.shape


def test_direct_skips_zero_taps_only_when_it_cannot_matter():
    """Skipping zero taps keeps the finite case fast (Sobel, Laplacian kernels): allowed for
    integers always, for floating signals only when every sample is finite."""
    taps = [1.0, 0.0, -1.0]
    skippable = direct._zero_taps_skippable
    assert skippable(torch.arange(6, dtype=torch.int64), taps)
    assert skippable(torch.randn(6, dtype=torch.float64), taps)
    assert skippable(torch.randn(6, dtype=torch.complex64), taps)
    assert not skippable(torch.tensor([1.0, NAN]), taps)
    assert not skippable(torch.tensor([1.0, -INF]), taps)
    assert not skippable(torch.tensor([3e38, 3e38], dtype=torch.float32), [1.0])  # no zero tap
    assert skippable(torch.tensor([3e38, 3e38], dtype=torch.float32), taps)  # sum overflows


def test_all_finite():
    assert _nonfinite.all_finite(torch.tensor([1.0, 2.0]))
    assert _nonfinite.all_finite(torch.tensor([3e38, 3e38], dtype=torch.float32))  # overflow
    assert _nonfinite.all_finite(torch.tensor([3e38, 3e38j], dtype=torch.complex64))
    assert _nonfinite.all_finite(torch.tensor([3e38, 3e38], dtype=torch.complex64))  # overflow
    assert _nonfinite.all_finite(torch.tensor([3e38, -3e38, 3e38, 3e38], dtype=torch.float32))
    for v in (NAN, INF, -INF):
        assert not _nonfinite.all_finite(torch.tensor([1.0, v]))
        assert not _nonfinite.all_finite(torch.tensor([1.0, complex(0.0, v)]))
    assert not _nonfinite.all_finite(torch.tensor([INF, -INF]))


def test_all_finite_of_several_tensors():
    """Several tensors: one sum of their sums decides when it is finite; an overflow of that
    sum, or of one tensor's, falls back to each tensor's own check."""
    big = torch.tensor([3e38, 3e38], dtype=torch.float32)
    assert _nonfinite.all_finite()
    assert _nonfinite.all_finite(torch.ones(3), torch.ones(2, dtype=torch.float64))
    assert _nonfinite.all_finite(big, big)  # each sum and their sum overflow
    assert _nonfinite.all_finite(torch.tensor([3e38]), torch.tensor([3e38]))  # their sum does
    assert _nonfinite.all_finite(torch.arange(4), torch.ones(2))  # integers are finite
    for v in (NAN, INF, -INF):
        assert not _nonfinite.all_finite(torch.ones(3), torch.tensor([1.0, v]))
        assert not _nonfinite.all_finite(torch.tensor([v]), big)
        assert not _nonfinite.all_finite(big, torch.ones(1), torch.tensor([complex(v, 0.0)]))
    # +Inf in one and -Inf in the other: their sum is NaN, still not finite
    assert not _nonfinite.all_finite(torch.tensor([INF]), torch.tensor([-INF]))


@settings(max_examples=200)
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 1.0, -2.5, 3e38, -3e38, NAN, INF, -INF]), max_size=5),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([torch.float32, torch.float64, torch.complex64]),
)
def test_all_finite_is_isfinite_all(values, dtype):
    tensors = [torch.tensor(v, dtype=dtype) for v in values]
    expected = all(bool(torch.isfinite(t).all()) for t in tensors)
    assert _nonfinite.all_finite(*tensors) is expected


@pytest.mark.parametrize("method", ["fft", "overlap_add"])
def test_vmap_is_not_checked_and_spreads_as_scipys_transforms(only, method):
    """Under ``torch.func.vmap`` the data cannot be checked: the transforms run unguarded and
    spread NaN over what they transform together, as ``scipy.signal.fftconvolve`` (the whole
    output) and ``oaconvolve`` (blocks) do (documented); finite rows are exact."""
    only(method)
    rng = np.random.default_rng(37)
    x, k = rng.standard_normal((2, 20)), rng.standard_normal(4)
    x[1, 3] = NAN
    out = torch.func.vmap(lambda row: trueconv.convolve(row, torch.tensor(k), method=method))(
        torch.tensor(x)
    )
    assert rel_err(out[0], np.convolve(x[0], k)) <= REL_TOL[torch.float64]
    nan = np.isnan(to_numpy(out[1]))
    if method == "fft":
        np.testing.assert_array_equal(nan, np.isnan(scipy.signal.fftconvolve(x[1], k)))
    else:
        direct_sum = np.isnan(np.convolve(x[1], k))
        assert (nan >= direct_sum).all()
        assert nan.sum() > direct_sum.sum()


def test_guard_runs_only_for_methods_that_spread():
    x, k = torch.randn(8, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    spec = trueconv._spec.normalize("convolve", x, k, "full", None, "auto", "fill", 0)[2]
    cpu = torch.device("cpu")

    def planned(method, s=spec):
        return _plan.forced(s, cpu, method)

    assert not _plan.guarded(planned("direct"), x, k)  # shift-and-add on the CPU
    assert _plan.guarded(planned("fft"), x, k)
    assert _plan.guarded(planned("overlap_add"), x, k)
    assert planned("direct").places_nonfinite
    ints = trueconv._spec.normalize("convolve", x.long(), k.long(), "full", None, "fft", "fill", 0)
    assert not _plan.guarded(planned("fft", ints[2]), x, k)  # integers are finite
    meta = x.to("meta"), k.to("meta")
    assert not _plan.guarded(planned("fft"), *meta)


# --------------------------------------------------------------------------------------------
# meta tensors: shapes and dtypes without data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.float64, torch.complex64, torch.int64, torch.bool]
)
@pytest.mark.parametrize("boundary", ["fill", "wrap"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["auto", *METHODS])
def test_meta_tensors_give_the_shape_and_dtype_of_the_cpu_result(method, mode, boundary, dtype):
    cases = [((10,), (3,)), ((3,), (10,)), ((2, 9, 8), (3, 4)), ((4, 5), (2, 4, 5))]
    for xs, ks in cases:
        x, k = torch.ones(xs, dtype=dtype), torch.ones(ks, dtype=dtype)
        dims = -1 if len(ks) > len(xs) else None
        for func in (trueconv.convolve, trueconv.correlate):
            cpu = func(x, k, mode, method=method, boundary=boundary, dims=dims)
            meta = func(
                x.to("meta"), k.to("meta"), mode, method=method, boundary=boundary, dims=dims
            )
            assert meta.device.type == "meta"
            assert meta.shape == cpu.shape
            assert meta.dtype == cpu.dtype


# --------------------------------------------------------------------------------------------
# trueconv.dask equals the in-memory call
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["fill", "wrap"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["auto", *METHODS])
def test_dask_equals_in_memory(method, mode, boundary):
    """NaN and ±Inf in several chunks: every block places them as the whole-array call."""
    da = pytest.importorskip("dask.array")
    import dask

    import trueconv.dask

    rng = np.random.default_rng(41)
    x = rng.standard_normal((40, 36))
    x[0, 0], x[3, 20], x[17, 9] = NAN, INF, -INF  # different chunks, one on the edge
    x[25:27, 30] = (NAN, INF)
    x[39, 35] = -INF
    k = rng.standard_normal((5, 4))
    k[2, 1] = 0.0
    with dask.config.set(scheduler="synchronous"):
        lazy = trueconv.dask.convolve(
            da.from_array(x, chunks=(12, 10)), k, mode, method=method, boundary=boundary
        )
        got = lazy.compute()
    whole = trueconv.convolve(
        torch.tensor(x), torch.tensor(k), mode, method=method, boundary=boundary
    )
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(to_numpy(whole)))
    assert_placed(torch.tensor(got), to_numpy(whole))
    if boundary == "fill":  # and both are the direct sum
        assert_placed(whole, reference(x, k, mode))


@pytest.mark.parametrize("mode", ["full", "same"])
def test_dask_equals_in_memory_with_an_infinite_kernel(mode):
    da = pytest.importorskip("dask.array")
    import dask

    import trueconv.dask

    rng = np.random.default_rng(43)
    x, k = rng.standard_normal((20, 18)), rng.standard_normal((3, 3))
    k[0, 0] = INF
    with dask.config.set(scheduler="synchronous"):
        got = trueconv.dask.convolve(da.from_array(x, chunks=(7, 6)), k, mode).compute()
    whole = trueconv.convolve(torch.tensor(x), torch.tensor(k), mode)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(to_numpy(whole)))
