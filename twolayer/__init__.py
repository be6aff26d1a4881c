"""twolayer: exact gradient flow of two-layer linear networks f(x) = v^T B x.

Checks the theory of Kumar et al., "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution" (ICLR 2022); conventions in THEORY.md.
Importing twolayer changes no global state (JAX float64 is enabled only inside
the solver calls) and never imports torch (see ``twolayer.empirical``).
"""

from . import _sources, accuracy, bounds, closed_form  # noqa: F401 - _sources: the files as imported
from .errors import (AssumptionError, NoLimitError, NotConvergedError, NotOrthonormalError, PrecisionWarning,
                     SolverCertificateError, SolverError, SolverFailedError, SolverStepLimitError,
                     TwoLayerInputError)
from .flow import FlowConfig, FlowResult, compile_count, simulate, simulate_batch
from .gd import gradient_descent
from .generate import make_problem, ood_second_moment
from .geometry import (cos_theta_max, distance, orthonormalize_rows, principal_angles,
                       procrustes_distance, procrustes_rotation)
from .invariants import InvariantDrift, invariant_drift
from .losses import (effective_predictor, feature_change, id_loss, id_loss_w, ood_loss, ood_loss_w,
                     train_loss, train_loss_w)
from .lp import LinearProbe, lp_head, lp_limit
from .problem import Problem
from .trajectory import Trajectory

__version__ = "0.1.0"

__all__ = [
    "Problem", "make_problem", "ood_second_moment", "simulate", "simulate_batch", "FlowConfig",
    "FlowResult", "compile_count", "SolverError", "SolverCertificateError",
    "gradient_descent", "Trajectory", "LinearProbe", "lp_head", "lp_limit",
    "train_loss", "ood_loss", "id_loss", "feature_change", "effective_predictor",
    "train_loss_w", "ood_loss_w", "id_loss_w",
    "invariant_drift", "InvariantDrift", "distance", "procrustes_rotation", "procrustes_distance",
    "cos_theta_max", "principal_angles", "orthonormalize_rows", "bounds", "closed_form", "accuracy",
    "NotConvergedError", "NoLimitError",
    "TwoLayerInputError", "NotOrthonormalError", "AssumptionError", "SolverStepLimitError",
    "SolverFailedError", "PrecisionWarning",
]
