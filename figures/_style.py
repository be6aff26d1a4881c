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


def source_label(source) -> str:
    """"quick mode, seed 0" for records loaded by ``experiments._common.load_records`` (their
    ``attrs["source"]``; ``source`` may be that DataFrame or the dict itself); "" when unknown."""
    info = getattr(source, "attrs", {}).get("source") if not isinstance(source, dict) else source
    if not info:
        return ""
    seed = info.get("seed")
    mode = info.get("mode") or "custom"
    label = f"{mode} mode" if mode in ("quick", "full") else f"custom config {info.get('config_hash', '')}".strip()
    return label + (f", seed {seed}" if seed is not None else "")


def stamp(fig, source) -> None:
    """Put what the figure shows (mode and seed, :func:`source_label`) at the start of its title."""
    label = source_label(source)
    if not label:
        return
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    kw = {"fontsize": fig._suptitle.get_fontsize()} if title else {"fontsize": 11}
    fig.suptitle(f"[{label}] {title}".strip(), **kw)


def save(fig, out_dir, stem: str, source=None) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (200 dpi) and ``stem.pdf`` in ``out_dir``; close it. ``source``
    (the records drawn, see :func:`stamp`) puts their mode and seed at the start of the title."""
    if source is not None:
        stamp(fig, source)
    out = Path(out_dir or DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=200, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths
