"""Boundaries read in place by the compiled loops, against extending the input first.

    python benchmarks/boundary_native.py           # the grid below, 1 and 2 threads
    python benchmarks/boundary_native.py --quick   # fewer repeats

``extend`` is what trueconv did before: ``trueconv.core.boundary.extend`` builds the extended
input, then the valid convolution of it (the same plan: the problem is the same but for the
extension). ``native`` is ``convolve(x, k, 'same', boundary=...)`` now, where the dense loop
(random kernels) and the fused separable loop (Gaussians) read the extension through index
maps. ``filter2D`` / ``sepFilter2D``: OpenCV with the matching border (``'reflect'`` is
``BORDER_REFLECT_101``, ``'replicate'`` ``BORDER_REPLICATE``; ``'fill'`` is a fill value of
1.0, which ``filter2D`` has no parameter for: no OpenCV column), same thread count. Each cell
interleaves the contenders three times after a warm-up; the minimum of 3 × ``repeats`` calls is
printed (ms), with other processes' CPU use during the cell (``psutil``: the sum over other
processes, in % of one core) so that disturbed cells can be re-timed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import cv2
import numpy as np
import psutil
import torch
from timing import best

import trueconv
from trueconv.core.boundary import extend

CV_BORDER = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}


def others_cpu(procs: dict[int, psutil.Process]) -> float:
    """CPU seconds used by other processes since the last call (their sum)."""
    total = 0.0
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            t = p.cpu_times()
            used = t.user + t.system
        except psutil.Error:
            continue
        old = procs.get(p.pid)
        procs[p.pid] = p
        prev = getattr(old, "_used", None) if old is not None else None
        p._used = used  # type: ignore[attr-defined]
        if prev is not None:
            total += max(0.0, used - prev)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rules", nargs="+", default=["reflect", "replicate"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048, 4096])
    args = ap.parse_args()
    repeats = 5 if args.quick else 11
    rng = np.random.default_rng(0)
    procs: dict[int, psutil.Process] = {}
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, {os.cpu_count()} cpus")
    print("cell | threads | extend | native | cv2 | extend/native | cv2/native | others %")
    for dtype in (np.float32, np.float64):
        for n in args.sizes:
            for k, kind in ((3, "random"), (7, "random"), (7, "gaussian"), (15, "gaussian")):
                for rule in args.rules:
                    img = rng.standard_normal((n, n)).astype(dtype)
                    if kind == "gaussian":
                        g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / (k / 5)) ** 2)
                        g = (g / g.sum()).astype(dtype)
                        kern = np.outer(g, g)
                    else:
                        kern = rng.standard_normal((k, k)).astype(dtype)
                    x, kt = torch.from_numpy(img), torch.from_numpy(kern)
                    pads = ((k // 2, k // 2),) * 2

                    def old(x: torch.Tensor = x, kt: torch.Tensor = kt, pads=pads, rule=rule):
                        xe = extend(x, (0, 1), pads, rule, 1.0)
                        return trueconv.convolve(xe, kt, "valid")

                    def new(x: torch.Tensor = x, kt: torch.Tensor = kt, rule=rule):
                        return trueconv.convolve(x, kt, "same", boundary=rule, fill_value=1.0)

                    flipped = kern[::-1, ::-1].copy()
                    cv: Callable[[], object] | None = None
                    if rule == "fill":
                        pass
                    elif kind == "gaussian":

                        def cv(img=img, g=g, rule=rule, k=k):
                            return cv2.sepFilter2D(
                                img, -1, g[::-1].copy(), g[::-1].copy(),
                                anchor=(k // 2, k // 2), borderType=CV_BORDER[rule],
                            )  # fmt: skip
                    else:

                        def cv(img=img, flipped=flipped, rule=rule, k=k):
                            return cv2.filter2D(
                                img, -1, flipped, anchor=(k // 2, k // 2),
                                borderType=CV_BORDER[rule],
                            )  # fmt: skip

                    ref = old().numpy()
                    got = new().numpy()
                    assert np.allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
                    for threads in (1, 2):
                        torch.set_num_threads(threads)
                        cv2.setNumThreads(threads)
                        others_cpu(procs)
                        t_wall = time.perf_counter()
                        ms: dict[str, float] = {}
                        contenders: list[tuple[str, Callable[[], object]]] = [
                            ("old", old), ("new", new)
                        ]  # fmt: skip
                        if cv is not None:
                            contenders.append(("cv", cv))
                        for _ in range(3):
                            for name, fn in contenders:
                                t = best(fn, repeats)
                                ms[name] = min(ms.get(name, t), t)
                        ms.setdefault("cv", float("nan"))
                        busy = others_cpu(procs) / (time.perf_counter() - t_wall) * 100
                        label = f"{np.dtype(dtype).name} {n}² ⊛ {k}² {kind} {rule}"
                        print(
                            f"{label:40s} | {threads} | {ms['old']:7.2f} | {ms['new']:7.2f} | "
                            f"{ms['cv']:7.2f} | {ms['old'] / ms['new']:5.2f} | "
                            f"{ms['cv'] / ms['new']:5.2f} | {busy:4.0f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
