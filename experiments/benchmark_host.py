"""Benchmark: the host's share of a vmapped batch of the exact simulator, per problem.

On a GPU the solver does 2.5e5 problems/min, so the host's policy per problem (the start,
the stop analysis, the certificate, packaging) sets the rate: at most 0.24-0.3 ms per
problem per host thread (docs/performance.md). Measured as that target was set:
``--problems`` FT problems (default 256, d=100, k=5, m=40, n=60, those of
:mod:`experiments.benchmark_flow`), ``batching="vmap"`` in one chunk of all of them,
``workers=1`` (one thread), at 4 output times (0, 1, 10, inf: the target's measure) and at
22 (0, 5, ..., 100, inf: where rebuilding the full B(t), T x k x d, and the certificate over
T times add to it). The host's time is the wall minus the seconds inside solver calls
(:func:`twolayer._solve.solve_seconds`); the median of ``--batches`` batches after a warm-up
batch counts, with its stages (:func:`twolayer.flow.policy_seconds`) and the batches that
met a full garbage collection of Python's heap (gen2; one costs about 35 ms here).

Baseline in the same process: the stacked eigendecomposition the stop analysis runs
(:func:`twolayer.hessian.subspace_eigh` at the batch's own t = inf states: one
``np.linalg.eigh`` of (problems, 2k + m - 1, 2k + m - 1) symmetric matrices), the one part of
the host's work that is LAPACK's arithmetic, not Python. Prints a table and writes
``benchmark_host.json`` to ``--out``::

    python -m experiments.benchmark_host --out docs/results
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from experiments._common import (DEFAULT_RESULTS, add_common_args, atomic_write_text, git_revision, package_versions,
                                 require_writable)
from experiments.benchmark_flow import SHAPE, _positive, _shape, make_problems, time_grid

NAME = "benchmark_host"
#: The target: host time per problem, in ms (wall minus solver time, one thread).
TARGET_MS = 0.3


def _eigh_ms(problems: list, trajectories: list, repeats: int = 5) -> float:
    """The median of ``repeats`` stacked eigendecompositions of the reduced Hessian at the
    trajectories' last states (:func:`twolayer.hessian.subspace_eigh`), ms per problem (one
    BLAS thread)."""
    from threadpoolctl import threadpool_limits
    from twolayer.hessian import subspace_eigh
    s2 = np.stack([p.reduced[0] for p in problems])
    c = np.stack([p.reduced[1] for p in problems])
    v = np.stack([tr.v[-1] for tr in trajectories])
    G = np.stack([tr.B[-1] @ p.S_basis for p, tr in zip(problems, trajectories)])
    walls = []
    with threadpool_limits(limits=1, user_api="blas"):
        subspace_eigh(s2, c, v, G)
        for _ in range(repeats):
            t0 = time.perf_counter()
            subspace_eigh(s2, c, v, G)
            walls.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(walls)) / len(problems)


#: The output times of the two measures (module docstring).
TIME_GRIDS = {"4 times": np.array([0.0, 1.0, 10.0, np.inf]), "22 times": np.append(time_grid(), np.inf)}


def run(*, seed: int = 0, n: int = 256, batches: int = 5, shape: dict = SHAPE, verbose: bool = True) -> dict:
    """Both measures (module docstring) on the same problems, with the stacked-eigh baseline."""
    problems = make_problems(seed, 0, n, shape)
    out = dict(setup=dict(problems=n, shape=shape, batching="vmap", chunk=n, workers=1, rtol=1e-10, atol=1e-12,
                          seed=seed), target_ms=TARGET_MS, measures={})
    for name, ts in TIME_GRIDS.items():
        if verbose:
            print(f"-- {name}", flush=True)
        r, trajectories = measure(problems, ts, batches, verbose)
        out["measures"][name] = r
    out["eigh_ms"] = eigh = _eigh_ms(problems, trajectories)
    for r in out["measures"].values():
        r.update(host_over_eigh=r["host_ms_median"] / eigh, target_met=r["host_ms_median"] <= TARGET_MS)
    return out


def measure(problems: list, ts: np.ndarray, batches: int, verbose: bool) -> tuple:
    """Time ``batches`` batches of ``problems`` at times ``ts`` after a warm-up one: (the
    numbers, the last batch's trajectories)."""
    import twolayer as tl
    from twolayer import _solve
    from twolayer.flow import policy_seconds
    n = len(problems)
    opts = dict(batching="vmap", chunk=n, workers=1, rtol=1e-10, atol=1e-12)
    t0 = time.perf_counter()
    tl.simulate_batch(problems, "ft", ts, **opts)
    warm = time.perf_counter() - t0
    rows = []
    for b in range(batches):
        g0, s0, p0 = gc.get_stats()[2]["collections"], _solve.solve_seconds(), policy_seconds()
        t0 = time.perf_counter()
        out = tl.simulate_batch(problems, "ft", ts, **opts)
        wall = time.perf_counter() - t0
        solver, p1 = _solve.solve_seconds() - s0, policy_seconds()
        row = dict(wall_s=wall, solver_s=solver, host_ms=1e3 * (wall - solver) / n,
                   problems_per_minute=60.0 * n / wall, gen2_collections=gc.get_stats()[2]["collections"] - g0,
                   stages_ms={k: 1e3 * (p1[k] - p0[k]) / n for k in p1},
                   results=sorted({str(tr.result) for tr in out}))
        rows.append(row)
        if verbose:
            print(f"[batch {b}] wall {wall:.2f} s, solver {solver:.2f} s, host {row['host_ms']:.3f} ms/problem, "
                  f"{row['problems_per_minute']:.0f} problems/min, gen2 GC {row['gen2_collections']}", flush=True)
    host = [r["host_ms"] for r in rows]
    stages = rows[0]["stages_ms"]
    return dict(times=[float(t) for t in ts], warmup_s=warm, batches=rows, host_ms_median=float(np.median(host)),
                host_ms_min=min(host), host_ms_max=max(host),
                problems_per_minute_median=float(np.median([r["problems_per_minute"] for r in rows])),
                stages_ms_median={s: float(np.median([r["stages_ms"][s] for r in rows])) for s in stages}), out


def table(res: dict) -> str:
    rows = [("stop analysis's eigh alone, per problem", f"{res['eigh_ms']:.3f} ms",
             "twolayer.hessian.subspace_eigh at the batch's t = inf states, this process, 1 BLAS thread")]
    for name, r in res["measures"].items():
        rows += [(f"host per problem, {name} (median)", f"{r['host_ms_median']:.3f} ms",
                  f"min {r['host_ms_min']:.3f}, max {r['host_ms_max']:.3f} over {len(r['batches'])} batches; "
                  f"{r['host_over_eigh']:.2f}x the eigh; target <= {res['target_ms']} ms: "
                  + ("met" if r["target_met"] else "NOT met")),
                 ("  by stage (median, ms)", "", ", ".join(f"{k} {v:.3f}" for k, v in r["stages_ms_median"].items())),
                 (f"  problems/min end to end, {name}", f"{r['problems_per_minute_median']:.0f}",
                  "solver included (median)")]
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w}}  {b:>{v}}  {c}" for a, b, c in rows)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, results=None, force=False, executor=False,
                    quick_help="64 problems, 3 batches (about 10 s on 2 quiet CPU cores)")
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help=f"folder for {NAME}.json, created if missing (default {DEFAULT_RESULTS.parent})")
    ap.add_argument("--problems", type=_positive, default=None, metavar="N",
                    help="problems per batch, all in one vmapped chunk (default 256, --quick 64)")
    ap.add_argument("--batches", type=_positive, default=None, metavar="B",
                    help="timed batches after the warm-up one; the median counts (default 5, --quick 3)")
    ap.add_argument("--shape", type=_shape, default=SHAPE, metavar="D,K,M,N",
                    help="problem size d,k,m,n (default 100,5,40,60)")
    return ap


def main(argv=None) -> dict:
    ap = build_parser()
    args = ap.parse_args(argv)
    n = args.problems or (64 if args.quick else 256)
    batches = args.batches or (3 if args.quick else 5)
    out_dir = Path(args.out or DEFAULT_RESULTS.parent)
    require_writable(ap, {"--out": out_dir})
    res = run(seed=args.seed, n=n, batches=batches, shape=args.shape)
    res.update(quick=args.quick, versions=package_versions(), git_revision=git_revision(),
               finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    print(table(res))
    out = out_dir / f"{NAME}.json"
    atomic_write_text(out, json.dumps(res, indent=2, default=str))
    print(f"-> {out}")
    return res


if __name__ == "__main__":
    main()
