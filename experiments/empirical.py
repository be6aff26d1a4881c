"""Experiment: LP / FT / LP-FT on real pretrained networks (THEORY.md §7, issue 4).

``run(config) -> list[dict]`` returns tidy records (schema in
``twolayer.empirical.results``): one row per method x seed x lr x epoch x
split/domain x metric. Each (dataset, arch, seed) run is cached as
``<results_dir>/<dataset>/<arch>/seed<S>.json`` together with the config, the
seed, package versions and the git revision, written atomically (temporary
file + ``os.replace``); a rerun reuses every finished run whose config hash
matches, so an interrupted sweep resumes without losing finished runs. The
seeded ID train/val/test split indices are saved next to them
(``<results_dir>/<dataset>/splits_seed<k>.npz``).

CLI::

    python -m experiments.empirical --quick --seed 0 --out results/empirical \
        --dataset digits --device cpu

``config`` keys: ``datasets`` (list) or ``dataset``; ``quick``; ``seeds``;
``results_dir``; ``device``; ``data_dir``; and per-dataset overrides under
``overrides: {dataset: {...}}`` merged into ``twolayer.empirical.runner.preset``.
"""

from __future__ import annotations

import argparse
import sys

DATASETS = ("digits", "pacs", "cifar-subpop")


def default_config(dataset: str = "digits", quick: bool = True, seeds=(0, 1, 2),
                   results_dir: str = "results/empirical", device: str = "auto", data_dir=None) -> dict:
    return {"datasets": [dataset], "quick": quick, "seeds": list(seeds), "results_dir": results_dir,
            "device": device, "data_dir": data_dir, "overrides": {}}


def run(config: dict, log=print) -> list[dict]:
    """Run (or resume from the cache) every configured dataset; return all records."""
    from twolayer.empirical.runner import preset, run_experiment

    datasets = config.get("datasets") or [config.get("dataset", "digits")]
    records: list[dict] = []
    for ds in datasets:
        over = {k: config[k] for k in ("seeds", "results_dir", "device", "data_dir") if k in config}
        over.update(config.get("overrides", {}).get(ds, {}))
        cfg = preset(ds, bool(config.get("quick", False)), **over)
        records.extend(run_experiment(cfg, log=log))
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="digits", choices=DATASETS + ("cifar-stl",))
    p.add_argument("--quick", action="store_true", help="small CPU scale")
    p.add_argument("--seed", type=int, action="append", default=None,
                   help="seed (repeat for several; default 0 1 2)")
    p.add_argument("--out", default="results/empirical", help="results directory (git-ignored)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None, help="default: $TWOLAYER_DATA, then <repo>/../shared/data")
    a = p.parse_args(argv)
    from twolayer.empirical.table import format_distortion, format_table

    cfg = default_config(a.dataset, a.quick, a.seed or (0, 1, 2), a.out, a.device, a.data_dir)
    recs = run(cfg)
    print(format_table(recs, a.dataset))
    print(format_distortion(recs, a.dataset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
