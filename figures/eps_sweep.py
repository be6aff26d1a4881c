"""Theorem 3.5: OOD losses of LP, FT (t = inf, early-stopped) and LP-FT against eps
(log-log, median over seeds with the per-seed curves faint), the squared DERIVED LP
bound, and the ratio LP/FT with the fitted slopes (mean over seeds)."""

import json
from pathlib import Path

import numpy as np

from experiments._common import DEFAULT_RESULTS, load_records
from experiments.eps_sweep import interval, slopes, wide_table
from figures._style import METHOD_COLORS, save, setup

CURVES = [  # column, label, colour, linestyle
    ("lp", "LP (t = inf)", METHOD_COLORS["lp"], "-"),
    ("ft_t=inf", "FT (t = inf)", METHOD_COLORS["ft"], "-"),
    ("ft_best", "FT (best t, early stopped)", METHOD_COLORS["ft"], "--"),
    ("ft_t=1", "FT (t = 1)", METHOD_COLORS["ft"], ":"),
    ("lpft_t=inf", "LP-FT (t = inf)", METHOD_COLORS["lpft"], "-"),
]


def _config(results_dir) -> dict:
    """The cached sweep's config (for the fit window); {} if unreadable."""
    try:
        path = Path(results_dir or DEFAULT_RESULTS) / "eps_sweep" / "latest.json"
        return json.loads(path.read_text())["config"]
    except (OSError, KeyError, ValueError):
        return {}


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("eps_sweep", out=results_dir)
    tab = wide_table(df)
    cfg_max = _config(results_dir).get("fit_eps_max", 0.1)
    plt = setup()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for col, label, color, ls in CURVES:
        if col not in tab:
            continue
        for _, g in tab.groupby("seed"):
            g = g.sort_values("eps")
            ax.plot(g["eps"], g[col], color=color, ls=ls, lw=0.6, alpha=0.25)
        med = tab.groupby("eps_nominal")[col].median()
        mu = interval(slopes(tab, col, cfg_max).values())
        ax.plot(med.index, med.values, color=color, ls=ls, lw=2.2, marker="o", ms=3,
                label=f"{label}: slope {mu[0]:.2f} [{mu[1]:.2f}, {mu[2]:.2f}]")
    ok = tab[tab["lp_bound_status"] == "ok"]
    bmed = (ok["lp_bound"] ** 2).groupby(ok["eps_nominal"]).median()
    ax.plot(bmed.index, bmed.values, color=METHOD_COLORS["bound"], ls="-.", lw=1.5,
            label="DERIVED LP upper bound$^2$ (median)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eps = d(B0, B*)  (log)")
    ax.set_ylabel("OOD loss  (log)")
    ax.set_title(f"OOD loss vs feature quality (slopes fit on eps <= {cfg_max:g}, 95% CI over seeds)")
    ax.legend(fontsize=7.5, loc="lower right")

    for col, label, color, ls in CURVES[1:4]:
        if col not in tab:
            continue
        r = tab["lp"] / tab[col]
        tab["_r"] = r
        med = r.groupby(tab["eps_nominal"]).median()
        mu = interval(slopes(tab, "_r", cfg_max).values())
        ax2.plot(med.index, med.values, color=color, ls=ls, lw=2, marker="o", ms=3,
                 label=f"LP / {label}: slope {mu[0]:.2f} [{mu[1]:.2f}, {mu[2]:.2f}]")
    e = np.array(sorted(tab["eps"].unique()))
    ref = tab.groupby("eps_nominal")["_r"].median().iloc[0] * (e / e[0]) ** 2
    ax2.plot(e, ref, color="k", lw=1, ls=(0, (1, 3)), label="slope 2 reference")
    ax2.axhline(1, color="grey", lw=1)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("eps = d(B0, B*)  (log)")
    ax2.set_ylabel("L_ood(LP) / L_ood(FT)  (log)")
    ax2.set_title("Ratio LP / FT -> 0 as eps -> 0 (Theorem 3.5)")
    ax2.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    return save(fig, out_dir, "eps_sweep", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("eps_sweep"))
