"""The compiled loops' column tiles: as wide as the ring allows against 2048 (issue 14).

    python benchmarks/loop_tiles.py [--rounds 12] [--threads 1 2]

:func:`trueconv._methods.rows.widest_tile` lets a loop's row tiles grow past ``TILE`` (2048
samples) as far as its ring of input rows stays within ``rows.RING_BYTES`` (the dense loop: a
ring of ``k0·k1`` rows; the fused separable loop, :func:`trueconv._methods.rows_separable.
tile_width`: ``k0`` per term); before, no tile was wider than 2048. Both run in one process,
alternating call by call after 3 untimed rounds (the old width by setting ``RING_BYTES`` to 0).
Cells: the separable plan, through ``trueconv.convolve(x, outer(g, g), 'same')`` ('auto') with
Gaussian factors of 7-31 taps on 4096² and 1024 × 8192 images; the dense loop, through
``method='direct'`` with random kernels (4096² ⊛ 3²-11², 1-D 2^20 ⊛ 3 and 16, 2^16 ⊛ 16 and
20000 ⊛ 64 (one row: at 2 threads cut into as many tiles as chunks), and 3-D 64² × 1024 ⊛ 3³,
whose rows are one tile either way: a control). Each line: threads, dtype, problem, the method
that ran, median ms with tiles of 2048 and as wide as the ring allows, the median of the
rounds' ratios of the two (> 1: wider faster; this VM has phases of twice the time that a
median of times can straddle), whether the results are bitwise equal, and the share of a core
other processes took during the cell (psutil). Results: ``benchmarks/results/loop_tiles.txt``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import psutil
import torch
from timing import ab_cell

import trueconv
from trueconv._methods import rows
from trueconv.cli.bench_harness import gaussian_taps as gaussian  # OpenCV's default sigma

#: (image shape, kernel shape or Gaussian taps, method): a Gaussian's int, a random kernel's
#: shape
CELLS: list[tuple[tuple[int, ...], int | tuple[int, ...], str]] = [
    ((4096, 4096), 7, "auto"),
    ((4096, 4096), 15, "auto"),
    ((4096, 4096), 31, "auto"),
    ((1024, 8192), 7, "auto"),
    ((1024, 8192), 15, "auto"),
    ((1024, 8192), 31, "auto"),
    ((4096, 4096), (3, 3), "direct"),
    ((4096, 4096), (7, 7), "direct"),
    ((4096, 4096), (11, 11), "direct"),
    ((1 << 20,), (3,), "direct"),
    ((1 << 20,), (16,), "direct"),
    ((1 << 16,), (16,), "direct"),
    ((20000,), (64,), "direct"),
    ((64, 64, 1024), (3, 3, 3), "direct"),
]
RING = rows.RING_BYTES
#: untimed rounds first: a process's first calls on a new image size run slowly for a while.
#: The outputs are not kept between timed calls: keeping each variant's last output (64 MiB
#: at 4096² float32) made every second call of a round about twice as slow at 2 threads, and
#: with the order alternating by round, the median ratio of an odd number of rounds was
#: either about 0.5 or about 2 (the first cell at 2 threads: 0.55-0.70)
WARM = 3


def with_ring(ring: int, x: torch.Tensor, kern: torch.Tensor, method: str) -> Callable[[], object]:
    """The call with the loops' ring budget set to ``ring`` (0: tiles of at most 2048)."""

    def call() -> object:
        rows.RING_BYTES = ring
        return trueconv.convolve(x, kern, "same", method=method)

    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    gen = torch.Generator().manual_seed(0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape, kern_spec, method in CELLS:
                x = torch.rand(shape, dtype=dtype, generator=gen)
                if isinstance(kern_spec, int):
                    g = torch.from_numpy(gaussian(kern_spec)).to(dtype)
                    kern, name = torch.outer(g, g), f"Gaussian {kern_spec}"
                else:
                    kern = torch.randn(kern_spec, dtype=dtype, generator=gen)
                    name = "×".join(map(str, kern_spec))
                ran = trueconv.choose_method(x, kern, "same") if method == "auto" else method
                ys: dict[int, torch.Tensor] = {}
                for ring in (0, RING):
                    rows.RING_BYTES = ring
                    ys[ring] = trueconv.convolve(x, kern, "same", method=method)
                same = bool(torch.equal(ys[0], ys[RING]))
                del ys  # no output held across the timed calls: each allocates as a user's

                calls = {ring: with_ring(ring, x, kern, method) for ring in (0, RING)}
                old, new, paired, busy = ab_cell(calls, 0, RING, args.rounds, WARM)
                rows.RING_BYTES = RING
                dims = "×".join(map(str, shape))
                print(
                    f"{threads} | {str(dtype)[6:]} | {dims} ⊛ {name} | {ran} | {old:.2f} | "
                    f"{new:.2f} | {paired:.2f} | {same} | {busy:.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
