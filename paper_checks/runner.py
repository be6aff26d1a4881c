"""Run every claim's experiment (cached), check it, draw the figures, write the report.

    python -m paper_checks --quick          # the README's main job, < 5 min on 2 cores
    python -m paper_checks                  # paper-scale sweeps
    python -m paper_checks --only eps_sweep invariants

Statuses: "pass", "fail", "vacuous" (the bound is <= 0 everywhere: nothing verified),
"not applicable" (an assumption fails), "no results yet" (empirical claims without
cached results), "error" (the experiment raised). The exit code is 1 if any check
failed or errored, else 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
import traceback
from pathlib import Path

from experiments._common import DEFAULT_RESULTS, atomic_write_text, git_revision, package_versions

#: The experiments behind the claims, in the order of THEORY.md §3-§6.
CLAIM_EXPERIMENTS = (
    "invariants", "ood_vs_time", "eps_sweep", "bound_tightness", "feature_distortion",
    "early_stopping", "conditions", "id_comparison", "lpft_perfect_features", "few_shot",
    "regularization", "gd_vs_flow", "toy2d",
)
STATUSES = ("pass", "fail", "vacuous", "not applicable", "no results yet", "error")
FAILING = ("fail", "error")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "paper_checks"
#: Where the empirical (PyTorch) results are read from: what experiments.empirical_gpu
#: writes (``--out results/empirical_gpu``). Nothing is trained by paper_checks.
DEFAULT_EMPIRICAL = REPO / "results" / "empirical_gpu"


def _row(name, res, figure, seconds):
    status = res.get("status")
    if status not in STATUSES:
        raise ValueError(f"{name}: check returned unknown status {status!r}")
    margin = res.get("margin")
    return dict(claim=res["claim"], source=res["source"], status=status,
                margin=None if margin is None else float(margin), n_cases=int(res.get("n_cases", 0)),
                figure=figure, details=res.get("details", ""), experiment=name, seconds=round(seconds, 2))


def run_checks(quick: bool = True, seed: int = 0, out: Path = DEFAULT_OUT, cache: Path | None = None,
               only=None, force: bool = False, figures: bool = True, log=print,
               empirical: Path = DEFAULT_EMPIRICAL) -> list[dict]:
    """Run the checks; returns the report rows (also written to ``out``)."""
    import pandas as pd

    out = Path(out)
    cache = Path(cache) if cache is not None else DEFAULT_RESULTS
    fig_dir = out / "figures"
    rows = []
    names = [n for n in CLAIM_EXPERIMENTS if not only or n in only]
    for name in names:
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"experiments.{name}")
            config = mod.Config.quick(seed) if quick else mod.Config.full(seed)
            records = mod.run(config, out=cache, force=force, progress=False)
            results = mod.check(pd.DataFrame.from_records(records), config)
            figure = None
            if figures:
                fmod = importlib.import_module(f"figures.{mod.FIGURE}")
                paths = fmod.main(cache, fig_dir)
                figure = str(Path(paths[0]).relative_to(out)) if paths else None
            seconds = time.perf_counter() - t0
            for res in results:
                rows.append(_row(name, res, figure, seconds / max(len(results), 1)))
        except Exception as exc:  # noqa: BLE001 - reported as an error row, never swallowed
            seconds = time.perf_counter() - t0
            rows.append(dict(claim=f"experiment {name} raised", source="", status="error", margin=None,
                             n_cases=0, figure=None, experiment=name, seconds=round(seconds, 2),
                             details=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"))
        log(f"[{time.perf_counter() - t0:6.1f}s] {name}: "
            + ", ".join(r["status"] for r in rows if r["experiment"] == name))
    if not only or "empirical" in only:
        rows.extend(_empirical_rows(log, fig_dir, Path(empirical), figures, out))
    _write_report(rows, out, quick, seed, cache)
    return rows


def _empirical_rows(log, fig_dir, results_dir: Path, figures, out) -> list[dict]:
    t0 = time.perf_counter()
    try:
        from paper_checks.empirical import empirical_checks
        results = empirical_checks(results_dir)
    except Exception as exc:  # noqa: BLE001
        return [dict(claim="empirical claims", source="THEORY.md §7", status="error", margin=None,
                     n_cases=0, figure=None, experiment="empirical", seconds=0.0,
                     details=f"{type(exc).__name__}: {exc}")]
    figure = None
    if figures and any(r.get("status") not in ("no results yet",) for r in results):
        try:
            from figures.empirical_distortion import main as draw
            paths = draw(results_dir, fig_dir)
            figure = str(Path(paths[0]).relative_to(out)) if paths else None
        except FileNotFoundError:
            figure = None
    rows = []
    for res in results:
        res = dict(res)
        res.setdefault("figure", figure)
        rows.append(_row("empirical", res, res.get("figure") or figure, 0.0))
    log(f"[{time.perf_counter() - t0:6.1f}s] empirical: " + ", ".join(r["status"] for r in rows))
    return rows


def _fmt_margin(m):
    return "" if m is None else f"{m:+.3g}"


def _short(claim: str, width: int = 100) -> str:
    """The claim for the table: a trailing "[qualifier]" moved to the front, then truncated."""
    m = re.match(r"(.*\S)\s*(\[[^\]]+\])$", claim)
    if m:
        claim = f"{m.group(2)} {m.group(1)}"
    return claim[:width] + ("..." if len(claim) > width else "")


def format_table(rows) -> str:
    """The pass/fail table as aligned plain text."""
    head = ("#", "status", "margin", "cases", "experiment", "claim")
    lines = [(str(i + 1), r["status"], _fmt_margin(r["margin"]), str(r["n_cases"]), r["experiment"],
              _short(r["claim"])) for i, r in enumerate(rows)]
    widths = [max(len(h), *(len(l[j]) for l in lines)) if lines else len(h) for j, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'>' if j in (0, 2, 3) else '<'}{w}}}" for j, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    return "\n".join(out)


def _write_report(rows, out: Path, quick: bool, seed: int, cache: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(rows, indent=2))
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    md = ["# twolayer paper checks", "",
          f"Mode: {'quick' if quick else 'full'}; seed {seed}; git {git_revision()}; "
          f"results cache `{cache}`.", "",
          "Summary: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v), "",
          "A *vacuous* bound is <= 0 and verifies nothing. Margins are defined per claim (see details);"
          " positive means the claim holds with room.", "",
          "| # | claim | source | status | margin | cases | figure |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        fig = f"[{Path(r['figure']).name}]({r['figure']})" if r["figure"] else ""
        md.append(f"| {i + 1} | {r['claim']} | {r['source']} | **{r['status']}** | "
                  f"{_fmt_margin(r['margin'])} | {r['n_cases']} | {fig} |")
    md += ["", "## Details", ""]
    for i, r in enumerate(rows):
        md.append(f"{i + 1}. **{r['experiment']}** ({r['status']}, {r['seconds']}s): "
                  + r["details"].replace("\n", " "))
    md += ["", "## Versions", "", "```", json.dumps(package_versions(), indent=1), "```"]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_checks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sweeps (< 5 min on 2 CPU cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    ap.add_argument("--cache", type=Path, default=None, help=f"results cache (default {DEFAULT_RESULTS})")
    ap.add_argument("--only", nargs="*", default=None, help="only these experiments ('empirical' too)")
    ap.add_argument("--force", action="store_true", help="recompute cached results")
    ap.add_argument("--empirical", type=Path, default=DEFAULT_EMPIRICAL,
                    help=f"cached empirical results to check (default {DEFAULT_EMPIRICAL})")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run_checks(args.quick, args.seed, args.out, args.cache, args.only, args.force,
                      not args.no_figures, log=lambda s: print(s, file=sys.stderr, flush=True),
                      empirical=args.empirical)
    print(format_table(rows))
    bad = [r for r in rows if r["status"] in FAILING]
    print(f"\n{len(rows)} checks in {time.perf_counter() - t0:.0f}s: "
          + ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in STATUSES
                      if any(r["status"] == s for r in rows)))
    print(f"report: {args.out / 'report.md'}, {args.out / 'report.json'}")
    for r in bad:
        print(f"FAILED {r['experiment']}: {r['details'].splitlines()[0] if r['details'] else ''}")
    return 1 if bad else 0
