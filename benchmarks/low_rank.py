"""Low-rank kernels (Laplacian of Gaussian, difference of Gaussians, Gabor): 'auto' with its
low-rank plan against the dense plan it replaces and OpenCV's ``filter2D`` (issue 14).

    python benchmarks/low_rank.py            # prints the table, writes results/low_rank.txt
    python benchmarks/low_rank.py --quick    # a few cells

Contenders, interleaved in one process (each round calls each once, in turn, starting one
contender later than the round before), the fastest of ``--rounds`` rounds:

- ``auto``: ``trueconv.convolve(x, k, 'same')``; where the kernel is of low rank and the
  fused loop with ``r`` pairs of factors is priced below the dense plan, 'auto' runs that
  (its choice and rank are printed);
- ``dense``: ``trueconv.convolve(x, k, 'same', method=m)`` with ``m`` the method 'auto' plans
  from shapes alone (what it ran before the low-rank plan);
- ``filter2D``: ``cv2.filter2D(x, -1, k[::-1, ::-1], borderType=cv2.BORDER_CONSTANT)``;
- ``terms``: ``trueconv.convolve_separable(x, [f0, f1], 'same')`` with the kernel's two SVD
  terms as ``(2, k)`` factors (a user who holds the terms: no analysis of the kernel);
- ``sepFilter2D``: the same two terms as two ``cv2.sepFilter2D`` calls (flipped factors) and
  their sum, what an OpenCV user holding the terms writes.

Also printed: auto's error against a float64 ``scipy.signal.fftconvolve``, as max|y - ref| /
max|ref|, and the largest ratio of an output's error to the low-rank bound
``2·γ_T·sum|k|·max|x| over the output's window`` (at most 1: within the bound).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import scipy.ndimage
import scipy.signal
import torch

import trueconv

try:
    import cv2
except ImportError as exc:  # pragma: no cover
    raise SystemExit("this benchmark needs OpenCV: pip install opencv-python-headless") from exc

OUT = Path(__file__).resolve().parent / "results" / "low_rank.txt"


def grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(k) - (k - 1) / 2
    return np.meshgrid(r, r, indexing="ij")


def log(k: int) -> np.ndarray:
    """Laplacian of Gaussian, sigma k/6 (rank 2)."""
    x, y = grid(k)
    s = k / 6
    q = (x**2 + y**2) / (2 * s * s)
    return -(1 - q) * np.exp(-q) / (np.pi * s**4)


def dog(k: int) -> np.ndarray:
    """Difference of Gaussians, sigmas k/8 and k/5 (rank 2)."""
    r = np.arange(k) - (k - 1) / 2
    g1, g2 = (np.exp(-(r**2) / (2 * s * s)) for s in (k / 8, k / 5))
    return np.outer(g1, g1) / g1.sum() ** 2 - np.outer(g2, g2) / g2.sum() ** 2


def gabor(k: int) -> np.ndarray:
    """Gabor, sigma k/5, 0.8 rad per sample at 30 degrees (rank 2)."""
    x, y = grid(k)
    t = np.pi / 6
    wave = np.cos(0.8 * (x * np.cos(t) + y * np.sin(t)))
    return np.exp(-(x**2 + y**2) / (2 * (k / 5) ** 2)) * wave


KERNELS = {"LoG": log, "DoG": dog, "Gabor": gabor}


def bound_ratio(x: np.ndarray, k: np.ndarray, y: np.ndarray, u: float) -> tuple[float, float]:
    """The largest |y - ref| / (2·γ_T·sum|k|·max|x| over the window) over the outputs, and
    max|y - ref| / max|ref|."""
    ref = scipy.signal.fftconvolve(x.astype(np.float64), k.astype(np.float64), "same")
    # the window of output j ('same', odd k): x[j - (k-1)/2 ... j + (k-1)/2], zeros outside
    window = scipy.ndimage.maximum_filter(np.abs(x.astype(np.float64)), k.shape, mode="constant")
    t = k.size
    gamma = t * u / (1 - t * u)
    # fftconvolve's own error (float64) is far below float32's bound and within float64's
    # up to its log factor: a ratio near 1 in float64 is the reference's as much as ours
    allowed = 2 * gamma * np.abs(k.astype(np.float64)).sum() * window
    ratio = float((np.abs(y - ref) / np.maximum(allowed, np.finfo(np.float64).tiny)).max())
    return ratio, float(np.abs(y - ref).max() / np.abs(ref).max())


def terms(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's two leading SVD terms as ``(2, k)`` factors: ``k ≈ f0.T @ f1``."""
    u, s, vh = np.linalg.svd(k.astype(np.float64))
    root = np.sqrt(s[:2])
    return ((u[:, :2] * root).T.astype(k.dtype), (vh[:2] * root[:, None]).astype(k.dtype))


def contenders(
    x: torch.Tensor, k: torch.Tensor, dense: str, flipped: np.ndarray
) -> dict[str, Callable[[], object]]:
    xn = x.numpy()
    f0, f1 = terms(k.numpy())
    factors = [torch.from_numpy(f0), torch.from_numpy(f1)]
    border = cv2.BORDER_CONSTANT

    def sep2d() -> object:
        out = cv2.sepFilter2D(xn, -1, f1[0, ::-1].copy(), f0[0, ::-1].copy(), borderType=border)
        out += cv2.sepFilter2D(xn, -1, f1[1, ::-1].copy(), f0[1, ::-1].copy(), borderType=border)
        return out

    return {
        "auto": lambda: trueconv.convolve(x, k, "same"),
        "dense": lambda: trueconv.convolve(x, k, "same", method=dense),
        "filter2D": lambda: cv2.filter2D(xn, -1, flipped, borderType=border),
        "terms": lambda: trueconv.convolve_separable(x, factors, "same"),
        "sepFilter2D": sep2d,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [1024] if args.quick else [1024, 2048]
    taps = [7, 15, 31] if args.quick else [5, 7, 11, 15, 31, 63]
    names = ["LoG"] if args.quick else ["LoG", "Gabor"]
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
        f"OpenCV {cv2.__version__}, {psutil.cpu_count()} cores, fastest of {args.rounds} "
        "interleaved rounds, ms; ratios > 1: auto faster",
        "threads dtype    image kernel k  | auto [pick]           dense [method]      "
        "filter2D    terms sepFilter2D | dense/auto filter2D/auto sepF/terms | err      bound",
    ]
    print(lines[0], "\n" + lines[1], flush=True)
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for dtype in (torch.float32, torch.float64):
            npd = np.float32 if dtype == torch.float32 else np.float64
            u = float(np.finfo(npd).eps) / 2
            for n in sizes:
                x = torch.from_numpy(np.random.default_rng(n).standard_normal((n, n)).astype(npd))
                xn = x.numpy()
                for name in names:
                    for k in taps:
                        kn = KERNELS[name](k).astype(npd)
                        kt = torch.from_numpy(kn)
                        flipped = np.ascontiguousarray(kn[::-1, ::-1])
                        pick = trueconv.choose_method(x, kt, "same")
                        dense = trueconv.choose_method(
                            x.shape, kt.shape, "same", shapes=True, dtype=dtype
                        )
                        y = trueconv.convolve(x, kt, "same").numpy()
                        ratio, err = bound_ratio(xn, kn, y, u)
                        fns = contenders(x, kt, dense, flipped)
                        load = os.getloadavg()[0]
                        times: dict[str, list[float]] = {key: [] for key in fns}
                        for fn in fns.values():
                            fn()  # warm-up
                        keys = list(fns)
                        for r in range(args.rounds):
                            # each round starts one contender later: a call right after
                            # OpenCV's ran slower (its worker threads), so no contender
                            # always follows it
                            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                                t0 = time.perf_counter()
                                fns[key]()
                                times[key].append((time.perf_counter() - t0) * 1e3)
                        t = {key: min(v) for key, v in times.items()}
                        line = (
                            f"{threads}       {str(dtype)[6:]:8} {n:5} {name:6} {k:2} | "
                            f"{t['auto']:8.2f} [{pick:9}] {t['dense']:8.2f} [{dense:11}] "
                            f"{t['filter2D']:8.2f} {t['terms']:8.2f} {t['sepFilter2D']:11.2f} | "
                            f"{t['dense'] / t['auto']:10.2f} {t['filter2D'] / t['auto']:13.2f} "
                            f"{t['sepFilter2D'] / t['terms']:10.2f} | {err:.1e}  {ratio:.2g}"
                            f"  (load {load:.2f})"
                        )
                        lines.append(line)
                        print(line, flush=True)
    if not args.quick:
        OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
