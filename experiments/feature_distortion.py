"""Feature distortion: how much FT and LP-FT change the features B(t) x of ID and OOD inputs.

Checks THEORY.md §6 ("Feature distortion") and invariant I1 (THEORY.md §3). For random
instances (zero or Gaussian initial head, large OOD shift) we simulate the exact FT and
LP-FT flows (``twolayer.simulate_batch``) on a log time grid plus t = inf and measure
``twolayer.feature_change(p, B(t), x)`` = mean ||(B(t) - B0) x|| on three input sets,
each normalised to unit norm (so "ID vs OOD" compares directions, not input scales):

* ``id``   : Gaussian inputs in S (the training subspace),
* ``ood``  : samples of the OOD distribution N(0, Sigma) with the large shift
  (99% of its second moment in S_perp),
* ``sperp``: Gaussian inputs in S_perp (pure OOD directions).

For ``sperp`` we also record the worst case over *all* unit x in S_perp, the spectral
norm ||(B(t) - B0) Q_Sperp||_2, which I1 says is exactly zero.

Checks: (1) FT changes ID features more than OOD features (at every t > 0);
(2) LP-FT changes ID features at least ``min_ratio`` (10x) less than FT at t = inf,
for eps <= ``small_eps``; (3) I1: feature change in S_perp <= 1e-12 per unit |x|.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from experiments._checks import DECADES_BELOW, decades_below
from experiments._common import cli, log_time_grid, run_sweep

NAME = "feature_distortion"
CLAIM = ("FT changes the features of ID inputs more than those of OOD inputs (inputs in S_perp "
         "not at all: I1), and LP-FT changes features orders of magnitude less than FT")
SOURCE = "THEORY.md §6 (feature distortion) and §3 (I1); paper §3 / Table 2"
FIGURE = "feature_distortion"

INPUTS = ("id", "ood", "sperp")
METHODS = ("ft", "lpft")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 100
    k: int = 5
    m: int = 40
    n: int = 60
    eps_grid: tuple = (0.001, 0.01, 0.02, 0.05, 0.1)
    n_seeds: int = 8
    shift: str = "large"
    head_init: str = "zero"
    head_scale: float = 1.0
    n_inputs: int = 200
    t_min: float = 1e-3
    t_max: float = 100.0
    n_times: int = 24
    small_eps: float = 0.02       # check (2) applies to eps <= small_eps
    min_ratio: float = 10.0       # check (2): FT / LP-FT feature change at t = inf
    i1_tol: float = 1e-12         # check (3): per unit |x|

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, d=40, k=3, m=15, n=20, eps_grid=(0.01, 0.02, 0.1), n_seeds=3,
                   n_inputs=100, n_times=14)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)


def times(config: Config) -> np.ndarray:
    return log_time_grid(config.t_min, config.t_max, config.n_times)


def units(config: Config) -> list[dict]:
    return [{"eps": float(eps), "eps_index": i} for i, eps in enumerate(config.eps_grid)]


def _unit_rows(rng, basis: np.ndarray, n: int) -> np.ndarray:
    z = rng.standard_normal((n, basis.shape[1])) @ basis.T
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def input_sets(p, n: int, rng) -> dict:
    """Unit-norm ID (in S), OOD (N(0, Sigma)) and S_perp inputs, each (n, d)."""
    lam, E = np.linalg.eigh(p.Sigma)
    root = (E * np.sqrt(np.clip(lam, 0, None))) @ E.T
    ood = rng.standard_normal((n, p.d)) @ root
    ood /= np.linalg.norm(ood, axis=1, keepdims=True)
    return {"id": _unit_rows(rng, p.S_basis, n), "ood": ood, "sperp": _unit_rows(rng, p.S_perp_basis, n)}


def compute(config: Config, unit: dict) -> list[dict]:
    import twolayer as tl
    ts = times(config)
    seeds = [config.seed * 1000 + 100 * unit["eps_index"] + j for j in range(config.n_seeds)]
    probs = [tl.make_problem(s, config.d, config.k, config.m, config.n, unit["eps"], shift=config.shift,
                             head_init=config.head_init, head_scale=config.head_scale) for s in seeds]
    rows = []
    trajs = {meth: tl.simulate_batch(probs, meth, ts) for meth in METHODS}
    for j, (s, p) in enumerate(zip(seeds, probs)):
        rng = np.random.default_rng(s + 7_000_000)
        xs = input_sets(p, config.n_inputs, rng)
        summ = p.summary()
        Qp = p.S_perp_basis
        for meth in METHODS:
            tr = trajs[meth][j]
            fc = {name: tl.feature_change(p, tr.B, x) for name, x in xs.items()}
            diff_sp = np.einsum("tkd,nd->tnk", tr.B - p.B0, xs["sperp"])
            sp_max = np.linalg.norm(diff_sp, axis=-1).max(axis=-1)
            sp_op = np.linalg.norm((tr.B - p.B0) @ Qp, ord=2, axis=(-2, -1))
            for it, t in enumerate(ts):
                for name in INPUTS:
                    rows.append(dict(seed=s, method=meth, t=float(t), inputs=name, eps_nominal=unit["eps"],
                                     feature_change=float(fc[name][it]),
                                     sperp_max=float(sp_max[it]) if name == "sperp" else np.nan,
                                     sperp_op=float(sp_op[it]) if name == "sperp" else np.nan,
                                     lp_head_norm=float(np.linalg.norm(tr.v0)),
                                     flow_result=str(tr.result), **summ))
    return rows


def run(config: Config, out=None, *, force: bool = False, progress=None) -> list[dict]:
    return run_sweep(NAME, config, units(config), partial(compute, config), out, force=force,
                     progress=progress)


def check(records, config: Config) -> list[dict]:
    df = records
    out = []
    # (1) FT: ID feature change > OOD feature change at every t > 0.
    ft = df[(df.method == "ft") & (df.t > 0)]
    piv = ft.pivot_table(index=["seed", "eps_nominal", "t"], columns="inputs", values="feature_change")
    ratio = np.log10(piv["id"].clip(lower=1e-300) / piv["ood"].clip(lower=1e-300))  # finite margins
    ok = bool(np.all(ratio > 0)) and len(ratio) > 0
    tinf = piv.xs(np.inf, level="t")
    out.append(dict(
        id="ft_id_over_ood", unit="decades: log10(fc_id / fc_ood)",
        claim="FT changes ID features more than OOD features (unit-norm inputs, every t > 0)",
        source=SOURCE, status="pass" if ok else "fail",
        margin=float(ratio.min()) if len(ratio) else float("nan"), n_cases=int(len(ratio)),
        details=(f"margin = min over (seed, eps, t) of log10(fc_id / fc_ood) for FT; at t=inf "
                 f"fc_id in [{tinf['id'].min():.3g}, {tinf['id'].max():.3g}], fc_ood in "
                 f"[{tinf['ood'].min():.3g}, {tinf['ood'].max():.3g}] (shift={config.shift})")))
    # (2) LP-FT << FT at t = inf, small eps.
    end = df[(df.t == np.inf) & (df.inputs == "id")]
    pv_all = end.pivot_table(index=["seed", "eps_nominal"], columns="method", values="feature_change")
    r_all = pv_all["ft"] / pv_all["lpft"]
    r = r_all[r_all.index.get_level_values("eps_nominal") <= config.small_eps * (1 + 1e-12)]
    lr = np.log10(r.clip(lower=1e-300, upper=1e300)) - np.log10(config.min_ratio)  # finite margins
    ok = len(r) > 0 and bool(np.all(lr >= 0))
    by_eps = r_all.groupby(level="eps_nominal").min()
    lpft_fc = pv_all["lpft"].groupby(level="eps_nominal").mean()
    slope = (float(np.polyfit(np.log(lpft_fc.index.values), np.log(lpft_fc.values), 1)[0])
             if len(lpft_fc) > 1 else float("nan"))
    out.append(dict(
        id="lpft_distorts_less", unit="decades above the ratio threshold",
        claim=f"LP-FT changes ID features >= {config.min_ratio:g}x less than FT at t = inf "
              f"(eps <= {config.small_eps:g})",
        source=SOURCE, status="pass" if ok else "fail",
        margin=float(lr.min()) if len(r) else float("nan"), n_cases=int(len(r)),
        details=("margin = log10(min ratio FT/LP-FT) - log10(threshold), decades; min ratio by eps "
                 "(larger eps shown for information, not checked): "
                 + ", ".join(f"eps={e:g}: {v:.3g}x" for e, v in by_eps.items())
                 + f"; log-log slope of LP-FT's ID feature change vs eps = {slope:.2f}")))
    # (3) I1: zero feature change in S_perp.
    sp = df[df.inputs == "sperp"]
    worst = float(np.nanmax(np.maximum(sp.sperp_max, sp.sperp_op)))
    ok = worst <= config.i1_tol
    out.append(dict(
        id="i1_sperp_features_fixed", unit=DECADES_BELOW,
        claim="I1: features of inputs in S_perp never change (FT and LP-FT, all t)",
        source="THEORY.md §3 (I1)", status="pass" if ok else "fail",
        margin=decades_below(config.i1_tol, worst), n_cases=int(len(sp)),
        details=(f"worst max_{{unit x in S_perp}} ||(B(t)-B0)x|| (sampled and spectral norm) = "
                 f"{worst:.2e} <= tol {config.i1_tol:g}; margin = log10(tol / worst), decades")))
    return out


def main(argv=None):
    return cli(NAME, Config, run, argv, __doc__)


if __name__ == "__main__":
    main()
