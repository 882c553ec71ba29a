"""The command line's two kinds of user mistake, each printed as one line without a traceback.

These never leave :func:`trueconv.cli.main`: it catches them, prints ``trueconv <command>:
<message>`` on stderr and exits with :attr:`CliError.status`. The library itself raises only
``ValueError``/``TypeError``; these exist so that the command can tell *whose* mistake an error
is (and so which exit status it gets) without parsing messages.
"""

from __future__ import annotations

import signal

#: Exit statuses: everything done; some inputs failed (the others completed); bad usage.
OK, SOME_FAILED, USAGE = 0, 1, 2


class CliError(Exception):
    """A user mistake reported as one line; ``status`` is the exit status it leads to."""

    status = SOME_FAILED


class UsageError(CliError):
    """Bad arguments: nothing was processed (exit status 2)."""

    status = USAGE


class InputError(CliError):
    """One input cannot be processed (exit status 1); the other inputs still are."""

    status = SOME_FAILED


class MissingExtra(InputError):
    """An optional dependency for a file type is not installed."""

    def __init__(self, suffix: str, module: str, purpose: str = "reading") -> None:
        super().__init__(f'{purpose} {suffix} files needs {module}: pip install "trueconv[cli]"')


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (every temporary output is removed on the
    way), and is no ``Exception``, so that no per-input handler mistakes it for a failed input."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: The termination signals the command line's handler received in this run (it clears the
#: list when it is installed).
received: list[int] = []


def raise_if_terminated() -> None:
    """Raise :class:`Terminated` if SIGTERM or SIGHUP arrived in this run.

    The handler raises it wherever Python code runs, but a library can lose it and raise
    something else: numpy's ``ndarray.tofile`` asks ``isinstance(f, os.PathLike)``, a
    signal that lands in that check makes it fail, and numpy reads the failure as "a path"
    and raises ``TypeError: expected str, bytes or os.PathLike object, not BufferedWriter``
    (seen once in a CI rehearsal: ``trueconv apply`` then reported a failed write and exited
    with 1 instead of 128 + the signal). Whoever turns an exception into a per-input error
    calls this first.
    """
    if received:
        raise Terminated(received[-1])
