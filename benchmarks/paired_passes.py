"""The dense loop's passes one output row at a time against two rows at a time (its pairs), as
bare loops over a whole image.

    python benchmarks/paired_passes.py [--rounds 20] [--out results/paired_passes.txt]

float32, one thread, ``'valid'`` over a padded 1024² input, every row read in place (no ring
copies, no edge samples): only the passes ``trueconv._methods.rows`` makes. Contenders,
interleaved (``timing.alternating``, each timed call the second of two in a row):

- ``rows``: every tap of an output row in the fewest passes of at most ``rows.GROUP`` taps
  (``rows.add_taps``), one output row after another (the loop before its pairs);
- ``pairs``: two output rows at a time as the loop makes them now (``rows.pair_plane``): the
  second row's kernel row 0 (``rows.add_taps``), the rows both read (``rows.add_pairs``: each
  load feeds both rows' sums), the first row's last kernel row (``rows.add_taps``); a 3×3
  kernel's pair in one pass of its twelve loads (``rows.add_pair3``);
- ``pairs, inlined``: the three passes (3×3 too), with the pair routine inlined into the loop
  (numba's ``inline='always'``), where LLVM sees one output array at two offsets;
- ``filter2D``: ``cv2.filter2D`` on the same padded input (the flipped kernel), for scale.

Printed per kernel shape: ns per 16-lane vector tap (``1024² · k1 · k2 / 16`` of them, the
median of the rounds) and whether each variant's output equals ``rows``' bit for bit. Then
the same with output rows 8 samples longer than the samples computed (as the loop writes a
column tile of each row): there LLVM did not vectorise the inlined pair routine (2026-12-05:
2.3-2.9 ns per tap), which is why the loop calls it as a function of its own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numba
import numpy as np
from timing import alternating

from trueconv._methods import rows

HERE = Path(__file__).resolve().parent
N = 1024


def loops() -> dict[str, object]:
    """The bare loops (compiled on first use): ``out`` (N × N) as the valid convolution of
    ``a`` with ``w``, rows one by one (``mode`` 0) or in pairs (1: the library's pair
    routine, 2: the same routine inlined)."""
    rows._kernel()  # compiles the loop's helpers
    add_taps = rows.add_taps
    pair_plane = rows.pair_plane
    group = rows.GROUP
    pair_inline = numba.njit(inline="always")(rows.add_pair.py_func)

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def pairs_inline(d, dd0, dd1, src, offs, w0, w1, g, width, first, zero):  # type: ignore[no-untyped-def]
        passes = (g + group - 1) // group
        for q in range(passes):
            m = g * q // passes
            n = g * (q + 1) // passes - m
            pair_inline(d, dd0, d, dd1, src, offs, w0, w1, m, n, width, first and q == 0, zero)

    def make(mode: int) -> object:
        @numba.njit(nogil=True)  # type: ignore[untyped-decorator]
        def image(a, w, out, width):  # type: ignore[no-untyped-def]
            n1 = a.shape[1]
            k1, k2 = w.shape
            o0, o1 = out.shape  # rows of o1 samples, the first 'width' of each computed
            offs = np.empty(k1 * k2, np.uint64)
            ws = np.empty(k1 * k2, out.dtype)
            po = np.empty((k1 + 1) * k2, np.uint64)
            p0 = np.empty((k1 + 1) * k2, out.dtype)
            p1 = np.empty((k1 + 1) * k2, out.dtype)
            rowoff = np.empty(k1 + 1, np.int64)
            af = a.reshape(a.size)
            of = out.reshape(out.size)
            zero = np.zeros(1, out.dtype)[0]
            width = np.uint64(width)
            i = 0
            while i < o0:
                if mode == 0 or i + 1 == o0:
                    t = 0
                    for m1 in range(k1):
                        for m2 in range(k2):
                            offs[t] = np.uint64((i + k1 - 1 - m1) * n1 + k2 - 1 - m2)
                            ws[t] = w[m1, m2]
                            t += 1
                    add_taps(of, np.uint64(i * o1), af, offs, ws, 0, t, group, width, True, zero)
                    i += 1
                    continue
                d0 = np.uint64(i * o1)
                d1 = np.uint64((i + 1) * o1)
                if mode == 1:  # the loop's routine
                    for s1 in range(k1 + 1):
                        rowoff[s1] = (i + s1) * n1 + k2 - 1
                    pair_plane(
                        of,
                        d0,
                        d1,
                        af,
                        rowoff,
                        w,
                        0,
                        k1,
                        k2,
                        offs,
                        ws,
                        po,
                        p0,
                        p1,
                        width,
                        True,
                        zero,
                    )
                    i += 2
                    continue
                for m2 in range(k2):
                    offs[m2] = np.uint64((i + k1) * n1 + k2 - 1 - m2)
                    ws[m2] = w[0, m2]
                add_taps(of, d1, af, offs, ws, 0, k2, group, width, True, zero)
                t = 0
                for m1 in range(k1 - 1):
                    for m2 in range(k2):
                        po[t] = np.uint64((i + k1 - 1 - m1) * n1 + k2 - 1 - m2)
                        p0[t] = w[m1, m2]
                        p1[t] = w[m1 + 1, m2]
                        t += 1
                pairs_inline(of, d0, d1, af, po, p0, p1, t, width, True, zero)
                for m2 in range(k2):
                    offs[m2] = np.uint64(i * n1 + k2 - 1 - m2)
                    ws[m2] = w[k1 - 1, m2]
                add_taps(of, d0, af, offs, ws, 0, k2, group, width, False, zero)
                i += 2
            return 0

        return image

    return {"rows": make(0), "pairs": make(1), "pairs, inlined": make(2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "paired_passes.txt")
    args = ap.parse_args()
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    variants = loops()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, numba {numba.__version__}, OpenCV "
        f"{cv2.__version__}; float32, one thread, {N}² 'valid' over a padded input, rows read "
        "in place; ns per 16-lane tap (median of the rounds); bitwise: equal to 'rows'"
    ]
    rng = np.random.default_rng(0)
    shapes = ((3, 3), (5, 5), (7, 7), (11, 11), (3, 5), (5, 3), (4, 4), (2, 8), (3, 7))
    for extra, (k1, k2) in [(0, s) for s in shapes] + [(8, s) for s in shapes[:5]]:
        if extra == 8 and (k1, k2) == shapes[0]:
            lines.append("# output rows 8 samples longer than computed")
        a = rng.standard_normal((N + k1 - 1, N + k2 - 1)).astype(np.float32)
        w = rng.standard_normal((k1, k2)).astype(np.float32)
        flipped = np.ascontiguousarray(w[::-1, ::-1])
        outs = {name: np.zeros((N, N + extra), np.float32) for name in variants}
        calls = {
            name: (lambda f=f, o=outs[name], a=a, w=w: f(a, w, o, N))  # type: ignore[operator]
            for name, f in variants.items()
        }
        calls["filter2D"] = lambda f=flipped, a=a: cv2.filter2D(
            a, -1, f, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
        )
        times = alternating(calls, args.rounds, 3, twice=True)
        same = [n for n in variants if n != "rows" and np.array_equal(outs[n], outs["rows"])]
        taps = N * N * k1 * k2 / 16
        cells = [f"{n} {statistics.median(t) * 1e9 / taps:.3f}" for n, t in times.items()]
        lines.append(f"{k1}x{k2}: " + ", ".join(cells) + f"; bitwise: {', '.join(same)}")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
