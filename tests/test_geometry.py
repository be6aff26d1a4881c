"""Geometry: d(B0, B*) closed form vs Procrustes vs brute force; principal angles; generator exactness."""

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, strategies as st

import twolayer as tl
from twolayer.geometry import check_orthonormal_rows, complement_basis, orthonormal_basis
from twolayer.testing import eps_values


def _rot2(a, reflect):
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, -s], [s, c]])
    return R @ np.diag([1.0, -1.0]) if reflect else R


def brute_force_distance_k2(B0, B_star):
    """min over O(2) of ||B0 - U B*||_2: grid over the angle, both components, then refine."""
    best = np.inf
    for reflect in (False, True):
        f = lambda a: np.linalg.norm(B0 - _rot2(a, reflect) @ B_star, 2)
        grid = np.linspace(0, 2 * np.pi, 4001)
        vals = np.array([f(a) for a in grid])
        a0 = grid[np.argmin(vals)]
        res = scipy.optimize.minimize_scalar(f, bounds=(a0 - 0.01, a0 + 0.01), method="bounded",
                                             options={"xatol": 1e-12})
        best = min(best, res.fun, vals.min())
    return best


@given(seed=st.integers(0, 10_000), eps=eps_values(1e-3, 1.4))
def test_distance_closed_form_vs_procrustes_vs_brute_force(seed, eps):
    p = tl.make_problem(seed, d=9, k=2, m=3, n=4, eps=eps)
    assert p.eps == pytest.approx(eps, rel=1e-10, abs=1e-14)
    assert p.eps_procrustes == pytest.approx(p.eps, rel=1e-9, abs=1e-12)
    assert brute_force_distance_k2(p.B0, p.B_star) == pytest.approx(p.eps, rel=1e-6, abs=1e-9)
    # The aligned ground truth attains the distance and keeps w*.
    assert np.linalg.norm(p.B0 - p.B_star_aligned, 2) == pytest.approx(p.eps, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(p.B_star_aligned.T @ p.v_star_aligned, p.w_star, atol=1e-13)


def test_distance_small_angles_are_accurate():
    # cos-based formulas lose everything below 1e-8; the closed form must not.
    for eps in (1e-6, 1e-9, 1e-12):
        p = tl.make_problem(3, d=20, k=3, m=6, n=8, eps=eps)
        assert p.eps == pytest.approx(eps, rel=1e-6)


def test_distance_k1_is_sign_aligned():
    b = np.array([[1.0, 0.0, 0.0]])
    c = np.array([[-np.cos(0.3), np.sin(0.3), 0.0]])
    assert tl.distance(b, c) == pytest.approx(2 * np.sin(0.15), rel=1e-12)


@given(seed=st.integers(0, 10_000), theta=st.floats(0.05, np.pi / 2 - 0.05))
def test_generator_controls_angles_exactly(seed, theta):
    p = tl.make_problem(seed, d=30, k=3, m=10, n=12, eps=0.1, theta_star=theta, shift="large")
    c = p.cos_theta_max
    assert c["R*,S"] == pytest.approx(np.cos(theta), abs=1e-10)
    assert c["R*,S_perp"] == pytest.approx(np.sin(theta), abs=1e-10)
    assert p.m == 10
    assert np.trace(p.Sigma) == pytest.approx(30.0)
    # 99% of the OOD second moment lies in S_perp for the large shift.
    P = p.S_perp_basis
    assert np.trace(P.T @ p.Sigma @ P) / np.trace(p.Sigma) == pytest.approx(0.99)
    np.testing.assert_allclose(p.B0 @ p.B0.T, np.eye(3), atol=1e-12)


def test_cos_theta_max_zero_when_R0_meets_S():
    p = tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.3)
    s = p.S_basis[:, 0]
    B0 = p.B0.copy()
    B0[0] = s
    B0[1] = B0[1] - (B0[1] @ s) * s
    B0[1] /= np.linalg.norm(B0[1])
    q = tl.Problem(p.B_star, p.v_star, B0, p.X)
    assert q.cos_theta_max["R0,S_perp"] == pytest.approx(0.0, abs=1e-12)
    assert q.cos_theta_max["R0,S"] > 0


def test_bases_are_orthonormal_and_complementary():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 10))
    Q = orthonormal_basis(A)
    C = complement_basis(Q)
    assert Q.shape == (10, 4) and C.shape == (10, 6)
    np.testing.assert_allclose(np.hstack([Q, C]).T @ np.hstack([Q, C]), np.eye(10), atol=1e-13)


def test_orthonormalize_rows_is_explicit_helper():
    rng = np.random.default_rng(1)
    B = rng.standard_normal((3, 8))
    with pytest.raises(tl.NotOrthonormalError) as info:
        check_orthonormal_rows(B, "B0")
    assert info.value.deviation > 1e-3 and "orthonormalize_rows" in str(info.value)
    Bo = tl.orthonormalize_rows(B)
    np.testing.assert_allclose(Bo @ Bo.T, np.eye(3), atol=1e-13)
