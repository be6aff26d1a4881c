"""Random instances with exact control of eps, S, the angle (R*, S) and the shift."""

from __future__ import annotations

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["make_problem", "SHIFTS", "ood_second_moment"]

#: Named OOD shifts: the fraction of OOD second moment that lies in S_perp.
SHIFTS = {"large": 0.99, "small": 0.01}


def _orthonormal_columns(rng: np.random.Generator, d: int, r: int) -> np.ndarray:
    """Haar-random d x r matrix with orthonormal columns."""
    if r == 0:
        return np.zeros((d, 0))
    Q, R = np.linalg.qr(rng.standard_normal((d, r)))
    return Q * np.sign(np.diag(R))


def ood_second_moment(S_basis: np.ndarray, S_perp_basis: np.ndarray, shift) -> np.ndarray:
    """Sigma = d [(1 - rho) P_S / m + rho P_Sperp / (d - m)], trace d.

    ``shift`` is "isotropic" (Sigma = I), "large" (rho = 0.99: OOD mass mostly
    in S_perp), "small" (rho = 0.01: OOD mostly inside S) or a float rho in (0, 1).
    """
    d, m = S_basis.shape
    if isinstance(shift, str):
        if shift == "isotropic":
            return np.eye(d)
        if shift not in SHIFTS:
            raise TwoLayerInputError("shift", f"unknown shift {shift!r}",
                                     "use 'isotropic', 'large', 'small' or a float in (0, 1)")
        rho = SHIFTS[shift]
    else:
        rho = float(shift)
        if not 0.0 < rho < 1.0:
            raise TwoLayerInputError("shift", f"rho={rho} must lie in (0, 1) for an invertible Sigma")
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
    for name, val in (("d", d), ("k", k), ("m", m), ("n", n)):
        if int(val) != val or val < 1:
            raise TwoLayerInputError(name, f"must be a positive integer, got {val!r}")
    d, k, m, n = int(d), int(k), int(m), int(n)
    if not m < d - k:
        raise TwoLayerInputError("m", f"need m < d - k (overparameterized), got m={m}, d={d}, k={k}",
                                 "lower m or raise d")
    if n < m:
        raise TwoLayerInputError("n", f"need n >= m so that rowspace(X) = S, got n={n} < m={m}",
                                 "raise n or lower m")
    eps = float(eps)
    if not np.isfinite(eps) or not 0.0 <= eps <= np.sqrt(2.0):
        raise TwoLayerInputError("eps", f"must lie in [0, sqrt(2)] (d(B0, B*) <= sqrt 2), got {eps}")
    if theta_star is not None:
        theta_star = float(theta_star)
        if not 0.0 <= theta_star <= np.pi / 2:
            raise TwoLayerInputError("theta_star", f"must lie in [0, pi/2], got {theta_star}")
        if k > m or k > d - m:
            raise TwoLayerInputError("theta_star", f"needs k <= m and k <= d - m, got k={k}, m={m}, d={d}")
    if head_scale < 0 or not np.isfinite(head_scale):
        raise TwoLayerInputError("head_scale", f"must be finite and >= 0, got {head_scale}")

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

    Sigma = ood_second_moment(S, S_perp, shift)

    if isinstance(head_init, str):
        if head_init == "zero":
            v0 = np.zeros(k)
        elif head_init == "gaussian":
            v0 = head_scale * rng.standard_normal(k)
        else:
            raise TwoLayerInputError("head_init", f"unknown head_init {head_init!r}",
                                     "use 'zero', 'gaussian' or a (k,) array")
    else:
        v0 = head_init
    meta = dict(seed=seed, d=d, k=k, m=m, n=n, eps=eps, theta_star=theta_star,
                shift=shift, head_init=head_init if isinstance(head_init, str) else "given",
                head_scale=head_scale, w_star_norm=w_star_norm, x_scale=x_scale)
    return Problem(B_star, v_star, B0, X, Sigma=Sigma, v0=v0, meta=meta)
