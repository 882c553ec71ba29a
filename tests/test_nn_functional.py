"""The NN API's functions against ``torch.nn.functional`` with an explicitly flipped weight.

Oracle: ``F.convNd(x, w.flip(spatial), ...)`` / ``F.conv_transposeNd(x, w.flip(spatial), ...)``
(and ``numpy.pad`` / ``scipy.signal`` where torch has no counterpart), forward and gradients,
over grids of stride x padding x dilation x groups x dims x dtype x method; the adjoint
property; gradcheck/gradgradcheck; every bad argument rejected before compute.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import REL_TOL, rel_err
from trueconv.core import cost as _cost
from trueconv.nn import _fft, _plan
from trueconv.nn import functional as tcF
from trueconv.nn._spec import normalize_conv

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TC = {1: trueconv.conv1d, 2: trueconv.conv2d, 3: trueconv.conv3d}
TC_T = {1: trueconv.conv_transpose1d, 2: trueconv.conv_transpose2d, 3: trueconv.conv_transpose3d}
METHODS = ("direct", "fft")
SIZES = {1: (11,), 2: (9, 8), 3: (6, 5, 7)}
KERNELS = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}
#: the oracle's own warning: torch's 'same' with an even kernel copies the input (we do not)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using padding='same' with even kernel lengths:UserWarning"
)
NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap", "symmetric": "symmetric"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny problems: one intra-op thread avoids oversubscription under ``-n 2``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spatial(nd: int) -> list[int]:
    return list(range(2, 2 + nd))


def flipped(w: torch.Tensor, nd: int) -> torch.Tensor:
    return w.flip(spatial(nd))


def randn(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def check_forward_and_grads(ours, ref, inputs, tol):
    """Forward values, and the gradients of a random cotangent w.r.t. every input."""
    out, expected = ours(*inputs), ref(*inputs)
    assert out.shape == expected.shape
    assert out.dtype == expected.dtype
    assert rel_err(out, expected) <= tol
    cot = randn(*expected.shape, dtype=expected.dtype, seed=7)
    g_out = torch.autograd.grad(out, inputs, cot)
    g_ref = torch.autograd.grad(expected, inputs, cot)
    for a, b in zip(g_out, g_ref):
        assert rel_err(a, b) <= tol


def leaf(t):
    return t.detach().requires_grad_()


# -- the grid: forward and both gradients ---------------------------------------------------

CONV_GRID = [
    (nd, s, p, d, g, m)
    for nd, s, p, d, g, m in itertools.product(
        (1, 2, 3), (1, 2), (0, 1, "valid", "same", "full"), (1, 2), (1, 2), METHODS
    )
    if not (p == "same" and s > 1)
]


@pytest.mark.parametrize(("nd", "stride", "padding", "dilation", "groups", "method"), CONV_GRID)
def test_conv_matches_torch(nd, stride, padding, dilation, groups, method):
    x = leaf(randn(2, 4, *SIZES[nd]))
    w = leaf(randn(6, 4 // groups, *KERNELS[nd], seed=1))
    b = leaf(randn(6, seed=2))
    torch_padding = padding
    if padding == "full":  # torch has no 'full': it is dilation * (k - 1) on both sides
        torch_padding = tuple(dilation * (k - 1) for k in KERNELS[nd])

    def ours(x, w, b):
        return TC[nd](x, w, b, stride, padding, dilation, groups, method=method)

    def ref(x, w, b):
        return CONV[nd](x, flipped(w, nd), b, stride, torch_padding, dilation, groups)

    tol = 1e-12 if method == "direct" else 1e-11
    check_forward_and_grads(ours, ref, (x, w, b), tol)


CONV_T_GRID = [
    (nd, s, p, op, d, g, m)
    for nd, s, p, op, d, g, m in itertools.product(
        (1, 2, 3), (1, 2, 3), (0, 1), (0, 1), (1, 2), (1, 2), METHODS
    )
    if op < max(s, d)
]


@pytest.mark.parametrize(
    ("nd", "stride", "padding", "output_padding", "dilation", "groups", "method"), CONV_T_GRID
)
def test_conv_transpose_matches_torch(
    nd, stride, padding, output_padding, dilation, groups, method
):
    x = leaf(randn(2, 4, *SIZES[nd]))
    w = leaf(randn(4, 6 // groups, *KERNELS[nd], seed=1))
    b = leaf(randn(6, seed=2))
    args = (stride, padding, output_padding, groups, dilation)

    def ours(x, w, b):
        return TC_T[nd](x, w, b, *args, method=method)

    def ref(x, w, b):
        return CONV_T[nd](x, flipped(w, nd), b, *args)

    tol = 1e-12 if method == "direct" else 1e-11
    check_forward_and_grads(ours, ref, (x, w, b), tol)


def test_conv_transpose_crops_past_the_full_output():
    """``output_padding > padding``: the extra samples lie beyond the full convolution."""
    x, w = randn(1, 2, 1), randn(2, 3, 1, seed=1)
    for method in METHODS:
        out = trueconv.conv_transpose1d(x, w, stride=4, padding=1, output_padding=3, method=method)
        ref = F.conv_transpose1d(x, w, stride=4, padding=1, output_padding=3)
        assert out.shape == ref.shape == (1, 3, 2)
        assert rel_err(out, ref) <= 1e-12
    xg = leaf(x)
    out = trueconv.conv_transpose1d(xg, w, stride=4, padding=1, output_padding=3, method="fft")
    (grad,) = torch.autograd.grad(out.sum(), xg)  # still part of the graph
    assert torch.equal(grad, torch.zeros_like(x))


# -- dtypes --------------------------------------------------------------------------------

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128)
INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _operands(dtype, transposed=False, seed=0):
    wshape = (3, 4, 3, 2) if transposed else (4, 3, 3, 2)
    if dtype.is_floating_point or dtype.is_complex:
        x = randn(2, 3, 7, 6, seed=seed).to(dtype)
        w = randn(*wshape, seed=seed + 1).to(dtype)
        b = randn(4, seed=seed + 2).to(dtype)
    else:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 6, (2, 3, 7, 6), generator=g).to(dtype)
        w = torch.randint(0, 4, wshape, generator=g).to(dtype)
        b = torch.randint(0, 3, (4,), generator=g).to(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("transposed", [False, True])
def test_float_dtypes(dtype, method, transposed):
    x, w, b = _operands(dtype, transposed)
    wide = torch.complex128 if dtype.is_complex else torch.float64
    if transposed:
        out = trueconv.conv_transpose2d(x, w, b, stride=2, padding=1, method=method)
        ref = F.conv_transpose2d(x.to(wide), flipped(w, 2).to(wide), b.to(wide), 2, 1)
    else:
        out = trueconv.conv2d(x, w, b, stride=2, padding=(1, 0), dilation=(1, 2), method=method)
        ref = F.conv2d(x.to(wide), flipped(w, 2).to(wide), b.to(wide), 2, (1, 0), (1, 2))
    assert out.dtype == dtype
    assert rel_err(out.to(wide), ref) <= REL_TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.complex64])
def test_direct_is_bit_identical_to_torch(dtype):
    """method='direct' is F.convNd on the flipped weight: the very same numbers."""
    x, w, b = _operands(dtype)
    out = trueconv.conv2d(x, w, b, padding="same", method="direct")
    assert torch.equal(out, F.conv2d(x, flipped(w, 2), b, padding="same"))
    xt, wt, _ = _operands(dtype, transposed=True)
    out = trueconv.conv_transpose2d(xt, wt, stride=2, method="direct")
    assert torch.equal(out, F.conv_transpose2d(xt, flipped(wt, 2), stride=2))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("method", [*METHODS, "auto"])
def test_integers_are_exact(dtype, method):
    """Integers: exact on CPU, narrower ones wrapping like torch's own integer conv."""
    x, w, b = _operands(dtype)
    out = trueconv.conv2d(x, w, b, stride=(1, 2), padding=1, method=method)
    ref = F.conv2d(x.long(), flipped(w, 2).long(), b.long(), (1, 2), 1).to(dtype)
    assert out.dtype == dtype
    assert torch.equal(out, ref)
    xt, wt, _ = _operands(dtype, transposed=True)
    out = trueconv.conv_transpose2d(xt, wt, b, stride=2, method=method)
    ref = F.conv_transpose2d(xt.long(), flipped(wt, 2).long(), b.long(), 2).to(dtype)
    assert out.dtype == dtype
    assert torch.equal(out, ref)


def test_int8_wraps_like_torch():
    x = torch.full((1, 1, 4), 100, dtype=torch.int8)
    w = torch.full((1, 1, 2), 2, dtype=torch.int8)
    for method in (*METHODS, "auto"):
        assert torch.equal(trueconv.conv1d(x, w, method=method), F.conv1d(x, w))


# -- padding: torch's modes, the 'symmetric' addition, 'full' and asymmetric pairs ------------


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("method", METHODS)
def test_padding_mode_matches_torch_module(padding_mode, method):
    """torch applies padding_mode in the module (F.pad, then conv): so must we, as a keyword."""
    torch.manual_seed(0)
    ref_module = torch.nn.Conv2d(3, 4, (3, 2), padding=(2, 1), padding_mode=padding_mode).double()
    x = leaf(randn(2, 3, 7, 6))
    w = leaf(flipped(ref_module.weight.detach(), 2))
    b = leaf(ref_module.bias.detach())

    def ours(x, w, b):
        return trueconv.conv2d(x, w, b, padding=(2, 1), padding_mode=padding_mode, method=method)

    def ref(x, w, b):
        return ref_module._conv_forward(x, flipped(w, 2), b)

    check_forward_and_grads(ours, ref, (x, w, b), 1e-11)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_same_with_padding_mode_matches_torch_module(padding_mode, nd):
    """'same' with an even kernel: torch puts the odd sample after, for every padding_mode."""
    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[nd]
    ref_module = cls(2, 3, KERNELS[nd], padding="same", padding_mode=padding_mode).double()
    x = randn(1, 2, *SIZES[nd])
    w = flipped(ref_module.weight.detach(), nd)
    for method in METHODS:
        out = TC[nd](
            x, w, ref_module.bias, padding="same", padding_mode=padding_mode, method=method
        )
        assert rel_err(out, ref_module(x)) <= 1e-12


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular", "symmetric"])
@pytest.mark.parametrize("method", METHODS)
def test_padding_mode_matches_numpy_pad_any_size(padding_mode, method):
    """np.pad semantics, including pads longer than the input (torch refuses those)."""
    x, w = randn(2, 3, 4, 5), randn(4, 3, 2, 3, seed=1)
    pads = ((5, 2), (1, 7))
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), *pads), mode=NP_PAD[padding_mode])
    ref = F.conv2d(torch.from_numpy(xp), flipped(w, 2))
    out = trueconv.conv2d(x, w, padding=pads, padding_mode=padding_mode, method=method)
    assert rel_err(out, ref) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_symmetric_padding_gradients(method):
    x, w = leaf(randn(1, 2, 5, 4)), leaf(randn(3, 2, 3, 3, seed=1))
    pads = ((1, 3), (2, 0))

    def ours(x, w):
        return trueconv.conv2d(x, w, padding=pads, padding_mode="symmetric", method=method)

    def ref(x, w):
        xp = x[:, :, [0, 0, 1, 2, 3, 4, 4, 3, 2]][:, :, :, [1, 0, 0, 1, 2, 3]]
        return F.conv2d(xp, flipped(w, 2))

    check_forward_and_grads(ours, ref, (x, w), 1e-11)


@pytest.mark.parametrize("method", METHODS)
def test_full_padding_is_scipy_full_convolution(method):
    """padding='full' summed over input channels is scipy.signal.convolve(mode='full')."""
    x, w = randn(2, 3, 6, 5), randn(4, 3, 3, 4, seed=1)
    out = trueconv.conv2d(x, w, padding="full", method=method)
    ref = np.zeros(tuple(out.shape))
    for n, o, c in itertools.product(range(2), range(4), range(3)):
        ref[n, o] += scipy.signal.convolve(x[n, c].numpy(), w[o, c].numpy(), mode="full")
    assert rel_err(out, ref) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_asymmetric_padding(method):
    x, w = leaf(randn(2, 2, 5, 6, 4)), leaf(randn(2, 1, 2, 3, 2, seed=1))
    pads = ((0, 2), (3, 1), (1, 0))

    def ours(x, w):
        return trueconv.conv3d(x, w, None, 2, pads, (2, 1, 1), 2, method=method)

    def ref(x, w):
        return F.conv3d(F.pad(x, (1, 0, 3, 1, 0, 2)), flipped(w, 3), None, 2, 0, (2, 1, 1), 2)

    check_forward_and_grads(ours, ref, (x, w), 1e-11)


def test_padding_forms_are_equivalent():
    """An int, a 1-tuple, per-dim ints and symmetric pairs all mean the same."""
    x, w = randn(1, 2, 6, 7), randn(3, 2, 3, 3, seed=1)
    ref = trueconv.conv2d(x, w, padding=1)
    for padding in [(1,), (1, 1), [1, 1], ((1, 1), (1, 1)), ((1, 1),), (1, (1, 1))]:
        assert torch.equal(trueconv.conv2d(x, w, padding=padding), ref)
    assert torch.equal(trueconv.conv2d(x, w, padding="valid"), trueconv.conv2d(x, w, padding=0))


def test_same_alignment_differs_from_signal_same_for_even_kernels():
    """NN 'same' (torch/TF) starts at k // 2 of 'full'; signal 'same' (scipy) at (k - 1) // 2."""
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    for k in (2, 3, 4, 5):
        w = torch.arange(1.0, k + 1)
        full = trueconv.convolve(x, w, "full")
        nn_same = trueconv.conv1d(x[None, None], w[None, None], padding="same")[0, 0]
        assert torch.equal(nn_same, full[k // 2 : k // 2 + 5])
        assert torch.equal(trueconv.convolve(x, w, "same"), full[(k - 1) // 2 : (k - 1) // 2 + 5])


# -- layouts: unbatched, channels_last, empty batch ------------------------------------------


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_unbatched_input(nd, method):
    x, w, b = randn(4, *SIZES[nd]), randn(2, 4, *KERNELS[nd], seed=1), randn(2, seed=2)
    out = TC[nd](x, w, b, padding="same", method=method)
    assert rel_err(out, CONV[nd](x, flipped(w, nd), b, padding="same")) <= 1e-12
    wt = randn(4, 2, *KERNELS[nd], seed=3)
    out = TC_T[nd](x, wt, b, stride=2, method=method)
    assert rel_err(out, CONV_T[nd](x, flipped(wt, nd), b, stride=2)) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_channels_last(method):
    """Values as torch's; a channels_last input gives a channels_last output, as F.conv2d."""
    x = randn(2, 3, 7, 6).contiguous(memory_format=torch.channels_last)
    w = randn(4, 3, 3, 2, seed=1)
    out = trueconv.conv2d(x, w, padding=1, method=method)
    ref = F.conv2d(x, flipped(w, 2), padding=1)
    assert rel_err(out, ref) <= 1e-12
    assert ref.is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    x3 = randn(2, 3, 6, 5, 7).contiguous(memory_format=torch.channels_last_3d)
    w3 = randn(4, 3, 2, 3, 2, seed=1)
    out = trueconv.conv3d(x3, w3, padding=1, method=method)
    assert rel_err(out, F.conv3d(x3, flipped(w3, 3), padding=1)) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_empty_batch(method):
    x, w = torch.zeros(0, 3, 6, 6), randn(4, 3, 3, 3).float()
    out = trueconv.conv2d(x, w, padding="same", method=method)
    assert out.shape == (0, 4, 6, 6)


def test_inputs_are_not_modified():
    x, w, b = randn(2, 3, 7, 6), randn(4, 3, 3, 2, seed=1), randn(4, seed=2)
    copies = [t.clone() for t in (x, w, b)]
    for method in METHODS:
        trueconv.conv2d(x, w, b, padding=2, padding_mode="reflect", method=method)
        trueconv.conv_transpose2d(x, w.transpose(0, 1), b, stride=2, method=method)
    for t, c in zip((x, w, b), copies):
        assert torch.equal(t, c)


# -- properties: the adjoint, gradcheck ------------------------------------------------------


@st.composite
def conv_problems(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    ks = [draw(st.integers(1, 4)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 2)) for _ in range(nd)]
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    padding = [draw(st.integers(0, 2)) for _ in range(nd)]
    sizes = []
    for k, d, p in zip(ks, dilation, padding):
        span = d * (k - 1) + 1
        sizes.append(draw(st.integers(max(1, span - 2 * p), span + 6)))
    method = draw(st.sampled_from(METHODS))
    batch = draw(st.integers(1, 2))
    return nd, batch, c_in, c_out, groups, ks, dilation, stride, padding, sizes, method


@given(problem=conv_problems(), seed=st.integers(0, 2**16))
def test_conv_transpose_is_the_adjoint_of_conv(problem, seed):
    """<conv(x, w), y> = <x, conv_transpose(y, w)>, with output_padding restoring x's size."""
    nd, batch, c_in, c_out, groups, ks, dilation, stride, padding, sizes, method = problem
    x = randn(batch, c_in, *sizes, seed=seed)
    w = randn(c_out, c_in // groups, *ks, seed=seed + 1)
    cx = TC[nd](x, w, None, stride, padding, dilation, groups, method=method)
    y = randn(*cx.shape, seed=seed + 2)
    # the sizes x could have had: output_padding picks the right one
    out_pad = [
        (n + 2 * p - d * (k - 1) - 1) % s
        for n, p, d, k, s in zip(sizes, padding, dilation, ks, stride)
    ]
    # the very same weight tensor: conv's (out, in / groups, ...) is the transpose's
    # (in, out / groups, ...)
    ty = TC_T[nd](y, w, None, stride, padding, out_pad, groups, dilation, method=method)
    assert ty.shape == x.shape
    lhs, rhs = (cx * y).sum(), (x * ty).sum()
    assert abs(lhs - rhs) <= 1e-10 * (cx.norm() * y.norm() + x.norm() * ty.norm() + 1)
    # ... which makes it the gradient of conv with respect to its input
    xg = leaf(x)
    (grad,) = torch.autograd.grad(TC[nd](xg, w, None, stride, padding, dilation, groups), xg, y)
    assert rel_err(ty, grad) <= 1e-11


@given(problem=conv_problems(), seed=st.integers(0, 2**16))
def test_fft_equals_direct_and_torch(problem, seed):
    nd, batch, c_in, c_out, groups, ks, dilation, stride, padding, sizes, _ = problem
    x = randn(batch, c_in, *sizes, seed=seed)
    w = randn(c_out, c_in // groups, *ks, seed=seed + 1)
    b = randn(c_out, seed=seed + 2)
    args = (b, stride, padding, dilation, groups)
    ref = CONV[nd](x, flipped(w, nd), *args)
    assert rel_err(TC[nd](x, w, *args, method="direct"), ref) <= 1e-12
    assert rel_err(TC[nd](x, w, *args, method="fft"), ref) <= 1e-11


GRADCHECK_CASES = [
    # (transposed, nd, kwargs)
    (False, 1, {"stride": 2, "padding": "full", "dilation": 2}),
    (False, 2, {"stride": (2, 1), "padding": ((1, 0), (2, 1)), "padding_mode": "symmetric"}),
    (False, 2, {"padding": "same", "padding_mode": "reflect", "groups": 2}),
    (False, 3, {"padding": 1, "padding_mode": "circular", "dilation": (1, 2, 1)}),
    (True, 1, {"stride": 3, "padding": 1, "output_padding": 2, "dilation": 2}),
    (True, 2, {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
    (True, 3, {"stride": (1, 2, 1), "dilation": (2, 1, 1)}),
]


@pytest.mark.parametrize(("transposed", "nd", "kwargs"), GRADCHECK_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_and_gradgradcheck(transposed, nd, kwargs, method):
    groups = kwargs.get("groups", 1)
    x = leaf(randn(1, 2, *[4 if nd < 3 else 3] * nd))
    if transposed:
        w = leaf(randn(2, 2 // groups, *[2] * nd, seed=1))
        fn = TC_T[nd]
    else:
        w = leaf(randn(2, 2 // groups, *[2] * nd, seed=1))
        fn = TC[nd]
    b = leaf(randn(2, seed=2))

    def f(x, w, b):
        return fn(x, w, b, method=method, **kwargs)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


# -- methods: what ran, tiling, the provisional 'auto' rule ----------------------------------


def _forbid(monkeypatch, what):
    def reached(*args, **kwargs):
        raise AssertionError(f"{what} ran")

    if what == "fft":
        monkeypatch.setattr(_fft, "conv", reached)
        monkeypatch.setattr(_fft, "conv_transpose", reached)
    else:
        for table in (tcF._CONV, tcF._CONV_T):
            for nd in table:
                monkeypatch.setitem(table, nd, reached)


@pytest.mark.parametrize("method", METHODS)
def test_the_method_asked_for_runs(monkeypatch, method):
    x, w = randn(1, 2, 8, 8), randn(3, 2, 3, 3, seed=1)
    ref = F.conv2d(x, flipped(w, 2), padding=1)
    wt = randn(2, 3, 3, 3, seed=2)
    ref_t = F.conv_transpose2d(x, flipped(wt, 2), stride=2)
    _forbid(monkeypatch, "direct" if method == "fft" else "fft")
    assert rel_err(trueconv.conv2d(x, w, padding=1, method=method), ref) <= 1e-12
    out_t = trueconv.conv_transpose2d(x, wt, stride=2, method=method)
    assert rel_err(out_t, ref_t) <= 1e-12


def _spec(nd, x_shape, w_shape, dtype=torch.float32, stride=1, padding="same"):
    x = torch.zeros((), dtype=dtype).expand(x_shape)
    w = torch.zeros((), dtype=dtype).expand(w_shape)
    return normalize_conv(f"conv{nd}d", nd, x, w, None, stride, padding, 1, 1, "zeros", "auto")[3]


@pytest.mark.parametrize(
    ("nd", "kernel", "dtype", "stride", "expected"),
    [
        (2, 3, torch.float32, 1, "direct"),
        (2, 17, torch.float32, 1, "fft"),
        (2, 17, torch.float32, 2, "direct"),  # strides shrink only the direct method's work
        (1, 5, torch.float64, 1, "direct"),
        (1, 128, torch.float64, 1, "fft"),
        (3, 9, torch.float32, 1, "fft"),
    ],
)
def test_auto_fallback_rule_where_no_nn_constants_are_fitted(nd, kernel, dtype, stride, expected):
    assert not _cost.has_constants(_plan.VARIANTS, "xpu")
    spec = _spec(nd, (1, 1, *[kernel + 4] * nd), (1, 1, *[kernel] * nd), dtype, stride, 0)
    assert _plan.choose(spec, "xpu") == expected


def test_cpu_has_fitted_nn_constants():
    assert _cost.has_constants(_plan.VARIANTS, "cpu")


@pytest.mark.parametrize(
    ("nd", "x_shape", "w_shape", "dtype", "expected"),
    [
        # many channels, small kernels: F.convNd with the flipped weight
        (2, (16, 32, 128, 128), (64, 32, 3, 3), torch.float32, "direct"),
        (2, (16, 32, 128, 128), (64, 32, 3, 3), torch.float64, "direct"),
        (1, (8, 16, 4096), (16, 16, 5), torch.float32, "direct"),
        # large kernels: the channel-mixing FFT, by orders of magnitude in work
        (2, (8, 3, 512, 512), (16, 3, 31, 31), torch.float32, "fft"),
        (2, (8, 3, 512, 512), (16, 3, 31, 31), torch.float64, "fft"),
        (1, (8, 16, 4096), (16, 16, 511), torch.float32, "fft"),
        (3, (2, 8, 32, 32, 32), (8, 8, 15, 15, 15), torch.float32, "fft"),
        # tiny problems stay direct: the FFT would not save the margin
        (2, (1, 1, 20, 20), (1, 1, 17, 17), torch.float32, "direct"),
    ],
)
def test_auto_cost_model_clear_cases(nd, x_shape, w_shape, dtype, expected):
    spec = _spec(nd, x_shape, w_shape, dtype)
    assert _plan.choose(spec, "cpu") == expected
    predicted = _plan.costs(spec, "cpu")
    assert all(0 < t < 1e3 for t in predicted.values()), predicted


@pytest.mark.parametrize(
    ("nd", "x_shape", "w_shape", "expected"),
    [(2, (4, 16, 64, 64), (16, 16, 21, 21), "fft"), (2, (4, 16, 32, 32), (16, 16, 3, 3), "direct")],
)
def test_auto_runs_the_planned_method(monkeypatch, nd, x_shape, w_shape, expected):
    x, w = randn(*x_shape, dtype=torch.float32), randn(*w_shape, dtype=torch.float32, seed=1)
    assert _plan.choose(_spec(nd, x_shape, w_shape), "cpu") == expected
    ref = F.conv2d(x.double(), flipped(w.double(), 2), padding="same")
    _forbid(monkeypatch, "direct" if expected == "fft" else "fft")
    assert rel_err(TC[nd](x, w, padding="same"), ref) <= 1e-5


def test_auto_keeps_integers_exact(monkeypatch):
    x = torch.randint(-9, 9, (4, 16, 64, 64))
    w = torch.randint(-9, 9, (16, 16, 21, 21))
    _forbid(monkeypatch, "fft")
    out = trueconv.conv2d(x, w, padding="same")
    assert torch.equal(out, F.conv2d(x, w.flip(-2, -1), padding="same"))


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_auto_is_the_rule_in_one_function(monkeypatch, method):
    monkeypatch.setattr(_plan, "choose", lambda spec, device_type="cpu": method)
    _forbid(monkeypatch, "direct" if method == "fft" else "fft")
    x, w = randn(1, 1, 6), randn(1, 1, 3, seed=1)
    assert rel_err(trueconv.conv1d(x, w), F.conv1d(x, w.flip(-1))) <= 1e-12


def test_fft_counts_price_the_layout_that_runs(monkeypatch):
    """The FFT's counts read the same ``layout`` the run uses: tiles counted = tiles run."""
    # 12 × 7 spectrum points (9 + 2 → 12, 7 + 2 → 12 halved): a budget of 700 tiles both ways
    monkeypatch.setattr(_fft, "SPECTRUM_BUDGET", 700)
    seen = []
    real_layout = _fft.layout
    monkeypatch.setattr(_fft, "layout", lambda *a: seen.append(real_layout(*a)) or seen[-1])
    x, w = randn(5, 4, 9, 7), randn(6, 4, 3, 3, seed=1)
    out = trueconv.conv2d(x, w, padding="same", method="fft")
    assert rel_err(out, F.conv2d(x, flipped(w, 2), padding="same")) <= 1e-12
    spec = _spec(2, (5, 4, 9, 7), (6, 4, 3, 3), torch.float64)
    _plan.counts(spec, "fft", "cpu")
    assert len(seen) == 2
    assert seen[0] == seen[1]
    # O = 6 > B = 5: kernel spectra per output-channel tile, outside the batch tiles
    assert seen[0].kernel_outer
    assert (seen[0].b_chunk, seen[0].o_chunk) == (4, 2)  # the budget made tiles both ways
    counted = _plan.counts(spec, "fft", "cpu")
    assert counted.calls == 2 + 3 * (1 + 3 * 2)  # 3 channel tiles, 2 batch tiles each


@pytest.mark.parametrize("budget", [1, 200, 5000])
def test_fft_tiling_over_batch_and_channels(monkeypatch, budget):
    """A small spectrum budget forces tiles over batch and output channels: same result."""
    monkeypatch.setattr(_fft, "SPECTRUM_BUDGET", budget)
    x, w, b = randn(3, 4, 9, 7), randn(6, 2, 3, 3, seed=1), randn(6, seed=2)
    out = trueconv.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2, method="fft")
    assert rel_err(out, F.conv2d(x, flipped(w, 2), b, (2, 1), 1, 1, 2)) <= 1e-12
    wt = randn(4, 3, 3, 3, seed=3)
    out = trueconv.conv_transpose2d(x, wt, None, 2, 1, 1, 2, method="fft")
    assert rel_err(out, F.conv_transpose2d(x, flipped(wt, 2), None, 2, 1, 1, 2)) <= 1e-12
    # more output channels than batch items (kernel spectra per channel tile), and a call
    # that records a graph (tiles concatenated, not written in place): same results
    w8 = randn(8, 4, 3, 3, seed=4)
    for xr in (x, x.clone().requires_grad_(True)):
        out = trueconv.conv2d(xr, w8, None, padding=1, method="fft")
        assert rel_err(out, F.conv2d(x, flipped(w8, 2), None, padding=1)) <= 1e-12


@pytest.mark.parametrize(
    ("fname", "xs", "ws", "kwargs"),
    [
        ("conv1d", (2, 4, 40), (6, 4, 5), {"padding": "same"}),
        ("conv1d", (2, 4, 40), (6, 2, 3), {"padding": 2, "dilation": 3, "groups": 2}),
        ("conv2d", (2, 3, 17, 12), (5, 3, 3, 4), {"padding": 1, "stride": (2, 1)}),
        ("conv2d", (2, 3, 9, 11), (4, 3, 1, 4), {"padding": (0, 2)}),
        ("conv3d", (1, 2, 7, 6, 5), (3, 2, 3, 2, 3), {"padding": "same"}),
        ("conv_transpose2d", (2, 4, 6, 5), (4, 3, 3, 2), {"stride": 2, "output_padding": 1}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_fft_kernel_spectra_from_dft_matrices(monkeypatch, fname, xs, ws, kwargs, dtype):
    """The kernels' spectra by DFT-matrix products of their taps (matrix-product mixing, short
    kernels) against torch's flipped-weight convolution."""
    monkeypatch.setattr(_fft, "SUM_MAX_PRODUCTS", 0)  # the matrix-product mixing
    monkeypatch.setattr(_fft, "KERNEL_DFT_MAX_TAPS", {1: 9, 2: 9, 3: 9})
    used = []
    real_dft = _fft._dft_spectra
    monkeypatch.setattr(_fft, "_dft_spectra", lambda *a: used.append(1) or real_dft(*a))
    x, w = randn(*xs, dtype=dtype), randn(*ws, dtype=dtype, seed=1)
    nd = len(ws) - 2
    out = getattr(trueconv, fname)(x, w, method="fft", **kwargs)
    ref = getattr(F, fname)(x, flipped(w, nd), **kwargs)
    assert used
    assert rel_err(out, ref) <= 1e-12


def test_fft_kernel_with_singleton_dims():
    """1 x k kernels: the length-1 dims are a broadcast product, not a transform."""
    x, w = randn(2, 3, 5, 9), randn(4, 3, 1, 4, seed=1)
    out = trueconv.conv2d(x, w, padding=(0, 2), dilation=2, method="fft")
    assert rel_err(out, F.conv2d(x, flipped(w, 2), padding=(0, 2), dilation=2)) <= 1e-12
    w1 = randn(4, 3, 1, 1, seed=2)
    assert rel_err(trueconv.conv2d(x, w1, method="fft"), F.conv2d(x, w1)) <= 1e-12


@pytest.mark.parametrize("groups", [1, 2])
def test_fft_input_with_singleton_dims(groups):
    """A length-1 input dim under a longer kernel (transposed): the kernel's spectrum dims
    become matrix columns of the channel mixing."""
    x = randn(2, 4, 1, 5, 1)
    wt = randn(4, 3, 3, 2, 4, seed=1)
    out = trueconv.conv_transpose3d(x, wt, groups=groups, method="fft")
    ref = F.conv_transpose3d(x, flipped(wt, 3), groups=groups)
    assert rel_err(out, ref) <= 1e-12


# -- bad input: our own clear errors, before any compute --------------------------------------


@pytest.fixture
def no_compute(monkeypatch):
    """Reaching the planner or a method means validation came too late."""

    def reached(*args, **kwargs):
        raise AssertionError("compute was reached before the argument error was raised")

    monkeypatch.setattr(_plan, "choose", reached)
    monkeypatch.setattr(_fft, "conv", reached)
    monkeypatch.setattr(_fft, "conv_transpose", reached)


X2, W2, W4 = torch.zeros(1, 4, 6, 6), torch.zeros(6, 2, 3, 3), torch.zeros(6, 4, 3, 3)

CONV_ERRORS = [
    (
        {"padding_mode": "reflct"},
        ValueError,
        "conv2d(): padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', "
        "'symmetric'; got 'reflct'.",
    ),
    (
        {"method": "fast"},
        ValueError,
        "conv2d(): method must be one of 'auto', 'direct', 'fft'; got 'fast'.",
    ),
    ({"padding": "sme"}, ValueError, "conv2d(): padding must be one of 'valid', 'same', 'full'"),
    ({"padding": -1}, ValueError, "conv2d(): padding must be non-negative; got -1."),
    ({"padding": ((1, -1), 0)}, ValueError, "conv2d(): padding must be non-negative"),
    ({"padding": (1, 2, 3)}, ValueError, "conv2d(): padding must be one of"),
    ({"padding": ((1, 2, 3), 0)}, ValueError, "conv2d(): padding must be one of"),
    ({"padding": 1.5}, TypeError, "got 1.5."),
    ({"padding": (1, 0.5)}, TypeError, "got (1, 0.5)."),
    ({"stride": 0}, ValueError, "conv2d(): stride must be positive; got 0."),
    ({"stride": (1, -2)}, ValueError, "conv2d(): stride must be positive; got (1, -2)."),
    ({"stride": 1.0}, TypeError, "conv2d(): stride must be an int or a tuple of 2 ints; got 1.0."),
    ({"stride": (1, 1, 1)}, TypeError, "conv2d(): stride must be an int or a tuple of 2 ints"),
    ({"dilation": 0}, ValueError, "conv2d(): dilation must be positive; got 0."),
    ({"groups": 0}, ValueError, "conv2d(): groups must be positive; got 0."),
    ({"groups": 2.0}, TypeError, "conv2d(): groups must be an int; got 2.0."),
    (
        {"groups": 1},
        ValueError,
        "conv2d(): input has 4 channels but weight.shape[1] * groups is 2 * 1 = 2;",
    ),
    ({"groups": 4}, ValueError, "weight.shape[0] (output channels, 6) must be divisible by groups"),
    (
        {"padding": "same", "stride": 2},
        ValueError,
        "conv2d(): padding='same' needs stride 1 (as in torch); got stride=2.",
    ),
    ({"dilation": 3}, ValueError, "conv2d(): the padded input size (6, 6) is smaller than"),
]


@pytest.mark.usefixtures("no_compute")
@pytest.mark.parametrize(("kwargs", "exc", "message"), CONV_ERRORS)
def test_conv_argument_errors(kwargs, exc, message):
    args = {"groups": 2, **kwargs}
    with pytest.raises(exc, match=re.escape(message)):
        trueconv.conv2d(X2, W2, **args)


_BOOL_FOR_INT = [
    ({"stride": 1}, {"stride": True}),
    ({"stride": (1, 1)}, {"stride": (1, True)}),
    ({"padding": 1}, {"padding": True}),
    ({"dilation": 1}, {"dilation": True}),
    ({"groups": 1}, {"groups": True}),
]


@pytest.mark.parametrize(
    ("fn", "good", "bad"),
    [(trueconv.conv2d, g, b) for g, b in _BOOL_FOR_INT]
    + [(trueconv.conv2d, {"padding": ((1, 1), 0)}, {"padding": ((True, 1), 0)})]
    + [(trueconv.conv_transpose2d, g, b) for g, b in _BOOL_FOR_INT],
)
def test_spec_cache_keeps_bools_apart_from_ints(fn, good, bad):
    """The spec cache of repeated calls is keyed on typed options: ``True == 1`` in Python, but
    a call refused on its own stays refused after the int version has run."""
    x, w = torch.randn(1, 2, 6, 6), torch.randn(2, 2, 3, 3)
    fn(x, w, **good)
    with pytest.raises(TypeError, match="must be"):
        fn(x, w, **bad)


def test_repeated_call_reuses_its_spec():
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    first = normalize_conv("conv2d", 2, x, w, None, 1, 1, 1, 1, "zeros", "auto")[3]
    again = normalize_conv(
        "conv2d", 2, torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3), None, 1, 1, 1, 1,
        "zeros", "auto",
    )[3]  # fmt: skip
    assert again is first
    other = normalize_conv(
        "conv2d", 2, torch.randn(1, 2, 7, 6), w, None, 1, 1, 1, 1, "zeros", "auto"
    )[3]
    assert other.output_shape == (1, 3, 7, 6)


@pytest.mark.usefixtures("no_compute")
@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ((X2[0, 0], W2), ValueError, "conv2d(): input must be 3-D (C, *spatial) or 4-D"),
        ((X2[None], W2), ValueError, "got a 5-D tensor of shape (1, 1, 4, 6, 6)."),
        ((X2, W2[0]), ValueError, "conv2d(): weight must be 4-D; got a 3-D tensor"),
        ((X2, W2[..., :0]), ValueError, "conv2d(): weight must have non-empty spatial dims"),
        ((X2, W2), ValueError, "conv2d(): input has 4 channels but weight.shape[1] * groups is"),
        ((X2.numpy(), W2), TypeError, "conv2d(): input must be a torch.Tensor; got ndarray."),
        ((X2, [[1.0]]), TypeError, "conv2d(): weight must be a torch.Tensor; got list."),
        ((X2, W2.double()), TypeError, "input and weight must have the same dtype (as in torch)"),
        ((X2.bool(), W2.bool()), TypeError, "conv2d(): input has dtype bool, which is not"),
        ((X2, W4, torch.zeros(5)), ValueError, "conv2d(): bias must have shape (6,)"),
        ((X2, W4, torch.zeros(6).double()), TypeError, "input and bias must have the same"),
        ((X2, W4, 1.0), TypeError, "conv2d(): bias must be a torch.Tensor; got float."),
        ((X2, W4.to("meta")), ValueError, "input and weight must be on the same device"),
        (
            (X2.to_sparse(), W4),
            TypeError,
            "conv2d(): input must be a dense (strided) tensor",
        ),
    ],
)
def test_conv_operand_errors(args, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        trueconv.conv2d(*args)


@pytest.mark.usefixtures("no_compute")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"output_padding": 2, "stride": 2},
            "conv_transpose2d(): output_padding must be smaller than stride or dilation in "
            "every dim (as in torch); got output_padding=2",
        ),
        (
            {"padding": "same"},
            "conv_transpose2d(): padding must be one of 'SAME', 'VALID', a non-negative int, "
            "or a tuple of 2 ints or 2 (before, after) pairs ('SAME' is TensorFlow's rule for "
            "every stride); got 'same'.",
        ),
        (
            {"padding": "SAME", "stride": 2, "output_padding": 1},
            "conv_transpose2d(): output_padding must be 0 with padding='SAME'",
        ),
        ({"padding": -1}, "conv_transpose2d(): padding must be non-negative; got -1."),
        ({"padding": 4}, "conv_transpose2d(): padding=4 leaves no output"),
        (
            {"groups": 3},
            "conv_transpose2d(): weight.shape[0] (input channels, 4) must be divisible",
        ),
        ({"method": "overlap_add"}, "conv_transpose2d(): method must be one of 'auto', 'direct'"),
        ({"padding_mode": "zeros"}, "unexpected keyword argument 'padding_mode'"),
    ],
)
def test_conv_transpose_errors(kwargs, message):
    x, w = torch.zeros(1, 4, 3, 3), torch.zeros(4, 2, 3, 3)
    exc = TypeError if "padding_mode" in kwargs else ValueError
    with pytest.raises(exc, match=re.escape(message)):
        trueconv.conv_transpose2d(x, w, **kwargs)


@pytest.mark.usefixtures("no_compute")
def test_conv_transpose_channel_mismatch():
    with pytest.raises(
        ValueError, match=re.escape("input has 3 channels but weight.shape[0] is 4")
    ):
        trueconv.conv_transpose1d(torch.zeros(1, 3, 5), torch.zeros(4, 2, 3))
