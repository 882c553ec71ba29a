"""Converted operands and the passes' first result in per-thread kept memory, or not.

``trueconv._methods.scratch`` keeps, per thread, the array an operand is converted into (a
``uint8`` image computed in ``float32`` or ``int64``) and the first result of a separable plan
that runs as passes (integer kernels). Each setting runs in processes of its own (the heap's
state is the process's), alternating::

    python benchmarks/kept_memory.py            # the driver: both settings, 1 and 2 threads
    SCRATCH=0 TH=2 python benchmarks/kept_memory.py --cells   # one process, one setting

Per cell (``'same'``, zero padding, ``method='auto'``, a ``uint8`` image): the median of 15
calls in ms and the page faults per call; the driver prints each cell's median over its
processes and the ratio without / with kept memory. 3-D separable kernels:
``benchmarks/sep3d_scratch.py``. Results: ``benchmarks/results/kept_memory.txt``.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import torch
from timing import process_rounds

import trueconv
from trueconv._methods import scratch


def _gauss3() -> torch.Tensor:
    g = torch.tensor([0.25, 0.5, 0.25])
    return g[:, None] * g[None, :]


CELLS = [
    ("2048^2 * 3x3 Gaussian", (2048, 2048), _gauss3),
    ("3 x 2048^2 * 3x3 Gaussian", (3, 2048, 2048), _gauss3),
    ("4096^2 * 3x3 Gaussian", (4096, 4096), _gauss3),
    ("1024^2 * 3x3 Gaussian", (1024, 1024), _gauss3),
    ("2048^2 * Sobel", (2048, 2048), lambda: torch.tensor([[1, 0, -1], [2, 0, -2], [1, 0, -1]])),
    ("1024^2 * 5x5 int box", (1024, 1024), lambda: torch.ones(5, 5, dtype=torch.int64)),
    ("1024^2 * 15x15 int box", (1024, 1024), lambda: torch.ones(15, 15, dtype=torch.int64)),
    ("2048^2 * 7x7 int box", (2048, 2048), lambda: torch.ones(7, 7, dtype=torch.int64)),
]


def cells() -> None:
    torch.set_num_threads(int(os.environ.get("TH", "2")))
    if os.environ.get("SCRATCH", "1") == "0":
        scratch.SCRATCH_BYTES = 0
    gen = torch.Generator().manual_seed(0)
    for name, shape, kernel in CELLS:
        a = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
        k = kernel()
        for _ in range(3):
            trueconv.convolve(a, k, mode="same")
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            trueconv.convolve(a, k, mode="same")
            times.append(time.perf_counter() - t0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 15
        method = trueconv.choose_method(a, k, mode="same")
        print(f"{name}|{method}|{statistics.median(times) * 1e3:.3f}|{faults:.0f}", flush=True)


def driver(rounds: int = 3) -> None:
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, load {os.getloadavg()}")
    for th in (1, 2):
        settings = {s: {"SCRATCH": s, "TH": str(th)} for s in ("0", "1")}
        got: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
        for s, lines in process_rounds(__file__, settings, rounds).items():
            for line in lines:
                name, method, ms, faults = line.split("|")
                got.setdefault((name, s), []).append((method, float(ms), float(faults)))
        print(f"\n{th} thread(s); uint8 images, ms (median over {rounds} processes), faults a call")
        print(f"{'cell':28s} {'method':10s} {'fresh':>8s} {'faults':>7s} {'kept':>8s}"
              f" {'faults':>7s} {'ratio':>6s}")  # fmt: skip
        for name, _, _ in CELLS:
            off, on = got[(name, "0")], got[(name, "1")]
            t_off = statistics.median(v[1] for v in off)
            t_on = statistics.median(v[1] for v in on)
            f_off = statistics.median(v[2] for v in off)
            f_on = statistics.median(v[2] for v in on)
            print(
                f"{name:28s} {on[0][0]:10s} {t_off:8.3f} {f_off:7.0f}"
                f" {t_on:8.3f} {f_on:7.0f} {t_off / t_on:6.2f}"
            )


if __name__ == "__main__":
    if "--cells" in sys.argv:
        cells()
    else:
        driver()
