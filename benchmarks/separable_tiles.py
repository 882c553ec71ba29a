"""The fused separable loop's column tiles: as wide as the ring allows against 2048 (issue 14).

    python benchmarks/separable_tiles.py [--rounds 11] [--threads 1 2]

:func:`trueconv._methods.rows_separable.tile_width` cuts an output row into the fewest equal
tiles whose ring of horizontal rows fits ``RING_BYTES``, never narrower than ``TILE`` (2048);
before, every tile was at most 2048 samples wide. Both run in one process, alternating call by
call (the old width by setting ``RING_BYTES`` to 0), through ``trueconv.convolve(x,
outer(g, g), 'same')`` ('auto', which runs the separable plan; its choice is printed). Cells:
Gaussian factors of 3-31 taps on 4096² and 1024 × 8192 images, float32 and float64. Each
line: threads, dtype, image, taps, 'auto''s method, median ms with tiles of 2048 and as
wide as the ring allows, their ratio (> 1: wider faster), whether the results are bitwise
equal, and the share of a core other processes took during the cell (psutil). Results:
``benchmarks/results/separable_tiles.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import psutil
import torch

import trueconv
from trueconv._methods import rows_separable

SHAPES = [(4096, 4096), (1024, 8192)]
TAPS = [3, 7, 15, 31]
RING = rows_separable.RING_BYTES
#: untimed rounds first: a process's first calls on a new image size run slowly for a while
#: (at 2 threads, 4096² float32: the first run of this script, 2 threads first, put the
#: 3-tap control cell, which both variants run alike, at 0.86-0.88x)
WARM = 3


def gaussian(k: int) -> np.ndarray:
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's default sigma for a k-tap Gaussian
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / sigma) ** 2)
    return g / g.sum()


def others() -> float:
    """CPU seconds used by all processes but this one (and stolen)."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "steal", 0.0) - me.user - me.system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape in SHAPES:
                x = torch.rand(shape, dtype=dtype)
                for k in TAPS:
                    g = torch.from_numpy(gaussian(k)).to(dtype)
                    kern = torch.outer(g, g)
                    method = trueconv.choose_method(x, kern, "same")
                    ys: dict[int, torch.Tensor] = {}
                    times: dict[int, list[float]] = {0: [], RING: []}
                    o0, w0 = others(), time.perf_counter()
                    for r in range(args.rounds + WARM):
                        for ring in (0, RING) if r % 2 else (RING, 0):
                            rows_separable.RING_BYTES = ring
                            t = time.perf_counter()
                            ys[ring] = trueconv.convolve(x, kern, "same")
                            if r >= WARM:
                                times[ring].append(time.perf_counter() - t)
                    rows_separable.RING_BYTES = RING
                    busy = (others() - o0) / (time.perf_counter() - w0)
                    old, new = (statistics.median(times[n]) * 1e3 for n in (0, RING))
                    same = bool(torch.equal(ys[0], ys[RING]))
                    print(
                        f"{threads} | {str(dtype)[6:]} | {shape[0]}×{shape[1]} | {k} | {method} | "
                        f"{old:.2f} | {new:.2f} | {old / new:.2f} | {same} | {busy:.0%}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
