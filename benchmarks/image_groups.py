"""Overlap-add's boxes over groups of images, measured (``OverlapAddPlan.images``).

    python benchmarks/image_groups.py [--threads 2 1] [--rounds 5]
        [--out benchmarks/results/image_groups.txt]

A box of blocks (``trueconv._methods.overlap_add._boxes``) holds every image of a batch (and
of a channel dim, where the kernel has length one): 3 × 2048² float64 ⊛ 63² made boxes of one
576² block of each of three images, 8 MiB where the box budget is 2 MiB. Since 2026-12-06 the
boxes run over groups of images when one block of every image would pass the budget
(``_images_per_box``). Per cell, ``'auto'`` (``'same'`` and ``'full'``) with the groups and
without them (``_images_per_box`` returning 0, as before), in one process, each arm timed in
its steady state (``block_lengths.steady``: calls in a row, arms alternating by round); the
speed-up is the median of the rounds' ratios. Set ``TRUECONV_NO_CALIBRATION=1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import trueconv
from trueconv import _plan
from trueconv._methods import overlap_add as oa

sys.path.insert(0, str(Path(__file__).parent))
from block_lengths import steady
from timing import others, paired_ratio

GROUPED = oa._images_per_box
F32, F64 = torch.float32, torch.float64
#: (dtype, signal, kernel): batches of images, and a channel dim the kernel does not span
CELLS = [
    (F64, (3, 2048, 2048), (63, 63)),
    (F64, (3, 2048, 2048), (1, 63, 63)),
    (F64, (3, 2048, 2048), (31, 31)),
    (F32, (3, 2048, 2048), (63, 63)),
    (F32, (3, 2048, 2048), (31, 31)),
    (F32, (3, 4096, 4096), (63, 63)),
    (F64, (8, 1024, 1024), (63, 63)),
    (F32, (16, 512, 512), (15, 15)),
]


def use(grouped: bool) -> None:
    """Plan with image groups or without them from now on (the planner's caches emptied)."""
    rule = GROUPED if grouped else (lambda *args: 0)
    if oa._images_per_box is not rule:
        oa._images_per_box = rule
        _plan.forget()


def run(lines: list[str], rounds: int) -> None:
    lines.append(
        "dtype | signal ⊛ kernel | mode | pick | images a box | before ms | after ms | "
        "speed-up | others' CPU"
    )
    for dtype, sa, sb in CELLS:
        x = torch.rand(sa, dtype=dtype)
        w = torch.randn(sb, dtype=dtype)
        for mode in ("same", "full"):
            use(True)
            pick = trueconv.choose_method(x, w, mode)
            spec = trueconv._spec.normalize("convolve", x, w, mode, None, "auto", "fill", 0)[2]
            plan = _plan.plans(spec, x.device).get("overlap_add")
            images = getattr(plan, "images", 0)
            if pick != "overlap_add" or not images:
                lines.append(
                    f"{str(dtype)[6:]} | {sa} ⊛ {sb} | {mode} | {pick} | {images} | — | — | "
                    "— (not grouped) | —"
                )
                print(lines[-1], flush=True)
                continue

            def call(grouped: bool, x=x, w=w, mode=mode):
                def go():
                    use(grouped)
                    trueconv.convolve(x, w, mode)

                return go

            o0, w0 = others(), time.perf_counter()
            t = steady({"before": call(False), "after": call(True)}, rounds, inner=3)
            busy = (others() - o0) / (time.perf_counter() - w0)
            med = {a: statistics.median(v) * 1e3 for a, v in t.items()}
            lines.append(
                f"{str(dtype)[6:]} | {sa} ⊛ {sb} | {mode} | {pick} | {images} | "
                f"{med['before']:.1f} | {med['after']:.1f} | "
                f"{paired_ratio(t['before'], t['after']):.2f} | {busy:.0%}"
            )
            print(lines[-1], flush=True)
    use(True)
    lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/image_groups.txt")
    args = ap.parse_args()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {os.cpu_count()} "
        "cores; 'auto', before = every image in each box, after = groups of images",
        "",
    ]
    for threads in args.threads:
        torch.set_num_threads(threads)
        lines += [f"## {threads} thread(s)", ""]
        run(lines, args.rounds)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
