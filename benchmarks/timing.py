"""The timing helper the small A/B benchmark scripts share (run them from the repository
root: ``python benchmarks/<script>.py``, which puts this directory on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3
