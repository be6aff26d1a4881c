"""Partial LP then FT: T_LP = 0 is FT, T_LP = inf is LP-FT; the start is LP's closed form at T_LP."""

import numpy as np
import pytest

import twolayer as tl
from twolayer.errors import TwoLayerInputError
from twolayer.partial_lp import partial_lp_method, simulate_partial_lp
from twolayer.reference import simulate_reference

TS = [0.0, 0.3, 2.0, np.inf]


@pytest.fixture(scope="module")
def p():
    return tl.make_problem(5, 24, 2, 9, 13, 0.15, head_init="gaussian")


def test_ends_are_ft_and_lpft(p):
    for t_lp, method in ((0.0, "ft"), (np.inf, "lpft")):
        a, b = simulate_partial_lp(p, t_lp, TS), tl.simulate(p, method, TS)
        assert np.max(np.abs(a.v - b.v)) <= 1e-12 and np.max(np.abs(a.B - b.B)) <= 1e-12


def test_start_is_lp_head_and_matches_reference(p):
    t_lp = 0.05
    tr = simulate_partial_lp(p, t_lp, TS)
    np.testing.assert_allclose(tr.v0, tl.lp_head(p, [t_lp], p.v0)[0], rtol=1e-13)
    ref = simulate_reference(p, partial_lp_method(t_lp), TS[:-1], rtol=1e-12, atol=1e-16)
    scale = np.max(np.abs(ref.B))
    assert np.max(np.abs(tr.B[:-1] - ref.B)) / scale <= 1e-7
    # LP's head has moved part of the way: between v0 and the LP limit in training loss
    L = [float(tl.train_loss(p, v, p.B0)) for v in (p.v0, tr.v0, tl.lp_limit(p))]
    assert L[0] > L[1] > L[2]


def test_feature_rate_composes(p):
    tr = simulate_partial_lp(p, 0.1, TS, feature_rate=0.0)
    np.testing.assert_allclose(tr.v, tl.lp_head(p, np.array(TS) + 0.1, p.v0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "x", None])
def test_bad_lp_time(p, bad):
    with pytest.raises(TwoLayerInputError, match="t_lp"):
        partial_lp_method(bad)
