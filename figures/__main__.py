"""(Re)draw every figure from cached results: ``python -m figures [--results DIR] [--out DIR]``.

A figure whose results are not cached yet is skipped with a message (run
``python -m paper_checks`` or the experiment first); nothing is simulated here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from ._style import DEFAULT_OUT


def figure_modules() -> list[str]:
    pkg = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(pkg)]) if not m.name.startswith("_"))


def draw_all(results_dir=None, out_dir=None, only=None) -> dict:
    """Draw each figure; returns {name: [paths] or error string}."""
    done = {}
    for name in figure_modules():
        if only and name not in only:
            continue
        mod = importlib.import_module(f"figures.{name}")
        try:
            done[name] = mod.main(results_dir, out_dir)
        except FileNotFoundError as exc:
            done[name] = f"skipped: {exc}"
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m figures", description=__doc__)
    ap.add_argument("--results", type=Path, default=None, help="results cache (default results/cache)")
    ap.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("names", nargs="*", help="only these figures")
    args = ap.parse_args(argv)
    for name, res in draw_all(args.results, args.out, args.names or None).items():
        print(f"{name}: {res if isinstance(res, str) else ', '.join(str(p) for p in res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
