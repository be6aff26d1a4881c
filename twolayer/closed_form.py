"""Exact fine-tuning limits for one feature (k = 1), and Theorem 3.3 there (THEORY.md §4).

With k = 1 the FT flow from a zero head converges to a point fixed by the two
invariants of THEORY.md §3 and interpolation, so its limit is known in closed form.
It is an exact reference for the simulator and it shows where Theorem 3.3 fails.

Derivation (k = 1, v0 = 0, THEORY.md §1, §3)
---------------------------------------------
Write B = b^T (b in R^d), B0 = b0^T with ||b0|| = 1, and split vectors into their
S and S_perp parts (P_S, P_Sperp).

* I1 (OOD features frozen): P_Sperp b(t) = P_Sperp b0 for all t, so
  ||P_Sperp b||^2 = a^2 with a = ||P_Sperp b0|| = cos theta_max(R0, S_perp).
* I2 (balancedness): v^2 - ||b||^2 = v0^2 - ||b0||^2 = -1.
* Interpolation: the flow from v0 = 0 leaves the saddle (v, b) = (0, b0) when
  b0^T X^T y != 0 and converges to a global minimum of the training loss, i.e.
  X b v = y, so P_S b = P_S w* / v (X has full column rank on S).

Put w_S = ||P_S w*|| and c0^2 = ||P_S b0||^2 = 1 - a^2. Then
v^2 = ||b||^2 - 1 = w_S^2 / v^2 + a^2 - 1, i.e. v^4 + c0^2 v^2 - w_S^2 = 0, whose
positive root is

    v_inf^2 = (-c0^2 + sqrt(c0^4 + 4 w_S^2)) / 2 = 2 w_S^2 / (c0^2 + sqrt(c0^4 + 4 w_S^2)),

with the sign of v_inf that of b0^T X^T y (the direction in which v leaves 0). The
residual w* - B^T v lies in S_perp, so

    L_ood(inf) = e^T Sigma e,   e = P_Sperp (w* - v_inf b0).

Special case eps = 0, Sigma = I (the case of THEORY.md §4)
-----------------------------------------------------------
B0 = B* (aligned: b0 = b*, v* = W > 0), R* at angle theta to S, c = cos theta,
alpha = sin theta, W = ||w*||: then a = alpha, c0 = c, w_S = W c and

    v_inf^2 = (-c^2 + sqrt(c^4 + 4 W^2 c^2)) / 2,    sqrt(L_ood(inf)) = alpha |W - v_inf|,

computed without cancellation as W - v_inf = (W^2 - v_inf^2) / (W + v_inf),
W^2 - v_inf^2 = 4 W^4 c^2 / (c^2 + sqrt(c^4 + 4 W^2 c^2))^2.

Theorem 3.3 there: phi = ||v*||^2 = W^2, eps = 0, sigma_min(Sigma) = 1, k = 1, so both
forms ("published" and "derived") equal

    bound = alpha min(W^2, W^3) / (1 + W)^2,

and, as W -> 0, v_inf = W - W^3 / (2 c^2) + O(W^5), so

    sqrt(L_ood(inf)) / bound -> (1 + W)^2 / (2 c^2)     (asymptotic ratio).

Since min_t sqrt(L_ood(t)) <= sqrt(L_ood(inf)), the bound ("for all t") fails as soon
as this ratio is < 1, i.e. roughly when c^2 > (1 + W)^2 / 2 for small W. This is a
MEASURED/derived finding about the transcription in THEORY.md §4, not about the
simulator.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem, check_problem

__all__ = ["K1Limit", "k1_eps0_limit", "ft_limit_k1", "asymptotic_ratio", "k1_zero_loss_problem"]

#: eps below this counts as exactly 0 for :func:`ft_limit_k1`'s eps = 0 branch.
EPS_ZERO_TOL = 1e-12


class K1Limit(NamedTuple):
    """The k = 1 FT limit and Theorem 3.3 beside it (see the module docstring).

    ``ratio`` = sqrt_ood_inf / bound (None when the bound is not positive);
    ``asymptotic_ratio`` = (1 + W)^2 / (2 c^2) (only for the eps = 0 case, else None).
    """

    v_inf: float
    sqrt_ood_inf: float
    bound: float
    ratio: float | None
    asymptotic_ratio: float | None


def _check_unit(name: str, val) -> float:
    try:
        val = float(val)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError(name, f"must be a float, got {val!r}") from exc
    if not np.isfinite(val):
        raise TwoLayerInputError(name, f"must be finite, got {val}")
    return val


def asymptotic_ratio(c: float, w_star_norm: float) -> float:
    """(1 + W)^2 / (2 c^2): the limit of sqrt(L_ood(inf)) / bound as W -> 0 (k = 1, eps = 0)."""
    c = _check_unit("c", c)
    W = _check_unit("w_star_norm", w_star_norm)
    if not 0.0 < c <= 1.0:
        raise TwoLayerInputError("c", f"cos theta must lie in (0, 1], got {c}")
    return (1.0 + W) ** 2 / (2.0 * c ** 2)


def k1_eps0_limit(c: float, w_star_norm: float) -> K1Limit:
    """Closed form at k = 1, eps = 0, v0 = 0, Sigma = I (THEORY.md §4; module docstring).

    ``c`` = cos theta(R*, S) in (0, 1], ``w_star_norm`` = W > 0.
    """
    c = _check_unit("c", c)
    W = _check_unit("w_star_norm", w_star_norm)
    if not 0.0 < c <= 1.0:
        raise TwoLayerInputError("c", f"cos theta(R*, S) must lie in (0, 1], got {c}",
                                 "c = 0 puts R* in S_perp: FT never leaves the saddle")
    if W <= 0:
        raise TwoLayerInputError("w_star_norm", f"must be > 0, got {W}")
    alpha = float(np.sqrt(max(0.0, (1.0 - c) * (1.0 + c))))
    sq = np.sqrt(c ** 4 + 4.0 * W ** 2 * c ** 2)
    v2 = 2.0 * W ** 2 * c ** 2 / (c ** 2 + sq)
    v = float(np.sqrt(v2))
    gap = 4.0 * W ** 4 * c ** 2 / (c ** 2 + sq) ** 2 / (W + v)          # W - v_inf, no cancellation
    sqrt_ood = alpha * gap
    bound = alpha * min(W ** 2, W ** 3) / (1.0 + W) ** 2
    ratio = sqrt_ood / bound if bound > 0 else None
    return K1Limit(v, float(sqrt_ood), float(bound), None if ratio is None else float(ratio),
                   asymptotic_ratio(c, W))


def ft_limit_k1(problem: Problem) -> K1Limit:
    """Exact FT limit (t = inf, head from 0) of a k = 1 problem, any eps and Sigma.

    Uses the derivation of the module docstring with the problem's own B0, w*, S and
    Sigma. ``bound`` is Theorem 3.3 in the "published" form at eps = d(B0, B*)
    (:func:`twolayer.bounds.thm33_lower_bound`). Needs k = 1, v0 = 0, well-specified
    labels and b0^T X^T y != 0 (else the flow stays at the saddle).
    """
    from .bounds import thm33_lower_bound

    check_problem(problem)
    if problem.k != 1:
        raise TwoLayerInputError("problem", f"has k = {problem.k}; the closed form needs k = 1")
    if np.any(np.asarray(problem.v0) != 0):
        raise TwoLayerInputError("problem", "has a nonzero head v0; the closed form needs v0 = 0",
                                 "make the problem with head_init='zero'")
    if not problem.well_specified:
        raise TwoLayerInputError("problem", "labels are not y = X w*")
    b0 = problem.B0[0]
    Q, Qp = problem.S_basis, problem.S_perp_basis
    g = float(b0 @ (problem.X.T @ problem.y))
    if g == 0.0:
        raise TwoLayerInputError("problem", "b0^T X^T y = 0: the zero head is an exact saddle and "
                                 "FT never moves", "tilt B0 toward X^T y")
    w = problem.w_star
    wS = float(np.linalg.norm(Q.T @ w))
    c0sq = float(np.sum((Q.T @ b0) ** 2))
    sq = np.sqrt(c0sq ** 2 + 4.0 * wS ** 2)
    v = float(np.sign(g) * np.sqrt(2.0 * wS ** 2 / (c0sq + sq)))
    eps0 = problem.eps <= EPS_ZERO_TOL and np.allclose(problem.Sigma, np.eye(problem.d), atol=1e-14)
    if eps0:
        # b0 = +-b*: use the cancellation-free form (R* at angle theta to S, c = ||P_S b*||).
        c = float(np.sqrt(c0sq))
        ref = k1_eps0_limit(c, problem.w_star_norm)
        sqrt_ood = ref.sqrt_ood_inf
        asym = ref.asymptotic_ratio
    else:
        e = Qp @ (Qp.T @ (w - v * b0))
        sqrt_ood = float(np.sqrt(max(e @ problem.Sigma @ e, 0.0)))
        asym = None
    b = thm33_lower_bound(problem, np.zeros(1), form="published")
    bound = float(b.value)
    ratio = sqrt_ood / bound if b.status == "ok" else None
    return K1Limit(v, sqrt_ood, bound, ratio, asym)


def k1_zero_loss_problem(seed: int, d: int, m: int, n: int, cos2: float, w_star_norm: float) -> Problem:
    """A k = 1, v0 = 0, Sigma = I problem whose FT limit has L_ood(inf) = 0 although the
    DERIVED form of Theorem 3.3 is positive there (for cos^2 > (1 + W)^2 / 2, small W).

    Start from ``make_problem(seed, d, 1, m, n, 0, theta_star=arccos(sqrt(cos2)),
    w_star_norm=W)`` (R* at angle theta to S, B0 = B*), then tilt b0 in the plane of
    P_S b* and P_Sperp b* to the angle theta0 > theta at which the limit of the module
    docstring fits w* exactly: v_inf(theta0) sin(theta0) = W sin(theta), i.e.
    v_inf P_Sperp b0 = P_Sperp w* (and P_S is interpolated anyway), so e = 0. The tilt is
    eps = d(B0, B*) = 2 sin((theta0 - theta) / 2) ~ sin(theta) W^2 / (2 c^2), which the
    published form (subtracting eps) cannot absorb but the derived form (subtracting
    eps ||w*||) can: its value is ~ alpha W^3 (1 / (1 + W)^2 - 1 / (2 c^2)) > 0.
    """
    from scipy.optimize import brentq

    from .generate import make_problem

    c2 = _check_unit("cos2", cos2)
    W = _check_unit("w_star_norm", w_star_norm)
    if not 0.0 < c2 < 1.0:
        raise TwoLayerInputError("cos2", f"must lie in (0, 1), got {c2}")
    if W <= 0:
        raise TwoLayerInputError("w_star_norm", f"must be > 0, got {W}")
    base = make_problem(seed, d, 1, m, n, 0.0, theta_star=float(np.arccos(np.sqrt(c2))), w_star_norm=W)
    bs = base.B_star[0] * np.sign(base.v_star[0])
    Q, Qp = base.S_basis, base.S_perp_basis
    uS, uP = Q @ (Q.T @ bs), Qp @ (Qp.T @ bs)
    c, a = np.linalg.norm(uS), np.linalg.norm(uP)
    uS, uP = uS / c, uP / a
    wS = W * c
    theta = float(np.arctan2(a, c))

    def misfit(th):
        c0 = np.cos(th)
        v = np.sqrt(2.0 * wS ** 2 / (c0 ** 2 + np.sqrt(c0 ** 4 + 4.0 * wS ** 2)))
        return v * np.sin(th) - W * a

    hi = min(theta + 0.5, np.pi / 2 - 1e-9)
    if misfit(hi) <= 0:
        raise TwoLayerInputError("w_star_norm", f"no exact-fit tilt below pi/2 for W={W}, cos2={c2}")
    th0 = brentq(misfit, theta, hi, xtol=1e-15, rtol=1e-15)
    b0 = np.cos(th0) * uS + np.sin(th0) * uP
    return Problem(base.B_star, base.v_star, b0[None, :], base.X, v0=np.zeros(1),
                   meta=dict(base.meta, construction="k1_zero_loss_problem", tilt=th0 - theta))
