"""The exact flow against an independent full-state scipy DOP853 integration, closed
forms, limits at t = 0 and t = inf, invariants and float64."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import twolayer as tl
from twolayer.reference import simulate_reference
from twolayer.testing import head_inits, problems

TS = np.array([0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0])


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@settings(max_examples=15)
@given(p=problems(head=head_inits()), method=st.sampled_from(["ft", "lpft"]))
def test_flow_matches_full_state_dop853(p, method):
    tr = tl.simulate(p, method, TS)
    ref = simulate_reference(p, method, TS, rtol=1e-12, atol=1e-16)
    assert rel_err(tr.v, ref.v) <= 1e-7
    assert rel_err(tr.B, ref.B) <= 1e-7
    L, Lr = tl.ood_loss(p, tr.v, tr.B), tl.ood_loss(p, ref.v, ref.B)
    assert np.max(np.abs(L - Lr) / np.maximum(Lr, 1e-300)) <= 1e-7
    assert tr.v.dtype == np.float64 and tr.B.dtype == np.float64


@settings(max_examples=10)
@given(p=problems(head=head_inits()))
def test_lp_closed_form_matches_integrated_lp(p):
    ts = np.array([0.0, 1e-6, 1e-3, 0.1, 1.0, 3.0])
    tr = tl.simulate(p, "lp", ts)
    ref = simulate_reference(p, "lp", ts, rtol=1e-12, atol=1e-16)
    assert rel_err(tr.v, ref.v) <= 1e-8
    np.testing.assert_array_equal(tr.B, np.broadcast_to(p.B0, tr.B.shape))
    # small t is accurate (expm1): v(t) ~ v0 - 2 t (H v0 - b)
    lp = tl.LinearProbe(p)
    XB = p.X @ p.B0.T
    slope = -2.0 * (XB.T @ (XB @ p.v0) - XB.T @ p.y)
    np.testing.assert_allclose((lp.head([1e-9], p.v0)[0] - p.v0) / 1e-9, slope, rtol=1e-5,
                               atol=1e-9 * np.max(np.abs(slope)))


def test_limits_at_zero_and_inf():
    p = tl.make_problem(4, d=30, k=3, m=10, n=14, eps=0.05, head_init="gaussian", head_scale=0.5)
    # t = 0 returns the initial state exactly.
    for method in ("lp", "ft"):
        tr = tl.simulate(p, method, [0.0])
        np.testing.assert_array_equal(tr.v[0], p.v0)
        np.testing.assert_array_equal(tr.B[0], p.B0)
    lp = tl.simulate(p, "lpft", [0.0])
    np.testing.assert_allclose(lp.v[0], tl.lp_limit(p), rtol=1e-13)
    # LP at inf is H^{-1} b.
    XB = p.X @ p.B0.T
    v_inf = np.linalg.solve(XB.T @ XB, XB.T @ p.y)
    np.testing.assert_allclose(tl.simulate(p, "lp", [np.inf]).v[0], v_inf, rtol=1e-10)
    # FT at inf is a zero-loss stationary point, and agrees with a long reference run.
    tr = tl.simulate(p, "ft", [0.0, 30.0, np.inf])
    assert tr.result.is_steady and f"t={tr.stats['t_steady']:.6g}" in tr.status   # the message is filled in
    assert tl.train_loss(p, tr.v[-1:], tr.B[-1:])[0] <= 1e-16 * (p.y @ p.y)
    ref = simulate_reference(p, "ft", [0.0, 30.0])
    assert rel_err(tr.B[-1], ref.B[-1]) <= 1e-7 and rel_err(tr.v[-1], ref.v[-1]) <= 1e-7
    assert rel_err(tr.B[1], ref.B[1]) <= 1e-7


def test_steady_state_tail_matches_integrating_on():
    """The closed-form tail after the stopping rule vs integrating on without the rule."""
    p = tl.make_problem(7, d=40, k=4, m=15, n=20, eps=0.1, head_init="gaussian", head_scale=0.2)
    ts = np.array([0.0, 5.0, 20.0, 60.0])
    full = tl.simulate(p, "ft", ts, steady_rtol=1e-300, max_steps=400_000)  # rule never fires
    assert full.stats["t_steady"] is None
    for steady_rtol, tol in ((1e-9, 1e-10), (1e-6, 1e-6)):
        tail = tl.simulate(p, "ft", ts, steady_rtol=steady_rtol)
        assert tail.stats["t_steady"] is not None and tail.stats["t_steady"] < 60.0
        assert tail.stats["tail_null_residual"] <= 1e-2 * steady_rtol
        assert rel_err(tail.B, full.B) <= tol and rel_err(tail.v, full.v) <= tol
    # Second order: the tail's error is far below the displacement it adds.
    tail = tl.simulate(p, "ft", ts, steady_rtol=1e-6)
    assert rel_err(tail.B, full.B) <= 1e-2 * tail.stats["tail_correction_norm"]


def test_tail_hessian_matches_finite_differences():
    from twolayer._field import field
    from twolayer.hessian import reduced_hessian
    p = tl.make_problem(0, 20, 3, 6, 9, 0.1, head_init="gaussian")
    s2, c, G0, _ = p.reduced
    rng = np.random.default_rng(0)
    v, G = rng.standard_normal(3), G0 + 0.1 * rng.standard_normal(G0.shape)

    def f(y):
        a, b, _ = field(np, s2, c, y[:3], y[3:].reshape(3, 6))
        return np.concatenate([a, b.ravel()])

    y, h = np.concatenate([v, G.ravel()]), 1e-6
    J = np.stack([(f(y + h * e) - f(y - h * e)) / (2 * h) for e in np.eye(y.size)], axis=1)
    H = reduced_hessian(s2, c, v, G)
    np.testing.assert_allclose(-J, H, atol=1e-7 * np.abs(H).max())
    np.testing.assert_allclose(H, H.T, atol=0)


@settings(max_examples=60)
@given(k=st.integers(1, 6), m=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       state=st.sampled_from(["random", "v = 0", "r = 0", "v = 0 and r = 0", "tiny v"]))
def test_reduced_eigh_is_the_dense_eigh(k, m, seed, state):
    """hessian.reduced_eigh (eigh on an invariant subspace of dimension <= 2k + m - 1, its
    complement in the null space) gives np.linalg.eigh's eigenvalues of the reduced Hessian
    and an orthonormal eigenbasis of it, at stops (r = 0), saddles (v = 0) and anywhere."""
    from twolayer.hessian import reduced_eigh, reduced_hessian
    rng = np.random.default_rng(seed)
    s2 = rng.uniform(1e-2, 4.0, m) ** 2
    G = rng.standard_normal((k, m))
    v = np.zeros(k) if state.startswith("v = 0") else rng.standard_normal(k) * (1e-150 if state == "tiny v" else 1)
    c = s2 * (G.T @ v) if state.endswith("r = 0") else rng.standard_normal(m)
    H = reduced_hessian(s2, c, v, G)
    lam0 = np.linalg.eigvalsh(H)
    lam, E = reduced_eigh(s2, c, v, G)
    top = max(np.abs(lam0).max(), 1e-300)
    assert lam.shape == lam0.shape and E.shape == H.shape and np.all(np.diff(lam) >= 0)
    assert np.abs(lam - lam0).max() <= 1e-13 * top
    assert np.abs(E.T @ E - np.eye(lam.size)).max() <= 1e-13
    assert np.abs(H @ E - E * lam).max() <= 1e-13 * top


def test_noise_floor_case_reaches_steady_state():
    """A large random head: Dopri8's stiff-mode noise keeps ||f||/scale near 1e-10; the
    default rule still fires, and the result agrees with the independent full-state reference."""
    p = tl.make_problem(5, 69, 3, 15, 20, 0.000666, shift=0.5, head_init=np.array([2.42, -1.93, 1.91]),
                        w_star_norm=0.78)
    tr = tl.simulate(p, "ft", [0.0, 5.0, np.inf])
    assert tr.stats["num_steps"] < 5000
    # DOP853 on [0, 5] agrees with Radau to 6e-15 here and takes 0.5 s instead of 150 s.
    ref = simulate_reference(p, "ft", [0.0, 5.0], solver="DOP853", rtol=1e-12, atol=1e-16)
    assert rel_err(tr.B[:2], ref.B) <= 1e-8


@settings(max_examples=12)
@given(p=problems(head=head_inits()))
def test_invariants_along_ft(p):
    ts = np.concatenate([np.linspace(0, 5, 9), [np.inf]])
    for method in ("ft", "lpft"):
        d = tl.invariant_drift(p, tl.simulate(p, method, ts))
        assert d.i1_abs <= 1e-10
        assert d.i2_rel <= 1e-8


def test_reference_invariants_are_a_real_check():
    """I1 holds by construction in reduced coordinates; the full-state reference shows it
    holds for the actual flow too (to solver precision)."""
    p = tl.make_problem(1, d=20, k=3, m=8, n=10, eps=0.2, head_init="gaussian")
    ref = simulate_reference(p, "ft", TS)
    d = tl.invariant_drift(p, ref)
    assert d.i1_abs <= 1e-10 and d.i2_rel <= 1e-9


def test_float64_end_to_end_and_no_global_state():
    import jax.numpy as jnp
    p = tl.make_problem(2, d=20, k=3, m=8, n=10, eps=1e-3)
    tr = tl.simulate(p, "ft", TS)
    ref = simulate_reference(p, "ft", TS)
    # float32 could not agree to 1e-9: this agreement proves float64 arithmetic.
    assert rel_err(tr.B, ref.B) <= 1e-9
    assert {tr.ts.dtype, tr.v.dtype, tr.B.dtype} == {np.dtype(np.float64)}
    # simulate enabled x64 only inside its call: JAX's default stays float32.
    assert jnp.ones(1).dtype == jnp.float32


def test_batch_equals_single():
    ps = [tl.make_problem(s, d=20, k=3, m=8, n=10, eps=0.1, head_init="gaussian") for s in range(4)]
    ts = np.array([0.0, 0.5, 2.0, np.inf])
    batch = tl.simulate_batch(ps, "ft", ts)
    for p, tb in zip(ps, batch):
        ts_ = tl.simulate(p, "ft", ts)
        np.testing.assert_allclose(tb.B, ts_.B, rtol=0, atol=1e-13)
        np.testing.assert_allclose(tb.v, ts_.v, rtol=0, atol=1e-13)
    lpft = tl.simulate_batch(ps, "lpft", ts)
    np.testing.assert_allclose(lpft[1].v, tl.simulate(ps[1], "lpft", ts).v, atol=1e-13)
    lp = tl.simulate_batch(ps, "lp", ts)
    np.testing.assert_allclose(lp[2].v, tl.simulate(ps[2], "lp", ts).v, atol=0)


def test_gd_i1_exact_and_first_order_convergence():
    p = tl.make_problem(5, d=20, k=3, m=8, n=10, eps=0.1, head_init="gaussian", head_scale=0.5)
    T = 1.0
    flow = tl.simulate(p, "ft", [0.0, T])
    errs = []
    for lr in (4e-3, 2e-3, 1e-3):
        gd = tl.gradient_descent(p, "ft", lr, int(round(T / lr)), record_every=int(round(T / lr)))
        assert gd.ts[-1] == pytest.approx(T)
        assert tl.invariant_drift(p, gd).i1_abs <= 1e-12
        errs.append(np.linalg.norm(gd.B[-1] - flow.B[-1]) + np.linalg.norm(gd.v[-1] - flow.v[-1]))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.8) & (ratios < 2.2)), ratios    # first order in lr


def test_gd_i2_drift_is_second_order_per_step():
    p = tl.make_problem(6, d=20, k=3, m=8, n=10, eps=0.1, head_init="gaussian", head_scale=0.5)
    drifts = [tl.invariant_drift(p, tl.gradient_descent(p, "ft", lr, 1)).i2_abs for lr in (1e-3, 5e-4)]
    assert drifts[0] / drifts[1] == pytest.approx(4.0, rel=0.05)


def test_stationary_start_is_held_exactly():
    """LP-FT with perfect features (and any flow started at a stationary point) starts where
    the gradient vanishes: the state is held, never a division by a zero derivative."""
    p = tl.make_problem(0, d=20, k=2, m=5, n=8, eps=0.0, shift="large")
    tr = tl.simulate(p, "lpft", [0.0, 1.0, np.inf])
    assert tr.result is tl.FlowResult.STATIONARY_T0
    assert np.all(tl.ood_loss(p, tr.v, tr.B) <= 1e-25)
    q = tl.Problem([[0.6, 0.8]], [1.0], [[0.8, 0.6]], [[1.0, 0.0]])
    tr = tl.simulate(q, "ft", [0.0, 1.0], v0=[0.75])       # 0.75 is the LP limit
    np.testing.assert_allclose(tr.v, [[0.75], [0.75]], rtol=0, atol=1e-15)
    batch = tl.simulate_batch([p, tl.make_problem(1, d=20, k=2, m=5, n=8, eps=0.1)], "lpft", [0.0, 1.0])
    assert batch[0].result is tl.FlowResult.STATIONARY_T0 and batch[1].stats["num_steps"] > 0


def test_step_limit_retries_with_a_looser_steady_rule_and_says_so():
    p = tl.make_problem(5, 69, 3, 15, 20, 0.000666, shift=0.5, head_init=np.array([2.42, -1.93, 1.91]),
                        w_star_norm=0.78)
    tr = tl.simulate(p, "ft", [0.0, 5.0, np.inf], steady_rtol=1e-10, max_steps=20_000)
    assert tr.result is tl.FlowResult.STEADY_RELAXED and tr.certificate["passed"]
    assert tr.stats["steady_rtol"] == pytest.approx(1e-9)
    default = tl.simulate(p, "ft", [0.0, 5.0, np.inf])
    assert rel_err(tr.B, default.B) <= 1e-12
