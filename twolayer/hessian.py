"""The reduced Hessian of the FT loss and its eigendecomposition on an invariant subspace,
stacked over a chunk of problems (THEORY.md §8; issue 19 §2).

H = -Jacobian of the reduced field f = (dv/dt, dG/dt) (:mod:`twolayer._field`), of size
N = k + k m. Everything here takes a leading batch axis: ``s2``, ``c`` (B, m), ``v`` (B, k),
``G`` (B, k, m); :func:`reduced_hessian` and :func:`reduced_eigh` are the single-problem
forms (tests and diagnostics).

For y = (a, B) the blocks of H give, with r = s2 * G^T v - c and S = diag(s2),

    (H y)_v = 2 G S G^T a + 2 B r + 2 G S B^T v,
    (H y)_G = 2 a r^T + 2 v (S (G^T a + B^T v))^T,

so H maps everything into R^k (+) {a' r^T + v x^T}. With v^ = v / |v|, r^ = r / |r| and
V', R' orthonormal bases of their complements (Householder reflections; a zero v or r
takes e_1 as its direction, which keeps every formula below exact), B = v^ x^T + V' b r^T
(x in R^m, b in R^(k-1)) is an orthonormal parametrisation of a subspace that contains
range(H), and {V'_a R'_b^T} one of its complement, which lies in null(H). B^T v = |v| x and
B r = (r . x) v^ + |r| V' b there, so in the coordinates (a, x, b) of dimension
P = 2k + m - 1 the block of H is

    H_aa = 2 G S G^T,   H_ax = 2 v^ r^T + 2 |v| G S,   H_ab = 2 |r| V',
    H_xx = 2 |v|^2 S,   H_xb = 0,   H_bb = 0.

Its eigenpairs (one stacked ``eigh`` of (B, P, P)) are eigenpairs of H, the complement's
(k - 1)(m - 1) directions have eigenvalue 0 exactly, and the N x N eigenvector matrix is
never formed: :class:`SubspaceEig` maps vectors into the eigenbasis and back.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["SubspaceEig", "subspace_eigh", "reduced_hessian", "reduced_eigh"]


def _householder(u: np.ndarray):
    """(u^ (B, n), w (B, n), |u| (B,)): the direction of each row of u (e_1 for a zero row)
    and the vector w of the reflection I - 2 w w^T that maps u^ to -+e_1, whose columns
    1..n-1 are an orthonormal basis of u^'s complement."""
    n = u.shape[-1]
    nu = np.linalg.norm(u, axis=-1)
    zero = nu == 0.0
    e1 = np.zeros(n)
    e1[0] = 1.0
    x = np.where(zero[:, None], e1, u / np.where(zero, 1.0, nu)[:, None])
    alpha = np.where(x[:, 0] >= 0, -1.0, 1.0)
    w = x.copy()
    w[:, 0] -= alpha
    w /= np.linalg.norm(w, axis=-1)[:, None]
    return x, w, nu


def _complement(w: np.ndarray) -> np.ndarray:
    """Columns 1..n-1 of I - 2 w w^T, (B, n, n-1)."""
    n = w.shape[-1]
    return np.eye(n)[None, :, 1:] - 2.0 * (w[:, :, None] * w[:, None, 1:])


class SubspaceEig(NamedTuple):
    """The eigendecomposition of H on its invariant subspace, for a chunk (module docstring).

    ``mu`` (B, P) ascending and ``W`` (B, P, P): the eigenpairs in the coordinates (a, x, b);
    ``v_hat``, ``V_c`` (B, k, k-1), ``r_hat`` and ``r_w`` (R' = (I - 2 r_w r_w^T)[:, 1:])
    define those coordinates."""

    mu: np.ndarray
    W: np.ndarray
    v_hat: np.ndarray
    V_c: np.ndarray
    r_hat: np.ndarray
    r_w: np.ndarray

    @property
    def shape(self) -> tuple:
        """(k, m)."""
        return self.v_hat.shape[1], self.r_hat.shape[1]

    def coords(self, fv: np.ndarray, fG: np.ndarray):
        """A vector (fv (B, k), fG (B, k, m)) in the subspace's coordinates (B, P) and on the
        null complement (B, k-1, m-1), where it is V'^T fG R'."""
        x = (np.swapaxes(fG, 1, 2) @ self.v_hat[:, :, None])[:, :, 0]
        VtG = np.swapaxes(self.V_c, 1, 2) @ fG
        b = (VtG @ self.r_hat[:, :, None])[:, :, 0]
        null = VtG[:, :, 1:] - 2.0 * (VtG @ self.r_w[:, :, None]) * self.r_w[:, None, 1:]
        return np.concatenate([fv, x, b], axis=1), null

    def vectors(self, z: np.ndarray):
        """Subspace coordinates z (B, T, P) back to (v (B, T, k), G (B, T, k, m))."""
        k, m = self.shape
        zx, zb = z[..., k:k + m], z[..., k + m:]
        zG = self.v_hat[:, None, :, None] * zx[:, :, None, :]
        zG += (zb @ np.swapaxes(self.V_c, 1, 2))[..., None] * self.r_hat[:, None, None, :]
        return z[..., :k], zG

    def dense(self):
        """(lam (B, N), E (B, N, N)): the full eigendecomposition, ascending (for tests: the
        policy never forms E)."""
        k, m = self.shape
        B, P = self.mu.shape
        N = k + k * m
        E = np.zeros((B, N, N))
        ev, eG = self.vectors(np.swapaxes(self.W, 1, 2))          # column j of W as a vector
        E[:, :k, :P] = np.swapaxes(ev, 1, 2)
        E[:, k:, :P] = np.swapaxes(eG.reshape(B, P, k * m), 1, 2)
        R_c = _complement(self.r_w)
        E[:, k:, P:] = (self.V_c[:, :, None, :, None] * R_c[:, None, :, None, :]).reshape(B, k * m, N - P)
        lam = np.concatenate([self.mu, np.zeros((B, N - P))], axis=1)
        order = np.argsort(lam, axis=1, kind="stable")
        return np.take_along_axis(lam, order, 1), np.take_along_axis(E, order[:, None, :], 2)


def subspace_eigh(s2, c, v, G) -> SubspaceEig:
    """The eigendecomposition of H at each (v, G) of a chunk on its invariant subspace
    (module docstring): one stacked ``eigh`` of (B, 2k + m - 1, 2k + m - 1)."""
    s2, c, v, G = (np.asarray(a, np.float64) for a in (s2, c, v, G))
    B, k, m = G.shape
    r = s2 * (np.swapaxes(G, 1, 2) @ v[:, :, None])[:, :, 0] - c
    v_hat, v_w, nv = _householder(v)
    r_hat, r_w, nr = _householder(r)
    V_c = _complement(v_w)
    P = 2 * k + m - 1
    Gs = G * s2[:, None, :]
    Hr = np.zeros((B, P, P))
    Hvv = Gs @ np.swapaxes(G, 1, 2)
    Hr[:, :k, :k] = Hvv + np.swapaxes(Hvv, 1, 2)            # 2 G S G^T, symmetric to the last bit
    Hax = 2.0 * (v_hat[:, :, None] * r[:, None, :] + nv[:, None, None] * Gs)
    Hr[:, :k, k:k + m] = Hax
    Hr[:, k:k + m, :k] = np.swapaxes(Hax, 1, 2)
    ix = np.arange(k, k + m)
    Hr[:, ix, ix] = 2.0 * (nv * nv)[:, None] * s2
    Hab = 2.0 * nr[:, None, None] * V_c
    Hr[:, :k, k + m:] = Hab
    Hr[:, k + m:, :k] = np.swapaxes(Hab, 1, 2)
    mu, W = np.linalg.eigh(Hr)
    return SubspaceEig(mu, W, v_hat, V_c, r_hat, r_w)


def reduced_hessian(s2, c, v, G) -> np.ndarray:
    """H = -Jacobian of f at one (v, G), shape (k + k m, k + k m), formed densely.

    Blockwise, with r = s2 * (G^T v) - c (f is a gradient, so H is symmetric):
    H_vv = 2 G diag(s2) G^T,  H_{v_i, G_pq} = 2 (delta_ip r_q + G_iq s2_q v_p),
    H_{G_ij, G_pq} = 2 v_i v_p s2_j delta_jq. (Equal to minus :func:`twolayer._field.jacobian`
    at lam = 0; kept dense here as the tests' reference for :func:`subspace_eigh`.)
    """
    from ._field import jacobian
    J = jacobian(np, np.asarray(s2, np.float64), np.asarray(c, np.float64), np.asarray(v, np.float64),
                 np.asarray(G, np.float64))
    return -0.5 * (J + J.T)          # symmetric to the last bit (H is, exactly)


def reduced_eigh(s2, c, v, G):
    """(lam, E) of :func:`reduced_hessian` at one (v, G) (ascending, E orthonormal), from
    :func:`subspace_eigh` (the same eigenpairs as ``np.linalg.eigh(reduced_hessian(...))`` up
    to rounding: tests/test_flow.py)."""
    lam, E = subspace_eigh(np.asarray(s2)[None], np.asarray(c)[None], np.asarray(v)[None],
                           np.asarray(G)[None]).dense()
    return lam[0], E[0]
