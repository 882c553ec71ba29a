"""3-D separable kernels: the fused loop's intermediate in per-thread scratch memory, or not.

The separable plan of a 3-D kernel runs the fused loop over the last two dims, then a pass along
the first; the fused result is the pass's input alone. Without scratch memory it is a fresh
array each call, and glibc's heap trim (``trueconv._methods.scratch`` has the mechanism) makes
the next call fault it and the output in again. Each setting runs in processes of its own (the
heap's state is the process's), alternating::

    python benchmarks/sep3d_scratch.py            # the driver: both settings, 1 and 2 threads
    SCRATCH=0 TH=2 python benchmarks/sep3d_scratch.py --cells   # one process, one setting

Per cell (``'same'``, zero padding, Gaussian factors, ``convolve`` with ``method='auto'``,
which picks the separable plan on every cell, and the dense direct loop for scale): the median
of 15 calls in ms and the page faults per call; the driver prints, per thread count, each
cell's median over its processes and the ratio without / with scratch. Results:
``benchmarks/results/sep3d_scratch.txt``.
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

CELLS = [
    (64, 5, torch.float32),
    (96, 3, torch.float32),
    (96, 7, torch.float32),
    (128, 3, torch.float32),
    (128, 5, torch.float32),
    (192, 7, torch.float32),
    (256, 3, torch.float32),
    (96, 5, torch.float64),
    (128, 3, torch.float64),
    (160, 5, torch.float64),
]


def gaussian(k: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.linspace(-1.5, 1.5, k, dtype=torch.float64)
    g = torch.exp(-(x**2))
    return (g / g.sum()).to(dtype)


def cells() -> None:
    torch.set_num_threads(int(os.environ.get("TH", "2")))
    if os.environ.get("SCRATCH", "1") == "0":
        scratch.SCRATCH_BYTES = 0
    for n, k, dtype in CELLS:
        a = torch.randn(n, n, n, dtype=dtype)
        g = gaussian(k, dtype)
        b = g[:, None, None] * g[None, :, None] * g[None, None, :]
        out = []
        for method in ("auto", "direct"):
            for _ in range(3):
                trueconv.convolve(a, b, mode="same", method=method)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times = []
            for _ in range(15):
                t0 = time.perf_counter()
                trueconv.convolve(a, b, mode="same", method=method)
                times.append(time.perf_counter() - t0)
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 15
            out.append(f"{statistics.median(times) * 1e3:.3f} {faults:.0f}")
        print(n, k, str(dtype).removeprefix("torch."), *out, flush=True)


def driver(rounds: int = 3) -> None:
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, load {os.getloadavg()}")
    for th in (1, 2):
        settings = {s: {"SCRATCH": s, "TH": str(th)} for s in ("0", "1")}
        got: dict[tuple[str, str], dict[str, list[float]]] = {}
        for s, lines in process_rounds(__file__, settings, rounds).items():
            for line in lines:
                n, k, dt, ta, fa, td, fd = line.split()
                cell = got.setdefault((f"{n}^3 * {k}^3 {dt}", s), {})
                for name, v in (("auto", ta), ("fa", fa), ("direct", td), ("fd", fd)):
                    cell.setdefault(name, []).append(float(v))
        print(f"\n{th} thread(s); ms (median over {rounds} processes), faults per call")
        print(f"{'cell':26s} {'auto off':>9s} {'faults':>7s} {'auto on':>8s} {'faults':>7s}"
              f" {'off/on':>7s} {'dense':>8s}")  # fmt: skip
        for (cell, s), v in got.items():
            if s != "0":
                continue
            on = got[(cell, "1")]
            off_t, on_t = statistics.median(v["auto"]), statistics.median(on["auto"])
            print(
                f"{cell:26s} {off_t:9.3f} {statistics.median(v['fa']):7.0f} {on_t:8.3f}"
                f" {statistics.median(on['fa']):7.0f} {off_t / on_t:7.2f}"
                f" {statistics.median(on['direct']):8.3f}"
            )


if __name__ == "__main__":
    if "--cells" in sys.argv:
        cells()
    else:
        driver()
