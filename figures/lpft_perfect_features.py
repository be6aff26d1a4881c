"""LP-FT with perfect features: (left) eps = 0, OOD loss against time for FT (random head)
and LP-FT, on a log scale with a floor (LP-FT sits at the rounding level, far below the
1e-20 "exactly zero" threshold); (right) eps > 0, LP-FT's OOD loss divided by eps^2
over time, one curve per eps and seed, with LP's level: bounded, i.e. O(eps^2)."""

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, METHOD_LABELS, save, setup

FLOOR = 1e-34


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("lpft_perfect_features", out=results_dir)
    plt = setup()
    import seaborn as sns
    df = df[(df["t"] > 0) & np.isfinite(df["t"])]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.4), layout="constrained")
    zero = df[df["eps_nominal"] == 0.0]
    for meth in ("ft", "lpft"):
        for i, (_, g) in enumerate(zero[zero["method"] == meth].groupby("seed")):
            g = g.sort_values("t")
            ax.plot(g["t"], np.maximum(g["ood_loss"], FLOOR), color=METHOD_COLORS[meth], lw=1.4, alpha=0.8,
                    label=METHOD_LABELS[meth] + " (one line per seed)" if i == 0 else None)
    ax.axhline(1e-20, color="k", ls="--", lw=1.2, label="threshold for 'exactly 0' (1e-20)")
    ax.axhline(FLOOR, color="grey", ls=":", lw=1, label=f"plot floor {FLOOR:g} (values below are drawn here)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time t  (log)")
    ax.set_ylabel("OOD loss  (log, floored)")
    ax.set_title("eps = 0 (B0 = U B*), Gaussian initial head")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    pos = df[(df["eps_nominal"] > 0) & (df["method"] == "lpft")]
    eps_vals = sorted(pos["eps_nominal"].unique())
    pal = dict(zip(eps_vals, sns.color_palette("crest", len(eps_vals))))
    styles = ["-", "--", ":", "-."]
    lss = {e: styles[i % len(styles)] for i, e in enumerate(eps_vals)}
    lws = {e: 3.2 - 0.8 * i for i, e in enumerate(eps_vals)}
    for (seed, e), g in pos.groupby(["seed", "eps_nominal"]):
        g = g.sort_values("t")
        ax2.plot(g["t"], g["ood_loss"] / g["eps"] ** 2, color=pal[e], lw=max(lws[e], 1.0), ls=lss[e],
                 alpha=0.85)
        ax2.scatter([g["t"].max() * 1.6], [g["lp_ood"].iloc[0] / g["eps"].iloc[0] ** 2], color=pal[e],
                    marker="<", s=25)
        if e == eps_vals[0]:      # each curve group is one seed's instance (its own w*, B0, X)
            ax2.annotate(f"seed {seed}", (g["t"].iloc[0], g["ood_loss"].iloc[0] / g["eps"].iloc[0] ** 2),
                         xytext=(2, 5), textcoords="offset points", fontsize=8, color="0.25")
    for e in eps_vals:
        ax2.plot([], [], color=pal[e], ls=lss[e], lw=max(lws[e], 1.0), label=f"LP-FT, eps = {e:g}")
    ax2.scatter([], [], color="grey", marker="<", label="LP limit / eps$^2$")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("time t  (log)")
    ax2.set_ylabel("L_ood_LPFT(t) / eps$^2$  (log)")
    ax2.set_title("eps > 0: L_LPFT / eps$^2$ bounded; one curve group per seed\n(its own instance; "
                  "within a group the curves for different eps coincide)", fontsize=10)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.suptitle("LP-FT with (nearly) perfect features: no distortion; FT from a random head pays",
                 fontsize=11)
    return save(fig, out_dir, "lpft_perfect_features", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("lpft_perfect_features"))
