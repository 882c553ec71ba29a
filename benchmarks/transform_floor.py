"""Why the image grid's large random kernels stay below ``cv2.filter2D`` (issue 14): the
transforms 'auto' runs take, on their own, about as long as OpenCV's whole call.

    python benchmarks/transform_floor.py            # prints, writes results/transform_floor.txt
    python benchmarks/transform_floor.py --quick    # two cells

Part 1, per cell (``'same'``, zero fill, random kernel, both libraries at the same thread
count), interleaved in one process, the fastest of ``--rounds`` rounds:

- ``auto``: ``trueconv.convolve(x, k, 'same')`` (its method in brackets);
- ``filter2D``: ``cv2.filter2D`` with the flipped kernel (OpenCV runs these kernels by its
  own DFT, in blocks);
- ``transforms``: the self time of torch's FFT ops (``aten::_fft_r2c``, ``_fft_c2c``,
  ``_fft_c2r``) inside auto's call, from ``torch.profiler`` (one profiled call after the
  timed ones; the profiler adds its own overhead to the call, not to these ops' self times);
- ``inverse``: the part of ``transforms`` that is the inverse (``_fft_c2c`` + ``_fft_c2r``).

Where ``transforms`` alone is close to or above ``filter2D``, no arrangement of the rest of
the call reaches OpenCV with torch's transforms.

Part 2: one ``L×L`` block forward and back (real data), torch (``rfftn`` + ``irfftn``, a batch
of one) against OpenCV (``cv2.dft`` + ``cv2.dft(DFT_INVERSE | DFT_REAL_OUTPUT)``), one thread,
float32 and float64, at the block lengths both libraries use.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.profiler import ProfilerActivity, profile

import trueconv

try:
    import cv2
except ImportError as exc:  # pragma: no cover
    raise SystemExit("this benchmark needs OpenCV: pip install opencv-python-headless") from exc

OUT = Path(__file__).resolve().parent / "results" / "transform_floor.txt"
FFT_OPS = {"aten::_fft_r2c", "aten::_fft_c2c", "aten::_fft_c2r"}
INVERSE = {"aten::_fft_c2c", "aten::_fft_c2r"}


def fastest(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each contender once per round, the start rotated each round; the fastest call."""
    names = list(fns)
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            fns[name]()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def fft_self_times(fn: Callable[[], object], calls: int = 3) -> tuple[float, float]:
    """Seconds of self time of torch's transform ops in a call of ``fn`` (all, the inverse's),
    the call with the least of them of ``calls`` profiled ones."""
    best = (float("inf"), float("inf"))
    for _ in range(calls):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        total = inverse = 0.0
        for ev in prof.key_averages():
            if ev.key in FFT_OPS:
                total += ev.self_cpu_time_total / 1e6
                if ev.key in INVERSE:
                    inverse += ev.self_cpu_time_total / 1e6
        best = min(best, (total, inverse))
    return best


def taken() -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of every process and the hypervisor's steal, this process's)."""
    t = psutil.cpu_times()
    mine = psutil.Process().cpu_times()
    busy = t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "steal", 0.0)
    return time.perf_counter(), busy, mine.user + mine.system


def others(start: tuple[float, float, float]) -> float:
    """Percent of one core that other processes took since ``start``."""
    end = taken()
    wall = max(end[0] - start[0], 0.2)
    return max(0.0, 100.0 * ((end[1] - start[1]) - (end[2] - start[2])) / wall)


def part1(threads: int, cells: list[tuple[str, int, int]], rounds: int) -> list[str]:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    rng = np.random.default_rng(0)
    lines = []
    for dtype, n, k in cells:
        x = rng.random((n, n)).astype(dtype)
        w = rng.random((k, k)).astype(dtype)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        flipped = np.ascontiguousarray(w[::-1, ::-1])
        fns: dict[str, Callable[[], object]] = {
            "auto": lambda xt=xt, wt=wt: trueconv.convolve(xt, wt, "same"),
            "filter2D": lambda x=x, f=flipped: cv2.filter2D(
                x, -1, f, borderType=cv2.BORDER_CONSTANT
            ),
        }
        for fn in fns.values():
            fn()
        start = taken()
        best = fastest(fns, rounds)
        load = others(start)
        ffts, inverse = fft_self_times(fns["auto"])
        method = trueconv.choose_method(xt, wt, "same")
        lines.append(
            f"{threads} | {dtype} | {n}² ⊛ {k}² | {best['auto'] * 1e3:.2f} [{method}] | "
            f"{best['filter2D'] * 1e3:.2f} | {ffts * 1e3:.2f} ({inverse * 1e3:.2f}) | "
            f"{ffts / best['filter2D']:.2f} | {load:.0f}%"
        )
        print(lines[-1], flush=True)
    return lines


def part2(lengths: list[int], rounds: int) -> list[str]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    lines = []
    for dtype in ("float32", "float64"):
        for n in lengths:
            x = rng.random((n, n)).astype(dtype)
            xt = torch.from_numpy(x)[None]

            def cv(x: np.ndarray = x) -> None:
                s = cv2.dft(x)
                cv2.dft(s, flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)

            def tr(xt: torch.Tensor = xt, n: int = n) -> None:
                s = torch.fft.rfftn(xt, dim=(-2, -1))
                torch.fft.irfftn(s, s=(n, n), dim=(-2, -1))

            best = fastest({"cv2.dft": cv, "torch.fft": tr}, rounds)
            lines.append(
                f"{dtype} | {n} | {best['torch.fft'] * 1e3:.3f} | {best['cv2.dft'] * 1e3:.3f} | "
                f"{best['torch.fft'] / best['cv2.dft']:.2f} | "
                f"{best['torch.fft'] / n / n * 1e9:.1f} / {best['cv2.dft'] / n / n * 1e9:.1f}"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    cells = [(d, n, k) for d in ("float32", "float64") for n in (1024, 2048) for k in (31, 63)]
    if args.quick:
        cells = [("float64", 1024, 63), ("float32", 1024, 63)]
    out = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, OpenCV "
        f"{cv2.__version__}, {os.cpu_count()} cores; 'same', zero fill, random kernels",
        "",
        "threads | dtype | problem | auto ms [method] | filter2D ms | transforms ms "
        "(inverse) | transforms / filter2D | other processes' CPU during the cell",
    ]
    for threads in (2, 1):
        out += part1(threads, cells, args.rounds)
    out += [
        "",
        "one thread | L | torch rfftn+irfftn ms | cv2.dft fwd+inv ms | torch / cv2 | "
        "ns per point torch / cv2",
    ]
    out += part2([256, 360, 384, 512] if not args.quick else [256, 384], args.rounds)
    if not args.quick:
        OUT.write_text("\n".join(out) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
