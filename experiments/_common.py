"""Shared machinery of the experiments: cached, resumable sweeps of tidy records.

An experiment is a list of independent *units* (dicts of parameters, e.g. one
seed and one eps) and a pure function ``compute(unit) -> list[dict]`` returning
tidy records (one row per run, time and quantity). :func:`run_sweep` stores each
finished unit atomically (temp file + ``os.replace``) under

    <out>/<name>/<config-hash>/units/<unit-hash>.json

so a repeated run reuses the cache and an interrupted sweep resumes without losing
or duplicating finished units. When all units are done it writes ``records.csv``
and ``meta.json`` (config, seed, package versions, git revision, timings).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["DEFAULT_RESULTS", "log_time_grid", "config_hash", "atomic_write_text", "run_sweep", "load_records",
           "cli", "package_versions", "git_revision", "sweep_dir"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(os.environ.get("TWOLAYER_RESULTS", REPO / "results" / "cache"))


def _jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def log_time_grid(t_min: float, t_max: float, n_times: int, inf: bool = True):
    """Times 0, ``n_times`` log-spaced points in [t_min, t_max], and optionally inf (the limit)."""
    import numpy as np
    parts = [[0.0], np.logspace(np.log10(t_min), np.log10(t_max), n_times)] + ([[np.inf]] if inf else [])
    return np.concatenate(parts)


def config_hash(obj) -> str:
    """Stable short hash of a JSON-able object (a config or a unit)."""
    text = json.dumps(_jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "jax", "jaxlib", "diffrax", "pandas", "matplotlib", "seaborn",
                 "torch", "torchvision"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                from importlib.metadata import version
                out[name] = version(name)
            except Exception:  # noqa: BLE001 - not installed
                continue
        else:
            out[name] = getattr(mod, "__version__", "unknown")
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - git missing
        return "unknown"


def sweep_dir(name: str, config, out: Path | str | None = None) -> Path:
    """The cache folder of one (experiment, config)."""
    return Path(out or DEFAULT_RESULTS) / name / config_hash(config)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)
    except ImportError:
        return iterable


def run_sweep(name: str, config, units: Iterable[dict], compute: Callable[[dict], list[dict]],
              out: Path | str | None = None, *, progress: bool | None = None,
              force: bool = False) -> list[dict]:
    """Compute every unit not already cached, then return all records in unit order.

    Each record gets the unit's parameters merged in (record keys win) plus
    ``experiment`` and ``config_hash``.
    """
    units = list(units)
    keys = [config_hash(u) for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: duplicate units in the sweep")
    root = sweep_dir(name, config, out)
    udir = root / "units"
    udir.mkdir(parents=True, exist_ok=True)
    chash = config_hash(config)
    atomic_write_text(root / "config.json", json.dumps(_jsonable(config), indent=2, sort_keys=True))
    if progress is None:
        progress = sys.stderr.isatty()
    t_start = time.perf_counter()
    n_cached = 0
    all_records: list[dict] = []
    for unit, key in _progress(zip(units, keys), len(units), name, progress):
        path = udir / f"{key}.json"
        if path.exists() and not force:
            payload = json.loads(path.read_text())
            n_cached += 1
        else:
            t0 = time.perf_counter()
            recs = compute(unit)
            payload = {"unit": _jsonable(unit), "records": _jsonable(recs),
                       "seconds": time.perf_counter() - t0}
            atomic_write_text(path, json.dumps(payload))
        for rec in payload["records"]:
            row = dict(_jsonable(unit))
            row.update(rec)
            row["experiment"] = name
            row["config_hash"] = chash
            all_records.append(row)
    meta = {
        "experiment": name, "config": _jsonable(config), "config_hash": chash,
        "seed": getattr(config, "seed", None), "n_units": len(units), "n_cached_units": n_cached,
        "n_records": len(all_records), "seconds": time.perf_counter() - t_start,
        "versions": package_versions(), "git_revision": git_revision(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_records(root, all_records)
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str))
    latest = Path(out or DEFAULT_RESULTS) / name / "latest.json"
    atomic_write_text(latest, json.dumps({"config_hash": chash, "config": _jsonable(config)}, indent=2))
    return all_records


def _write_records(root: Path, records: list[dict]) -> None:
    import pandas as pd
    text = pd.DataFrame.from_records(records).to_csv(index=False)
    atomic_write_text(root / "records.csv", text)


def load_records(name: str, config=None, out: Path | str | None = None):
    """Load the cached records of ``name`` as a DataFrame (never computes anything).

    With ``config=None`` the most recently finished config of that experiment is used.
    Raises FileNotFoundError with a hint when nothing is cached.
    """
    import pandas as pd
    base = Path(out or DEFAULT_RESULTS) / name
    if config is None:
        latest = base / "latest.json"
        if not latest.exists():
            raise FileNotFoundError(f"no cached results for {name!r} under {base}; run "
                                    f"`python -m experiments.{name} --quick` first")
        chash = json.loads(latest.read_text())["config_hash"]
    else:
        chash = config_hash(config)
    path = base / chash / "records.csv"
    if not path.exists():
        raise FileNotFoundError(f"no finished sweep at {path}; run `python -m experiments.{name}`")
    return pd.read_csv(path)


def cli(name: str, config_cls, run: Callable, argv=None, description: str = "") -> list[dict]:
    """Thin CLI: ``python -m experiments.NAME [--quick] [--seed S] [--out DIR] [--force]``."""
    ap = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    ap.add_argument("--quick", action="store_true", help="small, fast configuration")
    ap.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ap.add_argument("--out", type=Path, default=None, help=f"results folder (default {DEFAULT_RESULTS})")
    ap.add_argument("--force", action="store_true", help="recompute cached units")
    args = ap.parse_args(argv)
    config = config_cls.quick(args.seed) if args.quick else config_cls.full(args.seed)
    t0 = time.perf_counter()
    records = run(config, out=args.out, force=args.force, progress=True)
    root = sweep_dir(name, config, args.out)
    print(f"{name}: {len(records)} records in {time.perf_counter() - t0:.1f}s -> {root}")
    return records
