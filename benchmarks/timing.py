"""The timing helper the small A/B benchmark scripts share (run them from the repository
root: ``python benchmarks/<script>.py``, which puts this directory on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable

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


def set_threads(n: int) -> None:
    """Run torch, and OpenCV where it is installed, on ``n`` threads."""
    import torch

    torch.set_num_threads(n)
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(n)


def others() -> float:
    """CPU seconds used so far by all processes but this one (and stolen by the hypervisor):
    their difference over a cell, divided by its wall time, is the share of a core that
    others took while it ran."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "steal", 0.0) - me.user - me.system


def alternating(
    calls: dict[Hashable, Callable[[], object]], rounds: int, warm: int, twice: bool = False
) -> dict[Hashable, list[float]]:
    """Seconds of each call over ``rounds`` rounds after ``warm`` untimed ones. A round runs
    every call once, in their order on odd rounds and reversed on even ones; no output is
    kept (kept, a 64 MiB output made every second call of a round twice as slow at 2
    threads: ``benchmarks/loop_tiles.py``). ``twice``: each call runs twice in a row and the
    second is timed, for calls of different libraries: right after another library's parallel
    region a call shares the cores with that library's spinning threads (2026-12-05, 2
    threads: ``cv2.filter2D`` right after a trueconv call or a torch op took twice its time,
    ``benchmarks/images_opencv.py``'s ``best`` has the numbers)."""
    times: dict[Hashable, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(warm + rounds):
        for name in names if r % 2 else names[::-1]:
            if twice:
                calls[name]()
            t0 = time.perf_counter()
            calls[name]()
            if r >= warm:
                times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    """The median of the rounds' ratios ``a / b``: a round's calls share the host's state,
    where the medians of the times can fall on either side of a slow phase."""
    return statistics.median(x / y for x, y in zip(a, b))


def ab_cell(
    calls: dict[Hashable, Callable[[], object]], a: Hashable, b: Hashable, rounds: int, warm: int
) -> tuple[float, float, float, float]:
    """One A/B cell: :func:`alternating` over ``calls``, then the median milliseconds of
    ``a`` and of ``b``, their :func:`paired_ratio` (``a / b``: above 1, ``b`` is faster) and
    the share of a core that other processes took while the cell ran (:func:`others`)."""
    o0, w0 = others(), time.perf_counter()
    times = alternating(calls, rounds, warm)
    busy = (others() - o0) / (time.perf_counter() - w0)
    ma, mb = (statistics.median(times[n]) * 1e3 for n in (a, b))
    return ma, mb, paired_ratio(times[a], times[b]), busy


def process_rounds(
    script: str, settings: dict[str, dict[str, str]], rounds: int
) -> dict[str, list[str]]:
    """The output lines of ``python script --cells``, run in a process of its own per setting
    (each an environment added to this one) and round, the settings' order reversed every
    other round: state a process keeps (its heap, its caches) is compared across processes,
    alternating, not within one."""
    import os
    import subprocess
    import sys

    lines: dict[str, list[str]] = {name: [] for name in settings}
    names = list(settings)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            res = subprocess.run(
                [sys.executable, script, "--cells"],
                env=dict(os.environ, **settings[name]),
                capture_output=True,
                text=True,
                check=True,
            )
            lines[name] += res.stdout.splitlines()
    return lines
