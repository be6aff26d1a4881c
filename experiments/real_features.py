"""The two-layer model on real penultimate features, beside the real network (THEORY.md §9).

For each dataset and binary task (two classes, labels +-1) and OOD domain: the
penultimate features of the pretrained backbone (``twolayer.empirical.features``)
become the inputs x of the two-layer linear model; ``twolayer.bridge.build_bridge``
builds the Problem (B0 = top-k PCs of the pretraining pool, w* = least squares on ID
and OOD, B* = B0 with one direction rotated onto w*, S at a relative singular-value
tolerance, Sigma = OOD second moment), and LP / FT / LP-FT are simulated exactly with
``twolayer.simulate`` (float64, t on a log grid and t = inf; v0 = 0, the theory's zero head).

Records (one per dataset x task x OOD domain x s_tol x target x method): the geometry
(eps, theta, m, rho, cos theta_max(R0, S_perp), ...), the Theorem 3.3 bound in both
forms and its status, the linear model's ID / OOD loss (the theory's L_id, L_ood and the
mean squared error on the real labels) and accuracy (sign agreement with the labels on
ID test and OOD features), its feature change on ID test vs OOD inputs, and, where
real-network results of ``experiments.empirical`` / ``empirical_gpu`` are cached, the
network's ID / OOD accuracy and feature change for the same method (``net_*``: mean
over seeds, selected lr, final epoch; the network solves the multi-class task, so its
accuracies are read for orderings, not compared in value) and whether the two agree on
the orderings LP vs FT OOD, ID vs OOD distortion, LP-FT vs FT distortion. When the
``conditions`` experiment is cached in the same results folder, the nearest cell of its
phase diagram at (eps, rho) is recorded too.

CLI::

    python -m experiments.real_features --quick --out DIR   # digits, CPU, a few minutes
    python -m experiments.real_features --out DIR --device cuda   # + cifar-subpop, PACS
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from experiments._common import (DEFAULT_RESULTS, REPO, add_common_args, atomic_write_text, require_torch,
                                 require_writable, executor_from_args, log_time_grid, run_sweep, sweep_dir)

NAME = "real_features"
FIGURE = "real_features"
SOURCE = "THEORY.md §9 (the bridge), §4 (Theorem 3.3), §6 (feature distortion, conditions)"
METHODS = ("lp", "ft", "lpft")

#: binary tasks per dataset: (class labelled +1, class labelled -1), names as in the data module
TASKS = {
    "digits": (("3", "8"), ("4", "9"), ("1", "7")),
    "cifar-subpop": (("vehicle", "mammal"), ("mammal", "bird_or_frog"), ("vehicle", "bird_or_frog")),
    "pacs": (("dog", "elephant"), ("guitar", "house"), ("horse", "giraffe")),
}

#: findings recorded after measuring (check id -> reason with the numbers); see docs/real_features.md
FINDINGS: dict[str, str] = {}

#: comparisons whose either outcome is a result (THEORY.md §9: "agreement and disagreement are
#: both results"): paper_checks reports a failing one as a finding with this reason, never as a
#: regression. The row's details carry the numbers of every instance.
_AGREE = ("the linear model on real features and the real network disagree on this ordering for at "
          "least one instance (per-instance orderings in the details); THEORY.md §9 counts disagreement "
          "as a result. Read it next to the network's recipe: when the network's FT is below its LP on "
          "ID, the network's numbers are not yet evidence (issue 8's rule of thumb)")
OBSERVATIONS: dict[str, str] = {
    "agree_lp_vs_ft_ood": _AGREE,
    "agree_id_vs_ood_distortion": _AGREE,
    "agree_lpft_vs_ft_distortion": _AGREE,
    "conditions_phase": ("the synthetic conditions phase diagram, read at the real problem's (eps, rho), "
                         "predicts the wrong winner for at least one instance: the real problem differs "
                         "from the synthetic family in more than (eps, rho) (spectrum of X, Sigma, k); "
                         "per-instance numbers in the details"),
    "linear_ft_distorts_id_more": ("in absolute terms (mean ||(B - B0) x||) the linear model's FT can change "
                                   "OOD features more than ID ones on real features: OOD features are longer "
                                   "(on digits USPS mean norm 1.17-1.59 vs 1.0 for MNIST) and lie mostly "
                                   "inside S (rho < 0.1), so I1 protects little of them; the relative row "
                                   "(per unit input norm) is the like-for-like comparison"),
}


@dataclass(frozen=True)
class Config:
    seed: int = 0                      # the ID train/val/test split seed of the data module
    datasets: tuple = ("digits", "cifar-subpop", "pacs")
    n_tasks: int = 3                   # the first n_tasks of TASKS[dataset]
    k: int = 16
    s_tols: tuple = (3e-2, 1e-2)
    targets: tuple = ("labels", "wstar")
    quick_backbone: bool = False       # the backbone of the quick empirical preset
    pool_max: int = 5000
    t_min: float = 1e-3
    t_max: float = 1e3
    n_times: int = 30
    empirical_dirs: tuple = ("results/empirical", "results/empirical_gpu")
    max_per_class: int | None = None   # cap on the bridge's images per class (None: all; tests use a few)
    pretrain_overrides: tuple = ()     # (key, value) pairs for the preset's pretraining (tests only)

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, datasets=("digits",), n_tasks=2, s_tols=(3e-2,), targets=("labels",),
                   quick_backbone=True, empirical_dirs=("results/empirical",))

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)


def _dirs(config: Config, out) -> list[Path]:
    dirs = [Path(d) if Path(d).is_absolute() else REPO / d for d in config.empirical_dirs]
    if out is not None:  # an empirical run written under the same results folder counts too
        dirs += [Path(out) / "empirical", Path(out) / "empirical_gpu"]
    return dirs


def feature_cache_dir(out) -> Path:
    return Path(out or DEFAULT_RESULTS) / NAME / "features"


# ----------------------------------------------------------------------------- features
def prepare_features(config: Config, dataset: str, out=None, device="cpu", data_dir=None, log=print) -> dict:
    """Extract (or reuse) the features of ``dataset``; returns {path, checkpoint, ...}."""
    from twolayer.empirical.features import extract_features
    res = extract_features(dataset, feature_cache_dir(out), quick=config.quick_backbone,
                           split_seed=config.seed, data_dir=data_dir, device=device,
                           empirical_dirs=_dirs(config, out), pool_max=config.pool_max,
                           data_overrides=({"max_per_class": config.max_per_class}
                                           if config.max_per_class is not None else None),
                           pretrain_overrides=dict(config.pretrain_overrides) or None, log=log)
    return res


_MEMO: dict = {}


def _load(path: str) -> dict:
    if path not in _MEMO:
        z = np.load(path)
        _MEMO.clear()
        _MEMO[path] = {k: z[k] for k in z.files}
    return _MEMO[path]


def _pair(arrays: dict, name: str, classes: list, pos: str, neg: str):
    X, y = arrays[name], arrays["y_" + name]
    ip, ineg = classes.index(pos), classes.index(neg)
    keep = (y == ip) | (y == ineg)
    return X[keep], np.where(y[keep] == ip, 1.0, -1.0)


# ----------------------------------------------------------------------------- one unit
def _status(s) -> str:
    return str(getattr(s, "value", s))


def compute(config: Config, unit: dict) -> list[dict]:
    """LP / FT / LP-FT on one bridge instance (THEORY.md §9); three records."""
    import twolayer as tl
    from twolayer.bridge import BridgeConfig, build_bridge

    arrays = _load(unit["features_file"])
    classes = list(unit["classes"])
    pos, neg, dom = unit["pos"], unit["neg"], unit["ood_domain"]
    t0 = time.perf_counter()
    br = build_bridge(
        arrays["pool"], _pair(arrays, "id_train", classes, pos, neg),
        _pair(arrays, f"ood/{dom}", classes, pos, neg),
        test=_pair(arrays, "id_test", classes, pos, neg),
        extra_id={"val": _pair(arrays, "id_val", classes, pos, neg)},
        config=BridgeConfig(k=config.k, s_tol=unit["s_tol"], target=unit["target"]),
        meta={"dataset": unit["dataset"], "task": f"{pos}-vs-{neg}", "ood": dom})
    p, info = br.problem, br.info
    t_build = time.perf_counter() - t0
    ts = log_time_grid(config.t_min, config.t_max, config.n_times)
    Xte, yte = br.features["test"], br.labels["test"]
    Xo, yo = br.features["ood"], br.labels["ood"]
    geo = {k: info[k] for k in ("d", "k", "m", "m_at_tol", "m_capped", "s_ratio_last_kept",
                                "s_ratio_first_dropped", "x_energy_dropped", "rank_X_full", "n_train",
                                "n_test", "n_ood", "n_pool", "pool_var_top_k", "wstar_rank", "wstar_cond",
                                "wstar_ridge", "wstar_fit_acc", "wstar_fit_mse", "w_star_norm", "theta_deg",
                                "eps", "eps_closed_form", "rho", "sigma_ridge", "sigma_min_raw", "sigma_max",
                                "well_specified", "label_resid_frac", "cos_R0_S", "cos_R0_Sperp",
                                "cos_Rstar_S", "cos_Rstar_Sperp")}
    geo["eps_problem"] = float(p.eps)
    geo["m_problem"] = int(p.m)
    geo["sigma_min"] = float(p.sigma_min_Sigma)
    records = []
    for method in METHODS:
        t1 = time.perf_counter()
        tr = tl.simulate(p, method, ts)
        L_ood = np.asarray(tl.ood_loss(p, tr.v, tr.B))
        L_id = np.asarray(tl.id_loss(p, tr.v, tr.B))
        L_tr = np.asarray(tl.train_loss(p, tr.v, tr.B))
        w = tr.w[-1]
        fc_id = np.asarray(tl.feature_change(p, tr.B, Xte))
        fc_ood = np.asarray(tl.feature_change(p, tr.B, Xo))
        # scale-free variant: mean over x of ||(B - B0) x|| / ||x|| (OOD features can be longer)
        fc_rel = [float(np.mean(np.linalg.norm(X @ (tr.B[-1] - p.B0).T, axis=1) / np.linalg.norm(X, axis=1)))
                  for X in (Xte, Xo)]
        rec = {"method": method, **geo,
               "lin_id_loss": float(L_id[-1]), "lin_ood_loss": float(L_ood[-1]),
               "lin_ood_loss_min_t": float(L_ood.min()), "lin_train_loss": float(L_tr[-1]),
               "lin_id_mse": float(np.mean((Xte @ w - yte) ** 2)),
               "lin_ood_mse": float(np.mean((Xo @ w - yo) ** 2)),
               "lin_id_acc": float(np.mean(np.sign(Xte @ w) == yte)),
               "lin_ood_acc": float(np.mean(np.sign(Xo @ w) == yo)),
               "lin_fc_id": float(fc_id[-1]), "lin_fc_ood": float(fc_ood[-1]),
               "lin_fc_id_max_t": float(fc_id.max()), "lin_fc_ood_max_t": float(fc_ood.max()),
               "lin_fc_rel_id": fc_rel[0], "lin_fc_rel_ood": fc_rel[1],
               "id_test_mean_norm": float(np.linalg.norm(Xte, axis=1).mean()),
               "ood_mean_norm": float(np.linalg.norm(Xo, axis=1).mean()),
               "head_norm_start": float(np.linalg.norm(tr.v0)),
               "flow_result": str(tr.result), "flow_steps": int(tr.stats.get("num_steps") or 0),
               "seconds": time.perf_counter() - t1, "build_seconds": t_build}
        for form, suffix in (("published", ""), ("derived", "_derived")):
            if method == "lp":
                rec["thm33_bound" + suffix] = float("nan")
                rec["thm33_status" + suffix] = "not_applicable"
                rec["thm33_reason" + suffix] = "Theorem 3.3 bounds FT (and LP-FT), not LP"
                continue
            b = tl.bounds.thm33_lower_bound(p, v0=tr.v0, form=form)
            st = _status(b.status)
            if st == "ok":
                worst = float(np.sqrt(max(L_ood.min(), 0.0)))
                st = "holds" if worst >= b.value else "violated"
            rec["thm33_bound" + suffix] = float(b.value)
            rec["thm33_status" + suffix] = st
            rec["thm33_reason" + suffix] = b.reason
        records.append(rec)
    return records


def units(config: Config, feats: dict[str, dict]) -> list[dict]:
    out = []
    for ds in config.datasets:
        f = feats[ds]
        for pos, neg in TASKS[ds][:config.n_tasks]:
            for dom in f["domains"]:
                for tol in config.s_tols:
                    for target in config.targets:
                        out.append({"dataset": ds, "task": f"{pos}-vs-{neg}", "pos": pos, "neg": neg,
                                    "ood_domain": dom, "s_tol": float(tol), "target": target,
                                    "backbone": f["backbone_id"], "features_file": f["path"],
                                    "classes": list(f["classes"])})
    return out


# ----------------------------------------------------------------------------- real network
def network_summary(dirs, dataset: str) -> dict | None:
    """Mean over seeds of the cached real network's results (plain JSON; no torch).

    Returns {"source", "checkpoint", "n_seeds", "quick", (method, key) -> value} with keys
    id_acc, ood_acc/<domain>, dist_id, dist_ood/<domain> (the mean Euclidean feature change,
    the same form as ``twolayer.feature_change``) and dist_msq_* (the authors' metric).
    """
    files = []
    for d in dirs:
        files += sorted(Path(d).glob(f"{dataset}/*/seed*.json"))
    if not files:
        return None
    newest = max(files, key=lambda q: q.stat().st_mtime)
    ref = json.loads(newest.read_text())
    runs = [ref]
    for f in files:
        if f != newest and f.parent == newest.parent:
            obj = json.loads(f.read_text())
            if obj.get("config_hash") == ref.get("config_hash"):
                runs.append(obj)
    acc: dict = {}
    for obj in runs:
        for r in obj.get("records", []):
            if r.get("method") not in METHODS or r.get("epoch") is not None:
                continue
            if r.get("method") != "lp" and not r.get("selected"):
                continue
            key = None
            if r["metric"] == "acc" and r["split"] == "id_test":
                key = "id_acc"
            elif r["metric"] == "acc" and r["split"] == "ood":
                key = f"ood_acc/{r['domain']}"
            elif r["metric"] in ("distortion_euclid", "distortion_msq"):
                kind = "dist" if r["metric"] == "distortion_euclid" else "dist_msq"
                key = f"{kind}_id" if r["split"] == "id_val" else f"{kind}_ood/{r['domain']}"
            if key is not None:
                acc.setdefault((r["method"], key), []).append(float(r["value"]))
    out = {(m, k): float(np.mean(v)) for (m, k), v in acc.items()}
    cfg = ref.get("config", {})
    return {**out, "source": str(newest.parent), "n_seeds": len(runs),
            "quick": bool(cfg.get("quick", False)),
            "checkpoint": str((ref.get("backbone") or {}).get("checkpoint", ""))}


def _join_network(records: list[dict], dirs) -> list[dict]:
    cache: dict = {}
    for r in records:
        ds = r["dataset"]
        if ds not in cache:
            cache[ds] = network_summary(dirs, ds)
        net = cache[ds]
        m, dom = r["method"], r["ood_domain"]
        get = (lambda key: net.get((m, key), float("nan"))) if net else (lambda key: float("nan"))
        r.update({"net_id_acc": get("id_acc"), "net_ood_acc": get(f"ood_acc/{dom}"),
                  "net_fc_id": 0.0 if (net and m == "lp") else get("dist_id"),
                  "net_fc_ood": 0.0 if (net and m == "lp") else get(f"dist_ood/{dom}"),
                  "net_dist_msq_id": get("dist_msq_id"), "net_dist_msq_ood": get(f"dist_msq_ood/{dom}"),
                  "net_source": net["source"] if net else "", "net_n_seeds": net["n_seeds"] if net else 0,
                  "net_quick": net["quick"] if net else None,
                  "backbone_matches_network": bool(net) and bool(net["checkpoint"]) and (
                      Path(net["checkpoint"]).name == Path(str(r.get("backbone_checkpoint", ""))).name
                      or net["checkpoint"].startswith("imagenet"))})
    return records


def _join_conditions(records: list[dict], out) -> list[dict]:
    """Nearest cell (log eps, log rho) of the cached ``conditions`` phase diagram (zero head)."""
    try:
        from experiments._common import load_records
        from experiments.conditions import grid
        g = grid(load_records("conditions", out=out), "zero", "log10_ratio_inf")
    except (FileNotFoundError, KeyError, ImportError, ValueError):
        g = None
    for r in records:
        if g is None or g.empty:
            r.update({"cond_eps": float("nan"), "cond_rho": float("nan"), "cond_log10_ratio": float("nan")})
            continue
        e = min(g.index, key=lambda x: abs(math.log10(x) - math.log10(max(r["eps"], 1e-300))))
        q = min(g.columns, key=lambda x: abs(math.log10(x) - math.log10(max(r["rho"], 1e-300))))
        r.update({"cond_eps": float(e), "cond_rho": float(q), "cond_log10_ratio": float(g.loc[e, q])})
    return records


def _device(device):
    if device in (None, "auto"):
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def run(config: Config, out=None, *, force: bool = False, progress=None, device: str = "auto",
        data_dir=None, log=None) -> list[dict]:
    """Extract features (cached), simulate every unit (cached, resumable), join the network's results."""
    import pandas as pd
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        import torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise ImportError("experiments.real_features extracts features with PyTorch: "
                          "pip install -e .[empirical]") from exc
    device = _device(device)
    feats = {}
    for ds in config.datasets:
        if ds not in TASKS:
            raise ValueError(f"real_features: no binary tasks defined for dataset {ds!r}; known {sorted(TASKS)}")
        res = prepare_features(config, ds, out, device=device, data_dir=data_dir, log=log)
        feats[ds] = {"path": str(res["path"]), "classes": res["classes"], "domains": res["domains"],
                     "backbone_id": res["info"].get("checkpoint_id", ""), "info": res["info"]}
    us = units(config, feats)
    recs = run_sweep(NAME, config, us, partial(compute, config), out, force=force, progress=progress)
    for r in recs:
        r["backbone_checkpoint"] = feats[r["dataset"]]["info"].get("checkpoint", "")
        r["pool_source"] = feats[r["dataset"]]["info"].get("pool", "")
        r.pop("features_file", None)
        r.pop("classes", None)
    recs = _join_network(recs, _dirs(config, out))
    recs = _join_conditions(recs, out)
    root = sweep_dir(NAME, config, out)
    atomic_write_text(root / "records.csv", pd.DataFrame.from_records(recs).to_csv(index=False))
    return recs


# ----------------------------------------------------------------------------- checks
def orderings(df) -> "object":
    """One row per (dataset, task, ood_domain, s_tol, target): the linear model's and the
    network's orderings. ``lin_lp_beats_ft_ood`` uses the theory's L_ood; ``net_*`` the
    network's OOD accuracy and feature change; NaN-free booleans only where defined."""
    import pandas as pd
    keys = ["dataset", "task", "ood_domain", "s_tol", "target"]
    rows = []
    for key, g in df.groupby(keys, sort=True):
        by = {m: g[g["method"] == m].iloc[0] for m in METHODS if (g["method"] == m).any()}
        if set(by) != set(METHODS):
            continue
        lp, ft, lpft = by["lp"], by["ft"], by["lpft"]
        r = dict(zip(keys, key))
        r.update({"eps": float(ft["eps"]), "rho": float(ft["rho"]), "m": int(ft["m"]),
                  "lin_ood_loss_lp": float(lp["lin_ood_loss"]), "lin_ood_loss_ft": float(ft["lin_ood_loss"]),
                  "lin_ood_acc_lp": float(lp["lin_ood_acc"]), "lin_ood_acc_ft": float(ft["lin_ood_acc"]),
                  "lin_fc_id_ft": float(ft["lin_fc_id"]), "lin_fc_ood_ft": float(ft["lin_fc_ood"]),
                  "lin_fc_id_lpft": float(lpft["lin_fc_id"]),
                  "lin_lp_beats_ft_ood": bool(lp["lin_ood_loss"] < ft["lin_ood_loss"]),
                  "lin_ft_id_gt_ood": bool(ft["lin_fc_id"] > ft["lin_fc_ood"]),
                  "lin_lpft_lt_ft": bool(lpft["lin_fc_id"] < ft["lin_fc_id"])})
        net_ok = np.isfinite([lp["net_ood_acc"], ft["net_ood_acc"]]).all()
        r["net_ood_acc_lp"], r["net_ood_acc_ft"] = float(lp["net_ood_acc"]), float(ft["net_ood_acc"])
        r["net_fc_id_ft"], r["net_fc_ood_ft"] = float(ft["net_fc_id"]), float(ft["net_fc_ood"])
        r["net_fc_id_lpft"] = float(lpft["net_fc_id"])
        r["net_lp_beats_ft_ood"] = bool(lp["net_ood_acc"] > ft["net_ood_acc"]) if net_ok else None
        r["net_ft_id_gt_ood"] = (bool(ft["net_fc_id"] > ft["net_fc_ood"])
                                 if np.isfinite([ft["net_fc_id"], ft["net_fc_ood"]]).all() else None)
        r["net_lpft_lt_ft"] = (bool(lpft["net_fc_id"] < ft["net_fc_id"])
                               if np.isfinite([lpft["net_fc_id"], ft["net_fc_id"]]).all() else None)
        rows.append(r)
    return pd.DataFrame(rows)


def agreement_lines(df) -> list[str]:
    """One line per instance: the linear model's orderings, the network's, agreement and (eps, rho)."""
    o = orderings(df)
    lines = []
    for _, r in o.iterrows():
        def pair(name, lin, net):
            if net is None or (isinstance(net, float) and math.isnan(net)):
                return f"{name}: linear {'yes' if lin else 'no'}, network n/a"
            return f"{name}: linear {'yes' if lin else 'no'}, network {'yes' if net else 'no'} " \
                   f"({'agree' if lin == net else 'DISAGREE'})"
        eps_side = "poor features (eps >= 0.5)" if r["eps"] >= 0.5 else "good features (eps < 0.5)"
        rho_side = "large shift (rho >= 0.1)" if r["rho"] >= 0.1 else "small shift (rho < 0.1)"
        lines.append(
            f"{r['dataset']} {r['task']} -> {r['ood_domain']} (s_tol {r['s_tol']:g}, target {r['target']}): "
            + "; ".join([pair("LP beats FT OOD", r["lin_lp_beats_ft_ood"], r["net_lp_beats_ft_ood"]),
                         pair("FT changes ID features more than OOD", r["lin_ft_id_gt_ood"],
                              r["net_ft_id_gt_ood"]),
                         pair("LP-FT changes features less than FT", r["lin_lpft_lt_ft"], r["net_lpft_lt_ft"])])
            + f"; phase diagram: eps={r['eps']:.3g}, rho={r['rho']:.3g} -> {eps_side}, {rho_side}")
    return lines


def check(df, config: Config) -> list[dict]:
    from experiments._checks import DECADES_BELOW, Status, decades_below, passed, row

    rows = []
    n = len(df)
    # 1. the geometry of the bridge
    err = float(np.max(np.abs(df["eps"] - df["eps_closed_form"]))) if n else float("nan")
    m_ok = bool((df["m"] == df["m_problem"]).all() and (df["m"] < df["d"] - df["k"]).all())
    rows.append(row("bridge_geometry",
                    "on real features, d(B0, B*) by principal angles equals 2 sin(theta/2), theta = "
                    "angle(w*, R0), and rank of the projected training features equals m < d - k",
                    "THEORY.md §9, §1", passed(err <= 1e-9 and m_ok),
                    decades_below(1e-9, err), DECADES_BELOW, n,
                    f"max |eps - 2 sin(theta/2)| = {err:.2e} (tol 1e-9); m in [{df['m'].min()}, {df['m'].max()}], "
                    f"d - k = {sorted(set((df['d'] - df['k']).tolist()))}; capped at d - k - 1 in "
                    f"{int(df['m_capped'].sum())} of {n} records"))
    # 2. Theorem 3.3 on real features: its assumption y = X w* holds only for target "wstar"
    for form, suffix in (("published", ""), ("derived", "_derived")):
        allft = df[df["method"] != "lp"]
        sub = allft[allft["well_specified"].astype(bool)]
        st = sub["thm33_status" + suffix]
        n_ok = int(st.isin(["holds", "violated"]).sum())
        viol = sub[st == "violated"]
        ast_ = allft["thm33_status" + suffix]
        note = (f"well-specified records (target wstar): {len(sub)} of {len(allft)}; statuses of all "
                f"records {ast_.value_counts().to_dict()} (with the real labels the theorem's y = X w* fails)")
        if len(sub) == 0:
            status, margin = Status.NOT_APPLICABLE, None
        elif n_ok == 0:
            status = Status.VACUOUS if (st == "vacuous").any() else Status.NOT_APPLICABLE
            margin = None
        else:
            status = passed(len(viol) == 0)
            ok = sub[st.isin(["holds", "violated"])]
            margin = float(np.min(np.log10(np.sqrt(ok["lin_ood_loss_min_t"]) / ok["thm33_bound" + suffix])))
        rows.append(row(f"thm33_{form}",
                        f"Theorem 3.3 ({form} form) on the real-feature problem with y = X w*: "
                        "sqrt(L_ood(FT(t))) >= bound for all t (FT from v0 = 0 and LP-FT from v_lp)",
                        "THEORY.md §4, §9", status, margin,
                        "log10(min_t sqrt(L_ood) / bound)", len(sub),
                        f"{note}; bound values in [{allft['thm33_bound' + suffix].min():.3g}, "
                        f"{allft['thm33_bound' + suffix].max():.3g}]; "
                        f"cos theta_max(R0, S_perp) in [{allft['cos_R0_Sperp'].min():.2e}, "
                        f"{allft['cos_R0_Sperp'].max():.2e}], eps in [{allft['eps'].min():.3g}, "
                        f"{allft['eps'].max():.3g}], sigma_min(Sigma) in [{allft['sigma_min'].min():.2e}, "
                        f"{allft['sigma_min'].max():.2e}]"))
    o = orderings(df)
    # 3. the linear model's own feature-distortion predictions on real features
    ft = df[df["method"] == "ft"]
    lpft = df[df["method"] == "lpft"]
    r_io = np.log10(ft["lin_fc_id"].to_numpy() / ft["lin_fc_ood"].to_numpy())
    rows.append(row("linear_ft_distorts_id_more",
                    "the linear model's FT changes ID-test features more than OOD features (mean ||(B-B0)x||)",
                    "THEORY.md §6 (feature distortion), §9", passed(bool((r_io > 0).all())), float(r_io.min()),
                    "log10(feature change ID / OOD), worst instance", len(ft),
                    "ID/OOD absolute (relative ||(B-B0)x||/||x||; mean ||x|| ID test, OOD): " + "; ".join(
                        f"{a} {b}->{c} tol {t:g} {g}: {x:.3g}/{y:.3g} ({xr:.3g}/{yr:.3g}; {nx:.3g}, {ny:.3g}; "
                        f"rho {q:.3g})" for a, b, c, t, g, x, y, xr, yr, nx, ny, q in zip(
                            ft["dataset"], ft["task"], ft["ood_domain"], ft["s_tol"], ft["target"],
                            ft["lin_fc_id"], ft["lin_fc_ood"], ft["lin_fc_rel_id"], ft["lin_fc_rel_ood"],
                            ft["id_test_mean_norm"], ft["ood_mean_norm"], ft["rho"]))))
    r_rel = np.log10(ft["lin_fc_rel_id"].to_numpy() / ft["lin_fc_rel_ood"].to_numpy())
    rows.append(row("linear_ft_distorts_id_more_relative",
                    "the linear model's FT changes ID-test features more than OOD features, relative to the "
                    "input's norm (mean ||(B-B0)x|| / ||x||: OOD features can be longer than ID ones)",
                    "THEORY.md §6 (feature distortion), §9", passed(bool((r_rel > 0).all())), float(r_rel.min()),
                    "log10(relative feature change ID / OOD), worst instance", len(ft),
                    "; ".join(f"{a} {b}->{c} tol {t:g} {g}: {x:.3g}/{y:.3g}" for a, b, c, t, g, x, y in zip(
                        ft["dataset"], ft["task"], ft["ood_domain"], ft["s_tol"], ft["target"],
                        ft["lin_fc_rel_id"], ft["lin_fc_rel_ood"]))))
    r_lf = np.log10(ft["lin_fc_id"].to_numpy() / lpft["lin_fc_id"].to_numpy())
    rows.append(row("linear_lpft_distorts_less",
                    "the linear model's LP-FT changes ID features less than FT", "THEORY.md §6, §9",
                    passed(bool((r_lf > 0).all())), float(r_lf.min()),
                    "log10(FT / LP-FT feature change on ID), worst instance", len(ft),
                    f"ratios FT/LP-FT: {np.round(10 ** r_lf, 3).tolist()}"))
    # 4. agreement with the real network
    for cid, lin, net, what in (
            ("agree_lp_vs_ft_ood", "lin_lp_beats_ft_ood", "net_lp_beats_ft_ood",
             "LP beats FT OOD (linear: L_ood; network: OOD accuracy)"),
            ("agree_id_vs_ood_distortion", "lin_ft_id_gt_ood", "net_ft_id_gt_ood",
             "FT changes ID features more than OOD features"),
            ("agree_lpft_vs_ft_distortion", "lin_lpft_lt_ft", "net_lpft_lt_ft",
             "LP-FT changes ID features less than FT")):
        have = o[o[net].notna()] if len(o) else o
        if len(have) == 0:
            rows.append(row(cid, f"the linear model on real features and the real network agree: {what}",
                            SOURCE, Status.NOT_APPLICABLE, None, "fraction of instances agreeing", 0,
                            "no real-network results cached for these datasets (run experiments.empirical "
                            "or experiments.empirical_gpu into results/empirical*)"))
            continue
        agree = (have[lin].astype(bool) == have[net].astype(bool))
        rows.append(row(cid, f"the linear model on real features and the real network agree: {what}",
                        SOURCE, passed(bool(agree.all())), float(agree.mean()),
                        "fraction of instances agreeing", len(have),
                        "; ".join(f"{a} {b}->{c} tol {t:g} {g}: linear {bool(x)}, network {bool(y)}"
                                  for a, b, c, t, g, x, y in zip(have["dataset"], have["task"],
                                                                 have["ood_domain"], have["s_tol"],
                                                                 have["target"], have[lin], have[net]))))
    # 5. the phase diagram of `conditions` at (eps, rho) vs the exact simulation on the real problem
    has = o.merge(ft[["dataset", "task", "ood_domain", "s_tol", "target", "cond_log10_ratio"]],
                  on=["dataset", "task", "ood_domain", "s_tol", "target"]) if len(o) else o
    has = has[np.isfinite(has["cond_log10_ratio"])] if len(has) else has
    if len(has) == 0:
        rows.append(row("conditions_phase", "the conditions phase diagram at (eps, rho) predicts the winner "
                        "(LP vs FT OOD) of the exact simulation on real features", "THEORY.md §6 (conditions)",
                        Status.NOT_APPLICABLE, None, "fraction of instances agreeing", 0,
                        "the conditions experiment is not cached in this results folder"))
    else:
        pred = has["cond_log10_ratio"] > 0
        agree = pred == has["lin_lp_beats_ft_ood"].astype(bool)
        rows.append(row("conditions_phase", "the conditions phase diagram at (eps, rho) predicts the winner "
                        "(LP vs FT OOD) of the exact simulation on real features", "THEORY.md §6 (conditions)",
                        passed(bool(agree.all())), float(agree.mean()), "fraction of instances agreeing",
                        len(has), "; ".join(
                            f"{a} {b}->{c}: eps {e:.3g} rho {q:.2g}, diagram log10(L_FT/L_LP) {x:+.2f}, "
                            f"real problem {math.log10(f / max(lpv, 1e-300)):+.2f}"
                            for a, b, c, e, q, x, f, lpv in zip(
                                has["dataset"], has["task"], has["ood_domain"], has["eps"], has["rho"],
                                has["cond_log10_ratio"], has["lin_ood_loss_ft"], has["lin_ood_loss_lp"]))))
    return rows


# ----------------------------------------------------------------------------- CLI
def summary_table(df) -> str:
    cols = ["dataset", "task", "ood_domain", "s_tol", "target", "method", "eps", "m", "rho", "cos_R0_Sperp",
            "thm33_bound", "thm33_status", "lin_id_acc", "lin_ood_acc", "lin_ood_loss", "lin_fc_id",
            "lin_fc_ood", "net_id_acc", "net_ood_acc", "net_fc_id", "net_fc_ood"]
    return df[[c for c in cols if c in df.columns]].to_string(index=False, float_format=lambda x: f"{x:.4g}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--device", default="auto", help="feature extraction device (the flow runs on the CPU)")
    ap.add_argument("--data-dir", default=None, help="default: $TWOLAYER_DATA, then <repo>/../shared/data")
    ap.add_argument("--datasets", nargs="+", default=None, help="override the config's datasets")
    ap.add_argument("--s-tols", nargs="+", type=float, default=None,
                    help="override the relative singular-value tolerances defining S")
    ap.add_argument("--empirical", action="append", default=None, metavar="DIR",
                    help="also read real-network results (and their backbone) from DIR, e.g. the --out "
                         "of experiments.empirical_gpu (repeatable)")
    ap.add_argument("--features-only", action="store_true",
                    help="extract and cache the features, then stop (e.g. on a GPU machine; the flow "
                         "then runs anywhere from the cached .npz files)")
    args = ap.parse_args(argv)
    require_writable(ap, {"--out / --cache": args.out if args.out is not None else DEFAULT_RESULTS})
    require_torch(f"python -m experiments.{NAME}")
    import pandas as pd
    config = Config.quick(args.seed) if args.quick else Config.full(args.seed)
    if args.datasets:
        config = Config(**{**config.__dict__, "datasets": tuple(args.datasets)})
    if args.empirical:
        config = Config(**{**config.__dict__, "empirical_dirs": tuple(config.empirical_dirs) + tuple(
            str(Path(d).resolve()) for d in args.empirical)})
    if args.s_tols:
        config = Config(**{**config.__dict__, "s_tols": tuple(args.s_tols)})
    t0 = time.perf_counter()
    if args.features_only:
        for ds in config.datasets:
            res = prepare_features(config, ds, args.out, device=_device(args.device), data_dir=args.data_dir)
            print(f"{ds}: {res['path']} ({res['info']['data_summary']}; {res['info']['extract_seconds']:.1f}s)")
        print(f"{NAME}: features in {time.perf_counter() - t0:.1f}s")
        return 0
    with executor_from_args(args, ap):
        recs = run(config, out=args.out, force=args.force, progress=True, device=args.device,
                   data_dir=args.data_dir)
    df = pd.DataFrame.from_records(recs)
    print(summary_table(df))
    print("\n".join(agreement_lines(df)))
    # the statuses and exit code of paper_checks: a registered finding or observation reads "finding"
    from paper_checks.runner import apply_findings, exit_code
    rows = apply_findings(NAME, check(df, config), FINDINGS, observations=OBSERVATIONS)
    for r in rows:
        print(f"[{r['status']}] {r['id']}: {r['details'][:300]}")
    print(f"{NAME}: {len(recs)} records in {time.perf_counter() - t0:.1f}s -> {sweep_dir(NAME, config, args.out)}")
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
