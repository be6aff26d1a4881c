"""ID subspace loss at convergence: LP vs FT (and LP-FT) per instance, against eps."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, METHOD_LABELS, save, setup

#: losses at or below this are float64 round-off of an exact 0 (L_id ~ (1e4 x machine eps)^2 |w*|^2 with
#: |w*| = 1): drawn on one grey band, not spread over 10 decades as if they were data
ROUNDOFF = 1e-24


def _roundoff_band(ax, axis="y"):
    span = (ROUNDOFF / 30, ROUNDOFF * 3)
    (ax.axhspan if axis == "y" else ax.axvspan)(*span, color="0.88", lw=0, zorder=0)
    if axis == "y":
        ax.text(0.01, ROUNDOFF * 4, f"<= {ROUNDOFF:g}: float64 round-off (exact 0)", transform=ax.get_yaxis_transform(),
                fontsize=7, color="0.35", va="bottom")


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("id_comparison", out=results_dir)
    plt = setup()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    rng = np.random.default_rng(0)
    eps_vals = sorted(df.eps_nominal.unique())
    xpos = {e: i for i, e in enumerate(eps_vals)}
    offs = {("lp", "-"): -0.25, ("lpft", "-"): 0.0, ("ft", "zero"): 0.18, ("ft", "gaussian"): 0.32}
    for (meth, head), g in df.groupby(["method", "head_init"]):
        x = np.array([xpos[e] for e in g.eps_nominal]) + offs.get((meth, head), 0) \
            + rng.uniform(-0.05, 0.05, len(g))
        lab = METHOD_LABELS[meth] + (f" (head {head})" if meth == "ft" else "")
        ax.scatter(x, np.maximum(g.id_loss, ROUNDOFF), s=18, color=METHOD_COLORS[meth],
                   marker="o" if head != "gaussian" else "^", label=lab, alpha=0.8)
    ax.set_xticks(range(len(eps_vals)), [f"{e:g}" for e in eps_vals])
    ax.set_yscale("log")
    ax.set_xlabel("eps = d(B0, B*)")
    ax.set_ylabel("ID subspace loss L_id at t = inf")
    _roundoff_band(ax)
    ax.set_ylim(ROUNDOFF / 30, None)
    ax.set_title("ID loss at convergence", fontsize=10)
    ax.legend(fontsize=7, loc="center left")
    lp = df[df.method == "lp"].set_index("seed").id_loss
    ft = df[(df.method == "ft") & (df.eps_nominal > 0)]
    for head, g in ft.groupby("head_init"):
        ax2.scatter(lp.loc[g.seed].values, np.maximum(g.id_loss.values, ROUNDOFF), s=18,
                    color=METHOD_COLORS["ft"], marker="o" if head != "gaussian" else "^",
                    label=f"FT (head {head}), eps > 0")
    lo, hi = float(lp[lp > ROUNDOFF].min()) / 3, max(1.0, float(lp.max()) * 2)
    ax2.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="L_id(FT) = L_id(LP)")
    _roundoff_band(ax2)
    ax2.set_xlim(lo, hi)
    ax2.set_ylim(ROUNDOFF / 30, hi)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("L_id(LP, inf)")
    ax2.set_ylabel("L_id(FT, inf)")
    ax2.set_title("Every instance lies below the diagonal: FT wins ID", fontsize=10)
    ax2.legend(fontsize=7, loc="center left")
    fig.suptitle("FT interpolates the training data; LP cannot when w* is not in rowspace(B0)", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "id_comparison", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("id_comparison"))
