"""Phase diagram of the talk's "important conditions": median over seeds of
log10(L_ood_FT / L_ood_LP) over (eps, rho = OOD mass fraction in S_perp); red = LP wins
(ratio > 1), blue = FT wins. Rows: head initialisation; columns: FT at t = inf and the
best early-stopped FT."""

import numpy as np

from experiments._common import load_records
from experiments.conditions import grid
from figures._style import save, setup


def main(results_dir=None, out_dir=None) -> list:
    df = load_records("conditions", out=results_dir)
    plt = setup()
    import seaborn as sns
    heads = sorted(df["head_init"].unique(), key=lambda h: h != "zero")
    cols = [("log10_ratio_inf", "FT at t = inf"), ("log10_ratio_best", "best early-stopped FT")]
    tabs = {(h, c): grid(df, h, c) for h in heads for c, _ in cols}
    vmax = max(float(np.nanmax(np.abs(t.to_numpy()))) for t in tabs.values())
    fig, axes = plt.subplots(len(heads), 2, figsize=(13, 4.6 * len(heads)), squeeze=False)
    for i, h in enumerate(heads):
        for j, (c, title) in enumerate(cols):
            t = tabs[(h, c)].sort_index(ascending=False)
            ax = axes[i, j]
            sns.heatmap(t, ax=ax, cmap="RdBu_r", center=0.0, vmin=-vmax, vmax=vmax, annot=True, fmt=".1f",
                        annot_kws={"fontsize": 7}, cbar_kws={"label": "log10(L_ood_FT / L_ood_LP)"})
            ax.contour(np.arange(t.shape[1]) + 0.5, np.arange(t.shape[0]) + 0.5, t.to_numpy(), levels=[0.0],
                       colors="k", linewidths=1.5)
            ax.set_xticklabels([f"{r:g}" for r in t.columns], rotation=0)
            ax.set_yticklabels([f"{e:g}" for e in t.index], rotation=0)
            ax.set_xlabel("shift size rho = OOD mass fraction in S_perp  (not evenly spaced)")
            ax.set_ylabel("eps = d(B0, B*)")
            ax.set_title(f"LP vs {title}, {h} initial head")
    fig.suptitle("Where LP beats FT OOD (red, > 0): good features (small eps) and a large shift; "
                 "black line: FT = LP", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "conditions", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("conditions"))
