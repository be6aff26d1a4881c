"""When does LP beat FT out of distribution? A phase diagram over (eps, shift size rho).

Claim (THEORY.md §6 "Conditions", the talk's "important conditions"): LP beats FT
OOD when the pretrained features are good (small eps) AND the shift is large
(OOD mass outside the training span S); with a small shift (OOD mostly inside S,
where FT interpolates) or poor features (large eps) FT does better.

How: for each eps and seed one problem (zero or Gaussian initial head); FT is
simulated exactly to the steady state on a log time grid, LP's limit is the
closed form. The dynamics do not depend on the OOD second moment, so each
trajectory is evaluated under every Sigma(rho) = d [(1 - rho) P_S / m + rho
P_Sperp / (d - m)], rho = fraction of OOD mass in S_perp (same X, B*, B0 for all
rho: make_problem draws Sigma last). Recorded per (seed, eps, rho): L_ood of LP
(t = inf), FT (t = inf) and the best early-stopped FT (min over the grid).

Check, per head initialisation, on the median over seeds of log10(L_FT / L_LP)
at the corners of the grid: LP wins (> 0) at (eps_min, rho_max), also against
early-stopped FT; FT wins (< 0, at t = inf) at (eps_min, rho_min) and
(eps_max, rho_min) (small shift) and at (eps_max, rho_max) (poor features, even
with a large shift). Margin = the smallest signed log10 ratio (in the winning
direction) over these corners.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from experiments._common import cli, log_time_grid, run_sweep

NAME = "conditions"
CLAIM = ("LP beats FT OOD with good features and a large shift; FT beats LP with a small shift "
         "or poor features (large eps)")
SOURCE = "THEORY.md §6 (conditions); talk slides 'important conditions'"
FIGURE = "conditions"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 100
    k: int = 5
    m: int = 40
    n: int = 60
    eps: tuple = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.7, 1.0, 1.4)
    rhos: tuple = (1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9, 0.99)
    head_inits: tuple = ("zero", "gaussian")
    head_scale: float = 1.0
    n_seeds: int = 8
    t_min: float = 1e-3
    t_max: float = 1e3
    n_times: int = 62

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, d=40, k=3, m=15, n=20, eps=(1e-3, 1e-2, 0.1, 0.5, 1.0, 1.4),
                   rhos=(1e-8, 1e-6, 1e-4, 1e-2, 0.5, 0.99), n_seeds=4)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)


def time_grid(config: Config) -> np.ndarray:
    return log_time_grid(config.t_min, config.t_max, config.n_times)


def units(config: Config) -> list[dict]:
    return [{"eps_nominal": float(e), "head_init": h, "unit_index": 10 * i + j}
            for i, e in enumerate(config.eps) for j, h in enumerate(config.head_inits)]


def compute(config: Config, unit: dict) -> list[dict]:
    import twolayer as tl

    ts = time_grid(config)
    seeds = [config.seed * 1000 + s for s in range(config.n_seeds)]
    mk = lambda s, shift: tl.make_problem(s, config.d, config.k, config.m, config.n, unit["eps_nominal"],
                                          shift=shift, head_init=unit["head_init"],
                                          head_scale=config.head_scale)
    problems = [mk(s, "isotropic") for s in seeds]
    trs = tl.simulate_batch(problems, "ft", ts)
    records = []
    for s, p, tr in zip(seeds, problems, trs):
        v_lp = tl.lp_limit(p, p.v0)
        for rho in config.rhos:
            q = mk(s, float(rho))
            assert np.array_equal(q.B0, p.B0) and np.array_equal(q.X, p.X) and np.array_equal(q.v0, p.v0)
            L_ft = tl.ood_loss(q, tr.v, tr.B)
            L_lp = float(tl.ood_loss(q, v_lp, q.B0))
            j = int(np.argmin(L_ft))
            records.append({"seed": s, "rho": float(rho), **p.summary(), "lp_ood": L_lp,
                            "ft_inf_ood": float(L_ft[-1]), "ft_best_ood": float(L_ft[j]),
                            "t_best": float(ts[j]),
                            "log10_ratio_inf": float(np.log10(L_ft[-1] / L_lp)),
                            "log10_ratio_best": float(np.log10(L_ft[j] / L_lp))})
    return records


def run(config: Config, out=None, *, force: bool = False, progress=None) -> list[dict]:
    return run_sweep(NAME, config, units(config), partial(compute, config), out, force=force,
                     progress=progress)


def grid(records, head: str, col: str = "log10_ratio_inf"):
    """Median over seeds of ``col`` as an (eps x rho) table for one head initialisation."""
    g = records[records["head_init"] == head]
    return g.pivot_table(index="eps_nominal", columns="rho", values=col, aggfunc="median")


def check(records, config: Config) -> list[dict]:
    out = []
    for head in sorted(records["head_init"].unique()):
        gi, gb = grid(records, head, "log10_ratio_inf"), grid(records, head, "log10_ratio_best")
        e0, e1 = gi.index.min(), gi.index.max()
        r0, r1 = gi.columns.min(), gi.columns.max()
        sub = records[records["head_init"] == head]

        def frac(e, r, col, sign):
            """Fraction of seeds in the cell where the predicted winner wins."""
            c = sub[(sub["eps_nominal"] == e) & (sub["rho"] == r)][col]
            return float((sign * c > 0).mean())

        corners = [  # (name, signed margin: > 0 means the predicted winner wins, seed fraction)
            (f"LP wins vs FT(inf) at eps={e0:g}, rho={r1:g}", gi.loc[e0, r1],
             frac(e0, r1, "log10_ratio_inf", 1)),
            (f"LP wins vs best early-stopped FT at eps={e0:g}, rho={r1:g}", gb.loc[e0, r1],
             frac(e0, r1, "log10_ratio_best", 1)),
            (f"FT wins (small shift) at eps={e0:g}, rho={r0:g}", -gi.loc[e0, r0],
             frac(e0, r0, "log10_ratio_inf", -1)),
            (f"FT wins (small shift) at eps={e1:g}, rho={r0:g}", -gi.loc[e1, r0],
             frac(e1, r0, "log10_ratio_inf", -1)),
            (f"FT wins (poor features) at eps={e1:g}, rho={r1:g}", -gi.loc[e1, r1],
             frac(e1, r1, "log10_ratio_inf", -1)),
        ]
        worst = min(corners, key=lambda c: c[1])
        failed = [c[0] for c in corners if not c[1] > 0]
        n_seeds = records[records["head_init"] == head]["seed"].nunique()
        lp_cells = int((gi.to_numpy() > 0).sum())
        out.append({
            "claim": CLAIM + f" [head init {head}]", "source": SOURCE,
            "status": "pass" if not failed else "fail", "margin": float(worst[1]),
            "n_cases": int(gi.size * n_seeds),
            "details": (f"margin = min over corners of the signed median log10(L_FT/L_LP) = {worst[1]:.3g} "
                        f"({worst[0]}); corners (median, fraction of seeds agreeing): "
                        + "; ".join(f"{n}: {v:+.2f} ({fr:.0%})" for n, v, fr in corners)
                        + f"; failed: {failed or 'none'}; LP wins in {lp_cells}/{gi.size} cells "
                        f"({n_seeds} seeds per cell)"),
        })
    return out


def main(argv=None):
    return cli(NAME, Config, run, argv, __doc__)


if __name__ == "__main__":
    main()
