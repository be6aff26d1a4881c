"""Loaders of the empirical companion (THEORY.md §7): bundles, ImageFolder, errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from twolayer.empirical import data as D  # noqa: E402
from twolayer.empirical.errors import DataNotFoundError, UnknownDatasetError  # noqa: E402


def bundle_or_skip(name: str):
    """Path of a shared data bundle, or skip the test cleanly when it is absent."""
    from twolayer.empirical.data import resolve_data_dir
    path = resolve_data_dir() / name
    if not path.is_file():
        pytest.skip(f"data bundle {name} not found at {path} (set TWOLAYER_DATA)")
    return path


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("TWOLAYER_DATA", str(tmp_path / "env"))
    assert D.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert D.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("TWOLAYER_DATA")
    assert D.resolve_data_dir() == (D.REPO_ROOT.parent / "shared" / "data").resolve()


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="TWOLAYER_DATA"):
        D.load_digits(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        D.load_shift("pacs", data_dir=tmp_path)


def test_unknown_dataset_is_a_key_error():
    with pytest.raises(KeyError, match="known datasets"):
        D.load_shift("imagenet-sketchy")
    with pytest.raises(UnknownDatasetError):
        D.load_shift("nope")


def _disjoint(*arrays):
    cat = np.concatenate(arrays)
    return len(np.unique(cat)) == len(cat)


def test_digits_bundle_splits_seeded_and_disjoint():
    bundle_or_skip("digits_mnist_usps.npz")
    a = D.load_digits(seed=3, size=16, max_per_class=20)
    b = D.load_digits(seed=3, size=16, max_per_class=20)
    c = D.load_digits(seed=4, size=16, max_per_class=20)
    assert a.id_train.images.shape[1:] == (3, 16, 16) and a.id_train.images.dtype == torch.uint8
    assert a.num_classes == 10 and set(a.ood) == {"usps"} and not a.hflip
    assert _disjoint(a.splits["id_train"], a.splits["id_val"], a.splits["id_test"])
    assert all(np.array_equal(a.splits[k], b.splits[k]) for k in a.splits)
    assert not np.array_equal(a.splits["id_train"], c.splits["id_train"])
    # pretraining images are never downstream images
    pre, pool = D._digits_partition(5000)
    assert _disjoint(pre, pool) and np.isin(a.splits["id_train"], pool).all()
    assert len(a.id_train) + len(a.id_val) + len(a.id_test) == 200


def test_pacs_bundle_domains_and_subset():
    bundle_or_skip("pacs96_jpeg.npz")
    d = D.load_pacs(id_domain="photo", max_per_class=4, size=32)
    assert set(d.ood) == {"art_painting", "cartoon", "sketch"}
    assert d.classes[:2] == ["dog", "elephant"] and d.num_classes == 7
    assert d.image_size == 32 and len(d.id_train) + len(d.id_val) + len(d.id_test) == 28
    assert all(len(s) == 28 for s in d.ood.values())
    e = D.load_pacs(id_domain="sketch", ood_domains=["photo"], max_per_class=4)
    assert list(e.ood) == ["photo"] and e.image_size == 96
    with pytest.raises(ValueError, match="split is empty"):
        D.load_pacs(max_per_class=2)
    with pytest.raises(KeyError):
        D.load_pacs(id_domain="photo", ood_domains=["photo"])


def test_cifar_subpop_held_out_from_pretraining(tmp_path):
    bundle_or_skip("cifar10_jpeg.npz")
    d = D.load_cifar_subpop(max_per_class=10)
    z = np.load(D.resolve_data_dir() / "cifar10_jpeg.npz")
    pre, pool = D._cifar_partition(z["split"])
    assert len(pre) == 40_000 and len(pool) == 20_000 and _disjoint(pre, pool)
    used = np.concatenate([d.splits[k] for k in d.splits])
    assert np.isin(used, pool).all() and not np.isin(used, pre).any()
    fine = z["label"]
    names = [str(c) for c in z["classes"]]
    id_fine = {names[i] for i in np.unique(fine[np.concatenate([d.splits["id_train"], d.splits["id_val"]])])}
    ood_fine = {names[i] for i in np.unique(fine[d.splits["ood/subpop"]])}
    assert id_fine.isdisjoint(ood_fine)
    assert id_fine == {c for ids, _ in D.CIFAR_SUBPOP.values() for c in ids}
    assert d.classes == list(D.CIFAR_SUBPOP) and d.num_classes == 3
    d.save_splits(tmp_path / "s.npz")
    saved = np.load(tmp_path / "s.npz")
    assert np.array_equal(saved["id_train"], d.splits["id_train"]) and "meta_json" in saved.files


def test_imagefolder_trees(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for dom in ("real", "paint"):
        for cls in ("cat", "dog"):
            p = tmp_path / dom / cls
            p.mkdir(parents=True)
            for i in range(5):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(p / f"{i}.png")
    d = D.load_imagefolder_shift(tmp_path / "real", [tmp_path / "paint"], size=16, val_frac=0.2, test_frac=0.2)
    assert d.classes == ["cat", "dog"] and d.image_size == 16 and set(d.ood) == {"paint"}
    assert len(d.id_train) + len(d.id_val) + len(d.id_test) == 10 and len(d.ood["paint"]) == 10
    (tmp_path / "bad" / "horse").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "bad" / "horse" / "0.png")
    with pytest.raises(ValueError, match="same class folders"):
        D.load_imagefolder_shift(tmp_path / "real", {"bad": tmp_path / "bad"}, size=16)
    with pytest.raises(DataNotFoundError):
        D.load_imagefolder_shift(tmp_path / "missing", [], size=16)


def test_torchvision_pair_offline_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="download=True"):
        D.load_cifar_stl(root=tmp_path, download=False)
