"""``python -m trueconv`` / ``trueconv``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

import trueconv


def _seed() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(5, 7, dtype=torch.int64)
    image[1:4, 2:5] = 1
    return image, torch.tensor([[-1, 1]])


def _rows(t: torch.Tensor) -> list[str]:
    return [" ".join(f"{int(v):2d}" for v in row) for row in t.tolist()]


def _side_by_side(blocks: Sequence[tuple[str, torch.Tensor]], gap: int = 4) -> str:
    """Titled integer matrices printed next to each other."""
    columns = [[title, *_rows(t)] for title, t in blocks]
    widths = [max(len(line) for line in col) for col in columns]
    height = max(len(col) for col in columns)
    lines = []
    for i in range(height):
        cells = [(col[i] if i < len(col) else "").ljust(w) for col, w in zip(columns, widths)]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


def demo() -> int:
    """Print the seed example: cross-correlation (``F.conv2d``) versus true convolution."""
    image, kernel = _seed()
    x, w = image[None, None], kernel[None, None]  # (N, C, H, W) and (O, I, kH, kW)
    corr = F.conv2d(x, w)[0, 0]
    conv = trueconv.conv2d(x, w)[0, 0]
    print("The seed example: a 5x7 image with a 3x3 square, and the edge filter [[-1, 1]].")
    print()
    print(_side_by_side([("image", image), ("kernel", kernel)]))
    print()
    print(
        _side_by_side(
            [
                ("F.conv2d(x, w)  (cross-correlation)", corr),
                ("trueconv.conv2d(x, w)  (convolution)", conv),
            ]
        )
    )
    print()
    print("F.conv2d slides the kernel as it is: it correlates, and the rising edge comes out +1.")
    print("trueconv.conv2d flips it first: it convolves, as the math, numpy and scipy do.")
    try:
        from scipy.signal import convolve2d
    except ImportError:
        print("(scipy is not installed: no cross-check with scipy.signal.convolve2d)")
    else:
        ref = convolve2d(image.numpy(), kernel.numpy(), mode="valid")
        same = bool((conv.numpy() == ref).all())
        print(f"trueconv.conv2d(x, w) == scipy.signal.convolve2d(image, kernel, 'valid'): {same}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """Run the side-by-side benchmark grid and write the results files."""
    from trueconv import bench as harness

    if args.threads:
        torch.set_num_threads(args.threads)
    grid = harness.QUICK_GRID if args.quick else harness.FULL_GRID
    cases = [c for c in grid if not args.cases or any(s in c.name for s in args.cases)]
    if not cases:
        names = ", ".join(repr(c.name) for c in grid)
        print(f"trueconv bench: no case matches --cases {args.cases}; cases: {names}")
        return 2
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
    )
    paths = harness.write(records, Path(args.out), harness.machine_info(args.device), args.stem)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trueconv", description="True convolution for PyTorch tensors."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="show convolution vs cross-correlation on the seed example")
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
    pb.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    pb.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        return demo()
    if args.command == "bench":
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        return bench(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
