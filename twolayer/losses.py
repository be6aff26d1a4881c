"""Losses and feature change (THEORY.md §1, §6). Vectorised over a leading time axis."""

from __future__ import annotations

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem, check_problem

__all__ = ["effective_predictor", "train_loss", "ood_loss", "id_loss", "feature_change",
           "train_loss_w", "ood_loss_w", "id_loss_w"]


def _finite(arr: np.ndarray, name: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise TwoLayerInputError(name, f"contains {bad} NaN/inf entries (of {arr.size})",
                                 "pass finite values; a diverged run should have raised earlier, "
                                 "check how this array was produced")


def _array(a, name: str, what: str) -> np.ndarray:
    if a is None:
        raise TwoLayerInputError(name, "is None", f"pass a {what}")
    if np.iscomplexobj(a):
        raise TwoLayerInputError(name, "is complex", f"pass a real {what}")
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError(name, f"cannot convert to a float64 array ({exc})",
                                 f"pass a {what}") from exc


def _B(problem: Problem, B) -> np.ndarray:
    B = _array(B, "B", "(..., k, d) extractor")
    k, d = problem.k, problem.d
    if B.ndim < 2 or B.shape[-2:] != (k, d):
        raise TwoLayerInputError("B", f"shape {B.shape}: last axes must be (k, d)=({k}, {d})",
                                 "pass B(t) of this problem, shape (k, d) or (T, k, d)")
    _finite(B, "B")
    return B


def _vB(problem: Problem, v, B):
    check_problem(problem)
    v = _array(v, "v", "(..., k) head")
    k = problem.k
    if v.ndim < 1 or v.shape[-1] != k:
        raise TwoLayerInputError("v", f"shape {v.shape}: last axis must be k={k}",
                                 "pass v(t) of this problem, shape (k,) or (T, k)")
    _finite(v, "v")
    B = _B(problem, B)
    if v.shape[:-1] != B.shape[:-2]:
        raise TwoLayerInputError("B", f"leading shape {B.shape[:-2]} differs from v's {v.shape[:-1]}",
                                 "pass v (T, k) and B (T, k, d) with the same T (e.g. traj.v, traj.B)")
    return v, B


def effective_predictor(problem: Problem, v, B) -> np.ndarray:
    """w = B^T v, shape (..., d)."""
    v, B = _vB(problem, v, B)
    return np.einsum("...kd,...k->...d", B, v)


def _w(problem: Problem, w) -> np.ndarray:
    check_problem(problem)
    w = _array(w, "w", "(..., d) predictor")
    if w.ndim < 1 or w.shape[-1] != problem.d:
        raise TwoLayerInputError("w", f"shape {w.shape}: last axis must be d={problem.d}",
                                 "pass w = B^T v of this problem, shape (d,) or (T, d)")
    _finite(w, "w")
    return w


def train_loss_w(problem: Problem, w) -> np.ndarray:
    """||X w - y||^2 for a predictor w (..., d) (e.g. an output ensemble)."""
    r = np.einsum("nd,...d->...n", problem.X, _w(problem, w)) - problem.y
    return np.einsum("...n,...n->...", r, r)


def ood_loss_w(problem: Problem, w) -> np.ndarray:
    """(w* - w)^T Sigma (w* - w) for a predictor w (..., d)."""
    e = problem.w_star - _w(problem, w)
    # (e Sigma) . e: a matmul, ~10x faster on trajectories than a three-operand einsum.
    return np.einsum("...i,...i->...", e @ problem.Sigma, e)


def id_loss_w(problem: Problem, w) -> np.ndarray:
    """||P_S (w* - w)||^2 for a predictor w (..., d)."""
    e = problem.w_star - _w(problem, w)
    c = np.einsum("dm,...d->...m", problem.S_basis, e)
    return np.einsum("...m,...m->...", c, c)


def train_loss(problem: Problem, v, B) -> np.ndarray:
    """L(v, B) = ||X B^T v - y||^2 (no 1/n, THEORY.md §1)."""
    return train_loss_w(problem, effective_predictor(problem, v, B))


def ood_loss(problem: Problem, v, B) -> np.ndarray:
    """L_ood(v, B) = (w* - B^T v)^T Sigma (w* - B^T v) (THEORY.md §1)."""
    return ood_loss_w(problem, effective_predictor(problem, v, B))


def id_loss(problem: Problem, v, B) -> np.ndarray:
    """L_id(v, B) = ||P_S (w* - B^T v)||^2, the worst ID loss over unit x in S."""
    return id_loss_w(problem, effective_predictor(problem, v, B))


def feature_change(problem: Problem, B, x) -> np.ndarray:
    """Mean over samples of ||(B(t) - B0) x||_2 (THEORY.md §6, feature distortion).

    ``x`` is (N, d); ``B`` is (..., k, d). Returns shape ``B.shape[:-2]``.
    """
    check_problem(problem)
    B = _B(problem, B)
    x = _array(x, "x", "(N, d) array of inputs")
    if x.ndim != 2 or x.shape[1] != problem.d:
        raise TwoLayerInputError("x", f"shape {x.shape}, expected (N, d={problem.d})",
                                 "pass one input per row, e.g. x[None, :] for a single input")
    if x.shape[0] == 0:
        raise TwoLayerInputError("x", "has no rows (the mean over samples is undefined)",
                                 "pass at least one input")
    _finite(x, "x")
    diff = np.einsum("...kd,nd->...nk", B - problem.B0, x)
    return np.linalg.norm(diff, axis=-1).mean(axis=-1)
