"""Closed-form tail of the FT flow near its steady state (linearised flow, THEORY.md §8).

Once the integration meets the steady-state rule at (v_e, G_e) (see :mod:`twolayer.flow`),
the flow is continued in closed form: with H the Hessian of the reduced loss at that
point (f = -grad L, so the Jacobian of f is -H, symmetric) the linearised flow
z' = f_e - H z gives, in the eigenbasis of H (the spectral kernel
:func:`twolayer._spectral.spectral_flow`; eigenvalues below
``max(eig_rtol * lambda_max, 10 |most negative eigenvalue|)`` are clamped to the null
space: near the minimum manifold H is PSD up to the residual's curvature),

    y(t_e + tau) = y_e + E diag(-expm1(-lambda tau) / lambda) E^T f_e,

and y(inf) = y_e + H^+ f_e. The error of this tail is second order in the remaining
displacement ||H^+ f_e||; :func:`linear_tail` measures it from the exact remainder
f(y_e + z) - f_e + H z at z = H^+ f_e (``TailInfo.second_order``), which the certificate
(:mod:`twolayer.certificate`) checks against rtol.

The clamp hides slow modes: with an ill-conditioned X a direction of S can relax at a
rate 1e-10 of the fastest, below the clamp, so the tail leaves it where the stop found it
and y(inf) is not a minimum. :func:`minimum_gap` measures exactly that at y(inf) (every
minimum has p = G^T v = c / s2), :func:`slow_rate` the time it still needs; the flow then
integrates on past it (:mod:`twolayer.flow`) instead of returning y(inf).

A stop is a steady state only at a minimum: there the residual r vanishes and H is PSD.
Every stationary point with r != 0 has v = 0 and is a strict saddle (negative curvature
of size ~ ||r||^2 / ||G s2 G^T||, or ~ ||r|| when that is small); :func:`curvature`
reports the most negative eigenvalue and the unstable mode, which the flow uses to tell
a saddle from a minimum and to estimate the escape time log(1 / delta) / |lambda_min|.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._field import field, second_order_remainder
from ._spectral import null_cut, spectral_flow

__all__ = ["TailInfo", "Curvature", "reduced_hessian", "reduced_eigh", "curvature", "linear_tail", "minimum_gap", "slow_rate"]


class TailInfo(NamedTuple):
    correction_norm: float   # ||H^+ f_e||: the displacement the tail adds at t = inf
    null_residual: float     # ||f_e|| on the clamped null space of H (should be ~rounding)
    rank: int                # number of eigenvalues kept
    lambda_min_kept: float   # slowest rate kept (2x the Hessian eigenvalue convention of f)
    second_order: float = 0.0   # ||H^+ (f(y_inf) - linear model)||: the tail's own error estimate
    lambda_min: float = 0.0     # most negative eigenvalue of H at the stop (0 if PSD)
    lambda_max: float = 0.0
    limit_gap: float = 0.0      # minimum_gap at the tail's t = inf state (0 at a minimum)


class Curvature(NamedTuple):
    lambda_min: float          # most negative eigenvalue of H (<= 0 means curvature down)
    lambda_max: float
    unstable: float            # |component of the displacement along the unstable mode|
    escape_time: float         # log(state scale / unstable) / |lambda_min| (inf if unstable == 0)


def minimum_gap(s2, c, v, G) -> float:
    """How far the outputs p = G^T v are from the minimum manifold, relative to its size.

    The reduced loss L = ||diag(s) p - U_m^T y||^2 depends on (v, G) only through
    p = G^T v, which ranges over all of R^m for k >= 1; so every minimum interpolates
    (L = 0) and has p = p* = c / s2 exactly (THEORY.md §1: FT fits the ID data on S).
    The gap ||p - p*|| / ||p*|| is measured without the weights s that the residual
    r = s2 (p - p*) carries, so a slow direction (small s) is not hidden by them: a
    state whose slow modes have not converged has a small residual and a large gap.
    """
    p_star = c / s2
    p = G.T @ v
    size = max(float(np.linalg.norm(p_star)), float(np.linalg.norm(p)), 1e-300)
    return float(np.linalg.norm(p - p_star)) / size


def slow_rate(s2, v, G) -> float:
    """The slowest rate at which the outputs p = G^T v relax near (v, G).

    dp/dt = -2 (||v||^2 I + G^T G) r with r = s2 (p - p*), so p - p* relaxes with the
    matrix 2 M S^2 (M = ||v||^2 I + G^T G, S = diag(s)), whose eigenvalues are those of the
    symmetric 2 S M S; the smallest one is returned (the rate of the slowest mode).
    """
    s = np.sqrt(s2)
    M = float(v @ v) * np.eye(s.size) + G.T @ G
    return float(np.linalg.eigvalsh(2.0 * (s[:, None] * M * s[None, :]))[0])


def reduced_hessian(s2, c, v, G) -> np.ndarray:
    """H = -Jacobian of f at (v, G), f = (dv/dt, dG/dt); shape (k + k m, k + k m).

    Blockwise, with r = s2 * (G^T v) - c (f is a gradient, so H is symmetric):
    H_vv = 2 G diag(s2) G^T,  H_{v_i, G_pq} = 2 (delta_ip r_q + G_iq s2_q v_p),
    H_{G_ij, G_pq} = 2 v_i v_p s2_j delta_jq.
    """
    k, m = G.shape
    N = k + k * m
    r = s2 * (G.T @ v) - c
    Gs = G * s2
    H = np.empty((N, N))
    Hvv = Gs @ G.T
    H[:k, :k] = Hvv + Hvv.T                                # symmetric to the last bit
    vG = np.zeros((k, k, m))
    vG[np.arange(k), np.arange(k)] = r                     # delta_ip r_q
    vG += Gs[:, None, :] * v[None, :, None]                # G_iq s2_q v_p
    H[:k, k:] = 2.0 * vG.reshape(k, k * m)
    H[k:, :k] = H[:k, k:].T
    GG = np.zeros((k, m, k, m))
    idx = np.arange(m)
    GG[:, idx, :, idx] = 2.0 * np.outer(v, v)[None] * s2[:, None, None]
    H[k:, k:] = GG.reshape(k * m, k * m)
    return H


def _unit_and_complement(u: np.ndarray):
    """([u / |u|] as an (n, 1) matrix, or (n, 0) for u = 0; an orthonormal basis of its
    orthogonal complement; |u|), the complement from a Householder reflection (exactly
    orthonormal up to rounding)."""
    n = u.size
    nu = float(np.linalg.norm(u))
    if nu == 0.0:
        return np.zeros((n, 0)), np.eye(n), nu
    x = u / nu
    alpha = -1.0 if x[0] >= 0 else 1.0
    w = x.copy()
    w[0] -= alpha
    w /= np.linalg.norm(w)
    reflect = np.eye(n) - 2.0 * np.outer(w, w)     # maps x to alpha e_1; symmetric, orthogonal
    return x[:, None], reflect[:, 1:], nu


def reduced_eigh(s2, c, v, G):
    """(lam, E): the eigendecomposition of :func:`reduced_hessian` (ascending, E orthonormal),
    with the dense eigensolver run on an invariant subspace of dimension at most 2k + m - 1
    instead of k + k m, and that subspace's block of H written in closed form (H itself is
    never formed).

    For y = (a, B), the blocks of :func:`reduced_hessian` give, with r = s2 * G^T v - c and
    S = diag(s2),

        (H y)_v = 2 G S G^T a + 2 B r + 2 G S B^T v,
        (H y)_G = 2 a r^T + 2 v (S (G^T a + B^T v))^T,

    so H maps everything into R^k (+) {a' r^T + v x^T}. With v^ = v / |v|, r^ = r / |r| and
    V', R' orthonormal bases of their complements (Householder), B = v^ x^T + V' b r^T
    (x in R^m, b in R^(k-1)) is an orthonormal parametrisation of that G subspace, and
    {V'_a R'_b^T} one of its complement. B^T v = |v| x and B r = (r . x) v^ + |r| V' b there,
    so in the coordinates (a, x, b) the block of H is

        H_aa = 2 G S G^T,   H_ax = 2 v^ r^T + 2 |v| G S,   H_ab = 2 |r| V',
        H_xx = 2 |v|^2 S,   H_xb = 0,   H_bb = 0.

    span contains range(H), so it is invariant: its eigenpairs, mapped back, are eigenpairs
    of H, and the complement lies in null(H) (eigenvalue 0, exactly). The same output as
    ``np.linalg.eigh(reduced_hessian(...))`` up to rounding (tests/test_flow.py,
    ``test_reduced_eigh_is_the_dense_eigh``); the policy runs it after every stop.
    """
    s2, v, G = (np.asarray(a, np.float64) for a in (s2, v, G))
    k, m = G.shape
    r = s2 * (G.T @ v) - c
    v_hat, V_c, nv = _unit_and_complement(v)
    r_hat, R_c, nr = _unit_and_complement(r)
    has_v, has_r = v_hat.shape[1], r_hat.shape[1]         # 0 or 1 each
    mx, mb = has_v * m, has_r * V_c.shape[1]              # sizes of the x and b blocks
    P = k + mx + mb
    Gs = G * s2
    Hr = np.zeros((P, P))
    Hvv = Gs @ G.T
    Hr[:k, :k] = Hvv + Hvv.T                               # 2 G S G^T, symmetric to the last bit
    if has_v:
        Hax = 2.0 * (v_hat * r[None, :] + nv * Gs)
        Hr[:k, k:k + mx] = Hax
        Hr[k:k + mx, :k] = Hax.T
        Hr[np.arange(k, k + mx), np.arange(k, k + mx)] = 2.0 * nv * nv * s2
    if has_r:
        Hab = 2.0 * nr * V_c
        Hr[:k, k + mx:] = Hab
        Hr[k + mx:, :k] = Hab.T
    mu, W = np.linalg.eigh(Hr)
    N = k + k * m
    E = np.zeros((N, N))
    E[:k, :P] = W[:k]
    EG = np.zeros((k, m, P))
    if has_v:
        EG += v_hat[:, :, None] * W[None, k:k + mx, :]                 # v^ x^T
    if has_r:
        EG += (V_c @ W[k + mx:])[:, None, :] * r_hat[None, :, :]       # V' b r^T
    E[k:, :P] = EG.reshape(k * m, P)
    E[k:, P:] = (V_c[:, None, :, None] * R_c[None, :, None, :]).reshape(k * m, -1)
    lam = np.concatenate([mu, np.zeros(N - P)])
    order = np.argsort(lam, kind="stable")
    return lam[order], E[:, order]


def curvature(s2, c, v, G, eig=None) -> Curvature:
    """Most negative curvature of the reduced loss at (v, G) and the escape-time estimate.

    ``unstable`` = |u^T f| / |lambda_min| (u the unstable eigenvector): near a saddle
    f ~ -H (y - y_saddle), so this is the state's distance from the saddle along u.
    """
    fv, fG, _ = field(np, s2, c, v, G)
    f = np.concatenate([fv, fG.ravel()])
    lam, E = eig if eig is not None else reduced_eigh(s2, c, v, G)
    lmin, lmax = float(lam[0]), float(max(lam[-1], 0.0))
    if lmin >= 0:
        return Curvature(lmin, lmax, 0.0, float("inf"))
    a = abs(float(E[:, 0] @ f)) / -lmin
    size = float(np.linalg.norm(c) / np.sqrt(np.max(s2))) + float(np.linalg.norm(G)) + float(np.linalg.norm(v))
    t_esc = float(np.log(max(size, a) / a) / -lmin) if a > 0 else float("inf")
    return Curvature(lmin, lmax, a, t_esc)


def linear_tail(s2, c, v_e, G_e, taus, eig_rtol: float = 1e-8, eig=None):
    """States at t_e + tau for each tau in ``taus`` (may be inf) by the linearised flow.

    Returns (v (T, k), G (T, k, m), TailInfo). ``eig`` = (lam, E) of H if already known.
    """
    k, m = G_e.shape
    fv, fG, _ = field(np, s2, c, v_e, G_e)
    f = np.concatenate([fv, fG.ravel()])
    lam, E = eig if eig is not None else reduced_eigh(s2, c, v_e, G_e)
    cut = null_cut(lam, eig_rtol, indefinite=True)
    taus = np.asarray(taus, dtype=np.float64)
    # z at every tau and at inf (the last row: for the second-order check) in one kernel call.
    z_all, info = spectral_flow(lam, E, f, np.append(taus.reshape(-1), np.inf), rate=1.0, cut=cut)
    z, z_inf = z_all[:-1], z_all[-1:]
    y = np.concatenate([v_e, G_e.ravel()])[None, :] + z
    # Second-order check: the exact remainder of the linear model at z(inf), mapped back
    # through H^+ (the state error it causes, to leading order).
    rv, rG = second_order_remainder(np, s2, c, v_e, G_e, z_inf[0, :k], z_inf[0, k:].reshape(k, m))
    keep = lam > cut
    rho = E[:, keep].T @ np.concatenate([rv, rG.ravel()])
    second = float(np.linalg.norm(rho / lam[keep])) if keep.any() else 0.0
    y_inf = np.concatenate([v_e, G_e.ravel()]) + z_inf[0]
    gap = minimum_gap(s2, c, y_inf[:k], y_inf[k:].reshape(k, m))
    tail = TailInfo(info["correction_norm"], info["null_residual"], info["rank"], info["lambda_min_kept"],
                    second, float(min(lam[0], 0.0)), float(max(lam[-1], 0.0)), gap)
    return y[:, :k], y[:, k:].reshape(-1, k, m), tail
