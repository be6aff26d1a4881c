"""Random instances with exact control of eps, S, the angle (R*, S) and the shift."""

from __future__ import annotations

import numpy as np

from ._validate import as_f64, as_float, as_int
from .errors import TwoLayerInputError
from .geometry import ORTHONORMAL_TOL, _basis
from .problem import Problem

__all__ = ["make_problem", "SHIFTS", "ood_second_moment"]

#: Named OOD shifts: the fraction of OOD second moment that lies in S_perp.
SHIFTS = {"large": 0.99, "small": 0.01}

#: Allowed range of ``w_star_norm`` and ``x_scale`` (squares stay well inside float64).
_SCALE_RANGE = (1e-100, 1e100)


def _orthonormal_columns(rng: np.random.Generator, d: int, r: int) -> np.ndarray:
    """Haar-random d x r matrix with orthonormal columns."""
    if r == 0:
        return np.zeros((d, 0))
    Q, R = np.linalg.qr(rng.standard_normal((d, r)))
    return Q * np.sign(np.diag(R))


def _rho(shift) -> float:
    """The fraction rho of OOD second moment in S_perp named by ``shift`` (not "isotropic")."""
    if isinstance(shift, str):
        if shift not in SHIFTS:
            raise TwoLayerInputError("shift", f"unknown shift {shift!r}",
                                     "use 'isotropic', 'large', 'small' or a float in (0, 1)")
        return SHIFTS[shift]
    rho = as_float(shift, "shift")
    if not 0.0 < rho < 1.0:
        raise TwoLayerInputError("shift", f"rho={rho} must lie in (0, 1) for an invertible Sigma",
                                 "pass a float strictly between 0 and 1, or 'isotropic', 'large', 'small'")
    return rho


def ood_second_moment(S_basis, S_perp_basis, shift) -> np.ndarray:
    """Sigma = d [(1 - rho) P_S / m + rho P_Sperp / (d - m)], trace d.

    ``S_basis`` (d, m) and ``S_perp_basis`` (d, d - m) are orthonormal bases of S
    and S_perp (1 <= m < d). ``shift`` is "isotropic" (Sigma = I), "large"
    (rho = 0.99: OOD mass mostly in S_perp), "small" (rho = 0.01: OOD mostly inside
    S) or a float rho in (0, 1).
    """
    S_basis = _basis(S_basis, "S_basis")
    d, m = S_basis.shape
    S_perp_basis = _basis(S_perp_basis, "S_perp_basis", d=d, other="S_basis")
    if m == 0:
        raise TwoLayerInputError("S_basis", "has no columns (m = 0)", "THEORY.md §1 needs 1 <= m = dim S")
    overlap = float(np.max(np.abs(S_basis.T @ S_perp_basis))) if m and d - m else 0.0
    if overlap > ORTHONORMAL_TOL:
        raise TwoLayerInputError("S_perp_basis", f"is not orthogonal to S_basis (max|S^T S_perp| = "
                                 f"{overlap:.2e})", "pass the complement of S, e.g. problem.S_perp_basis")
    if S_perp_basis.shape[1] != d - m:
        raise TwoLayerInputError("S_perp_basis", f"has {S_perp_basis.shape[1]} columns, expected "
                                 f"d - m = {d - m}", "pass a basis of the orthogonal complement of S, "
                                 "e.g. problem.S_perp_basis")
    if d - m == 0:
        raise TwoLayerInputError("S_perp_basis", "has no columns (m = d, S_perp = 0)",
                                 "THEORY.md §1 needs m < d - k; pass fewer training directions")
    return _ood_second_moment(S_basis, S_perp_basis, shift)


def _ood_second_moment(S_basis: np.ndarray, S_perp_basis: np.ndarray, shift) -> np.ndarray:
    """The kernel of :func:`ood_second_moment`, for bases already known to be valid."""
    d, m = S_basis.shape
    if isinstance(shift, str) and shift == "isotropic":
        return np.eye(d)
    rho = _rho(shift)
    P_S = S_basis @ S_basis.T
    P_Sp = S_perp_basis @ S_perp_basis.T
    Sigma = d * ((1.0 - rho) * P_S / m + rho * P_Sp / (d - m))
    return 0.5 * (Sigma + Sigma.T)


def make_problem(seed: int, d: int, k: int, m: int, n: int, eps: float, *,
                 theta_star: float | None = None, shift="isotropic",
                 head_init="zero", head_scale: float = 1.0,
                 w_star_norm: float = 1.0, x_scale: float = 1.0) -> Problem:
    """Draw a :class:`Problem` with exactly controlled geometry (THEORY.md §1).

    Parameters
    ----------
    seed : seed of the NumPy generator; the same arguments give the same problem.
    d, k, m, n : input dim, feature dim, dim S, number of training inputs
        (requires 1 <= m < d - k and n >= m, so rowspace(X) = S exactly).
    eps : d(B0, B*) exactly (to rounding), in [0, sqrt(2)]: the largest principal
        angle between R0 and R* is 2 arcsin(eps / 2); the others are uniform below it.
    theta_star : if given, every principal angle between R* and S equals it, so
        cos theta_max(R*, S) = cos(theta_star) and cos theta_max(R*, S_perp) =
        sin(theta_star) (needs k <= m and k <= d - m). Default: R* Haar-random.
    shift : "isotropic", "large", "small" or rho in (0, 1); see :func:`ood_second_moment`.
    head_init : "zero", "gaussian" (N(0, head_scale^2 I_k)) or a (k,) array:
        stored as ``problem.v0``.
    w_star_norm : ||w*|| = ||v*||.
    x_scale : standard deviation of the Gaussian coordinates of X inside S.
    """
    seed = as_int(seed, "seed", minimum=0)
    d, k, m, n = (as_int(val, name, minimum=1) for name, val in (("d", d), ("k", k), ("m", m), ("n", n)))
    if d - k < 2:
        # 1 <= m < d - k has no solution: k is the culprit, whatever m is.
        raise TwoLayerInputError("k", f"need k <= d - 2 so that some m satisfies 1 <= m < d - k "
                                 f"(overparameterized, THEORY.md §1), got k={k}, d={d}",
                                 f"lower k to at most {d - 2} or raise d to at least {k + 2}")
    if not m < d - k:
        raise TwoLayerInputError("m", f"need m < d - k (overparameterized), got m={m}, d={d}, k={k}",
                                 f"lower m to at most {d - k - 1} or raise d to at least {m + k + 1}")
    if n < m:
        raise TwoLayerInputError("n", f"need n >= m so that rowspace(X) = S, got n={n} < m={m}",
                                 "raise n or lower m")
    eps = as_float(eps, "eps")
    if not 0.0 <= eps <= np.sqrt(2.0):
        raise TwoLayerInputError("eps", f"must lie in [0, sqrt(2)] (d(B0, B*) <= sqrt 2), got {eps}",
                                 "pass the target distance d(B0, B*), between 0 and sqrt(2) ~ 1.414")
    if theta_star is not None:
        theta_star = as_float(theta_star, "theta_star")
        if not 0.0 <= theta_star <= np.pi / 2:
            raise TwoLayerInputError("theta_star", f"must lie in [0, pi/2], got {theta_star}",
                                     "pass an angle in radians between 0 and pi/2, or None")
        if k > m or k > d - m:
            raise TwoLayerInputError("theta_star", f"needs k <= m and k <= d - m, got k={k}, m={m}, d={d}",
                                     "pass theta_star=None, or choose k <= m <= d - k")
    if not (isinstance(shift, str) and shift == "isotropic"):
        _rho(shift)
    head_scale = as_float(head_scale, "head_scale")
    if head_scale < 0:
        raise TwoLayerInputError("head_scale", f"must be >= 0, got {head_scale}",
                                 "pass the standard deviation of the Gaussian head (>= 0)")
    w_star_norm = as_float(w_star_norm, "w_star_norm")
    if not w_star_norm > 0:
        raise TwoLayerInputError("w_star_norm", f"must be > 0, got {w_star_norm} (||w*|| is a norm; "
                                 "the direction of w* comes from the seed)",
                                 "pass a positive norm, e.g. w_star_norm=abs(value)")
    x_scale = as_float(x_scale, "x_scale")
    if not x_scale > 0:
        raise TwoLayerInputError("x_scale", f"must be > 0, got {x_scale} (x_scale = 0 gives X = 0, "
                                 "m = 0)", "pass the positive standard deviation of X inside S")
    for name, val in (("w_star_norm", w_star_norm), ("x_scale", x_scale)):
        if not _SCALE_RANGE[0] <= val <= _SCALE_RANGE[1]:
            raise TwoLayerInputError(name, f"is {val:.1e}, outside [{_SCALE_RANGE[0]:g}, "
                                     f"{_SCALE_RANGE[1]:g}]: squares (X^T X, the loss) would "
                                     "under/overflow float64", "rescale: a scale of order 1 only "
                                     "changes units (and the time scale)")
    if isinstance(head_init, str):
        if head_init not in ("zero", "gaussian"):
            raise TwoLayerInputError("head_init", f"unknown head_init {head_init!r}",
                                     "use 'zero', 'gaussian' or a (k,) array")
        v0_given = None
    else:
        v0_given = as_f64(head_init, "head_init", shape=(k,),
                          what="initial head; or 'zero' / 'gaussian'")

    rng = np.random.default_rng(seed)
    Q = _orthonormal_columns(rng, d, d)
    S, S_perp = Q[:, :m], Q[:, m:]
    X = x_scale * rng.standard_normal((n, m)) @ S.T

    if theta_star is None:
        B_star = _orthonormal_columns(rng, d, k).T
    else:
        A = S @ _orthonormal_columns(rng, m, k)
        C = S_perp @ _orthonormal_columns(rng, d - m, k)
        B_star = (np.cos(theta_star) * A + np.sin(theta_star) * C).T

    # B0: rows cos(t_i) b*_i + sin(t_i) q_i with q_i orthonormal in R*_perp; then a
    # random rotation U0, which leaves the principal angles t_i unchanged.
    theta_max = 2.0 * np.arcsin(eps / 2.0)
    thetas = np.concatenate([[theta_max], rng.uniform(0.0, theta_max, k - 1)])
    R_perp = np.linalg.svd(B_star, full_matrices=True)[2][k:].T
    q = R_perp @ _orthonormal_columns(rng, d - k, k)
    B0 = np.cos(thetas)[:, None] * B_star + np.sin(thetas)[:, None] * q.T
    U0 = _orthonormal_columns(rng, k, k)
    B0 = U0 @ B0

    v_dir = rng.standard_normal(k)
    v_star = w_star_norm * v_dir / np.linalg.norm(v_dir)

    Sigma = _ood_second_moment(S, S_perp, shift)

    if v0_given is not None:
        v0 = v0_given
    elif head_init == "zero":
        v0 = np.zeros(k)
    else:
        v0 = head_scale * rng.standard_normal(k)
    meta = dict(seed=seed, d=d, k=k, m=m, n=n, eps=eps, theta_star=theta_star,
                shift=shift, head_init=head_init if isinstance(head_init, str) else "given",
                head_scale=head_scale, w_star_norm=w_star_norm, x_scale=x_scale)
    return Problem(B_star, v_star, B0, X, Sigma=Sigma, v0=v0, meta=meta)
