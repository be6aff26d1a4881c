"""Exact gradient flow of two-layer linear networks (THEORY.md §1, §3).

The FT flow dv/dt = -2 B X^T r, dB/dt = -2 v r^T X (r = X B^T v - y) moves B only
inside S (invariant I1), and the loss sees X only through X^T X and X^T y. With
X = U diag(s) V^T and Q_S = V[:, :m] we write B = B0 P_Sperp + G Q_S^T, G in R^{k x m},
and the flow becomes (in the basis where X^T X restricted to S is diagonal)

    r_S = s^2 * (G^T v) - s * (U_m^T y),   dv/dt = -2 G r_S,   dG/dt = -2 v r_S^T,

whose cost is O(k m) per evaluation, independent of n and d (:mod:`twolayer._field`,
written once for NumPy and JAX). It is integrated in float64 with diffrax (adaptive,
explicit tolerances, :mod:`twolayer._solve`). The full B(t) is rebuilt exactly; I1 then
holds to rounding.

Tolerances are scaled to the problem: the integrated state is the displacement from the
start, and ``atol`` is relative to its expected size Delta = ||f(y0)|| / L (L a bound on
the Hessian's largest eigenvalue), so that an FT stage that moves the state by O(eps)
(LP-FT at small eps) is still resolved to ``rtol`` pointwise (``atol_relative=False``
restores an absolute atol).

Steady state (used for ``t = inf`` and to skip the stiff tail, THEORY.md §8): the
integration stops at the first accepted step where

    ||f(y)||_2 <= steady_rtol * scale(y),  scale = 2 ||G||_F (||s^2 * G^T v|| + ||c||) + 2 ||v|| ||r_S||

(default steady_rtol = 1e-9; if the step limit is hit first, the problem is retried with
the looser rules of ``FlowConfig.retry_schedule``, and the result says so), and the flow
is continued from there in closed form by the linearised flow (:mod:`twolayer.tail`).

A stop (or a state already steady at t = 0) counts as steady only at a minimum: the
reduced Hessian there must have no negative curvature beyond ``saddle_rtol * lambda_max``.
Every stationary point with a nonzero residual is a strict saddle (v = 0), where the rule
alone cannot tell it from a minimum. Near one, the steady stop is disallowed until the
escape time log(size / delta) / |lambda_min| has passed twice, and the flow integrates
on; only an exact saddle (its unstable component at rounding level) is held, with result
``SADDLE_HELD``.

A stop is steady only if the tail's t = inf state is a minimum, too: every minimum
interpolates (p = G^T v = c / s2), and a mode slower than the tail's clamp (an
ill-conditioned X: rates down to 1e-10 of the fastest) leaves the tail's limit off that
manifold. When its gap (:func:`twolayer.tail.minimum_gap`) exceeds the tolerance, or the
flow is not steady by t1 while such a mode is left, the flow is integrated on with the stiff
``fallback_solver`` with no stop before t + 2 log(10 gap / tol) / lambda_slow
(``FlowResult.STEADY_SLOW``; the final time is extended up to 1e16, beyond that it raises).
A step limit after every retry hands the problem to the other solver once (the stiff
``fallback_solver``, or Dopri8 if that was the one) before raising.

Every FT / LP-FT result carries an a-posteriori certificate (:mod:`twolayer.certificate`;
``Trajectory.certificate``). A failing one triggers a further integration with the stiff
``fallback_solver`` at the strict steady rule, and raises
:class:`~twolayer.errors.SolverCertificateError` if that fails too: it is never returned
as a success.

Compilation and cores (issue 10): tolerances and rules are traced values, save times are
padded to power-of-two buckets and batches run as single solves on a thread pool (CPU,
``batching="map"``) or as fixed-size vmapped chunks (GPU, ``"vmap"``), so a new batch
size, tolerance or number of times does not compile again; :func:`compile_count` says how
often the solver was compiled. The persistent compilation cache (:mod:`twolayer._jaxcache`,
env ``TWOLAYER_JAX_CACHE``) makes a new process start warm. :func:`policy_seconds` says
where the host's share of a batch goes, by stage (:mod:`twolayer._timing`).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field as dc_field
from typing import NamedTuple, Sequence

import numpy as np

from . import _solve, rates
from ._field import steady_measure
from ._jaxcache import cache_dir, compile_count
from ._timing import policy_seconds, timed
from .accuracy import closed_form_accuracy, flow_accuracy
from .certificate import certify, limit_gap_tol
from .errors import (SolverCertificateError, SolverError, SolverFailedError, SolverStepLimitError,
                     TwoLayerInputError)
from .methods import METHODS, Method, get_method
from .problem import Problem
from .tail import Curvature, curvature, linear_tail, minimum_gap, reduced_eigh, slow_rate
from .trajectory import FlowResult, Trajectory

__all__ = ["FlowConfig", "FlowResult", "simulate", "simulate_batch", "compile_count", "cache_dir",
           "policy_seconds", "METHODS", "SOLVERS", "BATCHINGS"]

SOLVERS = _solve.SOLVERS
BATCHINGS = ("auto", "map", "vmap")
EPS = float(np.finfo(np.float64).eps)


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
    fallback_solver : integrate with this solver when a certificate fails (None: raise).
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
            import difflib
            near = {k: difflib.get_close_matches(k, _FlowSettings._fields, n=1) for k in unknown}
            hint = "; ".join(f"{k!r} -> did you mean {v[0]!r}?" for k, v in near.items() if v)
            raise TwoLayerInputError(", ".join(unknown), "is not a FlowConfig field" + (f" ({hint})" if hint else ""),
                                     f"use one of {', '.join(_FlowSettings._fields)}")
        if len(args) > len(_FlowSettings._fields):
            raise TwoLayerInputError("FlowConfig", f"takes at most {len(_FlowSettings._fields)} positional "
                                     f"values, got {len(args)}", "pass fields by name, e.g. FlowConfig(rtol=1e-8)")
        return _check_config(super().__new__(cls, *args, **kwargs))


# ----------------------------------------------------------------------------- input checks
def _check_problem(problem, argument: str = "problem") -> Problem:
    if not isinstance(problem, Problem):
        raise TwoLayerInputError(argument, f"expected a twolayer.Problem, got {type(problem).__name__}",
                                 "build one with twolayer.make_problem(...) or twolayer.Problem(...)")
    return problem


def _check_method(method) -> str:
    return get_method(method).name


def _check_ts(ts) -> np.ndarray:
    if np.iscomplexobj(ts) or (isinstance(ts, (list, tuple)) and any(isinstance(t, complex) for t in ts)):
        raise TwoLayerInputError("ts", "is complex (times are real; numpy would drop the imaginary part "
                                 "with only a ComplexWarning)", "pass real times, e.g. ts.real if that is meant")
    try:
        ts = np.asarray(ts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("ts", f"cannot convert to float64 ({exc})",
                                 "pass a 1-D sequence of times") from exc
    if ts.ndim > 1:
        raise TwoLayerInputError("ts", f"has shape {ts.shape}; times are a 1-D sequence",
                                 "pass a 1-D array of sorted times (e.g. ts.ravel() if you meant that)")
    ts = ts.reshape(-1)
    if ts.size == 0:
        raise TwoLayerInputError("ts", "is empty", "pass at least one time")
    if np.any(np.isnan(ts)):
        raise TwoLayerInputError("ts", "contains NaN", "pass finite times >= 0 (or inf for the limit)")
    if np.any(ts < 0) or np.any(np.isneginf(ts)):
        raise TwoLayerInputError("ts", f"contains negative times (min {ts.min()})", "times start at 0")
    if np.any(np.diff(ts) < 0):
        raise TwoLayerInputError("ts", "is not sorted in non-decreasing order", "pass np.sort(ts)")
    return ts


def _check_v0(problem: Problem, v0, argument: str = "v0") -> np.ndarray:
    if v0 is None:
        return np.array(problem.v0)
    try:
        v0 = np.asarray(v0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError(argument, f"cannot convert to float64 ({exc})",
                                 f"pass a head of length k={problem.k}, or None for problem.v0") from exc
    if v0.shape != (problem.k,):
        raise TwoLayerInputError(argument, f"shape {v0.shape}, expected ({problem.k},)",
                                 f"pass a head of length k={problem.k}, or None for problem.v0")
    if not np.all(np.isfinite(v0)):
        raise TwoLayerInputError(argument, "contains NaN/inf", "pass a finite head")
    return v0


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


def _make_config(config, rtol, atol, options) -> FlowConfig:
    config = FlowConfig() if config is None else config
    if not isinstance(config, FlowConfig):
        raise TwoLayerInputError("config", f"expected a FlowConfig, got {type(config).__name__}",
                                 "pass twolayer.FlowConfig(...)")
    unknown = sorted(set(options) - set(FlowConfig._fields))
    if unknown:
        raise TwoLayerInputError(unknown[0], "is not an option of simulate / simulate_batch (a FlowConfig field)",
                                 f"use one of {FlowConfig._fields}")
    if rtol is not None:
        options["rtol"] = rtol
    if atol is not None:
        options["atol"] = atol
    return _check_config(config._replace(**options))


# ----------------------------------------------------------------------------- the policy
@dataclass
class _Case:
    """One problem's FT stage as it moves through the policy."""

    s2: np.ndarray
    c: np.ndarray
    v0: np.ndarray
    G0: np.ndarray
    i2_norm0: float
    job: _solve.Job | None = None
    job_done: _solve.Job | None = None
    attempt: int = 0
    saddle_tries: int = 0
    fallback: bool = False
    t0: bool = False
    t_hold: float = 0.0
    t1: float = 0.0                   # final time of its integrations (slow modes extend it)
    slow_tries: int = 0
    switched: bool = False            # the other solver was tried after a step limit
    slow: float | None = None         # the slow rate integrated past, if any
    notes: list = dc_field(default_factory=list)
    steps_total: int = 0
    out: tuple | None = None          # (v_out, G_out, result, stats, certificate)
    error: Exception | None = None


def _eig_at(case, v, G):
    return reduced_eigh(case.s2, case.c, v, G)


def _size(case, v, G) -> float:
    return float(np.linalg.norm(v) + np.linalg.norm(G) + np.linalg.norm(case.c) / np.sqrt(np.max(case.s2)))


def _is_saddle(curv: Curvature, config: FlowConfig, case=None, v=None, G=None) -> bool:
    """Negative curvature beyond noise: lambda_min < -saddle_rtol * lambda_max while the
    residual is not small (||r_S|| > 0.1 ||c||). Near the minimum manifold H has negative
    eigenvalues down to -2 ||r_S|| (the residual's own curvature, vanishing at the minimum:
    noise of a stop made at a looser rule); at a saddle (v = 0, r_S = -c) it does not vanish."""
    if not curv.lambda_min < -config.saddle_rtol * max(curv.lambda_max, 1e-300):
        return False
    if case is None:
        return True
    r = case.s2 * (G.T @ v) - case.c
    return bool(np.linalg.norm(r) > 0.1 * np.linalg.norm(case.c))


def _hessian_bound(case) -> float:
    """L = 2 max(s2) (||v0||^2 + ||G0||^2) + 2 ||r_S(y0)||: a bound on the largest eigenvalue
    of the reduced Hessian at the start (1 / L: the fastest time scale)."""
    r = case.s2 * (case.G0.T @ case.v0) - case.c
    return 2.0 * float(np.max(case.s2)) * (float(case.v0 @ case.v0) + float(np.sum(case.G0 ** 2))) \
        + 2.0 * float(np.linalg.norm(r))


def _atol(case, config: FlowConfig, L: float) -> float:
    """atol scaled to the displacement scale Delta = ||f(y0)|| / L (module docstring;
    L = :func:`_hessian_bound`)."""
    if not config.atol_relative:
        return float(config.atol)
    from ._field import field
    fv, fG, _ = field(np, case.s2, case.c, case.v0, case.G0)
    fn = float(np.sqrt(np.sum(fv ** 2) + np.sum(fG ** 2)))
    delta = fn / L if L > 0 else 1.0
    # Never below the rounding noise of the field (EPS * the size of its terms) over the
    # fastest time scale 1 / L: the error estimate cannot resolve less.
    _, scale = steady_measure(np, case.s2, case.c, case.v0, case.G0)
    floor = 10.0 * EPS * scale / L if L > 0 else 0.0
    return max(float(config.atol) * min(delta, 1.0), floor, 1e-300)


#: The first step tried, as a fraction of the fastest time scale 1 / L (the controller
#: grows it by up to 10x per accepted step).
DT0_FRACTION = 1e-2


def _dt0(L: float, t1: float) -> float:
    """dt0 = DT0_FRACTION / L, at most t1 / 10 (see :mod:`twolayer._solve` for why explicit)."""
    dt = DT0_FRACTION / L if L > 0 else t1
    return float(min(dt, 0.1 * t1)) if t1 > 0 else float(dt)


def _prepare(case: _Case, t1: float, ts, config: FlowConfig, codes: dict, want_inf: bool = True, where: str = ""):
    """The start: nothing to do (t1 = 0), an exact saddle (held), a steady minimum-like start
    (continued in closed form from t = 0, like a stop), or the first integration job."""
    if t1 <= 0.0:
        case.out = ("hold", FlowResult.SUCCESS, {})
        return
    fnorm, scale = steady_measure(np, case.s2, case.c, case.v0, case.G0)
    if fnorm <= config.steady_rtol * scale:
        eig = _eig_at(case, case.v0, case.G0)
        curv = curvature(case.s2, case.c, case.v0, case.G0, eig)
        if not _is_saddle(curv, config, case, case.v0, case.G0):
            k, m = case.G0.shape
            raw0 = _solve.Raw(np.empty((0, k)), np.empty((0, k, m)), case.v0, case.G0, 0.0, codes["event"],
                              np.zeros(3, np.int64))
            tail = _stop_tail(case, raw0, eig, ts, config)
            if _past_slow_modes(case, 0.0, case.v0, case.G0, tail[3].limit_gap, config, want_inf, where):
                return
            # Steady at t = 0 and no negative curvature: the closed-form tail from t = 0
            # (exactly the start where f vanishes); certified like any stop.
            case.t0 = True
            case.job_done = _job(case, config, config.solver, config.steady_rtol)
            case.out = ("raw", raw0, True, eig, curv, tail)
            return
        if curv.unstable <= 100.0 * EPS * _size(case, case.v0, case.G0):
            case.out = ("hold", FlowResult.SADDLE_HELD, dict(curvature=curv._asdict(), unstable=curv.unstable))
            return
        case.t_hold = 2.0 * curv.escape_time
        case.saddle_tries += 1
        case.notes.append(f"near a saddle at t=0 (lambda_min={curv.lambda_min:.3g}, unstable "
                          f"component {curv.unstable:.2e}): no steady stop before t={case.t_hold:.4g}")
    case.job = _job(case, config, config.solver, config.steady_rtol * config.retry_schedule[0])


def _job(case: _Case, config: FlowConfig, solver: str, steady_rtol: float) -> _solve.Job:
    L = _hessian_bound(case)
    return _solve.Job(case.s2, case.c, case.v0, case.G0, float(steady_rtol), float(case.t_hold),
                      float(config.rtol), _atol(case, config, L), solver, float(case.t1), _dt0(L, case.t1))


# Integrations per problem at most (retries, saddle escapes, slow modes, fallbacks).
_MAX_ROUNDS = 64

# Groups of one vmapped chunk in flight at once (simulate_batch, batching="vmap"): one
# solving while the others run their policy on the threads.
_VMAP_DRIVERS = 3

# How far a slow mode may push the integration (beyond: raise, the limit is out of reach).
T_SLOW_MAX = 1e16


def _past_slow_modes(case: _Case, t_e: float, v, G, gap: float, config: FlowConfig, want_inf: bool,
                     where: str, stopped: bool = True) -> bool:
    """A stop is a steady state only if the tail's limit is a minimum (issue 7 §2).

    The tail clamps modes slower than ``tail_eig_rtol * lambda_max`` (:mod:`twolayer.tail`);
    with an ill-conditioned X a genuine direction of S can relax that slowly, and y(inf)
    is then not a minimum. If its :func:`~twolayer.tail.minimum_gap` exceeds
    :func:`~twolayer.certificate.limit_gap_tol`, no steady stop is allowed before
    t_e + 2 log(10 gap / tol) / lambda_slow (:func:`~twolayer.tail.slow_rate`), and the
    flow is integrated on with the stiff ``fallback_solver`` (the fast modes have decayed;
    an explicit solver would need ~lambda_max / lambda_slow steps). Returns True when such
    a job was set; raises when it cannot be (no fallback solver, no positive slow rate,
    out of reach, or still unconverged after 3 extensions). With ``stopped=False`` (no
    steady stop by t1 = t_e) the gap is the state's own: whatever is left there is slow.
    ``gap``: the tail's ``limit_gap`` after a stop (:func:`_stop_tail`), else the state's
    :func:`~twolayer.tail.minimum_gap`."""
    tol = limit_gap_tol(config.rtol)
    if gap <= tol:
        return False
    lam = slow_rate(case.s2, v, G)
    cert = dict(limit_gap=gap, limit_gap_tol=tol, slow_rate=None, failed=["limit_gap"], passed=False)
    what = (f"the steady stop at t={t_e:.6g}{where} leaves a slow mode (rate {lam:.3g}, below the tail's "
            f"clamp) unconverged: the limit is {gap:.3g} away from the minimum manifold (tolerance {tol:.1e})"
            if stopped else
            f"no steady state by t={t_e:.6g}{where}: a slow mode (rate {lam:.3g}) is left, {gap:.3g} away "
            f"from the minimum manifold (tolerance {tol:.1e})")
    if config.fallback_solver is None:
        raise SolverCertificateError(what + "; set fallback_solver (e.g. 'kvaerno5') to integrate past it", cert)
    if not lam > 0 or case.slow_tries >= 3:
        raise SolverCertificateError(what + f" after {case.slow_tries} extensions; raise rtol or condition X", cert)
    t_need = t_e + 2.0 * math.log(10.0 * gap / tol) / lam
    if t_need > T_SLOW_MAX:
        raise SolverFailedError(what + f"; it needs t ~ {t_need:.3g} > {T_SLOW_MAX:.0e}: out of reach, "
                                "so no limit is returned (condition X or ask for finite times)")
    case.slow_tries += 1
    case.slow = lam
    case.attempt = 0
    case.t0 = False
    case.t_hold = max(case.t_hold, t_need)
    if want_inf:
        case.t1 = max(case.t1, 2.0 * t_need)
    case.notes.append(what + f": integrated on with {config.fallback_solver}, no steady stop before "
                             f"t={case.t_hold:.4g}")
    case.job = _job(case, config, config.fallback_solver, config.steady_rtol)
    return True


def _step_limit_error(config, raw, t1, want_inf, where, job):
    if want_inf:
        asked = f"t = inf (the steady state, sought up to t_inf_max={t1:g})"
        if job.steady_rtol < 10.0 * config.rtol:
            fix = (f"the steady rule (steady_rtol={job.steady_rtol:.0e} after retries) is stricter "
                   f"than the solver's accuracy (rtol={config.rtol:.0e}); pass steady_rtol >= 10*rtol "
                   f"(e.g. steady_rtol={10 * config.rtol:.0e}) or tighten rtol; or raise max_steps")
        else:
            fix = ("the flow is slow or stiff here: raise max_steps, or use solver='kvaerno5'; "
                   "tightening steady_rtol will not help")
    else:
        asked = f"t={t1:.6g} (the last time in ts)"
        fix = "raise max_steps, ask for earlier times, or use solver='kvaerno5' (stiff)"
    return SolverStepLimitError(config.max_steps, raw.t_end, t1, where, asked=asked, fix=fix)


def _retry(case: _Case, raw: _solve.Raw, ts, t1, want_inf, config, codes, where):
    """The retry policy after one integration. Sets ``case.job`` (integrate again) or
    ``case.out`` (done), or raises."""
    job = case.job
    t1 = job.t1
    case.steps_total += int(raw.stats[0])
    if raw.code == codes["max_steps"]:
        # A looser steady rule helps a flow that got somewhere; one stuck at t = 0 (every step
        # rejected) goes straight to the other solver.
        if case.attempt + 1 < len(config.retry_schedule) and raw.t_end > 0.0:
            case.attempt += 1
            srt = config.steady_rtol * config.retry_schedule[case.attempt]
            case.job = job._replace(steady_rtol=srt)
            return
        # Before raising, the other solver once: the stiff fallback for an explicit method
        # (a stiff flow), the explicit Dopri8 for the stiff one (whose Newton iterations can
        # stall at a zero-head start: measured, stuck at t = 0 where Dopri8 takes 82 steps).
        alt = None
        if config.fallback_solver is not None and not case.switched:
            alt = config.fallback_solver if job.solver != config.fallback_solver else \
                ("dopri8" if job.solver != "dopri8" else None)
        if alt is not None:
            case.attempt = 0
            case.fallback = True
            case.switched = True
            case.notes.append(f"step limit with {job.solver} at t={raw.t_end:.4g}: integrated again with {alt}")
            case.job = job._replace(solver=alt, steady_rtol=config.steady_rtol)
            return
        raise _step_limit_error(config, raw, t1, want_inf, where, job)
    if raw.code not in (codes["ok"], codes["event"]):
        raise SolverFailedError(f"diffrax failed with result code {raw.code} at t={raw.t_end:.6g}{where}; "
                                "try solver='kvaerno5'")
    steady = raw.code == codes["event"]
    eig = curv = None
    saddle = False
    if steady or want_inf:
        # The curvature at the end state decides both cases below: a stop at a saddle or not
        # steady by t1 (is only a slow mode left?).
        eig = _eig_at(case, raw.v_end, raw.G_end)
        curv = curvature(case.s2, case.c, raw.v_end, raw.G_end, eig)
        saddle = _is_saddle(curv, config, case, raw.v_end, raw.G_end)
    if want_inf and not steady:
        # Not steady by t1: if only a slow mode is left, integrate on past it (it sets t1 too).
        if not saddle and _past_slow_modes(case, raw.t_end, raw.v_end, raw.G_end,
                                           minimum_gap(case.s2, case.c, raw.v_end, raw.G_end), config,
                                           want_inf, where, stopped=False):
            return
        raise SolverFailedError(f"no steady state reached by t_inf_max={t1:g}{where}: raise t_inf_max "
                                f"(FlowConfig.t_inf_max) or steady_rtol, or ask for finite times only")
    if steady:
        if saddle:
            # A stop at a saddle: the rule cannot tell it from a minimum. Integrate on.
            if case.saddle_tries >= 4 or not math.isfinite(curv.escape_time):
                raise SolverFailedError(
                    f"the flow stopped at a saddle at t={raw.t_end:.6g}{where} (lambda_min="
                    f"{curv.lambda_min:.3g}, unstable component {curv.unstable:.2e}) and did not escape "
                    f"after {case.saddle_tries} tries; raise t_inf_max or max_steps")
            case.saddle_tries += 1
            case.t_hold = max(raw.t_end + 2.0 * curv.escape_time, 2.0 * case.t_hold, raw.t_end * 2.0)
            case.notes.append(f"stop at a saddle at t={raw.t_end:.4g} rejected (lambda_min={curv.lambda_min:.3g});"
                              f" no steady stop before t={case.t_hold:.4g}")
            case.job = job._replace(t_hold=case.t_hold)
            return
        tail = _stop_tail(case, raw, eig, ts, config)
        if _past_slow_modes(case, raw.t_end, raw.v_end, raw.G_end, tail[3].limit_gap, config, want_inf, where):
            return
        case.out = ("raw", raw, steady, eig, curv, tail)
    else:
        case.out = ("raw", raw, steady, eig, curv, None)
    case.job = None


def _stop_tail(case: _Case, raw, eig, ts, config):
    """The closed-form tail after a steady stop at every t in ts from the stop on:
    (after (mask of ts), v_t, G_t, TailInfo); computed once, for the slow-mode check and
    the outputs."""
    finite = np.isfinite(ts)
    after = np.ones(ts.size, bool)
    after[finite] = ts[finite] >= raw.t_end
    taus = ts[after] - raw.t_end if np.any(after) else np.array([np.inf])
    v_t, G_t, tail = linear_tail(case.s2, case.c, raw.v_end, raw.G_end, taus, config.tail_eig_rtol, eig)
    return after, v_t, G_t, tail


def _continue_tail(case: _Case, raw, steady, tail_at_stop, ts):
    """Outputs at every t in ts: the integrated values, and after a stop the closed-form tail
    (``tail_at_stop``, from :func:`_stop_tail`)."""
    finite = np.isfinite(ts)
    nf = int(finite.sum())
    v_out = np.empty((ts.size, case.v0.size))
    G_out = np.empty((ts.size,) + case.G0.shape)
    if raw.v_ts.shape[0] >= nf:
        v_out[finite], G_out[finite] = raw.v_ts[:nf], raw.G_ts[:nf]
    v_out[~finite], G_out[~finite] = raw.v_end, raw.G_end
    tail = None
    if steady:
        after, v_t, G_t, tail = tail_at_stop
        if np.any(after):
            v_out[after], G_out[after] = v_t, G_t
    return v_out, G_out, tail


def _finish(case: _Case, ts, config, wall, batched, where):
    """Package one finished case: outputs, certificate, result, stats. May set a fallback job."""
    kind = case.out[0]
    if kind == "hold":
        _, result, extra = case.out
        v_out = np.repeat(case.v0[None], ts.size, 0)
        G_out = np.repeat(case.G0[None], ts.size, 0)
        stats = dict(solver=config.solver, rtol=config.rtol, atol=config.atol, atol_effective=None,
                     steady_rtol=config.steady_rtol, num_steps=0, num_accepted_steps=0, num_rejected_steps=0,
                     t_steady=0.0 if result.is_held else None, wall_time_s=wall, batched=batched, tail=None,
                     tail_correction_norm=None, tail_null_residual=None, notes=list(case.notes), **extra)
        cert = None
        if config.certify and result.is_held:
            t0 = time.perf_counter()
            curv = Curvature(**extra["curvature"])
            cert = certify(case.s2, case.c, v_out[:1], G_out[:1], case.v0, case.G0, case.i2_norm0,
                           rtol=config.rtol, steady_rtol=config.steady_rtol, saddle_rtol=config.saddle_rtol,
                           curvature=curv)
            cert["seconds"] = time.perf_counter() - t0
        return v_out, G_out, result, stats, cert
    _, raw, steady, eig, curv, tail_at_stop = case.out
    job = case.job_done
    t0 = time.perf_counter()
    v_out, G_out, tail = _continue_tail(case, raw, steady, tail_at_stop, ts)
    if not (np.all(np.isfinite(v_out)) and np.all(np.isfinite(G_out))):
        raise SolverFailedError(f"non-finite state in the solution{where}")
    if steady:
        if case.t0:
            result = FlowResult.STATIONARY_T0
        elif case.slow is not None:
            result = FlowResult.STEADY_SLOW
        elif case.fallback:
            result = FlowResult.STEADY_STIFF
        elif job.steady_rtol != config.steady_rtol:
            result = FlowResult.STEADY_RELAXED
        else:
            result = FlowResult.STEADY_TAIL
    else:
        result = FlowResult.SUCCESS
    cert = None
    if config.certify:
        scale = steady_measure(np, case.s2, case.c, raw.v_end, raw.G_end)[1] if steady else None
        order = np.argsort(ts, kind="stable")
        cert = certify(case.s2, case.c, v_out[order], G_out[order], case.v0, case.G0, case.i2_norm0,
                       rtol=config.rtol, steady_rtol=job.steady_rtol, saddle_rtol=config.saddle_rtol,
                       tail=tail, steady_scale=scale, curvature=curv,
                       saddle=curv is not None and _is_saddle(curv, config, case, raw.v_end, raw.G_end))
        cert["seconds"] = time.perf_counter() - t0
    stats = dict(solver=job.solver, rtol=config.rtol, atol=config.atol, atol_effective=job.atol,
                 steady_rtol=job.steady_rtol, num_steps=int(raw.stats[0]), num_accepted_steps=int(raw.stats[1]),
                 num_rejected_steps=int(raw.stats[2]), num_steps_total=case.steps_total,
                 t_steady=raw.t_end if steady else None, t_hold=case.t_hold or None, t1=job.t1,
                 slow_rate=case.slow, wall_time_s=wall,
                 batched=batched, tail="linearised closed form" if tail is not None else None,
                 tail_correction_norm=tail.correction_norm if tail is not None else None,
                 tail_null_residual=tail.null_residual if tail is not None else None,
                 tail_second_order=tail.second_order if tail is not None else None,
                 curvature=curv._asdict() if curv is not None else None, notes=list(case.notes))
    return v_out, G_out, result, stats, cert


def _solve_cases(cases: list[_Case], ts: np.ndarray, config: FlowConfig, batched: bool,
                 pool: ThreadPoolExecutor | None, batching: str):
    """Run the policy for every case; each ends with ``out`` = packaged tuple or ``error``."""
    finite = np.isfinite(ts)
    ts_f = ts[finite]
    want_inf = bool(np.any(~finite))
    t_last = float(ts_f[-1]) if ts_f.size else 0.0
    t1 = float(config.t_inf_max) if want_inf else t_last
    if want_inf and t_last > t1:
        raise TwoLayerInputError("ts", f"finite times up to {t_last:g} lie beyond t_inf_max={t1:g}",
                                 "raise FlowConfig.t_inf_max (t_inf_max=...) above the last finite time")
    ts_pad = _solve.pad_times(ts_f)
    codes = _solve.result_codes()
    where = (lambda i: f" (problem {i} of the batch)") if batched else (lambda i: "")
    pmap = (lambda fn, xs: list(pool.map(fn, xs))) if pool is not None and len(cases) > 1 else \
        (lambda fn, xs: [fn(x) for x in xs])

    def guarded(fn):
        def run(i):
            if cases[i].error is not None:
                return
            try:
                fn(i)
            except SolverError as exc:
                cases[i].error = exc
        return run

    start = time.perf_counter()
    done: dict[int, tuple] = {}

    def finalize(i):
        """Package a finished case; on a failed certificate, integrate further or raise."""
        cs = cases[i]
        wall = (time.perf_counter() - start) / len(cases)
        with timed("finish"):
            res = _finish(cs, ts, config, wall, batched, where(i))
        cert = res[4]
        if cert is not None and not cert["passed"]:
            if config.fallback_solver is not None and not cs.fallback:
                cs.fallback = True
                cs.attempt = 0
                cs.notes.append(f"certificate failed ({', '.join(cert['failed'])}) with "
                                f"{'the closed form at t=0' if cs.t0 else cs.job_done.solver}: "
                                f"integrated again with {config.fallback_solver}")
                cs.t0 = False
                cs.job = cs.job_done._replace(solver=config.fallback_solver, steady_rtol=config.steady_rtol)
                cs.out = None
                return
            raise SolverCertificateError(
                f"the solution failed its certificate ({', '.join(cert['failed'])}){where(i)}: "
                + ", ".join(f"{n}={cert[n]:.3g} > {cert[n + '_tol']:.1e}" for n in cert["failed"])
                + "; tighten rtol or steady_rtol, or raise max_steps", cert)
        done[i] = res

    def prepare(i):
        cases[i].t1 = t1
        with timed("prepare"):
            _prepare(cases[i], t1, ts, config, codes, want_inf, where(i))
        if cases[i].out is not None and cases[i].out[0] == "raw":
            finalize(i)

    def after(i, raw):
        cs = cases[i]
        cs.job_done = cs.job
        with timed("stop"):
            _retry(cs, raw, ts, t1, want_inf, config, codes, where(i))
        if cs.job is None:
            finalize(i)

    chunk = int(config.chunk) if config.chunk is not None else _solve.default_chunk()

    def integrate(jobs):
        return _solve.integrate(jobs, ts_pad, max_steps=int(config.max_steps), batching=batching, chunk=chunk)

    if batching == "map":
        # One pipeline per problem (prepare, integrate, retry, certify), so that the threads
        # never wait for each other between the stages.
        k, m = cases[0].G0.shape
        ran = [_solve.has_run(config.solver, config.max_steps, k, m, ts_pad)]

        def drive(i):
            prepare(i)
            for _ in range(_MAX_ROUNDS):
                if cases[i].job is None:
                    return
                (raw,) = integrate([cases[i].job])
                ran[0] = True
                after(i, raw)

        first = 0
        while first < len(cases) and not ran[0]:   # alone until a first solve (it may trace and compile)
            guarded(drive)(first)
            first += 1
        pmap(guarded(drive), range(first, len(cases)))
    else:
        # vmap: groups of one chunk, each driven through its rounds (prepare, one padded
        # solve of its pending jobs, the retry policy) by a driver thread of its own, so that
        # one group's policy work (on the pool) overlaps another group's solve.
        k, m = cases[0].G0.shape

        def drive_group(idx):
            pmap(guarded(prepare), idx)
            for _ in range(_MAX_ROUNDS):
                pending = [i for i in idx if cases[i].job is not None and cases[i].error is None]
                if not pending:
                    return
                raw_of = dict(zip(pending, integrate([cases[i].job for i in pending])))
                pmap(guarded(lambda i: after(i, raw_of[i])), pending)

        groups = [range(a, min(a + chunk, len(cases))) for a in range(0, len(cases), chunk)]
        if pool is None or len(groups) == 1:
            for idx in groups:
                drive_group(idx)
        else:
            if not _solve.has_run(config.solver, config.max_steps, k, m, ts_pad, chunk):
                drive_group(groups.pop(0))        # alone: it may trace and compile
            with ThreadPoolExecutor(max_workers=_VMAP_DRIVERS) as drivers:
                list(drivers.map(drive_group, groups))
    for i, cs in enumerate(cases):
        if cs.error is None and i in done:
            cs.out = done[i]
        elif cs.error is None and cs.out is not None and cs.out[0] == "hold":
            wall = (time.perf_counter() - start) / len(cases)
            cs.out = _finish(cs, ts, config, wall, batched, where(i))
        elif cs.error is None:
            cs.error = SolverFailedError(f"the retry policy did not finish{where(i)}")
    return cases


# ----------------------------------------------------------------------------- public API
def _lp_trajectory(problem: Problem, ts: np.ndarray, v0: np.ndarray, method: str = "lp") -> Trajectory:
    """The LP closed form from ``v0``; also FT / LP-FT at feature_rate 0 (B frozen), named ``method``."""
    from .lp import _probe
    start = time.perf_counter()
    v = _probe(problem).head(ts, v0)
    B = np.broadcast_to(problem.B0, (ts.size,) + problem.B0.shape)
    extra = {} if method == "lp" else dict(feature_rate=0.0)
    return Trajectory(ts=ts, v=v, B=B, method=method, v0=v0, result=FlowResult.CLOSED_FORM,
                      stats=dict(solver="closed-form", wall_time_s=time.perf_counter() - start, **extra),
                      accuracy=closed_form_accuracy())


def _frozen_features(problem: Problem, meth: Method, ts, v0, config: FlowConfig) -> Trajectory | None:
    """LP's closed form where B does not move (LP, or feature_rate 0 from the method's start)."""
    if not meth.trains_B:
        return _lp_trajectory(problem, ts, v0)
    if config.feature_rate == 0.0:
        return _lp_trajectory(problem, ts, np.asarray(meth.start(problem, v0), np.float64), meth.name)
    return None


def _flow_frame(ts, config: FlowConfig):
    """(times, config) of the scaled FT solve for feature_rate gamma (:mod:`twolayer.rates`):
    tau = sqrt(gamma) t; t_inf_max given in head time. Unchanged for gamma = 1."""
    if config.feature_rate == 1.0:
        return ts, config
    a = rates.time_scale(config.feature_rate)
    return ts * a, config._replace(t_inf_max=config.t_inf_max * a)


def _case_for(problem: Problem, meth: Method, v0: np.ndarray, gamma: float = 1.0) -> _Case:
    """The reduced start; for feature_rate gamma != 1 in the scaled coordinates u = q v,
    H = G / q, q = gamma^(1/4) (:mod:`twolayer.rates`)."""
    with timed("reduce"):               # the SVD of X, once per Problem (cached on it)
        s2, c, G0, _ = problem.reduced
    v_start = np.asarray(meth.start(problem, v0), np.float64)
    q = rates.head_scale(gamma) if gamma != 1.0 else 1.0
    i2 = float(np.linalg.norm(np.outer(v_start, v_start) * q ** 2 - problem.B0 @ problem.B0.T / q ** 2))
    return _Case(np.asarray(s2, np.float64), np.asarray(c, np.float64), q * v_start,
                 np.asarray(G0, np.float64) / q, i2)


def _package(problem, method, ts, case: _Case, gamma: float = 1.0) -> Trajectory:
    with timed("package"):
        return _trajectory(problem, method, ts, case, gamma)


def _trajectory(problem, method, ts, case: _Case, gamma: float = 1.0) -> Trajectory:
    v_out, G_out, result, stats, cert = case.out
    v_start = case.v0
    if cert is not None:
        stats["certificate_s"] = cert.get("seconds")
    if gamma != 1.0:
        # Back from the scaled coordinates (u, H, tau) to (v, G, t) (twolayer.rates).
        q, a = rates.head_scale(gamma), rates.time_scale(gamma)
        v_out, G_out, v_start = v_out / q, G_out * q, v_start / q
        stats = dict(stats, feature_rate=gamma)
        for key in ("t_steady", "t_hold", "t1"):
            if stats.get(key) is not None:
                stats[key] = stats[key] / a
        if stats.get("slow_rate") is not None:
            stats["slow_rate"] = stats["slow_rate"] * a
    has_tail = stats.get("tail") is not None
    accuracy = flow_accuracy(stats["rtol"], cert, has_tail) if has_tail or stats.get("num_steps") \
        else closed_form_accuracy()
    return Trajectory(ts=ts, v=v_out, B=problem.B_from_G(G_out), method=method, v0=v_start,
                      result=result, stats=stats, certificate=cert, accuracy=accuracy)


def _blas_one_thread():
    """BLAS limited to one thread per caller while ``simulate_batch``'s threads run (each
    thread is a core's worth of work already; OpenBLAS's own threads on top oversubscribe
    the cores and serialize concurrent calls). Restored on exit (``threadpoolctl``)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def _batching(config: FlowConfig) -> str:
    return _solve.default_batching() if config.batching == "auto" else config.batching


def simulate(problem: Problem, method: str, ts, v0=None, rtol: float | None = None,
             atol: float | None = None, *, config: FlowConfig | None = None, **options) -> Trajectory:
    """Simulate LP, FT or LP-FT gradient flow (THEORY.md §1) at times ``ts``.

    Parameters
    ----------
    problem : the :class:`Problem`.
    method : "lp" (closed form, THEORY.md §3), "ft" (the flow from (v0, B0)) or
        "lpft" (LP to its limit v_lp_inf in closed form, then FT from (v_lp_inf, B0);
        ``ts`` are times of the FT stage). See :data:`twolayer.methods.METHODS`.
    ts : 1-D sorted times >= 0; may contain ``inf`` (the limit: closed form for LP, the
        steady state of the flow for FT, see the module docstring).
    v0 : initial head; ``None`` means ``problem.v0``.
    rtol, atol : tolerances (shortcuts for ``config.rtol`` / ``config.atol``).
    config : a :class:`FlowConfig` (default ``FlowConfig()``).
    **options : any :class:`FlowConfig` field by name, overriding ``config``: e.g.
        ``solver`` ("dopri8", "tsit5", "kvaerno5"), ``max_steps``, ``steady_rtol`` (the
        steady-state rule, default 1e-9), ``t_inf_max`` (how far the flow is integrated
        at most for ``t = inf``, default 1e6), ``tail_eig_rtol``, ``saddle_rtol``.

    Returns
    -------
    A :class:`Trajectory` with ``v`` (T, k), ``B`` (T, k, d) at ``ts``; ``result`` (a
    :class:`FlowResult`: integrated, steady with closed-form tail, held at a stationary
    start, ...), ``status`` (its prose), ``stats`` (steps, tolerances, steady time, tail
    sizes, curvature) and ``certificate`` (the a-posteriori checks, all passed).

    Raises
    ------
    TwoLayerInputError (a ValueError) for bad input; a :class:`SolverError` (a
    RuntimeError: :class:`SolverStepLimitError`, :class:`SolverFailedError`,
    :class:`SolverCertificateError`) when the integration fails.
    """
    problem = _check_problem(problem)
    meth = get_method(method)
    ts = _check_ts(ts)
    v0 = _check_v0(problem, v0)
    config = _make_config(config, rtol, atol, dict(options))
    frozen = _frozen_features(problem, meth, ts, v0, config)
    if frozen is not None:
        return frozen
    case = _case_for(problem, meth, v0, config.feature_rate)
    _solve_cases([case], *_flow_frame(ts, config), batched=False, pool=None, batching="map")
    if case.error is not None:
        raise case.error
    return _package(problem, meth.name, ts, case, config.feature_rate)


def simulate_batch(problems: Sequence[Problem], method: str, ts, v0s=None, rtol: float | None = None,
                   atol: float | None = None, *, config: FlowConfig | None = None, throw: bool = True,
                   **options) -> list:
    """:func:`simulate` for many problems of the same (k, m) at once.

    Each problem keeps its own adaptive step size, steady stop, retries and certificate,
    so the accuracy is that of :func:`simulate`. Batching (``config.batching``): "map"
    runs single solves on a thread pool of ``config.workers`` threads (default: two per CPU
    core; 1: one after another, see :class:`FlowConfig`), "vmap" runs fixed-size vmapped chunks of
    ``config.chunk`` problems (padded; the better choice on a GPU), "auto" picks vmap on
    a GPU and map on the CPU. No batch size compiles anew.

    ``v0s`` is None (each ``problem.v0``) or a sequence of heads, one per problem.
    ``throw=True`` raises the first problem's :class:`SolverError`; ``throw=False``
    returns, in place of each failed problem's Trajectory, the error instance (check
    ``isinstance(x, twolayer.errors.SolverError)``). Bad input always raises.
    """
    if problems is None or isinstance(problems, Problem):
        raise TwoLayerInputError("problems", f"expected a sequence of Problems, got {type(problems).__name__}",
                                 "pass a list, e.g. [problem] for one")
    problems = list(problems)
    if not problems:
        raise TwoLayerInputError("problems", "is empty", "pass at least one Problem")
    for i, p in enumerate(problems):
        _check_problem(p, f"problems[{i}]")
    meth = get_method(method)
    ts = _check_ts(ts)
    if v0s is None:
        v0s = [None] * len(problems)
    if len(v0s) != len(problems):
        raise TwoLayerInputError("v0s", f"has {len(v0s)} heads for {len(problems)} problems",
                                 "pass one head per problem (or None)")
    k, m = problems[0].k, problems[0].m
    for i, p in enumerate(problems):
        if (p.k, p.m) != (k, m):
            raise TwoLayerInputError("problems", f"problem {i} has (k, m)=({p.k}, {p.m}), "
                                     f"problem 0 has ({k}, {m})", "batch problems of the same shape")
    v0s = [_check_v0(p, v, f"v0s[{i}]") for i, (p, v) in enumerate(zip(problems, v0s))]
    config = _make_config(config, rtol, atol, dict(options))
    if not meth.trains_B or config.feature_rate == 0.0:
        return [_frozen_features(p, meth, ts, v, config) for p, v in zip(problems, v0s)]
    workers = min(_solve.workers_for(config.workers), len(problems))
    batching = _batching(config)
    if workers > 1:
        with _blas_one_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
            return _run_batch(problems, v0s, meth, ts, config, throw, pool, batching)
    return _run_batch(problems, v0s, meth, ts, config, throw, None, batching)


def _run_batch(problems, v0s, meth: Method, ts, config: FlowConfig, throw: bool,
               pool: ThreadPoolExecutor | None, batching: str) -> list:
    """simulate_batch after its input checks: every stage per problem on ``pool`` if any
    (the reduced coordinates, the policy, the packaging)."""
    pmap = pool.map if pool is not None else map
    gamma = config.feature_rate
    cases = list(pmap(lambda pv: _case_for(pv[0], meth, pv[1], gamma), zip(problems, v0s)))
    _solve_cases(cases, *_flow_frame(ts, config), batched=True, pool=pool, batching=batching)
    if throw:
        for cs in cases:
            if cs.error is not None:
                raise cs.error
    return list(pmap(lambda pc: pc[1].error if pc[1].error is not None
                     else _package(pc[0], meth.name, ts, pc[1], gamma), zip(problems, cases)))
