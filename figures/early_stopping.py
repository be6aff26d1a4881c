"""Early stopping does not rescue FT: (left) best early-stopped FT OOD loss against LP's
limit, one point per instance, with the line y = x; (right) L_ood_FT(t) / L_ood_LP over
time for every instance (the ratio never reaches 1)."""

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, save, setup

MARKERS = {"zero": "o", "gaussian": "s"}


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("early_stopping", out=results_dir)
    plt = setup()
    import seaborn as sns
    s = df[df["kind"] == "summary"]
    c = df[df["kind"] == "curve"]
    eps_vals = sorted(df["eps_nominal"].unique())
    pal = dict(zip(eps_vals, sns.color_palette("viridis", len(eps_vals))))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for (eps, head), g in s.groupby(["eps_nominal", "head_init"]):
        ax.scatter(g["lp_ood"], g["ft_min_ood"], color=pal[eps], marker=MARKERS.get(head, "o"),
                   s=36, edgecolors="k", linewidths=0.4, label=f"eps = {eps:g}, head {head}")
    lo = min(s["lp_ood"].min(), s["ft_min_ood"].min()) / 3
    hi = max(s["lp_ood"].max(), s["ft_min_ood"].max()) * 3
    ax.plot([lo, hi], [lo, hi], color="k", lw=1.2, ls="--", label="y = x (FT = LP)")
    ax.fill_between([lo, hi], [lo, lo], [lo, hi], color=METHOD_COLORS["ft"], alpha=0.07,
                    label="early-stopped FT would beat LP")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("LP OOD loss at t = inf  (log)")
    ax.set_ylabel("min over t of FT OOD loss  (log)")
    ax.set_title("Best early-stopped FT vs LP (one point per instance)")
    ax.legend(fontsize=7.5, loc="lower right")

    for (seed, eps, head), g in c.groupby(["seed", "eps_nominal", "head_init"]):
        g = g[(g["t"] > 0) & np.isfinite(g["t"])].sort_values("t")
        ax2.plot(g["t"], g["ft_ood"] / g["lp_ood"], color=pal[eps], lw=0.9, alpha=0.7,
                 ls="-" if head == "zero" else "--")
    for eps in eps_vals:
        ax2.plot([], [], color=pal[eps], label=f"eps = {eps:g}")
    ax2.plot([], [], color="grey", ls="-", label="zero head")
    ax2.plot([], [], color="grey", ls="--", label="Gaussian head")
    ax2.axhline(1.0, color="k", lw=1.2, ls="--", label="FT = LP")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("time t  (log)")
    ax2.set_ylabel("L_ood_FT(t) / L_ood_LP(inf)  (log)")
    ax2.set_title("FT/LP OOD loss ratio over the whole trajectory")
    ax2.legend(fontsize=7.5, loc="lower left")
    fig.suptitle("Early stopping does not rescue FT (good features, large shift)", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "early_stopping", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("early_stopping"))
