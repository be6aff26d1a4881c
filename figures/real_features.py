"""The two-layer model on real features beside the real network (THEORY.md §9): left, where
each real instance sits on the conditions phase diagram (eps = d(B0, B*) vs rho = OOD energy
outside S; colour = the exact simulation's OOD winner, log10(L_ood FT / L_ood LP)); middle,
the linear model's OOD loss per method; right, feature change on ID-test vs OOD inputs for
FT and LP-FT, the linear model (filled) and, where cached, the real network (hatched; mean
||f_ft(x) - f_0(x)||, a different scale: read the orderings). Cached records only."""

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, METHOD_LABELS, save, setup


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("real_features", out=results_dir)
    plt = setup()
    keys = ["dataset", "task", "ood_domain", "s_tol", "target"]
    inst = df.groupby(keys, sort=True)
    labels = [f"{d} {t}\n->{o} tol {s:g} {g}" for (d, t, o, s, g), _ in inst]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    ax = axes[0]
    pts = []
    for (name, g) in inst:
        lp = g[g["method"] == "lp"].iloc[0]
        ft = g[g["method"] == "ft"].iloc[0]
        pts.append((lp["rho"], lp["eps"], np.log10(ft["lin_ood_loss"] / lp["lin_ood_loss"]), name))
    r = np.array([p[2] for p in pts])
    vmax = max(float(np.max(np.abs(r))), 1e-3)
    sc = ax.scatter([max(p[0], 1e-8) for p in pts], [p[1] for p in pts], c=r, cmap="RdBu_r", vmin=-vmax,
                    vmax=vmax, s=90, edgecolors="k")
    for p in pts:
        ax.annotate(f"{p[3][0]} {p[3][1]}", (max(p[0], 1e-8), p[1]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("rho = fraction of OOD feature energy outside S")
    ax.set_ylabel("eps = d(B0, B*) = 2 sin(theta/2)")
    ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
    ax.axvline(0.1, color="0.6", lw=0.8, ls="--")
    fig.colorbar(sc, ax=ax, label="log10(L_ood FT / L_ood LP)  (> 0: LP wins)")
    ax.set_title("Real instances on the (eps, rho) plane")

    ax = axes[1]
    x = np.arange(len(labels))
    wdt = 0.27
    for j, m in enumerate(("lp", "ft", "lpft")):
        vals = [g[g["method"] == m]["lin_ood_loss"].iloc[0] for _, g in inst]
        ax.bar(x + (j - 1) * wdt, vals, wdt, color=METHOD_COLORS[m], label=METHOD_LABELS[m])
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("linear model L_ood = (w* - w)^T Sigma (w* - w), t = inf")
    ax.legend()
    ax.set_title("Linear model OOD loss on real features")

    ax = axes[2]
    for j, m in enumerate(("ft", "lpft")):
        fid = [g[g["method"] == m]["lin_fc_id"].iloc[0] for _, g in inst]
        food = [g[g["method"] == m]["lin_fc_ood"].iloc[0] for _, g in inst]
        off = (j - 0.5) * 2 * wdt
        ax.bar(x + off - wdt / 2, fid, wdt / 1.05, color=METHOD_COLORS[m], label=f"{METHOD_LABELS[m]} ID (linear)")
        ax.bar(x + off + wdt / 2, food, wdt / 1.05, color=METHOD_COLORS[m], alpha=0.45,
               label=f"{METHOD_LABELS[m]} OOD (linear)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("linear model: mean ||(B - B0) x||")
    ax.set_title("Feature change, ID test vs OOD")
    if "net_fc_id" in df.columns and np.isfinite(df["net_fc_id"].astype(float)).any():
        ax2 = ax.twinx()
        for j, m in enumerate(("ft", "lpft")):
            nid = [g[g["method"] == m]["net_fc_id"].iloc[0] for _, g in inst]
            nood = [g[g["method"] == m]["net_fc_ood"].iloc[0] for _, g in inst]
            off = (j - 0.5) * 2 * wdt
            ax2.scatter(x + off - wdt / 2, nid, marker="^", color="k", zorder=5,
                        label="network ID" if j == 0 else None)
            ax2.scatter(x + off + wdt / 2, nood, marker="v", color="0.4", zorder=5,
                        label="network OOD" if j == 0 else None)
        ax2.set_ylabel("real network: mean ||f_tuned(x) - f_0(x)|| (markers)")
        ax2.legend(loc="upper right", fontsize=7)
    ax.legend(loc="upper left", fontsize=7)
    fig.suptitle("The two-layer model on real penultimate features (THEORY.md §9)", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "real_features", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("real_features"))
