"""The authors' protocol pieces (issue 8 §2): per-seed stratified splits, the scikit-learn probe,
border-free random-resized crops, the backbone's input resolution, and the cifar-stl loader on
tiny files in torchvision's on-disk formats written here."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("sklearn")

from twolayer.empirical import data as D  # noqa: E402
from twolayer.empirical.errors import DataNotFoundError  # noqa: E402


def _toy_shift(n_per_class=(30, 20, 10), seed=0) -> D.ShiftData:
    ys = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = torch.arange(len(ys), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 4, 4).contiguous()
    tr, va, te = D._id_splits(np.arange(len(ys)), ys, seed, 0.2, 0.2)

    def mk(i, name):
        return D.ImageSet(x[torch.from_numpy(i)], torch.from_numpy(ys[i]), name)

    ood = D.ImageSet(x[:5], torch.zeros(5, dtype=torch.long), "o")
    return D.ShiftData("toy", ["a", "b", "c"], mk(tr, "id_train"), mk(va, "id_val"), mk(te, "id_test"), {"o": ood},
                       {"id_train": tr, "id_val": va, "id_test": te}, {"val_frac": 0.2, "test_frac": 0.2})


def test_resplit_per_seed_differs_is_stratified_and_disjoint():
    base = _toy_shift()
    a, b, a2 = D.resplit(base, 1), D.resplit(base, 2), D.resplit(base, 1)
    assert not np.array_equal(a.splits["id_train"], b.splits["id_train"])
    assert all(np.array_equal(a.splits[k], a2.splits[k]) for k in ("id_train", "id_val", "id_test"))
    for s in (a, b):
        parts = [s.splits[k] for k in ("id_train", "id_val", "id_test")]
        cat = np.concatenate(parts)
        assert len(np.unique(cat)) == len(cat) == 60  # a partition of the pool
        for name, want in (("id_val", [6, 4, 2]), ("id_test", [6, 4, 2]), ("id_train", [18, 12, 6])):
            counts = np.bincount(getattr(s, name).labels.numpy(), minlength=3)
            assert counts.tolist() == want, (name, counts)  # stratified: every class in proportion
        # images follow their indices (the toy image value is its source index)
        assert np.array_equal(s.id_train.images[:, 0, 0, 0].numpy(), s.splits["id_train"])
        # positions index the pool of the data resplit was called on (features computed once)
        pool, src, fixed = base.pool()
        assert not fixed and np.array_equal(src[s.pool_pos["id_val"]], s.splits["id_val"])
    assert a.ood["o"] is base.ood["o"] and a.meta["split_seed"] == 1


def test_sklearn_probe_matches_sklearn_and_records_convergence():
    from sklearn.linear_model import LogisticRegression

    from twolayer.empirical.methods import LPConfig, fit_logreg
    g = torch.Generator().manual_seed(0)
    means = 3 * torch.randn(3, 8, generator=g)
    y = torch.arange(300) % 3
    X = 5.0 + 2.0 * (means[y] + torch.randn(300, 8, generator=g))  # offset and scale: standardisation matters
    res = fit_logreg(X[:200], y[:200], X[200:], y[200:], 3, LPConfig(n_l2=5, c_min=1e-3, c_max=10.0))
    assert len(res.sweep) == 5 and all("converged" in e and "C" in e for e in res.sweep)
    assert res.val_acc == max(e["val_acc"] for e in res.sweep) and res.val_acc > 0.9
    assert [e["C"] for e in res.sweep] == sorted(e["C"] for e in res.sweep)  # strong -> weak
    # the head acts on the raw features and predicts exactly what sklearn predicts
    Xn = X.double().numpy()
    mu, sd = Xn[:200].mean(), Xn[:200].std()
    clf = LogisticRegression(C=res.C, max_iter=1000, tol=1e-4).fit((Xn[:200] - mu) / sd, y[:200].numpy())
    ours = (X[200:] @ res.weight.T + res.bias).argmax(1).numpy()
    assert (ours == clf.predict((Xn[200:] - mu) / sd)).mean() > 0.99
    assert res.l2 == pytest.approx(1 / (res.C * 200)) and res.head_norm == pytest.approx(float(res.weight.norm()),
                                                                                          rel=1e-5)
    # one iteration cannot converge: recorded and warned
    bad = fit_logreg(X[:200], y[:200], X[200:], y[200:], 3, LPConfig(n_l2=2, c_min=10.0, c_max=100.0, max_iter=1))
    assert not any(e["converged"] for e in bad.sweep) and any("did not converge" in w for w in bad.warnings)


def test_sklearn_probe_binary_and_edge_warning():
    from twolayer.empirical.methods import LPConfig, fit_logreg
    g = torch.Generator().manual_seed(1)
    y = torch.arange(200) % 2
    X = torch.randn(200, 5, generator=g) + 4 * y[:, None].float()
    res = fit_logreg(X[:150], y[:150], X[150:], y[150:], 2, LPConfig(n_l2=3, c_min=1e-6, c_max=1e-5))
    assert res.weight.shape == (2, 5) and torch.allclose(res.weight[0], -res.weight[1])
    assert any("largest" in w for w in res.warnings)  # a too-strong grid: the best C lies above it


def test_random_resized_crop_adds_no_borders_and_is_seeded():
    from twolayer.empirical.augment import random_resized_crop, sample_boxes
    x = torch.full((16, 3, 96, 96), 200, dtype=torch.uint8)
    y = random_resized_crop(x, 112, torch.Generator().manual_seed(0), scale=(0.2, 1.0))
    # a constant image stays constant: no zero (black) border pixel anywhere
    assert y.shape == (16, 3, 112, 112) and float(y.min()) == pytest.approx(200.0, abs=1e-3)
    assert float(y.max()) == pytest.approx(200.0, abs=1e-3)
    b = sample_boxes(1000, 96, 64, torch.Generator().manual_seed(0), scale=(0.3, 1.0))
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= 64 + 1e-4).all() and (b[:, 3] <= 96 + 1e-4).all()
    z = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    a1 = random_resized_crop(z, 48, torch.Generator().manual_seed(3))
    a2 = random_resized_crop(z, 48, torch.Generator().manual_seed(3))
    a3 = random_resized_crop(z, 48, torch.Generator().manual_seed(4))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    with pytest.raises(ValueError, match="scale"):
        sample_boxes(2, 8, 8, torch.Generator(), scale=(0.0, 1.0))


def test_network_resizes_to_its_input_size():
    from twolayer.empirical.backbones import build_network
    net = build_network("resnet-mini", 3, input_size=40).eval()
    assert net.input_size == 40
    x = torch.randint(0, 255, (2, 3, 16, 16), dtype=torch.uint8)
    seen = {}

    def hook(module, inp):
        seen["shape"] = tuple(inp[0].shape)

    net.body.register_forward_pre_hook(hook)
    net(x)
    assert seen["shape"] == (2, 3, 40, 40)
    assert build_network("resnet-mini", 3).input_size is None  # default: inputs used as given


def _write_cifar_stl(root, n=6, seed=0):
    """Tiny CIFAR-10 python batches and STL-10 binaries in torchvision's formats."""
    rng = np.random.default_rng(seed)
    c = root / "cifar-10-batches-py"
    c.mkdir(parents=True)
    for name in D.CIFAR_BATCHES:
        labels = [i % 10 for i in range(n * 10 // 2)]
        d = {"batch_label": name, "labels": labels,
             "data": rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)}
        with open(c / name, "wb") as fh:
            pickle.dump(d, fh)
    s = root / "stl10_binary"
    s.mkdir()
    m = 30
    img = rng.integers(0, 255, (m, 3, 96, 96), dtype=np.uint8)
    img.transpose(0, 1, 3, 2).tofile(s / "test_X.bin")  # column-major, as STL-10 ships it
    (np.arange(m) % 10 + 1).astype(np.uint8).tofile(s / "test_y.bin")
    return img


def test_cifar_stl_loader_on_self_made_files(tmp_path):
    img = _write_cifar_stl(tmp_path / "torchvision")
    x, y = D.read_stl10_binary(tmp_path / "torchvision" / "stl10_binary")
    assert np.array_equal(x, img) and y.tolist() == [i % 10 for i in range(30)]
    d = D.load_cifar_stl(data_dir=tmp_path, size=None)  # found under <root>/torchvision
    assert d.classes == list(D.STL_TO_CIFAR.values()) and d.num_classes == 9
    assert d.id_train.images.shape[1:] == (3, 32, 32) and d.ood["stl10"].images.shape[1:] == (3, 96, 96)
    assert len(d.ood["stl10"]) == 27  # 'monkey' (STL label 8) has no CIFAR class
    stl_names = [D.STL_CLASSES[t] for t in y[d.splits["ood/stl10"]]]
    assert [D.STL_TO_CIFAR[n] for n in stl_names] == [d.classes[t] for t in d.ood["stl10"].labels.tolist()]
    assert "frog" not in d.classes and d.meta["fixed_test"]
    e = D.load_cifar_stl(root=tmp_path / "torchvision", size=32)
    assert e.ood["stl10"].images.shape[1:] == (3, 32, 32)
    # per-seed splits keep the official test set fixed
    r = D.resplit(d, 5)
    assert np.array_equal(r.splits["id_test"], d.splits["id_test"]) and "id_test" not in r.pool_pos


def test_cifar_stl_missing_files_are_named(tmp_path):
    with pytest.raises(DataNotFoundError) as ei:
        D.load_cifar_stl(data_dir=tmp_path)
    msg = str(ei.value)
    assert "data_batch_1" in msg and "test_batch" in msg and "test_X.bin" in msg and "download=True" in msg
