"""Closed-form linear probing (THEORY.md §3).

With H = B0 X^T X B0^T and b = B0 X^T y, the LP flow dv/dt = -2 (H v - b) has
v(t) = v0 + E diag(-expm1(-2 t lam) / lam) E^T (b - H v0) on range(H), v unchanged on
null(H) (the spectral kernel :func:`twolayer._spectral.spectral_flow`, shared with the
FT tail). Use ``problem.linear_probe`` (cached on the immutable problem) rather than a
new :class:`LinearProbe`, so the eigendecomposition is done once per problem.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ._spectral import spectral_flow
from .errors import TwoLayerInputError
from typing import TYPE_CHECKING

if TYPE_CHECKING:                       # problem.py builds its LinearProbe from here: no cycle
    from .problem import Problem

__all__ = ["LinearProbe", "lp_head", "lp_limit"]


def _probe(problem) -> "LinearProbe":
    """The problem's cached probe (``Problem.linear_probe``); a non-Problem is refused."""
    cached = getattr(problem, "linear_probe", None)
    if not isinstance(cached, LinearProbe):
        raise TwoLayerInputError("problem", f"expected a twolayer.Problem, got {type(problem).__name__}",
                                 "build one with twolayer.make_problem(...) or twolayer.Problem(...)")
    return cached


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
        return lam, E, b

    @property
    def H_eigenvalues(self) -> np.ndarray:
        return self._eig[0]

    @property
    def unique(self) -> bool:
        """Whether H is invertible (X B0^T full column rank): the LP limit is then v0-free."""
        return bool(np.all(self._eig[0] > 0))

    def _head0(self, v0) -> np.ndarray:
        k = self.problem.k
        if v0 is None:
            return np.zeros(k)
        try:
            v0 = np.asarray(v0, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TwoLayerInputError("v0", f"cannot convert to float64 ({exc})") from exc
        if v0.shape != (k,):
            raise TwoLayerInputError("v0", f"shape {v0.shape}, expected ({k},) (one entry per feature)",
                                     f"pass a head of length k={k}, or None for the zero head")
        if not np.all(np.isfinite(v0)):
            raise TwoLayerInputError("v0", "contains NaN/inf", "pass a finite head")
        return v0

    def head(self, ts, v0=None) -> np.ndarray:
        """v(t) for each t in ``ts`` (may contain inf), shape (T, k)."""
        lam, E, b = self._eig
        ts = np.asarray(ts, dtype=np.float64)
        if ts.ndim > 1:
            raise TwoLayerInputError("ts", f"has shape {ts.shape}; times are a 1-D sequence",
                                     "pass a 1-D array of times")
        ts = ts.reshape(-1)
        if np.any(np.isnan(ts)) or np.any(ts < 0):
            raise TwoLayerInputError("ts", "must be >= 0 and not NaN")
        v0 = self._head0(v0)
        # b - H v0 = -(1/2) grad; rate 2; exactly v0 at t = 0 and on null(H).
        H = (E * lam) @ E.T
        z, _ = spectral_flow(lam, E, b - H @ v0, ts, rate=2.0, cut=0.0)
        return v0[None, :] + z

    @cached_property
    def _limit0(self) -> np.ndarray:
        """H^+ b (cached: the limit from the zero head)."""
        lam, E, b = self._eig
        pos = lam > 0
        return E[:, pos] @ ((E[:, pos].T @ b) / lam[pos])

    def limit(self, v0=None) -> np.ndarray:
        """v_lp_inf = H^{-1} b (H invertible), else H^+ b plus v0's null(H) part."""
        v0 = self._head0(v0)
        lam, E, _ = self._eig
        null = E[:, lam <= 0]
        return self._limit0 + null @ (null.T @ v0)


def lp_head(problem: Problem, ts, v0=None) -> np.ndarray:
    """LP head v(t), shape (T, k) (THEORY.md §3)."""
    return _probe(problem).head(ts, v0)


def lp_limit(problem: Problem, v0=None) -> np.ndarray:
    """v_lp_inf (THEORY.md §3)."""
    return _probe(problem).limit(v0)
