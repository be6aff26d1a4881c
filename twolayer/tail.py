"""Closed-form tail of the FT flow near its steady state (linearised flow, THEORY.md §8).

Once the integration meets the steady-state rule at (v_e, G_e) (see :mod:`twolayer.flow`),
the flow is continued in closed form: with H the Hessian of the reduced loss at that
point (f = -grad L, so the Jacobian of f is -H, symmetric) the linearised flow
z' = f_e - H z gives, in the eigenbasis of H (:mod:`twolayer.hessian`, on its invariant
subspace; the null cut of :func:`twolayer._spectral.null_cut`: eigenvalues below
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

The policy runs all of it on whole chunks (issue 19 §2): :func:`analyse` takes the end
states of a chunk as stacked arrays and returns every number above as arrays (one stacked
eigendecomposition, no loop over problems); :func:`curvature` and :func:`linear_tail` are
its single-problem forms.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._field import _gtv, _norm, field, second_order_remainder
from .hessian import SubspaceEig, subspace_eigh

__all__ = ["TailInfo", "Curvature", "StopAnalysis", "analyse", "curvature", "linear_tail", "minimum_gap",
           "slow_rate"]


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


def minimum_gap(s2, c, v, G):
    """How far the outputs p = G^T v are from the minimum manifold, relative to its size
    (a float for one problem, an array (B,) for a chunk).

    The reduced loss L = ||diag(s) p - U_m^T y||^2 depends on (v, G) only through
    p = G^T v, which ranges over all of R^m for k >= 1; so every minimum interpolates
    (L = 0) and has p = p* = c / s2 exactly (THEORY.md §1: FT fits the ID data on S).
    The gap ||p - p*|| / ||p*|| is measured without the weights s that the residual
    r = s2 (p - p*) carries, so a slow direction (small s) is not hidden by them: a
    state whose slow modes have not converged has a small residual and a large gap.
    """
    p_star = c / s2
    p = _gtv(np, G, v)
    size = np.maximum(np.maximum(_norm(np, p_star, 1), _norm(np, p, 1)), 1e-300)
    gap = _norm(np, p - p_star, 1) / size
    return float(gap) if np.ndim(gap) == 0 else gap


def slow_rate(s2, v, G) -> float:
    """The slowest rate at which the outputs p = G^T v relax near (v, G).

    dp/dt = -2 (||v||^2 I + G^T G) r with r = s2 (p - p*), so p - p* relaxes with the
    matrix 2 M S^2 (M = ||v||^2 I + G^T G, S = diag(s)), whose eigenvalues are those of the
    symmetric 2 S M S; the smallest one is returned (the rate of the slowest mode).
    """
    s = np.sqrt(s2)
    M = float(v @ v) * np.eye(s.size) + G.T @ G
    return float(np.linalg.eigvalsh(2.0 * (s[:, None] * M * s[None, :]))[0])


class StopAnalysis(NamedTuple):
    """Everything the policy needs at the end states of a chunk, as arrays over it: the
    curvature (:class:`Curvature`'s fields), the tail's states ``v_t`` (B, T, k), ``G_t``
    (B, T, k, m) at the relative times asked for, its :class:`TailInfo` fields (the tail's
    lambda_min / lambda_max as ``tail_lambda_min`` / ``tail_lambda_max``), and ``gap_here``,
    the :func:`minimum_gap` of the end state itself."""

    lambda_min: np.ndarray
    lambda_max: np.ndarray
    unstable: np.ndarray
    escape_time: np.ndarray
    v_t: np.ndarray
    G_t: np.ndarray
    correction_norm: np.ndarray
    null_residual: np.ndarray
    rank: np.ndarray
    lambda_min_kept: np.ndarray
    second_order: np.ndarray
    tail_lambda_min: np.ndarray
    tail_lambda_max: np.ndarray
    limit_gap: np.ndarray
    gap_here: np.ndarray

    def curvatures(self) -> list:
        """One :class:`Curvature` per problem (plain floats)."""
        return [Curvature(*row) for row in zip(*(getattr(self, name).tolist() for name in Curvature._fields))]

    def tails(self) -> list:
        """One :class:`TailInfo` per problem (plain floats; the rank an int)."""
        cols = (self.correction_norm, self.null_residual, self.rank, self.lambda_min_kept, self.second_order,
                self.tail_lambda_min, self.tail_lambda_max, self.limit_gap)
        return [TailInfo(*row) for row in zip(*(col.tolist() for col in cols))]


def _kept_norm(x, keep, lk):
    """||x / lambda|| over the kept modes (0 when none is kept), per row."""
    return np.sqrt(np.sum(np.where(keep, (x / lk) ** 2, 0.0), axis=-1))


def analyse(s2, c, v, G, taus, eig_rtol: float = 1e-8, eig: SubspaceEig | None = None) -> StopAnalysis:
    """The stop analysis of a chunk at its end states (v (B, k), G (B, k, m)), with the
    tail's states at the relative times ``taus`` (B, T) (>= 0, inf allowed; the tail at inf
    is always computed for its error estimate and limit gap).

    Curvature: lambda_min (the smallest eigenvalue of H), lambda_max = max(largest, 0) and
    ``unstable`` = |u^T f| / |lambda_min| (u the unstable eigenvector): near a saddle
    f ~ -H (y - y_saddle), so this is the state's distance from the saddle along u.

    Tail: y(t_e + tau) = y_e + sum over kept modes of -expm1(-lambda tau) / lambda (e^T f) e
    (module docstring), kept = lambda > max(eig_rtol lambda_max, 10 |lambda_min|)."""
    s2, c, v, G = (np.asarray(a, np.float64) for a in (s2, c, v, G))
    B, k, m = G.shape
    eig = eig if eig is not None else subspace_eigh(s2, c, v, G)
    fv, fG, _ = field(np, s2, c, v, G)
    fP, f_null = eig.coords(fv, fG)
    Wt = np.swapaxes(eig.W, 1, 2)
    rk = (Wt @ fP[:, :, None])[:, :, 0]                        # f in the eigenbasis
    mu = eig.mu
    has_null = k * m + k > mu.shape[1]                          # H's other eigenvalues: 0 exactly
    lam_lo = np.minimum(mu[:, 0], 0.0) if has_null else mu[:, 0]
    lam_hi = np.maximum(mu[:, -1], 0.0)
    # Curvature.
    neg = lam_lo < 0
    unstable = np.where(neg, np.abs(rk[:, 0]) / np.where(neg, -lam_lo, 1.0), 0.0)
    size = _norm(np, c, 1) / np.sqrt(np.max(s2, axis=-1)) + _norm(np, G, 2) + _norm(np, v, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        esc = np.log(np.maximum(size, unstable) / unstable) / -lam_lo
    escape = np.where(neg & (unstable > 0), esc, np.inf)
    # Tail, at every tau and at inf (the last column).
    cut = np.maximum(eig_rtol * lam_hi, 10.0 * np.maximum(-lam_lo, 0.0))
    keep = mu > cut[:, None]
    lk = np.where(keep, mu, 1.0)
    tt = np.concatenate([np.asarray(taus, np.float64).reshape(B, -1), np.full((B, 1), np.inf)], axis=1)
    inf = np.isinf(tt)[:, :, None]
    with np.errstate(invalid="ignore", over="ignore"):
        coef = -np.expm1(-(np.where(inf, 0.0, tt[:, :, None]) * lk[:, None, :])) / lk[:, None, :]
    coef = np.where(keep[:, None, :], np.where(inf, 1.0 / lk[:, None, :], coef), 0.0)
    zv, zG = eig.vectors((coef * rk[:, None, :]) @ Wt)
    # The tail's own error: the exact remainder of the linear model at z(inf), through H^+.
    rv, rG = second_order_remainder(np, s2, c, v, G, zv[:, -1], zG[:, -1])
    v_all = v[:, None] + zv
    G_all = zG
    G_all += G[:, None]                                          # in place: z is no longer needed
    rho = (Wt @ eig.coords(rv, rG)[0][:, :, None])[:, :, 0]
    null_residual = np.sqrt(np.sum(np.where(keep, 0.0, rk ** 2), axis=1) + np.sum(f_null ** 2, axis=(1, 2)))
    min_kept = np.min(np.where(keep, mu, np.inf), axis=1)
    return StopAnalysis(
        lam_lo, lam_hi, unstable, escape, v_all[:, :-1], G_all[:, :-1],
        _kept_norm(rk, keep, lk), null_residual, keep.sum(axis=1), np.where(np.isinf(min_kept), np.nan, min_kept),
        _kept_norm(rho, keep, lk), np.minimum(lam_lo, 0.0), lam_hi,
        minimum_gap(s2, c, v_all[:, -1], G_all[:, -1]), minimum_gap(s2, c, v, G))


def curvature(s2, c, v, G) -> Curvature:
    """The most negative curvature of the reduced loss at one (v, G) and the escape-time
    estimate (:func:`analyse`)."""
    one = [np.asarray(a, np.float64)[None] for a in (s2, c, v, G)]
    return analyse(*one, np.zeros((1, 0))).curvatures()[0]


def linear_tail(s2, c, v_e, G_e, taus, eig_rtol: float = 1e-8):
    """States at t_e + tau for each tau in ``taus`` (may be inf) by the linearised flow from
    one stop (v_e, G_e): (v (T, k), G (T, k, m), TailInfo) (:func:`analyse`)."""
    one = [np.asarray(a, np.float64)[None] for a in (s2, c, v_e, G_e)]
    out = analyse(*one, np.asarray(taus, np.float64).reshape(1, -1), eig_rtol)
    return out.v_t[0], out.G_t[0], out.tails()[0]
