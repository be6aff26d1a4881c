"""Subspaces, principal angles and the distance d(B0, B*) (THEORY.md §1-§2).

All functions take and return float64 NumPy arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._validate import as_f64, as_float
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
    "NotOrthonormalColumnsError",
]

ORTHONORMAL_TOL = 1e-9


def _as_f64(a, name: str, ndim: int | None = None) -> np.ndarray:
    """Finite float64 array (kept for existing imports; see :func:`twolayer._validate.as_f64`)."""
    return as_f64(a, name, ndim=ndim)


#: Largest accepted orthonormality tolerance: beyond it "orthonormal rows" (THEORY.md §1)
#: and the closed form d = 2 sin(theta_max / 2) lose their meaning.
MAX_ORTHONORMAL_TOL = 1e-3


def _check_tol(tol, name: str = "tol") -> float:
    """An orthonormality tolerance in [0, MAX_ORTHONORMAL_TOL]."""
    tol = as_float(tol, name)
    if not 0.0 <= tol <= MAX_ORTHONORMAL_TOL:
        raise TwoLayerInputError(name, f"must lie in [0, {MAX_ORTHONORMAL_TOL:g}], got {tol}",
                                 f"pass a small tolerance such as {ORTHONORMAL_TOL:g}; for a matrix "
                                 "that is far from orthonormal use twolayer.orthonormalize_rows")
    return tol


def _nonempty_rows(B: np.ndarray, name: str) -> None:
    if B.shape[0] == 0 or B.shape[1] == 0:
        raise TwoLayerInputError(name, f"is empty (shape {B.shape})",
                                 "pass a (k, d) matrix with k >= 1 rows and d >= 1 columns")


class NotOrthonormalColumnsError(NotOrthonormalError):
    """A basis that must have orthonormal columns (Q_R, Q_T, ...) does not.

    ``deviation`` is max |Q^T Q - I| (entrywise).
    """

    def __init__(self, argument: str, deviation: float, tol: float):
        self.deviation = float(deviation)
        self.tol = float(tol)
        TwoLayerInputError.__init__(
            self, argument,
            f"columns are not orthonormal: max|{argument}^T {argument} - I| = "
            f"{deviation:.3e} > tol {tol:.1e}",
            f"pass an orthonormal basis, e.g. twolayer.geometry.orthonormal_basis({argument}.T)")


def _basis(Q, name: str, d: int | None = None, other: str = "",
           tol: float = ORTHONORMAL_TOL) -> np.ndarray:
    """A (d, r) float64 matrix with orthonormal columns (O(d r^2) check)."""
    Q = as_f64(Q, name, ndim=2, what="(d, r) basis with orthonormal columns")
    if d is not None and Q.shape[0] != d:
        raise TwoLayerInputError(name, f"has {Q.shape[0]} rows, {other} has {d}",
                                 "both bases live in the same R^d: pass (d, r) matrices with the same d")
    r = Q.shape[1]
    if r > Q.shape[0]:
        raise TwoLayerInputError(name, f"has r={r} columns > d={Q.shape[0]} rows; columns cannot be "
                                 "orthonormal", "pass a (d, r) basis (one basis vector per column)")
    dev = float(np.max(np.abs(Q.T @ Q - np.eye(r)))) if r else 0.0
    if not dev <= tol:
        raise NotOrthonormalColumnsError(name, dev, tol)
    return Q


def check_orthonormal_rows(B, name: str = "B", tol: float = ORTHONORMAL_TOL) -> np.ndarray:
    """Return ``B`` as float64, raising :class:`NotOrthonormalError` unless B B^T = I."""
    tol = _check_tol(tol)
    given = getattr(B, "dtype", None)
    B = as_f64(B, name, ndim=2, what="(k, d) matrix with orthonormal rows")
    k, d = B.shape
    if k > d:
        raise TwoLayerInputError(name, f"has k={k} rows > d={d} columns; rows cannot be orthonormal",
                                 "pass a (k, d) matrix with k <= d (rows are features, columns inputs)")
    dev = float(np.max(np.abs(B @ B.T - np.eye(k)))) if k else 0.0
    if not dev <= tol:
        raise NotOrthonormalError(name, dev, tol, dtype=given)
    return B


def orthonormalize_rows(B) -> np.ndarray:
    """Nearest matrix with orthonormal rows (polar factor, via SVD).

    This is the explicit helper offered by :class:`NotOrthonormalError`; twolayer
    never orthonormalises silently.
    """
    B = as_f64(B, "B", ndim=2, what="(k, d) matrix")
    _nonempty_rows(B, "B")
    if B.shape[0] > B.shape[1]:
        raise TwoLayerInputError("B", f"has more rows ({B.shape[0]}) than columns ({B.shape[1]})",
                                 "pass a (k, d) matrix with k <= d")
    W, s, Vt = np.linalg.svd(B, full_matrices=False)
    if s[-1] <= s[0] * 1e-12:
        raise TwoLayerInputError("B", "is rank deficient; its rows cannot be orthonormalised",
                                 "pass k linearly independent rows")
    return W @ Vt


def orthonormal_basis(A, rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis (d x r, columns) of the row space of ``A`` (n x d).

    The rank uses the usual numerical tolerance ``max(n, d) * eps * sigma_max``
    unless ``rtol`` (relative to sigma_max, in [0, 1)) is given.
    """
    A = as_f64(A, "A", ndim=2, what="(n, d) matrix")
    if rtol is not None:
        rtol = as_float(rtol, "rtol")
        if not 0.0 <= rtol < 1.0:
            raise TwoLayerInputError("rtol", f"must lie in [0, 1) (relative to sigma_max), got {rtol}",
                                     "pass e.g. 1e-12, or None for the default")
    _, s, Vt = np.linalg.svd(A, full_matrices=True)
    if rtol is None:
        rtol = max(A.shape) * np.finfo(np.float64).eps
    r = int(np.sum(s > rtol * s[0])) if s.size else 0
    return Vt[:r].T.copy()


def complement_basis(Q) -> np.ndarray:
    """Orthonormal basis (d x (d - r)) of the orthogonal complement of span(Q).

    ``Q`` (d x r) has orthonormal columns.
    """
    Q = _basis(Q, "Q")
    d, r = Q.shape
    if r == 0:
        return np.eye(d)
    U, _, _ = np.linalg.svd(Q, full_matrices=True)
    return U[:, r:].copy()


def principal_angles(Q_E, Q_F) -> np.ndarray:
    """Principal angles (radians, descending) between span(Q_E) and span(Q_F).

    ``Q_E`` (d x e) and ``Q_F`` (d x f) span the subspaces (their columns need not
    be orthonormal). Uses :func:`scipy.linalg.subspace_angles`, which is accurate
    for small angles (THEORY.md §2).
    """
    Q_E = as_f64(Q_E, "Q_E", ndim=2, what="(d, e) matrix whose columns span E")
    Q_F = as_f64(Q_F, "Q_F", ndim=2, what="(d, f) matrix whose columns span F")
    if Q_F.shape[0] != Q_E.shape[0]:
        raise TwoLayerInputError("Q_F", f"has {Q_F.shape[0]} rows, Q_E has {Q_E.shape[0]}",
                                 "both spanning sets live in the same R^d: pass (d, .) matrices")
    if Q_E.shape[1] == 0 or Q_F.shape[1] == 0:
        return np.zeros(0)
    return scipy.linalg.subspace_angles(Q_E, Q_F)


def _cos_theta_max(Q_R: np.ndarray, Q_T: np.ndarray) -> float:
    """The kernel of :func:`cos_theta_max`, for bases already known to be orthonormal."""
    k, t = Q_R.shape[1], Q_T.shape[1]
    if k == 0:
        return 1.0
    if t < k:
        return 0.0
    s = np.linalg.svd(Q_R.T @ Q_T, compute_uv=False)
    return float(np.clip(s[k - 1], 0.0, 1.0))


def cos_theta_max(Q_R, Q_T) -> float:
    """cos theta_max(R, T) = sigma_k(Q_R^T Q_T) = min over unit r in R of ||P_T r||.

    THEORY.md §2. ``Q_R`` (d x k) and ``Q_T`` (d x t) have orthonormal columns
    (checked: :class:`NotOrthonormalColumnsError` otherwise).
    Returns 0 when dim T < dim R (some direction of R is orthogonal to T).
    """
    Q_R = _basis(Q_R, "Q_R")
    Q_T = _basis(Q_T, "Q_T", d=Q_R.shape[0], other="Q_R")
    return _cos_theta_max(Q_R, Q_T)


def _pair(B0, B_star) -> tuple[np.ndarray, np.ndarray]:
    B0 = as_f64(B0, "B0", ndim=2, what="(k, d) matrix")
    B_star = as_f64(B_star, "B_star", ndim=2, what="(k, d) matrix")
    _nonempty_rows(B0, "B0")
    if B0.shape != B_star.shape:
        raise TwoLayerInputError("B_star", f"shape {B_star.shape} differs from B0's {B0.shape}",
                                 "B0 and B_star are both (k, d): same feature count k and input dim d")
    return B0, B_star


def procrustes_rotation(B0, B_star) -> np.ndarray:
    """U = polar factor of B0 B*^T: the orthogonal U minimising ||B0 - U B*|| (THEORY.md §1)."""
    B0, B_star = _pair(B0, B_star)
    W, _, Vt = np.linalg.svd(B0 @ B_star.T)
    return W @ Vt


def procrustes_distance(B0, B_star) -> float:
    """||B0 - U B*||_2 at the Procrustes rotation U (spectral norm)."""
    B0, B_star = _pair(B0, B_star)
    U = procrustes_rotation(B0, B_star)
    return float(np.linalg.norm(B0 - U @ B_star, 2))


def distance(B0, B_star, tol: float = ORTHONORMAL_TOL) -> float:
    """d(B0, B*) = min_U ||B0 - U B*||_2 = 2 sin(theta_max / 2) (THEORY.md §1).

    theta_max is the largest principal angle between rowspace(B0) and
    rowspace(B*), computed accurately for small angles. Both have orthonormal
    rows (checked to ``tol``).
    """
    B0, B_star = _pair(B0, B_star)
    B0 = check_orthonormal_rows(B0, "B0", tol)
    B_star = check_orthonormal_rows(B_star, "B_star", tol)
    theta = principal_angles(B0.T, B_star.T)
    theta_max = float(theta.max()) if theta.size else 0.0
    return 2.0 * np.sin(theta_max / 2.0)
