"""The solve policy of one FT / LP-FT problem, as explicit transitions (issue 19; the rules
themselves are described in :mod:`twolayer.flow`).

A problem is a :class:`Case` (its reduced data and what the policy has tried). Each
transition takes a chunk of cases (a list; one problem is a chunk of one) and returns, for
each, what happens next:

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

The numbers run on the whole chunk as stacked arrays (issue 19 §2): the start's steady
test and tolerances, the stop analysis (:func:`twolayer.tail.analyse`: one stacked
eigendecomposition, the curvature, the closed-form tail, the limit gap) and the
certificate (:func:`twolayer.certificate.certify_chunk`); only the decisions, which are
scalar, run per problem.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field as dc_field
from typing import NamedTuple

import numpy as np

from . import _solve
from ._field import field, steady_measure
from .certificate import certify, certify_chunk, limit_gap_tol
from .errors import SolverCertificateError, SolverError, SolverFailedError, SolverStepLimitError
from .flow_config import FlowConfig
from .stiffness import diagnose, hessian_bound
from .tail import Curvature, TailInfo, analyse, slow_rate
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
    curv: Curvature | None
    found: "Found | None"    # what the stop analysis found there (steady stops): curvature, tail
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


class _Chunk(NamedTuple):
    """The reduced data of a chunk of cases, stacked (leading batch axis)."""

    s2: np.ndarray
    c: np.ndarray
    v0: np.ndarray
    G0: np.ndarray

    @classmethod
    def of(cls, cases: list) -> "_Chunk":
        return cls(*(np.stack([getattr(case, name) for case in cases]) for name in cls._fields))


def _job_settings(chunk: _Chunk, config: FlowConfig, t1: np.ndarray):
    """(atol, dt0) of each case's integration from its start, arrays (B,).

    atol is scaled to the displacement scale Delta = ||f(y0)|| / L (:mod:`twolayer.flow`),
    never below the rounding noise of the field over the fastest time scale 1 / L, with
    L = :func:`twolayer.stiffness.hessian_bound` at the start; dt0 = DT0_FRACTION / L, at
    most t1 / 10 (see :mod:`twolayer._solve` for why it is explicit)."""
    L = hessian_bound(*chunk)
    pos = L > 0
    safe_L = np.where(pos, L, 1.0)
    if config.atol_relative:
        fv, fG, _ = field(np, *chunk)
        fn = np.sqrt(np.sum(fv ** 2, axis=-1) + np.sum(fG ** 2, axis=(-2, -1)))
        delta = np.where(pos, fn / safe_L, 1.0)
        scale = steady_measure(np, *chunk)[1]
        floor = np.where(pos, 10.0 * EPS * scale / safe_L, 0.0)
        atol = np.maximum(np.maximum(float(config.atol) * np.minimum(delta, 1.0), floor), 1e-300)
    else:
        atol = np.full(L.shape, float(config.atol))
    dt = np.where(pos, DT0_FRACTION / safe_L, t1)
    dt0 = np.where(t1 > 0, np.minimum(dt, 0.1 * t1), dt)
    return atol, dt0


def _jobs(cases: list, config: FlowConfig, solver: str, steady_rtol: float, chunk: _Chunk | None = None) -> list:
    """The integration of each case from its start with ``solver`` at ``steady_rtol``
    (``chunk``: the cases' data already stacked)."""
    t1 = np.array([case.t1 for case in cases], np.float64)
    atol, dt0 = _job_settings(chunk if chunk is not None else _Chunk.of(cases), config, t1)
    return [_solve.Job(case.s2, case.c, case.v0, case.G0, float(steady_rtol), float(case.t_hold),
                       float(config.rtol), float(atol[i]), solver, float(case.t1), float(dt0[i]))
            for i, case in enumerate(cases)]


def _job(case: Case, config: FlowConfig, solver: str, steady_rtol: float) -> _solve.Job:
    return _jobs([case], config, solver, steady_rtol)[0]


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


class Found(NamedTuple):
    """What the stop analysis found at one case's state (:func:`_analyse`): its curvature,
    its tail (``v_t``, ``G_t``: the tail's states at every output time, used from the stop
    on; ``before``: how many output times lie before the stop (ts is sorted)) and the
    state's own limit gap."""

    curv: Curvature
    tail: TailInfo
    before: int
    v_t: np.ndarray
    G_t: np.ndarray
    gap_here: float


def _analyse(cases: list, v, G, t_ends, ts, config: FlowConfig) -> list:
    """The stop analysis (:func:`twolayer.tail.analyse`) of a chunk's states v (B, k),
    G (B, k, m), with the tail at every output time after each t_end. Returns one
    :class:`Found` or SolverError per case: when the stacked eigensolver fails, each case is
    analysed alone to tell which."""
    t_ends = np.asarray(t_ends, np.float64)
    finite = np.isfinite(ts)
    rel = np.where(finite, ts, 0.0)[None, :] - t_ends[:, None]
    before = np.sum(finite[None, :] & (rel < 0.0), axis=1).tolist()
    chunk = _Chunk.of(cases)
    try:
        out = analyse(chunk.s2, chunk.c, v, G, np.where(finite[None, :], np.maximum(rel, 0.0), np.inf),
                      config.tail_eig_rtol)
    except np.linalg.LinAlgError:
        if len(cases) == 1:
            return [SolverFailedError(f"the eigendecomposition of the reduced Hessian at t={t_ends[0]:.6g} "
                                      "did not converge")]
        return [r for i in range(len(cases))
                for r in _analyse(cases[i:i + 1], v[i:i + 1], G[i:i + 1], t_ends[i:i + 1], ts, config)]
    return [Found(*row) for row in zip(out.curvatures(), out.tails(), before, out.v_t, out.G_t,
                                        out.gap_here.tolist())]


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
def _start_steady(case: Case, found, ctx: Context, where: str):
    """A start that meets the steady rule: a minimum-like start is continued in closed form
    from t = 0 (like a stop), an exact saddle is held, a near-saddle is integrated past its
    escape time."""
    config = ctx.config
    if isinstance(found, SolverError):
        raise found
    curv = found.curv
    if not is_saddle(curv, config, case, case.v0, case.G0):
        k, m = case.G0.shape
        raw0 = _solve.Raw(np.empty((0, k)), np.empty((0, k, m)), case.v0, case.G0, 0.0, ctx.codes["event"],
                          np.zeros(3, np.int64))
        slow = _past_slow_modes(case, 0.0, case.v0, case.G0, found.tail.limit_gap, ctx, where)
        if slow is not None:
            return slow
        # Steady at t = 0 and no negative curvature: the closed-form tail from t = 0
        # (exactly the start where f vanishes); certified like any stop.
        job = _job(case, config, config.solver, config.steady_rtol)
        return Stop(raw0, job, True, curv, found, FlowResult.STATIONARY_T0)
    if curv.unstable <= 100.0 * EPS * _size(case, case.v0, case.G0):
        return Hold(FlowResult.SADDLE_HELD, dict(curvature=curv._asdict(), unstable=curv.unstable))
    case.t_hold = 2.0 * curv.escape_time
    case.saddle_tries += 1
    case.notes.append(f"near a saddle at t=0 (lambda_min={curv.lambda_min:.3g}, unstable "
                      f"component {curv.unstable:.2e}): no steady stop before t={case.t_hold:.4g}")
    return Integrate(_job(case, config, config.solver, config.steady_rtol * config.retry_schedule[0]))


def start(cases: list, ctx: Context, idx: list) -> list:
    """The start of each case of a chunk (``idx``: their places in the call): nothing to do
    (t1 = 0), a steady start (:func:`_start_steady`), or the first integration."""
    config = ctx.config
    for case in cases:
        case.t1 = ctx.t1
    if ctx.t1 <= 0.0:
        return [Hold(FlowResult.SUCCESS, {}) for _ in cases]
    chunk = _Chunk.of(cases)
    fnorm, scale = steady_measure(np, *chunk)
    steady = fnorm <= config.steady_rtol * scale
    out: list = [None] * len(cases)
    moving = np.flatnonzero(~steady)
    if moving.size:
        jobs = _jobs([cases[j] for j in moving], config, config.solver,
                     config.steady_rtol * config.retry_schedule[0], _Chunk(*(a[moving] for a in chunk)))
        for j, job in zip(moving, jobs):
            out[j] = Integrate(job)
    still = np.flatnonzero(steady)
    if still.size:
        held = [cases[j] for j in still]
        found = _analyse(held, np.stack([c.v0 for c in held]), np.stack([c.G0 for c in held]), np.zeros(still.size),
                         ctx.ts, config)
        for j, f in zip(still, found):
            out[j] = _guarded(_start_steady)(cases[j], f, ctx, ctx.where(idx[j]))
    return out


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


def _after_analysis(case: Case, job: _solve.Job, raw: _solve.Raw, found, ctx: Context, where: str):
    """After an integration that stopped steady, or reached t1 while t = inf is asked for:
    the curvature at the end state decides both (a stop at a saddle; not steady by t1: is
    only a slow mode left?), and a steady stop counts only if the tail's limit is a minimum."""
    config = ctx.config
    if isinstance(found, SolverError):
        raise found
    curv = found.curv
    saddle = is_saddle(curv, config, case, raw.v_end, raw.G_end)
    if raw.code != ctx.codes["event"]:
        slow = None if saddle else _past_slow_modes(case, raw.t_end, raw.v_end, raw.G_end, found.gap_here, ctx,
                                                    where, stopped=False)
        if slow is not None:
            return slow
        raise SolverFailedError(f"no steady state reached by t_inf_max={job.t1:g}{where}: raise t_inf_max "
                                f"(FlowConfig.t_inf_max) or steady_rtol, or ask for finite times only")
    if saddle:
        return _on_saddle_stop(case, raw, job, curv, where)
    slow = _past_slow_modes(case, raw.t_end, raw.v_end, raw.G_end, found.tail.limit_gap, ctx, where)
    if slow is not None:
        return slow
    return Stop(raw, job, True, curv, found, _steady_result(case, job, config))


def _triage(case: Case, job: _solve.Job, raw: _solve.Raw, ctx: Context, where: str):
    """What an integration's raw end needs: a transition at once, or None (the stop analysis)."""
    codes = ctx.codes
    case.steps_total += int(raw.stats[0])
    case.tried.add(_identity(job))
    if raw.code == codes["max_steps"]:
        return _on_step_limit(case, raw, job, ctx, where)
    if raw.code not in (codes["ok"], codes["event"]):
        raise SolverFailedError(f"diffrax failed with result code {raw.code} at t={raw.t_end:.6g}{where}; "
                                "try solver='kvaerno5'")
    if raw.code != codes["event"] and not ctx.want_inf:
        return Stop(raw, job, False, None, None, FlowResult.SUCCESS)
    return None


def after_solve(cases: list, jobs: list, raws: list, ctx: Context, idx: list) -> list:
    """The transition of each case of a chunk after its integration ``jobs[i]`` ended in
    ``raws[i]``; the stop analysis runs on all that need it at once."""
    out = [_guarded(_triage)(case, job, raw, ctx, ctx.where(i)) for case, job, raw, i in zip(cases, jobs, raws, idx)]
    todo = [j for j, tr in enumerate(out) if tr is None]
    if todo:
        v, G = np.stack([raws[j].v_end for j in todo]), np.stack([raws[j].G_end for j in todo])
        finite = np.all(np.isfinite(v), axis=1) & np.all(np.isfinite(G), axis=(1, 2))
        for j in (j for j, ok in zip(todo, finite) if not ok):
            out[j] = Fail(SolverFailedError(f"non-finite state at t={raws[j].t_end:.6g}{ctx.where(idx[j])}; "
                                            "try solver='kvaerno5'"))
        todo = [j for j, ok in zip(todo, finite) if ok]
        found = _analyse([cases[j] for j in todo], v[finite], G[finite], [raws[j].t_end for j in todo], ctx.ts,
                         ctx.config) if todo else []
        for j, f in zip(todo, found):
            out[j] = _guarded(_after_analysis)(cases[j], jobs[j], raws[j], f, ctx, ctx.where(idx[j]))
    return out


# ----------------------------------------------------------------------------- outputs and certificate
def _outputs(stops: list, ts):
    """Outputs of a chunk of stops at every t in ts (sorted), (B, T, k) and (B, T, k, m): the
    integrated values, the end state at t = inf, and from a steady stop on the closed-form
    tail."""
    nf = int(np.isfinite(ts).sum())
    raw0 = stops[0].raw
    v_out = np.empty((len(stops), ts.size) + raw0.v_end.shape)
    G_out = np.empty((len(stops), ts.size) + raw0.G_end.shape)
    for j, stop in enumerate(stops):
        raw = stop.raw
        if stop.steady:                       # the tail from the stop on, the solve before it
            b = stop.found.before
            v_out[j], G_out[j] = stop.found.v_t, stop.found.G_t
            v_out[j, :b], G_out[j, :b] = raw.v_ts[:b], raw.G_ts[:b]
        else:
            v_out[j, :nf], G_out[j, :nf] = raw.v_ts[:nf], raw.G_ts[:nf]
            v_out[j, nf:], G_out[j, nf:] = raw.v_end, raw.G_end
    return v_out, G_out


def _finish_hold(case: Case, hold: Hold, ctx: Context, wall: float) -> Done:
    """The start is the answer: the state held at every output time (certified when held
    at a stationary point)."""
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


def _certificates(cases: list, stops: list, v_out, G_out, ctx: Context) -> list:
    """The certificate of every stop of a chunk at once (:func:`twolayer.certificate.certify_chunk`)."""
    config = ctx.config
    chunk = _Chunk.of(cases)
    tails = [stop.found.tail if stop.steady else None for stop in stops]
    curvs = [stop.curv for stop in stops]
    v_end, G_end = np.stack([st.raw.v_end for st in stops]), np.stack([st.raw.G_end for st in stops])
    num = lambda objs, name: [getattr(o, name, 0.0) for o in objs]     # absent: not counted
    return certify_chunk(                                               # ts is sorted, inf last
        chunk.s2, chunk.c, v_out, G_out, chunk.v0, chunk.G0, [case.i2_norm0 for case in cases],
        rtol=config.rtol, steady_rtol=[st.job.steady_rtol for st in stops], saddle_rtol=config.saddle_rtol,
        has_tail=[t is not None for t in tails], tail_second_order=num(tails, "second_order"),
        tail_null_residual=num(tails, "null_residual"), limit_gap=num(tails, "limit_gap"),
        steady_scale=steady_measure(np, chunk.s2, chunk.c, v_end, G_end)[1],
        has_curvature=[cv is not None for cv in curvs], lambda_min=num(curvs, "lambda_min"),
        lambda_max=num(curvs, "lambda_max"),
        saddle=[cv is not None and is_saddle(cv, config, case, st.raw.v_end, st.raw.G_end)
                for cv, case, st in zip(curvs, cases, stops)])


def _stop_stats(case: Case, stop: Stop, ctx: Context, wall: float) -> dict:
    config, raw, job = ctx.config, stop.raw, stop.job
    tail = stop.found.tail if stop.steady else None
    return dict(solver=job.solver, rtol=config.rtol, atol=config.atol, atol_effective=job.atol,
                steady_rtol=job.steady_rtol, num_steps=int(raw.stats[0]), num_accepted_steps=int(raw.stats[1]),
                num_rejected_steps=int(raw.stats[2]), num_steps_total=case.steps_total,
                t_steady=raw.t_end if stop.steady else None, t_hold=case.t_hold or None, t1=job.t1,
                slow_rate=case.slow, wall_time_s=wall, batched=ctx.batched,
                tail="linearised closed form" if tail is not None else None,
                tail_correction_norm=tail.correction_norm if tail is not None else None,
                tail_null_residual=tail.null_residual if tail is not None else None,
                tail_second_order=tail.second_order if tail is not None else None,
                curvature=stop.curv._asdict() if stop.curv is not None else None, notes=list(case.notes))


def _finish_stops(cases: list, stops: list, ctx: Context, wall: float, wheres: list) -> list:
    """Outputs, certificates and stats of a chunk of stops: one Done, or a SolverError, each."""
    t0 = time.perf_counter()
    v_out, G_out = _outputs(stops, ctx.ts)
    finite = np.all(np.isfinite(v_out), axis=(1, 2)) & np.all(np.isfinite(G_out), axis=(1, 2, 3))
    certs = [None] * len(stops)
    if ctx.config.certify:
        certs = _certificates(cases, stops, v_out, G_out, ctx)
        seconds = (time.perf_counter() - t0) / len(stops)
        for cert in certs:
            cert["seconds"] = seconds
    return [Done(v_out[j], G_out[j], stop.result, _stop_stats(case, stop, ctx, wall), certs[j]) if finite[j]
            else SolverFailedError(f"non-finite state in the solution{where}")
            for j, (case, stop, where) in enumerate(zip(cases, stops, wheres))]


def _checked(case: Case, ending: Stop, done, ctx: Context, where: str):
    """A finished stop whose certificate passed, or the fallback rule (integrate again), or a
    failure: a failed certificate is never returned as a success."""
    if isinstance(done, SolverError):
        raise done
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


def finish(cases: list, endings: list, ctx: Context, idx: list) -> list:
    """Package the endings (Stop or Hold) of a chunk: outputs, certificate, stats. A failed
    certificate follows the fallback rule (integrate again) or fails."""
    wall = (time.perf_counter() - ctx.started) / ctx.n
    out: list = [_guarded(_finish_hold)(case, e, ctx, wall) if isinstance(e, Hold) else None
                 for case, e in zip(cases, endings)]
    at = [j for j, e in enumerate(endings) if isinstance(e, Stop)]
    if at:
        wheres = [ctx.where(idx[j]) for j in at]
        dones = _finish_stops([cases[j] for j in at], [endings[j] for j in at], ctx, wall, wheres)
        for j, done, where in zip(at, dones, wheres):
            out[j] = _guarded(_checked)(cases[j], endings[j], done, ctx, where)
    return out
