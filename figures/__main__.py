"""``python -m figures``: the command line of :mod:`figures._cli` (its ``USAGE``)."""

from __future__ import annotations

import sys

from ._cli import draw_all, figure_names, main

__all__ = ["draw_all", "figure_names", "main"]

if __name__ == "__main__":
    sys.exit(main())
