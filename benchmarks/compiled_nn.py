"""Compiled ``trueconv.nn`` against compiled ``torch.nn``: issue 15's "within 1.05x" check.

    python benchmarks/compiled_nn.py [--threads N ...]

A 3-layer model (3 -> 16 -> 16 -> 4 channels, 3x3 kernels, batch 8 of 32x32 images), built
with ``torch.nn.Conv2d`` and converted with ``trueconv.nn.Conv2d.from_torch`` (the same weights,
flipped: identical outputs), each compiled with ``torch.compile(fullgraph=True)`` and default
settings. Times per training step (forward, loss, backward) and per inference call are the
best and the median of 30 rounds of 10 calls, the two models interleaved with the order
alternating between rounds. Also the time to compile plus the first calls.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn as tnn

import trueconv


def measure(threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tm = tnn.Sequential(
        tnn.Conv2d(3, 16, 3, padding=1),
        tnn.ReLU(),
        tnn.Conv2d(16, 16, 3, padding=1),
        tnn.ReLU(),
        tnn.Conv2d(16, 4, 3, padding="same"),
    )
    tc = tnn.Sequential(
        *[trueconv.nn.Conv2d.from_torch(m) if isinstance(m, tnn.Conv2d) else m for m in tm]
    )
    x = torch.randn(8, 3, 32, 32)
    runs, out = {}, {}
    for name, model in (("torch", tm), ("trueconv", tc)):
        compiled = torch.compile(model, fullgraph=True)

        def step(compiled=compiled, model=model) -> None:
            for p in model.parameters():
                p.grad = None
            compiled(x).square().mean().backward()

        def infer(compiled=compiled) -> None:
            with torch.no_grad():
                compiled(x)

        t0 = time.perf_counter()
        step()
        infer()
        out[f"{name} compile s"] = time.perf_counter() - t0
        runs[name] = {"train": step, "infer": infer}
    times: dict[str, dict[str, list[float]]] = {n: {"train": [], "infer": []} for n in runs}
    for r in range(30):
        for name in list(runs) if r % 2 else list(runs)[::-1]:
            for what, fn in runs[name].items():
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                times[name][what].append((time.perf_counter() - t0) / 10 * 1e3)
    for what in ("train", "infer"):
        a, b = sorted(times["trueconv"][what]), sorted(times["torch"][what])
        out[f"{what} trueconv ms"], out[f"{what} torch ms"] = a[0], b[0]
        out[f"{what} ratio best"], out[f"{what} ratio median"] = a[0] / b[0], a[15] / b[15]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads(), 1])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| threads | step | trueconv ms | torch ms | ratio (best) | ratio (median) |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        r = measure(threads)
        for what in ("train", "infer"):
            print(
                f"| {threads} | {what} | {r[f'{what} trueconv ms']:.3f} | "
                f"{r[f'{what} torch ms']:.3f} | {r[f'{what} ratio best']:.3f} | "
                f"{r[f'{what} ratio median']:.3f} |"
            )
        print(
            f"| {threads} | compile + first calls (s) | {r['trueconv compile s']:.1f} | "
            f"{r['torch compile s']:.1f} | | |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
