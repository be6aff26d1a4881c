"""Closed-form linear probing (THEORY.md §3).

With H = B0 X^T X B0^T and b = B0 X^T y, the LP flow dv/dt = -2 (H v - b) has
v(t) = v0 + (I - exp(-2 t H)) H^+ (b - H v0) on range(H), v unchanged on null(H).
Written in the eigenbasis of H with ``expm1`` so that small t is accurate.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["LinearProbe", "lp_head", "lp_limit"]


class LinearProbe:
    """LP closed form for one problem, with the eigendecomposition of H cached.

    Eigenvalues below ``rtol * lambda_max`` are clamped to exactly zero (null(H)).
    """

    def __init__(self, problem: Problem, rtol: float = 1e-12):
        self.problem = problem
        self.rtol = float(rtol)

    @cached_property
    def _eig(self):
        p = self.problem
        XB = p.X @ p.B0.T
        H = XB.T @ XB
        lam, E = np.linalg.eigh(0.5 * (H + H.T))
        lam = np.where(lam > self.rtol * max(lam[-1], 0.0), lam, 0.0)
        b = XB.T @ p.y
        return lam, E, E.T @ b

    @property
    def H_eigenvalues(self) -> np.ndarray:
        return self._eig[0]

    @property
    def unique(self) -> bool:
        """Whether H is invertible (X B0^T full column rank): the LP limit is then v0-free."""
        return bool(np.all(self._eig[0] > 0))

    def head(self, ts, v0=None) -> np.ndarray:
        """v(t) for each t in ``ts`` (may contain inf), shape (T, k)."""
        lam, E, bt = self._eig
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        if np.any(np.isnan(ts)) or np.any(ts < 0):
            raise TwoLayerInputError("ts", "must be >= 0 and not NaN")
        v0 = np.zeros(self.problem.k) if v0 is None else np.asarray(v0, dtype=np.float64)
        u0 = E.T @ v0
        pos = lam > 0
        target = np.where(pos, bt / np.where(pos, lam, 1.0), u0)
        # 1 - exp(-2 lam t) = -expm1(-2 lam t); equals 1 at t = inf and 0 on null(H).
        with np.errstate(invalid="ignore"):
            frac = -np.expm1(-2.0 * np.outer(ts, lam))
        frac = np.where(pos[None, :], frac, 0.0)
        frac = np.where(np.isinf(ts)[:, None] & pos[None, :], 1.0, frac)
        # v(t) = v0 + E diag(frac) E^T (v_target - v0): exactly v0 at t = 0.
        return v0[None, :] + (frac * (target - u0)[None, :]) @ E.T

    def limit(self, v0=None) -> np.ndarray:
        """v_lp_inf = H^{-1} b (H invertible), else H^+ b plus v0's null(H) part."""
        return self.head(np.array([np.inf]), v0)[0]


def lp_head(problem: Problem, ts, v0=None) -> np.ndarray:
    """LP head v(t), shape (T, k) (THEORY.md §3)."""
    return LinearProbe(problem).head(ts, v0)


def lp_limit(problem: Problem, v0=None) -> np.ndarray:
    """v_lp_inf (THEORY.md §3)."""
    return LinearProbe(problem).limit(v0)
