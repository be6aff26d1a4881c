"""One seed of the LP / FT / LP-FT comparison, turned into tidy records (THEORY.md §7).

For each seed (its own stratified split, ``data.resplit``): LP (scikit-learn
logistic regression, C swept, chosen on ID val) fitted on this seed's split; FT
from a fresh head and LP-FT from this seed's LP head (BatchNorm in eval mode),
both over the same lr grid (``FTConfig.grid``). Every run records ID val accuracy
and loss after every epoch; (lr, epoch) of each method is chosen on ID validation
(``selection.select_run``: best epoch of each lr, then the best lr; diverged runs
are kept, flagged by ``diverged`` = 1, and not selected). The chosen checkpoint (with
``FTConfig.ood_eval`` "best"/"every": every lr's best checkpoint) is evaluated on ID
test and every OOD domain and measured: feature distortion (ID val
vs each OOD domain, eval mode), weight distance from the pretrained network and, at
the start, the head alignment (empirical phi). Every LP and LP-FT row carries the LP
head's L2 strength (``lp_l2`` = 1 / (C n), and ``lp_c`` = C) and norm (THEORY.md §7
subtlety). Warnings (a selected lr / C on the edge of its grid, a run that has not
plateaued, an LP fit that did not converge, FT below LP on ID) are returned in
``info["warnings"]`` and stored in the run file.
"""

from __future__ import annotations

import time

import numpy as np

from .data import ShiftData
from .methods import FTConfig, LPConfig, evaluate_checkpoint, finetune, linear_probe, start_network
from .metrics import distortion_from_features, features, weight_distance
from .results import SCHEMA_VERSION
from .saved_models import cpu_state
from .selection import rule_of_thumb_warning, select_run

__all__ = ["compare_methods"]


def _row(base: dict, epoch, split: str, domain: str, metric: str, value: float) -> dict:
    r = dict(base)
    r.update({"epoch": epoch, "split": split, "domain": domain, "metric": metric, "value": float(value)})
    return r


def _acc_rows(base, epoch, accs: dict) -> list[dict]:
    rows = []
    if "id_val" in accs:
        rows.append(_row(base, epoch, "id_val", "id", "acc", accs["id_val"]))
    if "id_val_loss" in accs:
        rows.append(_row(base, epoch, "id_val", "id", "loss", accs["id_val_loss"]))
    if "id_test" in accs:
        rows.append(_row(base, epoch, "id_test", "id", "acc", accs["id_test"]))
    rows += [_row(base, epoch, "ood", d, "acc", a) for d, a in accs.get("ood", {}).items()]
    return rows


def compare_methods(net0, data: ShiftData, seed: int, ft: FTConfig, lp: LPConfig | None = None,
                    methods=("lp", "ft", "lpft"), log=print, lp_cache: dict | None = None,
                    feats: dict | None = None, keep_models: bool = False) -> tuple[list[dict], dict]:
    """Run LP, FT and LP-FT for one seed; ``data`` (this seed's split) and ``net0`` on the device.

    ``feats``: precomputed eval-mode features of ``net0`` for this split (keys ``id_train``,
    ``id_val``, ``id_test``, ``ood/<domain>``), e.g. the pool's features indexed by
    ``data.pool_pos``; missing ones are computed. ``lp_cache`` is accepted for backward
    compatibility and ignored: LP is fitted for every seed on its own split.
    Returns (records, info); info holds the LP sweep, throughput and ``warnings``.
    ``keep_models``: also return, in ``info["models"]``, CPU state_dicts of the networks FT and
    LP-FT start from (``start_ft``, ``lp``) and of their selected checkpoints (``ft``, ``lpft``),
    for ``saved_models.save_models`` (issue 20 §3; the records are the same either way).
    """
    t_start = time.perf_counter()
    net0.eval()
    tag = f"[{data.name} seed {seed}]"
    warnings: list[str] = []

    def warn(msg):
        warnings.append(f"{tag} {msg}")
        log(f"{tag} WARNING: {msg}")

    lp_res, lp_acc = linear_probe(net0, data, lp, amp=ft.amp, batch_size=ft.eval_batch_size, feats=feats)
    models: dict = {}
    if keep_models:
        models = {"start_ft": cpu_state(start_network(net0, data, seed)),
                  "lp": cpu_state(start_network(net0, data, seed, (lp_res.weight, lp_res.bias)))}
    for w in lp_res.warnings:
        warn("LP: " + w)
    log(f"{tag} LP: C {lp_res.C:.3g} (l2 {lp_res.l2:.3g}, converged {lp_res.converged}) |W| "
        f"{lp_res.head_norm:.3f} ID val {lp_acc['id_val']:.3f} test {lp_acc['id_test']:.3f} OOD "
        + " ".join(f"{d} {a:.3f}" for d, a in lp_acc["ood"].items()))
    common = {"schema": SCHEMA_VERSION, "dataset": data.name, "arch": net0.arch, "seed": int(seed)}
    lp_cols = {"lp_l2": float(lp_res.l2), "lp_head_norm": float(lp_res.head_norm), "lp_c": float(lp_res.C)}
    records: list[dict] = []
    if "lp" in methods:
        base = dict(common, method="lp", lr=None, selected=True, **lp_cols)
        records += _acc_rows(base, None, lp_acc)
        records += [_row(base, None, "run", "all", "lp_converged", float(lp_res.converged)),
                    _row(base, None, "run", "all", "lp_n_iter", float(lp_res.n_iter))]
    dist_sets = {"id": data.id_val}
    dist_sets.update(data.ood)
    dist_sets = {d: s.sample(ft.distortion_examples, seed=0) for d, s in dist_sets.items()}
    f0 = {d: features(net0, s, ft.eval_batch_size, amp=False) for d, s in dist_sets.items()}
    tot = {"images": 0, "train_seconds": 0.0, "eval_seconds": 0.0}

    def measure(method, lr, head, out, t0):
        """ID test / OOD accuracy (unless done), distortion and weight distance of a run's checkpoint."""
        net = out["net"]
        t1 = time.perf_counter()
        if "ood" not in out["final"]:
            out["final"].update(evaluate_checkpoint(net, data, ft))
        dist = {d: distortion_from_features(f0[d], features(net, s, ft.eval_batch_size, amp=False))
                for d, s in dist_sets.items()}
        wd = weight_distance(net0, net)
        fin = out["final"]
        hn = f" |W_lp| {float(head[0].norm()):.3g}" if head is not None else ""
        log(f"{tag} {method.upper():4s} lr {lr:g}{hn}: best epoch {out['best_epoch']} ID val {fin['id_val']:.3f} "
            f"test {fin['id_test']:.3f} OOD " + " ".join(f"{d} {a:.3f}" for d, a in fin["ood"].items())
            + f" | dist ID {dist['id']['msq']:.3g} OOD "
            + " ".join(f"{d} {dist[d]['msq']:.3g}" for d in data.ood)
            + f" | {out['timing']['images_per_s']:.0f} img/s, {time.perf_counter() - t0:.1f}s"
            + (" DIVERGED" if out["timing"]["diverged"] else ""))
        tot["eval_seconds"] += time.perf_counter() - t1
        return dist, wd

    def one_run(method, lr, head, full: bool):
        """Train one run; ``full``: measure its checkpoint now, else keep the network for later."""
        t0 = time.perf_counter()
        out = finetune(net0, data, float(lr), ft, seed, head=head, bn_eval=(method != "ft"),
                       w_star=lp_res.weight, evaluate_final=full)
        tot["images"] += out["timing"]["images"]
        tot["train_seconds"] += out["timing"]["train_seconds"]
        tot["eval_seconds"] += (time.perf_counter() - t0) - out["timing"]["train_seconds"]
        dist, wd = measure(method, lr, head, out, t0) if full else (None, None)
        if full:
            if keep_models and method in ("ft", "lpft"):
                out["state"] = cpu_state(out["net"])
            del out["net"]
        else:
            log(f"{tag} {method.upper():4s} lr {lr:g}: best epoch {out['best_epoch']} ID val "
                f"{out['final']['id_val']:.3f} | {out['timing']['images_per_s']:.0f} img/s, "
                f"{time.perf_counter() - t0:.1f}s" + (" DIVERGED" if out["timing"]["diverged"] else ""))
        return float(lr), out, dist, wd

    def emit(base, out, dist, wd):
        rows = []
        for h in out["history"]:
            rows += _acc_rows(base, h["epoch"], h)
            if h["epoch"] > 0:
                rows.append(_row(base, h["epoch"], "id_train", "id", "train_loss", h["train_loss"]))
        rows += _acc_rows(base, None, out["final"])
        for d, m in (dist or {}).items():
            split = "id_val" if d == "id" else "ood"
            rows += [_row(base, None, split, d, f"distortion_{k}", v) for k, v in m.items()]
        rows += [_row(base, None, "run", "all", k, v) for k, v in (wd or {}).items()]
        rows += [_row(base, 0, "run", "all", k, v) for k, v in out["start"].items()]
        rows += [_row(base, None, "run", "all", k, float(out["timing"][k]))
                 for k in ("images_per_s", "train_seconds", "diverged")]
        rows.append(_row(base, None, "run", "all", "best_epoch", float(out["best_epoch"])))
        return rows

    selected = {}
    for method in ("ft", "lpft"):
        if method not in methods:
            continue
        grid = ft.grid(method)
        head = (lp_res.weight, lp_res.bias) if method == "lpft" else None
        full = ft.ood_eval != "selected"
        runs = [one_run(method, lr, head, full) for lr in grid]
        sel = select_run([r[1]["curve"] for r in runs], what=f"{method.upper()} lr", grid=grid)
        if not full:  # measure only the selected checkpoint; drop the other networks
            lr, out, _, _ = runs[sel.index]
            dist, wd = measure(method, lr, head, out, time.perf_counter())
            runs[sel.index] = (lr, out, dist, wd)
            if keep_models:
                out["state"] = cpu_state(out["net"])
            for _, o, _, _ in runs:
                o.pop("net", None)
        if keep_models:
            models[method] = runs[sel.index][1]["state"]
            for _, o, _, _ in runs:
                o.pop("state", None)
        for w in sel.warnings:
            warn(f"{method.upper()}: {w}")
        selected[method] = (sel, runs[sel.index][1]["final"])
        log(f"{tag} {method.upper()} selected lr {sel.lr:g}, epoch {sel.epoch} (ID val {sel.id_val:.3f})")
        for i, (lr, out, dist, wd) in enumerate(runs):
            cols = lp_cols if method == "lpft" else {"lp_l2": None, "lp_head_norm": None}
            base = dict(common, method=method, lr=lr, selected=(i == sel.index), **cols)
            records += emit(base, out, dist, wd)
    if "lp" in methods and "ft" in selected:
        w = rule_of_thumb_warning(lp_acc["id_test"], selected["ft"][1]["id_test"])
        if w:
            warn(w)
    if ft.lpft_head_sweep > 0 and "lpft" in selected:
        lpft_lr = selected["lpft"][0].lr
        # LP heads of the sweep other than the selected one, spread over the C grid
        others = [i for i, e in enumerate(lp_res.sweep) if e["C"] != lp_res.C]
        k = min(ft.lpft_head_sweep, len(others))
        pick = sorted({others[int(round(j))] for j in
                       (np.linspace(0, len(others) - 1, k) if k > 1 else [len(others) // 2])}) if k else []
        for i in pick:
            e = lp_res.sweep[i]
            lr, out, dist, wd = one_run("lpft-head", lpft_lr, lp_res.heads[i], True)
            base = dict(common, method="lpft-head", lr=lr, selected=False, lp_l2=float(e["l2"]),
                        lp_head_norm=float(e["head_norm"]), lp_c=float(e["C"]))
            records += emit(base, out, dist, wd)
    n_img, t_train = tot["images"], tot["train_seconds"]
    info = {"lp_sweep": lp_res.sweep, "images": n_img, "train_seconds": t_train,
            "eval_seconds": tot["eval_seconds"], "wall_seconds": time.perf_counter() - t_start,
            "lp": {"C": lp_res.C, "l2": lp_res.l2, "head_norm": lp_res.head_norm, "val_acc": lp_res.val_acc,
                   "converged": lp_res.converged, "n_iter": lp_res.n_iter},
            "selected": {m: {"lr": s.lr, "epoch": s.epoch, "id_val": s.id_val} for m, (s, _) in selected.items()},
            "warnings": warnings}
    if keep_models:
        info["models"] = models
    return records, info
