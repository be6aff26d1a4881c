"""The result of a simulation: times, heads, extractors, solver stats, result and status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trajectory", "FlowResult"]


class FlowResult(enum.Enum):
    """How a trajectory was obtained (machine-readable; ``Trajectory.status`` is its prose).

    Every member is a success: failures raise :class:`twolayer.errors.SolverError` (or are
    returned as that error by ``simulate_batch(..., throw=False)``). The prose of each
    member keeps the key words that callers have parsed ("success", "steady from",
    "stationary", "relaxed").
    """

    SUCCESS = "success"
    CLOSED_FORM = "success: closed form"
    STEADY_TAIL = "success: steady from t={t_steady:.6g} (closed-form tail)"
    STEADY_RELAXED = ("success: steady from t={t_steady:.6g} (closed-form tail); "
                      "steady_rtol relaxed to {steady_rtol:.0e} after the step limit")
    STEADY_STIFF = ("success: steady from t={t_steady:.6g} (closed-form tail); "
                    "integrated again with {solver} after a failed certificate or a step limit")
    STEADY_SLOW = ("success: steady from t={t_steady:.6g} (closed-form tail); integrated on with "
                   "{solver} past a slow mode (rate {slow_rate:.1e}) that an earlier stop left unconverged")
    STATIONARY_T0 = ("success: stationary at t=0 (steady start with no negative curvature: "
                     "continued by the closed-form tail from t=0, exact where f vanishes)")
    SADDLE_HELD = ("success: stationary at t=0 on an exact saddle (state held; the unstable "
                   "component {unstable:.1e} is at rounding level, so the exact flow stays)")

    @property
    def is_steady(self) -> bool:
        return self in (FlowResult.STEADY_TAIL, FlowResult.STEADY_RELAXED, FlowResult.STEADY_STIFF,
                        FlowResult.STEADY_SLOW)

    @property
    def is_held(self) -> bool:
        return self in (FlowResult.STATIONARY_T0, FlowResult.SADDLE_HELD)

    def message(self, **details) -> str:
        """The status prose, formatted with ``details`` (missing details give the bare text)."""
        try:
            return self.value.format(**details)
        except (KeyError, ValueError, TypeError):
            return self.value.split(" (")[0].replace(" from t={t_steady:.6g}", "")


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
