"""WiSE-FT on real networks beside the exact model (issue 20 §3), from the committed table only.

One figure per (family, OOD domain) of ``docs/results/wise_real.csv`` (``experiments.wise_real``),
``wise_real_<family>_<domain>``: columns are the paths (start -> FT, LP -> FT, LP -> LP-FT), rows

1. the networks' OOD accuracy against alpha (mean over seeds, band: min to max over seeds);
2. their ID test accuracy;
3. the exact model's OOD loss on the same pair's features (bridge problems, one thin line per
   binary task, median bold; log scale);
4. its ID loss.

Solid: WiSE-FT (weights interpolated); dashed: the output ensemble. ``--cache DIR`` is read when
it holds ``wise_real.csv``; otherwise the committed ``docs/results``.
"""

from __future__ import annotations

import json
from pathlib import Path


from figures._style import save, setup

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "docs" / "results"
PATH_LABELS = {"zero_ft": "start (random head) -> FT", "lp_ft": "LP -> FT", "lp_lpft": "LP -> LP-FT"}
KIND_STYLE = {"wise": dict(ls="-", color="#d62728", label="WiSE-FT (weights)"),
              "ensemble": dict(ls="--", color="#1f77b4", label="output ensemble")}


def _load(results_dir):
    import pandas as pd
    d = Path(results_dir) if results_dir and (Path(results_dir) / "wise_real.csv").is_file() else DEFAULT_RESULTS
    csv, js = d / "wise_real.csv", d / "wise_real.json"
    if not csv.is_file():
        raise FileNotFoundError(f"no wise_real.csv in {d}: run `python -m experiments.wise_real`")
    return pd.read_csv(csv), json.loads(js.read_text()) if js.is_file() else {}


def _curves(df, side, family, path, split, dom, metric, by):
    """(style, alpha x ``by`` table) of each kind (WiSE-FT, ensemble) present in ``df``."""
    g = df[(df["side"] == side) & (df["family"] == family) & (df["path"] == path)
           & (df["split"] == split) & (df["domain"] == dom) & (df["metric"] == metric)]
    for kind, st in KIND_STYLE.items():
        t = g[g["kind"] == kind].pivot_table(index="alpha", columns=by, values="value")
        if not t.empty:
            yield st, t


def _net_panel(ax, df, family, path, split, dom):
    n = 0
    for st, t in _curves(df, "network", family, path, split, dom, "acc", "seed"):
        ax.plot(t.index, 100 * t.mean(1), **st)
        ax.fill_between(t.index, 100 * t.min(1), 100 * t.max(1), color=st["color"], alpha=0.15, lw=0)
        n = t.shape[1]
    ax.set_ylabel(f"{'OOD' if split == 'ood' else 'ID test'} accuracy (%)")
    return n


def _exact_panel(ax, df, family, path, split, dom):
    for st, t in _curves(df, "exact", family, path, split, dom, "loss", "task"):
        for c in t.columns:
            ax.plot(t.index, t[c], color=st["color"], ls=st["ls"], lw=0.6, alpha=0.5)
        ax.plot(t.index, t.median(1), color=st["color"], ls=st["ls"], lw=2)
    ax.set_yscale("log")
    ax.set_ylabel(f"exact {'OOD' if split == 'ood' else 'ID'} loss")


def figure(df, family, domain, meta, plt):
    paths = [p for p in PATH_LABELS if p in set(df["path"])]
    fig, axes = plt.subplots(4, len(paths), figsize=(4.2 * len(paths), 11), sharex=True, squeeze=False)
    n = 0
    for j, path in enumerate(paths):
        n = _net_panel(axes[0, j], df, family, path, "ood", domain)
        _net_panel(axes[1, j], df, family, path, "id_test", "id")
        _exact_panel(axes[2, j], df, family, path, "ood", domain)
        _exact_panel(axes[3, j], df, family, path, "id", "id")
        axes[0, j].set_title(PATH_LABELS[path])
        axes[3, j].set_xlabel("alpha (0: start, 1: end)")
    axes[0, 0].legend(loc="best", fontsize=8)
    rev = str(meta.get("git_revision", "?"))[:9]
    fig.suptitle(f"{family} -> {domain}: networks (rows 1-2, mean of {n} seed(s), band min-max) and the exact model on "
                 f"their features (rows 3-4, one line per binary task, median bold); git {rev}", fontsize=10)
    fig.tight_layout()
    return fig


def main(results_dir=None, out_dir=None) -> list:
    df, meta = _load(results_dir)
    plt = setup()
    out = []
    net = df[(df["side"] == "network") & (df["split"] == "ood") & df["kind"].isin(list(KIND_STYLE))]
    for (family, domain), _ in net.groupby(["family", "domain"]):
        stem = f"wise_real_{family}_{domain}".replace(" ", "_")
        out += save(figure(df, family, domain, meta, plt), out_dir, stem)
    if not out:
        raise FileNotFoundError("wise_real.csv holds no network rows")
    return out


if __name__ == "__main__":
    import sys

    from figures._cli import figure_main
    sys.exit(figure_main("wise_real"))
