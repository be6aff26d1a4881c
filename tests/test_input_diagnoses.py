"""Diagnoses that say what was wrong and what to do (issue 22 §3): an unknown FlowConfig field
lists the valid names, complex times are refused, a float32 B0 / B_star is named as the cause."""

import numpy as np
import pytest

import twolayer as tl
from twolayer.errors import NotOrthonormalError, TwoLayerInputError


def test_unknown_flowconfig_field_lists_the_valid_names():
    with pytest.raises(TwoLayerInputError, match="did you mean 'rtol'") as e:
        tl.FlowConfig(rtoll=1e-8)
    assert "rtol, atol, solver" in str(e.value)
    with pytest.raises(TwoLayerInputError, match="not a FlowConfig field"):
        tl.FlowConfig(banana=1)
    assert tl.FlowConfig(rtol=1e-8).rtol == 1e-8          # valid names still work
    p = tl.make_problem(0, 10, 2, 4, 6, 0.1)              # the same hint for simulate's options
    with pytest.raises(TwoLayerInputError, match="did you mean 'chunk'") as e:
        tl.simulate_batch([p], "ft", [1.0], chunks=4)
    assert "rtol, atol, solver" in str(e.value)


@pytest.mark.parametrize("ts", [np.array([0.0, 1 + 1j]), [0.0, 1j], np.array([0, 1], dtype=complex)])
def test_complex_times_are_refused(ts):
    p = tl.make_problem(0, 10, 2, 4, 6, 0.1)
    with pytest.raises(TwoLayerInputError, match="`ts`: is complex"):
        tl.simulate(p, "ft", ts)


@pytest.mark.parametrize("which", ["B0", "B_star"])
def test_float32_orthonormal_rows_name_float32_and_the_fix(which):
    p = tl.make_problem(0, 10, 2, 4, 6, 0.1)
    args = dict(X=p.X, y=p.y, B0=p.B0, v0=p.v0, B_star=p.B_star, v_star=p.v_star, Sigma=p.Sigma)
    args[which] = args[which].astype(np.float32)
    with pytest.raises(NotOrthonormalError, match="given in float32") as e:
        tl.Problem(**args)
    assert f"orthonormalize_rows({which}.astype('float64'))" in str(e.value)
    args[which] = tl.orthonormalize_rows(args[which].astype("float64"))   # the suggested fix works
    assert tl.Problem(**args).k == 2
    bad = p.B0 * 1.01                                                    # float64 and wrong: no float32 hint
    with pytest.raises(NotOrthonormalError) as e:
        tl.Problem(**dict(args, B0=bad))
    assert "float32" not in str(e.value)
