"""Regularised FT: the gradient flow of an L2 penalty toward the start, and its limit.

THEORY.md §6 ("Regularisation vs LP-FT"). From (v0, B0), the gradient flow of

    F_lam(v, B) = ||X B^T v - y||^2 + lam ||B - B0||_F^2      (+ lam ||v||^2 if reg_head).

The penalty's gradient 2 lam (B - B0) has rows in S whenever B - B0 does, so I1 holds exactly
(THEORY.md §3) and the flow lives in the reduced coordinates of :mod:`twolayer.flow`:
B = B0 + (G - G0) Q_S^T, G = B Q_S (k x m). With r = s2 (G^T v) - c (``Problem.reduced``),

    dv/dt = -2 G r - 2 lam_v v,        dG/dt = -2 v r^T - 2 lam (G - G0),

the field of :mod:`twolayer._field` with its lam terms (lam = 0 is FT's field exactly), and
its Jacobian :func:`twolayer._field.jacobian`. Everything here is float64 NumPy/scipy.

The limit (:func:`regularized_limit`). The flow is stiff (THEORY.md §8) and, for small lam,
slow: it first reaches the FT interpolation set, then slides along it at a rate ~ 2 lam
(lam = 1e-3 needs t ~ 1e5). So it is integrated (scipy ``LSODA`` with the analytic Jacobian,
``fallback`` from the same state if that fails) until the steady event
||grad F_lam|| <= grad_rtol ||grad F_lam(start)||, never to a fixed t_end. The stop is then
polished by Newton's method on grad F_lam = 0 and certified (:func:`certify`); an
uncertified stop is continued with the event tightened 100x, ``n_tighten`` times at most.
The limit does not depend on the integrator's accuracy (tests: LSODA at 1e-8 and Radau at
1e-10 agree to 1e-8 in L_ood).

No limit. With the head not penalised, F_lam need not have a minimizer: along v = rho u,
B - B0 = v (a - G0^T v)^T / rho^2 fits the data exactly at a penalty tending to
lam |G0^T u|^2, so inf F_lam <= lam sigma_min(G0)^2 at |v| = infinity, and for small lam the
flow runs off there (measured, the regularization experiment's quick seed 3, lam = 0.01:
|v| = 243 at t = 1e9, 5263 at t = 1e13, F -> lam sigma_min(G0)^2 from above). A stop with F
at or above that infimum and |v| grown NO_LIMIT_HEAD-fold is on that run-off
(:func:`no_limit_diagnosis`, :class:`~twolayer.errors.NoLimitError`), even when it passes the
certificate, whose tolerances grow with |v|^2.

Errors: every failure is a :class:`~twolayer.errors.SolverError`: ``SolverFailedError``
(scipy failed, with both solvers), ``NotConvergedError`` (no certified limit),
``NoLimitError`` (a ``NotConvergedError``: the limit does not exist). The full-state
cross-check integrator is :func:`twolayer.reference.regularized_reference`.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _field
from .errors import NoLimitError, NotConvergedError, SolverFailedError, TwoLayerInputError

__all__ = ["NO_LIMIT_HEAD", "RegularizedFlow", "regularized_flow", "certify", "no_limit_diagnosis",
           "regularized_limit"]

#: A stop state is on the run-off to |v| = infinity when F is at or above its infimum at
#: infinity (no finite minimizer can do better than that) and |v| has grown to at least
#: NO_LIMIT_HEAD times max(1, |v0|). Measured: true limits sit far below it (F 99.6% below at
#: lam = 100, |v| ~ 1); run-off states 0.1-4% above it with |v| 51-1600.
NO_LIMIT_HEAD = 10.0


def _check_lam(lam) -> float:
    lam = float(lam)
    if not (np.isfinite(lam) and lam >= 0):
        raise TwoLayerInputError("lam", f"the penalty strength must be finite and >= 0, got {lam}",
                                 "pass e.g. lam=0.1 (lam=0 is plain FT)")
    return lam


class RegularizedFlow:
    """The reduced regularised flow on the flat state z = (v, vec G), float64.

    ``field(z)`` is f = -grad F_lam(z) (:func:`twolayer._field.field` with its lam terms);
    ``jac(z)`` its Jacobian, minus the Hessian of F_lam (:func:`twolayer._field.jacobian`),
    F_lam = ||diag(s) G^T v - U_m^T y||^2 + lam ||G - G0||_F^2 + lam_v ||v||^2 + const.
    """

    def __init__(self, p, lam: float, reg_head: bool = False):
        self.p = p
        self.lam = _check_lam(lam)
        self.lam_v = self.lam if reg_head else 0.0
        self.s2, self.c, self.G0, self.resid2 = p.reduced
        self.k, self.m = self.G0.shape

    def split(self, z):
        return z[..., :self.k], z[..., self.k:].reshape(z.shape[:-1] + (self.k, self.m))

    def pack(self, v, G):
        return np.concatenate([np.asarray(v, float), np.asarray(G, float).ravel()])

    def field(self, z):
        v, G = self.split(z)
        dv, dG, _ = _field.field(np, self.s2, self.c, v, G, lam=self.lam, G0=self.G0, lam_v=self.lam_v)
        return np.concatenate([dv, dG.ravel()])

    def jac(self, z):
        v, G = self.split(z)
        return _field.jacobian(np, self.s2, self.c, v, G, lam=self.lam, lam_v=self.lam_v)

    def objective(self, z) -> float:
        """F_lam(z) without its constant: ||diag(s) G^T v - s^-1 c||^2 + lam ||G - G0||^2 + lam_v ||v||^2."""
        v, G = self.split(np.asarray(z, float))
        s = np.sqrt(self.s2)
        return float(np.sum((s * (G.T @ v) - self.c / s) ** 2) + self.lam * np.sum((G - self.G0) ** 2)
                     + self.lam_v * float(v @ v))

    def infimum_at_infinity(self) -> float:
        """inf of F_lam along |v| -> infinity: lam sigma_min(G0)^2 with the head not penalised
        (module docstring), inf with a penalised head (F is then coercive) or at lam = 0."""
        if self.lam_v > 0 or self.lam == 0:
            return float("inf")
        return self.lam * float(np.linalg.svd(self.G0, compute_uv=False).min()) ** 2

    def vB(self, z):
        v, G = self.split(np.asarray(z, float))
        return v, self.p.B_from_G(G)


def regularized_flow(p, lam: float, ts, v0, *, reg_head=False, solver="Radau", rtol=1e-10, atol=1e-12):
    """The reduced regularised flow at the finite times ``ts`` (scipy ``solver`` with the
    analytic Jacobian, tolerances ``rtol``/``atol``): (v (T, k), B (T, k, d), nfev).
    Raises :class:`~twolayer.errors.SolverFailedError` if ``solve_ivp`` fails."""
    from scipy.integrate import solve_ivp
    fl = RegularizedFlow(p, lam, reg_head)
    ts = np.asarray(ts, float)
    sol = solve_ivp(lambda t, z: fl.field(z), (0.0, float(ts[-1])), fl.pack(v0, fl.G0), method=solver,
                    t_eval=ts, rtol=rtol, atol=atol, jac=lambda t, z: fl.jac(z))
    if not sol.success:
        raise SolverFailedError(f"regularised flow (lam={lam}, {solver}, rtol={rtol:g}) failed at "
                                f"t={sol.t[-1]:.3g}: {sol.message}. Fix: use a stiff solver ('Radau', "
                                "'BDF') or shorten ts")
    v, B = fl.vB(sol.y.T)
    return v, B, int(sol.nfev)


# ---------------------------------------------------------------- the certificate
def _newton_step(fl: RegularizedFlow, z, null_rtol: float):
    """Pseudo-inverse Newton step H^+ grad F_lam at z, with the Hessian's eigenvalues, the
    gradient's size on the near-null eigenvectors and the gradient."""
    g = -fl.field(z)
    h, E = np.linalg.eigh(-fl.jac(z))
    pos = h > null_rtol * float(np.max(np.abs(h)))
    gE = E.T @ g
    return E[:, pos] @ (gE[pos] / h[pos]), h, float(np.linalg.norm(gE[~pos])), g


def certify(fl: RegularizedFlow, z_stop, *, grad_tol: float, dist_rtol: float = 1e-8,
            ood_rtol: float = 1e-9, max_newton: int = 8, hess_rtol: float = 1e-8,
            null_rtol: float = 1e-9, floor_rtol: float = 1e-13) -> dict:
    """Polish the flow's steady stop ``z_stop`` by Newton's method and certify the limit.

    The flow is stopped once ||grad F_lam|| <= grad_tol; the rest of the way to the limit
    (slow for small lam: rate ~ 2 lam) is covered by pseudo-inverse Newton steps on
    grad F_lam = 0. With H the Hessian of F_lam (eigenvalues h), the limit is certified when
    (a) ``curvature``: min h >= -hess_rtol max|h| at the stop, halfway along the first Newton
        step and at the polished point (a minimum, not a saddle: the flow near the FT
        interpolation manifold crosses regions of negative curvature for small lam);
    (b) ``null_gradient``: the gradient's component on the near-null eigenvectors
        (|h| <= null_rtol max|h|; lam = 0 has a manifold of minima) is <= grad_tol;
    (c) ``newton_contracts``: the first Newton step reduces ||grad|| at least 100x (the
        quadratic model holds between the stop and the limit), unless ||grad|| at the
        stop is already at the rounding floor floor_rtol ||H|| (1 + ||z||);
    (d) ``newton_converged``: the last of at most ``max_newton`` Newton steps is
        <= dist_rtol (1 + ||z||);
    (e) ``ood_converged``: that last step changes L_ood by <= ood_rtol (relative).
    Returns the polished state ``z``, the numbers, ``certified`` and the names ``failed``.
    """
    from .losses import ood_loss

    def ood(z_):
        return float(ood_loss(fl.p, *fl.vB(z_)))

    z = np.array(z_stop, float)
    step, h_stop, null_g, g = _newton_step(fl, z, null_rtol)
    g_stop = float(np.linalg.norm(g))
    floor = floor_rtol * float(np.max(np.abs(h_stop))) * (1.0 + float(np.linalg.norm(z)))
    h_mid = _newton_step(fl, z - 0.5 * step, null_rtol)[1]
    g_one = float(np.linalg.norm(fl.field(z - step)))
    contracted = bool(g_one <= 1e-2 * g_stop or g_stop <= floor)
    n_newton = 0
    while n_newton < max_newton:
        z = z - step
        n_newton += 1
        step, h_end, _, g_end = _newton_step(fl, z, null_rtol)
        if np.linalg.norm(step) <= dist_rtol * (1.0 + float(np.linalg.norm(z))):
            break
    dist = float(np.linalg.norm(step))
    ood_stop, ood_end = ood(z_stop), ood(z)
    last_change = abs(ood(z - step) - ood_end) / max(abs(ood_end), 1e-300)
    ok = dict(curvature=bool(min(h_.min() / np.max(np.abs(h_)) for h_ in (h_stop, h_mid, h_end)) >= -hess_rtol),
              null_gradient=bool(null_g <= grad_tol), newton_contracts=contracted,
              newton_converged=bool(dist <= dist_rtol * (1.0 + float(np.linalg.norm(z)))),
              ood_converged=bool(last_change <= ood_rtol))
    return dict(z=z, grad_norm_stop=g_stop, grad_norm=float(np.linalg.norm(g_end)), hess_min=float(h_end.min()),
                hess_max=float(h_end.max()), n_null=int(np.sum(h_end <= null_rtol * np.max(np.abs(h_end)))),
                null_grad=null_g, newton_moved=float(np.linalg.norm(z - z_stop)), newton_dist=dist,
                n_newton=n_newton, ood_newton_change=abs(ood_end - ood_stop) / max(abs(ood_end), 1e-300),
                ood_last_change=last_change, certified=all(ok.values()),
                failed=[name for name, good in ok.items() if not good])


def no_limit_diagnosis(fl: RegularizedFlow, z, v0, t: float) -> NoLimitError | None:
    """The :class:`~twolayer.errors.NoLimitError` for the state ``z`` reached at time ``t``
    when it is on the run-off to |v| = infinity: F at or above its infimum at infinity (lower
    values exist out there, so this is no global minimizer) and |v| grown to NO_LIMIT_HEAD
    times max(1, |v0|); else None. Refusing such a state errs on the safe side: a local
    minimizer out there would be refused too, never a wrong limit accepted."""
    F_end, F_inf = fl.objective(z), fl.infimum_at_infinity()
    v_end, _ = fl.split(np.asarray(z, float))
    v_norm, v_ref = float(np.linalg.norm(v_end)), max(1.0, float(np.linalg.norm(v0)))
    if not (F_end >= F_inf and v_norm >= NO_LIMIT_HEAD * v_ref):
        return None
    return NoLimitError(
        f"lam={fl.lam}: F_lam has no minimizer: at t={t:.3g} |v| = {v_norm:.3g} ({v_norm / v_ref:.3g}x "
        f"max(1, |v0|)) and F = {F_end:.10g} is {F_end / F_inf - 1:.2%} above its infimum at infinity "
        f"lam sigma_min(G0)^2 = {F_inf:.10g}: the flow runs off to |v| = infinity",
        "this lam has no limit to compare; penalise the head (reg_head=True) or leave this lam out",
        lam=fl.lam, t_end=t, F_end=F_end, F_inf=F_inf, v_norm=v_norm)


# ---------------------------------------------------------------- the limit
def _steady_stop(fl: RegularizedFlow, z, t: float, tol: float, *, solver: str, fallback: str,
                 rtol: float, atol: float, t_max: float):
    """Integrate from (t, z) until ||f(z)|| <= tol (the steady event) or t_max, with
    ``solver``, then ``fallback`` from the same state if it fails (LSODA can stall in the
    slow phase of small lam). Returns (t, z, event fired, nfev, solver used). Raises
    :class:`~twolayer.errors.SolverFailedError` when both fail."""
    from scipy.integrate import solve_ivp

    def steady(_t, y):
        return float(np.linalg.norm(fl.field(y))) - tol
    steady.terminal, steady.direction = True, -1
    nfev = 0
    for used in dict.fromkeys((solver, fallback)):
        with warnings.catch_warnings():
            # LSODA warns before it fails; the failure is handled (fallback) or raised
            warnings.filterwarnings("ignore", message="lsoda", category=UserWarning)
            sol = solve_ivp(lambda _t, y: fl.field(y), (t, t_max), z, method=used, rtol=rtol, atol=atol,
                            jac=lambda _t, y: fl.jac(y), events=steady)
        nfev += int(sol.nfev)
        if sol.status != -1:
            break
    if sol.status == -1:
        raise SolverFailedError(f"regularised flow (lam={fl.lam}): {solver} and {fallback} (rtol={rtol:g}, "
                                f"atol={atol:g}) failed at t={sol.t[-1]:.3g}: {sol.message}. Fix: tighten "
                                "rtol/atol, or pass another solver/fallback ('Radau', 'BDF')")
    if sol.status == 1:
        return float(sol.t_events[0][0]), sol.y_events[0][0], True, nfev, used
    return float(sol.t[-1]), sol.y[:, -1], False, nfev, used


def _limit(fl: RegularizedFlow, cert: dict, v0, stats: dict) -> dict:
    """The certified limit as returned by :func:`regularized_limit`, unless the polished state
    is on the run-off to |v| = infinity (:func:`no_limit_diagnosis`): the certificate's
    tolerances are relative to the Hessian's largest eigenvalue, which grows like |v|^2 there,
    so a point of the run-off can pass them (measured: the regularization experiment's quick
    seed 2, instance 2004, lam = 1, certified at |v| = 507 = 250 |v0|, F 0.4% above its
    infimum at infinity, |v| 988 after 1e9 more)."""
    z = cert.pop("z")
    diagnosis = no_limit_diagnosis(fl, z, v0, stats["t_steady"])
    if diagnosis is not None:
        raise diagnosis
    v, B = fl.vB(z)
    cert.pop("failed")
    return dict(v=v, B=B, **stats, **cert)


def regularized_limit(p, lam: float, v0, *, reg_head=False, solver="LSODA", rtol=1e-8, atol=1e-10,
                      grad_rtol=1e-8, dist_rtol=1e-8, ood_rtol=1e-9, t_max=1e9, n_tighten=3,
                      fallback="Radau") -> dict:
    """Integrate the reduced regularised flow from (v0, B0) to a certified limit.

    Stops at the event ||grad F_lam(z)|| <= grad_rtol ||grad F_lam(z0)|| (integrator
    tolerances ``rtol``/``atol``, :func:`_steady_stop`), then polishes and certifies the stop
    (:func:`certify`, with ``dist_rtol``/``ood_rtol``); an uncertified stop is continued with
    the event tightened 100x, at most ``n_tighten`` times. If the event never fires by
    ``t_max`` (the gradient can stall above the threshold at the integrator's own accuracy
    floor: measured ||grad|| 8.2e-8 > 2.7e-8 at lam = 0.01), the state at ``t_max`` is
    certified the same way and counts only if it passes.

    Returns v, B (the limit), the stop time ``t_steady``, ``nfev``, ``solver_used``,
    ``grad_norm0``, ``grad_tol``, ``n_tightened`` and the certificate's numbers.
    Raises (all :class:`~twolayer.errors.SolverError`): ``NoLimitError`` for a stop on the
    run-off to |v| = infinity (:func:`no_limit_diagnosis`); ``NotConvergedError`` if the
    start is stationary or no certified limit is reached; ``SolverFailedError`` if both
    solvers fail.
    """
    fl = RegularizedFlow(p, lam, reg_head)
    z = fl.pack(v0, fl.G0)
    g0 = float(np.linalg.norm(fl.field(z)))
    if g0 == 0.0:
        raise NotConvergedError(f"lam={lam}: the start is stationary (zero gradient); a saddle or a minimum "
                                "cannot be told apart without a perturbation",
                                "use a nonzero head v0 (e.g. make_problem(..., head_init='gaussian'))",
                                lam=fl.lam, grad_norm0=g0)
    t, nfev, tol, used = 0.0, 0, grad_rtol * g0, solver
    for attempt in range(n_tighten + 1):
        fired = True
        if float(np.linalg.norm(fl.field(z))) > tol:
            t, z, fired, n, used = _steady_stop(fl, z, t, tol, solver=solver, fallback=fallback, rtol=rtol,
                                                atol=atol, t_max=t_max)
            nfev += n
        cert = certify(fl, z, grad_tol=tol, dist_rtol=dist_rtol, ood_rtol=ood_rtol)
        if cert["certified"]:
            return _limit(fl, cert, v0, dict(t_steady=t, nfev=nfev, solver_used=used, grad_norm0=g0,
                                             grad_tol=tol, n_tightened=attempt))
        diagnosis = no_limit_diagnosis(fl, z, v0, t)
        if diagnosis is not None:     # an uncertified stop on the run-off: integrating on cannot help
            raise diagnosis
        if not fired:
            raise NotConvergedError(
                f"lam={lam}: no steady state by t_max={t_max:g} (||grad|| = {np.linalg.norm(fl.field(z)):.2e} "
                f"> {tol:.2e}), and Newton from there fails its certificate ({', '.join(cert['failed'])})",
                "raise t_max, or tighten rtol/atol so that the gradient can fall below the event",
                lam=fl.lam, t_end=t, grad_norm=float(np.linalg.norm(fl.field(z))), grad_tol=tol)
        tol *= 1e-2
    raise NotConvergedError(
        f"lam={lam}: stop at t={t:.3g} not certified after {n_tighten} tightenings (failed: {cert['failed']}; "
        f"||grad|| {cert['grad_norm']:.2e}, Newton distance {cert['newton_dist']:.2e}, min Hessian eigenvalue "
        f"{cert['hess_min']:.2e})", "raise n_tighten, or tighten rtol/atol",
        lam=fl.lam, t_end=t, grad_norm=cert["grad_norm"], newton_dist=cert["newton_dist"],
        hess_min=cert["hess_min"])
