"""Bounds of Theorem 3.3 and the derived LP upper bound (THEORY.md §4, §5).

Each function returns a :class:`BoundResult`: ``value`` (float), ``status`` a
:class:`BoundStatus` (a ``str`` Enum: "ok", "vacuous", "not_applicable", so
``b.status == "ok"`` keeps working) and the ``reason`` when not "ok". A lower
bound whose value is <= 0 is *vacuous*: it says nothing and must never be
counted as verified.

Inputs are validated: ``eps`` must be a finite float >= d(B0, B*) (a bound with
eps below the distance is not the theorem's), ``v0`` a finite (k,) head; bad
input raises :class:`twolayer.errors.TwoLayerInputError` naming the argument.

MEASURED (THEORY.md §4, docs/theorem33.md): Theorem 3.3 as transcribed fails in
both forms for small ||w*|| with R* nearly inside S; see
:mod:`twolayer.closed_form` for the exact k = 1 counterexample.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["BoundResult", "BoundStatus", "head_alignment_phi", "thm33_lower_bound", "lp_upper_bound",
           "FORMS"]

FORMS = ("published", "derived")
#: cos theta_max below this counts as zero (the assumption fails).
ANGLE_TOL = 1e-12


class BoundStatus(str, Enum):
    """Status of a bound. A ``str`` Enum: members compare equal to their values."""

    OK = "ok"
    VACUOUS = "vacuous"
    NOT_APPLICABLE = "not_applicable"

    def __str__(self) -> str:          # "ok", not "BoundStatus.OK" (records, f-strings)
        return self.value

    def __format__(self, spec) -> str:
        return format(self.value, spec)


class BoundResult(NamedTuple):
    """One bound evaluated on one problem.

    ``value``: the bound on the scale of sqrt(L_ood) (compare it with
    ``sqrt(twolayer.ood_loss(...))``, not with the loss itself); NaN when not applicable.
    ``status``: :class:`BoundStatus` "ok" (a valid, positive bound), "vacuous" (a lower
    bound <= 0: it verifies nothing) or "not_applicable" (an assumption fails; ``reason``
    says which). ``theorem`` and ``form`` ("published" / "derived" for Theorem 3.3) name
    the statement evaluated.
    """

    value: float
    status: BoundStatus
    reason: str
    theorem: str
    form: str = ""

    @property
    def ok(self) -> bool:
        return self.status == BoundStatus.OK


def _check_problem(problem) -> Problem:
    if not isinstance(problem, Problem):
        raise TwoLayerInputError("problem", f"must be a twolayer.Problem, got {type(problem).__name__}",
                                 "build one with twolayer.make_problem or twolayer.Problem")
    return problem


def _check_head(problem: Problem, v0) -> np.ndarray:
    try:
        v0 = np.asarray(v0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("v0", f"cannot convert to a float64 array ({exc})",
                                 f"pass a ({problem.k},) array") from exc
    if v0.shape != (problem.k,):
        raise TwoLayerInputError("v0", f"shape {v0.shape}, expected ({problem.k},)",
                                 f"pass a ({problem.k},) array (one entry per feature)")
    if not np.all(np.isfinite(v0)):
        raise TwoLayerInputError("v0", f"contains NaN/inf: {v0}", "pass a finite head")
    return v0


def _check_eps(problem: Problem, eps) -> float:
    """eps defaults to d(B0, B*); otherwise a finite float >= d(B0, B*) (THEORY.md §1)."""
    if eps is None:
        return float(problem.eps)
    if isinstance(eps, bool):
        raise TwoLayerInputError("eps", f"must be a float, got {eps!r}", "pass a float >= d(B0, B*)")
    try:
        eps = float(eps)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("eps", f"must be a float, got {eps!r}",
                                 f"pass a float >= d(B0, B*) = {problem.eps:.6g}, or None for d(B0, B*)"
                                 ) from exc
    if not np.isfinite(eps):
        raise TwoLayerInputError("eps", f"must be finite, got {eps}",
                                 f"pass a float >= d(B0, B*) = {problem.eps:.6g}, or None for d(B0, B*)")
    if eps < 0:
        raise TwoLayerInputError("eps", f"must be >= 0 (it bounds a distance), got {eps}",
                                 f"pass eps >= d(B0, B*) = {problem.eps:.6g}, or None for d(B0, B*)")
    if eps < problem.eps - 1e-12:
        raise TwoLayerInputError("eps", f"{eps:.6g} is below d(B0, B*) = {problem.eps:.6g}: the theorem "
                                 "needs eps >= d(B0, B*)",
                                 f"pass eps >= {problem.eps:.6g}, or None to use d(B0, B*)")
    return eps


def head_alignment_phi(problem: Problem, v0) -> float:
    """phi = sqrt(|(v0^T v*)^2 - (v*^T v*)^2|), v* aligned to B0's frame (THEORY.md §4)."""
    problem = _check_problem(problem)
    v0 = _check_head(problem, v0)
    vs = problem.v_star_aligned
    return float(np.sqrt(abs((v0 @ vs) ** 2 - (vs @ vs) ** 2)))


def thm33_lower_bound(problem: Problem, v0=None, form: str = "published",
                      eps: float | None = None) -> BoundResult:
    """Theorem 3.3 (Kumar et al. 2022; THEORY.md §4): for all t,

        sqrt(L_ood(v_ft(t), B_ft(t))) >= sqrt(sigma_min(Sigma)) *
            ( cos theta_max(R0, S_perp) / sqrt(k) * min(phi, phi^2 / ||w*||) / (1 + ||w*||)^2 - E )

    with E = eps ("published" form) or eps * ||w*|| ("derived" form, DERIVED in
    THEORY.md). ``eps`` defaults to d(B0, B*); any eps >= d(B0, B*) is allowed.
    ``v0`` defaults to ``problem.v0``. Not applicable when cos theta_max(R0, S_perp) = 0,
    w* = 0, or the labels are not y = X w* (the setting of THEORY.md §1 that the theorem
    assumes: noisy or misspecified labels change the FT limit).
    """
    problem = _check_problem(problem)
    if form not in FORMS:
        raise TwoLayerInputError("form", f"unknown form {form!r}", f"use one of {FORMS}")
    theorem = "Theorem 3.3 (" + form + ")"
    v0 = _check_head(problem, problem.v0 if v0 is None else v0)
    eps = _check_eps(problem, eps)
    if not problem.well_specified:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           "labels are not y = X w* (the theorem assumes well-specified labels)", theorem, form)
    alpha = problem.cos_theta_max["R0,S_perp"]
    if alpha <= ANGLE_TOL:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           f"cos theta_max(R0, S_perp) = {alpha:.3e} = 0: R0 meets S nontrivially",
                           theorem, form)
    wn = problem.w_star_norm
    if wn == 0:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE, "w* = 0", theorem, form)
    phi = head_alignment_phi(problem, v0)
    core = alpha / np.sqrt(problem.k) * min(phi, phi ** 2 / wn) / (1.0 + wn) ** 2
    E = eps if form == "published" else eps * wn
    value = float(np.sqrt(problem.sigma_min_Sigma) * (core - E))
    if value <= 0:
        return BoundResult(value, BoundStatus.VACUOUS, f"value {value:.3e} <= 0 (eps term exceeds the "
                           f"alignment term {core:.3e})", theorem, form)
    return BoundResult(value, BoundStatus.OK, "", theorem, form)


def lp_upper_bound(problem: Problem, eps: float | None = None) -> BoundResult:
    """DERIVED LP upper bound (THEORY.md §5, supports Theorem 3.5):

        sqrt(L_ood(v_lp_inf, B0)) <= sqrt(sigma_max(Sigma)) * eps * ||w*||
                                      * (1 + kappa(X) / cos theta_max(R0, S)).

    Not applicable when cos theta_max(R0, S) = 0 (LP is not unique) or the labels
    are not well specified.
    """
    problem = _check_problem(problem)
    theorem = "LP upper bound (DERIVED, THEORY.md §5)"
    eps = _check_eps(problem, eps)
    c = problem.cos_theta_max["R0,S"]
    if c <= ANGLE_TOL:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           f"cos theta_max(R0, S) = {c:.3e} = 0: X B0^T is rank deficient, LP not unique",
                           theorem)
    if not problem.well_specified:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE, "labels are not y = X w*", theorem)
    value = float(np.sqrt(problem.sigma_max_Sigma) * eps * problem.w_star_norm
                  * (1.0 + problem.kappa_X / c))
    return BoundResult(value, BoundStatus.OK, "", theorem)
