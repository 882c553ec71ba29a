"""``-`` in ``trueconv apply``: an array read from standard input, a result written to standard
output, both as ``.npy`` bytes.

A stream has no suffix to tell its format, so ``--format`` names it, once for both ends
(``trueconv apply - -k box:3 -o - --format npy``). Only ``npy`` streams: its header (shape and
dtype) comes first, so the job is planned and checked against ``--max-bytes`` before the
samples are read, and the samples follow in one piece, read straight into the array. The
other formats are refused with what to do instead: ``.npz`` is a zip archive (its directory is
at the end), images and audio are decoded by libraries that read files, and a ``.zarr`` store
is a directory.

Standard output receives the ``.npy`` bytes and nothing else: ``apply`` prints its ``-v``
lines, warnings and progress on standard error while the result goes to standard output
(:func:`binary_stdout`). A reader that goes away early (``| head -c 100``) ends the job with
one line on standard error, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from trueconv.cli import formats
from trueconv.cli._errors import InputError, UsageError

#: The name that stands for standard input (as an INPUT) and standard output (as ``-o``).
STDIO = Path("-")

#: ``--format`` names of the formats that stream, and their formats.
STREAMED = {"npy": ".npy"}


def is_stdio(path: Path | None) -> bool:
    """Whether ``path`` is ``-``: standard input as an input, standard output as ``-o``."""
    return path is not None and str(path) == "-"


def check_format(text: str | None, stdin: bool, stdout: bool) -> str | None:
    """``--format`` checked against where ``-`` is used; its canonical name (``'npy'``).

    Parameters
    ----------
    text : str or None
        ``--format`` as given (``npy``, ``.NPY``), or ``None``.
    stdin, stdout : bool
        Whether ``-`` is an input, and whether ``-o -`` was given.

    Returns
    -------
    str or None
        The format of the streams, or ``None`` when none is used.

    Raises
    ------
    UsageError
        ``-`` without ``--format``, ``--format`` without ``-``, or a format that does not
        stream, each on one line saying what is allowed.
    """
    where = " and ".join(
        name for name, used in (("standard input", stdin), ("standard output", stdout)) if used
    )
    if text is None:
        if stdin or stdout:
            raise UsageError(
                f"- ({where}) has no suffix to tell its format: add --format npy (the one "
                "format that streams)"
            )
        return None
    name = text.strip().lower().removeprefix(".")
    if name not in STREAMED:
        fmt = formats.FORMATS.get(f".{name}")
        if fmt is None:
            raise UsageError(
                f"--format {text}: unknown; - (standard input/output) streams npy only"
            )
        raise UsageError(
            f"--format {text}: {_why_not(fmt)}; only npy streams through - (standard "
            f"input/output): give a file name ending in .{name} instead"
        )
    if not (stdin or stdout):
        raise UsageError(
            f"--format {text} names the format of - (standard input or output), and no - was "
            "given; a file's format comes from its suffix"
        )
    return name


def _why_not(fmt: formats.Format) -> str:
    if fmt is formats.ZARR:
        return "a .zarr store is a directory, not a stream"
    if fmt.name == "NumPy archive":
        return ".npz is a zip archive, read from its end"
    kind = "audio" if fmt.name == "audio" else "images"
    return f"{kind} are decoded from files, not streams"


def check_stdin(stdin: Any = None) -> None:
    """Refuse (:class:`UsageError`) to read an array from a terminal: the user forgot the pipe."""
    stream = sys.stdin if stdin is None else stdin
    if stream is None or stream.isatty():
        raise UsageError(
            "- reads a .npy array from standard input, which is a terminal here; pipe one in "
            "(... | trueconv apply - ...) or name a file"
        )


def check_stdout(stdout: Any = None) -> None:
    """Refuse (:class:`UsageError`) to write ``.npy`` bytes to a terminal."""
    stream = sys.stdout if stdout is None else stdout
    if stream is None or stream.isatty():
        raise UsageError(
            "-o - writes .npy bytes to standard output, which is a terminal here; send them "
            "to a pipe (| python ...) or a file (> out.npy), or name a file with -o"
        )


def _header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of a ``.npy`` stream, left at the data."""
    version = np.lib.format.read_magic(f)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(f)
    return tuple(shape), bool(fortran), np.dtype(dtype)


def open_stdin(stream: BinaryIO | None = None) -> formats.Source:
    """The ``.npy`` array on standard input (or ``stream``), opened from its header alone.

    Returns
    -------
    formats.Source
        An array source named ``-``; its ``load`` reads the samples straight into the array.

    Raises
    ------
    InputError
        Not a ``.npy`` header, an array that does not hold numbers, or (when loaded) fewer
        bytes than the header announces.
    """
    f: BinaryIO = sys.stdin.buffer if stream is None else stream
    try:
        shape, fortran, dtype = _header(f)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(
            f"cannot read standard input as a NumPy array: {formats.os_reason(exc)}"
            if isinstance(exc, OSError)
            else f"cannot read standard input as a NumPy array: {_first_line(exc)}"
        ) from None
    if dtype.kind not in "biufc":
        raise InputError(f"the array has dtype {dtype}, not numbers")

    def load() -> formats.Signal:
        a = np.empty(shape[::-1] if fortran else shape, dtype)
        raw = a.data.cast("B") if a.size else memoryview(b"")
        got = 0
        while got < len(raw):
            n = f.readinto(raw[got:])  # type: ignore[attr-defined]
            if not n:
                raise InputError(
                    f"truncated: the header announces {len(raw)} bytes of data, standard input "
                    f"ended after {got}"
                )
            got += n
        return formats.Signal("array", {"": a.T if fortran else a})

    return formats.Source(STDIO, "array", {"": shape}, {"": dtype}, 0, {}, load)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _Chunks:
    """A file-like object numpy writes ``.npy`` data to in pieces (``numpy.lib.format``
    writes to anything but a real file in 16 MiB chunks, so no copy of the whole result)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        return self._out.write(data)


def write_stdout(signal: formats.Signal, float_output: bool, out: BinaryIO) -> list[str]:
    """Write the one array of ``signal`` to ``out`` (standard output's bytes) as ``.npy``.

    Parameters
    ----------
    signal : formats.Signal
        The result: one array, written in its file layout (:func:`formats.natural`).
    float_output : bool
        ``--float`` (a ``.npy`` keeps the computed floats either way).
    out : BinaryIO
        Standard output's binary stream (:func:`binary_stdout`).

    Returns
    -------
    list of str
        Warnings for the user (none).

    Raises
    ------
    InputError
        ``signal`` holds several arrays, or the reader closed the pipe (then standard output
        is pointed at ``/dev/null``, so that Python's own flush at exit stays quiet).
    """
    if len(signal.arrays) != 1:
        raise InputError(
            f"standard output takes one array; there are {len(signal.arrays)}: write a .npz file"
        )
    y = np.asarray(formats.natural(signal, next(iter(signal.arrays))))
    try:
        np.lib.format.write_array(_Chunks(out), y, allow_pickle=False)  # type: ignore[arg-type]
        out.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        raise InputError(
            "standard output was closed before the whole result was written (broken pipe)"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot write to standard output: {formats.os_reason(exc)}") from None
    return []


@contextlib.contextmanager
def binary_stdout(used: bool) -> Iterator[BinaryIO | None]:
    """While the command runs: standard output's binary stream when ``used`` (``-o -``), with
    every text printed on standard output (``-v`` lines, a library's messages) sent to
    standard error instead, so that only the ``.npy`` bytes reach the pipe."""
    if not used:
        yield None
        return
    out = sys.stdout.buffer
    with contextlib.redirect_stdout(sys.stderr):
        yield out
