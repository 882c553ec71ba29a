"""The direct loop's bands: short output rows as strips over copied input rows (issue 14).

    python benchmarks/loop_bands.py [--rounds 15] [--threads 1 2] [--max 1024] [--whole]

Where the direct method's compiled loop reads an output row's taps from its ring of copied
input rows (kernels with rows of the padding among their taps, 3-D kernels, small images), a
row of a few hundred samples pays each pass's set-up (about 50-80 ns) for a few vectors of
arithmetic: a 5³ kernel makes about 20 passes per 96-sample row. With bands
(:func:`trueconv._methods.rows.band_rows`) the loop copies the extended input rows a run of
output rows reads into one band per kernel plane, computes the run as one strip (every tap at
one offset from each of its samples) and copies the rows out. Both run in one process,
alternating call by call after 3 untimed rounds (rows one by one by setting
``rows.BAND_ROW_BYTES`` to 0; ``--whole``: 3-D cells only, bands copied per strip against
bands holding whole planes, ``rows.WHOLE_PLANES``). Cells: ``trueconv.convolve(x, k, mode,
method='direct')``, random kernels, 3-D volumes 32³-200³ ⊛ 3³-7³ and 2-D images 64²-512² ⊛
3²-11² ('same' and 'full'), one 'reflect', and rows past the limit. Each line: threads,
dtype, problem, median ms of the two, the median of the rounds' ratios (> 1: the second
faster), whether the results are bitwise equal, and the share of a core other processes
took during the cell (psutil). Results:
``benchmarks/results/loop_bands.txt``.
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

#: (input shape, kernel shape, mode, boundary)
CELLS: list[tuple[tuple[int, ...], tuple[int, ...], str, str]] = [
    ((32, 32, 32), (5, 5, 5), "same", "fill"),
    ((48, 48, 48), (5, 5, 5), "same", "fill"),
    ((64, 64, 64), (3, 3, 3), "same", "fill"),
    ((64, 64, 64), (5, 5, 5), "same", "fill"),
    ((96, 96, 96), (3, 3, 3), "same", "fill"),
    ((96, 96, 96), (5, 5, 5), "same", "fill"),
    ((96, 96, 96), (5, 5, 5), "full", "fill"),
    ((96, 96, 96), (7, 7, 7), "same", "fill"),
    ((96, 96, 96), (5, 5, 5), "same", "reflect"),
    ((128, 128, 128), (3, 3, 3), "same", "fill"),
    ((128, 128, 128), (5, 5, 5), "same", "fill"),
    ((160, 160, 160), (5, 5, 5), "same", "fill"),
    ((256, 256, 64), (3, 3, 3), "same", "fill"),
    ((64, 64), (5, 5), "same", "fill"),
    ((128, 128), (5, 5), "same", "fill"),
    ((128, 128), (11, 11), "same", "fill"),
    ((256, 256), (3, 3), "full", "fill"),
    ((256, 256), (5, 5), "same", "fill"),
    ((256, 256), (7, 7), "same", "fill"),
    ((512, 512), (5, 5), "same", "fill"),
    ((512, 512), (7, 7), "same", "fill"),
    # rows past the limit (1 KiB): 3-D rows of 512-1024 samples, float64 256²
    ((32, 32, 512), (3, 3, 3), "same", "fill"),
    ((24, 24, 1024), (5, 5, 5), "same", "fill"),
    ((256, 256, 64), (5, 5, 5), "same", "fill"),
    ((200, 200, 200), (7, 7, 7), "same", "fill"),
]
WARM = 3


def with_max(most: int, x: torch.Tensor, kern: torch.Tensor, mode: str, boundary: Any) -> Any:
    """The call with bands for output rows of at most ``most`` bytes (0: rows one by one)."""

    def call() -> torch.Tensor:
        rows.BAND_ROW_BYTES = most
        return trueconv.convolve(x, kern, mode, method="direct", boundary=boundary)

    return call


def with_whole(whole: bool, x: torch.Tensor, kern: torch.Tensor, mode: str, boundary: Any) -> Any:
    """The call with bands of whole planes where they fit (``whole``) or per strip."""

    def call() -> torch.Tensor:
        rows.WHOLE_PLANES = whole
        return trueconv.convolve(x, kern, mode, method="direct", boundary=boundary)

    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--max", type=int, default=rows.BAND_ROW_BYTES, help="rows.BAND_ROW_BYTES")
    ap.add_argument(
        "--whole",
        action="store_true",
        help="bands per strip against bands of whole planes (rows.WHOLE_PLANES), 3-D cells",
    )
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    gen = torch.Generator().manual_seed(0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape, kshape, mode, boundary in CELLS:
                x = torch.rand(shape, dtype=dtype, generator=gen)
                kern = torch.randn(kshape, dtype=dtype, generator=gen)
                if args.whole and len(kshape) < 3:
                    continue
                calls: dict[Hashable, Callable[[], object]] = (
                    {w: with_whole(w, x, kern, mode, boundary) for w in (False, True)}
                    if args.whole
                    else {m: with_max(m, x, kern, mode, boundary) for m in (0, args.max)}
                )
                a, b = (False, True) if args.whole else (0, args.max)
                y0, y1 = calls[a](), calls[b]()
                same = isinstance(y0, torch.Tensor) and isinstance(y1, torch.Tensor)
                same = same and bool(torch.equal(y0, y1))  # type: ignore[arg-type]
                old, new, paired, busy = ab_cell(calls, a, b, args.rounds, WARM)
                if torch.get_num_threads() != threads:
                    raise RuntimeError("the thread count changed")
                dims = "×".join(map(str, shape))
                name = "×".join(map(str, kshape))
                print(
                    f"{threads} | {str(dtype)[6:]} | {dims} ⊛ {name} {mode} {boundary} | "
                    f"{old:.3f} | {new:.3f} | {paired:.2f} | {same} | {busy:.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
