"""Theorem 3.3 (both forms) and the derived LP bound hold at every t on every drawn
instance; vacuous and not-applicable cases are reported as such."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import twolayer as tl
from twolayer.bounds import head_alignment_phi, lp_upper_bound, thm33_lower_bound
from twolayer.testing import eps_values, head_inits, problems

TS = np.concatenate([[0.0], np.geomspace(1e-3, 20.0, 14), [np.inf]])


def _check_thm33(p):
    tr = tl.simulate(p, "ft", TS)
    sqrt_ood = np.sqrt(tl.ood_loss(p, tr.v, tr.B))
    statuses = []
    for form in ("published", "derived"):
        b = thm33_lower_bound(p, form=form)
        assert isinstance(b.value, float)
        statuses.append(b.status)
        if b.status == "ok":
            assert b.value > 0
            assert np.all(sqrt_ood >= b.value), (form, sqrt_ood.min(), b.value)
        elif b.status == "vacuous":
            assert b.value <= 0
        else:
            assert b.status == "not_applicable" and b.reason
    return statuses


@settings(max_examples=25)
@given(p=problems(eps=eps_values(1e-6, 0.3), head=head_inits(),
                  shift=st.sampled_from(["large", "isotropic", "small"])))
def test_thm33_holds_at_every_t(p):
    """Only in the regime of the default strategies (R* Haar-random, so cos^2 theta(R*, S)
    ~ m/d < 1/2, and ||w*|| >= 0.3): Theorem 3.3 FAILS elsewhere (small ||w*||, R* near S;
    tests/test_closed_form.py, tests/test_bound_search.py, docs/theorem33.md)."""
    _check_thm33(p)


def test_thm33_is_not_vacuous_on_good_features():
    """A sanity anchor: with tiny eps and the zero head the bound is positive and holds."""
    n_ok = 0
    for seed in range(6):
        p = tl.make_problem(seed, d=20, k=2, m=6, n=8, eps=1e-5, shift="large", w_star_norm=1.0)
        n_ok += _check_thm33(p).count("ok")
    assert n_ok == 12


def test_thm33_vacuous_for_poor_features():
    p = tl.make_problem(0, d=20, k=3, m=6, n=8, eps=0.5)
    for form in ("published", "derived"):
        b = thm33_lower_bound(p, form=form)
        assert b.status == "vacuous" and b.value <= 0 and not b.ok


def test_thm33_not_applicable_when_R0_meets_S():
    p = tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.3)
    s = p.S_basis[:, 0]
    B0 = p.B0.copy()
    B0[0] = s
    B0[1] -= (B0[1] @ s) * s
    B0[1] /= np.linalg.norm(B0[1])
    q = tl.Problem(p.B_star, p.v_star, B0, p.X)
    b = thm33_lower_bound(q)
    assert b.status == "not_applicable" and "R0, S_perp" in b.reason


def test_every_bound_is_not_applicable_with_labels_other_than_X_w_star():
    """Theorem 3.3 and the LP bound assume y = X w* (THEORY.md §1): with noisy labels they say
    "not_applicable" with the reason, never a number; the same problem with y = X w* gets
    an ok bound (so the status comes from the labels alone)."""
    p = tl.make_problem(0, d=20, k=2, m=6, n=8, eps=1e-5, shift="large", w_star_norm=1.0)
    noisy = tl.Problem(p.B_star, p.v_star, p.B0, p.X, y=p.y + 0.1)
    clean = tl.Problem(p.B_star, p.v_star, p.B0, p.X, y=p.X @ p.w_star)
    assert not noisy.well_specified and clean.well_specified
    for bound in [lambda q: lp_upper_bound(q)] + [lambda q, f=f: thm33_lower_bound(q, form=f)
                                                  for f in ("published", "derived")]:
        b = bound(noisy)
        assert b.status == "not_applicable" and np.isnan(b.value) and "y = X w*" in b.reason
        assert bound(clean).status == "ok"


def test_phi_zero_head_and_lp_head():
    p = tl.make_problem(3, d=20, k=3, m=6, n=8, eps=1e-3, w_star_norm=2.0)
    assert head_alignment_phi(p, np.zeros(3)) == pytest.approx(4.0)   # ||w*||^2
    # LP-FT starts from v_lp_inf: phi is O(eps) and the bound collapses.
    phi_lp = head_alignment_phi(p, tl.lp_limit(p))
    assert phi_lp < 0.1
    assert thm33_lower_bound(p, tl.lp_limit(p)).status == "vacuous"


@settings(max_examples=25)
@given(p=problems(eps=eps_values(1e-6, 1.0), head=head_inits()))
def test_lp_upper_bound_holds(p):
    b = lp_upper_bound(p)
    sqrt_lp = float(np.sqrt(tl.ood_loss(p, tl.lp_limit(p), p.B0)))
    assert b.status == "ok"
    assert sqrt_lp <= b.value * (1 + 1e-9) + 1e-15


def test_lp_upper_bound_zero_eps_gives_zero_loss():
    p = tl.make_problem(2, d=20, k=3, m=6, n=8, eps=0.0, shift="large")
    assert p.eps <= 1e-15 and lp_upper_bound(p).value <= 1e-12   # eps = 0 up to rounding
    assert tl.ood_loss(p, tl.lp_limit(p), p.B0) <= 1e-25


# -- input validation and the status enum (issue 9 "Inputs") --------------------------
@pytest.mark.parametrize("fn", [thm33_lower_bound, lp_upper_bound])
@pytest.mark.parametrize("bad, words", [(-1.0, ">= 0"), (float("nan"), "finite"), (float("inf"), "finite"),
                                        ("x", "float"), (True, "float")])
def test_bounds_reject_bad_eps(fn, bad, words):
    p = tl.make_problem(0, d=20, k=2, m=6, n=8, eps=1e-2)
    with pytest.raises(tl.TwoLayerInputError) as exc:
        fn(p, eps=bad)
    assert exc.value.argument == "eps" and words in exc.value.problem and exc.value.fix


@pytest.mark.parametrize("fn", [thm33_lower_bound, lp_upper_bound])
def test_bounds_reject_eps_below_distance(fn):
    p = tl.make_problem(0, d=20, k=2, m=6, n=8, eps=1e-2)
    with pytest.raises(tl.TwoLayerInputError, match="below d") as exc:
        fn(p, eps=0.5 * p.eps)
    assert exc.value.argument == "eps" and f"{p.eps:.6g}" in exc.value.fix
    assert fn(p, eps=2 * p.eps).status in ("ok", "vacuous")   # a larger eps is allowed


def test_bounds_reject_bad_head_and_problem():
    p = tl.make_problem(0, d=20, k=2, m=6, n=8, eps=1e-2)
    with pytest.raises(tl.TwoLayerInputError, match="`v0`"):
        thm33_lower_bound(p, v0=np.array([np.nan, 0.0]))
    with pytest.raises(tl.TwoLayerInputError, match="`v0`"):
        head_alignment_phi(p, np.zeros(3))
    with pytest.raises(tl.TwoLayerInputError, match="`problem`"):
        lp_upper_bound(None)


def test_bound_status_is_a_str_enum():
    from twolayer.bounds import BoundStatus
    p = tl.make_problem(0, d=20, k=2, m=6, n=8, eps=1e-5, w_star_norm=1.0)
    ok, vac = thm33_lower_bound(p), thm33_lower_bound(tl.make_problem(0, d=20, k=3, m=6, n=8, eps=0.5))
    assert ok.status is BoundStatus.OK and ok.status == "ok" and ok.ok
    assert vac.status is BoundStatus.VACUOUS and vac.status == "vacuous" and not vac.ok
    assert f"{vac.status}" == str(vac.status) == "vacuous"
    assert {s.value for s in BoundStatus} == {"ok", "vacuous", "not_applicable"}


def test_thm33_needs_k_below_m_and_the_repair_says_when_it_extrapolates():
    """THEORY.md §4 assumes k < m < d - k: k >= m is not_applicable (a new user's k = 5 > m = 3
    was reported ok on undefined angles). The repaired form outside the searched regime says
    it extrapolates."""
    p = tl.make_problem(0, 10, 5, 3, 5, 0.01)
    for form in ("published", "derived", "repaired"):
        b = thm33_lower_bound(p, form=form)
        assert b.status == "not_applicable" and "k < m" in b.reason
    big = tl.make_problem(0, 40, 6, 10, 12, 0.01, w_star_norm=50.0)
    b = thm33_lower_bound(big, form="repaired")
    assert b.status == "ok" and "extrapolation" in b.reason and "k = 6" in b.reason
    inside = tl.make_problem(0, 20, 2, 6, 8, 0.01, w_star_norm=0.5)
    assert thm33_lower_bound(inside, form="repaired").reason == ""
