"""Exact gradient flow of two-layer linear networks (THEORY.md §1, §3).

The FT flow dv/dt = -2 B X^T r, dB/dt = -2 v r^T X (r = X B^T v - y) moves B only
inside S (invariant I1), and the loss sees X only through X^T X and X^T y. With
X = U diag(s) V^T and Q_S = V[:, :m] we write B = B0 P_Sperp + G Q_S^T, G in R^{k x m},
and the flow becomes (in the basis where X^T X restricted to S is diagonal)

    r_S = s^2 * (G^T v) - s * (U_m^T y),   dv/dt = -2 G r_S,   dG/dt = -2 v r_S^T,

whose cost is O(k m) per evaluation, independent of n and d. It is integrated in
float64 with diffrax (adaptive, explicit tolerances). The full B(t) is rebuilt
exactly; I1 then holds to rounding.

Steady state (used for ``t = inf`` and to skip the stiff tail, THEORY.md §8): the
integration stops at the first accepted step where

    ||f(y)||_2 <= steady_rtol * scale(y),  scale = 2 ||G||_F (||s^2 * G^T v|| + ||c||) + 2 ||v|| ||r_S||

(default steady_rtol = 1e-9, above the level at which an explicit solver's stiff-mode
noise keeps ||f|| / scale, measured at 1e-12 to 4e-10; if the step limit is hit first the
problem is retried with a 10x, then 100x looser rule, and the status says so), and the flow is
continued from there in closed form by the linearised flow (:mod:`twolayer.tail`):
y(t) = y_e + E diag(-expm1(-lambda (t - t_e)) / lambda) E^T f_e, H = E diag(lambda) E^T
the Hessian of the reduced loss. Its error is second order in the remaining
displacement ||H^+ f_e|| (reported in ``stats['tail_correction_norm']``); tests compare
it against integrating on without stopping (agreement at the solver's accuracy).
"""

from __future__ import annotations

import time
from typing import NamedTuple, Sequence

import numpy as np

from .errors import SolverFailedError, SolverStepLimitError, TwoLayerInputError
from .lp import LinearProbe
from .problem import Problem
from .tail import _field, linear_tail
from .trajectory import Trajectory

__all__ = ["FlowConfig", "simulate", "simulate_batch", "METHODS", "SOLVERS"]

METHODS = ("lp", "ft", "lpft")
SOLVERS = ("dopri8", "tsit5", "kvaerno5")


class FlowConfig(NamedTuple):
    """Solver settings (all explicit; see the module docstring for the steady rule)."""

    rtol: float = 1e-10
    atol: float = 1e-12
    solver: str = "dopri8"
    max_steps: int = 100_000
    steady_rtol: float = 1e-9
    t_inf_max: float = 1e6
    tail_eig_rtol: float = 1e-8


# ----------------------------------------------------------------------------- input checks
def _check_method(method: str) -> str:
    if method not in METHODS:
        raise TwoLayerInputError("method", f"unknown method {method!r}", f"use one of {METHODS}")
    return method


def _check_ts(ts) -> np.ndarray:
    try:
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("ts", f"cannot convert to float64 ({exc})") from exc
    if ts.size == 0:
        raise TwoLayerInputError("ts", "is empty", "pass at least one time")
    if np.any(np.isnan(ts)):
        raise TwoLayerInputError("ts", "contains NaN")
    if np.any(ts < 0) or np.any(np.isneginf(ts)):
        raise TwoLayerInputError("ts", f"contains negative times (min {ts.min()})", "times start at 0")
    if np.any(np.diff(ts) < 0):
        raise TwoLayerInputError("ts", "is not sorted in non-decreasing order", "pass np.sort(ts)")
    return ts


def _check_v0(problem: Problem, v0) -> np.ndarray:
    if v0 is None:
        return np.array(problem.v0)
    try:
        v0 = np.asarray(v0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("v0", f"cannot convert to float64 ({exc})") from exc
    if v0.shape != (problem.k,):
        raise TwoLayerInputError("v0", f"shape {v0.shape}, expected ({problem.k},)")
    if not np.all(np.isfinite(v0)):
        raise TwoLayerInputError("v0", "contains NaN/inf")
    return v0


def _check_config(config: FlowConfig) -> FlowConfig:
    if config.solver not in SOLVERS:
        raise TwoLayerInputError("solver", f"unknown solver {config.solver!r}", f"use one of {SOLVERS}")
    for name in ("rtol", "atol", "steady_rtol"):
        val = getattr(config, name)
        if not (np.isfinite(val) and val > 0):
            raise TwoLayerInputError(name, f"must be a positive finite float, got {val!r}")
    if int(config.max_steps) < 1:
        raise TwoLayerInputError("max_steps", f"must be >= 1, got {config.max_steps}")
    return config


# ----------------------------------------------------------------------------- the JAX solve
_SOLVE_CACHE: dict = {}


def _build_solve(solver_name: str, rtol: float, atol: float, max_steps: int, batched: bool):
    """A jitted pure function (s2, c, v0, G0, ts, t1) -> (v_ts, G_ts, v_end, G_end, t_end, result, stats)."""
    key = (solver_name, rtol, atol, max_steps, batched)
    if key in _SOLVE_CACHE:
        return _SOLVE_CACHE[key]
    import diffrax
    import jax
    import jax.numpy as jnp

    # The state is the displacement (dv, dG) = (v - v_start, G - G0), so that the
    # tolerances control the change made by fine-tuning itself: when FT moves the
    # state by a small amount (LP-FT, small eps), it is still resolved to rtol.
    def _full(y, args):
        dv, dG = y
        s2, c, v_start, G0, _ = args
        return v_start + dv, G0 + dG, s2, c

    def vector_field(t, y, args):
        v, G, s2, c = _full(y, args)
        r = s2 * (G.T @ v) - c
        return (-2.0 * (G @ r), -2.0 * jnp.outer(v, r))

    def steady(t, y, args, **kwargs):
        v, G, s2, c = _full(y, args)
        Gtv = G.T @ v
        r = s2 * Gtv - c
        fv, fG = -2.0 * (G @ r), -2.0 * jnp.outer(v, r)
        fnorm = jnp.sqrt(jnp.sum(fv ** 2) + jnp.sum(fG ** 2))
        scale = 2.0 * jnp.linalg.norm(G) * (jnp.linalg.norm(s2 * Gtv) + jnp.linalg.norm(c)) \
            + 2.0 * jnp.linalg.norm(v) * jnp.linalg.norm(r)
        return fnorm <= args[4] * scale

    solver = {"dopri8": diffrax.Dopri8, "tsit5": diffrax.Tsit5, "kvaerno5": diffrax.Kvaerno5}[solver_name]()
    term = diffrax.ODETerm(vector_field)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)

    def solve_one(s2, c, v0, G0, ts, t1, steady_rtol):
        zero = (jnp.zeros_like(v0), jnp.zeros_like(G0))
        sol = diffrax.diffeqsolve(
            term, solver, t0=0.0, t1=t1, dt0=None, y0=zero, args=(s2, c, v0, G0, steady_rtol),
            saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)]),
            stepsize_controller=controller,
            max_steps=max_steps, event=diffrax.Event(steady), throw=False,
        )
        (dv_ts, dG_ts), (dv_end, dG_end) = sol.ys
        stats = jnp.stack([sol.stats["num_steps"], sol.stats["num_accepted_steps"],
                           sol.stats["num_rejected_steps"]])
        return (v0 + dv_ts, G0 + dG_ts, v0 + dv_end[0], G0 + dG_end[0], sol.ts[1][0],
                sol.result._value, stats)

    if batched:
        # Measured (experiments/benchmark_flow.py): a sequential lax.map over problems, each
        # with its own adaptive steps and steady stop, beats vmap here. Under vmap every
        # problem takes as many steps as the stiffest one, and the Dopri8 stage
        # combinations over the whole batch are memory-bound on the CPU.
        def fn(s2, c, v0, G0, ts, t1, steady_rtol):
            return jax.lax.map(lambda a: solve_one(*a, ts, t1, steady_rtol), (s2, c, v0, G0))
    else:
        fn = solve_one
    fn = jax.jit(fn)
    _SOLVE_CACHE[key] = fn
    return fn


def _result_codes():
    import diffrax
    return (int(diffrax.RESULTS.successful._value), int(diffrax.RESULTS.event_occurred._value),
            int(diffrax.RESULTS.max_steps_reached._value))


def _pad_ts(ts_f: np.ndarray) -> np.ndarray:
    """Pad the save times to a power-of-two length (fewer recompilations)."""
    T = max(1, ts_f.size)
    size = 1 << (T - 1).bit_length()
    last = ts_f[-1] if ts_f.size else 0.0
    return np.concatenate([ts_f, np.full(size - ts_f.size, last)])


def _steady_np(s2, c, v, G, steady_rtol: float) -> bool:
    """The steady-state rule of the module docstring, in NumPy (checked at t = 0)."""
    fv, fG, r = _field(s2, c, v, G)
    fnorm = np.sqrt(np.sum(fv ** 2) + np.sum(fG ** 2))
    scale = 2.0 * np.linalg.norm(G) * (np.linalg.norm(s2 * (G.T @ v)) + np.linalg.norm(c)) \
        + 2.0 * np.linalg.norm(v) * np.linalg.norm(r)
    return bool(fnorm <= steady_rtol * scale)


def _solve_reduced(items, ts: np.ndarray, config: FlowConfig, batched: bool):
    """Run the FT flow for each (s2, c, v0, G0) in ``items``.

    Returns one (v (T, k), G (T, k, m), status, stats) per item. Items that already
    satisfy the steady-state rule at t = 0 (e.g. LP-FT with perfect features, where
    the gradient vanishes) are held from t = 0 without calling the solver, whose
    automatic first step would divide by a zero derivative.
    """
    import jax
    import jax.numpy as jnp

    finite = np.isfinite(ts)
    ts_f = ts[finite]
    want_inf = bool(np.any(~finite))
    t_last = float(ts_f[-1]) if ts_f.size else 0.0
    t1 = float(config.t_inf_max) if want_inf else t_last
    if want_inf and t_last > t1:
        raise TwoLayerInputError("ts", f"finite times beyond t_inf_max={t1}", "raise FlowConfig.t_inf_max")
    ts_pad = _pad_ts(ts_f)
    ok, event, max_steps_code = _result_codes()
    stationary = [t1 > 0.0 and _steady_np(*it, config.steady_rtol) for it in items]
    todo = [i for i, it in enumerate(items) if t1 > 0.0 and not stationary[i]]

    # Defaults: the initial state held everywhere (t1 == 0 or stationary at t = 0).
    raw = {i: (np.repeat(it[2][None], ts_pad.size, 0), np.repeat(it[3][None], ts_pad.size, 0),
               it[2], it[3], 0.0, event if stationary[i] else ok, np.zeros(3, int))
           for i, it in enumerate(items)}
    start = time.perf_counter()
    # If the step limit is hit (the stiff-mode noise can keep ||f|| above a strict steady
    # rule), retry those problems with a 10x, then 100x looser rule; recorded in the status.
    used = {i: config.steady_rtol for i in todo}
    pending = list(todo)
    fn = _build_solve(config.solver, float(config.rtol), float(config.atol), int(config.max_steps),
                      batched)
    for attempt, srt in enumerate(config.steady_rtol * np.array([1.0, 10.0, 100.0])):
        if not pending:
            break
        with jax.enable_x64(True):
            if batched:
                args = [jnp.asarray(np.stack([items[i][j] for i in pending]), dtype=jnp.float64)
                        for j in range(4)]
            else:
                args = [jnp.asarray(items[pending[0]][j], dtype=jnp.float64) for j in range(4)]
            out = fn(*args, jnp.asarray(ts_pad, dtype=jnp.float64), jnp.asarray(t1, dtype=jnp.float64),
                     jnp.asarray(srt, dtype=jnp.float64))
            out = jax.device_get(out)
        retry = []
        for pos, i in enumerate(pending):
            raw[i] = tuple(np.asarray(o[pos] if batched else o) for o in out)
            used[i] = float(srt)
            if int(raw[i][5]) == max_steps_code and attempt < 2:
                retry.append(i)
        pending = retry
    wall = time.perf_counter() - start

    results = []
    for i in range(len(items)):
        v_i, G_i, v_e, G_e, te, code, stats = raw[i]
        v_i, G_i = np.asarray(v_i, np.float64), np.asarray(G_i, np.float64)
        v_e, G_e, te, code = np.asarray(v_e, np.float64), np.asarray(G_e, np.float64), float(te), int(code)
        where = f" (problem {i} of the batch)" if batched else ""
        if code == max_steps_code:
            raise SolverStepLimitError(config.max_steps, te, t1, where)
        if code not in (ok, event):
            raise SolverFailedError(f"diffrax failed with result code {code} at t={te:.6g}{where}; "
                                    "try solver='kvaerno5' or looser tolerances")
        steady = code == event
        if want_inf and not steady:
            raise SolverFailedError(f"no steady state reached by t_inf_max={t1:g}{where}; "
                                    "raise t_inf_max or steady_rtol")
        v_out = np.empty((ts.size, v_i.shape[-1]))
        G_out = np.empty((ts.size,) + G_i.shape[-2:])
        v_out[finite], G_out[finite] = v_i[:ts_f.size], G_i[:ts_f.size]
        v_out[~finite], G_out[~finite] = v_e, G_e
        tail = None
        if steady and not stationary[i]:
            # Continue from the stop in closed form (linearised flow, twolayer.tail).
            # (A state stationary at t = 0 is held exactly instead.)
            after = np.ones(ts.size, bool)
            after[finite] = ts_f >= te
            if np.any(after):
                s2, c = items[i][0], items[i][1]
                v_t, G_t, tail = linear_tail(s2, c, v_e, G_e, ts[after] - te, config.tail_eig_rtol)
                v_out[after], G_out[after] = v_t, G_t
        if not (np.all(np.isfinite(v_out)) and np.all(np.isfinite(G_out))):
            raise SolverFailedError(f"non-finite state in the solution{where}")
        if stationary[i]:
            status = "success: stationary at t=0 (state held)"
        elif steady:
            status = f"success: steady from t={te:.6g} (closed-form tail)"
            if used.get(i, config.steady_rtol) != config.steady_rtol:
                status += f"; steady_rtol relaxed to {used[i]:.0e} after the step limit"
        else:
            status = "success"
        st = dict(solver=config.solver, rtol=config.rtol, atol=config.atol,
                  steady_rtol=used.get(i, config.steady_rtol), num_steps=int(stats[0]),
                  num_accepted_steps=int(stats[1]), num_rejected_steps=int(stats[2]),
                  t_steady=te if steady else None, wall_time_s=wall / len(items), batched=batched,
                  tail="linearised closed form" if tail is not None else None,
                  tail_correction_norm=tail.correction_norm if tail is not None else None,
                  tail_null_residual=tail.null_residual if tail is not None else None)
        results.append((v_out, G_out, status, st))
    return results


# ----------------------------------------------------------------------------- public API
def _initial(problem: Problem, method: str, v0: np.ndarray):
    """(v_start, LinearProbe) for the FT stage of ``method``."""
    if method == "lpft":
        lp = LinearProbe(problem)
        return lp.limit(v0), lp
    return v0, None


def _lp_trajectory(problem: Problem, ts: np.ndarray, v0: np.ndarray) -> Trajectory:
    start = time.perf_counter()
    v = LinearProbe(problem).head(ts, v0)
    B = np.broadcast_to(problem.B0, (ts.size,) + problem.B0.shape)
    return Trajectory(ts=ts, v=v, B=B, method="lp", v0=v0, status="success: closed form",
                      stats=dict(solver="closed-form", wall_time_s=time.perf_counter() - start))


def _trajectory_from(problem, method, ts, v_start, res) -> Trajectory:
    v_out, G_out, status, st = res
    return Trajectory(ts=ts, v=v_out, B=problem.B_from_G(G_out), method=method, v0=v_start,
                      status=status, stats=st)


def simulate(problem: Problem, method: str, ts, v0=None, rtol: float = 1e-10, atol: float = 1e-12,
             *, solver: str = "dopri8", max_steps: int = 100_000, steady_rtol: float = 1e-9,
             t_inf_max: float = 1e6) -> Trajectory:
    """Simulate LP, FT or LP-FT gradient flow (THEORY.md §1) at times ``ts``.

    Parameters
    ----------
    problem : the :class:`Problem`.
    method : "lp" (closed form, THEORY.md §3), "ft" (the flow from (v0, B0)) or
        "lpft" (LP to its limit v_lp_inf in closed form, then FT from (v_lp_inf, B0);
        ``ts`` are times of the FT stage).
    ts : sorted times >= 0; may contain ``inf`` (the limit: closed form for LP, the
        steady state of the flow for FT, see the module docstring).
    v0 : initial head; ``None`` means ``problem.v0`` (the zero head unless the problem
        was made with a head).
    rtol, atol : tolerances of the adaptive step-size controller.
    solver : "dopri8" (default), "tsit5" or "kvaerno5" (implicit, for stiff cases).
    max_steps : step limit; reaching it raises :class:`SolverStepLimitError`.
    """
    method = _check_method(method)
    ts = _check_ts(ts)
    v0 = _check_v0(problem, v0)
    config = _check_config(FlowConfig(rtol, atol, solver, max_steps, steady_rtol, t_inf_max))
    if method == "lp":
        return _lp_trajectory(problem, ts, v0)
    v_start, _ = _initial(problem, method, v0)
    s2, c, G0, _ = problem.reduced
    res = _solve_reduced([(s2, c, v_start, G0)], ts, config, batched=False)[0]
    return _trajectory_from(problem, method, ts, v_start, res)


def simulate_batch(problems: Sequence[Problem], method: str, ts, v0s=None, rtol: float = 1e-10,
                   atol: float = 1e-12, *, solver: str = "dopri8", max_steps: int = 100_000,
                   steady_rtol: float = 1e-9, t_inf_max: float = 1e6) -> list[Trajectory]:
    """:func:`simulate` for many same-shape problems at once (one vmapped, jitted solve).

    Each problem keeps its own adaptive step size and steady-state stop, so the
    accuracy is that of :func:`simulate`. ``v0s`` is None (each ``problem.v0``) or
    a sequence of heads, one per problem. Problems must share k and m.
    """
    method = _check_method(method)
    ts = _check_ts(ts)
    problems = list(problems)
    if not problems:
        raise TwoLayerInputError("problems", "is empty", "pass at least one Problem")
    if v0s is None:
        v0s = [None] * len(problems)
    if len(v0s) != len(problems):
        raise TwoLayerInputError("v0s", f"has {len(v0s)} heads for {len(problems)} problems")
    k, m = problems[0].k, problems[0].m
    for i, p in enumerate(problems):
        if (p.k, p.m) != (k, m):
            raise TwoLayerInputError("problems", f"problem {i} has (k, m)=({p.k}, {p.m}), "
                                     f"problem 0 has ({k}, {m})", "batch problems of the same shape")
    v0s = [_check_v0(p, v) for p, v in zip(problems, v0s)]
    config = _check_config(FlowConfig(rtol, atol, solver, max_steps, steady_rtol, t_inf_max))
    if method == "lp":
        return [_lp_trajectory(p, ts, v) for p, v in zip(problems, v0s)]
    starts = [_initial(p, method, v)[0] for p, v in zip(problems, v0s)]
    items = [(p.reduced[0], p.reduced[1], vs, p.reduced[2]) for p, vs in zip(problems, starts)]
    results = _solve_reduced(items, ts, config, batched=True)
    return [_trajectory_from(p, method, ts, vs, r) for p, vs, r in zip(problems, starts, results)]
