"""Wall seconds of the host's policy by stage, summed over threads (issue 10: on a GPU the
host's per-problem work, not the device, limits problems per minute; these say which stage).

Stages (:mod:`twolayer.flow`), none inside another: ``reduce`` (a problem's reduced
coordinates: the SVD of X), ``prepare`` (the start: steady test, tolerances, the first job),
``stop`` (after each integration: the retry policy, the eigendecomposition at the stop,
curvature, closed-form tail), ``finish`` (outputs and certificate) and ``package`` (the
full B(t) and the Trajectory). The policy's stages run on a whole chunk at once
(:mod:`twolayer.policy`). The solver calls themselves are :func:`twolayer._solve.solve_seconds`.
"""

from __future__ import annotations

import threading
import time

__all__ = ["STAGES", "policy_seconds", "timed"]

STAGES = ("reduce", "prepare", "stop", "finish", "package")
_SECONDS = dict.fromkeys(STAGES, 0.0)
_LOCK = threading.Lock()


class timed:
    """``with timed(stage):`` adds the wall time of the block to ``stage`` (one of STAGES).
    A plain class, not a generator context manager: it runs once or twice per problem."""

    __slots__ = ("stage", "t0")

    def __init__(self, stage: str):
        self.stage = stage

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        dt = time.perf_counter() - self.t0
        with _LOCK:
            _SECONDS[self.stage] += dt
        return False


def policy_seconds() -> dict:
    """{stage: seconds} spent in the host's policy in this process, summed over threads
    (take the difference of two calls to time one batch)."""
    with _LOCK:
        return dict(_SECONDS)
