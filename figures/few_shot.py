"""Few-shot IID (n < d, Sigma = I): sqrt test loss of FT vs t with the Theorem 3.3 bound and LP."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import save, setup

YMIN = 3e-3


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("few_shot", out=results_dir)
    plt = setup()
    ns = sorted(df.n.unique())
    fig, axes = plt.subplots(1, len(ns), figsize=(max(5.0 * len(ns), 8.0), 5.2), sharey=True, squeeze=False,
                             layout="constrained")
    eps_vals = sorted(df.eps_nominal.unique())
    cmap = plt.get_cmap("viridis")
    t_inf = df[np.isfinite(df.t)].t.max() * 3
    for ax, n in zip(axes[0], ns):
        sub = df[(df.n == n) & (df.t > 0)].copy()
        sub["tt"] = np.where(np.isfinite(sub.t), sub.t, t_inf)
        off_scale = []
        for i, eps in enumerate(eps_vals):
            c = cmap(i / max(1, len(eps_vals) - 1) * 0.85)
            g = sub[sub.eps_nominal == eps]
            agg = g.groupby("tt").sqrt_ood.median()
            ax.plot(agg.index, agg.values, color=c, label=f"FT, eps={eps:g}")
            inst = g.groupby("seed").first()
            b = inst.bound_published
            ok = inst.bound_published_status == "ok"
            if ok.any():
                ax.axhline(b[ok].max(), color=c, ls="--", lw=1)
            lp = np.sqrt(inst.ood_lp_inf.clip(lower=1e-32)).median()
            if lp >= YMIN:
                ax.axhline(lp, color=c, ls=":", lw=1)
            else:
                off_scale.append((f"LP, eps={eps:g}: {lp:.0e} (below the axis)", c))
        # notes on what lies below the y range: bottom left, clear of the curves and the legend
        for j, (text, c) in enumerate(off_scale):
            ax.text(0.02, 0.03 + 0.065 * j, text, transform=ax.transAxes, color=c, fontsize=7,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
        ax.axvline(t_inf, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(YMIN, 2.0)
        ax.set_xlabel("time t (rightmost: t = inf)")
        ax.set_title(f"n = m = {n} < d = {int(sub.d.iloc[0])}", fontsize=10)
    axes[0][0].set_ylabel("sqrt test loss sqrt(L(v(t), B(t))), Sigma = I")
    ax0 = axes[0][0]
    ax0.plot([], [], "k--", lw=1, label="Thm 3.3 bound (max over seeds; absent = vacuous)")
    ax0.plot([], [], "k:", lw=1, label="LP at t = inf (median)")
    fig.legend(*ax0.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Few-shot IID, these instances: FT's test loss stays above the Theorem 3.3 lower bound;\n"
                 "LP is far better for good features", fontsize=10)
    return save(fig, out_dir, "few_shot", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("few_shot"))
