"""Fast tests of group B's experiments (feature_distortion, id_comparison, few_shot,
regularization, gd_vs_flow, toy2d): logic on tiny configs, check() statuses (including
doctored records that must fail or be vacuous) and the figure scripts on cached results."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from experiments import feature_distortion as fd
from experiments import few_shot as fs
from experiments import gd_vs_flow as gd
from experiments import id_comparison as idc
from experiments import regularization as reg
from experiments import toy2d as toy
from experiments._common import load_records

STATUSES = {"pass", "fail", "vacuous", "not_applicable"}
TINY = dict(d=14, k=2, m=5, n=7)


def _run(mod, config, tmp_path):
    mod.run(config, out=tmp_path)
    return load_records(mod.NAME, out=tmp_path)


def _valid(checks):
    assert checks
    for c in checks:
        assert set(c) >= {"id", "claim", "source", "status", "margin", "unit", "n_cases", "details"}
        assert c["status"] in STATUSES
        assert isinstance(c["details"], str) and c["details"]
    return {c["claim"]: c for c in checks}


def _figure(mod_name, tmp_path):
    import importlib
    fig = importlib.import_module(f"figures.{mod_name}")
    paths = fig.main(results_dir=tmp_path, out_dir=tmp_path / "fig")
    for ext in ("png", "pdf"):
        assert (tmp_path / "fig" / f"{mod_name}.{ext}").exists()
    assert len(paths) == 2


# ------------------------------------------------------------------ feature_distortion
@pytest.fixture(scope="module")
def fd_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fd")
    cfg = fd.Config(seed=1, eps_grid=(0.005, 0.2), n_seeds=2, n_inputs=20, n_times=4, **TINY)
    return cfg, _run(fd, cfg, tmp), tmp


def test_feature_distortion_checks(fd_res):
    cfg, df, _ = fd_res
    assert set(df.inputs) == set(fd.INPUTS) and set(df.method) == set(fd.METHODS)
    checks = fd.check(df, cfg)
    _valid(checks)
    i1 = checks[2]
    assert i1["status"] == "pass"      # I1 is exact
    assert checks[0]["status"] == "pass"
    # doctored: a feature change in S_perp must fail I1
    bad = df.copy()
    bad.loc[bad.inputs == "sperp", "sperp_max"] = 1e-6
    assert fd.check(bad, cfg)[2]["status"] == "fail"
    # doctored: LP-FT distorting as much as FT must fail check (2)
    bad = df.copy()
    ft = bad[(bad.method == "ft")].set_index(["seed", "t", "inputs"]).feature_change
    m = bad.method == "lpft"
    bad.loc[m, "feature_change"] = [ft[(s, t, i)] for s, t, i in zip(bad[m].seed, bad[m].t, bad[m].inputs)]
    assert fd.check(bad, cfg)[1]["status"] == "fail"


def test_feature_distortion_inputs_unit_norm():
    import twolayer as tl
    p = tl.make_problem(0, 14, 2, 5, 7, 0.1, shift="large")
    xs = fd.input_sets(p, 10, np.random.default_rng(0))
    for x in xs.values():
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-12)
    assert np.abs(xs["id"] @ p.S_perp_basis).max() < 1e-12
    assert np.abs(xs["sperp"] @ p.S_basis).max() < 1e-12


def test_feature_distortion_figure(fd_res):
    _figure("feature_distortion", fd_res[2])


# ------------------------------------------------------------------ id_comparison
@pytest.fixture(scope="module")
def idc_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("idc")
    cfg = idc.Config(seed=2, eps_grid=(0.0, 0.1), n_seeds=2, **TINY)
    return cfg, _run(idc, cfg, tmp), tmp


def test_id_comparison_checks(idc_res):
    cfg, df, _ = idc_res
    checks = idc.check(df, cfg)
    _valid(checks)
    assert [c["status"] for c in checks] == ["pass", "pass"]
    bad = df.copy()
    bad.loc[bad.method == "ft", "id_loss"] = 10.0
    bad.loc[bad.method == "ft", "train_loss_rel"] = 0.5
    assert [c["status"] for c in idc.check(bad, cfg)] == ["fail", "fail"]


def test_toy_lpft_stationary_start_is_held():
    """The LP-FT start is stationary when LP already interpolates (toy: m = k = 1)."""
    import twolayer as tl
    p = toy.toy_problem(np.pi / 4, 0.1, (1.0, 2.0))
    ts = toy.times(toy.Config(n_times=8))      # same JIT shapes as the toy2d fixture
    tr = tl.simulate_batch([p], "lpft", ts)[0]
    assert tr.result.is_held, tr.result
    np.testing.assert_allclose(tr.v, np.tile(tr.v0, (len(ts), 1)))
    # held, or continued by the closed-form tail from t = 0 (certified): B0 to rounding
    np.testing.assert_allclose(tr.B, np.broadcast_to(p.B0, tr.B.shape), rtol=0, atol=4 * np.finfo(float).eps)


def test_id_comparison_figure(idc_res):
    _figure("id_comparison", idc_res[2])


# ------------------------------------------------------------------ few_shot
@pytest.fixture(scope="module")
def fs_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fs")
    # batch of 2 problems with m = 5 and 4 log times: the same JIT shapes as feature_distortion's
    cfg = fs.Config(seed=3, d=14, k=2, n_grid=(5,), eps_grid=(0.0, 0.6), n_seeds=1, n_times=4)
    return cfg, _run(fs, cfg, tmp), tmp


def test_few_shot_problem_is_iid():
    p = fs.iid_problem(0, 14, 2, 5, 0.05)
    assert p.m == 5 and p.n == 5 and np.allclose(p.Sigma, np.eye(14))
    assert abs(p.eps - 0.05) < 1e-12


def test_few_shot_checks(fs_res):
    cfg, df, _ = fs_res
    checks = fs.check(df, cfg)
    _valid(checks)
    for c in checks:
        assert c["status"] in {"pass", "vacuous"}
    # eps = 0.6 makes the bound vacuous: those instances are never counted as verified
    only_vac = df[df.eps_nominal == 0.6]
    assert (only_vac.bound_published_status == "vacuous").all()
    assert fs.check(only_vac, cfg)[0]["status"] == "vacuous"
    # doctored: a test loss below a non-vacuous bound must fail
    bad = df.copy()
    bad.loc[bad.bound_published_status == "ok", "sqrt_ood"] = 0.0
    assert fs.check(bad, cfg)[0]["status"] == "fail"
    bad = df.copy()
    bad["ood_lp_inf"] = 10.0
    assert fs.check(bad, cfg)[2]["status"] == "fail"


def test_few_shot_figure(fs_res):
    _figure("few_shot", fs_res[2])


# ------------------------------------------------------------------ regularization
@pytest.fixture(scope="module")
def reg_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reg")
    cfg = reg.Config(seed=4, eps_grid=(0.05,), n_seeds=7, lam_grid=(0.0, 1.0, 100.0), n_times=4,
                     t_end=20.0, **TINY)
    return cfg, _run(reg, cfg, tmp), tmp


def test_regularized_flow_matches_reference_and_keeps_i1():
    import twolayer as tl
    from twolayer.reference import regularized_reference, simulate_reference
    p = tl.make_problem(0, 14, 2, 5, 7, 0.1, head_init="gaussian")
    ts = np.array([0.0, 0.1, 1.0])
    v, B, nfev, _ = regularized_reference(p, 0.0, ts, p.v0)
    ref = simulate_reference(p, "ft", ts)
    np.testing.assert_allclose(v, ref.v, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(B, ref.B, rtol=1e-7, atol=1e-9)
    v, B, _, _ = regularized_reference(p, 3.0, ts, p.v0, reg_head=True)
    assert np.abs((B - p.B0) @ p.S_perp_basis).max() < 1e-10
    assert nfev > 0


def test_regularization_checks(reg_res):
    cfg, df, _ = reg_res
    checks = reg.check(df, cfg)
    _valid(checks)
    assert len(checks) == 3
    assert "FINDING" in checks[0]["details"]   # the OOD-oracle lam comparison is reported
    assert checks[1]["status"] == "pass"   # I1
    assert checks[2]["status"] == "pass"   # lam = 0 equals the core FT flow
    bad = df.copy()
    bad.loc[bad.method == "lpft", "ood_loss"] = 1e6
    assert reg.check(bad, cfg)[0]["status"] == "fail"
    good = df.copy()
    good.loc[good.method == "lpft", "ood_loss"] = 1e-30
    assert reg.check(good, cfg)[0]["status"] == "pass"


def test_regularization_figure(reg_res):
    _figure("regularization", reg_res[2])


# ------------------------------------------------------------------ gd_vs_flow
@pytest.fixture(scope="module")
def gd_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gd")
    cfg = gd.Config(seed=5, n_seeds=1, n_lrs=3, horizon=1.0, n_match=4, **TINY)
    return cfg, _run(gd, cfg, tmp), tmp


def test_gd_step_sizes_hit_matched_times():
    cfg = gd.Config.quick()
    for lr, every in gd.step_sizes(cfg, 50.0):
        assert lr * every * cfg.n_match == pytest.approx(cfg.horizon, rel=1e-14)
        assert lr * 50.0 <= cfg.lr_scale * 1.0000001


def test_gd_vs_flow_checks(gd_res):
    cfg, df, _ = gd_res
    checks = gd.check(df, cfg)
    _valid(checks)
    assert [c["status"] for c in checks] == ["pass"] * 4
    bad = df.copy()
    bad["i1_abs"] = 1e-9
    bad["ood_gap_max"] = 1e-3          # constant gap: slope 0, not 1
    out = gd.check(bad, cfg)
    assert out[0]["status"] == "fail" and out[3]["status"] == "fail"


def test_gd_vs_flow_figure(gd_res):
    _figure("gd_vs_flow", gd_res[2])


# ------------------------------------------------------------------ toy2d
@pytest.fixture(scope="module")
def toy_res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    cfg = toy.Config(betas=(np.pi / 4, 0.0), angles=(0.02, 0.3), n_times=8)
    return cfg, _run(toy, cfg, tmp), tmp


def test_toy2d_checks(toy_res):
    cfg, df, _ = toy_res
    checks = _valid(toy.check(df, cfg))
    st = [c["status"] for c in checks.values()]
    assert st.count("not_applicable") == 2
    first = toy.check(df, cfg)
    assert first[0]["status"] == "pass"            # I1
    assert first[1]["status"] == "pass"            # FT worse OOD than LP (small angle)
    assert first[-1]["status"] == "pass"           # closed form
    bad = df.copy()
    bad.loc[bad.method == "ft", "i1_abs"] = 1e-6
    bad.loc[bad.method == "ft", "ood_err_e2"] = 0.0
    out = toy.check(bad, cfg)
    assert out[0]["status"] == "fail" and out[1]["status"] == "fail"


def test_toy2d_lpft_equals_lp(toy_res):
    _, df, _ = toy_res
    end = df[df.t == np.inf].pivot_table(index=["beta", "angle"], columns="method", values="w2")
    np.testing.assert_allclose(end["lpft"], end["lp"], rtol=1e-12)


def test_toy2d_figure(toy_res):
    _figure("toy2d", toy_res[2])


def test_configs_are_jsonable():
    import json
    for mod in (fd, idc, fs, reg, gd, toy):
        for c in (mod.Config.quick(), mod.Config.full()):
            json.dumps(dataclasses.asdict(c))
            assert mod.units(c)
