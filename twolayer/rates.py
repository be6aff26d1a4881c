"""Layer-wise learning rates: the two-rate FT flow as the one FT flow in scaled coordinates.

With head rate 1 and feature rate gamma = eta_B / eta_v in [0, inf) (time t is the head's
time), the gradient flow of L(v, B) = ||X B^T v - y||^2 (THEORY.md §1) is

    dv/dt = -2 B X^T r,        dB/dt = -2 gamma v r^T X,        r = X B^T v - y.

DERIVED (checked in tests/test_rates.py and experiments/beyond_lpft.py):

* Conserved quantity. d(v v^T)/dt = -2 (B X^T r v^T + v r^T X B^T) and
  d(B B^T)/dt = -2 gamma (v r^T X B^T + B X^T r v^T), so

      C_gamma = v v^T - B B^T / gamma       (= v v^T / eta_v - B B^T / eta_B, times eta_v)

  is constant along the flow for gamma > 0 (gamma = 1: I2). Equivalently the feature Gram
  matrix moves only by gamma times the head's: B B^T(t) - B0 B0^T = gamma (v v^T(t) - v0 v0^T).
* I1 holds for every gamma: dB/dt has rows in S = rowspace(X).
* Scaling. With q = gamma^(1/4), u = q v, H = G / q (G the S-part of B in the reduced
  coordinates of :mod:`twolayer.flow`) and tau = sqrt(gamma) t, (u, H) follows the FT flow
  (gamma = 1) of the same reduced problem (s^2, c): du/dtau = -2 H r, dH/dtau = -2 u r^T,
  with r = s^2 * (H^T u) - c = s^2 * (G^T v) - c. So the two-rate flow is solved by the one
  FT solve (:func:`twolayer.simulate` with ``feature_rate=gamma``), and its steady stop,
  closed-form tail and certificate carry over: the certificate's I2 in (u, H) is
  sqrt(gamma) times C_gamma's S-block, so it checks the conserved quantity.
* gamma = 0 is LP exactly (dB/dt = 0): the closed form of THEORY.md §3.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import TwoLayerInputError

__all__ = ["check_feature_rate", "head_scale", "time_scale", "conserved", "conserved_residual"]


def check_feature_rate(gamma, argument: str = "feature_rate") -> float:
    """gamma as a float in [0, inf); a :class:`TwoLayerInputError` for NaN, inf, < 0 or non-numbers."""
    if isinstance(gamma, (bool, str)) or gamma is None:
        ok = False
    else:
        try:
            g = float(gamma)
            ok = math.isfinite(g) and g >= 0.0
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise TwoLayerInputError(argument, f"must be a finite float >= 0 (eta_B / eta_v), got {gamma!r}",
                                 "pass e.g. feature_rate=0.1 (0: LP, 1: FT)")
    return float(gamma)


def head_scale(gamma: float) -> float:
    """q = gamma^(1/4): u = q v, H = G / q (module docstring); gamma > 0."""
    return float(gamma) ** 0.25


def time_scale(gamma: float) -> float:
    """tau / t = sqrt(gamma) (module docstring); gamma > 0."""
    return math.sqrt(float(gamma))


def conserved(v, B, gamma: float) -> np.ndarray:
    """C_gamma = v v^T - B B^T / gamma for v (..., k), B (..., k, d) (module docstring)."""
    gamma = check_feature_rate(gamma)
    if gamma == 0.0:
        raise TwoLayerInputError("feature_rate", "is 0: C_gamma is undefined (B is frozen; LP)",
                                 "use gamma > 0, or check B(t) = B0 directly")
    v = np.asarray(v, np.float64)
    B = np.asarray(B, np.float64)
    return np.einsum("...i,...j->...ij", v, v) - np.einsum("...id,...jd->...ij", B, B) / gamma


def conserved_residual(v, B, v_ref, B_ref, gamma: float) -> np.ndarray:
    """||C_gamma(t) - C_gamma(ref)||_F / ||C_gamma(ref)||_F for each t (relative drift)."""
    C = conserved(v, B, gamma)
    C0 = conserved(v_ref, B_ref, gamma)
    return np.sqrt(np.sum((C - C0) ** 2, axis=(-2, -1))) / max(float(np.linalg.norm(C0)), 1e-300)
