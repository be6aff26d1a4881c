"""The reduced FT vector field and the steady-state measure, written once for NumPy and
JAX (``xp`` is ``numpy`` or ``jax.numpy``); see :mod:`twolayer.flow` (THEORY.md §1, §8).

With r = s2 * (G^T v) - c:  dv/dt = -2 G r,  dG/dt = -2 v r^T  (f = -grad L,
L = ||diag(s) G^T v - U_m^T y||^2).
"""

from __future__ import annotations

__all__ = ["field", "steady_measure", "second_order_remainder"]


def field(xp, s2, c, v, G):
    """(dv/dt, dG/dt, r) at (v, G)."""
    r = s2 * (G.T @ v) - c
    return -2.0 * (G @ r), -2.0 * xp.outer(v, r), r


def steady_measure(xp, s2, c, v, G):
    """(||f||, scale): the steady rule is ||f|| <= steady_rtol * scale with
    scale = 2 ||G||_F (||s2 * G^T v|| + ||c||) + 2 ||v|| ||r|| (the size of f's terms)."""
    Gtv = G.T @ v
    r = s2 * Gtv - c
    fv, fG = -2.0 * (G @ r), -2.0 * xp.outer(v, r)
    fnorm = xp.sqrt(xp.sum(fv ** 2) + xp.sum(fG ** 2))
    scale = 2.0 * xp.linalg.norm(G) * (xp.linalg.norm(s2 * Gtv) + xp.linalg.norm(c)) \
        + 2.0 * xp.linalg.norm(v) * xp.linalg.norm(r)
    return fnorm, scale


def second_order_remainder(xp, s2, c, v, G, dv, dG):
    """f(y + z) - f(y) - J(y) z for z = (dv, dG), computed from its terms (no cancellation):
    the error of the linearised flow (:mod:`twolayer.tail`) is driven by it."""
    del c
    r1 = s2 * (dG.T @ v + G.T @ dv)
    r2 = s2 * (dG.T @ dv)
    rv = -2.0 * (G @ r2 + dG @ r1 + dG @ r2)
    rG = -2.0 * (xp.outer(v, r2) + xp.outer(dv, r1) + xp.outer(dv, r2))
    return rv, rG
