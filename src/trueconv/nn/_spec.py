"""Normalise the arguments of an NN-API call into a frozen :class:`NNSpec`.

The one place where the NN API raises user-facing errors (as :mod:`trueconv._spec` is for the
signal API): everything ``F.convNd`` / ``F.conv_transposeNd`` would reject is rejected here,
before any compute, with a message that names the function, the argument and the value.
Below this point nothing re-validates; a failure there is a bug of ours.

Layout: ``input`` is ``(B, C, *N)`` (batched) or ``(C, *N)``; ``weight`` is ``(O, C / groups,
*K)`` for a convolution and ``(C, O / groups, *K)`` for a transposed one, as in torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trueconv.core.dtypes import is_integer, static_shape
from trueconv.core.names import (
    SpecCache,
    canonical_method,
    choices,
    int_tuple,
    is_int,
    typed_key,
)
from trueconv.core.padding import tf_same_pads, tf_transpose_pads
from trueconv.core.static import register
from trueconv.nn._typing import (
    NN_METHODS,
    PADDING_MODE_BOUNDARY,
    PADDING_MODES,
    PADDING_STRINGS,
    TF_PADDINGS,
)

Pads = tuple[tuple[int, int], ...]
#: A parsed ``padding`` argument: one of :data:`PADDING_STRINGS`, or ``(before, after)`` pairs.
Padding = str | Pads

_SUPPORTED_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
)
#: Device types whose ``F.convNd`` has integer kernels (torch >= 2.1 on CPU).
INTEGER_DEVICES = frozenset({"cpu"})


@dataclass(frozen=True)
class NNSpec:
    """One NN-API call, described from shapes alone. Shapes are always the batched ones."""

    fname: str
    nd: int  # number of spatial dims
    transposed: bool
    batched: bool  # whether the caller's input had a batch dim
    method: str  # as requested: 'auto', 'direct' or 'fft'
    boundary: str  # canonical boundary rule of padding_mode ('fill' for 'zeros')
    dtype: torch.dtype
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    # convolution: the extension of the input per spatial dim; transposed: (before, after),
    # the samples cropped from each end of the full transposed output
    pads: Pads
    output_padding: tuple[int, ...]  # transposed only (zeros otherwise)
    input_shape: tuple[int, ...]  # (B, C, *N)
    weight_shape: tuple[int, ...]
    output_shape: tuple[int, ...]  # (B, O, *out)

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.weight_shape[2:]

    @property
    def taps(self) -> int:
        """Kernel taps per (output, input) channel pair."""
        return math.prod(self.kernel_size)

    @property
    def empty(self) -> bool:
        return math.prod(self.output_shape) == 0 or math.prod(self.input_shape) == 0


def _err(fname: str, arg: str, allowed: str, got: Any) -> ValueError:
    return ValueError(f"{fname}(): {arg} must be {allowed}; got {got!r}.")


def canonical_padding_mode(fname: str, padding_mode: Any) -> str:
    """The boundary rule for ``padding_mode``, or a ValueError naming the accepted modes."""
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise _err(fname, "padding_mode", f"one of {choices(PADDING_MODES)}", padding_mode)
    return PADDING_MODE_BOUNDARY[padding_mode]


def parse_padding(fname: str, padding: Any, nd: int, *, transposed: bool = False) -> Padding:
    """Check ``padding`` and return it as a string or ``nd`` ``(before, after)`` pairs.

    Accepted: ``'valid'``, ``'same'``, ``'full'`` and TensorFlow's ``'SAME'``, ``'VALID'``; an
    int; a sequence of 1 or ``nd`` entries, each an int (both sides) or a ``(before, after)``
    pair. Transposed convolutions take TensorFlow's strings, ints and pairs (the samples
    cropped from each end of the full transposed output).
    """
    strings = TF_PADDINGS if transposed else PADDING_STRINGS
    allowed = (
        f"one of {choices(strings)}, a non-negative int, or a tuple of {nd} ints or "
        f"{nd} (before, after) pairs"
    )
    # unknown strings and wrong lengths are ValueErrors; non-integer values TypeErrors
    if isinstance(padding, str):
        if padding not in strings:
            hint = ""
            if padding.upper() in TF_PADDINGS:
                hint = f" ({padding.upper()!r} is TensorFlow's rule for every stride)"
            raise ValueError(f"{fname}(): padding must be {allowed}{hint}; got {padding!r}.")
        return padding
    if is_int(padding):
        entries: Sequence[Any] = (padding,) * nd
    elif isinstance(padding, (tuple, list)):
        if len(padding) not in (1, nd):
            raise _err(fname, "padding", allowed, padding)
        entries = tuple(padding) * (nd if len(padding) == 1 else 1)
    else:
        raise TypeError(f"{fname}(): padding must be {allowed}; got {padding!r}.")
    pairs = []
    for e in entries:
        if is_int(e):
            pairs.append((int(e), int(e)))
        elif isinstance(e, (tuple, list)) and all(is_int(v) for v in e):
            if len(e) != 2:
                raise _err(fname, "padding", allowed, padding)
            pairs.append((int(e[0]), int(e[1])))
        else:
            raise TypeError(f"{fname}(): padding must be {allowed}; got {padding!r}.")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{fname}(): padding must be non-negative; got {padding!r}.")
    return tuple(pairs)


def resolve_padding(
    padding: Padding,
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    input_size: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
) -> Pads:
    """``(before, after)`` per spatial dim. ``'same'`` puts the odd sample after, as torch;
    ``'SAME'`` is TensorFlow's rule for ``stride`` (needs ``input_size``; without it, as in a
    module's constructor, zeros stand in)."""
    if not isinstance(padding, str):
        return padding
    spans = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    if padding in ("valid", "VALID") or (padding == "SAME" and input_size is None):
        return tuple((0, 0) for _ in spans)
    if padding == "SAME":
        assert input_size is not None
        return tf_same_pads(input_size, kernel_size, stride or (1,) * len(spans), dilation)
    if padding == "same":
        return tuple((s // 2, s - s // 2) for s in spans)
    return tuple((s, s) for s in spans)  # 'full'


def _check_tensor(fname: str, arg: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fname}(): {arg} must be a torch.Tensor; got {type(t).__name__}.")
    if t.dtype not in _SUPPORTED_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in _SUPPORTED_DTYPES)
        raise TypeError(
            f"{fname}(): {arg} has dtype {str(t.dtype).removeprefix('torch.')}, which is not "
            f"supported; supported dtypes are {names}."
        )
    if t.layout != torch.strided:
        raise TypeError(f"{fname}(): {arg} must be a dense (strided) tensor; got {t.layout}.")
    return t


def _check_operands(
    fname: str, nd: int, input: Any, weight: Any, bias: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    x = _check_tensor(fname, "input", input)
    w = _check_tensor(fname, "weight", weight)
    b = None if bias is None else _check_tensor(fname, "bias", bias)
    for arg, t in (("weight", w), ("bias", b)):
        if t is None:
            continue
        if t.dtype != x.dtype:
            raise TypeError(
                f"{fname}(): input and {arg} must have the same dtype (as in torch); got input "
                f"{str(x.dtype).removeprefix('torch.')} and {arg} "
                f"{str(t.dtype).removeprefix('torch.')}."
            )
        if t.device != x.device:
            raise ValueError(
                f"{fname}(): input and {arg} must be on the same device; got input on "
                f"{x.device} and {arg} on {t.device}."
            )
    if is_integer(x.dtype) and x.device.type not in INTEGER_DEVICES:
        raise TypeError(
            f"{fname}(): integer dtypes are supported on "
            f"{', '.join(sorted(INTEGER_DEVICES))} only; got "
            f"{str(x.dtype).removeprefix('torch.')} on {x.device}."
        )
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{fname}(): input must be {nd + 1}-D (C, *spatial) or {nd + 2}-D (N, C, *spatial); "
            f"got a {x.ndim}-D tensor of shape {tuple(x.shape)}."
        )
    if w.ndim != nd + 2:
        raise ValueError(
            f"{fname}(): weight must be {nd + 2}-D; got a {w.ndim}-D tensor of shape "
            f"{tuple(w.shape)}."
        )
    if any(k < 1 for k in static_shape(w)[2:]):
        raise ValueError(
            f"{fname}(): weight must have non-empty spatial dims; got shape {tuple(w.shape)}."
        )
    return x, w, b


def _check_groups(fname: str, groups: Any) -> int:
    if not is_int(groups):
        raise TypeError(f"{fname}(): groups must be an int; got {groups!r}.")
    if groups < 1:
        raise ValueError(f"{fname}(): groups must be positive; got {groups!r}.")
    return int(groups)


def _check_bias(fname: str, b: torch.Tensor | None, out_channels: int) -> None:
    if b is not None and static_shape(b) != (out_channels,):
        raise ValueError(
            f"{fname}(): bias must have shape ({out_channels},), one value per output channel; "
            f"got shape {tuple(b.shape)}."
        )


def _channels(
    fname: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...], groups: int, transposed: bool
) -> int:
    """Check the channel counts against ``groups``; return the number of output channels."""
    c = x_shape[1]
    expected = w_shape[0] if transposed else w_shape[1] * groups
    hint = ""
    if c != expected and x_shape[-1] == expected and len(x_shape) > 2:
        nd = len(x_shape) - 2
        order = ", ".join(["0", str(nd + 1), *(str(i) for i in range(1, nd + 1))])
        hint = (
            f" Its last dim is {expected}: channels-last data (TensorFlow's NHWC) must be "
            f"made channels-first, x.permute({order}) for a batched input."
        )
    if transposed:
        if w_shape[0] % groups:
            raise ValueError(
                f"{fname}(): weight.shape[0] (input channels, {w_shape[0]}) must be divisible "
                f"by groups ({groups}); got weight of shape {w_shape}."
            )
        if c != w_shape[0]:
            raise ValueError(
                f"{fname}(): input has {c} channels but weight.shape[0] is {w_shape[0]}; "
                f"got input of shape {x_shape} and weight of shape {w_shape}.{hint}"
            )
        return w_shape[1] * groups
    if w_shape[0] % groups:
        raise ValueError(
            f"{fname}(): weight.shape[0] (output channels, {w_shape[0]}) must be divisible by "
            f"groups ({groups}); got weight of shape {w_shape}."
        )
    if c != w_shape[1] * groups:
        raise ValueError(
            f"{fname}(): input has {c} channels but weight.shape[1] * groups is "
            f"{w_shape[1]} * {groups} = {w_shape[1] * groups}; got input of shape {x_shape} "
            f"and weight of shape {w_shape}.{hint}"
        )
    return w_shape[0]


#: Specs of calls seen before, keyed on :func:`_call_key`.
_SPECS = SpecCache()


def _call_key(fname: str, operands: tuple[Any, ...], options: tuple[Any, ...]) -> Any:
    """A key from which a call's spec follows, or ``None`` where a call is validated afresh:
    the operands' types, dtypes, devices, layouts and shapes, and the type-tagged options
    (:func:`trueconv.core.names.typed_key`). Nothing is cached while tracing or compiling,
    where shapes may be symbolic."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    key: list[Any] = [fname]
    for t in operands:  # inline: a function call per operand cost a third of the key's time
        if t is None:
            key.append(None)
        elif type(t) is torch.Tensor:
            key.append((t.dtype, t.device, t.layout, t.shape))  # torch.Size: a tuple
        else:
            return None  # subclasses (and non-tensors) are validated every call
    opts = typed_key(options)
    if opts is None:
        return None
    key.append(opts)
    return tuple(key)


def normalize_conv(
    fname: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: Any,
    method: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, NNSpec]:
    """Validate a ``convNd`` call; return the operands and its spec. Raises before compute.

    A repeated call (same operand shapes, dtypes, devices and options) reuses the spec of the
    first: validation and planning depend on nothing else."""
    key = _call_key(
        fname, (input, weight, bias), (nd, stride, padding, dilation, groups, padding_mode, method)
    )
    args = (fname, nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, method)
    return input, weight, bias, _SPECS.get_or_make(key, lambda: _conv_spec(*args))


def _conv_spec(
    fname: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: Any,
    method: Any,
) -> NNSpec:
    """The spec of a ``convNd`` call, every check made."""
    method = canonical_method(fname, method, NN_METHODS)
    boundary = canonical_padding_mode(fname, padding_mode)
    parsed = parse_padding(fname, padding, nd)
    x, w, b = _check_operands(fname, nd, input, weight, bias)
    groups = _check_groups(fname, groups)
    stride_t = int_tuple(fname, "stride", stride, nd, 1)
    dilation_t = int_tuple(fname, "dilation", dilation, nd, 1)
    if parsed == "same" and any(s != 1 for s in stride_t):
        raise ValueError(
            f"{fname}(): padding='same' needs stride 1 (as in torch); got stride={stride!r}. "
            "For TensorFlow's strided 'SAME', pass padding='SAME'."
        )
    batched = x.ndim == nd + 2
    x_shape = static_shape(x) if batched else (1, *static_shape(x))
    w_shape = static_shape(w)
    out_channels = _channels(fname, x_shape, w_shape, groups, transposed=False)
    _check_bias(fname, b, out_channels)

    pads = resolve_padding(parsed, w_shape[2:], dilation_t, x_shape[2:], stride_t)
    padded = tuple(n + b + a for n, (b, a) in zip(x_shape[2:], pads))
    spans = tuple(d * (k - 1) + 1 for k, d in zip(w_shape[2:], dilation_t))
    if any(n < span for n, span in zip(padded, spans)):
        raise ValueError(
            f"{fname}(): the padded input size {padded} is smaller than the dilated kernel size "
            f"{spans} in some spatial dim (input shape {tuple(x.shape)}, padding={padding!r}, "
            f"dilation={dilation!r})."
        )
    out = [(n - span) // s + 1 for n, span, s in zip(padded, spans, stride_t)]

    spec = NNSpec(
        fname=fname,
        nd=nd,
        transposed=False,
        batched=batched,
        method=method,
        boundary=boundary,
        dtype=x.dtype,
        groups=groups,
        stride=stride_t,
        dilation=dilation_t,
        pads=pads,
        output_padding=(0,) * nd,
        input_shape=x_shape,
        weight_shape=w_shape,
        output_shape=(x_shape[0], out_channels, *out),
    )
    return spec


def normalize_conv_transpose(
    fname: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    method: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, NNSpec]:
    """Validate a ``conv_transposeNd`` call; return the operands and its spec (cached as
    :func:`normalize_conv`'s)."""
    key = _call_key(
        fname,
        (input, weight, bias),
        ("T", nd, stride, padding, output_padding, groups, dilation, method),
    )
    args = (fname, nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
    return input, weight, bias, _SPECS.get_or_make(key, lambda: _transpose_spec(*args, method))


def _transpose_spec(
    fname: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    method: Any,
) -> NNSpec:
    """The spec of a ``conv_transposeNd`` call, every check made."""
    method = canonical_method(fname, method, NN_METHODS)
    parsed = parse_padding(fname, padding, nd, transposed=True)
    x, w, b = _check_operands(fname, nd, input, weight, bias)
    groups = _check_groups(fname, groups)
    stride_t = int_tuple(fname, "stride", stride, nd, 1)
    dilation_t = int_tuple(fname, "dilation", dilation, nd, 1)
    out_pad = int_tuple(fname, "output_padding", output_padding, nd, 0)
    for op, s, d in zip(out_pad, stride_t, dilation_t):
        if op >= max(s, d):
            raise ValueError(
                f"{fname}(): output_padding must be smaller than stride or dilation in every "
                f"dim (as in torch); got output_padding={output_padding!r} with "
                f"stride={stride_t} and dilation={dilation_t}."
            )
    batched = x.ndim == nd + 2
    x_shape = static_shape(x) if batched else (1, *static_shape(x))
    w_shape = static_shape(w)
    out_channels = _channels(fname, x_shape, w_shape, groups, transposed=True)
    _check_bias(fname, b, out_channels)

    if isinstance(parsed, str):
        if any(out_pad):
            raise ValueError(
                f"{fname}(): output_padding must be 0 with padding={parsed!r}: the output size "
                "is TensorFlow's (Keras' with output_padding=None); for another size pass "
                "padding=trueconv.tf_transpose_padding(..., output_size=...); got "
                f"output_padding={output_padding!r}."
            )
        pads, out_pad = tf_transpose_pads(x_shape[2:], w_shape[2:], stride_t, dilation_t, parsed)
    else:
        pads = parsed
    out = [
        (n - 1) * s - p - q + d * (k - 1) + op + 1
        for n, (p, q), k, d, s, op in zip(
            x_shape[2:], pads, w_shape[2:], dilation_t, stride_t, out_pad
        )
    ]
    if any(o < 1 for o in out):
        raise ValueError(
            f"{fname}(): padding={padding!r} leaves no output: the output size "
            "(in - 1) * stride - before - after + dilation * (kernel - 1) + output_padding + 1 "
            f"would be {tuple(out)} for input size {tuple(x_shape[2:])}."
        )
    spec = NNSpec(
        fname=fname,
        nd=nd,
        transposed=True,
        batched=batched,
        method=method,
        boundary="fill",
        dtype=x.dtype,
        groups=groups,
        stride=stride_t,
        dilation=dilation_t,
        pads=pads,
        output_padding=out_pad,
        input_shape=x_shape,
        weight_shape=w_shape,
        output_shape=(x_shape[0], out_channels, *out),
    )
    return spec


register(NNSpec)  # rebuilt from plain tuples under torch.compile
