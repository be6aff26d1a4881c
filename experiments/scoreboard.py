"""The scoreboard: the exact model on a network's features beside that network's own results.

For each real (task, shift) pair of four shift families (issue 18), all offline:

========================  ========================================================================
family                    pairs (ID -> OOD) and backbone
========================  ========================================================================
``digits``                MNIST -> USPS; resnet-mini pretrained here on 2,000 other MNIST images
``pacs``                  PACS photo -> art_painting / cartoon / sketch; EfficientNet-Lite0, ImageNet
                          weights, at 96 px on the CPU (the bundle's size; the authors' protocol and
                          ``--scale gpu`` use 224 px)
``subpop``                CIFAR-10 BREEDS-style subpopulation shift; resnet-mini pretrained here on
                          40,000 CIFAR-10 images
``corruption``            CIFAR-10 -> 13 ``imagecorruptions`` corruptions at severities 3 and 5
                          (``twolayer.empirical.corruptions``); the same backbone
========================  ========================================================================

Three phases, each cached and resumable:

1. ``network``: the real network's LP / FT / LP-FT (``twolayer.empirical.run_experiment``:
   one shared lr grid, (lr, epoch) on ID val, per-seed splits and probes, 3 seeds). One
   training run per (method, lr, seed) serves every OOD domain of a family. A seed is the
   resumable unit (its run file is written atomically).
2. ``bridge``: the pretrained backbone's features of the same data (seed 0's split), then
   ``experiments.real_features.compute`` per (pair, binary task): eps, m, rho, cos theta_max
   (R0, S_perp), the exact LP / FT / LP-FT losses and feature change; rho at several S
   tolerances (a curve). One unit per (pair, task), cached by ``run_sweep``.
3. ``score``: one row per pair (``twolayer.scoreboard.pair_rows``), evidence grade, the
   match rates of each claim against two baselines and Spearman's rho
   (``twolayer.scoreboard.score``), written to ``--results`` (``docs/results/scoreboard*``).

The cache (features, checkpoints, run files, units) lives outside the work tree:
``--cache`` or ``$TWOLAYER_SCOREBOARD_CACHE`` or ``~/.cache/twolayer/scoreboard``.

CLI::

    python -m experiments.scoreboard --quick                     # tiny data, minutes: the pipeline
    python -m experiments.scoreboard --family digits --phase network   # one family, one phase
    python -m experiments.scoreboard                             # everything (hours on 2 cores)
    python -m experiments.scoreboard --scale gpu --device cuda   # full protocol (PACS 224 px)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments._common import REPO

NAME = "scoreboard"
SOURCE = "THEORY.md §7 (protocol), §9 (the bridge); issue 18"
RESULTS_DIR = REPO / "docs" / "results"
SCALES = ("cpu", "gpu", "quick", "tiny")
PHASES = ("network", "bridge", "score")


def default_cache() -> Path:
    env = os.environ.get("TWOLAYER_SCOREBOARD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "twolayer" / "scoreboard"


@dataclass(frozen=True)
class Family:
    """One shift family: its dataset, CPU protocol and the binary tasks of its bridge."""

    name: str
    dataset: str
    #: overrides of the dataset's full (GPU) preset that make the CPU protocol
    cpu: dict
    #: binary tasks (class labelled +1, class labelled -1) on which the exact model runs
    tasks: tuple
    #: OOD domains that are references, not shifts (not pairs)
    controls: tuple = ()
    note: str = ""
    #: overrides for the quick / tiny scales (on top of the runner's own quick / tiny presets)
    quick: dict = field(default_factory=dict)


_CIFAR_PRETRAIN_CPU = {"source": "cifar10", "arch": "resnet-mini", "epochs": 6, "batch_size": 128,
                       "lr": 0.1, "warmup_epochs": 1, "holdout": 1000}
#: the CIFAR pretraining augmentation (4 px padded random crop, flips) for FT too: with 0.6-area
#: random-resized crops at 32 px, LP-FT fell from LP's 85.5% to 81% ID val within 3 epochs at lr
#: 3e-4 and FT peaked at epoch 1 (subpop, seed 0)
_CIFAR_AUG = {"augment": "pad"}
_CIFAR_HALF = ("airplane", "automobile", "bird", "cat", "deer")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("digits", "digits",
           # no crops at 16 px (a 0.7-area crop cuts strokes off): with them FT sat below LP on ID
           # (96.0 vs 96.7, seed 0, lr on the top edge 0.1) and LP-FT fell from 96.7 to 87-90
           cpu={"ft": {"epochs": 10, "batch_size": 64, "augment": "none",
                       "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                       "lpft_head_sweep": 0, "distortion_examples": 1000},
                "lp": {"n_l2": 20}},
           tasks=(("3", "8"), ("4", "9"), ("1", "7")),
           note="ID MNIST (3,000 images held out from pretraining), OOD USPS test",
           quick={"ft": {"epochs": 3, "augment": "none", "lrs": [3e-3, 3e-2, 3e-1]}}),
    Family("subpop", "cifar-subpop",
           cpu={"arch": "resnet-mini", "pretrain": dict(_CIFAR_PRETRAIN_CPU),
                "data": {"max_per_class": 400},
                # 1e-4 added: LP-FT selected the old bottom edge 3e-4 (seed 1)
                "ft": {"epochs": 8, "batch_size": 64, **_CIFAR_AUG,
                       "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
                       "lpft_head_sweep": 0, "distortion_examples": 1000},
                "lp": {"n_l2": 20}},
           tasks=(("vehicle", "mammal"), ("mammal", "bird_or_frog"), ("vehicle", "bird_or_frog")),
           note="BREEDS-style: superclasses from ID subclasses -> other subclasses",
           quick={"ft": {"epochs": 2, **_CIFAR_AUG, "lrs": [1e-3, 1e-2, 1e-1]}}),
    Family("corruption", "cifar10c",
           # pretrained on 5 of the 10 classes: the downstream task has 5 classes the backbone never saw
           cpu={"arch": "resnet-mini", "pretrain": dict(_CIFAR_PRETRAIN_CPU, classes=list(_CIFAR_HALF)),
                "data": {"max_per_class": 300, "n_ood_per_class": 100, "severities": [3, 5]},
                # 0.3 added: FT selected the old top edge 0.1 (seed 0, ID val 0.571 vs LP 0.556)
                "ft": {"epochs": 8, "batch_size": 64, **_CIFAR_AUG,
                       "lrs": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                       "lpft_head_sweep": 0, "distortion_examples": 500},
                "lp": {"n_l2": 20}},
           tasks=(("automobile", "truck"), ("cat", "dog"), ("airplane", "ship")),
           controls=("clean",),
           note="CIFAR-10 -> imagecorruptions at 32 px with ImageNet parameters (deviation), JPEG q75; "
                "backbone pretrained on airplane, automobile, bird, cat, deer only",
           quick={"data": {"severities": [5], "corruptions": ["gaussian_noise", "contrast", "pixelate"]},
                  "ft": {"epochs": 2, **_CIFAR_AUG, "lrs": [1e-3, 1e-2, 1e-1]}}),
    Family("pacs", "pacs",
           cpu={"image_size": 96, "input_size": 96, "data": {"max_per_class": 100},
                "ft": {"epochs": 5, "batch_size": 32, "lrs": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                       "lpft_head_sweep": 0, "distortion_examples": 300},
                "lp": {"n_l2": 20}},
           tasks=(("dog", "elephant"), ("guitar", "house"), ("horse", "giraffe")),
           note="96 px on the CPU (the bundle's size); the authors' protocol and --scale gpu use 224 px"),
)}


def network_config(family: Family, scale: str, cache: Path, seeds=(0, 1, 2), device: str = "cpu",
                   data_dir=None, save_models: bool = False) -> dict:
    """The ``twolayer.empirical`` config of ``family`` at ``scale`` (cpu / gpu / quick / tiny).

    ``save_models``: also save each seed's start / LP / FT / LP-FT networks under
    ``<cache>/<scale>/models`` (``twolayer.empirical.saved_models``; issue 20 §3). Neither it nor
    the folder enters the run's config hash, so cached runs stay valid."""
    from twolayer.empirical.runner import _merge, preset
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    base = {"cpu": "full", "gpu": "full", "quick": "quick", "tiny": "tiny"}[scale]
    cfg = preset(family.dataset, base)
    if scale == "cpu":
        cfg = _merge(cfg, family.cpu)
    if scale in ("quick", "tiny") and family.quick:
        cfg = _merge(cfg, family.quick)
    cfg.update({"seeds": [int(s) for s in seeds], "device": device, "data_dir": data_dir,
                "results_dir": str(cache / scale / "empirical"), "checkpoint_dir": str(cache / "checkpoints"),
                "data_cache_dir": str(cache / "data"), "scoreboard_scale": scale,
                "models_dir": str(cache / scale / "models"), "save_models": bool(save_models)})
    return cfg


def run_network(family: Family, scale: str, cache: Path, seeds=(0, 1, 2), device: str = "cpu",
                data_dir=None, log=print, save_models: bool = False) -> list[dict]:
    """Phase 1: the real network's LP / FT / LP-FT on every seed (cached per seed); with
    ``save_models`` also their networks (a cached seed without them is trained again)."""
    from twolayer.empirical.runner import run_experiment
    cfg = network_config(family, scale, cache, seeds, device, data_dir, save_models=save_models)
    t0 = time.perf_counter()
    recs = run_experiment(cfg, log=log)
    log(f"[scoreboard] network {family.name} ({scale}): {len(recs)} records in {time.perf_counter() - t0:.0f}s")
    return recs


# ----------------------------------------------------------------------------- checks
#: every scoreboard row is an observation (THEORY.md §9: agreement and disagreement are both
#: results); a failing row is reported as a finding with this reason and its numbers
_NET = ("the real networks of the CPU scoreboard do not show this claim on most evidence-grade pairs "
        "(counts per pair in the details; THEORY.md §9: the result is what it is)")
_BRIDGE = ("the exact model on the networks' features predicts this outcome no better than always guessing "
           "the paper's headline or the majority outcome (rates and 90% intervals in the details)")
_CLAIM_IDS = ("ft_beats_lp_id", "lp_beats_ft_ood", "lpft_best_ood", "ft_distorts_id_more", "lpft_distorts_less")
OBSERVATIONS: dict[str, str] = {
    **{f"network_{c}": _NET for c in _CLAIM_IDS},
    **{f"bridge_{c}": _BRIDGE for c in _CLAIM_IDS},
    "bridge_spearman_ood": ("the exact model's predicted OOD loss ratio does not rank-correlate with the networks' "
                            "OOD accuracy difference beyond its 90% bootstrap interval"),
    "scoreboard_size": ("the CPU scoreboard falls short of the issue's target sizes (the details give the "
                        "reason of every pair that is not evidence-grade)"),
}
FINDINGS: dict[str, str] = {}
MIN_PAIRS, MIN_FAMILIES, MIN_EVIDENCE = 20, 4, 12


def load_results(results_dir=None):
    """(table, summary, meta) of a written scoreboard (default ``docs/results``); torch-free."""
    import pandas as pd
    d = Path(results_dir or RESULTS_DIR)
    files = [d / "scoreboard.csv", d / "scoreboard_score.csv", d / "scoreboard.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"no scoreboard in {d} (missing {', '.join(missing)}); run "
                                "`python -m experiments.scoreboard` (hours on 2 cores) or --quick (minutes)")
    try:
        return pd.read_csv(files[0]), pd.read_csv(files[1]), json.loads(files[2].read_text())
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"scoreboard file in {d} is damaged ({type(exc).__name__}: {exc}); restore it with "
                         "`git checkout docs/results` or rebuild it with "
                         "`python -m experiments.scoreboard --phase score`") from None


def check(table, summary, meta) -> list[dict]:
    """Rows for ``paper_checks``: the scoreboard's size, each claim on the networks, and each
    claim's prediction by the exact model against the better of the two baselines."""
    from experiments._checks import Status, passed, row
    from twolayer.scoreboard import CLAIMS, network_outcomes, score
    src = "THEORY.md §9; issue 18"
    stamp = (f"{meta.get('scale')} scale, seeds {meta.get('seeds')}, computed at git "
             f"{str(meta.get('git_revision', '?'))[:12]} on {meta.get('created', '?')}")
    ev = table[table["evidence_grade"].astype(bool)]
    n_fam = int(table["family"].nunique())
    # the rule lets FT sit below LP on ID inside a wide 3-seed interval: say what a strict rule keeps
    strict = table.assign(evidence_grade=table["evidence_grade"].astype(bool)
                          & (table["net_ft_id_acc"] >= table["net_lp_id_acc"]))
    st = score(strict)
    st = st[st["scope"] == "evidence"].set_index(["claim", "predictor"])
    strict_txt = ""
    if ("lp_beats_ft_ood", "bridge") in st.index:
        b, h = st.loc[("lp_beats_ft_ood", "bridge")], st.loc[("lp_beats_ft_ood", "headline")]
        sp_ = st.loc[("spearman_ood", "bridge")] if ("spearman_ood", "bridge") in st.index else None
        strict_txt = (f" Strict rule (FT mean >= LP mean on ID): {int(strict['evidence_grade'].sum())} pairs; LP vs FT "
                      f"OOD bridge {int(b['n_match'])}/{int(b['n_pairs'])}, headline {int(h['n_match'])}/"
                      f"{int(h['n_pairs'])}" + (f", Spearman {sp_['rate']:+.2f} [{sp_['lo90']:+.2f}, "
                                                f"{sp_['hi90']:+.2f}]" if sp_ is not None else "") + ".")
    rows = [row("scoreboard_size", f"scoreboard: >= {MIN_PAIRS} pairs, >= {MIN_FAMILIES} families, "
                f">= {MIN_EVIDENCE} evidence-grade", src,
                passed(len(table) >= MIN_PAIRS and n_fam >= MIN_FAMILIES and len(ev) >= MIN_EVIDENCE),
                float(len(ev) - MIN_EVIDENCE), "evidence-grade pairs above the target", int(len(table)),
                f"{len(table)} pairs, {n_fam} families, {len(ev)} evidence-grade; per family: "
                + ", ".join(f"{f} {int(g['evidence_grade'].astype(bool).sum())}/{len(g)}"
                            for f, g in table.groupby("family")) + f"; {stamp}.{strict_txt} Not evidence-grade: "
                + ("; ".join(f"{r['pair']}: {r['grade_reason']}" for _, r in table[~table['evidence_grade']
                                                                             .astype(bool)].iterrows())[:1500]
                   or "none"))]
    obs = {c.obs: [network_outcomes(r)[c.obs] for r in ev.to_dict("records")] for c in CLAIMS}
    sub = summary[summary["scope"] == "evidence"]
    for c in CLAIMS:
        vals = [v for v in obs[c.obs] if v is not None]
        n, k = len(vals), int(sum(vals))
        if n == 0:
            rows.append(row(f"network_{c.id}", f"real networks: {c.text}", src, Status.NOT_APPLICABLE, None,
                            "", 0, f"no evidence-grade pair; {stamp}"))
        else:
            rows.append(row(f"network_{c.id}", f"real networks: {c.text} (on most evidence-grade pairs)", src,
                            passed(2 * k > n), (k - n / 2) / n, "fraction of pairs above one half", n,
                            f"holds on {k} of {n} evidence-grade pairs; {stamp}"))
        r = {p: sub[(sub["claim"] == c.id) & (sub["predictor"] == p)] for p in ("bridge", "headline", "majority")}
        if any(v.empty for v in r.values()) or int(r["bridge"]["n_pairs"].iloc[0]) == 0:
            rows.append(row(f"bridge_{c.id}", f"exact model predicts '{c.text}' at least as well as the "
                            "baselines", src, Status.NOT_APPLICABLE, None, "", 0, f"no evidence-grade pair; {stamp}"))
            continue
        rate = {p: float(v["rate"].iloc[0]) for p, v in r.items()}
        b = r["bridge"].iloc[0]
        best = max(rate["headline"], rate["majority"])
        cond = sub[(sub["claim"] == c.id) & (sub["predictor"] == "conditions")]
        cond_txt = (f"; conditions diagram {int(cond['n_match'].iloc[0])}/{int(cond['n_pairs'].iloc[0])}"
                    if len(cond) else "")
        rows.append(row(f"bridge_{c.id}", f"exact model predicts '{c.text}' at least as well as the baselines",
                        src, passed(rate["bridge"] >= best), rate["bridge"] - best,
                        "match-rate points above the better baseline", int(b["n_pairs"]),
                        f"bridge {int(b['n_match'])}/{int(b['n_pairs'])} = {rate['bridge']:.2f} "
                        f"[{b['lo90']:.2f}, {b['hi90']:.2f}]; headline {rate['headline']:.2f}, majority "
                        f"{rate['majority']:.2f}{cond_txt}; {stamp}"))
    sp = sub[sub["claim"] == "spearman_ood"]
    if len(sp) and np.isfinite(sp["rate"].iloc[0]):
        s_ = sp.iloc[0]
        rows.append(row("bridge_spearman_ood", "exact model's log10(L_FT/L_LP) rank-correlates with the network's "
                        "OOD acc(LP) - acc(FT) (90% interval above 0)", src, passed(s_["lo90"] > 0),
                        float(s_["lo90"]), "lower end of the 90% bootstrap interval", int(s_["n_pairs"]),
                        f"Spearman rho {s_['rate']:+.2f} [{s_['lo90']:+.2f}, {s_['hi90']:+.2f}] over "
                        f"{int(s_['n_pairs'])} evidence-grade pairs; {stamp}"))
    else:
        rows.append(row("bridge_spearman_ood", "exact model's log10(L_FT/L_LP) rank-correlates with the network's "
                        "OOD acc(LP) - acc(FT)", src, Status.NOT_APPLICABLE, None, "", 0,
                        f"fewer than 4 evidence-grade pairs or no spread; {stamp}"))
    return rows


def pairs_markdown(table) -> str:
    """One markdown line per pair: the bridge's geometry and prediction beside the network's means."""
    def pct(r, k):
        v, h = r.get(f"net_{k}", np.nan), r.get(f"net_{k}_hw90", np.nan)
        if not np.isfinite(v):
            return "-"
        return f"{100 * v:.1f}" + (f" ± {100 * h:.1f}" if np.isfinite(h) else "")

    lines = ["| pair | grade | eps | rho | m | cos(R0,S_perp) | log10 L_FT/L_LP | LP ID | FT ID | LP OOD | FT OOD "
             "| LP-FT OOD | FT dist ID / OOD (msq) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        grade = "evidence" if r.get("evidence_grade") else "no"
        dist = (f"{r.get('net_ft_dist_msq_id', np.nan):.3g} / {r.get('net_ft_dist_msq_ood', np.nan):.3g}"
                if np.isfinite(r.get("net_ft_dist_msq_id", np.nan)) else "-")
        lines.append(f"| {r['pair']} | {grade} | {r['eps']:.3f} | {r['rho']:.3f} | {r['m']:.0f} | "
                     f"{r['cos_R0_Sperp']:.3f} | {r['lin_log10_ood_ft_over_lp']:+.3f} | {pct(r, 'lp_id_acc')} | "
                     f"{pct(r, 'ft_id_acc')} | {pct(r, 'lp_ood_acc')} | {pct(r, 'ft_ood_acc')} | "
                     f"{pct(r, 'lpft_ood_acc')} | {dist} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m experiments.scoreboard",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), default=None,
                    help="shift family (repeat; default: all four)")
    ap.add_argument("--phase", action="append", choices=PHASES, default=None,
                    help="phase to run (repeat; default: all three, in order)")
    ap.add_argument("--scale", choices=SCALES, default=None,
                    help="cpu (default: the committed CPU protocol), gpu (full presets, PACS at 224 px), "
                         "quick (tiny data: minutes, numbers mean nothing), tiny (seconds, tests)")
    ap.add_argument("--quick", action="store_true", help="same as --scale quick")
    ap.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0, 1, 2], metavar="S",
                    help="the network's seeds (each its own split, probe and runs; default 0 1 2)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (feature extraction and training)")
    ap.add_argument("--data-dir", default=None, help="folder of the data bundles (default ../shared/data)")
    ap.add_argument("--cache", "--out", dest="cache", type=Path, default=None,
                    help="results cache of checkpoints, run files, features and units (default "
                         "$TWOLAYER_SCOREBOARD_CACHE or ~/.cache/twolayer/scoreboard)")
    ap.add_argument("--results", type=Path, default=None,
                    help="where the tidy scoreboard goes (default: docs/results, the committed table, only "
                         "for the complete CPU scoreboard, all four families; <cache>/<scale>/results for a "
                         "subset of families or another scale)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--force", action="store_true", help="recompute the cached bridge units")
    ap.add_argument("--save-models", action="store_true",
                    help="network phase: also save each seed's start, LP, FT and LP-FT networks in the cache "
                         "(<cache>/<scale>/models, for experiments.wise_real); a cached seed without them is "
                         "trained again, its run file kept")
    return ap


def _with_cached_features(families, scale, cache, device, data_dir, ap):
    """The families whose bridge features are cached (``--phase score`` alone never trains or extracts)."""
    from experiments._scoreboard_bridge import feature_path
    have, missing = [], []
    for fam in families:
        cfg = network_config(fam, scale, cache, device=device, data_dir=data_dir)
        (have if feature_path(fam, scale, cache, cfg).is_file() else missing).append(fam)
    if missing:
        print(f"scoreboard: no bridge features cached for {', '.join(f.name for f in missing)} under "
              f"{cache / scale}; left out of the score (run `python -m experiments.scoreboard --scale {scale} "
              f"--family NAME` without --phase to compute them)", file=sys.stderr)
    if not have:
        ap.error(f"--phase score: nothing is cached under {cache / scale} for these families; run the "
                 "network and bridge phases first (no --phase runs all three)")
    return have


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    scale = args.scale or ("quick" if args.quick else "cpu")
    cache = (args.cache or default_cache()).expanduser()
    families = [FAMILIES[f] for f in (args.family or list(FAMILIES))]
    phases = args.phase or list(PHASES)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # only the complete CPU scoreboard replaces the committed table; anything else goes to the cache
    complete = scale == "cpu" and len(families) == len(FAMILIES)
    out = args.results or (RESULTS_DIR if complete else cache / scale / "results")
    from experiments._common import require_torch, require_writable
    require_writable(ap, {"--cache": cache, "--results": out if "score" in phases else None})
    if phases != ["score"]:             # scoring alone reads tables; training and features need PyTorch
        require_torch("python -m experiments.scoreboard")
    if args.threads:
        import torch
        torch.set_num_threads(int(args.threads))
    t0 = time.perf_counter()
    try:
        if "network" in phases:
            for fam in families:
                run_network(fam, scale, cache, args.seeds, args.device, args.data_dir, log=log,
                            save_models=args.save_models)
        if "bridge" in phases:
            from experiments._scoreboard_bridge import run_bridge
            for fam in families:
                run_bridge(fam, scale, cache, device=args.device, data_dir=args.data_dir, force=args.force,
                           log=log)
        if "score" in phases:
            from experiments._scoreboard_bridge import write_scoreboard
            if "bridge" not in phases:   # scoring alone reads what is cached; it never trains
                families = _with_cached_features(families, scale, cache, args.device, args.data_dir, ap)
            write_scoreboard(scale, cache, out, families=[f.name for f in families], seeds=args.seeds,
                             log=log, wall_seconds=time.perf_counter() - t0)
    except KeyboardInterrupt:
        print("scoreboard: interrupted; every finished seed and unit is cached, rerun the same command "
              "to resume", file=sys.stderr)
        return 130
    log(f"[scoreboard] done in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
