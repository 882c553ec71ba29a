"""An OpenCV backend for the direct method, measured (issue 14, Deliver 1 names it among the
choices): what 'auto' would gain by handing 2-D float images to ``cv2.filter2D``.

    python benchmarks/opencv_backend.py [--rounds 25] [--out results/opencv_backend.txt]

The backend is what trueconv would have to run for ``convolve(x, k, 'same')`` on a
channel-first CPU tensor: the kernel flipped (filter2D correlates), ``filter2D`` on each
``(H, W)`` plane of the tensor's memory (a numpy view, no copy) into a torch output, zero fill
(``BORDER_CONSTANT``); and for kernels of 13×13 and larger, where filter2D switches to its DFT
(one NaN input then makes nearly every output NaN, where the direct sum makes ``k²``; checked
below), the finiteness check a backend must add before the call (one reduction,
``trueconv._nonfinite.all_finite``: ``torch.isfinite(x).all()`` took 1.6-17 ms on 1024²-2048²
float64 between OpenCV's calls).
Against it, ``trueconv.convolve`` with ``method='auto'``. Both libraries at the same thread
count (1, then 2); each cell interleaves the two, each timed call the second of two in a row
(``timing.alternating(twice=True)``: another library's spinning threads slow the call right
after its region). Per cell: the median of the rounds' ratios backend / auto (> 1: auto
faster), and the share of a core other processes took.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import alternating, others

import trueconv
from trueconv import _nonfinite

HERE = Path(__file__).resolve().parent
CELLS = [
    (dtype, (ch, n, n) if ch > 1 else (n, n), k)
    for dtype in ("float32", "float64")
    for n, ch in ((512, 1), (1024, 1), (1024, 3), (2048, 1))
    for k in (3, 5, 7, 11, 15, 31)
]


def backend(x: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """``convolve(x, kern, 'same')`` by ``cv2.filter2D``, plane by plane, as a backend would
    run it (the kernel's flip and the output's allocation included)."""
    k0, k1 = kern.shape
    if k0 * k1 >= 169 and not _nonfinite.all_finite(x):
        raise ValueError("a backend would run its own path here")  # not reached: finite data
    flipped = np.ascontiguousarray(kern.numpy()[::-1, ::-1])
    out = torch.empty_like(x)
    src = x.numpy().reshape(-1, *x.shape[-2:])
    dst = out.numpy().reshape(src.shape)
    for p in range(src.shape[0]):
        cv2.filter2D(src[p], -1, flipped, dst=dst[p], anchor=(k1 // 2, k0 // 2),
                     borderType=cv2.BORDER_CONSTANT)  # fmt: skip
    return out


def nan_spread() -> list[str]:
    """How many outputs one NaN input makes NaN, filter2D against the direct sum's k²."""
    lines = []
    rng = np.random.default_rng(0)
    for k in (11, 13, 31):
        x = rng.standard_normal((256, 256)).astype(np.float32)
        x[100, 100] = np.nan
        w = rng.standard_normal((k, k)).astype(np.float32)
        y = cv2.filter2D(x, -1, np.ascontiguousarray(w[::-1, ::-1]), borderType=0)
        yt = trueconv.convolve(torch.from_numpy(x), torch.from_numpy(w), "same")
        lines.append(
            f"one NaN in 256² float32, {k}×{k}: filter2D {int(np.isnan(y).sum())} NaN outputs, "
            f"trueconv {int(torch.isnan(yt).sum())} (k² = {k * k})"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "opencv_backend.txt")
    args = ap.parse_args()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, OpenCV "
        f"{cv2.__version__}; ratio = backend time / auto time (median of rounds' ratios; > 1: "
        "auto faster); ms = medians; others = share of a core other processes took",
        *nan_spread(),
    ]
    print(*lines, sep="\n", flush=True)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for dtype, shape, k in CELLS:
            rng = np.random.default_rng(0)
            x = torch.from_numpy(rng.standard_normal(shape).astype(dtype))
            kern = torch.from_numpy(rng.standard_normal((k, k)).astype(dtype))
            y, yb = trueconv.convolve(x, kern, "same"), backend(x, kern)
            err = float((y - yb).abs().max() / y.abs().max())
            calls = {
                "auto": lambda x=x, kern=kern: trueconv.convolve(x, kern, "same"),
                "backend": lambda x=x, kern=kern: backend(x, kern),
            }
            size = x.numel() * k * k
            rounds = max(7, min(args.rounds, int(4e9 / size)))
            o0, w0 = others(), time.perf_counter()
            t = alternating(calls, rounds, 2, twice=True)
            busy = (others() - o0) / (time.perf_counter() - w0)
            ratio = statistics.median(b / a for a, b in zip(t["auto"], t["backend"]))
            line = (
                f"{threads}t {dtype} {'x'.join(map(str, shape))} k={k:2d} "
                f"[{trueconv.choose_method(x, kern, 'same')}]: auto "
                f"{statistics.median(t['auto']) * 1e3:.3f} ms, backend "
                f"{statistics.median(t['backend']) * 1e3:.3f} ms, ratio {ratio:.2f}, "
                f"max diff {err:.1e}, others {100 * busy:.0f}%"
            )
            lines.append(line)
            print(line, flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
