"""The reduced FT vector field and the steady-state measure, written once for NumPy and
JAX (``xp`` is ``numpy`` or ``jax.numpy``); see :mod:`twolayer.flow` (THEORY.md §1, §8).

With r = s2 * (G^T v) - c:  dv/dt = -2 G r,  dG/dt = -2 v r^T  (f = -grad L,
L = ||diag(s) G^T v - U_m^T y||^2).

The same family carries the L2 penalties of regularised FT (:mod:`twolayer.regularized`,
THEORY.md §6): f = -grad F_lam with F_lam = L + lam ||G - G0||_F^2 + lam_v ||v||^2, i.e.

    dv/dt = -2 G r - 2 lam_v v,     dG/dt = -2 v r^T - 2 lam (G - G0),

and :func:`jacobian` is its Jacobian df/d(v, vec G) (minus the Hessian of F_lam). With
lam = lam_v = 0 (plain Python zeros, the default) the penalty terms are not computed at all,
so :func:`field` performs exactly the floating-point operations of the FT field.

:func:`field`, :func:`steady_measure` and :func:`second_order_remainder` also take a chunk
(NumPy, a leading batch axis: s2, c (B, m), v (B, k), G (B, k, m); issue 19 §2), with the
same formulas; one problem keeps its plain matrix products (the solver's arithmetic).
"""

from __future__ import annotations

__all__ = ["field", "jacobian", "steady_measure", "second_order_remainder"]


def _is_zero(x) -> bool:
    """True for a plain Python/NumPy zero (a JAX tracer is never 'zero': its terms stay)."""
    return isinstance(x, (int, float)) and x == 0


# A chunk's products are stacked matmuls: NumPy runs them through the same BLAS calls as
# one problem's, so a chunk's numbers equal those of its problems one at a time bit for bit
# (einsum's own loops differ in the last bit, and a last bit of atol moves a trajectory).
def _gtv(xp, G, v):
    """G^T v: one problem (k, m), (k,) or a chunk (B, k, m), (B, k)."""
    return G.T @ v if G.ndim == 2 else (xp.swapaxes(G, -1, -2) @ v[..., None])[..., 0]


def _gr(xp, G, r):
    """G r: one problem or a chunk."""
    return G @ r if G.ndim == 2 else (G @ r[..., None])[..., 0]


def _sqnorm(xp, x, nd: int):
    """x . x over the last ``nd`` axes, as one problem's ``x.ravel() @ x.ravel()``."""
    if x.ndim == nd:
        flat = x.reshape(-1)
        return flat @ flat
    flat = x.reshape(x.shape[0], 1, -1)
    return (flat @ xp.swapaxes(flat, 1, 2))[:, 0, 0]


def _outer(xp, a, b):
    """a b^T: one problem or a chunk."""
    return xp.outer(a, b) if a.ndim == 1 else a[:, :, None] * b[:, None, :]


def _norm(xp, x, nd: int):
    """The 2-norm over the last ``nd`` axes (Frobenius for nd = 2); one problem or a chunk."""
    return xp.linalg.norm(x) if x.ndim == nd else xp.sqrt(_sqnorm(xp, x, nd))


def field(xp, s2, c, v, G, *, lam=0.0, G0=None, lam_v=0.0):
    """(dv/dt, dG/dt, r) at (v, G): the FT field, plus -2 lam_v v and -2 lam (G - G0)
    (the gradient of the penalties lam_v ||v||^2 and lam ||G - G0||_F^2) where nonzero."""
    r = s2 * _gtv(xp, G, v) - c
    dv, dG = -2.0 * _gr(xp, G, r), -2.0 * _outer(xp, v, r)
    if not _is_zero(lam_v):
        dv = dv - 2.0 * lam_v * v
    if not _is_zero(lam):
        dG = dG - 2.0 * lam * (G - G0)
    return dv, dG, r


def jacobian(xp, s2, c, v, G, *, lam=0.0, lam_v=0.0):
    """J = d f / d(v, vec G) of :func:`field` (row-major vec G), shape (k + k m, k + k m).

    J = -H, H the Hessian of F_lam; blockwise, with r = s2 * (G^T v) - c:
    J_vv = -2 G diag(s2) G^T - 2 lam_v I,  J_{v_i, G_pq} = -2 (delta_ip r_q + G_iq s2_q v_p),
    J_{G_ij, G_pq} = -2 v_i v_p s2_j delta_jq - 2 lam delta_ip delta_jq.
    """
    k, m = G.shape
    r = s2 * (G.T @ v) - c
    Ik, Im = xp.eye(k), xp.eye(m)
    Jvv = -2.0 * (G * s2) @ G.T
    if not _is_zero(lam_v):
        Jvv = Jvv - 2.0 * lam_v * Ik
    JvG = (-2.0 * (xp.einsum("ia,b->iab", Ik, r) + xp.einsum("ib,b,a->iab", G, s2, v))).reshape(k, k * m)
    JGG = -2.0 * xp.einsum("i,a,j,jb->ijab", v, v, s2, Im)
    if not _is_zero(lam):
        JGG = JGG - 2.0 * lam * xp.einsum("ia,jb->ijab", Ik, Im)
    JGG = JGG.reshape(k * m, k * m)
    return xp.concatenate([xp.concatenate([Jvv, JvG], axis=1),
                           xp.concatenate([JvG.T, JGG], axis=1)], axis=0)


def steady_measure(xp, s2, c, v, G):
    """(||f||, scale): the steady rule is ||f|| <= steady_rtol * scale with
    scale = 2 ||G||_F (||s2 * G^T v|| + ||c||) + 2 ||v|| ||r|| (the size of f's terms)."""
    Gtv = _gtv(xp, G, v)
    r = s2 * Gtv - c
    fv, fG = -2.0 * _gr(xp, G, r), -2.0 * _outer(xp, v, r)
    fnorm = xp.sqrt(xp.sum(fv ** 2, axis=-1) + xp.sum(fG ** 2, axis=(-2, -1)))
    scale = 2.0 * _norm(xp, G, 2) * (_norm(xp, s2 * Gtv, 1) + _norm(xp, c, 1)) \
        + 2.0 * _norm(xp, v, 1) * _norm(xp, r, 1)
    return fnorm, scale


def second_order_remainder(xp, s2, c, v, G, dv, dG):
    """f(y + z) - f(y) - J(y) z for z = (dv, dG), computed from its terms (no cancellation):
    the error of the linearised flow (:mod:`twolayer.tail`) is driven by it."""
    del c
    r1 = s2 * (_gtv(xp, dG, v) + _gtv(xp, G, dv))
    r2 = s2 * _gtv(xp, dG, dv)
    rv = -2.0 * (_gr(xp, G, r2) + _gr(xp, dG, r1) + _gr(xp, dG, r2))
    rG = -2.0 * (_outer(xp, v, r2) + _outer(xp, dv, r1) + _outer(xp, dv, r2))
    return rv, rG
