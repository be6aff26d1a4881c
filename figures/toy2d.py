"""The 2-D toy (paper Figure 2): LP / FT / LP-FT paths of w(t) = B(t)^T v(t) in the plane."""
from __future__ import annotations

import numpy as np

from experiments._common import load_records
from figures._style import METHOD_COLORS, save, setup


def _select_cases(df) -> list:
    """At most 6 panels: the beta closest to 45 deg and beta = 0 (if present), each with the
    smallest positive angle, the most negative angle and the largest angle."""
    betas = sorted(set(df.beta))
    nonzero = [b for b in betas if b > 0]
    chosen = ([min(nonzero, key=lambda b: abs(b - np.pi / 4))] if nonzero else []) + \
        ([b for b in betas if b == 0][:1])
    cases = []
    for b in chosen:
        angles = sorted(set(df[df.beta == b].angle))
        pos = [a for a in angles if a > 0]
        pick = ([min(pos)] if pos else []) + [min(angles), max(angles)]
        for a in pick:
            if (b, a) not in cases:
                cases.append((b, a))
    return cases


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("toy2d", out=results_dir)
    plt = setup()
    cases = _select_cases(df)
    ncol = min(3, len(cases))
    nrow = int(np.ceil(len(cases) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 4.3 * nrow + 0.8), squeeze=False,
                             layout="constrained")
    for ax, (beta, angle) in zip(axes.flat, cases):
        sub = df[(df.beta == beta) & (df.angle == angle)]
        r0 = sub.iloc[0]
        ax.axhline(0.0, color="#fdd49e", lw=5, alpha=0.8, zorder=1)
        # LP-FT starts at LP's solution; where it never leaves it, its path is one point: a green X
        # drawn on top of LP's hollow end circle
        for meth, ls, lw, end_kw, label in (
                ("lp", "-", 2.2, dict(marker="o", ms=12, mfc="none", mew=2), "w_LP(t), end: o"),
                ("ft", "-", 2.2, dict(marker="o", ms=5), "w_FT(t), end: dot"),
                ("lpft", "--", 1.4, dict(marker="X", ms=9, mec="white", mew=0.8),
                 "w_LP-FT(t): starts at LP's end (X); here it stays there")):
            g = sub[sub.method == meth].sort_values("t")
            ax.plot(g.w1, g.w2, ls=ls, color=METHOD_COLORS[meth], lw=lw, label=label, zorder=3)
            end = g[g.t == np.inf].iloc[0]
            ax.plot(end.w1, end.w2, ls="none", color=METHOD_COLORS[meth], zorder=6 if meth == "lpft" else 5,
                    **end_kw)
        ax.plot(r0.wstar1, r0.wstar2, "k*", ms=12, label="w*")
        ax.annotate("", xy=(r0.B0_1, r0.B0_2), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color="0.35", lw=0.8), zorder=5)
        label_box = dict(facecolor="white", edgecolor="none", alpha=0.75, pad=0.5)
        ax.annotate("B0", (r0.B0_1, r0.B0_2), xytext=(-22, 8), textcoords="offset points", color="0.3",
                    fontsize=7, bbox=label_box, zorder=6)
        ft_end = sub[(sub.method == "ft") & (sub.t == np.inf)].iloc[0]
        ax.annotate("", xy=(ft_end.B1, ft_end.B2), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color=METHOD_COLORS["ft"], lw=1.2, ls="--"))
        ax.annotate("B_FT(inf)", (ft_end.B1, ft_end.B2), xytext=(4, 6), textcoords="offset points",
                    color=METHOD_COLORS["ft"], fontsize=7, bbox=label_box, zorder=6)
        ax.plot([r0.B0_1, ft_end.B1], [r0.B0_2, ft_end.B2], ":", color=METHOD_COLORS["ft"], lw=1)
        lp_end = sub[(sub.method == "lp") & (sub.t == np.inf)].iloc[0]
        ax.set_title(f"beta={np.degrees(beta):.0f} deg, a={np.degrees(angle):.1f} deg: OOD err (e2) "
                     f"FT {ft_end.ood_err_e2:.3f}, LP {lp_end.ood_err_e2:.3f}", fontsize=8)
        xs = np.concatenate([sub.w1, sub.B1, [0, r0.wstar1]])
        ys = np.concatenate([sub.w2, sub.B2, [0, r0.wstar2]])
        pad = 0.15
        x0, x1 = xs.min() - pad, xs.max() + 2.5 * pad
        if np.ptp(ys) < 0.25 * np.ptp(xs):
            # nearly flat paths (beta = 0): a square window would pile them onto the axis; stretch y
            ypad = 0.25 * max(np.ptp(ys), 1e-3)
            ax.set_xlim(x0, x1)
            ax.set_ylim(ys.min() - 1.5 * ypad, ys.max() + ypad)
            ax.set_title(ax.get_title() + "\n(y axis stretched: the paths are nearly flat)", fontsize=8)
        else:   # a square data window: equal aspect, the true angles
            y0, y1 = min(ys.min(), -0.05) - pad, ys.max() + pad
            span = max(x1 - x0, y1 - y0)
            xc, yc = (x0 + x1) / 2, (y0 + y1) / 2
            ax.set_xlim(xc - span / 2, xc + span / 2)
            ax.set_ylim(yc - span / 2, yc + span / 2)
            ax.set_aspect("equal", adjustable="box")
        ax.annotate("ID axis (S = span e1)", (0.02, 0.0), xycoords=("axes fraction", "data"), xytext=(0, -4),
                    textcoords="offset points", fontsize=7, color="#b35806", va="top")
        ax.set_xlabel("x1 (ID direction)")
        ax.set_ylabel("x2 (OOD direction)")
    for ax in list(axes.flat)[len(cases):]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8,
               frameon=False)
    fig.suptitle("2-D toy: FT moves B only along the ID axis (I1), so its OOD error stays O(1); "
                 "LP's (= LP-FT's) is O(a)", fontsize=10)
    return save(fig, out_dir, "toy2d", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("toy2d"))
