"""Paper-style tables from cached records, next to the paper's numbers (THEORY.md §7).

Accuracies are of the (lr, epoch) selected on ID validation, in percent.
Intervals: mean +- half-width of the two-sided 90% Student-t confidence interval
over seeds, t_{0.95, n-1} * s / sqrt(n) (the paper's tables give 90% intervals
over seeds; ``metrics.interval90``). ``ood_avg`` is the mean over OOD domains
(per seed, then over seeds). ``format_table`` also prints the selected lrs and
epochs, the LP C, and the issue 8 rule of thumb (FT must not be below LP on ID).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .metrics import interval90

__all__ = ["summarize", "format_table", "format_distortion", "format_warnings", "rule_of_thumb",
           "PAPER_ACCURACY", "PAPER_DISTORTION", "INTERVAL_NOTE"]

#: how every interval of these tables is computed (printed with them)
INTERVAL_NOTE = "mean ± half-width of the two-sided 90% Student-t CI over seeds, t(0.95, n-1)·s/√n"

METHOD_NAMES = {"lp": "LP", "ft": "FT", "lpft": "LP-FT"}

#: THEORY.md §7, ResNet-50 MoCo-v2 unless noted: (ID, OOD) in percent
PAPER_ACCURACY = {
    "CIFAR-10 -> STL": {"lp": (91.8, 85.1), "ft": (97.3, 82.4), "lpft": (97.5, 90.7)},
    "Living-17": {"lp": (96.5, 82.2), "ft": (97.1, 77.7), "lpft": (97.8, 82.6)},
    "DomainNet (CLIP RN50)": {"lp": (89.4, 79.7), "ft": (84.5, 55.5), "lpft": (91.6, 80.7)},
}
#: THEORY.md §7, feature distortion x100 (ID, OOD)
PAPER_DISTORTION = {
    "Living-17": {"ft": (1.88, 1.67), "lpft": (0.11, 0.09)},
    "CIFAR->STL": {"ft": (2.23, 1.70), "lpft": (0.066, 0.044)},
}


def _final_selected(records, dataset=None):
    return [r for r in records if r["epoch"] is None and r["selected"]
            and (dataset is None or r["dataset"] == dataset)]


def summarize(records, dataset: str) -> dict:
    """{method: {column: (mean, half_width, n)}} for accuracy (percent) and distortion.

    Columns: ``id`` (ID test acc), ``ood:<domain>``, ``ood_avg``, ``dist_id`` /
    ``dist_ood:<domain>`` / ``dist_ood_avg`` (authors' msq x100), ``dist_cos_id``,
    ``dist_cos_ood_avg``, ``weight_dist``, ``lp_head_norm``, ``lp_l2``, ``phi_rel``,
    ``init_grad_norm``, ``images_per_s``.
    """
    per = defaultdict(lambda: defaultdict(dict))  # method -> seed -> column -> value
    start = [r for r in records if r["dataset"] == dataset and r["selected"] and r["epoch"] == 0
             and r["split"] == "run"]
    for r in _final_selected(records, dataset) + start:
        m, s, met = r["method"], r["seed"], r["metric"]
        col = None
        if met == "acc" and r["split"] == "id_test":
            col, v = "id", 100 * r["value"]
        elif met == "acc" and r["split"] == "ood":
            col, v = f"ood:{r['domain']}", 100 * r["value"]
        elif met == "distortion_msq":
            col = "dist_id" if r["split"] == "id_val" else f"dist_ood:{r['domain']}"
            v = 100 * r["value"]
        elif met == "distortion_cos":
            col = "dist_cos_id" if r["split"] == "id_val" else f"dist_cos_ood:{r['domain']}"
            v = r["value"]
        elif met in ("weight_dist", "phi_rel", "init_grad_norm", "images_per_s", "init_loss", "best_epoch"):
            col, v = met, r["value"]
        if col is not None:
            per[m][s][col] = v
        if r["lr"] is not None:
            per[m][s]["lr"] = float(r["lr"])
        if r.get("lp_c") is not None:
            per[m][s]["lp_c"] = float(r["lp_c"])
        if r["lp_head_norm"] is not None:
            per[m][s]["lp_head_norm"] = r["lp_head_norm"]
            per[m][s]["lp_l2"] = r["lp_l2"]
    out = {}
    for m, seeds in per.items():
        for s, cols in seeds.items():
            for prefix in ("ood:", "dist_ood:", "dist_cos_ood:"):
                vals = [v for k, v in cols.items() if k.startswith(prefix)]
                if vals:
                    cols[prefix.rstrip(":") + "_avg"] = float(np.mean(vals))
        keys = sorted({k for cols in seeds.values() for k in cols})
        out[m] = {k: interval90([cols.get(k, np.nan) for cols in seeds.values()]) for k in keys}
    return out


def _fmt(x) -> str:
    mean, hw, n = x
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.1f}" if not np.isfinite(hw) else f"{mean:.1f} ± {hw:.1f}"


def format_table(records, dataset: str) -> str:
    """Method x (ID, each OOD domain, OOD avg) table, then the paper's numbers."""
    summ = summarize(records, dataset)
    if not summ:
        return f"{dataset}: no results yet"
    doms = sorted({k[4:] for m in summ.values() for k in m if k.startswith("ood:")})
    cols = ["id"] + [f"ood:{d}" for d in doms] + (["ood_avg"] if len(doms) > 1 else [])
    names = ["ID"] + [f"OOD {d}" for d in doms] + (["OOD avg"] if len(doms) > 1 else [])
    n = max(v[2] for m in summ.values() for v in m.values())
    lines = [f"{dataset} -- accuracy % ({INTERVAL_NOTE}, n = {n} seeds; (lr, epoch) chosen on ID val)",
             "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in ("lp", "ft", "lpft"):
        if m in summ:
            lines.append(f"| {METHOD_NAMES[m]} | " + " | ".join(_fmt(summ[m].get(c, (np.nan, np.nan, 0)))
                                                          for c in cols) + " |")
    sel = []
    for m in ("ft", "lpft"):
        if m in summ and "lr" in summ[m]:
            lrs = sorted({r["lr"] for r in records if r["dataset"] == dataset and r["method"] == m
                          and r["selected"] and r["lr"] is not None})
            sel.append(f"{METHOD_NAMES[m]} lr {', '.join(f'{x:g}' for x in lrs)} (per seed), "
                       f"epoch {summ[m]['best_epoch'][0]:.1f}" if "best_epoch" in summ[m] else
                       f"{METHOD_NAMES[m]} lr {', '.join(f'{x:g}' for x in lrs)}")
    if "lp" in summ and "lp_c" in summ["lp"]:
        sel.append(f"LP C {summ['lp']['lp_c'][0]:.3g} (mean), |W| {summ['lp']['lp_head_norm'][0]:.3g}")
    if sel:
        lines.append("selected on ID val: " + "; ".join(sel))
    w = rule_of_thumb(records, dataset)
    if w:
        lines.append("WARNING: " + w)
    lines.append("")
    lines.append("paper (THEORY.md §7), ID / OOD %:")
    for shift, vals in PAPER_ACCURACY.items():
        lines.append(f"  {shift:22s} " + "  ".join(f"{METHOD_NAMES[m]} {i:.1f}/{o:.1f}"
                                                 for m, (i, o) in vals.items()))
    return "\n".join(lines)


def format_distortion(records, dataset: str) -> str:
    """Feature distortion (authors' msq x100, and 1 - cos) ID vs OOD, with the LP head norm."""
    summ = summarize(records, dataset)
    if not summ:
        return f"{dataset}: no results yet"
    lines = [f"{dataset} -- feature distortion (eval mode, penultimate; msq x100 and 1-cos), weight distance",
             "| method | msq ID | msq OOD avg | 1-cos ID | 1-cos OOD avg | ||θ-θ0|| | phi/|W*|² | "
             "|∇B L| at start | LP |W| | LP l2 |", "|---" * 10 + "|"]

    def g(m, k, fmt="{:.3g}"):
        v = summ[m].get(k)
        if v is None or not np.isfinite(v[0]):
            return "-"
        return fmt.format(v[0]) + ("" if not np.isfinite(v[1]) else " ± " + fmt.format(v[1]))

    for m in ("ft", "lpft"):
        if m in summ:
            lines.append(f"| {METHOD_NAMES[m]} | {g(m, 'dist_id')} | {g(m, 'dist_ood_avg')} | "
                         f"{g(m, 'dist_cos_id')} | {g(m, 'dist_cos_ood_avg')} | {g(m, 'weight_dist')} | "
                         f"{g(m, 'phi_rel')} | {g(m, 'init_grad_norm')} | {g(m, 'lp_head_norm')} | "
                         f"{g(m, 'lp_l2')} |")
    lines.append("paper (THEORY.md §7), msq x100 ID / OOD: " + "; ".join(
        f"{s}: " + ", ".join(f"{METHOD_NAMES[m]} {i}/{o}" for m, (i, o) in v.items())
        for s, v in PAPER_DISTORTION.items()))
    div = sorted({(r["method"], r["seed"]) for r in records if r["dataset"] == dataset and r["selected"]
                  and r["metric"] == "diverged" and r["value"] > 0})
    if div:
        lines.append(f"WARNING: selected runs that diverged (method, seed): {div}")
    ips = [summ[m]["images_per_s"][0] for m in ("ft", "lpft") if m in summ and "images_per_s" in summ[m]]
    if ips:
        lines.append(f"training throughput: {np.mean(ips):.0f} images/s (mean over FT / LP-FT runs)")
    return "\n".join(lines)


def rule_of_thumb(records, dataset: str) -> str | None:
    """Issue 8 §2: FT must not be below LP on ID (mean over seeds); a message when it is."""
    from .selection import rule_of_thumb_warning
    summ = summarize(records, dataset)
    if "lp" not in summ or "ft" not in summ or "id" not in summ["lp"] or "id" not in summ["ft"]:
        return None
    return rule_of_thumb_warning(summ["lp"]["id"][0] / 100, summ["ft"]["id"][0] / 100, where=f"{dataset}: ")


def format_warnings(warnings: list[str], limit: int = 30) -> str:
    """The run files' warnings (edge of grid, not plateaued, LP not converged, FT below LP)."""
    if not warnings:
        return "warnings: none"
    lines = [f"warnings ({len(warnings)}):"] + [f"  - {w}" for w in warnings[:limit]]
    if len(warnings) > limit:
        lines.append(f"  ... and {len(warnings) - limit} more (see the run files' 'warnings')")
    return "\n".join(lines)
