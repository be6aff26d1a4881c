"""(Re)draw the figures from cached results; nothing is simulated here.

    python -m figures [NAME ...] [--cache DIR] [--empirical DIR] [--out DIR]

``--cache`` is the results cache the figures read (where ``python -m experiments.NAME
--out DIR`` or ``python -m paper_checks --cache DIR`` wrote), ``--out`` the folder the
figures are written to (PNG and PDF). A figure whose results are not cached yet is
skipped with a message (run ``python -m paper_checks --quick`` or the experiment
first); a figure named on the command line that cannot be drawn makes the exit code 1.
Unknown names and missing input folders are usage errors (exit 2).
"""

from __future__ import annotations

import sys

from ._cli import draw_all, figure_names, main

__all__ = ["draw_all", "figure_names", "main"]

if __name__ == "__main__":
    sys.exit(main())
