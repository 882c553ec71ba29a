"""Choose the method for a call: the explicit one, or the cheapest feasible one."""

from __future__ import annotations

import functools

import torch

from trueconv import _cost
from trueconv._methods import REGISTRY, overlap_add
from trueconv._spec import ConvSpec


def feasible(spec: ConvSpec) -> tuple[str, ...]:
    """Methods ``'auto'`` may pick: integers and bool take exact paths only; overlap-add only
    where some dim gets blocks (elsewhere it is the plain FFT with more steps)."""
    if not (spec.dtype.is_floating_point or spec.dtype.is_complex):
        return ("direct",)
    sa, sb, _ = _cost.canonical(spec)
    if any(s is not None for s in overlap_add.blocked_dims(sa, sb)):
        return ("direct", "fft", "overlap_add")
    return ("direct", "fft")


def costs(spec: ConvSpec, device: torch.device) -> dict[str, float]:
    """Predicted seconds of every feasible method."""
    return {m: REGISTRY[m].cost(spec, device) for m in feasible(spec)}


#: Seconds a transform method must save before ``'auto'`` leaves the direct method, per device
#: type. Direct sums are exact on integer-valued data and their rounding error does not grow
#: with a transform's length, so a saving within the cost model's own error on sub-millisecond
#: problems (0.1 to 0.3 ms on the CPU calibration machine) is not worth it; scipy's
#: ``choose_conv_method`` likewise keeps small problems direct, and scipy's own tests expect
#: exact results there. A GPU call costs tens of microseconds, so its margin is ten times
#: smaller (:data:`OTHER_MARGIN_S`).
DIRECT_MARGIN_S = {"cpu": 5e-4}
OTHER_MARGIN_S = 5e-5


#: Winners timed by ``choose_method(..., measure=True)``, per (spec, device); 'auto' uses them.
_MEASURED: dict[tuple[ConvSpec, torch.device], str] = {}


def remember(spec: ConvSpec, device: torch.device, method: str) -> None:
    _MEASURED[(spec, device)] = method


def choose(spec: ConvSpec, device: torch.device) -> str:
    if spec.method != "auto":
        return spec.method
    measured = _MEASURED.get((spec, device))
    return measured if measured is not None else _choose_auto(spec, device)


@functools.lru_cache(maxsize=4096)
def _choose_auto(spec: ConvSpec, device: torch.device) -> str:
    """The plan depends on the (frozen, hashable) spec and the device alone: cached."""
    predicted = costs(spec, device)
    best = min(predicted, key=predicted.__getitem__)
    margin = DIRECT_MARGIN_S.get(device.type, OTHER_MARGIN_S)
    if predicted["direct"] <= predicted[best] + margin:
        return "direct"
    return best
