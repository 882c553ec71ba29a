"""Separable kernels: found by 'auto' (exactly for integers, within the stated bound for
floats) and run as one pass per dim; given by their factors to convolve_separable. Oracles:
scipy's direct sum in float64 and OpenCV-style dense calls."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trueconv
from conftest import assert_same_nonfinite, rel_err
from trueconv import _plan, _separable
from trueconv._methods import rows
from trueconv._plan import cheapest
from trueconv._problem import Problem
from trueconv._spec import normalize

BOUNDARIES = ["fill", "wrap", "symmetric", "reflect", "replicate"]

#: tests of what 'auto' and the passes do with the compiled loop (numba, the `fast` extra):
#: its prices make the separable plan the cheaper one, and its passes read boundary
#: extensions in place (shift-and-add, without it, extends its input)
needs_jit = pytest.mark.skipif(not rows.AVAILABLE, reason="numba is not installed")
NP_PAD = {"wrap": "wrap", "symmetric": "symmetric", "reflect": "reflect", "replicate": "edge"}


def gaussian(k, sigma):
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / sigma) ** 2)
    return g / g.sum()


def _oracle(x, kernel, mode, boundary):
    """numpy.pad for the boundary, then scipy's direct sum in float64."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if boundary == "fill" or mode == "valid":
        return scipy.signal.convolve(x, kernel, mode, method="direct")
    pads = [(k - 1, k - 1) for k in kernel.shape]
    full = scipy.signal.convolve(np.pad(x, pads, mode=NP_PAD[boundary]), kernel, "valid")
    if mode == "full":
        return full
    starts = [(k - 1) // 2 for k in kernel.shape]
    return full[tuple(slice(s, s + n) for s, n in zip(starts, x.shape))]


@pytest.fixture
def separable_ran(monkeypatch):
    """Counts the separable runs, so a test can prove that the passes (not the dense plan)
    computed the result."""
    runs = []
    original = _separable.SeparablePlan.run

    def counted(self, a, fs, b=None):
        runs.append(self)
        return original(self, a, fs, b)

    monkeypatch.setattr(_separable.SeparablePlan, "run", counted)
    return runs


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same"])
def test_auto_runs_a_gaussian_as_passes(separable_ran, dtype, boundary, mode):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((300, 320))).to(dtype)
    kernel = np.outer(gaussian(9, 2.0), gaussian(9, 2.0))
    k = torch.from_numpy(kernel).to(dtype)
    assert trueconv.choose_method(x, k, mode, boundary=boundary) == "separable"
    y = trueconv.convolve(x, k, mode, boundary=boundary)
    assert len(separable_ran) == 1
    ref = _oracle(x.double().numpy(), k.double().numpy(), mode, boundary)
    assert rel_err(y, ref) < (2e-6 if dtype == torch.float32 else 1e-14)


def test_integer_sobel_is_exact_and_separable(separable_ran):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(-1000, 1000, (400, 500)))
    k = torch.tensor([[1, 0, -1], [2, 0, -2], [1, 0, -1]] * 1)
    k = torch.kron(k, torch.ones(3, 3, dtype=torch.int64))  # 9x9, rank 1
    assert trueconv.choose_method(x, k) == "separable"
    y = trueconv.convolve(x, k)
    assert len(separable_ran) == 1
    np.testing.assert_array_equal(y.numpy(), scipy.signal.convolve2d(x.numpy(), k.numpy()))


def test_integer_wraparound_equals_the_dense_sum(separable_ran):
    big = 2**61
    x = torch.full((500, 600), big, dtype=torch.int64)
    x[::7] = -3
    k = torch.from_numpy(np.outer([1, 3, 5, 7, 3, 1, 1], [2, 1, 1, 3, 1, 1, 2]))
    y = trueconv.convolve(x, k, "same")
    assert len(separable_ran) == 1
    dense = trueconv.convolve(x, k, "same", method="direct")  # int64, wraps like numpy
    assert torch.equal(y, dense)


def test_three_dims(separable_ran):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((2, 40, 50, 60)))
    f = [gaussian(7, 1.5), np.array([1.0, -2.0, 0.5, 1.0, 3.0]), gaussian(9, 3.0)]
    k = torch.from_numpy(np.einsum("i,j,k->ijk", *f))
    y = trueconv.convolve(x, k, "same", boundary="reflect")
    assert len(separable_ran) == 1
    ref = np.stack([_oracle(x[i].numpy(), k.numpy(), "same", "reflect") for i in range(2)])
    assert rel_err(y, ref) < 1e-14


def test_not_separable_runs_dense(separable_ran):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((300, 300)))
    k = torch.from_numpy(rng.standard_normal((9, 9)))
    assert trueconv.choose_method(x, k) != "separable"
    trueconv.convolve(x, k)
    assert not separable_ran


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_bound(dtype):
    # accepted within T * u * |k| of every element, refused beyond it
    u = torch.finfo(dtype).eps / 2
    base = np.outer(gaussian(5, 1.0), [1.0, -2.0, 3.0, -2.0, 1.0])
    taps = base.size
    inside = base.copy()
    inside[2, 2] *= 1 + 0.5 * taps * u
    outside = base.copy()
    outside[2, 2] *= 1 + 4 * taps * u
    for k, ok in ((base, True), (inside, True), (outside, False)):
        b = torch.from_numpy(k).to(dtype)
        assert (_separable.factors(b, 2) is not None) is ok
    zeroed = base.copy()
    zeroed[1, 1] = 0.0  # a zero the factors cannot rebuild
    assert _separable.factors(torch.from_numpy(zeroed).to(dtype), 2) is None


@settings(max_examples=200, deadline=None)
@given(
    k0=st.integers(2, 40),
    k1=st.integers(2, 40),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    at=st.integers(0, 1599),
    ulps=st.floats(-12.0, 12.0),
    zeros=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_quick_test_refuses_only_what_the_full_test_refuses(
    k0, k1, dtype, at, ulps, zeros, seed
):
    # near-rank-1 kernels: rounded factors' products, zeros in a factor, one element moved by
    # up to 12 T·u of itself (the full test's bound is T·u)
    rng = np.random.default_rng(seed)
    f0, f1 = rng.standard_normal(k0), rng.standard_normal(k1)
    f0[: min(zeros, k0 - 1)] = 0.0
    k = torch.from_numpy(np.outer(f0, f1)).to(dtype)
    u = torch.finfo(dtype).eps / 2
    flat = k.view(-1)
    flat[at % flat.numel()] *= 1 + ulps * k.numel() * u
    quick = _separable._clearly_not_rank1(k)
    with pytest.MonkeyPatch.context() as mp:  # the full test alone
        mp.setattr(_separable, "_clearly_not_rank1", lambda k: False)
        full = _separable.factors(k, 2)
    assert not (quick and full is not None)
    # and a kernel of full rank is refused by the quick test
    assert _separable._clearly_not_rank1(torch.from_numpy(rng.standard_normal((k0, k1))).to(dtype))


def test_kernels_it_refuses():
    assert _separable.factors(torch.zeros(5, 5), 2) is None
    nan = torch.ones(3, 3)
    nan[1, 1] = float("nan")
    assert _separable.factors(nan, 2) is None
    assert _separable.factors(torch.ones(3, 3, dtype=torch.complex128), 2) is None
    assert _separable.factors(torch.tensor([[1, 2], [3, 4]]), 2) is None  # rank 2


def test_kernel_that_requires_grad_runs_dense(separable_ran):
    x = torch.randn(300, 300, dtype=torch.float64, requires_grad=True)
    k = torch.from_numpy(np.outer(gaussian(9, 2.0), gaussian(9, 2.0))).requires_grad_()
    trueconv.convolve(x, k).sum().backward()
    assert not separable_ran
    assert k.grad is not None


@needs_jit
def test_gradient_through_the_passes(separable_ran):
    x = torch.randn(500, 520, dtype=torch.float64, requires_grad=True)
    k = torch.from_numpy(np.outer(gaussian(11, 2.0), gaussian(9, 1.5)))
    g = torch.randn(510, 528, dtype=torch.float64)
    (trueconv.convolve(x, k) * g).sum().backward()
    assert len(separable_ran) == 1
    # the gradient of a convolution is the correlation of the output gradient
    ref = scipy.signal.correlate(g.numpy(), k.numpy(), "valid")
    assert rel_err(x.grad, ref) < 1e-13


@needs_jit
def test_nan_and_inf_land_where_the_dense_sum_puts_them(separable_ran):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 300))
    x[10, 20] = np.nan
    x[100, 200] = np.inf
    x[101, 203] = -np.inf
    x[250, 30] = np.inf
    k = np.outer([1.0, 2.0, 0.0, 2.0, 1.0, -1, 1, 1, 1], gaussian(9, 2.0))
    y = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    assert len(separable_ran) == 1
    ref = scipy.signal.convolve(x, k, method="direct")
    assert_same_nonfinite(y, ref, 1e-13)


def test_passes_are_each_planned_by_cost():
    x, k = torch.empty(2048, 2048), torch.empty(63, 63)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    sep = _separable.plan(Problem.of(spec), torch.device("cpu"))
    assert sep is not None
    # along the first dim a 63 x 1 kernel, run in place by the direct method; then along the
    # last a 1-D problem over 2048 rows, by its cheapest method
    first, second = sep.passes
    assert sep.dims == (0, 1)
    assert (first.problem.sb, first.method) == ((63, 1), "direct")
    assert (second.problem.sb, second.problem.batch) == ((63,), 2048)
    assert second == cheapest(second.problem, torch.device("cpu"))
    # priced as the fused loop where it is planned (both passes in one compiled loop; it is
    # planned wherever it applies: measured 0.97-1.72x faster than the passes, 1024²-2048²
    # ⊛ 15-63 taps), else as the passes' sum
    passes = sum(_plan.seconds(p, torch.device("cpu")) for p in sep.passes)
    if sep.fused:
        fused = _separable._fused_seconds(Problem.of(spec), torch.device("cpu"))
        assert sep.seconds == pytest.approx(fused)
    else:
        assert sep.seconds == pytest.approx(passes)


# -- convolve_separable ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n0=st.integers(1, 12),
    n1=st.integers(1, 12),
    k0=st.integers(1, 6),
    k1=st.integers(1, 6),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(BOUNDARIES),
    integer=st.booleans(),
)
def test_convolve_separable_equals_the_dense_oracle(n0, n1, k0, k1, mode, boundary, integer):
    rng = np.random.default_rng(n0 * 1000 + n1 * 100 + k0 * 10 + k1)
    if mode == "valid" and not ((n0 >= k0 and n1 >= k1) or (n0 <= k0 and n1 <= k1)):
        return  # neither operand dominates: refused, as by convolve()
    if integer:
        x = rng.integers(-9, 9, (n0, n1))
        f0, f1 = rng.integers(-4, 4, k0), rng.integers(-4, 4, k1)
    else:
        x = rng.standard_normal((n0, n1))
        f0, f1 = rng.standard_normal(k0), rng.standard_normal(k1)
    y = trueconv.convolve_separable(torch.from_numpy(x), [f0, f1], mode, boundary=boundary)
    ref = _oracle(x, np.outer(f0, f1), mode, boundary)
    if integer:
        assert y.dtype == torch.int64
        np.testing.assert_array_equal(y.numpy(), ref.round().astype(np.int64))
    else:
        assert rel_err(y, ref) < 1e-13


def test_convolve_separable_dims_and_scales():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((6, 20, 30)))
    f0, f1 = np.array([1.0, 2.0, 1.0]), np.array([1.0, 0.0, -1.0, 2.0])
    dense = torch.from_numpy(np.outer(f0, f1))
    want = trueconv.convolve(x, dense[:, None, :], "same", method="direct")
    for dims, ks in (((0, 2), [f0, f1]), ((2, 0), [f1, f0]), ((-3, -1), [f0, f1])):
        got = trueconv.convolve_separable(x, ks, "same", dims=dims)
        assert rel_err(got, want) < 1e-14
    scaled = trueconv.convolve_separable(x, [[3.0], f0, f1], "same")
    assert rel_err(scaled, 3 * trueconv.convolve(x, dense, "same", method="direct")) < 1e-14


@pytest.mark.parametrize("method", ["direct", "fft", "overlap_add"])
def test_convolve_separable_forced_methods(method):
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.standard_normal((64, 70)))
    f0, f1 = rng.standard_normal(9), rng.standard_normal(5)
    got = trueconv.convolve_separable(x, [f0, f1], "same", method=method)
    ref = scipy.signal.convolve(x.numpy(), np.outer(f0, f1), "same", method="direct")
    assert rel_err(got, ref) < 1e-12


@pytest.mark.parametrize(
    ("kernels", "kwargs", "error", "match"),
    [
        ("121", {}, TypeError, "kernels must be a sequence"),
        ([], {}, ValueError, "got none"),
        ([[[[1, 2]]]], {}, ValueError, r"kernels\[0\] must be 1-D .* or 2-D"),
        ([[1, 2], [1, 2]], {"dims": 0}, ValueError, "one kernel per convolved dim"),
        ([[1, 2], [1, 2]], {"mode": "sme"}, ValueError, "mode must be one of"),
    ],
)
def test_convolve_separable_errors(kernels, kwargs, error, match):
    with pytest.raises(error, match=match):
        trueconv.convolve_separable(torch.zeros(5, 5), kernels, **kwargs)


def test_convolve_separable_gradients_reach_the_factors():
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((9, 11))).requires_grad_()
    f0 = torch.from_numpy(rng.standard_normal(4)).requires_grad_()
    f1 = torch.from_numpy(rng.standard_normal(3)).requires_grad_()

    def f(a, u, v):
        return trueconv.convolve_separable(a, [u, v], "same", boundary="reflect")

    assert torch.autograd.gradcheck(f, (x, f0, f1))
    # and they equal the dense call's, through the outer product
    g = torch.from_numpy(rng.standard_normal((9, 11)))
    (f(x, f0, f1) * g).sum().backward()
    grads = [t.grad.clone() for t in (x, f0, f1)]
    for t in (x, f0, f1):
        t.grad = None
    dense = torch.outer(f0, f1)
    (trueconv.convolve(x, dense, "same", boundary="reflect", method="direct") * g).sum().backward()
    for got, t in zip(grads, (x, f0, f1)):
        torch.testing.assert_close(got, t.grad, rtol=1e-12, atol=1e-12)


@needs_jit
@pytest.mark.parametrize("boundary", ["wrap", "symmetric", "reflect", "replicate"])
@pytest.mark.parametrize(
    ("shape", "ks", "dtype"),
    [
        ((9, 10, 11), (3, 5, 7), torch.float64),  # the fused loop, then a direct pass
        ((2, 6, 7, 8), (3, 4, 5), torch.float64),  # a batch dim, even factors
        ((20, 23), (5, 3), torch.int64),  # integers: two direct passes
        ((4, 5), (9, 11), torch.int64),  # extensions longer than the input
    ],
)
def test_each_pass_extends_its_own_dim(monkeypatch, boundary, shape, ks, dtype):
    # an index-map boundary commutes with the passes along the other dims: each pass reads
    # its own dim's extension in place and no extended input is built anywhere
    from trueconv import _problem

    def boom(*args, **kwargs):
        raise AssertionError("the input was extended before the passes")

    monkeypatch.setattr(_problem, "extend", boom)
    rng = np.random.default_rng(len(shape) + sum(ks))
    x = torch.from_numpy(rng.integers(-9, 10, shape)).to(dtype)
    fs = [torch.from_numpy(rng.integers(-3, 4, k)).to(dtype) for k in ks]
    y = trueconv.convolve_separable(x, fs, "same", boundary=boundary, method="direct")
    dense = fs[0].double().numpy()
    for f in fs[1:]:
        dense = np.multiply.outer(dense, f.double().numpy())
    dense = dense.reshape((1,) * (x.ndim - dense.ndim) + dense.shape)  # a batch dim
    ref = _oracle(x.double().numpy(), dense, "same", boundary)
    np.testing.assert_allclose(y.double().numpy(), ref, rtol=1e-12, atol=1e-9)


def test_a_fill_value_extends_the_whole_input_first():
    # a constant does not commute with the other passes (c becomes c · sum(f)): the input is
    # extended once, then the passes run; the result is the dense call's
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((7, 8, 9)))
    fs = [torch.from_numpy(rng.standard_normal(k)) for k in (3, 5, 4)]
    y = trueconv.convolve_separable(x, fs, "same", fill_value=2.5)
    dense = np.multiply.outer(np.multiply.outer(fs[0].numpy(), fs[1].numpy()), fs[2].numpy())
    full = scipy.signal.convolve(np.pad(x.numpy(), [(k - 1, k - 1) for k in (3, 5, 4)],
                                        constant_values=2.5), dense, "valid")  # fmt: skip
    ref = full[tuple(slice((k - 1) // 2, (k - 1) // 2 + n) for k, n in zip((3, 5, 4), x.shape))]
    assert rel_err(y.numpy(), ref) < 1e-13


def test_a_repeated_kernel_is_analysed_once_and_a_changed_one_again(monkeypatch):
    calls = []
    original = _separable.factors

    def counted(b, nd):
        calls.append(b.shape)
        return original(b, nd)

    monkeypatch.setattr(_separable, "factors", counted)
    _separable._MEMO.clear()
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.standard_normal((1024, 1024)))
    g = np.exp(-0.5 * (np.arange(9) - 4.0) ** 2 / 3)
    k = torch.from_numpy(np.outer(g, g))
    assert trueconv.choose_method(x, k) == "separable"
    first = trueconv.convolve(x, k, "same")
    assert len(calls) == 1  # choose_method's analysis is kept for the call
    second = trueconv.convolve(x, k.clone(), "same")  # another tensor, the same values
    assert len(calls) == 1
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    k[0, 0] += 1.0  # in place: no longer separable; new bytes, a new analysis
    assert trueconv.choose_method(x, k) != "separable"
    y = trueconv.convolve(x, k, "same")
    assert len(calls) == 2
    ref = scipy.signal.fftconvolve(x.numpy(), k.numpy(), "same")
    assert rel_err(y, ref) < 1e-13


def test_the_kept_analysis_is_keyed_by_values_dtype_and_shape():
    # a transposed view (not contiguous) is keyed by its values in C order, as its copy; the
    # same bytes as another dtype or shape are another kernel
    _separable._MEMO.clear()
    g = torch.from_numpy(gaussian(7, 1.5))
    h = torch.from_numpy(np.array([1.0, 3.0, -2.0, 0.5, 4.0, -1.0, 2.0]))
    k = torch.outer(g, h)
    view = k.T  # outer(h, g), not contiguous
    assert not view.is_contiguous()
    assert _separable._bytes(view) == _separable._bytes(view.contiguous())
    found = _separable._memo(view, 2, 1)
    assert found is not None
    torch.testing.assert_close(torch.outer(found[0], found[1]), view, rtol=1e-15, atol=0)
    assert _separable._memo(view.contiguous(), 2, 1) is found  # the same key
    as_f32 = k.view(torch.float32)  # the same bytes, twice as many float32 elements
    assert _separable._bytes(as_f32) == _separable._bytes(k)
    other = _separable._memo(as_f32, 2, 1)
    assert other is None or other[0].dtype == torch.float32
    assert len(_separable._MEMO) == 2  # two kernels, not one
    # a kernel that records a graph is read detached
    leaf = k.clone().requires_grad_()
    assert _separable._bytes(leaf) == _separable._bytes(k)
    # the kept factors share no memory with the kernel: changing it in place changes neither
    before = [f.clone() for f in found]
    view.mul_(2.0)
    assert all(torch.equal(f, b) for f, b in zip(found, before))


def test_the_kept_analyses_are_at_most_memo_size(monkeypatch):
    monkeypatch.setattr(_separable, "MEMO_SIZE", 3)
    _separable._MEMO.clear()
    kernels = [torch.outer(torch.arange(1.0, 4.0) + i, torch.ones(3)) for i in range(5)]
    for k in kernels:
        assert _separable._memo(k, 2, 1) is not None
    assert len(_separable._MEMO) == 3
    # the oldest went first: the first kernel is analysed again, the last one is not
    calls = []
    original = _separable._analyse
    monkeypatch.setattr(
        _separable, "_analyse", lambda b, nd, r: calls.append(1) or original(b, nd, r)
    )
    _separable._memo(kernels[-1], 2, 1)
    assert not calls
    _separable._memo(kernels[0], 2, 1)
    assert calls == [1]


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_small_problem_runs_a_repeated_kernel_separable_from_its_second_call(
    separable_ran, monkeypatch, dtype
):
    # 128² ⊛ 9×9: the dense plan is priced below MIN_DENSE_S (and above the separable one:
    # at 7×7 the dense loop's row pairs price it below); a kernel used once is not
    # analysed (its hash is counted), the same values again are, and kept
    calls = []
    original = _separable._analyse
    monkeypatch.setattr(
        _separable, "_analyse", lambda b, nd, r: calls.append(1) or original(b, nd, r)
    )
    _separable._MEMO.clear()
    _separable._SEEN.clear()
    rng = np.random.default_rng(12)
    x = torch.from_numpy(rng.standard_normal((128, 128))).to(dtype)
    k = torch.from_numpy(np.outer(gaussian(9, 1.8), gaussian(9, 1.8))).to(dtype)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    dense = _plan.plan(spec, torch.device("cpu"))
    assert _plan.seconds(dense, torch.device("cpu")) < _separable.MIN_DENSE_S
    ref = _oracle(x.double().numpy(), k.double().numpy(), "same", "fill")
    ys = [trueconv.convolve(x, k.clone(), "same") for _ in range(3)]
    assert len(calls) == 1  # on the second call only
    assert [type(r) for r in separable_ran] == [_separable.SeparablePlan] * 2
    for y in ys:
        assert rel_err(y, ref) < (2e-6 if dtype == torch.float32 else 1e-14)
    # a fresh kernel on every call is never analysed
    for _ in range(3):
        trueconv.convolve(x, torch.from_numpy(rng.standard_normal((9, 9))).to(dtype), "same")
    assert len(calls) == 1


@needs_jit
def test_choose_method_looks_at_once_and_the_calls_after_it_follow(separable_ran, monkeypatch):
    _separable._MEMO.clear()
    _separable._SEEN.clear()
    x = torch.randn(128, 128)
    k = torch.from_numpy(np.outer(gaussian(9, 1.8), gaussian(9, 1.8))).float()
    assert trueconv.choose_method(x, k, "same") == "separable"
    trueconv.convolve(x, k, "same")
    assert len(separable_ran) == 1
    # SIGHTINGS = 0: small problems never look at the kernel (the rule before 2026-12-05)
    monkeypatch.setattr(_separable, "SIGHTINGS", 0)
    _separable._MEMO.clear()
    _plan.forget()
    for _ in range(3):
        trueconv.convolve(x, k, "same")
    assert trueconv.choose_method(x, k, "same") == "direct"
    assert len(separable_ran) == 1


@needs_jit
def test_threads_share_the_sightings_and_the_memo(separable_ran, monkeypatch):
    # Dask's threaded scheduler: small problems with kernels repeated and fresh, from four
    # threads at once; every result is the dense oracle's, the kept state stays bounded
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(_separable, "MEMO_SIZE", 8)
    _separable._MEMO.clear()
    _separable._SEEN.clear()
    rng = np.random.default_rng(13)
    x = torch.from_numpy(rng.standard_normal((128, 128)))
    kernels = [torch.from_numpy(np.outer(gaussian(9, s), gaussian(9, s))) for s in (1.2, 1.8)]
    kernels += [torch.from_numpy(rng.standard_normal((9, 9))) for _ in range(20)]
    jobs = [kernels[i % 2] if i % 3 else kernels[2 + i % 20] for i in range(60)]

    def work(k):
        return rel_err(
            trueconv.convolve(x, k, "same"), _oracle(x.numpy(), k.numpy(), "same", "fill")
        )

    with ThreadPoolExecutor(4) as pool:
        errors = list(pool.map(work, jobs))
    assert max(errors) < 1e-14
    assert len(_separable._MEMO) <= 8
    assert len(_separable._SEEN) <= 8
    # the Gaussians' later calls ran separable (40 calls of two kernels; each runs dense until
    # its second call is counted, a few more where threads race)
    assert len(separable_ran) >= 30


def test_the_counted_sightings_are_at_most_memo_size(monkeypatch):
    monkeypatch.setattr(_separable, "MEMO_SIZE", 3)
    _separable._MEMO.clear()
    _separable._SEEN.clear()
    kernels = [torch.outer(torch.arange(1.0, 4.0) + i, torch.ones(3)) for i in range(5)]
    for k in kernels:
        assert _separable._memo(k, 2, 1, eager=False) is None
    assert len(_separable._SEEN) == 3
    assert not _separable._MEMO
    assert _separable._memo(kernels[0], 2, 1, eager=False) is None  # forgotten: seen once
    assert _separable._memo(kernels[-1], 2, 1, eager=False) is not None  # its second call
    assert len(_separable._MEMO) == 1


@pytest.mark.parametrize("separable", [True, False])
def test_conjugate_and_negative_views_are_read_as_their_values(separable):
    # z.conj().imag is a negative view (numpy refuses it); z.conj() a conjugate one
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((512, 512)))
    g = torch.from_numpy(gaussian(7, 1.5))
    values = torch.outer(g, g) if separable else torch.from_numpy(rng.standard_normal((7, 7)))
    z = torch.complex(torch.zeros_like(values), values)
    kernel = z.conj().imag  # -values
    assert kernel.is_neg()
    _separable._MEMO.clear()
    method = trueconv.choose_method(x, kernel, "same")
    assert (method == "separable") is separable
    y = trueconv.convolve(x, kernel, "same")
    ref = scipy.signal.convolve(x.numpy(), -values.numpy(), "same", method="direct")
    assert rel_err(y, ref) < 1e-13
    # the positive kernel, analysed after it, is another key (not the view's storage)
    y2 = trueconv.convolve(x, values, "same")
    assert rel_err(y2, -ref) < 1e-13
    zc = torch.complex(values, values).conj()  # a conjugate view
    assert zc.is_conj()
    y3 = trueconv.convolve(x, zc, "same")
    ref3 = scipy.signal.convolve(x.numpy(), zc.resolve_conj().numpy(), "same", method="direct")
    assert rel_err(y3, ref3) < 1e-13


# ------------------------------------------------- pricing for an accelerator (no GPU needed)

CUDA_DEVICE = torch.device("cuda")


def test_auto_weighs_no_separable_plan_on_cuda():
    # the CUDA constants were fitted before the passes existed; on an H200 the passes lost on
    # 45 of 48 Gaussian cells (_separable.SEPARABLE_AUTO_DEVICES): pricing alone, no tensor
    # on the device
    for n, k, dtype in ((1024, 7, torch.float32), (4096, 3, torch.float64)):  # lost 1.4x, 6.3x
        x, k = torch.empty(n, n, dtype=dtype), torch.empty(k, k, dtype=dtype)
        spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
        assert _separable.by_price(_plan.plan(spec, CUDA_DEVICE), CUDA_DEVICE) is None
    x, k = torch.empty(4096, 4096), torch.empty(15, 15)
    spec = normalize("convolve", x, k, "same", None, "auto", "fill", 0)[2]
    cpu = torch.device("cpu")
    assert _separable.by_price(_plan.plan(spec, cpu), cpu) is not None


@pytest.mark.parametrize("method", ["auto", "direct"])
def test_terms_are_priced_with_the_constants_a_device_has(method):
    # the sums of the terms were priced with the CPU loop's 'rows' constants, which the CUDA
    # table lacks: convolve_separable with terms raised KeyError on every CUDA call
    x, k = torch.empty(2, 300, 280, dtype=torch.float64), torch.empty(15, 13, dtype=torch.float64)
    spec = normalize("convolve", x, k, "same", (-2, -1), method, "reflect", 0)[2]
    dense = _plan.plan(spec, CUDA_DEVICE)
    found = _separable.terms_plan(dense, CUDA_DEVICE, 2, method)
    assert (found is None) == (method == "auto")  # 'auto' weighs no passes on CUDA
    if found is not None:
        assert found.chains
        assert found.seconds > 0
        one = _separable.plan(dense.problem, CUDA_DEVICE, method)
        assert one is not None
        assert found.seconds > 2 * one.seconds  # the sum's pass is priced on top


@settings(max_examples=150, deadline=None)
@given(
    nd=st.integers(1, 3),
    data=st.data(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.complex64, torch.int64]),
    mode=st.sampled_from(["full", "same", "valid"]),
    method=st.sampled_from(["auto", "direct", "fft", "overlap_add"]),
    boundary=st.sampled_from(["fill", "reflect", "wrap"]),
    rank=st.integers(1, 4),
)
def test_every_plan_is_priced_for_cuda_without_a_gpu(nd, data, dtype, mode, method, boundary, rank):
    # pricing reads the device's constants only: every plan 'auto' and the separable and
    # low-rank paths weigh must price on a device whose table lacks the CPU loop's terms
    # (the KeyError 'rows_mac' that only a GPU run found)
    xs = tuple(data.draw(st.integers(1, 3000 if nd == 1 else 300)) for _ in range(nd))
    ks = tuple(data.draw(st.integers(1, 40)) for _ in range(nd))
    if mode == "valid" and not all(n >= k for n, k in zip(xs, ks)):
        mode = "same"
    x, k = torch.empty(xs, dtype=dtype), torch.empty(ks, dtype=dtype)
    how = {"boundary": boundary, "shapes": True, "dtype": dtype, "device": "cuda"}
    chosen = trueconv.choose_method(xs, ks, mode, **how)
    assert chosen in trueconv.method_costs(xs, ks, mode, **how)
    spec = normalize("convolve", x, k, mode, None, method, boundary, 0)[2]
    dense = _plan.plan(spec, CUDA_DEVICE)
    assert _plan.seconds(dense, CUDA_DEVICE) >= 0
    if nd >= 2 and not spec.swap:
        for m in ("auto", "direct", "fft"):
            one = _separable.plan(dense.problem, CUDA_DEVICE, m)
            assert one is None or one.seconds >= 0
        if rank > 1 and method in ("auto", "direct"):
            terms = _separable.terms_plan(dense, CUDA_DEVICE, rank, method)
            assert terms is None or terms.seconds >= 0
        assert _separable.low_rank_plans(dense, CUDA_DEVICE) == ()
