"""One seed of the LP / FT / LP-FT comparison, turned into tidy records (THEORY.md §7).

For each seed: LP (L2 swept, chosen on ID val); FT for every lr in
``ft_lrs`` from a fresh head; LP-FT for every lr in ``lpft_lrs`` from the LP
head with BatchNorm in eval mode. Every run keeps per-epoch ID val / test and
per-domain OOD accuracy; at the end it measures feature distortion (ID val vs
each OOD domain, eval mode), the weight distance from the pretrained network
and, at the start, the head alignment (empirical phi). The learning rate of
each method is selected on final-epoch ID validation accuracy among the runs
that did not diverge (a diverged run is kept, flagged by ``diverged`` = 1). Every LP and
LP-FT row carries the LP head's L2 strength and norm.
"""

from __future__ import annotations

import time

import numpy as np

from .data import ShiftData
from .methods import FTConfig, LPConfig, finetune, linear_probe
from .metrics import feature_distortion, weight_distance
from .results import SCHEMA_VERSION

__all__ = ["compare_methods"]


def _row(base: dict, epoch, split: str, domain: str, metric: str, value: float) -> dict:
    r = dict(base)
    r.update({"epoch": epoch, "split": split, "domain": domain, "metric": metric, "value": float(value)})
    return r


def _acc_rows(base, epoch, accs: dict) -> list[dict]:
    rows = [_row(base, epoch, "id_val", "id", "acc", accs["id_val"]),
            _row(base, epoch, "id_test", "id", "acc", accs["id_test"])]
    rows += [_row(base, epoch, "ood", d, "acc", a) for d, a in accs["ood"].items()]
    return rows


def compare_methods(net0, data: ShiftData, seed: int, ft: FTConfig, lp: LPConfig | None = None,
                    methods=("lp", "ft", "lpft"), log=print, lp_cache: dict | None = None
                    ) -> tuple[list[dict], dict]:
    """Run LP, FT and LP-FT for one seed; ``data`` and ``net0`` already on the device.

    LP is deterministic given the pretrained network and the split, so it is
    computed once and kept in ``lp_cache`` (a dict the caller passes for every
    seed of the same network and data). Returns (records, info) where info
    holds the LP sweep and throughput.
    """
    t_start = time.perf_counter()
    net0.eval()
    if lp_cache is not None and "lp" in lp_cache:
        lp_res, lp_acc = lp_cache["lp"]
    else:
        lp_res, lp_acc = linear_probe(net0, data, lp, amp=ft.amp, batch_size=ft.eval_batch_size)
        if lp_cache is not None:
            lp_cache["lp"] = (lp_res, lp_acc)
    log(f"[{data.name} seed {seed}] LP: l2 {lp_res.l2:.3g} |W| {lp_res.head_norm:.3f} "
        f"ID val {lp_acc['id_val']:.3f} test {lp_acc['id_test']:.3f} OOD "
        + " ".join(f"{d} {a:.3f}" for d, a in lp_acc["ood"].items()))
    common = {"schema": SCHEMA_VERSION, "dataset": data.name, "arch": net0.arch, "seed": int(seed)}
    lp_cols = {"lp_l2": float(lp_res.l2), "lp_head_norm": float(lp_res.head_norm)}
    records: list[dict] = []
    if "lp" in methods:
        base = dict(common, method="lp", lr=None, selected=True, **lp_cols)
        records += _acc_rows(base, None, lp_acc)
    dist_sets = {"id": data.id_val}
    dist_sets.update(data.ood)
    tot = {"images": 0, "train_seconds": 0.0}

    def one_run(method, lr, head):
        t0 = time.perf_counter()
        out = finetune(net0, data, float(lr), ft, seed, head=head, bn_eval=(method != "ft"),
                       w_star=lp_res.weight)
        net = out["net"]
        dist = {}
        for d, s in dist_sets.items():
            s = s.sample(ft.distortion_examples, seed=0)
            dist[d] = feature_distortion(net0, net, s, ft.eval_batch_size)
        wd = weight_distance(net0, net)
        fin = out["history"][-1]
        hn = f" |W_lp| {float(head[0].norm()):.3g}" if head is not None else ""
        log(f"[{data.name} seed {seed}] {method.upper():4s} lr {lr:g}{hn}: ID val {fin['id_val']:.3f} "
            f"test {fin['id_test']:.3f} OOD " + " ".join(f"{d} {a:.3f}" for d, a in fin["ood"].items())
            + f" | dist ID {dist['id']['msq']:.3g} OOD "
            + " ".join(f"{d} {dist[d]['msq']:.3g}" for d in data.ood)
            + f" | {out['timing']['images_per_s']:.0f} img/s, {time.perf_counter() - t0:.1f}s"
            + (" DIVERGED" if out["timing"]["diverged"] else ""))
        tot["images"] += out["timing"]["images"]
        tot["train_seconds"] += out["timing"]["train_seconds"]
        del out["net"]
        return float(lr), out, dist, wd

    def emit(base, out, dist, wd):
        rows = []
        for h in out["history"]:
            rows += _acc_rows(base, h["epoch"], h)
            if h["epoch"] > 0:
                rows.append(_row(base, h["epoch"], "id_train", "id", "train_loss", h["train_loss"]))
        rows += _acc_rows(base, None, out["history"][-1])
        for d, m in dist.items():
            split = "id_val" if d == "id" else "ood"
            rows += [_row(base, None, split, d, f"distortion_{k}", v) for k, v in m.items()]
        rows += [_row(base, None, "run", "all", k, v) for k, v in wd.items()]
        rows += [_row(base, 0, "run", "all", k, v) for k, v in out["start"].items()]
        rows += [_row(base, None, "run", "all", k, float(out["timing"][k]))
                 for k in ("images_per_s", "train_seconds", "diverged")]
        return rows

    lpft_lr = None
    for method in ("ft", "lpft"):
        if method not in methods:
            continue
        lrs = ft.ft_lrs if method == "ft" else ft.lpft_lrs
        head = (lp_res.weight, lp_res.bias) if method == "lpft" else None
        runs = [one_run(method, lr, head) for lr in lrs]
        ok = [i for i in range(len(runs)) if not runs[i][1]["timing"]["diverged"]]
        if not ok:
            log(f"[{data.name} seed {seed}] WARNING: every {method} learning rate diverged; "
                "the selected run is a diverged one (see the 'diverged' rows)")
            ok = list(range(len(runs)))
        best = max(ok, key=lambda i: (runs[i][1]["history"][-1]["id_val"], -i))
        if method == "lpft":
            lpft_lr = runs[best][0]
        for i, (lr, out, dist, wd) in enumerate(runs):
            base = dict(common, method=method, lr=lr, selected=(i == best),
                        **(lp_cols if method == "lpft" else {"lp_l2": None, "lp_head_norm": None}))
            records += emit(base, out, dist, wd)
    if ft.lpft_head_sweep > 0 and lpft_lr is not None:
        # LP heads of the sweep other than the selected one, spread over the L2 grid
        others = [i for i, e in enumerate(lp_res.sweep) if e["l2"] != lp_res.l2]
        k = min(ft.lpft_head_sweep, len(others))
        pick = sorted({others[int(round(j))] for j in
                       (np.linspace(0, len(others) - 1, k) if k > 1 else [len(others) // 2])})
        for i in pick:
            e = lp_res.sweep[i]
            lr, out, dist, wd = one_run("lpft-head", lpft_lr, lp_res.heads[i])
            base = dict(common, method="lpft-head", lr=lr, selected=False, lp_l2=float(e["l2"]),
                        lp_head_norm=float(e["head_norm"]))
            records += emit(base, out, dist, wd)
    n_img, t_train = tot["images"], tot["train_seconds"]
    info = {"lp_sweep": lp_res.sweep, "images": n_img, "train_seconds": t_train,
            "wall_seconds": time.perf_counter() - t_start,
            "lp": {"l2": lp_res.l2, "head_norm": lp_res.head_norm, "val_acc": lp_res.val_acc}}
    return records, info
