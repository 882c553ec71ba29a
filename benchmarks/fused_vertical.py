"""The fused separable loop, vertical taps first (2026-12-05), against the loop of before
(horizontal taps into a ring of rows), ``cv2.sepFilter2D`` as the yardstick.

    python benchmarks/fused_vertical.py OLD_SRC [--pairs 3]   # OLD_SRC: a checkout's src/

Each pair runs one process with this checkout's ``src`` and one with ``OLD_SRC`` (in turn,
the order swapped every pair). In a process every cell interleaves
``trueconv.convolve_separable(x, [g, g], 'same')`` (zero fill, or ``'reflect'`` where named)
with ``sepFilter2D`` on the same image (channel-last for 3 channels), 1 then 2 threads for
both libraries, Gaussian factors (OpenCV's default sigma). Per cell and process: the median of
the rounds' ratios trueconv / sepFilter2D; the change is old ratio / new ratio (the median
over pairs, > 1: faster now), so the host's drift between processes cancels. Also printed:
the share of a core other processes took during each process. Results:
``benchmarks/results/fused_vertical.txt``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELLS = [
    (dtype, shape, k, boundary)
    for dtype in ("float32", "float64")
    for shape in ((512, 512), (1024, 1024), (2048, 2048), (3, 1024, 1024))
    for k in (3, 5, 7, 11, 15, 31)
    for boundary in ("fill",)
] + [("float32", (1024, 1024), k, "reflect") for k in (5, 15)]


def child() -> None:
    import cv2
    import numpy as np
    import torch
    from timing import alternating, others

    import trueconv

    out = {}
    busy0 = others()
    t_start = time.perf_counter()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for dtype, shape, k, boundary in CELLS:
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape).astype(dtype)
            g = cv2.getGaussianKernel(k, -1, cv2.CV_64F if dtype == "float64" else cv2.CV_32F)
            g = g.ravel()
            xt, gt = torch.from_numpy(x), torch.from_numpy(g)
            xc = np.ascontiguousarray(np.moveaxis(x, 0, -1)) if len(shape) == 3 else x
            border = cv2.BORDER_REFLECT_101 if boundary == "reflect" else cv2.BORDER_CONSTANT
            size = x.size * x.itemsize
            rounds = max(7, min(41, int(4e8 / (size * k))))

            def ours(xt=xt, gt=gt, boundary=boundary):  # type: ignore[no-untyped-def]
                return trueconv.convolve_separable(xt, [gt, gt], "same", boundary=boundary)

            def cv(xc=xc, g=g, border=border):  # type: ignore[no-untyped-def]
                return cv2.sepFilter2D(xc, -1, g, g, borderType=border)

            calls = {"ours": ours, "cv": cv}
            t = alternating(calls, rounds, 2, twice=True)  # since 2026-12-05 (timing.py)
            ratio = statistics.median(a / b for a, b in zip(t["ours"], t["cv"]))
            key = f"{threads}|{dtype}|{'x'.join(map(str, shape))}|{k}|{boundary}"
            out[key] = [ratio, statistics.median(t["ours"]) * 1e3, statistics.median(t["cv"]) * 1e3]
    wall = time.perf_counter() - t_start
    out["_others"] = (others() - busy0) / wall
    print(json.dumps(out))


def main() -> None:
    old = Path(sys.argv[1]).resolve()
    pairs = int(sys.argv[sys.argv.index("--pairs") + 1]) if "--pairs" in sys.argv else 3
    new = HERE.parent / "src"
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for p in range(pairs):
        order = (("old", old), ("new", new)) if p % 2 == 0 else (("new", new), ("old", old))
        for name, src in order:
            env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{HERE}")
            res = subprocess.run([sys.executable, __file__, "--child"], env=env, check=True,
                                 capture_output=True, text=True)  # fmt: skip
            runs[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"# pair {p} {name}: others took {runs[name][-1]['_others']:.0%} of a core",
                  flush=True)  # fmt: skip
    print(f"# load average {os.getloadavg()[0]:.2f}; times ms (medians over the processes)")
    print("threads dtype image k boundary | new ms | old ms | sepFilter2D ms | sepFilter2D/new "
          "| sepFilter2D/old | old/new (paired)")  # fmt: skip
    for key in runs["new"][0]:
        if key.startswith("_"):
            continue
        nr = [r[key] for r in runs["new"]]
        orr = [r[key] for r in runs["old"]]
        change = statistics.median(o[0] / n[0] for o, n in zip(orr, nr))
        cv = statistics.median([r[2] for r in nr + orr])
        new_ms = statistics.median(r[1] for r in nr)
        old_ms = statistics.median(r[1] for r in orr)
        vs_new = statistics.median(1 / r[0] for r in nr)
        vs_old = statistics.median(1 / r[0] for r in orr)
        print(f"{key.replace('|', ' ')} | {new_ms:.3f} | {old_ms:.3f} | {cv:.3f} | "
              f"{vs_new:.2f} | {vs_old:.2f} | {change:.2f}")  # fmt: skip


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
