"""The problem: ground truth, pretrained extractor, data and OOD moment (THEORY.md §1)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from ._validate import as_f64
from .errors import AssumptionError, PrecisionWarning, TwoLayerInputError
from .geometry import (
    ORTHONORMAL_TOL,
    _check_tol,
    _cos_theta_max,
    check_orthonormal_rows,
    distance,
    procrustes_distance,
    procrustes_rotation,
)

__all__ = ["Problem", "check_problem"]

#: Entries of X, y, v* must lie below SCALE_MAX in size (and X's largest above SCALE_MIN)
#: so that squares (X^T X, the loss) stay inside float64.
SCALE_MIN, SCALE_MAX = 1e-150, 1e150


def _rank(s: np.ndarray, shape: tuple, eps: float) -> int:
    """Numerical rank from singular values ``s`` (descending) at relative precision ``eps``:
    the count above max(shape) * eps * s_max (numpy's matrix_rank rule)."""
    return int(np.sum(s > max(shape) * eps * (s[0] if s.size else 0.0)))


def _coarse_eps(a) -> float | None:
    """The machine epsilon of ``a``'s dtype when it is a real float type coarser than float64
    (float32, float16), else None."""
    dt = getattr(a, "dtype", None)
    if dt is None or not np.issubdtype(dt, np.floating):
        return None
    e = float(np.finfo(dt).eps)
    return e if e > np.finfo(np.float64).eps else None


class Problem:
    """One instance of the two-layer linear setting of THEORY.md §1.

    Parameters
    ----------
    B_star : (k, d) ground-truth extractor, orthonormal rows.
    v_star : (k,) ground-truth head; w* = B*^T v*.
    B0 : (k, d) pretrained extractor, orthonormal rows.
    X : (n, d) training inputs (rows x_i). S = rowspace(X).
    y : (n,) labels; default ``X @ B_star.T @ v_star`` (well specified, THEORY.md §1).
        Other labels (noisy, misspecified) are accepted; :attr:`well_specified`
        says which, and bounds that assume y = X w* then report "not_applicable".
    Sigma : (d, d) OOD second moment E[x x^T], symmetric positive definite;
        default the identity (the worst case over the unit ball).
    v0 : (k,) initial head used when ``simulate(..., v0=None)``; default zero.
    meta : free-form description (generator settings, seed) kept for records.
    orthonormal_tol : tolerance on max|B B^T - I| for B0 and B_star, in [0, 1e-3].

    Every argument is validated (shapes, finite values, B0 and B_star orthonormal,
    Sigma symmetric positive definite, 1 <= m = rank X); bad input raises
    :class:`~twolayer.errors.TwoLayerInputError` naming the argument. X in float32 (or
    coarser) whose rounding adds directions to S gets a
    :class:`~twolayer.errors.PrecisionWarning`. The theorems' further assumptions are not
    required here, so that problems outside them can be simulated: m < d - k,
    y = X w* (:attr:`well_specified`), cos theta_max(R0, S_perp) > 0. Each bound checks the
    ones it needs and reports "not_applicable" with the reason.

    All arrays are stored as float64 and never modified. Derived quantities
    (bases of S and S_perp, the aligned ground truth, principal angles, the
    reduced coordinates used by the simulator) are computed once, lazily.
    """

    def __init__(self, B_star, v_star, B0, X, y=None, Sigma=None, *, v0=None,
                 orthonormal_tol: float = ORTHONORMAL_TOL, meta: dict | None = None):
        orthonormal_tol = _check_tol(orthonormal_tol, "orthonormal_tol")
        if meta is not None and not isinstance(meta, Mapping):
            raise TwoLayerInputError("meta", f"must be a dict, got {type(meta).__name__}",
                                     "pass a dict describing the instance, or None")
        B_star = check_orthonormal_rows(B_star, "B_star", orthonormal_tol)
        k, d = B_star.shape
        if k == 0 or d == 0:
            raise TwoLayerInputError("B_star", f"is empty (shape {B_star.shape})",
                                     "pass a (k, d) matrix with k >= 1 features and d >= 1 inputs")
        B0_given = B0
        B0 = as_f64(B0, "B0", ndim=2, what="(k, d) pretrained extractor")
        if B0.shape != (k, d):
            raise TwoLayerInputError("B0", f"shape {B0.shape} must equal B_star's {(k, d)}",
                                     "B0 and B_star are both (k, d)")
        # the check sees the dtype B0 was given in, so a float32 B0 is named as the cause
        B0 = check_orthonormal_rows(B0_given if hasattr(B0_given, "dtype") else B0, "B0", orthonormal_tol)
        v_star = as_f64(v_star, "v_star", shape=(k,), what="ground-truth head, k = B_star rows")
        x_eps = _coarse_eps(X)
        X = as_f64(X, "X", ndim=2, what="(n, d) matrix, one training input per row")
        if X.shape[1] != d:
            raise TwoLayerInputError("X", f"has {X.shape[1]} columns, expected d={d}",
                                     "X is (n, d) with one input per row")
        n = X.shape[0]
        if n == 0:
            raise TwoLayerInputError("X", "has no rows", "pass at least one training input")
        x_max = float(np.max(np.abs(X)))
        if x_max == 0.0:
            # rank X = 0 exactly when X = 0 (the rank tolerance is relative to sigma_max).
            raise TwoLayerInputError("X", "is all zeros, so m = 0 (m = dim rowspace(X))",
                                     "THEORY.md §1 needs 1 <= m: pass nonzero training inputs")
        if x_eps is not None:
            # m = rank X is computed at float64's precision; rounding at the input's coarser
            # precision would count as extra directions of S when X is rank deficient.
            sv = np.linalg.svd(X, compute_uv=False)
            m64, m_in = _rank(sv, X.shape, np.finfo(np.float64).eps), _rank(sv, X.shape, x_eps)
            if m64 != m_in:
                warnings.warn(PrecisionWarning(
                    f"X was given as a {x_eps:.1e}-precision float array: at float64's rank cutoff "
                    f"m = dim S = {m64}, but {m64 - m_in} of those directions are below the input's own "
                    f"rounding (rank {m_in} at its precision). This Problem's m = {m64} is wrong if X "
                    f"has rank {m_in}, and with it S, S_perp and every angle. Build X in float64 (e.g. "
                    "compute it from float64 factors), or project it onto its leading singular "
                    "subspace before making the Problem"),
                    stacklevel=2)
        if not SCALE_MIN < x_max < SCALE_MAX:
            raise TwoLayerInputError("X", f"has entries of size {x_max:.1e}: X^T X and the loss "
                                     "under/overflow float64", "rescale X (rescaling X only rescales time)")
        if not np.max(np.abs(v_star)) < SCALE_MAX:
            raise TwoLayerInputError("v_star", f"has entries of size {np.max(np.abs(v_star)):.1e}: the "
                                     "loss overflows float64", "rescale v_star (and y)")
        if y is None:
            y = X @ (B_star.T @ v_star)
        else:
            # Labels need not be y = X w*: a misspecified y is allowed and flagged by
            # ``well_specified`` (the bounds then report "not_applicable").
            y = as_f64(y, "y", shape=(n,), what="one label per row of X")
            if not np.max(np.abs(y)) < SCALE_MAX:
                raise TwoLayerInputError("y", f"has entries of size {np.max(np.abs(y)):.1e}: the loss "
                                         "overflows float64", "rescale y")
        lam = None
        if Sigma is None:
            Sigma = np.eye(d)
        else:
            Sigma = as_f64(Sigma, "Sigma", shape=(d, d), what="OOD second moment E[x x^T]")
            asym = float(np.max(np.abs(Sigma - Sigma.T)))
            if asym > 1e-10 * max(1.0, float(np.max(np.abs(Sigma)))):
                raise TwoLayerInputError("Sigma", f"is not symmetric (max|Sigma - Sigma^T| = {asym:.2e})",
                                         "pass E[x x^T], which is symmetric")
            Sigma = 0.5 * (Sigma + Sigma.T)
            lam = np.linalg.eigvalsh(Sigma)
            if not lam[0] > d * np.finfo(np.float64).eps * lam[-1]:
                raise TwoLayerInputError("Sigma", f"is not positive definite (eigenvalues in "
                                         f"[{lam[0]:.3e}, {lam[-1]:.3e}])",
                                         "THEORY.md §1 requires an invertible second moment: add a "
                                         "small multiple of the identity or drop null directions")
        if v0 is None:
            v0 = np.zeros(k)
        else:
            v0 = as_f64(v0, "v0", shape=(k,), what="initial head")
        self.B_star, self.v_star, self.B0, self.X, self.y, self.Sigma, self.v0 = (
            B_star, v_star, B0, X, y, Sigma, v0)
        self._Sigma_lam = lam
        for a in (B_star, v_star, B0, X, y, Sigma, v0):
            a.setflags(write=False)
        self.orthonormal_tol = orthonormal_tol
        self.meta = dict(meta or {})

    # -- sizes ---------------------------------------------------------------
    @property
    def k(self) -> int:
        return self.B0.shape[0]

    @property
    def d(self) -> int:
        return self.B0.shape[1]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        return (f"Problem(d={self.d}, k={self.k}, m={self.m}, n={self.n}, "
                f"eps={self.eps:.3g}, |w*|={self.w_star_norm:.3g})")

    # -- ground truth --------------------------------------------------------
    @cached_property
    def w_star(self) -> np.ndarray:
        """w* = B*^T v* (THEORY.md §1)."""
        return self.B_star.T @ self.v_star

    @cached_property
    def w_star_norm(self) -> float:
        return float(np.linalg.norm(self.w_star))

    @cached_property
    def well_specified(self) -> bool:
        """Whether y = X w* (to rounding)."""
        r = self.y - self.X @ self.w_star
        return bool(np.linalg.norm(r) <= 1e-10 * max(1.0, float(np.linalg.norm(self.y))))

    @cached_property
    def U_align(self) -> np.ndarray:
        """Polar factor of B0 B*^T: the rotation attaining d(B0, B*) (THEORY.md §1)."""
        return procrustes_rotation(self.B0, self.B_star)

    @cached_property
    def v_star_aligned(self) -> np.ndarray:
        """U v*: the ground-truth head in B0's frame."""
        return self.U_align @ self.v_star

    @cached_property
    def B_star_aligned(self) -> np.ndarray:
        """U B*: same w*, rotated to be closest to B0."""
        return self.U_align @ self.B_star

    @cached_property
    def eps(self) -> float:
        """d(B0, B*) = 2 sin(theta_max / 2) (closed form)."""
        return distance(self.B0, self.B_star, self.orthonormal_tol)

    @cached_property
    def eps_procrustes(self) -> float:
        """||B0 - U B*||_2 at the Procrustes U; equals :attr:`eps` (cross-check)."""
        return procrustes_distance(self.B0, self.B_star)

    # -- the training subspace S ----------------------------------------------
    @cached_property
    def _svd_X(self):
        U, s, Vt = np.linalg.svd(self.X, full_matrices=True)
        return U, s, Vt, _rank(s, self.X.shape, np.finfo(np.float64).eps)

    @property
    def m(self) -> int:
        """m = dim S = rank X."""
        return self._svd_X[3]

    @cached_property
    def S_basis(self) -> np.ndarray:
        """(d, m) orthonormal basis of S = rowspace(X): the right singular vectors of X."""
        _, _, Vt, m = self._svd_X
        return Vt[:m].T.copy()

    @cached_property
    def S_perp_basis(self) -> np.ndarray:
        """(d, d - m) orthonormal basis of S_perp."""
        _, _, Vt, m = self._svd_X
        return Vt[m:].T.copy()

    @cached_property
    def singular_values_X(self) -> np.ndarray:
        """The m nonzero singular values of X, descending."""
        _, s, _, m = self._svd_X
        return s[:m].copy()

    @cached_property
    def kappa_X(self) -> float:
        """kappa(X) = sigma_max(X) / smallest nonzero singular value (THEORY.md §5)."""
        s = self.singular_values_X
        return float(s[0] / s[-1])

    @cached_property
    def R0_basis(self) -> np.ndarray:
        """(d, k) orthonormal basis of R0 = rowspace(B0)."""
        return self.B0.T.copy()

    @cached_property
    def R_star_basis(self) -> np.ndarray:
        """(d, k) orthonormal basis of R* = rowspace(B*)."""
        return self.B_star.T.copy()

    @cached_property
    def cos_theta_max(self) -> dict:
        """cos theta_max for (R0, S), (R0, S_perp), (R*, S), (R*, S_perp) (THEORY.md §2)."""
        S, Sp = self.S_basis, self.S_perp_basis
        return {
            "R0,S": _cos_theta_max(self.R0_basis, S),
            "R0,S_perp": _cos_theta_max(self.R0_basis, Sp),
            "R*,S": _cos_theta_max(self.R_star_basis, S),
            "R*,S_perp": _cos_theta_max(self.R_star_basis, Sp),
        }

    @property
    def alpha(self) -> float:
        """The slides' alpha = cos theta_max(S_perp, R0) = cos theta_max(R0, S_perp)."""
        return self.cos_theta_max["R0,S_perp"]

    @cached_property
    def Sigma_eigvals(self) -> np.ndarray:
        """Eigenvalues of Sigma, ascending: decomposed once per Problem (at construction when
        Sigma was given, where positive definiteness is checked)."""
        return np.ones(self.d) if self._Sigma_lam is None else self._Sigma_lam

    @property
    def sigma_min_Sigma(self) -> float:
        return float(self.Sigma_eigvals[0])

    @property
    def sigma_max_Sigma(self) -> float:
        return float(self.Sigma_eigvals[-1])

    @cached_property
    def overparameterized(self) -> bool:
        """1 <= m < d - k (THEORY.md §1)."""
        return 1 <= self.m < self.d - self.k

    def require_overparameterized(self) -> None:
        if not self.overparameterized:
            raise AssumptionError("problem", f"not overparameterized: need 1 <= m < d - k, "
                                  f"got m={self.m}, d={self.d}, k={self.k}",
                                  "use fewer training directions or a larger d")

    # -- reduced coordinates (used by the flow) --------------------------------
    @cached_property
    def reduced(self):
        """Reduced coordinates of the FT flow (see :mod:`twolayer.flow`).

        With X = U diag(s) V^T and Q_S = V[:, :m], B = B0 P_Sperp + G Q_S^T,
        G = B Q_S in R^{k x m}, and the loss is
        ||diag(s) G^T v - U_m^T y||^2 + ||(I - U_m U_m^T) y||^2.
        Returns (s2, c, G0, resid2) with s2 = s^2, c = s * (U_m^T y), G0 = B0 Q_S.
        """
        U, s, _, m = self._svd_X
        Um = U[:, :m]
        uty = Um.T @ self.y
        s2 = s[:m] ** 2
        c = s[:m] * uty
        resid2 = float(max(self.y @ self.y - uty @ uty, 0.0))
        return s2, c, self.G0, resid2

    @cached_property
    def G0(self) -> np.ndarray:
        """G0 = B0 Q_S: the features' part on S in the reduced coordinates (k, m)."""
        return self.B0 @ self.S_basis

    @cached_property
    def B0_B0T(self) -> np.ndarray:
        """B0 B0^T (k, k): the features' part of the invariant I2 at the start."""
        return self.B0 @ self.B0.T

    @cached_property
    def linear_probe(self):
        """The :class:`twolayer.lp.LinearProbe` of this problem (THEORY.md §3), cached: the
        problem is immutable, so the eigendecomposition of H is done once."""
        from .lp import LinearProbe
        return LinearProbe(self)

    def B_from_G(self, G: np.ndarray) -> np.ndarray:
        """Full B = B0 + (G - B0 Q_S) Q_S^T for G of shape (..., k, m)."""
        G = np.asarray(G, dtype=np.float64)
        if G.shape[-2:] != (self.k, self.m):
            raise TwoLayerInputError("G", f"shape {G.shape}: last axes must be (k, m)=({self.k}, {self.m})",
                                     "pass G = B Q_S, shape (..., k, m)")
        return self.B0 + (G - self.G0) @ self.S_basis.T

    def summary(self) -> dict:
        """The quantities the theory talks about, as plain floats (for records)."""
        c = self.cos_theta_max
        return {
            "d": self.d, "k": self.k, "m": self.m, "n": self.n,
            "eps": self.eps, "w_star_norm": self.w_star_norm,
            "cos_R0_S": c["R0,S"], "cos_R0_Sperp": c["R0,S_perp"],
            "cos_Rstar_S": c["R*,S"], "cos_Rstar_Sperp": c["R*,S_perp"],
            "kappa_X": self.kappa_X,
            "sigma_min_Sigma": self.sigma_min_Sigma, "sigma_max_Sigma": self.sigma_max_Sigma,
        }


def check_problem(problem, name: str = "problem"):
    """Raise unless ``problem`` is a :class:`twolayer.Problem`."""
    if not isinstance(problem, Problem):
        raise TwoLayerInputError(name, f"expected a twolayer.Problem, got {type(problem).__name__}",
                                 "build one with twolayer.make_problem(...) or twolayer.Problem(...)")
    return problem
