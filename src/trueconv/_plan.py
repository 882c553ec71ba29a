"""Choose the method for a call: the explicit one, or the cheapest feasible one."""

from __future__ import annotations

import torch

from trueconv import _cost
from trueconv._methods import overlap_add
from trueconv._spec import ConvSpec


def feasible(spec: ConvSpec) -> tuple[str, ...]:
    """Methods ``'auto'`` may pick: integers and bool only take exact paths."""
    if not (spec.dtype.is_floating_point or spec.dtype.is_complex):
        return ("direct",)
    a, b = _cost.operands(spec)
    if any(s is not None for s in overlap_add.blocked_dims(a, b)):
        return ("direct", "fft", "overlap_add")
    return ("direct", "fft")


def choose(spec: ConvSpec, device: torch.device) -> str:
    if spec.method != "auto":
        return spec.method
    options = feasible(spec)
    return min(options, key=lambda m: _cost.seconds(m, spec, device.type))
