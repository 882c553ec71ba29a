"""The compiled direct loop's two-row form for 3×3 kernels against the general loop, and
OpenCV's ``filter2D``, side by side in one process.

    python benchmarks/rows_3x3.py [--threads 2 1] [--rounds 21]

Each cell: 'auto' (``trueconv.convolve(x, k, 'same')``, which runs the direct loop for these
shapes) with :data:`trueconv._methods.rows.THREE_BY_THREE` on and off, ``cv2.filter2D`` with
the flipped kernel (``BORDER_CONSTANT`` / ``BORDER_REFLECT_101``), and the copy floor (a torch
copy into a buffer allocated beforehand), interleaved in a new random order each round;
medians of ``--rounds`` rounds. Both forms' outputs are compared bit for bit. Other
processes' CPU use is read with psutil around each cell and printed with it.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np
import psutil
import torch

import trueconv
from trueconv._methods import rows

BORDER = {"fill": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}


def others_cpu(interval_s: float, before: dict[int, float]) -> float:
    """Percent of one core that other processes used since ``before`` was read."""
    me = os.getpid()
    used = 0.0
    for p in psutil.process_iter(["pid", "cpu_times"]):
        if p.info["pid"] == me or p.info["cpu_times"] is None:
            continue
        t = p.info["cpu_times"]
        used += t.user + t.system - before.get(p.info["pid"], t.user + t.system)
    return 100 * used / interval_s


def snapshot() -> dict[int, float]:
    out = {}
    for p in psutil.process_iter(["pid", "cpu_times"]):
        if p.info["cpu_times"] is not None:
            out[p.info["pid"]] = p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, load {os.getloadavg()[0]:.2f}")
    print(
        "| threads | image | dtype | boundary | two-row (us) | general (us) | general / two-row "
        "| filter2D / two-row | two-row / copy | others (% core) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for shape in ((256, 256), (512, 512), (1024, 1024), (2048, 2048), (3, 1024, 1024)):
            for dtype in (torch.float32, torch.float64):
                for boundary in ("fill", "reflect"):
                    x = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
                    k = torch.from_numpy(rng.standard_normal((3, 3))).to(dtype)
                    xs = (
                        np.ascontiguousarray(np.moveaxis(x.numpy(), 0, -1))
                        if x.ndim == 3
                        else x.numpy()
                    )
                    kf = k.flip((0, 1)).numpy().copy()
                    buf = torch.empty_like(x)

                    def tc(on: bool, x=x, k=k, boundary=boundary):
                        rows.THREE_BY_THREE = on
                        return trueconv.convolve(x, k, "same", dims=(-2, -1), boundary=boundary)

                    fns = {
                        "two": lambda: tc(True),
                        "general": lambda: tc(False),
                        "cv": lambda xs=xs, kf=kf, boundary=boundary: cv2.filter2D(
                            xs, -1, kf, borderType=BORDER[boundary]
                        ),
                        "copy": lambda buf=buf, x=x: buf.copy_(x),
                    }
                    same = bool(torch.equal(tc(True), tc(False)))
                    for f in fns.values():
                        f()
                    times: dict[str, list[float]] = {n: [] for n in fns}
                    order = np.random.default_rng(1)
                    before, t_start = snapshot(), time.perf_counter()
                    for _ in range(args.rounds):
                        for name in order.permutation(list(fns)):
                            t0 = time.perf_counter()
                            fns[name]()
                            times[name].append(time.perf_counter() - t0)
                    busy = others_cpu(time.perf_counter() - t_start, before)
                    rows.THREE_BY_THREE = True
                    t = {n: float(np.median(v)) * 1e6 for n, v in times.items()}
                    image = "×".join(map(str, shape))
                    print(
                        f"| {threads} | {image} | {str(dtype)[6:]} | {boundary} | {t['two']:.0f} | "
                        f"{t['general']:.0f} | {t['general'] / t['two']:.2f} | "
                        f"{t['cv'] / t['two']:.2f} | {t['two'] / t['copy']:.2f} | {busy:.0f}"
                        f"{'' if same else ' (outputs differ!)'} |",
                        flush=True,
                    )
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
