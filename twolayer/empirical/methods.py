"""LP, FT and LP-FT (the paper's protocol, THEORY.md §7).

* LP: multinomial logistic regression on cached penultimate features (eval
  mode), L2 strength swept on a log grid (the authors sweep 50 values) and
  chosen on ID validation accuracy; full-batch L-BFGS in torch, warm-started
  from the strongest to the weakest regularisation.
* FT: SGD with momentum 0.9, cosine schedule, a fresh head, standard
  augmentation (random crop with padding; horizontal flip where it makes
  sense), BatchNorm in train mode.
* LP-FT: the LP head loaded, the same FT (same epochs, batch size, number of
  learning rates: the same compute) with its own smaller learning-rate sweep
  and BatchNorm kept in eval mode.

All randomness comes from explicit ``torch.Generator`` objects seeded from
the run's seed; nothing global is changed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet, ShiftData
from .metrics import accuracy, autocast, head_alignment

__all__ = ["FTConfig", "LPConfig", "LPResult", "fit_logreg", "linear_probe", "augment_batch",
           "train_epochs", "finetune", "set_bn_eval"]


@dataclass
class LPConfig:
    """Logistic-regression sweep: ``n_l2`` strengths log-spaced in [l2_min, l2_max].

    The objective is mean cross-entropy + l2 / 2 * ||W||_F^2 (bias free);
    scikit-learn's ``C`` is 1 / (l2 * n_train).
    """
    n_l2: int = 20
    l2_min: float = 1e-6
    l2_max: float = 1.0
    max_iter: int = 100


@dataclass
class FTConfig:
    """Fine-tuning settings shared by FT and LP-FT (same compute)."""
    epochs: int = 10
    batch_size: int = 128
    ft_lrs: Sequence[float] = (0.03, 0.01, 0.003)
    lpft_lrs: Sequence[float] = (0.003, 0.001, 0.0003)
    momentum: float = 0.9
    weight_decay: float = 0.0
    pad: int | None = None  # crop padding; default image_size // 8
    amp: bool = True
    eval_batch_size: int = 1024
    eval_every: int = 1  # evaluate ID/OOD every this many epochs (and at the last)
    distortion_examples: int = 2000  # per split / domain
    #: extra LP-FT runs (method ``lpft-head``) from this many non-selected LP heads of the sweep,
    #: at the selected LP-FT lr: distortion against the LP head norm (THEORY.md §7 subtlety)
    lpft_head_sweep: int = 0


# --------------------------------------------------------------------------
# LP
# --------------------------------------------------------------------------
@dataclass
class LPResult:
    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    l2: float
    head_norm: float  # ||W||_F
    val_acc: float
    sweep: list[dict] = field(default_factory=list)  # l2, val_acc, train_acc, head_norm
    heads: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (W, b) per sweep entry


def fit_logreg(ftr: torch.Tensor, ytr: torch.Tensor, fva: torch.Tensor, yva: torch.Tensor,
               num_classes: int, cfg: LPConfig | None = None) -> LPResult:
    """Sweep the L2 strength of multinomial logistic regression, select on validation.

    Ties in validation accuracy are broken by the lower validation loss.
    """
    cfg = cfg or LPConfig()
    dtype = torch.float64 if ftr.device.type == "cpu" else torch.float32
    X, Xv = ftr.to(dtype), fva.to(dtype)
    W = torch.zeros(num_classes, X.shape[1], dtype=dtype, device=X.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=dtype, device=X.device, requires_grad=True)
    grid = np.logspace(math.log10(cfg.l2_max), math.log10(cfg.l2_min), cfg.n_l2)  # strong -> weak
    best = None
    sweep, heads = [], []
    for lam in grid:
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=cfg.max_iter, history_size=20,
                                tolerance_grad=1e-7, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(X @ W.T + b, ytr) + 0.5 * lam * (W * W).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            lv = Xv @ W.T + b
            vacc = float((lv.argmax(1) == yva).double().mean())
            vloss = float(F.cross_entropy(lv, yva))
            tacc = float(((X @ W.T + b).argmax(1) == ytr).double().mean())
            hn = float(W.norm())
        sweep.append({"l2": float(lam), "val_acc": vacc, "val_loss": vloss, "train_acc": tacc, "head_norm": hn})
        heads.append((W.detach().float().clone(), b.detach().float().clone()))
        key = (vacc, -vloss)
        if best is None or key > best[0]:
            best = (key, float(lam), W.detach().clone(), b.detach().clone())
    (vacc, _), lam, Wb, bb = best
    return LPResult(Wb.float(), bb.float(), lam, float(Wb.norm()), vacc, sweep, heads)


def linear_probe(net, data: ShiftData, cfg: LPConfig | None = None, amp: bool = True,
                 batch_size: int = 1024) -> tuple[LPResult, dict]:
    """LP on cached eval-mode features of ``net``; returns the result and accuracies."""
    from .metrics import features

    f = {k: features(net, s, batch_size, amp) for k, s in
         [("id_train", data.id_train), ("id_val", data.id_val), ("id_test", data.id_test)]}
    res = fit_logreg(f["id_train"], data.id_train.labels, f["id_val"], data.id_val.labels,
                     data.num_classes, cfg)

    def acc(feat, y):
        return float(((feat @ res.weight.T.to(feat.device) + res.bias.to(feat.device)).argmax(1) == y)
                     .float().mean())

    accs = {"id_val": acc(f["id_val"], data.id_val.labels), "id_test": acc(f["id_test"], data.id_test.labels),
            "ood": {d: acc(features(net, s, batch_size, amp), s.labels) for d, s in data.ood.items()}}
    return res, accs


# --------------------------------------------------------------------------
# FT / LP-FT
# --------------------------------------------------------------------------
def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int, hflip: bool) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and (optionally) horizontal flips, on uint8."""
    n, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device).to(dev)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device).to(dev)
        rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]
        x = xp[torch.arange(n, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if hflip:
        flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(dev)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def set_bn_eval(net: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics frozen and used)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_epochs(net, train: ImageSet, epochs: int, lr: float, batch_size: int, seed: int,
                 momentum: float = 0.9, weight_decay: float = 0.0, pad: int = 4, hflip: bool = True,
                 bn_eval: bool = False, amp: bool = True, eval_every: int = 1, warmup_epochs: float = 0.0,
                 label_smoothing: float = 0.0,
                 on_epoch: Callable[[int, dict], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    """SGD (momentum) with a per-step cosine schedule over ``epochs``; in-place on ``net``.

    ``on_epoch(epoch, info)`` is called after epochs ``eval_every, 2*eval_every, ...``
    and the last, with the mean training loss. Returns timing (training only,
    evaluation excluded): ``train_seconds``, ``images``, ``images_per_s``, and
    ``diverged`` (a non-finite epoch loss stops training; the caller records it).
    """
    dev = train.images.device
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    n = len(train)
    steps_per_epoch = max(n // batch_size, 1)  # drop the last partial batch (stable BN)
    total = epochs * steps_per_epoch
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    warm = int(warmup_epochs * steps_per_epoch)

    def factor(s: int) -> float:  # linear warm-up (pretraining only), then cosine to 0
        w = min(1.0, (s + 1) / warm) if warm > 0 else 1.0
        return w * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    train_time, images = 0.0, 0
    step = 0
    diverged = False
    for epoch in range(1, epochs + 1):
        net.train()
        if bn_eval:
            set_bn_eval(net)
        _sync(dev)
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(dev)
        loss_sum = torch.zeros((), device=dev)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = augment_batch(train.images[idx], gen, pad, hflip)
            yb = train.labels[idx]
            with autocast(dev, amp):
                loss = F.cross_entropy(net(xb), yb, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach().float()
            step += 1
            images += len(idx)
        _sync(dev)
        train_time += time.perf_counter() - t0
        mean_loss = float(loss_sum) / steps_per_epoch
        diverged = not math.isfinite(mean_loss)
        if diverged and progress is not None:
            progress(f"epoch {epoch}/{epochs} lr {lr:g}: training diverged (loss {mean_loss}); stopping")
        if diverged:
            if on_epoch is not None:
                on_epoch(epoch, {"train_loss": mean_loss})
            break
        if progress is not None:
            progress(f"epoch {epoch}/{epochs} lr {lr:g} loss {mean_loss:.4f} "
                     f"({images / max(train_time, 1e-9):.0f} img/s)")
        if on_epoch is not None and (epoch % eval_every == 0 or epoch == epochs):
            on_epoch(epoch, {"train_loss": mean_loss})
    return {"train_seconds": train_time, "images": images,
            "images_per_s": images / max(train_time, 1e-9), "steps": step, "diverged": diverged}


def _start_stats(net, data: ShiftData, w_star: torch.Tensor, batch_size: int, amp: bool) -> dict:
    """Head alignment and the loss / backbone-gradient norm at the start of FT (eval mode)."""
    stats = head_alignment(net.head.weight.detach(), w_star)
    was = net.training
    net.eval()
    sub = data.id_train.sample(max(batch_size, 256), seed=0)
    x, y = sub.images, sub.labels
    net.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    g = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.body.parameters() if p.grad is not None))
    net.zero_grad(set_to_none=True)
    net.train(was)
    stats.update({"init_loss": float(loss.detach()), "init_grad_norm": g})
    return stats


def finetune(net0, data: ShiftData, lr: float, cfg: FTConfig, seed: int,
             head: tuple[torch.Tensor, torch.Tensor] | None = None, bn_eval: bool = False,
             w_star: torch.Tensor | None = None, progress=None) -> dict:
    """FT (``head=None``: a fresh head drawn from ``seed``) or LP-FT (``head`` = LP head,
    ``bn_eval=True``) from the pretrained ``net0`` (left unchanged).

    Returns the tuned network, the per-epoch history (train loss, ID val /
    test and per-domain OOD accuracy; epoch 0 is the start) and timing, plus
    the start-of-FT statistics when ``w_star`` (the LP head) is given.
    """
    net = copy.deepcopy(net0)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 7919 + 17)
    if head is None:
        net.reset_head(data.num_classes, generator=gen)
        net.head.to(data.id_train.images.device)
    else:
        net.set_head(head[0], head[1])
    start = _start_stats(net, data, w_star, cfg.batch_size, cfg.amp) if w_star is not None else {}
    history = []

    def evaluate(epoch, info):
        row = {"epoch": epoch, "train_loss": info.get("train_loss", float("nan")),
               "id_val": accuracy(net, data.id_val, cfg.eval_batch_size, cfg.amp),
               "id_test": accuracy(net, data.id_test, cfg.eval_batch_size, cfg.amp),
               "ood": {d: accuracy(net, s, cfg.eval_batch_size, cfg.amp) for d, s in data.ood.items()}}
        history.append(row)

    evaluate(0, {})
    pad = cfg.pad if cfg.pad is not None else max(data.image_size // 8, 1)
    timing = train_epochs(net, data.id_train, cfg.epochs, lr, cfg.batch_size, seed=seed * 1_000_003 + 1,
                          momentum=cfg.momentum, weight_decay=cfg.weight_decay, pad=pad, hflip=data.hflip,
                          bn_eval=bn_eval, amp=cfg.amp, eval_every=cfg.eval_every, on_epoch=evaluate,
                          progress=progress)
    net.eval()
    return {"net": net, "history": history, "timing": timing, "start": start}
