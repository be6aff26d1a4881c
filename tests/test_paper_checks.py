"""paper_checks: report schema, statuses, exit code, and the registry of claims."""

import importlib
import json

import pytest

import paper_checks.runner as runner

REQUIRED = {"claim", "source", "status", "margin", "n_cases", "figure"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("pc")
    rows = runner.run_checks(quick=True, out=out, cache=out / "cache", only=["invariants"],
                             log=lambda s: None)
    return out, rows


def test_report_schema(report):
    out, rows = report
    data = json.loads((out / "report.json").read_text())
    assert isinstance(data, list) and data == rows and len(data) == 2
    for row in data:
        assert REQUIRED <= set(row)
        assert row["status"] in runner.STATUSES
        assert isinstance(row["claim"], str) and row["claim"]
        assert isinstance(row["n_cases"], int) and row["n_cases"] > 0
        assert row["margin"] is None or isinstance(row["margin"], float)
        assert (out / row["figure"]).exists()
    md = (out / "report.md").read_text()
    assert "| # | claim | source | status | margin | cases | figure |" in md
    assert "I1" in md and "I2" in md


def test_every_claim_has_an_experiment_with_the_contract():
    for name in runner.CLAIM_EXPERIMENTS:
        mod = importlib.import_module(f"experiments.{name}")
        for attr in ("NAME", "SOURCE", "FIGURE", "Config", "units", "compute", "run", "check", "main"):
            assert hasattr(mod, attr), f"experiments.{name} lacks {attr}"
        assert mod.NAME == name
        importlib.import_module(f"figures.{mod.FIGURE}")
        assert mod.Config.quick(0) != mod.Config.full(0)


def test_failing_and_erroring_checks_give_nonzero_exit(tmp_path, monkeypatch, capsys):
    inv = importlib.import_module("experiments.invariants")
    monkeypatch.setattr(inv, "check", lambda records, config: [dict(
        claim="doctored", source="test", status="fail", margin=-1.0, n_cases=1, details="forced")])
    code = runner.main(["--quick", "--only", "invariants", "--out", str(tmp_path),
                        "--cache", str(tmp_path / "cache"), "--no-figures"])
    assert code == 1
    assert "FAILED invariants" in capsys.readouterr().out

    def boom(records, config):
        raise RuntimeError("broken check")
    monkeypatch.setattr(inv, "check", boom)
    rows = runner.run_checks(quick=True, out=tmp_path, cache=tmp_path / "cache", only=["invariants"],
                             figures=False, log=lambda s: None)
    assert rows[0]["status"] == "error" and "broken check" in rows[0]["details"]


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="unknown status"):
        runner._row("x", dict(claim="c", source="s", status="verified", margin=1.0), None, 0.0)


def test_table_formatting():
    rows = [dict(claim="a claim", source="s", status="vacuous", margin=-0.5, n_cases=3, figure=None,
                 experiment="e", details="", seconds=0.0)]
    table = runner.format_table(rows)
    assert "vacuous" in table and "-0.5" in table
