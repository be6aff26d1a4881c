"""Feature distortion, empirical (cached results) next to the two-layer linear model.

Per dataset found under ``results_dir``: the authors' distortion metric (mean
squared change per penultimate coordinate, eval mode, THEORY.md §7) for ID
(filled) and OOD (open, mean over OOD domains) inputs, for LP-FT against the
norm of the LP head it started from (the selected head, stars, and the heads
of the L2 sweep, ``lpft-head`` runs, circles) and for FT (horizontal lines:
solid ID, dashed OOD; the band is the range over seeds). The last panel is
the linear model (THEORY.md §6), read from the core package's cached
``feature_distortion`` experiment: FT and LP-FT feature change on ID and
OOD inputs at the end of training, per epsilon (no simulation here).

Reads cached results only; never trains or simulates. ``main(results_dir, out_dir)``
writes ``empirical_distortion.png`` and ``.pdf`` (``python -m figures`` calls it).

CLI: ``python -m figures.empirical_distortion [--empirical DIR] [--cache DIR]
[--out DIR]`` (the option names of ``python -m figures``; exit 2 when the empirical
folder is missing or holds no empirical results).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def _load(results_dir) -> list[dict]:
    recs = []
    for p in sorted(Path(results_dir).glob("*/*/seed*.json")):
        recs.extend(json.loads(p.read_text()).get("records", []))
    return recs


def _runs(recs, dataset):
    """(method, seed, lr, lp_l2) -> {'id': msq, 'ood': mean msq over domains, 'norm': lp head norm}."""
    runs = defaultdict(lambda: {"ood_list": []})
    for r in recs:
        if r["dataset"] != dataset or r["metric"] != "distortion_msq" or r["epoch"] is not None:
            continue
        if r["method"] not in ("ft", "lpft", "lpft-head"):
            continue
        if r["method"] in ("ft", "lpft") and not r["selected"]:
            continue
        key = (r["method"], r["seed"], r["lr"], r["lp_l2"])
        run = runs[key]
        run["norm"] = r["lp_head_norm"]
        if r["split"] == "id_val":
            run["id"] = r["value"]
        else:
            run["ood_list"].append(r["value"])
    out = {}
    for k, v in runs.items():
        if "id" in v and v["ood_list"]:
            out[k] = {"id": v["id"], "ood": float(np.mean(v["ood_list"])), "norm": v["norm"]}
    return out


def linear_model_panel(ax, linear_results_dir=None) -> bool:
    """Feature change of the linear model at the end of training (cached ``feature_distortion``
    experiment of the core package; median over seeds), FT vs LP-FT, ID vs OOD inputs."""
    try:
        from experiments._common import load_records
        df = load_records("feature_distortion", out=linear_results_dir)
    except (FileNotFoundError, ImportError) as exc:
        ax.text(0.5, 0.5, f"linear-model results not cached:\n{exc}"[:300], ha="center", va="center",
                fontsize=6, wrap=True, transform=ax.transAxes)
        ax.set_axis_off()
        return False
    from figures._style import source_label
    label = source_label(df)
    df = df[df.inputs.isin(["id", "ood"]) & (df.t > 0)]
    t_end = df.t.max()  # inf when the cache holds the limit
    end = df[df.t == t_end]
    eps_vals = sorted(end.eps_nominal.unique())
    xs = np.arange(len(eps_vals))
    colors = {"ft": "C3", "lpft": "C0"}
    for i, (meth, inp) in enumerate([("ft", "id"), ("ft", "ood"), ("lpft", "id"), ("lpft", "ood")]):
        vals = [end[(end.eps_nominal == e) & (end.method == meth) & (end.inputs == inp)].feature_change.median()
                for e in eps_vals]
        ax.bar(xs + 0.2 * i, vals, width=0.19, color=colors[meth], alpha=1.0 if inp == "id" else 0.45,
               label=f"{'FT' if meth == 'ft' else 'LP-FT'} {'ID' if inp == 'id' else 'OOD'}")
    ax.set_xticks(xs + 0.3, [f"eps {e:g}" for e in eps_vals], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("mean ||(B - B0) x||, unit x (t = %s)" % ("inf" if not np.isfinite(t_end) else f"{t_end:g}"))
    ax.set_title(f"linear model (THEORY.md §6; {label})")
    ax.legend(fontsize=7)
    return True


DEFAULT_RESULTS = Path(__file__).resolve().parents[1] / "results" / "empirical_gpu"


def main(results_dir=None, out_dir=None, linear_results_dir=None) -> list[Path]:
    """Draw the figure from cached empirical results (default ``results/empirical_gpu``) and the
    cached linear-model ``feature_distortion`` experiment; raise FileNotFoundError when no
    empirical results are cached (``python -m figures`` then skips it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_dir = Path(results_dir) if results_dir else DEFAULT_RESULTS
    recs = _load(results_dir)
    if not recs:
        raise FileNotFoundError(f"no empirical results under {results_dir}; run "
                                "`python -m experiments.empirical_gpu --out DIR` (GPU) or "
                                "`python -m experiments.empirical --out DIR` first")
    datasets = sorted({r["dataset"] for r in recs})
    ncol = len(datasets) + 1
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 3.6), squeeze=False)
    axes = axes[0]
    for ax, ds in zip(axes, datasets):
        runs = _runs(recs, ds)
        ft = [v for (m, *_), v in runs.items() if m == "ft"]
        for key, ls in (("id", "-"), ("ood", "--")):
            if ft:
                vals = [100 * r[key] for r in ft]
                ax.axhline(np.mean(vals), color="C3", ls=ls, lw=1.5,
                           label=f"FT {'ID' if key == 'id' else 'OOD'} (mean of {len(vals)})")
                ax.axhspan(min(vals), max(vals), color="C3", alpha=0.08)
        for method, marker, size in (("lpft-head", "o", 30), ("lpft", "*", 110)):
            pts = [v for (m, *_), v in runs.items() if m == method and v["norm"] is not None]
            if not pts:
                continue
            x = [p["norm"] for p in pts]
            lab = "LP-FT (selected LP head)" if method == "lpft" else "LP-FT (other LP heads)"
            ax.scatter(x, [100 * p["id"] for p in pts], marker=marker, s=size, color="C0", label=lab + " ID")
            ax.scatter(x, [100 * p["ood"] for p in pts], marker=marker, s=size, facecolors="none",
                       edgecolors="C0", label=lab + " OOD")
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import NullFormatter
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short log axis
        ax.set_xlabel("LP head norm ||W_lp||_F")
        ax.set_ylabel("feature distortion x100 (mean sq. change)")
        ax.set_title(ds)
        ax.legend(fontsize=6, loc="best")
    linear_model_panel(axes[-1], linear_results_dir)
    fig.tight_layout()
    if out_dir is None:
        try:
            from figures._style import DEFAULT_OUT as out_dir
        except ImportError:
            out_dir = Path("results") / "figures"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"empirical_distortion.{ext}"
        fig.savefig(p, dpi=150)
        paths.append(p)
    plt.close(fig)
    return paths


def cli(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m figures.empirical_distortion",
                                 description="Feature distortion of the real networks (cached empirical results) "
                                             "next to the two-layer linear model; never trains.")
    ap.add_argument("--empirical", type=Path, default=DEFAULT_RESULTS, metavar="DIR",
                    help=f"cached empirical results (must exist; default {DEFAULT_RESULTS})")
    ap.add_argument("--cache", type=Path, default=None, metavar="DIR",
                    help="results cache of the core package's feature_distortion experiment (the linear-model "
                         "panel; default: the experiments' default cache)")
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="figure folder: empirical_distortion.png / .pdf are written there (default: the "
                         "figures' default folder)")
    a = ap.parse_args(argv)
    if not a.empirical.is_dir():
        ap.error(f"--empirical {a.empirical}: no such folder")
    try:
        paths = main(a.empirical, a.out, a.cache)
    except FileNotFoundError as e:
        ap.error(str(e))
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
