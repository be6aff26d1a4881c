"""List the experiments: ``python -m experiments``.

Each experiment runs as ``python -m experiments.NAME [--quick] [--seed S] [--out DIR]
[--force] [--executor local|dask] [--workers N] [--scheduler ADDRESS]`` (``--help``
on any of them explains the options). ``python -m paper_checks`` runs the checks of
all of them and writes the report.
"""

from __future__ import annotations

import argparse
import ast
import pkgutil
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent


def experiment_names() -> list[str]:
    """Every runnable ``experiments.NAME`` module (private ``_*`` helpers excluded)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(PKG)]) if not m.name.startswith("_"))


def summary(name: str) -> str:
    """The first line of ``experiments/NAME.py``'s docstring, read without importing it."""
    path = PKG / f"{name}.py"
    if not path.exists():
        path = PKG / name / "__init__.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except (OSError, SyntaxError):
        doc = None
    from experiments._common import _description
    line = _description(doc or "").strip().splitlines()
    return line[0].strip() if line else "(no description)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)
    names = experiment_names()
    width = max(len(n) for n in names)
    print("Experiments (run one with `python -m experiments.NAME --help`):\n")
    for name in names:
        print(f"  {name:<{width}}  {summary(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
