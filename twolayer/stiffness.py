"""What makes a flow stiff, for the step-limit error (issue 22 §3).

The reduced flow's fastest rate at the start is bounded by
L = 2 max(s^2) (||v0||^2 + ||G0||^2) + 2 ||r_S(0)|| (:func:`hessian_bound`),
and an explicit solver's step cannot exceed a few / L. When the steps taken before the
step limit averaged less than ``STIFF_STEP / L``, the scale of the head (||v0||), of the
features on S (||G0||) held them down (when it exceeds ``SCALE_RATIO`` times a solution's
own size), and the message says which; otherwise the step limit has another cause (a long
horizon, slow modes) and the message keeps its general advice.
"""

from __future__ import annotations

import numpy as np

from ._field import _gtv, _norm, _sqnorm

__all__ = ["diagnose", "hessian_bound"]

#: A mean step below STIFF_STEP / L: the step size was held down by the fastest rate.
STIFF_STEP = 10.0
#: ... because of the start's scale: ||v0||^2 + ||G0||^2 above SCALE_RATIO times the size of
#: a solution (k + ||c / s^2||, the interpolating outputs p* = c / s^2 and unit feature rows).
SCALE_RATIO = 100.0


def hessian_bound(s2, c, v, G):
    """L = 2 max(s2) (||v||^2 + ||G||^2) + 2 ||r_S||: a bound on the largest eigenvalue of the
    reduced Hessian at (v, G) (1 / L: the fastest time scale). A float for one problem, an
    array (B,) for a chunk (leading batch axis)."""
    r = s2 * _gtv(np, G, v) - c
    L = 2.0 * np.max(s2, axis=-1) * (_sqnorm(np, v, 1) + np.sum(G ** 2, axis=(-2, -1))) \
        + 2.0 * _norm(np, r, 1)
    return float(L) if np.ndim(L) == 0 else L


def diagnose(s2, c, v0, G0, t_end: float, steps: int) -> str | None:
    """A sentence naming the scale that made the flow stiff, or None when it was not: the
    solver took ``steps`` steps to reach ``t_end``; when the mean step is within
    ``STIFF_STEP`` of the fastest time scale 1 / L, the step size was held down by L."""
    s2max = float(np.max(s2))
    head, feat = float(v0 @ v0), float(np.sum(G0 ** 2))
    L = hessian_bound(s2, c, v0, G0)
    natural = G0.shape[0] + float(np.linalg.norm(c / s2))     # a state of the solution's own size
    if not (steps > 0 and t_end > 0 and L > 0) or t_end / steps * L > STIFF_STEP \
            or (head + feat) < SCALE_RATIO * natural:
        return None
    cause = ("the head (||v0||^2 = %.3g)" % head) if head >= feat else ("the features on S (||G0||_F^2 = %.3g)" % feat)
    return (f"the flow is stiff: its fastest rate is L ~ {L:.3g} (2 max(s^2) = {2 * s2max:.3g} times "
            f"||v0||^2 + ||G0||^2, dominated by {cause}), and the mean step {t_end / steps:.2g} stayed at or "
            f"below 1 / L = {1 / L:.2g}. Measured on v0 = (1e3, 1e3): neither max_steps=200000, rtol=1e-6, "
            f"solver='kvaerno5' nor atol_relative=False reaches the steady state; what helps is the scale: "
            f"rescale the problem so that ||v0|| and ||B0 restricted to S|| are O(1), or ask only for times "
            f"up to about {t_end:.2g}")
