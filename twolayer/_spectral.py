"""The one spectral kernel of the closed forms (THEORY.md §3 for LP, §8 for the tail).

Both closed forms solve a linear flow z' = rhs - rate * H z from z(0) = 0, with H
symmetric PSD on the kept eigenvalues, in the eigenbasis H = E diag(lam) E^T:

    z(t) = E diag(-expm1(-rate * lam * t) / lam) E^T rhs,      z(inf) = E diag(1 / lam) E^T rhs,

``expm1`` keeping small t accurate. Eigenvalues ``lam <= cut`` are the null space: z does
not move there (the component of ``rhs`` on it is reported, never silently integrated).
"""

from __future__ import annotations

import numpy as np

__all__ = ["spectral_flow", "null_cut"]


def null_cut(lam: np.ndarray, rtol: float, indefinite: bool = False) -> float:
    """The clamp: eigenvalues at or below ``rtol * lam_max`` are null; with ``indefinite``,
    also those within 10x the most negative eigenvalue (an indefinite part shows as +-
    pairs of that size, which cannot be told from zero)."""
    top = max(float(lam[-1]), 0.0) if lam.size else 0.0
    cut = rtol * top
    if indefinite and lam.size:
        cut = max(cut, 10.0 * max(-float(lam[0]), 0.0))
    return cut


def spectral_flow(lam: np.ndarray, E: np.ndarray, rhs: np.ndarray, ts, rate: float,
                  cut: float) -> tuple[np.ndarray, dict]:
    """z(t) for each t in ``ts`` (may contain inf), shape (T, N), and a dict of sizes:
    ``correction_norm`` = ||z(inf)||, ``null_residual`` = ||rhs on the null space||,
    ``rank`` and ``lambda_min_kept`` (times ``rate``: the slowest decay rate kept)."""
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    keep = lam > cut
    Ek, lk = E[:, keep], lam[keep]
    rk = Ek.T @ rhs
    inf = np.isinf(ts)
    with np.errstate(invalid="ignore", over="ignore"):
        coef = -np.expm1(-rate * np.outer(np.where(inf, 0.0, ts), lk)) / lk[None, :]
    coef = np.where(inf[:, None], 1.0 / lk[None, :], coef)
    z = (coef * rk[None, :]) @ Ek.T
    info = dict(correction_norm=float(np.linalg.norm(rk / lk)) if lk.size else 0.0,
                null_residual=float(np.linalg.norm(E[:, ~keep].T @ rhs)),
                rank=int(keep.sum()),
                lambda_min_kept=float(rate * lk.min()) if lk.size else float("nan"))
    return z, info
