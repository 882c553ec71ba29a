"""Progress for ``trueconv apply``: a tqdm bar over the files, naming the file and its stage.

The bar exists only when asked for (not ``--quiet``), when stderr is a terminal and when tqdm
is installed; otherwise every method is a no-op and messages go straight to stderr, so a pipe
or a log file never receives bar redraws. Its size is that of stderr, the terminal it is drawn
on (not stdout's, which may be a pipe); a terminal that reports no size (0 x 0: a serial
console, a bare pty, some CI runners) gets :data:`DEFAULT_SIZE`, as tqdm would otherwise draw
nothing there (it took the reported 0 rows for a screen with no room for the bar).

During a long stage (one hour of audio convolving) a background thread redraws the bar twice
a second so that its clock keeps running: the convolution itself is one library call and
reports nothing while it runs.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import Any

#: Seconds between redraws of the bar during a long stage.
TICK_S = 0.5

#: Columns and rows assumed on a terminal that reports no size (or a size of 0).
DEFAULT_SIZE = (80, 24)


def terminal_size(stream: Any) -> tuple[int, int]:
    """``(columns, rows)`` of the terminal ``stream`` writes to: ``COLUMNS``/``LINES`` when
    set (as :func:`shutil.get_terminal_size` honours them), else what the terminal reports;
    ``0`` for what is unknown."""
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, rows = size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        columns = rows = 0
    given = [os.environ.get(name, "") for name in ("COLUMNS", "LINES")]
    columns = int(given[0]) if given[0].isdigit() and int(given[0]) > 0 else columns
    rows = int(given[1]) if given[1].isdigit() and int(given[1]) > 0 else rows
    return max(columns, 0), max(rows, 0)


class Progress:
    """A bar over ``total`` files, or nothing; use as a context manager."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not (enabled and sys.stderr.isatty()):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        # a terminal that reports no size (0 x 0) would get no bar at all: assume one
        columns, rows = terminal_size(sys.stderr)
        sized = columns > 0 and rows > 0
        self._bar = tqdm(
            total=total,
            unit="file",
            file=sys.stderr,
            dynamic_ncols=sized,
            ncols=None if sized else columns or DEFAULT_SIZE[0],
            nrows=None if sized else rows or DEFAULT_SIZE[1],
        )
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    @property
    def active(self) -> bool:
        """Whether a bar is being drawn."""
        return self._bar is not None

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._bar.refresh()

    def file(self, name: str) -> None:
        """Name the file being processed."""
        if self._bar is not None:
            self._bar.set_description_str(name, refresh=False)
            self._bar.set_postfix_str("", refresh=True)

    def stage(self, text: str) -> None:
        """Say what happens to the current file (reading, convolving, writing)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def advance(self) -> None:
        """One more file done (or failed)."""
        if self._bar is not None:
            self._bar.update(1)

    def write(self, line: str) -> None:
        """Print a message on stderr above the bar without breaking it."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.set_postfix_str("", refresh=False)
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
