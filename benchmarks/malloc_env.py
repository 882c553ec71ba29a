"""Page faults of large temporaries: the FFT and overlap-add under allocator settings.

glibc maps every allocation above its mmap threshold afresh (at most 32 MB by default: smaller
blocks are reused from the heap once one of their size was freed), and the first touch of each
fresh page is a fault. torch allocates the FFT's spectra itself, so a 2048² float64 FFT
convolution pays for several ~35 MB arrays per call. The settings can only be changed before
the process starts, so this script times one setting per process; run it alternately::

    for i in 1 2 3; do for th in 1 2; do
      TH=$th python benchmarks/malloc_env.py
      TH=$th MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python benchmarks/malloc_env.py
      TH=$th THP_MEM_ALLOC_ENABLE=1 python benchmarks/malloc_env.py
    done; done

Each line: the setting, then the minimum of 7 calls (ms) per cell, ``'same'``, the method
forced. Results: ``benchmarks/results/malloc_env.txt``.
"""

from __future__ import annotations

import os

import torch
from timing import best

import trueconv

CELLS = [
    (2048, 31, torch.float64, "fft"),
    (2048, 63, torch.float64, "overlap_add"),
    (1024, 15, torch.float64, "fft"),
    (2048, 31, torch.float32, "fft"),
    (2048, 63, torch.float32, "overlap_add"),
    (1024, 31, torch.float32, "fft"),
]


def main() -> None:
    threads = int(os.environ.get("TH", "2"))
    torch.set_num_threads(threads)
    setting = "default"
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        setting = "MALLOC_MMAP_THRESHOLD_=" + os.environ["MALLOC_MMAP_THRESHOLD_"]
    elif os.environ.get("THP_MEM_ALLOC_ENABLE"):
        setting = "THP_MEM_ALLOC_ENABLE=1"
    out = []
    for n, k, dtype, method in CELLS:
        x = torch.randn(n, n, dtype=dtype)
        kern = torch.randn(k, k, dtype=dtype)
        ms = best(lambda x=x, kern=kern, m=method: trueconv.convolve(x, kern, "same", method=m), 7)
        out.append(f"{n}²⊛{k}² {str(dtype)[6:]} {method} {ms:.1f}")
    print(f"{threads}t {setting}: " + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
