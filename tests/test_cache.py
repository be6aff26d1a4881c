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
    # The same script again (the same code: a cached unit is reused only by its own code).
    before = len((tmp_path / "calls.txt").read_text().split())
    subprocess.run([sys.executable, str(script)], check=True, timeout=120)
    calls = [int(x) for x in (tmp_path / "calls.txt").read_text().split()[before:]]
    assert sorted(calls) == sorted(set(range(8)) - finished)   # finished units are not recomputed
    recs = load_records("killme", out=tmp_path)
    assert sorted(recs["value"]) == list(range(8))


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


# ----------------------------------------------------------------------------- exported solvers
# (issue 10 §1: a new process starts warm: the solver is exported with jax.export beside the
# XLA cache and loaded in a later process without tracing diffrax; twolayer/_export.py)
import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

needs_export = pytest.mark.skipif(importlib.util.find_spec("flatbuffers") is None,
                                  reason="jax.export serialization needs the 'flatbuffers' package")

_EXPORT_CHILD = """
import json, sys
import numpy as np
import twolayer as tl
from twolayer import _export, _jaxcache
p = tl.make_problem(3, d=12, k=2, m=4, n=6, eps=0.1, shift="large", head_init="gaussian")
tr = tl.simulate(p, "ft", np.linspace(0.0, 5.0, 6))
print(json.dumps(dict(compiles=tl.compile_count(), loads=_jaxcache.load_count(), errors=_export.last_errors(),
                      B=tr.B.tolist(), v=tr.v.tolist(), result=str(tr.result))))
"""


def _small():
    import twolayer as tl
    return tl.make_problem(3, d=12, k=2, m=4, n=6, eps=0.1, shift="large", head_init="gaussian")


def _ft(problem, **opts):
    import twolayer as tl
    return tl.simulate(problem, "ft", np.linspace(0.0, 5.0, 6), **opts)


def _export_files(folder: Path) -> list:
    return sorted((folder / "export").glob("*.jaxexport"))


@needs_export
def test_exported_solver_gives_the_traced_solvers_numbers_bitwise(tmp_path, monkeypatch):
    """The exported solve (error checks traced as NaN, save times checked on the host) is
    the traced diffrax solve: the same float64 numbers, bit for bit."""
    import twolayer as tl
    from twolayer import _export, _jaxcache
    p = _small()
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", "off")
    traced = _ft(p)
    assert not (tmp_path / "export").exists()
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", str(tmp_path))
    _ft(p)                                        # exports (or reuses this process's export) and writes
    (path,) = _export_files(tmp_path)
    assert path.read_bytes().startswith(_export.MAGIC)
    _export.clear_memory()                        # now the solver must come from the file
    n0, loads = tl.compile_count(), _jaxcache.load_count()
    loaded = _ft(p)
    assert tl.compile_count() == n0 and _jaxcache.load_count() == loads + 1
    np.testing.assert_array_equal(loaded.B, traced.B)
    np.testing.assert_array_equal(loaded.v, traced.v)
    assert loaded.result is traced.result and loaded.stats["num_steps"] == traced.stats["num_steps"]


@needs_export
def test_new_process_with_populated_cache_does_not_trace(tmp_path, monkeypatch):
    """A fresh process whose cache folder holds the exported solver loads it: no trace
    (compile_count() == 0 after its first simulate), one load, the same numbers."""
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", str(tmp_path))
    here = _ft(_small())                          # populates tmp_path/export from this process
    assert _export_files(tmp_path)
    env = {**os.environ, "TWOLAYER_JAX_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", _EXPORT_CHILD], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["compiles"] == 0 and child["loads"] >= 1, child
    assert child["errors"] == []
    np.testing.assert_array_equal(np.array(child["B"]), here.B)
    np.testing.assert_array_equal(np.array(child["v"]), here.v)
    assert child["result"] == str(here.result)


@needs_export
def test_corrupt_export_file_falls_back_to_tracing_with_the_same_numbers(tmp_path, monkeypatch):
    """A damaged file is ignored: the solver is traced again (compile_count grows), the
    numbers are the same, and the file is rewritten whole (a later load uses it)."""
    import twolayer as tl
    from twolayer import _export, _jaxcache
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", str(tmp_path))
    p = _small()
    good = _ft(p)
    (path,) = _export_files(tmp_path)
    path.write_bytes(b"\x00not an export\xff" * 50)
    _export.clear_memory()
    n0 = tl.compile_count()
    again = _ft(p)
    assert tl.compile_count() == n0 + 1                      # traced again, not loaded
    assert _export.last_errors()[-1][0][0] == "dopri8"
    np.testing.assert_array_equal(again.B, good.B)
    assert path.read_bytes().startswith(_export.MAGIC)
    assert [q.name for q in path.parent.iterdir() if q.name.endswith(".tmp")] == []
    _export.clear_memory()
    loads = _jaxcache.load_count()
    assert np.array_equal(_ft(p).B, good.B) and _jaxcache.load_count() == loads + 1


def _toy_jit():
    import jax
    import jax.numpy as jnp

    def f(s2, c, v0, G0, ts, t1, steady_rtol, t_hold, rtol, atol, dt0):
        return (v0 + ts.sum(), G0 * t1, v0, G0 + s2.sum(), t1 + atol + dt0, jnp.int32(0), jnp.zeros(3, jnp.int32))
    return jax.jit(f)


def _toy_export(key, platforms=None):
    """A tiny function with the solver's signature, exported (milliseconds: no diffrax)."""
    import jax
    from jax import export

    from twolayer import _export
    with jax.enable_x64(True):
        return export.export(_toy_jit(), platforms=platforms)(*_export._avals(key))


@needs_export
@pytest.mark.parametrize("damage", ["truncated", "foreign_header", "other_platform", "unreadable"])
def test_incompatible_export_file_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    """Truncated, written by another jax/backend/source, exported for another platform, or
    unreadable: ignored, exported again (make_traced is called) and rewritten atomically."""
    from twolayer import _export
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", str(tmp_path))
    key = ("toy-" + damage, 1, False, 2, 3, 8, 0)
    _export.clear_memory()
    built = []
    make = lambda: built.append(1) or _toy_jit()
    assert _export.exported_solver(key, make) is not None and built == [1]
    path = _export.export_path(key)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "foreign_header":     # same name, but another jax version / backend wrote it
        head = json.dumps({"versions": {"jax": "0.0.0"}, "backend": "tpu"}).encode()
        path.write_bytes(_export.MAGIC + len(head).to_bytes(8, "little") + head + data[-500:])
    elif damage == "other_platform":     # a valid export, for a TPU
        _export._write(path, key, _toy_export(key, platforms=["tpu"]))
    else:
        path.unlink()
        path.mkdir()                     # a folder where the file should be: unreadable
    _export.clear_memory()
    fn = _export.exported_solver(key, make)
    assert built == [1, 1] and fn is not None                # exported again
    assert _export.last_errors()[-1][0] == key
    expected = {"truncated": "", "foreign_header": "another key, version", "other_platform": "exported for",
                "unreadable": "IsADirectoryError"}[damage]
    assert expected in _export.last_errors()[-1][1]
    if damage == "unreadable":
        assert path.is_dir()                                 # could not be replaced: still runs
    else:
        _export.clear_memory()
        assert _export.exported_solver(key, lambda: pytest.fail("should load")) is not None
    _export.clear_memory()


def test_cache_off_disables_the_export_and_bad_times_still_raise(monkeypatch):
    from twolayer import _export
    monkeypatch.setenv("TWOLAYER_JAX_CACHE", "off")
    assert _export.export_path(("dopri8", 1, False, 2, 4, 8, 0)) is None
    assert _export.exported_solver(("dopri8", 1, False, 2, 4, 8, 0), lambda: pytest.fail("traced")) is None
    _export.check_times(np.array([0.0, 1.0, 1.0]), [1.0, 2.0])
    with pytest.raises(RuntimeError, match="increasing"):
        _export.check_times(np.array([0.0, 2.0, 1.0]), [3.0])
    with pytest.raises(RuntimeError, match="between t0 and t1"):
        _export.check_times(np.array([0.0, 2.0]), [3.0, 1.5])
    with pytest.raises(RuntimeError, match="between t0 and t1"):
        _export.check_times(np.array([-1.0, 2.0]), [3.0])


def _module_with_compute(folder: Path, name: str, body: str = "") -> object:
    """A module file ``name.py`` in ``folder`` defining ``compute(unit)``, imported anew."""
    import importlib
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""
        CALLS = []
        def compute(unit):
            CALLS.append(unit["i"])
            return [dict(value=unit["i"] * 2)]
        {body}
    """))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def test_units_computed_by_other_code_are_computed_again(tmp_path, monkeypatch, capsys):
    """A cached unit is reused only by the code that computed it: after an edit of the module
    that defines compute (or of twolayer), every unit is computed again, the sweep says so,
    and load_records warns about records left from other code."""
    from experiments._common import StaleResultsWarning, _module_file, code_fingerprint
    monkeypatch.syspath_prepend(str(tmp_path))
    units = [dict(i=i) for i in range(4)]
    mod = _module_with_compute(tmp_path, "stale_mod")
    first = run_sweep("stale", Cfg(), units, mod.compute, tmp_path / "out", progress=False)
    assert mod.CALLS == [0, 1, 2, 3]
    run_sweep("stale", Cfg(), units, mod.compute, tmp_path / "out", progress=False)
    assert mod.CALLS == [0, 1, 2, 3]                              # same code: all cached
    root = sweep_dir("stale", Cfg(), tmp_path / "out")
    meta = json.loads((root / "meta.json").read_text())
    assert meta["n_cached_units"] == 4 and meta["n_stale_units"] == 0
    assert meta["code_fingerprint"] == code_fingerprint(_module_file(mod.compute))
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error", StaleResultsWarning)
        load_records("stale", out=tmp_path / "out")               # fresh: no warning

    # An edit of the module (a changed compute): the records on disk are now stale ...
    mod = _module_with_compute(tmp_path, "stale_mod", body="OFFSET = 1")
    with pytest.warns(StaleResultsWarning, match="computed by other code"):
        load_records("stale", out=tmp_path / "out")
    # ... and the next sweep computes every unit again.
    capsys.readouterr()
    again = run_sweep("stale", Cfg(), units, mod.compute, tmp_path / "out", progress=False)
    assert mod.CALLS == [0, 1, 2, 3] and again == first
    assert "4 cached unit(s)" in capsys.readouterr().err
    meta = json.loads((root / "meta.json").read_text())
    assert meta["n_cached_units"] == 0 and meta["n_stale_units"] == 4

    # A unit file from before fingerprints (no "code") is not trusted either.
    path = next((root / "units").glob("*.json"))
    payload = json.loads(path.read_text())
    payload.pop("code")
    atomic_write_text(path, json.dumps(payload))
    run_sweep("stale", Cfg(), units, mod.compute, tmp_path / "out", progress=False)
    assert len(mod.CALLS) == 5

    # The twolayer package is part of the fingerprint: a copy with one file edited differs.
    import shutil

    from twolayer import provenance
    pkg = tmp_path / "pkg" / "twolayer"
    shutil.copytree(provenance.PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", pkg)
    same = code_fingerprint(_module_file(mod.compute))
    assert same == meta["code_fingerprint"]
    (pkg / "flow.py").write_text((pkg / "flow.py").read_text() + "\nEDITED = 1\n")
    assert code_fingerprint(_module_file(mod.compute)) != same


def test_fingerprint_ignores_comments_docstrings_and_layout(tmp_path):
    """Editing a comment, a docstring or the layout keeps a cache; editing code, even one
    constant inside a function, discards it."""
    from experiments._common import code_fingerprint
    path = tmp_path / "mod.py"

    def fingerprint(text):
        path.write_text(textwrap.dedent(text))
        return code_fingerprint(path)

    base = fingerprint('''
        def f(x):
            return 2.0 * x
    ''')
    assert fingerprint('''
        """A module docstring."""
        # a comment


        def f(x):   # another
            """f's docstring, edited."""
            return (2.0
                    * x)
    ''') == base
    assert fingerprint('''
        def f(x):
            return 2.0 * x + 0.0
    ''') != base
    assert fingerprint('''
        def f(x):
            return 2.5 * x
    ''') != base
    # A string that is the function's value is code, not a docstring.
    assert fingerprint('''
        def f(x):
            return "one"
    ''') != fingerprint('''
        def f(x):
            return "two"
    ''')
    path.write_text("def f(:\n")                    # not Python: counted by its bytes
    broken = code_fingerprint(path)
    path.write_text("def f(:  \n")
    assert code_fingerprint(path) != broken


def test_rerun_command_rebuilds_the_cached_configuration():
    """The stale-records warning's command recomputes the same config (--quick / --seed as the
    CLI builds it), not the full default sweep."""
    from experiments import toy2d
    from experiments._common import _jsonable, rerun_command
    assert rerun_command("toy2d", _jsonable(toy2d.Config.quick(0)), " --out D") == \
        "`python -m experiments.toy2d --quick --out D`"
    assert rerun_command("toy2d", _jsonable(toy2d.Config.full(4))) == "`python -m experiments.toy2d --seed 4`"
    odd = dict(_jsonable(toy2d.Config.quick(0)), small_angle=0.07)
    assert "config.json" in rerun_command("toy2d", odd)


def test_a_file_edited_after_import_is_listed(tmp_path, monkeypatch):
    """edited_since_import names the loaded modules whose file changed after the snapshot, and
    not files whose module was never imported."""
    import importlib
    from twolayer import _sources
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "loaded_mod.py").write_text("X = 1\n")
    (tmp_path / "never_imported.py").write_text("Y = 1\n")
    sys.modules.pop("loaded_mod", None)
    importlib.invalidate_caches()
    importlib.import_module("loaded_mod")
    taken = _sources.snapshot(tmp_path)
    assert _sources.edited_since_import(taken) == {}
    (tmp_path / "loaded_mod.py").write_text("X = 22\n")
    (tmp_path / "never_imported.py").write_text("Y = 22\n")
    path = str((tmp_path / "loaded_mod.py").resolve())
    assert _sources.edited_since_import(taken) == {path: (b"X = 1\n", b"X = 22\n")}
    assert _sources.edited_since_import() == {}            # twolayer itself is as imported


def test_a_sweep_refuses_to_label_old_code_with_the_new_fingerprint(tmp_path, monkeypatch):
    """A process whose twolayer code changed on disk after import (a long Jupyter session)
    would run the old code under the new code's fingerprint: run_sweep raises before
    computing anything, and says to restart. A comment-only edit is no code change."""
    import twolayer.flow
    from experiments._common import StaleCodeError, _code_mismatch, code_parts, edited_since_import
    from twolayer import _sources
    flow = str(Path(twolayer.flow.__file__).resolve())
    now = _sources.AT_IMPORT[flow]
    monkeypatch.setitem(_sources.AT_IMPORT, flow, now + b"\n# a comment added since import\n")
    assert edited_since_import() == []
    monkeypatch.setitem(_sources.AT_IMPORT, flow, now + b"\nEDITED_SINCE = 1\n")   # as if code was removed
    assert edited_since_import() == [flow]
    calls = []
    with pytest.raises(StaleCodeError, match=r"twolayer/flow\.py changed on disk .*Restart the Python process"):
        run_sweep("edited", Cfg(), [dict(i=0)], lambda u: calls.append(u) or [], tmp_path, progress=False)
    assert calls == [] and not (tmp_path / "edited").exists()
    mine = code_parts(lambda u: [])
    assert mine["edited"] == [flow]
    theirs = dict(mine, edited=[], host="h", pid=1)
    assert _code_mismatch(dict(mine, edited=[]), theirs) is None
    assert "restart the workers" in _code_mismatch(mine, dict(theirs, edited=[flow]))


def test_an_edited_experiment_module_counts_only_for_its_own_sweep(monkeypatch):
    """The module that defines compute is part of the fingerprint: its edit since import is
    stale code for its sweeps; an edit of another experiment's module is not."""
    from experiments import _common, toy2d
    from experiments._common import edited_since_import
    mine = str(Path(toy2d.__file__).resolve())
    from experiments import _code
    now = _code._EXPERIMENTS_AT_IMPORT[mine]
    monkeypatch.setitem(_code._EXPERIMENTS_AT_IMPORT, mine, now + b"\nOLD_CONSTANT = 1\n")
    assert edited_since_import(toy2d.compute) == [mine]
    from experiments import invariants
    assert edited_since_import(invariants.compute) == []


def test_the_command_line_says_how_many_units_came_from_the_cache(tmp_path, capsys):
    """`python -m experiments.NAME` run twice: the second line says every unit came from the
    cache (a cached rerun is not silent about it)."""
    import dataclasses
    from experiments._common import cli

    @dataclasses.dataclass(frozen=True)
    class Small:
        seed: int = 0
        n: int = 3

        @classmethod
        def quick(cls, seed=0):
            return cls(seed=seed, n=2)

        @classmethod
        def full(cls, seed=0):
            return cls(seed=seed)

    def run(config, out=None, force=False, progress=None):
        return run_sweep("small", config, [dict(i=i) for i in range(config.n)],
                         lambda u: [dict(value=u["i"])], out, force=force, progress=False)

    argv = ["--quick", "--out", str(tmp_path)]
    cli("small", Small, run, argv)
    assert "2 of 2 units computed, 0 from the cache" in capsys.readouterr().out
    cli("small", Small, run, argv)
    assert "0 of 2 units computed, 2 from the cache" in capsys.readouterr().out
