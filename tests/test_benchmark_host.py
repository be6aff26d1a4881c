"""experiments.benchmark_host at tiny scale: both measures run, the JSON has its keys, the
host's time is wall minus solver time, and the target is judged from the median."""

import json

import numpy as np
import pytest

from experiments import benchmark_host as bh


def test_benchmark_host_tiny_run_writes_every_key(tmp_path, capsys):
    res = bh.main(["--shape", "12,2,4,6", "--problems", "3", "--batches", "2", "--seed", "1", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "benchmark_host.json").read_text())
    assert saved["setup"]["problems"] == 3 and saved["setup"]["seed"] == 1 and saved["eigh_ms"] > 0
    assert set(saved["measures"]) == set(bh.TIME_GRIDS)
    for name, r in saved["measures"].items():
        assert len(r["batches"]) == 2 and r["times"][-1] == float("inf") and len(r["times"]) == len(bh.TIME_GRIDS[name])
        for row in r["batches"]:
            assert row["host_ms"] == pytest.approx(1e3 * (row["wall_s"] - row["solver_s"]) / 3)
            assert 0 < row["solver_s"] < row["wall_s"] and set(row["stages_ms"]) >= {"prepare", "stop", "finish"}
            assert row["results"] and all(r_.startswith("STEADY") for r_ in row["results"])
        assert r["host_ms_median"] == pytest.approx(float(np.median([b["host_ms"] for b in r["batches"]])))
        assert r["target_met"] == (r["host_ms_median"] <= bh.TARGET_MS)
    assert "host per problem, 4 times" in capsys.readouterr().out
    assert res["git_revision"] == saved["git_revision"]


@pytest.mark.parametrize("argv, message", [
    (["--problems", "0"], "must be a positive integer, got 0"), (["--problems", "-3"], "positive integer, got -3"),
    (["--batches", "abc"], "must be a positive integer, got 'abc'"),
    (["--shape", "5,6,4,8"], "is not a problem shape"), (["--shape", "1,2"], "four integers")])
def test_benchmark_host_rejects_bad_input_with_a_usage_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bh.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
