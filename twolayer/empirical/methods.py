"""LP, FT and LP-FT (the paper's protocol, THEORY.md §7).

* LP: multinomial logistic regression (scikit-learn ``LogisticRegression``, the
  authors' tool) on cached eval-mode penultimate features, standardised by the
  scalar mean and standard deviation of the training features (as the authors
  do), inverse L2 strength ``C`` swept on a log grid (the authors sweep 50
  values) from strong to weak regularisation with warm starts, chosen on ID
  validation accuracy (ties: lower ID validation log-loss). Every fit records
  whether lbfgs converged. The head is folded back to act on the raw features.
* FT: SGD with momentum 0.9, cosine schedule, a fresh head, random-resized-crop
  augmentation at the backbone's resolution (no padding, no black borders;
  horizontal flips where they make sense), BatchNorm in train mode.
* LP-FT: the LP head loaded, the same FT over the same lr grid (the smaller lr
  that LP-FT usually prefers is *selected*, not built in) with BatchNorm kept in
  eval mode.
* Each run evaluates ID validation accuracy and loss after every epoch, keeps the
  best checkpoint (``selection.best_epoch``) in memory and evaluates ID test and
  OOD only on it (or after every epoch with ``FTConfig.ood_eval = "every"``).

All randomness comes from explicit ``torch.Generator`` / numpy seeds derived
from the run's seed; nothing global is changed.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import random_resized_crop
from .data import ImageSet, ShiftData
from .metrics import accuracy, accuracy_and_loss, autocast, head_alignment
from .selection import Curve

__all__ = ["FTConfig", "LPConfig", "LPResult", "fit_logreg", "linear_probe", "augment_batch",
           "train_epochs", "finetune", "start_network", "set_bn_eval", "lp_c_grid", "evaluate_checkpoint"]


@dataclass
class LPConfig:
    """Logistic-regression sweep: ``n_l2`` values of scikit-learn's ``C`` (inverse L2 strength),
    log-spaced in [c_min, c_max].

    sklearn minimises C * sum_i CE_i + ||W||^2 / 2 on the standardised features, i.e.
    mean CE + l2 / 2 ||W||^2 with ``l2 = 1 / (C n_train)``; both C and l2 are recorded.
    ``l2_min`` / ``l2_max`` (older configs), when given, set the grid through that relation.
    """
    n_l2: int = 20
    c_min: float = 1e-4
    c_max: float = 1e2
    max_iter: int = 1000
    tol: float = 1e-4
    standardize: bool = True
    l2_min: float | None = None
    l2_max: float | None = None


def lp_c_grid(cfg: LPConfig, n_train: int) -> np.ndarray:
    """The C grid, strong to weak regularisation (ascending C)."""
    if cfg.n_l2 < 1:
        raise ValueError(f"LPConfig.n_l2 must be >= 1, got {cfg.n_l2}")
    if cfg.l2_min is not None or cfg.l2_max is not None:
        lo = 1.0 / ((cfg.l2_max if cfg.l2_max is not None else 1.0) * n_train)
        hi = 1.0 / ((cfg.l2_min if cfg.l2_min is not None else 1e-6) * n_train)
    else:
        lo, hi = cfg.c_min, cfg.c_max
    if not (0 < lo <= hi):
        raise ValueError(f"LP C grid must satisfy 0 < c_min <= c_max, got {lo}, {hi}")
    return np.logspace(math.log10(lo), math.log10(hi), cfg.n_l2)


# --------------------------------------------------------------------------
# LP
# --------------------------------------------------------------------------
@dataclass
class LPResult:
    weight: torch.Tensor  # (C, D), acting on the raw features
    bias: torch.Tensor  # (C,)
    l2: float  # 1 / (C n_train)
    head_norm: float  # ||W||_F on the raw features
    val_acc: float
    sweep: list[dict] = field(default_factory=list)  # C, l2, val_acc, val_loss, train_acc, head_norm, converged
    heads: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (W, b) per sweep entry
    C: float = float("nan")
    converged: bool = True
    n_iter: int = 0
    warnings: list[str] = field(default_factory=list)


def _full_head(clf, num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """sklearn coef_ / intercept_ as a (num_classes, D) softmax head (binary: +-w/2)."""
    coef, inter = np.asarray(clf.coef_, dtype=np.float64), np.asarray(clf.intercept_, dtype=np.float64)
    cls = list(clf.classes_)
    if len(cls) == 2 and coef.shape[0] == 1:
        coef = np.concatenate([-coef / 2, coef / 2])
        inter = np.concatenate([-inter / 2, inter / 2])
    W = np.zeros((num_classes, dim))
    b = np.full(num_classes, -30.0)  # a class absent from the training split is never predicted
    for j, c in enumerate(cls):
        W[int(c)] = coef[j]
        b[int(c)] = inter[j]
    return W, b


def fit_logreg(ftr: torch.Tensor, ytr: torch.Tensor, fva: torch.Tensor, yva: torch.Tensor,
               num_classes: int, cfg: LPConfig | None = None) -> LPResult:
    """Sweep C of scikit-learn's multinomial ``LogisticRegression`` (lbfgs), select on ID validation.

    Ties in validation accuracy are broken by the lower validation log-loss, then the
    stronger regularisation. Warns (``LPResult.warnings``) when the selected C sits on
    the edge of its grid or its fit did not converge.
    """
    from sklearn.linear_model import LogisticRegression

    from .selection import edge_warning

    cfg = cfg or LPConfig()
    X = ftr.detach().cpu().double().numpy()
    Xv = fva.detach().cpu().double().numpy()
    y = ytr.detach().cpu().numpy().astype(np.int64)
    yv = yva.detach().cpu().numpy().astype(np.int64)
    n, d = X.shape
    mu, sd = (float(X.mean()), float(X.std()) or 1.0) if cfg.standardize else (0.0, 1.0)
    Xs, Xvs = (X - mu) / sd, (Xv - mu) / sd
    grid = lp_c_grid(cfg, n)
    clf = LogisticRegression(C=float(grid[0]), max_iter=cfg.max_iter, tol=cfg.tol, warm_start=True)
    sweep, heads, best = [], [], None
    # small problems run far faster on one BLAS thread (measured 57x on a loaded 2-core machine)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1 if n * d <= 2_000_000 else None):
        for C in grid:
            _fit_one(clf, C, Xs, y, Xv, yv, X, mu, sd, num_classes, d, n, cfg, sweep, heads)
    for i, e in enumerate(sweep):
        key = (e["val_acc"], -e["val_loss"])
        if best is None or key > best[0]:
            best = (key, i)
    i = best[1]
    e = sweep[i]
    warn = []
    w = edge_warning(grid, e["C"], "LP C (inverse L2 strength)")
    if w:
        warn.append(w)
    if not e["converged"]:
        warn.append(f"the selected LP fit (C {e['C']:g}) did not converge in {cfg.max_iter} lbfgs "
                    "iterations; raise LPConfig.max_iter")
    W, b = heads[i]
    return LPResult(W, b, e["l2"], e["head_norm"], e["val_acc"], sweep, heads, C=e["C"],
                    converged=e["converged"], n_iter=e["n_iter"], warnings=warn)


def _fit_one(clf, C, Xs, y, Xv, yv, X, mu, sd, num_classes, d, n, cfg, sweep, heads) -> None:
    """One C of the sweep (warm-started from the previous one); appends to ``sweep`` / ``heads``."""
    from sklearn.exceptions import ConvergenceWarning
    clf.set_params(C=float(C))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(Xs, y)
    n_iter = int(np.max(clf.n_iter_))
    converged = n_iter < cfg.max_iter and not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    Ws, bs = _full_head(clf, num_classes, d)
    W = Ws / sd  # logits = Ws (x - mu) / sd + bs = W x + b
    b = bs - (mu / sd) * Ws.sum(1)
    lv = Xv @ W.T + b
    lv = lv - lv.max(1, keepdims=True)
    logp = lv - np.log(np.exp(lv).sum(1, keepdims=True))
    vacc = float((lv.argmax(1) == yv).mean())
    vloss = float(-logp[np.arange(len(yv)), yv].mean())
    tacc = float(((X @ W.T + b).argmax(1) == y).mean())
    hn = float(np.linalg.norm(W))
    sweep.append({"C": float(C), "l2": 1.0 / (float(C) * n), "val_acc": vacc, "val_loss": vloss,
                  "train_acc": tacc, "head_norm": hn, "converged": bool(converged), "n_iter": n_iter})
    heads.append((torch.from_numpy(W).float(), torch.from_numpy(b).float()))


def linear_probe(net, data: ShiftData, cfg: LPConfig | None = None, amp: bool = True,
                 batch_size: int = 1024, feats: dict | None = None) -> tuple[LPResult, dict]:
    """LP on cached eval-mode features of ``net``; returns the result and accuracies.

    ``feats``: precomputed features {"id_train", "id_val", "id_test", "ood/<domain>"} (any
    subset; the rest is computed here).
    """
    from .metrics import features

    feats = dict(feats or {})
    sets = {"id_train": data.id_train, "id_val": data.id_val, "id_test": data.id_test}
    sets.update({f"ood/{d}": s for d, s in data.ood.items()})
    for k, s in sets.items():
        if k not in feats:
            feats[k] = features(net, s, batch_size, amp)
    res = fit_logreg(feats["id_train"], data.id_train.labels, feats["id_val"], data.id_val.labels,
                     data.num_classes, cfg)

    def acc(feat, y):
        W, b = res.weight.to(feat.device), res.bias.to(feat.device)
        return float(((feat.float() @ W.T + b).argmax(1) == y.to(feat.device)).float().mean())

    accs = {"id_val": acc(feats["id_val"], data.id_val.labels),
            "id_test": acc(feats["id_test"], data.id_test.labels),
            "ood": {d: acc(feats[f"ood/{d}"], s.labels) for d, s in data.ood.items()}}
    return res, accs


# --------------------------------------------------------------------------
# FT / LP-FT
# --------------------------------------------------------------------------
@dataclass
class FTConfig:
    """Fine-tuning settings shared by FT and LP-FT (same grid, same compute).

    ``lrs``: the one log-spaced lr grid both FT and LP-FT sweep (the authors sweep the
    same grid for both). ``ft_lrs`` / ``lpft_lrs`` (older configs) override it per
    method when given; the presets leave them unset.
    """
    epochs: int = 10
    batch_size: int = 128
    lrs: Sequence[float] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    ft_lrs: Sequence[float] | None = None
    lpft_lrs: Sequence[float] | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: "rrc": random-resized crop (no borders) at the network's input size; "pad": zero-padded
    #: random crop at the data's size (the CIFAR pretraining augmentation); "none": the images as
    #: they are (the probe's view; the network resizes them to its input size)
    augment: str = "rrc"
    crop_scale: Sequence[float] = (0.6, 1.0)
    crop_ratio: Sequence[float] = (3 / 4, 4 / 3)
    pad: int | None = None  # "pad" augmentation only; default image_size // 8
    amp: bool = True  # bf16 autocast on CUDA (no-op on the CPU)
    fused: bool = False  # fused SGD kernel (CUDA)
    compile: bool = False  # torch.compile the training forward
    eval_batch_size: int = 1024
    eval_every: int = 1  # evaluate ID val every this many epochs (and at the last)
    #: where ID test, OOD and feature distortion are measured: "selected" (default: only the
    #: checkpoint finally selected for each method, plus the ``lpft-head`` runs); "best": the best
    #: checkpoint of every lr; "every": that, plus every evaluated epoch and the start (curves)
    ood_eval: str = "selected"
    distortion_examples: int = 2000  # per split / domain
    #: extra LP-FT runs (method ``lpft-head``) from this many non-selected LP heads of the sweep,
    #: at the selected LP-FT lr: distortion against the LP head norm (THEORY.md §7 subtlety)
    lpft_head_sweep: int = 0

    def grid(self, method: str) -> list[float]:
        own = self.ft_lrs if method == "ft" else self.lpft_lrs
        g = [float(x) for x in (own if own is not None else self.lrs)]
        if not g or any(not (x > 0 and math.isfinite(x)) for x in g):
            raise ValueError(f"FTConfig: the {method} lr grid must be non-empty positive numbers, got {g}")
        return g


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int, hflip: bool) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and (optionally) horizontal flips, on uint8
    (the CIFAR pretraining augmentation; FT uses ``augment.random_resized_crop``)."""
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
                 progress: Callable[[str], None] | None = None, augment: str = "pad",
                 out_size: int | None = None, crop_scale=(0.6, 1.0), crop_ratio=(3 / 4, 4 / 3),
                 fused: bool = False, compile_model: bool = False) -> dict:
    """SGD (momentum) with a per-step cosine schedule over ``epochs``; in-place on ``net``.

    ``augment``: "pad" (zero-padded random crop by ``pad`` at the data's size), "rrc"
    (random-resized crop to ``out_size``, no borders) or "none" (the images unchanged). ``on_epoch(epoch, info)`` is called
    after epochs ``eval_every, 2*eval_every, ...`` and the last, with the mean training
    loss. Returns timing (training only, evaluation excluded): ``train_seconds``,
    ``images``, ``images_per_s``, and ``diverged`` (a non-finite epoch loss stops
    training; the caller records it).
    """
    if augment not in ("pad", "rrc", "none"):
        raise ValueError(f"augment must be 'pad', 'rrc' or 'none', got {augment!r}")
    dev = train.images.device
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    n = len(train)
    steps_per_epoch = max(n // batch_size, 1)  # drop the last partial batch (stable BN)
    total = epochs * steps_per_epoch
    params = [p for p in net.parameters() if p.requires_grad]
    kw = {"fused": True} if fused and dev.type == "cuda" else {}
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kw)
    warm = int(warmup_epochs * steps_per_epoch)
    size = out_size or int(train.images.shape[-1])
    model = torch.compile(net) if compile_model else net

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
            if augment == "rrc":
                xb = random_resized_crop(train.images[idx], size, gen, crop_scale, crop_ratio, hflip)
            elif augment == "none":
                xb = train.images[idx]
            else:
                xb = augment_batch(train.images[idx], gen, pad, hflip)
            yb = train.labels[idx]
            with autocast(dev, amp):
                loss = F.cross_entropy(model(xb), yb, label_smoothing=label_smoothing)
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


def _eval_full(net, data: ShiftData, cfg: FTConfig) -> dict:
    return {"id_test": accuracy(net, data.id_test, cfg.eval_batch_size, cfg.amp),
            "ood": {d: accuracy(net, s, cfg.eval_batch_size, cfg.amp) for d, s in data.ood.items()}}


def evaluate_checkpoint(net, data: ShiftData, cfg: FTConfig) -> dict:
    """ID test and per-domain OOD accuracy of a tuned network (eval mode)."""
    return _eval_full(net, data, cfg)


def start_network(net0, data: ShiftData, seed: int, head: tuple[torch.Tensor, torch.Tensor] | None = None):
    """The network FT (``head=None``: a fresh head drawn from ``seed``) or LP-FT (``head`` = the
    LP head) starts from: a copy of ``net0`` (left unchanged) with that head, on the data's device."""
    net = copy.deepcopy(net0)
    dev = data.id_train.images.device
    if head is None:
        gen = torch.Generator(device="cpu").manual_seed(int(seed) * 7919 + 17)
        net.reset_head(data.num_classes, generator=gen)
        net.head.to(dev)
    else:
        net.set_head(head[0].to(dev), head[1].to(dev))
    return net


def finetune(net0, data: ShiftData, lr: float, cfg: FTConfig, seed: int,
             head: tuple[torch.Tensor, torch.Tensor] | None = None, bn_eval: bool = False,
             w_star: torch.Tensor | None = None, progress=None, evaluate_final: bool = True) -> dict:
    """FT (``head=None``: a fresh head drawn from ``seed``) or LP-FT (``head`` = LP head,
    ``bn_eval=True``) from the pretrained ``net0`` (left unchanged).

    Returns ``net`` (restored to its best checkpoint on ID validation), ``history`` (per
    evaluated epoch: train loss, ID val accuracy and loss; ID test and per-domain OOD
    accuracy at epoch 0 and, with ``cfg.ood_eval == "every"``, at every epoch),
    ``best_epoch``, ``final`` (ID val / test and OOD accuracy of the best checkpoint),
    ``curve`` (a ``selection.Curve``), timing, and the start-of-FT statistics when
    ``w_star`` (the LP head) is given. ``evaluate_final=False`` leaves ID test / OOD of the
    best checkpoint to the caller (``final`` then holds ID val only; ``evaluate_checkpoint``).
    """
    if cfg.ood_eval not in ("selected", "best", "every"):
        raise ValueError(f"FTConfig.ood_eval must be 'selected', 'best' or 'every', got {cfg.ood_eval!r}")
    net = start_network(net0, data, seed, head)
    start = _start_stats(net, data, w_star, cfg.batch_size, cfg.amp) if w_star is not None else {}
    history: list[dict] = []
    state = {"best": None}

    def evaluate(epoch, info):
        acc, loss = accuracy_and_loss(net, data.id_val, cfg.eval_batch_size, cfg.amp)
        row = {"epoch": epoch, "train_loss": info.get("train_loss", float("nan")), "id_val": acc,
               "id_val_loss": loss}
        if cfg.ood_eval == "every":
            row.update(_eval_full(net, data, cfg))
        history.append(row)
        if epoch >= 1 and math.isfinite(loss):
            cur = state["best"]
            if cur is None or (acc, -loss) > (cur[1], -cur[2]):
                state["best"] = (epoch, acc, loss, {k: v.detach().clone() for k, v in net.state_dict().items()})

    evaluate(0, {})
    pad = cfg.pad if cfg.pad is not None else max(data.image_size // 8, 1)
    out_size = getattr(net, "input_size", None) or data.image_size
    timing = train_epochs(net, data.id_train, cfg.epochs, lr, cfg.batch_size, seed=seed * 1_000_003 + 1,
                          momentum=cfg.momentum, weight_decay=cfg.weight_decay, pad=pad, hflip=data.hflip,
                          bn_eval=bn_eval, amp=cfg.amp, eval_every=cfg.eval_every, on_epoch=evaluate,
                          progress=progress, augment=cfg.augment, out_size=out_size,
                          crop_scale=tuple(cfg.crop_scale), crop_ratio=tuple(cfg.crop_ratio),
                          fused=cfg.fused, compile_model=cfg.compile)
    curve = Curve(float(lr), [h["epoch"] for h in history], [h["id_val"] for h in history],
                  [h["id_val_loss"] for h in history], diverged=bool(timing["diverged"]))
    if state["best"] is not None:
        ep, _, _, sd = state["best"]
        net.load_state_dict(sd)
    else:  # diverged in the first epoch: keep the last state
        ep = history[-1]["epoch"]
    net.eval()
    t_eval = time.perf_counter()
    row = next(h for h in history if h["epoch"] == ep)
    final = dict(row) if "ood" in row or not evaluate_final else dict(row, **_eval_full(net, data, cfg))
    timing["final_eval_seconds"] = time.perf_counter() - t_eval
    return {"net": net, "history": history, "timing": timing, "start": start, "best_epoch": ep,
            "final": final, "curve": curve}
