"""Regularisation vs LP-FT: FT with an L2 penalty toward the pretrained B0 and a random head.

Checks the appendix claim of Kumar et al. (THEORY.md §6, "Regularisation vs LP-FT"):
L2 regularisation toward the pretrained weights with a randomly initialised head did
worse (OOD) than LP-FT. In the linear model the comparison is exact.

Regularised FT is the gradient flow of

    L_lam(v, B) = ||X B^T v - y||^2 + lam ||B - B0||_F^2      (+ lam ||v||^2 if reg_head)

from (v0, B0) with v0 ~ N(0, head_scale^2 I_k) (``head_init="gaussian"``). Our choice:
the head is NOT penalised (``reg_head=False``): the pretrained model has no head to pull
toward. The core library has no regularised flow, so it is integrated here on the FULL
state (v, B) in R^{k + k d} with scipy ``solve_ivp`` (LSODA by default, explicit
rtol/atol; a failure raises). The regulariser's gradient 2 lam (B - B0) keeps the rows of
B - B0 in S, so I1 still holds exactly in theory; we measure it along the full-state
trajectory (tolerance 1e-9: rounding accumulated over ~1e4-1e5 right-hand-side
evaluations of a full-state integrator that does not project onto S).
lam = 0 is plain FT and is cross-checked against ``twolayer.simulate(p, "ft")``.

Regularised FT is evaluated at a fixed long time t_end (the gradient norm of L_lam there
is recorded); LP-FT at t = inf (``twolayer.simulate(p, "lpft")``); LP at its limit.

Checks: (1) L_ood(LP-FT, inf) <= min over lam of L_ood(regFT_lam, t_end) on every
instance (oracle choice of lam: the most favourable to regularisation);
(2) the same with lam chosen on the ID subspace loss (the paper's protocol selects on
ID validation); (3) I1 along the regularised flow; (4) lam = 0 matches the core FT flow.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from experiments._common import cli, run_sweep

NAME = "regularization"
CLAIM = ("FT with L2 regularisation toward the pretrained features and a random head does worse "
         "OOD than LP-FT, for every regularisation strength")
SOURCE = "Kumar et al. 2022 appendix (regularisation vs LP-FT, Living-17); THEORY.md §6"
FIGURE = "regularization"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    d: int = 100
    k: int = 5
    m: int = 40
    n: int = 60
    eps_grid: tuple = (0.02, 0.1)
    n_seeds: int = 4
    lam_grid: tuple = (0.0, 1e-3, 1e-2, 1e-1, 0.3, 1.0, 3.0, 10.0, 100.0)
    head_scale: float = 1.0
    shift: str = "large"
    reg_head: bool = False
    t_end: float = 100.0
    n_times: int = 12
    solver: str = "LSODA"
    rtol: float = 1e-10
    atol: float = 1e-12
    i1_tol: float = 1e-9
    ft_match_tol: float = 1e-6   # relative OOD difference regFT(lam=0) vs core FT

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed, d=40, k=3, m=15, n=20, eps_grid=(0.05,), n_seeds=2,
                   lam_grid=(0.0, 1e-2, 1e-1, 1.0, 10.0, 100.0), n_times=8)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)


def times(config: Config) -> np.ndarray:
    return np.concatenate([[0.0], np.logspace(-3, np.log10(config.t_end), config.n_times)])


def units(config: Config) -> list[dict]:
    return [{"eps": float(e), "eps_index": i, "rep": j}
            for i, e in enumerate(config.eps_grid) for j in range(config.n_seeds)]


def regularized_flow(p, lam: float, ts, v0, *, reg_head=False, solver="LSODA", rtol=1e-10,
                     atol=1e-12):
    """Full-state gradient flow of ||X B^T v - y||^2 + lam ||B - B0||_F^2 (+ lam ||v||^2).

    Returns (v (T, k), B (T, k, d), nfev). Raises RuntimeError if solve_ivp fails.
    """
    from scipy.integrate import solve_ivp
    k, d = p.k, p.d
    XtX, Xty, B0 = p.X.T @ p.X, p.X.T @ p.y, p.B0
    lam_v = lam if reg_head else 0.0

    def rhs(t, z):
        v, B = z[:k], z[k:].reshape(k, d)
        g = XtX @ (B.T @ v) - Xty
        dv = -2.0 * (B @ g) - 2.0 * lam_v * v
        dB = -2.0 * np.outer(v, g) - 2.0 * lam * (B - B0)
        return np.concatenate([dv, dB.ravel()])

    z0 = np.concatenate([np.asarray(v0, float), B0.ravel()])
    ts = np.asarray(ts, float)
    sol = solve_ivp(rhs, (0.0, float(ts[-1])), z0, method=solver, t_eval=ts, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"regularised flow failed (lam={lam}, {solver}): {sol.message}")
    Z = sol.y.T
    grad = -rhs(0.0, Z[-1])
    return Z[:, :k], Z[:, k:].reshape(-1, k, d), int(sol.nfev), float(np.linalg.norm(grad))


def compute(config: Config, unit: dict) -> list[dict]:
    import twolayer as tl
    ts = times(config)
    s = config.seed * 1000 + 100 * unit["eps_index"] + unit["rep"]
    p = tl.make_problem(s, config.d, config.k, config.m, config.n, unit["eps"], shift=config.shift,
                        head_init="gaussian", head_scale=config.head_scale)
    summ = p.summary()
    base = dict(seed=s, eps_nominal=unit["eps"], **summ)
    rows = []
    ts_core = np.append(ts, np.inf)          # one grid for both core calls: one JIT compile
    lpft = tl.simulate(p, "lpft", ts_core)
    ft = tl.simulate(p, "ft", ts_core)
    ood_ft_core = tl.ood_loss(p, ft.v, ft.B)
    for label, v, B, t in (("lpft", lpft.v[-1], lpft.B[-1], np.inf),
                           ("lpft", lpft.v[-2], lpft.B[-2], config.t_end),
                           ("lp", tl.lp_limit(p), p.B0, np.inf)):
        rows.append(dict(base, method=label, lam=np.nan, t=float(t), ood_loss=float(tl.ood_loss(p, v, B)),
                         id_loss=float(tl.id_loss(p, v, B)), train_loss=float(tl.train_loss(p, v, B)),
                         feature_change_fro=float(np.linalg.norm(B - p.B0))))
    for lam in config.lam_grid:
        v, B, nfev, gnorm = regularized_flow(p, lam, ts, p.v0, reg_head=config.reg_head,
                                             solver=config.solver, rtol=config.rtol, atol=config.atol)
        ood = tl.ood_loss(p, v, B)
        idl = tl.id_loss(p, v, B)
        trn = tl.train_loss(p, v, B)
        i1 = np.linalg.norm((B - p.B0) @ p.S_perp_basis, axis=(-2, -1))
        i1_rel = i1 / np.linalg.norm(p.B0 @ p.S_perp_basis)
        for it, t in enumerate(ts):
            rows.append(dict(base, method="regft", lam=float(lam), t=float(t), ood_loss=float(ood[it]),
                             id_loss=float(idl[it]), train_loss=float(trn[it]),
                             feature_change_fro=float(np.linalg.norm(B[it] - p.B0)),
                             i1_rel=float(i1_rel[it]), nfev=nfev,
                             grad_norm_end=gnorm if it == len(ts) - 1 else np.nan,
                             ood_ft_core=float(ood_ft_core[it]) if lam == 0.0 else np.nan))
    return rows


def run(config: Config, out=None, *, force: bool = False, progress=None) -> list[dict]:
    return run_sweep(NAME, config, units(config), partial(compute, config), out, force=force,
                     progress=progress)


def _end_table(df, config):
    reg = df[(df.method == "regft") & np.isclose(df.t, config.t_end)]
    lpft = df[(df.method == "lpft") & (df.t == np.inf)].set_index("seed").ood_loss
    lp = df[df.method == "lp"].set_index("seed").ood_loss
    return reg, lpft, lp


def check(records, config: Config) -> list[dict]:
    df = records
    reg, lpft, lp = _end_table(df, config)
    out = []
    found = {}
    for select in ("id_loss", "ood_loss"):
        margins, best = [], []
        for seed, g in reg.groupby("seed"):
            row = g.loc[g[select].idxmin()]
            margins.append(np.log10(row.ood_loss / lpft[seed]))
            best.append((seed, row.lam, row.ood_loss, lpft[seed], lp[seed]))
        found[select] = (np.asarray(margins), best)
    margins, best = found["id_loss"]
    n = len(margins)
    ok = n > 0 and bool(np.all(margins >= 0))
    desc = "; ".join(f"seed {b[0]}: lam={b[1]:g}, regFT={b[2]:.3g}, LP-FT={b[3]:.3g}, LP={b[4]:.3g}"
                     for b in best[:6])
    o_margins, o_best = found["ood_loss"]
    o_desc = "; ".join(f"seed {b[0]}: lam={b[1]:g}, regFT={b[2]:.3g}, LP-FT={b[3]:.3g}" for b in o_best[:6])
    out.append(dict(
        claim=("L2 regularisation toward B0 with a random head does worse OOD than LP-FT "
               "(lam chosen on ID loss, the paper's protocol)"),
        source=SOURCE, status="pass" if ok else "fail",
        margin=float(margins.min()) if n else float("nan"), n_cases=n,
        details=(f"margin = min over instances of log10(L_ood(regFT at the ID-selected lam, t_end) / "
                 f"L_ood(LP-FT, inf)), decades (< 0: regularised FT wins); t_end={config.t_end:g}, "
                 f"head N(0,{config.head_scale:g}^2), reg_head={config.reg_head}; {desc}. "
                 f"FINDING beyond the paper's protocol: with an OOD-oracle lam, regularised FT beats "
                 f"LP-FT on {int(np.sum(o_margins < 0))}/{len(o_margins)} instances (worst margin "
                 f"{o_margins.min():+.3g} decades; {o_desc})")))
    r = df[df.method == "regft"]
    worst = float(r.i1_rel.max())
    out.append(dict(
        claim="I1 holds along the regularised flow (the penalty's gradient has rows in S)",
        source="THEORY.md §3 (I1), derived for the regularised flow",
        status="pass" if worst <= config.i1_tol else "fail",
        margin=float(np.log10(config.i1_tol / max(worst, 1e-300))), n_cases=int(len(r)),
        details=(f"max ||(B(t)-B0) Q_Sperp||_F / ||B0 Q_Sperp||_F = {worst:.2e} (tol {config.i1_tol:g}: "
                 f"full-state solve_ivp, rounding accumulates); margin = log10(tol / worst)")))
    z = r[r.lam == 0.0]
    rel = (z.ood_loss - z.ood_ft_core).abs() / z.ood_ft_core.abs().clip(lower=1e-300)
    worst = float(rel.max())
    out.append(dict(
        claim="regularised FT at lam = 0 equals the core FT flow (integrator cross-check)",
        source="twolayer.simulate vs scipy full-state",
        status="pass" if worst <= config.ft_match_tol else "fail",
        margin=float(np.log10(config.ft_match_tol / max(worst, 1e-300))), n_cases=int(len(z)),
        details=f"max relative OOD-loss difference {worst:.2e} over t (tol {config.ft_match_tol:g})"))
    gn = r.dropna(subset=["grad_norm_end"])
    slow = sorted(set(gn[gn.grad_norm_end > 1e-6].lam))
    out[0]["details"] += (f"; grad norm of L_lam at t_end in [{gn.grad_norm_end.min():.1e}, "
                          f"{gn.grad_norm_end.max():.1e}] (not converged, > 1e-6, for lam in {slow})")
    return out


def main(argv=None):
    return cli(NAME, Config, run, argv, __doc__)


if __name__ == "__main__":
    main()
