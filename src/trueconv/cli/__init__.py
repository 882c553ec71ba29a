"""The ``trueconv`` command line: ``demo``, ``apply``, ``kernels``, ``bench``, ``calibrate`` and
``compile``.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``run``; :func:`main` parses, runs, and is the one error boundary: user mistakes
(:class:`~trueconv.cli._errors.CliError`) become one line on stderr and an exit status — 0 done,
1 some inputs failed, 2 bad usage — never a traceback; so do running out of memory (1), Ctrl-C
(130) and SIGTERM/SIGHUP (128 + the signal), which unwind through every cleanup (no temporary
output stays behind). Anything else is a bug of ours and says so, with its traceback. The
subcommands are thin shells over the library: ``apply`` reads files, calls
:func:`trueconv.convolve` and writes files.

Optional dependencies (Pillow, tifffile, soundfile, tqdm: ``pip install "trueconv[cli]"``) are
imported only by ``apply`` when a file needs them; ``demo`` needs none.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType

import torch

import trueconv
from trueconv.cli import _errors, apply, bench, calibrate, demo, kernels, precompile
from trueconv.cli._errors import SOME_FAILED, USAGE, CliError, Terminated

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trueconv",
        description="True convolution (the kernel flipped, as scipy.signal) for PyTorch, "
        "and a command line that convolves images, audio and arrays in files.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"trueconv {trueconv.__version__} (torch {torch.__version__}, Python "
        f"{platform.python_version()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.register(sub)
    apply.register(sub)
    kernels.register(sub)
    bench.register(sub)
    calibrate.register(sub)
    precompile.register(sub)
    parser.set_defaults(run=lambda args: demo.demo())  # no command: the demo
    return parser


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while the command runs (Python's
    default for them ends the process at once, leaving a half-written temporary behind).
    Only the main thread can install handlers; elsewhere (an embedding program) nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        _errors.received.append(signum)  # for raise_if_terminated, should a library lose it
        raise Terminated(signum)

    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    _errors.received.clear()
    before = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in before.items():
            signal.signal(signum, old)


def _abandon_pending_writes() -> None:
    """After an interrupt: zarr writes through an asyncio loop of its own, and a write the
    signal cut short is a pending task that asyncio reports at exit ("Task was destroyed but
    it is pending!", seen in 1 of 5 SIGTERM runs); the job was abandoned on purpose and its
    partial output removed, so that report is noise on the one-line message."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


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
    command = f"trueconv {args.command or 'demo'}"
    try:
        with _terminate_cleanly():
            try:
                return int(args.run(args))
            except Exception:
                _errors.raise_if_terminated()  # a signal some library turned into an error
                raise
    except CliError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        _abandon_pending_writes()
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        _abandon_pending_writes()
        print(f"{command}: terminated ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except MemoryError:
        print(f"{command}: out of memory", file=sys.stderr)
        return SOME_FAILED
    except Exception as exc:  # a bug of ours, not the user's: say so, and show where
        print(
            f"{command}: internal error, please report: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        traceback.print_exc(file=sys.stderr)
        return SOME_FAILED
