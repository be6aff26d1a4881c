"""The regularised FT flow and its limit (twolayer.regularized, twolayer._field; THEORY.md §6):
lam = 0 is FT's field exactly, the Jacobian is minus the Hessian (finite differences,
jax.jacfwd, hessian.reduced_hessian), the reduced flow equals the full-state reference, the
limit is certified and independent of the integrator, and every failure is a SolverError."""
from __future__ import annotations

import numpy as np
import pytest

import twolayer as tl
from twolayer import _field
from twolayer.errors import (NoLimitError, NotConvergedError, SolverError, SolverFailedError,
                             TwoLayerInputError)
from twolayer.reference import regularized_reference
from twolayer.regularized import RegularizedFlow, certify, regularized_flow, regularized_limit


def _problem(noise=0.03, seed=3):
    """The instance of tests/test_regularization.py: noisy labels, a Gaussian head."""
    from experiments import regularization as reg
    cfg = reg.Config(seed=seed, eps_grid=(0.15,), n_seeds=7, lam_grid=(0.0, 0.1), noise_std=noise, n_val=300,
                     t_end=5.0, n_times=3, d=14, k=2, m=5, n=7)
    return reg.noisy_problem(cfg, reg.units(cfg)[0])[0]


def _state(p, scale=0.1, seed=0):
    rng = np.random.default_rng(seed)
    s2, c, G0, _ = p.reduced
    return s2, c, G0, p.v0 + scale * rng.standard_normal(p.k), G0 + scale * rng.standard_normal(G0.shape)


def test_lam_zero_is_the_ft_field_bit_for_bit():
    """The lam terms are not computed at lam = lam_v = 0: the regularised field there is FT's
    field to the last bit (so the FT flow is unchanged by the lam family), in NumPy and JAX."""
    p = _problem()
    s2, c, G0, v, G = _state(p)
    ft = _field.field(np, s2, c, v, G)
    reg0 = _field.field(np, s2, c, v, G, lam=0.0, G0=G0, lam_v=0.0)
    for a, b in zip(ft, reg0):
        assert np.array_equal(a, b)
    fl = RegularizedFlow(p, 0.0, reg_head=True)
    assert np.array_equal(fl.field(fl.pack(v, G)), np.concatenate([ft[0], ft[1].ravel()]))
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (s2, c, v, G)]
        for a, b in zip(_field.field(jnp, *args), _field.field(jnp, *args, lam=0.0, G0=jnp.asarray(G0))):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    # ... and lam > 0 adds exactly the penalty's gradient
    dv, dG, _ = _field.field(np, s2, c, v, G, lam=0.7, G0=G0, lam_v=0.3)
    np.testing.assert_allclose(dv, ft[0] - 0.6 * v, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dG, ft[1] - 1.4 * (G - G0), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("lam, head", [(0.0, False), (0.7, False), (0.7, True)])
def test_jacobian_is_minus_hessian_and_matches_finite_differences(lam, head):
    p = _problem()
    fl = RegularizedFlow(p, lam, head)
    _, _, _, v, G = _state(p)
    z = fl.pack(v, G)
    J = fl.jac(z)
    h = 1e-6
    Jn = np.stack([(fl.field(z + h * e) - fl.field(z - h * e)) / (2 * h) for e in np.eye(z.size)], 1)
    assert np.abs(J - Jn).max() <= 1e-7 * max(1.0, np.abs(J).max())
    assert np.abs(J - J.T).max() <= 1e-12 * np.abs(J).max()   # a gradient field


def test_jacobian_matches_jacfwd_and_the_tail_hessian():
    """:func:`_field.jacobian` equals jax.jacfwd of :func:`_field.field` (both in jnp, lam terms
    included), its NumPy value to rounding, and at lam = 0 minus hessian.reduced_hessian (FT)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from twolayer.hessian import reduced_hessian
    p = _problem()
    s2, c, G0, v, G = _state(p, scale=0.3, seed=1)
    k, m = G.shape
    lam, lam_v = 0.7, 0.2
    with jax.enable_x64(True):
        a = [jnp.asarray(x) for x in (s2, c, G0)]

        def f(z):
            dv, dG, _ = _field.field(jnp, a[0], a[1], z[:k], z[k:].reshape(k, m), lam=lam, G0=a[2], lam_v=lam_v)
            return jnp.concatenate([dv, dG.ravel()])

        z = jnp.asarray(np.concatenate([v, G.ravel()]))
        J_ad = np.asarray(jax.jacfwd(f)(z))
        J_jnp = np.asarray(_field.jacobian(jnp, a[0], a[1], z[:k], z[k:].reshape(k, m), lam=lam, lam_v=lam_v))
    J_np = _field.jacobian(np, s2, c, v, G, lam=lam, lam_v=lam_v)
    scale = np.abs(J_np).max()
    assert np.abs(J_np - J_ad).max() <= 1e-13 * scale
    assert np.abs(J_np - J_jnp).max() <= 1e-13 * scale
    H = reduced_hessian(s2, c, v, G)
    assert np.abs(_field.jacobian(np, s2, c, v, G) + H).max() <= 1e-13 * np.abs(H).max()


def test_reduced_flow_matches_full_state_reference():
    p = _problem()
    ts = np.array([0.0, 0.5, 3.0])
    for head in (False, True):
        v_r, B_r, _ = regularized_flow(p, 0.5, ts, p.v0, reg_head=head)
        v_f, B_f, nfev, _ = regularized_reference(p, 0.5, ts, p.v0, reg_head=head)
        np.testing.assert_allclose(v_r, v_f, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(B_r, B_f, rtol=1e-7, atol=1e-9)
        assert np.abs((B_f - p.B0) @ p.S_perp_basis).max() < 1e-10 and nfev > 0    # I1


def test_limit_is_certified_and_independent_of_the_integrator():
    """LSODA at rtol 1e-8 (the default path) and Radau at 1e-10 reach the same certified
    limit: the Newton-polished stop does not depend on integration error."""
    p = _problem()
    for lam in (0.0, 3.0):
        a = regularized_limit(p, lam, p.v0, solver="LSODA", rtol=1e-8, atol=1e-10)
        b = regularized_limit(p, lam, p.v0, solver="Radau", rtol=1e-10, atol=1e-12)
        assert a["certified"] and b["certified"]
        oa, ob = tl.ood_loss(p, a["v"], a["B"]), tl.ood_loss(p, b["v"], b["B"])
        assert abs(oa - ob) <= 1e-8 * ob
        fl = RegularizedFlow(p, lam)
        g = fl.field(fl.pack(a["v"], a["B"] @ p.S_basis))
        assert np.linalg.norm(g) <= 1e-9 * a["grad_norm0"]
        if lam > 0:
            assert a["hess_min"] > 0   # an isolated minimum


def test_certificate_refuses_a_point_far_from_the_limit():
    p = _problem()
    fl = RegularizedFlow(p, 1.0)
    cert = certify(fl, fl.pack(p.v0, fl.G0), grad_tol=1e-12)
    assert not cert["certified"] and cert["failed"]


def test_errors_are_solver_errors_that_say_what_to_do(monkeypatch):
    assert issubclass(NotConvergedError, SolverError) and issubclass(NoLimitError, NotConvergedError)
    from experiments import regularization as reg
    assert reg.NotConvergedError is NotConvergedError and reg.NoLimitError is NoLimitError
    p = _problem()
    with pytest.raises(NotConvergedError, match="no steady state.*Fix: raise t_max") as info:
        regularized_limit(p, 0.01, p.v0, t_max=1.0)
    assert isinstance(info.value, SolverError) and info.value.numbers["t_end"] == 1.0
    q = tl.Problem(p.B_star, p.v_star, p.B0, p.X, y=np.zeros(p.n))   # (0, B0) is stationary
    with pytest.raises(SolverError, match="stationary.*Fix: use a nonzero head"):
        regularized_limit(q, 1.0, np.zeros(p.k))
    with pytest.raises(TwoLayerInputError, match="lam"):
        RegularizedFlow(p, -1.0)
    # a scipy failure (sol.success False) never passes silently, with both solvers tried
    import types

    import scipy.integrate
    calls = []

    def failing(fun, t_span, y0, method=None, **kw):
        calls.append(method)
        return types.SimpleNamespace(success=False, status=-1, message="fake failure", t=np.array([t_span[0]]),
                                     nfev=1)
    monkeypatch.setattr(scipy.integrate, "solve_ivp", failing)
    with pytest.raises(SolverFailedError, match="fake failure.*Fix"):
        regularized_flow(p, 1.0, [0.0, 1.0], p.v0)
    with pytest.raises(SolverFailedError, match="LSODA and Radau.*fake failure.*Fix"):
        regularized_limit(p, 1.0, p.v0)
    assert calls[-2:] == ["LSODA", "Radau"]
    monkeypatch.setattr("twolayer.reference.solve_ivp", failing)
    with pytest.raises(SolverFailedError, match="fake failure"):
        regularized_reference(p, 1.0, [0.0, 1.0], p.v0)
