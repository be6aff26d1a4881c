"""Subspaces, principal angles and the distance d(B0, B*) (THEORY.md §1-§2).

All functions take and return float64 NumPy arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .errors import NotOrthonormalError, TwoLayerInputError

__all__ = [
    "orthonormal_basis",
    "complement_basis",
    "cos_theta_max",
    "principal_angles",
    "distance",
    "procrustes_rotation",
    "procrustes_distance",
    "orthonormalize_rows",
    "check_orthonormal_rows",
]

ORTHONORMAL_TOL = 1e-9


def _as_f64(a, name: str, ndim: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError(name, f"cannot convert to a float64 array ({exc})") from exc
    if ndim is not None and arr.ndim != ndim:
        raise TwoLayerInputError(name, f"expected a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise TwoLayerInputError(name, f"contains {bad} NaN/inf entries", "pass finite values")
    return arr


def check_orthonormal_rows(B, name: str = "B", tol: float = ORTHONORMAL_TOL) -> np.ndarray:
    """Return ``B`` as float64, raising :class:`NotOrthonormalError` unless B B^T = I."""
    B = _as_f64(B, name, ndim=2)
    k, d = B.shape
    if k > d:
        raise TwoLayerInputError(name, f"has k={k} rows > d={d} columns; rows cannot be orthonormal")
    dev = float(np.max(np.abs(B @ B.T - np.eye(k)))) if k else 0.0
    if dev > tol:
        raise NotOrthonormalError(name, dev, tol)
    return B


def orthonormalize_rows(B) -> np.ndarray:
    """Nearest matrix with orthonormal rows (polar factor, via SVD).

    This is the explicit helper offered by :class:`NotOrthonormalError`; twolayer
    never orthonormalises silently.
    """
    B = _as_f64(B, "B", ndim=2)
    if B.shape[0] > B.shape[1]:
        raise TwoLayerInputError("B", f"has more rows ({B.shape[0]}) than columns ({B.shape[1]})")
    W, s, Vt = np.linalg.svd(B, full_matrices=False)
    if s.size and s[-1] <= s[0] * 1e-12:
        raise TwoLayerInputError("B", "is rank deficient; its rows cannot be orthonormalised")
    return W @ Vt


def orthonormal_basis(A, rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis (d x r, columns) of the row space of ``A`` (n x d).

    The rank uses the usual numerical tolerance ``max(n, d) * eps * sigma_max``
    unless ``rtol`` is given.
    """
    A = _as_f64(A, "A", ndim=2)
    _, s, Vt = np.linalg.svd(A, full_matrices=True)
    if rtol is None:
        rtol = max(A.shape) * np.finfo(np.float64).eps
    r = int(np.sum(s > rtol * (s[0] if s.size else 0.0))) if s.size else 0
    return Vt[:r].T.copy()


def complement_basis(Q: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x (d - r)) of the orthogonal complement of span(Q)."""
    d, r = Q.shape
    if r == 0:
        return np.eye(d)
    U, _, _ = np.linalg.svd(Q, full_matrices=True)
    return U[:, r:].copy()


def principal_angles(Q_E: np.ndarray, Q_F: np.ndarray) -> np.ndarray:
    """Principal angles (radians, descending) between span(Q_E) and span(Q_F).

    Uses :func:`scipy.linalg.subspace_angles`, which is accurate for small angles
    (THEORY.md §2).
    """
    if Q_E.shape[1] == 0 or Q_F.shape[1] == 0:
        return np.zeros(0)
    return scipy.linalg.subspace_angles(Q_E, Q_F)


def cos_theta_max(Q_R: np.ndarray, Q_T: np.ndarray) -> float:
    """cos theta_max(R, T) = sigma_k(Q_R^T Q_T) = min over unit r in R of ||P_T r||.

    THEORY.md §2. ``Q_R`` (d x k) and ``Q_T`` (d x t) have orthonormal columns.
    Returns 0 when dim T < dim R (some direction of R is orthogonal to T).
    """
    k, t = Q_R.shape[1], Q_T.shape[1]
    if k == 0:
        return 1.0
    if t < k:
        return 0.0
    s = np.linalg.svd(Q_R.T @ Q_T, compute_uv=False)
    return float(np.clip(s[k - 1], 0.0, 1.0))


def procrustes_rotation(B0, B_star) -> np.ndarray:
    """U = polar factor of B0 B*^T: the orthogonal U minimising ||B0 - U B*|| (THEORY.md §1)."""
    B0 = _as_f64(B0, "B0", ndim=2)
    B_star = _as_f64(B_star, "B_star", ndim=2)
    if B0.shape != B_star.shape:
        raise TwoLayerInputError("B_star", f"shape {B_star.shape} differs from B0's {B0.shape}")
    W, _, Vt = np.linalg.svd(B0 @ B_star.T)
    return W @ Vt


def procrustes_distance(B0, B_star) -> float:
    """||B0 - U B*||_2 at the Procrustes rotation U (spectral norm)."""
    U = procrustes_rotation(B0, B_star)
    return float(np.linalg.norm(np.asarray(B0, float) - U @ np.asarray(B_star, float), 2))


def distance(B0, B_star, tol: float = ORTHONORMAL_TOL) -> float:
    """d(B0, B*) = min_U ||B0 - U B*||_2 = 2 sin(theta_max / 2) (THEORY.md §1).

    theta_max is the largest principal angle between rowspace(B0) and
    rowspace(B*), computed accurately for small angles.
    """
    B0 = check_orthonormal_rows(B0, "B0", tol)
    B_star = check_orthonormal_rows(B_star, "B_star", tol)
    if B0.shape != B_star.shape:
        raise TwoLayerInputError("B_star", f"shape {B_star.shape} differs from B0's {B0.shape}")
    theta = principal_angles(B0.T, B_star.T)
    theta_max = float(theta.max()) if theta.size else 0.0
    return 2.0 * np.sin(theta_max / 2.0)
