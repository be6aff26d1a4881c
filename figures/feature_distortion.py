"""Feature distortion: mean ||(B(t) - B0) x|| over unit-norm ID / OOD inputs vs t, FT vs LP-FT (log-log)."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, METHOD_LABELS, save, setup

INPUT_STYLES = {"id": ("-", "ID inputs (in S)"), "ood": ("--", "OOD inputs (N(0, Sigma), large shift)")}


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("feature_distortion", out=results_dir)
    plt = setup()
    eps_vals = sorted(df.eps_nominal.unique())
    fig, axes = plt.subplots(1, len(eps_vals), figsize=(4.2 * len(eps_vals), 3.8), sharey=True,
                             squeeze=False)
    finite = df[np.isfinite(df.t) & (df.t > 0)]
    t_inf_pos = finite.t.max() * 3
    for ax, eps in zip(axes[0], eps_vals):
        sub = df[df.eps_nominal == eps]
        for meth in ("ft", "lpft"):
            for inp, (ls, lab) in INPUT_STYLES.items():
                g = sub[(sub.method == meth) & (sub.inputs == inp) & (sub.t > 0)].copy()
                g["tt"] = np.where(np.isfinite(g.t), g.t, t_inf_pos)
                agg = g.groupby("tt").feature_change.agg(["median", "min", "max"])
                ax.plot(agg.index, agg["median"], ls, color=METHOD_COLORS[meth],
                        label=f"{METHOD_LABELS[meth]}, {lab}")
                ax.fill_between(agg.index, agg["min"], agg["max"], color=METHOD_COLORS[meth], alpha=0.12)
        sp = sub[(sub.inputs == "sperp") & (sub.t > 0)]
        worst = float(np.nanmax(np.maximum(sp.sperp_max, sp.sperp_op)))
        ax.axvline(t_inf_pos, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time t (rightmost point: t = inf)")
        ax.set_title(f"eps = {eps:g}   (S_perp inputs: max change {worst:.0e})", fontsize=9)
    axes[0][0].set_ylabel("mean ||(B(t) - B0) x||, unit-norm x")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Feature distortion: FT changes ID features more than OOD ones; LP-FT barely changes "
                 "features (median and range over seeds)", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "feature_distortion", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("feature_distortion"))
