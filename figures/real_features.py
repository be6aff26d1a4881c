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
    names = [name for name, _ in inst]
    # short tick labels: only what differs between instances; what all share goes into the titles
    varies = [j for j in range(len(keys)) if len({n[j] for n in names}) > 1] or [1]
    labels = ["\n".join(f"{n[j]:g}" if isinstance(n[j], float) else str(n[j]) for j in varies) for n in names]
    shared = ", ".join(f"{k} {names[0][j]:g}" if isinstance(names[0][j], float) else f"{k} {names[0][j]}"
                       for j, k in enumerate(keys) if j not in varies)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained")
    ax = axes[0]
    pts = []
    for (name, g) in inst:
        lp = g[g["method"] == "lp"].iloc[0]
        ft = g[g["method"] == "ft"].iloc[0]
        pts.append((lp["rho"], lp["eps"], np.log10(ft["lin_ood_loss"] / lp["lin_ood_loss"]), name))
    r = np.array([p[2] for p in pts])
    vmax = max(float(np.max(np.abs(r))), 1e-3)
    # the whole (eps, rho) plane with the conditions' four regions, so the instances' corner shows
    x_lo = min(1e-3, min(max(p[0], 1e-8) for p in pts) / 3)
    ax.axvspan(0.1, 1.0, color="0.93", lw=0, zorder=0)
    ax.axhspan(0.0, 0.5, color="#deebf7", lw=0, zorder=0, alpha=0.8)
    for x, y, text in ((x_lo * 1.3, 0.25, "good features, small shift"), (0.12, 0.25, "good features,\nlarge shift:\nLP predicted"),
                       (x_lo * 1.3, 1.85, "poor features, small shift"), (0.12, 1.85, "poor features,\nlarge shift")):
        ax.text(x, y, text, fontsize=8, color="0.35", va="center")
    sc = ax.scatter([max(p[0], 1e-8) for p in pts], [p[1] for p in pts], c=r, cmap="RdBu_r", vmin=-vmax,
                    vmax=vmax, s=90, edgecolors="k", zorder=3)
    for i, (p, lab) in enumerate(zip(pts, labels)):   # alternately above and below: neighbours stay apart
        ax.annotate(lab.replace("\n", " "), (max(p[0], 1e-8), p[1]), fontsize=8,
                    xytext=(-10, 9 if i % 2 == 0 else -17), textcoords="offset points")
    ax.set_xlim(x_lo, 1.0)
    ax.set_ylim(0.0, 2.0)
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
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("linear model L_ood = (w* - w)^T Sigma (w* - w), t = inf")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False)
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
    ax.set_xticklabels(labels, fontsize=8)
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
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize=8, frameon=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    fig.suptitle("The two-layer model on real penultimate features (THEORY.md §9)"
                 + (f"; all instances: {shared}" if shared else ""), fontsize=11)
    return save(fig, out_dir, "real_features", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("real_features"))
