"""When 'auto' asks whether a small problem's kernel is separable (``_separable.MIN_DENSE_S``,
``_separable.SIGHTINGS``).

    python benchmarks/separable_threshold.py [--threads 1] [--low 2e-5]
    python benchmarks/separable_threshold.py --sightings 0 2

'auto' asks whether a kernel is separable (or of low rank) at once where the dense plan is
predicted to take at least ``MIN_DENSE_S`` (1e-4 s): the question reads the kernel, about 2-4
us for a kernel seen before (kept by its bytes) and 30-40 us for a fresh one. Below it, on the
kernel's ``SIGHTINGS``-th call (0: never, the rule before 2026-12-05). This compares two
thresholds (``--low``: the shipped one and a lower one) or two values of ``SIGHTINGS``
(``--sightings A B``) on small images (96²-256², 3-9 taps, float32 and float64): a Gaussian
repeated call after call, and a fresh random kernel every call. Per cell the median of 15
calls per batch, batches of the two settings alternating over 6 rounds (the plans dropped at
each switch), their medians, what 'auto' ran for the Gaussian, and the ratio (> 1: the second
setting faster). Results: ``benchmarks/results/separable_threshold.txt``,
``benchmarks/results/separable_sightings.txt``.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np
import torch

import trueconv
from trueconv import _plan, _separable
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma


def batch(f: Callable[[], object], n: int = 15) -> float:
    """The median of ``n`` calls after one untimed call, in seconds."""
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def fresh(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``x`` convolved with a kernel of random values made for this call."""
    return trueconv.convolve(x, torch.randn(shape, dtype=x.dtype), "same")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--low", type=float, default=2e-5)
    ap.add_argument("--sightings", type=int, nargs=2, metavar=("A", "B"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    knob = "SIGHTINGS" if args.sightings else "MIN_DENSE_S"
    shipped = getattr(_separable, knob)
    values = list(args.sightings) if args.sightings else [shipped, args.low]
    for dt in (torch.float32, torch.float64):
        for n in (96, 128, 192, 256):
            for k in (3, 5, 7, 9):
                x = torch.rand(n, n, dtype=dt)
                g = torch.tensor(gaussian(k), dtype=dt)
                kern = torch.outer(g, g)
                cases: dict[str, Callable[[], object]] = {
                    "gaussian": functools.partial(trueconv.convolve, x, kern, "same"),
                    "fresh random": functools.partial(fresh, x, (k, k)),
                }
                for name, f in cases.items():
                    res: dict[float, list[float]] = {v: [] for v in values}
                    ran: dict[float, str] = {}
                    for r in range(6):
                        for v in values if r % 2 else values[::-1]:
                            setattr(_separable, knob, v)
                            _plan.forget()
                            res[v].append(batch(f))
                            ran[v] = trueconv.choose_method(x, kern, "same")
                    a, b = (float(np.median(res[v])) * 1e6 for v in values)
                    picks = f"[{ran[values[0]]} / {ran[values[1]]}]" if name == "gaussian" else ""
                    print(
                        f"{args.threads} | {str(dt)[6:]} | {n}² ⊛ {k}×{k} | {name} | {a:.1f} | "
                        f"{b:.1f} | {a / b:.2f} {picks}",
                        flush=True,
                    )
    setattr(_separable, knob, shipped)
    _plan.forget()


if __name__ == "__main__":
    main()
