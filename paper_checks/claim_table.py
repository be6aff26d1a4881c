"""The README's claim table, generated from a ``paper_checks`` report (never typed by hand).

    python -m paper_checks.claim_table                      # print it from results/paper_checks/report.json
    python -m paper_checks.claim_table REPORT.json --write  # put it in README.md, snapshot the report

``--write`` replaces the table between the README's ``claim-table`` markers and stores the
report's summary as ``docs/results/paper_checks_quick.json`` (the snapshot the README was
generated from; ``tests/test_issue22_readme.py`` checks that the two agree). Only a complete
quick report is accepted for the README.

Each row of the table is one claim of the paper: a group of report rows (:data:`GROUPS`).
A report row that no group names gets a row of its own experiment, so the rows of a new
experiment (registered in ``paper_checks.runner.CLAIM_EXPERIMENTS``) appear by themselves;
give them a label by adding a group here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SNAPSHOT = REPO / "docs" / "results" / "paper_checks_quick.json"
DEFAULT_REPORT = REPO / "results" / "paper_checks" / "report.json"
BEGIN, END = "<!-- claim-table:begin (python -m paper_checks.claim_table --write) -->", "<!-- claim-table:end -->"

#: (label, [(experiment, id pattern)]) in the order of the paper; a report row joins the first group
#: that matches it (patterns are full-match regular expressions).
GROUPS = (
    ("I1 / I2: FT changes features only inside S; balancedness is conserved",
     [("invariants", ".*"), ("feature_distortion", "i1_.*"), ("gd_vs_flow", "i1_.*"), ("toy2d", "i1_.*"),
      ("regularization", "reduced_matches_full_state_i1")]),
    ("Theorem 3.3 (FT's OOD error is bounded below), published form",
     [(".*", "thm33_published_form"), ("bound_tightness", "published_.*")]),
    ("Theorem 3.3, derived form", [(".*", "thm33_derived_form"), ("bound_tightness", "derived_.*")]),
    ("Theorem 3.5: LP's OOD loss scales like eps^2, FT's does not",
     [("eps_sweep", "lp_.*"), ("few_shot", "lp_beats_ft_few_shot")]),
    ("LP's OOD loss bounded above (derived)", [("eps_sweep", "derived_lp_upper_bound"),
                                               ("bound_tightness", "lp_upper_bound")]),
    ("FT distorts ID features more than OOD ones; LP-FT far less", [("feature_distortion", ".*")]),
    ("Early stopping does not rescue FT", [("early_stopping", ".*")]),
    ("When LP beats FT OOD: good features and a large shift (the conditions)", [("conditions", ".*")]),
    ("FT beats LP in distribution", [("id_comparison", ".*")]),
    ("LP-FT with (nearly) perfect features does not distort", [("lpft_perfect_features", ".*")]),
    ("L2-regularised FT vs LP-FT (appendix)", [("regularization", ".*")]),
    ("The 2-D toy (paper Figure 2)", [("toy2d", ".*")]),
    ("Simulator checks: exact k = 1 limit; discrete GD vs the flow",
     [("bound_tightness", "k1_closed_form_agreement"), ("gd_vs_flow", ".*")]),
    ("Theorem 3.3 repaired: sqrt(k)/2 x the published bound",
     [("thm33_repair", "issue_slacks|repaired_form|reference_agreement")]),
    ("Theorem 3.3, sharp form, zero heads (conjectured)", [("thm33_repair", "conjectured_form")]),
    ("Theorem 3.3, sharp form with a head; first-order form", [("thm33_repair", ".*")]),
    ("WiSE-FT lies below the chord of its endpoints",
     [("beyond_lpft", "wise_below_chord_.*")]),
    ("WiSE-FT's best alpha beats both endpoints OOD",
     [("beyond_lpft", "wise_best_alpha_.*")]),
    ("A small backbone rate recovers LP-FT's advantage",
     [("beyond_lpft", "small_rate_.*")]),
    ("LP-FT beats every other fix at equal ID loss",
     [("beyond_lpft", "lpft_beats_.*")]),
    ("Two-rate flow vs scipy; its conserved quantity",
     [("beyond_lpft", ".*")]),
    ("The two-layer model on a real network's features", [("real_features", ".*")]),
    ("Real networks, 31 CPU pairs, and the model's predictions of them (scoreboard)", [("scoreboard", ".*")]),
    ("Real networks on the paper's protocol (GPU)", [("empirical", ".*")]),
)

#: a report status in the table's words ("undecided": nothing to decide from, an error, or
#: a decision within its error bar)
WORDS = {"pass": "holds", "fail": "fails", "finding": "finding", "vacuous": "vacuous",
         "not_applicable": "not applicable", "unexpected_pass": "holds (unexpected)", "no_results": "undecided",
         "error": "undecided (error)"}
#: which row decides a group's margin: the first status present in this order
DECIDING = ("error", "fail", "unexpected_pass", "finding", "vacuous", "pass", "not_applicable", "no_results")


def group_rows(claims: list[dict]) -> list[tuple[str, list[dict]]]:
    """[(label, rows)] in :data:`GROUPS` order, then one group per experiment of the rows left."""
    groups = [(label, [], pats) for label, pats in GROUPS]
    rest: dict[str, list[dict]] = {}
    for row in claims:
        for _, rows, pats in groups:
            if any(re.fullmatch(e, row["experiment"]) and re.fullmatch(i, row["id"]) for e, i in pats):
                rows.append(row)
                break
        else:
            rest.setdefault(row["experiment"], []).append(row)
    return [(label, rows) for label, rows, _ in groups if rows] + list(rest.items())


def _verdict(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[WORDS.get(r["status"], r["status"])] = counts.get(WORDS.get(r["status"], r["status"]), 0) + 1
    if len(counts) == 1:
        (word, n), = counts.items()
        return f"**{word}**" + (f" ({n} checks)" if n > 1 else "")
    order = [WORDS[s] for s in DECIDING if WORDS[s] in counts]
    return ", ".join(f"{'**' + w + '**' if i == 0 else w} {counts[w]}" for i, w in enumerate(order))


def _margin(rows: list[dict]) -> str:
    """The deciding row's margin: the smallest among the rows of the first status in DECIDING."""
    for status in DECIDING:
        have = [r for r in rows if r["status"] == status and r.get("margin") is not None]
        if have:
            r = min(have, key=lambda r: r["margin"])
            return f"{r['margin']:+.3g} {r['unit']}".strip()
    return ""


def _figures(rows: list[dict]) -> str:
    seen = []
    for r in rows:
        if r.get("figure") and r["figure"] not in seen:
            seen.append(r["figure"])
    return ", ".join(f"[{Path(f).stem}](results/paper_checks/{f})" for f in seen[:MAX_FIGURES])


#: figures linked per row (the first ones its checks name)
MAX_FIGURES = 1


def render(report: dict) -> str:
    """The markdown claim table of ``report`` (a report.json object, or its snapshot)."""
    lines = [f"*{report['mode']} mode, seed {report['seed']}, git {report['git_revision'][:12]}, "
             f"{report['timings']['total_s']:.0f} s; {len(report['claims'])} checks: "
             + ", ".join(f"{n} {s}" for s, n in report["summary"].items()) + "*", "",
             "| claim of the paper | in the exact model | margin (deciding check) | figure |",
             "|---|---|---|---|"]
    for label, rows in group_rows(report["claims"]):
        lines.append(f"| {label} | {_verdict(rows)} | {_margin(rows)} | {_figures(rows)} |")
    return "\n".join(lines)


SNAPSHOT_KEYS = ("mode", "seed", "git_revision", "machine", "timings", "exit_code", "summary")
SNAPSHOT_CLAIM_KEYS = ("id", "experiment", "status", "margin", "unit", "n_cases", "figure", "source")


def snapshot(report: dict) -> dict:
    """What the README's table is generated from: the report without details and reasons."""
    return {**{k: report[k] for k in SNAPSHOT_KEYS},
            "claims": [{k: c.get(k) for k in SNAPSHOT_CLAIM_KEYS} for c in report["claims"]]}


def write_readme(table: str, readme: Path = README) -> None:
    from experiments._common import atomic_write_text
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no claim-table markers ({BEGIN} ... {END}); add them where the table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(readme, f"{head}{BEGIN}\n{table}\n{END}{tail}")


def readme_table(readme: Path = README) -> str:
    """The table now between the README's markers."""
    text = readme.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_checks.claim_table", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", nargs="?", type=Path, default=DEFAULT_REPORT,
                    help=f"a report.json of python -m paper_checks (default {DEFAULT_REPORT})")
    ap.add_argument("--write", action="store_true",
                    help=f"put the table into {README.name} and the snapshot into {SNAPSHOT.relative_to(REPO)}")
    args = ap.parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
    except (OSError, ValueError) as exc:
        ap.error(f"cannot read the report {args.report} ({type(exc).__name__}: {exc}); run "
                 "`python -m paper_checks --quick` first")
    table = render(report)
    print(table)
    if args.write:
        if report.get("partial") or report.get("mode") != "quick":
            ap.error(f"{args.report} is a {'partial' if report.get('partial') else report.get('mode')} report; "
                     "the README's table comes from a complete `python -m paper_checks --quick`")
        from experiments._common import atomic_write_text
        atomic_write_text(SNAPSHOT, json.dumps(snapshot(report), indent=1, allow_nan=False) + "\n")
        write_readme(render(snapshot(report)))
        print(f"written: {README}, {SNAPSHOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
