"""The prepared GPU run of issue 4: full cifar-subpop and PACS comparisons.

Pretrains the CIFAR-style ResNet-18 on the 40,000-image pretraining split of
CIFAR-10 (supervised), then runs LP / FT / LP-FT with >= 3 seeds on
cifar-subpop (that ResNet-18) and PACS (EfficientNet-Lite0, offline ImageNet
weights), prints images/s and the paper-style tables (THEORY.md §7), and
writes the results under ``--out``:

* ``<out>/<dataset>/<arch>/seed<S>.json`` run files, ``splits_seed0.npz``;
* ``<out>/tables.md`` (the printed tables), ``<out>/results.tar.gz`` (all
  run files and splits, for copying back from a device machine).

Data decoded once and kept on the GPU, bf16 autocast, channels_last,
features cached for LP. Usage (data folder resolved as in
``twolayer.empirical.data``)::

    python -m experiments.empirical_gpu --out $OUT [--datasets cifar-subpop pacs] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", nargs="+", default=["cifar-subpop", "pacs"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--checkpoint-dir", default=None, help="default: <out>/checkpoints")
    p.add_argument("--scale", choices=["full", "tiny"], default="full",
                   help="tiny: the quick CPU presets (to test this script without a GPU)")
    a = p.parse_args(argv)

    import torch

    from twolayer.empirical.results import load_records
    from twolayer.empirical.runner import preset, run_experiment
    from twolayer.empirical.table import format_distortion, format_table

    if a.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("no CUDA device; use --device cpu --scale tiny to test this script on a CPU", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables = []

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    for ds in a.datasets:
        over = {"seeds": a.seeds, "results_dir": str(out), "device": a.device, "data_dir": a.data_dir}
        if a.checkpoint_dir:
            over["checkpoint_dir"] = a.checkpoint_dir
        cfg = preset(ds, a.scale == "tiny", **over)
        t1 = time.perf_counter()
        recs = run_experiment(cfg, log=log)
        text = format_table(recs, ds) + "\n\n" + format_distortion(recs, ds)
        text += f"\n{ds}: wall {time.perf_counter() - t1:.1f}s"
        print(text, flush=True)
        tables.append(text)
    (out / "tables.md").write_text("\n\n".join(tables) + "\n")
    # one archive holding every run file and split (a device machine returns few files)
    tmp = out / ".results.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(out.glob("*/*/seed*.json")) + sorted(out.glob("*/splits_seed*.npz")):
            tar.add(f, arcname=str(f.relative_to(out)))
    os.replace(tmp, out / "results.tar.gz")
    n = len(load_records(out))
    log(f"done: {n} records in {out} (results.tar.gz, tables.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
