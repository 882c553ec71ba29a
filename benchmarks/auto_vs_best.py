"""How far ``method='auto'`` is from the fastest of trueconv's own methods, per problem.

    python benchmarks/auto_vs_best.py [--threads N]

For each problem of a grid (the turn-1 grid's shapes at sizes that time in milliseconds, plus
image kernels; random kernels, and Gaussians, for which the separable plan is one of the
methods), the median time of every feasible method forced and of ``'auto'``
(interleaved), and the ratio auto / fastest. Issue 14's target: within 1.10x everywhere,
with the shipped constants and after ``trueconv calibrate`` at the thread count used.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np
import torch

import trueconv
from trueconv import calibration
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma

GRID = [
    ((2**20,), (16,)),
    ((2**20,), (256,)),
    ((2**20,), (4096,)),
    ((64, 16384), (129,)),
    ((1024, 1024), (3, 3)),
    ((1024, 1024), (7, 7)),
    ((1024, 1024), (15, 15)),
    ((1024, 1024), (31, 31)),
    ((2048, 2048), (15, 15)),
    ((2048, 2048), (31, 31)),
    ((3, 2048, 2048), (1, 31, 31)),  # three channels (added 2026-12-03 night)
    ((96, 96, 96), (3, 3, 3)),
    ((96, 96, 96), (9, 9, 9)),
]
#: Gaussian kernels (separable): 'auto' weighs the fused separable loop against the dense
#: methods, and the loop is one of the methods timed (``convolve_separable`` with the
#: factors, method 'direct'); added 2026-12-05 with the loop's own cost constants
GAUSSIAN_GRID = [
    ((128, 128), (7, 7)),
    ((512, 512), (3, 3)),
    ((512, 512), (5, 5)),
    ((512, 512), (9, 9)),
    ((1024, 1024), (3, 3)),
    ((1024, 1024), (7, 7)),
    ((1024, 1024), (31, 31)),
    ((2048, 2048), (3, 3)),
    ((2048, 2048), (7, 7)),
    ((3, 1024, 1024), (3, 3)),
    ((3, 1024, 1024), (5, 5)),
]


def best(fns: dict, repeats: int = 15, sync=lambda: None) -> dict:
    """Median seconds of ``repeats`` interleaved rounds, each in a new random order (the
    minimum of 5 in a fixed order, used before 2026-12-03, let one lucky call decide a ratio,
    and 'auto' always ran after overlap-add had flushed the caches: 1.1-1.24x on 1 ms
    problems where it ran the very plan of the method it was compared with)."""
    for fn in fns.values():
        fn()
    sync()
    times: dict = {name: [] for name in fns}
    order = np.random.default_rng(1)
    names = list(fns)
    for _ in range(repeats):
        for name in order.permutation(names):
            fn = fns[name]
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda (synchronised per call)")
    args = parser.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(
        f"{args.device}; threads {args.threads}; constants: {calibration.in_use()['source']}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print("| problem | dtype | auto's pick | auto / fastest | fastest |")
    print("|---|---|---|---|---|")
    ratios = []
    mispicks: list[str] = []
    cells = [(xs, ks, "random") for xs, ks in GRID]
    cells += [(xs, ks, "gaussian") for xs, ks in GAUSSIAN_GRID]
    for xs, ks, kind in cells:
        for dtype in (torch.float32, torch.float64):
            x = torch.from_numpy(rng.standard_normal(xs)).to(dev, dtype)
            if kind == "gaussian":
                fs = [torch.from_numpy(gaussian(n)).to(dev, dtype) for n in ks]
                k = torch.outer(*fs)
            else:
                k = torch.from_numpy(rng.standard_normal(ks)).to(dev, dtype)
            methods = trueconv.method_costs(x, k, "same")
            fns = {m: functools.partial(trueconv.convolve, x, k, "same", method=m) for m in methods}
            if kind == "gaussian":
                fns["separable"] = functools.partial(
                    trueconv.convolve_separable, x, fs, "same", method="direct"
                )
            fns["auto"] = functools.partial(trueconv.convolve, x, k, "same")
            t = best(fns, sync=sync)
            own = {m: v for m, v in t.items() if m != "auto"}
            fastest = min(own, key=own.__getitem__)
            ratio = t["auto"] / own[fastest]
            ratios.append(ratio)
            pick = trueconv.choose_method(x, k, "same")
            if pick != fastest and ratio > 1.10:
                mispicks.append(f"{xs} * {ks} {str(dtype)[6:]}: {pick} {ratio:.2f}x {fastest}")
            print(
                f"| {xs} * {ks}{' Gaussian' if kind == 'gaussian' else ''} | {str(dtype)[6:]} "
                f"| {pick} | {ratio:.2f} | "
                f"{fastest} {own[fastest] * 1e3:.2f} ms |"
            )
    print(f"load {os.getloadavg()[0]:.2f}")
    print(
        f"\nmedian {np.median(ratios):.2f}, worst {max(ratios):.2f}, "
        f"within 1.10x on {sum(r <= 1.10 for r in ratios)} of {len(ratios)}; "
        f"over 1.10x with another method's plan: {len(mispicks)}"
    )
    for line in mispicks:
        print(f"- {line}")


if __name__ == "__main__":
    main()
