"""``scipy.ndimage``'s linear filters on tensors: :func:`convolve`, :func:`correlate`,
:func:`convolve1d`, :func:`correlate1d`, :func:`gaussian_filter`, :func:`gaussian_filter1d`,
:func:`uniform_filter`, :func:`uniform_filter1d`, :func:`sobel`, :func:`prewitt` and
:func:`laplace`.

The signatures (argument names, order and defaults, ``axes=`` included) and the semantics are
``scipy.ndimage``'s: the output has the input's shape, the input is extended beyond its edges by
``mode`` (every ndimage mode name, the ``grid-*`` ones included, with ``cval``), ``origin``
shifts the filter, ``output`` chooses the result's dtype or receives it. Inputs are tensors, or
anything ``numpy.asarray`` accepts (a list of floats is float64, as in scipy); the result is
always a tensor, on the input's device.

The engine
----------
Every floating-point and complex result, and every integer result of integer weights on an
integer input, is computed by the signal engine through its public API:
:func:`trueconv.correlate` and :func:`trueconv.convolve_separable` (the constant modes as
``mode='same'`` with ``boundary='fill'``, ``fill_value=cval`` and ``origin=``, the other
modes with the engine's boundary of the same rule). The filters therefore get what the engine
offers: the method chosen by its cost model (the compiled direct loop for small kernels, FFT
or overlap-add for large ones, one 1-D pass per axis for the separable filters), boundaries
read in place by its compiled loops, autograd through input and weights, and CUDA tensors.
The mode names and ``numpy.pad``'s rules (and the engine's ``boundary`` names), for
``a b c d`` extended by 3:

=====================================  ===============================  =====================
ndimage ``mode``                       extension                        ``numpy.pad`` (engine)
=====================================  ===============================  =====================
``'reflect'``, ``'grid-mirror'``       ``c b a | a b c d | d c b``      symmetric
``'mirror'``                           ``d c b | a b c d | c b a``      reflect
``'nearest'``                          ``a a a | a b c d | d d d``      edge (replicate)
``'wrap'``, ``'grid-wrap'``            ``b c d | a b c d | a b c``      wrap
``'constant'``, ``'grid-constant'``    ``v v v | a b c d | v v v``      constant (fill)
=====================================  ===============================  =====================

Extensions longer than the input repeat the rule, as ``numpy.pad`` and
``scipy.ndimage.correlate1d`` do; the ``grid-*`` names are synonyms for these filters.

Numbers
-------
- float64 and complex128 results agree with scipy to rounding (relative ``1e-12`` in the
  tests). float32, complex64 and half inputs are computed in float32/complex64 (scipy
  accumulates in float64 and stores float32): relative errors stay near ``1e-6`` (``1e-5``
  in the tests).
- Integer and bool outputs (the default for integer inputs, as in scipy) hold the float64 sum
  truncated toward zero, then wrapped to the output dtype (``-1.7 -> -1``, ``300 -> 44`` in
  uint8), as ndimage's C casts do on common platforms; bool outputs are true where that
  wrapped byte is nonzero (between the passes of a separable filter the byte itself is kept,
  as scipy's bool array holds it). Truncation turns the last bit of a sum into a whole unit (scipy
  blurs a flat uint8 image of 3s into 2s at sigma 0.5), so these outputs are computed to give
  scipy's bits: integer weights on integer inputs exactly, by the engine in int64; other
  weights in float64 by torch operations that add the terms in ndimage's own order (its
  symmetric and antisymmetric shortcuts of ``correlate1d``, its running sum of
  ``uniform_filter1d``, its weight order in ``correlate``), not by the engine. The separable
  filters truncate after every axis, as scipy stores each pass in the output dtype. On CUDA
  the running sum is a parallel scan, so a ``uniform_filter`` integer result may differ by
  one where the exact mean is an integer.
- uint16, uint32 and uint64 are computed in int64 or float64. Results beyond an integer
  output's range wrap; ndimage's C cast is undefined there for int32 and int64 (x86 gives the
  minimum value), and its float64 sums round uint64 values of ``2**53`` and more, which
  trueconv's integer weights compute modulo ``2**64``.

Differences from scipy.ndimage
------------------------------
- Argument errors are ``ValueError`` or ``TypeError`` naming the argument, what was given and
  what is allowed. Where scipy raises ``RuntimeError`` (an unknown mode, a sequence of modes
  for :func:`convolve`, weights that do not match the filtered axes, a per-axis sequence of
  the wrong length, an output of the wrong shape) the error is a
  :class:`FilterArgumentError`, both a ``ValueError`` and a ``RuntimeError``.
- float16 and bfloat16 inputs are accepted (computed in float32); scipy refuses float16.
- Exact zeros need a direct sum: scipy's is always direct, the engine's ``'auto'`` may run a
  long kernel (or pass) by FFT or overlap-add, whose round-off leaves values of about
  ``1e-17`` of the data's scale where the direct sum gives ``0.0`` (outside the support of an
  impulse's response). With numba (the ``fast`` extra) short kernels and the separable
  filters of images run by the compiled direct loop (``gaussian_filter`` of a 1024² impulse
  at sigma 100: scipy's 641601 non-zeros); without it, or along one long axis, the
  transforms may run (``gaussian_filter1d`` of an impulse at sigma 200: 6513 non-zeros,
  scipy's 1601). ``method`` is not one of scipy's arguments; :func:`trueconv.correlate` with
  ``method='direct'`` gives the exact zeros.
- Per-axis origins of :func:`correlate`/:func:`convolve` pair with the entries of ``axes``,
  as scipy documents; scipy pairs them with axes 0, 1, ... when ``axes`` names every axis in
  another order.
- ``scipy.ndimage.correlate``/``convolve`` (the N-D functions, not ``correlate1d``) read a
  wrong sample in ``mode='reflect'``/``'grid-mirror'`` where the extension reaches ``4 n`` or
  more samples before an axis of length ``n`` (a kernel far longer than the input): its offset
  computation maps every multiple of ``2 n`` there to index ``-1``. trueconv extends as
  ``correlate1d`` and ``numpy.pad`` do.
- ``scipy.ndimage.correlate``/``convolve`` ignore weights with ``|w| <= 2.2e-16`` (they leave
  its footprint); trueconv's floating-point results use them.
- ``gaussian_filter1d`` refuses ``sigma <= 0`` and ``gaussian_filter`` a negative sigma (scipy
  divides by zero, or skips the axis).
- The Gaussian derivative kernels (``order >= 1``) are computed here, equal to scipy's to
  rounding, so an integer output of a derivative filter may differ by one where scipy's sum
  lands within a rounding of an integer.
- ``output=`` may be a tensor (written in place and returned) or a numpy array (written in
  place; the returned tensor shares its memory).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from trueconv import signal
from trueconv.core.boundary import extend
from trueconv.core.names import Boundary

__all__ = [
    "FilterArgumentError",
    "convolve",
    "convolve1d",
    "correlate",
    "correlate1d",
    "gaussian_filter",
    "gaussian_filter1d",
    "laplace",
    "prewitt",
    "sobel",
    "uniform_filter",
    "uniform_filter1d",
]

#: ndimage's mode names and the engine's boundary for each.
_BOUNDARY: dict[str, Boundary] = {
    "reflect": "symmetric",
    "constant": "fill",
    "nearest": "replicate",
    "mirror": "reflect",
    "wrap": "wrap",
    "grid-constant": "fill",
    "grid-mirror": "symmetric",
    "grid-wrap": "wrap",
}

#: The engine's boundary names (and aliases) that are not ndimage modes: what to pass instead.
_SIGNAL_NAMES = {
    "symmetric": "reflect",
    "symm": "reflect",
    "replicate": "nearest",
    "edge": "nearest",
    "fill": "constant",
    "zeros": "constant",
    "circular": "wrap",
}

_INTEGER = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.uint64,
)
_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_COMPLEX = (torch.complex64, torch.complex128)
_SUPPORTED = _INTEGER + _FLOATING + _COMPLEX

#: Dtypes whose values float32 cannot all hold: computed in float64 (complex128).
_WIDE = (
    torch.float64,
    torch.complex128,
    torch.int32,
    torch.int64,
    torch.uint32,
    torch.uint64,
)

#: numpy's float64 machine epsilon: ndimage's threshold for zero weights and for symmetry.
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


class FilterArgumentError(ValueError, RuntimeError):
    """An argument that scipy.ndimage refuses with ``RuntimeError``: an unknown mode, a
    per-axis sequence of the wrong length, weights that do not match the filtered axes, a
    sequence of modes for :func:`convolve`/:func:`correlate`, an output of the wrong shape or
    a real one for a complex result.

    It is a ``ValueError``, as every argument error of trueconv, and a ``RuntimeError``, so that
    code written for scipy still catches it (as numpy's ``AxisError`` is both a ``ValueError``
    and an ``IndexError``).
    """


def _tensor(fname: str, name: str, value: Any, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a tensor: tensors as they are, anything else through ``numpy.asarray``."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{fname}(): {name} must be a tensor or an array of numbers; got "
                f"{type(value).__name__} ({exc})."
            ) from None
        if arr.dtype.kind not in "biufc":
            raise TypeError(
                f"{fname}(): {name} must hold numbers; got an array of dtype {arr.dtype}."
            )
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if any(s < 0 for s in arr.strides) or not arr.flags.writeable:
            arr = arr.copy()
        try:
            t = torch.from_numpy(arr)
        except TypeError:
            raise TypeError(
                f"{fname}(): {name} has dtype {arr.dtype}, which torch cannot hold; allowed: "
                "bool, (u)int8-64, float16/32/64, complex64/128."
            ) from None
        if device is not None:
            t = t.to(device)
    if t.dtype not in _SUPPORTED:
        raise TypeError(
            f"{fname}(): {name} has dtype {t.dtype}, which is not supported; allowed: bool, "
            "(u)int8-64, float16, bfloat16, float32, float64, complex64, complex128."
        )
    return t


def _weights(fname: str, weights: Any, x: torch.Tensor) -> torch.Tensor:
    w = _tensor(fname, "weights", weights, x.device)
    if w.device != x.device:
        raise ValueError(
            f"{fname}(): weights are on {w.device}, the input on {x.device}; move them to one "
            "device."
        )
    if w.dtype in (torch.uint16, torch.uint32, torch.uint64):
        w = w.to(torch.int64)  # torch has few operations on these; int64 holds the weights
    return w


def _int(fname: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fname}(): {name} must be an int; got {value!r}.")
    return int(value)


def _axis(fname: str, axis: Any, ndim: int) -> int:
    a = _int(fname, "axis", axis)
    if not -ndim <= a < ndim:
        raise ValueError(
            f"{fname}(): axis {a} is out of range for an input of {ndim} dims (allowed: "
            f"{-ndim} to {ndim - 1})."
        )
    return a % ndim


def _axes(fname: str, axes: Any, ndim: int) -> tuple[int, ...]:
    """ndimage's ``axes``: ``None`` (every axis), an int or a sequence of ints; order kept."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, torch.Tensor):
        axes = axes.tolist()
    if isinstance(axes, np.ndarray):
        axes = axes.tolist()
    seq: list[Any] = list(axes) if isinstance(axes, Iterable) else [axes]
    out = []
    for a in seq:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(
                f"{fname}(): axes must be None, an int or a sequence of ints; got {axes!r} "
                f"(the entry {a!r} cannot be interpreted as an integer)."
            )
        if not -ndim <= int(a) < ndim:
            raise ValueError(
                f"{fname}(): axis {int(a)} in axes={axes!r} is out of range for an input of "
                f"{ndim} dims (allowed: {-ndim} to {ndim - 1})."
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fname}(): axes must be unique; got axes={axes!r}.")
    return tuple(out)


def _mode(fname: str, mode: Any) -> str:
    if isinstance(mode, str) and mode in _BOUNDARY:
        return str(mode)
    hint = ""
    if isinstance(mode, str) and mode in _SIGNAL_NAMES:
        hint = (
            f" ({mode!r} is a boundary name of trueconv.convolve; ndimage calls it "
            f"{_SIGNAL_NAMES[mode]!r})"
        )
    raise FilterArgumentError(
        f"{fname}(): mode must be one of " + ", ".join(repr(m) for m in _BOUNDARY) + f"; got "
        f"{mode!r}{hint}."
    )


def _per_axis(fname: str, name: str, value: Any, n: int) -> list[Any]:
    """A scalar repeated ``n`` times, or a sequence of length ``n`` (one entry per axis)."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        return [value.item()] * n
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value] * n
    seq = value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else list(value)
    if len(seq) != n:
        raise FilterArgumentError(
            f"{fname}(): {name} must be a scalar or hold one entry per filtered axis ({n}); "
            f"got {value!r} of length {len(seq)}."
        )
    return seq


def _modes(fname: str, mode: Any, n: int) -> list[str]:
    return [_mode(fname, m) for m in _per_axis(fname, "mode", mode, n)]


def _origin(fname: str, origin: Any, k: int, where: str = "") -> int:
    """A correlate1d-style origin, checked against a filter of length ``k``."""
    o = _int(fname, "origin", origin)
    low, high = -(k // 2), (k - 1) // 2
    if not low <= o <= high:
        raise ValueError(
            f"{fname}(): origin {o}{where} is out of range for a filter of length {k}: "
            f"allowed {low} to {high} (-(k // 2) to (k - 1) // 2)."
        )
    return o


def _cval(fname: str, cval: Any, x: torch.Tensor) -> complex:
    """``cval`` as a Python float (complex for a complex input)."""
    if isinstance(cval, (torch.Tensor, np.ndarray)) and cval.ndim == 0:
        cval = cval.item()
    if isinstance(cval, (bool, np.bool_)) or not isinstance(cval, numbers.Number):
        raise TypeError(f"{fname}(): cval must be a number; got {cval!r}.")
    if isinstance(cval, numbers.Real):
        return float(cval)
    given: Any = cval
    value = complex(given)
    if x.is_complex():
        return value
    if value.imag != 0:
        raise ValueError(
            f"{fname}(): cval={cval!r} is complex and the input is real ({x.dtype}); a "
            "complex cval needs a complex input."
        )
    return value.real


def _torch_dtype(fname: str, spec: Any) -> torch.dtype:
    """A dtype given as a torch dtype, a numpy dtype or type, a Python type or a string."""
    if isinstance(spec, torch.dtype):
        dt = spec
    else:
        try:
            npdt = np.dtype(spec)
        except TypeError:
            raise TypeError(
                f"{fname}(): output must be None, a dtype or a tensor/array to write into; got "
                f"{spec!r}."
            ) from None
        try:
            dt = torch.from_numpy(np.empty(0, dtype=npdt)).dtype
        except TypeError:
            raise TypeError(
                f"{fname}(): output dtype {npdt} is not supported; allowed: bool, (u)int8-64, "
                "float16, bfloat16, float32, float64, complex64, complex128."
            ) from None
    if dt not in _SUPPORTED:
        raise TypeError(
            f"{fname}(): output dtype {dt} is not supported; allowed: bool, (u)int8-64, "
            "float16, bfloat16, float32, float64, complex64, complex128."
        )
    return dt


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    """numpy's ``promote_types(dtype, complex64)``."""
    return torch.complex128 if dtype in _WIDE else torch.complex64


@dataclasses.dataclass(frozen=True)
class _Output:
    """Where a result goes: its dtype, and the tensor to write into (or ``None``)."""

    dtype: torch.dtype
    into: torch.Tensor | None = None


def _output(
    fname: str, output: Any, x: torch.Tensor, complex_result: bool, depth: int = 1
) -> _Output:
    """The result's dtype and destination; ``depth``: calls between the public function and
    here (for the warning's location)."""
    if output is None:
        dtype = x.dtype
        if complex_result and not dtype.is_complex:
            dtype = _complex_of(dtype)
        return _Output(dtype)
    if isinstance(output, (torch.Tensor, np.ndarray)):
        if isinstance(output, np.ndarray):
            if not output.flags.writeable:
                raise ValueError(f"{fname}(): the output array is read-only.")
            try:
                into = torch.from_numpy(output)
            except TypeError:
                raise TypeError(
                    f"{fname}(): output array of dtype {output.dtype} is not supported; "
                    "allowed: bool, (u)int8-64, float16/32/64, complex64/128."
                ) from None
        else:
            into = output
        if tuple(into.shape) != tuple(x.shape):
            raise FilterArgumentError(
                f"{fname}(): output must have the input's shape {tuple(x.shape)}; got shape "
                f"{tuple(into.shape)}."
            )
        if into.dtype not in _SUPPORTED:
            raise TypeError(f"{fname}(): output dtype {into.dtype} is not supported.")
        if complex_result and not into.dtype.is_complex:
            raise FilterArgumentError(
                f"{fname}(): the result is complex; output of dtype {into.dtype} cannot hold it."
            )
        if into.device != x.device:
            raise ValueError(
                f"{fname}(): output is on {into.device}, the input on {x.device}; pass an "
                "output on the input's device."
            )
        return _Output(into.dtype, into)
    dtype = _torch_dtype(fname, output)
    if complex_result and not dtype.is_complex:
        promoted = _complex_of(dtype)
        warnings.warn(
            f"{fname}(): the result is complex and output={output!r} is real; promoting "
            f"specified output dtype to complex ({promoted})",
            UserWarning,
            stacklevel=2 + depth,
        )
        dtype = promoted
    return _Output(dtype)


def _copy(x: torch.Tensor, out: _Output) -> torch.Tensor:
    """The input itself as the result (no axis filtered): a copy, never an alias, cast as
    numpy assigns (scipy copies with ``output[...] = input``): to bool, nonzero is true."""
    if out.dtype == torch.bool and x.dtype != torch.bool:
        return _deliver(x != 0, out)
    return _deliver(x.clone() if out.into is None else x, out)


def _deliver(y: torch.Tensor, out: _Output) -> torch.Tensor:
    y = _cast(y, out.dtype)
    if out.into is None:
        return y
    out.into.copy_(y)
    return out.into


# --------------------------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------------------------


def _is_integer(dtype: torch.dtype) -> bool:
    return dtype in _INTEGER


def _compute_dtype(x: torch.dtype, out: torch.dtype) -> torch.dtype:
    """The dtype a floating-point or complex result ``out`` of input ``x`` is computed in."""
    wide = x in _WIDE or out in (torch.float64, torch.complex128)
    if out.is_complex:
        return torch.complex128 if wide else torch.complex64
    return torch.float64 if wide else torch.float32


def _cast(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``y`` in ``dtype``, integers as ndimage's C casts: truncated toward zero, then wrapped."""
    if y.dtype == dtype:
        return y
    if dtype.is_floating_point or dtype.is_complex:
        return y.to(dtype)
    if y.is_floating_point():
        y = y.trunc()
        if dtype == torch.uint64:  # [2**63, 2**64) holds uint64 values past int64
            y = torch.where(y >= 2.0**63, y - 2.0**64, y)
        y = y.to(torch.int64)
    if dtype == torch.bool:
        return y.to(torch.uint8) != 0  # the low byte, as a C cast to npy_bool
    return y.to(dtype)


def _integral(w: torch.Tensor) -> bool:
    """Whether every weight is an integer that float64 holds exactly."""
    if _is_integer(w.dtype):
        return w.dtype != torch.uint64 or bool((w.to(torch.int64) >= 0).all())
    if w.is_complex():
        return False
    w64 = w.detach().to(torch.float64)
    return bool(((w64 == w64.round()) & (w64.abs() < 2.0**53)).all())


def _exact_ok(x: torch.Tensor, w: torch.Tensor, mode: str, cval: complex) -> bool:
    """An integer result the engine computes exactly in int64: integer input and weights, and
    a ``cval`` that is an integer wherever it is read."""
    if not (_is_integer(x.dtype) and _integral(w)):
        return False
    return _BOUNDARY[mode] != "fill" or (
        isinstance(cval, float) and cval == round(cval) and abs(cval) < 2.0**53
    )


def _as_int64(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t.detach().to(torch.float64).round().to(torch.int64)
    return t.to(torch.int64)


# --------------------------------------------------------------------------------------------
# The 1-D passes (correlate1d and the separable filters)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Pass:
    """One ``correlate1d`` along ``axis``: the weights as correlate1d receives them (before it
    conjugates complex ones), its origin and mode. ``mean`` marks a uniform filter (weights
    ``1 / size``), whose integer outputs follow ndimage's running sum."""

    axis: int
    weights: torch.Tensor
    origin: int
    mode: str
    mean: bool = False


def _pads(lengths: Sequence[int], origins: Sequence[int]) -> list[tuple[int, int]]:
    """The extension ``(before, after)`` a correlate1d of each length and origin reads."""
    return [(k // 2 + o, k - 1 - (k // 2 + o)) for k, o in zip(lengths, origins)]


def _engine_boundary(mode: str, cval: complex) -> tuple[Boundary, complex]:
    """The engine's ``boundary`` and ``fill_value`` for an ndimage mode: a filter is one
    ``'same'`` call of the engine with them. The engine reads every boundary in place where
    its compiled loops run (the direct method's and the fused separable one), and extends the
    input once for the transforms.

    Before the engine read boundaries in place, large inputs were filtered here with zero
    padding and the outputs within reach of an edge computed again from thin extended slabs.
    The engine's boundary measured faster on every case but large dense kernels (2-core EPYC,
    2026-12-03, 1 and 2 threads, float32/float64): ``gaussian_filter`` of 2048² (sigma 2 and
    8) and 3 × 1024² 1.15-1.43x, ``uniform_filter`` and ``sobel`` of 2048² 1.08-1.64x,
    ``correlate`` of 2048² with 3×3 and 7×7 weights 1.05-1.45x, 1-D filters of 2^20 samples
    1.08-1.30x, 3-D 128³ 0.97-1.10x; ``correlate`` of 2048² with 31×31 weights (the FFT or
    overlap-add, which extend) 0.92-0.95x."""
    boundary = _BOUNDARY[mode]
    return boundary, cval if boundary == "fill" else 0


def _engine_correlate(
    x: torch.Tensor,
    w: torch.Tensor,
    axes: tuple[int, ...],
    origins: Sequence[int],
    mode: str,
    cval: complex,
) -> torch.Tensor:
    """ndimage's correlation by :func:`trueconv.correlate`: ``w`` has ``x.ndim`` dims (size 1
    off ``axes``, sorted); ``origins`` are correlate1d's, one per axis of ``axes``."""

    boundary, fill = _engine_boundary(mode, cval)
    shifts = tuple(-o for o in origins)
    return signal.correlate(
        x, w, "same", dims=axes, boundary=boundary, fill_value=fill, origin=shifts
    )


def _engine_pass(x: torch.Tensor, p: _Pass, cval: complex) -> torch.Tensor:
    """One pass by :func:`trueconv.correlate` in ``x``'s dtype."""
    shape = [1] * x.ndim
    shape[p.axis] = p.weights.shape[0]
    w = p.weights.reshape(shape).to(x.dtype if x.is_complex() else _real(x.dtype))
    return _engine_correlate(x, w, (p.axis,), (p.origin,), p.mode, cval)


def _real(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def _float_passes(x: torch.Tensor, passes: Sequence[_Pass], cval: complex) -> torch.Tensor:
    """Floating-point passes in ``x``'s dtype: one :func:`trueconv.convolve_separable` call
    where that equals ndimage's sequence of passes (one mode, and no constant other than zero
    for a later pass to read), else one :func:`trueconv.correlate` per pass."""
    modes = {_BOUNDARY[p.mode] for p in passes}
    joint = len(passes) > 1 and len(modes) == 1 and (modes != {"fill"} or cval == 0)
    if not joint:
        for p in passes:
            x = _engine_pass(x, p, cval)
        return x
    ordered = sorted(passes, key=lambda p: p.axis)
    axes = tuple(p.axis for p in ordered)
    kernels = []
    for p in ordered:
        w = p.weights.to(x.dtype if x.is_complex() else _real(x.dtype))
        # correlate(x, w, origin=o) == convolve(x, flip(conj(w)), origin=o)
        w = w.flip(0)
        kernels.append(w.conj_physical() if w.is_complex() else w)

    boundary, fill = _engine_boundary(ordered[0].mode, cval)
    shifts = tuple(-p.origin for p in ordered)
    return signal.convolve_separable(
        x, kernels, "same", dims=axes, boundary=boundary, fill_value=fill, origin=shifts
    )


def _ndimage_sum1d(
    x: torch.Tensor, w: np.ndarray, axis: int, mode: str, cval: float, origin: int
) -> torch.Tensor:
    """float64 ``correlate1d`` adding its terms in ndimage's order (see the module notes).

    One term (or symmetric pair) after the other, each op writing in place into the output or
    one buffer: the same operations on each element in the same order as the whole-array
    expressions ``acc + pair * w`` they replace, so the same bits, with two arrays made instead
    of three per term (:func:`_slabs` runs it a cache-sized slab at a time)."""
    n, k = x.shape[axis], w.shape[0]
    if x.numel() == 0:
        return x.clone()
    left = k // 2 + origin
    e = extend(x, (axis,), ((left, k - 1 - left),), _BOUNDARY[mode], cval)
    taps = [e.narrow(axis, j, n) for j in range(k)]
    acc = torch.empty(x.shape, dtype=e.dtype, device=e.device)
    buf = torch.empty_like(acc)
    half = k // 2
    wl = [float(v) for v in w]
    symmetric = antisymmetric = False
    if k % 2:
        symmetric = all(abs(wl[half + i] - wl[half - i]) <= _EPS for i in range(1, half + 1))
        antisymmetric = not symmetric and all(
            abs(wl[half + i] + wl[half - i]) <= _EPS for i in range(1, half + 1)
        )
    if symmetric or antisymmetric:
        # acc = tap(half)·w; then acc + (tap(j) ± tap(k-1-j))·w[j], each op rounded
        torch.mul(taps[half], wl[half], out=acc)
        for j in range(half):
            if symmetric:
                torch.add(taps[j], taps[k - 1 - j], out=buf)
            else:
                torch.sub(taps[j], taps[k - 1 - j], out=buf)
            buf.mul_(wl[j])
            acc.add_(buf)
        return acc
    torch.mul(taps[k - 1], wl[k - 1], out=acc)
    for j in range(k - 1):
        torch.mul(taps[j], wl[j], out=buf)
        acc.add_(buf)
    return acc


#: Elements per slab of :func:`_slabs` (1 MiB of float64: a slab's operands stay in the
#: caches between its ops).
_SLAB = 1 << 17


def _ndimage_mean1d(
    x: torch.Tensor, size: int, axis: int, mode: str, cval: float, origin: int
) -> torch.Tensor:
    """float64 ``uniform_filter1d`` as ndimage computes it: a running sum along the axis (the
    first window added up, then the sample entering minus the one leaving), over ``size``."""
    n = x.shape[axis]
    if x.numel() == 0:
        return x.clone()
    left = size // 2 + origin
    e = extend(x, (axis,), ((left, size - 1 - left),), _BOUNDARY[mode], cval)
    steps = torch.cat(
        [e.narrow(axis, 0, size), e.narrow(axis, size, n - 1) - e.narrow(axis, 0, n - 1)], axis
    )
    return torch.cumsum(steps, axis).narrow(axis, size - 1, n) / float(size)


def _integer_pass(x: torch.Tensor, p: _Pass, cval: complex, dtype: torch.dtype) -> torch.Tensor:
    """One pass with an integer output ``dtype``: exactly by the engine, or ndimage's sum."""
    k = p.weights.shape[0]
    c = float(cval.real)
    exact = not p.mean and _exact_ok(x, p.weights, p.mode, cval)
    weights = _as_int64(p.weights) if exact else p.weights
    w = None if exact or p.mean else p.weights.detach().to(torch.float64).cpu().numpy()

    def run(t: torch.Tensor, axis: int) -> torch.Tensor:
        if exact:  # exactly in int64 by the engine
            q = dataclasses.replace(p, weights=weights, axis=axis)
            return _cast(_engine_pass(_as_int64(t), q, int(cval.real)), dtype)
        t = t.to(torch.float64)
        if w is None:
            return _cast(_ndimage_mean1d(t, k, axis, p.mode, c, p.origin), dtype)
        return _cast(_ndimage_sum1d(t, w, axis, p.mode, c, p.origin), dtype)

    return _slabs(x, p.axis, dtype, run)


def _slabs(
    x: torch.Tensor,
    axis: int,
    dtype: torch.dtype,
    fn: Callable[[torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """``fn(x, axis)`` for an ``fn`` that works along ``axis`` alone (each line along it on
    its own), run on slabs of about :data:`_SLAB` elements into one output of ``dtype``
    (``x`` viewed as (before, axis, after); the slabs cut the dims before and after): the
    float64 (or int64) copy, the extension, the sums and the cast of a slab stay in the
    caches, and no whole-array temporary is made (each of which, above 32 MiB, was mapped and
    faulted in afresh every call). Measured (2026-12-05, 2 threads, ``gaussian_filter`` sigma 2 of a
    ``uint8`` image, bitwise scipy's): 2048² 628-752 ms with whole arrays and 475 000 page
    faults a call, 162 ms with in-place ops on whole arrays, 47.8 ms with slabs (scipy
    59-64)."""
    n = x.shape[axis]
    before, after = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1 :])
    if x.numel() <= _SLAB:
        return fn(x, axis)
    v = x.reshape(before, n, after)
    out = torch.empty((before, n, after), dtype=dtype, device=x.device)
    if n * after <= _SLAB:
        rows, cols = max(1, _SLAB // (n * after)), after
    else:
        rows, cols = 1, max(1, _SLAB // n)
    for r in range(0, before, rows):
        for q in range(0, after, cols):
            cut = (slice(r, r + rows), slice(None), slice(q, q + cols))
            out[cut] = fn(v[cut], 1)
    return out.reshape(x.shape)


def _run_passes(
    x: torch.Tensor, passes: Sequence[_Pass], cval: complex, out: _Output
) -> torch.Tensor:
    """ndimage's sequence of 1-D passes, into ``out``."""
    if not passes:
        return _copy(x, out)
    if _is_integer(out.dtype):
        # each pass is stored in the output dtype; a bool output array holds the C cast's byte,
        # which the next pass reads as it is (0-255)
        between = torch.uint8 if out.dtype == torch.bool else out.dtype
        for p in passes:
            x = _integer_pass(x, p, cval, between)
        return _deliver(x, out)
    cd = _compute_dtype(x.dtype, out.dtype)
    return _deliver(_float_passes(x.to(cd), passes, cval), out)


def _origin1d(fname: str, origin: Any, k: int, convolution: bool, where: str = "") -> int:
    """A correlate1d origin: ``origin`` as given for a correlation; for a convolution (kernel
    reversed) negated, and one less for an even kernel, as ndimage defines it."""
    o = _origin(fname, origin, k, where)
    return (-o - (1 - k % 2)) if convolution else o


# --------------------------------------------------------------------------------------------
# Public 1-D functions
# --------------------------------------------------------------------------------------------


def correlate1d(
    input: Any,
    weights: Any,
    axis: int = -1,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    origin: int = 0,
) -> torch.Tensor:
    """1-D correlation along ``axis``, as ``scipy.ndimage.correlate1d``.

    ``y[i] = sum_j weights[j] * x[i + j - len(weights) // 2 - origin]`` along ``axis``, with
    ``x`` extended beyond its edges by ``mode``; complex weights are conjugated.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter. Never modified (unless it is also ``output``).
    weights : Tensor or array_like
        1-D, at least one weight.
    axis : int, optional
        The axis to filter along (default the last).
    output : dtype, Tensor or ndarray, optional
        The result's dtype (default the input's; complex when input or weights are), or a tensor
        or numpy array of the input's shape to write the result into.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', \
'grid-mirror', 'grid-wrap'}, optional
        How the input is extended beyond its edges (see the module notes). Default
        ``'reflect'``: ``d c b a | a b c d | d c b a``.
    cval : number, optional
        The value beyond the edges for the constant modes (default 0).
    origin : int, optional
        Shifts the filter: positive values move it towards lower indices. Allowed
        ``-(len(weights) // 2)`` to ``(len(weights) - 1) // 2``.

    Returns
    -------
    Tensor
        The correlation, of the input's shape; ``output`` itself when it is a tensor.

    Raises
    ------
    ValueError
        Unknown ``mode``; ``axis`` or ``origin`` out of range; empty or not 1-D ``weights``; an
        ``output`` of the wrong shape or device, or real for a complex result; a complex
        ``cval`` with a real input. Where scipy raises ``RuntimeError`` instead (mode,
        weights, output), a :class:`FilterArgumentError`, which is both.
    TypeError
        Non-numeric operands; an unsupported dtype; a non-integer ``axis`` or ``origin``.

    See Also
    --------
    convolve1d : the same with the weights reversed.
    trueconv.correlate : scipy.signal's correlation, the engine call this runs.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> ndimage.correlate1d(torch.tensor([2, 8, 0, 4, 1, 9, 9, 0]), [1, 3])
    tensor([ 8, 26,  8, 12,  7, 28, 36,  9])

    Integer outputs truncate toward zero, as ndimage does:

    >>> ndimage.correlate1d(torch.tensor([1, -3, 4]), [0.5, 0.5], mode="constant")
    tensor([ 0, -1,  0])
    """
    return _one_pass("correlate1d", input, weights, axis, output, mode, cval, origin, False)


def convolve1d(
    input: Any,
    weights: Any,
    axis: int = -1,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    origin: int = 0,
) -> torch.Tensor:
    """1-D convolution along ``axis``, as ``scipy.ndimage.convolve1d``.

    :func:`correlate1d` with the weights reversed (and not conjugated), the origin negated and,
    for an even number of weights, moved by one: ndimage's definition.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    weights : Tensor or array_like
        1-D, at least one weight.
    axis : int, optional
        The axis to filter along (default the last).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str, optional
        As in :func:`correlate1d` (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    origin : int, optional
        As in :func:`correlate1d`; the same allowed range.

    Returns
    -------
    Tensor
        The convolution, of the input's shape.

    Raises
    ------
    ValueError
        As :func:`correlate1d`.
    TypeError
        As :func:`correlate1d`.

    See Also
    --------
    correlate1d : the same without reversing the weights.
    trueconv.convolve : scipy.signal's convolution, on the same engine.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> ndimage.convolve1d(torch.tensor([2, 8, 0, 4, 1, 9, 9, 0]), [1, 3])
    tensor([14, 24,  4, 13, 12, 36, 27,  0])
    >>> ndimage.convolve1d(torch.tensor([[1., 2., 3.]]), [1., 1., 1.], mode="wrap")
    tensor([[6., 6., 6.]])
    """
    return _one_pass("convolve1d", input, weights, axis, output, mode, cval, origin, True)


def _one_pass(
    fname: str,
    input: Any,
    weights: Any,
    axis: Any,
    output: Any,
    mode: Any,
    cval: Any,
    origin: Any,
    convolution: bool,
) -> torch.Tensor:
    x = _tensor(fname, "input", input)
    w = _weights(fname, weights, x)
    if w.ndim != 1 or w.shape[0] == 0:
        raise FilterArgumentError(
            f"{fname}(): weights must be 1-D with at least one weight; got shape {tuple(w.shape)}."
        )
    a = _axis(fname, axis, x.ndim)
    m = _mode(fname, mode)
    c = _cval(fname, cval, x)
    o = _origin1d(fname, origin, w.shape[0], convolution)
    out = _output(fname, output, x, x.is_complex() or w.is_complex(), depth=2)
    if convolution:
        w = w.flip(0)
        w = w.conj_physical() if w.is_complex() else w
    return _run_passes(x, [_Pass(a, w, o, m)], c, out)


# --------------------------------------------------------------------------------------------
# N-D correlate / convolve
# --------------------------------------------------------------------------------------------


def correlate(
    input: Any,
    weights: Any,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    origin: int | Sequence[int] = 0,
    *,
    axes: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Multi-dimensional correlation, as ``scipy.ndimage.correlate``.

    Each output sample is the sum of ``weights`` times the input window centred on it
    (``weights.shape[d] // 2 + origin[d]`` samples before it along each filtered axis ``d``),
    the input extended by ``mode`` beyond its edges; complex weights are conjugated.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    weights : Tensor or array_like
        One dim per filtered axis (``input.ndim`` of them, or ``len(axes)``); no empty dim.
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str, optional
        One mode for every axis, as in :func:`correlate1d` (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    origin : int or sequence of int, optional
        One for every filtered axis, or one per axis of ``axes`` (in its order); each within
        ``-(k // 2)`` to ``(k - 1) // 2`` for that axis's weights length ``k``.
    axes : int or sequence of int, optional
        The filtered axes (default all); the other axes are filtered independently, every
        slice alike. ``weights``' dims map onto ``axes`` in increasing axis order.

    Returns
    -------
    Tensor
        The correlation, of the input's shape.

    Raises
    ------
    ValueError
        Unknown or per-axis ``mode``; ``weights`` whose dims do not match the filtered axes;
        ``axes`` out of range or repeated; ``origin`` out of range or of the wrong length; a
        bad ``output``; a complex ``cval`` with a real input. Where scipy raises
        ``RuntimeError`` instead, a :class:`FilterArgumentError`, which is both.
    TypeError
        Non-numeric operands, unsupported dtypes, non-integer ``axes`` or ``origin``.

    See Also
    --------
    convolve : the same with the weights reversed.
    trueconv.correlate : scipy.signal's correlation, the engine call this runs.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> image = torch.arange(25).reshape(5, 5)
    >>> cross = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    >>> ndimage.correlate(image, cross)
    tensor([[  6,  10,  15,  20,  24],
            [ 26,  30,  35,  40,  44],
            [ 51,  55,  60,  65,  69],
            [ 76,  80,  85,  90,  94],
            [ 96, 100, 105, 110, 114]])
    """
    return _dense("correlate", input, weights, output, mode, cval, origin, axes, False)


def convolve(
    input: Any,
    weights: Any,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    origin: int | Sequence[int] = 0,
    *,
    axes: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Multi-dimensional convolution, as ``scipy.ndimage.convolve``.

    :func:`correlate` with the weights reversed along every filtered axis (not conjugated),
    each origin negated and, along an even weights length, moved by one: ndimage's definition.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    weights : Tensor or array_like
        One dim per filtered axis; no empty dim.
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str, optional
        One mode for every axis (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    origin : int or sequence of int, optional
        As in :func:`correlate`; the same allowed ranges.
    axes : int or sequence of int, optional
        As in :func:`correlate`.

    Returns
    -------
    Tensor
        The convolution, of the input's shape.

    Raises
    ------
    ValueError
        As :func:`correlate`.
    TypeError
        As :func:`correlate`.

    See Also
    --------
    correlate : the same without reversing the weights.
    trueconv.convolve : scipy.signal's convolution, on the same engine.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> a = torch.tensor([[1, 2, 0, 0], [5, 3, 0, 4], [0, 0, 0, 7], [9, 3, 0, 0]])
    >>> k = [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    >>> ndimage.convolve(a, k, mode="constant", cval=0.0)
    tensor([[11, 10,  7,  4],
            [10,  3, 11, 11],
            [15, 12, 14,  7],
            [12,  3,  7,  0]])
    >>> ndimage.convolve(a, k, mode="constant", cval=1.0)
    tensor([[13, 11,  8,  7],
            [11,  3, 11, 14],
            [16, 12, 14, 10],
            [15,  6, 10,  5]])
    """
    return _dense("convolve", input, weights, output, mode, cval, origin, axes, True)


def _dense(
    fname: str,
    input: Any,
    weights: Any,
    output: Any,
    mode: Any,
    cval: Any,
    origin: Any,
    axes: Any,
    convolution: bool,
) -> torch.Tensor:
    x = _tensor(fname, "input", input)
    w = _weights(fname, weights, x)
    ax = _axes(fname, axes, x.ndim)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise FilterArgumentError(
            f"{fname}(): mode must be one string for every axis (a sequence of modes is for "
            f"the separable filters); got {mode!r}."
        )
    m = _mode(fname, mode)
    if w.ndim != len(ax):
        raise FilterArgumentError(
            f"{fname}(): weights must have one dim per filtered axis ({len(ax)}"
            + (f", axes={axes!r}" if axes is not None else "")
            + f"); got weights of shape {tuple(w.shape)}."
        )
    if any(s == 0 for s in w.shape):
        raise FilterArgumentError(
            f"{fname}(): weights must hold at least one weight along every dim; got shape "
            f"{tuple(w.shape)}."
        )
    c = _cval(fname, cval, x)
    given = _per_axis(fname, "origin", origin, len(ax))
    # weights' dims follow the filtered axes in increasing order; origins follow `axes`
    sorted_axes = sorted(ax)
    lengths = dict(zip(sorted_axes, w.shape))
    origins = {}
    for a, o in zip(ax, given):
        where = f" along axis {a}" if len(ax) > 1 else ""
        origins[a] = _origin1d(fname, o, lengths[a], convolution, where)
    out = _output(fname, output, x, x.is_complex() or w.is_complex(), depth=2)
    if convolution:
        w = w.flip(tuple(range(w.ndim))) if w.ndim else w
        w = w.conj_physical() if w.is_complex() else w
    corr_origins = tuple(origins[a] for a in sorted_axes)
    full = [1] * x.ndim
    for a in sorted_axes:
        full[a] = lengths[a]
    w = w.reshape(full)
    return _run_dense(x, w, tuple(sorted_axes), corr_origins, m, c, out)


def _run_dense(
    x: torch.Tensor,
    w: torch.Tensor,
    axes: tuple[int, ...],
    origins: tuple[int, ...],
    mode: str,
    cval: complex,
    out: _Output,
) -> torch.Tensor:
    """ndimage's N-D correlation of ``x`` with ``w`` (``x.ndim`` dims, size 1 off ``axes``)."""
    if not axes:
        return _deliver(_as_compute(x, out) * _as_compute(w, out).reshape(()), out)
    if _is_integer(out.dtype):
        if _exact_ok(x, w, mode, cval):
            y = _engine_correlate(_as_int64(x), _as_int64(w), axes, origins, mode, int(cval.real))
        else:
            y = _ndimage_sum(x.to(torch.float64), w, axes, origins, mode, float(cval.real))
        return _deliver(y, out)
    cd = _compute_dtype(x.dtype, out.dtype)
    w = w.to(cd if cd.is_complex else _real(cd))
    return _deliver(_engine_correlate(x.to(cd), w, axes, origins, mode, cval), out)


def _as_compute(t: torch.Tensor, out: _Output) -> torch.Tensor:
    if _is_integer(out.dtype):
        return t.to(torch.float64) if not _is_integer(t.dtype) else t.to(torch.int64)
    return t.to(_compute_dtype(t.dtype, out.dtype))


def _ndimage_sum(
    x: torch.Tensor,
    w: torch.Tensor,
    axes: tuple[int, ...],
    origins: tuple[int, ...],
    mode: str,
    cval: float,
) -> torch.Tensor:
    """float64 N-D correlation adding ``w * x`` in ndimage's order: weights in C order, those
    with ``|w| <= eps`` left out (ndimage's footprint)."""
    if x.numel() == 0:
        return x.clone()
    e = extend(x, axes, _pads([w.shape[a] for a in axes], origins), _BOUNDARY[mode], cval)
    wn = w.detach().to(torch.float64).cpu().numpy()
    acc = torch.zeros_like(x)
    for idx in np.ndindex(*wn.shape):
        v = float(wn[idx])
        if abs(v) <= _EPS:
            continue
        window = e
        for a in axes:
            window = window.narrow(a, idx[a], x.shape[a])
        acc = acc + v * window
    return acc


# --------------------------------------------------------------------------------------------
# Gaussian
# --------------------------------------------------------------------------------------------


def _gaussian_kernel(sigma: float, order: int, radius: int) -> np.ndarray:
    """The convolution kernel of ``gaussian_filter1d``: the normalised Gaussian on
    ``-radius .. radius`` (float64), or its ``order``-th derivative."""
    x = np.arange(-radius, radius + 1)
    var = sigma * sigma
    # exp(-x^2 / (2 var)) in ndimage's float operations, so that integer outputs truncate alike
    phi = np.exp(-0.5 / var * x**2)
    phi = phi / phi.sum()
    if order == 0:
        return phi
    # d^n/dx^n phi = p_n(x) phi with p_0 = 1 and p_{n+1} = p_n' - x p_n / var; p as
    # coefficients of 1, x, x^2, ...
    p = np.zeros(order + 1)
    p[0] = 1.0
    powers = np.arange(order + 1)
    for _ in range(order):
        derivative = np.append(p[1:] * powers[1:], 0.0)
        times_x = np.concatenate(([0.0], p[:-1]))
        p = derivative - times_x / var
    values = (x[:, None].astype(np.float64) ** powers) @ p
    return values * phi


def _sigma(fname: str, sigma: Any, strict: bool) -> float:
    if isinstance(sigma, (torch.Tensor, np.ndarray)) and sigma.ndim == 0:
        sigma = sigma.item()
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"{fname}(): sigma must be a real number; got {sigma!r}.")
    s = float(sigma)
    if not (s > 0 if strict else s >= 0) or not np.isfinite(s):
        allowed = "positive" if strict else "non-negative (0 skips the axis)"
        raise ValueError(f"{fname}(): sigma must be finite and {allowed}; got {sigma!r}.")
    return s


def _radius(fname: str, sigma: float, truncate: Any, radius: Any) -> int:
    if radius is None:
        if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, numbers.Real):
            raise TypeError(f"{fname}(): truncate must be a real number; got {truncate!r}.")
        lw = int(float(truncate) * sigma + 0.5)
        if lw < 0:
            raise ValueError(
                f"{fname}(): truncate={truncate!r} gives a negative radius; it must be >= 0."
            )
        return lw
    if (
        isinstance(radius, (bool, np.bool_))
        or not isinstance(radius, numbers.Integral)
        or int(radius) < 0
    ):
        raise ValueError(f"{fname}(): radius must be None or a non-negative int; got {radius!r}.")
    return int(radius)


def _order(fname: str, order: Any) -> int:
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, numbers.Integral):
        raise TypeError(f"{fname}(): order must be a non-negative int; got {order!r}.")
    if int(order) < 0:
        raise ValueError(f"{fname}(): order must be a non-negative int; got {order!r}.")
    return int(order)


def _gaussian_pass(
    fname: str,
    x: torch.Tensor,
    axis: int,
    sigma: float,
    order: int,
    mode: str,
    truncate: Any,
    radius: Any,
) -> _Pass:
    lw = _radius(fname, sigma, truncate, radius)
    kernel = _gaussian_kernel(sigma, order, lw)
    # ndimage correlates with the kernel reversed, centred (origin 0)
    weights = torch.from_numpy(kernel[::-1].copy()).to(x.device)
    return _Pass(axis, weights, 0, mode)


def gaussian_filter1d(
    input: Any,
    sigma: float,
    axis: int = -1,
    order: int = 0,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    truncate: float = 4.0,
    *,
    radius: int | None = None,
) -> torch.Tensor:
    """1-D Gaussian filter (or derivative of a Gaussian), as ``scipy.ndimage.gaussian_filter1d``.

    Convolution along ``axis`` with ``exp(-x**2 / (2 sigma**2))`` sampled at the integers
    ``-radius .. radius`` and normalised to sum 1, or with its ``order``-th derivative.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    sigma : float
        The standard deviation, in samples (positive).
    axis : int, optional
        The axis to filter along (default the last).
    order : int, optional
        0 (default) smooths; ``n > 0`` convolves with the ``n``-th derivative of the Gaussian.
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str, optional
        As in :func:`correlate1d` (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    truncate : float, optional
        The kernel's radius in standard deviations, when ``radius`` is not given:
        ``radius = int(truncate * sigma + 0.5)`` (default 4.0).
    radius : int, optional
        The kernel's radius in samples (its length is ``2 * radius + 1``); overrides
        ``truncate``.

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        ``sigma <= 0``; a negative ``order`` or ``radius``; as :func:`correlate1d` otherwise.
    TypeError
        Non-numeric ``sigma``/``truncate``; a non-integer ``order``; as :func:`correlate1d`.

    See Also
    --------
    gaussian_filter : the same along several axes.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> ndimage.gaussian_filter1d(torch.tensor([1., 2., 3., 4., 5.], dtype=torch.float64), 1)
    tensor([1.4270, 2.0678, 3.0000, 3.9322, 4.5730], dtype=torch.float64)
    >>> ndimage.gaussian_filter1d(torch.tensor([0., 0., 1., 0., 0.]), 1, order=1, radius=1)
    tensor([ 0.0000,  0.2741,  0.0000, -0.2741,  0.0000])
    """
    fname = "gaussian_filter1d"
    x = _tensor(fname, "input", input)
    s = _sigma(fname, sigma, strict=True)
    a = _axis(fname, axis, x.ndim)
    n = _order(fname, order)
    m = _mode(fname, mode)
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex())
    return _run_passes(x, [_gaussian_pass(fname, x, a, s, n, m, truncate, radius)], c, out)


def gaussian_filter(
    input: Any,
    sigma: float | Sequence[float],
    order: int | Sequence[int] = 0,
    output: Any = None,
    mode: str | Sequence[str] = "reflect",
    cval: complex = 0.0,
    truncate: float = 4.0,
    *,
    radius: int | Sequence[int] | None = None,
    axes: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Multi-dimensional Gaussian filter, as ``scipy.ndimage.gaussian_filter``.

    One :func:`gaussian_filter1d` per filtered axis, in the order of ``axes``; an axis whose
    sigma is 0 (at most ``1e-15``) is left alone. Floating-point results run the passes as one
    :func:`trueconv.convolve_separable` call where they can.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    sigma : float or sequence of float
        The standard deviation per filtered axis (one for all, or one per axis of ``axes``).
    order : int or sequence of int, optional
        The derivative order per axis (default 0: smoothing).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str or sequence of str, optional
        One mode for all axes or one per axis (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    truncate : float, optional
        As in :func:`gaussian_filter1d` (default 4.0).
    radius : int or sequence of int, optional
        As in :func:`gaussian_filter1d`, per axis.
    axes : int or sequence of int, optional
        The filtered axes (default all).

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        A negative sigma; per-axis sequences of the wrong length; as
        :func:`gaussian_filter1d` otherwise.
    TypeError
        As :func:`gaussian_filter1d`.

    See Also
    --------
    gaussian_filter1d : one axis.
    trueconv.convolve_separable : the engine it runs on.

    Examples
    --------
    Integer inputs give integer outputs (truncated), as in scipy:

    >>> import torch
    >>> from trueconv import ndimage
    >>> a = torch.arange(0, 50, 2).reshape(5, 5)
    >>> ndimage.gaussian_filter(a, sigma=1)
    tensor([[ 4,  6,  8,  9, 11],
            [10, 12, 14, 15, 17],
            [20, 22, 24, 25, 27],
            [29, 31, 33, 34, 36],
            [35, 37, 39, 40, 42]])

    Gradients flow through floating-point inputs:

    >>> x = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    >>> ndimage.gaussian_filter(x, 1.0)[1, 1].backward()
    >>> x.grad.sum().item()
    1.0
    """
    fname = "gaussian_filter"
    x = _tensor(fname, "input", input)
    ax = _axes(fname, axes, x.ndim)
    sigmas = [_sigma(fname, s, strict=False) for s in _per_axis(fname, "sigma", sigma, len(ax))]
    orders = [_order(fname, o) for o in _per_axis(fname, "order", order, len(ax))]
    modes = _modes(fname, mode, len(ax))
    radii = _per_axis(fname, "radius", radius, len(ax))
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex())
    passes = [
        _gaussian_pass(fname, x, a, s, n, m, truncate, r)
        for a, s, n, m, r in zip(ax, sigmas, orders, modes, radii)
        if s > 1e-15
    ]
    return _run_passes(x, passes, c, out)


# --------------------------------------------------------------------------------------------
# Uniform
# --------------------------------------------------------------------------------------------


def _size(fname: str, size: Any) -> int:
    if isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
        return int(size)
    if isinstance(size, numbers.Real) and float(size).is_integer():
        return int(float(size))  # scipy takes whole floats (it calls int())
    raise TypeError(f"{fname}(): size must be an int; got {size!r}.")


def _uniform_pass(
    fname: str, x: torch.Tensor, axis: int, size: int, origin: Any, mode: str
) -> _Pass:
    o = _origin(fname, origin, size, f" along axis {axis}")
    weights = torch.full((size,), 1.0 / size, dtype=torch.float64, device=x.device)
    return _Pass(axis, weights, o, mode, mean=True)


def uniform_filter1d(
    input: Any,
    size: int,
    axis: int = -1,
    output: Any = None,
    mode: str = "reflect",
    cval: complex = 0.0,
    origin: int = 0,
) -> torch.Tensor:
    """1-D moving average of ``size`` samples along ``axis``, as
    ``scipy.ndimage.uniform_filter1d``.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    size : int
        The window length (at least 1).
    axis : int, optional
        The axis to filter along (default the last).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str, optional
        As in :func:`correlate1d` (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    origin : int, optional
        As in :func:`correlate1d`: ``-(size // 2)`` to ``(size - 1) // 2``.

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        ``size < 1``; as :func:`correlate1d` otherwise.
    TypeError
        A non-integer ``size``; as :func:`correlate1d`.

    See Also
    --------
    uniform_filter : several axes.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> ndimage.uniform_filter1d(torch.tensor([2, 8, 0, 4, 1, 9, 9, 0]), size=3)
    tensor([4, 3, 4, 1, 4, 6, 6, 3])
    """
    fname = "uniform_filter1d"
    x = _tensor(fname, "input", input)
    s = _size(fname, size)
    if s < 1:
        raise FilterArgumentError(f"{fname}(): size must be at least 1; got {size!r}.")
    a = _axis(fname, axis, x.ndim)
    m = _mode(fname, mode)
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex())
    return _run_passes(x, [_uniform_pass(fname, x, a, s, origin, m)], c, out)


def uniform_filter(
    input: Any,
    size: int | Sequence[int] = 3,
    output: Any = None,
    mode: str | Sequence[str] = "reflect",
    cval: complex = 0.0,
    origin: int | Sequence[int] = 0,
    *,
    axes: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Multi-dimensional moving average, as ``scipy.ndimage.uniform_filter``.

    One :func:`uniform_filter1d` per filtered axis whose size exceeds 1, in the order of
    ``axes``.

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    size : int or sequence of int, optional
        The window length per filtered axis (default 3; an axis of size 0 or 1 is left alone).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str or sequence of str, optional
        One mode for all axes or one per axis (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    origin : int or sequence of int, optional
        One for all axes or one per axis.
    axes : int or sequence of int, optional
        The filtered axes (default all).

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        Per-axis sequences of the wrong length; as :func:`uniform_filter1d` otherwise.
    TypeError
        As :func:`uniform_filter1d`.

    See Also
    --------
    uniform_filter1d : one axis.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> ndimage.uniform_filter(torch.tensor([[4, 8, 12], [16, 20, 24]]), [2, 2])
    tensor([[ 4,  6, 10],
            [10, 12, 16]])
    """
    fname = "uniform_filter"
    x = _tensor(fname, "input", input)
    ax = _axes(fname, axes, x.ndim)
    sizes = [_size(fname, s) for s in _per_axis(fname, "size", size, len(ax))]
    origins = _per_axis(fname, "origin", origin, len(ax))
    modes = _modes(fname, mode, len(ax))
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex())
    passes = [
        _uniform_pass(fname, x, a, s, o, m)
        for a, s, o, m in zip(ax, sizes, origins, modes)
        if s > 1
    ]
    return _run_passes(x, passes, c, out)


# --------------------------------------------------------------------------------------------
# Derivatives
# --------------------------------------------------------------------------------------------


def _edge_filter(
    fname: str, input: Any, axis: Any, output: Any, mode: Any, cval: Any, smooth: list[int]
) -> torch.Tensor:
    x = _tensor(fname, "input", input)
    a = _axis(fname, axis, x.ndim)
    modes = _modes(fname, mode, x.ndim)
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex(), depth=2)
    dev = x.device
    passes = [_Pass(a, torch.tensor([-1, 0, 1], device=dev), 0, modes[a])]
    passes += [
        _Pass(d, torch.tensor(smooth, device=dev), 0, modes[d]) for d in range(x.ndim) if d != a
    ]
    return _run_passes(x, passes, c, out)


def sobel(
    input: Any,
    axis: int = -1,
    output: Any = None,
    mode: str | Sequence[str] = "reflect",
    cval: complex = 0.0,
) -> torch.Tensor:
    """Sobel derivative along ``axis``, as ``scipy.ndimage.sobel``.

    Correlation with ``[-1, 0, 1]`` along ``axis`` and with ``[1, 2, 1]`` along every other
    axis (in increasing order).

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    axis : int, optional
        The axis of the derivative (default the last).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str or sequence of str, optional
        One mode for all axes or one per axis of the input (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        As :func:`correlate1d`; a per-axis ``mode`` of the wrong length.
    TypeError
        As :func:`correlate1d`.

    See Also
    --------
    prewitt : the same with ``[1, 1, 1]`` smoothing.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> a = torch.tensor([[1., 0., 0.], [1., 1., 0.], [0., 0., 0.]])
    >>> ndimage.sobel(a, mode=["reflect", "wrap"])
    tensor([[ 1., -4.,  3.],
            [ 2., -3.,  1.],
            [ 1., -1.,  0.]])
    """
    return _edge_filter("sobel", input, axis, output, mode, cval, [1, 2, 1])


def prewitt(
    input: Any,
    axis: int = -1,
    output: Any = None,
    mode: str | Sequence[str] = "reflect",
    cval: complex = 0.0,
) -> torch.Tensor:
    """Prewitt derivative along ``axis``, as ``scipy.ndimage.prewitt``.

    Correlation with ``[-1, 0, 1]`` along ``axis`` and with ``[1, 1, 1]`` along every other
    axis (in increasing order).

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    axis : int, optional
        The axis of the derivative (default the last).
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str or sequence of str, optional
        One mode for all axes or one per axis of the input (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        As :func:`sobel`.
    TypeError
        As :func:`sobel`.

    See Also
    --------
    sobel : the same with ``[1, 2, 1]`` smoothing.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> a = torch.tensor([[1., 0., 0.], [1., 1., 0.], [0., 0., 0.]])
    >>> ndimage.prewitt(a, mode=["reflect", "wrap"])
    tensor([[ 1., -3.,  2.],
            [ 1., -2.,  1.],
            [ 1., -1.,  0.]])
    """
    return _edge_filter("prewitt", input, axis, output, mode, cval, [1, 1, 1])


#: Integer dtypes torch adds in place on every device (not uint16-uint64 on the CPU).
_ADDS = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def laplace(
    input: Any,
    output: Any = None,
    mode: str | Sequence[str] = "reflect",
    cval: complex = 0.0,
    *,
    axes: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Discrete Laplacian, as ``scipy.ndimage.laplace``.

    The sum over the filtered axes of the second differences: correlation with ``[1, -2, 1]``
    along each axis (each term in the output dtype, then added).

    Parameters
    ----------
    input : Tensor or array_like
        The array to filter.
    output : dtype, Tensor or ndarray, optional
        As in :func:`correlate1d`.
    mode : str or sequence of str, optional
        One mode for all filtered axes or one per axis of ``axes`` (default ``'reflect'``).
    cval : number, optional
        As in :func:`correlate1d`.
    axes : int or sequence of int, optional
        The filtered axes (default all).

    Returns
    -------
    Tensor
        The filtered array, of the input's shape.

    Raises
    ------
    ValueError
        As :func:`correlate1d`; ``axes`` out of range or repeated; a per-axis ``mode`` of the
        wrong length.
    TypeError
        As :func:`correlate1d`.

    Examples
    --------
    >>> import torch
    >>> from trueconv import ndimage
    >>> a = torch.tensor([[1., 0., 0.], [1., 1., 0.], [0., 0., 0.]])
    >>> ndimage.laplace(a, mode=["reflect", "wrap"])
    tensor([[-2.,  2.,  1.],
            [-2., -3.,  2.],
            [ 1.,  1.,  0.]])
    """
    fname = "laplace"
    x = _tensor(fname, "input", input)
    ax = _axes(fname, axes, x.ndim)
    modes = _modes(fname, mode, len(ax))
    c = _cval(fname, cval, x)
    out = _output(fname, output, x, x.is_complex())
    if not ax:
        return _copy(x, out)
    second = torch.tensor([1, -2, 1], device=x.device)
    integer = _is_integer(out.dtype)
    total: torch.Tensor | None = None
    if out.dtype in _ADDS:
        # each term in the output dtype, added in place there: ndimage's ``output += tmp``
        # wraps as the int64 sum cast back would (two's complement), with no int64 arrays
        # (2048² uint8: 51 ms and 24 580 page faults a call with them, 17.6 in place)
        for a, m in zip(ax, modes):
            term = _integer_pass(x, _Pass(a, second, 0, m), c, out.dtype)
            total = term if total is None else total.add_(term)
        assert total is not None
        return _deliver(total, out)
    cd = torch.int64 if integer else _compute_dtype(x.dtype, out.dtype)
    for a, m in zip(ax, modes):
        p = _Pass(a, second, 0, m)
        if integer:  # summed in int64, then cast (bool: the bytes' sum, ndimage's logical or)
            term = _integer_pass(x, p, c, out.dtype).to(cd)
        else:
            term = _float_passes(x.to(cd), [p], c)
        total = term if total is None else total + term
    assert total is not None
    return _deliver(total, out)
