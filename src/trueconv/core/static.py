"""Planning under ``torch.compile``: run at trace time, handed to the graph as constants.

A call is planned from shapes, dtypes and options alone (specs and plans are frozen
dataclasses of ints, strings and dtypes). Eagerly that is Python with caches; under
``torch.compile`` Dynamo would trace the same Python, and it cannot trace all of it (the cost
constants are read from a file once, ``functools.lru_cache`` draws a warning, ``math.prod`` of a
generator is refused), so each front door plans through :func:`static`: a function Dynamo calls
at trace time (``torch.compiler.assume_constant_result``) with the operands' static facts, whose
result is rebuilt in the graph from plain tuples (:func:`to_plain` / :func:`from_plain`;
Dynamo keeps constant tuples of ints, strings and dtypes, and builds dataclasses from classes
it reaches through a module global, :data:`CLASSES`).

Shapes are read with :func:`specialized_shape`, which makes Dynamo specialise symbolic sizes: under
dynamic shapes each new shape compiles its own graph with its own plan (torch's own
shape-dependent Python does the same).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

import torch

#: Classes :func:`from_plain` rebuilds, by qualified name (registered by the modules that
#: define them).
CLASSES: dict[str, type] = {}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(*classes: type) -> None:
    """Let :func:`from_plain` rebuild instances of ``classes``."""
    for cls in classes:
        CLASSES[_name(cls)] = cls


def to_plain(obj: Any) -> Any:
    """``obj`` as nested tuples of constants: a dataclass or NamedTuple as ``('o', class name,
    fields)``, a tuple as ``('t', items)``, anything else (ints, strings, dtypes) as
    ``('v', obj)``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = tuple(to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init)
        return ("o", _name(type(obj)), values)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return ("o", _name(type(obj)), tuple(to_plain(v) for v in obj))
    if isinstance(obj, tuple):
        return ("t", tuple(to_plain(v) for v in obj))
    return ("v", obj)


def from_plain(plain: Any) -> Any:
    """The object :func:`to_plain` described."""
    tag = plain[0]
    if tag == "o":
        return CLASSES[plain[1]](*[from_plain(v) for v in plain[2]])
    if tag == "t":
        return tuple(from_plain(v) for v in plain[1])
    return plain[1]


def specialized_shape(t: torch.Tensor) -> tuple[int, ...]:
    """``t``'s sizes as ints; under ``torch.compile`` each symbolic size is specialised (a
    guard on its value), so that planning sees constants."""
    return tuple(operator.index(s) for s in t.shape)


def static(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a planner of constant arguments) called at trace time under ``torch.compile``,
    its result a constant of the graph; eagerly, ``fn`` itself. ``fn`` returns
    :func:`to_plain` output."""
    return torch.compiler.assume_constant_result(fn)
