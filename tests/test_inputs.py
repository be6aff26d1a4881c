"""Bad input gets a clear TwoLayerInputError (a ValueError) naming the argument."""

import numpy as np
import pytest

import twolayer as tl


@pytest.fixture(scope="module")
def p():
    return tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.1)


def _raises(argument, fn, *args, **kwargs):
    with pytest.raises(tl.TwoLayerInputError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument, str(info.value)
    assert argument in str(info.value)
    return info.value


def test_shape_mismatches(p):
    _raises("B0", tl.Problem, p.B_star, p.v_star, p.B0[:, :5], p.X)
    _raises("v_star", tl.Problem, p.B_star, np.ones(3), p.B0, p.X)
    _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, p.X[:, :5])
    _raises("y", tl.Problem, p.B_star, p.v_star, p.B0, p.X, y=np.ones(3))
    _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=np.eye(3))
    _raises("v0", tl.simulate, p, "ft", [0, 1], v0=np.ones(5))


def test_nan_and_inf(p):
    X = p.X.copy()
    X[0, 0] = np.nan
    e = _raises("X", tl.Problem, p.B_star, p.v_star, p.B0, X)
    assert "NaN" in str(e)
    _raises("v_star", tl.Problem, p.B_star, np.array([np.inf, 0.0]), p.B0, p.X)
    _raises("v0", tl.simulate, p, "ft", [0, 1], v0=np.array([np.nan, 0.0]))
    _raises("ts", tl.simulate, p, "ft", [0, np.nan])


def test_not_orthonormal_reports_deviation(p):
    B0 = p.B0 * 1.001
    e = _raises("B0", tl.Problem, p.B_star, p.v_star, B0, p.X)
    assert isinstance(e, tl.NotOrthonormalError)
    assert e.deviation == pytest.approx(1.001 ** 2 - 1, rel=1e-6)
    _raises("B_star", tl.Problem, p.B_star * 2, p.v_star, p.B0, p.X)


def test_sigma_must_be_spd(p):
    S = -np.eye(p.d)
    _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=S)
    A = np.eye(p.d)
    A[0, 1] = 1.0
    _raises("Sigma", tl.Problem, p.B_star, p.v_star, p.B0, p.X, Sigma=A)


def test_unknown_method_and_bad_ts(p):
    _raises("method", tl.simulate, p, "sgd", [0, 1])
    _raises("method", tl.gradient_descent, p, "sgd", 0.01, 5)
    _raises("ts", tl.simulate, p, "ft", [0, 2, 1])
    _raises("ts", tl.simulate, p, "ft", [-1, 1])
    _raises("ts", tl.simulate, p, "ft", [])
    _raises("solver", tl.simulate, p, "ft", [0, 1], solver="euler")
    _raises("rtol", tl.simulate, p, "ft", [0, 1], rtol=-1.0)


def test_solver_step_limit(p):
    e = _raises("max_steps", tl.simulate, p, "ft", [0, 50.0], max_steps=5)
    assert isinstance(e, tl.SolverStepLimitError)
    assert e.t_reached < 50.0 and "max_steps=5" in str(e)


def test_generator_rejects_invalid_settings():
    _raises("m", tl.make_problem, 0, d=10, k=3, m=7, n=8, eps=0.1)     # m >= d - k
    _raises("n", tl.make_problem, 0, d=20, k=3, m=7, n=5, eps=0.1)     # n < m
    _raises("eps", tl.make_problem, 0, d=20, k=3, m=7, n=8, eps=2.0)
    _raises("shift", tl.make_problem, 0, d=20, k=3, m=7, n=8, eps=0.1, shift="huge")
    _raises("shift", tl.make_problem, 0, d=20, k=3, m=7, n=8, eps=0.1, shift=1.0)
    _raises("head_init", tl.make_problem, 0, d=20, k=3, m=7, n=8, eps=0.1, head_init="ones")
    _raises("theta_star", tl.make_problem, 0, d=20, k=3, m=2, n=8, eps=0.1, theta_star=0.3)


def test_gd_rejects_bad_steps_and_divergence(p):
    _raises("lr", tl.gradient_descent, p, "ft", -0.1, 5)
    _raises("steps", tl.gradient_descent, p, "ft", 0.01, 2.5)
    _raises("lr", tl.gradient_descent, p, "ft", 10.0, 200)   # diverges


def test_bound_form_and_eps(p):
    _raises("form", tl.bounds.thm33_lower_bound, p, form="typo")
    _raises("eps", tl.bounds.thm33_lower_bound, p, eps=p.eps / 2)


def test_batch_shapes_must_match():
    a = tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.1)
    b = tl.make_problem(0, d=12, k=2, m=5, n=6, eps=0.1)
    _raises("problems", tl.simulate_batch, [a, b], "ft", [0, 1])
    _raises("problems", tl.simulate_batch, [], "ft", [0, 1])


def test_batch_errors_name_the_entry():
    """A bad entry of a batch is named by its index (bad input raises even with throw=False)."""
    a = tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.1)
    _raises("problems[1]", tl.simulate_batch, [a, "not a problem"], "ft", [0, 1])
    err = _raises("v0s[1]", tl.simulate_batch, [a, a], "ft", [0, 1], v0s=[np.zeros(2), np.full(2, np.nan)],
                  throw=False)
    assert "NaN" in str(err)
    _raises("v0s[0]", tl.simulate_batch, [a, a], "ft", [0, 1], v0s=[np.zeros(3), None])


@pytest.mark.parametrize("bad", [dict(solver="rk4"), dict(rtol=-1.0), dict(atol=float("nan")),
                                 dict(max_steps=1.5), dict(workers="two"), dict(workers=True), dict(chunk=0),
                                 dict(batching="pmap"), dict(retry_schedule=()), dict(fallback_solver="euler")])
def test_flow_config_checks_its_values_when_built(bad):
    """A bad setting raises at FlowConfig(...), naming the field and a fix, not at the first solve."""
    name = next(iter(bad))
    err = _raises(name, tl.FlowConfig, **bad)
    assert "Fix:" in str(err)


def test_flow_config_stays_a_plain_settings_tuple():
    import pickle
    c = tl.FlowConfig(rtol=1e-9, workers=2)
    assert c == pickle.loads(pickle.dumps(c)) and repr(c).startswith("FlowConfig(rtol=1e-09")
    d = c._replace(atol=1e-13)
    assert isinstance(d, tl.FlowConfig) and d.atol == 1e-13 and d.rtol == 1e-9
    _raises("rtol", tl.simulate, tl.make_problem(0, d=12, k=2, m=4, n=6, eps=0.1), "ft", [0, 1],
            config=c._replace(rtol=-1.0))        # a _replace'd bad value is caught at its use
