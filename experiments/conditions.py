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

Check, one row per corner of the grid and head initialisation, on log10(L_FT / L_LP)
per seed: LP wins (> 0) at (eps_min, rho_max), also against early-stopped FT; FT wins
(< 0, at t = inf) at (eps_min, rho_min) and (eps_max, rho_min) (small shift) and at
(eps_max, rho_max) (poor features, even with a large shift). A corner passes when a
one-sided sign test over seeds at 1% says the predicted winner wins (with 16 seeds: on
at least 14); margin = the order statistic that decides it (the 3rd smallest signed
log-ratio of 16), > 0 exactly when the test passes; a true tie passes at most 1% of the
time. A median would decide a near tie by chance: the last corner with a zero head
flipped sign between base seeds (quick medians -0.035 to +0.057 over base seeds 0-5, FT
better on 6-10 of 16 seeds). The last corner fails with either head: recorded findings
(FINDINGS).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from experiments._checks import sign_test
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
    n_seeds: int = 16
    t_min: float = 1e-3
    t_max: float = 1e3
    n_times: int = 62

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, d=40, k=3, m=15, n=20, eps=(1e-3, 1e-2, 0.1, 0.5, 1.0, 1.4),
                   rhos=(1e-8, 1e-6, 1e-4, 1e-2, 0.5, 0.99), n_seeds=16)

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


#: Recorded findings (check id -> reason): where the model contradicts the paper's claim.
#: paper_checks reports these rows as "finding" while they fail, "unexpected_pass" if they pass.
FINDINGS = {
    "ft_wins_poor_features_large_shift_head_gaussian": (
        "With poor features (largest eps), almost all OOD mass outside the training span (largest "
        "rho) and a random (Gaussian) initial head, LP still beats FT OOD. FT cannot change the "
        "features on S_perp (I1), so there its OOD error is |v^T B0 P_Sperp - w*^T P_Sperp|^2, set by "
        "the head; by balancedness (I2) FT's head keeps the random initialisation's size, while LP's "
        "head is the least-squares fit on B0 and does not depend on v0. Measured (eps = 1.4, rho = "
        "0.99): full mode seed 0, medians over the first 8 seeds |v0| = 2.94, |v_FT(inf)| = 2.88, "
        "|v_LP| = 0.76, S_perp squared error FT 4.04 vs LP 0.40 (FT's zero error on S weighs only "
        "1 - rho); over 16 seeds median log10(L_FT/L_LP) = +0.668, FT better on 0 of 16; quick mode "
        "base seeds 0-5: medians +0.27 to +0.61, FT better on 0-4 of 16."),
    "ft_wins_poor_features_large_shift_head_zero": (
        "With poor features (largest eps), a large shift (largest rho) and a zero initial head, FT "
        "does not beat LP: the two tie, FT better on about half of the seeds, so the sign test "
        "cannot say FT wins. On S_perp (a fraction rho of the OOD mass) neither method can change "
        "B0 (I1), so both errors are set by a head read through B0, FT's grown from zero and LP's "
        "the least-squares fit, which end up of similar size; FT's exact fit on S weighs only "
        "1 - rho. Measured (eps = 1.4, rho = 0.99): full mode seed 0, medians over the first 8 "
        "seeds |v_FT(inf)| = 0.68 vs |v_LP| = 0.76, S_perp squared error FT 0.391 vs LP 0.398; "
        "over 16 seeds median log10(L_FT/L_LP) = -0.000, FT better on 8 of 16; quick mode base "
        "seeds 0-5: medians -0.035 to +0.057, FT better on 6-10 of 16. A median over 4 seeds (the "
        "old check) passed at seed 0 and failed at seeds 1-3: a tie decided by chance. With a "
        "Gaussian head LP wins outright (the finding above), so in the model this half of the "
        "claim holds for neither head."),
}

#: The corners of the (eps, rho) grid the claim is about: (id, predicted winner, eps end, rho end,
#: FT column compared with LP, what it says). "lo"/"hi" = smallest/largest value in the config.
CORNERS = (
    ("lp_wins_good_features_large_shift", "LP", "lo", "hi", "log10_ratio_inf",
     "LP beats FT(t=inf) OOD with good features and a large shift"),
    ("lp_wins_vs_early_stopped_ft", "LP", "lo", "hi", "log10_ratio_best",
     "LP beats even the best early-stopped FT OOD with good features and a large shift"),
    ("ft_wins_small_shift_good_features", "FT", "lo", "lo", "log10_ratio_inf",
     "FT(t=inf) beats LP OOD with a small shift (good features)"),
    ("ft_wins_small_shift_poor_features", "FT", "hi", "lo", "log10_ratio_inf",
     "FT(t=inf) beats LP OOD with a small shift (poor features)"),
    ("ft_wins_poor_features_large_shift", "FT", "hi", "hi", "log10_ratio_inf",
     "FT(t=inf) beats LP OOD with poor features, even with a large shift"),
)


def check(records, config: Config) -> list[dict]:
    """One row per corner of the (eps, rho) grid and head initialisation (THEORY.md §6 conditions).

    Per seed, log10(L_FT / L_LP) signed so that > 0 means the predicted winner wins
    (decades). Pass when a one-sided sign test says the predicted winner wins
    (:func:`experiments._checks.sign_test`: with 16 seeds it may lose on at most 2); margin =
    the order statistic that decides it. With too few seeds for the test: not_applicable.
    """
    out = []
    unit = "decades: sign-test order statistic of log10(L_loser / L_winner) over seeds"
    for head in sorted(records["head_init"].unique()):
        sub = records[records["head_init"] == head]
        eps_end = {"lo": sub["eps_nominal"].min(), "hi": sub["eps_nominal"].max()}
        rho_end = {"lo": sub["rho"].min(), "hi": sub["rho"].max()}
        gi = grid(records, head, "log10_ratio_inf")
        lp_cells = int((gi.to_numpy() > 0).sum())
        for cid, winner, ei, ri, col, what in CORNERS:
            e, r = eps_end[ei], rho_end[ri]
            cell = sub[(sub["eps_nominal"] == e) & (sub["rho"] == r)]
            sign = 1.0 if winner == "LP" else -1.0
            signed = sign * cell[col].to_numpy(dtype=float)
            status, margin, rule = sign_test(signed, winner)
            median = float(np.median(signed)) if len(signed) else float("nan")
            ft_col = "ft_inf_ood" if col == "log10_ratio_inf" else "ft_best_ood"
            out.append({
                "id": f"{cid}_head_{head}", "unit": unit,
                "claim": f"{what} (eps={e:g}, rho={r:g}) [head init {head}]", "source": SOURCE,
                "status": str(status), "margin": margin,
                "n_cases": int(len(signed)),
                "details": (f"median over {len(signed)} seeds of log10(L_FT/L_LP) = {sign * median:+.3f} "
                            f"({col}); {winner} better on {int((signed > 0).sum())} of {len(signed)} seeds; "
                            f"per seed {', '.join(f'{x:+.2f}' for x in sign * signed)}; median L_ood: FT "
                            f"{cell[ft_col].median():.3g}, LP {cell['lp_ood'].median():.3g}; over the whole "
                            f"grid LP wins in {lp_cells}/{gi.size} (eps, rho) cells (median over seeds); {rule}"),
            })
    return out


def main(argv=None):
    return cli(NAME, Config, run, argv, __doc__)


if __name__ == "__main__":
    main()
