"""WiSE-FT weight interpolation and output ensembles between exact endpoints."""

import numpy as np
import pytest

import twolayer as tl
from twolayer import interpolate as ip
from twolayer.errors import TwoLayerInputError
from twolayer.invariants import i1_residual

AL = np.linspace(0.0, 1.0, 9)


@pytest.fixture(scope="module")
def p():
    return tl.make_problem(7, 24, 2, 9, 13, 0.2, head_init="gaussian")


@pytest.fixture(scope="module")
def ends(p):
    return {pair: ip.endpoints(p, pair) for pair in ip.ENDPOINT_PAIRS}


def test_endpoints_are_exact(p, ends):
    ft = tl.simulate(p, "ft", [np.inf])
    a, b = ends["lp_ft"]
    assert np.array_equal(a.B, p.B0) and np.array_equal(a.v, tl.lp_limit(p, p.v0))
    assert np.array_equal(b.v, ft.v[0]) and np.array_equal(b.B, ft.B[0])
    z, _ = ends["zero_ft"]
    assert not np.any(z.v) and np.array_equal(z.B, p.B0)
    for pair, (a, b) in ends.items():
        v, B = ip.wise_weights(a, b, [0.0, 1.0])
        assert np.array_equal(v[0], a.v) and np.array_equal(B[0], a.B)
        assert np.array_equal(v[1], b.v) and np.array_equal(B[1], b.B)
        c = ip.wise_curve(p, a, b, [0.0, 1.0])
        assert c["ood"][0] == tl.ood_loss(p, a.v, a.B) and c["ood"][1] == tl.ood_loss(p, b.v, b.B)


def test_wise_predictor_closed_form_and_i1(p, ends):
    """w(alpha) = (1-a)^2 w_a + a^2 w_b + a (1-a) (B_a^T v_b + B_b^T v_a); I1 along the path;
    with B_a = B0 the feature change is linear in alpha."""
    for a, b in ends.values():
        v, B = ip.wise_weights(a, b, AL)
        w = tl.effective_predictor(p, v, B)
        wa, wb = a.B.T @ a.v, b.B.T @ b.v
        cross = a.B.T @ b.v + b.B.T @ a.v
        w_cf = ((1 - AL) ** 2)[:, None] * wa + (AL ** 2)[:, None] * wb + (AL * (1 - AL))[:, None] * cross
        np.testing.assert_allclose(w, w_cf, rtol=1e-12, atol=1e-13 * np.max(np.abs(w_cf)))
        assert np.max(i1_residual(p, B)) <= 1e-10
        fc = ip.wise_curve(p, a, b, AL)["feature_change_fro"]
        np.testing.assert_allclose(fc, AL * np.linalg.norm(b.B - p.B0), rtol=1e-12, atol=1e-15)


def test_ensemble_is_below_the_chord_by_the_closed_form(p, ends):
    for a, b in ends.values():
        e = ip.ensemble_curve(p, a, b, AL)
        for which in ("ood", "id", "train"):
            cf = ip.ensemble_closed_form(p, a, b, AL, which)
            np.testing.assert_allclose(e[which], cf, rtol=1e-10, atol=1e-13 * max(np.max(cf), 1.0))
            chord = (1 - AL) * e[which][0] + AL * e[which][-1]
            assert np.all(e[which] <= chord + 1e-12 * np.max(chord))


def test_feature_change_on_inputs(p, ends):
    a, b = ends["lp_ft"]
    x = np.random.default_rng(0).standard_normal((5, p.d))
    c = ip.wise_curve(p, a, b, AL, x_id=x @ p.S_basis @ p.S_basis.T, x_ood=x @ p.S_perp_basis @ p.S_perp_basis.T)
    assert np.max(c["feature_change_ood"]) <= 1e-12      # I1: OOD-span inputs never move
    assert c["feature_change_id"][-1] > 0


@pytest.mark.parametrize("bad", [[np.nan], [], "a", [np.inf]])
def test_bad_alphas(p, ends, bad):
    a, b = ends["lp_ft"]
    with pytest.raises(TwoLayerInputError, match="alphas"):
        ip.wise_curve(p, a, b, bad)


def test_bad_names(p):
    with pytest.raises(TwoLayerInputError, match="pair"):
        ip.endpoints(p, "lp_xx")
    with pytest.raises(TwoLayerInputError, match="endpoint"):
        ip.endpoint(p, "nope")
