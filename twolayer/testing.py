"""Hypothesis strategies for valid problems, for users' own property tests of bounds.

Example (copy-paste; register the settings profiles once, e.g. in your conftest.py)::

    from hypothesis import given, settings
    import twolayer as tl
    from twolayer.testing import problems, eps_values, weak_problems, register_profiles

    register_profiles()                 # "twolayer" (no deadline) and "twolayer-ci" (derandomized)
    settings.load_profile("twolayer")   # the first simulate() JIT-compiles for ~5-15 s

    @given(problems(eps=eps_values(1e-4, 1e-2), shift="large"))
    def test_bound(p):
        b = tl.bounds.thm33_lower_bound(p)
        ...

    @given(weak_problems())             # where Theorem 3.3 is weakest (it FAILS there)
    def test_my_bound_in_the_weak_regime(p):
        ...

Profiles are registered only when :func:`register_profiles` is called (importing this
module changes no hypothesis settings). Shapes are drawn from a small fixed menu by
default so that the JIT-compiled solver is reused across examples (each new (k, m)
compiles once).

Weak regimes (THEORY.md §4, docs/theorem33.md): Theorem 3.3 fails for small ||w*||
with R* nearly inside S (cos^2 theta(R*, S) near 1), most clearly at k = 1 and eps = 0;
:func:`weak_problems` draws there, and :func:`near_saddle_problems` draws zero-head
starts with B0 X^T y tiny (a near-saddle start that the flow must escape).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .generate import make_problem
from .problem import Problem

__all__ = ["DEFAULT_SHAPES", "WEAK_SHAPES", "shapes", "eps_values", "shifts", "head_inits", "problem_params",
           "problems", "w_star_norms", "near_S_angles", "weak_problems", "near_saddle_problems",
           "register_profiles", "PROFILES"]

#: (d, k, m, n) menu used by default: overparameterized (m < d - k) and n >= m.
DEFAULT_SHAPES = ((12, 2, 5, 8), (20, 3, 8, 12), (30, 4, 12, 16))
#: shapes of the weak regime: k = 1 first (where the k = 1 closed form fails the bound)
WEAK_SHAPES = ((12, 1, 5, 8), (12, 2, 5, 8), (20, 3, 8, 12))
#: names registered by :func:`register_profiles`
PROFILES = ("twolayer", "twolayer-ci")


def shapes(menu=DEFAULT_SHAPES, *, free: bool = False, max_d: int = 40):
    """(d, k, m, n) tuples. ``free=True`` draws any valid sizes up to ``max_d`` instead."""
    if not free:
        return st.sampled_from(tuple(menu))

    @st.composite
    def _free(draw):
        d = draw(st.integers(4, max_d))
        k = draw(st.integers(1, max(1, (d - 2) // 2)))
        m = draw(st.integers(1, d - k - 1))
        n = draw(st.integers(m, m + 10))
        return d, k, m, n

    return _free()


def eps_values(lo: float = 1e-4, hi: float = 0.5, zero: bool = False):
    """eps = d(B0, B*), log-uniform in [lo, hi] (optionally also exactly 0)."""
    s = st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))
    return st.one_of(st.just(0.0), s) if zero else s


def shifts(named: bool = True):
    """'isotropic', 'large', 'small' or a mass fraction rho in [0.05, 0.95]."""
    rho = st.floats(0.05, 0.95)
    return st.one_of(st.sampled_from(("isotropic", "large", "small")), rho) if named else rho


def head_inits():
    """('zero', scale) or ('gaussian', scale)."""
    return st.one_of(st.tuples(st.just("zero"), st.just(1.0)),
                     st.tuples(st.just("gaussian"), st.floats(0.01, 2.0)))


@st.composite
def problem_params(draw, *, shape=None, eps=None, shift=None, head=None,
                   w_star_norm=st.floats(0.3, 3.0), theta_star=st.none()) -> dict:
    """Keyword arguments for :func:`twolayer.make_problem` (strategies or fixed values)."""
    def pick(val, default):
        if val is None:
            val = default
        return draw(val) if isinstance(val, st.SearchStrategy) else val

    d, k, m, n = pick(shape, shapes())
    head_init, head_scale = pick(head, head_inits())
    return dict(seed=draw(st.integers(0, 2 ** 31 - 1)), d=d, k=k, m=m, n=n,
                eps=pick(eps, eps_values()), shift=pick(shift, shifts()),
                head_init=head_init, head_scale=head_scale,
                w_star_norm=pick(w_star_norm, None), theta_star=pick(theta_star, None))


def problems(**kwargs) -> st.SearchStrategy[Problem]:
    """Valid :class:`Problem` instances; keyword arguments as :func:`problem_params`."""
    return problem_params(**kwargs).map(lambda kw: make_problem(**kw))


def w_star_norms(lo: float = 0.01, hi: float = 10.0):
    """||w*|| log-uniform in [lo, hi] (the default reaches 0.01, where Theorem 3.3 fails)."""
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got lo={lo}, hi={hi}")
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))


def near_S_angles(min_gap: float = 1e-3, max_gap: float = 0.2):
    """theta_star with 1 - cos^2 theta(R*, S) log-uniform in [min_gap, max_gap]: R* nearly
    inside S (pass as ``theta_star``; needs k <= m and k <= d - m)."""
    if not 0 < min_gap <= max_gap < 1:
        raise ValueError(f"need 0 < min_gap <= max_gap < 1, got {min_gap}, {max_gap}")
    return st.floats(np.log10(min_gap), np.log10(max_gap)).map(
        lambda e: float(np.arccos(np.sqrt(1.0 - 10.0 ** e))))


def weak_problems(*, shape=None, eps=None, head=None, w_star_norm=None, theta_star=None,
                  shift="isotropic") -> st.SearchStrategy[Problem]:
    """Problems where Theorem 3.3 is weakest (docs/theorem33.md): k = 1 shapes first,
    eps exactly 0 or tiny, ||w*|| in [0.01, 1], R* nearly inside S, zero or small heads.
    Every argument may be overridden with a strategy or a fixed value."""
    return problem_params(
        shape=st.sampled_from(WEAK_SHAPES) if shape is None else shape,
        eps=st.one_of(st.just(0.0), eps_values(1e-8, 1e-4)) if eps is None else eps,
        head=st.one_of(st.just(("zero", 1.0)), st.tuples(st.just("gaussian"), st.floats(1e-4, 0.1)))
        if head is None else head,
        w_star_norm=w_star_norms(0.01, 1.0) if w_star_norm is None else w_star_norm,
        theta_star=near_S_angles() if theta_star is None else theta_star,
        shift=shift).map(lambda kw: make_problem(**kw))


@st.composite
def near_saddle_problems(draw, *, shape=(12, 2, 5, 8), delta=None, shift="small") -> Problem:
    """Zero-head problems with B0 X^T y tiny (issue 7 §2): B0's rows orthogonal to
    g = X^T X w* / ||X^T X w*||, then row 0 tilted by angle ``delta`` toward g, so
    ||B0 X^T y|| = sin(delta) ||X^T X w*||. ``delta`` log-uniform in [1e-12, 1e-3] by
    default (0 gives the exact saddle, which the flow never leaves)."""
    d, k, m, n = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    if delta is None:
        delta = st.floats(-12.0, -3.0).map(lambda e: float(10.0 ** e))
    dl = draw(delta) if isinstance(delta, st.SearchStrategy) else float(delta)
    seed = draw(st.integers(0, 2 ** 31 - 1))
    base = make_problem(seed, d, k, m, n, 0.0, shift=shift, w_star_norm=draw(st.floats(0.3, 3.0)))
    g = base.X.T @ (base.X @ base.w_star)
    g = g / np.linalg.norm(g)
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((d, k))
    Z -= np.outer(g, g @ Z)                       # rows orthogonal to g
    Q, R = np.linalg.qr(Z)
    B0 = (Q * np.sign(np.diag(R))).T
    B0[0] = np.cos(dl) * B0[0] + np.sin(dl) * g
    return Problem(base.B_star, base.v_star, B0, base.X, Sigma=base.Sigma, v0=np.zeros(k),
                   meta=dict(base.meta, near_saddle_delta=dl))


def register_profiles() -> tuple:
    """Register the hypothesis settings profiles "twolayer" (deadline=None: the first
    ``simulate`` JIT-compiles for seconds; slow-data health checks off) and "twolayer-ci"
    (the same, derandomized, no example database, failing blobs printed). Returns their
    names; load one with ``hypothesis.settings.load_profile(name)``. Idempotent; nothing
    is registered on import."""
    from hypothesis import HealthCheck, settings

    slow = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("twolayer", deadline=None, suppress_health_check=slow)
    settings.register_profile("twolayer-ci", deadline=None, suppress_health_check=slow, derandomize=True,
                              database=None, print_blob=True)
    return PROFILES
