"""paper_checks: statuses and findings, exit codes, report schema and files, the claim registry.

Most tests run the real runner on fake, instant experiments (modules put into
``sys.modules`` and ``CLAIM_EXPERIMENTS`` monkeypatched), so they take milliseconds.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import types
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import paper_checks.runner as runner
from experiments._checks import ID_PATTERN, ROW_KEYS, Status, row, validate_row
from twolayer.errors import TwoLayerInputError

REPORT_KEYS = {"mode", "seed", "git_revision", "versions", "timings", "claims"}
CLAIM_KEYS = {"claim", "source", "status", "margin", "unit", "n_cases", "figure", "id", "experiment", "details"}


# ----------------------------------------------------------------------------- fake experiments
@dataclass(frozen=True)
class _Config:
    seed: int = 0

    @classmethod
    def quick(cls, seed=0):
        return cls(seed)

    @classmethod
    def full(cls, seed=0):
        return cls(seed)


def _fake_experiment(name, rows, findings=None, figure=True, raises=None, figure_raises=None):
    """A module with the experiment contract whose check returns ``rows`` (a list of row dicts)."""
    mod = types.ModuleType(f"experiments.{name}")
    mod.NAME, mod.FIGURE, mod.Config = name, f"fake_{name}", _Config
    mod.run = lambda config, out=None, force=False, progress=None: [{"x": 1.0}]

    def check(records, config):
        if raises:
            raise raises
        return [dict(r) for r in rows]
    mod.check = check
    if findings is not None:
        mod.FINDINGS = findings
    fig = types.ModuleType(f"figures.fake_{name}")

    def draw(results_dir, out_dir):
        if figure_raises:
            raise figure_raises
        if not figure:
            return []
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{name}.png")
        with open(path, "wb") as fh:  # created like matplotlib's savefig: open() under the umask
            fh.write(b"png")
        return [path]
    fig.main = draw
    return mod, fig


def _r(id, status="pass", margin=1.0):
    return dict(id=id, claim=f"claim {id}", source="test", status=status, margin=margin, unit="decades",
                n_cases=3, details=f"numbers of {id}")


@pytest.fixture
def fake(monkeypatch):
    """Install fake experiments: ``fake(name=rows, ...)``; empirical reports no results (with a figure path)."""
    def install(experiments: dict, findings: dict | None = None, **kw):
        names = []
        for name, rows in experiments.items():
            mod, fig = _fake_experiment(name, rows, (findings or {}).get(name), **kw.get(name, {}))
            monkeypatch.setitem(sys.modules, f"experiments.{name}", mod)
            monkeypatch.setitem(sys.modules, f"figures.fake_{name}", fig)
            names.append(name)
        monkeypatch.setattr(runner, "CLAIM_EXPERIMENTS", tuple(names))
        return names
    import experiments.scoreboard as sbm
    monkeypatch.setattr(sbm, "RESULTS_DIR", Path("/nonexistent/twolayer-test/scoreboard"))  # no committed table
    import paper_checks.empirical as emp
    monkeypatch.setattr(emp, "empirical_checks", lambda d: [dict(
        id="lpft_dist", claim="LP-FT changes features far less than FT", source="THEORY.md §7",
        status="no_results", margin=None, unit="decades", n_cases=0,
        figure="figures/empirical_distortion.png", details="no empirical run files")])
    return install


def _main(tmp_path, *args):
    return runner.main(["--quick", "--out", str(tmp_path / "rep"), "--cache", str(tmp_path / "cache"), *args])


# ----------------------------------------------------------------------------- exit codes and findings
def test_exit_0_when_all_claims_match_including_a_recorded_finding(tmp_path, fake, capsys):
    fake({"alpha": [_r("a1"), _r("a2", "vacuous", -0.5)], "beta": [_r("b1", "fail", -0.3)]},
         findings={"beta": {"b1": "the model says otherwise: 0.3 decades"}})
    assert _main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "finding" in out and "the model says otherwise: 0.3 decades" in out
    assert "Every claim matches its expectation (exit 0)" in out
    claims = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"]
    b1 = next(c for c in claims if c["id"] == "b1")
    assert b1["status"] == "finding" and b1["reason"] == "the model says otherwise: 0.3 decades"
    assert "reason" not in next(c for c in claims if c["id"] == "a1")


def test_experiment_observations_are_applied_by_the_runner(tmp_path, fake, monkeypatch):
    """An experiment's OBSERVATIONS (e.g. bound_tightness's map of where each form holds): a fail
    is reported as a finding with its reason and exits 0."""
    fake({"gamma": [_r("g1", "fail", -0.1), _r("g2")]})
    monkeypatch.setattr(sys.modules["experiments.gamma"], "OBSERVATIONS", {"g1": "either outcome is a result"},
                        raising=False)
    assert _main(tmp_path) == 0
    claims = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"]
    g1 = next(c for c in claims if c["id"] == "g1")
    assert g1["status"] == "finding" and g1["reason"] == "either outcome is a result"


def test_strict_treats_findings_as_failures(tmp_path, fake):
    fake({"beta": [_r("b1", "fail", -0.3)]}, findings={"beta": {"b1": "known"}})
    assert _main(tmp_path, "--strict") == 1
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["exit_code"] == 1


def test_unrecorded_fail_gives_exit_1(tmp_path, fake, capsys):
    fake({"alpha": [_r("a1"), _r("a2", "fail", -1.0)]}, findings={"alpha": {}})
    assert _main(tmp_path) == 1
    out = capsys.readouterr().out
    assert "FAIL alpha/a2" in out and "do not match their expectation (exit 1)" in out


def test_finding_that_now_passes_is_an_unexpected_pass_with_exit_1(tmp_path, fake, capsys):
    fake({"beta": [_r("b1", "pass", 0.2)]}, findings={"beta": {"b1": "LP still wins"}})
    assert _main(tmp_path) == 1
    assert "UNEXPECTED_PASS beta/b1" in capsys.readouterr().out
    c = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"][0]
    assert c["status"] == "unexpected_pass" and c["reason"] == "LP still wins"


def test_raising_experiment_is_an_error_row_with_exit_1(tmp_path, fake):
    fake({"alpha": [_r("a1")], "beta": []}, beta=dict(raises=RuntimeError("broken check")))
    assert _main(tmp_path, "--no-figures") == 1
    claims = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"]
    err = next(c for c in claims if c["experiment"] == "beta")
    assert err["status"] == "error" and "broken check" in err["details"]
    assert next(c for c in claims if c["experiment"] == "alpha")["status"] == "pass"


def test_empirical_without_results_is_no_results_not_error(tmp_path, fake, monkeypatch):
    import paper_checks.empirical as emp
    fake({"alpha": [_r("a1")]})
    monkeypatch.setattr(emp, "empirical_checks", lambda d: [dict(
        id="ft_id", claim="FT beats LP on ID accuracy", source="THEORY.md §7", status="no results yet",
        margin=None, unit="points", n_cases=0, details="no runs")])
    assert _main(tmp_path) == 0
    c = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"][-1]
    assert (c["experiment"], c["status"]) == ("empirical", "no_results")


def test_failing_figure_is_an_error_row_that_keeps_the_claims(tmp_path, fake):
    fake({"alpha": [_r("a1"), _r("a2")]}, alpha=dict(figure_raises=FileNotFoundError("no records")))
    assert _main(tmp_path) == 1
    claims = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"]
    assert [(c["id"], c["status"]) for c in claims if c["experiment"] == "alpha"] == [
        ("a1", "pass"), ("a2", "pass"), ("figure_error", "error")]


@pytest.mark.parametrize("rows, findings, message", [
    ([_r("a1"), _r("a1")], {}, "duplicate ids"),
    ([_r("a1")], {"a9": "stale"}, "FINDINGS names check ids"),
    ([{k: v for k, v in _r("a1").items() if k != "unit"}], {}, "lacks"),
    ([{k: v for k, v in _r("a1").items() if k != "id"}], {}, "lacks"),
    ([_r("a1", "not applicable")], {}, "unknown status"),
    ([_r("a1", "finding")], {}, "unknown status"),  # only paper_checks assigns report-level statuses
])
def test_contract_violations_are_errors_not_silent(tmp_path, fake, rows, findings, message):
    fake({"alpha": rows}, findings={"alpha": findings})
    assert _main(tmp_path, "--no-figures") == 1
    c = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"][0]
    assert c["status"] == "error" and message in c["details"]


# ----------------------------------------------------------------------------- usage errors, --help
def test_unknown_only_name_is_a_usage_error_listing_valid_names(tmp_path, fake, capsys):
    fake({"alpha": [_r("a1")]})
    with pytest.raises(SystemExit) as exc:
        _main(tmp_path, "--only", "bogus")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "alpha" in err and "empirical" in err
    assert not (tmp_path / "rep").exists()  # nothing written, nothing overwritten
    with pytest.raises(TwoLayerInputError, match="alpha"):
        runner.run_checks(out=tmp_path / "rep", only=["bogus"], log=lambda s: None)


def test_help_lists_the_experiments_and_statuses(capsys):
    with pytest.raises(SystemExit) as exc:
        runner.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in runner.valid_names():
        assert name in out
    for status in ("finding", "unexpected_pass", "--strict", "report.partial"):
        assert status in out


def test_shared_options_and_their_usage_errors(tmp_path, fake, capsys):
    fake({"alpha": [_r("a1")]})
    for bad in (["--seed", "-1"], ["--workers", "2"], ["--executor", "bogus"],
                ["--empirical", str(tmp_path / "missing")]):
        with pytest.raises(SystemExit) as exc:
            _main(tmp_path, *bad)
        assert exc.value.code == 2, bad
    capsys.readouterr()
    assert _main(tmp_path, "--executor", "local", "--no-figures") == 0
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["executor"] == "local"


# ----------------------------------------------------------------------------- report files
def test_partial_run_never_replaces_the_full_report(tmp_path, fake):
    fake({"alpha": [_r("a1")], "beta": [_r("b1")]})
    assert _main(tmp_path) == 0
    rep = tmp_path / "rep"
    full_json, full_md = (rep / "report.json").read_bytes(), (rep / "report.md").read_bytes()
    assert _main(tmp_path, "--only", "beta", "--no-figures") == 0
    assert (rep / "report.json").read_bytes() == full_json and (rep / "report.md").read_bytes() == full_md
    part = json.loads((rep / "report.partial.json").read_text())
    assert part["partial"] is True and [c["id"] for c in part["claims"]] == ["b1"]
    assert "partial run" in (rep / "report.partial.md").read_text()
    assert json.loads(full_json)["partial"] is False


def test_report_json_schema(tmp_path, fake):
    fake({"alpha": [_r("a1"), _r("a2", "not_applicable", float("nan"))], "beta": [_r("b1", "fail", -2.0)]},
         findings={"beta": {"b1": "why, with numbers"}})
    _main(tmp_path)
    text = (tmp_path / "rep" / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert isinstance(data, dict) and REPORT_KEYS <= set(data)
    assert data["mode"] == "quick" and data["seed"] == 0 and isinstance(data["versions"], dict)
    assert isinstance(data["git_revision"], str) and data["git_revision"]
    assert set(data["timings"]["per_experiment_s"]) == {"alpha", "beta", "real_features", "scoreboard",
                                                         "empirical"}
    assert data["timings"]["total_s"] >= 0 and data["machine"]["cpu_count"] >= 1
    assert data["summary"] == {"pass": 1, "not_applicable": 1, "finding": 1, "no_results": 3}
    for c in data["claims"]:
        assert CLAIM_KEYS <= set(c), c
        assert c["status"] in runner.STATUSES and ID_PATTERN.match(c["id"])
        assert c["margin"] is None or isinstance(c["margin"], float)
        assert isinstance(c["n_cases"], int) and isinstance(c["unit"], str)
        assert ("reason" in c) == (c["status"] == "finding")
    assert next(c for c in data["claims"] if c["id"] == "a2")["margin"] is None  # NaN -> null
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| # | id | claim | source | status | margin | unit | cases | figure |" in md
    assert "## Findings" in md and "why, with numbers" in md and "## Timings" in md


def test_reports_have_the_figures_permissions(tmp_path, fake):
    fake({"alpha": [_r("a1")]})
    old = os.umask(0o022)
    try:
        _main(tmp_path)
        _main(tmp_path, "--only", "alpha")
    finally:
        os.umask(old)
    rep = tmp_path / "rep"
    fig_mode = (rep / "figures" / "alpha.png").stat().st_mode & 0o777
    assert fig_mode == 0o644
    for name in ("report.json", "report.md", "report.partial.json", "report.partial.md"):
        assert (rep / name).stat().st_mode & 0o777 == fig_mode, name


def test_report_links_only_figures_that_exist(tmp_path, fake):
    fake({"alpha": [_r("a1")], "beta": [_r("b1")]}, beta=dict(figure=False))
    _main(tmp_path)
    rep = tmp_path / "rep"
    data = json.loads((rep / "report.json").read_text())
    figs = {c["id"]: c["figure"] for c in data["claims"]}
    assert figs == {"a1": "figures/alpha.png", "b1": None, "cached_records": None, "lpft_dist": None}
    md = (rep / "report.md").read_text()
    assert "empirical_distortion.png" not in md
    for link in __import__("re").findall(r"\]\(([^)]+)\)", md):
        assert (rep / link).is_file(), link


# ----------------------------------------------------------------------------- helpers and table
def test_row_helper_validates_and_normalises():
    r = row("x_1", "c", "s", Status.NOT_APPLICABLE, float("nan"), "decades", np.int64(2), "d")
    assert r["status"] == "not_applicable" and type(r["status"]) is str and r["margin"] is None
    assert set(r) == set(ROW_KEYS) and type(r["n_cases"]) is int
    with pytest.raises(ValueError, match="not a slug"):
        row("Bad Id", "c", "s", "pass", 1.0, "u", 1, "d")
    assert row("holds_far_from_S", "c", "s", "pass", 1.0, "u", 1, "d")["id"] == "holds_far_from_S"
    with pytest.raises(ValueError, match="unknown status"):
        validate_row(dict(r, status="verified"))
    with pytest.raises(ValueError, match="not finite"):  # JSON cannot hold it; the report must not crash
        validate_row(dict(r, margin=-np.inf))
    assert str(Status.UNEXPECTED_PASS) == "unexpected_pass" and Status("finding") is Status.FINDING


def test_table_and_summary_say_what_was_found():
    rows = [dict(id="a", experiment="e", status="finding", claim="a claim", source="s", margin=-0.5,
                 unit="decades", n_cases=3, figure=None, details="d", reason="LP still wins by 0.5")]
    table = runner.format_table(rows)
    assert "finding" in table and "-0.5" in table and "decades" in table and "e/a" in table
    text = runner.summary_text(dict(claims=rows, summary=runner.summary_counts(rows), mode="quick", seed=0,
                                    timings=dict(total_s=1.0)))
    assert "1 finding" in text and "LP still wins by 0.5" in text and "exit 0" in text
    assert runner.exit_code(rows) == 0 and runner.exit_code(rows, strict=True) == 1


# ----------------------------------------------------------------------------- the real experiments
def test_every_claim_has_an_experiment_with_the_contract():
    for name in runner.CLAIM_EXPERIMENTS:
        mod = importlib.import_module(f"experiments.{name}")
        for attr in ("NAME", "SOURCE", "FIGURE", "Config", "units", "compute", "run", "check", "main"):
            assert hasattr(mod, attr), f"experiments.{name} lacks {attr}"
        assert mod.NAME == name
        importlib.import_module(f"figures.{mod.FIGURE}")
        assert mod.Config.quick(0) != mod.Config.full(0)
        for fid, reason in getattr(mod, "FINDINGS", {}).items():
            assert ID_PATTERN.match(fid) and isinstance(reason, str) and len(reason) > 40, (name, fid)


#: Per-seed offsets of the synthetic conditions records (16 seeds: 0, 0.01, ..., 0.15).
SPREAD = tuple(0.01 * i for i in range(16))


def _conditions_records(poor_corner_gaussian=0.3, poor_corner_zero=-0.2, small_shift_gaussian=-2.0,
                        spread=SPREAD):
    """Synthetic conditions records: 2 eps x 2 rho x 2 heads x 16 seeds, log10(L_FT/L_LP) per
    cell = the corner's value + the seed's offset."""
    recs = []
    for head, poor in (("zero", poor_corner_zero), ("gaussian", poor_corner_gaussian)):
        small = small_shift_gaussian if head == "gaussian" else -2.0
        for e in (1e-3, 1.4):
            for rho in (1e-8, 0.99):
                val = {(1e-3, 0.99): 5.0, (1e-3, 1e-8): small, (1.4, 1e-8): -7.0, (1.4, 0.99): poor}[(e, rho)]
                for s, off in enumerate(spread):
                    recs.append(dict(head_init=head, eps_nominal=e, rho=rho, seed=s, log10_ratio_inf=val + off,
                                     log10_ratio_best=val + off, ft_inf_ood=10 ** val, ft_best_ood=10 ** val,
                                     lp_ood=1.0))
    return pd.DataFrame.from_records(recs)


def test_conditions_reports_each_corner_and_head_and_records_the_findings():
    cond = importlib.import_module("experiments.conditions")
    cfg = cond.Config.quick(0)
    from experiments._checks import sign_test_losses
    assert cfg.n_seeds == 16 and sign_test_losses(16) == 2          # 14 of 16: p = 0.0021 < 0.01
    rows = cond.check(_conditions_records(), cfg)
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    for r in rows:
        validate_row(r)
    by = {r["id"]: r for r in rows}
    fid = "ft_wins_poor_features_large_shift_head_gaussian"
    zid = "ft_wins_poor_features_large_shift_head_zero"
    # The margin is the 3rd smallest signed value of 16: -(0.3 + 0.13) for the Gaussian corner.
    assert by[fid]["status"] == "fail" and by[fid]["margin"] == pytest.approx(-0.43)
    assert "+0.375" in by[fid]["details"]  # the live median, not the recorded one
    assert by[zid]["status"] == "pass" and by[zid]["margin"] == pytest.approx(0.07)
    assert sum(r["status"] == "fail" for r in rows) == 1  # one failing corner hides nothing
    assert set(cond.FINDINGS) == {fid, zid}
    out = {r["id"]: r for r in runner.apply_findings("conditions", rows, cond.FINDINGS)}
    assert out[fid]["status"] == "finding" and out[fid]["reason"] == cond.FINDINGS[fid]
    assert out[zid]["status"] == "unexpected_pass"      # FT winning on 16 of 16 would end that finding
    # A near tie: the median favours FT (log-ratio -0.01) but FT loses on 7 of 16 seeds: fail.
    tie = {r["id"]: r for r in cond.check(_conditions_records(poor_corner_zero=-0.085), cfg)}
    assert tie[zid]["status"] == "fail" and tie[zid]["margin"] < 0
    assert "better on 9 of 16" in tie[zid]["details"]
    # Two seeds going the other way do not overturn a clear win (14 of 16, the sign test passes).
    two = {r["id"]: r for r in cond.check(_conditions_records(small_shift_gaussian=-0.135), cfg)}
    assert two["ft_wins_small_shift_good_features_head_gaussian"]["status"] == "pass"
    assert "better on 14 of 16" in two["ft_wins_small_shift_good_features_head_gaussian"]["details"]
    # If FT ever wins the Gaussian corner, its recorded finding becomes an unexpected pass.
    flipped = cond.check(_conditions_records(poor_corner_gaussian=-0.4), cfg)
    out = {r["id"]: r for r in runner.apply_findings("conditions", flipped, cond.FINDINGS)}
    assert out[fid]["status"] == "unexpected_pass"


@pytest.fixture(scope="module")
def invariants_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("pc")
    report = runner.run_checks(quick=True, out=out, cache=out / "cache", only=["invariants"], log=lambda s: None)
    return out, report


def test_real_experiment_rows_follow_the_contract(invariants_report):
    out, report = invariants_report
    data = json.loads((out / "report.partial.json").read_text())
    assert data == json.loads(json.dumps(report)) and len(data["claims"]) == 2
    assert [c["id"] for c in data["claims"]] == ["i1_sperp_frozen", "i2_balancedness"]
    for c in data["claims"]:
        assert CLAIM_KEYS <= set(c) and c["status"] == "pass" and c["unit"] == "decades below tolerance"
        assert c["n_cases"] > 0 and math.isfinite(c["margin"]) and (out / c["figure"]).is_file()
    assert not (out / "report.json").exists()


def test_observations_report_either_outcome_as_a_result():
    """OBSERVATIONS (THEORY.md §9 comparisons): a fail is a finding with its reason, a pass stays a pass."""
    rows = runner.apply_findings("real_features", [_r("agree", "fail", 0.5), _r("other", "pass")], {},
                                 observations={"agree": "disagreement is a result", "other": "either way"})
    by_id = {r["id"]: r for r in rows}
    assert by_id["agree"]["status"] == "finding" and by_id["agree"]["reason"] == "disagreement is a result"
    assert by_id["other"]["status"] == "pass" and "reason" not in by_id["other"]
    assert runner.exit_code(rows) == 0
    # without the observation the same failing comparison is a mismatch
    plain = runner.apply_findings("real_features", [_r("agree", "fail", 0.5)], {})
    assert plain[0]["status"] == "fail" and runner.exit_code(plain) == 1


def test_real_features_rows_from_cached_records(tmp_path):
    """paper_checks reads real_features' cached records (never computes them) and applies OBSERVATIONS."""
    pytest.importorskip("pandas")
    rf = pytest.importorskip("experiments.real_features")
    none = runner._real_features_rows(tmp_path / "cache", tmp_path / "emp", False, tmp_path / "f", tmp_path)
    assert [r["status"] for r in none] == ["no_results"]
    assert set(rf.OBSERVATIONS) <= {"agree_lp_vs_ft_ood", "agree_id_vs_ood_distortion",
                                    "agree_lpft_vs_ft_distortion", "conditions_phase",
                                    "linear_ft_distorts_id_more"}


def test_decades_below_margin_is_positive_iff_within_tolerance_and_bounded():
    """A 'decades below tolerance' margin: > 0 exactly when the error is within tolerance, the
    same sign as before at any tolerance (1e-20 included), and at most log10(1/eps) for an
    exact 0 (it once showed +288 decades; a floor at eps made a 1e-20 tolerance pass negative)."""
    from experiments._checks import ROUNDING, decades_below
    for tol in (1e-20, 1e-12, 1e-6, 1.0):
        assert decades_below(tol, 0.0) == decades_below(tol, tol * 1e-30) == -math.log10(ROUNDING)
        assert decades_below(tol, tol) == 0.0
        assert decades_below(tol, 0.5 * tol) > 0 > decades_below(tol, 2.0 * tol)
        assert abs(decades_below(tol, 1e-3 * tol) - 3.0) < 1e-12


def test_a_margin_at_the_float64_floor_is_marked_in_the_table():
    """A 'decades below tolerance' margin at its cap (the error at float64 rounding of the
    tolerance, or 0) prints as '>=+15.7', so it is not read as a measured 15.7 decades; one
    below the cap, or in another unit, prints as itself."""
    from experiments._checks import DECADES_BELOW, MAX_DECADES, decades_below
    base = dict(experiment="e", status="pass", claim="c", source="s", n_cases=1, figure=None, details="d")
    rows = [dict(base, id="floor", margin=decades_below(1e-9, 0.0), unit=DECADES_BELOW),
            dict(base, id="measured", margin=decades_below(1e-9, 1e-21), unit=DECADES_BELOW),
            dict(base, id="other", margin=MAX_DECADES, unit="decades: log10(a / b)")]
    lines = {f"e/{r['id']}": line for r, line in zip(rows, runner.format_table(rows).splitlines()[2:])}
    assert ">=+15.7" in lines["e/floor"]
    assert "+12" in lines["e/measured"] and ">=" not in lines["e/measured"]
    assert "+15.7" in lines["e/other"] and ">=" not in lines["e/other"]
