"""The direct loop's strips: runs of output rows as one pass per tap group (issue 14).

    python benchmarks/loop_strips.py [--rounds 15] [--threads 1 2]

Where the direct method's compiled loop reads an output row's taps from the input's rows in
place (rows as long as the input's, one column tile, no kernel planes: 'same' 2-D images with
small kernels, mostly 3×3), :func:`trueconv._methods.rows._compile`'s strips add each group
of taps to a run of consecutive rows in one pass over the flat output, instead of one pass per
row (each pass's set-up, its views and checks, costs about 50-80 ns, against about 150 ns of
arithmetic for 9 taps over a 512-sample row). Both run in one process, alternating call by
call after 3 untimed rounds (rows one by one by setting ``rows.BAND`` to 0). Cells: through
``trueconv.convolve(x, k, 'same', method='direct')``, random kernels (and a 3×3 Gaussian,
which 'auto' runs dense) on 256²-4096² images, 3-channel 1024² and 2048², borders
``'reflect'`` and ``'replicate'``, and controls where no row reads in place (1024² ⊛ 5×5,
7×7: the ring) and 3-D (one plane per row: no strips). Each line: threads, dtype, problem,
median ms rows one by one and in strips, the median of the rounds' ratios (> 1: strips
faster), whether the results are bitwise equal, and the share of a core other processes took
during the cell (psutil). Results: ``benchmarks/results/loop_strips.txt``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Hashable
from typing import Any

import psutil
import torch
from timing import ab_cell

import trueconv
from trueconv._methods import rows

#: (image shape, kernel shape, boundary)
CELLS: list[tuple[tuple[int, ...], tuple[int, ...], str]] = [
    ((256, 256), (3, 3), "fill"),
    ((512, 512), (3, 3), "fill"),
    ((1024, 1024), (3, 3), "fill"),
    ((2048, 2048), (3, 3), "fill"),
    ((4096, 4096), (3, 3), "fill"),
    ((3, 1024, 1024), (3, 3), "fill"),
    ((3, 2048, 2048), (3, 3), "fill"),
    ((1024, 1024), (3, 3), "reflect"),
    ((2048, 2048), (3, 3), "replicate"),
    ((2048, 2048), (5, 5), "fill"),
    ((1024, 1024), (5, 5), "fill"),
    ((1024, 1024), (7, 7), "fill"),
    ((64, 64, 1024), (3, 3, 3), "fill"),
]
BAND = rows.BAND
WARM = 3


def with_band(
    band: int, x: torch.Tensor, kern: torch.Tensor, boundary: Any
) -> Callable[[], object]:
    """The call with the loop's strips holding ``band`` samples (0: rows one by one)."""

    def call() -> torch.Tensor:
        rows.BAND = band
        return trueconv.convolve(x, kern, "same", method="direct", boundary=boundary)

    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    gen = torch.Generator().manual_seed(0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape, kshape, boundary in CELLS:
                x = torch.rand(shape, dtype=dtype, generator=gen)
                kern = torch.randn(kshape, dtype=dtype, generator=gen)
                calls: dict[Hashable, Callable[[], object]] = {
                    band: with_band(band, x, kern, boundary) for band in (0, BAND)
                }
                y0, y1 = calls[0](), calls[BAND]()
                same = isinstance(y0, torch.Tensor) and isinstance(y1, torch.Tensor)
                same = same and bool(torch.equal(y0, y1))  # type: ignore[arg-type]
                old, new, paired, busy = ab_cell(calls, 0, BAND, args.rounds, WARM)
                rows.BAND = BAND
                if torch.get_num_threads() != threads:
                    raise RuntimeError("the thread count changed")
                dims = "×".join(map(str, shape))
                name = "×".join(map(str, kshape))
                print(
                    f"{threads} | {str(dtype)[6:]} | {dims} ⊛ {name} {boundary} | {old:.3f} | "
                    f"{new:.3f} | {paired:.2f} | {same} | {busy:.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
