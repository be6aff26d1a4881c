"""Experiment: LP / FT / LP-FT on real pretrained networks (THEORY.md §7).

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

``config`` keys: ``datasets`` (list) or ``dataset``; ``quick`` (bool, or a scale
name "full" / "quick" / "tiny"); ``seeds``;
``results_dir``; ``device``; ``data_dir``; and per-dataset overrides under
``overrides: {dataset: {...}}`` merged into ``twolayer.empirical.runner.preset``.
"""

from __future__ import annotations

import argparse
import sys

DATASETS = ("digits", "pacs", "cifar-subpop", "cifar-stl")


def default_config(dataset: str = "digits", quick: bool | str = True, seeds=(0, 1, 2),
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
        q = config.get("quick", False)
        cfg = preset(ds, q if isinstance(q, str) else bool(q), **over)
        records.extend(run_experiment(cfg, log=log))
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.empirical", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="ID/OOD shift (default digits)")
    p.add_argument("--quick", action="store_true", help="small CPU scale (same as --scale quick)")
    p.add_argument("--scale", default=None, choices=("full", "quick", "tiny"),
                   help="preset scale: full (GPU), quick (CPU, minutes), tiny (smoke test, seconds)")
    p.add_argument("--seed", "--seeds", type=int, nargs="+", action="extend", default=None,
                   help="seeds (--seed 0 1 2 or repeated; default 0 1 2); each seed has its own split and LP fit")
    p.add_argument("--out", default="results/empirical", help="results folder (git-ignored; default results/empirical)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--data-dir", default=None, help="folder of the data bundles (default: $TWOLAYER_DATA, "
                                                    "then <repo>/../shared/data)")
    a = p.parse_args(argv)
    from experiments._common import require_torch, require_writable
    require_writable(p, {"--out": a.out})
    require_torch("python -m experiments.empirical")
    from twolayer.empirical.errors import DataNotFoundError
    from twolayer.empirical.results import load_warnings
    from twolayer.empirical.table import format_distortion, format_table, format_warnings

    scale = a.scale or ("quick" if a.quick else "full")
    cfg = default_config(a.dataset, scale, a.seed or (0, 1, 2), a.out, a.device, a.data_dir)
    try:
        recs = run(cfg)
    except DataNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(recs, a.dataset))
    print(format_distortion(recs, a.dataset))
    print(format_warnings(load_warnings(a.out, a.dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
