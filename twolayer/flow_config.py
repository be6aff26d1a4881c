"""The solver's settings, :class:`FlowConfig`, and their checks (see :mod:`twolayer.flow`).

One fallback rule (issue 19): a problem whose integration hits the step limit (after the
``retry_schedule``) or whose certificate fails is integrated again once with the other
solver, ``fallback_solver`` (the stiff Kvaerno5 by default; Dopri8 when the failed
integration was the stiff one already), at the strict steady rule; an integration that
already ran for the problem is never repeated, it raises instead. ``fallback_solver=None``
turns the rule off (every such failure raises).
"""

from __future__ import annotations

import difflib
import math
from typing import NamedTuple

from . import _solve, rates
from .errors import TwoLayerInputError

__all__ = ["FlowConfig", "SOLVERS", "BATCHINGS", "make_config"]

SOLVERS = _solve.SOLVERS
BATCHINGS = ("auto", "map", "vmap")


class _FlowSettings(NamedTuple):
    """Solver settings (all explicit; see the module docstring).

    rtol, atol : step-size controller tolerances (atol relative to the displacement scale
        Delta unless ``atol_relative=False``).
    solver : "dopri8", "tsit5" or "kvaerno5" (implicit, stiff).
    max_steps : step limit per integration (reaching it after every retry raises
        :class:`SolverStepLimitError`).
    steady_rtol : the steady-state rule (module docstring).
    t_inf_max : how far the flow is integrated at most when ``ts`` contains inf.
    tail_eig_rtol : null-space clamp of the closed-form tail (relative to lambda_max).
    retry_schedule : factors applied to steady_rtol, in turn, after a step limit.
    atol_relative : scale atol by the displacement scale Delta (module docstring).
    saddle_rtol : negative curvature beyond saddle_rtol * lambda_max marks a saddle.
    certify : check the a-posteriori certificate (:mod:`twolayer.certificate`).
    fallback_solver : the other solver of the one fallback rule (module docstring; None:
        every step limit or failed certificate raises).
    batching : "auto" (vmap on a GPU, map on the CPU), "map" or "vmap" (simulate_batch).
    workers : threads for simulate_batch (default None: ``$TWOLAYER_THREADS`` if set, else
        two per CPU core this process may use, ``twolayer._solve.THREADS_PER_CORE``; a Dask
        worker of ``--executor dask`` gets its share; 1: no threads). Each problem runs its
        whole policy on one thread. While they run, BLAS (numpy's eigh in the retry policy)
        is held to one thread per caller (``threadpoolctl``): with OpenBLAS's own threads on
        top, 2 threads were no faster than 1 on 2 cores and 16 threads 12x slower than 1 on
        a 16-core host. Measured: see ``experiments.benchmark_flow`` and the README.
    chunk : problems per vmapped chunk (fixed: batches are padded to it). None: 64 on the
        CPU, a measured width on a GPU (``twolayer._solve.DEFAULT_CHUNK``).
    feature_rate : gamma = eta_B / eta_v in [0, inf), the features' learning rate relative to
        the head's (:mod:`twolayer.rates`; time stays the head's). 1: FT; 0: LP exactly (B
        frozen, the closed form). Solved by the same FT solve in scaled coordinates; ``t_inf_max``
        stays in head time.
    """

    rtol: float = 1e-10
    atol: float = 1e-12
    solver: str = "dopri8"
    max_steps: int = 100_000
    steady_rtol: float = 1e-9
    t_inf_max: float = 1e6
    tail_eig_rtol: float = 1e-8
    retry_schedule: tuple = (1.0, 10.0, 100.0)
    atol_relative: bool = True
    saddle_rtol: float = 1e-6
    certify: bool = True
    fallback_solver: str | None = "kvaerno5"
    batching: str = "auto"
    workers: int | None = None
    chunk: int | None = None
    feature_rate: float = 1.0


class FlowConfig(_FlowSettings):
    __doc__ = _FlowSettings.__doc__ + """
    Checked when built: a bad value raises :class:`~twolayer.errors.TwoLayerInputError`
    at ``FlowConfig(...)`` (and again at every ``_replace``'d config's first use).
    """
    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        unknown = [k for k in kwargs if k not in _FlowSettings._fields]
        if unknown:
            near = {k: difflib.get_close_matches(k, _FlowSettings._fields, n=1) for k in unknown}
            hint = "; ".join(f"{k!r} -> did you mean {v[0]!r}?" for k, v in near.items() if v)
            raise TwoLayerInputError(", ".join(unknown), "is not a FlowConfig field" + (f" ({hint})" if hint else ""),
                                     f"use one of {', '.join(_FlowSettings._fields)}")
        if len(args) > len(_FlowSettings._fields):
            raise TwoLayerInputError("FlowConfig", f"takes at most {len(_FlowSettings._fields)} positional "
                                     f"values, got {len(args)}", "pass fields by name, e.g. FlowConfig(rtol=1e-8)")
        return _check_config(super().__new__(cls, *args, **kwargs))


def _positive(name, val, allow_inf=False):
    try:
        ok = float(val) > 0 and (math.isfinite(float(val)) or allow_inf)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TwoLayerInputError(name, f"must be a positive finite float, got {val!r}",
                                 f"pass e.g. {name}={_FlowSettings._field_defaults[name]!r}")


def _check_config(config: FlowConfig) -> FlowConfig:
    if not isinstance(config, FlowConfig):
        raise TwoLayerInputError("config", f"expected a FlowConfig, got {type(config).__name__}",
                                 "pass twolayer.FlowConfig(...)")
    if config.solver not in SOLVERS:
        raise TwoLayerInputError("solver", f"unknown solver {config.solver!r}", f"use one of {SOLVERS}")
    if config.fallback_solver is not None and config.fallback_solver not in SOLVERS:
        raise TwoLayerInputError("fallback_solver", f"unknown solver {config.fallback_solver!r}",
                                 f"use one of {SOLVERS} or None")
    for name in ("rtol", "atol", "steady_rtol", "tail_eig_rtol", "saddle_rtol", "t_inf_max"):
        _positive(name, getattr(config, name))
    try:
        steps_ok = int(config.max_steps) == config.max_steps and int(config.max_steps) >= 1
    except (TypeError, ValueError):
        steps_ok = False
    if not steps_ok:
        raise TwoLayerInputError("max_steps", f"must be an integer >= 1, got {config.max_steps!r}",
                                 f"pass e.g. max_steps={_FlowSettings._field_defaults['max_steps']}")
    sched = tuple(config.retry_schedule)
    if not sched or any(not (isinstance(x, (int, float)) and x > 0 and math.isfinite(x)) for x in sched):
        raise TwoLayerInputError("retry_schedule", f"must be a non-empty tuple of positive factors, got {sched!r}",
                                 "e.g. (1.0, 10.0, 100.0)")
    if config.batching not in BATCHINGS:
        raise TwoLayerInputError("batching", f"unknown batching {config.batching!r}", f"use one of {BATCHINGS}")
    if not _none_or_count(config.workers):
        raise TwoLayerInputError("workers", f"must be None or an integer >= 1, got {config.workers!r}",
                                 "pass None (two threads per core), 1 (no threads) or N >= 1")
    if not _none_or_count(config.chunk):
        raise TwoLayerInputError("chunk", f"must be None or an integer >= 1, got {config.chunk!r}",
                                 "pass None (the backend's default width) or N >= 1")
    rates.check_feature_rate(config.feature_rate)
    return config


def _none_or_count(val) -> bool:
    """None, or an integer value >= 1 (a float like 4.0 counts; a string or bool does not)."""
    if val is None:
        return True
    if isinstance(val, (bool, str)):
        return False
    try:
        return int(val) == val and int(val) >= 1
    except (TypeError, ValueError, OverflowError):
        return False


def make_config(config, rtol, atol, options) -> FlowConfig:
    """The config of one call: ``config`` (default ``FlowConfig()``) with ``rtol``, ``atol``
    and the named ``options`` applied, checked."""
    config = FlowConfig() if config is None else config
    if not isinstance(config, FlowConfig):
        raise TwoLayerInputError("config", f"expected a FlowConfig, got {type(config).__name__}",
                                 "pass twolayer.FlowConfig(...)")
    unknown = sorted(set(options) - set(FlowConfig._fields))
    if unknown:
        near = difflib.get_close_matches(unknown[0], FlowConfig._fields, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise TwoLayerInputError(unknown[0], f"is not an option of simulate / simulate_batch (a FlowConfig field{hint})",
                                 f"use one of {', '.join(FlowConfig._fields)}")
    if rtol is not None:
        options["rtol"] = rtol
    if atol is not None:
        options["atol"] = atol
    return _check_config(config._replace(**options))
