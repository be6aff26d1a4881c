"""Bounds of Theorem 3.3 and the derived LP upper bound (THEORY.md §4, §5).

Each function returns a :class:`BoundResult`: ``value`` (float), ``status`` in
{"ok", "vacuous", "not_applicable"} and the ``reason`` when not "ok". A lower
bound whose value is <= 0 is *vacuous*: it says nothing and must never be
counted as verified.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["BoundResult", "head_alignment_phi", "thm33_lower_bound", "lp_upper_bound", "FORMS"]

FORMS = ("published", "derived")
#: cos theta_max below this counts as zero (the assumption fails).
ANGLE_TOL = 1e-12


class BoundResult(NamedTuple):
    value: float
    status: str
    reason: str
    theorem: str
    form: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def head_alignment_phi(problem: Problem, v0) -> float:
    """phi = sqrt(|(v0^T v*)^2 - (v*^T v*)^2|), v* aligned to B0's frame (THEORY.md §4)."""
    v0 = np.asarray(v0, dtype=np.float64)
    if v0.shape != (problem.k,):
        raise TwoLayerInputError("v0", f"shape {v0.shape}, expected ({problem.k},)")
    vs = problem.v_star_aligned
    return float(np.sqrt(abs((v0 @ vs) ** 2 - (vs @ vs) ** 2)))


def thm33_lower_bound(problem: Problem, v0=None, form: str = "published",
                      eps: float | None = None) -> BoundResult:
    """Theorem 3.3 (Kumar et al. 2022; THEORY.md §4): for all t,

        sqrt(L_ood(v_ft(t), B_ft(t))) >= sqrt(sigma_min(Sigma)) *
            ( cos theta_max(R0, S_perp) / sqrt(k) * min(phi, phi^2 / ||w*||) / (1 + ||w*||)^2 - E )

    with E = eps ("published" form) or eps * ||w*|| ("derived" form, DERIVED in
    THEORY.md). ``eps`` defaults to d(B0, B*); any eps >= d(B0, B*) is allowed.
    ``v0`` defaults to ``problem.v0``.
    """
    if form not in FORMS:
        raise TwoLayerInputError("form", f"unknown form {form!r}", f"use one of {FORMS}")
    theorem = "Theorem 3.3 (" + form + ")"
    v0 = problem.v0 if v0 is None else v0
    if eps is None:
        eps = problem.eps
    elif not (np.isfinite(eps) and eps >= problem.eps - 1e-12):
        raise TwoLayerInputError("eps", f"must be >= d(B0, B*) = {problem.eps:.6g}, got {eps}")
    alpha = problem.cos_theta_max["R0,S_perp"]
    if alpha <= ANGLE_TOL:
        return BoundResult(float("nan"), "not_applicable",
                           f"cos theta_max(R0, S_perp) = {alpha:.3e} = 0: R0 meets S nontrivially",
                           theorem, form)
    wn = problem.w_star_norm
    if wn == 0:
        return BoundResult(float("nan"), "not_applicable", "w* = 0", theorem, form)
    phi = head_alignment_phi(problem, v0)
    core = alpha / np.sqrt(problem.k) * min(phi, phi ** 2 / wn) / (1.0 + wn) ** 2
    E = eps if form == "published" else eps * wn
    value = float(np.sqrt(problem.sigma_min_Sigma) * (core - E))
    if value <= 0:
        return BoundResult(value, "vacuous", f"value {value:.3e} <= 0 (eps term exceeds the "
                           f"alignment term {core:.3e})", theorem, form)
    return BoundResult(value, "ok", "", theorem, form)


def lp_upper_bound(problem: Problem, eps: float | None = None) -> BoundResult:
    """DERIVED LP upper bound (THEORY.md §5, supports Theorem 3.5):

        sqrt(L_ood(v_lp_inf, B0)) <= sqrt(sigma_max(Sigma)) * eps * ||w*||
                                      * (1 + kappa(X) / cos theta_max(R0, S)).

    Not applicable when cos theta_max(R0, S) = 0 (LP is not unique) or the labels
    are not well specified.
    """
    theorem = "LP upper bound (DERIVED, THEORY.md §5)"
    if eps is None:
        eps = problem.eps
    c = problem.cos_theta_max["R0,S"]
    if c <= ANGLE_TOL:
        return BoundResult(float("nan"), "not_applicable",
                           f"cos theta_max(R0, S) = {c:.3e} = 0: X B0^T is rank deficient, LP not unique",
                           theorem)
    if not problem.well_specified:
        return BoundResult(float("nan"), "not_applicable", "labels are not y = X w*", theorem)
    value = float(np.sqrt(problem.sigma_max_Sigma) * eps * problem.w_star_norm
                  * (1.0 + problem.kappa_X / c))
    return BoundResult(value, "ok", "", theorem)
