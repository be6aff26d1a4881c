"""LP / FT / LP-FT end to end on CPU (digits, a small PACS subset), results schema,
caching / resume, the paper checks and the figure (THEORY.md §7)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from twolayer.empirical.errors import ResultsSchemaError  # noqa: E402
from twolayer.empirical.results import (SCHEMA_VERSION, config_hash, load_records, run_path,  # noqa: E402
                                        validate_records, write_json_atomic)

torch.set_num_threads(1)  # 2 threads were 60x slower on a loaded 2-core machine (Lite0 backward)


def bundle_or_skip(name: str):
    """Path of a shared data bundle, or skip the test cleanly when it is absent."""
    from twolayer.empirical.data import resolve_data_dir
    path = resolve_data_dir() / name
    if not path.is_file():
        pytest.skip(f"data bundle {name} not found at {path} (set TWOLAYER_DATA)")
    return path

ACC = {"lp", "ft", "lpft"}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The tiny digits comparison, 2 seeds, run once for the module (seconds on a quiet CPU)."""
    bundle_or_skip("digits_mnist_usps.npz")
    from experiments.empirical import default_config, run
    out = tmp_path_factory.mktemp("emp")
    cfg = default_config("digits", quick="tiny", seeds=(0, 1), results_dir=str(out), device="cpu")
    logs = []
    recs = run(cfg, log=logs.append)
    return cfg, out, recs, logs


def _final(recs, method, split, seed=None):
    return [r["value"] for r in recs if r["method"] == method and r["selected"] and r["epoch"] is None
            and r["metric"] == "acc" and r["split"] == split and (seed is None or r["seed"] == seed)]


def test_digits_records_schema_and_contents(digits_run):
    _, out, recs, _ = digits_run
    validate_records(recs)
    assert {r["method"] for r in recs} == ACC | {"lpft-head"} and {r["seed"] for r in recs} == {0, 1}
    for m in ACC:
        assert len(_final(recs, m, "id_test")) == 2 and len(_final(recs, m, "ood")) == 2
    # FT and LP-FT sweep the same lr grid; exactly one (lr, epoch) selected per method and seed
    for m in ("ft", "lpft"):
        lrs = {r["lr"] for r in recs if r["method"] == m}
        assert lrs == {1e-2, 3e-2}
        for seed in (0, 1):
            sel = {r["lr"] for r in recs if r["method"] == m and r["seed"] == seed and r["selected"]}
            assert len(sel) == 1
            be = [r["value"] for r in recs if r["method"] == m and r["seed"] == seed and r["selected"]
                  and r["metric"] == "best_epoch"]
            assert be == [1.0]
    # ID val accuracy and loss after every epoch; ID test / OOD / distortion only at the selected checkpoint
    ep = sorted({r["epoch"] for r in recs if r["method"] == "ft" and r["split"] == "id_val"
                 and r["metric"] == "acc" and r["epoch"] is not None})
    assert ep == [0, 1]
    ood = [r for r in recs if r["method"] in ("ft", "lpft") and r["split"] in ("ood", "id_test")]
    assert {r["epoch"] for r in ood} == {None} and all(r["selected"] for r in ood)
    assert any(r["metric"] == "loss" and r["split"] == "id_val" for r in recs)
    # LP-FT starts exactly from this seed's LP head: epoch-0 accuracy equals LP's (same features, same head)
    for seed in (0, 1):
        lp_val = _final(recs, "lp", "id_val", seed)[0]
        start = [r["value"] for r in recs if r["method"] == "lpft" and r["epoch"] == 0 and r["split"] == "id_val"
                 and r["metric"] == "acc" and r["seed"] == seed]
        assert start and start[0] == pytest.approx(lp_val, abs=1e-6)
    # every LP / LP-FT row carries the LP head's norm, L2 strength and C
    lpft = [r for r in recs if r["method"] in ("lp", "lpft", "lpft-head")]
    assert all(r["lp_head_norm"] > 0 and r["lp_l2"] > 0 and r["lp_c"] > 0 for r in lpft)
    assert any(r["metric"] == "lp_converged" for r in recs)
    # distortion (ID and OOD), weight distance and head alignment exist and are sane
    for m in ("ft", "lpft"):
        d = {(r["split"], r["seed"]): r["value"] for r in recs if r["method"] == m and r["selected"]
             and r["metric"] == "distortion_msq"}
        assert set(d) == {("id_val", 0), ("ood", 0), ("id_val", 1), ("ood", 1)}
        assert all(np.isfinite(v) and v >= 0 for v in d.values())
    phi = {r["method"]: r["value"] for r in recs if r["metric"] == "phi_rel" and r["selected"] and r["seed"] == 0}
    assert phi["lpft"] == pytest.approx(0.0, abs=1e-6) and phi["ft"] > 0.5
    # run files: config, seed, versions, git revision, warnings, and one split file per seed that differ
    obj = json.loads(run_path(out, "digits", "resnet-mini", 0).read_text())
    assert obj["seed"] == 0 and obj["config"]["dataset"] == "digits" and "torch" in obj["versions"]
    assert "git_revision" in obj and isinstance(obj["warnings"], list)
    assert len(obj["lp_sweep"]) == 3 and all("converged" in e for e in obj["lp_sweep"])
    s0, s1 = (np.load(out / "digits" / f"splits_seed{k}.npz") for k in (0, 1))
    assert obj["splits_file"] == "splits_seed0.npz"
    assert not np.array_equal(s0["id_train"], s1["id_train"])
    assert np.array_equal(np.sort(np.concatenate([s0["id_train"], s0["id_val"], s0["id_test"]])),
                          np.sort(np.concatenate([s1["id_train"], s1["id_val"], s1["id_test"]])))


def test_resume_reuses_finished_runs(digits_run):
    cfg, out, recs, _ = digits_run
    from experiments.empirical import run
    p = run_path(out, "digits", "resnet-mini", 0)
    mtime = p.stat().st_mtime_ns
    logs = []
    again = run(cfg, log=logs.append)
    assert sum("cached" in m for m in logs) == 2 and p.stat().st_mtime_ns == mtime
    assert again == recs
    assert load_records(out) == recs


def test_tables_and_checks_and_figure(digits_run, tmp_path):
    _, out, recs, _ = digits_run
    from twolayer.empirical.table import format_distortion, format_table
    t = format_table(recs, "digits")
    assert "| LP |" in t and "| LP-FT |" in t and "CIFAR-10 -> STL" in t
    assert "LP |W|" in format_distortion(recs, "digits")
    assert "Student-t" in t and "selected on ID val" in t
    from paper_checks.empirical import empirical_checks
    checks = empirical_checks(out)  # quick runs are not evidence
    assert checks and all(c["status"] == "no results yet" and c["margin"] is None for c in checks)
    from figures.empirical_distortion import main as fig
    paths = fig(out, tmp_path, linear_results_dir=tmp_path / "no_linear_cache")
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
    with pytest.raises(FileNotFoundError, match="no empirical results"):
        fig(tmp_path / "empty", tmp_path)


def test_checks_without_results(tmp_path):
    from paper_checks.empirical import empirical_checks
    checks = empirical_checks(tmp_path / "nothing")
    keys = {"id", "claim", "source", "status", "margin", "unit", "n_cases", "figure", "details"}
    assert len(checks) == 5 and all(set(c) == keys for c in checks)
    assert all(c["status"] == "no results yet" and c["n_cases"] == 0 for c in checks)


def _synthetic_run(out, dataset, seed, accs, dist):
    """A schema-valid run file with given (ID, OOD) accuracies and (ID, OOD) distortions."""
    recs = []
    for m, (a_id, a_ood) in accs.items():
        base = {"schema": SCHEMA_VERSION, "dataset": dataset, "arch": "a", "method": m, "seed": seed,
                "lr": None if m == "lp" else 0.1, "selected": True, "epoch": None,
                "lp_l2": None if m == "ft" else 1e-3, "lp_head_norm": None if m == "ft" else 2.0}
        recs.append(dict(base, split="id_test", domain="id", metric="acc", value=a_id))
        recs.append(dict(base, split="ood", domain="x", metric="acc", value=a_ood))
        if m in dist:
            recs.append(dict(base, split="id_val", domain="id", metric="distortion_msq", value=dist[m][0]))
            recs.append(dict(base, split="ood", domain="x", metric="distortion_msq", value=dist[m][1]))
    validate_records(recs)
    write_json_atomic(run_path(out, dataset, "a", seed),
                      {"config": {"quick": False}, "records": recs, "config_hash": "x"})


def test_checks_pass_and_fail_on_synthetic_results(tmp_path):
    from paper_checks.empirical import empirical_checks
    for seed in (0, 1, 2):
        _synthetic_run(tmp_path, "pacs", seed, {"lp": (0.90, 0.60), "ft": (0.95, 0.50), "lpft": (0.96, 0.62)},
                       {"ft": (0.02, 0.01), "lpft": (0.001, 0.0008)})
        _synthetic_run(tmp_path, "digits", seed, {"lp": (0.90, 0.60), "ft": (0.85, 0.65), "lpft": (0.80, 0.50)},
                       {"ft": (0.01, 0.02), "lpft": (0.01, 0.01)})
    checks = {c["claim"]: c for c in empirical_checks(tmp_path)}
    pacs = {k.split(" [")[0]: v for k, v in checks.items() if "[pacs]" in k}
    assert all(c["status"] == "pass" for c in pacs.values()), pacs
    assert pacs["FT beats LP on ID accuracy"]["margin"] == pytest.approx(5.0)
    assert pacs["LP beats FT on OOD accuracy under a large shift"]["margin"] == pytest.approx(10.0)
    assert all(c["n_cases"] == 3 for c in pacs.values())
    assert all(c["id"].endswith("_pacs") and c["unit"] for c in pacs.values())
    digits = {k.split(" [")[0]: c for k, c in checks.items() if "[digits]" in k}
    assert len(digits) == 5 and all(c["margin"] < 0 for c in digits.values())
    # FT below LP on ID: the rule of thumb says the recipe is wrong, so the OOD orderings are not evidence
    assert digits["FT beats LP on ID accuracy"]["status"] == "fail"
    assert "rule of thumb failed" in digits["FT beats LP on ID accuracy"]["details"]
    assert digits["LP beats FT on OOD accuracy under a large shift"]["status"] == "not_applicable"
    assert [c["status"] for k, c in digits.items() if k.startswith(("FT changes", "LP-FT changes"))] == ["fail"] * 2


def test_schema_rejects_bad_records():
    good = {"schema": SCHEMA_VERSION, "dataset": "d", "arch": "a", "method": "ft", "seed": 0, "lr": 0.1,
            "selected": True, "epoch": None, "split": "ood", "domain": "x", "metric": "acc", "value": 0.5,
            "lp_l2": None, "lp_head_norm": None}
    validate_records([good])
    for bad in ({"method": "sgd"}, {"split": "train"}, {"seed": "0"}, {"selected": 1}, {"schema": 99}):
        with pytest.raises(ResultsSchemaError):
            validate_records([dict(good, **bad)])
    with pytest.raises(ResultsSchemaError, match="lp_head_norm"):
        validate_records([dict(good, method="lpft")])
    missing = dict(good)
    del missing["value"]
    with pytest.raises(ResultsSchemaError, match="value"):
        validate_records([missing])
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})


def test_small_pacs_pipeline():
    """The whole comparison on a tiny PACS subset (7 classes, 3 OOD domains), a tiny random-init
    backbone: checks the plumbing and the record layout for several OOD domains."""
    bundle_or_skip("pacs96_jpeg.npz")
    from twolayer.empirical.backbones import build_network
    from twolayer.empirical.data import load_pacs
    from twolayer.empirical.methods import FTConfig, LPConfig
    from twolayer.empirical.pipeline import compare_methods
    data = load_pacs(max_per_class=6, size=32)
    torch.manual_seed(0)
    net = build_network("resnet-mini", data.num_classes)
    ft = FTConfig(epochs=1, batch_size=16, lrs=(0.01,), lpft_head_sweep=1, ood_eval="every")
    recs, info = compare_methods(net, data, 0, ft, LPConfig(n_l2=4), log=lambda m: None)
    # ood_eval="every": OOD curves at every epoch; one-value grid: warned
    assert {r["epoch"] for r in recs if r["method"] == "ft" and r["split"] == "ood"} == {0, 1, None}
    assert any("one value" in w for w in info["warnings"])
    validate_records(recs)
    doms = {r["domain"] for r in recs if r["split"] == "ood" and r["metric"] == "acc"}
    assert doms == {"art_painting", "cartoon", "sketch"}
    assert {r["method"] for r in recs} == {"lp", "ft", "lpft", "lpft-head"}
    assert all(0 <= r["value"] <= 1 for r in recs if r["metric"] == "acc")
    assert info["images"] == 3 * (len(data.id_train) // 16) * 16


def test_pretraining_is_seeded_and_reused(tmp_path):
    bundle_or_skip("digits_mnist_usps.npz")
    from twolayer.empirical.pretrain import PretrainConfig, pretrain_backbone
    cfg = PretrainConfig(source="mnist", arch="resnet-mini", epochs=1, batch_size=64, lr=0.05, size=16,
                         max_images=256)
    state = torch.random.get_rng_state()
    sds = []
    for name in ("a.pt", "b.pt"):
        path, info = pretrain_backbone(cfg, tmp_path / name, log=lambda m: None)
        assert 0.0 <= info["holdout_acc"] <= 1.0
        sds.append(torch.load(path, weights_only=True)["state_dict"])
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert sds[0].keys() == sds[1].keys() and all(torch.equal(sds[0][k], sds[1][k]) for k in sds[0])
    _, again = pretrain_backbone(cfg, tmp_path / "a.pt", log=lambda m: None)
    assert again["reused"]


def _cli_exit(fn, argv):
    with pytest.raises(SystemExit) as ei:
        fn(argv)
    return ei.value.code


def test_cli_errors_and_help(tmp_path, capsys):
    from figures.empirical_distortion import cli as fig_cli
    from paper_checks.empirical import main as checks_main
    from twolayer.empirical.__main__ import main as emp_main
    assert _cli_exit(emp_main, ["table", "--out", str(tmp_path / "nonexistent")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _cli_exit(emp_main, ["table", "--out", str(tmp_path / "empty")]) == 2
    assert _cli_exit(emp_main, ["run", "--dataset", "bogus"]) == 2
    assert _cli_exit(emp_main, ["run", "--set", "{bad json"]) == 2
    assert _cli_exit(checks_main, ["--empirical", str(tmp_path / "nonexistent")]) == 2
    assert _cli_exit(fig_cli, ["--empirical", str(tmp_path / "nonexistent")]) == 2
    assert _cli_exit(fig_cli, ["--empirical", str(tmp_path / "empty")]) == 2
    from experiments.empirical import main as exp_main
    from experiments.empirical_gpu import main as gpu_main
    for fn, prog in ((emp_main, "python -m twolayer.empirical"), (checks_main, "python -m paper_checks.empirical"),
                     (fig_cli, "python -m figures.empirical_distortion"), (exp_main, "python -m experiments.empirical"),
                     (gpu_main, "python -m experiments.empirical_gpu")):
        assert _cli_exit(fn, ["--help"]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: {prog}"), text[:80]
        assert "issue" not in text.lower()
    assert _cli_exit(gpu_main, ["--prepare"]) == 2  # needs --data-dir
    # --set takes {dataset: {overrides}}: a bare value or an unknown dataset exits 2 and says so
    assert _cli_exit(gpu_main, ["--tiny", "--set", '{"pacs": 1}']) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    assert _cli_exit(gpu_main, ["--tiny", "--set", '{"imagenet": {}}']) == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err
    assert _cli_exit(gpu_main, ["--data-dir", str(tmp_path / "nonexistent")]) == 2


def test_table_cli_on_cached_results(digits_run, capsys):
    _, out, _, _ = digits_run
    from twolayer.empirical.__main__ import main as emp_main
    assert emp_main(["table", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "digits -- accuracy" in text and "warnings" in text
    assert _cli_exit(emp_main, ["table", "--out", str(out), "--dataset", "pacs"]) == 2


def test_gpu_script_tiny_on_cpu(tmp_path, capsys):
    """``python -m experiments.empirical_gpu --tiny``: pretraining + cifar-subpop and PACS presets at a
    seconds-long CPU scale, per-phase timings, the exported archive; --prepare fills a carry folder."""
    bundle_or_skip("cifar10_jpeg.npz")
    bundle_or_skip("pacs96_jpeg.npz")
    from experiments.empirical_gpu import main as gpu_main
    out, exp = tmp_path / "res", tmp_path / "export"
    rc = gpu_main(["--phase", "all", "--tiny", "--seeds", "0", "--out", str(out), "--export", str(exp),
                   "--no-bridge"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "pretraining:" in text and "img/s" in text and "phase all: total wall" in text
    assert sorted(p.name for p in exp.iterdir()) == ["results_all.tar.gz", "tables_all.md", "timings_all.json"]
    import tarfile
    names = tarfile.open(exp / "results_all.tar.gz").getnames()
    assert "cifar-subpop/resnet-mini/seed0.json" in names and "pacs/efficientnet-lite0/seed0.json" in names
    tm = json.loads((exp / "timings_all.json").read_text())
    assert tm["datasets"]["pacs"]["train_images_per_s"] > 0 and tm["datasets"]["cifar-subpop"]["pretrain"]
    obj = json.loads((out / "pacs" / "efficientnet-lite0" / "seed0.json").read_text())
    assert obj["config"]["input_size"] == 32 and obj["config"]["ft"]["lrs"] == [1e-3, 1e-2]  # one shared grid
    # --prepare copies the bundles and the EfficientNet-Lite0 code + weights for the device machine
    dd = tmp_path / "carry"
    assert gpu_main(["--prepare", "--phase", "pacs", "--data-dir", str(dd)]) == 0
    assert (dd / "pacs96_jpeg.npz").is_file() and (dd / "digits_mnist_usps.npz").is_file()
    assert (dd / "site" / "efficientnet_lite_pytorch").is_dir()


def test_bridge_hook(tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util
    import sys
    import types

    from experiments import empirical_gpu as G
    logs = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert G._bridge(tmp_path, None, "", logs.append)["status"] == "absent" and "skipped" in logs[-1]
    monkeypatch.undo()
    calls = []
    fake = types.ModuleType("experiments.real_features")
    fake.__spec__ = importlib.machinery.ModuleSpec("experiments.real_features", None)
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "experiments.real_features", fake)
    assert G._bridge(tmp_path, None, "--quick", logs.append)["status"] == "ok"
    assert calls == [["--out", str(tmp_path / "real_features"), "--quick"]]
    assert G._bridge(tmp_path, "dd", "", logs.append, ["digits", "cifar-subpop"])["status"] == "ok"
    assert calls[-1] == ["--out", str(tmp_path / "real_features"), "--datasets", "digits", "cifar-subpop",
                         "--data-dir", "dd"]
    assert G._bridge(tmp_path, None, "", logs.append, [])["status"].startswith("skipped")
    assert len(calls) == 2

    def boom(argv):
        raise RuntimeError("bridge broke")
    fake.main = boom
    res = G._bridge(tmp_path, None, "", logs.append)
    assert res["status"] == "error" and "bridge broke" in res["error"]


def test_cifar_stl_tiny_preset_from_self_made_files(tmp_path, capsys):
    from test_empirical_protocol import _write_cifar_stl

    from twolayer.empirical.__main__ import main as emp_main
    _write_cifar_stl(tmp_path / "data", n=20)
    rc = emp_main(["run", "--dataset", "cifar-stl", "--scale", "tiny", "--seed", "0", "--device", "cpu",
                   "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "res")])
    assert rc == 0
    assert "cifar-stl -- accuracy" in capsys.readouterr().out
    recs = load_records(tmp_path / "res")
    assert {r["domain"] for r in recs if r["split"] == "ood"} == {"stl10"}
    rc = emp_main(["run", "--dataset", "cifar-stl", "--scale", "tiny", "--data-dir", str(tmp_path / "none"),
                   "--out", str(tmp_path / "res2"), "--device", "cpu"])
    assert rc == 2 and "data_batch_1" in capsys.readouterr().err
