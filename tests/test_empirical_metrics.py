"""Measurements (THEORY.md §7): distortion, weight distance, head alignment, intervals, LP."""

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from twolayer.empirical.backbones import build_network  # noqa: E402
from twolayer.empirical.data import ImageSet  # noqa: E402
from twolayer.empirical.methods import LPConfig, augment_batch, fit_logreg  # noqa: E402
from twolayer.empirical.metrics import (distortion_from_features, feature_distortion, head_alignment,  # noqa: E402
                                        interval90, weight_distance)

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    net = build_network("resnet-mini", num_classes=4).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (24, 3, 16, 16), dtype=torch.uint8, generator=g)
    return net, ImageSet(x, torch.arange(24) % 4, "toy")


def test_distortion_zero_for_unchanged_network(net_and_data):
    net, data = net_and_data
    same = copy.deepcopy(net)
    d = feature_distortion(net, same, data)
    assert d == {"msq": 0.0, "rel_msq": 0.0, "euclid": 0.0, "cos": pytest.approx(0.0, abs=1e-12)}
    assert weight_distance(net, same) == {"weight_dist": 0.0, "weight_dist_rel": 0.0}


def test_distortion_grows_with_a_change(net_and_data):
    net, data = net_and_data
    moved = copy.deepcopy(net)
    with torch.no_grad():
        moved.body.net.layer3[0].conv2.weight.mul_(1.5)
    d = feature_distortion(net, moved, data)
    assert d["msq"] > 0 and d["euclid"] > 0 and d["rel_msq"] > 0
    w = weight_distance(net, moved)
    expected = 0.5 * float(net.body.net.layer3[0].conv2.weight.detach().norm())
    assert w["weight_dist"] == pytest.approx(expected, rel=1e-6)


def test_distortion_formulas():
    f0 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    f1 = f0 + torch.tensor([[0.0, 3.0], [4.0, 0.0]])
    d = distortion_from_features(f0, f1)
    assert d["msq"] == pytest.approx((9 + 16) / 4)
    assert d["euclid"] == pytest.approx(3.5)
    assert d["rel_msq"] == pytest.approx(d["msq"] / (5 / 4))
    cos = 1 - 0.5 * (1 / math.sqrt(10) + 2 / math.sqrt(20))
    assert d["cos"] == pytest.approx(cos)
    assert distortion_from_features(f0, 3 * f0)["cos"] == pytest.approx(0.0, abs=1e-12)


def test_head_alignment_phi():
    w = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    assert head_alignment(w, w)["phi"] == pytest.approx(0.0, abs=1e-9)
    a = head_alignment(torch.zeros_like(w), w)
    assert a["phi"] == pytest.approx(float((w ** 2).sum())) and a["phi_rel"] == pytest.approx(1.0)


def test_interval90_matches_t_distribution():
    from scipy.stats import t
    v = [1.0, 2.0, 4.0]
    mean, hw, n = interval90(v)
    assert n == 3 and mean == pytest.approx(7 / 3)
    assert hw == pytest.approx(t.ppf(0.95, 2) * np.std(v, ddof=1) / math.sqrt(3))
    assert math.isnan(interval90([5.0])[1]) and interval90([])[2] == 0


def test_augment_batch_is_seeded_crop_and_flip():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.int64).view(2, 3, 4, 4).to(torch.uint8)
    a = augment_batch(x, torch.Generator().manual_seed(0), pad=1, hflip=True)
    b = augment_batch(x, torch.Generator().manual_seed(0), pad=1, hflip=True)
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert torch.equal(augment_batch(x, torch.Generator(), pad=0, hflip=False), x)
    # every crop is a shifted window of the zero-padded image
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        windows = [xp[i, :, r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
        windows += [w.flip(2) for w in windows]
        assert any(torch.equal(a[i], w) for w in windows)


def test_logistic_regression_sweep_selects_on_validation():
    g = torch.Generator().manual_seed(0)
    means = 3 * torch.randn(3, 8, generator=g)
    y = torch.arange(300) % 3
    X = means[y] + torch.randn(300, 8, generator=g)
    res = fit_logreg(X[:200], y[:200], X[200:], y[200:], 3, LPConfig(n_l2=6, l2_min=1e-5, l2_max=1.0, max_iter=50))
    assert res.val_acc > 0.9 and len(res.sweep) == 6 and len(res.heads) == 6
    assert res.val_acc == max(s["val_acc"] for s in res.sweep)
    norms = [s["head_norm"] for s in res.sweep]  # strong -> weak regularisation
    assert norms == sorted(norms)
    assert res.head_norm == pytest.approx(float(res.weight.norm()), rel=1e-5)
