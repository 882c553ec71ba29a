"""Porting: kernel flips and layouts, TensorFlow's 'SAME', Theano's convolution kernels, the demo.

Oracles written here in numpy from the frameworks' documented definitions (neither TensorFlow
nor Theano is a dependency): ``tf.nn.conv2d`` on NHWC input and HWIO kernels with TF's
``'SAME'`` padding rule, and Theano's ``conv2d(filter_flip=True)`` as per-channel-pair
``scipy.signal.convolve2d`` sums.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import trueconv
from conftest import console_script, rel_err
from trueconv.__main__ import main

# -- TensorFlow, restated in numpy --------------------------------------------------------------


def tf_same_pads(size, k, stride, dilation):
    """TF's 'SAME': pad_total = max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)."""
    total = max((-(-size // stride) - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def tf_conv2d(x_nhwc, k_hwio, strides=(1, 1), padding="SAME", dilations=(1, 1)):
    """``tf.nn.conv2d``: a cross-correlation of NHWC input with an HWIO kernel."""
    n, h, w, _ = x_nhwc.shape
    kh, kw, _, co = k_hwio.shape
    if padding == "SAME":
        pads = [
            tf_same_pads(size, k, s, d)
            for size, k, s, d in zip((h, w), (kh, kw), strides, dilations)
        ]
    else:
        pads = [(0, 0), (0, 0)]
    xp = np.pad(x_nhwc, ((0, 0), pads[0], pads[1], (0, 0)))
    (sh, sw), (dh, dw) = strides, dilations
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, oh, ow, co))
    for i, j in itertools.product(range(kh), range(kw)):
        patch = xp[
            :, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw
        ]
        out += np.einsum("nhwc,co->nhwo", patch, k_hwio[i, j])
    return out


def flipkernel(k_hwio):
    """The seed's helper: reverse the spatial dims of an HWIO kernel."""
    return k_hwio[::-1, ::-1]


def nchw(x_nhwc):
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


def rng(seed=0):
    return np.random.default_rng(seed)


KERNEL_SIZES = [(3, 3), (2, 2), (2, 3), (4, 1), (1, 4), (5, 2)]


@pytest.mark.parametrize(("kh", "kw"), KERNEL_SIZES)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_seed_tensorflow_same_with_flipped_kernel(kh, kw, method):
    """``tf.nn.conv2d(x, flipkernel(k), strides=1, padding='SAME')`` == ``conv2d(..., 'same')``.

    Odd and even kernel sizes: TF and torch put the odd padding sample after.
    """
    x = rng().standard_normal((2, 7, 6, 3))  # NHWC
    k = rng(1).standard_normal((kh, kw, 3, 4))  # HWIO: a convolution kernel
    ref = tf_conv2d(x, flipkernel(k), padding="SAME")
    out = trueconv.conv2d(nchw(x), trueconv.tf_kernel_to_torch(k), padding="same", method=method)
    assert rel_err(out.permute(0, 2, 3, 1), ref) <= 1e-12


@pytest.mark.parametrize(("kh", "kw"), KERNEL_SIZES)
def test_trained_tensorflow_kernel_needs_the_flip(kh, kw):
    """A TF model's own kernel is a correlation kernel: ``flip=True`` for trueconv."""
    x = rng().standard_normal((1, 6, 7, 2))
    k = rng(2).standard_normal((kh, kw, 2, 3))
    ref = tf_conv2d(x, k, padding="SAME")
    out = trueconv.conv2d(nchw(x), trueconv.tf_kernel_to_torch(k, flip=True), padding="same")
    assert rel_err(out.permute(0, 2, 3, 1), ref) <= 1e-12
    plain = F.conv2d(nchw(x), trueconv.tf_kernel_to_torch(k), padding="same")  # torch: no flip
    assert rel_err(plain.permute(0, 2, 3, 1), ref) <= 1e-12


@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.integers(1, 2),
    seed=st.integers(0, 1000),
)
def test_tensorflow_same_with_strides_and_dilation(size, kernel, strides, dilation, seed):
    """Strided 'SAME' (which torch's 'same' refuses) through ``tf_same_padding``."""
    dilations = (dilation, dilation) if strides == (1, 1) else (1, 1)  # TF: not both at once
    x = rng(seed).standard_normal((1, *size, 2))
    k = rng(seed + 1).standard_normal((*kernel, 2, 3))
    ref = tf_conv2d(x, flipkernel(k), strides, "SAME", dilations)
    x_t, w = nchw(x), trueconv.tf_kernel_to_torch(k)
    pads = trueconv.tf_same_padding(x_t.shape[2:], w.shape[2:], strides, dilations)
    out = trueconv.conv2d(x_t, w, stride=strides, padding=pads, dilation=dilations)
    assert rel_err(out.permute(0, 2, 3, 1), ref) <= 1e-12
    if strides == (1, 1):
        same = trueconv.conv2d(x_t, w, padding="same", dilation=dilations)
        assert torch.equal(same, out)


def test_tensorflow_valid():
    x = rng().standard_normal((2, 8, 7, 3))
    k = rng(1).standard_normal((3, 2, 3, 5))
    ref = tf_conv2d(x, flipkernel(k), (2, 1), "VALID")
    out = trueconv.conv2d(nchw(x), trueconv.tf_kernel_to_torch(k), stride=(2, 1))
    assert rel_err(out.permute(0, 2, 3, 1), ref) <= 1e-12


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_tf_layouts_round_trip(nd):
    k = torch.arange(2 * 3 * 4**nd).reshape(*[4] * nd, 2, 3)  # (*spatial, in, out)
    w = trueconv.tf_kernel_to_torch(k)
    assert w.shape == (3, 2, *[4] * nd)
    assert w.is_contiguous()
    for idx in itertools.product(*[range(4)] * nd):
        for i, o in itertools.product(range(2), range(3)):
            assert w[(o, i, *idx)] == k[(*idx, i, o)]
    assert torch.equal(trueconv.torch_kernel_to_tf(w), k)
    wf = trueconv.tf_kernel_to_torch(k, flip=True)
    assert torch.equal(wf, trueconv.flip_kernel(w))
    assert torch.equal(trueconv.torch_kernel_to_tf(wf, flip=True), k)
    assert torch.equal(trueconv.tf_kernel_to_torch(k.numpy()), w)  # arrays too


def test_tf_layout_for_transposed_kernels():
    """TF's conv2d_transpose kernel (kH, kW, out, in) maps to torch's (in, out, kH, kW)."""
    k = torch.arange(2 * 2 * 3 * 5.0).reshape(2, 2, 3, 5)  # (kH, kW, out=3, in=5)
    w = trueconv.tf_kernel_to_torch(k)
    assert w.shape == (5, 3, 2, 2)
    y = torch.randn(1, 5, 4, 4, dtype=torch.float32)
    assert trueconv.conv_transpose2d(y, w).shape == (1, 3, 5, 5)


@pytest.mark.parametrize(
    ("fname", "arg", "exc", "message"),
    [
        ("tf_kernel_to_torch", torch.zeros(3, 3), ValueError, "kernel must be 3-D, 4-D or 5-D"),
        ("tf_kernel_to_torch", torch.zeros((1,) * 6), ValueError, "got shape (1, 1, 1, 1, 1, 1)"),
        ("tf_kernel_to_torch", "k", TypeError, "kernel must be a tensor or array; got str."),
        ("torch_kernel_to_tf", torch.zeros(3), ValueError, "weight must be 3-D, 4-D or 5-D"),
        ("torch_kernel_to_tf", None, TypeError, "weight must be a tensor or array; got NoneType."),
    ],
)
def test_layout_errors(fname, arg, exc, message):
    with pytest.raises(exc, match=re.escape(f"{fname}(): ") + ".*" + re.escape(message)):
        getattr(trueconv, fname)(arg)


def test_tf_same_padding():
    assert trueconv.tf_same_padding((5, 6), 3, stride=2) == ((1, 1), (0, 1))
    assert trueconv.tf_same_padding(torch.Size([4]), [2]) == ((0, 1),)
    assert trueconv.tf_same_padding((9,), 3, 4) == ((1, 1),)  # ceil(9/4)=3: 8 + 3 - 9 = 2
    assert trueconv.tf_same_padding((2,), 1, 5) == ((0, 0),)  # never negative
    for size, k, s, d in itertools.product(range(1, 8), range(1, 5), range(1, 4), range(1, 3)):
        assert trueconv.tf_same_padding((size,), k, s, d) == (tf_same_pads(size, k, s, d),)
    with pytest.raises(ValueError, match=re.escape("tf_same_padding(): stride must be positive")):
        trueconv.tf_same_padding((4, 4), 3, 0)
    with pytest.raises(TypeError, match=re.escape("tf_same_padding(): kernel_size must be an int")):
        trueconv.tf_same_padding((4, 4), (3, 3, 3))
    with pytest.raises(TypeError, match=re.escape("tf_same_padding(): input_size must be a seq")):
        trueconv.tf_same_padding(4, 3)


# -- Theano / Lasagne: convolution kernels -----------------------------------------------------


def theano_conv2d(x, w, border_mode="valid", subsample=(1, 1), filter_flip=True):
    """``theano.tensor.nnet.conv2d``: per channel pair ``convolve2d`` (``correlate2d`` without
    the flip), summed over input channels, then subsampled. ``'half'`` pads ``k // 2``."""
    op = scipy.signal.convolve2d if filter_flip else scipy.signal.correlate2d
    b, c = x.shape[:2]
    o = w.shape[0]
    if border_mode == "half":
        ph, pw = w.shape[2] // 2, w.shape[3] // 2
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        border_mode = "valid"
    rows = []
    for n in range(b):
        rows.append(
            [sum(op(x[n, i], w[j, i], mode=border_mode) for i in range(c)) for j in range(o)]
        )
    return np.asarray(rows)[:, :, :: subsample[0], :: subsample[1]]


@pytest.mark.parametrize(
    ("border_mode", "padding"), [("valid", 0), ("full", "full"), ("half", None)]
)
@pytest.mark.parametrize("subsample", [(1, 1), (2, 1)])
def test_theano_kernels_are_convolution_kernels(border_mode, padding, subsample):
    """Theano (``filter_flip=True``) / Lasagne ``Conv2DLayer`` weights port unchanged."""
    x = rng().standard_normal((2, 3, 7, 8))
    w = rng(1).standard_normal((4, 3, 3, 5))  # (out, in, kH, kW): torch's layout already
    if padding is None:
        padding = (w.shape[2] // 2, w.shape[3] // 2)
    ref = theano_conv2d(x, w, border_mode, subsample)
    out = trueconv.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, subsample, padding)
    assert rel_err(out, ref) <= 1e-12


def test_theano_without_filter_flip_is_torch():
    x = rng().standard_normal((1, 2, 6, 6))
    w = rng(1).standard_normal((3, 2, 2, 3))
    ref = theano_conv2d(x, w, filter_flip=False)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    assert rel_err(trueconv.conv2d(xt, trueconv.flip_kernel(wt)), ref) <= 1e-12
    assert rel_err(F.conv2d(xt, wt), ref) <= 1e-12


# -- flip_kernel --------------------------------------------------------------------------------


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_flip_kernel_flips_spatial_dims_only(nd):
    w = torch.randn(3, 2, *[3] * nd, dtype=torch.float64)
    f = trueconv.flip_kernel(w)
    assert torch.equal(f, w.flip(list(range(2, 2 + nd))))
    assert torch.equal(trueconv.flip_kernel(f), w)
    corner, far = (slice(None), slice(None), *[0] * nd), (slice(None), slice(None), *[-1] * nd)
    assert torch.equal(f[corner], w[far])  # channels stay in place
    x = torch.randn(1, 2, *[5] * nd, dtype=torch.float64)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    tconv = {1: trueconv.conv1d, 2: trueconv.conv2d, 3: trueconv.conv3d}[nd]
    assert torch.equal(conv(x, f), tconv(x, w))
    assert torch.equal(tconv(x, f), conv(x, w))


def test_flip_kernel_bare_kernels_and_errors():
    assert torch.equal(trueconv.flip_kernel(torch.tensor([1, 2, 3]), nd=1), torch.tensor([3, 2, 1]))
    k = torch.arange(6).reshape(2, 3)
    assert torch.equal(trueconv.flip_kernel(k, nd=2), k.flip(0, 1))
    assert torch.equal(trueconv.flip_kernel(k, nd=1), k.flip(1))
    assert torch.equal(
        trueconv.flip_kernel(np.arange(24).reshape(2, 3, 4)),
        torch.arange(24).reshape(2, 3, 4).flip(2),
    )
    with pytest.raises(ValueError, match=re.escape("flip_kernel(): weight must have at least 3")):
        trueconv.flip_kernel(k)
    with pytest.raises(ValueError, match=re.escape("nd must be between 1 and weight.ndim = 2")):
        trueconv.flip_kernel(k, nd=3)
    with pytest.raises(TypeError, match=re.escape("flip_kernel(): nd must be an int; got True.")):
        trueconv.flip_kernel(k, nd=True)
    with pytest.raises(TypeError, match=re.escape("flip_kernel(): weight must be a tensor")):
        trueconv.flip_kernel("w")


def test_flip_kernel_is_differentiable():
    w = torch.randn(2, 1, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad((trueconv.flip_kernel(w) * torch.arange(3.0)).sum(), w)
    assert torch.equal(g[0, 0], torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64))


# -- the 'same' alignment rule, stated in the README ------------------------------------------


def test_same_alignment_rule():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    k = torch.tensor([1.0, 1.0])
    assert torch.equal(trueconv.convolve(x, k, "full"), torch.tensor([1.0, 3.0, 5.0, 7.0, 4.0]))
    assert torch.equal(trueconv.convolve(x, k, "same"), torch.tensor([1.0, 3.0, 5.0, 7.0]))
    nn_same = trueconv.conv1d(x[None, None], k[None, None], padding="same")
    assert torch.equal(nn_same[0, 0], torch.tensor([3.0, 5.0, 7.0, 4.0]))
    assert torch.equal(nn_same, F.conv1d(x[None, None], k.flip(0)[None, None], padding="same"))


# -- the demo -----------------------------------------------------------------------------------

CORR_ROW = " 0  1  0  0 -1  0"
CONV_ROW = " 0 -1  0  0  1  0"


def test_demo_prints_correlation_convolution_and_scipy_check(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "F.conv2d(x, w)  (cross-correlation)" in out
    assert "trueconv.conv2d(x, w)  (convolution)" in out
    side_by_side = [line for line in out.splitlines() if CORR_ROW in line and CONV_ROW in line]
    assert len(side_by_side) == 3
    assert side_by_side[0].index(CORR_ROW) < side_by_side[0].index(CONV_ROW)
    assert "scipy.signal.convolve2d(image, kernel, 'valid'): True" in out


def test_demo_starts_from_the_tensorflow_line(capsys):
    """Issue 16: the demo shows the seed's TF line, its one-call port, the SAME-size result
    (as TF gives it: the rising edge -1, the falling +1, 5x7) and a plain-torch check."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "tf.nn.conv2d(x, flipkernel(k), strides=1, padding='SAME')" in out
    assert "trueconv.tf_kernel_to_torch(k)" in out
    assert "padding='SAME'" in out
    same_rows = [line for line in out.splitlines() if line.endswith(" 0 -1  0  0  1  0  0")]
    assert len(same_rows) == 3  # the 5x7 'SAME' output beside the image
    assert "the same by hand in plain torch (flip k, pad as TF, F.conv2d): True" in out


def test_demo_without_scipy(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.signal", None)  # import fails
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "scipy is not installed: the check above is plain torch's only" in out
    assert "by hand in plain torch (flip k, pad as TF, F.conv2d): True" in out
    assert CONV_ROW in out


def test_trueconv_demo_command():
    """The README's first command, run as a user would (``python -m`` without the script)."""
    done = subprocess.run([*console_script(), "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert CONV_ROW in done.stdout
    assert "(convolution)" in done.stdout
