"""``python -m trueconv`` / ``trueconv``: the command line lives in :mod:`trueconv.cli`."""

from __future__ import annotations

import sys

from trueconv.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
