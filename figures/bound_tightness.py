"""Where Theorem 3.3 holds and fails: slack = min_t sqrt(L_ood_FT(t)) / bound (< 1 is a
violation) against ||w*||, the angle between R* and S, k and eps, for both forms; random,
guided and gradient-searched instances. The grey curve is the exact k = 1, eps = 0 limit
(twolayer.closed_form) at cos^2 theta -> 1; the dotted line its infimum 1/2. Constructed
exact-fit instances (L_ood(inf) = 0, derived form positive) have slack ~0 and are drawn at
the floor. Reads cached records only."""

import numpy as np
from matplotlib.ticker import NullFormatter

from experiments._common import load_records
from figures._style import save, setup

FORM_STYLE = {"published": dict(color="#9467bd", marker="o"), "derived": dict(color="#ff7f0e", marker="^")}
ORIGIN_FILL = {"random": True, "guided": False, "gradient": True, "constructed": True}
ORIGIN_SIZE = {"random": 9, "guided": 16, "gradient": 40, "constructed": 60}
#: slacks below this are drawn at it (the constructed exact-fit instances have slack ~1e-12)
FLOOR = 1e-3


def _scatter(ax, df, x, form, style):
    ok = df[(df[f"bound_{form}_status"] == "ok") & df[f"slack_{form}"].notna()]
    origin = ok["origin"].astype(str).str.split(":").str[0]
    for name, filled in ORIGIN_FILL.items():
        g = ok[origin == name]
        if g.empty:
            continue
        ax.scatter(x(g), np.maximum(g[f"slack_{form}"], FLOOR), s=ORIGIN_SIZE[name], marker=style["marker"], linewidths=0.7,
                   facecolors=style["color"] if filled else "none", edgecolors=style["color"], alpha=0.55,
                   label=f"{form}, {name} ({len(g)})")
    if len(ok):
        i = ok[f"slack_{form}"].idxmin()
        ax.scatter(x(ok.loc[[i]]), [max(ok.loc[i, f"slack_{form}"], FLOOR)], s=160, marker="*", color=style["color"],
                   edgecolors="k", zorder=5)
    return ok


def main(results_dir=None, out_dir=None) -> list:
    from twolayer.closed_form import k1_eps0_limit

    df = load_records("bound_tightness", out=results_dir)
    plt = setup()
    fig, axes = plt.subplots(2, 2, figsize=(12.5, 9), sharey=True)   # 2 x 2: readable at page width
    axes = axes.ravel()
    eps_floor = 1e-7
    panels = [
        ("||w*||", lambda g: g["w_star_norm"], True),
        ("1 - cos^2 theta_max(R*, S)  (R* nearly inside S at the left)",
         lambda g: np.maximum(1.0 - g["cos_Rstar_S"] ** 2, 1e-6), True),
        ("k (jittered)", lambda g: g["k"] + 0.25 * np.sin(np.arange(len(g)) * 12.9898) , False),
        (f"eps (eps = 0 drawn at {eps_floor:g})", lambda g: np.maximum(g["eps"], eps_floor), True),
    ]
    lo = {}
    for ax, (label, x, logx) in zip(axes, panels):
        for form, style in FORM_STYLE.items():
            ok = _scatter(ax, df, x, form, style)
            if len(ok):
                lo[form] = min(lo.get(form, np.inf), float(ok[f"slack_{form}"].min()))
        ax.axhline(1.0, color="k", lw=1.4, ls="--", label="slack = 1 (bound attained)")
        ax.axhline(0.5, color="0.4", lw=1.0, ls=":", label="1/2: inf of the k = 1 closed form")
        ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
    W = np.logspace(-2, 1, 200)
    axes[0].plot(W, [k1_eps0_limit(np.sqrt(0.999999), w).ratio for w in W], color="0.5", lw=1.5,
                 label="exact k = 1, eps = 0, cos^2 theta = 1 - 1e-6")
    for ax in axes[::2]:
        ax.set_ylabel(f"slack = min_t sqrt(L_ood_FT) / bound\n(log; < {FLOOR:g} drawn at {FLOOR:g})")
    axes[0].legend(fontsize=8, loc="lower right", framealpha=0.9)
    n_vac = {f: int((df[f"bound_{f}_status"] == "vacuous").sum()) for f in FORM_STYLE}
    n_bad = {f: int((df[f"slack_{f}"] < 1).sum()) for f in FORM_STYLE}
    smallest = ", ".join(f"{f} {lo[f]:.3g}" for f in FORM_STYLE if f in lo) or "none"
    fig.suptitle(f"Theorem 3.3: smallest slack per form (stars): {smallest};\nviolations "
                 f"published {n_bad['published']}, derived {n_bad['derived']} of {len(df)} instances; vacuous "
                 f"(excluded) published {n_vac['published']}, derived {n_vac['derived']}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save(fig, out_dir, "bound_tightness", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("bound_tightness"))
