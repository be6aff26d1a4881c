"""Gradient-based search for small slack of Theorem 3.3 (THEORY.md §4; issue "bounds at scale").

slack(instance) = min_t sqrt(L_ood_FT(t)) / bound, with the bound of
:func:`twolayer.bounds.thm33_lower_bound` in one of its forms (``twolayer.bounds.ALL_FORMS``;
the bound is :func:`twolayer.bounds.thm33_value`, the one implementation for NumPy and jnp). This module writes
the slack as a differentiable function of the instance and descends on log(slack) by
reverse-mode differentiation through a diffrax solve of the FT flow.

Parameterisation (the canonical basis of a start problem: its S first, then S_perp,
X = [diag(s), 0] with n = m rows, which has the same S, X^T X on S and flow):

    theta = (B0_raw (k x d), Bs_raw (k x d), log s (m), v_star (k), v0 (k));
    B0 = rows of qr(B0_raw^T), B_star likewise (orthonormal rows, differentiable);
    Sigma fixed (the start problem's, in this basis).

The flow in reduced coordinates (twolayer.flow's docstring): with G = B[:, :m],
r = s^2 * (G^T v) - s^2 * w*_S, dv/dt = -2 G r, dG/dt = -2 v r^T; the OOD loss is
e^T Sigma e, e = w* - [G^T v; B0[:, m:]^T v] (I1 keeps B's S_perp part at B0's).
The bound uses alpha = sigma_min(B0[:, m:]), eps = d(B0, B*) = sqrt(2 - 2 sigma_min(B0 B*^T)),
v*_aligned = polar(B0 B*^T) v* (Newton iteration, smooth where the SVD's gradient is
not) and phi = sqrt(|(v0.v*_al)^2 - |v*|^4|).

The solve is Kvaerno5 (the flow is stiff at small ||w*||) with a PID controller
(rtol 1e-8, atol 1e-12) from 0 to ``t_max`` saved on a log grid, differentiated with
diffrax's RecursiveCheckpointAdjoint, in float64 (inside ``jax.enable_x64``). The
differentiable slack only guides the search: every candidate it proposes is rebuilt as
a :class:`twolayer.Problem` (:func:`problem_from_json`) and evaluated with the exact
simulator by the caller; only those values are reported.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from ._field import field as shared_field
from .bounds import ALL_FORMS, thm33_value
from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["canonical", "problem_from_json", "instance_json", "slack_fn", "descend_problem"]


def canonical(problem: Problem, compress: bool = False) -> dict:
    """The start problem in its canonical basis (S first): plain float64 arrays.

    ``compress``: keep only 2k directions of S_perp, a basis of the S_perp parts of R0 and
    R* (the flow never leaves B0's S_perp part, and w* lies in R*), so that the dimension
    is m + 2k whatever d is (one compiled function per (k, m)). Exact when Sigma is a
    multiple of the identity on S_perp (every make_problem shift); otherwise the compressed
    problem is a different, equally valid instance (it is evaluated as such)."""
    Qp = problem.S_perp_basis
    if compress and Qp.shape[1] >= 2 * problem.k:
        P = Qp.T @ np.concatenate([problem.B0.T, problem.B_star.T], axis=1)
        Qr, _ = np.linalg.qr(P + 1e-300)
        Qp = Qp @ Qr
    Q = np.concatenate([problem.S_basis, Qp], axis=1)
    s = np.sqrt(problem.reduced[0])
    return {"B0": problem.B0 @ Q, "B_star": problem.B_star @ Q, "v_star": np.array(problem.v_star),
            "v0": np.array(problem.v0), "s": s, "Sigma": Q.T @ problem.Sigma @ Q}


def _orth_rows(raw):
    import jax.numpy as jnp
    q, r = jnp.linalg.qr(raw.T)
    return (q * jnp.sign(jnp.diag(r))).T


def _orth_rows_np(raw):
    q, r = np.linalg.qr(raw.T)
    return (q * np.sign(np.diag(r))).T


def instance_json(B0, B_star, v_star, v0, s, Sigma) -> str:
    """A JSON string that :func:`problem_from_json` turns back into the same Problem."""
    return json.dumps({k: np.asarray(v, dtype=float).tolist() for k, v in
                       dict(B0=B0, B_star=B_star, v_star=v_star, v0=v0, s=s, Sigma=Sigma).items()})


def problem_from_json(text: str) -> Problem:
    """The :class:`Problem` of :func:`instance_json` (canonical basis, X = [diag(s), 0])."""
    try:
        a = {k: np.asarray(v, dtype=float) for k, v in json.loads(text).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise TwoLayerInputError("text", f"not an instance JSON ({exc})", "pass a record's instance_json") from exc
    m, d = a["s"].size, a["B0"].shape[1]
    X = np.zeros((m, d))
    X[:, :m] = np.diag(a["s"])
    return Problem(a["B_star"], a["v_star"], a["B0"], X, Sigma=a["Sigma"], v0=a["v0"],
                   meta=dict(origin="twolayer.slack"))


def _unpack(theta, U0):
    import jax.numpy as jnp
    Bs = _orth_rows(theta["B_star"])
    B0 = U0 @ Bs if U0 is not None else _orth_rows(theta["B0"])
    return B0, Bs, jnp.exp(theta["log_s"]), theta["v_star"], theta["v0"]


@lru_cache(maxsize=8)
def slack_fn(k: int, m: int, d: int, form: str, t_max: float, n_times: int, tied: bool = False):
    """A jitted ``(theta, Sigma, U0) -> (log slack, grad)`` for one shape and form.

    ``tied``: B0 = U0 B* exactly (eps = 0 stays 0; d(B0, B*) has a cusp at 0 whose
    gradient would otherwise dominate every step); theta then has no "B0"."""
    import diffrax
    import jax
    import jax.numpy as jnp

    ts = np.concatenate([[0.0], np.logspace(-3, np.log10(t_max), n_times)])

    def field(t, y, args):          # the project's one vector field (twolayer._field), in jnp
        fv, fG, _ = shared_field(jnp, *args, *y)
        return (fv, fG)

    def log_slack(theta, Sigma, U0):
        B0, Bs, s, vs, v0 = _unpack(theta, U0 if tied else None)
        s2 = s ** 2
        w = Bs.T @ vs
        c = s2 * w[:m]
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Kvaerno5(), t0=0.0, t1=float(ts[-1]), dt0=1e-4,
            y0=(v0, B0[:, :m]), args=(s2, c), saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-12), max_steps=8192,
            adjoint=diffrax.RecursiveCheckpointAdjoint(), throw=False)
        v_t, G_t = sol.ys
        P0 = B0[:, m:]
        e_S = w[:m][None, :] - jnp.einsum("tkm,tk->tm", G_t, v_t)
        e_P = w[m:][None, :] - v_t @ P0
        e = jnp.concatenate([e_S, e_P], axis=1)
        L = jnp.einsum("ti,ij,tj->t", e, Sigma, e)
        root_min = jnp.sqrt(jnp.min(L))
        # Theorem 3.3's bound (THEORY.md §4): twolayer.bounds.thm33_value, the same code in jnp.
        alpha = jnp.sqrt(jnp.linalg.eigvalsh(P0 @ P0.T)[0])
        M = B0 @ Bs.T
        cos_max = jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(M @ M.T)[0], 0.0))
        x = jnp.maximum(2.0 - 2.0 * cos_max, 0.0)
        tiny = x < 1e-20                          # eps = 0 to rounding: no sqrt-at-0 gradient
        eps = jnp.where(tiny, 0.0, jnp.sqrt(jnp.where(tiny, 1.0, x)))
        U = M
        for _ in range(30):                       # polar factor by Newton's iteration
            U = 0.5 * (U + jnp.linalg.inv(U).T)
        va = U @ vs
        W = jnp.linalg.norm(vs)
        phi = jnp.sqrt(jnp.abs((v0 @ va) ** 2 - (va @ va) ** 2) + 1e-200)
        bound = thm33_value(jnp, form, alpha, k, phi, W, eps, jnp.linalg.eigvalsh(Sigma)[0])
        ok = (bound > 0) & (sol.result == diffrax.RESULTS.successful)
        return jnp.where(ok, jnp.log(root_min) - jnp.log(jnp.where(bound > 0, bound, 1.0)), jnp.inf)

    return jax.jit(jax.value_and_grad(log_slack))


def descend_problem(problem: Problem, form: str = "published", *, steps: int = 25, lr: float = 0.05,
                    t_max: float = 1e5, n_times: int = 40) -> list[Problem]:
    """Normalised gradient descent on log(slack) from ``problem``; returns every accepted
    iterate as a :class:`Problem` (to be evaluated with the exact simulator).

    Each parameter block moves by ``step`` x its own size along its normalised gradient
    (relative steps: ||v*|| may be 0.01 while B0's rows have norm 1). Steps that do not
    lower the differentiable log-slack are rejected and the step halved; an accepted step
    is doubled (capped at 4 x ``lr``)."""
    import jax
    import jax.numpy as jnp

    if form not in ALL_FORMS:
        raise TwoLayerInputError("form", f"unknown form {form!r}", f"use one of {ALL_FORMS}")
    if int(steps) < 0:
        raise TwoLayerInputError("steps", f"must be >= 0, got {steps}")
    cf = canonical(problem, compress=True)
    k, d = cf["B0"].shape
    m = cf["s"].size
    tied = problem.eps <= 1e-12
    fn = slack_fn(k, m, d, form, float(t_max), int(n_times), tied)
    out = []
    with jax.enable_x64(True):
        theta = {"B_star": jnp.asarray(cf["B_star"]), "log_s": jnp.log(jnp.asarray(cf["s"])),
                 "v_star": jnp.asarray(cf["v_star"]), "v0": jnp.asarray(cf["v0"])}
        if not tied:
            theta["B0"] = jnp.asarray(cf["B0"])
        U0 = jnp.asarray(problem.U_align)
        Sigma = jnp.asarray(cf["Sigma"])
        val, grad = fn(theta, Sigma, U0)
        step = lr
        for _ in range(int(steps)):
            if not np.isfinite(float(val)):
                break
            gn = {key: float(jnp.linalg.norm(g)) for key, g in grad.items()}
            if not all(np.isfinite(x) for x in gn.values()) or max(gn.values()) == 0:
                break
            floor = 1e-2 * float(jnp.linalg.norm(theta["v_star"]))
            cand = {key: t - step * max(float(jnp.linalg.norm(t)), floor) * grad[key] / gn[key]
                    if gn[key] > 0 else t for key, t in theta.items()}
            cval, cgrad = fn(cand, Sigma, U0)
            if np.isfinite(float(cval)) and float(cval) < float(val):
                theta, val, grad = cand, cval, cgrad
                step = min(2.0 * step, 4.0 * lr)
                out.append(_to_problem(theta, cf["Sigma"], np.asarray(U0) if tied else None))
            else:
                step *= 0.5
                if step < 1e-6:
                    break
    return out


def _to_problem(theta, Sigma, U0=None) -> Problem:
    Bs = _orth_rows_np(np.asarray(theta["B_star"]))
    B0 = U0 @ Bs if U0 is not None else _orth_rows_np(np.asarray(theta["B0"]))
    return problem_from_json(instance_json(B0, Bs, np.asarray(theta["v_star"]), np.asarray(theta["v0"]),
                                           np.exp(np.asarray(theta["log_s"])), Sigma))
