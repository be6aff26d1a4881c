"""Regularisation vs LP-FT (experiments/regularization.py, THEORY.md §6): the lam selection on
noisy held-out ID data (not degenerate), lams without a limit, and check() rows that follow
the computed numbers. The flow, its Jacobian and the certified limit are the library's
(twolayer.regularized): tests/test_regularized.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from experiments import regularization as reg
from experiments._common import load_records
from twolayer.regularized import RegularizedFlow, no_limit_diagnosis, regularized_limit

TINY = dict(d=14, k=2, m=5, n=7)


def _cfg(**kw):
    base = dict(seed=3, eps_grid=(0.15,), n_seeds=7, lam_grid=(0.0, 0.1, 1.0, 10.0, 100.0),
                noise_std=0.03, n_val=300, t_end=5.0, n_times=3, **TINY)
    base.update(kw)
    return reg.Config(**base)


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regF")
    cfg = _cfg()
    reg.run(cfg, out=tmp)
    return cfg, load_records(reg.NAME, out=tmp)


def _problem(noise=0.03, seed=3):
    cfg = _cfg(noise_std=noise, seed=seed)
    return cfg, reg.noisy_problem(cfg, reg.units(cfg)[0])


def test_selection_is_not_degenerate_with_label_noise(res):
    """The old rule (noise-free ID loss) always picks lam = 0 because plain FT interpolates;
    with noisy labels and a noisy held-out set most instances choose a positive lam (here 6
    of 7), and there plain FT (lam = 0) has a strictly worse validation loss."""
    cfg, df = res
    r = df[df.method == "regft"]
    sel = reg.select_lam(r, "val_loss")
    positive = {seed: row for seed, row in sel.items() if row.lam > 0}
    assert len(positive) > len(sel) / 2
    for seed, row in positive.items():
        assert r[(r.seed == seed) & (r.lam == 0.0)].val_loss.iloc[0] > row.val_loss


def test_noise_free_selection_is_degenerate():
    """Without label noise plain FT interpolates: its ID loss is ~0 and it wins the selection."""
    import twolayer as tl
    _, (p, X_val, y_val, _s) = _problem(noise=0.0)
    rows = []
    for lam in (0.0, 0.1, 1.0, 10.0):
        lim = regularized_limit(p, lam, p.v0)
        rows.append(dict(seed=0, lam=lam, **reg._metrics(p, lim["v"], lim["B"], X_val, y_val)))
    r = pd.DataFrame(rows)
    assert reg.select_lam(r, "id_loss")[0].lam == 0.0
    assert r.id_loss.iloc[0] <= 1e-12 * max(1.0, tl.id_loss(p, p.v0, p.B0))


def test_every_lam_converged_and_check_rows(res):
    cfg, df = res
    r = df[df.method == "regft"]
    assert sorted(r.lam.unique()) == sorted(cfg.lam_grid)
    has = reg._has_limit(r)
    assert r[has].certified.astype(bool).all() and not r[~has].certified.astype(bool).any()
    assert (r[~has].no_limit_F_end >= r[~has].no_limit_F_inf).all()     # diagnosed, with the numbers
    r = r[has]
    assert (r.newton_dist <= cfg.dist_rtol * 1e3).all() and (r.ood_last_change <= cfg.ood_rtol).all()
    checks = reg.check(df, cfg)
    ids = [c["id"] for c in checks]
    assert len(ids) == len(set(ids)) == 3
    for c in checks:
        assert set(c) >= {"id", "claim", "source", "status", "margin", "unit", "n_cases", "details"}
        assert c["status"] in {"pass", "fail", "vacuous", "not_applicable"}
        assert isinstance(c["unit"], str) and c["unit"]
    assert set(reg.FINDINGS) <= set(ids)
    main = checks[0]
    # status follows the computed margin
    assert (main["status"] == "pass") == (main["margin"] > 0)
    assert checks[1]["status"] == "pass" and checks[2]["status"] == "pass"


def test_check_follows_fabricated_numbers_both_ways(res):
    cfg, df = res
    worse = df.copy()
    worse.loc[worse.method == "lpft", "ood_loss"] = 1e6        # LP-FT far worse: reg. FT wins
    c = reg.check(worse, cfg)[0]
    assert c["status"] == "fail" and c["margin"] < 0 and "LP-FT better on 0 of 7" in c["details"]
    better = df.copy()
    better.loc[better.method == "lpft", "ood_loss"] = 1e-30    # LP-FT far better
    c = reg.check(better, cfg)[0]
    assert c["status"] == "pass" and c["margin"] > 0
    # the selection follows the validation loss: make the largest lam the best on validation
    moved = df.copy()
    big = moved.method.eq("regft") & moved.lam.eq(max(cfg.lam_grid))
    moved.loc[big, "val_loss"] = 0.0
    assert f"selected lam={max(cfg.lam_grid):g}" in reg.check(moved, cfg)[0]["details"]
    # a broken cross-check fails
    bad = df.copy()
    bad.loc[bad.method == "xcheck_full", "i1_rel"] = 1.0
    assert reg.check(bad, cfg)[1]["status"] == "fail"
    bad = df.copy()
    bad.loc[bad.method == "xcheck_core", "rel_diff"] = 1.0
    assert reg.check(bad, cfg)[2]["status"] == "fail"


def test_sign_test_decides_and_too_few_instances_decide_nothing(res):
    """LP-FT better on 6 of 7 instances is not enough at 1% (7 of 7 is); with 6 instances
    nothing can be decided (not_applicable)."""
    cfg, df = res
    seeds = sorted(df.seed.unique())
    lpft = df.method == "lpft"
    better = df.copy()
    better.loc[lpft, "ood_loss"] = 1e-30                        # LP-FT wins everywhere ...
    better.loc[lpft & (better.seed == seeds[0]), "ood_loss"] = 1e6   # ... but on one instance
    c = reg.check(better, cfg)[0]
    assert c["status"] == "fail" and "LP-FT better on 6 of 7" in c["details"] and ">= 7 of 7" in c["details"]
    few = reg.check(df[df.seed != seeds[0]], cfg)[0]
    assert few["status"] == "not_applicable" and few["margin"] is not None and np.isnan(few["margin"])


def test_a_lam_without_a_limit_is_diagnosed_recorded_and_not_selected(res):
    """F_lam with an unpenalised head can have its infimum at |v| = infinity: measured on the
    quick config's instance (seed 3, rep 2) at lam = 0.01, the flow runs off (|v| 243 at
    t = 1e9, F 0.6% above lam sigma_min(G0)^2). That state is diagnosed as having no limit
    (the numbers in the error), a converged lam's limit is not, and regularized_limit raises
    the diagnosis, also where a stop passes the certificate on the run-off (seed 2, instance
    2004, lam = 1: |v| = 507); in the records such a lam is not selectable and the check
    counts it."""
    from scipy.integrate import solve_ivp
    qcfg = reg.Config.quick(3)
    p, *_ = reg.noisy_problem(qcfg, dict(eps=0.15, eps_index=0, rep=2))
    fl = RegularizedFlow(p, 0.01)
    sol = solve_ivp(lambda _t, y: fl.field(y), (0.0, 1e9), fl.pack(p.v0, fl.G0), method="LSODA", rtol=1e-8,
                    atol=1e-10, jac=lambda _t, y: fl.jac(y))
    err = no_limit_diagnosis(fl, sol.y[:, -1], p.v0, 1e9)
    assert isinstance(err, reg.NoLimitError) and "no minimizer" in str(err)
    nb = err.numbers
    assert nb["F_inf"] <= nb["F_end"] <= nb["F_inf"] * 1.01 and nb["v_norm"] > 100
    assert nb["F_inf"] == pytest.approx(0.01 * np.linalg.svd(fl.G0, compute_uv=False).min() ** 2)
    lim = regularized_limit(p, 1.0, p.v0)                    # a lam with a limit: no diagnosis
    fl1 = RegularizedFlow(p, 1.0)
    assert no_limit_diagnosis(fl1, fl1.pack(lim["v"], lim["B"] @ p.S_basis), p.v0, 1e9) is None
    # A penalised head makes F coercive: no infimum at infinity.
    assert RegularizedFlow(p, 0.01, reg_head=True).infimum_at_infinity() == float("inf")
    # The wiring: an uncertified stop on the run-off raises the diagnosis (here at t ~ 6e6) ...
    with pytest.raises(reg.NoLimitError):
        regularized_limit(p, 0.01, p.v0, t_max=qcfg.t_max)
    # ... and so does a stop that passes the certificate there (its tolerances grow with |v|^2).
    p2, *_ = reg.noisy_problem(reg.Config.quick(2), dict(eps=0.15, eps_index=0, rep=4))
    with pytest.raises(reg.NoLimitError) as info:
        regularized_limit(p2, 1.0, p2.v0)
    assert info.value.numbers["v_norm"] > 100 * np.linalg.norm(p2.v0)
    assert np.linalg.norm(regularized_limit(p2, 100.0, p2.v0)["v"]) < 2 * max(1.0, np.linalg.norm(p2.v0))
    # In the records: the selected lam of one instance loses its limit -> another is selected.
    cfg, df = res
    seed = sorted(df.seed.unique())[0]
    sel = reg.select_lam(df[df.method == "regft"], "val_loss")[seed]
    gone = df.copy()
    row = gone.method.eq("regft") & gone.seed.eq(seed) & gone.lam.eq(sel.lam)
    n_before = int((df.method.eq("regft") & ~reg._has_limit(df)).sum())
    gone.loc[row, ["has_limit", "certified"]] = False
    gone.loc[row, ["ood_loss", "val_loss"]] = np.nan
    assert reg.select_lam(gone[gone.method == "regft"], "val_loss")[seed].lam != sel.lam
    c = reg.check(gone, cfg)[0]
    assert "no minimizer" in c["details"]
    assert f"for {n_before + 1} of {int(df.method.eq('regft').sum())}" in c["details"]


def test_check_refuses_unconverged_records(res):
    cfg, df = res
    bad = df.copy()
    bad.loc[bad.index[bad.method == "regft"][0], "certified"] = False
    with pytest.raises(reg.NotConvergedError, match="not certified"):
        reg.check(bad, cfg)
    with pytest.raises(reg.NotConvergedError, match="certificate columns"):
        reg.check(df.drop(columns=["newton_dist"]), cfg)


def test_bad_config_raises():
    from twolayer.errors import TwoLayerInputError
    with pytest.raises(TwoLayerInputError, match="noise_std"):
        reg.run(dataclasses.replace(_cfg(), noise_std=-1.0), out="/nonexistent-never-written")
    with pytest.raises(TwoLayerInputError, match="lam_grid"):
        reg.run(dataclasses.replace(_cfg(), lam_grid=(0.0, -1.0)), out="/nonexistent-never-written")
