"""Two output rows per pass, each input row's loads shared by both: a bare-loop measurement,
one pass generated per k, made before the dense direct loop took row pairs (2026-12-05; the
loop's own generic pair routine against its rows one by one: ``paired_passes.py``).

    python benchmarks/paired_rows.py [--out results/paired_rows.txt]

The dense loop's passes are bound by their loads (``trueconv._methods.rows``: a perf profile
puts 67% of a 1024² ⊛ 5×5 call in them, one unaligned 64-byte load per 16-lane tap, which spans
two cache lines). Two consecutive output rows of a k×k kernel read k + 1 input rows between
them, k - 1 of them both: a pass that loads each input row's k shifted vectors once and feeds
them to both rows' sums makes (k + 1)·k loads for 2·k² taps instead of 2·k², and keeps two
independent chains of adds. Each output's terms are added in the loop's order (kernel rows,
then columns, ascending), so the sums are bitwise the loop's.

Contenders, float32, one thread, the data in L1 (k + 1 input rows of ``W + k - 1`` samples):

- ``passes``: the loop's own tap passes (``rows.add_taps``: k² taps in passes of at most
  ``rows.GROUP``) for the two rows, one after the other. A loop of its own, float32 and two
  rows with the repetitions inside: ``pass_rate.py``'s row-by-row loop, generic in dtype, timed
  here 1.04-1.28x slower (2026-12-05), which would have flattered ``paired``;
- ``paired``: one pass over both rows, generated per k (numba), the input rows and the two
  output rows passed as separate arrays;
- ``paired, one array``: the same pass reading every input row from one flat array at offsets
  and writing both rows into one: LLVM then cannot prove the stores miss the loads and does
  not vectorise it (numba marks separate array arguments as not aliasing; offsets into one
  array it cannot);
- ``one row, one pass``: all k² taps of one output row in one pass (separate arrays): one chain
  of k² dependent adds per vector.

Printed: ns per 16-lane vector tap (``2·k²·W / 16`` of them a call) and ``bitwise`` (each
variant's output equal to ``passes``' to the last bit).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np

from trueconv._methods import rows

HERE = Path(__file__).resolve().parent


def _weights(k: int) -> list[str]:
    return [f"    w{a}_{b} = w[{a}, {b}]" for a in range(k) for b in range(k)]


def generated(k: int) -> dict[str, object]:
    """The variants' njit functions for a k×k kernel (source generated, then compiled)."""
    rows._kernel()
    src = ["import numpy as np", "import numba", ""]
    # paired: input rows r0..rk (r0 the top), outputs d0 (reads r0..r{k-1}), d1 (r1..rk)
    args = ", ".join(f"r{i}" for i in range(k + 1))
    src += ["@numba.njit", f"def paired(d0, d1, {args}, w, W):", *_weights(k)]
    src += ["    for j in range(W):", "        s0 = np.float32(0)", "        s1 = np.float32(0)"]
    for r in range(k, -1, -1):  # bottom row first: each output's kernel rows ascending
        loads = [f"r{r}[j + {k - 1 - m2}]" for m2 in range(k)]
        for m2, ld in enumerate(loads):
            src.append(f"        a{m2} = {ld}")
        if r >= 1:  # d1 reads r1..rk: kernel row k - r
            src += [f"        s1 += w{k - r}_{m2} * a{m2}" for m2 in range(k)]
        if r <= k - 1:  # d0 reads r0..r{k-1}: kernel row k - 1 - r
            src += [f"        s0 += w{k - 1 - r}_{m2} * a{m2}" for m2 in range(k)]
    src += ["        d0[j] = s0", "        d1[j] = s1", "    return 0", ""]
    # paired on one flat array (offsets), outputs into one array
    src += ["@numba.njit", "def paired_flat(xf, n, df, W, w):", *_weights(k)]
    src += [f"    o{i} = np.uint64({i} * n)" for i in range(k + 1)]
    src += ["    top = np.uint64(0)", "    bot = np.uint64(W)"]
    src += ["    for jj in range(W):", "        j = np.uint64(jj)"]
    src += ["        s0 = np.float32(0)", "        s1 = np.float32(0)"]
    for r in range(k, -1, -1):
        for m2 in range(k):
            src.append(f"        a{m2} = xf[o{r} + j + {k - 1 - m2}]")
        if r >= 1:
            src += [f"        s1 += w{k - r}_{m2} * a{m2}" for m2 in range(k)]
        if r <= k - 1:
            src += [f"        s0 += w{k - 1 - r}_{m2} * a{m2}" for m2 in range(k)]
    src += ["        df[top + j] = s0", "        df[bot + j] = s1", "    return 0", ""]
    # one output row, all taps in one pass
    args1 = ", ".join(f"r{i}" for i in range(k))
    src += ["@numba.njit", f"def single(d0, {args1}, w, W):", *_weights(k)]
    src += ["    for j in range(W):", "        s = np.float32(0)"]
    for m1 in range(k):
        r = k - 1 - m1
        src += [f"        s += w{m1}_{m2} * r{r}[j + {k - 1 - m2}]" for m2 in range(k)]
    src += ["        d0[j] = s", "    return 0", ""]
    # drivers: the views made inside compiled code, the passes called (not inlined) per rep
    views = ", ".join(f"x[{i}]" for i in range(k + 1))
    src += ["@numba.njit", "def run_paired(x, w, d, W, rep):", "    for _ in range(rep):"]
    src += [f"        paired(d[0], d[1], {views}, w, W)", "    return 0", ""]
    top = ", ".join(f"x[{i}]" for i in range(k))
    bottom = ", ".join(f"x[{i + 1}]" for i in range(k))
    src += ["@numba.njit", "def run_single(x, w, d, W, rep):", "    for _ in range(rep):"]
    src += [f"        single(d[0], {top}, w, W)", f"        single(d[1], {bottom}, w, W)"]
    src += ["    return 0"]
    scope: dict[str, object] = {}
    exec("\n".join(src), scope)
    return scope


def variants(k: int) -> dict[str, object]:
    g = generated(k)
    paired_flat = g["paired_flat"]
    add_taps = rows.add_taps
    group = rows.GROUP

    @numba.njit  # type: ignore[untyped-decorator]
    def passes(x, w, d, W, rep):  # type: ignore[no-untyped-def]
        n = x.shape[1]
        xf = x.reshape(x.size)
        df = d.reshape(d.size)
        g = k * k
        offs = np.empty(g, np.uint64)
        ws = np.empty(g, np.float32)
        zero = np.float32(0)
        for _ in range(rep):
            for i in range(2):
                t = 0
                for m1 in range(k):
                    for m2 in range(k):
                        offs[t] = np.uint64((i + k - 1 - m1) * n + k - 1 - m2)
                        ws[t] = w[m1, m2]
                        t += 1
                add_taps(df, np.uint64(i * W), xf, offs, ws, 0, g, group, np.uint64(W), True, zero)
        return 0

    @numba.njit  # type: ignore[untyped-decorator]
    def run_flat(x, w, d, W, rep):  # type: ignore[no-untyped-def]
        n = x.shape[1]
        for _ in range(rep):
            paired_flat(x.reshape(x.size), n, d.reshape(d.size), W, w)
        return 0

    return {
        "passes": passes,
        "paired": g["run_paired"],
        "paired, one array": run_flat,
        "one row, one pass": g["run_single"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "paired_rows.txt")
    args = ap.parse_args()
    numba.set_num_threads(1)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, numba {numba.__version__}; float32, one "
        "thread, data in L1; ns per 16-lane tap (best of 3 runs of a timed batch); bitwise: "
        "equal to 'passes' to the last bit"
    ]
    rng = np.random.default_rng(0)
    for k in (3, 5, 7):
        fns = variants(k)
        for W in (512, 1024):
            x = rng.standard_normal((k + 1, W + k - 1)).astype(np.float32)
            w = rng.standard_normal((k, k)).astype(np.float32)
            ref = np.zeros((2, W), np.float32)
            fns["passes"](x, w, ref, W, 1)
            cells = []
            for name, fn in fns.items():
                d = np.zeros((2, W), np.float32)
                fn(x, w, d, W, 1)  # compiles
                same = np.array_equal(d, ref)
                rep = 20000
                best = float("inf")
                for _ in range(3):
                    t0 = time.perf_counter()
                    fn(x, w, d, W, rep)
                    best = min(best, time.perf_counter() - t0)
                ns = best / (rep * 2 * k * k * W / 16) * 1e9
                cells.append(f"{name} {ns:.3f}{'' if same else ' (NOT bitwise)'}")
            lines.append(f"{k}x{k}, W={W}: " + ", ".join(cells))
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
