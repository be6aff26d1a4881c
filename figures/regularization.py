"""Regularised FT (L2 toward B0, random head) OOD loss vs lambda, against LP-FT and LP."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import save, setup


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("regularization", out=results_dir)
    plt = setup()
    seeds = sorted(df.seed.unique())
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    t_end = df[(df.method == "regft")].t.max()
    reg = df[(df.method == "regft") & np.isclose(df.t, t_end)]
    lams = sorted(reg.lam.unique())
    pos = [l if l > 0 else min(x for x in lams if x > 0) / 10 for l in lams]
    lam_map = dict(zip(lams, pos))
    colors = plt.get_cmap("tab10")
    for i, s in enumerate(seeds):
        g = reg[reg.seed == s].sort_values("lam")
        c = colors(i % 10)
        ax.plot([lam_map[l] for l in g.lam], g.ood_loss, "o-", color=c, ms=3,
                label=f"reg. FT, seed {s} (eps={g.eps_nominal.iloc[0]:g})")
        lpft = df[(df.method == "lpft") & (df.seed == s) & (df.t == np.inf)].ood_loss.iloc[0]
        lp = df[(df.method == "lp") & (df.seed == s)].ood_loss.iloc[0]
        ax.axhline(lpft, color=c, ls="--", lw=1)
        ax.axhline(lp, color=c, ls=":", lw=1)
    ax.plot([], [], "k--", lw=1, label="LP-FT (t = inf)")
    ax.plot([], [], "k:", lw=1, label="LP (t = inf)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    xt = [lam_map[l] for l in lams]
    ax.set_xticks(xt, [f"{l:g}" for l in lams], fontsize=8)
    ax.set_xlabel("regularisation strength lambda (penalty lambda ||B - B0||_F^2; leftmost: 0 = FT)")
    ax.set_ylabel(f"OOD loss L_ood at t = {t_end:g}")
    ax.set_title("FT with L2 toward B0 and a random head vs LP-FT (linear model)", fontsize=10)
    ax.legend(fontsize=7, ncol=1)
    fig.tight_layout()
    return save(fig, out_dir, "regularization")


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("regularization"))
