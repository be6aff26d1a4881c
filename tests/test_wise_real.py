"""WiSE-FT on real networks (issue 20 §3): the interpolation's endpoints, the saved-models opt-in,
and the experiment's records (skips cleanly without torch, or without ../shared/data for the
tiny end-to-end run)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from twolayer.empirical.backbones import build_network  # noqa: E402
from twolayer.empirical.data import ImageSet  # noqa: E402
from twolayer.empirical.errors import CheckpointError  # noqa: E402
from twolayer.empirical.metrics import accuracy  # noqa: E402
from twolayer.empirical.saved_models import cpu_state, has_models, load_models, save_models  # noqa: E402
from twolayer.empirical.wise import interpolate_state, wise_and_ensemble  # noqa: E402

torch.set_num_threads(1)


def _net(seed: int):
    torch.manual_seed(seed)
    net = build_network("resnet-mini", 3, image_size=8)
    with torch.no_grad():   # distinct BatchNorm statistics at the two ends
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _images(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8),
            torch.randint(0, 3, (n,), generator=g))


def test_interpolation_endpoints_reproduce_accuracy_exactly():
    a, b = _net(0), _net(1)
    x, y = _images()
    rows = wise_and_ensemble(lambda: build_network("resnet-mini", 3, image_size=8), cpu_state(a), cpu_state(b),
                             {"test": (x, y)}, [0.0, 0.5, 1.0])
    got = {(r["kind"], r["alpha"]): r["value"] for r in rows if r["metric"] == "acc"}
    data = ImageSet(x, y)
    for kind in ("wise", "ensemble"):
        assert got[(kind, 0.0)] == accuracy(a, data, amp=False)
        assert got[(kind, 1.0)] == accuracy(b, data, amp=False)
    assert len(rows) == 2 * 3 * 2      # kinds x alphas x (acc, nll)


def test_interpolate_state_moves_batchnorm_statistics_too():
    sa, sb = cpu_state(_net(0)), cpu_state(_net(1))
    mid = interpolate_state(sa, sb, 0.25)
    keys = [k for k in sa if k.endswith("running_var")]
    assert keys
    for k in keys + [k for k in sa if k.endswith("weight")]:
        torch.testing.assert_close(mid[k], 0.75 * sa[k] + 0.25 * sb[k])
    assert interpolate_state(sa, sb, 0.0) == sa and interpolate_state(sa, sb, 1.0) == sb
    with pytest.raises(ValueError, match="differ in keys"):
        interpolate_state(sa, {k: v for k, v in sb.items() if "head" not in k}, 0.5)


def test_saved_models_round_trip(tmp_path):
    states = {n: cpu_state(_net(i)) for i, n in enumerate(("start_ft", "lp", "ft", "lpft"))}
    folder = tmp_path / "m" / "seed0"
    assert not has_models(folder)
    with pytest.raises(CheckpointError, match="--save-models"):
        load_models(folder)
    save_models(folder, states, {"seed": 0, "config_hash": "abc"})
    assert has_models(folder)
    back, meta = load_models(folder)
    assert meta["config_hash"] == "abc" and meta["models"] == sorted(states)
    for n, sd in states.items():
        assert back[n].keys() == sd.keys()
        for k in sd:
            assert torch.equal(back[n][k], sd[k])
    with pytest.raises(ValueError, match="unknown saved-model"):
        save_models(folder, {"other": states["ft"]}, {})


def test_save_models_is_not_part_of_the_run_hash(tmp_path):
    from experiments.scoreboard import FAMILIES, network_config
    from twolayer.empirical.results import config_hash
    from twolayer.empirical.runner import _science
    off = network_config(FAMILIES["digits"], "cpu", tmp_path)
    on = network_config(FAMILIES["digits"], "cpu", tmp_path, save_models=True)
    assert on["save_models"] and not off["save_models"]
    assert config_hash(_science(on)) == config_hash(_science(off))


def test_wise_real_tiny_records_have_the_declared_columns(tmp_path):
    """Network phase with saving at the tiny scale (one seed), then the experiment."""
    from twolayer.empirical.data import resolve_data_dir
    if not (resolve_data_dir() / "digits_mnist_usps.npz").is_file():
        pytest.skip("data bundle digits_mnist_usps.npz not found (set TWOLAYER_DATA)")
    from experiments import scoreboard, wise_real
    cache, out = tmp_path / "c", tmp_path / "r"
    assert scoreboard.main(["--scale", "tiny", "--family", "digits", "--phase", "network", "--seeds", "0",
                            "--cache", str(cache), "--save-models", "--threads", "1"]) == 0
    assert wise_real.main(["--scale", "tiny", "--family", "digits", "--seeds", "0", "--cache", str(cache),
                           "--results", str(out)]) == 0
    df, meta = wise_real.load_results(out)
    assert list(df.columns) == list(wise_real.COLUMNS)
    assert set(df["side"]) == {"network", "exact"} and set(df["path"]) == set(wise_real.NET_PATHS)
    chk = meta["summary"]["endpoint_check"]
    assert chk["ft"]["max_abs_diff"] == 0.0 and chk["lpft"]["max_abs_diff"] == 0.0
    assert chk["lp"]["max_abs_diff"] < 1e-6      # the run records LP's accuracy as a float32 mean
    assert meta["git_revision"] and "torch" in json.dumps(meta["versions"])
    net = df[(df["side"] == "network") & (df["kind"] == "wise")]
    assert np.allclose(sorted(net["alpha"].unique()), wise_real.ALPHAS)
