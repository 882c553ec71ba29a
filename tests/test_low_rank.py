"""Low-rank kernels (rank 2 to ``_separable.MAX_RANK``): found by 'auto' from the kernel's SVD
within the stated bound and run as the fused loop with one pair of factors per rank-1 term.
Oracles: scipy's direct sum in float64 of the dense kernel (after numpy.pad for the boundary),
its a-priori bound computed here, and the dense direct method for NaN/Inf placement."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import trueconv
from conftest import assert_same_nonfinite, rel_err
from trueconv import _plan, _separable
from trueconv._methods import rows
from trueconv._spec import normalize

#: the low-rank plans run in the fused loop: numba (the `fast` extra)
needs_jit = pytest.mark.skipif(not rows.AVAILABLE, reason="numba is not installed")

BOUNDARIES = ["fill", "wrap", "symmetric", "reflect", "replicate"]
NP_PAD = {"wrap": "wrap", "symmetric": "symmetric", "reflect": "reflect", "replicate": "edge"}


def _grid(k):
    r = np.arange(k) - (k - 1) / 2
    return np.meshgrid(r, r, indexing="ij")


def log(k):
    x, y = _grid(k)
    s = k / 6
    q = (x**2 + y**2) / (2 * s * s)
    return -(1 - q) * np.exp(-q) / (np.pi * s**4)


def dog(k):
    r = np.arange(k) - (k - 1) / 2
    g1, g2 = (np.exp(-(r**2) / (2 * s * s)) for s in (k / 8, k / 5))
    return np.outer(g1, g1) / g1.sum() ** 2 - np.outer(g2, g2) / g2.sum() ** 2


def gabor(k):
    x, y = _grid(k)
    t = np.pi / 6
    wave = np.cos(0.8 * (x * np.cos(t) + y * np.sin(t)))
    return np.exp(-(x**2 + y**2) / (2 * (k / 5) ** 2)) * wave


KERNELS = {"LoG": log, "DoG": dog, "Gabor": gabor}


def _extended(x, kshape, boundary, fill=0.0):
    pads = [(0, 0)] * (x.ndim - 2) + [(k - 1, k - 1) for k in kshape]
    if boundary == "fill":
        return np.pad(x, pads, constant_values=fill)
    return np.pad(x, pads, mode=NP_PAD[boundary])


def _crop(full, xshape, kshape, mode):
    if mode == "full":
        return full
    if mode == "same":
        starts = [(k - 1) // 2 for k in kshape]
        lengths = xshape[-2:]
    else:
        starts = [k - 1 for k in kshape]
        lengths = [n - k + 1 for n, k in zip(xshape[-2:], kshape)]
    index = (Ellipsis, *(slice(s, s + n) for s, n in zip(starts, lengths)))
    return full[index]


def within_bound(y, x, k, mode, boundary, dtype, fill=0.0):
    """The largest ratio of an output's error to ``3·γ_T·sum|k|·max|x|`` over its window
    (the low-rank plan's bound ``2·γ_T·...`` plus the float64 oracle's own ``γ_T·...``): at
    most 1 when within it."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    ext = _extended(x, k.shape, boundary, fill)
    kernel = k.reshape((1,) * (x.ndim - 2) + k.shape)
    full = scipy.signal.convolve(ext, kernel, "valid", method="direct")
    ref = _crop(full, x.shape, k.shape, mode)
    window = sliding_window_view(np.abs(ext), k.shape, axis=(-2, -1)).max(axis=(-2, -1))
    window = _crop(window, x.shape, k.shape, mode)
    u = torch.finfo(dtype).eps / 2
    taps = k.size
    gamma = taps * u / (1 - taps * u)
    allowed = 3 * gamma * np.abs(k).sum() * window
    err = np.abs(np.asarray(y, dtype=np.float64) - ref)
    return float((err / np.maximum(allowed, np.finfo(np.float64).tiny)).max())


@pytest.fixture
def low_rank_ran(monkeypatch):
    """The low-rank plans that ran."""
    runs = []
    original = _separable.SeparablePlan.run

    def counted(self, a, fs, b=None):
        if self.rank > 1:
            runs.append(self)
        return original(self, a, fs, b)

    monkeypatch.setattr(_separable.SeparablePlan, "run", counted)
    return runs


@pytest.fixture
def low_rank_always(monkeypatch):
    """Prices that make 'auto' take a low-rank plan wherever the kernel has one (the fused
    loop priced at nothing, the check at minus a second), plans dropped around it."""
    monkeypatch.setattr(_separable, "MIN_DENSE_S", 0.0)
    monkeypatch.setattr(_separable, "_fused_seconds", lambda problem, device, rank=1: 0.0)
    monkeypatch.setattr(_separable, "LOW_RANK_CHECK_S", -1.0)
    _plan.forget()
    yield
    monkeypatch.undo()
    _plan.forget()


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("k", [7, 15, 31])
def test_factors_of_rank_two_kernels(dtype, name, k):
    kernel = KERNELS[name](k)
    b = torch.from_numpy(kernel).to(dtype)
    assert _separable.factors(b, 2) is None  # not rank 1
    fs = _separable.low_rank_factors(b, 2, _separable.MAX_RANK)
    assert fs is not None
    f0, f1 = fs
    assert f0.shape == (2, k)
    assert f1.shape == (2, k)
    assert f0.dtype == f1.dtype == dtype
    # the module's bound, checked here from the factors as returned
    arr = b.double().numpy()
    u = torch.finfo(dtype).eps / 2
    w0, w1 = f0.double().numpy(), f1.double().numpy()
    assert np.abs(w0.T @ w1 - arr).sum() <= k * k * u * np.abs(arr).sum()
    assert (k + 2 * k) * (np.abs(w0).T @ np.abs(w1)).sum() <= k * k * np.abs(arr).sum()


@needs_jit
def test_factors_it_refuses():
    rng = np.random.default_rng(0)
    random = torch.from_numpy(rng.standard_normal((9, 9)))
    assert _separable.low_rank_factors(random, 2, 4) is None  # rank 9
    assert _separable.low_rank_factors(torch.zeros(9, 9), 2, 4) is None
    nan = torch.from_numpy(log(9))
    nan[4, 4] = float("nan")
    assert _separable.low_rank_factors(nan, 2, 4) is None
    assert _separable.low_rank_factors(torch.from_numpy(log(9)).to(torch.complex128), 2, 4) is None
    assert _separable.low_rank_factors(torch.tensor([[1, 0, 1], [0, 1, 0]]), 2, 4) is None  # ints
    # rank 3 is refused below rank 3, found at it
    three = log(15) + 0.3 * np.outer(np.hanning(15), np.hamming(15))
    assert _separable.low_rank_factors(torch.from_numpy(three), 2, 2) is None
    fs = _separable.low_rank_factors(torch.from_numpy(three), 2, 3)
    assert fs is not None
    assert fs[0].shape[0] == 3
    # terms that cancel: the 3×3 Laplacian's SVD terms sum to its zero corners from nonzero
    # products (the passes' rounding would not stay within the direct sum's bound)
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64)
    assert _separable.low_rank_factors(laplacian, 2, 4) is None


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("mode", ["same", "full"])
def test_auto_runs_rank_two_kernels_within_the_bound(low_rank_ran, dtype, name, mode):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((700, 650))).to(dtype)
    k = torch.from_numpy(KERNELS[name](15)).to(dtype)
    assert trueconv.choose_method(x, k, mode) == "low_rank"
    y = trueconv.convolve(x, k, mode)
    assert len(low_rank_ran) == 1
    assert low_rank_ran[0].rank == 2
    assert y.dtype == dtype
    assert within_bound(y.numpy(), x.numpy(), k.numpy(), mode, "fill", dtype) <= 1


@needs_jit
@pytest.mark.parametrize("boundary", BOUNDARIES[1:])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundaries(low_rank_ran, boundary, dtype):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((2, 600, 620))).to(dtype)
    k = torch.from_numpy(gabor(15)).to(dtype)
    y = trueconv.convolve(x, k, "same", dims=(-2, -1), boundary=boundary)
    assert len(low_rank_ran) == 1
    assert within_bound(y.numpy(), x.numpy(), k.numpy(), "same", boundary, dtype) <= 1


@needs_jit
def test_a_fill_value(low_rank_ran):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((600, 620)))
    k = torch.from_numpy(dog(15))
    y = trueconv.convolve(x, k, "same", boundary="fill", fill_value=2.5)
    assert len(low_rank_ran) == 1
    assert within_bound(y.numpy(), x.numpy(), k.numpy(), "same", "fill", torch.float64, 2.5) <= 1


@needs_jit
@settings(max_examples=40, deadline=None)
@given(
    n0=st.integers(1, 14),
    n1=st.integers(1, 14),
    k0=st.integers(2, 8),
    k1=st.integers(2, 8),
    rank=st.integers(2, 4),
    batch=st.sampled_from([(), (2,)]),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(BOUNDARIES),
    double=st.booleans(),
)
def test_any_terms_equal_the_dense_oracle(n0, n1, k0, k1, rank, batch, mode, boundary, double):
    # the plan with any factors (no acceptance check): the fused loop's sums of terms
    assume(mode != "valid" or (n0 >= k0 and n1 >= k1))
    dtype = torch.float64 if double else torch.float32
    rng = np.random.default_rng([n0, n1, k0, k1, rank])
    x = torch.from_numpy(rng.standard_normal((*batch, n0, n1))).to(dtype)
    f0 = torch.from_numpy(rng.standard_normal((rank, k0))).to(dtype)
    f1 = torch.from_numpy(rng.standard_normal((rank, k1))).to(dtype)
    kernel = torch.einsum("qi,qj->ij", f0.double(), f1.double())
    _, _, spec = normalize("convolve", x, kernel.to(dtype), mode, (-2, -1), "auto", boundary, 0)
    assume(not spec.swap)  # the kernel takes the signal's role: no low-rank plan
    dense = _plan.plan(spec, x.device)
    plan = _separable.SeparablePlan(dense.problem, (1, 0), (), 0.0, "low_rank", True, rank, dense)
    y = plan.run(x, (f0, f1), kernel.to(dtype))
    ext = _extended(x.double().numpy(), (k0, k1), boundary)
    ref = _crop(
        scipy.signal.convolve(ext, kernel.numpy().reshape((1,) * len(batch) + (k0, k1)), "valid"),
        x.shape,
        (k0, k1),
        mode,
    )
    assert y.dtype == dtype
    assert rel_err(y, ref) < (1e-13 if double else 3e-6)


@needs_jit
def test_nan_and_inf_land_where_the_dense_sum_puts_them(low_rank_ran):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((600, 600))
    x[10, 20] = np.nan
    x[100, 200] = np.inf
    x[101, 203] = -np.inf
    x[350, 30] = np.inf
    k = log(15)
    k[0, 0] = 0.0  # ±Inf times a zero tap is NaN in the dense sum
    y = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    assert len(low_rank_ran) == 1  # it ran, saw the non-finite input and ran the dense plan
    ref = scipy.signal.convolve(x, k, method="direct")
    assert_same_nonfinite(y, ref, 1e-13)


@needs_jit
def test_gradient_through_the_terms(low_rank_ran):
    x = torch.randn(600, 520, dtype=torch.float64, requires_grad=True)
    k = torch.from_numpy(gabor(15))
    g = torch.randn(614, 534, dtype=torch.float64)
    (trueconv.convolve(x, k) * g).sum().backward()
    assert len(low_rank_ran) == 1
    ref = scipy.signal.correlate(g.numpy(), k.numpy(), "valid")
    assert rel_err(x.grad, ref) < 1e-13


@needs_jit
def test_kernel_that_requires_grad_runs_dense(low_rank_ran):
    x = torch.randn(600, 600, dtype=torch.float64)
    k = torch.from_numpy(log(15)).requires_grad_()
    trueconv.convolve(x, k, "same").sum().backward()
    assert not low_rank_ran
    assert k.grad is not None


@needs_jit
def test_under_vmap_the_dense_plan_runs(low_rank_ran):
    x = torch.randn(2, 400, 400, dtype=torch.float64)
    k = torch.from_numpy(log(15))
    ref = trueconv.convolve(x, k, "same", dims=(-2, -1), method="direct")
    y = torch.func.vmap(lambda t: trueconv.convolve(t, k, "same"))(x)
    assert not low_rank_ran
    assert rel_err(y, ref) < 1e-13


@needs_jit
def test_small_and_rank_one_kernels_keep_their_plans(low_rank_ran):
    x = torch.randn(600, 600)
    # 5 taps: two terms cost more than the dense loop
    assert trueconv.choose_method(x, torch.from_numpy(log(5)).float()) == "direct"
    # rank 1 stays separable
    g = np.exp(-0.5 * (np.arange(15) - 7) ** 2 / 4)
    assert trueconv.choose_method(x, torch.from_numpy(np.outer(g, g)).float()) == "separable"
    # a kernel batch, a swap ('valid' with a larger kernel), a forced method: dense
    k = torch.from_numpy(log(15)).float()
    assert trueconv.choose_method(x[None], torch.stack([k, k]), dims=(-2, -1)) != "low_rank"
    assert trueconv.choose_method(k, x, "valid") != "low_rank"
    trueconv.convolve(x, k, method="direct")
    assert not low_rank_ran


@needs_jit
def test_forced_prices_take_rank_three(low_rank_always, low_rank_ran):
    x = torch.randn(40, 50, dtype=torch.float64)
    k = log(9) + 0.3 * np.outer(np.hanning(9), np.hamming(9))
    assert trueconv.choose_method(x, torch.from_numpy(k)) == "low_rank"
    y = trueconv.convolve(x, torch.from_numpy(k), "same")
    assert [p.rank for p in low_rank_ran] == [3]
    assert within_bound(y.numpy(), x.numpy(), k, "same", "fill", torch.float64) <= 1


@needs_jit
@pytest.mark.parametrize("boundary", ["reflect", "wrap"])
def test_nan_with_a_boundary_runs_the_dense_plan_on_the_signal(low_rank_ran, boundary):
    # the fallback gets the signal unextended: the dense plan applies the boundary itself
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 520))
    x[0, 3] = np.nan  # near an edge: the extension copies it
    k = gabor(15)
    y = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(k), "same", boundary=boundary)
    assert len(low_rank_ran) == 1
    ref = trueconv.convolve(
        torch.from_numpy(x), torch.from_numpy(k), "same", boundary=boundary, method="direct"
    ).numpy()
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ref))
    finite = np.isfinite(ref)
    assert rel_err(y.numpy()[finite], ref[finite]) < 1e-13


# Kernels given as terms: convolve_separable with one (r, k_d) factor per convolved dim.
# Oracle: scipy's sum with the dense kernel formed here in float64 / complex128 / int64.

TERM_DTYPES = [torch.float32, torch.float64, torch.int64, torch.complex128]


def _dense_of_terms(f0, f1):
    wide = {"c": np.complex128, "i": np.int64}.get(f0.dtype.kind, np.float64)
    return np.einsum("qi,qj->ij", f0.astype(wide), f1.astype(wide))


@settings(max_examples=60, deadline=None)
@given(
    n0=st.integers(1, 12),
    n1=st.integers(1, 12),
    k0=st.integers(1, 7),
    k1=st.integers(1, 7),
    rank=st.integers(1, 4),
    batch=st.sampled_from([(), (2,)]),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(BOUNDARIES),
    dtype=st.sampled_from(TERM_DTYPES),
    method=st.sampled_from(["auto", "direct", "fft"]),
    fuse=st.booleans(),
)
def test_terms_equal_the_dense_oracle(
    n0, n1, k0, k1, rank, batch, mode, boundary, dtype, method, fuse
):
    # fuse=False: no fused loop ('direct' then runs the terms one after the other)
    assume(mode != "valid" or (n0 >= k0 and n1 >= k1))
    assume(not (dtype == torch.int64 and method == "fft"))
    rng = np.random.default_rng([n0, n1, k0, k1, rank, len(batch)])

    def draw(*shape):
        if dtype == torch.int64:
            return rng.integers(-4, 5, shape)
        a = rng.standard_normal(shape)
        return a + 1j * rng.standard_normal(shape) if dtype.is_complex else a

    x, f0, f1 = draw(*batch, n0, n1), draw(rank, k0), draw(rank, k1)
    _separable._FUSE = fuse
    _plan.forget()
    try:
        y = trueconv.convolve_separable(
            torch.from_numpy(x).to(dtype),
            [torch.from_numpy(f0).to(dtype), torch.from_numpy(f1).to(dtype)],
            mode,
            boundary=boundary,
            method=method,
        )
    finally:
        _separable._FUSE = True
        _plan.forget()
    kernel = _dense_of_terms(f0, f1)
    ext = _extended(x, (k0, k1), boundary)
    ref = _crop(
        scipy.signal.convolve(ext, kernel.reshape((1,) * len(batch) + (k0, k1)), "valid"),
        x.shape,
        (k0, k1),
        mode,
    )
    assert y.dtype == dtype
    if dtype == torch.int64:
        np.testing.assert_array_equal(y.numpy(), ref)
    else:
        assert rel_err(y, ref) < (3e-6 if dtype == torch.float32 else 1e-12)


@needs_jit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_terms_from_the_svd_run_the_fused_loop(low_rank_ran, dtype, name):
    k = KERNELS[name](15)
    u, s, vh = np.linalg.svd(k)
    root = np.sqrt(s[:2])
    f0, f1 = (u[:, :2] * root).T, vh[:2] * root[:, None]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((640, 600))
    factors = [torch.from_numpy(f).to(dtype) for f in (f0, f1)]
    y = trueconv.convolve_separable(torch.from_numpy(x).to(dtype), factors, "same")
    assert [p.rank for p in low_rank_ran] == [2]
    # within the bound of the kernel the terms make (the SVD's rank-2 truncation of k)
    terms = f0.T @ f1
    assert within_bound(y.numpy(), x, terms, "same", "fill", dtype) <= 1


@needs_jit
def test_terms_with_dims_origin_and_a_fill_value(low_rank_ran):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 3, 280))
    f0, f1 = rng.standard_normal((3, 21)), rng.standard_normal((3, 17))
    y = trueconv.convolve_separable(
        torch.from_numpy(x),
        [torch.from_numpy(f0), torch.from_numpy(f1)],
        "same",
        dims=(0, 2),
        boundary="fill",
        fill_value=1.5,
        origin=(2, -3),
        method="direct",  # the loop is a direct sum: 'direct' runs it wherever it runs
    )
    assert [p.rank for p in low_rank_ran] == [3]
    ref = trueconv.convolve(
        torch.from_numpy(x),
        torch.from_numpy(_dense_of_terms(f0, f1)[:, None, :]),
        "same",
        boundary="fill",
        fill_value=1.5,
        origin=(2, 0, -3),
        method="direct",
    )
    # the dense direct call is checked against scipy.ndimage elsewhere (test_alignment)
    assert rel_err(y, ref) < 1e-13


def test_terms_a_transform_or_a_swap_use_the_dense_kernel(low_rank_ran):
    rng = np.random.default_rng(8)
    # a forced transform, and a 'valid' call whose kernel is the larger operand
    big = [torch.from_numpy(rng.standard_normal((2, 30))) for _ in range(2)]
    small = rng.standard_normal((20, 25))
    dense = np.einsum("qi,qj->ij", *(b.numpy() for b in big))
    for method in ("fft", "auto"):
        y = trueconv.convolve_separable(torch.from_numpy(small), big, "valid", method=method)
        ref = scipy.signal.convolve(small, dense, "valid", method="direct")
        assert rel_err(y, ref) < 1e-12
    assert not low_rank_ran
    # a tiny problem: the dense kernel is priced below the terms one after the other
    x = rng.standard_normal((9, 10, 11))
    fs = [rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 5))]
    y = trueconv.convolve_separable(torch.from_numpy(x), [torch.from_numpy(f) for f in fs])
    assert not low_rank_ran
    assert rel_err(y, scipy.signal.convolve(x, np.einsum("qi,qj,qk->ijk", *fs))) < 1e-13


@pytest.mark.parametrize("fused", [pytest.param(True, marks=needs_jit), False])
def test_terms_of_three_long_dims_run_one_after_the_other(low_rank_ran, request, fused):
    if not fused:
        request.getfixturevalue("no_fused_loop")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((40, 96, 96))
    fs = [rng.standard_normal((2, 7)) for _ in range(3)]
    y = trueconv.convolve_separable(x, fs, "same", method="direct")
    assert [(p.rank, p.chains, p.fused) for p in low_rank_ran] == [(2, True, fused)]
    ref = scipy.signal.convolve(x, np.einsum("qi,qj,qk->ijk", *fs), "same", method="direct")
    assert rel_err(y, ref) < 1e-13


def test_terms_without_the_fused_loop(low_rank_ran, no_fused_loop):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 700, 650))
    f0, f1 = rng.standard_normal((2, 15)), rng.standard_normal((2, 13))
    factors = [torch.from_numpy(f0), torch.from_numpy(f1)]
    dense = _dense_of_terms(f0, f1)
    # with numba, 'auto' prices two terms of two compiled passes at 2.3 ms, the dense plan
    # (overlap-add) at 4.9; without it the passes are shift-and-add and 'direct' asks for them
    method = "auto" if rows.AVAILABLE else "direct"
    for boundary in ("fill", "reflect"):
        y = trueconv.convolve_separable(
            x, factors, "same", dims=(-2, -1), boundary=boundary, method=method
        )
        assert [(p.rank, p.chains) for p in low_rank_ran] == [(2, True)]
        low_rank_ran.clear()
        ref = _crop(
            scipy.signal.convolve(_extended(x, (15, 13), boundary), dense[None], "valid"),
            x.shape,
            (15, 13),
            "same",
        )
        assert rel_err(y, ref) < 1e-13
    # a non-finite sample: the dense kernel places it (the terms would meet +Inf and -Inf)
    x[1, 300, 200] = np.inf
    y = trueconv.convolve_separable(x, factors, "same", dims=(-2, -1), method=method).numpy()
    assert len(low_rank_ran) == 1
    ref = trueconv.convolve(x, dense[None], "same", method="direct").numpy()
    assert_same_nonfinite(y, ref, 1e-13)


def test_terms_one_row_is_the_separable_call():
    x = torch.randn(30, 40, dtype=torch.float64)
    a, b = torch.randn(5, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    one = trueconv.convolve_separable(x, [a[None], b[None]], "same")
    ref = scipy.signal.convolve(x.numpy(), np.outer(a.numpy(), b.numpy()), "same", "direct")
    assert rel_err(one, ref) < 1e-13
    torch.testing.assert_close(one, trueconv.convolve_separable(x, [a, b], "same"))


def test_terms_gradient_reaches_the_factors_and_the_input():
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.standard_normal((1, 1, 40, 36))).requires_grad_()
    f0 = torch.from_numpy(rng.standard_normal((2, 5))).requires_grad_()
    f1 = torch.from_numpy(rng.standard_normal((2, 3))).requires_grad_()
    g = torch.from_numpy(rng.standard_normal((1, 1, 44, 38)))
    (trueconv.convolve_separable(x, [f0, f1]) * g).sum().backward()
    got = [t.grad.clone() for t in (x, f0, f1)]
    # oracle: F.conv2d with the explicitly flipped dense kernel, full padding
    xr, f0r, f1r = (t.detach().clone().requires_grad_() for t in (x, f0, f1))
    kernel = torch.einsum("qi,qj->ij", f0r, f1r).flip(0, 1)
    (torch.nn.functional.conv2d(xr, kernel[None, None], padding=(4, 2)) * g).sum().backward()
    for a, b in zip(got, (xr.grad, f0r.grad, f1r.grad)):
        assert rel_err(a, b) < 1e-13


@needs_jit
def test_terms_place_nan_and_inf_as_the_dense_sum(low_rank_ran):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((600, 600))
    x[10, 20] = np.nan
    x[100, 200] = np.inf
    x[350, 30] = -np.inf
    f0, f1 = rng.standard_normal((2, 15)), rng.standard_normal((2, 15))
    factors = [torch.from_numpy(f0), torch.from_numpy(f1)]
    y = trueconv.convolve_separable(torch.from_numpy(x), factors)
    assert len(low_rank_ran) == 1  # it saw the non-finite input and ran the dense kernel
    ref = scipy.signal.convolve(x, _dense_of_terms(f0, f1), method="direct")
    assert_same_nonfinite(y.numpy(), ref, 1e-13)


@pytest.mark.parametrize(
    ("kernels", "match"),
    [
        ([np.ones(3), np.ones((2, 3))], "all 1-D"),
        ([np.ones((2, 3)), np.ones((3, 3))], "same number of rows"),
        ([np.ones((0, 3)), np.ones((0, 3))], "at least one"),
        ([np.ones((2, 3, 3)), np.ones(3)], r"kernels\[0\] must be 1-D .* or 2-D"),
    ],
)
def test_terms_refused(kernels, match):
    with pytest.raises(ValueError, match=match):
        trueconv.convolve_separable(torch.ones(8, 8), kernels)
