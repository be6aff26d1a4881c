"""Supervised pretraining of a ResNet on the pretraining split of a bundle.

``cifar10``: CIFAR-style ResNet-18 on the 40,000 CIFAR-10 train images fixed
by ``data.cifar_pretrain_split`` (10 classes), disjoint from every image of
the cifar-subpop shift. ``mnist``: the small ``resnet-mini`` on the 2,000
MNIST images fixed by ``data.digits_pretrain_split``. The checkpoint is
written (atomically) outside git, by default under the results directory,
and is reused when it exists.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .backbones import build_network, load_backbone_checkpoint, save_network
from .data import cifar_pretrain_split, digits_pretrain_split
from .methods import train_epochs
from .metrics import accuracy

__all__ = ["PretrainConfig", "pretrain_backbone", "PRETRAIN_SOURCES"]

PRETRAIN_SOURCES = ("cifar10", "mnist")


@dataclass
class PretrainConfig:
    source: str = "cifar10"
    arch: str = "resnet18-cifar"
    epochs: int = 15
    batch_size: int = 512
    lr: float = 0.2
    weight_decay: float = 5e-4
    seed: int = 0
    holdout: int = 1000  # images of the pretraining split kept aside to report pretraining accuracy
    max_images: int | None = None  # cap (quick runs)
    size: int | None = None  # resize (mnist: the digits shift's size, 16 = USPS's own)
    amp: bool = True
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    #: pretrain on these CIFAR-10 classes only (None: all ten); a backbone that has not seen the
    #: downstream task's other classes (issue 18: backbones of several pretraining qualities)
    classes: tuple | None = None


def pretrain_key(cfg: PretrainConfig) -> dict:
    """The fields that name a checkpoint (``classes`` only when set, so older names stay valid)."""
    d = asdict(cfg)
    if d.get("classes") is None:
        d.pop("classes", None)
    else:
        d["classes"] = [str(c) for c in d["classes"]]
    return d


def pretrain_backbone(cfg: PretrainConfig, out_path, device="cpu", data_dir=None, log=print,
                      overwrite: bool = False) -> tuple[Path, dict]:
    """Pretrain (or reuse) and save a checkpoint; returns (path, info)."""
    out_path = Path(out_path)
    if out_path.is_file() and not overwrite:
        obj = torch.load(out_path, map_location="cpu", weights_only=True)
        log(f"pretrain: reusing {out_path}")
        return out_path, dict(obj.get("meta", {}), reused=True)
    if cfg.classes is not None and cfg.source != "cifar10":
        raise ValueError(f"PretrainConfig.classes selects CIFAR-10 classes; source {cfg.source!r} has none")
    if cfg.source == "cifar10":
        data, classes = cifar_pretrain_split(data_dir, cfg.max_images, classes=cfg.classes)
        hflip = True
    elif cfg.source == "mnist":
        data, classes = digits_pretrain_split(data_dir, size=cfg.size or 28)
        if cfg.max_images is not None:  # a fixed random subset
            keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:cfg.max_images]
            data = data.subset(keep.sort().values.numpy())
        hflip = False
    else:
        raise ValueError(f"unknown pretraining source {cfg.source!r}; choose from {PRETRAIN_SOURCES}")
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(data), generator=g)
    hold = min(cfg.holdout, len(data) // 10)
    val = data.subset(perm[:hold].numpy(), "pretrain_holdout").to(device)
    train = data.subset(perm[hold:].numpy(), "pretrain_train").to(device)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
        torch.manual_seed(cfg.seed)
        net = build_network(cfg.arch, len(classes))
    net = net.to(device)
    if torch.device(device).type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    net.reset_head(generator=g)
    net.head.to(device)
    log(f"pretrain: {cfg.arch} on {cfg.source} ({len(train)} images, {cfg.epochs} epochs)")
    t0 = time.perf_counter()
    timing = train_epochs(net, train, cfg.epochs, cfg.lr, cfg.batch_size, seed=cfg.seed,
                          weight_decay=cfg.weight_decay, pad=max(train.images.shape[-1] // 8, 1),
                          hflip=hflip, amp=cfg.amp, warmup_epochs=cfg.warmup_epochs,
                          label_smoothing=cfg.label_smoothing,
                          progress=lambda m: log("pretrain: " + m))
    acc = accuracy(net, val, amp=cfg.amp)
    info = {"config": asdict(cfg), "holdout_acc": acc, "images_per_s": timing["images_per_s"],
            "train_seconds": timing["train_seconds"], "wall_seconds": time.perf_counter() - t0,
            "classes": classes}
    log(f"pretrain: hold-out accuracy {acc:.3f}, {timing['images_per_s']:.0f} img/s, "
        f"{timing['train_seconds']:.1f}s training")
    save_network(net, out_path, **info)
    return out_path, info


def load_pretrained(arch: str, path, num_classes: int, device="cpu", image_size: int = 224):
    """Build ``arch`` with a fresh head and the backbone from ``path``."""
    net = build_network(arch, num_classes, image_size=image_size)
    load_backbone_checkpoint(net, path)
    return net.to(device)
