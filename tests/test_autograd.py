"""Autograd and ``torch.compile``.

* ``gradcheck``/``gradgradcheck`` in float64 (complex128 for a few cases) w.r.t. input and kernel,
  for every method x mode x boundary;
* gradients against the oracle ``F.conv1d/conv2d`` with an explicitly flipped kernel;
* ``torch.compile`` (eager backend for every method, inductor for one case) against scipy.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv._methods import REGISTRY

METHODS = sorted(REGISTRY)
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symmetric", "reflect", "replicate")
F64 = torch.float64


def _leaf(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype).requires_grad_()


# (input shape, kernel shape): odd and even kernels; lengths where overlap_add cuts blocks; a
# kernel larger than the input ('valid' swaps the operands); two convolved dims.
SHAPES = [
    pytest.param(((9,), (3,)), id="9x3"),
    pytest.param(((8,), (2,)), id="8x2"),
    pytest.param(((3,), (5,)), id="3x5"),
    pytest.param(((5, 4), (3, 2)), id="5.4x3.2"),
]


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_input_and_kernel(method, mode, boundary, shapes):
    x_shape, k_shape = shapes
    x, k = _leaf(x_shape, seed=1), _leaf(k_shape, seed=2)
    fill = 0.75 if boundary == "fill" else 0  # a non-zero fill is a constant: no gradient

    def f(x, k):
        return trueconv.convolve(x, k, mode, method=method, boundary=boundary, fill_value=fill)

    # fast mode checks v^T J u for random u, v (one backward per check, not one per element)
    assert gradcheck(f, (x, k), fast_mode=True)
    assert gradgradcheck(f, (x, k), fast_mode=True)


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_batched_per_signal_kernels(method):
    """Per-signal kernels with explicit dims (grouped paths) and a broadcast kernel dim."""
    x, k = _leaf((2, 1, 7), seed=3), _leaf((2, 3, 3), seed=4)

    def f(x, k):
        return trueconv.convolve(x, k, "same", dims=-1, method=method, boundary="symmetric")

    assert gradcheck(f, (x, k))
    assert gradgradcheck(f, (x, k))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("fname", "mode", "boundary"),
    [
        ("correlate", "full", "fill"),
        ("convolve", "same", "reflect"),
        ("correlate", "valid", "wrap"),
    ],
)
def test_gradcheck_complex(method, fname, mode, boundary):
    x = _leaf((7,), torch.complex128, seed=5)
    k = _leaf((3,), torch.complex128, seed=6)
    fn = getattr(trueconv, fname)

    def f(x, k):
        return fn(x, k, mode, method=method, boundary=boundary)

    assert gradcheck(f, (x, k))
    assert gradgradcheck(f, (x, k))


def test_gradcheck_real_input_complex_kernel():
    """Mixed real/complex operands: the result is complex, gradients reach both."""
    x = _leaf((6,), F64, seed=7)
    k = _leaf((3,), torch.complex128, seed=8)
    for method in METHODS:
        assert gradcheck(lambda x, k, m=method: trueconv.correlate(x, k, "same", method=m), (x, k))


# --------------------------------------------------------------------------------------------
# gradients against F.convNd with an explicitly flipped kernel (zero fill)
# --------------------------------------------------------------------------------------------


def _oracle_conv(x, k, mode):
    """``F.conv1d/conv2d`` on the flipped kernel, after explicit zero padding per the mode.

    ``x``: ``(B, *n)``; ``k``: ``(*k)``; 1 or 2 convolved dims.
    """
    nd = k.ndim
    pad = []
    for m in reversed(k.shape):  # F.pad lists the last dim first
        if mode == "full":
            pad += [m - 1, m - 1]
        elif mode == "same":
            pad += [m - 1 - (m - 1) // 2, (m - 1) // 2]
        else:
            pad += [0, 0]
    conv = {1: F.conv1d, 2: F.conv2d}[nd]
    w = k.flip(list(range(nd)))[None, None]
    return conv(F.pad(x[:, None], pad), w)[:, 0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("x_shape", "k_shape"), [((3, 11), (4,)), ((2, 6, 5), (3, 2)), ((2, 9), (9,))]
)
def test_gradients_match_flipped_f_conv(method, mode, x_shape, k_shape):
    x, k = _leaf(x_shape, seed=9), _leaf(k_shape, seed=10)
    out = trueconv.convolve(x, k, mode, method=method)
    x0, k0 = x.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    ref = _oracle_conv(x0, k0, mode)
    assert rel_err(out, ref) <= REL_TOL[F64]
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(11), dtype=F64)
    gx, gk = torch.autograd.grad(out, (x, k), upstream)
    rx, rk = torch.autograd.grad(ref, (x0, k0), upstream)
    assert rel_err(gx, rx) <= REL_TOL[F64]
    assert rel_err(gk, rk) <= REL_TOL[F64]


@pytest.mark.parametrize("method", METHODS)
def test_gradients_float32_match_flipped_f_conv(method):
    x = torch.randn(4, 20, generator=torch.Generator().manual_seed(12)).requires_grad_()
    k = torch.randn(5, generator=torch.Generator().manual_seed(13)).requires_grad_()
    out = trueconv.convolve(x, k, "same", method=method)
    assert out.dtype == torch.float32
    x0, k0 = x.detach().double().requires_grad_(), k.detach().double().requires_grad_()
    ref = _oracle_conv(x0, k0, "same")
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(14), dtype=F64)
    gx, gk = torch.autograd.grad(out, (x, k), upstream.float())
    rx, rk = torch.autograd.grad(ref, (x0, k0), upstream)
    assert gx.dtype == gk.dtype == torch.float32
    assert rel_err(gx, rx) <= REL_TOL[torch.float32]
    assert rel_err(gk, rk) <= REL_TOL[torch.float32]


# --------------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------------


def _scipy_same_reflect(x, k):
    """scipy reference: numpy 'reflect' extension, then a valid convolution per row."""
    m = k.shape[-1]
    pad = (m - 1 - (m - 1) // 2, (m - 1) // 2)
    xp = np.pad(to_numpy(x), [(0, 0), pad], mode="reflect")
    kk = to_numpy(k)
    return np.stack([scipy.signal.convolve(row, kk, "valid", method="direct") for row in xp])


# The direct and FFT paths; compiling costs seconds per graph, so not every registered method.
COMPILE_METHODS = ("direct", "fft")


def _quiet(test):
    """Silence dynamo's notes (lru_cache, graph breaks) and torch-internal deprecations."""
    test = pytest.mark.filterwarnings("ignore::UserWarning")(test)
    return pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")(test)


@_quiet
@pytest.mark.parametrize("method", COMPILE_METHODS)
def test_compile_eager_backend(method):
    torch._dynamo.reset()

    def f(x, k):
        return trueconv.convolve(x, k, "same", method=method, boundary="reflect")

    compiled = torch.compile(f, backend="eager")
    g = torch.Generator().manual_seed(15)
    x, k = torch.randn(3, 16, generator=g, dtype=F64), torch.randn(5, generator=g, dtype=F64)
    out = compiled(x, k)
    assert rel_err(out, _scipy_same_reflect(x, k)) <= REL_TOL[F64]
    # full mode, 2-D, complex: another graph through the same entry point
    x2 = torch.randn(6, 5, generator=g, dtype=torch.complex128)
    k2 = torch.randn(3, 2, generator=g, dtype=torch.complex128)
    out2 = torch.compile(lambda a, b: trueconv.convolve(a, b, method=method), backend="eager")(
        x2, k2
    )
    ref2 = scipy.signal.convolve(to_numpy(x2), to_numpy(k2), method="direct")
    assert rel_err(out2, ref2) <= REL_TOL[torch.complex128]


@_quiet
@pytest.mark.parametrize("method", COMPILE_METHODS)
def test_compile_eager_backend_backward(method):
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x, k: trueconv.convolve(x, k, "full", method=method), backend="eager"
    )
    x, k = _leaf((2, 10), seed=16), _leaf((4,), seed=17)
    out = compiled(x, k)
    x0, k0 = x.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    ref = _oracle_conv(x0, k0, "full")
    assert rel_err(out, ref) <= REL_TOL[F64]
    gx, gk = torch.autograd.grad(out.sum(), (x, k))
    rx, rk = torch.autograd.grad(ref.sum(), (x0, k0))
    assert rel_err(gx, rx) <= REL_TOL[F64]
    assert rel_err(gk, rk) <= REL_TOL[F64]


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@_quiet
@pytest.mark.skipif(
    _cxx_compiler() is None,
    reason="torch.compile's default inductor backend needs a C++ compiler; none found here",
)
def test_compile_inductor_backend():
    """One case with the default backend (compiles in well under a minute on 2 CPU cores)."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, k: trueconv.convolve(x, k, "full", method="direct"))
    g = torch.Generator().manual_seed(18)
    x, k = torch.randn(2, 16, generator=g, dtype=F64), torch.randn(5, generator=g, dtype=F64)
    out = compiled(x, k)
    ref = np.stack([scipy.signal.convolve(r, to_numpy(k), method="direct") for r in to_numpy(x)])
    assert rel_err(out, ref) <= REL_TOL[F64]
