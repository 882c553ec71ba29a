"""``trueconv.core.boundary.extend``: the eager in-place path against the ``index_select`` gather.

    python benchmarks/boundary_extend.py            # extend cells, then convolve end to end
    python benchmarks/boundary_extend.py --quick    # fewer repeats

``old`` is the same function with the in-place path switched off
(``boundary._in_place_ok`` patched to ``False``): one ``index_select`` per dim, as before.
Cells: float32 and float64, 2048² and 3 × 1024², pads (4, 4) and (15, 15) on both last dims,
each non-fill boundary; then ``trueconv.convolve(x, k, 'same', boundary='reflect')`` with a
random 3×3 and 9×9 kernel on 1024² and 2048² float32. Each cell runs old and new in turn,
with 1 and then 2 torch threads, old and new interleaved three times after a warm-up pass over
all cells; the minimum of 3 × 9 calls is printed (ms), with the load average before the cell.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial

import torch
from timing import best

import trueconv
from trueconv.core import boundary

_ENABLED = boundary._in_place_ok


def _set(new: bool) -> None:
    boundary._in_place_ok = _ENABLED if new else (lambda x: False)  # type: ignore[assignment]


def cell(label: str, fn: Callable[[], object], repeats: int) -> None:
    load = os.getloadavg()[0]
    out = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ms = {}
        for _ in range(3):  # interleave old/new three times, keep the best of each
            for new in (False, True):
                _set(new)
                t = best(fn, repeats)
                ms[new] = min(ms.get(new, t), t)
        _set(True)
        out.append(
            f"{threads}t old {ms[False]:7.2f} new {ms[True]:7.2f} x{ms[False] / ms[True]:4.1f}"
        )
    print(f"{label:42s} load {load:4.1f} | " + " | ".join(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    torch.manual_seed(0)
    cells: list[tuple[str, Callable[[], object]]] = []
    for dtype in (torch.float32, torch.float64):
        for shape in ((2048, 2048), (3, 1024, 1024)):
            x = torch.randn(shape, dtype=dtype)
            dims = (x.ndim - 2, x.ndim - 1)
            for p in (4, 15):
                for b in ("wrap", "symmetric", "reflect", "replicate"):
                    name = f"extend {str(dtype)[6:]} {'x'.join(map(str, shape))} pad {p} {b}"
                    cells.append((name, partial(boundary.extend, x, dims, ((p, p), (p, p)), b)))
    for n in (1024, 2048):
        x = torch.randn(n, n)
        for k in (3, 9):
            call = partial(trueconv.convolve, x, torch.randn(k, k), "same", boundary="reflect")
            cells.append((f"convolve float32 {n}^2 {k}x{k} same reflect", call))
    for _, fn in cells:  # warm-up: plans, caches and the allocator's state before timing
        for new in (False, True):
            _set(new)
            fn()
    for name, fn in cells:
        cell(name, fn, repeats)


if __name__ == "__main__":
    main()
