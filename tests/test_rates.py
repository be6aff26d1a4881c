"""The two-rate flow (feature_rate gamma = eta_B / eta_v, twolayer.rates): against an independent
full-state scipy integration, its conserved quantity, I1, and the ends gamma = 0 (LP) and 1 (FT)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import twolayer as tl
from twolayer.errors import TwoLayerInputError
from twolayer.invariants import i1_residual
from twolayer.rates import conserved, conserved_residual
from twolayer.reference import simulate_reference
from twolayer.testing import head_inits, problems

TS = np.array([0.0, 0.01, 0.05, 0.2, 0.6, 1.5, 3.0])
GAMMAS = st.sampled_from([0.02, 0.1, 0.5, 2.0, 5.0])


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@settings(max_examples=12)
@given(p=problems(head=head_inits()), gamma=GAMMAS, method=st.sampled_from(["ft", "lpft"]))
def test_two_rate_flow_matches_full_state_reference(p, gamma, method):
    tr = tl.simulate(p, method, TS, feature_rate=gamma)
    ref = simulate_reference(p, method, TS, rtol=1e-12, atol=1e-16, feature_rate=gamma)
    assert rel_err(tr.v, ref.v) <= 1e-7
    assert rel_err(tr.B, ref.B) <= 1e-7
    assert tr.stats["feature_rate"] == gamma and ref.stats["feature_rate"] == gamma


@settings(max_examples=12)
@given(p=problems(head=head_inits()), gamma=GAMMAS)
def test_conserved_quantity_and_i1(p, gamma):
    """C_gamma = v v^T - B B^T / gamma is constant (DERIVED, twolayer.rates), to the limit; I1 holds."""
    tr = tl.simulate(p, "ft", np.append(TS, np.inf), feature_rate=gamma)
    assert np.max(conserved_residual(tr.v, tr.B, tr.v0, p.B0, gamma)) <= 1e-8
    assert np.max(i1_residual(p, tr.B)) <= 1e-10 * np.linalg.norm(p.B0)
    assert tr.certificate["passed"]
    # the certificate's I2 (in the scaled coordinates) is the same conserved quantity
    assert tr.certificate["i2_drift"] <= tr.certificate["i2_drift_tol"]
    # ... and it is not I2 unless gamma = 1: the flow differs from FT
    if gamma != 1.0:
        i2 = conserved_residual(tr.v, tr.B, tr.v0, p.B0, 1.0)
        assert np.max(i2) > 1e-6


def test_conserved_quantity_changes_under_a_wrong_rate():
    """The check can fail: C_gamma' of the gamma-flow drifts for gamma' != gamma."""
    p = tl.make_problem(1, 20, 2, 8, 12, 0.3, head_init="gaussian")
    tr = tl.simulate(p, "ft", [0.0, 1.0, np.inf], feature_rate=0.2)
    assert np.max(conserved_residual(tr.v, tr.B, tr.v0, p.B0, 0.2)) <= 1e-8
    assert np.max(conserved_residual(tr.v, tr.B, tr.v0, p.B0, 0.4)) > 1e-3


@settings(max_examples=8)
@given(p=problems(head=head_inits()), method=st.sampled_from(["ft", "lpft"]))
def test_gamma_zero_is_lp_and_gamma_one_is_ft(p, method):
    ts = np.append(TS, np.inf)
    ft = tl.simulate(p, method, ts)
    one = tl.simulate(p, method, ts, feature_rate=1.0)
    assert np.max(np.abs(one.v - ft.v)) <= 1e-12 and np.max(np.abs(one.B - ft.B)) <= 1e-12
    start = tl.lp_limit(p, p.v0) if method == "lpft" else p.v0
    lp = tl.simulate(p, "lp", ts, v0=start)
    zero = tl.simulate(p, method, ts, feature_rate=0.0)
    assert np.max(np.abs(zero.v - lp.v)) <= 1e-12 and np.max(np.abs(zero.B - lp.B)) <= 1e-12
    assert zero.method == method and zero.stats["feature_rate"] == 0.0


def test_small_gamma_approaches_lp_at_finite_times():
    """At a fixed time, the gamma-flow tends to LP as gamma -> 0: the B move is O(gamma)."""
    p = tl.make_problem(2, 20, 2, 8, 12, 0.2, head_init="gaussian")
    ts = [0.5, 2.0]
    lp = tl.simulate(p, "lp", ts)
    d = [np.max(np.abs(tl.simulate(p, "ft", ts, feature_rate=g).v - lp.v)) for g in (1e-2, 1e-3)]
    assert d[1] < 0.2 * d[0]


def test_simulate_batch_takes_feature_rate():
    ps = [tl.make_problem(s, 20, 2, 8, 12, 0.2, head_init="gaussian") for s in range(3)]
    batch = tl.simulate_batch(ps, "ft", [0.5, np.inf], feature_rate=0.3, workers=1)
    for p, tr in zip(ps, batch):
        one = tl.simulate(p, "ft", [0.5, np.inf], feature_rate=0.3)
        assert np.max(np.abs(tr.B - one.B)) <= 1e-12
    lp = tl.simulate_batch(ps, "lp", [1.0], feature_rate=0.3)
    assert all(tr.method == "lp" and "no effect on LP" in tr.stats["notes"][0] for tr in lp)   # said, not silent
    assert tl.simulate(ps[0], "lp", [1.0]).stats["notes"] == []
    zero = tl.simulate_batch(ps, "ft", [1.0], feature_rate=0.0)
    assert all(np.array_equal(tr.B[0], p.B0) for p, tr in zip(ps, zero))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "1", None, True])
def test_bad_feature_rate_is_refused(bad):
    p = tl.make_problem(0, 20, 2, 8, 12, 0.2)
    with pytest.raises(TwoLayerInputError, match="feature_rate"):
        tl.simulate(p, "ft", [1.0], feature_rate=bad)
    with pytest.raises(TwoLayerInputError, match="feature_rate"):
        tl.FlowConfig(feature_rate=bad)


def test_conserved_needs_positive_gamma():
    with pytest.raises(TwoLayerInputError, match="feature_rate"):
        conserved(np.zeros(2), np.zeros((2, 3)), 0.0)
