"""Phases 2 and 3 of ``experiments.scoreboard``: the bridge on each pair, then the table.

Phase 2 (:func:`run_bridge`): the *pretrained* backbone of the family's network runs (the
same checkpoint, data, caps and input size; seed 0's split) gives the features of the
pretraining pool, ID train / val / test and every OOD domain; each (pair, binary task) is
one ``run_sweep`` unit computed by ``experiments.real_features.compute`` (the exact LP / FT
/ LP-FT on the bridge Problem, THEORY.md §9), plus rho and m at several S tolerances.

Phase 3 (:func:`write_scoreboard`): the network's run files and the bridge records become
one row per pair (``pair_table``), scored by ``twolayer.scoreboard.score`` and written
with metadata to the results folder.
"""

from __future__ import annotations

import json
import math
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np

from experiments._common import atomic_write_text, config_hash, git_revision, package_versions, run_sweep

BRIDGE_NAME = "scoreboard_bridge"
#: S tolerances of the rho curve (the simulation itself uses the bridge default, 3e-2)
RHO_TOLS = (1e-1, 3e-2, 1e-2, 3e-3)
S_TOL = 3e-2
POOL_MAX = 5000


def _feature_key(cfg: dict) -> str:
    keep = {k: cfg.get(k) for k in ("dataset", "arch", "pretrained", "image_size", "input_size", "data",
                                    "pretrain", "split_seed")}
    return config_hash({**keep, "pool_max": POOL_MAX, "bridge_split_seed": 0, "v": 1})


def feature_path(family, scale: str, cache: Path, cfg: dict) -> Path:
    """Where the bridge features of ``family`` (its network config ``cfg``) are cached."""
    return cache / scale / "features" / f"{family.name}_{_feature_key(cfg)}.npz"


def extract(family, scale: str, cache: Path, device: str = "cpu", data_dir=None, log=print) -> dict:
    """Features of the family's pretrained backbone on its data (cached .npz + .json)."""
    import torch

    from experiments.scoreboard import network_config
    from twolayer.empirical.data import resplit
    from twolayer.empirical.features import feature_arrays, pool_images
    from twolayer.empirical.runner import _backbone, load_configured_shift

    cfg = network_config(family, scale, cache, device=device, data_dir=data_dir)
    path = feature_path(family, scale, cache, cfg)
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        return {**json.loads(meta_path.read_text()), "path": str(path)}
    t0 = time.perf_counter()
    data = resplit(load_configured_shift(cfg), 0)
    dev = torch.device(device if device not in (None, "auto") else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    net, binfo = _backbone(cfg, data.num_classes, dev, log)
    net.eval()
    size = cfg.get("input_size") or int(data.image_size)
    pool, pool_desc = pool_images(family.dataset, size, data_dir, POOL_MAX,
                                  classes=(cfg.get("pretrain") or {}).get("classes"))
    arrays = feature_arrays(net, data, pool, dev, size)
    meta = {"classes": list(data.classes), "domains": list(data.ood), "info": {
        **{k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
           for k, v in binfo.items() if k != "pretrain"},
        "pool": pool_desc, "n_pool": int(arrays["pool"].shape[0]), "data_summary": data.summary(),
        "feature_dim": int(arrays["pool"].shape[1]), "extract_seconds": time.perf_counter() - t0,
        "input_size": size, "split_seed": 0}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    atomic_write_text(meta_path, json.dumps(meta, indent=1, default=str))
    log(f"[scoreboard] bridge features of {family.name}: {meta['info']['data_summary']}, pool "
        f"{len(pool)}, d {meta['info']['feature_dim']}, {meta['info']['extract_seconds']:.0f}s")
    return {**meta, "path": str(path)}


def compute_unit(rf_config, unit: dict) -> list[dict]:
    """One (pair, task): ``real_features.compute`` plus rho and m over the S tolerances."""
    from experiments.real_features import _load, _pair, compute
    from twolayer.bridge import BridgeConfig, build_bridge

    records = compute(rf_config, unit)
    arrays, classes = _load(unit["features_file"]), list(unit["classes"])
    pos, neg, dom = unit["pos"], unit["neg"], unit["ood_domain"]
    curve = {}
    for tol in RHO_TOLS:
        br = build_bridge(arrays["pool"], _pair(arrays, "id_train", classes, pos, neg),
                          _pair(arrays, f"ood/{dom}", classes, pos, neg),
                          config=BridgeConfig(k=rf_config.k, s_tol=tol, target=unit["target"]))
        curve[f"rho_s{tol:g}"] = float(br.info["rho"])
        curve[f"m_s{tol:g}"] = int(br.info["m"])
    for r in records:
        r.update(curve)
    return records


def units(family, feats: dict) -> list[dict]:
    out = []
    for dom in feats["domains"]:
        if dom in family.controls:
            continue
        for pos, neg in family.tasks:
            out.append({"family": family.name, "dataset": family.dataset, "pair": f"{family.name}:{dom}",
                        "task": f"{pos}-vs-{neg}", "pos": pos, "neg": neg, "ood_domain": dom,
                        "s_tol": S_TOL, "target": "labels", "features_file": feats["path"],
                        "classes": list(feats["classes"])})
    return out


def rf_config(k: int = 16):
    from experiments.real_features import Config
    return Config(k=k)


def run_bridge(family, scale: str, cache: Path, device: str = "cpu", data_dir=None, force: bool = False,
               log=print) -> list[dict]:
    """Phase 2 for one family: features (cached), then every (pair, task) unit (cached)."""
    feats = extract(family, scale, cache, device, data_dir, log)
    us = units(family, feats)
    cfg = rf_config()
    sweep_cfg = {"family": family.name, "scale": scale, "k": cfg.k, "s_tol": S_TOL, "rho_tols": list(RHO_TOLS),
                 "t": [cfg.t_min, cfg.t_max, cfg.n_times], "features": Path(feats["path"]).name}
    t0 = time.perf_counter()
    recs = run_sweep(BRIDGE_NAME, sweep_cfg, us, partial(compute_unit, cfg), cache / scale / "units",
                     force=force, progress=True)
    for r in recs:
        r.pop("features_file", None)
        r.pop("classes", None)
        r["backbone_checkpoint"] = Path(str(feats["info"].get("checkpoint", ""))).name
    log(f"[scoreboard] bridge {family.name}: {len(us)} units, {len(recs)} records in "
        f"{time.perf_counter() - t0:.0f}s")
    return recs


# ----------------------------------------------------------------------------- the network side
def _network_runs(family, scale: str, cache: Path, seeds) -> tuple[list[dict], dict]:
    """The family's run files for the current config (one per seed that finished)."""
    from experiments.scoreboard import network_config
    from twolayer.empirical.results import config_hash as run_hash, load_run, run_path
    from twolayer.empirical.runner import _science

    cfg = network_config(family, scale, cache, seeds)
    h = run_hash(_science(cfg))
    runs = []
    for s in seeds:
        p = run_path(cfg["results_dir"], cfg["dataset"], cfg["arch"], s)
        if p.is_file():
            obj = load_run(p)
            if obj.get("config_hash") == h:
                runs.append(obj)
    return runs, cfg


def network_summary(runs: list[dict], cfg: dict, domain: str) -> dict:
    """Per-seed and mean (90% t interval) network numbers of one pair, and its evidence grade."""
    from twolayer.empirical.metrics import interval90
    from twolayer.scoreboard import network_outcomes

    grid = sorted(float(x) for x in cfg["ft"]["lrs"])
    per = {}  # key -> list over seeds
    edges, sel = [], {}

    def put(key, v):
        per.setdefault(key, []).append(float(v))

    for obj in runs:
        got = {}
        for r in obj["records"]:
            if r.get("epoch") is not None or r["method"] not in ("lp", "ft", "lpft"):
                continue
            if r["method"] != "lp" and not r.get("selected"):
                continue
            m, split, metric = r["method"], r["split"], r["metric"]
            if metric == "acc" and split == "id_test":
                got[(m, "id_acc")] = r["value"]
            elif metric == "acc" and split == "ood" and r["domain"] == domain:
                got[(m, "ood_acc")] = r["value"]
            elif metric.startswith("distortion_") and (split == "id_val" or r["domain"] == domain):
                got[(m, f"dist_{metric[11:]}_{'id' if split == 'id_val' else 'ood'}")] = r["value"]
            if m != "lp" and r.get("lr") is not None:
                sel[(obj["seed"], m)] = float(r["lr"])
        for key, v in got.items():
            put(f"{key[0]}_{key[1]}", v)
        if (("ft", "id_acc") in got) and (("lp", "id_acc") in got):
            put("ft_minus_lp_id", got[("ft", "id_acc")] - got[("lp", "id_acc")])
    for (seed, m), lr in sorted(sel.items()):
        if np.isclose(lr, grid[0]) or np.isclose(lr, grid[-1]):
            edges.append(f"seed {seed} {m.upper()} lr {lr:g} on the grid edge [{grid[0]:g}, {grid[-1]:g}]")
    out = {"n_seeds": len(runs), "lr_grid": " ".join(f"{x:g}" for x in grid),
           "selected_lrs": "; ".join(f"s{s} {m} {lr:g}" for (s, m), lr in sorted(sel.items()))}
    for key, vals in per.items():
        mean, hw, n = interval90(vals)
        out[f"net_{key}"], out[f"net_{key}_hw90"] = mean, hw
    reasons = []
    if len(runs) < 3:
        reasons.append(f"{len(runs)} of 3 seeds finished")
    d, hw = out.get("net_ft_minus_lp_id", math.nan), out.get("net_ft_minus_lp_id_hw90", math.nan)
    if not (d + (hw if np.isfinite(hw) else 0.0) >= 0):
        reasons.append(f"FT below LP on ID beyond the 90% interval (FT - LP = {100 * d:+.1f} "
                       f"+- {100 * hw:.1f} points)")
    reasons += edges
    out.update(network_outcomes(out))
    out["evidence_grade"] = not reasons
    out["grade_reason"] = "; ".join(reasons) if reasons else "FT >= LP on ID within the interval; no lr on a grid edge"
    return out


def pair_table(bridge_records: list[dict], runs_by_family: dict, families: dict) -> "object":
    """One row per pair: the bridge's quantities (median over its tasks) beside the network's."""
    import pandas as pd

    from twolayer.scoreboard import bridge_predictions
    df = pd.DataFrame.from_records(bridge_records)
    rows = []
    for (fam, pair), g in df.groupby(["family", "pair"], sort=True):
        dom = g["ood_domain"].iloc[0]
        row = {"family": fam, "pair": pair, "dataset": g["dataset"].iloc[0], "ood_domain": dom,
               "note": families[fam].note}
        row.update(bridge_predictions(g))
        runs, cfg = runs_by_family.get(fam, ([], None))
        if cfg is not None:
            row["arch"] = cfg["arch"]
            row["input_size"] = cfg.get("input_size") or cfg.get("image_size")
            row.update(network_summary(runs, cfg, dom))
        rows.append(row)
    return pd.DataFrame(rows)


def _join_conditions(table, cache: Path, quick: bool, log=print):
    """The zero-head ``conditions`` phase diagram (cached; quick for the quick / tiny scales)
    read at the nearest (eps, rho) cell of each pair."""
    from experiments import conditions
    from experiments.real_features import _join_conditions as join
    out = cache / ("conditions_quick" if quick else "conditions")
    t0 = time.perf_counter()
    conditions.run(conditions.Config.quick(0) if quick else conditions.Config.full(0), out=out)
    log(f"[scoreboard] conditions phase diagram ({'quick' if quick else 'full'}) in {time.perf_counter() - t0:.0f}s")
    recs = join(table.to_dict("records"), out)
    for r in recs:
        v = r.get("cond_log10_ratio", math.nan)
        r["cond_pred_lp_beats_ft_ood"] = bool(v > 0) if np.isfinite(v) else None
    import pandas as pd
    return pd.DataFrame(recs)


def write_scoreboard(scale: str, cache: Path, out: Path, families=None, seeds=(0, 1, 2), log=print,
                     wall_seconds: float | None = None) -> dict:
    """Phase 3: the pair table, the score and the metadata, written to ``out``."""
    from experiments.scoreboard import FAMILIES
    from twolayer.scoreboard import score, score_table

    fams = [FAMILIES[f] for f in (families or list(FAMILIES))]
    bridge, runs_by, timings = [], {}, {}
    for fam in fams:
        try:
            recs = run_bridge(fam, scale, cache, log=log)
        except FileNotFoundError as exc:
            log(f"[scoreboard] {fam.name}: no bridge ({exc})")
            continue
        bridge += recs
        runs, cfg = _network_runs(fam, scale, cache, seeds)
        runs_by[fam.name] = (runs, cfg)
        timings[fam.name] = {"network_wall_seconds": float(sum((r.get("throughput") or {}).get("wall_seconds", 0.0)
                                                               for r in runs)),
                             "bridge_flow_seconds": float(sum(r.get("seconds", 0.0) for r in recs))}
    table = _join_conditions(pair_table(bridge, runs_by, {f.name: f for f in fams}), cache,
                             scale in ("quick", "tiny"), log)
    table.insert(2, "scale", scale)
    summary = score(table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scoreboard.csv", table.to_csv(index=False))
    atomic_write_text(out / "scoreboard_score.csv", summary.to_csv(index=False))
    meta = {"experiment": "scoreboard", "scale": scale, "seeds": list(seeds), "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": package_versions(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": __import__("os").cpu_count()},
            "timings": timings, "wall_seconds_this_call": wall_seconds,
            "families": {f.name: {"dataset": f.dataset, "note": f.note, "tasks": [list(t) for t in f.tasks],
                                  "controls": list(f.controls),
                                  "network_config": runs_by.get(f.name, (None, None))[1]} for f in fams},
            "bridge": {"k": 16, "s_tol": S_TOL, "rho_tols": list(RHO_TOLS), "target": "labels", "v0": "zero",
                       "split_seed": 0, "pool_max": POOL_MAX},
            "n_pairs": int(len(table)), "n_evidence_grade": int(table.get("evidence_grade", []).sum())
            if "evidence_grade" in table else 0}
    atomic_write_text(out / "scoreboard.json", json.dumps(meta, indent=1, default=str))
    from experiments.scoreboard import pairs_markdown
    log(pairs_markdown(table))
    log(score_table(summary))
    log(f"[scoreboard] {len(table)} pairs ({meta['n_evidence_grade']} evidence-grade) -> {out}")
    return meta
