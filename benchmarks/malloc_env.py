"""Page faults of large temporaries: the FFT and overlap-add under allocator settings.

glibc maps every allocation above its mmap threshold afresh (at most 32 MB by default), and
the first touch of each fresh page is a fault. Smaller blocks come from the heap, but glibc
returns the heap's free top to the OS whenever it exceeds the trim threshold (twice the mmap
threshold as adjusted: 16 MB once an 8 MB block was freed), so a call that frees a few
spectra at its end faults them in again in the next call, often every other call. torch
allocates the FFT's spectra itself, so a 1024² float64 FFT convolution pays for several 10 MB
arrays per call, a 2048² one for ~35 MB arrays.

Settings, one per process (the environment ones are read when the process starts), run
alternately::

    for i in 1 2; do for th in 1 2; do
      TH=$th python benchmarks/malloc_env.py
      TH=$th MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python benchmarks/malloc_env.py
      TH=$th MALLOPT=1 python benchmarks/malloc_env.py
      TH=$th THP_MEM_ALLOC_ENABLE=1 python benchmarks/malloc_env.py
    done; done

``MALLOPT=1``: the same two thresholds set at run time, after torch is imported, by glibc's
``mallopt`` through ``ctypes`` (what a user can do inside a running notebook).

Each line: the setting, then per cell (``'same'``, the method forced) the median and the
minimum of 9 calls in ms and the page faults per call. Minima alone hide the faults: the
fastest call is one that found its pages. Results: ``benchmarks/results/malloc_env.txt``.
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import time

import torch

import trueconv

CELLS = [
    (1024, 31, torch.float64, "fft"),
    (1024, 63, torch.float64, "fft"),
    (2048, 31, torch.float64, "fft"),
    (2048, 63, torch.float64, "overlap_add"),
    (1024, 31, torch.float32, "fft"),
    (2048, 31, torch.float32, "fft"),
    (2048, 63, torch.float32, "overlap_add"),
]

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Raise glibc's mmap and trim thresholds at run time (as the environment settings)."""
    libc = ctypes.CDLL("libc.so.6")
    # mallopt takes a C int: 2**31 - 1 is the largest trim threshold it can be given
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    if not ok:
        raise SystemExit("mallopt refused the thresholds")


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    threads = int(os.environ.get("TH", "2"))
    torch.set_num_threads(threads)
    setting = "default"
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        setting = "MALLOC_MMAP_THRESHOLD_=" + os.environ["MALLOC_MMAP_THRESHOLD_"]
    elif os.environ.get("MALLOPT"):
        setting = "mallopt at run time"
        keep_freed_memory()
    elif os.environ.get("THP_MEM_ALLOC_ENABLE"):
        setting = "THP_MEM_ALLOC_ENABLE=1"
    out = []
    for n, k, dtype, method in CELLS:
        x = torch.randn(n, n, dtype=dtype)
        kern = torch.randn(k, k, dtype=dtype)
        trueconv.convolve(x, kern, "same", method=method)
        times, f0 = [], faults()
        for _ in range(9):
            t0 = time.perf_counter()
            trueconv.convolve(x, kern, "same", method=method)
            times.append(time.perf_counter() - t0)
        per_call = (faults() - f0) / len(times)
        med, low = statistics.median(times) * 1e3, min(times) * 1e3
        out.append(f"{n}²⊛{k}² {str(dtype)[6:]} {method} {med:.1f} ({low:.1f}) {per_call:.0f}f")
    print(f"{threads}t {setting}: " + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
