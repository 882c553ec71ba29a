"""The kernel's spectrum pruned along its first dim against the whole transform (issue 14).

    python benchmarks/kernel_spectrum.py [--rounds 12] [--threads 1 2] [--dft]

The whole variant transforms the kernel zero-padded to the transform lengths (the FFT method
before). The pruned one, :func:`trueconv._methods.fft.kernel_spectrum`, transforms a kernel at
most half as long as the transform along the first transformed dim at its own length there (the
other dims first), then along the first dim. Both variants run in one process, alternating call
by call (the whole transform by patching ``kernel_spectrum``), the method forced; ``'same'``,
zero fill, random operands. ``--dft``: on kernels short enough for the DFT-matrix route
(``fft._dft_ok``), that route against the pruned transform (the plan with ``dft_first`` off,
``fft.run`` called directly). Results: ``benchmarks/results/kernel_spectrum.txt``. Each line:
threads, dtype, problem, method, median ms of the whole and the pruned variant, the median of
the rounds' ratios of the two (> 1: pruned faster; no output is held between timed calls), the
largest difference of the results, and the share of a core other processes took during the cell
(psutil).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence

import psutil
import torch
from timing import ab_cell

import trueconv
from trueconv import _plan
from trueconv._methods import fft
from trueconv._spec import normalize

#: (image shape, kernel taps per dim, method); 1024² ⊛ 31² and 96³ ⊛ 5³ are controls: their
#: kernels are short enough for the DFT-matrix route (``fft._dft_ok``), which both variants take
CELLS = [
    ((1024, 1024), 31, "fft"),
    ((1024, 1024), 63, "fft"),
    ((1024, 1024), 127, "fft"),
    ((2048, 2048), 63, "fft"),
    ((96, 96, 96), 17, "fft"),
    ((96, 96, 96), 5, "fft"),
]

#: the kernels the DFT-matrix route takes (``--dft``)
DFT_CELLS = [((1024, 1024), 15), ((1024, 1024), 31), ((2048, 2048), 15), ((2048, 2048), 31)]

PRUNED = fft.kernel_spectrum
WARM = 3  # untimed rounds first


def whole(b: torch.Tensor, lens: Sequence[int], tdims: Sequence[int], real: bool) -> torch.Tensor:
    fwd = torch.fft.rfftn if real else torch.fft.fftn
    return fwd(b, s=lens, dim=tdims)


def spectrum_variants(
    x: torch.Tensor, kern: torch.Tensor, method: str
) -> dict[str, Callable[[], torch.Tensor]]:
    """The whole kernel transform against the pruned one, through ``convolve``."""

    def with_spectrum(fn: Callable[..., torch.Tensor]) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            fft.kernel_spectrum = fn
            try:
                return trueconv.convolve(x, kern, "same", method=method)
            finally:
                fft.kernel_spectrum = PRUNED

        return call

    return {"whole": with_spectrum(whole), "pruned": with_spectrum(PRUNED)}


def dft_variants(x: torch.Tensor, kern: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The plan's DFT-matrix route against the pruned transform of the same kernel."""
    spec = normalize("convolve", x, kern, "same", None, "fft", "fill", 0)[2]
    plan = _plan.plan(spec, x.device)
    assert plan.dft_first, "a cell of --dft must take the DFT-matrix route"
    pruned = dataclasses.replace(plan, dft_first=False)
    return {"dft": lambda: fft.run(plan, x, kern), "pruned": lambda: fft.run(pruned, x, kern)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--cells", type=int, nargs="+", help="indices into CELLS (default: all)")
    ap.add_argument("--dft", action="store_true", help="the DFT-matrix route's kernels")
    args = ap.parse_args()
    if args.dft:
        cells = [(shape, k, "fft") for shape, k in DFT_CELLS]
    else:
        cells = [CELLS[i] for i in args.cells] if args.cells else CELLS
    print(f"# torch {torch.__version__}, load average {psutil.getloadavg()[0]:.2f}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            for shape, k, method in cells:
                x = torch.randn(shape, dtype=dtype)
                kern = torch.randn((k,) * len(shape), dtype=dtype)
                calls = dft_variants(x, kern) if args.dft else spectrum_variants(x, kern, method)
                a, b = calls
                diff = (calls[a]() - calls[b]()).abs().max().item()
                ma, mb, paired, busy = ab_cell(dict(calls), a, b, args.rounds, WARM)
                dims = "×".join(map(str, shape))
                print(
                    f"{threads} | {str(dtype)[6:]} | {dims} ⊛ {k} | {method} | {a} {ma:.2f} | "
                    f"{b} {mb:.2f} | {paired:.2f} | {diff:.1e} | {busy:.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
