"""Invariant drift (I1, I2) per integrator, on a log scale, with the tolerances."""

from experiments._common import load_records
from figures._style import save, setup


def main(results_dir=None, out_dir=None) -> list:
    import numpy as np
    import seaborn as sns
    from experiments.invariants import GD_I1_TOL, I1_TOL, I2_TOL
    df = load_records("invariants", out=results_dir)
    plt = setup()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, layout="constrained")
    df = df.assign(label=df["integrator"] + " / " + df["method"].str.upper())
    for ax, col, tol, title in ((axes[0], "i1_abs", I1_TOL, "I1: $\\mathrm{max}_t\\,\\|(B(t)-B_0)\\,Q_{S_\\perp}\\|_F$\n(dashed: flow tolerance; dotted: GD tolerance)"),
                                (axes[1], "i2_rel", I2_TOL, "I2: relative drift of $vv^\\top - BB^\\top$\n(the tolerance is for the flow; GD drifts by O(lr$^2$) per step)")):
        vals = df[col].clip(lower=1e-18)
        sns.stripplot(x=np.log10(vals), y=df["label"], ax=ax, hue=df["label"], legend=False, size=4)
        ax.axvline(np.log10(tol), color="k", ls="--", lw=1, label=f"flow tolerance {tol:g}")
        if col == "i1_abs":
            ax.axvline(np.log10(GD_I1_TOL), color="k", ls=":", lw=1, label=f"GD tolerance {GD_I1_TOL:g}")
        ax.set_xlabel(f"log10 {col} (dimensionless)")
        ax.set_ylabel("")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Invariant drift along simulated trajectories (values at 1e-18 are exact zeros)",
                 fontsize=11)
    return save(fig, out_dir, "invariants", df)


if __name__ == "__main__":
    from figures._cli import figure_main
    raise SystemExit(figure_main("invariants"))
