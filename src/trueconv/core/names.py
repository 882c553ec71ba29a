"""The accepted names of every choice, written once, and the checks that use them.

The ``Literal`` types, the tuples of accepted values and the error messages all come from the
definitions below, so they cannot drift apart.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Literal, get_args

Mode = Literal["full", "same", "valid"]
Method = Literal["auto", "direct", "fft", "overlap_add"]
Boundary = Literal["fill", "wrap", "symmetric", "reflect", "replicate"]
BoundaryAlias = Literal["constant", "zeros", "circular", "symm", "edge"]
#: where ``'same'`` starts in ``'full'`` for even kernels: numpy/scipy's ``(k - 1) // 2``
#: (``'floor'``) or MATLAB's ``ceil((k - 1) / 2)`` (``'ceil'``)
Align = Literal["floor", "ceil"]
AlignAlias = Literal["numpy", "scipy", "matlab"]
NanPolicy = Literal["propagate", "fill", "interpolate"]

MODES: tuple[str, ...] = get_args(Mode)
METHODS: tuple[str, ...] = get_args(Method)
BOUNDARIES: tuple[str, ...] = get_args(Boundary)
ALIGNS: tuple[str, ...] = get_args(Align)
NAN_POLICIES: tuple[str, ...] = get_args(NanPolicy)

ALIGN_ALIASES: dict[str, str] = {"numpy": "floor", "scipy": "floor", "matlab": "ceil"}
assert set(ALIGN_ALIASES) == set(get_args(AlignAlias))

#: Other spellings users bring from numpy, scipy and torch, mapped to the canonical name.
#: ndimage's ``mirror``/``nearest``/``reflect`` are deliberately absent: ndimage's ``reflect``
#: is our ``symmetric``, so accepting its names would make ``'reflect'`` ambiguous.
BOUNDARY_ALIASES: dict[str, str] = {
    "constant": "fill",  # numpy.pad
    "zeros": "fill",  # torch padding_mode
    "circular": "wrap",  # torch padding_mode
    "symm": "symmetric",  # scipy.signal.convolve2d
    "edge": "replicate",  # numpy.pad
}
assert set(BOUNDARY_ALIASES) == set(get_args(BoundaryAlias))
assert set(BOUNDARY_ALIASES.values()) <= set(BOUNDARIES)


def choices(values: tuple[str, ...]) -> str:
    """Format accepted values for an error message: ``'a', 'b', 'c'``."""
    return ", ".join(repr(v) for v in values)


def err(fname: str, arg: str, allowed: str, got: Any) -> ValueError:
    """The one format of a bad-choice error: function, argument, what is allowed, what came."""
    return ValueError(f"{fname}(): {arg} must be {allowed}; got {got!r}.")


def canonical_method(fname: str, method: Any, allowed: tuple[str, ...] = METHODS) -> str:
    if not isinstance(method, str) or method not in allowed:
        raise err(fname, "method", f"one of {choices(allowed)}", method)
    return method


def canonical_boundary(fname: str, boundary: Any, arg: str = "boundary") -> str:
    if isinstance(boundary, str):
        canon = BOUNDARY_ALIASES.get(boundary, boundary)
        if canon in BOUNDARIES:
            return canon
    raise err(
        fname,
        arg,
        f"one of {choices(BOUNDARIES)} (or an alias: "
        + ", ".join(f"{a!r} = {c!r}" for a, c in BOUNDARY_ALIASES.items())
        + ")",
        boundary,
    )


def canonical_origin(fname: str, origin: Any) -> str | int | tuple[int, ...]:
    """``origin`` as ``'floor'``/``'ceil'``, an int, or a tuple of ints (one per convolved dim;
    its length is checked against the dims by the spec)."""
    if isinstance(origin, str):
        canon = ALIGN_ALIASES.get(origin, origin)
        if canon in ALIGNS:
            return canon
    elif is_int(origin):
        return int(origin)
    elif isinstance(origin, (tuple, list)) and all(is_int(o) for o in origin):
        return tuple(int(o) for o in origin)
    allowed = (
        "an int, a tuple of ints (one per convolved dim), or one of "
        + choices(ALIGNS)
        + " (aliases: "
        + ", ".join(f"{a!r} = {c!r}" for a, c in ALIGN_ALIASES.items())
        + ")"
    )
    if isinstance(origin, str):
        raise err(fname, "origin", allowed, origin)
    raise TypeError(f"{fname}(): origin must be {allowed}; got {origin!r}.")


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_PLAIN = (int, bool, str, float, type(None))
_PLAIN_SET = frozenset(_PLAIN)


def typed_key(value: Any) -> Any:
    """A hashable key of an argument for caches of work that depends on arguments alone, or
    ``None`` where there is none (anything but plain ints, bools, strs, floats, ``None`` and
    tuples or lists of them).

    Each value carries its type, nested values too: ``True == 1`` and ``(True,) == (1,)`` in
    Python, so a cache keyed on the bare values would serve ``dims=True`` the result that
    ``dims=1`` validated. Lists key as tuples of the list type (the results never keep the
    argument itself)."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if kind is tuple or kind is list:
        types = tuple(map(type, value))
        if _PLAIN_SET.issuperset(types):
            # flat (the options of most calls): the types and values side by side, a 3-tuple
            # that no nested key (a pair) can equal; 0.4 us against 1.1 for 7 options
            return (kind, types, tuple(value))
        parts = []
        for v in value:
            part = typed_key(v)
            if part is None:
                return None
            parts.append(part)
        return (kind, tuple(parts))
    return None


class SpecCache:
    """Results of work that depends on its (hashable) key alone, made once per key: the specs
    of repeated calls. Cleared when full; a ``None`` key, or one with an unhashable entry
    (symbolic sizes while tracing), is made afresh and not stored. What ``make`` raises is
    never stored."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._store: dict[Any, Any] = {}
        self._maxsize = maxsize

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        if key is None:
            return make()
        try:
            return self._store[key]
        except KeyError:
            value = make()
            if len(self._store) >= self._maxsize:
                self._store.clear()
            self._store[key] = value
            return value
        except TypeError as exc:
            if "unhashable" not in str(exc):
                raise
            return make()


def int_tuple(fname: str, arg: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    """``value`` as ``nd`` ints (an int, or a sequence of 1 or ``nd`` ints), each >= minimum."""
    if is_int(value):
        out = (int(value),) * nd
    elif (
        isinstance(value, (tuple, list)) and len(value) in (1, nd) and all(is_int(v) for v in value)
    ):
        out = tuple(int(v) for v in value) * (nd if len(value) == 1 else 1)
    else:
        raise TypeError(f"{fname}(): {arg} must be an int or a tuple of {nd} ints; got {value!r}.")
    if any(v < minimum for v in out):
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{fname}(): {arg} must be {what}; got {value!r}.")
    return out
