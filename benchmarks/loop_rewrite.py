"""The compiled loops' rewrite of 2026-12-03 (issue 14) against the loops of before.

    python benchmarks/loop_rewrite.py dense 1      # the direct method's loop (rows.py), 1 thread
    python benchmarks/loop_rewrite.py fused 2      # the fused separable loop, 2 threads
    python benchmarks/loop_rewrite.py dense 1 77c3e4b   # against the loop at another commit

The loops of before are loaded from git (``rows.py`` and ``rows_separable.py`` at 5b0b3f2,
the start of that session), so both run in one process, interleaved: the
medians of 21-25 rounds, OpenCV's ``filter2D`` (flipped kernel) / ``sepFilter2D`` (Gaussian
factors, OpenCV's default sigma) alongside; zero fill, 'same'. Results (quiet machine, load
below 1.3): ``benchmarks/results/rows_groups_*.txt`` and ``fused_padded_*.txt``; summary in
``RESULTS_IMAGES.md`` and ``RESULTS_SEPARABLE.md``.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trueconv._methods import rows, rows_separable
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma

try:
    import cv2
except ImportError as exc:  # pragma: no cover
    raise SystemExit("this benchmark needs OpenCV: pip install opencv-python-headless") from exc

ROOT = Path(__file__).resolve().parent.parent
THREADS = [1]  # the run's thread count (set from the command line)
BEFORE = {"dense": ("5b0b3f2", "rows.py"), "fused": ("5b0b3f2", "rows_separable.py")}


def old_module(which: str, commit: str | None = None):  # type: ignore[no-untyped-def]
    default, name = BEFORE[which]
    commit = commit or default
    text = subprocess.run(
        ["git", "show", f"{commit}:src/trueconv/_methods/{name}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"old_{which}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"old_{which}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def medians_ms(calls: list[Callable[[], object]], rounds: int) -> list[float]:
    """The calls interleaved (each round runs each once, in turn): median times in ms.

    The loops of before hand numba the thread count without restoring torch's: their first
    parallel region starts numba's OpenMP pool, which sets the calling thread's OpenMP count
    (the one torch reads) to all cores, so after it both loops ran at 2 threads in a
    '1 thread' run (measured 2026-12-04: 1024² float32 ⊛ 7×7 took 1.1 ms of wall time and
    2.2 ms of CPU time). The count is set again before the rounds and checked after each.
    """
    threads = THREADS[0]
    for call in calls:
        call()
    torch.set_num_threads(threads)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for store, call in zip(times, calls):
            t = time.perf_counter()
            call()
            store.append(time.perf_counter() - t)
        if torch.get_num_threads() != threads:
            raise RuntimeError(f"the thread count changed to {torch.get_num_threads()}")
    return [float(np.median(v) * 1e3) for v in times]


def dense(th: int, commit: str | None = None) -> None:
    old = old_module("dense", commit)
    for dt in (torch.float32, torch.float64):
        for n in (512, 1024, 2048):
            for k in (3, 5, 7, 11):
                x = torch.rand(n, n, dtype=dt)
                kern = torch.rand(k, k, dtype=dt)
                pads = (((k - 1) // 2,) * 2,) * 2
                xn = x.numpy()
                kf = np.ascontiguousarray(kern.flip((0, 1)).numpy())
                assert torch.equal(old._run(x, kern, pads), rows._run(x, kern, pads))
                o, nw, cc = medians_ms(
                    [
                        functools.partial(old._run, x, kern, pads),
                        functools.partial(rows._run, x, kern, pads),
                        functools.partial(cv2.filter2D, xn, -1, kf, borderType=cv2.BORDER_CONSTANT),
                    ],
                    25,
                )
                print(
                    f"{th} {str(dt)[6:]} {n}² {k}x{k} old {o:.3f} new {nw:.3f} filter2D {cc:.3f}"
                    f" ms  old/new {o / nw:.2f}  filter2D/old {cc / o:.2f}  filter2D/new"
                    f" {cc / nw:.2f}",
                    flush=True,
                )


def fused(th: int, commit: str | None = None) -> None:
    old = old_module("fused", commit)
    for dt in (torch.float32, torch.float64):
        for shape in [(512, 512), (1024, 1024), (4096, 256), (2048, 2048), (3, 1024, 1024)]:
            for k in (3, 5, 7, 11, 15, 31):
                x = torch.rand(shape, dtype=dt)
                f = torch.tensor(gaussian(k), dtype=dt)
                p = (k - 1) // 2
                pads = ((p, p), (p, p))
                assert torch.equal(
                    rows_separable._run(x, f, f, pads, True), old._run(x, f, f, pads, True)
                )
                xn = (
                    np.ascontiguousarray(np.moveaxis(x.numpy(), 0, -1))
                    if x.ndim == 3
                    else x.numpy()
                )
                fn = f.numpy()
                o, nw, cc = medians_ms(
                    [
                        functools.partial(old._run, x, f, f, pads, True),
                        functools.partial(rows_separable._run, x, f, f, pads, True),
                        functools.partial(
                            cv2.sepFilter2D, xn, -1, fn, fn, borderType=cv2.BORDER_CONSTANT
                        ),
                    ],
                    21,
                )
                print(
                    f"{th} {str(dt)[6:]} {'x'.join(map(str, shape))} k={k} old {o:.3f} new {nw:.3f}"
                    f" cv {cc:.3f}  old/new {o / nw:.2f} cv/old {cc / o:.2f} cv/new {cc / nw:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    which, threads = sys.argv[1], int(sys.argv[2])
    THREADS[0] = threads
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    {"dense": dense, "fused": fused}[which](threads, sys.argv[3] if len(sys.argv) > 3 else None)
