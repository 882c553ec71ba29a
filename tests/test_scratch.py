"""Memory a thread keeps from call to call (trueconv._methods.scratch): an operand converted to
the compute dtype (a uint8 image for an integer or a floating kernel) and a 3-D separable
plan's intermediate. Oracles: scipy's direct sum (exact in int64, float64 otherwise). What
matters beyond the values: no result lies in the kept memory (a later call would overwrite
it), a held slot is handed back whatever happens, threads keep their own."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import scipy.signal
import torch

import trueconv
from conftest import rel_err
from trueconv._methods import scratch

KERNELS = {
    "sobel": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "one": np.array([[1]]),
    "gaussian": np.outer([0.25, 0.5, 0.25], [0.25, 0.5, 0.25]),
    "random": np.random.default_rng(1).standard_normal((4, 5)),
}


@pytest.fixture(autouse=True)
def small_arrays_too(monkeypatch):
    # the tests' images are small: their converted copies go to the slot too
    monkeypatch.setattr(scratch, "SCRATCH_MIN", 0)


def _image(seed, shape=(40, 52)):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _oracle(x, kernel, mode):
    if np.issubdtype(kernel.dtype, np.integer):
        return scipy.signal.convolve(x.numpy().astype(np.int64), kernel, mode, method="direct")
    return scipy.signal.convolve(x.numpy().astype(np.float64), kernel, mode, method="direct")


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_converted_input_leaves_no_result_in_kept_memory(name, mode):
    kernel = KERNELS[name]
    k = torch.from_numpy(kernel)
    if k.is_floating_point():
        k = k.float()
    x0, x1 = _image(2), _image(3)
    y0 = trueconv.convolve(x0, k, mode)
    kept = y0.clone()
    assert scratch._STATE.bufs.get("input") is not None
    assert not scratch._STATE.busy
    y1 = trueconv.convolve(x1, k, mode)
    assert torch.equal(y0, kept)
    assert not scratch.holds(y0)
    assert not scratch.holds(y1)
    for x, y in ((x0, y0), (x1, y1)):
        ref = _oracle(x, kernel, mode)
        if y.is_floating_point():
            assert rel_err(y, ref) < 2e-6
        else:
            assert y.dtype == torch.int64
            np.testing.assert_array_equal(y.numpy(), ref)


def test_threads_keep_their_own():
    k = torch.from_numpy(KERNELS["sobel"])
    xs = [_image(10 + i, (30 + i, 41)) for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ys = list(pool.map(lambda x: trueconv.convolve(x, k, "same"), xs))
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(y.numpy(), _oracle(x, KERNELS["sobel"], "same"))


def test_slot_handed_back_when_the_call_raises(monkeypatch):
    from trueconv import _plan

    def fail(*args, **kwargs):
        raise RuntimeError("planned failure")

    monkeypatch.setattr(_plan, "run", fail)
    with pytest.raises(RuntimeError, match="planned failure"):
        trueconv.convolve(_image(4), torch.from_numpy(KERNELS["sobel"]), "same")
    assert not scratch._STATE.busy


def test_not_under_autograd_nor_for_small_arrays(monkeypatch):
    x = torch.randn(30, 40, dtype=torch.float16, requires_grad=True)
    k = torch.randn(3, 3)
    before = scratch._STATE.bufs.get("input")
    y = trueconv.convolve(x, k, "same")
    y.sum().backward()
    assert x.grad is not None
    assert scratch._STATE.bufs.get("input") is before
    monkeypatch.setattr(scratch, "SCRATCH_MIN", 1 << 30)
    got, held = scratch.converted(_image(5), torch.float32)
    assert not held
    assert not scratch._STATE.busy
    torch.testing.assert_close(got, _image(5).float())


def test_nested_take_gets_fresh_memory():
    assert scratch.take("input")
    try:
        got, held = scratch.converted(_image(6), torch.int64)
        assert not held
        assert not scratch.holds(got)
    finally:
        scratch.give_back("input")


def _grad_reference(xs, k, w):
    """d/dk of sum(w * convolve(x, k, 'same')) by flip + F.conv2d/conv3d in float64 (odd
    kernel sizes: 'same' is zero padding of k // 2)."""
    kk = k.detach().double().clone().requires_grad_()
    conv = {2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[kk.ndim]
    flipped = kk.flip(list(range(kk.ndim)))
    y = conv(xs.double()[None, None], flipped[None, None], padding=[n // 2 for n in kk.shape])
    (y[0, 0] * w.double()).sum().backward()
    return kk.grad


def test_converted_input_not_kept_where_the_kernel_needs_a_gradient():
    # the plan keeps its (converted) input for the kernel's gradient: it must not lie in
    # memory the next call overwrites
    rng = np.random.default_rng(7)
    x1, x2 = (torch.from_numpy(rng.standard_normal((30, 41))).half() for _ in range(2))
    k = torch.from_numpy(rng.standard_normal((3, 5))).float().requires_grad_()
    w = torch.from_numpy(rng.standard_normal((30, 41))).float()
    y1 = trueconv.convolve(x1, k, "same")
    trueconv.convolve(x2, k, "same")  # would overwrite a kept input
    (y1 * w).sum().backward()
    ref = _grad_reference(x1.float(), k, w)
    torch.testing.assert_close(k.grad.double(), ref, rtol=1e-4, atol=1e-4)


def test_3d_intermediate_not_kept_where_a_factor_needs_a_gradient():
    # the pass along the first dim keeps its input (the fused result) for its factor's
    # gradient: that input must not lie in memory the next call overwrites
    rng = np.random.default_rng(8)
    x1, x2 = (torch.from_numpy(rng.standard_normal((9, 12, 14))) for _ in range(2))
    f0 = torch.tensor([0.5, 1.0, -0.25], dtype=torch.float64, requires_grad=True)
    f1 = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    f2 = torch.tensor([0.2, -1.0, 0.7, 0.1, 0.4], dtype=torch.float64)
    w = torch.from_numpy(rng.standard_normal((9, 12, 14)))
    y1 = trueconv.convolve_separable(x1, [f0, f1, f2], "same")
    trueconv.convolve_separable(x2, [f0, f1, f2], "same")
    (y1 * w).sum().backward()
    k = torch.einsum("i,j,k->ijk", f0.detach(), f1, f2)
    ref = _grad_reference(x1, k, w)  # d/dk; d/df0 = sum over the other factors' outer product
    expected = torch.einsum("ijk,j,k->i", ref, f1, f2)
    torch.testing.assert_close(f0.grad, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex128])
@pytest.mark.parametrize("shape", [(40, 52), (9, 11, 13)])
def test_passes_first_result_in_kept_memory(dtype, shape):
    # kernels the fused loop does not take (integers, complex) run as passes: the first
    # pass's result goes to the kept slot 'pass', read by the second pass alone
    from trueconv._methods import rows

    rng = np.random.default_rng(12)
    factors = [rng.integers(-3, 4, 3), rng.integers(-3, 4, 5), rng.integers(-3, 4, 3)]
    factors = factors[3 - len(shape) :]
    kernel = factors[0]
    for f in factors[1:]:
        kernel = np.multiply.outer(kernel, f)
    xs = [rng.integers(-100, 100, shape) for _ in range(2)]
    if dtype.is_complex:
        xs = [x + 1j * rng.integers(-100, 100, shape) for x in xs]
    ts = [torch.from_numpy(x).to(dtype) for x in xs]
    fs = [torch.from_numpy(f).to(dtype) for f in factors]
    y0 = trueconv.convolve_separable(ts[0], fs, "same")
    kept = y0.clone()
    assert scratch._STATE.bufs.get("pass") is not None
    assert rows.REDIRECT.to is None
    y1 = trueconv.convolve_separable(ts[1], fs, "same")
    assert torch.equal(y0, kept)
    assert not scratch.holds(y0)
    assert not scratch.holds(y1)
    for x, y in zip(xs, (y0, y1)):
        ref = scipy.signal.convolve(x, kernel, "same", method="direct")
        np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=1e-9)
