"""Half-precision FFT convolution on a GPU: cuFFT's half transforms against float32 ones.

    python benchmarks/cuda_half_fft.py            # needs a CUDA device

cuFFT transforms float16 data only at power-of-two lengths. trueconv computes half inputs in
float32 at 7-smooth lengths instead; this script records what that choice costs and buys:
for 1-D and 2-D 'full' convolutions it times (a) trueconv's FFT method on float16 input,
(b) a float16 rfft product at the next power of two (what a half-precision FFT path must
use), (c) the same in float32 at that power of two, and reports each one's error against a
float64 scipy reference, relative to max|y|. It also records whether a float16 transform at
a non-power-of-two length is refused.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal
import torch
from torch.utils.benchmark import Timer

import trueconv

CASES = [((2**20,), (4096,)), ((2**20 + 4000,), (4097,)), ((1024, 1024), (31, 31))]


def _ms(fn) -> float:
    fn()
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=0.3).median * 1e3


def _pow2_fft(x: torch.Tensor, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    nd = k.ndim
    dims = list(range(-nd, 0))
    full = [n + m - 1 for n, m in zip(x.shape[-nd:], k.shape)]
    lens = [1 << (m - 1).bit_length() for m in full]
    a, b = x.to(dtype), k.to(dtype)
    y = torch.fft.irfftn(
        torch.fft.rfftn(a, s=lens, dim=dims) * torch.fft.rfftn(b, s=lens, dim=dims),
        s=lens,
        dim=dims,
    )
    for d, n in zip(dims, full):
        y = y.narrow(d, 0, n)
    return y


def _err(y: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(y.double().cpu().numpy() - ref).max() / np.abs(ref).max())


def main() -> None:
    assert torch.cuda.is_available(), "needs a CUDA device"
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
    try:
        torch.fft.rfft(torch.ones(1000, device="cuda", dtype=torch.float16))
        print("float16 rfft at length 1000: accepted")
    except RuntimeError as exc:
        print(f"float16 rfft at length 1000: refused ({str(exc).splitlines()[0][:90]})")
    print()
    print("| case | trueconv fft (f16 in, f32 compute) | f16 rfft, pow2 | f32 rfft, pow2 |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for xs, ks in CASES:
        x = torch.randn(xs, generator=g).to("cuda", torch.float16)
        k = torch.randn(ks, generator=g).to("cuda", torch.float16)
        ref = scipy.signal.fftconvolve(x.double().cpu().numpy(), k.double().cpu().numpy())
        cells = []
        for fn in (
            functools.partial(trueconv.convolve, x, k, "full", method="fft"),
            functools.partial(_pow2_fft, x, k, torch.float16),
            functools.partial(_pow2_fft, x, k, torch.float32),
        ):
            y = fn()
            cells.append(f"{_ms(fn):.3f} ms, err {_err(y, ref):.1e}")
        print(f"| {xs} * {ks} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
