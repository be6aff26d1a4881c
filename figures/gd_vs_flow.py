"""GD vs flow: I2 drift per step and over a horizon, OOD gap and I1, vs step size (log-log)."""
from __future__ import annotations

import numpy as np

from matplotlib.ticker import NullFormatter, NullLocator

from experiments._common import load_records
from figures._style import save, setup

PANELS = (("i2_first_step", 2, "I2 drift after one step"),
          ("i2_horizon", 1, "I2 drift at horizon T"),
          ("ood_gap_max", 1, "max_t |L_ood(GD) - L_ood(flow)|"),
          ("i1_abs", None, "I1: max_t ||(B_t - B0) Q_Sperp||_F"))


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("gd_vs_flow", out=results_dir)
    plt = setup()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.6), layout="constrained")
    axes = axes.ravel()
    cmap = plt.get_cmap("tab10")
    lrs = np.sort(df.lr.unique())
    ticks = lrs[np.unique(np.linspace(0, len(lrs) - 1, min(len(lrs), 6)).round().astype(int))]
    for ax, (col, slope, title) in zip(axes, PANELS):
        for i, (seed, g) in enumerate(df.groupby("seed")):
            g = g.sort_values("lr")
            y = g[col].clip(lower=1e-18)
            ax.plot(g.lr, y, "o-", color=cmap(i % 10), ms=3, label=f"seed {seed}")
        if slope is not None:
            g = df.sort_values("lr")
            x0, x1 = g.lr.min(), g.lr.max()
            y1 = df[df.lr == x1][col].median()
            xs = np.array([x0, x1])
            ax.plot(xs, y1 * (xs / x1) ** slope, "k--", lw=1, label=f"slope {slope}")
        else:
            ax.axhline(1e-12, color="k", ls="--", lw=1, label="tolerance 1e-12")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # one labelled tick per step size used, no minor labels (they collided)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ticks, [f"{x:.1e}" for x in ticks], fontsize=8)
        ax.set_xlabel("step size lr")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes[::2]:
        ax.set_ylabel("drift / gap (log)")
    fig.suptitle("Discrete GD vs the exact flow: I2 breaks at O(lr^2) per step, OOD gap O(lr), I1 exact",
                 fontsize=10)
    return save(fig, out_dir, "gd_vs_flow", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("gd_vs_flow"))
