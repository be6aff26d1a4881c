"""The bridge end to end on digits (THEORY.md §9, issue 8 §1): features of a (briefly)
pretrained digits backbone -> Problem -> exact LP / FT / LP-FT -> records, checks, the
join with cached real-network results, the figure. Small; skips without torch or data."""

import json
import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from experiments import real_features as rf  # noqa: E402

torch.set_num_threads(2)

#: tiny: 1 pretraining epoch on 128 images, 20 images per class, k = 4, a short time grid
TINY = rf.Config(datasets=("digits",), n_tasks=1, k=4, s_tols=(3e-2,), targets=("labels",),
                 quick_backbone=True, pool_max=300, n_times=5, empirical_dirs=(), max_per_class=20,
                 pretrain_overrides=(("epochs", 1), ("max_images", 128)))


def _data_or_skip():
    from twolayer.empirical.data import resolve_data_dir
    path = resolve_data_dir() / "digits_mnist_usps.npz"
    if not path.is_file():
        pytest.skip(f"data bundle not found at {path} (set TWOLAYER_DATA)")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    _data_or_skip()
    out = tmp_path_factory.mktemp("rf")
    logs = []
    recs = rf.run(TINY, out=out, device="cpu", progress=False, log=logs.append)
    return out, recs, logs


def test_records_have_the_interface_columns(tiny_run):
    _, recs, _ = tiny_run
    df = pd.DataFrame.from_records(recs)
    need = ["dataset", "method", "eps", "m", "rho", "thm33_bound", "thm33_status", "lin_id_acc",
            "lin_ood_acc", "lin_ood_loss", "net_id_acc", "net_ood_acc"]
    assert not [c for c in need if c not in df.columns]
    assert sorted(df["method"]) == ["ft", "lp", "lpft"]
    assert (df["dataset"] == "digits").all() and (df["ood_domain"] == "usps").all()
    assert df["net_id_acc"].isna().all()           # no network results cached here
    r = df.iloc[0]
    assert 1 <= r["m"] < r["d"] - r["k"] and r["d"] == 64 and r["k"] == 4
    assert r["eps"] == pytest.approx(r["eps_closed_form"], abs=1e-9)
    assert r["eps"] == pytest.approx(r["eps_problem"], abs=1e-9)
    assert 0.0 <= r["rho"] <= 1.0
    lp = df[df["method"] == "lp"].iloc[0]
    assert lp["lin_fc_id"] == 0.0 and lp["lin_fc_ood"] == 0.0 and lp["thm33_status"] == "not_applicable"
    ft = df[df["method"] == "ft"].iloc[0]
    assert ft["lin_fc_id"] > 0 and ft["thm33_status"] in ("vacuous", "holds", "violated", "not_applicable")
    assert (df["lin_id_acc"] > 0.5).all()          # the two digits are told apart on ID test
    # FT interpolates the training labels on S at least as well as LP
    assert ft["lin_train_loss"] <= lp["lin_train_loss"] * (1 + 1e-9)


def test_rerun_reuses_the_cache(tiny_run):
    out, recs, _ = tiny_run
    # cached features are found without the checkpoint (e.g. extracted on another machine)
    for ck in (out / "real_features" / "features" / "checkpoints").glob("*.pt"):
        ck.rename(ck.with_suffix(".moved"))
    logs = []
    again = rf.run(TINY, out=out, device="cpu", progress=False, log=logs.append)
    assert any("features cached" in m for m in logs) and not any("pretrain" in m for m in logs)
    a = pd.DataFrame.from_records(recs).set_index("method")["lin_ood_loss"]
    b = pd.DataFrame.from_records(again).set_index("method")["lin_ood_loss"]
    assert np.allclose(a.sort_index(), b.sort_index(), rtol=0, atol=0)
    from experiments._common import load_records
    assert len(load_records(rf.NAME, TINY, out=out)) == 3


def _fake_network_run(root, ft_ood, lp_ood, dist_id, dist_ood, lpft_id):
    """A minimal run file in the format of twolayer.empirical.results."""
    recs = []
    for m, ood, did, dood in (("lp", lp_ood, 0.0, 0.0), ("ft", ft_ood, dist_id, dist_ood),
                              ("lpft", 0.5, lpft_id, 0.1)):
        base = {"method": m, "selected": True, "epoch": None}
        recs += [dict(base, split="id_test", domain="id", metric="acc", value=0.9),
                 dict(base, split="ood", domain="usps", metric="acc", value=ood)]
        if m != "lp":
            recs += [dict(base, split="id_val", domain="id", metric="distortion_euclid", value=did),
                     dict(base, split="ood", domain="usps", metric="distortion_euclid", value=dood)]
    p = root / "digits" / "resnet-mini" / "seed0.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"config_hash": "x", "config": {"quick": True}, "records": recs,
                             "backbone": {"checkpoint": "none.pt"}}))


def test_join_with_network_results_and_checks(tiny_run, tmp_path):
    _, recs, _ = tiny_run
    _fake_network_run(tmp_path, ft_ood=0.6, lp_ood=0.7, dist_id=2.0, dist_ood=1.0, lpft_id=0.5)
    joined = rf._join_network([dict(r) for r in recs], [tmp_path])
    df = pd.DataFrame.from_records(joined)
    by = df.set_index("method")
    assert by.loc["lp", "net_ood_acc"] == 0.7 and by.loc["ft", "net_ood_acc"] == 0.6
    assert by.loc["ft", "net_fc_id"] == 2.0 and by.loc["lp", "net_fc_id"] == 0.0
    o = rf.orderings(df).iloc[0]
    assert o["net_lp_beats_ft_ood"] is True or o["net_lp_beats_ft_ood"] == True  # noqa: E712
    rows = {r["id"]: r for r in rf.check(df, TINY)}
    assert rows["bridge_geometry"]["status"] == "pass"
    # each agreement row compares the linear model's ordering with the network's
    lin = bool(o["lin_lp_beats_ft_ood"])
    assert rows["agree_lp_vs_ft_ood"]["status"] == ("pass" if lin else "fail")
    assert rows["agree_lp_vs_ft_ood"]["n_cases"] == 1
    lines = rf.agreement_lines(df)
    assert len(lines) == 1 and "network yes" in lines[0] and "phase diagram" in lines[0]
    # without network results the agreement rows say not_applicable, never pass
    rows0 = {r["id"]: r for r in rf.check(pd.DataFrame.from_records(recs), TINY)}
    assert rows0["agree_lp_vs_ft_ood"]["status"] == "not_applicable"
    assert rows0["thm33_published"]["status"] == "not_applicable"   # real labels: y != X w*
    assert math.isfinite(rows0["bridge_geometry"]["margin"])


def test_figure_draws_from_the_cache(tiny_run, tmp_path):
    out, _, _ = tiny_run
    from figures.real_features import main
    paths = main(out, tmp_path)
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths)
