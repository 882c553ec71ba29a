"""``trueconv bench``: the side-by-side benchmark grid (harness in
:mod:`trueconv.cli.bench_harness`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from trueconv.cli import bench_harness as harness
from trueconv.cli._errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    pb = sub.add_parser(
        "bench",
        help="time trueconv against scipy, numpy and plain torch side by side",
        description="Time every contender on a grid of cases, check each result against a "
        "float64 reference, and write RESULTS.md, results.json and results.png.",
    )
    pb.add_argument("--quick", action="store_true", help="a small grid that runs in < 1 min")
    pb.add_argument("--out", default="trueconv-bench", help="output folder (default: %(default)s)")
    pb.add_argument("--stem", default="RESULTS", help="file name stem (default: %(default)s)")
    pb.add_argument("--cases", nargs="*", help="only cases whose name contains one of these")
    pb.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "float64"],
        choices=["float16", "bfloat16", "float32", "float64"],
    )
    pb.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    pb.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    pb.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    pb.add_argument(
        "--budget", type=float, default=5.0, help="skip direct contenders estimated slower"
    )
    pb.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved timing rounds; each contender's time is its best round "
        "(default: %(default)s; 3 with --quick)",
    )
    pb.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    pb.add_argument("--quiet", action="store_true", help="no progress lines")
    pb.set_defaults(run=bench)


def bench(args: argparse.Namespace) -> int:
    """Run the side-by-side benchmark grid and write the results files."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = harness.QUICK_GRID if args.quick else harness.FULL_GRID
    cases = [c for c in grid if not args.cases or any(s in c.name for s in args.cases)]
    if not cases:
        names = ", ".join(repr(c.name) for c in grid)
        print(f"trueconv bench: no case matches --cases {args.cases}; cases: {names}")
        return 2
    if args.rounds < 1:
        raise UsageError(f"--rounds must be at least 1; got {args.rounds}")
    dtypes = [getattr(torch, d) for d in args.dtypes]

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    records = harness.run(
        cases,
        dtypes,
        device=args.device,
        min_run_time=0.05 if args.quick else args.min_run_time,
        budget_s=1.0 if args.quick else args.budget,
        memory=not args.no_memory,
        progress=progress,
        rounds=3 if args.quick else args.rounds,
    )
    paths = harness.write(records, Path(args.out), harness.machine_info(args.device), args.stem)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
