"""Opt-in saved weights of a run (issue 20 §3): what WiSE-FT needs, per seed.

With ``save_models`` in a run config (``twolayer.empirical.runner``), each seed writes the
``state_dict`` of four networks, in the cache and never in git:

============  ==============================================================================
``start_ft``  the network FT starts from: the pretrained backbone with FT's fresh head (drawn
              from the seed, ``methods.start_network``)
``lp``        the network LP-FT starts from: the pretrained backbone with this seed's LP head
``ft``        the selected FT checkpoint ((lr, epoch) chosen on ID validation)
``lpft``      the selected LP-FT checkpoint
============  ==============================================================================

They go to ``<models_dir>/<dataset>/<arch>/<config_hash>/seed<S>/`` (the run's config hash,
``twolayer.provenance.config_hash`` over the same scientific config as the run file's), each
file written atomically; ``meta.json`` is written last and marks the folder complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..provenance import atomic_write_json, git_revision
from .errors import CheckpointError

__all__ = ["MODEL_NAMES", "models_path", "cpu_state", "save_models", "has_models", "load_models"]

MODEL_NAMES = ("start_ft", "lp", "ft", "lpft")


def models_path(models_dir, dataset: str, arch: str, config_hash: str, seed: int) -> Path:
    """The folder of one seed's saved networks."""
    return Path(models_dir) / dataset / arch / str(config_hash) / f"seed{int(seed)}"


def cpu_state(net: torch.nn.Module) -> dict:
    """A detached CPU copy of ``net.state_dict()`` (safe to keep after ``net`` changes)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_models(folder, states: dict, meta: dict) -> Path:
    """Write ``states`` (name -> state_dict) as ``<name>.pt`` and then ``meta.json`` to ``folder``."""
    folder = Path(folder)
    unknown = set(states) - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"unknown saved-model names {sorted(unknown)}; known: {MODEL_NAMES}")
    for name, sd in states.items():
        _atomic_torch_save(sd, folder / f"{name}.pt")
    atomic_write_json(folder / "meta.json", {**meta, "models": sorted(states), "git_revision": git_revision()})
    return folder


def has_models(folder, names=MODEL_NAMES) -> bool:
    """True when ``folder`` is complete: its ``meta.json`` and every named file exist."""
    folder = Path(folder)
    return (folder / "meta.json").is_file() and all((folder / f"{n}.pt").is_file() for n in names)


def load_models(folder, names=MODEL_NAMES) -> tuple[dict, dict]:
    """(name -> state_dict on the CPU, meta) of a saved seed; ``CheckpointError`` when incomplete."""
    import json
    folder = Path(folder)
    if not has_models(folder, names):
        raise CheckpointError(f"no complete saved models in {folder} (need meta.json and "
                              f"{', '.join(n + '.pt' for n in names)}); run the network phase with "
                              "saving on (e.g. `python -m experiments.scoreboard --phase network --save-models`)")
    states = {n: torch.load(folder / f"{n}.pt", map_location="cpu", weights_only=True) for n in names}
    return states, json.loads((folder / "meta.json").read_text())
