"""Measurements of THEORY.md §7: accuracy, feature distortion, weight distance,
head alignment (the empirical phi of Theorem 3.3) and intervals over seeds."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import ImageSet

__all__ = ["autocast", "accuracy", "accuracy_and_loss", "features", "feature_distortion", "distortion_from_features",
           "weight_distance", "head_alignment", "interval90"]


def autocast(device: torch.device | str, enabled: bool = True):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


@torch.no_grad()
def features(net, data: ImageSet, batch_size: int = 1024, amp: bool = True) -> torch.Tensor:
    """Penultimate features of ``data`` in eval mode (float32, on the data's device)."""
    was = net.training
    net.eval()
    out = []
    dev = data.images.device
    for s in range(0, len(data), batch_size):
        with autocast(dev, amp):
            out.append(net.features(data.images[s:s + batch_size]).float())
    net.train(was)
    return torch.cat(out)


@torch.no_grad()
def accuracy(net, data: ImageSet, batch_size: int = 1024, amp: bool = True) -> float:
    """Top-1 accuracy of ``net`` on ``data`` in eval mode."""
    was = net.training
    net.eval()
    correct = 0
    dev = data.images.device
    for s in range(0, len(data), batch_size):
        with autocast(dev, amp):
            pred = net(data.images[s:s + batch_size]).argmax(1)
        correct += int((pred == data.labels[s:s + batch_size]).sum())
    net.train(was)
    return correct / max(len(data), 1)


@torch.no_grad()
def accuracy_and_loss(net, data: ImageSet, batch_size: int = 1024, amp: bool = True) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``net`` on ``data`` in eval mode (the loss breaks
    ties in model selection)."""
    was = net.training
    net.eval()
    correct, loss = 0, 0.0
    dev = data.images.device
    for s in range(0, len(data), batch_size):
        y = data.labels[s:s + batch_size]
        with autocast(dev, amp):
            logits = net(data.images[s:s + batch_size])
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
    net.train(was)
    n = max(len(data), 1)
    return correct / n, loss / n


def distortion_from_features(f0: torch.Tensor, f1: torch.Tensor) -> dict[str, float]:
    """Feature change between the pretrained (``f0``) and tuned (``f1``) features.

    * ``msq``: the authors' metric, mean over examples and coordinates of
      (f1 - f0)^2 (THEORY.md §7; the paper prints it x100);
    * ``rel_msq``: ``msq`` divided by the mean of f0^2 (scale-free);
    * ``euclid``: mean over examples of ||f1 - f0||_2;
    * ``cos``: mean over examples of 1 - cos(f0, f1).
    """
    f0 = f0.double()
    f1 = f1.double()
    d = f1 - f0
    msq = float((d ** 2).mean())
    return {
        "msq": msq,
        "rel_msq": msq / max(float((f0 ** 2).mean()), 1e-30),
        "euclid": float(d.norm(dim=1).mean()),
        "cos": float((1 - F.cosine_similarity(f0, f1, dim=1, eps=1e-12)).mean()),
    }


def feature_distortion(net0, net1, data: ImageSet, batch_size: int = 1024,
                       max_examples: int | None = None) -> dict[str, float]:
    """Distortion of ``net1``'s penultimate features from ``net0``'s on ``data``.

    Eval mode, float32 (no autocast, so an unchanged network gives exactly 0).
    """
    if max_examples is not None and len(data) > max_examples:
        data = ImageSet(data.images[:max_examples], data.labels[:max_examples], data.name)
    f0 = features(net0, data, batch_size, amp=False)
    f1 = features(net1, data, batch_size, amp=False)
    return distortion_from_features(f0, f1)


@torch.no_grad()
def weight_distance(net0, net1) -> dict[str, float]:
    """||theta1 - theta0||_2 over the backbone parameters, and relative to ||theta0||."""
    p0 = dict(net0.body.named_parameters())
    sq, ref = 0.0, 0.0
    for name, p in net1.body.named_parameters():
        q = p0[name].to(p.device)
        sq += float(((p.double() - q.double()) ** 2).sum())
        ref += float((q.double() ** 2).sum())
    return {"weight_dist": math.sqrt(sq), "weight_dist_rel": math.sqrt(sq) / max(math.sqrt(ref), 1e-30)}


@torch.no_grad()
def head_alignment(w0: torch.Tensor, w_star: torch.Tensor) -> dict[str, float]:
    """Empirical analogue of phi (THEORY.md §4) for a starting head ``w0``.

    The reference head ``w_star`` is the selected LP head: the best linear head
    on the pretrained features, i.e. v* expressed in B0's frame. With Frobenius
    inner products, phi^2 = |<w0, w*>^2 - ||w*||^4|; also the cosine between
    the heads and phi relative to ||w*||^2 (1 for a head orthogonal to w*, 0 for
    w0 = w*). For LP-FT w0 = w* so phi = 0 by construction; the start-of-FT
    loss and gradient norm recorded next to it say how far from stationary
    the start really is (THEORY.md §7 subtlety).
    """
    a = w0.double().flatten()
    b = w_star.double().flatten().to(a.device)
    ip = float(a @ b)
    nb2 = float(b @ b)
    phi = math.sqrt(abs(ip ** 2 - nb2 ** 2))
    return {"phi": phi, "phi_rel": phi / max(nb2, 1e-30),
            "head_cos": ip / max(float(a.norm() * b.norm()), 1e-30)}


_T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833,
        10: 1.812, 15: 1.753, 20: 1.725, 30: 1.697}


def _t95(df: int) -> float:
    try:
        from scipy.stats import t
        return float(t.ppf(0.95, df))
    except ImportError:  # pragma: no cover - scipy is a dependency of jax
        keys = sorted(k for k in _T95 if k <= df)
        return _T95[keys[-1]] if df <= 30 else 1.645


def interval90(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and half-width of a two-sided 90% t-interval over seeds, and n.

    One value gives half-width nan (no interval from a single seed).
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    return float(v.mean()), _t95(n - 1) * float(v.std(ddof=1)) / math.sqrt(n), n
