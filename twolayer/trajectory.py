"""The result of a simulation: times, heads, extractors, solver stats, result and status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .accuracy import Accuracy

__all__ = ["Trajectory", "FlowResult"]


class FlowResult(enum.Enum):
    """How a trajectory was obtained: machine-readable, like diffrax's ``RESULTS``.

    Every member is a success: failures raise :class:`twolayer.errors.SolverError` (or are
    returned as that error by ``simulate_batch(..., throw=False)``). Branch on the member
    (``tr.result is FlowResult.STEADY_SLOW``) or its ``name`` in records, never on the
    prose: ``Trajectory.status`` is :meth:`message` filled in with the run's stats.
    """

    SUCCESS = "success"
    CLOSED_FORM = "closed_form"
    STEADY_TAIL = "steady_tail"
    STEADY_RELAXED = "steady_relaxed"
    STEADY_STIFF = "steady_stiff"
    STEADY_SLOW = "steady_slow"
    STATIONARY_T0 = "stationary_t0"
    SADDLE_HELD = "saddle_held"

    @property
    def is_steady(self) -> bool:
        return self in (FlowResult.STEADY_TAIL, FlowResult.STEADY_RELAXED, FlowResult.STEADY_STIFF,
                        FlowResult.STEADY_SLOW)

    @property
    def is_held(self) -> bool:
        return self in (FlowResult.STATIONARY_T0, FlowResult.SADDLE_HELD)

    def __str__(self) -> str:
        return self.name

    def message(self, **details) -> str:
        """The status prose, formatted with ``details`` (a run's ``stats``). A detail that is
        missing is shown as ``?``: the text is always filled in, never a raw template."""
        return _MESSAGES[self].format_map(_Filled({k: v for k, v in details.items() if v is not None}))


class _Filled(dict):
    """Format details: numbers as given, a missing or None detail as ``?``."""

    def __missing__(self, key):
        return _Unknown()


class _Unknown:
    def __format__(self, spec) -> str:
        return "?"


_STEADY = "success: steady from t={t_steady:.6g} (closed-form tail)"
_MESSAGES = {
    FlowResult.SUCCESS: "success",
    FlowResult.CLOSED_FORM: "success: closed form",
    FlowResult.STEADY_TAIL: _STEADY,
    FlowResult.STEADY_RELAXED: _STEADY + "; steady_rtol relaxed to {steady_rtol:.0e} after the step limit",
    FlowResult.STEADY_STIFF: _STEADY + "; integrated again with {solver} after a failed certificate or a step limit",
    FlowResult.STEADY_SLOW: _STEADY + ("; integrated on with {solver} past a slow mode (rate {slow_rate:.1e}) "
                                       "that an earlier stop left unconverged"),
    FlowResult.STATIONARY_T0: ("success: stationary at t=0 (steady start with no negative curvature: "
                               "continued by the closed-form tail from t=0, exact where f vanishes)"),
    FlowResult.SADDLE_HELD: ("success: stationary at t=0 on an exact saddle (state held; the unstable "
                             "component {unstable:.1e} is at rounding level, so the exact flow stays)"),
}


@dataclass(frozen=True)
class Trajectory:
    """A simulated trajectory (float64 throughout).

    Attributes
    ----------
    ts : (T,) times (may contain inf: the limit).
    v : (T, k) head v(t).
    B : (T, k, d) extractor B(t).
    method : "lp", "ft", "lpft" or "gd-<method>".
    v0 : (k,) the head at the start of the simulated stage (for LP-FT, v_lp_inf).
    status : readable status derived from ``result``, e.g. "success" or
        "success: steady from t=12.3 (closed-form tail)".
    stats : solver statistics (steps, accepted and rejected steps, tolerances, the
        effective atol, solver name, steady-state time, tail sizes, wall time).
    result : the :class:`FlowResult` (machine-readable form of ``status``).
    certificate : the a-posteriori certificate of a flow solution (see
        :mod:`twolayer.certificate`), or None (closed forms, GD, the reference).
    accuracy : the state's estimated relative accuracy and its sources
        (:class:`twolayer.accuracy.Accuracy`); the losses' error bars follow from it
        (:func:`twolayer.accuracy.ood_loss_measured`). None: unknown.
    """

    ts: np.ndarray
    v: np.ndarray
    B: np.ndarray
    method: str
    v0: np.ndarray
    status: str | None = None
    stats: dict = field(default_factory=dict)
    result: FlowResult = FlowResult.SUCCESS
    certificate: dict | None = None
    accuracy: "Accuracy | None" = None

    def __post_init__(self):
        for name in ("ts", "v", "B", "v0"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.status is None:
            object.__setattr__(self, "status", self.result.message(**self.stats))

    @property
    def w(self) -> np.ndarray:
        """Effective predictor w(t) = B(t)^T v(t), shape (T, d)."""
        return np.einsum("tkd,tk->td", self.B, self.v)

    def __len__(self) -> int:
        return self.ts.shape[0]

    def __repr__(self) -> str:
        T, k, d = self.B.shape
        return f"Trajectory(method={self.method!r}, T={T}, k={k}, d={d}, status={self.status!r})"
