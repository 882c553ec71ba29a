"""Progress for ``trueconv apply``: a tqdm bar over the files, naming the file and its stage.

The bar exists only when asked for (not ``--quiet``), when stderr is a terminal and when tqdm
is installed; otherwise every method is a no-op and messages go straight to stderr, so a pipe
or a log file never receives bar redraws. During a long stage (one hour of audio convolving)
a background thread redraws the bar twice a second so that its clock keeps running: the
convolution itself is one library call and reports nothing while it runs.
"""

from __future__ import annotations

import shutil
import sys
import threading
from types import TracebackType
from typing import Any

#: Seconds between redraws of the bar during a long stage.
TICK_S = 0.5


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
        # a terminal that reports no width (a bare pty) would get a zero-width bar: assume 80
        width = shutil.get_terminal_size((0, 0)).columns
        self._bar = tqdm(
            total=total,
            unit="file",
            file=sys.stderr,
            dynamic_ncols=width > 0,
            ncols=None if width > 0 else 80,
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
