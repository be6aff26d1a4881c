"""Scoring the exact model's predictions against real networks (THEORY.md §9; issue 18).

Pure NumPy / SciPy / pandas (no torch), so the committed table
(``docs/results/scoreboard.csv``) can be scored and checked anywhere.

For each real (task, shift) pair the bridge (``twolayer.bridge``) gives the exact
two-layer model's LP / FT / LP-FT on the pretrained network's features, over a few
binary tasks; :func:`bridge_predictions` reduces them to one prediction per claim
(the median over tasks). :func:`network_outcomes` reads the same claims off the real
network's numbers (means over seeds). :func:`score` counts, over the evidence-grade
pairs, how often each predictor matches the network:

* ``bridge``: the exact model on the pair's own features;
* ``conditions``: the synthetic zero-head phase diagram read at the pair's (eps, rho)
  (LP vs FT OOD only);
* ``headline``: always the paper's claim;
* ``majority``: always the outcome most pairs show (in-sample, so optimistic).

Rates carry a Clopper-Pearson 90% interval (``scipy.stats.binomtest``). Pairs of one
family share their training runs and backbone, so they are not independent: the
intervals are optimistic, and :func:`score` also reports each family alone.
Spearman's rho between the predicted log10(L_FT / L_LP) and the network's OOD
accuracy difference (LP - FT) carries a 90% percentile-bootstrap interval over pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Claim", "CLAIMS", "bridge_predictions", "network_outcomes", "binomial_interval",
           "spearman_interval", "score", "score_table"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, as a prediction column and an observation column."""

    id: str
    text: str
    pred: str
    obs: str


CLAIMS: tuple[Claim, ...] = (
    Claim("ft_beats_lp_id", "FT beats LP on ID", "pred_ft_beats_lp_id", "obs_ft_beats_lp_id"),
    Claim("lp_beats_ft_ood", "LP beats FT on OOD", "pred_lp_beats_ft_ood", "obs_lp_beats_ft_ood"),
    Claim("lpft_best_ood", "LP-FT at least as good as LP and FT on OOD", "pred_lpft_best_ood",
          "obs_lpft_best_ood"),
    Claim("ft_distorts_id_more", "FT changes ID features more than OOD features", "pred_ft_distorts_id_more",
          "obs_ft_distorts_id_more"),
    Claim("lpft_distorts_less", "LP-FT changes (ID) features less than FT", "pred_lpft_distorts_less",
          "obs_lpft_distorts_less"),
)


def _median(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else math.nan


def _log10_ratio(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(a, 1e-300) / np.maximum(b, 1e-300))


def bridge_predictions(g) -> dict:
    """The exact model's predictions for one pair from its bridge records (task x method rows).

    Each claim is decided by the median over the pair's binary tasks: log10 loss
    ratios for the losses (THEORY.md §2's L_id and L_ood at t = inf), differences of
    ``feature_change`` (mean ||(B - B0) x|| over ID-test / OOD inputs) for distortion.
    """
    by = {m: g[g["method"] == m].sort_values("task").reset_index(drop=True) for m in ("lp", "ft", "lpft")}
    if any(len(v) == 0 for v in by.values()) or len({len(v) for v in by.values()}) != 1:
        raise ValueError(f"bridge records of pair {g['pair'].iloc[0]!r} lack a method or a task")
    lp, ft, lpft = by["lp"], by["ft"], by["lpft"]
    r_ood = _log10_ratio(ft["lin_ood_loss"], lp["lin_ood_loss"])
    r_id = _log10_ratio(ft["lin_id_loss"], lp["lin_id_loss"])
    r_best = _log10_ratio(lpft["lin_ood_loss"], np.minimum(lp["lin_ood_loss"], ft["lin_ood_loss"]))
    d_ft = np.asarray(ft["lin_fc_id"], float) - np.asarray(ft["lin_fc_ood"], float)
    d_rel = np.asarray(ft["lin_fc_rel_id"], float) - np.asarray(ft["lin_fc_rel_ood"], float)
    d_lpft = np.asarray(lpft["lin_fc_id"], float) - np.asarray(ft["lin_fc_id"], float)
    out = {"n_tasks": int(len(ft)), "tasks": " ".join(ft["task"]),
           "d": int(ft["d"].iloc[0]), "k": int(ft["k"].iloc[0])}
    for col in ("eps", "rho", "m", "cos_R0_Sperp", "cos_Rstar_Sperp", "theta_deg", "w_star_norm",
                "label_resid_frac", "x_energy_dropped"):
        if col in ft:
            out[col] = _median(ft[col])
    for col in sorted(c for c in ft.columns if c.startswith(("rho_s", "m_s"))):
        out[col] = _median(ft[col])
    out.update({
        "lin_log10_id_ft_over_lp": _median(r_id),
        "lin_log10_ood_ft_over_lp": _median(r_ood),
        "lin_log10_ood_lpft_over_best": _median(r_best),
        "lin_ood_acc_lp": _median(lp["lin_ood_acc"]), "lin_ood_acc_ft": _median(ft["lin_ood_acc"]),
        "lin_ood_acc_lpft": _median(lpft["lin_ood_acc"]),
        "lin_fc_id_minus_ood_ft": _median(d_ft), "lin_fc_rel_id_minus_ood_ft": _median(d_rel),
        "lin_fc_id_lpft_minus_ft": _median(d_lpft),
        "lin_tasks_lp_beats_ft_ood": int(np.sum(r_ood > 0)),
        "thm33_status_ft": " ".join(sorted(set(map(str, ft.get("thm33_status", []))))),
        "flow_status": " ".join(sorted(set(map(str, g.get("flow_status", []))))),
    })
    out.update({
        "pred_ft_beats_lp_id": bool(out["lin_log10_id_ft_over_lp"] < 0),
        "pred_lp_beats_ft_ood": bool(out["lin_log10_ood_ft_over_lp"] > 0),
        # LP-FT's loss equal to the best within 1e-9 relative counts as "at least as good"
        "pred_lpft_best_ood": bool(out["lin_log10_ood_lpft_over_best"] <= 1e-9 / math.log(10)),
        "pred_ft_distorts_id_more": bool(out["lin_fc_id_minus_ood_ft"] > 0),
        "pred_lpft_distorts_less": bool(out["lin_fc_id_lpft_minus_ft"] < 0),
    })
    return out


def network_outcomes(row) -> dict:
    """The claims read off the network's means over seeds (``net_*`` columns); None where missing."""
    def get(k):
        v = row.get(k, math.nan)
        return float(v) if v is not None else math.nan

    def decide(ok, value):
        return bool(value) if ok else None

    lp_id, ft_id = get("net_lp_id_acc"), get("net_ft_id_acc")
    lp, ft, lpft = get("net_lp_ood_acc"), get("net_ft_ood_acc"), get("net_lpft_ood_acc")
    di, do, dl = get("net_ft_dist_msq_id"), get("net_ft_dist_msq_ood"), get("net_lpft_dist_msq_id")
    fin = np.isfinite
    return {
        "obs_ft_beats_lp_id": decide(fin([lp_id, ft_id]).all(), ft_id > lp_id),
        "obs_lp_beats_ft_ood": decide(fin([lp, ft]).all(), lp > ft),
        "obs_lpft_best_ood": decide(fin([lp, ft, lpft]).all(), lpft >= max(lp, ft)),
        "obs_ft_distorts_id_more": decide(fin([di, do]).all(), di > do),
        "obs_lpft_distorts_less": decide(fin([di, dl]).all(), dl < di),
        "obs_ood_acc_lp_minus_ft": lp - ft,
    }


def binomial_interval(k: int, n: int, confidence: float = 0.9) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion k / n (``scipy.stats.binomtest``)."""
    if n <= 0:
        return math.nan, math.nan
    from scipy.stats import binomtest
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def spearman_interval(x, y, confidence: float = 0.9, n_resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float, int]:
    """Spearman's rho of (x, y) and a percentile-bootstrap interval over pairs: (rho, lo, hi, n)."""
    from scipy.stats import bootstrap, rankdata, spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan, n
    rho = float(spearmanr(x, y).statistic)

    def stat(a, b, axis=-1):  # Spearman = Pearson of ranks, vectorised over resamples
        ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
        ra = ra - ra.mean(axis=axis, keepdims=True)
        rb = rb - rb.mean(axis=axis, keepdims=True)
        den = np.sqrt((ra ** 2).sum(axis=axis) * (rb ** 2).sum(axis=axis))
        num = (ra * rb).sum(axis=axis)
        # a resample with no spread (all one pair) has no correlation: counted as 0
        return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)

    res = bootstrap((x, y), stat, paired=True, vectorized=True, confidence_level=confidence,
                    n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    return rho, float(res.confidence_interval.low), float(res.confidence_interval.high), n


def _rows_for(df, scope: str) -> list[dict]:
    rows = []
    for c in CLAIMS:
        if c.obs not in df or c.pred not in df:
            continue
        sub = df[df[c.obs].notna() & df[c.pred].notna()]
        obs = sub[c.obs].astype(bool).to_numpy()
        n = int(len(sub))
        n_true = int(obs.sum())
        majority = n_true * 2 >= n
        preds = {"bridge": sub[c.pred].astype(bool).to_numpy(), "headline": np.ones(n, bool),
                 "majority": np.full(n, majority)}
        if c.id == "lp_beats_ft_ood" and "cond_pred_lp_beats_ft_ood" in sub:
            cond = sub["cond_pred_lp_beats_ft_ood"]
            if cond.notna().all() and n:
                preds["conditions"] = cond.astype(bool).to_numpy()
        for name, p in preds.items():
            k = int(np.sum(p == obs))
            lo, hi = binomial_interval(k, n)
            rows.append({"scope": scope, "claim": c.id, "text": c.text, "predictor": name, "n_pairs": n,
                         "n_claim_true": n_true, "n_match": k, "rate": k / n if n else math.nan,
                         "lo90": lo, "hi90": hi})
    if {"lin_log10_ood_ft_over_lp", "obs_ood_acc_lp_minus_ft"} <= set(df.columns):
        rho, lo, hi, n = spearman_interval(df["lin_log10_ood_ft_over_lp"], df["obs_ood_acc_lp_minus_ft"])
        rows.append({"scope": scope, "claim": "spearman_ood", "predictor": "bridge",
                     "text": "Spearman rho: predicted log10(L_FT/L_LP) vs network OOD acc(LP) - acc(FT)",
                     "n_pairs": n, "n_claim_true": math.nan, "n_match": math.nan, "rate": rho,
                     "lo90": lo, "hi90": hi})
    return rows


def score(table):
    """Match rates of every claim and predictor (see the module doc), with 90% intervals.

    ``table``: one row per pair with ``evidence_grade``, the ``pred_*`` columns of
    :func:`bridge_predictions` and the ``net_*`` columns (``obs_*`` are derived here when
    absent). Scopes: ``evidence`` (evidence-grade pairs), ``all`` (every pair, for
    reference) and ``family:<name>`` (the evidence-grade pairs of one family).
    """
    import pandas as pd
    df = table.copy()
    if not all(c.obs in df for c in CLAIMS):
        obs = pd.DataFrame([network_outcomes(r) for r in df.to_dict("records")], index=df.index)
        for col in obs:
            df[col] = obs[col]
    grade = df["evidence_grade"].astype(bool) if "evidence_grade" in df else pd.Series(False, index=df.index)
    rows = _rows_for(df[grade], "evidence") + _rows_for(df, "all")
    for fam, g in df[grade].groupby("family", sort=True):
        rows += _rows_for(g, f"family:{fam}")
    return pd.DataFrame(rows)


def score_table(summary) -> str:
    """A plain-text table of :func:`score`'s evidence-grade rows."""
    ev = summary[summary["scope"] == "evidence"]
    if ev.empty or int(ev["n_pairs"].max()) == 0:
        return "no evidence-grade pair: nothing to score (each pair's grade_reason says why)"
    lines = [f"{'claim':24s} {'predictor':10s} {'match':>9s} {'rate':>6s}  90% interval"]
    for _, r in ev.iterrows():
        if r["claim"] == "spearman_ood":
            lines.append(f"{'spearman_ood':24s} {'bridge':10s} {'n=' + str(int(r['n_pairs'])):>9s} "
                         f"{r['rate']:+6.2f}  [{r['lo90']:+.2f}, {r['hi90']:+.2f}]")
            continue
        lines.append(f"{r['claim']:24s} {r['predictor']:10s} {int(r['n_match']):>4d}/{int(r['n_pairs']):<4d} "
                     f"{r['rate']:6.2f}  [{r['lo90']:.2f}, {r['hi90']:.2f}]")
    return "\n".join(lines)
