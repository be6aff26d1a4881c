"""Damaged cache files and Ctrl-C (issue 22 §1-2): a damaged unit is computed again, never
trusted; a damaged latest.json or records.csv is named with its fix; a figure says which file is
damaged; Ctrl-C in an experiment CLI or in paper_checks says what was kept and exits 130."""

import json
from dataclasses import dataclass

import pytest

from experiments._common import DamagedCacheError, load_records, run_sweep, sweep_dir


@dataclass(frozen=True)
class Cfg:
    seed: int = 0


def _compute(calls, unit):
    calls.append(unit["i"])
    return [dict(value=unit["i"] * 10)]


def _sweep(tmp_path, calls):
    return run_sweep("toy", Cfg(), [dict(i=i) for i in range(4)], lambda u: _compute(calls, u), tmp_path,
                     progress=False)


@pytest.mark.parametrize("damage", ["", "{not json", '{"records": 3}', "[1, 2]", "\x00\xff"])
def test_a_damaged_unit_is_named_and_computed_again(tmp_path, capsys, damage):
    calls = []
    first = _sweep(tmp_path, calls)
    units = sorted((sweep_dir("toy", Cfg(), tmp_path) / "units").glob("*.json"))
    units[1].write_bytes(damage.encode("latin-1"))
    capsys.readouterr()
    again = _sweep(tmp_path, calls)
    assert again == first and len(calls) == 5                # only the damaged unit ran again
    err = capsys.readouterr().err
    assert "damaged" in err and units[1].name in err and "computing them again" in err
    meta = json.loads((sweep_dir("toy", Cfg(), tmp_path) / "meta.json").read_text())
    assert meta["n_damaged_units"] == 1 and meta["n_cached_units"] == 3
    assert json.loads(units[1].read_text())["records"] == [{"value": calls[-1] * 10}]   # rewritten whole


def test_damaged_latest_json_and_records_csv_are_named_with_the_fix(tmp_path):
    _sweep(tmp_path, [])
    assert len(load_records("toy", out=tmp_path)) == 4
    latest = tmp_path / "toy" / "latest.json"
    good = latest.read_text()
    latest.write_text('{"config_hash": ')
    with pytest.raises(DamagedCacheError, match="latest.json is damaged") as e:
        load_records("toy", out=tmp_path)
    assert "--force" in str(e.value) and "delete it" in str(e.value)
    latest.write_text(good)
    csv = sweep_dir("toy", Cfg(), tmp_path) / "records.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-2]) + "\n")                 # truncated: parses, but rows are missing
    with pytest.raises(DamagedCacheError, match="records.csv is damaged.*2 rows where meta.json records 4"):
        load_records("toy", out=tmp_path)
    csv.write_bytes(b"\x00\x01\x02")
    with pytest.raises(DamagedCacheError, match="records.csv is damaged"):
        load_records("toy", out=tmp_path)
    assert isinstance(DamagedCacheError("x"), OSError)


def test_a_figure_says_which_file_is_damaged(tmp_path, monkeypatch):
    import figures._cli as fc
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "latest.json").write_text("{")

    def draw(name, cache, out, empirical):
        return load_records("toy", out=cache)
    monkeypatch.setattr(fc, "draw", draw)
    monkeypatch.setattr(fc, "figure_names", lambda: ["toy"])
    done = fc.draw_all(tmp_path, tmp_path / "fig")
    assert done["toy"].startswith("skipped, damaged cache:") and "latest.json" in done["toy"]


def test_ctrl_c_in_an_experiment_cli_keeps_units_and_exits_130(tmp_path, monkeypatch, capsys):
    from experiments import invariants

    def interrupted(config, out=None, **kw):
        units = sweep_dir(invariants.NAME, config, out) / "units"
        units.mkdir(parents=True)
        for i in range(2):
            (units / f"u{i}.json").write_text("{}")
        raise KeyboardInterrupt
    monkeypatch.setattr(invariants, "run", interrupted)
    with pytest.raises(SystemExit) as e:
        invariants.main(["--quick", "--out", str(tmp_path)])
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted; 2 finished unit(s) are kept" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err


def test_ctrl_c_in_paper_checks_exits_130_without_a_report(tmp_path, monkeypatch, capsys):
    import paper_checks.runner as runner

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(runner, "run_checks", interrupted)
    assert runner.main(["--quick", "--out", str(tmp_path / "rep"), "--cache", str(tmp_path / "c")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "rep" / "report.json").exists()
