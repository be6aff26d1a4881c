"""Beyond LP-FT: OOD loss relative to LP-FT (median over instances, interquartile band) against the
feature rate gamma, the LP time T_LP and the interpolation weight alpha, at two corners of the
conditions grid (good / poor features, largest shift), and each family at its chosen parameter."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, save, setup

PATHS = {"wise_lp_ft": ("WiSE LP -> FT", "#9467bd", "-"), "wise_zero_ft": ("WiSE (0, B0) -> FT", "#8c564b", "-"),
         "wise_lp_lpft": ("WiSE LP -> LP-FT", "#17becf", "-"), "ens_lp_ft": ("ensemble LP -> FT", "#9467bd", ":"),
         "ens_zero_ft": ("ensemble (0, B0) -> FT", "#8c564b", ":")}


def _ratio(df, fam):
    """log10(L / L_LPFT) per (seed, param) for one family at one (eps, rho, head)."""
    lpft = df[df.family == "lpft"].set_index("seed").ood_loss
    g = df[df.family == fam].copy()
    g["r"] = np.log10(g.ood_loss.to_numpy() / lpft.reindex(g.seed).to_numpy())
    return g.groupby("param").r.quantile([0.25, 0.5, 0.75]).unstack()


def _band(ax, q, x, color, ls, label):
    ax.plot(x, q[0.5], ls, color=color, lw=1.6, marker="o", ms=3, label=label)
    ax.fill_between(x, q[0.25], q[0.75], color=color, alpha=0.15, lw=0)


def _pos(params):
    """log positions; 0 drawn a decade left of the smallest positive value, inf a decade right."""
    fin = [p for p in params if 0 < p < np.inf]
    lo, hi = min(fin) / 10, max(fin) * 10
    return np.array([lo if p == 0 else hi if np.isinf(p) else p for p in params])


#: The right panels' family names, in words.
FAMILY_LABELS = {"lp": "LP", "ft": "FT", "rate": "feature rate gamma", "plp": "partial LP (T_LP)",
                 "wise_lp_ft": "WiSE LP -> FT", "wise_lp_lpft": "WiSE LP -> LP-FT", "wise_zero_ft": "WiSE (0, B0) -> FT",
                 "ens_lp_ft": "ensemble LP -> FT", "ens_lp_lpft": "ensemble LP -> LP-FT",
                 "ens_zero_ft": "ensemble (0, B0) -> FT"}


def main(results_dir=None, out_dir=None) -> list:
    from experiments.beyond_lpft import families, selected
    df = load_records("beyond_lpft", out=results_dir)
    df = df[~df.family.str.startswith("xcheck")]
    plt = setup()
    rho = df.rho.max()
    head = "gaussian" if "gaussian" in set(df.head_init) else df.head_init.iloc[0]
    corners = [(df.eps_nominal.min(), "good features"), (df.eps_nominal.max(), "poor features")]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5), layout="constrained")
    for row, (eps, what) in enumerate(corners):
        c = df[(df.eps_nominal == eps) & (df.rho == rho) & (df.head_init == head)]
        ax = axes[row, 0]
        q = _ratio(c, "rate")
        _band(ax, q, _pos(q.index), METHOD_COLORS["ft"], "-", "FT with feature rate gamma")
        ax.set_xscale("log")
        ticks = list(q.index)
        ax.set_xticks(_pos(ticks), ["0 (LP)" if t == 0 else "1 (FT)" if t == 1 else f"{t:g}" for t in ticks],
                      fontsize=7)
        ax.set_xlabel("feature rate gamma = eta_B / eta_v")
        ax = axes[row, 1]
        q = _ratio(c, "plp")
        _band(ax, q, _pos(q.index), METHOD_COLORS["lpft"], "-", "LP for T_LP, then FT")
        ax.set_xscale("log")
        ticks = list(q.index)
        ax.set_xticks(_pos(ticks), ["0 (FT)" if t == 0 else "inf (LP-FT)" if np.isinf(t) else f"{t:g}"
                                    for t in ticks], fontsize=7)
        ax.set_xlabel("LP time T_LP")
        ax = axes[row, 2]
        for fam, (lab, col, ls) in PATHS.items():
            q = _ratio(c, fam)
            _band(ax, q, q.index.to_numpy(), col, ls, lab)
        ax.set_xlabel("alpha (0: first endpoint, 1: second)")
        ax = axes[row, 3]
        fams = ["lp", "ft"] + families(c)
        lpft = c[c.family == "lpft"].set_index("seed").ood_loss
        for j, (by, col, lab) in enumerate((("val_loss", "#444444", "chosen on noisy ID validation"),
                                            ("ood_loss", "#bbbbbb", "OOD oracle"))):
            med = []
            for fam in fams:
                sel = c[c.family == fam] if fam in ("lp", "ft") else selected(c, fam, by)
                med.append(float(np.median(np.log10(sel.ood_loss.to_numpy() / lpft.reindex(sel.seed).to_numpy()))))
            ax.barh(np.arange(len(fams)) + 0.38 * j, med, height=0.36, color=col, label=lab)
        ax.set_yticks(np.arange(len(fams)) + 0.19, [FAMILY_LABELS.get(f, f) for f in fams], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color=METHOD_COLORS["lpft"], lw=1.2)
        ax.set_xlabel("median log10(L_ood / L_ood(LP-FT))")
        for a in axes[row, :3]:
            a.axhline(0, color=METHOD_COLORS["lpft"], lw=1.2, ls="--")
            a.set_ylabel("log10(L_ood / L_ood(LP-FT))")
        axes[row, 0].set_title(f"{what}: eps = {eps:g}, rho = {rho:g}, head {head}", fontsize=10, loc="left")
    axes[0, 2].legend(fontsize=7, loc="best")
    fig.legend(*axes[0, 3].get_legend_handles_labels(), loc="outside lower right", ncol=2, fontsize=8,
               title="right panels: each family's parameter")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    axes[0, 1].legend(fontsize=7, loc="upper right")
    n = c.seed.nunique()
    fig.suptitle(f"Beyond LP-FT in the exact linear model (t = inf; {n} instances per panel, one (eps, rho, head) "
                 f"cell each; median and interquartile band; below the dashed line: better than LP-FT OOD)",
                 fontsize=11)
    return save(fig, out_dir, "beyond_lpft", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("beyond_lpft"))
