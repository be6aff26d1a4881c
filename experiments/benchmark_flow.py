"""Benchmark: ``simulate_batch`` vs a naive full-state ``scipy.integrate.solve_ivp`` loop.

200 FT problems (d=100, k=5, m=40, n=60), t in [0, 100], both at the same tolerances
(rtol=1e-10, atol=1e-12, DOP853 for the baseline), in one process. Prints the speed
ratio (baseline seconds per problem / ours), with and without JIT compilation, the
invariant drift of both, and the agreement of both with a tight reference
(rtol=1e-12, atol=1e-16) on a few problems. Writes a JSON record to --out.

    python -m experiments.benchmark_flow            # full (about 2 minutes)
    python -m experiments.benchmark_flow --quick    # 20 baseline problems
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import twolayer as tl
from experiments._common import DEFAULT_RESULTS, atomic_write_text, git_revision, package_versions
from twolayer.reference import simulate_reference


def run(n_problems=200, n_baseline=200, n_accuracy=5, d=100, k=5, m=40, n=60, t_max=100.0,
        n_times=21, seed=0, rtol=1e-10, atol=1e-12) -> dict:
    ps = [tl.make_problem(seed * 100_000 + i, d=d, k=k, m=m, n=n, eps=0.1, shift="large",
                          head_init="gaussian", head_scale=0.5) for i in range(n_problems)]
    ts = np.linspace(0.0, t_max, n_times)

    t0 = time.perf_counter()
    ours = tl.simulate_batch(ps, "ft", ts, rtol=rtol, atol=atol)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = tl.simulate_batch(ps, "ft", ts, rtol=rtol, atol=atol)
    t_warm = time.perf_counter() - t0

    t0 = time.perf_counter()
    base = [simulate_reference(p, "ft", ts, rtol=rtol, atol=atol) for p in ps[:n_baseline]]
    t_base = time.perf_counter() - t0

    per_ours_cold, per_ours_warm = t_cold / n_problems, t_warm / n_problems
    per_base = t_base / n_baseline
    drift = lambda trs: [tl.invariant_drift(p, tr) for p, tr in zip(ps, trs)]
    d_ours, d_base = drift(ours), drift(base)

    acc_ours, acc_base = [], []
    for p, o, b in list(zip(ps, ours, base))[:n_accuracy]:
        ref = simulate_reference(p, "ft", ts, rtol=1e-12, atol=1e-16)
        rel = lambda tr: float(np.max(np.abs(tr.B - ref.B)) / np.max(np.abs(ref.B)))
        acc_ours.append(rel(o))
        acc_base.append(rel(b))

    return dict(
        n_problems=n_problems, n_baseline=n_baseline, d=d, k=k, m=m, n=n, t_max=t_max, rtol=rtol,
        atol=atol, seconds_ours_cold=t_cold, seconds_ours_warm=t_warm, seconds_baseline=t_base,
        per_problem_ours_cold=per_ours_cold, per_problem_ours_warm=per_ours_warm,
        per_problem_baseline=per_base,
        speedup_cold=per_base / per_ours_cold, speedup_warm=per_base / per_ours_warm,
        ours_max_steps=max(tr.stats["num_steps"] for tr in ours),
        ours_mean_steps=float(np.mean([tr.stats["num_steps"] for tr in ours])),
        baseline_mean_nfev=float(np.mean([tr.stats["nfev"] for tr in base])),
        i1_abs_ours=max(x.i1_abs for x in d_ours), i1_abs_baseline=max(x.i1_abs for x in d_base),
        i2_rel_ours=max(x.i2_rel for x in d_ours), i2_rel_baseline=max(x.i2_rel for x in d_base),
        rel_err_B_ours=max(acc_ours), rel_err_B_baseline=max(acc_base),
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m experiments.benchmark_flow", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="baseline on 20 problems only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    res = run(n_baseline=20 if args.quick else 200, seed=args.seed)
    res.update(seed=args.seed, versions=package_versions(), git_revision=git_revision())
    print(f"simulate_batch: {res['n_problems']} problems in {res['seconds_ours_warm']:.2f}s warm "
          f"({res['seconds_ours_cold']:.2f}s with JIT compile); mean steps {res['ours_mean_steps']:.0f}")
    print(f"solve_ivp DOP853 full state: {res['n_baseline']} problems in {res['seconds_baseline']:.1f}s "
          f"(mean {res['baseline_mean_nfev']:.0f} rhs evaluations)")
    print(f"speed-up per problem: {res['speedup_warm']:.1f}x warm, {res['speedup_cold']:.1f}x incl. compile")
    print(f"I1 drift (abs): ours {res['i1_abs_ours']:.2e}, baseline {res['i1_abs_baseline']:.2e}")
    print(f"I2 drift (rel): ours {res['i2_rel_ours']:.2e}, baseline {res['i2_rel_baseline']:.2e}")
    print(f"rel. error of B vs rtol=1e-12 reference: ours {res['rel_err_B_ours']:.2e}, "
          f"baseline {res['rel_err_B_baseline']:.2e}")
    out = Path(args.out or DEFAULT_RESULTS.parent) / "benchmark_flow.json"
    atomic_write_text(out, json.dumps(res, indent=2, default=str))
    print(f"-> {out}")
    return res


if __name__ == "__main__":
    main()
