"""Where the dense direct loop's time goes at one thread: its tap passes against the rest.

    python benchmarks/pass_rate.py [--rounds 30] [--out results/pass_rate.txt]

float32, one thread, ``'valid'`` on a padded 1024² input (every output row reads its taps'
rows in place: no ring copies), random k×k kernels. Contenders, interleaved
(``timing.alternating``, each timed call the second of two in a row):

- ``passes``: a bare numba loop making only the loop's tap passes
  (``trueconv._methods.rows.add_taps``: all k² taps of an output row in the fewest passes of at
  most ``rows.GROUP``), one output row after another over the image;
- ``one row``: the same passes, every one on the first output row and the first input rows (in
  L1 throughout): the passes' rate without the image's trip through the caches;
- ``trueconv``: ``trueconv.convolve(x, k, 'valid', method='direct')``, the whole call;
- ``filter2D``: ``cv2.filter2D`` on the same padded input (the flipped kernel), cropped view;
- ``trueconv same`` and ``filter2D same``: both on the unpadded 1024² image, ``'same'`` with
  zero fill (the image grid's calls: trueconv's loop copies each row into its ring there).

Printed per k: the median ms and ns per 16-lane vector tap (``1024² · k² / 16`` of them).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numba
import numpy as np
import torch
from timing import alternating

import trueconv
from trueconv._methods import rows

HERE = Path(__file__).resolve().parent


def passes_loop() -> object:
    """The bare loop (compiled on first use): output rows of ``out`` (or its first row again
    and again with ``same_row``) as the valid convolution of ``a`` with ``w``."""
    rows._kernel()  # compiles the loop's helpers (rows.add_taps)
    add_taps = rows.add_taps

    @numba.njit(nogil=True)  # type: ignore[untyped-decorator]
    def image(a, w, out, same_row):  # type: ignore[no-untyped-def]
        n1 = a.shape[1]
        k = w.shape[0]
        o0, o1 = out.shape
        g = k * k
        offs = np.empty(g, np.uint64)
        ws = np.empty(g, out.dtype)
        af = a.reshape(a.size)
        of = out.reshape(out.size)
        zero = np.zeros(1, out.dtype)[0]
        for i in range(o0):
            r = 0 if same_row else i
            t = 0
            for m1 in range(k):
                for m2 in range(k):
                    offs[t] = np.uint64((r + k - 1 - m1) * n1 + k - 1 - m2)
                    ws[t] = w[m1, m2]
                    t += 1
            od = np.uint64(0 if same_row else i * o1)
            add_taps(of, od, af, offs, ws, 0, g, rows.GROUP, np.uint64(o1), True, zero)
        return 0

    return image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pass_rate.txt")
    args = ap.parse_args()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    image = passes_loop()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, numba "
        f"{numba.__version__}, OpenCV {cv2.__version__}; float32, 1 thread, 1024² 'valid' "
        "on a padded input; median ms (ns per 16-lane tap)"
    ]
    rng = np.random.default_rng(0)
    for k in (3, 5, 7, 11):
        a = rng.standard_normal((1024 + k - 1,) * 2).astype(np.float32)
        w = rng.standard_normal((k, k)).astype(np.float32)
        out = np.empty((1024, 1024), np.float32)
        flipped = np.ascontiguousarray(w[::-1, ::-1])
        x, wt = torch.from_numpy(a), torch.from_numpy(w)
        img = np.ascontiguousarray(a[:1024, :1024])
        xi = torch.from_numpy(img)
        calls = {
            "passes": lambda a=a, w=w, out=out: image(a, w, out, False),
            "one row": lambda a=a, w=w, out=out: image(a, w, out, True),
            "trueconv": lambda x=x, wt=wt: trueconv.convolve(x, wt, "valid", method="direct"),
            "filter2D": lambda a=a, f=flipped, k=k: cv2.filter2D(
                a, -1, f, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
            )[:1024, :1024],
            "trueconv same": lambda xi=xi, wt=wt: trueconv.convolve(xi, wt, "same"),
            "filter2D same": lambda img=img, f=flipped, k=k: cv2.filter2D(
                img, -1, f, anchor=(k // 2, k // 2), borderType=cv2.BORDER_CONSTANT
            ),
        }
        times = alternating(calls, args.rounds, 3, twice=True)
        vt = 1024 * 1024 * k * k / 16
        cells = []
        for name, ts in times.items():
            ms = statistics.median(ts) * 1e3
            cells.append(f"{name} {ms:.3f} ({ms * 1e6 / vt:.2f})")
        lines.append(f"{k}x{k}: " + ", ".join(cells))
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
