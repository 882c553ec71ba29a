"""The ``trueconv`` command line: ``demo``, ``apply``, ``kernels`` and ``bench``.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``run``; :func:`main` parses, runs, and turns user mistakes
(:class:`~trueconv.cli._errors.CliError`) into one line on stderr and an exit status — 0 done,
1 some inputs failed, 2 bad usage — never a traceback. The subcommands are thin shells over
the library: ``apply`` reads files, calls :func:`trueconv.convolve` and writes files.

Optional dependencies (Pillow, tifffile, soundfile, tqdm: ``pip install "trueconv[cli]"``) are
imported only by ``apply`` when a file needs them; ``demo`` needs none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trueconv.cli import apply, bench, demo, kernels
from trueconv.cli._errors import USAGE, CliError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trueconv",
        description="True convolution (the kernel flipped, as scipy.signal) for PyTorch, "
        "and a command line that convolves images, audio and arrays in files.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.register(sub)
    apply.register(sub)
    kernels.register(sub)
    bench.register(sub)
    parser.set_defaults(run=lambda args: demo.demo())  # no command: the demo
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name.

    Returns
    -------
    int
        0: everything done; 1: some inputs failed (each reported on stderr, the others
        completed); 2: bad usage (nothing processed). ``--help`` returns 0.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else USAGE
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"trueconv {args.command or 'demo'}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"trueconv {args.command}: interrupted", file=sys.stderr)
        return 130
