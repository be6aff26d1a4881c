"""Partial LP then FT: LP for a time T_LP (closed form, THEORY.md §3), then FT from
(v_lp(T_LP), B0). T_LP = 0 is FT and T_LP = inf is LP-FT (the LP limit, as in
:data:`twolayer.methods.METHODS` "lpft"). One :class:`~twolayer.methods.Method` per T_LP,
built by :func:`partial_lp_method`, run by the one solve (:func:`twolayer.simulate`, any
``FlowConfig`` field, ``feature_rate`` included).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import TwoLayerInputError
from .methods import Method

__all__ = ["partial_lp_method", "simulate_partial_lp", "check_lp_time"]


def check_lp_time(t_lp) -> float:
    """T_LP as a float in [0, inf] (a :class:`TwoLayerInputError` for NaN, < 0 or non-numbers)."""
    try:
        t = float(t_lp) if not isinstance(t_lp, (bool, str)) and t_lp is not None else math.nan
    except (TypeError, ValueError):
        t = math.nan
    if not t >= 0.0:
        raise TwoLayerInputError("t_lp", f"must be a time >= 0 (inf: the LP limit), got {t_lp!r}",
                                 "pass e.g. t_lp=0.1 (0: FT, inf: LP-FT)")
    return t


def partial_lp_method(t_lp) -> Method:
    """The method "LP for t_lp, then FT": its start is the LP head v_lp(t_lp) from v0
    (closed form; at t_lp = inf exactly the LP limit of "lpft"); it trains B."""
    t = check_lp_time(t_lp)

    def start(problem, v0: np.ndarray) -> np.ndarray:
        from .lp import _probe
        probe = _probe(problem)
        return probe.limit(v0) if math.isinf(t) else probe.head([t], v0)[0]

    return Method(f"plp[{t:g}]", start, trains_B=True)


def simulate_partial_lp(problem, t_lp, ts, v0=None, **options):
    """:func:`twolayer.simulate` of "LP for ``t_lp``, then FT" at FT-stage times ``ts``;
    ``options`` are :class:`~twolayer.FlowConfig` fields (e.g. ``feature_rate``)."""
    from .flow import simulate
    return simulate(problem, partial_lp_method(t_lp), ts, v0, **options)
