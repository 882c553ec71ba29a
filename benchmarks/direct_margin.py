"""What a relative direct margin moves: the problems of a sweep whose pick changes when a
transform must save ``--fraction`` of the direct method's predicted time (at most the CPU's
0.5 ms) instead of 0.5 ms, each timed direct against its new pick, interleaved.

    python benchmarks/direct_margin.py [--threads 2] [--fraction 0.1] [--rounds 15]

Prices come from the constants in use (set ``TRUECONV_NO_CALIBRATION=1`` for the shipped
ones). ``core.cost.direct_margin`` has the results (``results/direct_margin.txt``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from timing import alternating, others, paired_ratio

import trueconv
from trueconv import _plan, _spec
from trueconv.core import cost


def sweep() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """1-D signals, rows, square images and cubes at kernel sizes around the crossovers."""
    out = []
    for n in (2**10, 2**12, 2**14, 2**16, 2**18, 2**20):
        out += [((n,), (k,)) for k in (8, 16, 32, 64, 128, 256, 512, 1024, 4096) if k < n]
    out += [((r, 16384), (k,)) for r in (4, 16, 64) for k in (33, 65, 129, 257)]
    out += [
        ((n, n), (k, k))
        for n in (64, 128, 256, 512, 1024, 2048)
        for k in (3, 5, 7, 9, 11, 15, 21, 31)
    ]
    out += [((n, n, n), (k, k, k)) for n in (32, 48, 64, 96) for k in (3, 5, 7, 9)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    cap = cost.DIRECT_MARGIN_S["cpu"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), fraction {args.fraction}")
    for (sa, sb), mode, dtype in itertools.product(
        sweep(), ("full", "same"), (torch.float32, torch.float64)
    ):
        x, k = torch.randn(sa, dtype=dtype), torch.randn(sb, dtype=dtype)
        dims = None if len(sb) == len(sa) else -1
        _, _, spec = _spec.normalize("convolve", x, k, mode, dims, "auto", "fill", 0)
        c = _plan.costs(spec, cpu)
        best = min(c, key=c.__getitem__)
        old = "direct" if c["direct"] <= c[best] + cap else best
        new = "direct" if c["direct"] <= c[best] + min(cap, args.fraction * c["direct"]) else best
        if new == old:
            continue
        fns = {
            m: (
                lambda m=m, x=x, k=k, mode=mode, dims=dims: trueconv.convolve(
                    x, k, mode=mode, method=m, dims=dims
                )
            )
            for m in ("direct", new)
        }
        busy0, wall0 = others(), time.perf_counter()
        t = alternating(fns, args.rounds, 2)
        busy = 100 * (others() - busy0) / (time.perf_counter() - wall0)
        print(
            f"{sa}*{sb} {mode} {str(dtype)[6:]}: priced direct {c['direct'] * 1e3:.3f} "
            f"{new} {c[new] * 1e3:.3f} ms; measured direct "
            f"{statistics.median(t['direct']) * 1e3:.3f} {new} "
            f"{statistics.median(t[new]) * 1e3:.3f}: {new} / direct "
            f"{paired_ratio(t[new], t['direct']):.2f} (others {busy:.0f}%)",
            flush=True,
        )


if __name__ == "__main__":
    main()
