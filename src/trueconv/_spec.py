"""Normalise the arguments of a signal-API call into a frozen :class:`ConvSpec`.

This module is the one place where user-facing errors are raised. Everything below it (boundary
extension, planning, the methods) trusts the spec; a failure there is a bug of ours.

Layout conventions used by the spec:

* Both operands are first aligned to the same number of dimensions ``ndim`` by prepending
  size-1 dimensions (PyTorch broadcasting).
* ``dims`` are the convolved dimensions in that aligned layout, sorted, non-negative.
* The methods work on the *canonical* layout, in which the convolved dims are moved to the end:
  ``(*batch, *spatial)``.
* Every problem is reduced to one shape: the *valid* convolution of a (possibly extended) signal
  ``a`` with a kernel ``b``, with implicit zero padding ``pads`` of ``a``. ``'full'`` and
  ``'same'`` become padding; ``'valid'`` with a larger kernel becomes a swap of the operands
  (convolution commutes).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trueconv.core.dtypes import is_integer, result_type
from trueconv.core.names import (
    METHODS,
    MODES,
    NAN_POLICIES,
    SpecCache,
    canonical_boundary,
    canonical_method,
    canonical_origin,
    choices,
    err,
    typed_key,
)
from trueconv.core.static import register

Pads = tuple[tuple[int, int], ...]

_SUPPORTED_DTYPES = frozenset(
    {
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
    }
)


def _dtype_names() -> str:
    names = sorted(str(d).removeprefix("torch.") for d in _SUPPORTED_DTYPES)
    return ", ".join(names)


@dataclass(frozen=True)
class ConvSpec:
    """Everything the execution needs to know about one call, derived from shapes alone."""

    fname: str = field(compare=False)  # for messages only: not part of the problem
    mode: str
    method: str
    boundary: str
    fill_value: bool | int | float | complex
    dtype: torch.dtype  # result dtype (torch.result_type of the operands)
    ndim: int  # aligned number of dims
    dims: tuple[int, ...]  # convolved dims in the aligned layout, sorted
    x_shape: tuple[int, ...]  # input shape, aligned
    k_shape: tuple[int, ...]  # kernel shape, aligned
    batch_shape: tuple[int, ...]  # broadcast shape of the non-convolved dims
    out_shape: tuple[int, ...]  # result shape in the aligned layout
    pads: Pads  # extension of the input per convolved dim, for 'full'/'same'
    swap: bool  # the kernel plays the signal's role (valid mode, or full with a larger kernel)
    empty: bool  # the result has no elements: nothing to compute

    @property
    def nd(self) -> int:
        """Number of convolved dims."""
        return len(self.dims)

    @property
    def n(self) -> tuple[int, ...]:
        """Input lengths along the convolved dims."""
        return tuple(self.x_shape[d] for d in self.dims)

    @property
    def k(self) -> tuple[int, ...]:
        """Kernel lengths along the convolved dims."""
        return tuple(self.k_shape[d] for d in self.dims)

    @property
    def extend_explicitly(self) -> bool:
        """Whether the input must be extended before the method runs (non-zero boundary)."""
        if (self.boundary == "fill" and self.fill_value == 0) or self.mode == "valid":
            return False  # (asked first: most calls stop here without reading the pads)
        return any(b or a for b, a in self.pads)

    @property
    def method_pads(self) -> Pads:
        """Implicit zero padding that the method applies to its signal operand."""
        if self.swap:
            # 'valid' swaps without padding; 'full' (zero fill only) pads the kernel by n - 1.
            return tuple((n - 1, n - 1) if self.mode == "full" else (0, 0) for n in self.n)
        if self.extend_explicitly:
            return tuple((0, 0) for _ in self.dims)
        return self.pads


#: Most bytes one tensor can span: torch computes a storage's size in bytes as a signed 64-bit
#: integer and refuses larger ones ("Storage size calculation overflowed").
MAX_BYTES = 2**63 - 1


def element_bytes(dtype: torch.dtype) -> int:
    """Bytes per element that a call with result ``dtype`` may hold in one array: its compute
    dtype (integers and bool run in int64 or float64, float16 and bfloat16 in float32), and
    at least 8: boundary extension builds int64 source indices along a dim, and placing
    non-finite values counts terms in float64 (:mod:`trueconv._nonfinite`)."""
    if dtype in (torch.float16, torch.bfloat16) or is_integer(dtype):
        return 8
    return max(8, dtype.itemsize)


def _check_size(fname: str, what: str, shape: Sequence[int], dtype: torch.dtype) -> None:
    """Refuse an array of ``shape`` that no torch tensor could hold (:func:`element_bytes`)."""
    elements = math.prod(shape)
    per = element_bytes(dtype)
    if elements * per > MAX_BYTES:
        raise ValueError(
            f"{fname}(): {what} must fit in one tensor, at most 2**63 - 1 bytes at {per} bytes "
            f"per element for a {str(dtype).removeprefix('torch.')} result; got shape "
            f"{tuple(shape)}, {elements} elements ({elements * per} bytes)."
        )


def as_operand(fname: str, arg: str, value: Any, device: torch.device | None) -> torch.Tensor:
    """Turn ``value`` into a tensor without copying when possible; reject non-numeric data."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(
                f"{fname}(): {arg} must be a tensor, array or (nested) sequence of numbers; "
                f"got {type(value).__name__}."
            )
        if isinstance(value, np.ndarray) and any(st < 0 for st in value.strides):
            value = np.ascontiguousarray(value)  # torch cannot view negative strides
        try:
            t = torch.as_tensor(value, device=device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"{fname}(): {arg} must be a tensor, array or (nested) sequence of numbers; "
                f"got {type(value).__name__} that torch cannot convert ({exc})."
            ) from None
    if t.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"{fname}(): {arg} has dtype {t.dtype}, which is not supported; "
            f"supported dtypes are {_dtype_names()}."
        )
    if t.layout != torch.strided:
        raise TypeError(
            f"{fname}(): {arg} must be a dense (strided) tensor; got layout {t.layout}."
        )
    return t


def canonical_mode(fname: str, mode: Any) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise err(fname, "mode", f"one of {choices(MODES)}", mode)
    return mode


def check_fill_value(
    fname: str, fill_value: Any, dtype: torch.dtype
) -> bool | int | float | complex:
    """Return ``fill_value`` as a Python number that ``dtype`` holds exactly, or raise."""
    value = fill_value
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise err(
                fname, "fill_value", "a single number", f"tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    if not isinstance(value, numbers.Number):
        raise TypeError(f"{fname}(): fill_value must be a number; got {type(fill_value).__name__}.")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif isinstance(value, numbers.Real):
        value = float(value)
    else:
        value = complex(value)  # type: ignore[call-overload]

    def bad(why: str) -> ValueError:
        return ValueError(
            f"{fname}(): fill_value {fill_value!r} cannot be held by the result dtype "
            f"{str(dtype).removeprefix('torch.')} ({why})."
        )

    if dtype.is_complex:
        return complex(value)
    if isinstance(value, complex):
        if value.imag != 0:
            raise bad("it has an imaginary part")
        value = value.real
    if dtype.is_floating_point:
        v = float(value)
        if math.isfinite(v) and abs(v) > torch.finfo(dtype).max:
            raise bad(f"it overflows; the largest finite value is {torch.finfo(dtype).max:g}")
        return v
    # integer and bool dtypes: the value must be integral and inside the range
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise bad("it is not an integer")
    iv = int(value)
    if dtype == torch.bool:
        if iv not in (0, 1):
            raise bad("bool holds only 0/False and 1/True")
        return bool(iv)
    info = torch.iinfo(dtype)
    if not info.min <= iv <= info.max:
        raise bad(f"the range is {info.min} to {info.max}")
    return iv


def _normalize_dims(fname: str, dims: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(dims, numbers.Integral) and not isinstance(dims, bool):
        seq: Sequence[Any] = (dims,)
    elif isinstance(dims, (list, tuple, range)):
        seq = dims
    else:
        raise TypeError(
            f"{fname}(): dims must be None, an int or a sequence of ints; got {dims!r}."
        )
    out = []
    for d in seq:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(
                f"{fname}(): dims must be None, an int or a sequence of ints; got {dims!r}."
            )
        d = int(d)
        if not -ndim <= d < ndim:
            raise ValueError(
                f"{fname}(): dims entry {d} is out of range for {ndim}-dimensional operands "
                f"(allowed: {-ndim} to {ndim - 1}); got dims={dims!r}."
            )
        out.append(d % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fname}(): dims must not repeat a dimension; got dims={dims!r}.")
    return tuple(sorted(out))


def normalize(
    fname: str,
    input: Any,
    kernel: Any,
    mode: Any,
    dims: Any,
    method: Any,
    boundary: Any,
    fill_value: Any,
    methods: tuple[str, ...] = METHODS,
    origin: Any = 0,
) -> tuple[torch.Tensor, torch.Tensor, ConvSpec]:
    """Validate every argument and describe the problem; raises before any compute.

    A repeated call with plain tensors of the same dtypes, devices, layouts and shapes and the
    same options (type-tagged: :func:`_call_key`) is served the spec its first call checked,
    before any check runs: those checks depend on nothing else (for an 8-sample input and a
    3-tap kernel they took 5.2 of the call's 30 us, one thread; a hit takes about 1.5)."""
    key = _call_key(fname, input, kernel, (mode, dims, method, boundary, origin), fill_value)
    if key is None:
        return _normalized(
            fname, input, kernel, mode, dims, method, boundary, fill_value, methods, origin
        )
    spec = _CALLS.get_or_make(
        (key, methods),
        lambda: _normalized(
            fname, input, kernel, mode, dims, method, boundary, fill_value, methods, origin
        )[2],
    )
    return input, kernel, spec


def _call_key(
    fname: str, input: Any, kernel: Any, options: tuple[Any, ...], fill_value: Any
) -> Any:
    """The key of a call whose spec follows from it alone, or ``None`` (validated afresh):
    both operands plain tensors (their dtype, device, layout and shape), the options
    type-tagged (:func:`trueconv.core.names.typed_key`: ``dims=True`` is not ``dims=1``), and
    a float or complex ``fill_value`` by its ``repr`` (NaN is not equal to itself, and
    ``-0.0`` is kept apart from ``0.0``)."""
    if type(input) is not torch.Tensor or type(kernel) is not torch.Tensor:
        return None
    kind = type(fill_value)
    if kind is int or kind is bool:
        fill: Any = (kind, fill_value)
    elif kind is float or kind is complex:
        fill = (kind, repr(fill_value))
    else:
        return None  # tensors, numpy scalars: checked every call
    opts = typed_key(options)
    if opts is None:
        return None
    return (  # shapes as torch.Size (a tuple: the same hash, equal to the same tuple)
        fname,
        input.dtype,
        input.device,
        input.layout,
        input.shape,
        kernel.dtype,
        kernel.device,
        kernel.layout,
        kernel.shape,
        opts,
        fill,
    )


def _normalized(
    fname: str,
    input: Any,
    kernel: Any,
    mode: Any,
    dims: Any,
    method: Any,
    boundary: Any,
    fill_value: Any,
    methods: tuple[str, ...],
    origin: Any,
) -> tuple[torch.Tensor, torch.Tensor, ConvSpec]:
    """:func:`normalize`, every check made."""
    mode = canonical_mode(fname, mode)
    method = canonical_method(fname, method, methods)
    boundary = canonical_boundary(fname, boundary)
    where = canonical_origin(fname, origin)

    device = None
    for value in (input, kernel):
        if isinstance(value, torch.Tensor):
            device = value.device
            break
    x = as_operand(fname, "input", input, device)
    k = as_operand(fname, "kernel", kernel, device)
    if x.device != k.device:
        raise ValueError(
            f"{fname}(): input and kernel must be on the same device; "
            f"got input on {x.device} and kernel on {k.device}."
        )
    dtype = result_type(x, k)
    fill = check_fill_value(fname, fill_value, dtype)
    args = (fname, tuple(x.shape), tuple(k.shape), dims, mode, method, boundary, fill, dtype, where)
    dims_key = typed_key(dims)  # None for dims of an odd type (numpy ints): not cached
    # fill keyed by its repr: NaN is not equal to itself, and -0.0 is kept apart from 0.0
    key = (
        None
        if dims_key is None
        else (*args[:3], dims_key, *args[4:7], repr(fill), dtype, typed_key(where))
    )
    return x, k, _SPECS.get_or_make(key, lambda: _describe(*args))


def _describe(
    fname: str,
    x_dims: tuple[int, ...],
    k_dims: tuple[int, ...],
    dims: Any,
    mode: str,
    method: str,
    boundary: str,
    fill: bool | int | float | complex,
    dtype: torch.dtype,
    origin: str | int | tuple[int, ...] = 0,
) -> ConvSpec:
    """The spec of validated operands' shapes and canonical options (raises for the ones that
    do not fit together). Depends on its arguments alone: :func:`normalize` caches it, so a
    repeated call with the same shapes and options repeats none of this work."""
    x_ndim, k_ndim = len(x_dims), len(k_dims)
    if dims is None:
        if k_ndim > x_ndim:
            raise ValueError(
                f"{fname}(): kernel has more dims ({k_ndim}, shape {k_dims}) than input "
                f"({x_ndim}, shape {x_dims}); pass dims= to choose the convolved dims "
                "and broadcast the others."
            )
        ndim = x_ndim
        conv_dims = tuple(range(ndim - k_ndim, ndim))
    else:
        ndim = max(x_ndim, k_ndim)
        conv_dims = _normalize_dims(fname, dims, ndim)

    x_shape = (1,) * (ndim - x_ndim) + x_dims
    k_shape = (1,) * (ndim - k_ndim) + k_dims

    batch_dims = [d for d in range(ndim) if d not in conv_dims]
    batch_shape = []
    for d in batch_dims:
        a, b = x_shape[d], k_shape[d]
        if a != b and 1 not in (a, b):
            raise ValueError(
                f"{fname}(): input shape {x_dims} and kernel shape {k_dims} "
                f"do not broadcast over the non-convolved dims (dim {d - ndim} has sizes "
                f"{a} and {b}; convolved dims are {tuple(c - ndim for c in conv_dims)})."
            )
        batch_shape.append(b if a == 1 else a)

    ns = [x_shape[d] for d in conv_dims]
    ks = [k_shape[d] for d in conv_dims]
    empty_conv = any(n == 0 or kk == 0 for n, kk in zip(ns, ks))

    swap = False
    if mode == "valid" and not empty_conv:
        x_big = all(n >= kk for n, kk in zip(ns, ks))
        k_big = all(kk >= n for n, kk in zip(ns, ks))
        if not (x_big or k_big):
            raise ValueError(
                f"{fname}(): mode='valid' needs one operand at least as large as the other in "
                f"every convolved dim; got input sizes {tuple(ns)} and kernel sizes "
                f"{tuple(ks)} along dims {tuple(c - ndim for c in conv_dims)}."
            )
        swap = not x_big
    elif mode == "full" and not empty_conv and boundary == "fill" and fill == 0:
        # Convolution commutes; letting the larger operand play the signal is cheaper.
        swap = all(kk >= n for n, kk in zip(ns, ks)) and any(kk > n for n, kk in zip(ns, ks))

    shifts = _origin_shifts(fname, origin, mode, ks, tuple(c - ndim for c in conv_dims))
    out_conv = []
    pads = []
    for n, kk, shift in zip(ns, ks, shifts):
        if mode == "full":
            pads.append((kk - 1, kk - 1))
            out_conv.append(n + kk - 1)
        elif mode == "same":
            # the slice of 'full' that starts at (k - 1) // 2 (numpy/scipy) + origin
            start = (kk - 1) // 2 + shift
            pads.append((kk - 1 - start, start))
            out_conv.append(n)
        else:
            pads.append((0, 0))
            out_conv.append(abs(n - kk) + 1)
        if n == 0 or kk == 0:
            out_conv[-1] = 0
            pads[-1] = (0, 0)

    out_shape = [0] * ndim
    for d, s in zip(batch_dims, batch_shape):
        out_shape[d] = s
    for d, s in zip(conv_dims, out_conv):
        out_shape[d] = s

    # The output, and the signal operand as padded or extended (the kernel when they swap,
    # zero-padded by n - 1 for 'full'): torch refuses tensors past MAX_BYTES, with an obscure
    # message from deep inside a method.
    _check_size(fname, "the output", out_shape, dtype)
    if swap:
        what, shape = "kernel", k_shape
        grown = [kk + (2 * n - 2 if mode == "full" else 0) for n, kk in zip(ns, ks)]
    else:
        what, shape = "input", x_shape
        grown = [n + before + after for n, (before, after) in zip(ns, pads)]
    if grown != [shape[d] for d in conv_dims]:
        grown_shape = list(shape)
        for d, size in zip(conv_dims, grown):
            grown_shape[d] = size
        _check_size(fname, f"the {what} padded for mode={mode!r}", grown_shape, dtype)

    spec = ConvSpec(
        fname=fname,
        mode=mode,
        method=method,
        boundary=boundary,
        fill_value=fill,
        dtype=dtype,
        ndim=ndim,
        dims=conv_dims,
        x_shape=x_shape,
        k_shape=k_shape,
        batch_shape=tuple(batch_shape),
        out_shape=tuple(out_shape),
        pads=tuple(pads),
        swap=swap,
        empty=math.prod(out_shape) == 0,
    )
    return spec


def _origin_shifts(
    fname: str, origin: str | int | tuple[int, ...], mode: str, ks: list[int], dims: tuple[int, ...]
) -> list[int]:
    """How far ``'same'`` starts past ``(k - 1) // 2`` of ``'full'``, per convolved dim: 0 for
    ``'floor'``, 1 along even kernel lengths for ``'ceil'`` (MATLAB), else the ints given; each
    keeps the window inside ``'full'``: ``-((k - 1) // 2) <= origin <= k // 2``."""
    if isinstance(origin, str):
        return [int(origin == "ceil" and kk % 2 == 0) for kk in ks]
    shifts = [origin] * len(ks) if isinstance(origin, int) else list(origin)
    if len(shifts) != len(ks):
        raise ValueError(
            f"{fname}(): origin must hold one int per convolved dim ({len(ks)}, dims {dims}); "
            f"got {origin!r}."
        )
    if any(shifts) and mode != "same":
        raise ValueError(
            f"{fname}(): origin moves the window of mode='same'; mode={mode!r} has none. "
            f"Got origin={origin!r}."
        )
    for d, kk, shift in zip(dims, ks, shifts):
        low, high = -((kk - 1) // 2), kk // 2
        if kk and not low <= shift <= high:
            raise ValueError(
                f"{fname}(): origin {shift} along dim {d} puts the window of mode='same' "
                f"outside 'full' for a kernel of length {kk}; allowed {low} to {high} "
                f"(got origin={origin!r})."
            )
    return [s if kk else 0 for kk, s in zip(ks, shifts)]


@dataclass(frozen=True)
class MissingSpec:
    """How a call treats missing samples (NaN, or ``mask`` true): :mod:`trueconv._masked`."""

    policy: str  # 'propagate', 'fill' or 'interpolate'
    mask: torch.Tensor | None  # bool, broadcastable to the input's shape; True = missing
    normalize_kernel: bool
    preserve_nan: bool


def missing_spec(
    fname: str,
    nan_policy: Any,
    mask: Any,
    normalize_kernel: Any,
    preserve_nan: Any,
    x: torch.Tensor,
    spec: ConvSpec,
) -> MissingSpec | None:
    """The checked missing-sample options of a call, or ``None`` where they change nothing."""
    if mask is None and nan_policy == "propagate" and normalize_kernel is preserve_nan is False:
        return None  # the defaults, which every other call passes: nothing to check
    if not isinstance(nan_policy, str) or nan_policy not in NAN_POLICIES:
        raise err(fname, "nan_policy", f"one of {choices(NAN_POLICIES)}", nan_policy)
    for arg, value in (("normalize_kernel", normalize_kernel), ("preserve_nan", preserve_nan)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{fname}(): {arg} must be a bool (True or False); got {value!r}.")
    if mask is None and nan_policy == "propagate" and not (normalize_kernel or preserve_nan):
        return None
    dname = str(spec.dtype).removeprefix("torch.")
    exact = not (spec.dtype.is_floating_point or spec.dtype.is_complex)
    for arg, on in (
        ("nan_policy='interpolate'", nan_policy == "interpolate"),
        ("normalize_kernel=True", normalize_kernel),
        ("preserve_nan=True", preserve_nan),
    ):
        if on and exact:
            raise ValueError(
                f"{fname}(): {arg} needs a floating or complex result (it divides or writes "
                f"NaN); the operands give {dname}. Convert them, e.g. input.double()."
            )
    if preserve_nan and spec.mode != "same":
        raise ValueError(
            f"{fname}(): preserve_nan=True puts NaN back where the input had it, which needs "
            f"the output aligned with the input: mode='same'; got mode={spec.mode!r}."
        )
    if mask is not None:
        if nan_policy == "propagate":
            raise ValueError(
                f"{fname}(): mask marks samples as missing, which nan_policy='propagate' "
                "ignores; pass nan_policy='fill' or 'interpolate' with it."
            )
        if isinstance(mask, torch.Tensor):
            if mask.device != x.device:
                raise ValueError(
                    f"{fname}(): mask must be on the input's device ({x.device}); got "
                    f"{mask.device}."
                )
            m = mask
        else:
            m = as_operand(fname, "mask", mask, x.device)
        if m.dtype != torch.bool:
            raise TypeError(
                f"{fname}(): mask must be boolean (True marks a missing sample, as numpy.ma "
                f"and astropy); got dtype {str(m.dtype).removeprefix('torch.')}."
            )
        try:
            fits = torch.broadcast_shapes(m.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{fname}(): mask must broadcast to the input's shape {tuple(x.shape)}; got "
                f"shape {tuple(m.shape)}."
            )
        mask = m
    return MissingSpec(nan_policy, mask, bool(normalize_kernel), bool(preserve_nan))


def check_kernel_sum(fname: str, ksum: torch.Tensor, kabs: torch.Tensor) -> None:
    """Refuse ``normalize_kernel=True`` for a kernel whose sum is zero within rounding (read
    from data: eager calls only)."""
    eps = torch.finfo(kabs.dtype).eps
    if bool((ksum.abs() <= 256 * eps * kabs).any()):
        raise ValueError(
            f"{fname}(): normalize_kernel=True divides the kernel by its sum, which is 0 "
            "(within rounding) for this kernel; pass normalize_kernel=False."
        )


#: :func:`normalize`'s cache of specs: keyed on shapes, canonical options and the type-tagged
#: ``dims`` (:func:`trueconv.core.names.typed_key`), so ``dims=True`` is never served what
#: ``dims=1`` validated.
_SPECS = SpecCache()
#: :func:`normalize`'s cache of the specs of calls with plain tensors, keyed on the call
#: itself (:func:`_call_key`): a hit skips every check.
_CALLS = SpecCache()

register(ConvSpec)  # rebuilt from plain tuples under torch.compile
