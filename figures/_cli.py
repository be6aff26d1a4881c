"""The command line of ``python -m figures [NAME ...]`` and of each ``python -m figures.NAME``.

Figures are drawn from cached results only (nothing is simulated): ``--cache DIR`` is
the results cache the figures read (the folder ``python -m experiments.NAME --out DIR``
and ``python -m paper_checks --cache DIR`` write), ``--empirical DIR`` the cached
empirical (PyTorch) results, ``--out DIR`` the folder the figures are written to.
Unknown figure names and missing input folders are usage errors (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from experiments._common import DamagedCacheError, require_writable

from ._style import DEFAULT_OUT

PKG = Path(__file__).resolve().parent
REPO = PKG.parent
DEFAULT_EMPIRICAL = REPO / "results" / "empirical_gpu"

#: Figures whose ``main`` reads the empirical results (first argument) and the cache (third).
EMPIRICAL_FIGURES = ("empirical_distortion",)
#: Figures drawn from committed results (docs/results) unless the cache holds their own: they
#: need no results cache, so a fresh clone can draw them.
COMMITTED_FIGURES = ("scoreboard", "wise_real")


def figure_names() -> list[str]:
    """Every ``figures.NAME`` module that draws a figure."""
    return sorted(m.name for m in pkgutil.iter_modules([str(PKG)]) if not m.name.startswith("_"))


def _default_cache() -> Path:
    from experiments._common import DEFAULT_RESULTS
    return Path(DEFAULT_RESULTS)


def build_parser(prog: str, *, positional_names: bool, description: str = "",
                 empirical: bool = True) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=("Figures: " + ", ".join(figure_names())) if positional_names else None)
    if positional_names:
        ap.add_argument("names", nargs="*", metavar="NAME",
                        help="draw only these figures (default: all); one of the names listed below")
    ap.add_argument("--cache", "--results", dest="cache", type=Path, default=None, metavar="DIR",
                    help=f"results cache to read (must exist; default {_default_cache()}, "
                         "or $TWOLAYER_RESULTS); --results is an old spelling")
    if empirical:
        ap.add_argument("--empirical", type=Path, default=None, metavar="DIR",
                        help=f"cached empirical results read by {', '.join(EMPIRICAL_FIGURES)} "
                             f"(must exist if given; default {DEFAULT_EMPIRICAL})")
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help=f"figure folder: NAME.png and NAME.pdf are written there, created if missing "
                         f"(default {DEFAULT_OUT}, or $TWOLAYER_FIGURES)")
    return ap


def _check_folders(ap: argparse.ArgumentParser, args) -> None:
    cache = args.cache if args.cache is not None else _default_cache()
    committed_only = bool(getattr(args, "names", None)) and set(args.names) <= set(COMMITTED_FIGURES)
    if not Path(cache).is_dir() and not (committed_only and args.cache is None):
        hint = ("run `python -m paper_checks --quick` or `python -m experiments.NAME --quick` first"
                if args.cache is None else "give the folder the experiments wrote (their --out)")
        ap.error(f"results cache {cache} does not exist: {hint}")
    if getattr(args, "empirical", None) is not None and not Path(args.empirical).is_dir():
        ap.error(f"--empirical folder {args.empirical} does not exist")
    require_writable(ap, {"--out": args.out if args.out is not None else DEFAULT_OUT})


def draw(name: str, cache=None, out=None, empirical=None):
    """Draw one figure; returns its paths (FileNotFoundError when its results are not cached)."""
    mod = importlib.import_module(f"figures.{name}")
    if name in EMPIRICAL_FIGURES:
        return mod.main(empirical, out, cache)
    return mod.main(cache, out)


def draw_all(results_dir=None, out_dir=None, only=None, empirical_dir=None) -> dict:
    """Draw each figure (or those in ``only``); returns {name: [paths] or 'skipped: why'}."""
    done = {}
    for name in figure_names():
        if only and name not in only:
            continue
        try:
            done[name] = draw(name, results_dir, out_dir, empirical_dir)
        except FileNotFoundError as exc:
            done[name] = f"skipped: {exc}"
        except DamagedCacheError as exc:    # names the damaged file and the fix
            done[name] = f"skipped, damaged cache: {exc}"
    return done


def run(args, explicit: bool) -> int:
    """Draw, print one line per figure; exit 1 if a figure named explicitly could not be drawn."""
    res = draw_all(args.cache, args.out, args.names or None, getattr(args, "empirical", None))
    for name, r in res.items():
        print(f"{name}: {r if isinstance(r, str) else ', '.join(str(p) for p in r)}")
    skipped = [n for n, r in res.items() if isinstance(r, str)]
    return 1 if explicit and skipped else 0


#: The command's synopsis (``python -m figures --help``).
USAGE = """(Re)draw the figures from cached results; nothing is simulated here.

    python -m figures [NAME ...] [--cache DIR] [--empirical DIR] [--out DIR]

``--cache`` is the results cache the figures read (where ``python -m experiments.NAME
--out DIR`` or ``python -m paper_checks --cache DIR`` wrote), ``--out`` the folder the
figures are written to (PNG and PDF). A figure whose results are not cached yet is
skipped with a message (run ``python -m paper_checks --quick`` or the experiment
first); a figure named on the command line that cannot be drawn makes the exit code 1.
Unknown names and missing input folders are usage errors (exit 2).
"""


def main(argv=None) -> int:
    """``python -m figures [NAME ...]`` (:data:`USAGE`)."""
    ap = build_parser("python -m figures", positional_names=True, description=USAGE)
    args = ap.parse_args(argv)
    bad = [n for n in args.names if n not in figure_names()]
    if bad:
        ap.error(f"unknown figure name(s) {', '.join(bad)}; valid names: {', '.join(figure_names())}")
    _check_folders(ap, args)
    return run(args, explicit=bool(args.names))


def figure_main(name: str, argv=None) -> int:
    """``python -m figures.NAME [--cache DIR] [--out DIR]``: draw that one figure."""
    mod = importlib.import_module(f"figures.{name}")
    doc = (mod.__doc__ or "").strip()
    ap = build_parser(f"python -m figures.{name}", positional_names=False, description=doc,
                      empirical=name in EMPIRICAL_FIGURES)
    args = ap.parse_args(argv)
    args.names = [name]
    _check_folders(ap, args)
    return run(args, explicit=True)
