"""Weight-space interpolation (WiSE-FT) and output ensembles between two exact endpoints.

Endpoints a = (v_a, B_a), b = (v_b, B_b) (e.g. LP -> FT, LP -> LP-FT, (0, B0) -> FT, each
at t = inf). At alpha in [0, 1]:

* WiSE-FT (Wortsman et al. 2022) interpolates the weights:
  v(alpha) = (1 - alpha) v_a + alpha v_b, B(alpha) = (1 - alpha) B_a + alpha B_b, so
  w(alpha) = B(alpha)^T v(alpha) = (1-alpha)^2 w_a + alpha^2 w_b + alpha (1-alpha) (B_a^T v_b + B_b^T v_a):
  quadratic in alpha, its losses quartic.
* The output ensemble interpolates the predictors: w_ens(alpha) = (1 - alpha) w_a + alpha w_b.

DERIVED (checked in tests/test_interpolate.py and experiments/beyond_lpft.py):

* Every loss L(w) = (w* - w)^T M (w* - w) (OOD: M = Sigma; ID: P_S; train: X^T X with w*
  replaced by the least-squares fit) is, along the ensemble, exactly
  L(alpha) = (1 - alpha) L_a + alpha L_b - alpha (1 - alpha) ||w_a - w_b||_M^2: below the chord
  by alpha (1 - alpha) ||w_a - w_b||_M^2; its minimum is inside (0, 1), beating both ends, iff
  |L_b - L_a| < ||w_a - w_b||_M^2.
* I1 holds along both paths (both endpoints have B P_Sperp = B0 P_Sperp): interpolation moves
  only ID-span features. With B_a = B0 the feature change is linear: B(alpha) - B0 = alpha (B_b - B0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import TwoLayerInputError

__all__ = ["Endpoint", "ENDPOINT_PAIRS", "endpoint", "endpoints", "check_alphas", "wise_weights",
           "wise_curve", "ensemble_curve", "ensemble_closed_form"]


class Endpoint(NamedTuple):
    """One end of an interpolation: head v (k,), extractor B (k, d), and its name."""

    name: str
    v: np.ndarray
    B: np.ndarray


def _lp(problem, config):
    from .lp import lp_limit
    return lp_limit(problem, problem.v0), problem.B0


def _flow(method):
    def at_limit(problem, config):
        from .flow import simulate
        tr = simulate(problem, method, [np.inf], **config)
        return tr.v[-1], tr.B[-1]
    return at_limit


def _zero_head(problem, config):
    return np.zeros(problem.k), problem.B0


#: endpoint name -> (problem, FlowConfig fields) -> (v, B), each at t = inf (from problem.v0).
ENDPOINTS = {"lp": _lp, "ft": _flow("ft"), "lpft": _flow("lpft"), "zero": _zero_head}
#: The interpolation paths of issue 20: name -> (start, end).
ENDPOINT_PAIRS = {"lp_ft": ("lp", "ft"), "lp_lpft": ("lp", "lpft"), "zero_ft": ("zero", "ft")}


def endpoint(problem, name: str, **config) -> Endpoint:
    """The endpoint ``name`` (one of :data:`ENDPOINTS`) of ``problem``; ``config``: FlowConfig fields."""
    if name not in ENDPOINTS:
        raise TwoLayerInputError("endpoint", f"unknown endpoint {name!r}", f"use one of {tuple(ENDPOINTS)}")
    v, B = ENDPOINTS[name](problem, config)
    return Endpoint(name, np.asarray(v, np.float64), np.asarray(B, np.float64))


def endpoints(problem, pair: str, **config) -> tuple[Endpoint, Endpoint]:
    """The two endpoints of the path ``pair`` (one of :data:`ENDPOINT_PAIRS`)."""
    if pair not in ENDPOINT_PAIRS:
        raise TwoLayerInputError("pair", f"unknown interpolation path {pair!r}",
                                 f"use one of {tuple(ENDPOINT_PAIRS)}")
    a, b = ENDPOINT_PAIRS[pair]
    return endpoint(problem, a, **config), endpoint(problem, b, **config)


def check_alphas(alphas) -> np.ndarray:
    """alphas as a 1-D float64 array of finite values (extrapolation beyond [0, 1] allowed)."""
    try:
        a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError("alphas", f"cannot convert to float64 ({exc})", "pass numbers in [0, 1]") from exc
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise TwoLayerInputError("alphas", f"must be a non-empty sequence of finite numbers, got {alphas!r}",
                                 "pass e.g. np.linspace(0, 1, 11)")
    return a


def _check_pair(problem, a: Endpoint, b: Endpoint) -> None:
    shape = (problem.k, problem.d)
    for e in (a, b):
        if not isinstance(e, Endpoint):
            raise TwoLayerInputError("endpoint", f"expected an Endpoint, got {type(e).__name__}",
                                     "build one with twolayer.interpolate.endpoint(problem, name)")
        if e.v.shape != (problem.k,) or e.B.shape != shape:
            raise TwoLayerInputError("endpoint", f"{e.name}: v {e.v.shape}, B {e.B.shape} do not fit "
                                     f"k={problem.k}, d={problem.d}", "pass endpoints of this problem")


def wise_weights(a: Endpoint, b: Endpoint, alphas) -> tuple[np.ndarray, np.ndarray]:
    """(v (A, k), B (A, k, d)): the interpolated weights at each alpha (alpha = 0: a, 1: b, exactly)."""
    al = check_alphas(alphas)
    v = (1.0 - al)[:, None] * a.v + al[:, None] * b.v
    B = (1.0 - al)[:, None, None] * a.B + al[:, None, None] * b.B
    return v, B


def _losses_of(problem, w: np.ndarray) -> dict:
    from .losses import id_loss_w, ood_loss_w, train_loss_w
    return dict(ood=ood_loss_w(problem, w), id=id_loss_w(problem, w), train=train_loss_w(problem, w))


def wise_curve(problem, a: Endpoint, b: Endpoint, alphas, x_id=None, x_ood=None) -> dict:
    """Losses along the WiSE-FT path: ``alpha``, ``ood``, ``id``, ``train`` (A,), and
    ``feature_change_fro`` = ||B(alpha) - B0||_F; with inputs ``x_id`` / ``x_ood`` (N, d) also
    the mean feature change ||(B(alpha) - B0) x|| on them (:func:`twolayer.losses.feature_change`)."""
    from .losses import effective_predictor, feature_change
    _check_pair(problem, a, b)
    v, B = wise_weights(a, b, alphas)
    out = dict(alpha=check_alphas(alphas), **_losses_of(problem, effective_predictor(problem, v, B)))
    out["feature_change_fro"] = np.linalg.norm(B - problem.B0, axis=(-2, -1))
    for name, x in (("feature_change_id", x_id), ("feature_change_ood", x_ood)):
        if x is not None:
            out[name] = feature_change(problem, B, x)
    return out


def ensemble_curve(problem, a: Endpoint, b: Endpoint, alphas) -> dict:
    """Losses of the output ensemble w = (1 - alpha) w_a + alpha w_b (computed from w)."""
    from .losses import effective_predictor
    _check_pair(problem, a, b)
    al = check_alphas(alphas)
    wa, wb = effective_predictor(problem, a.v, a.B), effective_predictor(problem, b.v, b.B)
    w = (1.0 - al)[:, None] * wa + al[:, None] * wb
    return dict(alpha=al, **_losses_of(problem, w))


def ensemble_closed_form(problem, a: Endpoint, b: Endpoint, alphas, which: str = "ood") -> np.ndarray:
    """L(alpha) = (1 - alpha) L_a + alpha L_b - alpha (1 - alpha) ||w_a - w_b||_M^2 (module docstring),
    from the endpoints' losses and the M-norm of their difference alone."""
    from .losses import effective_predictor
    al = check_alphas(alphas)
    _check_pair(problem, a, b)
    wa, wb = effective_predictor(problem, a.v, a.B), effective_predictor(problem, b.v, b.B)
    ends = ensemble_curve(problem, a, b, [0.0, 1.0])[which]
    dw = wa - wb
    M = {"ood": problem.Sigma, "id": problem.S_basis @ problem.S_basis.T, "train": problem.X.T @ problem.X}
    if which not in M:
        raise TwoLayerInputError("which", f"unknown loss {which!r}", f"use one of {tuple(M)}")
    gap = float(dw @ M[which] @ dw)
    return (1.0 - al) * ends[0] + al * ends[1] - al * (1.0 - al) * gap
