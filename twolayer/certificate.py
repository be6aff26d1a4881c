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

__all__ = ["certify", "certify_chunk", "limit_gap_tol"]

EPS = float(np.finfo(np.float64).eps)


def limit_gap_tol(rtol: float) -> float:
    """Tolerance of ``limit_gap`` (the flow integrates on past slow modes above it): the
    relative accuracy the state claims, ``GLOBAL_FACTOR * rtol`` (:mod:`twolayer.accuracy`;
    issue 19: it was 100 rtol, and a t = inf state off by 5e-9 then gave L_ood(inf) wrong
    by 10x at ||w*|| = 1e-4 with success), never below the float64 floor."""
    return max(GLOBAL_FACTOR * rtol, 1e3 * EPS)


def certify_chunk(s2, c, v, G, v0, G0, i2_norm0, *, rtol: float, steady_rtol, saddle_rtol: float,
                  has_tail=None, tail_second_order=None, tail_null_residual=None, limit_gap=None,
                  steady_scale=None, has_curvature=None, lambda_min=None, lambda_max=None, saddle=None) -> list:
    """The certificates of a chunk of solutions at once (issue 19 §2): ``s2``, ``c`` (B, m),
    ``v`` (B, T, k), ``G`` (B, T, k, m) at the output times (in order, inf last), ``v0``,
    ``G0``, ``i2_norm0`` and ``steady_rtol`` per problem. The tail's numbers count where
    ``has_tail``, the curvature where ``has_curvature`` (arrays (B,)). Returns one dict per
    problem, as :func:`certify`."""
    B = v.shape[0]
    s = np.sqrt(s2)
    u = c / s
    res = s[:, None, :] * (np.swapaxes(G, 2, 3) @ v[..., None])[..., 0] - u[:, None, :]
    root = np.sqrt(np.sum(res ** 2, axis=2))
    unorm = np.maximum(np.linalg.norm(u, axis=1), 1e-300)
    inc = np.max(np.diff(root, axis=1), axis=1, initial=0.0) / unorm
    M = v[..., :, None] * v[..., None, :] - G @ np.swapaxes(G, 2, 3)
    M0 = v0[:, :, None] * v0[:, None, :] - G0 @ np.swapaxes(G0, 1, 2)
    i2 = np.max(np.sqrt(np.sum((M - M0[:, None]) ** 2, axis=(2, 3))), axis=1) / np.maximum(i2_norm0, 1e-300)
    size = np.maximum(np.linalg.norm(v[:, -1], axis=1) + np.sqrt(np.sum(G[:, -1] ** 2, axis=(1, 2))), 1e-300)
    no = np.zeros(B, bool)
    has_tail = no if has_tail is None else np.asarray(has_tail, bool)
    has_curvature = no if has_curvature is None else np.asarray(has_curvature, bool)
    saddle = no if saddle is None else np.asarray(saddle, bool)
    absent = [None] * B
    second = null = gap = lam_rel = absent
    if has_tail.any():
        second = np.asarray(tail_second_order, np.float64) / size
        null = np.asarray(tail_null_residual, np.float64) / np.maximum(np.asarray(steady_scale, np.float64), 1e-300)
        gap = np.asarray(limit_gap, np.float64)
        second, null, gap = ([x if t else None for x, t in zip(col.tolist(), has_tail)] for col in (second, null, gap))
    if has_curvature.any():
        rel = -np.minimum(lambda_min, 0.0) / np.maximum(lambda_max, 1e-300)
        lam_rel = [x if h else None for x, h in zip(rel.tolist(), has_curvature)]
    floor = 1e3 * EPS
    loss_tol, i2_tol, second_tol = max(100.0 * rtol, floor), max(1e3 * rtol, floor), max(100.0 * rtol, floor)
    gap_tol, saddle_tol = limit_gap_tol(rtol), float(saddle_rtol)
    null_tols = np.broadcast_to(np.asarray(steady_rtol, np.float64), (B,)).tolist()
    out = []
    for row in zip(inc.tolist(), i2.tolist(), second, null, null_tols, gap, lam_rel, saddle.tolist()):
        inc_b, i2_b, second_b, null_b, null_tol, gap_b, lam_b, saddle_b = row
        cert = dict(loss_increase=inc_b, loss_increase_tol=loss_tol, i2_drift=i2_b, i2_drift_tol=i2_tol,
                    tail_second_order=second_b, tail_second_order_tol=second_tol,
                    tail_null_residual=null_b, tail_null_residual_tol=null_tol,
                    limit_gap=gap_b, limit_gap_tol=gap_tol, lambda_min_rel=lam_b, lambda_min_rel_tol=saddle_tol,
                    saddle=saddle_b)
        failed = [name for name in _CHECKED if cert[name] is not None and not (cert[name] <= cert[name + "_tol"])]
        if cert["saddle"]:
            failed.append("saddle")
        cert["failed"] = failed
        cert["passed"] = not failed
        out.append(cert)
    return out


#: The certificate's numbers that are checked against their tolerances (besides ``saddle``).
_CHECKED = ("loss_increase", "i2_drift", "tail_second_order", "tail_null_residual", "limit_gap")


def certify(s2, c, v, G, v0, G0, i2_norm0: float, *, rtol: float, steady_rtol: float,
            saddle_rtol: float, tail=None, steady_scale: float | None = None,
            curvature=None, saddle: bool = False) -> dict:
    """The certificate of one solution (v (T, k), G (T, k, m)) at its output times (in order,
    inf last); ``tail`` a :class:`twolayer.tail.TailInfo`, ``curvature`` a
    :class:`twolayer.tail.Curvature`. Returns a dict of the numbers, their tolerances,
    ``failed`` (names) and ``passed`` (:func:`certify_chunk` for a chunk of one)."""
    one = lambda a: np.asarray(a, np.float64)[None]
    num = lambda obj, name: [getattr(obj, name, 0.0)]          # an absent tail / curvature: not counted
    return certify_chunk(
        one(s2), one(c), one(v), one(G), one(v0), one(G0), [i2_norm0], rtol=rtol, steady_rtol=steady_rtol,
        saddle_rtol=saddle_rtol, has_tail=[tail is not None], tail_second_order=num(tail, "second_order"),
        tail_null_residual=num(tail, "null_residual"), limit_gap=num(tail, "limit_gap"),
        steady_scale=[steady_scale or 0.0], has_curvature=[curvature is not None],
        lambda_min=num(curvature, "lambda_min"), lambda_max=num(curvature, "lambda_max"), saddle=[saddle])[0]
