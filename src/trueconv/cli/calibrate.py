"""``trueconv calibrate``: measure the cost model's CPU constants on this machine (a shell over
:func:`trueconv.calibration.calibrate`), or ``--show`` which constants ``'auto'`` uses."""

from __future__ import annotations

import argparse
import json

import torch

from trueconv import calibration
from trueconv.cli import bench_harness as harness
from trueconv.cli._errors import UsageError

#: Percent of one core other processes may take, on average, while the grid is timed before
#: the command warns that the constants may rank methods wrongly. The timings are the fastest
#: of back-to-back calls, one pass over the grid, nothing re-timed: a calibration of
#: 2026-12-05 on the 2-core VM with noisy timings priced 512² ⊛ 5×5 Gaussians on the dense
#: loop, which the fused one ran 1.33-1.55x faster (``benchmarks/RESULTS_AUTO.md``).
BUSY_PERCENT = 15.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="time a small grid here and store cost constants for method='auto'",
        description="Time every method on a small grid of problems on this machine (under a "
        "minute; --quick: a few seconds; a first run also waits for the CPU loops' compile, "
        "about a minute per dtype and loop, unless `trueconv compile` ran), fit the cost "
        "model's CPU constants and store them "
        "with their provenance in the user's cache folder. method='auto' then uses them on "
        "this machine (same CPU, torch thread count, torch version); elsewhere, the shipped "
        "ones. Calibrate once per thread count you use (torch.set_num_threads, --threads). "
        "It prints the share of a core other processes took while it timed, and warns above "
        f"{BUSY_PERCENT:g}%: calibrate on a quiet machine.",
    )
    p.add_argument("--quick", action="store_true", help="three problems per method")
    p.add_argument("--show", action="store_true", help="only say which constants are in use")
    p.add_argument(
        "--threads", type=int, metavar="N", help="torch threads to calibrate for (default: torch's)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    if not args.show:
        warning = harness.busy_warning()
        if warning:
            print(warning, flush=True)
        print(f"calibrating for {json.dumps(calibration.machine())}")
        start = harness._cpu_counters()
        record = calibration.calibrate(quick=args.quick, progress=lambda line: print(" ", line))
        others = harness.other_cpu_percent(start, harness._cpu_counters())
        for name, q in record["fit"].items():
            print(
                f"  fit {name:22s} median |log2(pred/measured)| "
                f"{q['median |log2(pred/measured)|']:.2f} over {q['points']} problems"
            )
        if others is not None:
            print(f"  other processes took {others:.0f}% of a core while the grid was timed")
            if others > BUSY_PERCENT:
                print(
                    f"warning: more than {BUSY_PERCENT:g}% of a core was taken by other "
                    "processes: the constants may rank methods wrongly; run `trueconv "
                    "calibrate` again on a quiet machine"
                )
    used = calibration.in_use()
    print(f"method='auto' prices the CPU with the {used['source']} constants: {used['path']}")
    return 0
