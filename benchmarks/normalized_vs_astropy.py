"""Normalized (NaN-interpolating) convolution: trueconv vs astropy.convolution, time and memory.

``trueconv.convolve(x, k, 'same', nan_policy='interpolate', normalize_kernel=True)`` against
``astropy.convolution.convolve_fft(x, k, nan_treatment='interpolate')`` (and astropy's direct
``convolve`` where it finishes in reasonable time), same data, same answers (checked here).

Time: contenders interleaved in one process, median of ``--rounds`` runs each, torch at 2 threads
and at 1. Peak memory: each contender once in a fresh subprocess; the growth of the process's
peak resident set (``ru_maxrss``) over its value just before the call, data already made.

Run: ``python benchmarks/normalized_vs_astropy.py [--rounds 7]``; writes
``benchmarks/results_normalized.json`` and prints the Markdown table of RESULTS_NORMALIZED.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = {
    # name: (input shape, kernel shape, NaN fraction)
    "2-D 2048² ⊛ Gaussian 15²": ((2048, 2048), (15, 15), 0.05),
    "2-D 2048² ⊛ Gaussian 63²": ((2048, 2048), (63, 63), 0.05),
    "1-D 2²⁰ ⊛ Gaussian 501 (gaps)": ((2**20,), (501,), 0.05),
}


def _data(case: str) -> tuple[np.ndarray, np.ndarray]:
    shape, kshape, frac = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    if len(shape) == 1:  # gaps: runs of missing samples
        starts = rng.integers(0, shape[0] - 200, int(frac * shape[0] / 100))
        for s in starts:
            x[s : s + 100] = np.nan
    else:
        x[rng.random(shape) < frac] = np.nan
    grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in kshape], indexing="ij")
    sigma = kshape[0] / 6
    k = np.exp(-sum(g**2 for g in grids) / (2 * sigma**2))
    return x, k / k.sum()


def _contenders(case: str):
    import torch
    from astropy.convolution import convolve, convolve_fft

    import trueconv

    x, k = _data(case)
    xt, kt = torch.from_numpy(x), torch.from_numpy(k)
    x32, k32 = xt.float(), kt.float()
    out = {
        "trueconv float64": lambda: trueconv.convolve(
            xt, kt, "same", nan_policy="interpolate", normalize_kernel=True
        ),
        "trueconv float32": lambda: trueconv.convolve(
            x32, k32, "same", nan_policy="interpolate", normalize_kernel=True
        ),
        "astropy convolve_fft": lambda: convolve_fft(
            x, k, boundary="fill", nan_treatment="interpolate", allow_huge=True
        ),
    }
    if k.size <= 15 * 15 or k.ndim == 1:
        out["astropy convolve (direct)"] = lambda: convolve(
            x, k, boundary="fill", nan_treatment="interpolate"
        )
    return out


def _peak(case: str, name: str) -> float:
    """MiB the call adds to the peak resident set: a fresh process that makes the data and
    runs the call, minus one that makes the data only (``os.wait4``'s ``ru_maxrss``)."""
    here = str(Path(__file__).parent)

    def maxrss(call: bool) -> int:
        code = (
            f"import sys; sys.path.insert(0, {here!r}); import normalized_vs_astropy as b;"
            f"f = b._contenders({case!r})[{name!r}];" + ("f()" if call else "")
        )
        env = dict(os.environ, OMP_NUM_THREADS="2")
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        assert status == 0, (name, status)
        return usage.ru_maxrss  # KiB on Linux

    return (maxrss(True) - maxrss(False)) / 1024


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"loadavg {one:.2f} / {five:.2f}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict = {"load_before": _load(), "cases": {}}
    for case in CASES:
        row: dict = {}
        for threads in (2, 1):
            torch.set_num_threads(threads)
            fs = _contenders(case)
            ref = fs["astropy convolve_fft"]()
            for name, f in fs.items():  # same answers (float32 looser)
                got = np.asarray(f())
                fin = ~np.isnan(ref)
                assert np.array_equal(np.isnan(got), np.isnan(ref)), name
                err = np.abs(got[fin] - ref[fin]).max() / np.abs(ref[fin]).max()
                assert err < (1e-4 if "float32" in name else 1e-8), (name, err)
            times: dict[str, list[float]] = {n: [] for n in fs}
            for _ in range(args.rounds):
                for name, f in fs.items():
                    if threads == 1 and name.startswith("astropy") and times[name]:
                        continue  # astropy does not use torch's threads: timed once per round
                    start = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - start)
            row[f"{threads} threads"] = {n: statistics.median(t) * 1e3 for n, t in times.items()}
        row["peak MiB"] = {n: _peak(case, n) for n in _contenders(case)}
        results["cases"][case] = row
        print(case, json.dumps(row, indent=1), _load(), flush=True)
    results["load_after"] = _load()
    results["torch"] = torch.__version__
    import astropy

    results["astropy"] = astropy.__version__
    out = Path(__file__).with_name("results_normalized.json")
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
