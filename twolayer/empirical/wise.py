"""WiSE-FT and output ensembles between two saved networks, evaluation only (issue 20 §3).

Wortsman et al. (CVPR 2022, "Robust fine-tuning of zero-shot models", mlfoundations/wise-ft):
for alpha in [0, 1],

* **weight space** (WiSE-FT): theta(alpha) = (1 - alpha) theta_a + alpha theta_b over *every*
  floating-point entry of the ``state_dict``: convolution and linear weights, BatchNorm's affine
  parameters **and its running mean and variance** (the buffers the network uses in eval mode).
  Integer buffers (BatchNorm's ``num_batches_tracked``, unused in eval mode) are taken from the
  nearer endpoint. alpha = 0 and 1 return the endpoints' own tensors, so the endpoints are
  reproduced exactly;
* **output space** (the ensemble): logits(alpha) = (1 - alpha) f_a(x) + alpha f_b(x), the
  mixture of the two networks' logits (the paper's output-space ensemble).

Every network is evaluated in eval mode, in float32 (no autocast), on each named set: top-1
accuracy and mean cross-entropy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["interpolate_state", "logits_of", "scores", "wise_and_ensemble"]


def interpolate_state(a: dict, b: dict, alpha: float) -> dict:
    """theta(alpha) = (1 - alpha) a + alpha b over the floating entries of two state_dicts."""
    if set(a) != set(b):
        raise ValueError(f"state_dicts differ in keys: only a {sorted(set(a) - set(b))[:5]}, "
                         f"only b {sorted(set(b) - set(a))[:5]}")
    alpha = float(alpha)
    if alpha == 0.0:
        return dict(a)
    if alpha == 1.0:
        return dict(b)
    out = {}
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise ValueError(f"state_dict entry {k!r}: shapes {tuple(ta.shape)} and {tuple(tb.shape)} differ")
        if torch.is_floating_point(ta):
            out[k] = (1.0 - alpha) * ta + alpha * tb.to(ta.dtype)
        else:  # num_batches_tracked: not used in eval mode
            out[k] = (ta if alpha < 0.5 else tb).clone()
    return out


@torch.no_grad()
def logits_of(net, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Eval-mode float32 logits of ``net`` on uint8 ``images`` (N, C, H, W)."""
    was = net.training
    net.eval()
    out = [net(images[s:s + batch_size]).float() for s in range(0, len(images), batch_size)]
    net.train(was)
    return torch.cat(out) if out else torch.empty(0)


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Top-1 accuracy and mean cross-entropy of ``logits`` against ``labels``."""
    labels = labels.to(logits.device)
    n = max(len(labels), 1)
    return {"acc": int((logits.argmax(1) == labels).sum()) / n,   # as metrics.accuracy counts it
            "nll": float(F.cross_entropy(logits, labels))}


def wise_and_ensemble(make_net: Callable[[], torch.nn.Module], state_a: dict, state_b: dict,
                      sets: dict, alphas, batch_size: int = 1024) -> list[dict]:
    """Rows ``{"kind": "wise"|"ensemble", "alpha", "split", "metric", "value"}`` along the path a -> b.

    ``make_net()`` builds an untrained network of the endpoints' architecture; ``sets``: split
    name -> (uint8 images, labels). The ensemble reuses the endpoints' logits (computed once).
    """
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    net = make_net()
    rows = []
    ends = {}
    for alpha in alphas:
        net.load_state_dict(interpolate_state(state_a, state_b, float(alpha)))
        for split, (x, y) in sets.items():
            z = logits_of(net, x, batch_size)
            if alpha in (0.0, 1.0):
                ends[(float(alpha), split)] = z
            rows += [{"kind": "wise", "alpha": float(alpha), "split": split, "metric": m, "value": v}
                     for m, v in scores(z, y).items()]
    for split, (x, y) in sets.items():
        za = ends.get((0.0, split))
        zb = ends.get((1.0, split))
        if za is None or zb is None:   # the grid lacks an endpoint: evaluate it for the ensemble
            net.load_state_dict(state_a)
            za = logits_of(net, x, batch_size)
            net.load_state_dict(state_b)
            zb = logits_of(net, x, batch_size)
        for alpha in alphas:
            z = (1.0 - alpha) * za + alpha * zb if alpha not in (0.0, 1.0) else (za if alpha == 0.0 else zb)
            rows += [{"kind": "ensemble", "alpha": float(alpha), "split": split, "metric": m, "value": v}
                     for m, v in scores(z, y).items()]
    return rows
