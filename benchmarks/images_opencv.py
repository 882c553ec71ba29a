"""trueconv against OpenCV on 2-D images: the grid of issue 14, side by side in one process.

    python benchmarks/images_opencv.py              # writes benchmarks/results_images.json
    python benchmarks/images_opencv.py --quick      # a few cells

Cells: 512², 1024², 2048² (and 4096² float32) images, 1 and 3 channels, kernels 3..63, random
and Gaussian, float32 and float64, ``'same'`` with zero fill (OpenCV ``BORDER_CONSTANT``) and
``'reflect'`` (``BORDER_REFLECT_101``) for some. Contenders: ``trueconv.convolve`` with
``method='auto'`` (channel-first tensors, as torch holds images), ``cv2.filter2D`` with the
flipped kernel (channel-last arrays, as OpenCV holds them), ``cv2.sepFilter2D`` for the
Gaussian (separable) kernels, and the copy floor (a torch copy of the input: read once,
write once). Each time is the minimum of interleaved repeats (this machine is shared); other
processes' CPU use is read with psutil during each cell, and a cell that saw more than
``--busy`` percent of a core is timed again (up to three times) and marked if it stays busy.
Every cell is also checked: trueconv against OpenCV, relative error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

import trueconv

try:
    import cv2
except ImportError as exc:  # pragma: no cover
    raise SystemExit("this benchmark needs OpenCV: pip install opencv-python-headless") from exc

ROOT = Path(__file__).resolve().parent
BORDER = {"fill": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}


def gaussian(k: int) -> np.ndarray:
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's default sigma for a k-tap Gaussian
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / sigma) ** 2)
    return g / g.sum()


def other_cpu(me: psutil.Process, interval: float) -> float:
    """Percent of one core used by other processes over ``interval`` seconds."""
    mine0 = sum(me.cpu_times()[:2])
    total0 = psutil.cpu_times()
    time.sleep(interval)
    mine1 = sum(me.cpu_times()[:2])
    total1 = psutil.cpu_times()
    busy = (total1.user + total1.system) - (total0.user + total0.system)
    return max(0.0, 100.0 * (busy - (mine1 - mine0)) / interval)


def best(fns: dict[str, Any], repeats: int, budget: float) -> dict[str, float]:
    """Minimum seconds per contender, interleaved so that a disturbance hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if r >= 2 and time.perf_counter() - start > budget:
            break
    return {name: min(v) for name, v in times.items()}


def cells(quick: bool) -> list[dict[str, Any]]:
    out = []
    sizes = [1024] if quick else [512, 1024, 2048]
    ks = [3, 7, 15] if quick else [3, 5, 7, 11, 15, 31, 63]
    for dtype in ("float32", "float64"):
        for n in sizes:
            for ch in (1, 3):
                if ch == 3 and n == 512:
                    continue
                for k in ks:
                    for kind in ("random", "gaussian"):
                        out.append(dict(dtype=dtype, n=n, ch=ch, k=k, kind=kind, boundary="fill"))
    if not quick:
        for k in (3, 7, 15):
            out.append(dict(dtype="float32", n=4096, ch=1, k=k, kind="gaussian", boundary="fill"))
            out.append(dict(dtype="float32", n=1024, ch=1, k=k, kind="random", boundary="reflect"))
    return out


def run_cell(c: dict[str, Any], rng: np.random.Generator, repeats: int) -> dict[str, Any]:
    dt = np.dtype(c["dtype"])
    n, ch, k = c["n"], c["ch"], c["k"]
    img = rng.standard_normal((n, n, ch) if ch > 1 else (n, n)).astype(dt)
    if c["kind"] == "gaussian":
        g = gaussian(k).astype(dt)
        kern = np.outer(g, g).astype(dt)
    else:
        g = None
        kern = rng.standard_normal((k, k)).astype(dt)
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, 0)) if ch > 1 else img)
    kt = torch.from_numpy(kern)
    flipped = np.ascontiguousarray(kern[::-1, ::-1])
    border = BORDER[c["boundary"]]
    fns: dict[str, Any] = {
        "trueconv": lambda: trueconv.convolve(x, kt, "same", boundary=c["boundary"]),
        "filter2D": lambda: cv2.filter2D(
            img, -1, flipped, anchor=(k // 2, k // 2), borderType=border
        ),
        "copy": lambda: x.clone(),
    }
    if g is not None:
        fns["sepFilter2D"] = lambda: cv2.sepFilter2D(
            img, -1, g[::-1].copy(), g[::-1].copy(), anchor=(k // 2, k // 2), borderType=border
        )
    y = trueconv.convolve(x, kt, "same", boundary=c["boundary"]).numpy()
    ref = cv2.filter2D(img, -1, flipped, anchor=(k // 2, k // 2), borderType=border)
    ref = np.moveaxis(ref, -1, 0) if ch > 1 else ref
    err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    me = psutil.Process()
    result: dict[str, Any] = {}
    for attempt in range(3):
        load = other_cpu(me, 0.05)
        times = best(fns, repeats, budget=3.0)
        load = max(load, other_cpu(me, 0.05))
        result = {
            **c,
            "seconds": times,
            "other_cpu_percent": load,
            "attempts": attempt + 1,
            "rel_err_vs_opencv": err,
        }
        if load <= ARGS.busy:
            break
    result["disturbed"] = result["other_cpu_percent"] > ARGS.busy
    result["method"] = trueconv.choose_method(x, kt, "same", boundary=c["boundary"])
    return result


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads(), 1])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--busy", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results_images.json")
    ARGS = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for threads in ARGS.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for c in cells(ARGS.quick):
            r = run_cell({**c, "threads": threads}, rng, ARGS.repeats)
            s = r["seconds"]
            line = (
                f"{threads}t {r['dtype']} {r['n']}^2x{r['ch']} k={r['k']:2d} {r['kind']:8s} "
                f"{r['boundary']:7s} trueconv[{r['method']}] {s['trueconv'] * 1e3:8.2f} ms  "
                f"filter2D {s['filter2D'] * 1e3:8.2f}"
            )
            if "sepFilter2D" in s:
                line += f"  sep {s['sepFilter2D'] * 1e3:7.2f}"
            line += f"  copy {s['copy'] * 1e3:6.2f}  load {r['other_cpu_percent']:.0f}%"
            print(line + ("  DISTURBED" if r["disturbed"] else ""), flush=True)
            rows.append(r)
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "trueconv": trueconv.__version__,
    }
    ARGS.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    print(f"wrote {ARGS.out}")


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
