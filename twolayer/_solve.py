"""The JAX integration of the reduced FT flow (used by :mod:`twolayer.flow`).

One jitted function per (solver, max_steps, batching); it is traced once per shape
(k, m, padded number of save times, chunk size). Tolerances, the steady rule, the time
before which the steady stop is not allowed (``t_hold``, used to escape saddles and to
outlast slow modes) and the final time (per job) are traced values: a new rtol, atol, steady_rtol or t_inf_max never compiles.
Batches run either as single solves over a thread pool ("map": XLA releases the GIL, so
every CPU core works) or as fixed-size vmapped chunks ("vmap": the GPU's lanes), padded
by repeating a problem so that no batch size compiles anew.

With the cache folder enabled (:mod:`twolayer._jaxcache`), the solve of each shape is
exported to disk (:mod:`twolayer._export`) and a new process loads it instead of tracing
diffrax; with ``TWOLAYER_JAX_CACHE=off`` (or where export fails) the jitted function is traced.
"""

from __future__ import annotations

import os
import threading
import time
from typing import NamedTuple

import numpy as np

from ._field import field, steady_measure
from ._export import check_times, exported_solver, stored_codes
from ._jaxcache import count_compile, enable_persistent_cache

__all__ = ["SOLVERS", "Job", "Raw", "integrate", "pad_times", "default_batching", "default_chunk",
           "solve_seconds"]

SOLVERS = ("dopri8", "tsit5", "kvaerno5")
_FNS: dict = {}
_FNS_LOCK = threading.Lock()
_RAN: set = set()         # (solver, max_steps, batched, k, m, T, chunk) solved once in this process
_SOLVE_S = [0.0]          # seconds spent in solver calls (summed over threads), see solve_seconds
_SOLVE_LOCK = threading.Lock()


class Job(NamedTuple):
    """One integration: reduced data, start, and its traced settings."""

    s2: np.ndarray
    c: np.ndarray
    v0: np.ndarray
    G0: np.ndarray
    steady_rtol: float
    t_hold: float
    rtol: float
    atol: float
    solver: str
    t1: float              # final time of this integration (its own: slow modes extend it)
    dt0: float             # first step size tried (explicit: see _make_solve)


class Raw(NamedTuple):
    v_ts: np.ndarray
    G_ts: np.ndarray
    v_end: np.ndarray
    G_end: np.ndarray
    t_end: float
    code: int
    stats: np.ndarray      # (num_steps, accepted, rejected)


def pad_times(ts_f: np.ndarray) -> np.ndarray:
    """Pad the save times to a power-of-two length >= 8 (one compile per bucket)."""
    T = max(8, ts_f.size)
    size = 1 << (T - 1).bit_length()
    last = ts_f[-1] if ts_f.size else 0.0
    return np.concatenate([ts_f, np.full(size - ts_f.size, last)])


def default_batching() -> str:
    """"vmap" on a GPU/TPU, "map" (a thread pool of single solves) on the CPU."""
    import jax
    return "map" if jax.default_backend() == "cpu" else "vmap"


#: Problems per vmapped chunk by default (``FlowConfig.chunk=None``): on the CPU, where
#: vmap is only used when asked for, a small chunk; on a GPU, a chunk wide enough to fill
#: the device (measured with ``experiments.benchmark_flow --gpu-chunks``, see the README).
DEFAULT_CHUNK = {"cpu": 64, "gpu": 4096}


def default_chunk() -> int:
    """Problems per vmapped chunk for ``FlowConfig.chunk=None`` on jax's default backend."""
    import jax
    return DEFAULT_CHUNK.get(jax.default_backend(), DEFAULT_CHUNK["gpu"])


def solve_seconds() -> float:
    """Wall seconds spent inside solver calls in this process, summed over threads (calls
    that overlap count each; on a GPU, whose calls run one at a time, it is the device's
    share of a batch: the benchmark reports it beside the batch's wall time)."""
    return _SOLVE_S[0]


def _count_solve(t0: float) -> None:
    with _SOLVE_LOCK:
        _SOLVE_S[0] += time.perf_counter() - t0


def result_codes():
    """diffrax's result codes {"ok", "event", "max_steps"} (from the export cache when it has
    them for this diffrax version, so that a warm process need not import diffrax)."""
    return stored_codes(_diffrax_codes)


def _diffrax_codes() -> dict:
    import diffrax
    R = diffrax.RESULTS
    return {"ok": int(R.successful._value), "event": int(R.event_occurred._value),
            "max_steps": int(R.max_steps_reached._value)}


def _build(solver_name: str, max_steps: int, batched: bool):
    """The jitted solve (vmapped when ``batched``), one per key in this process."""
    key = (solver_name, int(max_steps), batched)
    with _FNS_LOCK:
        if key not in _FNS:
            import jax
            _FNS[key] = jax.jit(_make_solve(solver_name, max_steps, batched))
        return _FNS[key]


def _make_solve(solver_name: str, max_steps: int, batched: bool):
    """A new Python function that solves (vmapped when ``batched``), with new closures, so
    that diffrax's own jit caches never share its traces with another one's (the export
    traces equinox's error checks differently: :mod:`twolayer._export`)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    # The state is the displacement (dv, dG) = (v - v_start, G - G0), so that the
    # tolerances control the change made by fine-tuning itself.
    def vector_field(t, y, args):
        s2, c, v_start, G0 = args[:4]
        fv, fG, _ = field(jnp, s2, c, v_start + y[0], G0 + y[1])
        return fv, fG

    def steady(t, y, args, **kwargs):
        s2, c, v_start, G0, steady_rtol, t_hold = args
        fnorm, scale = steady_measure(jnp, s2, c, v_start + y[0], G0 + y[1])
        return (t >= t_hold) & (fnorm <= steady_rtol * scale)

    solver = {"dopri8": diffrax.Dopri8, "tsit5": diffrax.Tsit5,
              "kvaerno5": diffrax.Kvaerno5}[solver_name]()
    term = diffrax.ODETerm(vector_field)

    # dt0 is explicit (a traced value, set by the caller from the fastest time scale): with
    # dt0=None, Kvaerno5 rejected every step at t = 0 from a near-zero head for 100,000 steps
    # (about 200 s) although its first proposal, 1e-4, given as dt0, runs (measured).
    def solve_one(s2, c, v0, G0, ts, t1, steady_rtol, t_hold, rtol, atol, dt0):
        count_compile()          # runs only while tracing
        zero = (jnp.zeros_like(v0), jnp.zeros_like(G0))
        sol = diffrax.diffeqsolve(
            term, solver, t0=0.0, t1=t1, dt0=dt0, y0=zero,
            args=(s2, c, v0, G0, steady_rtol, t_hold),
            saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)]),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps, event=diffrax.Event(steady), throw=False,
        )
        (dv_ts, dG_ts), (dv_end, dG_end) = sol.ys
        stats = jnp.stack([sol.stats["num_steps"], sol.stats["num_accepted_steps"],
                           sol.stats["num_rejected_steps"]])
        return (v0 + dv_ts, G0 + dG_ts, v0 + dv_end[0], G0 + dG_end[0], sol.ts[1][0],
                sol.result._value, stats)

    if batched:
        fn = jax.vmap(solve_one, in_axes=(0, 0, 0, 0, None, 0, 0, 0, 0, 0, 0))
    else:
        fn = solve_one
    return fn


def _to_raw(out, pos=None) -> Raw:
    pick = (lambda o: np.asarray(o[pos])) if pos is not None else np.asarray
    v_ts, G_ts, v_e, G_e, te, code, stats = (pick(o) for o in out)
    return Raw(np.asarray(v_ts, np.float64), np.asarray(G_ts, np.float64), np.asarray(v_e, np.float64),
               np.asarray(G_e, np.float64), float(te), int(code), np.asarray(stats, np.int64))


def _chunk_raws(out, n: int) -> list[Raw]:
    """The first ``n`` problems' :class:`Raw` from a vmapped solve's stacked outputs (views)."""
    v_ts, G_ts, v_e, G_e = (np.asarray(o, np.float64) for o in out[:4])
    te, code, stats = np.asarray(out[4]).tolist(), np.asarray(out[5]).tolist(), np.asarray(out[6], np.int64)
    return [Raw(v_ts[i], G_ts[i], v_e[i], G_e[i], float(te[i]), int(code[i]), stats[i]) for i in range(n)]


def _solver_fn(solver: str, max_steps: int, batched: bool, k: int, m: int, ts_pad, chunk: int, t1s):
    """The exported solver for these shapes when the export cache serves it, else the traced
    one. The exported solver cannot raise on bad save times (:mod:`twolayer._export`): they
    are checked here on the host first, as diffrax checks them in the traced solver."""
    import jax
    traced = lambda: _build(solver, max_steps, batched)     # imports diffrax: only when needed
    if jax.config.jax_default_device is not None:
        return traced()            # inside jax.default_device(...): the traced solver follows it
    key = (solver, int(max_steps), bool(batched), int(k), int(m), len(ts_pad), int(chunk))
    exported = exported_solver(key, lambda: jax.jit(_make_solve(solver, max_steps, batched)))
    if exported is None:
        return traced()
    check_times(ts_pad, t1s)
    return exported


def _f64(a) -> np.ndarray:
    """float64 NumPy input, which the solver takes as is (no jnp.asarray per argument)."""
    return np.asarray(a, dtype=np.float64)


def _key(solver: str, max_steps: int, batched: bool, k: int, m: int, ts_pad, chunk: int) -> tuple:
    return (solver, int(max_steps), bool(batched), int(k), int(m), len(ts_pad), int(chunk))


def has_run(solver: str, max_steps: int, k: int, m: int, ts_pad, chunk: int = 0) -> bool:
    """Whether a solve of these shapes (single, or a vmapped ``chunk``) already ran in this
    process (so a new one neither traces nor compiles: threads may start together)."""
    return _key(solver, max_steps, chunk > 0, k, m, ts_pad, chunk) in _RAN


def _run_single(job: Job, ts_pad, max_steps) -> Raw:
    import jax
    k, m = np.shape(job.G0)
    fn = _solver_fn(job.solver, max_steps, False, k, m, ts_pad, 0, [job.t1])
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        out = fn(*(_f64(a) for a in (job.s2, job.c, job.v0, job.G0, ts_pad, job.t1, job.steady_rtol,
                                     job.t_hold, job.rtol, job.atol, job.dt0)))
        out = jax.device_get(out)
    _count_solve(t0)
    _RAN.add(_key(job.solver, max_steps, False, k, m, ts_pad, 0))
    return _to_raw(out)


def _run_chunk(jobs: list[Job], ts_pad, max_steps, chunk: int) -> list[Raw]:
    import jax
    k, m = np.shape(jobs[0].G0)
    fn = _solver_fn(jobs[0].solver, max_steps, True, k, m, ts_pad, chunk, [j.t1 for j in jobs])
    padded = list(jobs) + [jobs[-1]] * (chunk - len(jobs))
    col = lambda name: _f64([getattr(j, name) for j in padded])
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        out = fn(col("s2"), col("c"), col("v0"), col("G0"), _f64(ts_pad), col("t1"), col("steady_rtol"),
                 col("t_hold"), col("rtol"), col("atol"), col("dt0"))
        out = jax.device_get(out)
    _count_solve(t0)
    _RAN.add(_key(jobs[0].solver, max_steps, True, k, m, ts_pad, chunk))
    return _chunk_raws(out, len(jobs))


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: Threads per core for ``workers=None``. Each thread spends part of a problem in Python
#: (the policy, under the GIL) and part waiting for XLA; a second thread per core fills
#: those gaps. Measured with ``simulate_batch`` on 2 cores, 20 benchmark_flow problems,
#: median of 8 (1 thread = 1.0): 2 threads 1.53x, 3 threads 1.87x, 4 threads 2.05x. (Much
#: of that gain is one thread's own inefficiency: a process pinned to one core was 1.4-1.55x
#: slower than both cores with 4 threads.)
THREADS_PER_CORE = 2


#: Environment variable: the default number of threads (``workers=None``) instead of
#: THREADS_PER_CORE per core (a Dask worker process sets it to its share of the cores).
THREADS_ENV = "TWOLAYER_THREADS"


def workers_for(workers: int | None) -> int:
    """Threads for ``simulate_batch``: ``workers``; for None ``$TWOLAYER_THREADS`` if set,
    else THREADS_PER_CORE per core."""
    if workers:
        return max(1, int(workers))
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            n = int(env, 10) if env.isascii() else 0
        except ValueError:
            n = 0
        if n < 1:
            from .errors import TwoLayerInputError
            raise TwoLayerInputError(THREADS_ENV, f"must be a positive integer, got {env!r}",
                                     f"unset it, set e.g. {THREADS_ENV}=2, or pass workers=N",
                                     kind="environment variable")
        return n
    return THREADS_PER_CORE * cpu_cores()


def integrate(jobs: list[Job], ts_pad: np.ndarray, *, max_steps: int, batching: str, chunk: int) -> list[Raw]:
    """Integrate every job on the calling thread (the caller runs problems or chunks on its
    own threads: :mod:`twolayer.flow`); returns one :class:`Raw` per job (in order). With
    "vmap" the jobs run in padded chunks of ``chunk``, one solver at a time."""
    enable_persistent_cache()
    if batching == "vmap":
        out: list[Raw | None] = [None] * len(jobs)
        groups: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault(j.solver, []).append(i)
        for idx in (idx[a:a + chunk] for idx in groups.values() for a in range(0, len(idx), chunk)):
            for i, r in zip(idx, _run_chunk([jobs[i] for i in idx], ts_pad, max_steps, chunk)):
                out[i] = r
        return out
    return [_run_single(j, ts_pad, max_steps) for j in jobs]
