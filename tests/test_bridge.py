"""The bridge's geometry (THEORY.md §9) on a synthetic feature set where eps, S, m and rho
are known exactly by construction."""

import numpy as np
import pytest

import twolayer as tl
from twolayer.bridge import (BridgeConfig, build_bridge, fit_w_star, fraction_outside, pca_directions,
                             rotate_onto, training_span)
from twolayer.errors import TwoLayerInputError

D, K, THETA = 12, 3, 0.7


def _basis(seed=0):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, D)))
    return Q.T  # rows q_0 .. q_{d-1}, orthonormal


def _pairs(rows, labels):
    """(x, -x) pairs with labels (y, -y): the mean is exactly zero."""
    return np.vstack([rows, -rows]), np.concatenate([labels, -labels])


def synthetic(seed=0, n_half=40):
    """Features with R0 = span(q0, q1, q2) (the pool's top PCs), w* direction
    t = cos(THETA) q0 + sin(THETA) q4 (every row has x . t = its label, so least squares
    recovers t exactly), S = span(t, (q1 + q5)/sqrt2, (q2 + q6)/sqrt2, q8) plus a
    direction q9 at relative singular value ~1e-6 (below the tolerance), and OOD rows on
    every basis direction with known energies."""
    q = _basis(seed)
    rng = np.random.default_rng(seed + 1)
    pool = _pairs(np.diag([5.0, 4.0, 3.0] + [1.0 / (i + 2) for i in range(D - 3)]) @ q, np.ones(D))[0]
    t = np.cos(THETA) * q[0] + np.sin(THETA) * q[4]
    S_dirs = np.stack([t, (q[1] + q[5]) / np.sqrt(2), (q[2] + q[6]) / np.sqrt(2), q[8]])

    def id_rows(n):
        y = rng.choice([-1.0, 1.0], n)
        a = rng.standard_normal((n, 3))
        # the q9 coefficients are orthogonal (over the sample) to the others: q9 decouples exactly
        C = np.column_stack([y, a])
        e = rng.standard_normal(n)
        e -= C @ np.linalg.lstsq(C, e, rcond=None)[0]
        x = y[:, None] * t + a @ S_dirs[1:] + 1e-6 * (e / np.linalg.norm(e) * np.sqrt(n))[:, None] * q[9]
        return _pairs(x, y)

    train, test = id_rows(n_half), id_rows(n_half // 2)
    # OOD: for each basis direction q_j (j != 0, 4) rows y t + g_j q_j; plus rows along t.
    y_o = rng.choice([-1.0, 1.0], D)
    g = np.array([0.0 if j in (0, 4) else 0.5 + 0.1 * j for j in range(D)])
    extra = np.cos(THETA) * q[4] - np.sin(THETA) * q[0]  # the rest of the (q0, q4) plane, orthogonal to t
    ood_rows = y_o[:, None] * t + g[:, None] * q
    ood_rows[0] += 0.8 * extra
    ood = _pairs(ood_rows, y_o)
    return {"q": q, "t": t, "S_dirs": S_dirs, "pool": pool, "train": train, "test": test, "ood": ood}


@pytest.fixture(scope="module")
def syn():
    s = synthetic()
    s["bridge"] = build_bridge(s["pool"], s["train"], s["ood"], test=s["test"],
                               config=BridgeConfig(k=K, s_tol=1e-3))
    return s


def test_b0_is_the_pool_top_k_principal_directions(syn):
    B0 = syn["bridge"].problem.B0
    R0_true = syn["q"][:K].T
    assert np.max(tl.principal_angles(B0.T, R0_true)) < 1e-10
    assert np.allclose(B0 @ B0.T, np.eye(K), atol=1e-12)


def test_w_star_theta_and_eps_are_exact(syn):
    br = syn["bridge"]
    w_hat = br.w_star / np.linalg.norm(br.w_star)
    assert abs(abs(w_hat @ syn["t"]) - 1.0) < 1e-10
    assert br.info["wstar_ridge"] == 0.0 and br.info["wstar_fit_mse"] < 1e-20
    assert br.info["theta"] == pytest.approx(THETA, abs=1e-10)
    eps_exact = 2 * np.sin(THETA / 2)
    assert br.info["eps"] == pytest.approx(eps_exact, abs=1e-10)
    assert br.problem.eps == pytest.approx(eps_exact, abs=1e-10)        # twolayer.distance
    assert br.problem.eps_procrustes == pytest.approx(eps_exact, abs=1e-10)
    # B* is representable: B*^T v* = w*
    assert np.allclose(br.problem.w_star, br.w_star, atol=1e-10)


def test_S_m_and_rho_are_exact(syn):
    br = syn["bridge"]
    p = br.problem
    assert br.info["m"] == 4 and p.m == 4 and not br.info["m_capped"]
    assert br.info["rank_X_full"] == 5            # the 1e-6 direction is there, below the tolerance
    assert np.max(tl.principal_angles(p.S_basis, syn["S_dirs"].T)) < 1e-8
    # rho from the constructed S (orthonormalised) and the standardised OOD features
    Qs, _ = np.linalg.qr(syn["S_dirs"].T)
    Xo = br.features["ood"]
    rho_exact = 1.0 - np.sum((Xo @ Qs) ** 2) / np.sum(Xo ** 2)
    assert br.info["rho"] == pytest.approx(rho_exact, abs=1e-8)
    # cos theta_max(R0, S_perp) against the known bases
    Sp = np.linalg.svd(Qs, full_matrices=True)[0][:, 4:]
    assert br.info["cos_R0_Sperp"] == pytest.approx(tl.cos_theta_max(syn["q"][:K].T, Sp), abs=1e-8)
    assert br.info["sigma_ridge"] == 0.0        # the OOD rows span R^d: Sigma is positive definite


def test_standardisation_is_centre_and_unit_average_norm():
    s = synthetic(seed=3)
    shift = np.linspace(-2, 2, D)
    scale = 7.0
    moved = {k: ((s[k][0] * scale + shift), s[k][1]) for k in ("train", "test", "ood")}
    a = build_bridge(s["pool"], s["train"], s["ood"], test=s["test"], config=BridgeConfig(k=K, s_tol=1e-3))
    b = build_bridge(s["pool"] * scale + shift, moved["train"], moved["ood"], test=moved["test"],
                     config=BridgeConfig(k=K, s_tol=1e-3))
    assert np.mean(np.linalg.norm(b.features["train"], axis=1)) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(b.features["train"].mean(0), 0.0, atol=1e-12)
    for key in ("eps", "rho", "m", "theta", "cos_R0_Sperp"):
        assert b.info[key] == pytest.approx(a.info[key], abs=1e-8), key


def test_flow_on_the_bridge_keeps_S_perp_features_frozen(syn):
    """I1 on the bridge's problem: an input in S_perp keeps its features under FT."""
    p = syn["bridge"].problem
    tr = tl.simulate(p, "ft", [0.0, 1.0, np.inf])
    x_perp = p.S_perp_basis[:, :3].T
    assert np.max(tl.feature_change(p, tr.B, x_perp)) < 1e-10
    assert tl.feature_change(p, tr.B, p.X)[-1] > 1e-3


def test_well_specified_target(syn):
    s = syn
    br = build_bridge(s["pool"], s["train"], s["ood"], test=s["test"],
                      config=BridgeConfig(k=K, s_tol=1e-3, target="wstar"))
    assert br.problem.well_specified
    # with the real labels, the data here happen to be well specified too (x . t = y)
    assert s["bridge"].info["label_resid_frac"] < 1e-12


def test_m_is_capped_below_d_minus_k():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 10))
    Q, info = training_span(X, 1e-6, max_rank=10 - 4 - 1)
    assert info["m"] == 5 and info["m_at_tol"] == 10 and info["m_capped"]
    assert Q.shape == (10, 5)
    assert info["s_ratio_last_kept"] >= info["s_ratio_first_dropped"]


def test_rotate_onto_is_the_smallest_rotation():
    rng = np.random.default_rng(1)
    B0 = np.linalg.qr(rng.standard_normal((9, 4)))[0].T
    w = rng.standard_normal(9)
    Bs, vs, theta = rotate_onto(B0, w)
    assert np.allclose(Bs @ Bs.T, np.eye(4), atol=1e-12)
    assert np.allclose(Bs.T @ vs, w, atol=1e-12)
    assert np.linalg.norm(B0 - Bs, 2) == pytest.approx(2 * np.sin(theta / 2), abs=1e-12)
    assert tl.distance(B0, Bs) == pytest.approx(2 * np.sin(theta / 2), abs=1e-10)
    # only one direction of R0 moves: B0 and B* share a (k-1)-dimensional subspace
    ang = tl.principal_angles(B0.T, Bs.T)
    assert np.sum(ang > 1e-10) == 1
    # w already in R0: nothing changes
    Bs2, _, th2 = rotate_onto(B0, B0.T @ rng.standard_normal(4))
    assert th2 < 1e-12 and np.allclose(Bs2, B0, atol=1e-12)


def test_ridge_only_when_ill_conditioned_and_sigma_floor():
    rng = np.random.default_rng(2)
    F = rng.standard_normal((30, 5))
    y = np.sign(rng.standard_normal(30))
    _, info = fit_w_star(F, y)
    assert info["wstar_ridge"] == 0.0
    F2 = np.hstack([F, F[:, :1]])                 # rank deficient: ridge, stated
    _, info2 = fit_w_star(F2, y)
    assert info2["wstar_ridge"] > 0 and info2["wstar_rank"] == 5
    # fewer OOD rows than d: Sigma singular, a stated ridge makes it positive definite
    s = synthetic()
    ood = (s["ood"][0][:4], s["ood"][1][:4])
    br = build_bridge(s["pool"], s["train"], ood, config=BridgeConfig(k=K, s_tol=1e-3))
    assert br.info["sigma_ridge"] > 0 and br.problem.sigma_min_Sigma > 0
    assert fraction_outside(np.eye(D), np.eye(D)[:, :3]) == pytest.approx(1 - 3 / D)


def test_bad_inputs_raise_named_errors():
    s = synthetic()
    cfg = BridgeConfig(k=K)
    with pytest.raises(TwoLayerInputError, match="train\\[1\\]"):
        build_bridge(s["pool"], (s["train"][0], s["train"][1] * 2), s["ood"], config=cfg)
    with pytest.raises(TwoLayerInputError, match="ood"):
        build_bridge(s["pool"], s["train"], (s["ood"][0][:, :5], s["ood"][1]), config=cfg)
    with pytest.raises(TwoLayerInputError, match="k"):
        build_bridge(s["pool"], s["train"], s["ood"], config=BridgeConfig(k=D - 1))
    with pytest.raises(TwoLayerInputError, match="s_tol"):
        build_bridge(s["pool"], s["train"], s["ood"], config=BridgeConfig(k=K, s_tol=0.0))
    with pytest.raises(TwoLayerInputError, match="target"):
        BridgeConfig(target="y").validate()
    with pytest.raises(TwoLayerInputError, match="pool"):
        pca_directions(np.ones((5, D)), 3)
