"""Hypothesis strategies for valid problems, for users' own property tests of bounds.

Example::

    from hypothesis import given
    from twolayer.testing import problems
    import twolayer as tl

    @given(problems(eps=(1e-4, 1e-2), shift="large"))
    def test_bound(p):
        b = tl.bounds.thm33_lower_bound(p)
        ...

Shapes are drawn from a small fixed menu by default so that the JIT-compiled
solver is reused across examples (each new (k, m) compiles once).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .generate import make_problem
from .problem import Problem

__all__ = ["DEFAULT_SHAPES", "shapes", "eps_values", "shifts", "head_inits", "problem_params",
           "problems"]

#: (d, k, m, n) menu used by default: overparameterized (m < d - k) and n >= m.
DEFAULT_SHAPES = ((12, 2, 5, 8), (20, 3, 8, 12), (30, 4, 12, 16))


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
