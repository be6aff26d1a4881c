"""Cached, resumable sweeps: a killed sweep loses no finished unit and duplicates nothing."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments._common import atomic_write_text, config_hash, load_records, run_sweep, sweep_dir

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cfg:
    seed: int = 0
    n: int = 6


@dataclass(frozen=True)
class KillCfg:  # same fields as the config inside the killed script -> same hash
    seed: int = 0


def _compute(log, unit):
    log.append(unit["i"])
    return [dict(t=t, value=unit["i"] * 10 + t) for t in range(3)]


def test_interrupted_sweep_resumes_without_loss_or_duplicates(tmp_path):
    cfg, units = Cfg(), [dict(i=i) for i in range(6)]
    calls = []

    def flaky(unit):
        if unit["i"] == 3 and not calls.count("raised"):
            calls.append("raised")
            raise KeyboardInterrupt   # the user hits Ctrl-C mid-sweep
        return _compute(calls, unit)

    with pytest.raises(KeyboardInterrupt):
        run_sweep("toy", cfg, units, flaky, tmp_path, progress=False)
    assert sorted(c for c in calls if c != "raised") == [0, 1, 2]
    recs = run_sweep("toy", cfg, units, flaky, tmp_path, progress=False)
    done = [c for c in calls if c != "raised"]
    assert sorted(done) == [0, 1, 2, 3, 4, 5]          # each unit computed exactly once
    assert len(recs) == 18
    assert len({(r["i"], r["t"]) for r in recs}) == 18  # no duplicates
    # A third run is served entirely from the cache.
    before = len(done)
    again = run_sweep("toy", cfg, units, flaky, tmp_path, progress=False)
    assert len([c for c in calls if c != "raised"]) == before and again == recs
    meta = json.loads((sweep_dir("toy", cfg, tmp_path) / "meta.json").read_text())
    assert meta["n_cached_units"] == 6 and meta["seed"] == 0 and "versions" in meta
    assert "git_revision" in meta and meta["config"] == {"seed": 0, "n": 6}
    df = load_records("toy", out=tmp_path)
    assert len(df) == 18 and set(df.columns) >= {"i", "t", "value", "experiment", "config_hash"}


def test_sigkill_mid_sweep_then_resume(tmp_path):
    """A sweep killed with SIGKILL (no cleanup at all) resumes from its finished units."""
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from dataclasses import dataclass
        sys.path.insert(0, {str(REPO)!r})
        from experiments._common import run_sweep
        @dataclass(frozen=True)
        class Cfg:
            seed: int = 0
        def compute(unit):
            with open({str(tmp_path / 'calls.txt')!r}, 'a') as fh:
                fh.write(str(unit['i']) + '\\n')
            time.sleep(0.4)
            return [dict(value=unit['i'])]
        run_sweep('killme', Cfg(), [dict(i=i) for i in range(8)], compute, {str(tmp_path)!r}, progress=False)
    """))
    proc = subprocess.Popen([sys.executable, str(script)])
    udir = sweep_dir("killme", KillCfg(), tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline:
        if udir.exists() and len(list((udir / "units").glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {json.loads(p.read_text())["unit"]["i"] for p in (udir / "units").glob("*.json")}
    assert 2 <= len(finished) < 8
    calls = []
    recs = run_sweep("killme", KillCfg(), [dict(i=i) for i in range(8)],
                     lambda u: (calls.append(u["i"]), [dict(value=u["i"])])[1], tmp_path, progress=False)
    assert set(calls) == set(range(8)) - finished      # finished units are not recomputed
    assert sorted(r["value"] for r in recs) == list(range(8))


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_text(p, "x" * 1000)
    atomic_write_text(p, "short")
    assert p.read_text() == "short"
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(Cfg()) == config_hash(Cfg())
    assert config_hash(Cfg(seed=1)) != config_hash(Cfg())


def test_load_records_without_cache_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m experiments.nothing"):
        load_records("nothing", out=tmp_path)


def test_atomic_write_gives_normal_file_permissions(tmp_path):
    """Written files are readable like normally created ones (0666 minus the umask), not mkstemp's 0600."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    mode = (tmp_path / "r.json").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777 == 0o644
