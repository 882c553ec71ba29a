"""Choose the method for a call: the explicit one, or the cheapest feasible one."""

from __future__ import annotations

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


def choose(spec: ConvSpec, device: torch.device) -> str:
    if spec.method != "auto":
        return spec.method
    predicted = costs(spec, device)
    return min(predicted, key=predicted.__getitem__)
