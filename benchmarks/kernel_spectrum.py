"""The kernel's spectrum pruned along its first dim against the whole transform (issue 14).

    python benchmarks/kernel_spectrum.py [--rounds 9] [--threads 1 2]

The whole variant transforms the kernel zero-padded to the transform lengths (the FFT method
before). The pruned one, :func:`trueconv._methods.fft.kernel_spectrum`, transforms a kernel at
most half as long as the transform along the first transformed dim at its own length there (the
other dims first), then along the first dim. Both variants run in one process, alternating call
by call (the whole transform by patching ``kernel_spectrum``), the method forced; ``'same'``,
zero fill, random operands. Results: ``benchmarks/results/kernel_spectrum.txt``. Each line:
threads, dtype, problem, method, median ms of the whole and the pruned variant, their ratio (>
1: pruned faster), the largest difference of the results, and the share of a core other
processes took during the cell (psutil).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import psutil
import torch

import trueconv
from trueconv._methods import fft

#: (image shape, kernel taps per dim, method); 1024² ⊛ 31² and 96³ ⊛ 5³ are controls: their
#: kernels are short enough for the DFT-matrix route (``fft._dft_ok``), which both variants take
CELLS = [
    ((1024, 1024), 31, "fft"),
    ((1024, 1024), 63, "fft"),
    ((1024, 1024), 127, "fft"),
    ((2048, 2048), 63, "fft"),
    ((96, 96, 96), 17, "fft"),
    ((96, 96, 96), 5, "fft"),
]

PRUNED = fft.kernel_spectrum


def whole(b: torch.Tensor, lens: Sequence[int], tdims: Sequence[int], real: bool) -> torch.Tensor:
    fwd = torch.fft.rfftn if real else torch.fft.fftn
    return fwd(b, s=lens, dim=tdims)


def others() -> float:
    """CPU seconds used by all processes but this one (and stolen)."""
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return t.user + t.system + getattr(t, "steal", 0.0) - me.user - me.system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--cells", type=int, nargs="+", help="indices into CELLS (default: all)")
    args = ap.parse_args()
    cells = [CELLS[i] for i in args.cells] if args.cells else CELLS
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape, k, method in cells:
                x = torch.randn(shape, dtype=dtype)
                kern = torch.randn((k,) * len(shape), dtype=dtype)
                ys, times = {}, {"whole": [], "pruned": []}
                o0, w0 = others(), time.perf_counter()
                for r in range(args.rounds + 1):
                    for name, fn in (("whole", whole), ("pruned", PRUNED)):
                        fft.kernel_spectrum = fn
                        t = time.perf_counter()
                        ys[name] = trueconv.convolve(x, kern, "same", method=method)
                        if r:
                            times[name].append(time.perf_counter() - t)
                fft.kernel_spectrum = PRUNED
                busy = (others() - o0) / (time.perf_counter() - w0)
                mw, mp = (statistics.median(times[n]) * 1e3 for n in ("whole", "pruned"))
                diff = (ys["whole"] - ys["pruned"]).abs().max().item()
                dims = "×".join(map(str, shape))
                print(
                    f"{threads} | {str(dtype)[6:]} | {dims} ⊛ {k} | {method} | {mw:.2f} | "
                    f"{mp:.2f} | {mw / mp:.2f} | {diff:.1e} | {busy:.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
