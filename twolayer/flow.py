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
Every FT / LP-FT result carries an a-posteriori certificate (:mod:`twolayer.certificate`;
``Trajectory.certificate``) and an error bar (:mod:`twolayer.accuracy`). A step limit after
every retry, or a failing certificate, follows the one fallback rule
(:mod:`twolayer.flow_config`: the other solver once, at the strict steady rule), and raises
if that fails too: a failure is never returned as a success.

Where the code is: the policy's transitions in :mod:`twolayer.policy` (start, after a
solve, finish; each on a whole chunk of problems as stacked arrays), the settings in
:mod:`twolayer.flow_config`, and here the input checks, the driver (threads, vmapped
chunks, padding) and the public functions.

Compilation and cores (issue 10): tolerances and rules are traced values, save times are
padded to power-of-two buckets and batches run as single solves on a thread pool (CPU,
``batching="map"``) or as fixed-size vmapped chunks (GPU, ``"vmap"``), so a new batch
size, tolerance or number of times does not compile again; :func:`compile_count` says how
often the solver was compiled. The persistent compilation cache (:mod:`twolayer._jaxcache`,
env ``TWOLAYER_JAX_CACHE``) makes a new process start warm. :func:`policy_seconds` says
where the host's share of a batch goes, by stage (:mod:`twolayer._timing`).
"""


from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from . import _solve, rates
from ._jaxcache import cache_dir, compile_count
from ._timing import policy_seconds, timed
from .accuracy import closed_form_accuracy, flow_accuracy
from .errors import SolverFailedError, TwoLayerInputError
from .flow_config import BATCHINGS, SOLVERS, FlowConfig, make_config as _make_config
from .methods import METHODS, Method, get_method
from .policy import MAX_ROUNDS, Case, Context, Done, Fail, Hold, Integrate, Stop, after_solve, finish, start
from .problem import Problem, check_problem as _check_problem
from .trajectory import FlowResult, Trajectory

__all__ = ["FlowConfig", "FlowResult", "simulate", "simulate_batch", "compile_count", "cache_dir",
           "policy_seconds", "METHODS", "SOLVERS", "BATCHINGS"]

# Groups of one vmapped chunk in flight at once (simulate_batch, batching="vmap"): one
# solving while the others run their policy on the threads.
_VMAP_DRIVERS = 3


# ----------------------------------------------------------------------------- input checks
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


# ----------------------------------------------------------------------------- the driver
def _context(ts: np.ndarray, config: FlowConfig, batched: bool, n: int) -> Context:
    finite = np.isfinite(ts)
    ts_f = ts[finite]
    want_inf = bool(np.any(~finite))
    t_last = float(ts_f[-1]) if ts_f.size else 0.0
    t1 = float(config.t_inf_max) if want_inf else t_last
    if want_inf and t_last > t1:
        raise TwoLayerInputError("ts", f"finite times up to {t_last:g} lie beyond t_inf_max={t1:g}",
                                 "raise FlowConfig.t_inf_max (t_inf_max=...) above the last finite time")
    return Context(ts, t1, want_inf, config, _solve.result_codes(), batched, time.perf_counter(), n)


def _settle(cases: list, idx: list, transitions: list, ctx: Context) -> list:
    """Finish the endings (Stop, Hold) among a chunk's transitions at once: returns each
    case's Integrate, Done or Fail."""
    at = [j for j, tr in enumerate(transitions) if isinstance(tr, (Stop, Hold))]
    if at:
        with timed("finish"):
            done = finish([cases[j] for j in at], [transitions[j] for j in at], ctx, [idx[j] for j in at])
        for j, tr in zip(at, done):
            transitions[j] = tr
    return transitions


def _unfinished(ctx: Context, i: int) -> Fail:
    return Fail(SolverFailedError(f"the retry policy did not finish in {MAX_ROUNDS} integrations{ctx.where(i)}"))


class _Driver:
    """Moves the problems of one call through the policy (:mod:`twolayer.policy`): their
    jobs to the solver, one at a time per thread ("map") or as padded vmapped chunks
    ("vmap"), and the raw ends back into transitions, a chunk at a time. Holds no policy
    of its own."""

    def __init__(self, cases: list[Case], ctx: Context, pool, batching: str):
        config = ctx.config
        self.cases, self.ctx, self.batching, self.pool = cases, ctx, batching, pool
        self.ts_pad = _solve.pad_times(ctx.ts[np.isfinite(ctx.ts)])
        self.chunk = int(config.chunk) if config.chunk is not None else _solve.default_chunk()
        self.ends: list = [None] * len(cases)

    def has_run(self, chunk: int = 0) -> bool:
        k, m = self.cases[0].G0.shape
        return _solve.has_run(self.ctx.config.solver, self.ctx.config.max_steps, k, m, self.ts_pad, chunk)

    def integrate(self, jobs):
        return _solve.integrate(jobs, self.ts_pad, max_steps=int(self.ctx.config.max_steps),
                                batching=self.batching, chunk=self.chunk)

    def begin(self, idx: list) -> list:
        cases = [self.cases[i] for i in idx]
        with timed("prepare"):
            transitions = start(cases, self.ctx, idx)
        return _settle(cases, idx, transitions, self.ctx)

    def advance(self, idx: list, jobs: list, raws: list) -> list:
        cases = [self.cases[i] for i in idx]
        with timed("stop"):
            transitions = after_solve(cases, jobs, raws, self.ctx, idx)
        return _settle(cases, idx, transitions, self.ctx)

    def end(self, i, transition):
        self.ends[i] = _unfinished(self.ctx, i) if isinstance(transition, Integrate) else transition

    def drive(self, idx):
        """One chunk through the policy: its pending jobs integrated together each round
        (one padded vmapped solve, or one solve per job on this thread with "map"), the
        transitions of the chunk at once."""
        idx = list(idx)
        state = dict(zip(idx, self.begin(idx)))
        for _ in range(MAX_ROUNDS):
            pending = [i for i in idx if isinstance(state[i], Integrate)]
            if not pending:
                break
            jobs = [state[i].job for i in pending]
            state.update(zip(pending, self.advance(pending, jobs, self.integrate(jobs))))
        for i in idx:
            self.end(i, state[i])

    def run(self) -> list:
        n = len(self.cases)
        if self.batching == "map":
            first = 0
            while first < n and not self.has_run():     # alone until a first solve (it may compile)
                self.drive([first])
                first += 1
            if self.pool is not None and n - first > 1:
                list(self.pool.map(lambda i: self.drive([i]), range(first, n)))
            else:
                for i in range(first, n):
                    self.drive([i])
            return self.ends
        groups = [range(a, min(a + self.chunk, n)) for a in range(0, n, self.chunk)]
        if self.pool is None or len(groups) == 1:
            for idx in groups:
                self.drive(idx)
            return self.ends
        if not self.has_run(self.chunk):
            self.drive(groups.pop(0))                    # alone: it may trace and compile
        with ThreadPoolExecutor(max_workers=_VMAP_DRIVERS) as drivers:
            list(drivers.map(self.drive, groups))
        return self.ends


def _solve_cases(cases: list[Case], ts: np.ndarray, config: FlowConfig, batched: bool,
                 pool: ThreadPoolExecutor | None, batching: str) -> list:
    """Drive every case through the policy; returns one Done or Fail per case."""
    return _Driver(cases, _context(ts, config, batched, len(cases)), pool, batching).run()


# ----------------------------------------------------------------------------- public API
def _lp_trajectory(problem: Problem, ts: np.ndarray, v0: np.ndarray, method: str = "lp",
                   notes: tuple = ()) -> Trajectory:
    """The LP closed form from ``v0``; also FT / LP-FT at feature_rate 0 (B frozen), named ``method``."""
    from .lp import _probe
    start = time.perf_counter()
    v = _probe(problem).head(ts, v0)
    B = np.broadcast_to(problem.B0, (ts.size,) + problem.B0.shape)
    extra = {} if method == "lp" else dict(feature_rate=0.0)
    return Trajectory(ts=ts, v=v, B=B, method=method, v0=v0, result=FlowResult.CLOSED_FORM,
                      stats=dict(solver="closed-form", wall_time_s=time.perf_counter() - start, notes=list(notes),
                                 **extra),
                      accuracy=closed_form_accuracy())


def _frozen_features(problem: Problem, meth: Method, ts, v0, config: FlowConfig) -> Trajectory | None:
    """LP's closed form where B does not move (LP, or feature_rate 0 from the method's start)."""
    if not meth.trains_B:
        ignored = () if config.feature_rate == 1.0 else (
            f"feature_rate={config.feature_rate:g} has no effect on LP: its features are frozen (THEORY.md §3)",)
        return _lp_trajectory(problem, ts, v0, notes=ignored)
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


def _case_for(problem: Problem, meth: Method, v0: np.ndarray, gamma: float = 1.0) -> Case:
    """The reduced start; for feature_rate gamma != 1 in the scaled coordinates u = q v,
    H = G / q, q = gamma^(1/4) (:mod:`twolayer.rates`)."""
    with timed("reduce"):               # the SVD of X, once per Problem (cached on it)
        s2, c, G0, _ = problem.reduced
    v_start = np.asarray(meth.start(problem, v0), np.float64)
    q = rates.head_scale(gamma) if gamma != 1.0 else 1.0
    i2 = float(np.linalg.norm(np.outer(v_start, v_start) * q ** 2 - problem.B0_B0T / q ** 2))
    return Case(np.asarray(s2, np.float64), np.asarray(c, np.float64), q * v_start,
                 np.asarray(G0, np.float64) / q, i2)


def _package(problem, method, ts, case: Case, done: Done, gamma: float = 1.0) -> Trajectory:
    with timed("package"):
        return _trajectory(problem, method, ts, done, case.v0, gamma)


def _trajectory(problem, method, ts, done: Done, v_start: np.ndarray, gamma: float = 1.0) -> Trajectory:
    v_out, G_out, result, stats, cert = done
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
    (end,) = _solve_cases([case], *_flow_frame(ts, config), batched=False, pool=None, batching="map")
    if isinstance(end, Fail):
        raise end.error
    return _package(problem, meth.name, ts, case, end, config.feature_rate)


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
                                     f"problem 0 has ({k}, {m})", "batch problems of the same (k, m); d may differ")
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
    ends = _solve_cases(cases, *_flow_frame(ts, config), batched=True, pool=pool, batching=batching)
    if throw:
        for end in ends:
            if isinstance(end, Fail):
                raise end.error
    return list(pmap(lambda pce: pce[2].error if isinstance(pce[2], Fail)
                     else _package(pce[0], meth.name, ts, pce[1], pce[2], gamma), zip(problems, cases, ends)))
