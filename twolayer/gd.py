"""Discrete gradient descent, for comparison with the flow (THEORY.md §1, §3).

Same loss, gradients and conventions as the flow; a step of size ``lr`` advances
flow time by ``lr``. I1 holds exactly (grad_B has rows in S); I2 drifts by O(lr^2)
per step.
"""

from __future__ import annotations

import numpy as np

from .accuracy import closed_form_accuracy
from .errors import TwoLayerInputError
from .flow import _check_problem, _check_v0
from .methods import get_method
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
    problem = _check_problem(problem)
    meth = get_method(method)
    method = meth.name
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        lr = float("nan")
    if not (np.isfinite(lr) and lr > 0):
        raise TwoLayerInputError("lr", f"must be a positive finite float, got {lr}", "pass e.g. lr=1e-3")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer, float)) \
            or not np.isfinite(steps) or int(steps) != steps or steps < 0:
        raise TwoLayerInputError("steps", f"must be a non-negative integer, got {steps!r}",
                                 "pass the number of GD steps, e.g. steps=1000 (flow time = lr * steps)")
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise TwoLayerInputError("record_every", f"must be an integer >= 1, got {record_every!r}")
    v0 = _check_v0(problem, v0)
    v = meth.start(problem, v0)
    v_start = v.copy()
    B = problem.B0.copy()
    X, y = problem.X, problem.y
    XtX, Xty = X.T @ X, X.T @ y
    ts, vs, Bs = [0.0], [v.copy()], [B.copy()]
    for step in range(1, int(steps) + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            g = XtX @ (B.T @ v) - Xty            # X^T r
            grad_v = 2.0 * B @ g
            if meth.trains_B:
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
                      v0=v_start, status="success", stats=dict(solver="gd", lr=lr, steps=int(steps)),
                      accuracy=closed_form_accuracy(condition=max(int(steps), 1)))
