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
        help="time trueconv against scipy, numpy, OpenCV and plain torch side by side",
        description="Time every contender on a grid of cases, check each result against a "
        "float64 reference, and write RESULTS.md, results.json and results.png. Only torch "
        "and numpy are needed: the contenders of each optional library that is not installed "
        "(scipy, OpenCV, kornia, JAX, astropy; CuPy on CUDA) are skipped, one line says so.",
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
    pb.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: torch's). Note: on a shared or busy machine, --threads 1 "
        "gives steadier timings; the other libraries keep their own thread counts",
    )
    pb.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds per timing (default: 0.3; 0.05 with --quick)",
    )
    pb.add_argument(
        "--budget",
        type=float,
        default=None,
        help="skip direct contenders estimated slower (seconds; default: 5; 1 with --quick)",
    )
    pb.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved timing rounds; each contender's time is its best round "
        "(default: 5; 3 with --quick)",
    )
    pb.add_argument(
        "--busy",
        type=float,
        default=50.0,
        metavar="PERCENT",
        help="re-time a cell (up to twice) when other processes took more than PERCENT of one "
        "core during its timing, and mark it if it stays busy (default: %(default)g)",
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
    default = (0.05, 1.0, 3) if args.quick else (0.3, 5.0, 5)  # min run time, budget, rounds
    rounds = args.rounds if args.rounds is not None else default[2]
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1; got {rounds}")
    if args.busy < 0:
        raise UsageError(f"--busy must be a percentage >= 0; got {args.busy:g}")
    dtypes = [getattr(torch, d) for d in args.dtypes]
    warning = harness.busy_warning()
    if warning:
        print(warning, flush=True)
    for line in harness.missing_optional(args.device):
        print(line, flush=True)
    if harness.load_source() is None:
        print(
            "other processes' CPU use cannot be measured here (no psutil, no /proc/stat): "
            'busy cells are not detected (pip install "trueconv[bench]")',
            flush=True,
        )

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    records = harness.run(
        cases,
        dtypes,
        device=args.device,
        min_run_time=args.min_run_time if args.min_run_time is not None else default[0],
        budget_s=args.budget if args.budget is not None else default[1],
        memory=not args.no_memory,
        progress=progress,
        rounds=rounds,
        busy_percent=args.busy,
    )
    info = harness.machine_info(args.device)
    info["busy threshold"] = f"{args.busy:g}% of a core"
    paths = harness.write(records, Path(args.out), info, args.stem)
    print("wrote " + ", ".join(str(p) for p in paths))
    disturbed, measured = harness.busy_cells(records)
    if disturbed:
        print(
            f"warning: {disturbed} of {measured} cells ran on a busy machine: speedups may be "
            "understated; rerun on a quiet machine or with --threads 1"
        )
    return 0
