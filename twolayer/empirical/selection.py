"""Model selection on ID validation, and the warnings that say when it is not to be trusted.

The authors' protocol (THEORY.md §7): FT and LP-FT sweep one shared lr grid and the
(lr, epoch) pair is chosen on ID validation accuracy; LP's L2 strength is chosen on ID
validation too. This module holds that logic as pure functions of the curves, so it
can be tested on fake curves:

* ``best_epoch(curve)``: the epoch of highest ID val accuracy (ties: lower ID val
  loss, then the earlier epoch).
* ``select_run(curves)``: over the lrs, the run whose best epoch is best (ties: lower
  ID val loss, then the smaller index); diverged runs are never selected unless all did.
* ``edge_warning(grid, value, what)``: a selected value on the edge of its grid (or a
  one-value grid) means the optimum may lie outside it.
* ``plateau_warning(curve, epoch)``: ID val accuracy still rising at the last epoch
  means the run needs more epochs.
* ``rule_of_thumb_warning(lp_id, ft_id)``: FT below LP on ID for a backbone that fits
  the task means the FT recipe is wrong, not the paper (issue 8 §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["Curve", "Selection", "best_epoch", "select_run", "edge_warning", "plateau_warning",
           "rule_of_thumb_warning"]


@dataclass
class Curve:
    """ID validation curve of one run: ``epochs[i]`` -> ``id_val[i]`` (accuracy), ``id_val_loss[i]``."""
    lr: float
    epochs: Sequence[int]
    id_val: Sequence[float]
    id_val_loss: Sequence[float] | None = None
    diverged: bool = False

    def __post_init__(self):
        if len(self.epochs) != len(self.id_val) or len(self.epochs) == 0:
            raise ValueError(f"Curve lr={self.lr}: {len(self.epochs)} epochs but {len(self.id_val)} "
                             "ID val values (need the same non-zero number)")
        if self.id_val_loss is not None and len(self.id_val_loss) != len(self.epochs):
            raise ValueError(f"Curve lr={self.lr}: id_val_loss has {len(self.id_val_loss)} values, "
                             f"expected {len(self.epochs)}")


@dataclass
class Selection:
    index: int  # position of the selected run in the list of curves
    lr: float
    epoch: int
    id_val: float
    warnings: list[str] = field(default_factory=list)


def _key(acc: float, loss: float | None) -> tuple:
    a = acc if math.isfinite(acc) else -math.inf
    lo = loss if loss is not None and math.isfinite(loss) else math.inf
    return (a, -lo)


def best_epoch(curve: Curve, min_epoch: int = 1) -> tuple[int, float]:
    """(epoch, ID val acc) of the best checkpoint with epoch >= ``min_epoch`` (epoch 0 is the
    start, not a trained checkpoint; used only when no later epoch exists)."""
    cand = [i for i, e in enumerate(curve.epochs) if e >= min_epoch] or list(range(len(curve.epochs)))
    losses = curve.id_val_loss
    best = max(cand, key=lambda i: (_key(curve.id_val[i], losses[i] if losses is not None else None), -i))
    return int(curve.epochs[best]), float(curve.id_val[best])


def select_run(curves: Sequence[Curve], what: str = "lr", grid: Sequence[float] | None = None) -> Selection:
    """Choose (lr, epoch) on ID validation among ``curves`` (one per lr); add edge / plateau warnings."""
    if not curves:
        raise ValueError("select_run: no runs to select from")
    warnings: list[str] = []
    ok = [i for i, c in enumerate(curves) if not c.diverged]
    if not ok:
        warnings.append(f"every {what} diverged; the selected run is a diverged one")
        ok = list(range(len(curves)))

    def key(i):
        c = curves[i]
        e, a = best_epoch(c)
        j = list(c.epochs).index(e)
        loss = c.id_val_loss[j] if c.id_val_loss is not None else None
        return (_key(a, loss), -i)

    i = max(ok, key=key)
    e, a = best_epoch(curves[i])
    grid = [c.lr for c in curves] if grid is None else list(grid)
    w = edge_warning(grid, curves[i].lr, what)
    if w:
        warnings.append(w)
    w = plateau_warning(curves[i], e)
    if w:
        warnings.append(w)
    return Selection(i, float(curves[i].lr), e, a, warnings)


def edge_warning(grid: Sequence[float], value: float, what: str = "lr") -> str | None:
    """A message when ``value`` is the smallest or largest of ``grid`` (or the grid has one value)."""
    g = sorted(float(x) for x in grid)
    if len(g) == 0:
        raise ValueError(f"edge_warning: empty {what} grid")
    if len(g) == 1:
        return f"the {what} grid has one value ({g[0]:g}): {what} is not selected, only fixed"
    tol = 1e-9 * max(abs(g[0]), abs(g[-1]))
    if abs(value - g[0]) <= tol:
        return (f"selected {what} {value:g} is the smallest of its grid [{g[0]:g} .. {g[-1]:g}]: "
                f"the best {what} may lie below it; extend the grid")
    if abs(value - g[-1]) <= tol:
        return (f"selected {what} {value:g} is the largest of its grid [{g[0]:g} .. {g[-1]:g}]: "
                f"the best {what} may lie above it; extend the grid")
    return None


def plateau_warning(curve: Curve, epoch: int, tol: float = 0.005) -> str | None:
    """A message when the selected epoch is the last one and ID val accuracy rose by more than
    ``tol`` over the last quarter of training (it has not plateaued: more epochs are needed)."""
    eps = list(curve.epochs)
    last = max(eps)
    if epoch != last or last < 2:
        return None
    cut = max(e for e in eps if e <= max(1, int(0.75 * last)) or e == min(eps))
    before = max(a for e, a in zip(eps, curve.id_val) if e <= cut)
    gain = curve.id_val[eps.index(last)] - before
    if gain > tol:
        return (f"lr {curve.lr:g}: ID val accuracy still rising at the last epoch {last} "
                f"(+{100 * gain:.1f} points since epoch {cut}): not plateaued, use more epochs")
    return None


def rule_of_thumb_warning(lp_id: float, ft_id: float, tol: float = 0.0, where: str = "") -> str | None:
    """Issue 8 §2: FT must not be below LP on ID for a backbone that fits the task."""
    if not (math.isfinite(lp_id) and math.isfinite(ft_id)):
        return None
    if ft_id < lp_id - tol:
        return (f"{where}FT is below LP on ID ({100 * ft_id:.1f} vs {100 * lp_id:.1f} %): for a backbone "
                "that fits the task the FT recipe is wrong (too few epochs, lr grid, resolution), not the "
                "paper; do not report these numbers as evidence")
    return None
