"""The result of a simulation: times, heads, extractors, solver stats and status."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trajectory"]


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
    status : readable status, e.g. "success" or "success: steady from t=12.3 (closed-form tail)".
    stats : solver statistics (steps, accepted, rejected, rhs evaluations, tolerances,
        solver name, steady-state time, wall time).
    """

    ts: np.ndarray
    v: np.ndarray
    B: np.ndarray
    method: str
    v0: np.ndarray
    status: str = "success"
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("ts", "v", "B", "v0"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def w(self) -> np.ndarray:
        """Effective predictor w(t) = B(t)^T v(t), shape (T, d)."""
        return np.einsum("tkd,tk->td", self.B, self.v)

    def __len__(self) -> int:
        return self.ts.shape[0]

    def __repr__(self) -> str:
        T, k, d = self.B.shape
        return f"Trajectory(method={self.method!r}, T={T}, k={k}, d={d}, status={self.status!r})"
