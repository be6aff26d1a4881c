"""Empirical claims of THEORY.md §7 / §6, checked against cached results only.

``empirical_checks(results_dir)`` reads the run files written by
``experiments.empirical`` / ``experiments.empirical_gpu`` (never trains) and
returns one dict per claim and dataset with keys ``id`` (``<claim>_<dataset>``),
``claim``, ``source``, ``status`` ("pass" | "fail" | "not_applicable" | "no
results yet"), ``margin`` (positive = the claim holds by that much), ``unit``,
``n_cases`` (seeds behind the numbers), ``figure``, ``details``. Runs made at
the quick / tiny (CPU test) scales are pipeline checks, not evidence: they are
ignored, and without other results every claim reads "no results yet". A claim
never passes without results.

Rule of thumb (issue 8 §2): FT must not be below LP on ID for a backbone that
fits the task. Where it is, the recipe is wrong, not the paper: ``ft_id`` fails
with that reason and the other accuracy claims of that dataset are
"not_applicable" (not evidence either way). Warnings stored in the run files
(a selected lr or C on the edge of its grid, a run that has not plateaued) are
appended to the details.

CLI: ``python -m paper_checks.empirical [--empirical DIR] [--json]`` (exit 0: no
claim fails, 1: a claim fails, 2: usage error such as a missing folder).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SOURCE = "THEORY.md §7 / paper Table 1"
FIGURE = "figures/empirical_distortion.png"
#: datasets whose shift is large in the sense of the paper (new domains or subpopulations)
LARGE_SHIFT = ("pacs", "cifar-subpop", "cifar-stl", "imagefolder", "digits")
#: "far less" distortion: LP-FT's ID distortion at most this fraction of FT's
FAR_LESS_FACTOR = 5.0

CLAIMS = {
    "ft_id": "FT beats LP on ID accuracy",
    "lp_ood": "LP beats FT on OOD accuracy under a large shift",
    "lpft_best": "LP-FT is at least as good as both LP and FT, ID and OOD",
    "dist_id_ood": "FT changes ID features more than OOD features",
    "lpft_dist": f"LP-FT changes features far less than FT (ID distortion at least {FAR_LESS_FACTOR:g}x smaller)",
}


def _load(results_dir) -> list[dict]:
    root = Path(results_dir)
    recs: list[dict] = []
    if not root.is_dir():
        return recs
    for p in sorted(root.glob("*/*/seed*.json")):
        try:
            obj = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if obj.get("config", {}).get("quick"):
            continue
        recs.extend(obj.get("records", []))
    return recs


UNITS = {"ft_id": "percentage points (FT - LP, ID)", "lp_ood": "percentage points (LP - FT, OOD)",
         "lpft_best": "percentage points (LP-FT - best of LP and FT, the smaller of ID and OOD)",
         "dist_id_ood": "authors' msq x100 (ID - OOD)",
         "lpft_dist": f"log10(FT / LP-FT ID distortion / {FAR_LESS_FACTOR:g})"}


def _no_results(key: str, why: str, ds: str | None = None) -> dict:
    return {"id": key if ds is None else f"{key}_{ds.replace('-', '_')}",
            "claim": CLAIMS[key] if ds is None else f"{CLAIMS[key]} [{ds}]", "source": SOURCE,
            "status": "no results yet", "margin": None, "unit": UNITS[key],
            "n_cases": 0, "figure": FIGURE if key.startswith(("dist", "lpft_dist")) else None,
            "details": why if ds is None else f"{ds}: {why}"}


def _warnings(results_dir, ds) -> list[str]:
    out = []
    for p in sorted(Path(results_dir).glob("*/*/seed*.json")):
        try:
            obj = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        recs = obj.get("records", [])
        if not obj.get("config", {}).get("quick") and recs and recs[0].get("dataset") == ds:
            out.extend(obj.get("warnings", []))
    return out


def _mean(summ, m, col):
    v = summ.get(m, {}).get(col)
    return (v[0], v[1], v[2]) if v is not None and math.isfinite(v[0]) else None


def _fmt(v):
    if v is None:
        return "n/a"
    return f"{v[0]:.2f}" + (f" ± {v[1]:.2f}" if math.isfinite(v[1]) else "")


def empirical_checks(results_dir) -> list[dict]:
    """Evaluate every empirical claim on each dataset found under ``results_dir``."""
    recs = _load(results_dir)
    if not recs:
        why = f"no (non-quick) empirical run files under {results_dir}"
        return [_no_results(k, why) for k in CLAIMS]
    try:
        from twolayer.empirical.table import summarize
    except ImportError as e:  # the optional extra is missing: cannot summarise
        return [_no_results(k, f"twolayer.empirical unavailable ({e})") for k in CLAIMS]
    out = []
    for ds in sorted({r["dataset"] for r in recs}):
        summ = summarize(recs, ds)
        warns = _warnings(results_dir, ds)
        wnote = (f" | {len(warns)} run warning(s), e.g. {warns[0]}" if warns else "")
        lp_i, ft_i = _mean(summ, "lp", "id"), _mean(summ, "ft", "id")
        recipe_bad = bool(lp_i and ft_i and ft_i[0] < lp_i[0])
        bad_note = (f"rule of thumb failed: FT below LP on ID ({ft_i[0]:.2f} vs {lp_i[0]:.2f} %), so the FT "
                    "recipe is wrong for this backbone, not the paper; not evidence") if recipe_bad else ""

        def result(key, margin, n, details, applies=True):
            if not applies:
                return
            if margin is None:
                out.append(_no_results(key, details, ds))
                return
            status = "pass" if margin > 0 or (key == "lpft_best" and margin == 0) else "fail"
            extra = ""
            if recipe_bad and key in ("lp_ood", "lpft_best"):
                status, extra = "not_applicable", " | " + bad_note
            elif recipe_bad and key == "ft_id":
                extra = " | " + bad_note
            out.append({"id": f"{key}_{ds.replace('-', '_')}", "claim": f"{CLAIMS[key]} [{ds}]",
                        "source": SOURCE, "status": status, "margin": float(margin), "unit": UNITS[key],
                        "n_cases": int(n), "figure": FIGURE if key in ("dist_id_ood", "lpft_dist") else None,
                        "details": f"{ds}: {details}{extra}{wnote}"})

        lp_id, ft_id, lpft_id = (_mean(summ, m, "id") for m in ("lp", "ft", "lpft"))
        ood_col = "ood_avg" if any("ood_avg" in summ.get(m, {}) for m in summ) else next(
            (c for c in summ.get("ft", {}) if c.startswith("ood:")), "ood_avg")
        lp_ood, ft_ood, lpft_ood = (_mean(summ, m, ood_col) for m in ("lp", "ft", "lpft"))
        n = min((v[2] for v in (lp_id, ft_id, lpft_id) if v is not None), default=0)

        if lp_id and ft_id:
            result("ft_id", ft_id[0] - lp_id[0], n, f"ID acc % FT {_fmt(ft_id)} vs LP {_fmt(lp_id)}")
        else:
            result("ft_id", None, 0, "LP or FT results missing")
        if ds in LARGE_SHIFT:
            if lp_ood and ft_ood:
                result("lp_ood", lp_ood[0] - ft_ood[0], n,
                       f"OOD acc % ({ood_col}) LP {_fmt(lp_ood)} vs FT {_fmt(ft_ood)}")
            else:
                result("lp_ood", None, 0, "LP or FT results missing")
        if lp_id and ft_id and lpft_id and lp_ood and ft_ood and lpft_ood:
            m_id = lpft_id[0] - max(lp_id[0], ft_id[0])
            m_ood = lpft_ood[0] - max(lp_ood[0], ft_ood[0])
            result("lpft_best", min(m_id, m_ood), n,
                   f"LP-FT ID {_fmt(lpft_id)} (best other {max(lp_id[0], ft_id[0]):.2f}), "
                   f"OOD {_fmt(lpft_ood)} (best other {max(lp_ood[0], ft_ood[0]):.2f}); margin = the "
                   "smaller of the two differences, points")
        else:
            result("lpft_best", None, 0, "LP, FT or LP-FT results missing")
        d_id, d_ood = _mean(summ, "ft", "dist_id"), _mean(summ, "ft", "dist_ood_avg")
        if d_id and d_ood:
            result("dist_id_ood", d_id[0] - d_ood[0], d_id[2],
                   f"FT distortion (mean sq. change x100) ID {_fmt(d_id)} vs OOD avg {_fmt(d_ood)}")
        else:
            result("dist_id_ood", None, 0, "FT distortion missing")
        l_id = _mean(summ, "lpft", "dist_id")
        if d_id and l_id:
            ratio = d_id[0] / max(l_id[0], 1e-300)
            hn = _mean(summ, "lpft", "lp_head_norm")
            l2 = _mean(summ, "lpft", "lp_l2")
            result("lpft_dist", math.log10(ratio / FAR_LESS_FACTOR), l_id[2],
                   f"ID distortion x100 FT {_fmt(d_id)} vs LP-FT {_fmt(l_id)} (ratio {ratio:.2f}; "
                   f"margin = log10(ratio / {FAR_LESS_FACTOR:g})); LP head norm {_fmt(hn)}, "
                   f"LP l2 {l2[0] if l2 else float('nan'):.3g} (THEORY.md §7 subtlety: distortion "
                   "depends on the LP head norm)")
        else:
            result("lpft_dist", None, 0, "FT or LP-FT distortion missing")
    return out


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m paper_checks.empirical",
                                 description="Check the empirical claims (THEORY.md §7) on cached results; "
                                             "never trains.")
    ap.add_argument("--empirical", default="results/empirical_gpu", metavar="DIR",
                    help="cached empirical results, the run files (default results/empirical_gpu); must exist")
    ap.add_argument("--json", action="store_true", help="print the claims as JSON")
    a = ap.parse_args(argv)
    if not Path(a.empirical).is_dir():
        ap.error(f"--empirical {a.empirical}: no such folder (run `python -m experiments.empirical_gpu` first)")
    checks = empirical_checks(a.empirical)
    if a.json:
        print(json.dumps(checks, indent=1))
    else:
        for c in checks:
            m = "-" if c["margin"] is None else f"{c['margin']:.3g}"
            print(f"{c['status']:15s} {m:>8s} {c['claim']}  -- {c['details']}")
    return 1 if any(c["status"] == "fail" for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
