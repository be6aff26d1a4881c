"""Losses and feature change (THEORY.md §1, §6). Vectorised over a leading time axis."""

from __future__ import annotations

import numpy as np

from .errors import TwoLayerInputError
from .problem import Problem

__all__ = ["effective_predictor", "train_loss", "ood_loss", "id_loss", "feature_change"]


def _vB(problem: Problem, v, B):
    v = np.asarray(v, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    k, d = problem.k, problem.d
    if v.shape[-1:] != (k,):
        raise TwoLayerInputError("v", f"shape {v.shape}: last axis must be k={k}")
    if B.shape[-2:] != (k, d):
        raise TwoLayerInputError("B", f"shape {B.shape}: last axes must be (k, d)=({k}, {d})")
    if v.shape[:-1] != B.shape[:-2]:
        raise TwoLayerInputError("B", f"leading shape {B.shape[:-2]} differs from v's {v.shape[:-1]}")
    return v, B


def effective_predictor(problem: Problem, v, B) -> np.ndarray:
    """w = B^T v, shape (..., d)."""
    v, B = _vB(problem, v, B)
    return np.einsum("...kd,...k->...d", B, v)


def train_loss(problem: Problem, v, B) -> np.ndarray:
    """L(v, B) = ||X B^T v - y||^2 (no 1/n, THEORY.md §1)."""
    w = effective_predictor(problem, v, B)
    r = np.einsum("nd,...d->...n", problem.X, w) - problem.y
    return np.einsum("...n,...n->...", r, r)


def ood_loss(problem: Problem, v, B) -> np.ndarray:
    """L_ood(v, B) = (w* - B^T v)^T Sigma (w* - B^T v) (THEORY.md §1)."""
    e = problem.w_star - effective_predictor(problem, v, B)
    return np.einsum("...i,ij,...j->...", e, problem.Sigma, e)


def id_loss(problem: Problem, v, B) -> np.ndarray:
    """L_id(v, B) = ||P_S (w* - B^T v)||^2, the worst ID loss over unit x in S."""
    e = problem.w_star - effective_predictor(problem, v, B)
    c = np.einsum("dm,...d->...m", problem.S_basis, e)
    return np.einsum("...m,...m->...", c, c)


def feature_change(problem: Problem, B, x) -> np.ndarray:
    """Mean over samples of ||(B(t) - B0) x||_2 (THEORY.md §6, feature distortion).

    ``x`` is (N, d); ``B`` is (..., k, d). Returns shape ``B.shape[:-2]``.
    """
    B = np.asarray(B, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != problem.d:
        raise TwoLayerInputError("x", f"shape {x.shape}, expected (N, d={problem.d})")
    if B.shape[-2:] != (problem.k, problem.d):
        raise TwoLayerInputError("B", f"shape {B.shape}: last axes must be (k, d)")
    diff = np.einsum("...kd,nd->...nk", B - problem.B0, x)
    return np.linalg.norm(diff, axis=-1).mean(axis=-1)
