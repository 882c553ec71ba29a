"""``trueconv compile``: compile the CPU loops now, not at their first call (a shell over
:func:`trueconv.compile_loops`)."""

from __future__ import annotations

import argparse

import trueconv
from trueconv.cli._errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile",
        help="compile trueconv's CPU loops now instead of at their first call",
        description="Compile the direct method's loop and the fused separable loop (numba, "
        'the "fast" extra) for these compute dtypes now. A first compile takes about a '
        "minute per dtype and loop on a 2-core machine; numba keeps the machine code on disk, "
        "so later processes load it in milliseconds. Run it where that wait should not fall "
        "on a first call: a container's build, a deployment, before a benchmark.",
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        metavar="DTYPE",
        help="float32, float64, complex64, complex128, int64 (integer and bool inputs compute "
        "in int64, half precision in float32; default: float32 float64)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        seconds = trueconv.compile_loops(args.dtypes, progress=lambda line: print(line, flush=True))
    except ValueError as exc:
        raise UsageError(str(exc).replace("compile_loops(): dtypes", "--dtypes")) from None
    if not seconds:
        print(
            'nothing to compile: numba is not installed (pip install "trueconv[fast]") or its '
            "loops are off; the direct method adds one scaled copy per tap instead"
        )
    return 0
