"""The command line's two kinds of user mistake, each printed as one line without a traceback.

These never leave :func:`trueconv.cli.main`: it catches them, prints ``trueconv <command>:
<message>`` on stderr and exits with :attr:`CliError.status`. The library itself raises only
``ValueError``/``TypeError``; these exist so that the command can tell *whose* mistake an error
is (and so which exit status it gets) without parsing messages.
"""

from __future__ import annotations

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
