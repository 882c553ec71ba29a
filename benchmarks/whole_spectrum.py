"""Where the powers of two decline to block a multi-dim problem: few large blocks against one
transform of the whole problem, by the size of that transform's spectrum.

    python benchmarks/whole_spectrum.py [--threads 2 1] [--rounds 3]
        [--out benchmarks/results/whole_spectrum.txt]

``trueconv._methods.overlap_add.blocked_dims`` lets the powers of two decide whether a dim of
a multi-dim problem is blocked at all (their 1-D price of blocks against one transform of the
whole dim); every FFT length then picks the blocks. The 1-D price sees one dim: on 2048² ⊛
127² it keeps one transform of 2176² points, whose spectrum (19 MiB in float32, 37 in
float64) leaves the cache, where four blocks of 1152² ran 1.3-2.3x faster. Per problem, two arms
of ``trueconv.convolve(x, w, mode)`` (``'auto'``): *gated* (the powers of two decide, as
before 2026-12-06 02:30; ``WHOLE_SPECTRUM_BYTES`` infinite) and *ungated* (the shipped
``WHOLE_SPECTRUM_BYTES``, or ``--limit`` MiB; 0: every image may be blocked), each timed in
its steady state (``block_lengths.steady``: calls in a row, alternating arms by round),
with forced ``'fft'`` and, for 2-D ``'same'``, ``cv2.filter2D`` (flipped kernel) for
reference. Only problems the two arms plan differently are listed;
the spectrum column is what ``blocked_dims`` compares with ``WHOLE_SPECTRUM_BYTES``.
Set ``TRUECONV_NO_CALIBRATION=1`` (shipped constants); run on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import trueconv
from trueconv import _plan
from trueconv._methods import overlap_add as oa
from trueconv._problem import Problem
from trueconv.core import transforms as tr

sys.path.insert(0, str(Path(__file__).parent))
from block_lengths import steady
from timing import others, paired_ratio, set_threads

SHIPPED = oa.WHOLE_SPECTRUM_BYTES
F32, F64 = torch.float32, torch.float64
#: (dtype, signal shape, kernel shape, mode)
CELLS = [
    *[(F32, (n, n), (k, k), "same") for n, k in ((1280, 127), (1536, 63), (1536, 127))],
    *[(F32, (n, n), (k, k), "same") for n, k in ((1792, 255), (2048, 127), (2048, 255))],
    (F32, (3, 2048, 2048), (127, 127), "same"),
    (F32, (2048, 2048), (127, 127), "full"),
    (F32, (512, 8192), (63, 63), "same"),
    *[(F64, (1024, 1024), (k, k), m) for k in (31, 63, 127) for m in ("same", "full")],
    *[(F64, (n, n), (k, k), "same") for n, k in ((1280, 127), (1536, 63), (1536, 127))],
    *[(F64, (1536, 1536), (k, k), "same") for k in (45, 95)],
    *[(dt, (2560, 2560), (255, 255), "same") for dt in (F32, F64)],
    *[(F64, (2048, 2048), (k, k), "same") for k in (127, 255)],
    (F64, (3, 1024, 1024), (63, 63), "same"),
    (F64, (1536, 1536), (127, 127), "full"),
    (F64, (512, 8192), (63, 63), "same"),
    (F32, (160, 160, 160), (31, 31, 31), "same"),
    (F32, (192, 192, 192), (15, 15, 15), "same"),
    (F64, (128, 128, 128), (31, 31, 31), "same"),
]


def _spec(x: torch.Tensor, w: torch.Tensor, mode: str):
    from trueconv._spec import normalize

    return normalize("convolve", x, w, mode, None, "auto", "fill", 0)[2]


def use(limit: float) -> None:
    """Plan with ``WHOLE_SPECTRUM_BYTES = limit`` from now on (the planner's caches emptied)."""
    if limit != oa.WHOLE_SPECTRUM_BYTES:
        oa.WHOLE_SPECTRUM_BYTES = limit
        oa.block_length.cache_clear()
        _plan.forget()


def spectrum_mib(dtype: torch.dtype, sa: tuple[int, ...], sb: tuple[int, ...]) -> float:
    """The whole transform's spectrum as :func:`overlap_add.blocked_dims` counts it."""
    lens = [tr.next_fast_len(n + k - 1) for n, k in zip(sa[-len(sb) :], sb) if n > 1 and k > 1]
    item = 2 * torch.empty((), dtype=dtype).element_size()
    return math.prod(lens[:-1]) * (lens[-1] // 2 + 1) * item / 2**20


def run(lines: list[str], rounds: int, limit: float) -> None:
    try:
        import cv2
    except ImportError:
        cv2 = None
    lines.append(
        "dtype | problem | mode | spectrum MiB | gated ms [pick] | ungated ms [pick] | "
        "gated / ungated | fft ms | filter2D ms | others' CPU"
    )
    for dtype, sa, sb, mode in CELLS:
        x = torch.rand(sa, dtype=dtype)
        w = torch.randn(sb, dtype=dtype)
        picks, layouts = {}, {}
        for label, lim in (("gated", math.inf), ("ungated", limit)):
            use(lim)
            picks[label] = trueconv.choose_method(x, w, mode)
            plan = oa.plan(Problem.of(_spec(x, w, mode)), x.device)
            layouts[label] = None if plan is None else plan.layout.blocks
        if (
            picks["gated"] == picks["ungated"] != "overlap_add"
            or layouts["gated"] == layouts["ungated"]
        ):
            continue  # the same plan either way

        def call(limit, method="auto", x=x, w=w, mode=mode):
            def go():
                use(limit)
                trueconv.convolve(x, w, mode, method=method)

            return go

        calls = {"gated": call(math.inf), "ungated": call(limit), "fft": call(math.inf, "fft")}
        if cv2 is not None and mode == "same" and len(sb) == 2 and len(sa) == 2:
            xn, wn = x.numpy(), w.flip(0, 1).numpy().copy()
            calls["filter2D"] = lambda xn=xn, wn=wn: cv2.filter2D(
                xn, -1, wn, borderType=cv2.BORDER_CONSTANT
            )
        o0, w0 = others(), time.perf_counter()
        t = steady(calls, rounds, inner=3)
        busy = (others() - o0) / (time.perf_counter() - w0)
        med = {a: statistics.median(v) * 1e3 for a, v in t.items()}
        shape = " × ".join(map(str, sa))
        kern = " × ".join(map(str, sb))
        f2d = f"{med['filter2D']:.1f}" if "filter2D" in med else "—"
        lines.append(
            f"{str(dtype)[6:]} | {shape} ⊛ {kern} | {mode} | {spectrum_mib(dtype, sa, sb):.1f} | "
            f"{med['gated']:.1f} [{picks['gated']}] | {med['ungated']:.1f} "
            f"[{picks['ungated']}] | {paired_ratio(t['gated'], t['ungated']):.2f} | "
            f"{med['fft']:.1f} | {f2d} | {busy:.0%}"
        )
        print(lines[-1], flush=True)
    use(SHIPPED)
    lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/whole_spectrum.txt")
    ap.add_argument("--limit", type=float, help="WHOLE_SPECTRUM_BYTES of the ungated arm, MiB")
    args = ap.parse_args()
    limit = SHIPPED if args.limit is None else args.limit * 2**20
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {os.cpu_count()} "
        f"cores; ungated: WHOLE_SPECTRUM_BYTES = {limit / 2**20:g} MiB",
        "",
    ]
    for threads in args.threads:
        set_threads(threads)
        lines += [f"## {threads} thread(s)", ""]
        run(lines, args.rounds, limit)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
