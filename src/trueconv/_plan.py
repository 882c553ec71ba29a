"""Plan a call: the explicit method's plan, or the cheapest feasible one's (``'auto'``).

Every method plans the call's :class:`~trueconv._problem.Problem` once; ``'auto'`` prices each
plan once (``cost.predict`` of its counts) and keeps the cheapest, which is then what runs:
:func:`trueconv.choose_method` and ``method='auto'`` read the same plan. ``'auto'`` plans are
cached per (spec, device); a requested method is planned per call (the plan is cheap, and
planning reads module constants that tests and calibration adjust).
"""

from __future__ import annotations

import cmath
import functools
from collections.abc import Callable

import torch

from trueconv import _nonfinite
from trueconv._methods import REGISTRY
from trueconv._problem import Plan, Problem
from trueconv._spec import ConvSpec
from trueconv.core import cost
from trueconv.core.dtypes import is_integer

#: Winners timed by ``choose_method(..., measure=True)``, per (spec, device); 'auto' uses them.
#: At most :data:`MEASURED_MAX`, the oldest forgotten first.
_MEASURED: dict[tuple[ConvSpec, torch.device], str] = {}
MEASURED_MAX = 1024


def remember(spec: ConvSpec, device: torch.device, method: str) -> None:
    """Make ``method`` what ``'auto'`` runs for ``spec`` on ``device``."""
    _MEASURED.pop((spec, device), None)
    while len(_MEASURED) >= MEASURED_MAX:
        del _MEASURED[next(iter(_MEASURED))]
    _MEASURED[(spec, device)] = method


def plans(spec: ConvSpec, device: torch.device) -> dict[str, Plan]:
    """The plan of every method ``'auto'`` may pick for ``spec``."""
    return plans_of(Problem.of(spec), device)


def plans_of(problem: Problem, device: torch.device) -> dict[str, Plan]:
    """The plan of every method ``'auto'`` may pick: those that apply (a method declines a
    problem it would only complicate), and for integers and bool the exact ones only."""
    out = {}
    for name, method in REGISTRY.items():
        if is_integer(problem.dtype) and not method.EXACT:
            continue
        p = method.plan(problem, device)
        if p is not None:
            out[name] = p
    return out


def feasible(spec: ConvSpec) -> tuple[str, ...]:
    """The methods ``'auto'`` may pick for ``spec``."""
    return tuple(plans(spec, torch.device("cpu")))


def costs(spec: ConvSpec, device: torch.device) -> dict[str, float]:
    """Predicted seconds of every feasible method."""
    return {n: _price(p, device) for n, p in plans(spec, device).items()}


def _price(p: Plan, device: torch.device) -> float:
    return cost.predict(p.counts, p.problem.dtype, device.type)


def plan(spec: ConvSpec, device: torch.device) -> Plan:
    """The plan a call runs: the requested method's, the measured winner's, or the cheapest."""
    if spec.method != "auto":
        return forced(spec, device)
    # asked only when something was measured: hashing the spec is most of a lookup
    measured = _MEASURED.get((spec, device)) if _MEASURED else None
    if measured is not None:
        return forced(spec, device, measured)
    return _auto(spec, device)


def choose(spec: ConvSpec, device: torch.device) -> str:
    """The method :func:`plan` gives."""
    return plan(spec, device).method


def forced(spec: ConvSpec, device: torch.device, method: str | None = None) -> Plan:
    """The plan of ``method`` (default: the spec's), which must plan something."""
    return _forced(spec, device, method or spec.method)


@functools.lru_cache(maxsize=4096)
def _forced(spec: ConvSpec, device: torch.device, method: str) -> Plan:
    """:func:`forced`'s plan, made once per spec, device and method as ``'auto'``'s is
    (:func:`_auto`): a repeated call with an explicit method made its problem and plan
    again, about 7 us of a 40 us call (64² ⊛ 5×5, ``method='direct'``, one thread)."""
    return forced_problem(Problem.of(spec), device, method)


def forced_problem(problem: Problem, device: torch.device, method: str) -> Plan:
    """The plan of ``method`` for a problem."""
    p = REGISTRY[method].plan(problem, device, forced=True)
    assert p is not None, "a requested method always plans"
    return p


@functools.lru_cache(maxsize=4096)
def _auto(spec: ConvSpec, device: torch.device) -> Plan:
    """The cheapest feasible plan, each priced once; the direct one unless a transform saves
    more than the margin (:func:`cheapest`). Depends on the (frozen, hashable) spec and the
    device alone: cached."""
    return cheapest(Problem.of(spec), device)


@functools.lru_cache(maxsize=4096)
def cheapest(problem: Problem, device: torch.device) -> Plan:
    """The cheapest feasible plan of a problem, each priced once; the direct one unless a
    transform saves more than the margin (:func:`trueconv.core.cost.direct_margin`)."""
    candidates = plans_of(problem, device)
    predicted = {n: _price(p, device) for n, p in candidates.items()}
    best = min(predicted, key=predicted.__getitem__)
    if predicted["direct"] <= predicted[best] + cost.direct_margin(
        predicted["direct"], device.type
    ):
        best = "direct"
    return candidates[best]


def seconds(p: Plan, device: torch.device) -> float:
    """A plan's predicted seconds."""
    return _price(p, device)


#: Caches of plans made elsewhere from this module's prices (the separable plan's): cleared
#: by :func:`forget` with this module's own.
_OTHER_CACHES: list[Callable[[], None]] = []


def priced_cache(clear: Callable[[], None]) -> None:
    """Register the ``cache_clear`` of a cache of plans priced by this module."""
    _OTHER_CACHES.append(clear)


def forget() -> None:
    """Drop every cached plan (after the cost constants changed: a calibration)."""
    _auto.cache_clear()
    _forced.cache_clear()
    cheapest.cache_clear()
    for clear in _OTHER_CACHES:
        clear()


def predicted(spec: ConvSpec, device: torch.device) -> str:
    """What the cost model picks, whatever was measured."""
    return _auto(spec, device).method


def run(p: Plan, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``p.run(a, b)`` with ``a`` the signal role as given (unextended), extended first
    unless the plan does it itself (:attr:`~trueconv._problem.Plan.extends`), and NaN and
    ±Inf placed as the direct sum places them (:mod:`trueconv._nonfinite`) where the plan
    would spread them (:func:`guarded`)."""
    ext = p.problem.extension
    if ext is not None and p.extends and guarded(p, a, b):
        # the guard counts terms on the extended signal: a plan that extends itself gets it
        # unextended only where nothing is left to place (and takes it extended otherwise)
        if _nonfinite.all_finite(a, b) and cmath.isfinite(ext.fill):
            return p.run(a, b)
        a = ext.apply(a)
    elif ext is not None and not p.extends:
        a = ext.apply(a)
    if guarded(p, a, b):
        return _nonfinite.run(p.run, a, b, p.problem.pads)
    return p.run(a, b)


def guarded(p: Plan, a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether running ``p`` needs :func:`trueconv._nonfinite.run`: floating or complex
    operands (integers are finite) whose data can be checked, and a plan that would spread
    NaN and ±Inf (the transforms; ``F.convNd`` off the CPU)."""
    dtype = p.problem.dtype
    if p.places_nonfinite or not (dtype.is_floating_point or dtype.is_complex):
        return False
    return _nonfinite.checkable(a, b)
