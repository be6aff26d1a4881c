"""The training methods as data (THEORY.md §1, §3): one table used by the flow, GD and the
scipy reference. "lpft" is literally "LP to its limit, then FT": a new method (e.g. LP
for a finite time, then FT) is one new entry.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .errors import TwoLayerInputError

__all__ = ["Method", "METHODS", "get_method"]


def _identity(problem, v0: np.ndarray) -> np.ndarray:
    return np.array(v0, dtype=np.float64)


def _lp_limit(problem, v0: np.ndarray) -> np.ndarray:
    from .lp import _probe
    return _probe(problem).limit(v0)


class Method(NamedTuple):
    """``start(problem, v0)`` gives the head at the start of the trained stage;
    ``trains_B`` says whether B moves (FT) or stays at B0 (LP)."""

    name: str
    start: Callable[[object, np.ndarray], np.ndarray]
    trains_B: bool


METHODS: dict[str, Method] = {
    "lp": Method("lp", _identity, trains_B=False),
    "ft": Method("ft", _identity, trains_B=True),
    "lpft": Method("lpft", _lp_limit, trains_B=True),
}


def get_method(method) -> Method:
    """The :class:`Method` named ``method`` (a :class:`TwoLayerInputError` otherwise)."""
    if isinstance(method, Method):
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise TwoLayerInputError("method", f"unknown method {method!r}", f"use one of {tuple(METHODS)}")
    return METHODS[method]
