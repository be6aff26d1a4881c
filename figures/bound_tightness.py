"""Slack of the Theorem 3.3 bound (min_t sqrt(L_ood_FT) / bound; < 1 would be a violation)
against alpha = cos theta_max(R0, S_perp), phi and ||w*||, for both forms, random and
adversarially searched instances; the slack = 1 line marks the bound itself."""

import numpy as np
from matplotlib.ticker import NullFormatter

from experiments._common import load_records
from figures._style import save, setup

FORM_STYLE = {"published": dict(color="#9467bd", marker="o"), "derived": dict(color="#ff7f0e", marker="^")}
KIND_FILL = {"random": True, "search": False}


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("bound_tightness", out=results_dir)
    plt = setup()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), sharey=True)
    xs = [("alpha", "alpha = cos theta_max(R0, S_perp)", False),
          ("phi", "phi (initial head alignment error)", True),
          ("w_star_norm", "||w*||", True)]
    for ax, (col, label, logx) in zip(axes, xs):
        for form, style in FORM_STYLE.items():
            ok = df[df[f"bound_{form}_status"] == "ok"]
            for kind, filled in KIND_FILL.items():
                g = ok[ok["kind"] == kind]
                if g.empty:
                    continue
                ax.scatter(g[col], g[f"slack_{form}"], s=22, marker=style["marker"], linewidths=1.0,
                           facecolors=style["color"] if filled else "none", edgecolors=style["color"],
                           alpha=0.8, label=f"{form} form, {kind} ({len(g)})")
            if len(ok):
                i = ok[f"slack_{form}"].idxmin()
                ax.scatter([ok.loc[i, col]], [ok.loc[i, f"slack_{form}"]], s=140, marker="*",
                           color=style["color"], edgecolors="k", zorder=5)
        ax.axhline(1.0, color="k", lw=1.5, ls="--", label="slack = 1 (bound attained)")
        ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
    axes[0].set_ylabel("slack = min_t sqrt(L_ood_FT(t)) / bound  (log)")
    axes[0].legend(fontsize=7.5, loc="upper left")
    n_vac = {f: int((df[f"bound_{f}_status"] == "vacuous").sum()) for f in FORM_STYLE}
    lo = np.nanmin([df[f"slack_{f}"].min() for f in FORM_STYLE])
    fig.suptitle(f"Theorem 3.3 bound tightness: smallest slack {lo:.3g} (star = tightest per form); "
                 f"vacuous excluded: published {n_vac['published']}, derived {n_vac['derived']}",
                 fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "bound_tightness")


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("bound_tightness"))
