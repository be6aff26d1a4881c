"""Invariants I1 and I2 (THEORY.md §3) measured along many trajectories.

I1 (B(t) P_Sperp = B0 P_Sperp) and I2 (v v^T - B B^T constant) along FT and LP-FT
trajectories of the reduced-coordinate simulator, along the independent full-state
scipy reference (where neither invariant is built in), and I1 along discrete GD.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

import twolayer as tl
from experiments._checks import DECADES_BELOW, decades_below
from experiments._common import cli, run_sweep
from twolayer.reference import simulate_reference

NAME = "invariants"
SOURCE = "THEORY.md §3 (invariants of the FT flow)"
FIGURE = "invariants"
I1_TOL = 1e-10   # absolute, ||(B(t) - B0) Q_Sperp||_F
I2_TOL = 1e-8    # relative to ||v0 v0^T - B0 B0^T||_F
GD_I1_TOL = 1e-12


@dataclass(frozen=True)
class Config:
    seed: int = 0
    shapes: tuple = ((30, 3, 10, 14),)
    n_problems: int = 8
    n_reference: int = 2
    t_max: float = 20.0
    n_times: int = 16
    gd_lr: float = 1e-3
    gd_steps: int = 300

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, shapes=((30, 3, 10, 14), (100, 5, 40, 60)), n_problems=50,
                   n_reference=4, t_max=100.0, n_times=32, gd_steps=2000)


def units(config: Config) -> list[dict]:
    return [dict(shape=list(s), head=h, unit_seed=config.seed * 1000 + i * 10 + j)
            for i, s in enumerate(config.shapes) for j, h in enumerate(("zero", "gaussian"))]


def compute(config: Config, unit: dict) -> list[dict]:
    d, k, m, n = unit["shape"]
    ps = [tl.make_problem(unit["unit_seed"] * 1000 + i, d=d, k=k, m=m, n=n, eps=0.1, shift="large",
                          head_init=unit["head"], head_scale=0.5) for i in range(config.n_problems)]
    ts = np.concatenate([np.linspace(0.0, config.t_max, config.n_times - 1), [np.inf]])
    rows = []
    for method in ("ft", "lpft"):
        for i, (p, tr) in enumerate(zip(ps, tl.simulate_batch(ps, method, ts))):
            dr = tl.invariant_drift(p, tr)
            rows.append(dict(problem=i, method=method, integrator="reduced (diffrax Dopri8)",
                             i1_abs=dr.i1_abs, i2_rel=dr.i2_rel, steps=tr.stats["num_steps"]))
    ts_ref = ts[np.isfinite(ts)][: config.n_times // 2]
    for i, p in enumerate(ps[: config.n_reference]):
        dr = tl.invariant_drift(p, simulate_reference(p, "ft", ts_ref))
        rows.append(dict(problem=i, method="ft", integrator="full-state reference (scipy DOP853)",
                         i1_abs=dr.i1_abs, i2_rel=dr.i2_rel, steps=None))
    for i, p in enumerate(ps[: config.n_reference]):
        gd = tl.gradient_descent(p, "ft", config.gd_lr, config.gd_steps, record_every=10)
        dr = tl.invariant_drift(p, gd)
        rows.append(dict(problem=i, method="ft", integrator=f"GD (lr={config.gd_lr:g})",
                         i1_abs=dr.i1_abs, i2_rel=dr.i2_rel, steps=config.gd_steps))
    return rows


def run(config: Config, out=None, *, force: bool = False, progress=None) -> list[dict]:
    return run_sweep(NAME, config, units(config), partial(compute, config), out, force=force,
                     progress=progress)


def _margin(worst: float, tol: float) -> float:
    """Decades of room: log10(tol / worst) (> 0 means within tolerance)."""
    return decades_below(tol, worst)


def check(records, config: Config) -> list[dict]:
    flow = records[~records["integrator"].str.startswith("GD")]
    gd = records[records["integrator"].str.startswith("GD")]
    i1, i1_gd = float(flow["i1_abs"].max()), float(gd["i1_abs"].max())
    i2 = float(flow["i2_rel"].max())
    m1 = min(_margin(i1, I1_TOL), _margin(i1_gd, GD_I1_TOL))
    m2 = _margin(i2, I2_TOL)
    return [
        dict(id="i1_sperp_frozen", unit=DECADES_BELOW,
             claim="I1: B(t) P_Sperp = B0 P_Sperp for all t (OOD features frozen), for the flow "
                   "and for discrete GD",
             source=SOURCE, status="pass" if m1 > 0 else "fail", margin=m1, n_cases=len(records),
             details=f"max ||(B(t)-B0) Q_Sperp||_F: flow {i1:.2e} (tol {I1_TOL:g}), GD {i1_gd:.2e} "
                     f"(tol {GD_I1_TOL:g}); margin in decades below tolerance"),
        dict(id="i2_balancedness", unit=DECADES_BELOW,
             claim="I2: v v^T - B B^T is constant along the FT flow (balancedness)",
             source=SOURCE, status="pass" if m2 > 0 else "fail", margin=m2, n_cases=len(flow),
             details=f"max relative drift {i2:.2e} (tol {I2_TOL:g}) over {len(flow)} trajectories incl. "
                     f"the full-state scipy reference; margin in decades below tolerance"),
    ]


def main(argv=None):
    return cli(NAME, Config, run, argv, __doc__)


if __name__ == "__main__":
    main()
