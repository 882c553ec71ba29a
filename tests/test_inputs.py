"""What the signal API accepts as operands, and what it returns for them.

numpy arrays, lists, Python scalars, 0-d tensors, size-1 axes, empty operands, devices,
non-contiguous / expanded / channels-last memory layouts, operands that require grad, and the
output dtype rule ``torch.result_type(input, kernel)``. References: scipy/numpy in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

import trueconv
from conftest import REL_TOL, rel_err, to_numpy
from trueconv._methods import REGISTRY

METHODS = sorted(REGISTRY)
ALL_METHODS = ("auto", *METHODS)
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symmetric", "reflect", "replicate")
NP_PAD_MODE = {
    "fill": "constant",
    "wrap": "wrap",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
}
F64 = torch.float64


def reference(x, k, mode="full", boundary="fill"):
    """scipy.signal.convolve (direct, float64/complex128), the boundary applied by np.pad.

    Same ndim operands, every dim convolved, no empty dims.
    """
    x = np.asarray(to_numpy(x) if isinstance(x, torch.Tensor) else x)
    k = np.asarray(to_numpy(k) if isinstance(k, torch.Tensor) else k)
    dt = np.complex128 if np.iscomplexobj(x) or np.iscomplexobj(k) else np.float64
    x, k = x.astype(dt), k.astype(dt)
    if mode == "valid" or x.ndim == 0:
        return scipy.signal.convolve(x, k, mode, method="direct")
    if mode == "full":
        pads = [(m - 1, m - 1) for m in k.shape]
    else:
        pads = [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in k.shape]
    xp = np.pad(x, pads, mode=NP_PAD_MODE[boundary])
    return scipy.signal.convolve(xp, k, "valid", method="direct")


def per_item_reference(x, k, mode="full", boundary="fill"):
    """Leading dims of ``x`` as a batch, ``k`` shared; looped the way torchaudio's tests loop."""
    x = to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)
    lead = x.shape[: x.ndim - np.ndim(k)]
    items = [reference(x[i], k, mode, boundary) for i in np.ndindex(*lead)]
    return np.stack(items).reshape(*lead, *items[0].shape)


def assert_close(out, ref, dtype=F64):
    err = rel_err(out, ref)
    assert err <= REL_TOL[dtype], f"relative error {err:.3g}"


# --------------------------------------------------------------------------------------------
# numpy arrays, lists, tuples, Python scalars
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_numpy_operands(method, mode):
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((3, 9)), rng.standard_normal(4)
    out = trueconv.convolve(x, k, mode, method=method)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == F64  # numpy float64 stays float64
    assert_close(out, per_item_reference(x, k, mode))
    # numpy kernel with a tensor input, numpy input with a tensor kernel
    assert_close(trueconv.convolve(torch.from_numpy(x), k, mode, method=method), out)
    assert_close(trueconv.convolve(x, torch.from_numpy(k), mode, method=method), out)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_numpy_complex_and_integer_operands(method):
    rng = np.random.default_rng(1)
    xc = rng.standard_normal(7) + 1j * rng.standard_normal(7)
    out = trueconv.correlate(xc, np.array([1.0, 2j, -1.0]), "same", method=method)
    assert out.dtype == torch.complex128
    ref = scipy.signal.correlate(xc, np.array([1.0, 2j, -1.0]), "same", method="direct")
    assert_close(out, ref, torch.complex128)

    xi = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    ki = np.array([[1, -1]], dtype=np.int32)
    out = trueconv.convolve(xi, ki, method=method)
    assert out.dtype == torch.int32
    np.testing.assert_array_equal(to_numpy(out), scipy.signal.convolve(xi, ki, method="direct"))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_numpy_non_contiguous_arrays(method):
    rng = np.random.default_rng(2)
    x = np.asfortranarray(rng.standard_normal((5, 6)))
    k = rng.standard_normal((4, 6))[::2, ::2]  # positive-stride view
    out = trueconv.convolve(x, k, "same", method=method, boundary="symmetric")
    assert_close(out, reference(np.ascontiguousarray(x), k.copy(), "same", "symmetric"))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_lists_tuples_and_nested_sequences(method):
    out = trueconv.convolve([1, 2, 3], (0, 1, 0.5), method=method)
    assert out.dtype == torch.float32  # torch.as_tensor of Python floats: the default dtype
    assert_close(out, np.convolve([1, 2, 3], [0, 1, 0.5]), torch.float32)

    out = trueconv.convolve([[1, 2], [3, 4]], [[1, -1]], method=method)
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(
        to_numpy(out), scipy.signal.convolve([[1, 2], [3, 4]], [[1, -1]], method="direct")
    )


@pytest.mark.parametrize("method", ALL_METHODS)
def test_list_input_takes_the_tensor_kernels_dtype_rule_and_device(method):
    k = torch.tensor([0.5, -1.0], dtype=F64)
    out = trueconv.convolve([1, 2, 3, 4], k, "valid", method=method)
    assert out.dtype == F64
    assert out.device == k.device
    assert_close(out, np.convolve([1, 2, 3, 4], [0.5, -1.0], "valid"))


# --------------------------------------------------------------------------------------------
# 0-d operands: both 0-d is a product, as scipy
# --------------------------------------------------------------------------------------------

ZERO_D = [
    pytest.param(2, 3, id="python-ints"),
    pytest.param(2.5, -2, id="python-float-int"),
    pytest.param(torch.tensor(2.0, dtype=F64), torch.tensor(-1.5, dtype=F64), id="0d-tensors"),
    pytest.param(torch.tensor(3), torch.tensor(4), id="0d-int-tensors"),
    pytest.param(np.float64(1.25), np.array(4.0), id="numpy-scalar-and-0d-array"),
    pytest.param(torch.tensor(1 + 2j), torch.tensor(3 - 1j), id="0d-complex"),
]


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("x", "k"), ZERO_D)
def test_zero_d_operands_multiply(x, k, mode, method):
    out = trueconv.convolve(x, k, mode, method=method)
    assert out.shape == ()
    assert out.dtype == torch.result_type(torch.as_tensor(x), torch.as_tensor(k))
    expected = scipy.signal.convolve(np.asarray(to_numpy(torch.as_tensor(x))), k, mode)
    assert np.ndim(expected) == 0
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-6)

    corr = trueconv.correlate(x, k, mode, method=method)
    expected = scipy.signal.correlate(np.asarray(to_numpy(torch.as_tensor(x))), k, mode)
    np.testing.assert_allclose(to_numpy(corr), expected, rtol=1e-6)


def test_zero_d_kernel_scales_every_sample():
    """A 0-d kernel has no dims, so nothing is convolved: a broadcast product."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    out = trueconv.convolve(x, 3.0)
    np.testing.assert_array_equal(to_numpy(out), 3 * to_numpy(x))


# --------------------------------------------------------------------------------------------
# size-1 axes
# --------------------------------------------------------------------------------------------

SIZE_ONE = [
    ((1,), (1,)),
    ((1,), (4,)),
    ((5,), (1,)),
    ((1, 1), (2, 3)),
    ((5, 1, 4), (2, 1, 3)),
    ((1, 6), (1, 1)),
    ((3, 1, 2), (1, 3, 1)),
]


def _dominant(x_shape, k_shape):
    pairs = list(zip(x_shape, k_shape))
    return all(a >= b for a, b in pairs) or all(b >= a for a, b in pairs)


SIZE_ONE_CASES = [
    pytest.param(xs, ks, mode, id=f"{xs}x{ks}-{mode}")
    for xs, ks in SIZE_ONE
    for mode in MODES
    if mode != "valid" or _dominant(xs, ks)  # mixed dominance in 'valid': see test_errors.py
]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize(("x_shape", "k_shape", "mode"), SIZE_ONE_CASES)
def test_size_one_axes(x_shape, k_shape, mode, method, boundary):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(x_shape, generator=g, dtype=F64)
    k = torch.randn(k_shape, generator=g, dtype=F64)
    out = trueconv.convolve(x, k, mode, method=method, boundary=boundary)
    assert_close(out, reference(x, k, mode, boundary))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_size_one_batch_dims(method):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 1, 7, generator=g, dtype=F64)
    k = torch.randn(1, 3, generator=g, dtype=F64)
    out = trueconv.convolve(x, k, "same", dims=-1, method=method)
    assert out.shape == (1, 1, 7)
    assert_close(out[0, 0], reference(x[0, 0], k[0], "same"))


# --------------------------------------------------------------------------------------------
# empty operands: empty results, like scipy.signal.fftconvolve, with the shape rule
# --------------------------------------------------------------------------------------------

EMPTY_1D = [
    pytest.param([], [], id="both-empty"),
    pytest.param([5, 6], [], id="empty-kernel"),
    pytest.param([], [7], id="empty-input"),
]


@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("x", "k"), EMPTY_1D)
def test_empty_1d_like_scipy(x, k, mode, method, boundary, fname):
    out = getattr(trueconv, fname)(x, k, mode, method=method, boundary=boundary)
    ref = scipy.signal.fftconvolve(x, k, mode)
    assert isinstance(out, torch.Tensor)
    assert out.numel() == ref.size == 0
    assert out.shape == (0,)
    assert out.dtype == torch.result_type(torch.as_tensor(x), torch.as_tensor(k))


def _rule_shape(x_shape, k_shape, mode):
    out = []
    for n, k in zip(x_shape, k_shape):
        if n == 0 or k == 0:
            out.append(0)
        else:
            out.append({"full": n + k - 1, "same": n, "valid": abs(n - k) + 1}[mode])
    return tuple(out)


EMPTY_ND = [
    pytest.param((3, 0), (2, 2), id="3.0x2.2"),
    pytest.param((3, 4), (0, 2), id="3.4x0.2"),
    pytest.param((0, 4), (2, 5), id="0.4x2.5"),
    pytest.param((2, 0, 3), (0, 1, 2), id="2.0.3x0.1.2"),
    pytest.param((0, 0), (0, 0), id="0.0x0.0"),
]


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("x_shape", "k_shape"), EMPTY_ND)
@pytest.mark.parametrize("dtype", [F64, torch.int64, torch.complex64])
def test_empty_nd_shape_rule(x_shape, k_shape, mode, method, dtype):
    """A zero-length convolved dim in either operand gives a zero-length output dim; the other
    dims follow the mode's formula."""
    x, k = torch.ones(x_shape, dtype=dtype), torch.ones(k_shape, dtype=dtype)
    out = trueconv.convolve(x, k, mode, method=method)
    assert out.shape == _rule_shape(x_shape, k_shape, mode)
    assert out.dtype == dtype
    assert scipy.signal.fftconvolve(to_numpy(x), to_numpy(k), mode).size == 0


@pytest.mark.parametrize("method", ALL_METHODS)
def test_empty_batch_dims(method):
    x = torch.ones(0, 5, dtype=F64)
    assert trueconv.convolve(x, torch.ones(3, dtype=F64), method=method).shape == (0, 7)
    k = torch.ones(0, 1, 3, dtype=F64)  # empty kernel batch, broadcast against a batch of 2
    out = trueconv.convolve(torch.ones(2, 5, dtype=F64), k, "same", dims=-1, method=method)
    assert out.shape == (0, 2, 5)


def test_choose_method_on_empty_operands():
    assert trueconv.choose_method([], []) in REGISTRY
    assert trueconv.choose_method(torch.ones(3, 0), torch.ones(2, 2)) in REGISTRY


@pytest.mark.parametrize("which", ["input", "kernel"])
def test_empty_operand_that_requires_grad(which):
    """As every torch op: an empty result of operands that require grad is part of the graph,
    and backward gives zero-size (or zero) gradients instead of failing."""
    for method in ALL_METHODS:
        x = torch.zeros(0 if which == "input" else 4, dtype=F64, requires_grad=True)
        k = torch.zeros(0 if which == "kernel" else 3, dtype=F64, requires_grad=True)
        out = trueconv.convolve(x, k, method=method)
        assert out.shape == (0,)
        assert out.requires_grad, f"method={method!r}: the empty result left the graph"
        out.sum().backward()
        assert x.grad is not None
        assert x.grad.shape == x.shape
        assert not x.grad.any()
        assert k.grad is not None
        assert k.grad.shape == k.shape
        assert not k.grad.any()


# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


@pytest.mark.parametrize("boundary", ["fill", "reflect"])
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("device", DEVICES)
def test_output_on_the_inputs_device(device, method, boundary):
    g = torch.Generator().manual_seed(5)
    x_cpu = torch.randn(2, 10, generator=g, dtype=F64)
    k_cpu = torch.randn(3, generator=g, dtype=F64)
    x, k = x_cpu.to(device), k_cpu.to(device)
    out = trueconv.convolve(x, k, "same", method=method, boundary=boundary)
    assert out.device == x.device
    assert_close(out.cpu(), per_item_reference(x_cpu, k_cpu, "same", boundary))
    # a list or numpy kernel joins the input on its device
    out = trueconv.convolve(x, to_numpy(k_cpu).tolist(), "same", method=method)
    assert out.device == x.device
    out = trueconv.convolve(to_numpy(x_cpu), k, "same", method=method)
    assert out.device == k.device


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_meta_device_gives_meta_output_of_the_right_shape(method, mode):
    x, k = torch.empty(2, 9, device="meta"), torch.empty(4, device="meta")
    out = trueconv.convolve(x, k, mode, method=method)
    assert out.device.type == "meta"
    assert out.shape == (2, {"full": 12, "same": 9, "valid": 6}[mode])


# --------------------------------------------------------------------------------------------
# memory layouts: non-contiguous, expanded (stride 0), channels-last, lazy conj
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_non_contiguous_operands(method, boundary):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(9, 4, generator=g, dtype=F64).t()  # (4, 9), transposed
    k = torch.randn(3, 10, generator=g, dtype=F64)[:, ::3]  # (3, 4), strided
    assert not x.is_contiguous()
    assert not k.is_contiguous()
    out = trueconv.convolve(x, k, "same", method=method, boundary=boundary)
    assert_close(out, reference(x.contiguous(), k.contiguous(), "same", boundary))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_expanded_operands(method):
    g = torch.Generator().manual_seed(7)
    row = torch.randn(8, generator=g, dtype=F64)
    x = row.expand(3, 8)  # stride 0 along the batch
    k = torch.randn(1, 3, generator=g, dtype=F64).expand(3, 3)  # per-signal kernels, stride 0
    assert x.stride(0) == 0
    assert k.stride(0) == 0
    out = trueconv.convolve(x, k, "full", dims=-1, method=method, boundary="wrap")
    ref = reference(row, k[0], "full", "wrap")
    assert_close(out, np.broadcast_to(ref, (3, *ref.shape)))
    # stride 0 along the convolved dim itself
    flat = torch.tensor(2.0, dtype=F64).expand(6)
    out = trueconv.convolve(flat, k[0], "same", method=method, boundary="symmetric")
    assert_close(out, reference(flat.contiguous(), k[0], "same", "symmetric"))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_channels_last(method):
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 6, 5, generator=g, dtype=F64).to(memory_format=torch.channels_last)
    k = torch.randn(3, 2, generator=g, dtype=F64)
    assert not x.is_contiguous()
    out = trueconv.convolve(x, k, "same", method=method, boundary="reflect")
    assert_close(out, per_item_reference(x, k, "same", "reflect"))

    # per-channel kernels over the spatial dims of a channels-last tensor
    kc = torch.randn(1, 3, 2, 2, generator=g, dtype=F64).to(memory_format=torch.channels_last)
    out = trueconv.convolve(x, kc, "full", dims=(2, 3), method=method)
    ref = np.stack([np.stack([reference(x[b, c], kc[0, c]) for c in range(3)]) for b in range(2)])
    assert_close(out, ref)

    x3 = torch.randn(1, 2, 4, 3, 5, generator=g, dtype=F64)
    x3 = x3.to(memory_format=torch.channels_last_3d)
    k3 = torch.randn(2, 2, 3, generator=g, dtype=F64)
    out = trueconv.convolve(x3, k3, "valid", method=method)
    assert_close(out, per_item_reference(x3, k3, "valid"))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_lazy_conjugate_and_negative_views(method):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(7, generator=g, dtype=torch.complex128)
    k = torch.randn(3, generator=g, dtype=torch.complex128)
    xc, kc = x.conj(), k.conj()  # conj bit set, no copy
    assert xc.is_conj()
    assert kc.is_conj()
    out = trueconv.convolve(xc, kc, "same", method=method)
    ref = reference(np.conj(to_numpy(x)), np.conj(to_numpy(k)), "same")
    assert_close(out, ref, torch.complex128)
    out = trueconv.correlate(x, kc, "full", method=method)  # conj of a conj view: k itself
    ref = scipy.signal.convolve(to_numpy(x), to_numpy(k)[::-1], method="direct")
    assert_close(out, ref, torch.complex128)
    assert xc.is_conj()
    assert kc.is_conj()


# --------------------------------------------------------------------------------------------
# operands that require grad
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", ["fill", "symmetric"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_operands_that_require_grad(method, boundary):
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, 8, generator=g, dtype=F64, requires_grad=True)
    k = np.array([1.0, -2.0, 0.5])  # a numpy kernel with a tensor input that requires grad
    x_before = x.detach().clone()
    out = trueconv.convolve(x, k, "same", method=method, boundary=boundary)
    assert out.requires_grad
    assert out.grad_fn is not None
    assert_close(out.detach(), per_item_reference(x_before, k, "same", boundary))
    out.sum().backward()
    assert x.grad is not None
    assert x.grad.shape == x.shape
    assert torch.equal(x.detach(), x_before)

    kt = torch.tensor(k, requires_grad=True)
    out = trueconv.correlate(x.detach(), kt, "valid", method=method)
    assert out.requires_grad
    out.sum().backward()
    assert kt.grad is not None
    assert kt.grad.shape == kt.shape

    with torch.no_grad():
        assert not trueconv.convolve(x, kt, method=method).requires_grad


@pytest.mark.parametrize("method", ALL_METHODS)
def test_inference_mode(method):
    with torch.inference_mode():
        x = torch.arange(6.0, dtype=F64)
        out = trueconv.convolve(x, torch.tensor([1.0, 1.0], dtype=F64), boundary="replicate")
    assert_close(out, reference(np.arange(6.0), [1.0, 1.0], "full", "replicate"))


# --------------------------------------------------------------------------------------------
# the output dtype rule
# --------------------------------------------------------------------------------------------

DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
]


def _is_exact(dtype):
    return not (dtype.is_floating_point or dtype.is_complex)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("x_dtype", DTYPES, ids=str)
def test_output_dtype_is_result_type(x_dtype, method):
    """Every pair of supported dtypes: the result has ``torch.result_type(input, kernel)``,
    integers and bools are exact, floats are within the result dtype's tolerance."""
    x_vals = np.array([[1, 0, 2, 1, 1], [0, 1, 1, 2, 0]])
    k_vals = np.array([1, 1, 0])
    for k_dtype in DTYPES:
        x = torch.as_tensor(x_vals).to(x_dtype)
        k = torch.as_tensor(k_vals).to(k_dtype)
        dtype = torch.result_type(x, k)
        out = trueconv.convolve(x, k, "same", method=method)
        assert out.dtype == dtype, (x_dtype, k_dtype)
        c128 = torch.complex128
        ref = per_item_reference(to_numpy(x.to(c128)), to_numpy(k.to(c128)), "same")
        if dtype == torch.bool:
            np.testing.assert_array_equal(to_numpy(out), ref != 0)
        elif _is_exact(dtype):
            np.testing.assert_array_equal(to_numpy(out), ref.real.astype(np.int64))
        else:
            wide = torch.complex128 if dtype.is_complex else F64
            assert rel_err(out.to(wide), ref) <= REL_TOL[dtype], (x_dtype, k_dtype)


@pytest.mark.parametrize(
    ("x", "k", "expected"),
    [
        pytest.param([1, 2], [1, 1], torch.int64, id="int-lists"),
        pytest.param([1.0, 2.0], [1, 1], torch.float32, id="float-list"),
        pytest.param(np.array([1.0, 2.0]), torch.ones(2), torch.float64, id="numpy-f64+f32"),
        pytest.param(torch.ones(3, dtype=torch.int8), 2, torch.int8, id="int8+python-int"),
        pytest.param(torch.ones(3, dtype=torch.int8), 2.0, torch.float32, id="int8+python-float"),
        pytest.param(torch.ones(3, dtype=torch.float16), [1.0, 1.0], torch.float32, id="f16+list"),
        pytest.param(torch.ones(3), [1j, 1], torch.complex64, id="f32+complex-list"),
        pytest.param(np.ones(3, dtype=np.float32), [1.0], torch.float32, id="numpy-f32+list"),
    ],
)
def test_output_dtype_of_mixed_kinds(x, k, expected):
    out = trueconv.convolve(x, k)
    assert out.dtype == torch.result_type(torch.as_tensor(x), torch.as_tensor(k)) == expected
    xa = to_numpy(torch.as_tensor(x).to(torch.complex128))
    ka = to_numpy(torch.as_tensor(k).to(torch.complex128))
    # a 0-d kernel convolves no dim: a product (scipy wants equal ndims, so multiply here)
    ref = xa * ka if ka.ndim == 0 else scipy.signal.convolve(xa, ka, method="direct")
    tol = REL_TOL.get(expected, 0.0)
    wide = out.to(torch.complex128)
    assert rel_err(wide, ref) <= tol
    assert math.prod(out.shape) == ref.size
