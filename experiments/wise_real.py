"""WiSE-FT and output ensembles on the scoreboard's real networks, beside the exact model (issue 20 §3).

Question: does interpolating the weights of the starting and the fine-tuned network (WiSE-FT,
Wortsman et al. CVPR 2022) beat both endpoints out of distribution on a real shift, and does
the exact two-layer linear model on the same network's features predict it?

* **network** side (evaluation only): each seed's saved start / LP / FT / LP-FT networks of the
  scoreboard's network phase (``python -m experiments.scoreboard --phase network --save-models``,
  ``twolayer.empirical.saved_models``), interpolated by ``twolayer.empirical.wise``: every
  floating entry of the state_dict, BatchNorm running statistics included, and the output
  (logit) ensemble. Paths: ``zero_ft`` = start -> FT (the backbone with FT's fresh random head ->
  the selected FT), ``lp_ft`` = LP -> FT, ``lp_lpft`` = LP -> LP-FT (= start -> LP-FT: LP-FT
  starts from the LP network). Top-1 accuracy and cross-entropy on ID val, ID test and each OOD
  domain, the seed's own split.
* **exact** side: the bridge problem of each (pair, binary task) of the scoreboard
  (``experiments._scoreboard_bridge``: pretrained features, k = 16, S at 3e-2, labels +-1, zero
  head), its exact endpoints at t = inf (``twolayer.interpolate``: LP, FT, LP-FT, zero head) and
  the same paths: population ID / OOD / train losses and the sign accuracy on ID-test and OOD
  features.

One cached unit per (seed, path) and per (pair, task) (``run_sweep``, in ``<cache>/<scale>``);
the tidy table goes to ``docs/results/wise_real.csv`` with ``wise_real.json`` (config, git
revision, versions, wall times). Figure: ``python -m figures.wise_real`` (reads only the table).

CLI::

    python -m experiments.scoreboard --family digits --phase network --save-models   # the networks
    python -m experiments.wise_real --family digits --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from experiments._common import REPO, git_revision, package_versions, run_sweep

NAME = "wise_real"
SOURCE = "issue 20 §3; Wortsman et al. CVPR 2022 (WiSE-FT); THEORY.md §9 (the bridge)"
RESULTS_DIR = REPO / "docs" / "results"
ALPHAS = tuple(float(a) for a in np.round(np.linspace(0.0, 1.0, 21), 4))
#: path -> (start, end): saved network names (network side), ``twolayer.interpolate`` pair (exact side)
NET_PATHS = {"zero_ft": ("start_ft", "ft"), "lp_ft": ("lp", "ft"), "lp_lpft": ("lp", "lpft")}
#: the tidy table's columns (every record has exactly these): ``run_hash`` is the network run's
#: config hash (the saved networks' folder; empty on the exact side), ``config_hash`` the sweep's,
#: ``git_revision`` the code that wrote the table (12 digits; the full one is in the JSON)
COLUMNS = ("experiment", "side", "family", "domain", "seed", "task", "path", "kind", "alpha", "split",
           "metric", "value", "run_hash", "config_hash", "git_revision")

_CTX: dict = {}


# ----------------------------------------------------------------------------- network side
def _context(family_name: str, scale: str, cache: str, seed: int) -> dict:
    """The seed's split (ID val / test, OOD sets) and the run's config, loaded once per process."""
    key = (family_name, scale, cache, seed)
    if key not in _CTX:
        from experiments.scoreboard import FAMILIES, network_config
        from twolayer.empirical.data import resplit
        from twolayer.empirical.results import config_hash
        from twolayer.empirical.runner import _science, load_configured_shift
        cfg = network_config(FAMILIES[family_name], scale, Path(cache), seeds=[seed], device="cpu")
        if ("data", family_name, scale) not in _CTX:
            _CTX.clear()
            _CTX[("data", family_name, scale)] = load_configured_shift(cfg)
        _CTX[key] = {"cfg": cfg, "hash": config_hash(_science(cfg)),
                     "data": resplit(_CTX[("data", family_name, scale)], seed)}
    return _CTX[key]


def _recorded(meta: dict, method: str) -> dict:
    """The run's own selected-checkpoint accuracies (ID test, OOD) of ``method`` (lp, ft, lpft)."""
    out = {}
    for r in meta.get("records", []):
        if r["method"] == method and r["selected"] and r["epoch"] is None and r["metric"] == "acc" \
                and r["split"] in ("id_test", "ood"):
            out[(r["split"], r["domain"])] = float(r["value"])
    return out


def network_unit(unit: dict) -> list[dict]:
    """WiSE-FT and the ensemble along one path of one seed's saved networks."""
    from twolayer.empirical.backbones import build_network
    from twolayer.empirical.saved_models import load_models, models_path
    from twolayer.empirical.wise import wise_and_ensemble

    t0 = time.perf_counter()
    ctx = _context(unit["family"], unit["scale"], unit["cache"], unit["seed"])
    cfg, data = ctx["cfg"], ctx["data"]
    a, b = NET_PATHS[unit["path"]]
    folder = models_path(cfg["models_dir"], cfg["dataset"], cfg["arch"], ctx["hash"], unit["seed"])
    states, meta = load_models(folder, names=(a, b))
    sets = {("id_val", "id"): (data.id_val.images, data.id_val.labels),
            ("id_test", "id"): (data.id_test.images, data.id_test.labels)}
    keep = unit.get("domains")
    sets.update({("ood", d): (s.images, s.labels) for d, s in data.ood.items() if keep is None or d in keep})

    def make():
        return build_network(cfg["arch"], data.num_classes, image_size=cfg.get("image_size", 224),
                             input_size=cfg.get("input_size"))

    rows = wise_and_ensemble(make, states[a], states[b], {f"{s}|{d}": v for (s, d), v in sets.items()},
                             unit["alphas"])
    base = {"side": "network", "family": unit["family"], "seed": int(unit["seed"]), "task": "all",
            "path": unit["path"], "run_hash": ctx["hash"]}
    out = []
    for r in rows:
        split, dom = r.pop("split").split("|")
        out.append({**base, **r, "split": split, "domain": dom})
    # the run's own numbers for the endpoints: the interpolation at alpha 0 / 1 must reproduce them
    names = {"start_ft": None, "lp": "lp", "ft": "ft", "lpft": "lpft"}
    for alpha, end in ((0.0, a), (1.0, b)):
        if names[end] is None:
            continue
        for (split, dom), v in _recorded(meta, names[end]).items():
            if split == "ood" and keep is not None and dom not in keep:
                continue
            out.append({**base, "kind": "recorded", "alpha": alpha, "split": split, "domain": dom,
                        "metric": "acc", "value": v})
    print(f"  [wise_real] {unit['family']} seed {unit['seed']} {unit['path']}: {len(out)} rows in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- exact side
def exact_unit(unit: dict) -> list[dict]:
    """The exact model's WiSE-FT and ensemble curves on one bridge problem (pair, task)."""
    from experiments._scoreboard_bridge import rf_config
    from experiments.real_features import _load, _pair
    from twolayer.bridge import BridgeConfig, build_bridge
    from twolayer.interpolate import ENDPOINT_PAIRS, endpoint, ensemble_curve, wise_curve, wise_weights
    from twolayer.losses import effective_predictor

    t0 = time.perf_counter()
    arrays, classes = _load(unit["features_file"]), list(unit["classes"])
    pos, neg, dom = unit["pos"], unit["neg"], unit["ood_domain"]
    br = build_bridge(arrays["pool"], _pair(arrays, "id_train", classes, pos, neg),
                      _pair(arrays, f"ood/{dom}", classes, pos, neg),
                      test=_pair(arrays, "id_test", classes, pos, neg),
                      config=BridgeConfig(k=rf_config().k, s_tol=unit["s_tol"], target=unit["target"]))
    p = br.problem
    Xte, yte, Xo, yo = br.features["test"], br.labels["test"], br.features["ood"], br.labels["ood"]
    al = np.asarray(unit["alphas"], dtype=np.float64)
    ends = {n: endpoint(p, n) for n in ("lp", "ft", "lpft", "zero")}
    base = {"side": "exact", "family": unit["family"], "seed": None, "task": unit["task"]}
    out = []
    for path, (a, b) in ENDPOINT_PAIRS.items():
        ea, eb = ends[a], ends[b]
        wa, wb = effective_predictor(p, ea.v, ea.B), effective_predictor(p, eb.v, eb.B)
        v, B = wise_weights(ea, eb, al)
        w_path = {"wise": effective_predictor(p, v, B), "ensemble": (1 - al)[:, None] * wa + al[:, None] * wb}
        curves = {"wise": wise_curve(p, ea, eb, al), "ensemble": ensemble_curve(p, ea, eb, al)}
        for kind in ("wise", "ensemble"):
            c, w = curves[kind], w_path[kind]
            acc_id = np.mean(np.sign(Xte @ w.T) == yte[:, None], axis=0)
            acc_ood = np.mean(np.sign(Xo @ w.T) == yo[:, None], axis=0)
            for i, alpha in enumerate(al):
                row = {**base, "path": path, "kind": kind, "alpha": float(alpha)}
                out += [{**row, "split": s, "domain": d, "metric": "loss", "value": float(c[s][i])}
                        for s, d in (("id", "id"), ("ood", dom), ("train", "id"))]
                out += [{**row, "split": "id_test", "domain": "id", "metric": "acc", "value": float(acc_id[i])},
                        {**row, "split": "ood", "domain": dom, "metric": "acc", "value": float(acc_ood[i])}]
    print(f"  [wise_real] exact {unit['pair']} {unit['task']}: eps {p.eps:.3f}, {len(out)} rows in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- run, table, summary
def run(families, scale: str, cache: Path, seeds, alphas=ALPHAS, force: bool = False, log=print,
        domains: dict | None = None):
    """Every unit (cached), as one tidy DataFrame with the declared :data:`COLUMNS`.

    ``domains``: family -> the OOD domains to evaluate (default: all of the family's)."""
    import pandas as pd

    from experiments._scoreboard_bridge import extract, units as bridge_units
    from experiments.scoreboard import FAMILIES, network_config
    from twolayer.empirical.results import config_hash
    from twolayer.empirical.runner import _science

    recs, walls = [], {}
    for name in families:
        fam = FAMILIES[name]
        h = config_hash(_science(network_config(fam, scale, cache)))
        t0 = time.perf_counter()
        nu = [{"family": name, "scale": scale, "cache": str(cache), "seed": int(s), "path": p,
               "alphas": list(alphas), "run_hash": h, "domains": (domains or {}).get(name)}
              for s in seeds for p in NET_PATHS]
        got = run_sweep(f"{NAME}_network", {"family": name, "scale": scale, "run_hash": h}, nu, network_unit,
                        cache / scale / NAME, force=force, progress=True)
        walls[f"{name}_network_s"] = time.perf_counter() - t0
        recs += got
        t0 = time.perf_counter()
        feats = extract(fam, scale, cache, log=log)
        keep = (domains or {}).get(name)
        eu = [dict(u, alphas=list(alphas)) for u in bridge_units(fam, feats)
              if keep is None or u["ood_domain"] in keep]
        got = run_sweep(f"{NAME}_exact", {"family": name, "scale": scale, "features": Path(feats["path"]).name},
                        eu, exact_unit, cache / scale / NAME, force=force, progress=True)
        walls[f"{name}_exact_s"] = time.perf_counter() - t0
        recs += got
        log(f"[wise_real] {name}: network {walls[f'{name}_network_s']:.0f}s, exact {walls[f'{name}_exact_s']:.0f}s")
    rev = git_revision()
    rows = [{**{c: r.get(c) for c in COLUMNS}, "experiment": NAME, "git_revision": rev[:12]} for r in recs]
    return pd.DataFrame(rows, columns=list(COLUMNS)), walls


def write(df, out: Path, config: dict, walls: dict) -> None:
    """``wise_real.csv`` (tidy) and ``wise_real.json`` (config, revision, versions, machine, walls)."""
    from twolayer.provenance import atomic_write_json, atomic_write_text
    out = Path(out)
    rev = git_revision()    # before the table is written: a tracked table being replaced is not "dirty" code
    atomic_write_text(out / f"{NAME}.csv", df.to_csv(index=False, float_format="%.6g"))
    atomic_write_json(out / f"{NAME}.json", {
        "experiment": NAME, "source": SOURCE, "config": config, "columns": list(COLUMNS),
        "git_revision": rev, "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": walls, "summary": summary(df)})


def load_results(results_dir=None):
    """(table, meta) of the written results (default ``docs/results``); torch-free."""
    import pandas as pd
    d = Path(results_dir or RESULTS_DIR)
    csv, js = d / f"{NAME}.csv", d / f"{NAME}.json"
    if not (csv.is_file() and js.is_file()):
        raise FileNotFoundError(f"no {NAME} results in {d}; run `python -m experiments.wise_real`")
    return pd.read_csv(csv), json.loads(js.read_text())


def _t_hw(v) -> float:
    from scipy import stats
    v = np.asarray(v, dtype=float)
    return float(stats.t.ppf(0.95, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def network_gains(df) -> list[dict]:
    """Per (family, OOD domain, path, kind): OOD accuracy at alpha = 0, 1, the oracle-best alpha and
    the alpha chosen on ID val, with the gain over the better endpoint; mean and 90% t half-width
    over seeds, and the per-seed values."""
    net = df[(df["side"] == "network") & (df["metric"] == "acc") & (df["kind"] != "recorded")]
    out = []
    ood = net[net["split"] == "ood"]
    for (fam, dom, path, kind), g in ood.groupby(["family", "domain", "path", "kind"]):
        per = []
        for seed, gs in g.groupby("seed"):
            c = gs.set_index("alpha")["value"].sort_index()
            idv = net[(net["family"] == fam) & (net["seed"] == seed) & (net["path"] == path)
                      & (net["kind"] == kind) & (net["split"] == "id_val")].set_index("alpha")["value"].sort_index()
            idt = net[(net["family"] == fam) & (net["seed"] == seed) & (net["path"] == path)
                      & (net["kind"] == kind) & (net["split"] == "id_test")].set_index("alpha")["value"].sort_index()
            a_best = float(c.idxmax())
            a_val = float(idv[idv == idv.max()].index.max())   # ties: the larger alpha (nearer FT)
            ends = max(c.loc[0.0], c.loc[1.0])
            per.append({"seed": int(seed), "ood_a0": c.loc[0.0], "ood_a1": c.loc[1.0], "ood_best": c.max(),
                        "alpha_best": a_best, "gain_best": c.max() - ends, "alpha_val": a_val,
                        "ood_val": c.loc[a_val], "gain_val": c.loc[a_val] - ends, "id_a0": idt.loc[0.0],
                        "id_a1": idt.loc[1.0], "id_at_best": idt.loc[a_best], "id_best": idt.max()})
        row = {"family": fam, "domain": dom, "path": path, "kind": kind, "n_seeds": len(per)}
        for k in per[0]:
            if k == "seed":
                continue
            vals = [p[k] for p in per]
            row[k] = float(np.mean(vals))
            row[f"{k}_hw90"] = _t_hw(vals)
            row[f"{k}_seeds"] = [float(x) for x in vals]
        out.append(row)
    return out


def exact_gains(df) -> list[dict]:
    """Per (family, domain, path, kind): per task, the OOD loss at the ends and at its best alpha,
    the gain in decades log10(min(L_0, L_1) / L(alpha*)) (> 0: interior beats both ends), and the
    sign accuracy's best-alpha gain; medians over tasks."""
    ex = df[df["side"] == "exact"]
    out = []
    for (fam, path, kind), g in ex.groupby(["family", "path", "kind"]):
        per = []
        for task, gt in g.groupby("task"):
            L = gt[(gt["split"] == "ood") & (gt["metric"] == "loss")].set_index("alpha")["value"].sort_index()
            A = gt[(gt["split"] == "ood") & (gt["metric"] == "acc")].set_index("alpha")["value"].sort_index()
            Li = gt[(gt["split"] == "id") & (gt["metric"] == "loss")].set_index("alpha")["value"].sort_index()
            per.append({"task": task, "L0": L.loc[0.0], "L1": L.loc[1.0], "Lbest": L.min(),
                        "alpha_best": float(L.idxmin()),
                        "gain_decades": float(np.log10(min(L.loc[0.0], L.loc[1.0]) / L.min())),
                        "id_L0": Li.loc[0.0], "id_L1": Li.loc[1.0],
                        "acc0": A.loc[0.0], "acc1": A.loc[1.0], "acc_best": A.max(),
                        "acc_gain": A.max() - max(A.loc[0.0], A.loc[1.0])})
        dom = g.loc[g["split"] == "ood", "domain"].iloc[0]
        row = {"family": fam, "domain": dom, "path": path, "kind": kind, "tasks": [p["task"] for p in per]}
        for k in per[0]:
            if k != "task":
                row[k] = float(np.median([p[k] for p in per]))
                row[f"{k}_tasks"] = [float(p[k]) for p in per]
        out.append(row)
    return out


def endpoint_check(df) -> dict:
    """Per saved network: max |interpolation at its end of a path - the run's own recorded accuracy|.

    FT and LP-FT must agree exactly (both count correct / n). The run records LP's accuracy as a
    float32 mean (``methods.linear_probe``), so LP agrees to float32 rounding (< 1e-6), not bit for bit."""
    net = df[(df["side"] == "network") & (df["metric"] == "acc") & (df["split"].isin(["id_test", "ood"]))]
    keys = ["family", "seed", "path", "alpha", "split", "domain"]
    rec = net[net["kind"] == "recorded"].set_index(keys)["value"]
    wise = net[net["kind"] == "wise"].set_index(keys)["value"]
    j = rec.to_frame("rec").join(wise.to_frame("wise"), how="inner").reset_index()
    j["end"] = [NET_PATHS[p][int(a)] for p, a in zip(j["path"], j["alpha"])]
    return {e: {"n": int(len(g)), "max_abs_diff": float((g["rec"] - g["wise"]).abs().max())}
            for e, g in j.groupby("end")}


def summary(df) -> dict:
    return {"network": network_gains(df), "exact": exact_gains(df), "endpoint_check": endpoint_check(df)}


def markdown(summ: dict) -> str:
    """The summary as markdown tables (docs/beyond_lpft.md): networks (OOD accuracy, points, mean
    ± 90% t half-width over seeds) and the exact model (OOD loss, median over binary tasks)."""
    def pm(r, k):
        return f"{100 * r[k]:.1f} ± {100 * r[k + '_hw90']:.1f}"
    lines = ["| pair | path | kind | OOD alpha=0 | OOD alpha=1 | OOD best alpha | alpha* (seeds) | gain over "
             "both ends (seeds) | alpha on ID val: gain | ID test at alpha* |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summ["network"]:
        lines.append(f"| {r['family']}:{r['domain']} | {r['path']} | {r['kind']} | {pm(r, 'ood_a0')} | "
                     f"{pm(r, 'ood_a1')} | {pm(r, 'ood_best')} | "
                     f"{', '.join(f'{a:g}' for a in r['alpha_best_seeds'])} | "
                     f"{pm(r, 'gain_best')} ({', '.join(f'{100 * g:+.1f}' for g in r['gain_best_seeds'])}) | "
                     f"{pm(r, 'gain_val')} | {pm(r, 'id_at_best')} |")
    lines += ["", "| pair | path | kind | L_ood alpha=0 | L_ood alpha=1 | min L_ood | alpha* (tasks) | gain, decades "
              "(tasks) | sign acc. gain (tasks) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summ["exact"]:
        lines.append(f"| {r['family']}:{r['domain']} | {r['path']} | {r['kind']} | {r['L0']:.3g} | {r['L1']:.3g} | "
                     f"{r['Lbest']:.3g} | {', '.join(f'{a:g}' for a in r['alpha_best_tasks'])} | "
                     f"{', '.join(f'{g:.3f}' for g in r['gain_decades_tasks'])} | "
                     f"{', '.join(f'{100 * g:+.1f}' for g in r['acc_gain_tasks'])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    from experiments.scoreboard import FAMILIES, SCALES, default_cache
    ap = argparse.ArgumentParser(prog="python -m experiments.wise_real", description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), default=None,
                    help="scoreboard family (repeat; default digits)")
    ap.add_argument("--scale", choices=SCALES, default="cpu",
                    help="the scoreboard scale whose saved networks are read (default cpu)")
    ap.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0, 1, 2], metavar="S",
                    help="the network seeds to interpolate (default 0 1 2)")
    ap.add_argument("--cache", type=Path, default=None, help="the scoreboard cache (default as the scoreboard's)")
    ap.add_argument("--results", type=Path, default=None,
                    help="where wise_real.csv / .json go (default docs/results for the cpu scale, else the cache)")
    ap.add_argument("--domains", nargs="+", default=None, metavar="FAMILY=DOMAIN",
                    help="evaluate only these OOD domains of a family (e.g. corruption=zoom_blur-5 for one "
                         "corruption pair); families not named get all their domains")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--force", action="store_true", help="recompute the cached units")
    args = ap.parse_args(argv)
    from experiments._common import require_torch
    require_torch("python -m experiments.wise_real")
    import torch
    torch.set_num_threads(int(args.threads))
    cache = (args.cache or default_cache()).expanduser()
    families = args.family or ["digits"]
    out = args.results or (RESULTS_DIR if args.scale == "cpu" else cache / args.scale / "results")
    t0 = time.perf_counter()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    domains: dict = {}
    for item in args.domains or []:
        fam, sep, dom = item.partition("=")
        if not sep or fam not in families or not dom:
            ap.error(f"--domains takes FAMILY=DOMAIN with FAMILY one of {families}, got {item!r}")
        domains.setdefault(fam, []).append(dom)
    df, walls = run(families, args.scale, cache, args.seeds, force=args.force, log=log, domains=domains)
    config = {"families": families, "domains": domains or None, "scale": args.scale, "seeds": args.seeds,
              "alphas": list(ALPHAS),
              "paths": {k: list(v) for k, v in NET_PATHS.items()}, "threads": args.threads,
              "bn": "running mean / var interpolated with the weights; num_batches_tracked from the nearer end"}
    walls["total_s"] = time.perf_counter() - t0
    write(df, out, config, walls)
    log(markdown(summary(df)))
    log(f"[wise_real] {len(df)} rows -> {out / (NAME + '.csv')} in {walls['total_s']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
