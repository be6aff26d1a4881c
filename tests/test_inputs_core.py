"""Core inputs (issue 9): every public function of problem, generate, geometry, invariants and
losses rejects bad input with a TwoLayerInputError naming the argument and giving a fix."""

import numpy as np
import pytest

import twolayer as tl
from twolayer.geometry import (check_orthonormal_rows, complement_basis, orthonormal_basis,
                               orthonormalize_rows)
from twolayer.invariants import i1_residual, i2_residual
from twolayer.trajectory import Trajectory

SHAPE = dict(d=12, k=2, m=4, n=6)


@pytest.fixture(scope="module")
def p():
    return tl.make_problem(0, eps=0.1, **SHAPE)


def _raises(argument, fn, *args, **kwargs):
    with pytest.raises(tl.TwoLayerInputError) as info:
        fn(*args, **kwargs)
    e = info.value
    assert isinstance(e, ValueError)
    assert e.argument == argument, str(e)
    assert f"`{argument}`" in str(e)
    assert e.fix or isinstance(e, tl.NotOrthonormalError), f"no fix given: {e}"
    return e


def _traj(p, ts=(0.0, 1.0), v=None, B=None, method="ft", v0=None):
    T = len(ts)
    v = np.zeros((T, p.k)) if v is None else v
    B = np.broadcast_to(p.B0, (T, p.k, p.d)) if B is None else B
    return Trajectory(ts=np.asarray(ts), v=v, B=B, method=method, v0=p.v0 if v0 is None else v0)


# -- make_problem ---------------------------------------------------------------------------

def test_make_problem_rejects_zero_data_scale():
    e = _raises("x_scale", tl.make_problem, 0, eps=0.1, x_scale=0.0, **SHAPE)
    assert "m = 0" in str(e) or "> 0" in str(e)
    for bad in (-1.0, np.nan, np.inf, None, True):
        _raises("x_scale", tl.make_problem, 0, eps=0.1, x_scale=bad, **SHAPE)


def test_scales_that_overflow_float64_are_rejected(p):
    _raises("x_scale", tl.make_problem, 0, eps=0.1, x_scale=1e-170, **SHAPE)
    _raises("w_star_norm", tl.make_problem, 0, eps=0.1, w_star_norm=1e200, **SHAPE)
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, 1e-170 * p.X)
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, 1e200 * p.X)
    _raises("y", tl.Problem, p.B_star, p.v_star, p.B0, p.X, y=1e200 * np.ones(p.n))
    _raises("v_star", tl.Problem, p.B_star, 1e200 * p.v_star, p.B0, p.X)


def test_make_problem_blames_k_when_k_too_large():
    e = _raises("k", tl.make_problem, 0, d=5, k=6, m=1, n=2, eps=0.1)
    assert "d" in e.fix and "k" in e.fix
    _raises("k", tl.make_problem, 0, d=5, k=4, m=1, n=2, eps=0.1)   # d - k = 1: no valid m
    _raises("m", tl.make_problem, 0, d=10, k=3, m=7, n=8, eps=0.1)  # m >= d - k: blame m


@pytest.mark.parametrize("kw, argument", [
    (dict(eps=None), "eps"), (dict(eps=np.nan), "eps"), (dict(eps=-1e-3), "eps"), (dict(eps="0.1"), "eps"),
    (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(seed=None), "seed"), (dict(seed=True), "seed"),
    (dict(w_star_norm=-1.0), "w_star_norm"), (dict(w_star_norm=0.0), "w_star_norm"),
    (dict(w_star_norm=np.inf), "w_star_norm"), (dict(w_star_norm=None), "w_star_norm"),
    (dict(head_scale=np.nan), "head_scale"), (dict(head_scale=None), "head_scale"),
    (dict(theta_star=np.nan), "theta_star"), (dict(theta_star=np.inf), "theta_star"),
    (dict(shift=np.nan), "shift"), (dict(shift=None), "shift"), (dict(shift=True), "shift"),
    (dict(d=True), "d"), (dict(k=True), "k"), (dict(m=4.0), "m"), (dict(n=None), "n"), (dict(d=-3), "d"),
    (dict(head_init=None), "head_init"), (dict(head_init=np.ones(3)), "head_init"),
    (dict(head_init=np.array([np.nan, 0.0])), "head_init"),
])
def test_make_problem_scalar_arguments(kw, argument):
    args = dict(seed=0, eps=0.1, **SHAPE)
    args.update(kw)
    _raises(argument, tl.make_problem, **args)


def test_make_problem_accepts_numpy_scalars():
    p = tl.make_problem(np.int64(3), d=np.int32(12), k=2, m=4, n=6, eps=np.float32(0.25),
                        w_star_norm=np.float64(2.0))
    assert (p.d, p.k, p.m) == (12, 2, 4)
    assert p.w_star_norm == pytest.approx(2.0)
    assert p.eps == pytest.approx(0.25, rel=1e-6)


def test_ood_second_moment_inputs(p):
    S, Sp = p.S_basis, p.S_perp_basis
    _raises("S_perp_basis", tl.ood_second_moment, S, Sp[:5], "large")
    _raises("S_basis", tl.ood_second_moment, S[:, :0], np.eye(p.d), "large")
    _raises("S_perp_basis", tl.ood_second_moment, np.eye(p.d), np.zeros((p.d, 0)), "small")
    _raises("S_basis", tl.ood_second_moment, 2 * S, Sp, 0.5)
    _raises("S_perp_basis", tl.ood_second_moment, S, np.linalg.qr(np.hstack([S[:, :1], Sp[:, 1:]]))[0], 0.5)
    np.testing.assert_allclose(tl.ood_second_moment(S, Sp, "large"), p.Sigma if p.meta["shift"] == "large"
                               else tl.make_problem(0, eps=0.1, shift="large", **SHAPE).Sigma, atol=1e-12)
    _raises("shift", tl.ood_second_moment, S, Sp, None)
    _raises("shift", tl.ood_second_moment, S, Sp, np.nan)


# -- Problem --------------------------------------------------------------------------------

def test_problem_rejects_rank_zero_data(p):
    e = _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, np.zeros_like(p.X))
    assert "m = 0" in str(e)


@pytest.mark.parametrize("name", ["B_star", "v_star", "B0", "X", "y", "Sigma", "v0"])
def test_problem_rejects_nan_in_every_matrix(p, name):
    kw = dict(B_star=p.B_star, v_star=p.v_star, B0=p.B0, X=p.X, y=p.y, Sigma=p.Sigma, v0=np.zeros(p.k))
    bad = np.array(kw[name], dtype=float)
    bad.flat[0] = np.nan
    kw[name] = bad
    _raises(name, lambda **k: tl.Problem(k.pop("B_star"), k.pop("v_star"), k.pop("B0"), k.pop("X"),
                                          k.pop("y"), k.pop("Sigma"), **k), **kw)


def test_problem_rejects_bad_shapes_and_types(p):
    _raises("B_star", tl.Problem, None, p.v_star, p.B0, p.X)
    _raises("B_star", tl.Problem, p.B_star[0], p.v_star, p.B0, p.X)           # 1-d
    _raises("B_star", tl.Problem, np.zeros((0, p.d)), np.zeros(0), np.zeros((0, p.d)), p.X)  # k = 0
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, None)
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, p.X[0])
    _raises("y", tl.Problem, p.B_star, p.v_star, p.B0, p.X, y=p.y[:, None])
    _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=np.ones(p.d))
    _raises("v0", tl.Problem, p.B_star, p.v_star, p.B0, p.X, v0=np.zeros((1, p.k)))
    _raises("v_star", tl.Problem, p.B_star, "abc", p.B0, p.X)
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, p.X + 1j)
    _raises("meta", tl.Problem, p.B_star, p.v_star, p.B0, p.X, meta=[1, 2])


def test_problem_orthonormal_tol_is_validated(p):
    # A NaN tolerance used to accept any B0 (deviation > nan is False).
    _raises("orthonormal_tol", tl.Problem, p.B_star, p.v_star, 3 * p.B0, p.X, orthonormal_tol=np.nan)
    _raises("orthonormal_tol", tl.Problem, p.B_star, p.v_star, p.B0, p.X, orthonormal_tol=-1.0)
    _raises("orthonormal_tol", tl.Problem, p.B_star, p.v_star, 3 * p.B0, p.X, orthonormal_tol=10.0)
    _raises("tol", tl.distance, p.B0, p.B_star, tol=None)


def test_problem_sigma_singular(p):
    S = np.eye(p.d)
    S[0, 0] = 0.0
    e = _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=S)
    assert "positive definite" in str(e)
    S[0, 0] = 1e-300     # positive, but singular to float64 (used to be accepted)
    _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=S)


def test_problem_misspecified_labels_allowed_and_flagged(p):
    y = p.y + 0.5
    q = tl.Problem(p.B_star, p.v_star, p.B0, p.X, y=y)
    assert not q.well_specified
    assert tl.Problem(p.B_star, p.v_star, p.B0, p.X, y=p.y).well_specified


def test_float32_data_whose_rounding_adds_directions_to_S_warns(p):
    """X with m = 4 < n = 6 rows, given as float32: its rounding makes rank X = 6 at float64's
    cutoff. The Problem warns (naming both ranks and the fix); float32 data of full rank, and
    the same X in float64, do not warn."""
    import warnings
    with pytest.warns(tl.PrecisionWarning, match=r"m = dim S = 6, but 2 of those directions.*float64"):
        q = tl.Problem(p.B_star, p.v_star, p.B0, p.X.astype(np.float32))
    assert (p.m, q.m) == (4, 6)
    full = np.random.default_rng(0).standard_normal((6, p.d)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tl.PrecisionWarning)
        assert tl.Problem(p.B_star, p.v_star, p.B0, full).m == 6
        assert tl.Problem(p.B_star, p.v_star, p.B0, p.X).m == 4


def test_problem_B_from_G_checks_shape(p):
    _raises("G", p.B_from_G, np.zeros((p.k, p.m + 1)))
    np.testing.assert_allclose(p.B_from_G(p.B0 @ p.S_basis), p.B0, atol=1e-14)


# -- geometry -------------------------------------------------------------------------------

def test_geometry_rejects_nan_ndim_and_mismatch(p):
    Q0, Qs = p.R0_basis, p.S_basis
    nanQ = Q0.copy()
    nanQ[0, 0] = np.nan
    for fn in (tl.principal_angles, tl.cos_theta_max):
        _raises(fn.__code__.co_varnames[0], fn, nanQ, Qs)
        _raises(fn.__code__.co_varnames[1], fn, Q0, Qs[:, 0])              # 1-d
        _raises(fn.__code__.co_varnames[1], fn, Q0, Qs[:5])                # different d
        _raises(fn.__code__.co_varnames[0], fn, None, Qs)
    for fn in (tl.distance, tl.procrustes_rotation, tl.procrustes_distance):
        bad = p.B0.copy()
        bad[0, 0] = np.inf
        _raises("B0", fn, bad, p.B_star)
        _raises("B_star", fn, p.B0, p.B_star[:, :5])
        _raises("B0", fn, p.B0[0], p.B_star)
        _raises("B_star", fn, p.B0, None)
    _raises("A", orthonormal_basis, np.array([[np.nan, 1.0]]))
    _raises("A", orthonormal_basis, np.ones(3))
    _raises("rtol", orthonormal_basis, np.ones((2, 3)), rtol=np.nan)
    _raises("rtol", orthonormal_basis, np.ones((2, 3)), rtol=-1.0)
    _raises("Q", complement_basis, np.ones(3))
    _raises("Q", complement_basis, np.ones((3, 2)))                         # not orthonormal
    _raises("B", orthonormalize_rows, None)
    _raises("tol", check_orthonormal_rows, p.B0, "B0", np.nan)


def test_cos_theta_max_requires_orthonormal_columns(p):
    e = _raises("Q_T", tl.cos_theta_max, p.R0_basis, 2 * p.S_basis)
    assert isinstance(e, tl.NotOrthonormalError) and e.deviation == pytest.approx(3.0)
    _raises("Q_R", tl.cos_theta_max, 0.5 * p.R0_basis, p.S_basis)
    # valid input still agrees with the Problem's cached value
    assert tl.cos_theta_max(p.R0_basis, p.S_perp_basis) == pytest.approx(p.alpha, abs=1e-14)


def test_distance_requires_nonempty(p):
    _raises("B0", tl.distance, np.zeros((0, 3)), np.zeros((0, 3)))
    _raises("B0", tl.procrustes_rotation, np.zeros((0, 3)), np.zeros((0, 3)))


# -- losses ---------------------------------------------------------------------------------

LOSSES = [tl.ood_loss, tl.id_loss, tl.train_loss, tl.effective_predictor]


@pytest.mark.parametrize("fn", LOSSES, ids=lambda f: f.__name__)
def test_losses_reject_nonfinite_and_bad_shapes(p, fn):
    v = np.array([np.nan, 0.0])
    e = _raises("v", fn, p, v, p.B0)
    assert "NaN" in str(e)
    B = p.B0.copy()
    B[1, 3] = np.inf
    _raises("B", fn, p, np.zeros(p.k), B)
    _raises("v", fn, p, np.zeros(p.k + 1), p.B0)
    _raises("B", fn, p, np.zeros(p.k), p.B0[:, :5])
    _raises("B", fn, p, np.zeros((3, p.k)), np.stack([p.B0] * 4))
    _raises("v", fn, p, None, p.B0)
    _raises("problem", fn, None, np.zeros(p.k), p.B0)
    assert np.isfinite(fn(p, np.zeros((3, p.k)), np.stack([p.B0] * 3))).all()


def test_feature_change_inputs(p):
    x = np.ones((4, p.d))
    B = np.stack([p.B0] * 2)
    _raises("x", tl.feature_change, p, B, np.zeros((0, p.d)))
    _raises("x", tl.feature_change, p, B, np.full((4, p.d), np.nan))
    _raises("x", tl.feature_change, p, B, np.ones(p.d))
    badB = B.copy()
    badB[0, 0, 0] = np.nan
    _raises("B", tl.feature_change, p, badB, x)
    _raises("B", tl.feature_change, p, B[..., :5], x)
    _raises("problem", tl.feature_change, "p", B, x)
    np.testing.assert_allclose(tl.feature_change(p, B, x), 0.0, atol=1e-15)


# -- invariants -----------------------------------------------------------------------------

def test_invariant_drift_with_another_problems_trajectory(p):
    other = tl.make_problem(1, d=14, k=2, m=4, n=6, eps=0.1)
    e = _raises("traj", tl.invariant_drift, p, _traj(other))
    assert "d=" in str(e) or "(2, 14)" in str(e)
    other_k = tl.make_problem(1, d=12, k=3, m=4, n=6, eps=0.1)
    _raises("traj", tl.invariant_drift, p, _traj(other_k))
    same_shape = tl.make_problem(1, eps=0.1, **SHAPE)
    e = _raises("traj", tl.invariant_drift, p, _traj(same_shape))
    assert "B(0)" in str(e)
    # LP keeps B = B0 at every time, so even a trajectory starting after 0 is checked.
    _raises("traj", tl.invariant_drift, p, _traj(same_shape, ts=(1.0, 2.0), method="lp"))
    _raises("traj", tl.invariant_drift, p, "trajectory")
    _raises("problem", tl.invariant_drift, None, _traj(p))
    bad = np.zeros((2, p.k))
    bad[1, 0] = np.nan
    _raises("traj", tl.invariant_drift, p, _traj(p, v=bad))
    _raises("traj", tl.invariant_drift, p, _traj(p, v0=np.zeros(p.k + 1)))


def test_invariant_drift_own_trajectory_is_zero(p):
    d = tl.invariant_drift(p, _traj(p))
    assert d.i1_abs == 0.0 and d.i2_abs < 1e-14 and d.i2_rel < 1e-14


def test_invariant_drift_of_lp_says_i2_does_not_apply(p):
    """LP moves only the head: I2 is no invariant there (NaN, not a drift), I1 still holds."""
    tr = tl.simulate(p, "lp", [0.0, 1.0, 10.0])
    assert np.abs(tr.v[-1] - tr.v[0]).max() > 0            # the head moved
    d = tl.invariant_drift(p, tr)
    assert d.i1_abs == 0.0 and np.isnan(d.i2_abs) and np.isnan(d.i2_rel)
    d_ft = tl.invariant_drift(p, tl.simulate(p, "ft", [0.0, 1.0]))
    assert np.isfinite(d_ft.i2_rel)


def test_invariant_drift_zero_reference_is_finite():
    # k = 1 with |v0| = 1: v0 v0^T - B0 B0^T = 0, the relative I2 drift must not be nan/inf.
    q = tl.Problem([[1.0, 0.0, 0.0]], [1.0], [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], v0=[1.0])
    d = tl.invariant_drift(q, _traj(q, v=np.array([[1.0], [1.0]])))
    assert np.isfinite(d.i2_rel) and d.i2_rel == 0.0


def test_residual_functions_check_shapes(p):
    _raises("B", i1_residual, p, p.B0[:, :5])
    _raises("B", i1_residual, p, np.full(p.B0.shape, np.nan))
    _raises("problem", i1_residual, None, p.B0)
    _raises("B", i2_residual, np.zeros(p.k), np.zeros((p.k + 1, p.d)), p.v0, p.B0)
    _raises("v_ref", i2_residual, np.zeros(p.k), p.B0, np.zeros(p.k + 1), p.B0)
    _raises("B_ref", i2_residual, np.zeros(p.k), p.B0, p.v0, p.B0[0])
    e = _raises("B", i2_residual, np.zeros(p.k), p.B0, p.v0, p.B0[:, :5])   # d differs from B_ref's
    assert "B_ref" in str(e)
    _raises("v", i2_residual, np.full(p.k, np.nan), p.B0, p.v0, p.B0)
    assert float(i2_residual(np.zeros(p.k), p.B0, p.v0, p.B0)) < 1e-14


def test_ood_loss_on_a_trajectory_matches_the_formula():
    """ood_loss (vectorised as (e Sigma) . e) equals (w* - B^T v)^T Sigma (w* - B^T v) per time."""
    p = tl.make_problem(0, d=30, k=3, m=8, n=10, eps=0.1, shift="large")
    rng = np.random.default_rng(1)
    v, B = rng.standard_normal((7, 3)), p.B0 + 0.1 * rng.standard_normal((7, 3, 30))
    ref = np.array([(p.w_star - Bt.T @ vt) @ p.Sigma @ (p.w_star - Bt.T @ vt) for vt, Bt in zip(v, B)])
    np.testing.assert_allclose(tl.ood_loss(p, v, B), ref, rtol=1e-13)
    assert tl.ood_loss(p, v[2], B[2]) == pytest.approx(ref[2], rel=1e-13)
