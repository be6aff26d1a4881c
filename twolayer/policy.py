"""The solve policy of one FT / LP-FT problem, as explicit transitions (issue 19; the rules
themselves are described in :mod:`twolayer.flow`).

A problem is a :class:`Case` (its reduced data and what the policy has tried). Each
transition takes the case and returns what happens next:

* :func:`start` -> :class:`Integrate` | :class:`Stop` (steady at t = 0) | :class:`Hold`
* :func:`after_solve` (an integration's raw end) -> :class:`Integrate` (retry, saddle
  escape, slow mode, the other solver) | :class:`Stop` | :class:`Fail`
* :func:`finish` (a Stop or Hold) -> :class:`Done` (outputs, certificate, the
  :class:`FlowResult`) | :class:`Integrate` (the fallback rule after a failed
  certificate) | :class:`Fail`

The :class:`FlowResult` is decided where a problem ends (:class:`Stop` / :class:`Hold`);
every failure is a :class:`Fail` holding its :class:`SolverError`, never a raise out of
the policy. The driver (threads, vmapped chunks, padding: :mod:`twolayer.flow`) only
moves jobs to the solver and transitions back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field as dc_field
from typing import NamedTuple

import numpy as np

from . import _solve
from ._field import field, steady_measure
from .certificate import certify, limit_gap_tol
from .errors import SolverCertificateError, SolverError, SolverFailedError, SolverStepLimitError
from .flow_config import FlowConfig
from .stiffness import diagnose, hessian_bound
from .tail import Curvature, curvature, linear_tail, minimum_gap, reduced_eigh, slow_rate
from .trajectory import FlowResult

__all__ = ["Case", "Context", "Integrate", "Stop", "Hold", "Done", "Fail", "start", "after_solve", "finish",
           "fallback_job", "T_SLOW_MAX", "MAX_ROUNDS"]

EPS = float(np.finfo(np.float64).eps)
#: Integrations per problem at most (retries, saddle escapes, slow modes, fallbacks).
MAX_ROUNDS = 64
#: How far a slow mode may push the integration (beyond: fail, the limit is out of reach).
T_SLOW_MAX = 1e16
#: The first step tried, as a fraction of the fastest time scale 1 / L.
DT0_FRACTION = 1e-2


# ----------------------------------------------------------------------------- state and transitions
@dataclass
class Case:
    """One problem's FT stage: its reduced data (fixed) and what the policy has done."""

    s2: np.ndarray
    c: np.ndarray
    v0: np.ndarray
    G0: np.ndarray
    i2_norm0: float
    t1: float = 0.0                   # final time of its integrations (slow modes extend it)
    t_hold: float = 0.0               # no steady stop before this time (saddles, slow modes)
    attempt: int = 0                  # index into retry_schedule
    saddle_tries: int = 0
    slow_tries: int = 0
    slow: float | None = None         # the slow rate integrated past, if any
    stiff: bool = False               # integrated again by the fallback rule
    tried: set = dc_field(default_factory=set)   # :func:`_identity` of every integration that ran
    notes: list = dc_field(default_factory=list)
    steps_total: int = 0


class Context(NamedTuple):
    """What every problem of one call shares."""

    ts: np.ndarray          # output times (in the solve's frame)
    t1: float               # the last time integrated to (t_inf_max when ts has inf)
    want_inf: bool
    config: FlowConfig
    codes: dict             # diffrax result codes (:func:`twolayer._solve.result_codes`)
    batched: bool
    started: float          # perf_counter at the call's start
    n: int                  # problems in the call (the wall time is shared among them)

    def where(self, i: int) -> str:
        return f" (problem {i} of the batch)" if self.batched else ""


class Integrate(NamedTuple):
    job: _solve.Job


class Stop(NamedTuple):
    """An accepted end of the integration: the outputs follow from it (with the tail)."""

    raw: _solve.Raw
    job: _solve.Job
    steady: bool
    eig: object
    curv: Curvature | None
    tail: tuple | None        # (after, v_t, G_t, TailInfo) of :func:`_stop_tail`
    result: FlowResult


class Hold(NamedTuple):
    """The start is the answer (nothing to integrate, or an exact saddle)."""

    result: FlowResult
    extra: dict


class Done(NamedTuple):
    v: np.ndarray
    G: np.ndarray
    result: FlowResult
    stats: dict
    certificate: dict | None


class Fail(NamedTuple):
    error: SolverError


def _guarded(fn):
    """A transition whose SolverError becomes a :class:`Fail` (failure is a value here)."""
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SolverError as exc:
            return Fail(exc)
    run.__doc__, run.__name__ = fn.__doc__, fn.__name__
    return run


# ----------------------------------------------------------------------------- small pure parts
def _size(case: Case, v, G) -> float:
    return float(np.linalg.norm(v) + np.linalg.norm(G) + np.linalg.norm(case.c) / np.sqrt(np.max(case.s2)))


def is_saddle(curv: Curvature, config: FlowConfig, case: Case | None = None, v=None, G=None) -> bool:
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


def _hessian_bound(case: Case) -> float:
    """L at the start (:func:`twolayer.stiffness.hessian_bound`)."""
    return hessian_bound(case.s2, case.c, case.v0, case.G0)


def _atol(case: Case, config: FlowConfig, L: float) -> float:
    """atol scaled to the displacement scale Delta = ||f(y0)|| / L (:mod:`twolayer.flow`),
    never below the rounding noise of the field over the fastest time scale 1 / L."""
    if not config.atol_relative:
        return float(config.atol)
    fv, fG, _ = field(np, case.s2, case.c, case.v0, case.G0)
    fn = float(np.sqrt(np.sum(fv ** 2) + np.sum(fG ** 2)))
    delta = fn / L if L > 0 else 1.0
    _, scale = steady_measure(np, case.s2, case.c, case.v0, case.G0)
    floor = 10.0 * EPS * scale / L if L > 0 else 0.0
    return max(float(config.atol) * min(delta, 1.0), floor, 1e-300)


def _dt0(L: float, t1: float) -> float:
    """dt0 = DT0_FRACTION / L, at most t1 / 10 (see :mod:`twolayer._solve` for why explicit)."""
    dt = DT0_FRACTION / L if L > 0 else t1
    return float(min(dt, 0.1 * t1)) if t1 > 0 else float(dt)


def _job(case: Case, config: FlowConfig, solver: str, steady_rtol: float) -> _solve.Job:
    L = _hessian_bound(case)
    return _solve.Job(case.s2, case.c, case.v0, case.G0, float(steady_rtol), float(case.t_hold),
                      float(config.rtol), _atol(case, config, L), solver, float(case.t1), _dt0(L, case.t1))


def _other_solver(solver: str, config: FlowConfig) -> str | None:
    """The other solver of the fallback rule: the stiff ``fallback_solver`` for an explicit
    one, Dopri8 for the stiff one (whose Newton iterations can stall at a zero-head start:
    measured, stuck at t = 0 where Dopri8 takes 82 steps)."""
    if config.fallback_solver is None:
        return None
    if solver != config.fallback_solver:
        return config.fallback_solver
    return "dopri8" if solver != "dopri8" else None


def _identity(job: _solve.Job) -> tuple:
    """What decides an integration of a given problem (the rest of a Job is fixed by it)."""
    return job.solver, float(job.steady_rtol), float(job.t_hold), float(job.t1)


def fallback_job(case: Case, job: _solve.Job, config: FlowConfig, solver: str | None, why: str) -> _solve.Job | None:
    """The one fallback rule (:mod:`twolayer.flow_config`): integrate again with ``solver``
    at the strict steady rule, unless that very integration already ran for this problem
    (it is deterministic: it would end the same way). None: nothing left to try."""
    if solver is None:
        return None
    alt = job._replace(solver=solver, steady_rtol=float(config.steady_rtol))
    if _identity(alt) in case.tried:
        return None
    case.attempt = 0
    case.stiff = True
    case.notes.append(f"{why}: integrated again with {solver}")
    return alt


def _stop_tail(case: Case, raw, eig, ts, config: FlowConfig):
    """The closed-form tail after a steady stop at every t in ts from the stop on:
    (after (mask of ts), v_t, G_t, TailInfo)."""
    finite = np.isfinite(ts)
    after = np.ones(ts.size, bool)
    after[finite] = ts[finite] >= raw.t_end
    taus = ts[after] - raw.t_end if np.any(after) else np.array([np.inf])
    v_t, G_t, tail = linear_tail(case.s2, case.c, raw.v_end, raw.G_end, taus, config.tail_eig_rtol, eig)
    return after, v_t, G_t, tail


def _steady_result(case: Case, job: _solve.Job, config: FlowConfig) -> FlowResult:
    """How a steady stop was reached, decided where it is accepted."""
    if case.slow is not None:
        return FlowResult.STEADY_SLOW
    if case.stiff:
        return FlowResult.STEADY_STIFF
    if job.steady_rtol != config.steady_rtol:
        return FlowResult.STEADY_RELAXED
    return FlowResult.STEADY_TAIL


# ----------------------------------------------------------------------------- slow modes
def _past_slow_modes(case: Case, t_e: float, v, G, gap: float, ctx: Context, where: str,
                     stopped: bool = True) -> Integrate | None:
    """A stop is a steady state only if the tail's limit is a minimum (issue 7 §2).

    The tail clamps modes slower than ``tail_eig_rtol * lambda_max`` (:mod:`twolayer.tail`);
    with an ill-conditioned X a genuine direction of S can relax that slowly. If the limit's
    :func:`~twolayer.tail.minimum_gap` exceeds :func:`~twolayer.certificate.limit_gap_tol`,
    no steady stop is allowed before t_e + 2 log(10 gap / tol) / lambda_slow, and the flow is
    integrated on with the stiff ``fallback_solver``. Returns that job, or None when the gap
    is within tolerance; raises when it cannot be set. ``stopped=False``: no steady stop by
    t1 = t_e, and ``gap`` is the state's own."""
    config = ctx.config
    tol = limit_gap_tol(config.rtol)
    if gap <= tol:
        return None
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
    case.t_hold = max(case.t_hold, t_need)
    if ctx.want_inf:
        case.t1 = max(case.t1, 2.0 * t_need)
    case.notes.append(what + f": integrated on with {config.fallback_solver}, no steady stop before "
                             f"t={case.t_hold:.4g}")
    return Integrate(_job(case, config, config.fallback_solver, config.steady_rtol))


# ----------------------------------------------------------------------------- the transitions
@_guarded
def start(case: Case, ctx: Context, where: str = ""):
    """The start: nothing to do (t1 = 0), an exact saddle (held), a steady minimum-like start
    (continued in closed form from t = 0, like a stop), or the first integration."""
    config = ctx.config
    case.t1 = ctx.t1
    if ctx.t1 <= 0.0:
        return Hold(FlowResult.SUCCESS, {})
    fnorm, scale = steady_measure(np, case.s2, case.c, case.v0, case.G0)
    if fnorm <= config.steady_rtol * scale:
        eig = reduced_eigh(case.s2, case.c, case.v0, case.G0)
        curv = curvature(case.s2, case.c, case.v0, case.G0, eig)
        if not is_saddle(curv, config, case, case.v0, case.G0):
            k, m = case.G0.shape
            raw0 = _solve.Raw(np.empty((0, k)), np.empty((0, k, m)), case.v0, case.G0, 0.0, ctx.codes["event"],
                              np.zeros(3, np.int64))
            tail = _stop_tail(case, raw0, eig, ctx.ts, config)
            slow = _past_slow_modes(case, 0.0, case.v0, case.G0, tail[3].limit_gap, ctx, where)
            if slow is not None:
                return slow
            # Steady at t = 0 and no negative curvature: the closed-form tail from t = 0
            # (exactly the start where f vanishes); certified like any stop.
            job = _job(case, config, config.solver, config.steady_rtol)
            return Stop(raw0, job, True, eig, curv, tail, FlowResult.STATIONARY_T0)
        if curv.unstable <= 100.0 * EPS * _size(case, case.v0, case.G0):
            return Hold(FlowResult.SADDLE_HELD, dict(curvature=curv._asdict(), unstable=curv.unstable))
        case.t_hold = 2.0 * curv.escape_time
        case.saddle_tries += 1
        case.notes.append(f"near a saddle at t=0 (lambda_min={curv.lambda_min:.3g}, unstable "
                          f"component {curv.unstable:.2e}): no steady stop before t={case.t_hold:.4g}")
    return Integrate(_job(case, config, config.solver, config.steady_rtol * config.retry_schedule[0]))


def _step_limit_error(case: Case, config: FlowConfig, raw, job, ctx: Context, where: str):
    """The step-limit error: what was asked, what made the flow stiff, and what helps."""
    t1 = job.t1
    if ctx.want_inf:
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
    why = diagnose(case.s2, case.c, case.v0, case.G0, raw.t_end, int(raw.stats[0]))
    if why:
        fix = why + "; " + fix
    return SolverStepLimitError(config.max_steps, raw.t_end, t1, where, asked=asked, fix=fix)


def _on_step_limit(case: Case, raw, job, ctx: Context, where: str):
    """A looser steady rule helps a flow that got somewhere; one stuck at t = 0 (every step
    rejected) goes straight to the fallback rule; after it, the step limit raises."""
    config = ctx.config
    if case.attempt + 1 < len(config.retry_schedule) and raw.t_end > 0.0:
        case.attempt += 1
        return Integrate(job._replace(steady_rtol=config.steady_rtol * config.retry_schedule[case.attempt]))
    alt = fallback_job(case, job, config, _other_solver(job.solver, config),
                       f"step limit with {job.solver} at t={raw.t_end:.4g}")
    if alt is not None:
        return Integrate(alt)
    raise _step_limit_error(case, config, raw, job, ctx, where)


def _on_saddle_stop(case: Case, raw, job, curv: Curvature, where: str):
    """A stop at a saddle: the steady rule cannot tell it from a minimum. Integrate on."""
    if case.saddle_tries >= 4 or not math.isfinite(curv.escape_time):
        raise SolverFailedError(
            f"the flow stopped at a saddle at t={raw.t_end:.6g}{where} (lambda_min="
            f"{curv.lambda_min:.3g}, unstable component {curv.unstable:.2e}) and did not escape "
            f"after {case.saddle_tries} tries; raise t_inf_max or max_steps")
    case.saddle_tries += 1
    case.t_hold = max(raw.t_end + 2.0 * curv.escape_time, 2.0 * case.t_hold, raw.t_end * 2.0)
    case.notes.append(f"stop at a saddle at t={raw.t_end:.4g} rejected (lambda_min={curv.lambda_min:.3g});"
                      f" no steady stop before t={case.t_hold:.4g}")
    return Integrate(job._replace(t_hold=case.t_hold))


@_guarded
def after_solve(case: Case, job: _solve.Job, raw: _solve.Raw, ctx: Context, where: str = ""):
    """The transition after one integration ``job`` ended in ``raw``."""
    config, codes = ctx.config, ctx.codes
    case.steps_total += int(raw.stats[0])
    case.tried.add(_identity(job))
    if raw.code == codes["max_steps"]:
        return _on_step_limit(case, raw, job, ctx, where)
    if raw.code not in (codes["ok"], codes["event"]):
        raise SolverFailedError(f"diffrax failed with result code {raw.code} at t={raw.t_end:.6g}{where}; "
                                "try solver='kvaerno5'")
    steady = raw.code == codes["event"]
    if not (steady or ctx.want_inf):
        return Stop(raw, job, False, None, None, None, FlowResult.SUCCESS)
    # The curvature at the end state decides both cases below: a stop at a saddle, or not
    # steady by t1 (is only a slow mode left?).
    eig = reduced_eigh(case.s2, case.c, raw.v_end, raw.G_end)
    curv = curvature(case.s2, case.c, raw.v_end, raw.G_end, eig)
    saddle = is_saddle(curv, config, case, raw.v_end, raw.G_end)
    if not steady:
        slow = None if saddle else _past_slow_modes(
            case, raw.t_end, raw.v_end, raw.G_end, minimum_gap(case.s2, case.c, raw.v_end, raw.G_end), ctx,
            where, stopped=False)
        if slow is not None:
            return slow
        raise SolverFailedError(f"no steady state reached by t_inf_max={job.t1:g}{where}: raise t_inf_max "
                                f"(FlowConfig.t_inf_max) or steady_rtol, or ask for finite times only")
    if saddle:
        return _on_saddle_stop(case, raw, job, curv, where)
    tail = _stop_tail(case, raw, eig, ctx.ts, config)
    slow = _past_slow_modes(case, raw.t_end, raw.v_end, raw.G_end, tail[3].limit_gap, ctx, where)
    if slow is not None:
        return slow
    return Stop(raw, job, True, eig, curv, tail, _steady_result(case, job, config))


# ----------------------------------------------------------------------------- outputs and certificate
def _outputs(case: Case, stop: Stop, ts):
    """Outputs at every t in ts: the integrated values, and after a stop the closed-form tail."""
    raw = stop.raw
    finite = np.isfinite(ts)
    nf = int(finite.sum())
    v_out = np.empty((ts.size, case.v0.size))
    G_out = np.empty((ts.size,) + case.G0.shape)
    if raw.v_ts.shape[0] >= nf:
        v_out[finite], G_out[finite] = raw.v_ts[:nf], raw.G_ts[:nf]
    v_out[~finite], G_out[~finite] = raw.v_end, raw.G_end
    tail = None
    if stop.steady:
        after, v_t, G_t, tail = stop.tail
        if np.any(after):
            v_out[after], G_out[after] = v_t, G_t
    return v_out, G_out, tail


def _finish_hold(case: Case, hold: Hold, ctx: Context, wall: float) -> Done:
    config, ts = ctx.config, ctx.ts
    result, extra = hold.result, hold.extra
    v_out = np.repeat(case.v0[None], ts.size, 0)
    G_out = np.repeat(case.G0[None], ts.size, 0)
    stats = dict(solver=config.solver, rtol=config.rtol, atol=config.atol, atol_effective=None,
                 steady_rtol=config.steady_rtol, num_steps=0, num_accepted_steps=0, num_rejected_steps=0,
                 t_steady=0.0 if result.is_held else None, wall_time_s=wall, batched=ctx.batched, tail=None,
                 tail_correction_norm=None, tail_null_residual=None, notes=list(case.notes), **extra)
    cert = None
    if config.certify and result.is_held:
        t0 = time.perf_counter()
        cert = certify(case.s2, case.c, v_out[:1], G_out[:1], case.v0, case.G0, case.i2_norm0,
                       rtol=config.rtol, steady_rtol=config.steady_rtol, saddle_rtol=config.saddle_rtol,
                       curvature=Curvature(**extra["curvature"]))
        cert["seconds"] = time.perf_counter() - t0
    return Done(v_out, G_out, result, stats, cert)


def _finish_stop(case: Case, stop: Stop, ctx: Context, wall: float, where: str) -> Done:
    config, ts, raw, job = ctx.config, ctx.ts, stop.raw, stop.job
    t0 = time.perf_counter()
    v_out, G_out, tail = _outputs(case, stop, ts)
    if not (np.all(np.isfinite(v_out)) and np.all(np.isfinite(G_out))):
        raise SolverFailedError(f"non-finite state in the solution{where}")
    cert = None
    if config.certify:
        scale = steady_measure(np, case.s2, case.c, raw.v_end, raw.G_end)[1] if stop.steady else None
        order = np.argsort(ts, kind="stable")
        cert = certify(case.s2, case.c, v_out[order], G_out[order], case.v0, case.G0, case.i2_norm0,
                       rtol=config.rtol, steady_rtol=job.steady_rtol, saddle_rtol=config.saddle_rtol,
                       tail=tail, steady_scale=scale, curvature=stop.curv,
                       saddle=stop.curv is not None and is_saddle(stop.curv, config, case, raw.v_end, raw.G_end))
        cert["seconds"] = time.perf_counter() - t0
    stats = dict(solver=job.solver, rtol=config.rtol, atol=config.atol, atol_effective=job.atol,
                 steady_rtol=job.steady_rtol, num_steps=int(raw.stats[0]), num_accepted_steps=int(raw.stats[1]),
                 num_rejected_steps=int(raw.stats[2]), num_steps_total=case.steps_total,
                 t_steady=raw.t_end if stop.steady else None, t_hold=case.t_hold or None, t1=job.t1,
                 slow_rate=case.slow, wall_time_s=wall, batched=ctx.batched,
                 tail="linearised closed form" if tail is not None else None,
                 tail_correction_norm=tail.correction_norm if tail is not None else None,
                 tail_null_residual=tail.null_residual if tail is not None else None,
                 tail_second_order=tail.second_order if tail is not None else None,
                 curvature=stop.curv._asdict() if stop.curv is not None else None, notes=list(case.notes))
    return Done(v_out, G_out, stop.result, stats, cert)


@_guarded
def finish(case: Case, ending: Stop | Hold, ctx: Context, where: str = ""):
    """Package an ending (outputs, certificate, stats). A failed certificate follows the
    fallback rule (integrate again) or fails: it is never returned as a success."""
    wall = (time.perf_counter() - ctx.started) / ctx.n
    if isinstance(ending, Hold):
        return _finish_hold(case, ending, ctx, wall)
    done = _finish_stop(case, ending, ctx, wall, where)
    cert = done.certificate
    if cert is None or cert["passed"]:
        return done
    config = ctx.config
    was = "the closed form at t=0" if ending.result is FlowResult.STATIONARY_T0 else ending.job.solver
    alt = fallback_job(case, ending.job, config, config.fallback_solver,
                       f"certificate failed ({', '.join(cert['failed'])}) with {was}")
    if alt is not None:
        return Integrate(alt)
    tried = "" if config.fallback_solver is None else \
        f" (the fallback integration, {config.fallback_solver} at steady_rtol={config.steady_rtol:.0e}, ran already)"
    raise SolverCertificateError(
        f"the solution failed its certificate ({', '.join(cert['failed'])}){where}{tried}: "
        + ", ".join(f"{n}={cert[n]:.3g} > {cert[n + '_tol']:.1e}" for n in cert["failed"])
        + "; tighten rtol or steady_rtol, or raise max_steps", cert)
