"""Theorem 3.3 repaired (docs/theorem33.md §6): the repair's forms, their one kernel for NumPy and
jnp, the equal-angle reduction to the exact k = 1 limit, the issue's slacks, and the check's
undecided rule."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import twolayer as tl
from experiments import thm33_repair as tr
from twolayer.bounds import (ALL_FORMS, REPAIR_REGIME, conjectured_constant, repaired_constant, thm33_lower_bound,
                             thm33_value)
from twolayer.closed_form import k1_eps0_limit
from twolayer.testing import register_profiles

register_profiles()
TS = np.concatenate([[0.0], np.logspace(-3, 5, 30), [np.inf]])


def _issue_problem(k, W=tr.ISSUE_W, gap=1.0 - tr.ISSUE_COS, seed=0):
    return tr.near_s_problem(seed, 6 + 2 * k + 2, k, 6, 6, np.full(k, gap), np.full(k, W / np.sqrt(k)))


@settings(max_examples=40, deadline=None)
@given(W=st.floats(1e-3, 10.0), k=st.integers(1, 4))
def test_conjectured_constant_is_the_exact_limit_at_r_star_in_s(W, k):
    """C(k, W) x core = alpha h(W) at v0 = 0: h(W) is the closed form's gap at c -> 1 (DERIVED);
    and C(k, W) = sqrt(k)(1 + W)^2/2 (1 - 7W^2/4 + O(W^4)) lies below the first-order curve."""
    c = 1.0 - 1e-12
    r = k1_eps0_limit(c, W)
    gap = r.sqrt_ood_inf / np.sqrt((1.0 - c) * (1.0 + c))
    alpha = 0.3
    core = alpha / np.sqrt(k) * min(W ** 2, W ** 3) / (1 + W) ** 2
    assert np.isclose(conjectured_constant(k, W) * core, alpha * gap, rtol=1e-9)
    assert conjectured_constant(k, W) < np.sqrt(k) * (1 + W) ** 2 / 2
    if W < 0.05:
        assert np.isclose(conjectured_constant(k, W) / (np.sqrt(k) * (1 + W) ** 2 / 2), 1 - 7 * W ** 2 / 4,
                          rtol=0, atol=20 * W ** 4)
    assert conjectured_constant(k, W) >= repaired_constant(k)      # conjectured => the repaired constant


def test_one_kernel_for_numpy_and_jnp():
    import jax
    import jax.numpy as jnp
    with jax.enable_x64(True):
        for form in ALL_FORMS:
            a = thm33_value(np, form, 0.3, 3, 0.02, 0.2, 1e-5, 0.7)
            b = float(thm33_value(jnp, form, jnp.asarray(0.3), 3, jnp.asarray(0.02), jnp.asarray(0.2),
                                  jnp.asarray(1e-5), jnp.asarray(0.7)))
            assert np.isclose(a, b, rtol=1e-14, atol=0), form
    with pytest.raises(tl.TwoLayerInputError):
        thm33_value(np, "nope", 0.3, 3, 0.02, 0.2, 0.0, 1.0)


def test_bound_forms_on_a_problem():
    p = _issue_problem(2)
    pub = thm33_lower_bound(p, form="published")
    rep = thm33_lower_bound(p, form="repaired")
    con = thm33_lower_bound(p, form="conjectured")
    assert rep.ok and np.isclose(rep.value, np.sqrt(2) / 2 * pub.value, rtol=1e-14)
    assert rep.regime == REPAIR_REGIME and pub.regime == ""
    assert con.ok and np.isclose(con.value, p.alpha * (tr.ISSUE_W - k1_eps0_limit(1.0, tr.ISSUE_W).v_inf), rtol=1e-6)
    head = tl.Problem(p.B_star, p.v_star, p.B0, p.X, v0=np.array([0.01, 0.0]))
    na = thm33_lower_bound(head, form="conjectured")
    assert na.status == "not_applicable" and "v0 = 0" in na.reason
    with pytest.raises(tl.TwoLayerInputError):
        thm33_lower_bound(p, form="repairde")


@pytest.mark.parametrize("k", [2, 3])
def test_issue_slacks_and_the_equal_angle_reduction(k):
    """The issue's construction reaches its slacks (0.70996, 0.86953), and the k-row flow equals
    the exact k = 1 limit (the flow stays on the line of v*): sqrt(k) x the k = 1 ratio."""
    p = _issue_problem(k)
    traj = tl.simulate(p, "ft", TS)
    root = np.sqrt(tl.ood_loss(p, traj.v, traj.B))
    slack = root.min() / thm33_lower_bound(p).value
    assert slack <= tr.ISSUE_SLACK[k]
    exact = k1_eps0_limit(tr.ISSUE_COS, tr.ISSUE_W).sqrt_ood_inf
    assert abs(root[-1] - exact) <= 1e-7 * exact
    assert slack >= float(repaired_constant(k))                   # the repaired form holds there


def test_near_s_problem_geometry_and_errors():
    p = tr.near_s_problem(1, 14, 3, 6, 8, [1e-6, 1e-4, 1e-2], [0.1, 0.0, 0.0], x_isotropic=False, eps=1e-3)
    assert np.isclose(p.cos_theta_max["R*,S"], 1 - 1e-2, rtol=1e-12)
    assert np.isclose(p.eps, 1e-3, rtol=1e-9)
    p0 = tr.near_s_problem(1, 14, 3, 6, 8, [1e-6, 1e-4, 1e-2], [0.1, 0.0, 0.0])
    assert np.isclose(p0.alpha, np.sqrt(1e-6 * (2 - 1e-6)), rtol=1e-9)      # min over rows of sqrt(1 - c_i^2)
    with pytest.raises(tl.TwoLayerInputError):
        tr.near_s_problem(1, 10, 3, 6, 6, [0.1] * 3, [0.1] * 3)           # d - m < 2k
    with pytest.raises(tl.TwoLayerInputError):
        tr.near_s_problem(1, 14, 2, 6, 6, [0.0, 0.1], [0.1, 0.1])        # a row inside S


def test_classify_undecided_rule():
    assert tr.classify(0.99, 1e-3) == "violated"
    assert tr.classify(0.9995, 1e-3) == "undecided"            # 1 within the error bar
    assert tr.classify(1.0005, 1e-3) == "undecided"
    assert tr.classify(1.01, float("nan")) == "undecided"      # near 1, no error bar measured
    assert tr.classify(1.2, float("nan")) == "holds"
    assert tr.classify(float("nan"), 1e-3) == "none"


def test_head_refutes_the_conjectured_formula():
    """With a head (||w*|| = 1.5, v0 = 0.3, R* in S to 1e-8) the conjectured formula exceeds the loss
    (so the conjecture is stated for v0 = 0), confirmed by the scipy reference."""
    p = tr.near_s_problem(3, 10, 1, 6, 6, [tr.GRID_GAP], [tr.HEAD_W], v0=[tr.HEAD_V0])
    traj = tl.simulate(p, "ft", TS)
    root = np.sqrt(tl.ood_loss(p, traj.v, traj.B))
    val = thm33_value(np, "conjectured", p.alpha, 1, tl.bounds.head_alignment_phi(p, p.v0), p.w_star_norm, p.eps,
                      1.0)
    ref = tr._reference(p, TS[np.isfinite(TS)], 60.0)
    assert root.min() / val < 0.99 and ref.min() / val < 0.99
    assert abs(ref.min() - root[np.isfinite(TS)].min()) <= 1e-6 * ref.min()


@pytest.mark.slow
def test_tiny_search_and_check(tmp_path):
    cfg = dataclasses.replace(tr.Config.quick(seed=1), k_values=(1, 2), batch_size=6, n_init=6, n_children=6,
                              n_elite=2, max_ref=1)
    rows = {r["id"]: r for r in tr.check(tr.run(cfg, out=tmp_path, progress=False), cfg)}
    assert rows["first_order_form"]["status"] == "fail"                 # the recorded finding
    assert rows["repaired_form"]["status"] == "pass"
    assert rows["conjectured_head_form"]["status"] == "fail"
    assert rows["reference_agreement"]["status"] == "pass"
    assert "rerun: p = experiments.thm33_repair.make_instance(" in rows["repaired_form"]["details"]
