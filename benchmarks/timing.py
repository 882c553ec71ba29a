"""The timing helper the small A/B benchmark scripts share (run them from the repository
root: ``python benchmarks/<script>.py``, which puts this directory on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


def best(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def others() -> float:
    """CPU seconds used so far by all processes but this one (and stolen by the hypervisor):
    their difference over a cell, divided by its wall time, is the share of a core that
    others took while it ran."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "steal", 0.0) - me.user - me.system
