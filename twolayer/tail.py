"""Closed-form tail of the FT flow near its steady state (linearised flow).

Once the integration meets the steady-state rule at (v_e, G_e) (see :mod:`twolayer.flow`),
the flow is continued in closed form: with H the Hessian of the reduced loss at that
point (f = -grad L, so the Jacobian of f is -H, symmetric) the linearised flow
z' = f_e - H z gives, in the eigenbasis of H (``eigh``; eigenvalues below
``max(eig_rtol * lambda_max, 10 |most negative eigenvalue|)`` are clamped to the null
space: near the minimum manifold H is PSD up to the residual's curvature),

    y(t_e + tau) = y_e + E diag(-expm1(-lambda tau) / lambda) E^T f_e,

and y(inf) = y_e + H^+ f_e. The error of this tail is second order in the remaining
displacement ||H^+ f_e||, which is itself first order in the stopping tolerance; so
stopping early and continuing in closed form is both faster and more accurate than
holding the state (measured in tests/test_flow.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TailInfo", "reduced_hessian", "linear_tail"]


class TailInfo(NamedTuple):
    correction_norm: float   # ||H^+ f_e||: the displacement the tail adds at t = inf
    null_residual: float     # ||f_e|| on the clamped null space of H (should be ~rounding)
    rank: int                # number of eigenvalues kept
    lambda_min_kept: float   # slowest rate kept (2x the Hessian eigenvalue convention of f)


def _field(s2, c, v, G):
    r = s2 * (G.T @ v) - c
    return -2.0 * (G @ r), -2.0 * np.outer(v, r), r


def reduced_hessian(s2, c, v, G) -> np.ndarray:
    """H = -Jacobian of f at (v, G), f = (dv/dt, dG/dt); shape (k + k m, k + k m)."""
    k, m = G.shape
    N = k + k * m
    eye = np.eye(N)
    dv, dG = eye[:, :k], eye[:, k:].reshape(N, k, m)
    r = s2 * (G.T @ v) - c
    dr = s2 * (np.einsum("nkm,k->nm", dG, v) + np.einsum("km,nk->nm", G, dv))
    df_v = -2.0 * (np.einsum("nkm,m->nk", dG, r) + np.einsum("km,nm->nk", G, dr))
    df_G = -2.0 * (np.einsum("nk,m->nkm", dv, r) + np.einsum("k,nm->nkm", v, dr))
    J = np.concatenate([df_v, df_G.reshape(N, k * m)], axis=1).T   # column i = J e_i
    return -0.5 * (J + J.T)


def linear_tail(s2, c, v_e, G_e, taus, eig_rtol: float = 1e-8):
    """States at t_e + tau for each tau in ``taus`` (may be inf) by the linearised flow.

    Returns (v (T, k), G (T, k, m), TailInfo).
    """
    k, m = G_e.shape
    fv, fG, _ = _field(s2, c, v_e, G_e)
    f = np.concatenate([fv, fG.ravel()])
    lam, E = np.linalg.eigh(reduced_hessian(s2, c, v_e, G_e))
    # Eigenvalues at or below the size of the indefinite part of H (the residual's
    # curvature, which shows as +- pairs) cannot be told from zero: clamp them too.
    cut = max(eig_rtol * max(lam[-1], 0.0), 10.0 * max(-lam[0], 0.0))
    keep = lam > cut
    Ek, lk = E[:, keep], lam[keep]
    fk = Ek.T @ f
    taus = np.asarray(taus, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        coef = np.where(np.isinf(taus)[:, None], 1.0 / lk[None, :],
                        -np.expm1(-np.outer(np.where(np.isinf(taus), 0.0, taus), lk)) / lk[None, :])
    y = np.concatenate([v_e, G_e.ravel()])[None, :] + (coef * fk[None, :]) @ Ek.T
    info = TailInfo(correction_norm=float(np.linalg.norm(fk / lk)),
                    null_residual=float(np.linalg.norm(E[:, ~keep].T @ f)),
                    rank=int(keep.sum()), lambda_min_kept=float(lk.min()) if lk.size else float("nan"))
    return y[:, :k], y[:, k:].reshape(-1, k, m), info
