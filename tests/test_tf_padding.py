"""TensorFlow's ``'SAME'``/``'VALID'`` in the NN API, forward and transposed.

Oracles written here from TensorFlow's documented rules, not from trueconv's code: the forward
``'SAME'`` pads ``max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)`` in all, the odd sample
after, and ``F.convNd`` runs on the padded input with the flipped kernel; a transposed
convolution is, by TensorFlow's definition, the gradient of the forward one at an input of the
output's size, taken here by autograd through ``F.convNd``. Where TensorFlow imports, the same
calls are compared with ``tf.nn.conv*`` directly.
"""

from __future__ import annotations

import itertools
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

import trueconv

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TC = {1: trueconv.conv1d, 2: trueconv.conv2d, 3: trueconv.conv3d}
TCT = {1: trueconv.conv_transpose1d, 2: trueconv.conv_transpose2d, 3: trueconv.conv_transpose3d}


def _tf_pads(n, k, s, d, padding):
    if padding == "VALID":
        return 0, 0
    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _forward_oracle(x, w, s, d, padding):
    nd = w.ndim - 2
    flat = []
    for n, k in zip(reversed(x.shape[2:]), reversed(w.shape[2:])):
        flat += _tf_pads(n, k, s, d, padding)
    spatial = list(range(2, 2 + nd))
    return CONV[nd](F.pad(x, flat), w.flip(spatial), stride=s, dilation=d)


def _grid(nd):
    sizes = (5, 6, 7) if nd < 3 else (5, 6)
    kernels = range(1, 7) if nd < 3 else (1, 2, 3, 4)
    return list(itertools.product(sizes, kernels, (1, 2, 3), (1, 2)))


def _close(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= 1e-10 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_forward_matches_tensorflows_rule(nd, padding):
    gen = torch.Generator().manual_seed(nd)
    for n, k, s, d in _grid(nd):
        if padding == "VALID" and d * (k - 1) + 1 > n:
            continue
        x = torch.randn(2, 2, *(n,) * nd, dtype=torch.float64, generator=gen)
        w = torch.randn(3, 2, *(k,) * nd, dtype=torch.float64, generator=gen)
        ref = _forward_oracle(x, w, s, d, padding)
        for method in ("direct", "fft"):
            got = TC[nd](x, w, stride=s, padding=padding, dilation=d, method=method)
            _close(got, ref)
        if padding == "SAME":  # the porting helper's pairs say the same
            pads = trueconv.tf_same_padding(x.shape[2:], k, s, d)
            _close(TC[nd](x, w, stride=s, padding=pads, dilation=d), ref)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_transposed_is_the_gradient_of_the_forward(nd, padding):
    """Keras' default output size: n * s ('SAME'), (n - 1) * s + max(d (k - 1) + 1, s)."""
    gen = torch.Generator().manual_seed(10 + nd)
    for n, k, s, d in _grid(nd):
        span = d * (k - 1) + 1
        m = n * s if padding == "SAME" else (n - 1) * s + max(span, s)
        w = torch.randn(3, 2, *(k,) * nd, dtype=torch.float64, generator=gen)
        y = torch.randn(1, 3, *(n,) * nd, dtype=torch.float64, generator=gen)
        xm = torch.zeros(1, 2, *(m,) * nd, dtype=torch.float64, requires_grad=True)
        fwd = _forward_oracle(xm, w, s, d, padding)
        assert fwd.shape[2:] == y.shape[2:]
        (ref,) = torch.autograd.grad(fwd, xm, y)
        bias = torch.randn(2, dtype=torch.float64, generator=gen)
        for method in ("direct", "fft"):
            got = TCT[nd](y, w, stride=s, padding=padding, dilation=d, method=method)
            _close(got, ref)
            got = TCT[nd](y, w, bias, stride=s, padding=padding, dilation=d, method=method)
            _close(got, ref + bias.reshape(-1, *(1,) * nd))


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_tf_transpose_padding_for_every_output_shape(padding):
    """tf.nn.conv2d_transpose takes any output_shape the forward maps back to the input."""
    gen = torch.Generator().manual_seed(20)
    for n, k, s, d in _grid(1):
        span = d * (k - 1) + 1
        sizes = [
            m
            for m in range(1, n * s + span + s)
            if (math.ceil(m / s) if padding == "SAME" else (m - span) // s + 1) == n
            and (padding == "SAME" or m >= span)
        ]
        assert sizes
        w = torch.randn(3, 2, k, dtype=torch.float64, generator=gen)
        y = torch.randn(1, 3, n, dtype=torch.float64, generator=gen)
        for m in sizes:
            xm = torch.zeros(1, 2, m, dtype=torch.float64, requires_grad=True)
            (ref,) = torch.autograd.grad(_forward_oracle(xm, w, s, d, padding), xm, y)
            pads, extra = trueconv.tf_transpose_padding((n,), k, s, d, padding, output_size=(m,))
            for method in ("direct", "fft"):
                got = trueconv.conv_transpose1d(y, w, None, s, pads, extra, 1, d, method=method)
                _close(got, ref)


def test_tf_transpose_padding_refuses_a_size_the_forward_does_not_map_back():
    with pytest.raises(ValueError, match=r"output_size \(9,\) is not one that a stride-2 'SAME'"):
        trueconv.tf_transpose_padding((4,), 3, 2, output_size=(9,))
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'; got 'same'"):
        trueconv.tf_transpose_padding((4,), 3, 2, padding="same")


def test_modules_take_tensorflows_spellings():
    gen = torch.Generator().manual_seed(30)
    conv = trueconv.nn.Conv2d(3, 4, 3, stride=2, padding="SAME").double()
    up = trueconv.nn.ConvTranspose2d(4, 3, 3, stride=2, padding="SAME").double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, generator=gen)
    y = conv(x)
    assert y.shape == (2, 4, 5, 4)
    _close(y, trueconv.conv2d(x, conv.weight, conv.bias, 2, "SAME"))
    z = up(y)
    assert z.shape == (2, 3, 10, 8)  # Keras: n * stride
    _close(z, trueconv.conv_transpose2d(y, up.weight, up.bias, 2, "SAME"))
    with pytest.raises(ValueError, match="output_size needs torch's symmetric int padding"):
        up(y, output_size=(9, 8))
    with pytest.raises(ValueError, match="has no padding='SAME' with stride"):
        conv.to_torch()
    same1 = trueconv.nn.Conv2d(3, 4, 4, padding="SAME").double()
    _close(same1.to_torch()(x), same1(x))  # at stride 1 TF's rule is torch's 'same'


def test_lowercase_same_with_stride_points_to_tensorflows():
    with pytest.raises(ValueError, match="For TensorFlow's strided 'SAME', pass padding='SAME'"):
        trueconv.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3), stride=2, padding="same")


def test_against_tensorflow_itself():
    tf = pytest.importorskip("tensorflow")
    gen = torch.Generator().manual_seed(40)
    for n, k, s in itertools.product((7, 8), (2, 3, 4), (1, 2, 3)):
        x = torch.randn(2, 3, n, n, dtype=torch.float64, generator=gen)  # NCHW
        w = torch.randn(4, 3, k, k, dtype=torch.float64, generator=gen)  # convolution kernel
        tf_x = tf.constant(x.permute(0, 2, 3, 1).numpy())
        tf_w = tf.constant(trueconv.torch_kernel_to_tf(w, flip=True).numpy())  # correlation
        for padding in ("SAME", "VALID"):
            ref = tf.nn.conv2d(tf_x, tf_w, strides=s, padding=padding).numpy()
            got = trueconv.conv2d(x, w, stride=s, padding=padding)
            _close(got, torch.from_numpy(ref).permute(0, 3, 1, 2))
            # transposed: TF's filters (kH, kW, out, in), a correlation kernel
            y = torch.randn(2, 4, n, n, dtype=torch.float64, generator=gen)
            span = k
            m = n * s if padding == "SAME" else (n - 1) * s + max(span, s)
            ref_t = tf.nn.conv2d_transpose(
                tf.constant(y.permute(0, 2, 3, 1).numpy()),
                tf_w,
                output_shape=(2, m, m, 3),
                strides=s,
                padding=padding,
            ).numpy()
            wt = trueconv.tf_kernel_to_torch(tf_w.numpy(), flip=True)  # (in=4, out=3, k, k)
            got_t = trueconv.conv_transpose2d(y, wt, stride=s, padding=padding)
            _close(got_t, torch.from_numpy(ref_t).permute(0, 3, 1, 2))


def test_channels_last_input_gets_a_hint():
    with pytest.raises(ValueError, match=re.escape("channels-last data (TensorFlow's NHWC)")):
        trueconv.conv2d(torch.zeros(1, 8, 8, 3), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match=re.escape("x.permute(0, 4, 1, 2, 3)")):
        trueconv.conv3d(torch.zeros(1, 6, 6, 6, 2), torch.zeros(4, 2, 3, 3, 3))
    with pytest.raises(ValueError, match="must be made channels-first"):
        trueconv.conv_transpose2d(torch.zeros(1, 8, 8, 4), torch.zeros(4, 3, 3, 3))


def _keras_forward_oracle(x, kernel, stride, dilation, padding, groups=1):
    """Keras' Conv*D: a correlation with the (*spatial, in, out) kernel on the input padded
    by TF's rule ('causal': d (k - 1) zeros before)."""
    nd = kernel.ndim - 2
    w = kernel.permute(nd + 1, nd, *range(nd))  # (out, in, *k), not flipped: Keras correlates
    flat = []
    for n, k, s, d in zip(reversed(x.shape[2:]), reversed(w.shape[2:]), stride[::-1],
                          dilation[::-1]):  # fmt: skip
        flat += (d * (k - 1), 0) if padding == "causal" else _tf_pads(n, k, s, d, padding.upper())
    return CONV[nd](F.pad(x, flat), w, stride=stride, dilation=dilation, groups=groups)


@pytest.mark.parametrize(
    ("cfg", "x_shape"),
    [
        ({"class_name": "Conv1D", "filters": 3, "kernel_size": (4,), "strides": (1,),
          "padding": "causal", "dilation_rate": (2,)}, (2, 2, 11)),
        ({"class_name": "Conv2D", "filters": 4, "kernel_size": (3, 2), "strides": (2, 3),
          "padding": "same", "dilation_rate": (1, 1)}, (2, 2, 9, 10)),
        ({"class_name": "Conv2D", "filters": 4, "kernel_size": (3, 3), "strides": (1, 1),
          "padding": "same", "dilation_rate": (2, 2), "groups": 2}, (1, 4, 8, 8)),
        ({"class_name": "Conv3D", "filters": 2, "kernel_size": (2, 3, 2), "strides": (2, 1, 2),
          "padding": "valid", "dilation_rate": (1, 1, 1)}, (1, 3, 6, 7, 5)),
    ],
)  # fmt: skip
def test_from_keras_config_forward(cfg, x_shape):
    gen = torch.Generator().manual_seed(50)
    nd = len(cfg["kernel_size"])
    groups = cfg.get("groups", 1)
    kernel = torch.randn(
        *cfg["kernel_size"], x_shape[1] // groups, cfg["filters"], dtype=torch.float64,
        generator=gen,
    )  # fmt: skip
    bias = torch.randn(cfg["filters"], dtype=torch.float64, generator=gen)
    m = trueconv.from_keras(
        config={**cfg, "use_bias": True, "activation": "linear"},
        weights=[kernel.numpy(), bias.numpy()],
    )
    assert isinstance(m, getattr(trueconv.nn, f"Conv{nd}d"))
    x = torch.randn(x_shape, dtype=torch.float64, generator=gen)
    ref = _keras_forward_oracle(
        x, kernel, cfg["strides"], cfg["dilation_rate"], cfg["padding"], groups
    ) + bias.reshape(-1, *(1,) * nd)
    _close(m(x), ref)


def test_from_keras_config_transposed():
    gen = torch.Generator().manual_seed(51)
    for stride, k, padding in itertools.product((1, 2, 3), (2, 3, 4), ("same", "valid")):
        cfg = {"class_name": "Conv2DTranspose", "filters": 3, "kernel_size": (k, k),
               "strides": (stride, stride), "padding": padding, "dilation_rate": (1, 1),
               "output_padding": None, "use_bias": False, "activation": "linear"}  # fmt: skip
        kernel = torch.randn(k, k, 3, 4, dtype=torch.float64, generator=gen)  # (kH, kW, out, in)
        m = trueconv.from_keras(config=cfg, weights=[kernel.numpy()])
        y = torch.randn(1, 4, 5, 5, dtype=torch.float64, generator=gen)
        out = m(y)
        # TF's definition: the gradient of the forward Conv2D (kernel (kH, kW, 3, 4)) at the
        # output's size
        xm = torch.zeros(out.shape, dtype=torch.float64, requires_grad=True)
        fwd = _keras_forward_oracle(xm, kernel, (stride,) * 2, (1, 1), padding)
        assert fwd.shape == y.shape
        (ref,) = torch.autograd.grad(fwd, xm, y)
        _close(out, ref)


def test_from_keras_refuses_what_it_cannot_convert():
    base = {"class_name": "Conv2D", "filters": 1, "kernel_size": (1, 1), "padding": "valid"}
    k = [torch.ones(1, 1, 1, 1).numpy()]
    with pytest.raises(ValueError, match="activation='relu' is not a convolution"):
        trueconv.from_keras(config={**base, "activation": "relu"}, weights=k)
    with pytest.raises(ValueError, match="layer must be one of Conv1D"):
        trueconv.from_keras(config={**base, "class_name": "Dense"}, weights=k)
    with pytest.raises(ValueError, match="only Keras' default None"):
        trueconv.from_keras(
            config={**base, "class_name": "Conv2DTranspose", "output_padding": (1, 1)},
            weights=k,
        )
    with pytest.raises(TypeError, match="pass a Keras layer, or config= and weights="):
        trueconv.from_keras()


def test_from_keras_against_keras_itself():
    """Real Keras 3 (any backend; torch's is enough, so TensorFlow is not needed)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    gen = torch.Generator().manual_seed(52)
    layers = [
        keras.layers.Conv2D(4, 3, strides=2, padding="same", dtype="float64"),
        keras.layers.Conv2D(4, (2, 3), dilation_rate=2, padding="same", dtype="float64"),
        keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", dtype="float64"),
        keras.layers.Conv1D(3, 4, padding="causal", dtype="float64"),
    ]
    for layer in layers:
        nd = 1 if "1D" in type(layer).__name__ else 2
        x = torch.randn(2, 3, *(9,) * nd, dtype=torch.float64, generator=gen)
        x_last = x.permute(0, *range(2, 2 + nd), 1).numpy()
        ref = torch.from_numpy(keras.ops.convert_to_numpy(layer(x_last)))
        m = trueconv.from_keras(layer)
        _close(m(x), ref.permute(0, nd + 1, *range(1, nd + 1)))
