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

The repair (issue 21, docs/theorem33.md §6) adds three forms, all on the published form's
terms (alpha = cos theta_max(R0, S_perp), phi, W = ||w*||, eps, sigma_min(Sigma)):

* ``"repaired"``: c(k) x the published bound with c(k) = sqrt(k) / 2 (:func:`repaired_constant`).
  MEASURED to hold on every searched instance of :data:`REPAIR_REGIME`; sqrt(k) / 2 is the
  infimum of the slack in the zero-head, eps = 0 family (DERIVED), so no larger constant holds.
* ``"conjectured"``: sqrt(sigma_min) (C(k, W) core - eps), C(k, W) = sqrt(k) (1 + W)^2 h(W) /
  min(W^2, W^3), h(W) = W - v1(W), v1(W)^2 = (sqrt(1 + 4 W^2) - 1) / 2 (:func:`conjectured_constant`).
  At v0 = 0, eps = 0 it is sqrt(sigma_min) alpha h(W): the exact FT limit at R* -> S. CONJECTURED,
  for v0 = 0 only (not applicable with a head: the search found it violated at second order in ||v0||).
* ``"first_order"``: sqrt(k) (1 + W)^2 / 2 in place of C(k, W) (the issue's first-order reading;
  C(k, W) = sqrt(k) (1 + W)^2 / 2 (1 - 7 W^2 / 4 + O(W^4))). FALSE: kept so that the search
  reports its violations.

The kernel :func:`thm33_value` is written once for NumPy and ``jax.numpy`` (``xp``);
:mod:`twolayer.slack` differentiates the same code.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["BoundResult", "BoundStatus", "head_alignment_phi", "thm33_lower_bound", "lp_upper_bound",
           "FORMS", "REPAIR_FORMS", "ALL_FORMS", "REPAIR_REGIME", "thm33_value", "repaired_constant",
           "conjectured_constant"]

#: The two forms of Theorem 3.3 as transcribed in THEORY.md §4 (both fail; docs/theorem33.md).
FORMS = ("published", "derived")
#: The repair of issue 21 (docs/theorem33.md §6): measured ("repaired"), conjectured, and the
#: first-order reading that the search refutes.
REPAIR_FORMS = ("repaired", "conjectured", "first_order")
ALL_FORMS = FORMS + REPAIR_FORMS
#: Where the repaired and conjectured forms were searched (experiments/thm33_repair.py, full mode;
#: docs/theorem33.md §6). Outside it they are unmeasured.
#: What the quick search covers (docs/theorem33.md §6.3): k up to REPAIR_K_MAX, ||w*|| in REPAIR_W.
REPAIR_K_MAX = 4
REPAIR_W = (1e-3, 10.0)
REPAIR_REGIME = ("measured (quick search, seed 0) on: k = 1..4, "
                 "proposals with eps = d(B0, B*) = 0 or in [1e-6, 0.3], ||w*|| in [1e-3, 10] (the ranges a run "
                 "reached are in its report row), "
                 "zero or Gaussian heads (scale 1e-4..10), Sigma = I or shifted, R* Haar-random or with "
                 "every row nearly inside S (cos theta up to 1 - 1e-10), X isotropic or Gaussian on S")
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
    says which). ``theorem`` and ``form`` (one of :data:`ALL_FORMS` for Theorem 3.3) name
    the statement evaluated. ``regime``: for the repair's forms, where they were measured
    (:data:`REPAIR_REGIME`); "" otherwise.
    """

    value: float
    status: BoundStatus
    reason: str
    theorem: str
    form: str = ""
    regime: str = ""

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


def repaired_constant(k, xp=np):
    """c(k) = sqrt(k) / 2 of the "repaired" form (docs/theorem33.md §6).

    DERIVED: in the zero-head, eps = 0, Sigma = I family with every row of B* at the same angle
    to S, the slack of the published form tends to sqrt(k) / 2 as ||w*|| -> 0 and the angle -> 0,
    so no larger c(k) holds. MEASURED: c(k) x published held on every searched instance."""
    return xp.sqrt(k) / 2.0


def _h(W, xp=np):
    """h(W) = W - v1(W), v1(W)^2 = (sqrt(1 + 4 W^2) - 1) / 2: the gap of the exact k = 1 FT limit
    at cos theta(R*, S) = 1 (twolayer.closed_form.k1_eps0_limit at c = 1), without cancellation."""
    sq = xp.sqrt(1.0 + 4.0 * W ** 2)
    v1 = xp.sqrt(2.0 * W ** 2 / (1.0 + sq))
    return 4.0 * W ** 4 / (1.0 + sq) ** 2 / (W + v1)


def conjectured_constant(k, W, xp=np):
    """C(k, W) = sqrt(k) (1 + W)^2 h(W) / min(W^2, W^3) (docs/theorem33.md §6).

    C(k, W) x published core is sqrt(sigma_min) alpha h(W) at v0 = 0: the exact FT limit of the
    equal-angle family as the angle to S -> 0 (DERIVED). As W -> 0, C(k, W) = sqrt(k) (1 + W)^2 / 2
    (1 - 7 W^2 / 4 + O(W^4))."""
    return xp.sqrt(k) * (1.0 + W) ** 2 * _h(W, xp) / xp.minimum(W ** 2, W ** 3)


def thm33_value(xp, form: str, alpha, k, phi, W, eps, sigma_min):
    """The value of Theorem 3.3 in ``form`` from its ingredients, for ``xp`` = numpy or jax.numpy.

    core = alpha / sqrt(k) * min(phi, phi^2 / W) / (1 + W)^2 (THEORY.md §4), then
    published: sqrt(sigma_min) (core - eps); derived: sqrt(sigma_min) (core - eps W);
    repaired: c(k) x published; conjectured: sqrt(sigma_min) (C(k, W) core - eps);
    first_order: sqrt(sigma_min) (sqrt(k) (1 + W)^2 / 2 core - eps)."""
    core = alpha / xp.sqrt(k) * xp.minimum(phi, phi ** 2 / W) / (1.0 + W) ** 2
    root = xp.sqrt(sigma_min)
    if form == "published":
        return root * (core - eps)
    if form == "derived":
        return root * (core - eps * W)
    if form == "repaired":
        return repaired_constant(k, xp) * root * (core - eps)
    if form == "conjectured":
        return root * (conjectured_constant(k, W, xp) * core - eps)
    if form == "first_order":
        return root * (xp.sqrt(k) * (1.0 + W) ** 2 / 2.0 * core - eps)
    raise TwoLayerInputError("form", f"unknown form {form!r}", f"use one of {ALL_FORMS}")


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
    THEORY.md), or one of the repair's forms (:data:`REPAIR_FORMS`, :func:`thm33_value`,
    docs/theorem33.md §6; their ``regime`` says where they were measured). ``eps`` defaults to
    d(B0, B*); any eps >= d(B0, B*) is allowed.
    ``v0`` defaults to ``problem.v0``. Not applicable when cos theta_max(R0, S_perp) = 0,
    w* = 0, k >= m, or the labels are not y = X w* (the setting of THEORY.md §1 that the theorem
    assumes: noisy or misspecified labels change the FT limit).
    """
    problem = _check_problem(problem)
    if form not in ALL_FORMS:
        raise TwoLayerInputError("form", f"unknown form {form!r}", f"use one of {ALL_FORMS}")
    theorem = "Theorem 3.3 (" + form + ")"
    regime = REPAIR_REGIME if form in REPAIR_FORMS else ""
    v0 = _check_head(problem, problem.v0 if v0 is None else v0)
    eps = _check_eps(problem, eps)
    if not problem.well_specified:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           "labels are not y = X w* (the theorem assumes well-specified labels)", theorem, form,
                           regime)
    alpha = problem.cos_theta_max["R0,S_perp"]
    if alpha <= ANGLE_TOL:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           f"cos theta_max(R0, S_perp) = {alpha:.3e} = 0: R0 meets S nontrivially",
                           theorem, form, regime)
    wn = problem.w_star_norm
    if wn == 0:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE, "w* = 0", theorem, form, regime)
    if not problem.k < problem.m:
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           f"k = {problem.k} >= m = {problem.m}: the theorem assumes k < m < d - k (THEORY.md §4)",
                           theorem, form, regime)
    if form == "conjectured" and np.any(v0 != 0):
        return BoundResult(float("nan"), BoundStatus.NOT_APPLICABLE,
                           "the conjectured form is stated for v0 = 0 only: with a head the search found it violated "
                           "at second order in ||v0|| (docs/theorem33.md §6)", theorem, form, regime)
    phi = head_alignment_phi(problem, v0)
    value = float(thm33_value(np, form, alpha, problem.k, phi, wn, eps, problem.sigma_min_Sigma))
    if value <= 0:
        return BoundResult(value, BoundStatus.VACUOUS, f"value {value:.3e} <= 0 (the eps term exceeds the "
                           f"alignment term)", theorem, form, regime)
    return BoundResult(value, BoundStatus.OK, _outside_regime(problem, form, wn), theorem, form, regime)


def _outside_regime(problem: Problem, form: str, wn: float) -> str:
    """For the repair's forms: where this instance lies outside what the search measured
    (the bound is then an extrapolation, said in ``reason``)."""
    if form not in REPAIR_FORMS:
        return ""
    out = [f"k = {problem.k} > {REPAIR_K_MAX}"] if problem.k > REPAIR_K_MAX else []
    out += [f"||w*|| = {wn:.3g} outside [{REPAIR_W[0]:g}, {REPAIR_W[1]:g}]"] if not REPAIR_W[0] <= wn <= REPAIR_W[1] else []
    return ("outside the measured regime (" + "; ".join(out) + "): an extrapolation") if out else ""


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
