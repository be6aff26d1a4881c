"""Invariants of the FT flow (THEORY.md §3).

I1: B(t) P_Sperp = B0 P_Sperp (OOD features frozen; exact for flow and GD).
I2: v v^T - B B^T = v0 v0^T - B0 B0^T (balancedness; exact for the flow).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validate import as_f64
from .errors import TwoLayerInputError
from .problem import Problem, check_problem
from .trajectory import Trajectory

__all__ = ["InvariantDrift", "invariant_drift", "i1_residual", "i2_residual", "SAME_B0_TOL"]


class InvariantDrift(NamedTuple):
    """Worst drift over the trajectory.

    i1_abs : max_t ||(B(t) - B0) Q_Sperp||_F.
    i1_rel : i1_abs / ||B0 Q_Sperp||_F (i1_abs when that norm is 0).
    i2_abs : max_t ||(v v^T - B B^T)(t) - (v0 v0^T - B0 B0^T)||_F (v0 = traj.v0); NaN for
        an LP trajectory, where I2 is no invariant (the head moves, B stays B0).
    i2_rel : i2_abs / ||v0 v0^T - B0 B0^T||_F (i2_abs when that norm is 0; NaN for LP).
    """

    i1_abs: float
    i1_rel: float
    i2_abs: float
    i2_rel: float


#: Largest max|B(0) - B0| (entrywise) accepted as "the same B0" when matching a
#: trajectory to its problem: B(0) is B0 up to rounding in the reduced coordinates.
SAME_B0_TOL = 1e-8


def i1_residual(problem: Problem, B) -> np.ndarray:
    """||(B(t) - B0) Q_Sperp||_F for each t (I1; zero exactly in theory).

    ``B`` is (k, d) or (T, k, d), B(t) of ``problem``.
    """
    check_problem(problem)
    k, d = problem.k, problem.d
    B = as_f64(B, "B", what="(k, d) or (T, k, d) extractor")
    if B.ndim < 2 or B.shape[-2:] != (k, d):
        raise TwoLayerInputError("B", f"shape {B.shape}: last axes must be (k, d)=({k}, {d})",
                                 "pass B(t) of this problem, shape (k, d) or (T, k, d)")
    D = (B - problem.B0) @ problem.S_perp_basis
    return np.sqrt(np.sum(D ** 2, axis=(-2, -1)))


def i2_residual(v, B, v_ref, B_ref) -> np.ndarray:
    """||(v v^T - B B^T) - (v_ref v_ref^T - B_ref B_ref^T)||_F for each t (I2).

    ``v`` (..., k), ``B`` (..., k, d) with the same leading shape; ``v_ref`` (k,),
    ``B_ref`` (k, d): the state at the start of the FT stage.
    """
    B_ref = as_f64(B_ref, "B_ref", ndim=2, what="(k, d) reference extractor")
    k = B_ref.shape[0]
    v_ref = as_f64(v_ref, "v_ref", shape=(k,), what=f"reference head, k={k} rows of B_ref")
    d = B_ref.shape[1]
    v = as_f64(v, "v", what="(..., k) head")
    if v.ndim < 1 or v.shape[-1] != k:
        raise TwoLayerInputError("v", f"shape {v.shape}: last axis must be k={k}",
                                 "pass v (k,) or (T, k) of the same problem as v_ref")
    B = as_f64(B, "B", shape=v.shape[:-1] + (k, d), what="(..., k, d) extractor matching v and B_ref")
    M = np.einsum("...i,...j->...ij", v, v) - np.einsum("...id,...jd->...ij", B, B)
    M0 = np.outer(v_ref, v_ref) - B_ref @ B_ref.T
    return np.sqrt(np.sum((M - M0) ** 2, axis=(-2, -1)))


def _check_traj(problem: Problem, traj) -> None:
    """Raise unless ``traj`` is a finite trajectory of ``problem`` (shapes and B(0))."""
    if not isinstance(traj, Trajectory):
        raise TwoLayerInputError("traj", f"expected a twolayer.Trajectory, got {type(traj).__name__}",
                                 "pass the result of simulate(problem, ...) or "
                                 "gradient_descent(problem, ...)")
    k, d = problem.k, problem.d
    T = len(traj.ts)
    if T == 0:
        raise TwoLayerInputError("traj", "has no time points", "simulate at least one time")
    if traj.B.shape != (T, k, d) or traj.v.shape != (T, k) or traj.v0.shape != (k,):
        raise TwoLayerInputError(
            "traj", f"belongs to another problem: B {traj.B.shape}, v {traj.v.shape}, v0 "
            f"{traj.v0.shape}, while this problem has k={k}, d={d} (expected B {(T, k, d)}, v {(T, k)}, "
            f"v0 {(k,)})", "pass the problem the trajectory was simulated from")
    for name in ("v", "B", "v0"):
        arr = getattr(traj, name)
        finite = np.isfinite(arr)
        if not finite.all():
            bad = arr.size - np.count_nonzero(finite)
            raise TwoLayerInputError("traj", f"traj.{name} contains {bad} NaN/inf entries",
                                     "the run diverged: rerun it with a smaller step (GD) or "
                                     "tighter tolerances (it should have raised)")
    # B(0) = B0 for every method; B(t) = B0 at every t for LP. Where the trajectory holds
    # B(0) (ts[0] == 0), or for LP at any time, it must be this problem's B0.
    lp = traj.method in ("lp", "gd-lp")
    if traj.ts[0] == 0 or lp:
        dev = float(np.max(np.abs(traj.B[0] - problem.B0)))
        if not dev <= SAME_B0_TOL:
            at = "B(0)" if traj.ts[0] == 0 else f"B(t={traj.ts[0]:g}) (LP keeps B = B0)"
            raise TwoLayerInputError(
                "traj", f"its {at} differs from problem.B0 (max|B(0) - B0| = {dev:.3e} > "
                f"{SAME_B0_TOL:g}): it was simulated from another problem",
                "pass the problem the trajectory was simulated from")


def invariant_drift(problem: Problem, traj: Trajectory) -> InvariantDrift:
    """Measure I1 and I2 along ``traj`` (I2 relative to the start of the FT stage; THEORY.md §3).

    ``traj`` must come from ``problem``: its shapes are checked, and its B(0) is
    compared with ``problem.B0`` when the trajectory contains t = 0 (or is LP).
    The relative drifts divide by the reference norms, or equal the absolute
    drifts when a reference is 0. I2 holds for the FT stage only (FT, LP-FT, their GD and
    the reference); for an LP trajectory (``method`` "lp" or "gd-lp"), where only the head
    moves, the I2 drifts are NaN (not applicable) rather than a drift that reads as a failure.
    """
    check_problem(problem)
    _check_traj(problem, traj)
    i1 = float(np.max(i1_residual(problem, traj.B)))
    ref = float(np.linalg.norm(problem.B0 @ problem.S_perp_basis))
    if traj.method in ("lp", "gd-lp"):
        return InvariantDrift(i1, i1 / ref if ref > 0 else i1, float("nan"), float("nan"))
    M0 = np.outer(traj.v0, traj.v0) - problem.B0 @ problem.B0.T
    ref2 = float(np.linalg.norm(M0))
    i2 = float(np.max(i2_residual(traj.v, traj.B, traj.v0, problem.B0)))
    return InvariantDrift(i1, i1 / ref if ref > 0 else i1, i2, i2 / ref2 if ref2 > 0 else i2)
