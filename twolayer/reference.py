"""Independent full-state reference integrators (scipy), for cross-checks.

Integrates (v, B) in R^{k + k d} directly from THEORY.md §1, with no reduced
coordinates and no steady-state holding. Slow but independent of
:mod:`twolayer.flow`. Failures of ``solve_ivp`` raise, never pass silently.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from .accuracy import flow_accuracy
from .errors import SolverFailedError, TwoLayerInputError
from .flow import _check_problem, _check_ts, _check_v0
from .methods import get_method
from .problem import Problem
from .trajectory import Trajectory

__all__ = ["simulate_reference", "regularized_reference"]


def simulate_reference(problem: Problem, method: str, ts, v0=None, rtol: float = 1e-12,
                       atol: float = 1e-16, *,
                       solver: str = "DOP853", feature_rate: float = 1.0) -> Trajectory:
    """Full-state ``solve_ivp`` integration of the LP / FT / LP-FT flow at finite ``ts``.

    ``feature_rate`` gamma multiplies dB/dt (the two-rate flow of :mod:`twolayer.rates`,
    integrated here directly in (v, B), with no scaling and no reduced coordinates).

    For "lpft" the LP stage uses the closed-form limit (the flow cannot reach t = inf).
    The integrated state is the displacement from the start (tolerances act on the change);
    the implicit solvers ("Radau", "BDF", "LSODA") get the analytic Jacobian.
    """
    problem = _check_problem(problem)
    meth = get_method(method)
    method = meth.name
    ts = _check_ts(ts)
    if not np.all(np.isfinite(ts)):
        raise TwoLayerInputError("ts", "the reference integrator needs finite times")
    v0 = _check_v0(problem, v0)
    from .rates import check_feature_rate
    gamma = check_feature_rate(feature_rate)
    k, d = problem.k, problem.d
    XtX = problem.X.T @ problem.X
    Xty = problem.X.T @ problem.y
    v_start = meth.start(problem, v0)
    B0 = problem.B0

    # The integrated state is the displacement z = (v, B) - (v_start, B0), so that the
    # tolerances act on the change the flow makes (resolved pointwise even when it is
    # tiny, e.g. LP-FT at small eps), not on the O(1) state.
    zs = np.concatenate([v_start, B0.ravel()])

    def rhs(t, z):
        s = zs + z
        v = s[:k]
        B = s[k:].reshape(k, d)
        g = XtX @ (B.T @ v) - Xty          # X^T r
        dv = -2.0 * (B @ g)
        dB = -2.0 * gamma * np.outer(v, g) if meth.trains_B else np.zeros_like(B)
        return np.concatenate([dv, dB.ravel()])

    def jac(t, z):
        """Analytic Jacobian (for the implicit methods Radau, BDF, LSODA)."""
        s = zs + z
        v = s[:k]
        B = s[k:].reshape(k, d)
        g = XtX @ (B.T @ v) - Xty
        MBt = XtX @ B.T                     # (d, k): dg/dv
        J = np.zeros((k + k * d, k + k * d))
        J[:k, :k] = -2.0 * B @ MBt
        eye_k = np.eye(k)
        # d(dv_a)/dB_ij = -2 (delta_ai g_j + (B M)_aj v_i)
        J[:k, k:] = (-2.0 * (np.einsum("ai,j->aij", eye_k, g) + np.einsum("aj,i->aij", MBt.T, v))).reshape(k, k * d)
        if meth.trains_B:
            # d(dB_ab)/dv_c = -2 (delta_ac g_b + v_a (M B^T)_bc)
            J[k:, :k] = (-2.0 * (np.einsum("ac,b->abc", eye_k, g) + np.einsum("a,bc->abc", v, MBt))).reshape(k * d, k)
            # d(dB_ab)/dB_ij = -2 v_a M_bj v_i
            J[k:, k:] = (-2.0 * np.einsum("a,bj,i->abij", v, XtX, v)).reshape(k * d, k * d)
            J[k:] *= gamma
        return J

    implicit = solver in ("Radau", "BDF", "LSODA")
    start = time.perf_counter()
    # Integrate interval by interval, so every output is a step end point of the solver
    # (no dense-output interpolation, whose error can exceed the tolerances).
    Z, nfev, z = np.empty((zs.size, ts.size)), 0, np.zeros_like(zs)
    t_prev = 0.0
    for j, t in enumerate(ts):
        if t > t_prev:
            sol = solve_ivp(rhs, (t_prev, float(t)), z, method=solver, rtol=rtol, atol=atol,
                            **({"jac": jac} if implicit else {}))
            if not sol.success:
                raise SolverFailedError(f"solve_ivp({solver}) failed on [{t_prev:g}, {t:g}]: {sol.message}")
            z, nfev, t_prev = sol.y[:, -1], nfev + int(sol.nfev), float(t)
        Z[:, j] = z
    Z = zs[:, None] + Z
    status = "success"
    wall = time.perf_counter() - start
    v = Z[:k].T
    B = Z[k:].T.reshape(ts.size, k, d)
    return Trajectory(ts=ts, v=v, B=B, method=method, v0=v_start, status=status,
                      stats=dict(solver=f"scipy-{solver}", rtol=rtol, atol=atol, nfev=nfev, wall_time_s=wall,
                                 feature_rate=gamma),
                      accuracy=flow_accuracy(rtol, None, has_tail=False))


def regularized_reference(problem: Problem, lam: float, ts, v0, *, reg_head: bool = False,
                          solver: str = "LSODA", rtol: float = 1e-10, atol: float = 1e-12):
    """Full-state gradient flow of ||X B^T v - y||^2 + lam ||B - B0||_F^2 (+ lam ||v||^2 if
    ``reg_head``) at the finite times ``ts`` (THEORY.md §6).

    The cross-check of :mod:`twolayer.regularized`: state (v, B) in R^{k + k d}, written
    directly from X and y, no reduced coordinates and no use of I1. Returns (v (T, k),
    B (T, k, d), nfev, ||grad|| at ts[-1]). Raises :class:`SolverFailedError` if
    ``solve_ivp`` fails.
    """
    problem = _check_problem(problem)
    k, d = problem.k, problem.d
    XtX, Xty, B0 = problem.X.T @ problem.X, problem.X.T @ problem.y, problem.B0
    lam_v = lam if reg_head else 0.0

    def rhs(t, z):
        v, B = z[:k], z[k:].reshape(k, d)
        g = XtX @ (B.T @ v) - Xty
        dv = -2.0 * (B @ g) - 2.0 * lam_v * v
        dB = -2.0 * np.outer(v, g) - 2.0 * lam * (B - B0)
        return np.concatenate([dv, dB.ravel()])

    z0 = np.concatenate([np.asarray(v0, float), B0.ravel()])
    ts = np.asarray(ts, float)
    sol = solve_ivp(rhs, (0.0, float(ts[-1])), z0, method=solver, t_eval=ts, rtol=rtol, atol=atol)
    if not sol.success:
        raise SolverFailedError(f"full-state regularised flow (lam={lam}, solve_ivp({solver}), rtol={rtol:g}) "
                                f"failed at t={sol.t[-1]:.3g}: {sol.message}. Fix: use a stiff solver "
                                "('LSODA', 'Radau') or shorten ts")
    Z = sol.y.T
    grad = -rhs(0.0, Z[-1])
    return Z[:, :k], Z[:, k:].reshape(-1, k, d), int(sol.nfev), float(np.linalg.norm(grad))
