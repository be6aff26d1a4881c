"""Provenance in one leaf module (issue 19 §5): the same hashes, versions and git label for
the experiments and the empirical runs, and a fingerprint that covers only the code a sweep
runs (a torch-side edit keeps the exact simulator's caches)."""

import ast
import shutil
from pathlib import Path

import numpy as np

from twolayer import provenance

REPO = Path(__file__).resolve().parents[1]


def test_provenance_is_a_leaf():
    """It imports only the standard library: nothing of twolayer, experiments or numpy."""
    tree = ast.parse((REPO / "twolayer" / "provenance.py").read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not mods & {"twolayer", "experiments", "numpy", "torch", "jax"}, mods
    assert not any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in ast.walk(tree))


def test_experiments_and_empirical_share_one_implementation():
    from experiments import _common
    from twolayer.empirical import results
    cfg = {"a": (1, 2), "b": np.float64(0.5), "c": Path("/x"), "d": np.arange(3)}
    assert _common.config_hash(cfg) == provenance.config_hash(cfg)
    assert results.config_hash(cfg) == provenance.config_hash(cfg, digits=16)
    assert results.config_hash(cfg).startswith(_common.config_hash(cfg))
    assert _common.git_revision is provenance.git_revision is results.git_revision
    assert _common.atomic_write_text is provenance.atomic_write_text
    rev = provenance.git_revision()
    assert rev == "unknown" or rev.rstrip("+dirty").isalnum() and "-dirty" not in rev


def test_fingerprint_covers_only_the_code_a_sweep_runs(tmp_path, monkeypatch):
    """Editing twolayer/empirical keeps an exact-simulator sweep's fingerprint and changes a
    real-network sweep's; editing the simulator changes both."""
    ex = REPO / "experiments"
    assert not provenance.uses_empirical(ex / "eps_sweep.py")
    assert provenance.uses_empirical(ex / "scoreboard.py")
    assert provenance.uses_empirical(ex / "real_features.py")
    pkg = tmp_path / "twolayer"
    shutil.copytree(REPO / "twolayer", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", pkg)
    sim, real = ex / "eps_sweep.py", ex / "scoreboard.py"
    before = provenance.code_fingerprint(sim), provenance.code_fingerprint(real)
    with open(pkg / "empirical" / "metrics.py", "a") as fh:
        fh.write("\n_EDITED = 1\n")
    after_torch_edit = provenance.code_fingerprint(sim), provenance.code_fingerprint(real)
    assert after_torch_edit[0] == before[0] and after_torch_edit[1] != before[1]
    with open(pkg / "losses.py", "a") as fh:
        fh.write("\n_EDITED = 1\n")
    after_sim_edit = provenance.code_fingerprint(sim), provenance.code_fingerprint(real)
    assert after_sim_edit[0] != before[0] and after_sim_edit[1] != after_torch_edit[1]


def test_atomic_json_round_trip(tmp_path):
    import json
    provenance.atomic_write_json(tmp_path / "a" / "x.json", {"v": np.array([1.0, np.nan]), "t": (1, 2)})
    back = json.loads((tmp_path / "a" / "x.json").read_text())
    assert back["t"] == [1, 2] and back["v"][0] == 1.0 and np.isnan(back["v"][1])     # NaN kept
    assert provenance.jsonable({"x": float("nan")}) == {"x": None}
    assert not list((tmp_path / "a").glob(".*.tmp"))
