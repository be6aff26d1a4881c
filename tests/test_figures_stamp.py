"""Every figure drawn from cached records states its mode and seed (issue 22): a figure module
that reads ``load_records`` hands what it read to ``save`` (which stamps the title)."""

import ast
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def test_every_figure_from_records_is_stamped():
    missing = []
    for path in sorted(FIGURES.glob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") in
                 ("load_records", "save", "source_label", "stamp")]
        names = {c.func.id for c in calls}
        if "load_records" not in names or names & {"source_label", "stamp"}:
            continue          # no records, or it labels its panel itself
        saves = [c for c in calls if c.func.id == "save"]
        if not saves or any(len(c.args) + len(c.keywords) < 4 for c in saves):
            missing.append(path.name)
    assert not missing, f"figures that read records but do not stamp mode and seed: {missing}"
