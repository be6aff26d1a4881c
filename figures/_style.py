"""Shared figure helpers: output folder, style, saving PNG + PDF."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(os.environ.get("TWOLAYER_FIGURES", REPO / "results" / "figures"))

#: One colour per method, used by every figure.
METHOD_COLORS = {"lp": "#1f77b4", "ft": "#d62728", "lpft": "#2ca02c", "bound": "#555555"}
METHOD_LABELS = {"lp": "LP", "ft": "FT", "lpft": "LP-FT"}


def setup():
    """Non-interactive backend and a paper-like seaborn theme; returns pyplot."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    return plt


def save(fig, out_dir, stem: str) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (200 dpi) and ``stem.pdf`` in ``out_dir``; close it."""
    out = Path(out_dir or DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=200, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths
