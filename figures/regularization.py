"""Regularised FT (L2 toward B0, random head): the whole lambda curve at each lambda's certified
limit, ID validation loss (left: how lambda is chosen) and OOD loss (right: against LP-FT and LP),
with the selected lambda marked on both."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import save, setup


def _lam_positions(lams):
    """log-axis positions: lam = 0 is drawn one decade left of the smallest positive lam; two more
    slots right of the largest lam hold LP-FT and LP (one point per seed, no lines across)."""
    pos = [x for x in lams if x > 0]
    lo, hi = (min(pos), max(pos)) if pos else (1.0, 1.0)
    xpos = {x: (x if x > 0 else lo / 10) for x in lams}
    return xpos, {"LP-FT": hi * 10, "LP": hi * 100}


def main(results_dir=None, out_dir=None) -> list:
    from experiments.regularization import select_lam
    df = load_records("regularization", out=results_dir)
    plt = setup()
    reg = df[df.method == "regft"].sort_values(["seed", "lam"])
    lams = sorted(reg.lam.unique())
    xpos, slots = _lam_positions(lams)
    selected = select_lam(reg, "val_loss")
    seeds = sorted(reg.seed.unique())
    colors = plt.get_cmap("tab10")
    fig, (ax_v, ax_o) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    ratios, off = [], []
    for i, s in enumerate(seeds):
        c = colors(i % 10)
        g = reg[reg.seed == s]
        x = np.array([xpos[v] for v in g.lam])
        sel = selected[s]
        eps = g.eps_nominal.iloc[0]
        lpft = df[(df.method == "lpft") & (df.seed == s)].iloc[0]
        lp = df[(df.method == "lp") & (df.seed == s)].iloc[0]
        ratio = g.ood_loss.to_numpy() / lpft.ood_loss
        pos = g.lam.to_numpy() > 0
        ax_v.plot(x, g.val_loss, "o-", color=c, ms=3, lw=1.2, label=f"reg. FT, seed {s} (eps={eps:g})")
        ax_v.plot(xpos[sel.lam], sel.val_loss, "*", color=c, ms=14, mec="k", mew=0.6, zorder=5)
        ax_v.plot([slots["LP-FT"], slots["LP"]], [lpft.val_loss, lp.val_loss], "o", color=c, ms=5, mec="k",
                  mew=0.4)
        # right: lambda > 0 only (plain FT is decades off this scale: listed below the panel)
        ax_o.plot(x[pos], ratio[pos], "o-", color=c, ms=3, lw=1.2)
        if sel.lam > 0:
            ax_o.plot(xpos[sel.lam], sel.ood_loss / lpft.ood_loss, "*", color=c, ms=14, mec="k", mew=0.6, zorder=5)
        ax_o.plot(slots["LP"], lp.ood_loss / lpft.ood_loss, "o", color=c, ms=5, mec="k", mew=0.4)
        ratios.extend(ratio[pos])
        ratios.append(lp.ood_loss / lpft.ood_loss)
        off.extend((s, r, bool(sel.lam == 0)) for l, r in zip(g.lam, ratio) if l == 0)
    ax_o.axhline(1.0, color="k", ls="--", lw=1.2)
    lo, hi = min(ratios), max(ratios + [1.0])
    pad = 0.08 * max(hi - min(lo, 1.0), 0.02)
    ax_o.set_ylim(min(lo, 1.0) - pad, hi + pad)
    if off:
        ax_o.annotate("plain FT (lambda = 0), off this scale; ratio by seed: " + ", ".join(
            f"{r:.3g} ({s}{', selected' if chosen else ''})" for s, r, chosen in off),
            (0.0, -0.2), xycoords="axes fraction", fontsize=7, va="top", wrap=True)
    ax_v.plot([], [], "k*", ms=10, label="selected lambda (min ID validation loss)")
    ax_v.plot([], [], "ko", ms=5, label="LP-FT and LP at t = inf (right panel: ratio 1 = LP-FT, dashed)")
    noise = df.noise_std.iloc[0] if "noise_std" in df else float("nan")
    for ax, names in ((ax_v, ("LP-FT", "LP")), (ax_o, ("LP",))):
        ticks = [xpos[v] for v in lams if ax is ax_v or v > 0] + [slots[n] for n in names]
        labels = [f"{v:g}" for v in lams if ax is ax_v or v > 0] + list(names)
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels, fontsize=8)
        ax.minorticks_off()
        ax.axvline(np.sqrt(max(lams) * slots["LP-FT"]), color="0.5", lw=0.8)
        ax.set_xlabel("lambda in lambda ||B - B0||_F^2" + (" (leftmost: 0 = plain FT)" if ax is ax_v else ""))
    ax_v.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax_v.set_ylabel("held-out ID loss (noisy labels)")
    ax_o.set_ylabel("L_ood(regularised FT) / L_ood(LP-FT)")
    ax_v.set_title(f"How lambda is chosen: ID validation, label noise std {noise:g}", fontsize=10)
    ax_o.set_title("OOD loss relative to LP-FT (> 1: LP-FT better)", fontsize=10)
    fig.legend(*ax_v.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle("L2 regularisation toward B0 with a random head (linear model; every lambda at its "
                 "certified limit t = inf)", fontsize=11)
    return save(fig, out_dir, "regularization", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("regularization"))
