"""Sweeps on Dask distributed: a real LocalCluster of 2 worker processes gives the serial run's
records, caches each finished unit once, and a killed worker loses nothing that finished."""

import json
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

from experiments import _common  # noqa: E402
from experiments._common import run_sweep, sweep_dir  # noqa: E402
from experiments._executor import DaskExecutor, LocalExecutor, SweepError  # noqa: E402

N_UNITS = 8


@dataclass(frozen=True)
class Cfg:
    seed: int = 0
    scale: float = 1.5


def _log(log_dir: Path, unit) -> None:
    (Path(log_dir) / f"{unit['i']}-{os.getpid()}-{time.monotonic_ns()}").touch()


def _calls(log_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[0]) for p in Path(log_dir).iterdir())


def compute(cfg: Cfg, log_dir, kill_marker, unit) -> list[dict]:
    """A tiny float64 unit (module level, so it pickles); kills its worker process on request."""
    import numpy as np
    _log(log_dir, unit)
    if unit["i"] == 5 and kill_marker is not None and Path(kill_marker).exists():
        time.sleep(0.3)                      # let the other worker finish some units first
        if Path(kill_marker).read_text() == "once":
            Path(kill_marker).unlink()
        os._exit(1)                          # the worker process dies mid-unit
    rng = np.random.default_rng([cfg.seed, unit["i"]])
    x = rng.standard_normal(50) * cfg.scale
    time.sleep(0.05)
    return [dict(t=t, value=float(np.sum(np.sin(x * t))), norm=float(np.linalg.norm(x)))
            for t in range(3)]


def _units():
    return [dict(i=i) for i in range(N_UNITS)]


@pytest.fixture(scope="module")
def cluster():
    # One retry after a worker death, so that a unit that always kills its worker fails fast.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        ex = DaskExecutor(workers=2).start()
    yield ex
    ex.close()


def _count_unit_writes(monkeypatch) -> list[str]:
    writes = []
    real = _common.atomic_write_text

    def counting(path, text):
        if Path(path).parent.name == "units":
            writes.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(_common, "atomic_write_text", counting)
    return writes


def test_dask_records_equal_serial_and_each_unit_written_once(cluster, tmp_path, monkeypatch):
    (tmp_path / "log_l").mkdir(), (tmp_path / "log_d").mkdir()
    serial = run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "log_l", None),
                       tmp_path / "local", progress=False, executor=LocalExecutor())
    writes = _count_unit_writes(monkeypatch)
    dist = run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "log_d", None),
                     tmp_path / "dask", progress=False, executor=cluster)
    assert dist == serial and len(dist) == 3 * N_UNITS
    assert sorted(writes) == sorted(set(writes)) and len(writes) == N_UNITS
    assert _calls(tmp_path / "log_d") == list(range(N_UNITS))
    pids = {p.name.split("-")[1] for p in (tmp_path / "log_d").iterdir()}
    assert str(os.getpid()) not in pids                 # computed on the workers, not here
    meta = json.loads((sweep_dir("toy", Cfg(), tmp_path / "dask") / "meta.json").read_text())
    assert meta["executor"] == "dask" and meta["n_cached_units"] == 0
    a = (sweep_dir("toy", Cfg(), tmp_path / "local") / "records.csv").read_text()
    assert a == (sweep_dir("toy", Cfg(), tmp_path / "dask") / "records.csv").read_text()


def _default_threads():
    from twolayer._solve import workers_for
    return workers_for(None)


def test_each_worker_process_gets_its_share_of_the_threads(cluster):
    """simulate_batch's default threads in a worker: 2 per core / workers, not 2 per core each."""
    from twolayer._solve import THREADS_PER_CORE, cpu_cores
    got = cluster.client.run(_default_threads)
    assert len(got) == 2 and set(got.values()) == {max(1, THREADS_PER_CORE * cpu_cores() // 2)}


def test_killed_worker_is_replaced_and_the_sweep_completes(cluster, tmp_path, monkeypatch):
    (tmp_path / "log").mkdir()
    marker = tmp_path / "kill"
    marker.write_text("once")
    writes = _count_unit_writes(monkeypatch)
    recs = run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "log", marker),
                     tmp_path / "out", progress=False, executor=cluster)
    calls = _calls(tmp_path / "log")
    assert not marker.exists()                          # the worker did die
    assert calls.count(5) == 2                          # unit 5 ran again on a live worker ...
    assert [c for c in calls if c != 5] == [i for i in range(N_UNITS) if i != 5]  # ... nothing else did
    assert len(writes) == N_UNITS == len(set(writes))   # every unit cached exactly once
    (tmp_path / "ref_log").mkdir()
    ref = run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "ref_log", None),
                    tmp_path / "ref", progress=False, executor=LocalExecutor())
    assert recs == ref


def test_unit_that_keeps_killing_workers_fails_alone_and_a_rerun_computes_only_it(cluster, tmp_path):
    (tmp_path / "log").mkdir()
    marker = tmp_path / "kill"
    marker.write_text("always")
    with pytest.raises(SweepError, match="rerun computes only the missing"):
        run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "log", marker),
                  tmp_path / "out", progress=False, executor=cluster)
    udir = sweep_dir("toy", Cfg(), tmp_path / "out") / "units"
    finished = {json.loads(p.read_text())["unit"]["i"] for p in udir.glob("*.json")}
    assert 5 not in finished and len(finished) >= N_UNITS - 3   # only units on the dead worker are lost
    marker.unlink()
    (tmp_path / "log2").mkdir()
    recs = run_sweep("toy", Cfg(), _units(), partial(compute, Cfg(), tmp_path / "log2", None),
                     tmp_path / "out", progress=False, executor=cluster)
    assert set(_calls(tmp_path / "log2")) == set(range(N_UNITS)) - finished   # nothing finished is redone
    assert len(_calls(tmp_path / "log2")) == N_UNITS - len(finished)
    assert sorted({r["i"] for r in recs}) == list(range(N_UNITS)) and len(recs) == 3 * N_UNITS


def test_scheduler_address_connects_to_a_running_cluster(cluster, tmp_path):
    """`--scheduler ADDRESS`: a second client on an existing cluster, activated by `with`."""
    (tmp_path / "log").mkdir()
    with DaskExecutor(scheduler=cluster.client.scheduler.address) as remote:
        assert remote.cluster is None                   # nothing started here
        recs = run_sweep("toy", Cfg(), _units()[:3], partial(compute, Cfg(), tmp_path / "log", None),
                         tmp_path / "out", progress=False)   # picks up the active executor
    assert remote.client is None and len(recs) == 9
    meta = json.loads((sweep_dir("toy", Cfg(), tmp_path / "out") / "meta.json").read_text())
    assert meta["executor"] == "dask"
    assert str(os.getpid()) not in {p.name.split("-")[1] for p in (tmp_path / "log").iterdir()}


def test_a_worker_running_other_code_caches_nothing(cluster, tmp_path, monkeypatch):
    """Each result comes back with the fingerprint of the code that computed it on its worker;
    when that differs from the client's (here: the client pretends to run another twolayer),
    no unit is cached, the sweep fails naming the worker and the fix, and a rerun with the
    same code on both sides computes and caches every unit."""
    from experiments._executor import CodeMismatchError, compute_unit
    (tmp_path / "log").mkdir()
    fn = partial(compute, Cfg(), tmp_path / "log", None)
    recs, _, there = compute_unit(fn, dict(i=0), fingerprint=True)
    assert _common._code_mismatch(_common.code_parts(fn), there) is None       # same code: accepted
    assert there["module"] is not None and there["pid"] == os.getpid()
    real = _common.code_parts
    monkeypatch.setattr(_common, "code_parts", lambda c: dict(real(c), package="0" * 16))
    with pytest.raises(SweepError, match="runs other code than this client") as info:
        run_sweep("toy", Cfg(), _units()[:4], fn, tmp_path / "out", progress=False, executor=cluster)
    assert isinstance(info.value.__cause__, CodeMismatchError)
    assert "pip install -e ." in str(info.value) and "0" * 16 in str(info.value)
    udir = sweep_dir("toy", Cfg(), tmp_path / "out") / "units"
    assert list(udir.glob("*.json")) == []
    monkeypatch.setattr(_common, "code_parts", real)
    again = run_sweep("toy", Cfg(), _units()[:4], fn, tmp_path / "out", progress=False, executor=cluster)
    assert len(again) == 12 and len(list(udir.glob("*.json"))) == 4


def test_missing_distributed_is_a_clear_error(monkeypatch):
    import sys
    from twolayer.errors import TwoLayerInputError
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(TwoLayerInputError, match=r"pip install"):
        DaskExecutor(workers=1).start()


@pytest.mark.slow
def test_cli_executor_dask_gives_the_local_records(tmp_path):
    """`python -m experiments.toy2d --quick --executor dask --workers 2 --out DIR` == `--executor local`."""
    from experiments import toy2d
    local = toy2d.main(["--quick", "--out", str(tmp_path / "local"), "--executor", "local"])
    dist = toy2d.main(["--quick", "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "2"])
    assert dist == local and len(local) > 0
    cfg = toy2d.Config.quick(0)
    a = (sweep_dir("toy2d", cfg, tmp_path / "local") / "records.csv").read_text()
    assert a == (sweep_dir("toy2d", cfg, tmp_path / "dask") / "records.csv").read_text()
    meta = json.loads((sweep_dir("toy2d", cfg, tmp_path / "dask") / "meta.json").read_text())
    assert meta["executor"] == "dask" and meta["n_cached_units"] == 0


THEOREM_SWEEPS = ["bound_tightness", "conditions", "early_stopping", "eps_sweep", "feature_distortion", "few_shot",
                  "gd_vs_flow", "id_comparison", "invariants", "lpft_perfect_features", "ood_vs_time",
                  "regularization", "thm33_repair", "toy2d"]


@pytest.mark.parametrize("name", THEOREM_SWEEPS)
def test_every_sweep_ships_to_dask_workers(monkeypatch, tmp_path, name):
    """Each experiment's compute and units pickle (by reference: module-level functions), so
    `--executor dask` can send them to worker processes; nothing is computed here."""
    import importlib
    import pickle
    mod = importlib.import_module(f"experiments.{name}")
    seen = {}

    class Captured(Exception):
        pass

    def capture(name_, config, units, compute, out=None, **kw):
        seen.update(compute=compute, units=list(units))
        raise Captured

    monkeypatch.setattr(mod, "run_sweep", capture)
    with pytest.raises(Captured):
        mod.run(mod.Config.quick(0), out=tmp_path)
    assert seen["units"]
    again = pickle.loads(pickle.dumps((seen["compute"], seen["units"])))
    assert again[1] == seen["units"]
