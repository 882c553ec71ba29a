"""Per-call overhead on tiny problems (issue 14's target: within 2x of flip + ``F.convNd``).

    python benchmarks/per_call_overhead.py

One torch thread; 250 rounds, each a batch of 50 calls of trueconv then 50 of the contender
(the kernel flipped in the call, as a user would write it); min and median per call. The
first call of each shape plans and validates; the repeated calls measured here are served
the cached spec and plan. Results: ``benchmarks/results/per_call_overhead.txt``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import trueconv

ROUNDS, BATCH = 250, 50


def per_call(f) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    for _ in range(BATCH):
        f()
    return (time.perf_counter() - t) / BATCH


def main() -> None:
    torch.set_num_threads(1)
    x1, k1 = torch.rand(8), torch.rand(3)
    x2, k2 = torch.rand(32, 32), torch.rand(3, 3)
    xn, wn = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 3, 3)
    cases = {
        "convolve 8 * 3 (full)": (
            lambda: trueconv.convolve(x1, k1),
            lambda: F.conv1d(x1[None, None], k1.flip(0)[None, None], padding=2)[0, 0],
        ),
        "convolve 32^2 * 3^2 (full)": (
            lambda: trueconv.convolve(x2, k2),
            lambda: F.conv2d(x2[None, None], k2.flip((0, 1))[None, None], padding=2)[0, 0],
        ),
        "nn conv2d 1x1x32^2 * 3^2": (
            lambda: trueconv.conv2d(xn, wn),
            lambda: F.conv2d(xn, wn.flip((2, 3))),
        ),
    }
    print(f"# torch {torch.__version__}, 1 thread, load {os.getloadavg()[0]:.2f}")
    for name, (ours, theirs) in cases.items():
        assert torch.allclose(ours(), theirs(), atol=1e-5)
        a, b = [], []
        for _ in range(ROUNDS):
            a.append(per_call(ours))
            b.append(per_call(theirs))
        print(
            f"{name:28} trueconv {min(a) * 1e6:6.1f} us, flip + F.conv {min(b) * 1e6:6.1f} us: "
            f"ratio of mins {min(a) / min(b):.2f}, of medians {np.median(a) / np.median(b):.2f}"
        )


if __name__ == "__main__":
    main()
