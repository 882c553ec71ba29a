"""The fused separable loop against OpenCV and trueconv's other routes (issue 14).

    python benchmarks/separable_fused.py                 # writes benchmarks/results_separable.json
    python benchmarks/separable_fused.py --quick         # a few cells
    python benchmarks/separable_fused.py --report        # RESULTS_SEPARABLE.md from the json

Cells: float32 and float64; images 512², 1024², 2048² and 3 × 1024² (channels: a batch dim for
trueconv, channel-last for OpenCV); Gaussian factors of 3, 5, 7, 11, 15, 31 taps (OpenCV's
default sigma); ``'same'`` with zero fill; torch and OpenCV with 2 threads, then 1.

Contenders, interleaved in one process (each round runs each once, in turn), median of
``--rounds`` rounds (and the minimum):

- ``auto``: ``trueconv.convolve(x, outer(g, g), 'same')``: 'auto' finds the kernel separable
  and runs the separable plan, now the fused loop (its choice is recorded);
- ``passes``: ``trueconv.convolve_separable(x, [g, g], 'same')`` with the fused loop switched
  off (``trueconv._separable._FUSE = False``): the passes of before;
- ``dense``: ``trueconv.convolve(x, outer(g, g), 'same', method='direct')``;
- ``sepFilter2D``: ``cv2.sepFilter2D(x, -1, g, g, borderType=cv2.BORDER_CONSTANT)`` (its
  anchor for odd kernels is 'same''s, and a symmetric Gaussian correlates as it convolves);
- ``filter2D``: ``cv2.filter2D(x, -1, outer(g, g), borderType=cv2.BORDER_CONSTANT)``.

Load: the load average before each cell and the share of a core that other processes (and the
hypervisor's steal) took while it ran, from psutil. A cell where others took more than
``--busy`` percent of a core is timed again (up to ``--tries`` times); the least disturbed try
is kept, and the report marks cells that stayed disturbed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

import trueconv
from trueconv import _separable
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma

try:
    import cv2
except ImportError as exc:  # pragma: no cover
    raise SystemExit("this benchmark needs OpenCV: pip install opencv-python-headless") from exc

ROOT = Path(__file__).resolve().parent
JSON = ROOT / "results_separable.json"
REPORT = ROOT / "RESULTS_SEPARABLE.md"
IMAGES = [(1, 512), (1, 1024), (1, 2048), (3, 1024)]
TAPS = [3, 5, 7, 11, 15, 31]
NAMES = ["auto", "passes", "dense", "sepFilter2D", "filter2D"]


def taken() -> tuple[float, float]:
    """CPU seconds used by all processes (and stolen), and by this one."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "steal", 0.0), me.user + me.system


def passes(x: torch.Tensor, fs: list[torch.Tensor]) -> torch.Tensor:
    _separable._FUSE = False
    try:
        return trueconv.convolve_separable(x, fs, "same")
    finally:
        _separable._FUSE = True


def cell(dtype: torch.dtype, channels: int, n: int, k: int, rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(n + k)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    x = torch.from_numpy(rng.standard_normal((channels, n, n)).astype(np_dtype))
    if channels == 1:
        x = x[0]
        xc = x.numpy()
    else:
        xc = np.ascontiguousarray(x.permute(1, 2, 0).numpy())  # OpenCV: channel-last
    g = gaussian(k).astype(np_dtype)
    dense_np = np.outer(g, g)
    dense = torch.from_numpy(dense_np)
    fs = [torch.from_numpy(g), torch.from_numpy(g)]
    border = cv2.BORDER_CONSTANT
    fns = {
        "auto": lambda: trueconv.convolve(x, dense, "same"),
        "passes": lambda: passes(x, fs),
        "dense": lambda: trueconv.convolve(x, dense, "same", method="direct"),
        "sepFilter2D": lambda: cv2.sepFilter2D(xc, -1, g, g, borderType=border),
        "filter2D": lambda: cv2.filter2D(xc, -1, dense_np, borderType=border),
    }
    chosen = trueconv.choose_method(x, dense, "same")
    # a check, not a test: trueconv's result against OpenCV's
    y = fns["auto"]().numpy()
    ref = fns["sepFilter2D"]()
    if channels > 1:
        ref = np.moveaxis(ref, -1, 0)
    err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    for fn in fns.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    load = os.getloadavg()[0]
    wall0 = time.perf_counter()
    all0, me0 = taken()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    all1, me1 = taken()
    wall = time.perf_counter() - wall0
    others = max(0.0, 100.0 * ((all1 - all0) - (me1 - me0)) / wall)
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "channels": channels,
        "n": n,
        "k": k,
        "method": chosen,
        "median_s": {name: statistics.median(v) for name, v in times.items()},
        "min_s": {name: min(v) for name, v in times.items()},
        "loadavg": load,
        "others_pct": others,
        "rel_err_vs_opencv": err,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--busy", type=float, default=15.0, help="percent of a core")
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--out", type=Path, default=JSON)
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.out.read_text()))
        return
    dtypes = [torch.float32, torch.float64]
    images, taps = (IMAGES[1:2], [3, 7, 31]) if args.quick else (IMAGES, TAPS)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} cores",
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "rounds": args.rounds,
    }
    cells: list[dict[str, Any]] = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for dtype in dtypes:
            for channels, n in images:
                for k in taps:
                    tries = [cell(dtype, channels, n, k, args.rounds)]
                    while tries[-1]["others_pct"] > args.busy and len(tries) < args.tries:
                        tries.append(cell(dtype, channels, n, k, args.rounds))
                    c = min(tries, key=lambda t: t["others_pct"])
                    c.update(threads=threads, tries=len(tries))
                    cells.append(c)
                    args.out.write_text(json.dumps({"meta": meta, "cells": cells}, indent=1))
                    m = c["median_s"]
                    print(
                        f"{threads} {c['dtype']} {channels}x{n}^2 k={k} [{c['method']}] "
                        f"auto {m['auto'] * 1e3:.3f} ms  sep/auto "
                        f"{m['sepFilter2D'] / m['auto']:.2f}  passes/auto "
                        f"{m['passes'] / m['auto']:.2f}  others {c['others_pct']:.0f}% "
                        f"load {c['loadavg']:.1f}",
                        flush=True,
                    )
    report({"meta": meta, "cells": cells})


def report(data: dict[str, Any]) -> None:
    """The table of ratios (OpenCV time / trueconv time: > 1, trueconv faster)."""
    meta, cells = data["meta"], data["cells"]
    lines = [
        "| threads | dtype | image | k | auto (ms) [method] | sepFilter2D / auto "
        "| filter2D / auto | sepFilter2D / passes | passes / auto | dense / auto "
        "| others (% core) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[tuple[int, str], list[float]] = {}
    for c in cells:
        m = c["median_s"]
        mark = " *" if c["others_pct"] > 15 else ""
        image = f"{c['n']}²" + (f"×{c['channels']}" if c["channels"] > 1 else "")
        lines.append(
            f"| {c['threads']} | {c['dtype']} | {image} | {c['k']} "
            f"| {m['auto'] * 1e3:.3f} [{c['method']}] | {m['sepFilter2D'] / m['auto']:.2f} "
            f"| {m['filter2D'] / m['auto']:.2f} | {m['sepFilter2D'] / m['passes']:.2f} "
            f"| {m['passes'] / m['auto']:.2f} | {m['dense'] / m['auto']:.2f} "
            f"| {c['others_pct']:.0f}{mark} | {c['loadavg']:.1f} |"
        )
        summary.setdefault((c["threads"], c["dtype"]), []).append(m["sepFilter2D"] / m["auto"])
    head = [
        "# The fused separable loop against OpenCV",
        "",
        "Made by `python benchmarks/separable_fused.py` (module docstring: contenders, load "
        "checks). Ratios are OpenCV's (or the other route's) median time over trueconv "
        "'auto''s median time: > 1, trueconv faster. `passes`: the separable plan's passes "
        "before the fused loop; `dense`: the dense direct loop.",
        "",
        f"{meta['date']}, {meta['machine']}, torch {meta['torch']}, OpenCV {meta['opencv']}, "
        f"numpy {meta['numpy']}, median of {meta['rounds']} interleaved rounds. *: other "
        "processes took more than 15% of a core during the cell in every try (this VM is "
        "shared; see the load columns).",
        "",
        "Median of sepFilter2D / auto over the cells:",
        "",
    ]
    for (threads, dtype), ratios in sorted(summary.items()):
        head.append(f"- {threads} thread(s), {dtype}: {statistics.median(ratios):.2f}")
    REPORT.write_text("\n".join([*head, "", *lines, ""]))


if __name__ == "__main__":
    main()
