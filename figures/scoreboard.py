"""The scoreboard (issue 18; THEORY.md §9), from the committed tidy table only.

Three figures from ``scoreboard.csv`` / ``scoreboard_score.csv`` (default ``docs/results``):

* ``scoreboard_predicted_vs_observed``: the exact model's predicted log10(L_ood FT / L_ood LP)
  on the pair's features against the network's OOD accuracy of LP minus FT (points above 0 on
  both axes: both say LP wins); filled markers are evidence-grade pairs, one colour per family;
* ``scoreboard``: for each claim the fraction of evidence-grade pairs each predictor gets right
  (bridge, conditions diagram, headline, majority), with the 90% Clopper-Pearson interval;
* ``scoreboard_phase``: the network's LP-FT minus FT OOD accuracy against the bridge's eps and
  rho (the real-network phase diagram).

``--cache DIR`` is read when it (or its ``scoreboard/`` folder) holds a scoreboard, e.g. the
``--results`` of ``python -m experiments.scoreboard``; otherwise the committed ``docs/results``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._style import save, setup

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "docs" / "results"
FAMILY_COLORS = {"digits": "#9467bd", "pacs": "#ff7f0e", "subpop": "#17becf", "corruption": "#8c564b"}
PREDICTOR_COLORS = {"bridge": "#2ca02c", "conditions": "#bcbd22", "headline": "#7f7f7f", "majority": "#c7c7c7"}


def _folder(results_dir) -> Path:
    """``results_dir`` if it holds a scoreboard (or its ``scoreboard/`` subfolder does), else the
    committed ``docs/results``: ``python -m figures`` passes the experiments' cache, which has none."""
    for d in ([Path(results_dir), Path(results_dir) / "scoreboard"] if results_dir else []):
        if (d / "scoreboard.csv").is_file():
            return d
    if results_dir is not None and Path(results_dir).resolve() != DEFAULT_RESULTS.resolve():
        import sys
        print(f"figures.scoreboard: no scoreboard.csv in {results_dir}; drawing the committed one in "
              f"{DEFAULT_RESULTS}", file=sys.stderr)
    return DEFAULT_RESULTS


def _load(results_dir):
    import pandas as pd
    d = _folder(results_dir)
    try:
        table = pd.read_csv(d / "scoreboard.csv")
        summary = pd.read_csv(d / "scoreboard_score.csv")
        meta = json.loads((d / "scoreboard.json").read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no scoreboard results in {d} ({exc.filename} missing): run "
                                "`python -m experiments.scoreboard` (or --quick)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"a scoreboard file in {d} is damaged ({exc}); rerun "
                         "`python -m experiments.scoreboard --phase score`") from None
    return table, summary, meta


def _stamp(meta) -> str:
    return f"{meta.get('scale', '?')} scale, seeds {meta.get('seeds')}, git {str(meta.get('git_revision', '?'))[:12]}"


def predicted_vs_observed(table, meta, plt):
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for fam, g in table.groupby("family", sort=True):
        c = FAMILY_COLORS.get(fam, "k")
        ev = g["evidence_grade"].astype(bool)
        y = 100 * g["obs_ood_acc_lp_minus_ft"]
        # unpaired 90% half-width of the difference (conservative): sqrt(hw_LP^2 + hw_FT^2)
        err = 100 * np.sqrt(g["net_lp_ood_acc_hw90"].fillna(0) ** 2 + g["net_ft_ood_acc_hw90"].fillna(0) ** 2)
        ax.errorbar(g["lin_log10_ood_ft_over_lp"], y, yerr=err, fmt="none", ecolor=c, elinewidth=0.7, alpha=0.6)
        ax.scatter(g.loc[ev, "lin_log10_ood_ft_over_lp"], y[ev], color=c, s=45, edgecolors="k", zorder=3,
                   label=f"{fam} (evidence-grade {int(ev.sum())}/{len(g)})")
        ax.scatter(g.loc[~ev, "lin_log10_ood_ft_over_lp"], y[~ev], facecolors="none", edgecolors=c, s=45, zorder=3)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("exact model: log10(L_ood FT / L_ood LP)   (> 0: LP predicted better OOD)")
    ax.set_ylabel("network: OOD accuracy LP - FT (percentage points)\n(> 0: LP better; bars: 90% intervals)")
    ax.set_title(f"Predicted vs observed, one point per pair (open: not evidence-grade)\n{_stamp(meta)}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def score_bars(summary, meta, plt):
    ev = summary[(summary["scope"] == "evidence") & (summary["claim"] != "spearman_ood")]
    claims = list(dict.fromkeys(ev["claim"]))
    preds = [p for p in PREDICTOR_COLORS if p in set(ev["predictor"])]
    fig, ax = plt.subplots(figsize=(11, 5))
    w = 0.8 / max(len(preds), 1)
    labelled: set = set()
    for j, p in enumerate(preds):
        for i, c in enumerate(claims):
            r = ev[(ev["claim"] == c) & (ev["predictor"] == p)]
            if r.empty:
                continue
            r = r.iloc[0]
            x = i + (j - (len(preds) - 1) / 2) * w
            ax.bar(x, r["rate"], w * 0.95, color=PREDICTOR_COLORS[p], label=p if p not in labelled else None,
                   edgecolor="k", lw=0.4)
            labelled.add(p)
            ax.errorbar(x, r["rate"], yerr=[[r["rate"] - r["lo90"]], [r["hi90"] - r["rate"]]], color="k",
                        lw=0.8, capsize=2)
    n = int(ev["n_pairs"].max()) if len(ev) else 0
    import textwrap
    texts = {c: str(ev[ev["claim"] == c]["text"].iloc[0]) for c in claims}
    ax.set_xticks(range(len(claims)))
    ax.set_xticklabels([textwrap.fill(texts[c], 20) for c in claims], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"fraction of evidence-grade pairs predicted right (n = {n})")
    sp = summary[(summary["scope"] == "evidence") & (summary["claim"] == "spearman_ood")]
    sp_txt = (f"; Spearman rho {sp['rate'].iloc[0]:+.2f} [{sp['lo90'].iloc[0]:+.2f}, {sp['hi90'].iloc[0]:+.2f}]"
              if len(sp) and np.isfinite(sp["rate"].iloc[0]) else "")
    ax.set_title(f"Scoreboard, 90% Clopper-Pearson intervals{sp_txt}\n{_stamp(meta)}", fontsize=10)
    ax.legend(fontsize=8, ncol=len(preds), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    return fig


def phase(table, meta, plt):
    """LP-FT minus FT OOD accuracy on the bridge's (eps, rho), rho at the simulation's S tolerance
    (3e-2) and at the looser 0.1 (smaller S: more of the OOD energy counts as outside it)."""
    adv = 100 * (table["net_lpft_ood_acc"] - table["net_ft_ood_acc"])
    vmax = max(float(np.nanmax(np.abs(adv))) if len(adv) else 1.0, 0.5)
    ev = table["evidence_grade"].astype(bool)
    cols = [c for c in ("rho", "rho_s0.1") if c in table]
    fig, axes = plt.subplots(1, len(cols), figsize=(6.6 * len(cols), 5.2), squeeze=False,
                             gridspec_kw={"wspace": 0.32})
    markers = {"digits": "D", "pacs": "^", "subpop": "s", "corruption": "o"}
    sc = None
    for ax, col in zip(axes[0], cols):
        for fam, g in table.groupby("family", sort=True):
            gi = g.index
            for mask, face in ((ev[gi], None), (~ev[gi], "none")):
                idx = gi[mask.to_numpy()]
                if len(idx) == 0:
                    continue
                kw = {"c": adv[idx], "cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax} if face is None else \
                    {"facecolors": "none", "edgecolors": plt.cm.RdBu_r((adv[idx] + vmax) / (2 * vmax))}
                sc_ = ax.scatter(table.loc[idx, "eps"], table.loc[idx, col].clip(lower=1e-6), s=55,
                                 marker=markers.get(fam, "o"), linewidths=0.9,
                                 label=f"{fam}" + ("" if face is None else " (not evidence-grade)"),
                                 **({"edgecolors": "k"} if face is None else {}), **kw)
                sc = sc_ if face is None else sc
            if fam != "corruption":  # the 26 corruption pairs sit in one cluster: labelled by the legend
                for j, i in enumerate(gi):
                    ax.annotate(str(table.loc[i, "ood_domain"])[:12], (table.loc[i, "eps"], table.loc[i, col]),
                                fontsize=7, xytext=(0, 7 if j % 2 == 0 else -13), textcoords="offset points",
                                ha="center", color="0.25")
        ax.set_yscale("log")
        ax.margins(x=0.08, y=0.08)   # room for the point labels at the edges
        ax.set_xlabel("bridge eps = d(B0, B*)")
        tol = "3e-2 (the simulation's S)" if col == "rho" else "0.1 (a looser S)"
        ax.set_ylabel(f"bridge rho at S tolerance {tol}")
    from matplotlib.lines import Line2D   # the legend shows each family's marker, not one point's colour
    fams = sorted(set(table["family"]))
    axes[0][0].legend([Line2D([], [], ls="none", marker=markers.get(f, "o"), mfc="0.6", mec="k") for f in fams],
                      fams, fontsize=7, loc="center left")
    if sc is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), label="network OOD accuracy LP-FT - FT (points)")
    fig.suptitle(f"Real-network phase diagram: LP-FT's OOD advantage over FT on the bridge's (eps, rho); "
                 f"open: not evidence-grade\n"
                 f"{_stamp(meta)}", fontsize=10)
    return fig


def main(results_dir=None, out_dir=None) -> list:
    table, summary, meta = _load(results_dir)
    plt = setup()
    paths = []
    paths += save(score_bars(summary, meta, plt), out_dir, "scoreboard")
    paths += save(predicted_vs_observed(table, meta, plt), out_dir, "scoreboard_predicted_vs_observed")
    paths += save(phase(table, meta, plt), out_dir, "scoreboard_phase")
    return paths


if __name__ == "__main__":
    import sys

    from figures._cli import figure_main
    sys.exit(figure_main("scoreboard"))
