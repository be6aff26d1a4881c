"""Independent full-state reference integrator (scipy DOP853), for cross-checks.

Integrates (v, B) in R^{k + k d} directly from THEORY.md §1, with no reduced
coordinates and no steady-state holding. Slow but independent of
:mod:`twolayer.flow`. Failures of ``solve_ivp`` raise, never pass silently.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from .errors import SolverFailedError, TwoLayerInputError
from .flow import _check_method, _check_ts, _check_v0
from .lp import LinearProbe
from .problem import Problem
from .trajectory import Trajectory

__all__ = ["simulate_reference"]


def simulate_reference(problem: Problem, method: str, ts, v0=None, rtol: float = 1e-12,
                       atol: float = 1e-16, *,
                       solver: str = "DOP853") -> Trajectory:
    """Full-state ``solve_ivp`` integration of the LP / FT / LP-FT flow at finite ``ts``.

    For "lpft" the LP stage uses the closed-form limit (the flow cannot reach t = inf).
    """
    method = _check_method(method)
    ts = _check_ts(ts)
    if not np.all(np.isfinite(ts)):
        raise TwoLayerInputError("ts", "the reference integrator needs finite times")
    v0 = _check_v0(problem, v0)
    k, d = problem.k, problem.d
    XtX = problem.X.T @ problem.X
    Xty = problem.X.T @ problem.y
    v_start = LinearProbe(problem).limit(v0) if method == "lpft" else v0
    B0 = problem.B0

    def rhs(t, z):
        v = z[:k]
        B = z[k:].reshape(k, d)
        g = XtX @ (B.T @ v) - Xty          # X^T r
        dv = -2.0 * (B @ g)
        dB = np.zeros_like(B) if method == "lp" else -2.0 * np.outer(v, g)
        return np.concatenate([dv, dB.ravel()])

    z0 = np.concatenate([v_start, B0.ravel()])
    start = time.perf_counter()
    # Integrate interval by interval, so every output is a step end point of the solver
    # (no dense-output interpolation, whose error can exceed the tolerances).
    Z, nfev, z = np.empty((z0.size, ts.size)), 0, z0
    t_prev = 0.0
    for j, t in enumerate(ts):
        if t > t_prev:
            sol = solve_ivp(rhs, (t_prev, float(t)), z, method=solver, rtol=rtol, atol=atol)
            if not sol.success:
                raise SolverFailedError(f"solve_ivp({solver}) failed on [{t_prev:g}, {t:g}]: {sol.message}")
            z, nfev, t_prev = sol.y[:, -1], nfev + int(sol.nfev), float(t)
        Z[:, j] = z
    status = "success"
    wall = time.perf_counter() - start
    v = Z[:k].T
    B = Z[k:].T.reshape(ts.size, k, d)
    return Trajectory(ts=ts, v=v, B=B, method=method, v0=v_start, status=status,
                      stats=dict(solver=f"scipy-{solver}", rtol=rtol, atol=atol, nfev=nfev, wall_time_s=wall))
