"""The NN API: ``torch.nn.functional`` convolutions that convolve (the kernel flipped).

``trueconv.conv2d(x, w, ...)`` is ``F.conv2d(x, w.flip(spatial dims), ...)`` for every argument
torch accepts, and ``trueconv.conv_transpose2d(y, w, ...)`` is ``F.conv_transpose2d`` on the
same flipped weight -- the exact adjoint of ``conv2d`` with that weight. Each function reads
normalise (:mod:`trueconv.nn._spec`) -> extend the input (:mod:`trueconv.core.boundary`, the signal
API's code) -> choose (:mod:`trueconv.nn._plan`) -> run (``F.convNd`` or
:mod:`trueconv.nn._fft`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from trueconv.core.boundary import extend
from trueconv.core.static import from_plain, specialized_shape, static, to_plain
from trueconv.core.torch_internals import any_autocast, autocast_dtype
from trueconv.nn import _fft, _plan
from trueconv.nn._spec import NNSpec, Pads, is_integer, normalize_conv, normalize_conv_transpose
from trueconv.nn._typing import NNMethod, PaddingMode, PaddingString, TFPadding

__all__ = [
    "choose_method",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]

#: ``padding`` as the NN API takes it: torch's forms plus ``'full'`` and ``(before, after)`` pairs.
PaddingArg = PaddingString | int | tuple[int, ...] | tuple[tuple[int, int], ...]
#: ``padding`` of the transposed functions: torch's ints, (before, after) crops, TF's strings.
TransposedPaddingArg = TFPadding | int | tuple[int, ...] | tuple[tuple[int, int], ...]
IntArg = int | tuple[int, ...]

_CONV: dict[int, Callable[..., torch.Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T: dict[int, Callable[..., torch.Tensor]] = {
    1: F.conv_transpose1d,
    2: F.conv_transpose2d,
    3: F.conv_transpose3d,
}

_CONV_NOTES = """
    Definition: for every argument torch accepts, ``trueconv.convNd(x, w, ...)`` equals
    ``F.convNd(x, w.flip(spatial dims), ...)``: along each spatial dim
    ``y[j] = sum_m x_padded[j * stride + m * dilation] * w[K - 1 - m]``, a true convolution
    (summed over input channels, per group), where torch computes a cross-correlation.

    Output size per spatial dim, for input length ``n``, kernel length ``k``, dilation ``d``,
    stride ``s`` and padding ``(before, after)``:
    ``(n + before + after - d * (k - 1) - 1) // s + 1``, where

    - ``'valid'``: no padding.
    - ``'same'``: ``d * (k - 1)`` samples in all, the odd one after (torch's and TensorFlow's
      ``'SAME'`` rule), so the output has the input's size. For an even kernel this is one
      sample later than the signal API's (scipy's) ``'same'``; see :func:`conv1d`.
    - ``'full'``: ``d * (k - 1)`` on both sides, every point where input and kernel overlap.
    - ``'SAME'`` / ``'VALID'``: TensorFlow's rules for every stride and dilation; ``'SAME'``
      pads ``max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)`` in all, the odd sample
      after (:func:`trueconv.tf_same_padding` spells the pairs out).

    ``padding_mode`` extends the input with the signal API's boundary code, for any pad size
    (``numpy.pad`` semantics), for input ``a b c d``:

    =============  ============================  ======================
    padding_mode   extension                     numpy.pad / torch
    =============  ============================  ======================
    ``zeros``      ``0 0 | a b c d | 0 0``       constant / ``zeros``
    ``reflect``    ``c b | a b c d | c b``       reflect / ``reflect``
    ``replicate``  ``a a | a b c d | d d``       edge / ``replicate``
    ``circular``   ``c d | a b c d | a b``       wrap / ``circular``
    ``symmetric``  ``b a | a b c d | d c``       symmetric / (none)
    =============  ============================  ======================

    Methods: ``'direct'`` runs ``F.convNd`` on the flipped weight (bit-identical to it);
    ``'fft'`` multiplies spectra and mixes channels per frequency (equal to float tolerance,
    with stride, dilation, groups and bias); ``'auto'`` runs the one the fitted cost model
    prices cheaper (the FFT for large kernels and float64, direct for many channels and small
    kernels). Dtypes: those of ``F.convNd`` (input, weight
    and bias alike), plus exact integers on CPU; float16/bfloat16 go through float32 in the FFT.
    Under ``torch.autocast`` the operands are cast as torch casts ``F.convNd``'s (floating ones
    other than float64 to the autocast dtype, also when they differ): the direct method computes
    in that dtype (torch's own result), the FFT in float32, and both return it.

    Supports: batched and unbatched input, ``channels_last``, CPU and CUDA, autograd (and
    double backward, and forward mode), ``torch.compile(fullgraph=True)`` (planned at trace
    time; a new shape under dynamic shapes compiles its own graph), ``torch.func`` (``vmap``,
    ``grad``, ``jvp``), ``torch.jit.trace`` (shapes are planned in Python: a trace holds for its
    input shapes) and ``torch.onnx.export``
    (``'auto'`` runs ``'direct'`` under ``torch.export``; the FFT's complex spectra have no
    ONNX form).
"""

_CONV_T_NOTES = """
    Definition: ``conv_transposeNd(y, w, ...)`` equals ``F.conv_transposeNd(y,
    w.flip(spatial dims), ...)``. It is the adjoint of :func:`convNd` with the same weight,
    stride, padding, dilation and groups: ``<convNd(x, w), y> = <x, conv_transposeNd(y, w)>``,
    which makes it the gradient of ``convNd`` with respect to its input. ``output_padding``
    (smaller than ``stride`` or ``dilation``) picks among the input sizes a strided
    ``convNd`` maps to the same output size.

    Output size per spatial dim, for input length ``n``: ``(n - 1) * stride - 2 * padding +
    dilation * (k - 1) + output_padding + 1``; with ``(before, after)`` pairs, ``before +
    after`` in place of ``2 * padding`` (the samples cropped from each end of the full output).
    ``padding='SAME'`` / ``'VALID'`` give TensorFlow's ``conv2d_transpose`` with Keras' output
    size (``n * stride`` for ``'SAME'``, ``(n - 1) * stride + max(dilation * (k - 1) + 1,
    stride)`` for ``'VALID'``; ``output_padding`` must then be 0); for another TensorFlow
    ``output_shape`` use :func:`trueconv.tf_transpose_padding`.

    Methods, dtypes and support as for :func:`conv2d`; the FFT method inserts ``stride - 1``
    zeros between input samples and convolves with the flipped dilated kernel.
"""


def _with_notes(notes: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = fn.__doc__ or ""
        fn.__doc__ = doc.replace("    Notes\n    -----\n", "    Notes\n    -----" + notes, 1)
        return fn

    return decorate


def _is_zero(pads: Pads) -> bool:
    return not any(b or a for b, a in pads)


def _direct_conv(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, spec: NNSpec, pads: Pads
) -> torch.Tensor:
    if is_integer(spec.dtype):  # int64 everywhere: exact, and narrower results wrap alike
        x, w = x.to(torch.int64), w.to(torch.int64)
        bias = None if bias is None else bias.to(torch.int64)
    # traced once under torch.compile: the cache would only draw a warning there
    args = _conv_args.__wrapped__ if torch.compiler.is_compiling() else _conv_args
    first, stride, padding, dilation = args(pads, spec.stride, spec.dilation)
    if first is not None:
        x = F.pad(x, first)
    y = _CONV[spec.nd](x, w.flip(*_SPATIAL[spec.nd]), bias, stride, padding, dilation, spec.groups)
    return y if y.dtype == spec.dtype else y.to(spec.dtype)


#: The spatial dims of a batched operand, per number of spatial dims (passed to ``flip`` as
#: separate arguments: 1.7 against 2.3 us for a tuple, torch 2.13).
_SPATIAL = {1: (2,), 2: (2, 3), 3: (2, 3, 4)}


#: An ``F.convNd`` argument: one int for every spatial dim, or one per dim.
_IntArgs = int | tuple[int, ...]


@functools.lru_cache(maxsize=1024)
def _conv_args(
    pads: Pads, stride: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[tuple[int, ...] | None, _IntArgs, _IntArgs, _IntArgs]:
    """The direct method's ``F.pad`` list where it pads first
    (:func:`trueconv.nn._plan.pads_first`), else ``None``, and ``F.convNd``'s ``stride``,
    ``padding`` and ``dilation``, each one int where its entries are equal (torch parses an
    int faster than a tuple: 0.3 us of a 5.5 us ``F.conv2d`` on 1×1×32² ⊛ 3²). From the
    call's shapes alone, so a repeated call does not work them out again."""
    if _plan.pads_first(pads):
        first: tuple[int, ...] | None = tuple(_fft.flat_pads(pads))
        padding: tuple[int, ...] = (0,) * len(pads)
    else:
        first, padding = None, tuple(b for b, _ in pads)
    return first, _compact(stride), _compact(padding), _compact(dilation)


def _compact(values: tuple[int, ...]) -> _IntArgs:
    """``values[0]`` where every entry equals it, else ``values``."""
    return values[0] if values and values.count(values[0]) == len(values) else values


def _prepared(
    fname: str, nd: int, transposed: bool, *args: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, NNSpec, str]:
    """Validate a call and choose its method: operands, spec and ``'direct'`` or ``'fft'``.
    Under ``torch.compile`` both are made at trace time from the operands' static facts
    (:mod:`trueconv.core.static`): planning is Python on shapes, not part of the graph."""
    normalize = normalize_conv_transpose if transposed else normalize_conv
    if not torch.compiler.is_compiling():
        if any_autocast():
            args = _autocast(*args)
        x, w, b, spec = normalize(fname, nd, *args)
        # is_cpu first: an attribute read against a device object made (0.05 against 0.28 us)
        return x, w, b, spec, _plan.choose(spec, "cpu" if x.is_cpu else x.device.type)
    args = _autocast(*args)
    operands, options = args[:3], args[3:]
    facts = tuple(
        (specialized_shape(t), t.dtype, t.device) if isinstance(t, torch.Tensor) else ("raw", t)
        for t in operands
    )
    spec, method = from_plain(_static_choice(fname, nd, transposed, facts, options))
    x, w, b = operands
    return x, w, b, spec, method


def _autocast(*args: Any) -> tuple[Any, ...]:
    """The arguments with the operands cast as ``torch.autocast`` casts ``F.convNd``'s: under
    an enabled autocast on the input's device, floating operands other than float64 go to the
    autocast dtype (also when they differ, as torch's convolutions accept), so the direct
    method computes in it and the FFT (in float32 for half precisions) returns it."""
    x = args[0]
    if not isinstance(x, torch.Tensor):
        return args
    dtype = autocast_dtype(x.device.type)
    if dtype is None:
        return args
    operands = [
        t.to(dtype)
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64
        else t
        for t in args[:3]
    ]
    return (*operands, *args[3:])


@static
def _static_choice(
    fname: str, nd: int, transposed: bool, facts: tuple[Any, ...], options: tuple[Any, ...]
) -> Any:
    """Spec and method of a traced call (plain tuples), validated on one-element stand-ins of
    the operands; raises as an eager call would."""
    operands = [
        f[1] if f[0] == "raw" else torch.zeros((), dtype=f[1], device=f[2]).expand(f[0])
        for f in facts
    ]
    normalize = normalize_conv_transpose if transposed else normalize_conv
    x, _, _, spec = normalize(fname, nd, *operands, *options)
    return to_plain((spec, _plan.choose(spec, x.device.type)))


def _conv(fname: str, nd: int, *args: Any) -> torch.Tensor:
    x, w, b, spec, method = _prepared(fname, nd, False, *args)
    if not spec.batched:
        x = x.unsqueeze(0)
    pads = spec.pads
    if spec.boundary != "fill" and not _is_zero(pads):
        x = extend(x, range(2, 2 + nd), pads, spec.boundary)
        pads = tuple((0, 0) for _ in pads)
    y = _fft.conv(x, w, b, spec, pads) if method == "fft" else _direct_conv(x, w, b, spec, pads)
    return y if spec.batched else y.squeeze(0)


def choose_method(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntArg = 1,
    padding: PaddingArg = 0,
    dilation: IntArg = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
) -> str:
    """The method ``conv1d/2d/3d(..., method='auto')`` runs for these arguments.

    Planned from shapes, dtypes and the device alone (the cost model's pick, as the call makes
    it); nothing is computed. The rank comes from ``weight`` (``(C_out, C_in / groups,
    *kernel)``).

    Parameters
    ----------
    input, weight, stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d` (and :func:`conv1d`, :func:`conv3d`).

    Returns
    -------
    str
        ``'direct'`` (``F.convNd`` on the flipped weight) or ``'fft'``.

    Raises
    ------
    ValueError, TypeError
        As the convolution would.

    Examples
    --------
    >>> import torch
    >>> import trueconv.nn.functional as tcF
    >>> tcF.choose_method(torch.zeros(1, 3, 64, 64), torch.zeros(8, 3, 3, 3), padding="same")
    'direct'
    >>> tcF.choose_method(torch.zeros(8, 3, 512, 512), torch.zeros(16, 3, 31, 31), padding="same")
    'fft'
    """
    nd = weight.ndim - 2 if isinstance(weight, torch.Tensor) else 0
    if nd not in (1, 2, 3):
        raise ValueError(
            "choose_method(): weight must be a tensor of shape (C_out, C_in / groups, *kernel) "
            f"with 1 to 3 kernel dims; got {getattr(weight, 'shape', type(weight).__name__)}."
        )
    spec = normalize_conv(
        f"conv{nd}d", nd, input, weight, None, stride, padding, dilation, groups, padding_mode,
        "auto",
    )[3]  # fmt: skip
    return _plan.choose(spec, input.device.type)


def _conv_transpose(fname: str, nd: int, *args: Any) -> torch.Tensor:
    x, w, b, spec, method = _prepared(fname, nd, True, *args)
    if not spec.batched:
        x = x.unsqueeze(0)
    if method == "fft":
        y = _fft.conv_transpose(x, w, b, spec)
    else:
        spatial = list(range(2, 2 + nd))
        if is_integer(spec.dtype):  # torch's CPU transposed conv has int64 only
            x, w = x.to(torch.int64), w.to(torch.int64)
            b = None if b is None else b.to(torch.int64)
        if all(p == q for p, q in spec.pads):  # torch's own call
            y = _CONV_T[nd](
                x,
                w.flip(spatial),
                b,
                spec.stride,
                tuple(p for p, _ in spec.pads),
                spec.output_padding,
                spec.groups,
                spec.dilation,
            )
        else:  # the full output, cropped (before, after - output_padding); bias after
            y = _CONV_T[nd](x, w.flip(spatial), None, spec.stride, 0, 0, spec.groups, spec.dilation)
            crops = [(-p, op - q) for (p, q), op in zip(spec.pads, spec.output_padding)]
            y = F.pad(y, _fft.flat_pads(crops))
            if b is not None:
                y = y + b.reshape(-1, *(1,) * nd)
        y = y if y.dtype == spec.dtype else y.to(spec.dtype)
    return y if spec.batched else y.squeeze(0)


@_with_notes(_CONV_NOTES)
def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: PaddingArg = 0,
    dilation: IntArg = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    method: NNMethod = "auto",
) -> torch.Tensor:
    """1-D convolution layer that convolves: ``F.conv1d`` on the flipped weight.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : Tensor
        ``(C_out, C_in / groups, K)``, a convolution kernel per channel pair.
    bias : Tensor, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of int, optional
        As in ``F.conv1d``; positive.
    padding : str, int, tuple of int or of (before, after), optional
        ``'valid'``, ``'same'``, ``'full'``, ``'SAME'``, ``'VALID'``; zero padding, or the
        extent of the ``padding_mode`` extension (see Notes).
    groups : int, optional
        Blocked connections from input to output channels, as in ``F.conv1d``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}, optional
        How the input is extended by ``padding`` (torch's module argument, here a keyword).
    method : {'auto', 'direct', 'fft'}, optional
        How to compute (see Notes).

    Returns
    -------
    Tensor
        ``(N, C_out, L_out)`` (or ``(C_out, L_out)``), the input's dtype.

    Raises
    ------
    ValueError
        Wrong ranks or channel counts, non-positive stride/dilation, negative padding,
        ``'same'`` with stride > 1, an input smaller than the kernel, unknown
        ``padding``/``padding_mode``/``method``.
    TypeError
        Non-tensors, mismatched or unsupported dtypes, non-integer arguments.

    See Also
    --------
    conv2d : the full description.
    trueconv.convolve : the signal API (scipy's modes and alignment).

    Notes
    -----
    Examples
    --------
    An impulse reproduces the kernel in order (``F.conv1d`` would reverse it):

    >>> import torch
    >>> import trueconv
    >>> x = torch.tensor([[[0., 1., 0., 0., 0.]]])
    >>> w = torch.tensor([[[1., 2., 3.]]])
    >>> trueconv.conv1d(x, w, padding="full")
    tensor([[[0., 1., 2., 3., 0., 0., 0.]]])

    ``padding='same'`` puts the odd sample of an even kernel after (torch, TensorFlow), one
    sample later than scipy's ``'same'`` (``trueconv.convolve``):

    >>> x = torch.tensor([[[1., 2., 3., 4.]]])
    >>> trueconv.conv1d(x, torch.tensor([[[1., 1.]]]), padding="same")
    tensor([[[3., 5., 7., 4.]]])
    >>> trueconv.convolve(x[0, 0], torch.tensor([1., 1.]), "same")
    tensor([1., 3., 5., 7.])
    """
    return _conv(
        "conv1d", 1, input, weight, bias, stride, padding, dilation, groups, padding_mode, method
    )


@_with_notes(_CONV_NOTES)
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: PaddingArg = 0,
    dilation: IntArg = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    method: NNMethod = "auto",
) -> torch.Tensor:
    """2-D convolution layer that convolves: ``F.conv2d`` on the flipped weight.

    A drop-in for ``torch.nn.functional.conv2d`` when the weights are convolution kernels (a
    paper's math, Theano/Lasagne models, TensorFlow code that flips its kernels).

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; ``channels_last`` is kept.
    weight : Tensor
        ``(C_out, C_in / groups, kH, kW)``, a convolution kernel per channel pair.
    bias : Tensor, optional
        ``(C_out,)``.
    stride : int or tuple of int, optional
        Step between output samples; positive.
    padding : str, int, tuple of int or of (before, after), optional
        How far the input is extended on each side (see Notes):

        - ``'valid'`` or ``0`` (default): none.
        - ``'same'``: output size = input size (stride 1 only), the odd sample after.
        - ``'full'``: ``dilation * (k - 1)`` on both sides.
        - ``'SAME'``, ``'VALID'``: TensorFlow's, for every stride and dilation.
        - ``p`` or ``(pH, pW)``: symmetric, as torch.
        - ``((top, bottom), (left, right))``: asymmetric.
    dilation : int or tuple of int, optional
        Spacing between kernel taps; positive.
    groups : int, optional
        Blocked connections: ``C_in`` and ``C_out`` must be divisible by it.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}, optional
        How the input is extended by ``padding`` (see Notes). torch's module argument, here a
        keyword; ``'symmetric'`` (half-sample, edge repeated) is an addition.
    method : {'auto', 'direct', 'fft'}, optional
        How to compute (see Notes).

    Returns
    -------
    Tensor
        ``(N, C_out, H_out, W_out)`` (or unbatched), the input's dtype.

    Raises
    ------
    ValueError
        Wrong ranks or channel counts, non-positive stride/dilation, negative padding,
        ``'same'`` with stride > 1, an input smaller than the kernel, unknown
        ``padding``/``padding_mode``/``method``.
    TypeError
        Non-tensors, mismatched or unsupported dtypes, non-integer arguments.

    See Also
    --------
    conv_transpose2d : the adjoint.
    trueconv.nn.Conv2d : the module.
    trueconv.flip_kernel : convert between correlation and convolution kernels.
    trueconv.convolve : the signal API (scipy's modes and alignment).

    Notes
    -----
    Examples
    --------
    The seed example, a horizontal edge filter on a square: convolution finds the rising edge
    negative, cross-correlation (``F.conv2d``) gets the sign the other way round:

    >>> import torch
    >>> import torch.nn.functional as F
    >>> import trueconv
    >>> image = torch.zeros(1, 1, 5, 7, dtype=torch.int64)
    >>> image[..., 1:4, 2:5] = 1
    >>> edge = torch.tensor([[[[-1, 1]]]])
    >>> trueconv.conv2d(image, edge)
    tensor([[[[ 0,  0,  0,  0,  0,  0],
              [ 0, -1,  0,  0,  1,  0],
              [ 0, -1,  0,  0,  1,  0],
              [ 0, -1,  0,  0,  1,  0],
              [ 0,  0,  0,  0,  0,  0]]]])
    >>> torch.equal(trueconv.conv2d(image, edge), F.conv2d(image, edge.flip(-1, -2)))
    True

    Every method agrees; ``padding_mode`` takes any pad size:

    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> w = torch.ones(1, 1, 3, 3)
    >>> trueconv.conv2d(x, w, padding=1, padding_mode="symmetric", method="fft").round()
    tensor([[[[ 15.,  21.,  30.,  36.],
              [ 39.,  45.,  54.,  60.],
              [ 75.,  81.,  90.,  96.],
              [ 99., 105., 114., 120.]]]])
    """
    return _conv(
        "conv2d", 2, input, weight, bias, stride, padding, dilation, groups, padding_mode, method
    )


@_with_notes(_CONV_NOTES)
def conv3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: PaddingArg = 0,
    dilation: IntArg = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    method: NNMethod = "auto",
) -> torch.Tensor:
    """3-D convolution layer that convolves: ``F.conv3d`` on the flipped weight.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight : Tensor
        ``(C_out, C_in / groups, kD, kH, kW)``.
    bias : Tensor, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of int, optional
        As in ``F.conv3d``; positive.
    padding : str, int, tuple of int or of (before, after), optional
        As in :func:`conv2d`.
    groups : int, optional
        As in ``F.conv3d``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}, optional
        As in :func:`conv2d`.
    method : {'auto', 'direct', 'fft'}, optional
        As in :func:`conv2d`.

    Returns
    -------
    Tensor
        ``(N, C_out, D_out, H_out, W_out)`` (or unbatched), the input's dtype.

    Raises
    ------
    ValueError
        As :func:`conv2d`.
    TypeError
        As :func:`conv2d`.

    See Also
    --------
    conv2d : the full description.

    Notes
    -----
    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> x = torch.zeros(1, 1, 3, 3, 3)
    >>> x[0, 0, 1, 1, 1] = 1.0
    >>> w = torch.arange(8.).reshape(1, 1, 2, 2, 2)
    >>> torch.equal(trueconv.conv3d(x, w, padding="full")[0, 0, 1:3, 1:3, 1:3], w[0, 0])
    True
    """
    return _conv(
        "conv3d", 3, input, weight, bias, stride, padding, dilation, groups, padding_mode, method
    )


@_with_notes(_CONV_T_NOTES)
def conv_transpose1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: TransposedPaddingArg = 0,
    output_padding: IntArg = 0,
    groups: int = 1,
    dilation: IntArg = 1,
    *,
    method: NNMethod = "auto",
) -> torch.Tensor:
    """1-D transposed convolution: ``F.conv_transpose1d`` on the flipped weight.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : Tensor
        ``(C_in, C_out / groups, K)``, torch's transposed layout.
    bias : Tensor, optional
        ``(C_out,)``.
    stride, output_padding, dilation : int or tuple of int, optional
        As in ``F.conv_transpose1d``.
    padding : int, tuple of int or of (before, after), or {'SAME', 'VALID'}, optional
        As in :func:`conv_transpose2d`.
    groups : int, optional
        As in ``F.conv_transpose1d``.
    method : {'auto', 'direct', 'fft'}, optional
        As in :func:`conv2d`.

    Returns
    -------
    Tensor
        ``(N, C_out, L_out)`` (or unbatched), the input's dtype.

    Raises
    ------
    ValueError
        Wrong ranks or channel counts, non-positive stride/dilation, negative padding,
        ``output_padding`` not smaller than stride or dilation, an empty output.
    TypeError
        Non-tensors, mismatched or unsupported dtypes, non-integer arguments.

    See Also
    --------
    conv1d : the operation this is the adjoint of.

    Notes
    -----
    Examples
    --------
    Each input sample scatters the kernel, ``stride`` samples apart. As the adjoint of a
    convolution it scatters it reversed (the adjoint of a convolution is a correlation),
    where ``F.conv_transpose1d`` scatters it in order:

    >>> import torch
    >>> import trueconv
    >>> y = torch.tensor([[[1., 10.]]])
    >>> trueconv.conv_transpose1d(y, torch.tensor([[[1., 2., 3.]]]), stride=2)
    tensor([[[ 3.,  2., 31., 20., 10.]]])
    """
    return _conv_transpose(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
    )


@_with_notes(_CONV_T_NOTES)
def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: TransposedPaddingArg = 0,
    output_padding: IntArg = 0,
    groups: int = 1,
    dilation: IntArg = 1,
    *,
    method: NNMethod = "auto",
) -> torch.Tensor:
    """2-D transposed convolution: ``F.conv_transpose2d`` on the flipped weight.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight : Tensor
        ``(C_in, C_out / groups, kH, kW)``, torch's transposed layout.
    bias : Tensor, optional
        ``(C_out,)``.
    stride : int or tuple of int, optional
        Upsampling factor; positive.
    padding : int, tuple of int or of (before, after), or {'SAME', 'VALID'}, optional
        Samples cropped from each end of the full output (``dilation * (k - 1) - padding``
        of zero padding in the equivalent convolution); ``(before, after)`` pairs crop each
        end apart; ``'SAME'``/``'VALID'`` are TensorFlow's (see Notes).
    output_padding : int or tuple of int, optional
        Extra samples at the end of each dim; smaller than ``stride`` or ``dilation``.
    groups : int, optional
        As in ``F.conv_transpose2d``.
    dilation : int or tuple of int, optional
        Spacing between kernel taps; positive.
    method : {'auto', 'direct', 'fft'}, optional
        As in :func:`conv2d`.

    Returns
    -------
    Tensor
        ``(N, C_out, H_out, W_out)`` (or unbatched), the input's dtype.

    Raises
    ------
    ValueError
        As :func:`conv_transpose1d`.
    TypeError
        As :func:`conv_transpose1d`.

    See Also
    --------
    conv2d : the operation this is the adjoint of.
    trueconv.nn.ConvTranspose2d : the module.

    Notes
    -----
    Examples
    --------
    The adjoint of :func:`conv2d` with the same weight:

    >>> import torch
    >>> import trueconv
    >>> x = torch.arange(12.).reshape(1, 1, 3, 4)
    >>> w = torch.tensor([[[[1., 2.], [3., 4.]]]])
    >>> y = torch.tensor([[[[1., 0., -1.], [2., 1., 0.]]]])
    >>> lhs = (trueconv.conv2d(x, w) * y).sum()
    >>> rhs = (x * trueconv.conv_transpose2d(y, w)).sum()
    >>> lhs, rhs
    (tensor(158.), tensor(158.))
    """
    return _conv_transpose(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
    )


@_with_notes(_CONV_T_NOTES)
def conv_transpose3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntArg = 1,
    padding: TransposedPaddingArg = 0,
    output_padding: IntArg = 0,
    groups: int = 1,
    dilation: IntArg = 1,
    *,
    method: NNMethod = "auto",
) -> torch.Tensor:
    """3-D transposed convolution: ``F.conv_transpose3d`` on the flipped weight.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight : Tensor
        ``(C_in, C_out / groups, kD, kH, kW)``, torch's transposed layout.
    bias : Tensor, optional
        ``(C_out,)``.
    stride, padding, output_padding, dilation : optional
        As in :func:`conv_transpose2d`.
    groups : int, optional
        As in ``F.conv_transpose3d``.
    method : {'auto', 'direct', 'fft'}, optional
        As in :func:`conv2d`.

    Returns
    -------
    Tensor
        ``(N, C_out, D_out, H_out, W_out)`` (or unbatched), the input's dtype.

    Raises
    ------
    ValueError
        As :func:`conv_transpose1d`.
    TypeError
        As :func:`conv_transpose1d`.

    See Also
    --------
    conv3d : the operation this is the adjoint of.

    Notes
    -----
    Examples
    --------
    >>> import torch
    >>> import trueconv
    >>> y = torch.ones(1, 1, 1, 1, 1)
    >>> w = torch.arange(8.).reshape(1, 1, 2, 2, 2)
    >>> torch.equal(trueconv.conv_transpose3d(y, w, stride=2), w.flip(-3, -2, -1))
    True
    """
    return _conv_transpose(
        "conv_transpose3d",
        3,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        method,
    )
