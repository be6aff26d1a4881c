"""Discrete gradient descent, for comparison with the flow (THEORY.md §1, §3).

Same loss, gradients and conventions as the flow; a step of size ``lr`` advances
flow time by ``lr``. I1 holds exactly (grad_B has rows in S); I2 drifts by O(lr^2)
per step.
"""

from __future__ import annotations

import numpy as np

from .errors import TwoLayerInputError
from .flow import _check_method, _check_v0
from .lp import LinearProbe
from .problem import Problem
from .trajectory import Trajectory

__all__ = ["gradient_descent"]


def gradient_descent(problem: Problem, method: str, lr: float, steps: int, v0=None, *,
                     record_every: int = 1) -> Trajectory:
    """Full-batch GD on L(v, B) = ||X B^T v - y||^2 with step ``lr``.

    method : "lp" (B fixed), "ft", or "lpft" (closed-form LP limit, then GD on FT).
    Returns a :class:`Trajectory` with ``ts = lr * step`` at every ``record_every`` steps.
    Raises if the iteration diverges (non-finite state).
    """
    method = _check_method(method)
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise TwoLayerInputError("lr", f"must be a positive finite float, got {lr}")
    if int(steps) != steps or steps < 0:
        raise TwoLayerInputError("steps", f"must be a non-negative integer, got {steps}")
    if int(record_every) < 1:
        raise TwoLayerInputError("record_every", f"must be >= 1, got {record_every}")
    v0 = _check_v0(problem, v0)
    v = LinearProbe(problem).limit(v0) if method == "lpft" else v0.copy()
    v_start = v.copy()
    B = problem.B0.copy()
    X, y = problem.X, problem.y
    XtX, Xty = X.T @ X, X.T @ y
    ts, vs, Bs = [0.0], [v.copy()], [B.copy()]
    for step in range(1, int(steps) + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            g = XtX @ (B.T @ v) - Xty            # X^T r
            grad_v = 2.0 * B @ g
            if method != "lp":
                B = B - lr * 2.0 * np.outer(v, g)
            v = v - lr * grad_v
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(B))):
            raise TwoLayerInputError("lr", f"GD diverged at step {step} (lr={lr})",
                                     "use a smaller step size (below 1 / lambda_max of the loss Hessian)")
        if step % record_every == 0 or step == steps:
            ts.append(step * lr)
            vs.append(v.copy())
            Bs.append(B.copy())
    return Trajectory(ts=np.array(ts), v=np.array(vs), B=np.array(Bs), method=f"gd-{method}",
                      v0=v_start, status="success", stats=dict(solver="gd", lr=lr, steps=int(steps)))
