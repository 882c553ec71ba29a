"""The fused separable loop's output rows with their vertical sums two at a time
(``rows_separable.VERTICAL_PAIRS``) against one at a time, ``cv2.sepFilter2D`` as the yardstick.

    python benchmarks/fused_pairs.py [--rounds 30] [--threads 1 2] [--out results/fused_pairs.txt]

Per cell, interleaved in one process (``timing.alternating``, each timed call the second of
two in a row): ``trueconv.convolve_separable(x, [g, g], 'same')`` (zero fill; Gaussian
factors, OpenCV's default sigma) with the pairs on (``pairs``) and off (``rows``); where the
image's rows are short enough for strips (``rows_separable.STRIP_ROW_BYTES``) also the pairs
with strips off (``pairs, no strips``: ``BAND = 0``, every row through the pairs); and
``sepFilter2D`` on the same image (channel-last for 3 channels). Printed: median ms of each
and the median of the rounds' ratios to ``rows`` and to ``sepFilter2D``, with the share of a
core other processes took while the cell ran.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import alternating, others, paired_ratio

import trueconv
from trueconv._methods import rows_separable

HERE = Path(__file__).resolve().parent
SHAPES = ((512, 512), (1024, 1024), (2048, 2048), (3, 1024, 1024), (3, 2048, 2048))


def cell(dtype: str, shape: tuple[int, ...], k: int, rounds: int) -> str:
    rng = np.random.default_rng(0)
    img = rng.standard_normal(shape).astype(dtype)
    g = cv2.getGaussianKernel(k, 0, cv2.CV_64F if dtype == "float64" else cv2.CV_32F).ravel()
    x = torch.from_numpy(img)
    gt = torch.from_numpy(g.copy())
    chw = np.ascontiguousarray(np.moveaxis(img, 0, -1)) if len(shape) == 3 else img

    def ours(pairs: bool, band: int) -> object:
        def run() -> object:
            rows_separable.VERTICAL_PAIRS = pairs
            rows_separable.BAND = band
            return trueconv.convolve_separable(x, [gt, gt], "same")

        return run

    band = rows_separable.BAND
    calls = {"pairs": ours(True, band), "rows": ours(False, band)}
    strips = shape[-1] * img.itemsize <= rows_separable.STRIP_ROW_BYTES and k <= 16
    if strips:
        calls["pairs, no strips"] = ours(True, 0)
    calls["sepFilter2D"] = lambda: cv2.sepFilter2D(chw, -1, g, g, borderType=cv2.BORDER_CONSTANT)
    # the results agree bit for bit (the pairs add the same terms in the same order)
    ref = ours(False, band)()
    for name in calls:
        if name != "sepFilter2D":
            assert torch.equal(calls[name](), ref), name  # type: ignore[arg-type]
    busy0 = others()
    times = alternating(calls, rounds, 3, twice=True)
    busy = others() - busy0
    total = sum(sum(t) for t in times.values()) * 2
    rows_separable.VERTICAL_PAIRS, rows_separable.BAND = True, band
    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    parts = [f"{n} {med[n]:.3f}" for n in calls]
    vs_rows = [
        f"{n}/rows {paired_ratio(times[n], times['rows']):.3f}" for n in calls if "pairs" in n
    ]
    vs_cv = [
        f"{n}/sep {paired_ratio(times[n], times['sepFilter2D']):.3f}" for n in ("pairs", "rows")
    ]
    label = f"{dtype} {'x'.join(map(str, shape))} k={k}"
    share = f"others {busy / total:.2f} core"
    return f"{label:24s} ms: {', '.join(parts)} | {', '.join(vs_rows + vs_cv)} | {share}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ks", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        lines.append(f"threads {threads}")
        print(lines[-1], flush=True)
        for dtype in ("float32", "float64"):
            for shape in SHAPES:
                for k in args.ks:
                    lines.append(cell(dtype, shape, k, args.rounds))
                    print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
