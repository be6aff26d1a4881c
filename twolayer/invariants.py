"""Invariants of the FT flow (THEORY.md §3).

I1: B(t) P_Sperp = B0 P_Sperp (OOD features frozen; exact for flow and GD).
I2: v v^T - B B^T = v0 v0^T - B0 B0^T (balancedness; exact for the flow).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .problem import Problem
from .trajectory import Trajectory

__all__ = ["InvariantDrift", "invariant_drift", "i1_residual", "i2_residual"]


class InvariantDrift(NamedTuple):
    """Worst drift over the trajectory.

    i1_abs : max_t ||(B(t) - B0) Q_Sperp||_F.
    i1_rel : i1_abs / ||B0 Q_Sperp||_F.
    i2_abs : max_t ||(v v^T - B B^T)(t) - (v0 v0^T - B0' B0'^T)||_F.
    i2_rel : i2_abs / ||v0 v0^T - B0' B0'^T||_F (B0' = B(0)).
    """

    i1_abs: float
    i1_rel: float
    i2_abs: float
    i2_rel: float


def i1_residual(problem: Problem, B) -> np.ndarray:
    """||(B(t) - B0) Q_Sperp||_F for each t (I1; zero exactly in theory)."""
    D = (np.asarray(B, np.float64) - problem.B0) @ problem.S_perp_basis
    return np.sqrt(np.sum(D ** 2, axis=(-2, -1)))


def i2_residual(v, B, v_ref, B_ref) -> np.ndarray:
    """||(v v^T - B B^T) - (v_ref v_ref^T - B_ref B_ref^T)||_F for each t (I2)."""
    v, B = np.asarray(v, np.float64), np.asarray(B, np.float64)
    M = np.einsum("...i,...j->...ij", v, v) - np.einsum("...id,...jd->...ij", B, B)
    M0 = np.outer(v_ref, v_ref) - B_ref @ B_ref.T
    return np.sqrt(np.sum((M - M0) ** 2, axis=(-2, -1)))


def invariant_drift(problem: Problem, traj: Trajectory) -> InvariantDrift:
    """Measure I1 and I2 along ``traj`` (I2 relative to the start of the FT stage)."""
    i1 = float(np.max(i1_residual(problem, traj.B)))
    ref = float(np.linalg.norm(problem.B0 @ problem.S_perp_basis))
    M0 = np.outer(traj.v0, traj.v0) - problem.B0 @ problem.B0.T
    i2 = float(np.max(i2_residual(traj.v, traj.B, traj.v0, problem.B0)))
    return InvariantDrift(i1, i1 / ref if ref > 0 else i1, i2, i2 / float(np.linalg.norm(M0)))
