"""Issue 22: the README leads with the answers. Its claim table is the one generated from the
committed snapshot of a fresh `paper_checks --quick` report, right after the Quick start."""

import json
import re
from pathlib import Path

from paper_checks import claim_table
from paper_checks.runner import CLAIM_EXPERIMENTS, summary_counts

REPO = Path(__file__).resolve().parent.parent


def test_readme_claim_table_is_generated_from_the_snapshot():
    snap = json.loads(claim_table.SNAPSHOT.read_text())
    assert snap["mode"] == "quick" and snap["exit_code"] == 0
    assert summary_counts(snap["claims"]) == snap["summary"]      # the snapshot is one whole report
    assert set(CLAIM_EXPERIMENTS) <= {c["experiment"] for c in snap["claims"]}
    assert claim_table.readme_table() == claim_table.render(snap), (
        "README's claim table differs from docs/results/paper_checks_quick.json: run "
        "`python -m paper_checks --quick` then `python -m paper_checks.claim_table --write`")


def test_every_report_row_lands_in_exactly_one_table_row():
    snap = json.loads(claim_table.SNAPSHOT.read_text())
    grouped = [r["id"] + "@" + r["experiment"] for _, rows in claim_table.group_rows(snap["claims"]) for r in rows]
    assert sorted(grouped) == sorted(r["id"] + "@" + r["experiment"] for r in snap["claims"])
    # a row of a new experiment gets a table row of its own (issues 20 / 21 add theirs)
    extra = dict(snap["claims"][0], experiment="wise_ft", id="new_claim", status="pass", margin=0.5)
    assert "| wise_ft | **holds** | +0.5" in claim_table.render(dict(snap, claims=snap["claims"] + [extra]))


def test_readme_leads_with_the_table_and_stays_short():
    text = (REPO / "README.md").read_text()
    heads = re.findall(r"^## (.+)$", text, flags=re.M)
    assert heads[0].startswith("Quick start") and heads[1] == "What the checks find"
    assert len(text.split()) < 2000
    assert "## Measured speed" not in text and "docs/performance.md" in text
    assert "### Measured speed" not in text
    assert "## Measured speed" in (REPO / "docs" / "performance.md").read_text()
