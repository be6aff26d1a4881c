"""The exact k = 1 FT limit (twolayer.closed_form, THEORY.md §4) as a reference for the
simulator, and the Theorem 3.3 counterexample it gives."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import twolayer as tl
from twolayer.closed_form import asymptotic_ratio, ft_limit_k1, k1_eps0_limit

# 0, a log grid, inf: the same length in every test here (one compiled solver).
TS = np.concatenate([[0.0], np.logspace(-3, 3, 30), [np.inf]])
SHAPE = dict(d=12, k=1, m=5, n=8)


def _sim_sqrt_ood(p):
    tr = tl.simulate(p, "ft", TS)
    return np.sqrt(tl.ood_loss(p, tr.v, tr.B)), tr


def test_issue_example_exact_and_violates_theorem33():
    """make_problem(0, 12, 1, 5, 8, 0, theta*=arccos sqrt(0.9), |w*|=0.1): bound 2.613e-4,
    min_t sqrt(L_ood) = 1.724e-4 (issue 7 §1); simulator = closed form to 1e-8."""
    p = tl.make_problem(0, 12, 1, 5, 8, 0.0, theta_star=np.arccos(np.sqrt(0.9)), w_star_norm=0.1)
    ref = ft_limit_k1(p)
    assert ref.bound == pytest.approx(2.613e-4, rel=1e-3)
    assert ref.sqrt_ood_inf == pytest.approx(1.724e-4, rel=1e-3)
    for form in ("published", "derived"):
        b = tl.bounds.thm33_lower_bound(p, form=form)
        assert b.status == "ok" and b.value == pytest.approx(ref.bound, rel=1e-12)
    root, tr = _sim_sqrt_ood(p)
    assert root[-1] == pytest.approx(ref.sqrt_ood_inf, rel=1e-8)
    assert root.min() == pytest.approx(ref.sqrt_ood_inf, rel=1e-8)
    assert tr.v[-1, 0] == pytest.approx(ref.v_inf, rel=1e-10)
    assert root.min() < 0.7 * ref.bound            # the bound fails ("for all t")


def test_eps0_formula_matches_general_and_naive():
    """The cancellation-free eps = 0 form equals the naive one where both are accurate."""
    for c, W in [(0.3, 2.0), (0.8, 0.7), (0.95, 1.5)]:
        ref = k1_eps0_limit(c, W)
        v2 = (-c ** 2 + np.sqrt(c ** 4 + 4 * W ** 2 * c ** 2)) / 2
        assert ref.v_inf == pytest.approx(np.sqrt(v2), rel=1e-14)
        assert ref.sqrt_ood_inf == pytest.approx(np.sqrt(1 - c ** 2) * abs(W - np.sqrt(v2)), rel=1e-10)
        p = tl.make_problem(4, **SHAPE, eps=0.0, theta_star=float(np.arccos(c)), w_star_norm=W)
        gen = ft_limit_k1(p)
        assert gen.sqrt_ood_inf == pytest.approx(ref.sqrt_ood_inf, rel=1e-9)


def test_asymptotic_ratio_is_the_small_w_limit():
    for c in (0.5, 0.9, 0.999):
        for W in (1e-3, 1e-4):
            assert k1_eps0_limit(c, W).ratio == pytest.approx(asymptotic_ratio(c, W), rel=2 * W / c ** 2)


def test_closed_form_validates_inputs():
    with pytest.raises(tl.TwoLayerInputError, match="`c`"):
        k1_eps0_limit(0.0, 1.0)
    with pytest.raises(tl.TwoLayerInputError, match="w_star_norm"):
        k1_eps0_limit(0.5, float("nan"))
    with pytest.raises(tl.TwoLayerInputError, match="k = 1"):
        ft_limit_k1(tl.make_problem(0, 12, 2, 5, 8, 0.0))
    with pytest.raises(tl.TwoLayerInputError, match="v0"):
        ft_limit_k1(tl.make_problem(0, **SHAPE, eps=0.0, head_init="gaussian"))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(cos2=st.floats(0.05, 0.99), log_w=st.floats(np.log10(0.05), np.log10(5.0)),
       eps=st.sampled_from([0.0, 0.0, 1e-3, 0.05]), seed=st.integers(0, 1000),
       shift=st.sampled_from(["isotropic", 0.3]))
def test_simulator_matches_k1_closed_form(cos2, log_w, eps, seed, shift):
    """Property over (theta, W, eps, Sigma): simulate to t = inf equals the closed form.

    The state is resolved to rtol ~ 1e-10 of its size W, and sqrt(L_ood) ~ W^3 at small
    W, so the relative tolerance is 1e-8 / min(1, W)^2."""
    W = 10.0 ** log_w
    p = tl.make_problem(seed, **SHAPE, eps=eps, theta_star=float(np.arccos(np.sqrt(cos2))), w_star_norm=W,
                        shift=shift)
    ref = ft_limit_k1(p)
    root, tr = _sim_sqrt_ood(p)
    tol = 1e-8 / min(1.0, W) ** 2
    assert root[-1] == pytest.approx(ref.sqrt_ood_inf, rel=tol, abs=1e-14)
    assert tr.v[-1, 0] == pytest.approx(ref.v_inf, rel=1e-9)
    # The bound is violated exactly when the closed form says so (eps = 0, Sigma = I).
    if ref.ratio is not None and abs(ref.ratio - 1) > 1e-6 and eps == 0 and shift == "isotropic":
        b = tl.bounds.thm33_lower_bound(p, form="published")
        assert (root.min() < b.value) == (ref.ratio < 1)


def test_derived_form_fails_with_zero_ood_loss():
    """k1_zero_loss_problem: FT reaches L_ood(inf) = 0 (closed form and simulator) while the
    DERIVED form is positive, so no constant c > 0 makes c x (derived bound) hold; the
    published form is vacuous there."""
    from twolayer.closed_form import k1_zero_loss_problem
    p = k1_zero_loss_problem(0, 12, 5, 8, 0.9, 0.1)
    der = tl.bounds.thm33_lower_bound(p, form="derived")
    assert der.status == "ok" and der.value > 9e-5
    assert tl.bounds.thm33_lower_bound(p, form="published").status == "vacuous"
    ref = ft_limit_k1(p)
    assert ref.sqrt_ood_inf < 1e-12
    root, _ = _sim_sqrt_ood(p)
    assert root[-1] < 1e-10 and root.min() / der.value < 1e-5
