"""An error bar on every number a trajectory gives (issue 19 §3).

A :class:`Trajectory` carries :class:`Accuracy`: an a-posteriori estimate of the relative
error of its state (v, G) at the output times, with the sources it was taken from

* ``rtol``: the step-size controller's tolerance (the local error per step; the global
  error of an explicit Runge-Kutta solve is taken as at most ``GLOBAL_FACTOR`` times it);
* ``i2_drift``: the certificate's measured drift of the conserved I2 (an error the flow
  cannot make, so a lower estimate of the global error that was made);
* ``limit_gap``: how far the t = inf state is from the minimum manifold
  (:func:`twolayer.tail.minimum_gap`; the unconverged part of slow modes);
* ``tail_second_order``: the linearised tail's own error estimate;
* ``rounding``: the float64 floor, ``ROUNDING`` times machine epsilon.

The losses then carry an absolute error bar propagated from it
(:func:`ood_loss_measured`, :func:`id_loss_measured`): with r the state's relative
accuracy, ||dv|| <= r ||v||, ||dB|| <= r ||G|| (only B's part on S moves, THEORY.md I1),
so ||d(B^T v)|| <= r ||v|| (2 ||G|| + ||B|| ...) plus the rounding of B^T v and of
w* - B^T v; and for L = e^T Sigma e, |dL| <= 2 sqrt(L lambda_max) de + lambda_max de^2.

A comparison whose error bar straddles its threshold is :attr:`Decision.UNDECIDED`
(:func:`decide`), never counted as holding or violated. The estimate is checked against
closed forms down to ||w*|| = 1e-5 (tests/test_accuracy.py), where L_ood(inf) sits
near the float floor and the plain ``B^T v - w*`` cancels.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = ["Accuracy", "Measured", "Decision", "decide", "flow_accuracy", "closed_form_accuracy",
           "ood_loss_measured", "id_loss_measured", "GLOBAL_FACTOR", "ROUNDING"]

EPS = float(np.finfo(np.float64).eps)
#: The global error of the adaptive solve, as a multiple of the controller's rtol.
GLOBAL_FACTOR = 10.0
#: The float64 floor of a state computed by O(k m) operations, in units of eps.
ROUNDING = 1e3


@dataclass(frozen=True)
class Accuracy:
    """The state's estimated relative accuracy (module docstring) and where it comes from."""

    state_rtol: float
    sources: dict = field(default_factory=dict)

    @property
    def dominant(self) -> str:
        """The source that sets ``state_rtol``."""
        return max(self.sources, key=lambda k: self.sources[k]) if self.sources else "rounding"

    def as_record(self) -> dict:
        """Flat floats for a tidy record: ``acc_state_rtol``, ``acc_<source>``, ``acc_dominant``."""
        rec = {"acc_state_rtol": float(self.state_rtol), "acc_dominant": self.dominant}
        rec.update({f"acc_{k}": float(v) for k, v in self.sources.items()})
        return rec


def _accuracy(sources: dict) -> Accuracy:
    kept = {k: float(v) for k, v in sources.items() if v is not None and math.isfinite(v)}
    kept.setdefault("rounding", ROUNDING * EPS)
    return Accuracy(max(kept.values()), kept)


def flow_accuracy(rtol: float, certificate: dict | None, has_tail: bool) -> Accuracy:
    """The accuracy of an integrated FT / LP-FT trajectory from its solve and certificate."""
    cert = certificate or {}
    return _accuracy(dict(rtol=GLOBAL_FACTOR * rtol, i2_drift=cert.get("i2_drift"),
                          limit_gap=cert.get("limit_gap") if has_tail else None,
                          tail_second_order=cert.get("tail_second_order") if has_tail else None,
                          rounding=ROUNDING * EPS))


def closed_form_accuracy(condition: float = 1.0) -> Accuracy:
    """A closed form (LP's head, a held state): rounding, times the condition number of the
    linear algebra it went through."""
    return _accuracy(dict(rounding=ROUNDING * EPS * max(float(condition), 1.0)))


class Measured(NamedTuple):
    """A number with its absolute error bar: the truth lies in [value - error, value + error]
    (to the accuracy of the estimate, module docstring). Arrays over output times.

    The bar is propagated from the state's estimated relative accuracy (``traj.accuracy``),
    so it is conservative: measured against closed forms it was 10 to 1e4 times the true
    error. When a decision comes out UNDECIDED, tighten the solve (e.g. ``rtol=1e-11``:
    at ||w*|| = 1e-4 that turns L_ood(inf) = 3.087e-26 +- 1.1e-25 into 3.0864e-26 +- 7e-27)."""

    value: np.ndarray
    error: np.ndarray

    @property
    def lower(self) -> np.ndarray:
        return self.value - self.error

    @property
    def upper(self) -> np.ndarray:
        return self.value + self.error

    def sqrt(self) -> "Measured":
        """sqrt of a nonnegative quantity, with the interval [sqrt(lower+), sqrt(upper)]."""
        root = np.sqrt(np.maximum(self.value, 0.0))
        lo = np.sqrt(np.maximum(self.lower, 0.0))
        hi = np.sqrt(np.maximum(self.upper, 0.0))
        return Measured(root, np.maximum(hi - root, root - lo))


def _output_error(problem, traj) -> tuple[np.ndarray, np.ndarray]:
    """(e = w* - B^T v per time (T, d), its error bar de (T,))."""
    acc = traj.accuracy if traj.accuracy is not None else closed_form_accuracy()
    r = acc.state_rtol
    v, B = traj.v, traj.B
    w = np.einsum("tkd,tk->td", B, v)
    e = problem.w_star[None, :] - w
    nv = np.linalg.norm(v, axis=1)
    nB = np.linalg.norm(B, axis=(1, 2))
    nG = np.linalg.norm(np.einsum("tkd,dm->tkm", B, problem.S_basis), axis=(1, 2))
    k = problem.k
    de = r * nv * (nB + nG * (1.0 + r)) \
        + (k + 2) * EPS * (nB * nv + np.linalg.norm(problem.w_star) + np.linalg.norm(w, axis=1))
    return e, de


def _quadratic(e: np.ndarray, de: np.ndarray, M: np.ndarray, lam_max: float) -> Measured:
    """L = e^T M e (M symmetric PSD, largest eigenvalue lam_max) and its error bar."""
    L = np.einsum("ti,ti->t", e @ M, e)
    L = np.maximum(L, 0.0)
    err = 2.0 * np.sqrt(L * lam_max) * de + lam_max * de ** 2 + e.shape[1] * EPS * lam_max * np.sum(e ** 2, axis=1)
    return Measured(L, err)


def ood_loss_measured(problem, traj) -> Measured:
    """L_ood(t) = (w* - B^T v)^T Sigma (w* - B^T v) (THEORY.md §1) with its absolute error bar
    (:class:`Measured`: ``value``, ``error``, ``lower``, ``upper``, ``sqrt()``)."""
    e, de = _output_error(problem, traj)
    return _quadratic(e, de, problem.Sigma, problem.sigma_max_Sigma)


def id_loss_measured(problem, traj) -> Measured:
    """L_id(t) = ||P_S (w* - B^T v)||^2 (THEORY.md §1) with its error bar."""
    e, de = _output_error(problem, traj)
    eS = e @ problem.S_basis
    return _quadratic(eS, de, np.eye(eS.shape[1]), 1.0)


class Decision(enum.Enum):
    """A comparison with an error bar: decided either way, or within the error bar."""

    HOLDS = "holds"
    VIOLATED = "violated"
    UNDECIDED = "undecided"

    def __str__(self) -> str:
        return self.value


def decide(value, error, threshold: float, *, holds_above: bool = True) -> Decision:
    """``value >= threshold`` (``holds_above``; else ``value <= threshold``) when the whole
    error bar [value - error, value + error] is on one side; UNDECIDED when it straddles."""
    value, error = float(value), float(error)
    if not (np.isfinite(value) and np.isfinite(error) and error >= 0):
        return Decision.UNDECIDED
    lo, hi = value - error, value + error
    if holds_above:
        return Decision.HOLDS if lo >= threshold else Decision.VIOLATED if hi < threshold else Decision.UNDECIDED
    return Decision.HOLDS if hi <= threshold else Decision.VIOLATED if lo > threshold else Decision.UNDECIDED
