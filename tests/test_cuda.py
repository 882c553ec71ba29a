"""trueconv on a CUDA device, against float64 oracles computed on the CPU.

Oracles: ``scipy.signal.convolve`` / ``correlate`` and ``np.pad`` (signal API), and
``F.convNd`` / ``F.conv_transposeNd`` with an explicitly flipped weight run on the CPU in
float64 (NN API). Every method and direct variant runs on the GPU (cuDNN convolution and the
per-tap shift-and-add; cuFFT; overlap-add), every mode, real/complex/half/integer dtypes, the
boundary rules, broadcasting, autograd, and the float32 precision contract (no TF32 inside the
signal API, whatever the user's cuDNN setting). The whole module is skipped without CUDA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from test_nonfinite import full_sum
from trueconv._methods import REGISTRY, direct

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = "cuda"
METHODS = ["auto", *sorted(REGISTRY)]
MODES = ["full", "same", "valid"]
FUNCS = {
    "convolve": (trueconv.convolve, scipy.signal.convolve),
    "correlate": (trueconv.correlate, scipy.signal.correlate),
}
#: (input, kernel) along trailing dims; leading input dims are a batch
SHAPES = [
    ((1000,), (37,)),
    ((3, 2000), (129,)),
    ((64, 48), (5, 7)),
    ((40, 33), (16, 16)),
    ((20, 17, 15), (3, 4, 5)),
]


def rand(shape, dtype=torch.float64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        return torch.complex(
            torch.randn(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64),
        ).to(dtype)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def scipy_ref(fname: str, x: torch.Tensor, k: torch.Tensor, mode: str) -> np.ndarray:
    """float64 scipy over the trailing dims (the kernel gets leading size-1 dims)."""
    xn = to_numpy(x).astype(np.complex128 if x.is_complex() else np.float64)
    kn = to_numpy(k).astype(np.complex128 if k.is_complex() else np.float64)
    kn = kn.reshape((1,) * (xn.ndim - kn.ndim) + kn.shape)
    return FUNCS[fname][1](xn, kn, mode, method="direct")


def check(out: torch.Tensor, ref: np.ndarray, dtype: torch.dtype) -> None:
    assert out.device.type == "cuda"
    assert out.dtype == dtype
    err = rel_err(out, ref)
    assert err <= REL_TOL[dtype], f"error {err:.2e} > {REL_TOL[dtype]:.0e}"


def valid_ok(xs, ks) -> bool:
    return all(n >= k for n, k in zip(xs, ks)) or all(k >= n for n, k in zip(xs, ks))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fname", sorted(FUNCS))
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_signal_api_matches_scipy(shapes, fname, method, mode, dtype):
    xs, ks = shapes
    if mode == "valid" and not valid_ok(xs[-len(ks) :], ks):
        pytest.skip("'valid' needs one operand at least as large in every dim")
    x, k = rand(xs, dtype, 1), rand(ks, dtype, 2)
    out = FUNCS[fname][0](x.to(CUDA), k.to(CUDA), mode, method=method)
    check(out, scipy_ref(fname, x, k, mode), dtype)


@pytest.mark.parametrize("variant", ["shift_add", "conv"])
@pytest.mark.parametrize("user_tf32", [True, False])
@pytest.mark.parametrize(
    "shapes", [((5000,), (31,)), ((2, 300, 200), (9, 9)), ((24,) * 3, (5,) * 3)], ids=str
)
def test_direct_variants_are_full_float32_precision(shapes, user_tf32, variant):
    """cuDNN runs float32 convolutions in TF32 by default (error ~1e-3); the signal API
    promises float32 results (~1e-7), so the 'conv' variant must not use TF32 — and must
    leave the user's own setting as it found it."""
    xs, ks = shapes
    x, k = rand(xs, torch.float32, 3), rand(ks, torch.float32, 4)
    with tf32(user_tf32), mock.patch.object(direct, "variant", return_value=variant):
        out = trueconv.convolve(x.to(CUDA), k.to(CUDA), "same", method="direct")
        assert _tf32_state() == user_tf32
    ref = scipy_ref("convolve", x, k, "same")
    assert rel_err(out, ref) <= 1e-6


def _tf32_state() -> bool:
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return conv.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


@contextlib.contextmanager
def tf32(on: bool) -> Iterator[None]:
    """cuDNN's float32 convolution precision set to TF32 (or IEEE) inside, restored after."""
    before = _tf32_state()
    _set_tf32(on)
    try:
        yield
    finally:
        _set_tf32(before)


def _set_tf32(on: bool) -> None:
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = on


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shapes", [((3000,), (65,)), ((96, 80), (7, 6))], ids=str)
def test_half_types(shapes, method, dtype):
    """Half inputs give half outputs, computed in float32 (so cuFFT's power-of-two rule for
    half transforms never applies); the error is the output rounding alone."""
    xs, ks = shapes
    x, k = rand(xs, dtype, 5), rand(ks, dtype, 6)
    out = trueconv.convolve(x.to(CUDA), k.to(CUDA), "same", method=method)
    check(out, scipy_ref("convolve", x, k, "same"), dtype)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8])
@pytest.mark.parametrize("mode", MODES)
def test_integers_are_exact(mode, dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 50, (3, 400), generator=g).to(dtype)
    k = torch.randint(0, 9, (17,), generator=g).to(dtype)
    out = trueconv.convolve(x.to(CUDA), k.to(CUDA), mode)
    assert out.dtype == dtype
    assert out.device.type == "cuda"
    # numpy in the same integer dtype: the same wrap-around
    xn, kn = to_numpy(x), to_numpy(k)
    ref = np.stack([np.convolve(row, kn, mode) for row in xn])
    np.testing.assert_array_equal(to_numpy(out), ref)


NP_MODE = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", sorted(NP_MODE))
def test_boundaries_match_np_pad_then_valid(boundary, method):
    x, k = rand((30, 41), seed=8), rand((6, 5), seed=9)
    out = trueconv.convolve(
        x.to(CUDA), k.to(CUDA), "same", method=method, boundary=boundary, fill_value=0.5
    )
    xn, kn = to_numpy(x), to_numpy(k)
    pads = [((kk - 1) - (kk - 1) // 2, (kk - 1) // 2) for kk in kn.shape]  # scipy 'same'
    extra = {"constant_values": 0.5} if boundary == "fill" else {}
    ref = scipy.signal.convolve(np.pad(xn, pads, NP_MODE[boundary], **extra), kn, "valid")
    check(out, ref, torch.float64)


@pytest.mark.parametrize("method", METHODS)
def test_broadcast_batch_dims(method):
    """Per-signal kernels: x (4, 1, 50) with k (3, 9) along dims=(2,) pairs every signal
    with every kernel (batch dims broadcast like numpy)."""
    x, k = rand((4, 1, 50), seed=10), rand((3, 9), seed=11)
    out = trueconv.convolve(x.to(CUDA), k.to(CUDA), "full", dims=(-1,), method=method)
    assert out.shape == (4, 3, 58)
    xn, kn = to_numpy(x), to_numpy(k)
    ref = np.stack([[np.convolve(xn[i, 0], kn[j]) for j in range(3)] for i in range(4)])
    check(out, ref, torch.float64)


@pytest.mark.parametrize("method", METHODS)
def test_gradients(method):
    x = rand((2, 40), seed=12).to(CUDA).requires_grad_()
    k = rand((7,), seed=13).to(CUDA).requires_grad_()

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return trueconv.convolve(a, b, "same", method=method, boundary="reflect")

    assert torch.autograd.gradcheck(fn, (x, k))


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_convolve_separable_terms(method):
    # terms one after the other (no fused loop on CUDA), or the dense kernel; float64 oracle
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 300, 280))
    fs = [rng.standard_normal((2, 15)), rng.standard_normal((2, 13))]
    y = trueconv.convolve_separable(
        torch.from_numpy(x).to(CUDA),
        [torch.from_numpy(f).to(CUDA) for f in fs],
        "same",
        dims=(-2, -1),
        boundary="reflect",
        method=method,
    )
    assert y.device.type == CUDA
    kernel = np.einsum("qi,qj->ij", *fs)
    ext = np.pad(x, [(0, 0), (14, 14), (12, 12)], mode="reflect")
    ref = scipy.signal.convolve(ext, kernel[None], "valid")[:, 7:307, 6:286]
    assert rel_err(to_numpy(y), ref) < 1e-12


def test_choose_method_on_cuda():
    x, k = torch.randn(2**16, device=CUDA), torch.randn(2048, device=CUDA)
    assert trueconv.choose_method(x, k) in REGISTRY
    measured = trueconv.choose_method(x, k, measure=True)
    assert measured in REGISTRY
    assert trueconv.choose_method(x, k) == measured  # the timed winner is remembered


def test_operands_on_two_devices_are_refused():
    with pytest.raises(ValueError, match="same device"):
        trueconv.convolve(torch.ones(5, device=CUDA), torch.ones(3))


@given(
    n=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    data=st.data(),
    mode=st.sampled_from(MODES),
    method=st.sampled_from(METHODS),
)
def test_property_any_shape(n, data, mode, method):
    ks = tuple(data.draw(st.integers(1, 12)) for _ in n)
    if mode == "valid" and not valid_ok(n, ks):
        mode = "full"
    x, k = rand(tuple(n), seed=14), rand(ks, seed=15)
    out = trueconv.convolve(x.to(CUDA), k.to(CUDA), mode, method=method)
    check(out, scipy_ref("convolve", x, k, mode), torch.float64)


# ---------------------------------------------------------------------------------- NN API

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TC = {1: trueconv.conv1d, 2: trueconv.conv2d, 3: trueconv.conv3d}
TC_T = {1: trueconv.conv_transpose1d, 2: trueconv.conv_transpose2d, 3: trueconv.conv_transpose3d}
SIZES = {1: (23,), 2: (15, 12), 3: (9, 8, 10)}
KERNELS = {1: (5,), 2: (3, 4), 3: (3, 2, 3)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"padding": "same"},
        {"stride": 2, "padding": 1},
        {"dilation": 2, "groups": 2, "padding": 2},
    ],
    ids=str,
)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_nn_conv_matches_flipped_F_conv(nd, kw, method, dtype):
    x = rand((2, 4, *SIZES[nd]), seed=16)
    w = rand((6, 4 // kw.get("groups", 1), *KERNELS[nd]), seed=17)
    b = rand((6,), seed=18)
    ref = CONV[nd](x, w.flip(list(range(2, 2 + nd))), b, **kw)
    with tf32(False):  # the NN API is F.convNd: cuDNN's TF32 default applies to it as well
        out = TC[nd](x.to(CUDA, dtype), w.to(CUDA, dtype), b.to(CUDA, dtype), **kw, method=method)
    assert out.device.type == "cuda"
    assert rel_err(out, ref) <= REL_TOL[dtype]


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_nn_conv_transpose_matches_flipped_F(nd, method):
    x = rand((2, 4, *SIZES[nd]), seed=19)
    w = rand((4, 3, *KERNELS[nd]), seed=20)
    ref = CONV_T[nd](x, w.flip(list(range(2, 2 + nd))), stride=2, padding=1, output_padding=1)
    out = TC_T[nd](x.to(CUDA), w.to(CUDA), stride=2, padding=1, output_padding=1, method=method)
    assert rel_err(out, ref) <= REL_TOL[torch.float64]


def test_nn_module_on_cuda_trains():
    torch.manual_seed(0)
    layer = trueconv.nn.Conv2d(3, 5, 7, padding="same", padding_mode="reflect").double()
    x = rand((2, 3, 20, 18), seed=21)
    xp = F.pad(x, [3, 3, 3, 3], mode="reflect")
    ref = F.conv2d(xp, layer.weight.detach().flip([2, 3]), layer.bias.detach())
    layer = layer.to(CUDA)
    out = layer(x.to(CUDA))
    assert rel_err(out, ref) <= REL_TOL[torch.float64]
    out.square().mean().backward()
    assert layer.weight.grad is not None
    assert layer.weight.grad.device.type == "cuda"
    assert torch.isfinite(layer.weight.grad).all()


# ------------------------------------------------- plans and ports added after 2026-11-26


@pytest.fixture
def separable_ran(monkeypatch):
    """'auto' made to take the separable plan wherever the kernel is separable (every dense
    plan priced above the threshold, any saving enough); the plans that ran are listed."""
    from trueconv import _plan, _separable

    runs: list = []
    original = _separable.SeparablePlan.run

    def counted(self, a, fs, b=None):
        runs.append(self)
        return original(self, a, fs, b)

    monkeypatch.setattr(_separable.SeparablePlan, "run", counted)
    monkeypatch.setattr(_separable, "MIN_DENSE_S", 0.0)
    monkeypatch.setattr(_separable, "MAX_FRACTION", 1e9)
    monkeypatch.setattr(_separable, "SEPARABLE_AUTO_DEVICES", frozenset({"cpu", "cuda"}))
    _plan.forget()
    yield runs
    monkeypatch.undo()
    _plan.forget()


def _gaussian(k: int, sigma: float) -> np.ndarray:
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("boundary", ["fill", "reflect", "wrap"])
@pytest.mark.parametrize(
    ("xs", "ks"),
    [((2, 300, 260), (9, 9)), ((1, 200, 240), (15, 5)), ((40, 36, 30), (5, 3, 7))],
    ids=str,
)
def test_auto_runs_separable_kernels_as_passes_on_cuda(separable_ran, xs, ks, boundary, dtype):
    # a Gaussian outer product, as the CLI's kernels and ndimage build them; float64 oracle
    # on the host: scipy's direct sum over the np.pad-extended input
    rng = np.random.default_rng(30)
    k = _gaussian(ks[0], 2.0)
    for n in ks[1:]:
        k = np.multiply.outer(k, _gaussian(n, 1.5))
    x = rng.standard_normal(xs)
    nd = len(ks)
    out = trueconv.convolve(
        torch.from_numpy(x).to(CUDA, dtype),
        torch.from_numpy(k).to(CUDA, dtype),
        "same",
        dims=tuple(range(-nd, 0)),
        boundary=boundary,
    )
    assert separable_ran, "the separable plan did not run"
    assert out.device.type == CUDA
    assert out.dtype == dtype
    pads = [(0, 0)] * (x.ndim - nd) + [(n // 2, (n - 1) // 2) for n in ks]
    ext = np.pad(x, pads, mode=NP_MODE[boundary]) if boundary != "fill" else np.pad(x, pads)
    ref = scipy.signal.convolve(ext, k.reshape((1,) * (x.ndim - nd) + k.shape), "valid")
    assert rel_err(out, ref) <= REL_TOL[dtype]


def test_dense_and_separable_auto_agree_with_scipy_on_cuda():
    # the shipped prices pick whatever they pick on this device; the answer is scipy's
    rng = np.random.default_rng(31)
    x = rng.standard_normal((1024, 1024))
    g = _gaussian(7, 1.2)
    for k in (np.outer(g, g), rng.standard_normal((7, 7))):
        for dtype in (torch.float32, torch.float64):
            xt, kt = torch.from_numpy(x).to(CUDA, dtype), torch.from_numpy(k).to(CUDA, dtype)
            assert isinstance(trueconv.choose_method(xt, kt, "same"), str)
            out = trueconv.convolve(xt, kt, "same")
            ref = scipy.signal.convolve(x, k, "same")
            assert rel_err(out, ref) <= REL_TOL[dtype]


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_convolve_separable_rank_one_on_cuda_with_gradients(method):
    x = rand((3, 40, 36), seed=32).to(CUDA).requires_grad_()
    f0 = rand((5,), seed=33).to(CUDA).requires_grad_()
    f1 = rand((4,), seed=34).to(CUDA).requires_grad_()

    def fn(a, p, q):
        return trueconv.convolve_separable(a, [p, q], "same", boundary="symmetric", method=method)

    ref = scipy.signal.convolve(
        np.pad(to_numpy(x.detach()), [(0, 0), (2, 2), (2, 1)], mode="symmetric"),
        np.outer(to_numpy(f0.detach()), to_numpy(f1.detach()))[None],
        "valid",
    )
    assert rel_err(fn(x, f0, f1), ref) <= REL_TOL[torch.float64]
    # cuDNN's backward kernels add in an order that varies from run to run (as F.conv2d's own
    # gradients do): the repeated backward agrees to rounding, not bit for bit
    assert torch.autograd.gradcheck(fn, (x, f0, f1), nondet_tol=1e-12)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("method", "variant"),
    [(m, None) for m in METHODS] + [("direct", "shift_add"), ("direct", "conv")],
    ids=str,
)
@pytest.mark.parametrize("nd", [1, 2])
def test_nan_and_inf_land_where_the_direct_sum_puts_them_on_cuda(nd, method, variant):
    # the audit's defect (NaN dropped by the direct method) on the GPU's direct variants and
    # transforms; oracle: the direct sum over defined terms, numpy.convolve per row pair
    rng = np.random.default_rng(35)
    xs, ks = ((300,), (9,)) if nd == 1 else ((40, 37), (5, 4))
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    k.flat[::3] = 0.0  # zero taps meet the non-finite values: 0 · Inf = NaN, 0 · NaN = NaN
    x.flat[[0, x.size // 2, x.size // 3, x.size - 1]] = [NAN, INF, -INF, NAN]
    patch = (
        mock.patch.object(direct, "variant", return_value=variant)
        if variant
        else contextlib.nullcontext()
    )
    with patch:
        out = trueconv.convolve(
            torch.from_numpy(x).to(CUDA), torch.from_numpy(k).to(CUDA), method=method
        )
    with np.errstate(invalid="ignore"):  # 0 · Inf and Inf - Inf are NaN: the point
        ref = full_sum(x, k)
    got = to_numpy(out)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.where(finite, 0, got), np.where(finite, 0, ref))
    assert rel_err(got[finite], ref[finite]) <= REL_TOL[torch.float64]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["reflect", "nearest", "mirror", "wrap", "constant"])
def test_ndimage_ports_match_scipy_on_cuda(mode, dtype):
    import scipy.ndimage as ndi

    from trueconv import ndimage as tnd

    rng = np.random.default_rng(36)
    x = rng.standard_normal((70, 64))
    w = rng.standard_normal((5, 4))
    xt = torch.from_numpy(x).to(CUDA, dtype)
    cases = [
        (tnd.gaussian_filter(xt, 2.5, mode=mode), ndi.gaussian_filter(x, 2.5, mode=mode)),
        (
            tnd.gaussian_filter(xt, (1.0, 3.0), order=(1, 0), mode=mode),
            ndi.gaussian_filter(x, (1.0, 3.0), order=(1, 0), mode=mode),
        ),
        (tnd.sobel(xt, axis=0, mode=mode), ndi.sobel(x, axis=0, mode=mode)),
        (tnd.uniform_filter(xt, 5, mode=mode), ndi.uniform_filter(x, 5, mode=mode)),
        (
            tnd.convolve(xt, torch.from_numpy(w).to(CUDA, dtype), mode=mode, cval=0.5),
            ndi.convolve(x, w, mode=mode, cval=0.5),
        ),
        (
            tnd.correlate1d(xt, [1.0, -2.0, 0.5], axis=0, mode=mode, origin=1),
            ndi.correlate1d(x, [1.0, -2.0, 0.5], axis=0, mode=mode, origin=1),
        ),
    ]
    for out, ref in cases:
        assert out.device.type == CUDA
        assert out.dtype == dtype
        assert rel_err(out, ref) <= 4 * REL_TOL[dtype]


def test_vmap_and_grad_compose_on_cuda():
    from torch.func import grad, vmap

    xs, ks = rand((4, 50), seed=37).to(CUDA), rand((4, 7), seed=38).to(CUDA)
    out = vmap(lambda a, b: trueconv.convolve(a, b, "same"))(xs, ks)
    for i in range(4):
        ref = scipy.signal.convolve(to_numpy(xs[i]), to_numpy(ks[i]), "same")
        assert rel_err(out[i], ref) <= REL_TOL[torch.float64]
    g = grad(lambda b: trueconv.convolve(xs[0], b, "full").square().sum())(ks[0])
    # d/dk sum(y²) = 2 · correlate(y, x) restricted to the kernel's support
    y = np.convolve(to_numpy(xs[0]), to_numpy(ks[0]))
    expect = 2 * np.correlate(y, to_numpy(xs[0]), "valid")
    assert rel_err(g, expect) <= REL_TOL[torch.float64]


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_compile_fullgraph_on_cuda(method):
    torch._dynamo.reset()
    f = torch.compile(
        lambda a, b: trueconv.convolve(a, b, "same", method=method, boundary="reflect"),
        fullgraph=True,
    )
    x, k = rand((2, 64, 60), torch.float32, 39), rand((5, 5), torch.float32, 40)
    out = f(x.to(CUDA), k.to(CUDA))
    ext = np.pad(to_numpy(x).astype(np.float64), [(0, 0), (2, 2), (2, 2)], mode="reflect")
    ref = scipy.signal.convolve(ext, to_numpy(k).astype(np.float64)[None], "valid")
    assert out.device.type == CUDA
    assert rel_err(out, ref) <= 1e-5
