"""The dense loop's strips one output row at a time against in pairs, for small kernels.

    python benchmarks/strip_pairs.py [--rounds 30] [--out results/strip_pairs.txt]

The compiled loop alone (``trueconv._methods.rows``, its kernel called directly, one thread):
``'same'`` with zero fill over 1024²-4096² float32/float64 images and 3×3-5×5 kernels, whose
wide rows the loop reads in place as strips. ``pair`` 1 computes the strips' rows one at a
time (pairs elsewhere), ``pair`` 2 in pairs (``rows.pair_plane``: a 3×3 plane in one pass,
others as three). Interleaved (``timing.alternating``, each timed call the second of two in
a row); the median of the rounds, and whether the two outputs are equal bit for bit. This is
why :data:`trueconv._methods.rows.STRIP_PAIRS` pairs the strips of 3×3 kernels only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numba
import numpy as np
import torch
from timing import alternating

from trueconv._methods import rows

HERE = Path(__file__).resolve().parent
KERNELS = ((3, 3), (4, 4), (5, 5), (3, 5), (5, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "strip_pairs.txt")
    args = ap.parse_args()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    kernel = rows._kernel()
    rng = np.random.default_rng(0)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, numba {numba.__version__}, one thread; 'same', "
        "zero fill; ms (median of the rounds): strips one row at a time, in pairs, ratio"
    ]
    for dt in (np.float32, np.float64):
        for n in (1024, 2048, 4096):
            for k1, k2 in KERNELS:
                x = rng.standard_normal((n, n)).astype(dt)
                k = rng.standard_normal((k1, k2)).astype(dt)
                pads = tuple((kk - 1 - (kk - 1) // 2, (kk - 1) // 2) for kk in (k1, k2))
                lay = rows._layout((1, n, n), (1, k1, k2), pads, None)
                a2, b2 = x.reshape(lay.a_rows), k.reshape(lay.b_rows)
                outs = {p: np.empty(lay.out_shape, dt) for p in (1, 2)}
                tile = rows.widest_tile(k1 + 1, x.itemsize)
                fill = rows.fill_array(None, 0, np.dtype(dt))

                def call(p: int, a2=a2, b2=b2, lay=lay, tile=tile, fill=fill, outs=outs):  # type: ignore[no-untyped-def]
                    o2 = outs[p].reshape(lay.o_rows)
                    rest = (o2, tile, 1, rows.BAND, p, 0, False)  # strips, pairs, no bands
                    return lambda: kernel(a2, b2, lay.dims, *lay.maps, lay.p2, fill, *rest)

                times = alternating({"rows": call(1), "pairs": call(2)}, args.rounds, 3, twice=True)
                m = {name: statistics.median(t) * 1e3 for name, t in times.items()}
                same = np.array_equal(outs[1], outs[2])
                lines.append(
                    f"{np.dtype(dt).name} {n}² ⊛ {k1}×{k2}: {m['rows']:.3f} {m['pairs']:.3f} "
                    f"{m['rows'] / m['pairs']:.2f}x; bitwise {same}"
                )
                print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
