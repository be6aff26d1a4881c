"""The two-layer model on real features: the bridge of THEORY.md §9.

Pure NumPy / SciPy geometry (no torch): from feature matrices of a pretrained
network (penultimate features, eval mode) and binary labels in {-1, +1} it builds a
:class:`twolayer.Problem` whose quantities (eps, S, m, rho, Sigma, the principal
angles) are those of THEORY.md §1-§2, so that LP / FT / LP-FT can be simulated
exactly (:func:`twolayer.simulate`) and read beside what the real network does.

Construction (:func:`build_bridge`; every choice below is recorded in
:attr:`Bridge.info`):

1. Standardise: centre every feature set by the ID-*train* mean, scale by one
   number so that the ID-train features have unit average norm
   (mean_i ||x_i||_2 = 1). d = the feature dimension.
2. B0 (k x d, orthonormal rows) = the top-k principal directions of the
   *pretraining pool*'s features (centred at the pool's own mean: principal
   directions of its covariance). The task's ID / OOD data and labels never enter B0.
3. w* = least-squares fit of the labels on ID (train + val + test) and OOD
   features together, minimum-norm (``numpy.linalg.lstsq``). A ridge
   lambda = ``wstar_ridge_rel`` * sigma_max(F)^2 is used *only* when the stacked
   matrix F is rank deficient or its condition number exceeds ``wstar_cond_max``
   (then the min-norm fit is dominated by noise directions); the lambda used is recorded.
4. B* = B0 with the one direction u of R0 = rowspace(B0) closest to w*
   (u = P_R0 w* / ||P_R0 w*||) rotated onto w_hat = w*/||w*|| in the plane
   span(u, w_hat): B* = B0 + c (w_hat - u)^T with c = B0 u (unit). B* has
   orthonormal rows, B*^T v* = w* with v* = ||w*|| c, and the rotation is the
   smallest change of B0 that makes w* representable. theta = angle(w*, R0) and
   eps = d(B0, B*) = 2 sin(theta / 2), checked against :func:`twolayer.distance`.
5. S = span of the ID training features at a relative singular-value tolerance
   ``s_tol``: m = #{i : s_i > s_tol * s_1}, capped at d - k - 1 (THEORY.md §1 needs
   m < d - k; a cap is recorded with the effective tolerance). The training
   inputs given to the Problem are the ID training features *projected onto S*
   (X_S = X Q_S Q_S^T), so that rowspace(X_S) = S exactly and ``Problem.m`` = m.
   What the projection drops is recorded (``x_energy_dropped``).
6. Sigma = OOD second moment (1/N) sum x x^T; rho = tr(P_Sperp Sigma) / tr(Sigma),
   the fraction of OOD feature energy outside S. When Sigma is not positive definite
   (fewer OOD samples than d, dead units) a ridge ``sigma_ridge_rel`` * tr(Sigma)/d
   is added to it (recorded); Theorem 3.3's sqrt(sigma_min(Sigma)) then sees that floor.
7. Training targets (``target``): "labels" (default) passes the real +-1 labels as
   y: ``Problem`` supports misspecified y (its reduced flow carries the residual outside
   X's column space, and LP is the least-squares probe), and these are the labels the
   real network is trained on. "wstar" passes y = X_S w* instead (well specified, the
   setting of Theorems 3.3 / 3.5). Theorem 3.3 is stated for the well-specified case,
   so with "labels" a bound violation can come from misspecification: records say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .errors import TwoLayerInputError
from .geometry import _as_f64, distance
from .problem import Problem

__all__ = ["BridgeConfig", "Bridge", "standardize", "pca_directions", "fit_w_star", "rotate_onto",
           "training_span", "ood_second_moment", "fraction_outside", "build_bridge", "TARGETS"]

TARGETS = ("labels", "wstar")


@dataclass(frozen=True)
class BridgeConfig:
    """Settings of the bridge (THEORY.md §9)."""

    k: int = 16
    #: relative singular-value tolerance defining S (s_i > s_tol * s_1)
    s_tol: float = 3e-2
    #: training target: "labels" (real +-1 labels, misspecified) or "wstar" (y = X_S w*)
    target: str = "labels"
    #: w*: ridge only when cond(F) exceeds this (or F is rank deficient)
    wstar_cond_max: float = 1e6
    #: ... and then lambda = wstar_ridge_rel * sigma_max(F)^2
    wstar_ridge_rel: float = 1e-6
    #: Sigma: ridge sigma_ridge_rel * tr(Sigma) / d added only when lambda_min(Sigma) is below it
    sigma_ridge_rel: float = 1e-8

    def validate(self) -> "BridgeConfig":
        if int(self.k) < 1:
            raise TwoLayerInputError("k", f"must be >= 1, got {self.k}")
        if not (0.0 < self.s_tol < 1.0):
            raise TwoLayerInputError("s_tol", f"must be in (0, 1), got {self.s_tol}",
                                     "a relative singular-value tolerance such as 1e-2")
        if self.target not in TARGETS:
            raise TwoLayerInputError("target", f"unknown target {self.target!r}", f"use one of {TARGETS}")
        for name in ("wstar_cond_max", "wstar_ridge_rel", "sigma_ridge_rel"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise TwoLayerInputError(name, f"must be a positive finite float, got {v!r}")
        return self


@dataclass
class Bridge:
    """A built bridge: the Problem, the standardised features and the geometry."""

    problem: Problem
    #: standardised features and labels by set name ("train", "test", "ood", ...), train unprojected
    features: dict
    labels: dict
    w_star: np.ndarray
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- pieces
def _labels(y, name: str, n: int) -> np.ndarray:
    y = _as_f64(y, name, ndim=1)
    if y.shape != (n,):
        raise TwoLayerInputError(name, f"shape {y.shape}, expected ({n},) (one label per feature row)")
    bad = ~np.isin(y, (-1.0, 1.0))
    if np.any(bad):
        raise TwoLayerInputError(name, f"{int(bad.sum())} labels are not -1 or +1",
                                 "map the two classes of the binary task to -1 and +1")
    return y


def standardize(train: np.ndarray) -> tuple[np.ndarray, float]:
    """(mu, scale): centre by the ID-train mean, scale so mean_i ||x_i - mu|| / scale = 1."""
    train = _as_f64(train, "train", ndim=2)
    mu = train.mean(axis=0)
    scale = float(np.linalg.norm(train - mu, axis=1).mean())
    if not scale > 0:
        raise TwoLayerInputError("train", "all ID training features are equal (zero average norm "
                                 "after centring)", "pass features of distinct inputs")
    return mu, scale


def pca_directions(pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """B0 = top-k principal directions (rows, orthonormal) of ``pool``, centred at its own mean.

    Returns (B0 (k, d), singular values of the centred pool, descending). Raises when
    the pool has fewer than k nonzero principal components.
    """
    pool = _as_f64(pool, "pool", ndim=2)
    n, d = pool.shape
    if k > d:
        raise TwoLayerInputError("k", f"k={k} exceeds the feature dimension d={d}")
    P = pool - pool.mean(axis=0)
    _, s, Vt = np.linalg.svd(P, full_matrices=False)
    tol = max(n, d) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    if s.size < k or s[k - 1] <= tol:
        raise TwoLayerInputError("pool", f"has fewer than k={k} nonzero principal components "
                                 f"({n} rows, rank {int(np.sum(s > tol))})",
                                 "use a larger pretraining pool or a smaller k")
    # Fix each direction's sign (largest |entry| positive) so B0 is reproducible.
    B0 = Vt[:k]
    sgn = np.sign(B0[np.arange(k), np.argmax(np.abs(B0), axis=1)])
    return B0 * sgn[:, None], s


def fit_w_star(F: np.ndarray, y: np.ndarray, cond_max: float = 1e6,
               ridge_rel: float = 1e-6) -> tuple[np.ndarray, dict]:
    """Least-squares w* of ``y`` on the rows of ``F`` (THEORY.md §9).

    Plain minimum-norm least squares when F has full column rank and cond(F) <=
    ``cond_max``; otherwise ridge with lambda = ``ridge_rel`` * sigma_max(F)^2
    (stated in the returned info).
    """
    F = _as_f64(F, "F", ndim=2)
    y = _as_f64(y, "y", ndim=1)
    if y.shape != (F.shape[0],):
        raise TwoLayerInputError("y", f"shape {y.shape}, expected ({F.shape[0]},)")
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    rank_tol = max(F.shape) * np.finfo(np.float64).eps * s[0]
    rank = int(np.sum(s > rank_tol))
    cond = float(s[0] / s[-1]) if s[-1] > 0 else float("inf")
    full = rank == F.shape[1]
    lam = 0.0 if (full and cond <= cond_max) else float(ridge_rel * s[0] ** 2)
    filt = s / (s ** 2 + lam) if lam > 0 else np.where(s > rank_tol, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    w = Vt.T @ (filt * (U.T @ y))
    resid = F @ w - y
    info = {"wstar_n_rows": int(F.shape[0]), "wstar_rank": rank, "wstar_cond": cond,
            "wstar_ridge": lam, "wstar_fit_mse": float(np.mean(resid ** 2)),
            "wstar_fit_acc": float(np.mean(np.sign(F @ w) == y))}
    return w, info


def rotate_onto(B0: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(B*, v*, theta): B0 with its direction closest to ``w`` rotated onto w (THEORY.md §9).

    u = P_R0 w / ||P_R0 w||, c = B0 u, B* = B0 + c (w_hat - u)^T, v* = ||w|| c, so
    B*^T v* = w, B* B*^T = I and ||B0 - B*||_2 = 2 sin(theta / 2), theta = angle(w, R0).
    When w is orthogonal to R0 (theta = pi/2) u is not unique: the first row of B0 is used.
    """
    B0 = _as_f64(B0, "B0", ndim=2)
    w = _as_f64(w, "w", ndim=1)
    wn = float(np.linalg.norm(w))
    if not wn > 0:
        raise TwoLayerInputError("w", "is zero", "the labels are not fitted by any direction")
    w_hat = w / wn
    p = B0.T @ (B0 @ w_hat)          # P_R0 w_hat
    pn = float(np.linalg.norm(p))
    theta = float(np.arctan2(np.linalg.norm(w_hat - p), pn))   # accurate for small angles
    u = p / pn if pn > 1e-14 else B0[0].copy()
    c = B0 @ u
    c = c / np.linalg.norm(c)
    B_star = B0 + np.outer(c, w_hat - u)
    return B_star, wn * c, theta


def training_span(X: np.ndarray, s_tol: float, max_rank: int) -> tuple[np.ndarray, dict]:
    """(Q_S (d, m), info): span of the rows of ``X`` at relative singular-value tolerance.

    m = #{s_i > s_tol * s_1}, capped at ``max_rank`` (recorded, with the effective
    tolerance s_m / s_1 and the first dropped ratio s_{m+1} / s_1).
    """
    X = _as_f64(X, "X", ndim=2)
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    if not s.size or s[0] <= 0:
        raise TwoLayerInputError("X", "is zero", "pass ID training features")
    ratio = s / s[0]
    m_tol = int(np.sum(ratio > s_tol))
    m = min(m_tol, int(max_rank))
    if m < 1:
        raise TwoLayerInputError("max_rank", f"allows no direction (max_rank={max_rank})",
                                 "need d - k - 1 >= 1: use a smaller k")
    Q = Vt[:m].T.copy()
    e = s ** 2
    info = {"s_tol": float(s_tol), "m": m, "m_at_tol": m_tol, "m_capped": bool(m < m_tol),
            "s_ratio_last_kept": float(ratio[m - 1]),
            "s_ratio_first_dropped": float(ratio[m]) if m < ratio.size else 0.0,
            "x_energy_dropped": float(e[m:].sum() / e.sum()), "rank_X_full": int(np.sum(
                s > max(X.shape) * np.finfo(np.float64).eps * s[0]))}
    return Q, info


def ood_second_moment(X_ood: np.ndarray) -> np.ndarray:
    """Sigma = (1/N) sum_i x_i x_i^T of the OOD features (THEORY.md §1)."""
    X_ood = _as_f64(X_ood, "X_ood", ndim=2)
    S = X_ood.T @ X_ood / X_ood.shape[0]
    return 0.5 * (S + S.T)


def fraction_outside(Sigma: np.ndarray, Q_S: np.ndarray) -> float:
    """rho = tr(P_Sperp Sigma) / tr(Sigma) = 1 - tr(Q_S^T Sigma Q_S) / tr(Sigma)."""
    tr = float(np.trace(Sigma))
    inside = float(np.einsum("dm,de,em->", Q_S, Sigma, Q_S))
    return float(np.clip(1.0 - inside / tr, 0.0, 1.0))


# ----------------------------------------------------------------------------- the bridge
def build_bridge(pool, train: tuple, ood: tuple, *, test: tuple | None = None,
                 extra_id: Mapping[str, tuple] | None = None,
                 config: BridgeConfig = BridgeConfig(), meta: dict | None = None) -> Bridge:
    """Build the two-layer Problem of THEORY.md §9 from real features.

    Parameters
    ----------
    pool : (N_pool, d) features of the pretraining pool (B0 only).
    train : (X (n, d), y (n,)) ID training features and +-1 labels.
    ood : (X_ood, y_ood) OOD features and labels.
    test : (X_test, y_test) ID test features and labels (accuracy, feature change, w*).
    extra_id : other ID sets by name (e.g. {"val": (X, y)}), used in the w* fit only.
    config : :class:`BridgeConfig`.

    Returns a :class:`Bridge`; ``info`` holds every number of the construction.
    """
    config = BridgeConfig(**{**config.__dict__}).validate()
    X_raw = _as_f64(train[0], "train[0]", ndim=2)
    n, d = X_raw.shape
    k = int(config.k)
    if d - k - 1 < 1:
        raise TwoLayerInputError("k", f"k={k} leaves no room for S in d={d} (need m < d - k)",
                                 "use a smaller k")
    sets = {"train": (X_raw, _labels(train[1], "train[1]", n))}
    if test is not None:
        Xt = _as_f64(test[0], "test[0]", ndim=2)
        sets["test"] = (Xt, _labels(test[1], "test[1]", Xt.shape[0]))
    for name, (Xe, ye) in (extra_id or {}).items():
        Xe = _as_f64(Xe, f"extra_id[{name}][0]", ndim=2)
        sets[name] = (Xe, _labels(ye, f"extra_id[{name}][1]", Xe.shape[0]))
    Xo = _as_f64(ood[0], "ood[0]", ndim=2)
    sets["ood"] = (Xo, _labels(ood[1], "ood[1]", Xo.shape[0]))
    pool = _as_f64(pool, "pool", ndim=2)
    for name, (Xs, _) in list(sets.items()) + [("pool", (pool, None))]:
        if Xs.shape[1] != d:
            raise TwoLayerInputError(name, f"has {Xs.shape[1]} feature columns, ID train has {d}",
                                     "all sets must be features of the same backbone")
    mu, scale = standardize(X_raw)
    feats = {name: (Xs - mu) / scale for name, (Xs, _) in sets.items()}
    labels = {name: ys for name, (_, ys) in sets.items()}
    P = (pool - mu) / scale

    B0, pool_s = pca_directions(P, k)
    F = np.vstack([feats[s] for s in feats])
    yF = np.concatenate([labels[s] for s in feats])
    w_star, winfo = fit_w_star(F, yF, config.wstar_cond_max, config.wstar_ridge_rel)
    B_star, v_star, theta = rotate_onto(B0, w_star)
    eps_closed = 2.0 * np.sin(theta / 2.0)

    Q_S, sinfo = training_span(feats["train"], config.s_tol, d - k - 1)
    X_S = feats["train"] @ Q_S @ Q_S.T
    Sigma = ood_second_moment(feats["ood"])
    rho = fraction_outside(Sigma, Q_S)
    lam = np.linalg.eigvalsh(Sigma)
    floor = config.sigma_ridge_rel * float(np.trace(Sigma)) / d
    sigma_ridge = 0.0 if lam[0] > floor else floor
    Sigma_used = Sigma + sigma_ridge * np.eye(d)

    y = labels["train"] if config.target == "labels" else X_S @ w_star
    problem = Problem(B_star, v_star, B0, X_S, y, Sigma_used,
                      meta=dict(meta or {}, bridge=True, target=config.target))
    if problem.m != sinfo["m"]:
        raise TwoLayerInputError("s_tol", f"the projected training features have numerical rank "
                                 f"{problem.m}, expected m={sinfo['m']}",
                                 "the singular values at the cut are too close to rounding: "
                                 "use a larger s_tol")
    eps_dist = distance(B0, B_star)
    if abs(eps_dist - eps_closed) > 1e-9 * max(1.0, eps_closed):
        raise TwoLayerInputError("w_star", f"d(B0, B*) = {eps_dist:.12g} by principal angles differs "
                                 f"from 2 sin(theta/2) = {eps_closed:.12g}",
                                 "report this: the rotation construction is wrong")
    info = {
        "d": d, "k": k, "n_train": n, "n_ood": int(feats["ood"].shape[0]),
        "n_test": int(feats["test"].shape[0]) if "test" in feats else 0, "n_pool": int(P.shape[0]),
        "feature_scale": scale, "target": config.target,
        "pool_var_top_k": float((pool_s[:k] ** 2).sum() / (pool_s ** 2).sum()),
        **winfo, "w_star_norm": float(np.linalg.norm(w_star)), "theta": theta,
        "theta_deg": float(np.degrees(theta)), "eps": eps_dist, "eps_closed_form": float(eps_closed),
        **sinfo, "rho": rho, "sigma_ridge": float(sigma_ridge), "sigma_min_raw": float(lam[0]),
        "sigma_max": float(lam[-1]), "ood_trace": float(np.trace(Sigma)),
        "well_specified": bool(problem.well_specified),
        "label_resid_frac": float(np.sum((y - X_S @ np.linalg.lstsq(X_S, y, rcond=None)[0]) ** 2)
                                  / np.sum(y ** 2)),
    }
    c = problem.cos_theta_max
    info.update({"cos_R0_S": c["R0,S"], "cos_R0_Sperp": c["R0,S_perp"], "cos_Rstar_S": c["R*,S"],
                 "cos_Rstar_Sperp": c["R*,S_perp"]})
    return Bridge(problem=problem, features=feats, labels=labels, w_star=w_star, info=info)
