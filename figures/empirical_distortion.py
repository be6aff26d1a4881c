"""Feature distortion, empirical (cached results) next to the two-layer linear model.

Per dataset found under ``results_dir``: the authors' distortion metric (mean
squared change per penultimate coordinate, eval mode, THEORY.md §7) for ID
(filled) and OOD (open, mean over OOD domains) inputs, for LP-FT against the
norm of the LP head it started from (the selected head, stars, and the heads
of the L2 sweep, ``lpft-head`` runs, circles) and for FT (horizontal lines:
solid ID, dashed OOD; the band is the range over seeds). The last panel is
the linear model of THEORY.md §1 under discrete gradient descent (a few
thousand numpy steps, no network trained): FT and LP-FT feature change on
ID inputs (x in S) and OOD inputs (x in S_perp), where invariant I1 says the
OOD change is exactly zero.

Reads cached results only; never trains a network. ``main(results_dir, out_dir)``
writes ``empirical_distortion.png`` and ``.pdf``.
"""

from __future__ import annotations

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


def linear_model_distortion(d=30, k=4, n=12, steps=4000, lr=2e-3, seed=0):
    """Discrete-GD FT and LP-FT in the two-layer linear model (THEORY.md §1).

    Returns {method: (ID change, OOD change)}: mean squared feature change
    ||B(t)x - B0 x||^2 / k over unit x in S (ID) and in S_perp (OOD).
    """
    rng = np.random.default_rng(seed)
    Bstar = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    vstar = rng.standard_normal(k)
    pert = 0.2 * rng.standard_normal((k, d))
    B0 = np.linalg.qr((Bstar + pert).T)[0].T  # good but imperfect features, orthonormal rows
    X = rng.standard_normal((n, d // 3))  @ np.linalg.qr(rng.standard_normal((d, d // 3)))[0].T  # rank d/3: S
    y = X @ (Bstar.T @ vstar)
    Q, _ = np.linalg.qr(X.T)
    S = Q[:, :np.linalg.matrix_rank(X)]
    P_perp = np.eye(d) - S @ S.T
    Sp = np.linalg.qr(P_perp @ rng.standard_normal((d, 20)))[0]
    H = B0 @ X.T @ X @ B0.T
    v_lp = np.linalg.lstsq(H, B0 @ X.T @ y, rcond=None)[0]
    out = {}
    for name, v0 in (("FT", 0.01 * rng.standard_normal(k)), ("LP-FT", v_lp)):
        B, v = B0.copy(), v0.copy()
        for _ in range(steps):
            r = X @ B.T @ v - y
            gv, gB = 2 * B @ X.T @ r, 2 * np.outer(v, r @ X)
            v, B = v - lr * gv, B - lr * gB
        D = B - B0
        out[name] = (float(np.mean((D @ S) ** 2)), float(np.mean((D @ Sp) ** 2)))
    return out


def main(results_dir="results/empirical_gpu", out_dir="figures/out") -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = _load(results_dir)
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
        ax.set_xlabel("LP head norm ||W_lp||_F")
        ax.set_ylabel("feature distortion x100 (mean sq. change)")
        ax.set_title(ds)
        ax.legend(fontsize=6, loc="best")
    ax = axes[-1]
    lin = linear_model_distortion()
    xs = np.arange(2)
    for i, (name, (di, do)) in enumerate(lin.items()):
        ax.bar(xs + 0.38 * i, [max(di, 1e-16), max(do, 1e-16)], width=0.36, label=name,
               color=["C3", "C0"][i])
    ax.set_xticks(xs + 0.19, ["ID (x in S)", "OOD (x in S_perp)"])
    ax.set_yscale("log")
    ax.set_ylim(1e-17, None)
    ax.set_title("linear model (THEORY.md §1, I1)")
    ax.set_ylabel("mean sq. feature change")
    ax.legend(fontsize=7)
    if not datasets:
        fig.suptitle(f"no empirical results under {results_dir} yet", fontsize=9)
    fig.tight_layout()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"empirical_distortion.{ext}"
        fig.savefig(p, dpi=150)
        paths.append(p)
    plt.close(fig)
    return paths


if __name__ == "__main__":
    print(main(*(sys.argv[1:3])))
