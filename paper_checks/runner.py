"""Check every claim of the paper: run each experiment (cached), check it, draw its figure, report.

    python -m paper_checks --quick          # the README's main job (small sweeps)
    python -m paper_checks                  # paper-scale sweeps
    python -m paper_checks --only eps_sweep invariants

Statuses (one per claim row):
  pass             the claim holds (margin > 0 = with room; the unit is given per claim;
                   ">=+15.7 decades below tolerance": an error at float64 rounding or below)
  fail             the claim does not hold, and this was not expected: a regression or a new finding
  vacuous          the bound is <= 0 everywhere: nothing verified
  not_applicable   an assumption of the claim fails on these instances
  finding          the model contradicts the paper here, as recorded (with its reason) in the
                   experiment's FINDINGS: an expected result, like pytest's xfail
  unexpected_pass  a recorded finding no longer holds: the claim now passes
  no_results       no cached results to check (the empirical claims before a GPU run)
  error            the experiment or its check raised

Exit code: 0 when every claim matches its expectation; 1 when any does not (fail,
unexpected_pass, error; with --strict also finding); 2 for usage errors (e.g. an unknown
--only name).

Reports: <out>/report.md and <out>/report.json (an object with mode, seed, git_revision,
versions, machine, executor, timings, partial, exit_code, summary, claims). A partial run
(--only naming a strict subset of the experiments) writes <out>/report.partial.{md,json}
instead and never replaces the full report.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

from experiments._checks import CHECK_STATUSES, DECADES_BELOW, MAX_DECADES, Status, validate_row
from experiments._common import (DEFAULT_RESULTS, add_common_args, atomic_write_text, check_writable,
                                 executor_from_args, git_revision, package_versions, require_writable)

#: The experiments behind the claims, in the order of THEORY.md §3-§6.
CLAIM_EXPERIMENTS = (
    "invariants", "ood_vs_time", "eps_sweep", "bound_tightness", "thm33_repair", "feature_distortion",
    "early_stopping", "conditions", "id_comparison", "lpft_perfect_features", "few_shot",
    "regularization", "gd_vs_flow", "toy2d", "beyond_lpft",
)
#: The empirical (real-network) claims: read from cached results, never trained here.
EMPIRICAL = "empirical"
#: The two-layer model on real features beside the real network (THEORY.md §9): read from cached
#: records of ``python -m experiments.real_features`` (it needs PyTorch and trains a backbone, so
#: paper_checks never runs it). Looked up in the results cache, then in <empirical>/bridge.
REAL_FEATURES = "real_features"
#: The scoreboard of real (task, shift) pairs (issue 18): read from the committed tidy table
#: (docs/results/scoreboard.*), never trained here unless --rerun-scoreboard asks for it.
SCOREBOARD = "scoreboard"
CACHED_ONLY = (EMPIRICAL, REAL_FEATURES, SCOREBOARD)
STATUSES = tuple(s.value for s in Status)
#: Statuses that are not what the claim's expectation says: exit code 1.
MISMATCH = (Status.FAIL.value, Status.UNEXPECTED_PASS.value, Status.ERROR.value)
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
REPORT_KEYS = ("mode", "seed", "git_revision", "versions", "machine", "executor", "timings", "partial",
               "exit_code", "summary", "claims")
CLAIM_KEYS = ("id", "experiment", "status", "claim", "source", "margin", "unit", "n_cases", "figure",
              "details")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "paper_checks"
#: Where the empirical (PyTorch) results are read from: what experiments.empirical_gpu
#: writes (``--out results/empirical_gpu``). Nothing is trained by paper_checks.
DEFAULT_EMPIRICAL = REPO / "results" / "empirical_gpu"


def valid_names() -> tuple:
    """The names ``--only`` accepts: every claim experiment, ``real_features`` and ``empirical``."""
    return tuple(CLAIM_EXPERIMENTS) + (REAL_FEATURES, SCOREBOARD, EMPIRICAL)


def _check_only(only) -> list[str] | None:
    """``only`` as a list of valid names (None: everything); unknown names raise TwoLayerInputError."""
    if only is None:
        return None
    from twolayer.errors import TwoLayerInputError
    only = [only] if isinstance(only, str) else list(only)
    if not only:
        raise TwoLayerInputError("only", "is empty: it would check nothing",
                                 f"name some of {', '.join(valid_names())}, or pass None for all")
    bad = [n for n in only if n not in valid_names()]
    if bad:
        raise TwoLayerInputError("only", f"unknown experiment name(s) {bad}",
                                 f"use some of: {', '.join(valid_names())}")
    return only


def is_partial(only) -> bool:
    """True when ``only`` names a strict subset of :func:`valid_names` (its report goes beside the full one)."""
    return only is not None and set(only) != set(valid_names())


def report_paths(out: Path, partial: bool) -> tuple[Path, Path]:
    """(report.md, report.json), or (report.partial.md, report.partial.json) for a partial run."""
    stem = "report.partial" if partial else "report"
    return Path(out) / f"{stem}.md", Path(out) / f"{stem}.json"


def _error_row(name: str, exc: BaseException, what: str = "raised") -> dict:
    return dict(id="experiment_error", experiment=name, status=Status.ERROR.value,
                claim=f"experiment {name} {what}", source="", margin=None, unit="", n_cases=0, figure=None,
                details=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}".strip())


def apply_findings(name: str, results: list[dict], findings: dict, figure: str | None = None,
                   observations: dict | None = None) -> list[dict]:
    """Validate ``check``'s rows and turn them into report rows, applying the module's FINDINGS.

    A "fail" whose id is in ``findings`` becomes "finding" (with ``reason``); a "pass" whose
    id is there becomes "unexpected_pass" (with the recorded ``reason``). ``observations``
    (a module's OBSERVATIONS) are comparisons whose either outcome is a result (THEORY.md §9:
    "agreement and disagreement are both results"): a "fail" there is reported as "finding" with
    that reason, a "pass" stays "pass". Raises ValueError on a row that breaks the contract, on
    duplicate ids, and on a FINDINGS id that no row has (a stale or misspelt finding must not
    pass silently).
    """
    observations = observations or {}
    allowed = CHECK_STATUSES + ((Status.NO_RESULTS,) if name in CACHED_ONLY else ())
    rows = [validate_row(r, allowed) for r in results]
    ids = [r["id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{name}: check returned duplicate ids {dup}")
    stale = sorted(set(findings) - set(ids))
    if stale:
        raise ValueError(f"{name}: FINDINGS names check ids {stale} that the check did not return "
                         f"(it returned {ids}); fix or remove the stale entries")
    out = []
    for r in rows:
        row = {k: r.get(k) for k in CLAIM_KEYS}
        row.update(experiment=name, figure=r.get("figure") or figure)
        if r["id"] in findings:
            row["reason"] = findings[r["id"]]
            if r["status"] == Status.FAIL.value:
                row["status"] = Status.FINDING.value
            elif r["status"] == Status.PASS.value:
                row["status"] = Status.UNEXPECTED_PASS.value
        elif r["id"] in observations and r["status"] == Status.FAIL.value:
            row.update(status=Status.FINDING.value, reason=observations[r["id"]])
        out.append(row)
    return out


def _run_experiment(name, quick, seed, cache, force, figures, fig_dir, out, log) -> list[dict]:
    import pandas as pd

    mod = importlib.import_module(f"experiments.{name}")
    config = mod.Config.quick(seed) if quick else mod.Config.full(seed)
    records = mod.run(config, out=cache, force=force, progress=True)   # per-unit lines with an ETA
    rows = apply_findings(name, mod.check(pd.DataFrame.from_records(records), config),
                          getattr(mod, "FINDINGS", {}), observations=getattr(mod, "OBSERVATIONS", {}))
    if figures:  # a figure that fails is an error row of its own; it does not hide the claims' rows
        try:
            fmod = importlib.import_module(f"figures.{mod.FIGURE}")
            paths = fmod.main(cache, fig_dir)
            figure = str(Path(paths[0]).resolve().relative_to(Path(out).resolve())) if paths else None
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed
            return rows + [dict(_error_row(name, exc, f"could not draw figure {mod.FIGURE}"), id="figure_error")]
        for r in rows:
            r["figure"] = r["figure"] or figure
    return rows


def _empirical_rows(results_dir: Path, figures, fig_dir, out) -> list[dict]:
    from paper_checks.empirical import empirical_checks
    # figure: only the one drawn here. "no results yet" is paper_checks.empirical's older spelling of
    # no_results (accepted until it returns Status.NO_RESULTS; any other status is validated as usual).
    results = [dict(r, figure=None, status=Status.NO_RESULTS.value if r.get("status") == "no results yet"
                    else r.get("status")) for r in empirical_checks(results_dir)]
    figure = None
    if figures and any(r.get("status") != Status.NO_RESULTS.value for r in results):
        from figures.empirical_distortion import main as draw
        try:
            paths = draw(results_dir, fig_dir)
        except FileNotFoundError:
            paths = []
        figure = str(Path(paths[0]).resolve().relative_to(Path(out).resolve())) if paths else None
    return apply_findings(EMPIRICAL, results, {}, figure)


def _real_features_rows(cache: Path, empirical: Path, figures, fig_dir, out) -> list[dict]:
    """Check the cached records of experiments.real_features (never computed here)."""
    from experiments._common import load_records
    mod = importlib.import_module(f"experiments.{REAL_FEATURES}")
    for folder in (Path(cache), Path(empirical) / "bridge"):
        try:
            df = load_records(REAL_FEATURES, out=folder)
            break
        except FileNotFoundError:
            continue
    else:
        return [dict(id="cached_records", experiment=REAL_FEATURES, status=Status.NO_RESULTS.value,
                     claim="the two-layer model on real features beside the real network (THEORY.md §9)",
                     source="THEORY.md §9", margin=None, unit="", n_cases=0, figure=None,
                     details=f"no cached records under {cache} or {Path(empirical) / 'bridge'}; run "
                             f"`python -m experiments.real_features --quick --out {cache}` (needs the "
                             "empirical extra and ../shared/data)")]
    figure = None
    if figures:
        fmod = importlib.import_module(f"figures.{mod.FIGURE}")
        paths = fmod.main(folder, fig_dir)
        figure = str(Path(paths[0]).resolve().relative_to(Path(out).resolve())) if paths else None
    return apply_findings(REAL_FEATURES, mod.check(df, None), getattr(mod, "FINDINGS", {}), figure,
                          getattr(mod, "OBSERVATIONS", {}))


def _scoreboard_rows(results_dir, rerun: bool, quick: bool, figures, fig_dir, out, log) -> list[dict]:
    """The scoreboard's rows from its written tidy table (committed under docs/results), or from
    a fresh run when ``rerun`` (``experiments.scoreboard`` at the cpu scale, or quick with --quick)."""
    from experiments import scoreboard as mod
    if rerun:
        results_dir = Path(out) / "scoreboard"
        argv = ["--results", str(results_dir)] + (["--quick"] if quick else [])
        log(f"scoreboard: recomputing ({'quick' if quick else 'cpu'} scale) -> {results_dir}")
        if mod.main(argv) != 0:
            raise RuntimeError("experiments.scoreboard was interrupted")
    try:
        table, summary, meta = mod.load_results(results_dir)
    except FileNotFoundError as exc:
        return [dict(id="cached_records", experiment=SCOREBOARD, status=Status.NO_RESULTS.value,
                     claim="the scoreboard of real (task, shift) pairs (issue 18)", source="THEORY.md §9",
                     margin=None, unit="", n_cases=0, figure=None, details=str(exc))]
    rows = mod.check(table, summary, meta)
    figure = None
    if figures:
        from figures.scoreboard import main as draw
        paths = draw(results_dir, fig_dir)
        figure = str(Path(paths[0]).resolve().relative_to(Path(out).resolve())) if paths else None
    return apply_findings(SCOREBOARD, rows, mod.FINDINGS, figure, mod.OBSERVATIONS)


def run_checks(quick: bool = True, seed: int = 0, out: Path = DEFAULT_OUT, cache: Path | None = None,
               only=None, force: bool = False, figures: bool = True, log=print,
               empirical: Path = DEFAULT_EMPIRICAL, strict: bool = False, scoreboard: Path | None = None,
               rerun_scoreboard: bool = False) -> dict:
    """Run the checks and write the report; returns the report (a dict, :data:`REPORT_KEYS`).

    ``only``: experiment names (see :func:`valid_names`); unknown names raise
    TwoLayerInputError before anything runs. A partial run writes report.partial.{md,json}.
    Units run on the executor of an enclosing ``with executor:`` block (``--executor``; see
    experiments._executor), else in this process.
    """
    only = _check_only(only)
    out = Path(out)
    cache = Path(cache) if cache is not None else DEFAULT_RESULTS
    fig_dir = out / "figures"
    for what, folder in (("out", out), ("cache", cache), ("out (figures)", fig_dir if figures else None)):
        if folder is not None:      # before any computation: a report that cannot be written costs nothing
            check_writable(folder, what)
    t_start = time.perf_counter()
    rows, timings = [], {}
    for name in valid_names():
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            if name == EMPIRICAL:
                new = _empirical_rows(Path(empirical), figures, fig_dir, out)
            elif name == REAL_FEATURES:
                new = _real_features_rows(cache, Path(empirical), figures, fig_dir, out)
            elif name == SCOREBOARD:
                new = _scoreboard_rows(scoreboard, rerun_scoreboard, quick, figures, fig_dir, out, log)
            else:
                new = _run_experiment(name, quick, seed, cache, force, figures, fig_dir, out, log)
        except Exception as exc:  # noqa: BLE001 - reported as an error row, never swallowed
            new = [_error_row(name, exc)]
        timings[name] = round(time.perf_counter() - t0, 2)
        rows.extend(new)
        log(f"[{timings[name]:6.1f}s] {name}: " + ", ".join(r["status"] for r in new))
    from experiments._executor import current_executor
    report = dict(mode="quick" if quick else "full", seed=seed, git_revision=git_revision(),
                  versions=package_versions(), machine=machine(), executor=current_executor().name,
                  timings=dict(total_s=round(time.perf_counter() - t_start, 2), per_experiment_s=timings),
                  partial=is_partial(only), exit_code=exit_code(rows, strict), summary=summary_counts(rows),
                  claims=rows)
    write_report(report, out, cache)
    return report


def machine() -> dict:
    """Where the timings were measured."""
    return dict(platform=platform.platform(), processor=platform.machine(), cpu_count=os.cpu_count(),
                python=platform.python_version())


def exit_code(rows, strict: bool = False) -> int:
    """0 when every claim matches its expectation, 1 when any does not (with ``strict``, findings too)."""
    bad = MISMATCH + ((Status.FINDING.value,) if strict else ())
    return EXIT_MISMATCH if any(r["status"] in bad for r in rows) else EXIT_OK


def summary_counts(rows) -> dict:
    return {s: n for s in STATUSES if (n := sum(r["status"] == s for r in rows))}


def summary_text(report: dict, strict: bool = False) -> str:
    """Plain words: how many claims, what was found, and whether everything matched its expectation."""
    rows = report["claims"]
    counts = ", ".join(f"{n} {s}" for s, n in report["summary"].items())
    lines = [f"{len(rows)} checks of the paper's claims ({report['mode']} mode, seed {report['seed']}, "
             f"{report['timings']['total_s']:.0f} s): {counts}."]
    bad = [r for r in rows if r["status"] in MISMATCH + ((Status.FINDING.value,) if strict else ())]
    if bad:
        lines.append(f"{len(bad)} claim(s) do not match their expectation (exit 1):")
        lines += [f"  {r['status'].upper()} {r['experiment']}/{r['id']}: "
                  f"{_clip((r.get('reason') or r['details'] or '').splitlines()[0])}" for r in bad]
    else:
        lines.append("Every claim matches its expectation (exit 0).")
    found = [r for r in rows if r["status"] == Status.FINDING.value]
    if found:
        lines.append(f"{len(found)} finding(s): the model contradicts the paper here, as recorded"
                     + (" (--strict: counted as failures)" if strict else "") + ":")
        lines += [f"  FINDING {r['experiment']}/{r['id']}: {_clip(r['reason'])}" for r in found]
        if any(len(r["reason"]) > REASON_WIDTH for r in found):
            lines.append("  (full reasons: the Findings section of report.md, 'reason' in report.json)")
    return "\n".join(lines)


REASON_WIDTH = 240


def _clip(text: str, width: int = REASON_WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _fmt_margin(m, unit: str = "") -> str:
    """The margin to 3 digits; ">=" before one at the float64 floor of "decades below
    tolerance" (an error at or below rounding counts MAX_DECADES = 15.65 decades, no more)."""
    if m is None:
        return ""
    floor = unit == DECADES_BELOW and m >= MAX_DECADES - 1e-9
    return (">=" if floor else "") + f"{m:+.3g}"


def _short(claim: str, width: int = 64) -> str:
    """The claim for the table: a trailing "[qualifier]" moved to the front, then truncated."""
    m = re.match(r"(.*\S)\s*(\[[^\]]+\])$", claim)
    if m:
        claim = f"{m.group(2)} {m.group(1)}"
    return claim[:width] + ("..." if len(claim) > width else "")


def format_table(rows) -> str:
    """The claims table as aligned plain text."""
    head = ("#", "status", "margin", "unit", "cases", "experiment/id", "claim")
    lines = [(str(i + 1), r["status"], _fmt_margin(r["margin"], r["unit"]), _clip(r["unit"], 24), str(r["n_cases"]),
              f"{r['experiment']}/{r['id']}", _short(r["claim"])) for i, r in enumerate(rows)]
    widths = [max(len(h), *(len(l[j]) for l in lines)) if lines else len(h) for j, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'>' if j in (0, 2, 4) else '<'}{w}}}" for j, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(report: dict, out: Path, cache: Path) -> tuple[Path, Path]:
    """Write report(.partial).{md,json} with the figures' permissions; figure links only to files that exist."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for r in report["claims"]:
        if r["figure"] and not (out / r["figure"]).is_file():
            r["figure"] = None
    md_path, json_path = report_paths(out, report.get("partial", False))
    # atomic_write_text gives the permissions of a normally created file, like the figures (0644 under umask 022)
    atomic_write_text(json_path, json.dumps(report, indent=2, allow_nan=False))
    rows = report["claims"]
    md = ["# twolayer paper checks" + (" (partial run)" if report.get("partial") else ""), "",
          f"Mode: {report['mode']}; seed {report['seed']}; git {report['git_revision']}; results cache "
          f"`{cache}`; {report['timings']['total_s']:.0f} s on {report['machine']['cpu_count']} CPUs "
          f"({report['machine']['platform']}).", "",
          "## Summary", "", "```", summary_text(report), "```", "",
          "Statuses: *finding* = the model contradicts the paper here, as recorded with its reason "
          "(expected); *unexpected_pass* = a recorded finding no longer holds; *vacuous* = the bound is "
          "<= 0 and verifies nothing. A positive margin means the claim holds with room, in the unit "
          f"given. A margin shown as >={MAX_DECADES:+.3g} ({DECADES_BELOW}) is the largest one can be: "
          "the error is at or below float64 rounding of the tolerance (the row's details give the "
          "error itself).", "",
          "| # | id | claim | source | status | margin | unit | cases | figure |",
          "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        fig = f"[{Path(r['figure']).name}]({r['figure']})" if r["figure"] else ""
        md.append(f"| {i + 1} | {r['experiment']}/{r['id']} | {_md_cell(r['claim'])} | {_md_cell(r['source'])} "
                  f"| **{r['status']}** | {_fmt_margin(r['margin'], r['unit'])} | {_md_cell(r['unit'])} | {r['n_cases']} "
                  f"| {fig} |")
    found = [r for r in rows if r.get("reason")]
    if found:
        md += ["", "## Findings (recorded with their reasons)", ""]
        md += [f"- **{r['experiment']}/{r['id']}** ({r['status']}): {_md_cell(r['reason'])}" for r in found]
    md += ["", "## Details", ""]
    md += [f"{i + 1}. **{r['experiment']}/{r['id']}** ({r['status']}): {_md_cell(r['details'])}"
           for i, r in enumerate(rows)]
    md += ["", "## Timings (s)", "", "| experiment | seconds |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in report["timings"]["per_experiment_s"].items()]
    md += [f"| total | {report['timings']['total_s']} |"]
    md += ["", "## Versions", "", "```", json.dumps(report["versions"], indent=1), "```"]
    atomic_write_text(md_path, "\n".join(md) + "\n")
    return md_path, json_path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m paper_checks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Experiments (for --only): " + ", ".join(valid_names()))
    add_common_args(ap, results="cache",
                    quick_help="small sweeps (the README's main job; the measured time is in report.json "
                               "'timings')")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                    help=f"report folder: report.md, report.json, figures/ (default {DEFAULT_OUT})")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="check only these experiments (a partial run: writes report.partial.{md,json} "
                         "and leaves report.{md,json} alone); one of: " + ", ".join(valid_names()))
    ap.add_argument("--empirical", type=Path, default=None, metavar="DIR",
                    help="folder of cached empirical (GPU) results to check; must exist when given "
                         f"(default {DEFAULT_EMPIRICAL}: its claims read no_results while it is missing)")
    ap.add_argument("--scoreboard", type=Path, default=None, metavar="DIR",
                    help="folder of the scoreboard's tidy table (default docs/results, committed)")
    ap.add_argument("--rerun-scoreboard", action="store_true",
                    help="recompute the scoreboard instead of reading the committed one: with --quick its "
                         "tiny version (minutes), else the CPU protocol (hours on 2 cores, resumable)")
    ap.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    ap.add_argument("--strict", action="store_true",
                    help="treat recorded findings as failures (exit 1 when there is any)")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.only is not None:
        bad = [n for n in args.only if n not in valid_names()]
        if bad:
            ap.error(f"unknown --only name(s) {', '.join(bad)}; valid names: {', '.join(valid_names())}")
    if args.empirical is not None and not args.empirical.is_dir():
        ap.error(f"--empirical {args.empirical}: no such folder (run experiments.empirical_gpu first, or leave "
                 "the option out)")
    require_writable(ap, {"--out": args.out, "--cache": args.cache if args.cache is not None else DEFAULT_RESULTS,
                          "--out (its figures/ folder)": None if args.no_figures else args.out / "figures"})
    try:
        with executor_from_args(args, ap):
            report = run_checks(args.quick, args.seed, args.out, args.cache, args.only, args.force,
                                not args.no_figures, log=lambda s: print(s, file=sys.stderr, flush=True),
                                empirical=args.empirical or DEFAULT_EMPIRICAL, strict=args.strict,
                                scoreboard=args.scoreboard, rerun_scoreboard=args.rerun_scoreboard)
    except KeyboardInterrupt:
        print("\npaper_checks: interrupted; every finished unit of every experiment is cached (each file "
              "written whole), no report was written; rerun the same command to resume", file=sys.stderr)
        return 130
    print(format_table(report["claims"]))
    print()
    print(summary_text(report, args.strict))
    md, js = report_paths(args.out, report["partial"])
    print(f"report: {md}, {js}")
    return report["exit_code"]
