"""Porting helpers: kernel flips, kernel layouts and TensorFlow's ``'SAME'`` padding.

The rule of thumb: **TensorFlow and PyTorch kernels are correlation kernels** (``tf.nn.conv2d``,
Keras ``Conv2D``, ``F.conv2d`` and ``torch.nn.Conv2d`` all cross-correlate); **Theano kernels
(``conv2d(..., filter_flip=True)``, the default) and Lasagne ``Conv2DLayer`` kernels
(``flip_filters=True``, the default) are convolution kernels**, and so are a paper's kernels when
its math writes a convolution. trueconv's NN API takes convolution kernels:

- ``tf.nn.conv2d`` / Keras ``Conv2D`` kernel ``k``, layout ``(kH, kW, in, out)``, a correlation
  kernel: ``tf_kernel_to_torch(k, flip=True)``.
- TF code ``tf.nn.conv2d(x, flipkernel(k), ...)``: ``k`` is a convolution kernel:
  ``tf_kernel_to_torch(k)``.
- Theano ``conv2d(filter_flip=True)`` / Lasagne ``Conv2DLayer`` weight ``w``, layout
  ``(out, in, kH, kW)``, a convolution kernel: ``w`` as it is.
- Theano ``filter_flip=False``, ``torch.nn.Conv2d``, ``F.conv2d`` weight ``w``, a correlation
  kernel: ``flip_kernel(w)``.

Transposed convolutions follow the same rule with TF's ``(kH, kW, O, I)`` and torch's
``(I, O, kH, kW)`` layouts, which the same permutation converts. Data layouts convert with
``x.permute(0, 3, 1, 2)`` (NHWC to NCHW) and back with ``y.permute(0, 2, 3, 1)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from trueconv.core.names import int_tuple
from trueconv.core.padding import tf_same_pads, tf_transpose_pads
from trueconv.core.torch_internals import ConvNd

__all__ = [
    "flip_kernel",
    "from_keras",
    "tf_kernel_to_torch",
    "tf_same_padding",
    "tf_transpose_padding",
    "torch_kernel_to_tf",
]


def _as_tensor(fname: str, arg: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{fname}(): {arg} must be a tensor or array; got {type(value).__name__}.")
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{fname}(): {arg} must be a tensor or array; got {type(value).__name__} that torch "
            f"cannot convert ({exc})."
        ) from None


def flip_kernel(weight: Any, nd: int | None = None) -> torch.Tensor:
    """Reverse the spatial dims of a kernel: a correlation kernel <-> a convolution kernel.

    ``F.conv2d(x, flip_kernel(w))`` equals ``trueconv.conv2d(x, w)``, and
    ``trueconv.conv2d(x, flip_kernel(w))`` equals ``F.conv2d(x, w)``. Batch and channel dims are
    never flipped.

    Parameters
    ----------
    weight : Tensor or array_like
        A torch-layout weight ``(out, in, *spatial)`` (``(in, out, *spatial)`` for transposed
        convolutions), or any kernel with ``nd`` given.
    nd : int, optional
        Number of trailing spatial dims to flip; default ``weight.ndim - 2``.

    Returns
    -------
    Tensor
        A new tensor (the flip copies); ``weight`` is not modified. Differentiable.

    Raises
    ------
    ValueError
        A weight with fewer than 3 dims and no ``nd``, or ``nd`` out of range.
    TypeError
        ``weight`` not convertible to a tensor, or ``nd`` not an int.

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> w = torch.tensor([[[[1, 2], [3, 4]]]])
    >>> trueconv.flip_kernel(w)
    tensor([[[[4, 3],
              [2, 1]]]])
    >>> trueconv.flip_kernel(torch.tensor([1, 2, 3]), nd=1)
    tensor([3, 2, 1])
    """
    w = _as_tensor("flip_kernel", "weight", weight)
    if nd is None:
        if w.ndim < 3:
            raise ValueError(
                f"flip_kernel(): weight must have at least 3 dims (out, in, *spatial); got shape "
                f"{tuple(w.shape)}. Pass nd= to flip the last nd dims of a bare kernel."
            )
        nd = w.ndim - 2
    if not isinstance(nd, numbers.Integral) or isinstance(nd, bool):
        raise TypeError(f"flip_kernel(): nd must be an int; got {nd!r}.")
    if not 1 <= nd <= w.ndim:
        raise ValueError(
            f"flip_kernel(): nd must be between 1 and weight.ndim = {w.ndim}; got {nd!r}."
        )
    return w.flip(list(range(w.ndim - int(nd), w.ndim)))


def _check_layout(fname: str, arg: str, t: torch.Tensor) -> int:
    if not 3 <= t.ndim <= 5:
        raise ValueError(
            f"{fname}(): {arg} must be 3-D, 4-D or 5-D (1 to 3 spatial dims and 2 channel dims); "
            f"got shape {tuple(t.shape)}."
        )
    return t.ndim - 2


def tf_kernel_to_torch(kernel: Any, *, flip: bool = False) -> torch.Tensor:
    """A TensorFlow kernel ``(*spatial, in, out)`` in PyTorch's layout ``(out, in, *spatial)``.

    Also converts TF's transposed-convolution kernels ``(*spatial, out, in)`` to torch's
    ``(in, out, *spatial)``: the same permutation.

    Parameters
    ----------
    kernel : Tensor or array_like
        1-D to 3-D TF kernel: ``(k, in, out)``, ``(kH, kW, in, out)`` or
        ``(kD, kH, kW, in, out)`` (e.g. ``layer.kernel.numpy()`` of a Keras ``Conv2D``).
    flip : bool, optional
        Also reverse the spatial dims. TF kernels are correlation kernels, so a trained TF
        model's kernel needs ``flip=True`` for ``trueconv.conv2d`` and ``trueconv.nn.Conv2d``
        (and ``flip=False`` for ``F.conv2d``). TF code that flips its kernel before
        ``tf.nn.conv2d`` (``tf.nn.conv2d(x, flipkernel(k), ...)``) holds a convolution kernel
        ``k``: ``tf_kernel_to_torch(k)`` is the trueconv weight.

    Returns
    -------
    Tensor
        A new, contiguous tensor.

    Raises
    ------
    ValueError
        A kernel that is not 3-D to 5-D.
    TypeError
        A kernel not convertible to a tensor.

    See Also
    --------
    torch_kernel_to_tf : the inverse.
    tf_same_padding : TensorFlow's ``'SAME'`` padding with strides.

    Examples
    --------
    The seed's TensorFlow call ``tf.nn.conv2d(x, flipkernel(k), strides=1, padding='SAME')``
    with ``k`` a ``(kH, kW, in, out)`` convolution kernel, ported:

    >>> import torch
    >>> import trueconv
    >>> k = torch.tensor([-1., 1.]).reshape(1, 2, 1, 1)  # HWIO: the [[-1, 1]] edge filter
    >>> w = trueconv.tf_kernel_to_torch(k)
    >>> w.shape
    torch.Size([1, 1, 1, 2])
    >>> x_nhwc = torch.tensor([0., 0., 1., 1., 1., 0.]).reshape(1, 1, 6, 1)
    >>> y = trueconv.conv2d(x_nhwc.permute(0, 3, 1, 2), w, padding="same")
    >>> y.permute(0, 2, 3, 1).flatten()
    tensor([ 0., -1.,  0.,  0.,  1.,  0.])
    """
    k = _as_tensor("tf_kernel_to_torch", "kernel", kernel)
    nd = _check_layout("tf_kernel_to_torch", "kernel", k)
    w = k.permute(nd + 1, nd, *range(nd))
    return (flip_kernel(w) if flip else w).contiguous()


def torch_kernel_to_tf(weight: Any, *, flip: bool = False) -> torch.Tensor:
    """A PyTorch weight ``(out, in, *spatial)`` in TensorFlow's layout ``(*spatial, in, out)``.

    The inverse of :func:`tf_kernel_to_torch` (also for transposed-convolution weights).

    Parameters
    ----------
    weight : Tensor or array_like
        A torch-layout weight with 1 to 3 spatial dims.
    flip : bool, optional
        Also reverse the spatial dims: ``True`` turns a trueconv (convolution) weight into the
        correlation kernel ``tf.nn.conv2d`` needs.

    Returns
    -------
    Tensor
        A new, contiguous tensor.

    Raises
    ------
    ValueError
        A weight that is not 3-D to 5-D.
    TypeError
        A weight not convertible to a tensor.

    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> w = torch.arange(6).reshape(3, 2, 1)  # conv1d weight: 3 out, 2 in, k = 1
    >>> trueconv.torch_kernel_to_tf(w).shape
    torch.Size([1, 2, 3])
    >>> torch.equal(trueconv.tf_kernel_to_torch(trueconv.torch_kernel_to_tf(w)), w)
    True
    """
    w = _as_tensor("torch_kernel_to_tf", "weight", weight)
    nd = _check_layout("torch_kernel_to_tf", "weight", w)
    w = flip_kernel(w) if flip else w
    return w.permute(*range(2, nd + 2), 1, 0).contiguous()


def tf_same_padding(
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> tuple[tuple[int, int], ...]:
    """TensorFlow's ``padding='SAME'`` as explicit ``(before, after)`` pairs, for any stride.

    TF pads ``max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)`` samples in all, the odd
    one after, so the output has ``ceil(n / s)`` samples. With stride 1 this is
    ``padding='same'``; the NN API's ``padding='SAME'`` applies it for every stride, and these
    pairs spell it out (torch's ``F.conv2d`` rejects ``'same'`` with strides):
    ``trueconv.conv2d(x, w, stride=2, padding=tf_same_padding(x.shape[2:], w.shape[2:], 2))``
    equals ``trueconv.conv2d(x, w, stride=2, padding='SAME')``.

    Parameters
    ----------
    input_size : sequence of int
        The spatial sizes of the input (e.g. ``x.shape[2:]``).
    kernel_size, stride, dilation : int or sequence of int
        Per spatial dim, or one for all.

    Returns
    -------
    tuple of (int, int)
        One ``(before, after)`` pair per spatial dim.

    Raises
    ------
    ValueError
        Non-positive sizes, strides or dilations, or sequences of the wrong length.
    TypeError
        Non-integer values.

    Examples
    --------
    >>> import trueconv
    >>> trueconv.tf_same_padding((5, 6), 3, stride=2)
    ((1, 1), (0, 1))
    >>> trueconv.tf_same_padding((4,), 2)  # stride 1: 'same', the odd sample after
    ((0, 1),)
    """

    return tf_same_pads(*_sizes("tf_same_padding", input_size, kernel_size, stride, dilation))


def _sizes(
    fname: str, input_size: Any, kernel_size: Any, stride: Any, dilation: Any
) -> tuple[tuple[int, ...], ...]:
    """Input sizes, kernel sizes, strides and dilations as one int per spatial dim."""
    if not isinstance(input_size, (Sequence, torch.Size)) or isinstance(input_size, str):
        raise TypeError(f"{fname}(): input_size must be a sequence of ints; got {input_size!r}.")
    nd = len(input_size)
    return (
        int_tuple(fname, "input_size", tuple(input_size), nd, 1),
        int_tuple(fname, "kernel_size", kernel_size, nd, 1),
        int_tuple(fname, "stride", stride, nd, 1),
        int_tuple(fname, "dilation", dilation, nd, 1),
    )


def tf_transpose_padding(
    input_size: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    padding: str = "SAME",
    output_size: Sequence[int] | None = None,
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """TensorFlow's transposed convolution as ``padding`` pairs and ``output_padding``.

    ``tf.nn.conv2d_transpose(y, k, output_shape, strides, padding)`` is the gradient of
    ``tf.nn.conv2d`` (with ``padding``) at an input of size ``output_shape``. Its samples are
    those of the full transposed output (``(n - 1) * s + d * (k - 1) + 1`` per dim) from the
    forward ``'SAME'`` padding's ``before`` on (0 for ``'VALID'``), zero past its end. So
    ``trueconv.conv_transpose2d(y, w, stride, padding=pads, output_padding=extra)`` with
    ``pads, extra = tf_transpose_padding(y.shape[2:], w.shape[2:], stride, ...)`` is the
    one-call port for any ``output_size``; without it, the size is Keras'
    ``Conv2DTranspose(..., output_padding=None)``: ``n * s`` (``'SAME'``) or
    ``(n - 1) * s + max(d * (k - 1) + 1, s)`` (``'VALID'``), which ``padding='SAME'`` /
    ``'VALID'`` of the transposed functions and modules give directly.

    Parameters
    ----------
    input_size : sequence of int
        Spatial sizes of the transposed convolution's input (e.g. ``y.shape[2:]``).
    kernel_size, stride, dilation : int or sequence of int
        Per spatial dim, or one for all.
    padding : {'SAME', 'VALID'}, optional
        TensorFlow's padding of the forward convolution.
    output_size : sequence of int, optional
        TensorFlow's ``output_shape`` (spatial part). Each must be one that the forward
        convolution maps to ``input_size``.

    Returns
    -------
    pads : tuple of (int, int)
        ``(before, after)`` per spatial dim: samples cropped from each end of the full output.
    output_padding : tuple of int
        Zeros appended past the full output's end, per dim (less than the stride).

    Raises
    ------
    ValueError
        Non-positive sizes, an unknown ``padding``, or an ``output_size`` that the forward
        convolution does not map to ``input_size``.
    TypeError
        Non-integer values.

    Examples
    --------
    Keras ``Conv2DTranspose(filters, 3, strides=2, padding='same')`` on 4 × 4 inputs crops
    one sample at the end only (torch's symmetric ``padding=1, output_padding=1`` is one
    sample off):

    >>> import trueconv
    >>> trueconv.tf_transpose_padding((4, 4), 3, stride=2)
    (((0, 1), (0, 1)), (0, 0))
    >>> trueconv.tf_transpose_padding((4,), 2, stride=1)  # even kernel, stride 1
    (((0, 1),), (0,))
    """
    fname = "tf_transpose_padding"
    n, k, s, d = _sizes(fname, input_size, kernel_size, stride, dilation)
    nd = len(n)
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"{fname}(): padding must be 'SAME' or 'VALID'; got {padding!r}.")
    m = None
    if output_size is not None:
        if not isinstance(output_size, (Sequence, torch.Size)) or isinstance(output_size, str):
            raise TypeError(
                f"{fname}(): output_size must be a sequence of ints; got {output_size!r}."
            )
        m = int_tuple(fname, "output_size", tuple(output_size), nd, 1)
        for mi, ni, ki, si, di in zip(m, n, k, s, d):
            span = di * (ki - 1) + 1
            forward = -(-mi // si) if padding == "SAME" else (mi - span) // si + 1
            if forward != ni:
                raise ValueError(
                    f"{fname}(): output_size {tuple(m)} is not one that a stride-{si} "
                    f"{padding!r} convolution maps to input_size {tuple(n)}."
                )
    return tf_transpose_pads(n, k, s, d, padding, m)


_KERAS_LAYERS = {
    "Conv1D": (1, False),
    "Conv2D": (2, False),
    "Conv3D": (3, False),
    "Conv1DTranspose": (1, True),
    "Conv2DTranspose": (2, True),
    "Conv3DTranspose": (3, True),
}


def from_keras(
    layer: Any = None,
    *,
    config: dict[str, Any] | None = None,
    weights: Sequence[Any] | None = None,
    method: str = "auto",
) -> torch.nn.Module:
    """A ``trueconv.nn`` module that computes what a Keras convolution layer computes.

    Reads the layer's configuration and weights (``layer.get_config()``,
    ``layer.get_weights()``; or pass ``config`` (with ``class_name``) and ``weights`` as Keras
    saves them), so TensorFlow is not needed. Keras kernels are correlation kernels in
    ``(*spatial, in, out)`` (transposed: ``(*spatial, out, in)``); the module gets them
    flipped, in torch's layout. ``padding='same'``/``'valid'`` become TensorFlow's
    ``'SAME'``/``'VALID'`` (exact for every stride and dilation, transposed layers with Keras'
    output size), ``'causal'`` (``Conv1D``) a left padding of ``dilation * (k - 1)``.

    The module is channels-first: for Keras' default ``data_format='channels_last'``, feed
    ``x.permute(0, nd + 1, 1, ..., nd)`` and permute the result back.

    Parameters
    ----------
    layer : keras Conv1D/2D/3D or Conv1D/2D/3DTranspose, optional
        A built layer.
    config : dict, optional
        Instead of ``layer``: its ``get_config()`` plus ``'class_name'``.
    weights : sequence of array_like, optional
        With ``config``: ``[kernel]`` or ``[kernel, bias]``.
    method : {'auto', 'direct', 'fft'}, optional
        The module's method.

    Returns
    -------
    torch.nn.Module
        A ``trueconv.nn.Conv{1,2,3}d`` or ``ConvTranspose{1,2,3}d`` with float32 or float64
        parameters (the kernel's dtype).

    Raises
    ------
    ValueError
        A layer kind, activation (other than ``'linear'``), ``output_padding`` (transposed
        layers: only Keras' default ``None``) or padding that has no exact equivalent, or
        weights that do not fit the configuration.
    TypeError
        Neither a layer nor a ``config`` with ``weights``.

    Examples
    --------
    A Keras ``Conv2D(4, 3, strides=2, padding='same')`` as Keras saves it:

    >>> import numpy as np
    >>> import trueconv
    >>> cfg = {"class_name": "Conv2D", "filters": 4, "kernel_size": (3, 3),
    ...        "strides": (2, 2), "padding": "same", "dilation_rate": (1, 1),
    ...        "use_bias": True, "activation": "linear"}
    >>> m = trueconv.from_keras(config=cfg, weights=[np.ones((3, 3, 2, 4), "float32"),
    ...                                              np.zeros(4, "float32")])
    >>> m
    Conv2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=SAME, method='auto')
    """
    fname = "from_keras"
    if layer is not None:
        if not (hasattr(layer, "get_config") and hasattr(layer, "get_weights")):
            raise TypeError(
                f"{fname}(): layer must be a Keras convolution layer (with get_config() and "
                f"get_weights()); got {type(layer).__name__}."
            )
        config = {"class_name": type(layer).__name__, **layer.get_config()}
        weights = layer.get_weights()
    if config is None or weights is None:
        raise TypeError(f"{fname}(): pass a Keras layer, or config= and weights=.")
    kind = config.get("class_name")
    if kind not in _KERAS_LAYERS:
        raise ValueError(
            f"{fname}(): layer must be one of {', '.join(_KERAS_LAYERS)}; got {kind!r}."
        )
    nd, transposed = _KERAS_LAYERS[kind]
    activation = config.get("activation", "linear")
    if activation not in (None, "linear"):
        raise ValueError(
            f"{fname}(): activation={activation!r} is not a convolution; build the layer with "
            "activation=None and apply the activation after the module."
        )
    if len(weights) not in (1, 2):
        raise ValueError(f"{fname}(): weights must be [kernel] or [kernel, bias]; got "
                         f"{len(weights)} arrays.")  # fmt: skip
    kernel = _as_tensor(fname, "weights[0]", weights[0])
    if kernel.ndim != nd + 2:
        raise ValueError(
            f"{fname}(): a {kind} kernel must be {nd + 2}-D; got shape {tuple(kernel.shape)}."
        )
    w = tf_kernel_to_torch(kernel, flip=True)
    bias = _as_tensor(fname, "weights[1]", weights[1]) if len(weights) == 2 else None
    ks = tuple(int(v) for v in w.shape[2:])
    stride = int_tuple(fname, "strides", config.get("strides", 1), nd, 1)
    dilation = int_tuple(fname, "dilation_rate", config.get("dilation_rate", 1), nd, 1)
    groups = int(config.get("groups", 1))
    padding: Any = str(config.get("padding", "valid")).upper()
    if padding == "CAUSAL" and kind == "Conv1D":
        padding = ((dilation[0] * (ks[0] - 1), 0),)
    elif padding not in ("SAME", "VALID"):
        raise ValueError(f"{fname}(): padding={config.get('padding')!r} has no equivalent.")
    if transposed and config.get("output_padding") is not None:
        raise ValueError(
            f"{fname}(): output_padding={config['output_padding']!r}: only Keras' default None "
            "is converted (the output size then depends on the input's; use "
            "trueconv.tf_transpose_padding(..., output_size=...) with the functional API)."
        )
    import trueconv.nn as tnn  # the modules import this module's helpers

    channels = (w.shape[0], w.shape[1] * groups) if not transposed else (w.shape[0], w.shape[1])
    kwargs: dict[str, Any] = {
        "kernel_size": ks,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "bias": bias is not None,
        "dtype": w.dtype,
        "method": method,
    }
    module: ConvNd
    if transposed:
        module = getattr(tnn, f"ConvTranspose{nd}d")(channels[0], channels[1], **kwargs)
    else:
        module = getattr(tnn, f"Conv{nd}d")(channels[1], channels[0], groups=groups, **kwargs)
    weight, b = module.weight, module.bias
    with torch.no_grad():
        if tuple(weight.shape) != tuple(w.shape):
            raise ValueError(
                f"{fname}(): the kernel of shape {tuple(kernel.shape)} does not fit the "
                f"configuration (expected torch weight {tuple(weight.shape)})."
            )
        weight.copy_(w)
        if bias is not None and b is not None:
            b.copy_(bias.reshape(-1))
    return module
