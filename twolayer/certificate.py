"""A-posteriori certificate of a flow solution (issue 7 §2; THEORY.md §1, §3, §8).

Checked on every FT / LP-FT result, in reduced coordinates (cost O(T k m) plus the tail's
numbers, already known):

* ``loss_increase``: max over consecutive output times of sqrt(L(t_{i+1})) - sqrt(L(t_i)),
  L the reduced train loss, relative to ||U_m^T y||. A gradient flow never increases its
  loss, so anything above the rounding/solver level is an error. Tolerance
  ``max(100 rtol, 1e3 eps_mach)``.
* ``i2_drift``: max_t ||(v v^T - G G^T)(t) - (v v^T - G G^T)(0)|| / ||v0 v0^T - B0 B0^T||
  (balancedness I2, exact for the flow). Tolerance ``max(1e3 rtol, 1e3 eps_mach)``.
* ``tail_second_order``: the linearised tail's own error estimate ||H^+ (f(y_inf) - linear
  model)|| relative to the state size. Tolerance ``max(100 rtol, 1e3 eps_mach)``.
* ``tail_null_residual``: the part of f at the stop on the clamped null space of H (the
  tail does not move it) over the size of f's terms. Tolerance ``steady_rtol`` (the rule
  the stop met bounds the whole of f by that).
* ``limit_gap``: how far the tail's t = inf state is from the minimum manifold,
  ||G^T v - c / s2|| / ||c / s2|| (:func:`twolayer.tail.minimum_gap`; every minimum
  interpolates the ID data on S). A slow mode the tail clamped shows here and nowhere
  else. Tolerance ``max(10 rtol, 1e3 eps_mach)`` (:func:`limit_gap_tol`).
* ``lambda_min_rel``: most negative curvature at the stop over lambda_max, and ``saddle``:
  whether it is negative curvature beyond noise (beyond ``saddle_rtol`` while the residual
  is not small, see :func:`twolayer.flow._is_saddle`); a stop or hold is a steady state
  only at a minimum, so ``saddle`` fails the certificate.

A failing certificate never comes back as success: :mod:`twolayer.flow` integrates further
(the stiff solver, the strict steady rule) or raises :class:`SolverCertificateError`.
"""

from __future__ import annotations

import numpy as np

from .accuracy import GLOBAL_FACTOR

__all__ = ["certify", "limit_gap_tol"]

EPS = float(np.finfo(np.float64).eps)


def limit_gap_tol(rtol: float) -> float:
    """Tolerance of ``limit_gap`` (the flow integrates on past slow modes above it): the
    relative accuracy the state claims, ``GLOBAL_FACTOR * rtol`` (:mod:`twolayer.accuracy`;
    issue 19: it was 100 rtol, and a t = inf state off by 5e-9 then gave L_ood(inf) wrong
    by 10x at ||w*|| = 1e-4 with success), never below the float64 floor."""
    return max(GLOBAL_FACTOR * rtol, 1e3 * EPS)


def certify(s2, c, v, G, v0, G0, i2_norm0: float, *, rtol: float, steady_rtol: float,
            saddle_rtol: float, tail=None, steady_scale: float | None = None,
            curvature=None, saddle: bool = False) -> dict:
    """The certificate of one solution (v (T, k), G (T, k, m)) at its output times (in order,
    inf last). Returns a dict of the numbers, their tolerances, ``failed`` (names) and ``passed``."""
    s = np.sqrt(s2)
    u = c / s
    res = s[None, :] * np.einsum("tkm,tk->tm", G, v) - u[None, :]
    root = np.sqrt(np.sum(res ** 2, axis=1))
    unorm = max(float(np.linalg.norm(u)), 1e-300)
    inc = float(np.max(np.diff(root), initial=0.0)) / unorm
    M = np.einsum("ti,tj->tij", v, v) - np.einsum("tim,tjm->tij", G, G)
    M0 = np.outer(v0, v0) - G0 @ G0.T
    i2 = float(np.max(np.sqrt(np.sum((M - M0) ** 2, axis=(1, 2))))) / max(i2_norm0, 1e-300)
    size = float(np.linalg.norm(v[-1]) + np.linalg.norm(G[-1]))
    cert = dict(
        loss_increase=inc, loss_increase_tol=max(100.0 * rtol, 1e3 * EPS),
        i2_drift=i2, i2_drift_tol=max(1e3 * rtol, 1e3 * EPS),
        tail_second_order=None, tail_second_order_tol=max(100.0 * rtol, 1e3 * EPS),
        tail_null_residual=None, tail_null_residual_tol=steady_rtol,
        limit_gap=None, limit_gap_tol=limit_gap_tol(rtol),
        lambda_min_rel=None, lambda_min_rel_tol=saddle_rtol, saddle=bool(saddle),
    )
    if tail is not None:
        cert["tail_second_order"] = tail.second_order / max(size, 1e-300)
        cert["tail_null_residual"] = tail.null_residual / max(steady_scale or 0.0, 1e-300)
        cert["limit_gap"] = tail.limit_gap
    if curvature is not None:
        cert["lambda_min_rel"] = -min(curvature.lambda_min, 0.0) / max(curvature.lambda_max, 1e-300)
    failed = [name for name in ("loss_increase", "i2_drift", "tail_second_order", "tail_null_residual",
                                 "limit_gap")
              if cert[name] is not None and not (cert[name] <= cert[name + "_tol"])]
    if saddle:
        failed.append("saddle")
    for name, val in cert.items():           # plain floats (not numpy scalars) in every record
        if val is not None and not isinstance(val, bool):
            cert[name] = float(val)
    cert["failed"] = failed
    cert["passed"] = not failed
    return cert
