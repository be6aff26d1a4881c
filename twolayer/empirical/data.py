"""ID / OOD image data for the empirical LP / FT / LP-FT comparison (THEORY.md §7).

Every image set is held in memory as one ``uint8`` tensor ``(N, 3, H, W)`` plus
``int64`` labels, decoded once, so that on a GPU the whole set can live on the
device (no data-loader workers, no per-epoch decoding).

Built-in shifts (``load_shift(name, ...)``):

``pacs``
    PACS (``pacs96_jpeg.npz``). ID = ``photo`` by default, OOD = the other
    three domains (art_painting, cartoon, sketch), each reported separately.
    Any domain can be ID.
``cifar-subpop``
    A BREEDS-style subpopulation shift built from CIFAR-10 (``cifar10_jpeg.npz``):
    the same superclasses, different subclasses for ID and OOD
    (see ``CIFAR_SUBPOP``). Only images *held out from pretraining* are used:
    ``cifar_pretrain_split`` fixes 40,000 of the 50,000 train images (a
    permutation with the constant seed ``CIFAR_PRETRAIN_SEED``) for
    pretraining; the other 10,000 train images and the 10,000 test images form
    the downstream pool, so no evaluation image was ever seen in pretraining.
    Both ID and OOD come from the same JPEG bundle (the same compression).
``digits``
    MNIST -> USPS (``digits_mnist_usps.npz``); 2,000 of the 5,000 MNIST images
    (fixed permutation, ``DIGITS_PRETRAIN_SEED``) are reserved for
    pretraining a small network, the remaining 3,000 are the ID data; OOD is
    USPS (test split by default). Images are resized to ``size`` (28) and
    replicated to 3 channels. Small enough for CPU tests.
``cifar-stl``
    CIFAR-10 -> STL-10 (the paper's shift, 9 shared classes) read directly
    from the torchvision on-disk formats (``cifar-10-batches-py`` pickles and
    ``stl10_binary``) under ``<data_dir>`` or ``<data_dir>/torchvision``; a
    missing file is a ``DataNotFoundError`` naming it.
``cifar10c``
    CIFAR-10 -> CIFAR-10-C style corruptions (``twolayer.empirical.corruptions``):
    ID = the 10-class task on the train images held out from pretraining, OOD =
    13 ``imagecorruptions`` corruptions of a fixed test subset, JPEG q75 like the bundle.
``imagefolder``
    One ImageFolder tree per domain (``load_imagefolder_shift``).

The data directory is resolved as: explicit argument, then the environment
variable ``TWOLAYER_DATA``, then ``<repo>/../shared/data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataNotFoundError, UnknownDatasetError

__all__ = [
    "ImageSet",
    "ShiftData",
    "resolve_data_dir",
    "decode_jpeg_bundle",
    "load_pacs",
    "load_cifar_subpop",
    "cifar_pretrain_split",
    "load_digits",
    "digits_pretrain_split",
    "load_imagefolder_shift",
    "load_cifar_stl",
    "load_shift",
    "resplit",
    "read_cifar10_batches",
    "read_stl10_binary",
    "DATASETS",
    "CIFAR_SUBPOP",
    "CIFAR_PRETRAIN_SEED",
    "DIGITS_PRETRAIN_SEED",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Constant seeds that fix the pretraining / downstream partition of a bundle.
#: They do not depend on any experiment seed, so that a pretrained checkpoint
#: never saw a downstream evaluation image.
CIFAR_PRETRAIN_SEED = 20220222
CIFAR_PRETRAIN_SIZE = 40_000
DIGITS_PRETRAIN_SEED = 20220223
DIGITS_PRETRAIN_SIZE = 2_000

#: cifar-subpop: superclass -> (ID subclasses, OOD subclasses), CIFAR-10 names.
#: Chosen so that each superclass is a natural category and its ID and OOD
#: members look different (BREEDS: same superclass, disjoint subclasses).
CIFAR_SUBPOP: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vehicle": (("airplane", "automobile"), ("ship", "truck")),
    "mammal": (("cat", "deer"), ("dog", "horse")),
    "bird_or_frog": (("bird",), ("frog",)),
}


# --------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Images ``(N, 3, H, W)`` uint8 and labels ``(N,)`` int64, in memory."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"ImageSet {self.name!r}: images must be uint8 (N, 3, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageSet {self.name!r}: {self.images.shape[0]} images but labels of shape "
                f"{tuple(self.labels.shape)}")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx, name: str | None = None) -> "ImageSet":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return ImageSet(self.images[idx], self.labels[idx], name or self.name)

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.name)

    def sample(self, k: int, seed: int = 0) -> "ImageSet":
        """A fixed random subset of at most ``k`` images (sets are often ordered by class)."""
        if len(self) <= k:
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:k].sort().values
        idx = idx.to(self.images.device)
        return ImageSet(self.images[idx], self.labels[idx], self.name)


@dataclass
class ShiftData:
    """An ID / OOD pair with seeded ID train / val / test splits.

    ``splits`` maps split names (``id_train``, ``id_val``, ``id_test``,
    ``ood/<domain>``) to indices into the source (bundle or file list) so that
    they can be saved with the results; ``meta`` documents the shift.
    """

    name: str
    classes: list[str]
    id_train: ImageSet
    id_val: ImageSet
    id_test: ImageSet
    ood: dict[str, ImageSet]
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: augmentation allowed for this data (horizontal flips make no sense for digits)
    hflip: bool = True
    #: positions of id_train / id_val / id_test in ``pool()`` (set by ``resplit``; else empty)
    pool_pos: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.id_train.images.shape[-1])

    def to(self, device) -> "ShiftData":
        return ShiftData(self.name, list(self.classes), self.id_train.to(device),
                         self.id_val.to(device), self.id_test.to(device),
                         {k: v.to(device) for k, v in self.ood.items()},
                         dict(self.splits), dict(self.meta), self.hflip, dict(self.pool_pos))

    def pool(self) -> tuple[ImageSet, np.ndarray, bool]:
        """The ID pool the seeded splits are drawn from: (images, source indices, fixed_test).

        The pool is id_train + id_val + id_test, in that order, except for shifts whose
        test set is fixed (``meta['fixed_test']``, e.g. the official CIFAR-10 test set of
        cifar-stl): then it is id_train + id_val and id_test stays as it is.
        """
        fixed = bool(self.meta.get("fixed_test", False))
        parts = [self.id_train, self.id_val] + ([] if fixed else [self.id_test])
        keys = ["id_train", "id_val"] + ([] if fixed else ["id_test"])
        imgs = torch.cat([p.images for p in parts])
        labs = torch.cat([p.labels for p in parts])
        src = np.concatenate([np.asarray(self.splits.get(k, np.arange(len(p))), dtype=np.int64)
                              for k, p in zip(keys, parts)])
        return ImageSet(imgs, labs, "id_pool"), src, fixed

    def summary(self) -> str:
        ood = ", ".join(f"{k}={len(v)}" for k, v in self.ood.items())
        return (f"{self.name}: {self.num_classes} classes, {self.image_size}px, ID train/val/test "
                f"{len(self.id_train)}/{len(self.id_val)}/{len(self.id_test)}, OOD {ood}")

    def save_splits(self, path: str | os.PathLike) -> None:
        """Save the split indices (and the meta as JSON text) atomically to ``path`` (.npz)."""
        import json
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {k.replace("/", "__"): np.asarray(v, dtype=np.int64) for k, v in self.splits.items()}
        np.savez(tmp, meta_json=np.array(json.dumps(self.meta, default=str)), **arrays)
        os.replace(tmp, path)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Data directory: argument, then ``$TWOLAYER_DATA``, then ``<repo>/../shared/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("TWOLAYER_DATA")
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def _bundle(data_dir, filename: str) -> Path:
    d = resolve_data_dir(data_dir)
    path = d / filename
    if not path.is_file():
        raise DataNotFoundError(
            f"data bundle {filename!r} not found at {path}. Pass data_dir=..., set the "
            f"environment variable TWOLAYER_DATA to the folder holding it, or place it in "
            f"<repo>/../shared/data (see ../shared/data/README.md).")
    return path


def decode_jpeg_bundle(data: np.ndarray, offsets: np.ndarray, index: np.ndarray | None = None,
                       size: int | None = None) -> torch.Tensor:
    """Decode images ``index`` of a concatenated-JPEG bundle to uint8 ``(N, 3, H, W)``."""
    if index is None:
        index = np.arange(len(offsets) - 1)
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        raise ValueError("decode_jpeg_bundle: empty index")
    out = []
    chunk = 4096
    for s in range(0, len(index), chunk):
        part = index[s:s + chunk]
        x = _decode_many([np.ascontiguousarray(data[offsets[i]:offsets[i + 1]]) for i in part])
        if size is not None and x.shape[-1] != size:
            x = _resize(x, size)
        out.append(x)
    return torch.cat(out)


def _decode_many(blobs: list[np.ndarray]) -> torch.Tensor:
    """JPEG bytes -> uint8 (N, 3, H, W): torchvision's batched decoder, else PIL."""
    import warnings
    try:
        with warnings.catch_warnings():  # torchvision >= 0.29 deprecates its image IO (still works)
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_jpeg
            return torch.stack(decode_jpeg([torch.from_numpy(b) for b in blobs], mode=ImageReadMode.RGB))
    except (ImportError, AttributeError, TypeError, RuntimeError):
        import io

        from PIL import Image
        return torch.stack([torch.from_numpy(np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")).copy())
                            .permute(2, 0, 1) for b in blobs])


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def _split_indices(n: int, fracs: Sequence[float], rng: np.random.Generator,
                   labels: np.ndarray | None = None) -> list[np.ndarray]:
    """Seeded split of ``range(n)`` into len(fracs)+1 parts; stratified by ``labels``."""
    if labels is None:
        labels = np.zeros(n, dtype=np.int64)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fracs) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.cumsum([int(round(f * len(idx))) for f in fracs])
        for j, p in enumerate(np.split(idx, cuts)):
            parts[j].append(p)
    return [np.sort(np.concatenate(p)) for p in parts]


def _cap_per_class(idx: np.ndarray, labels: np.ndarray, cap: int | None,
                   rng: np.random.Generator) -> np.ndarray:
    if cap is None:
        return idx
    keep = []
    for c in np.unique(labels[idx]):
        ic = idx[labels[idx] == c]
        keep.append(ic[rng.permutation(len(ic))[:cap]])
    return np.sort(np.concatenate(keep))


def _id_splits(id_idx: np.ndarray, labels: np.ndarray, seed: int, val_frac: float,
               test_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    val, test, train = _split_indices(len(id_idx), [val_frac, test_frac], rng, labels[id_idx])
    for name, part in (("train", train), ("val", val), ("test", test)):
        if len(part) == 0:
            raise ValueError(f"the ID {name} split is empty ({len(id_idx)} ID images, val_frac {val_frac}, "
                             f"test_frac {test_frac}): use more images per class or other fractions")
    return id_idx[train], id_idx[val], id_idx[test]


def resplit(data: ShiftData, seed: int, val_frac: float | None = None,
            test_frac: float | None = None) -> ShiftData:
    """``data`` with its own seeded, stratified ID train / val / test split (OOD unchanged).

    Every seed of an experiment gets its own split (issue 8 §2): the ID pool
    (``ShiftData.pool``) is split per class with ``np.random.default_rng(seed)``,
    so splits of different seeds differ and every class keeps its proportions.
    ``pool_pos`` of the result holds the positions in the pool (features of the
    pool can be computed once and indexed per seed). Fractions default to the
    loader's (``meta['val_frac']``, ``meta['test_frac']``).
    """
    pool, src, fixed = data.pool()
    val_frac = float(data.meta.get("val_frac", 0.15) if val_frac is None else val_frac)
    test_frac = float(data.meta.get("test_frac", 0.15) if test_frac is None else test_frac)
    y = pool.labels.cpu().numpy()
    rng = np.random.default_rng(int(seed))
    if fixed:
        val, train = _split_indices(len(y), [val_frac], rng, y)
        test = None
    else:
        val, test, train = _split_indices(len(y), [val_frac, test_frac], rng, y)
    for name, part in (("train", train), ("val", val), ("test", test)):
        if part is not None and len(part) == 0:
            raise ValueError(f"resplit: the ID {name} split is empty ({len(y)} pool images, val_frac "
                             f"{val_frac}, test_frac {test_frac}): use more images per class")
    splits = dict(data.splits)
    splits.update({"id_train": src[train], "id_val": src[val]})
    pos = {"id_train": train, "id_val": val}
    id_test = data.id_test
    if test is not None:
        splits["id_test"] = src[test]
        pos["id_test"] = test
        id_test = pool.subset(test, "id_test")
    meta = dict(data.meta, split_seed=int(seed), val_frac=val_frac, test_frac=test_frac)
    return ShiftData(data.name, list(data.classes), pool.subset(train, "id_train"), pool.subset(val, "id_val"),
                     id_test, dict(data.ood), splits, meta, data.hflip, pos)


# --------------------------------------------------------------------------
# PACS
# --------------------------------------------------------------------------
PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")


def load_pacs(data_dir=None, id_domain: str = "photo", ood_domains: Sequence[str] | None = None,
              seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15,
              max_per_class: int | None = None, size: int | None = None) -> ShiftData:
    """PACS with ``id_domain`` as ID and ``ood_domains`` (default: the rest) as OOD.

    ``max_per_class`` caps the images per class and domain (small CPU subsets);
    ``size`` resizes (the bundle is 96 px).
    """
    z = np.load(_bundle(data_dir, "pacs96_jpeg.npz"))
    domains = [str(d) for d in z["domains"]]
    classes = [str(c) for c in z["classes"]]
    if id_domain not in domains:
        raise UnknownDatasetError(f"PACS has no domain {id_domain!r}; domains are {domains}")
    ood_domains = [d for d in domains if d != id_domain] if ood_domains is None else list(ood_domains)
    for d in ood_domains:
        if d not in domains or d == id_domain:
            raise UnknownDatasetError(
                f"bad PACS OOD domain {d!r}: choose from {[x for x in domains if x != id_domain]}")
    dom = z["domain"].astype(np.int64)
    lab = z["label"].astype(np.int64)
    cap_rng = np.random.default_rng([seed, 1])
    id_idx = _cap_per_class(np.flatnonzero(dom == domains.index(id_domain)), lab, max_per_class, cap_rng)
    tr, va, te = _id_splits(id_idx, lab, seed, val_frac, test_frac)
    data, offsets = z["data"], z["offsets"]

    def mk(idx, name):
        return ImageSet(decode_jpeg_bundle(data, offsets, idx, size), torch.from_numpy(lab[idx]), name)

    ood, splits = {}, {"id_train": tr, "id_val": va, "id_test": te}
    for d in ood_domains:
        idx = _cap_per_class(np.flatnonzero(dom == domains.index(d)), lab, max_per_class, cap_rng)
        ood[d] = mk(idx, d)
        splits[f"ood/{d}"] = idx
    return ShiftData(
        name="pacs", classes=classes, id_train=mk(tr, "id_train"), id_val=mk(va, "id_val"),
        id_test=mk(te, "id_test"), ood=ood, splits=splits, hflip=True,
        meta={"source": "pacs96_jpeg.npz", "id_domain": id_domain, "ood_domains": ood_domains,
              "split_seed": seed, "val_frac": val_frac, "test_frac": test_frac,
              "max_per_class": max_per_class, "size": size or 96})


# --------------------------------------------------------------------------
# CIFAR-10: pretraining split and the BREEDS-style subpopulation shift
# --------------------------------------------------------------------------
def _cifar_partition(split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pretraining indices, held-out downstream pool indices) of the bundle."""
    train = np.flatnonzero(split == 0)
    perm = np.random.default_rng(CIFAR_PRETRAIN_SEED).permutation(len(train))
    pre = np.sort(train[perm[:CIFAR_PRETRAIN_SIZE]])
    pool = np.sort(np.concatenate([train[perm[CIFAR_PRETRAIN_SIZE:]], np.flatnonzero(split == 1)]))
    return pre, pool


def cifar_pretrain_split(data_dir=None, max_images: int | None = None,
                         classes: Sequence[str] | None = None) -> tuple[ImageSet, list[str]]:
    """The 40,000 CIFAR-10 train images reserved for pretraining (10-class labels).

    ``classes``: keep only these classes, labelled 0..len(classes)-1 in the given order
    (a backbone pretrained on part of the label set).
    """
    z = np.load(_bundle(data_dir, "cifar10_jpeg.npz"))
    pre, _ = _cifar_partition(z["split"])
    lab = z["label"].astype(np.int64)
    names = [str(c) for c in z["classes"]]
    if classes is not None:
        bad = [c for c in classes if c not in names]
        if bad or len(set(classes)) != len(classes) or not classes:
            raise UnknownDatasetError(f"pretraining classes {list(classes)}: unknown or repeated names "
                                      f"{bad}; CIFAR-10 classes are {names}")
        keep = [names.index(c) for c in classes]
        pre = pre[np.isin(lab[pre], keep)]
        remap = np.full(len(names), -1)
        remap[keep] = np.arange(len(keep))
        lab, names = remap[lab], [str(c) for c in classes]
    if max_images is not None:  # a fixed random subset (the bundle is ordered by class)
        pre = np.sort(np.random.default_rng(CIFAR_PRETRAIN_SEED + 1).permutation(pre)[:max_images])
    x = decode_jpeg_bundle(z["data"], z["offsets"], pre)
    return ImageSet(x, torch.from_numpy(lab[pre]), "cifar10_pretrain"), names


def load_cifar_subpop(data_dir=None, seed: int = 0, val_frac: float = 0.2, test_frac: float = 0.2,
                      max_per_class: int | None = None,
                      subpop: dict | None = None) -> ShiftData:
    """BREEDS-style CIFAR-10 subpopulation shift on images held out from pretraining.

    Labels are superclasses (``CIFAR_SUBPOP`` order); ID uses the ID subclasses,
    the single OOD domain ``subpop`` the OOD subclasses of each superclass.
    """
    subpop = CIFAR_SUBPOP if subpop is None else subpop
    z = np.load(_bundle(data_dir, "cifar10_jpeg.npz"))
    names = [str(c) for c in z["classes"]]
    fine = z["label"].astype(np.int64)
    _, pool = _cifar_partition(z["split"])
    sup_of = np.full(len(names), -1)
    is_id = np.zeros(len(names), dtype=bool)
    used = set()
    for s, (ids, oods) in enumerate(subpop.values()):
        for c in list(ids) + list(oods):
            if c not in names:
                raise UnknownDatasetError(f"cifar-subpop: unknown CIFAR-10 class {c!r}; classes are {names}")
            if c in used:
                raise ValueError(f"cifar-subpop: class {c!r} appears twice in the superclass table")
            used.add(c)
            sup_of[names.index(c)] = s
        for c in ids:
            is_id[names.index(c)] = True
    sup = sup_of[fine]
    rng = np.random.default_rng([seed, 1])
    id_idx = pool[(sup[pool] >= 0) & is_id[fine[pool]]]
    ood_idx = pool[(sup[pool] >= 0) & ~is_id[fine[pool]]]
    id_idx = _cap_per_class(id_idx, fine, max_per_class, rng)
    ood_idx = _cap_per_class(ood_idx, fine, max_per_class, rng)
    tr, va, te = _id_splits(id_idx, sup, seed, val_frac, test_frac)
    data, offsets = z["data"], z["offsets"]

    def mk(idx, name):
        return ImageSet(decode_jpeg_bundle(data, offsets, idx), torch.from_numpy(sup[idx]), name)

    return ShiftData(
        name="cifar-subpop", classes=list(subpop.keys()), id_train=mk(tr, "id_train"),
        id_val=mk(va, "id_val"), id_test=mk(te, "id_test"), ood={"subpop": mk(ood_idx, "subpop")},
        splits={"id_train": tr, "id_val": va, "id_test": te, "ood/subpop": ood_idx}, hflip=True,
        meta={"source": "cifar10_jpeg.npz", "superclasses": {k: {"id": list(a), "ood": list(b)}
                                                             for k, (a, b) in subpop.items()},
              "pretrain_seed": CIFAR_PRETRAIN_SEED, "pretrain_size": CIFAR_PRETRAIN_SIZE,
              "split_seed": seed, "val_frac": val_frac, "test_frac": test_frac,
              "max_per_class": max_per_class})


# --------------------------------------------------------------------------
# digits: MNIST -> USPS
# --------------------------------------------------------------------------
def _gray_to_rgb(x: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)
    if t.shape[-1] != size:
        t = _resize(t, size)
    return t.expand(-1, 3, -1, -1).contiguous()


def _digits_partition(n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(DIGITS_PRETRAIN_SEED).permutation(n)
    return np.sort(perm[:DIGITS_PRETRAIN_SIZE]), np.sort(perm[DIGITS_PRETRAIN_SIZE:])


def digits_pretrain_split(data_dir=None, size: int = 28) -> tuple[ImageSet, list[str]]:
    """The 2,000 MNIST images reserved for pretraining the small digits network."""
    z = np.load(_bundle(data_dir, "digits_mnist_usps.npz"))
    pre, _ = _digits_partition(len(z["mnist_labels"]))
    x = _gray_to_rgb(z["mnist_images"][pre], size)
    return (ImageSet(x, torch.from_numpy(z["mnist_labels"][pre].astype(np.int64)), "mnist_pretrain"),
            [str(i) for i in range(10)])


def load_digits(data_dir=None, seed: int = 0, val_frac: float = 0.2, test_frac: float = 0.2,
                size: int = 28, usps_split: str = "test", max_per_class: int | None = None) -> ShiftData:
    """MNIST (held out from pretraining) -> USPS (``usps_split``: test, train or all)."""
    z = np.load(_bundle(data_dir, "digits_mnist_usps.npz"))
    mlab = z["mnist_labels"].astype(np.int64)
    _, pool = _digits_partition(len(mlab))
    rng = np.random.default_rng([seed, 1])
    pool = _cap_per_class(pool, mlab, max_per_class, rng)
    tr, va, te = _id_splits(pool, mlab, seed, val_frac, test_frac)
    ulab = z["usps_labels"].astype(np.int64)
    which = {"train": 0, "test": 1}
    if usps_split == "all":
        uidx = np.arange(len(ulab))
    elif usps_split in which:
        uidx = np.flatnonzero(z["usps_split"] == which[usps_split])
    else:
        raise ValueError(f"usps_split must be 'train', 'test' or 'all', got {usps_split!r}")
    uidx = _cap_per_class(uidx, ulab, max_per_class, rng)
    mimg = z["mnist_images"]

    def mk(idx, name):
        return ImageSet(_gray_to_rgb(mimg[idx], size), torch.from_numpy(mlab[idx]), name)

    usps = ImageSet(_gray_to_rgb(z["usps_images"][uidx], size), torch.from_numpy(ulab[uidx]), "usps")
    return ShiftData(
        name="digits", classes=[str(i) for i in range(10)], id_train=mk(tr, "id_train"),
        id_val=mk(va, "id_val"), id_test=mk(te, "id_test"), ood={"usps": usps},
        splits={"id_train": tr, "id_val": va, "id_test": te, "ood/usps": uidx}, hflip=False,
        meta={"source": "digits_mnist_usps.npz", "size": size, "usps_split": usps_split,
              "pretrain_seed": DIGITS_PRETRAIN_SEED, "pretrain_size": DIGITS_PRETRAIN_SIZE,
              "split_seed": seed, "val_frac": val_frac, "test_frac": test_frac,
              "max_per_class": max_per_class})


# --------------------------------------------------------------------------
# ImageFolder trees and torchvision datasets
# --------------------------------------------------------------------------
def _load_folder(root: Path, size: int) -> tuple[torch.Tensor, np.ndarray, list[str], list[str]]:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise DataNotFoundError(f"ImageFolder root {root} does not exist (one folder per class expected)")
    ds = ImageFolder(str(root))
    if len(ds.samples) == 0:
        raise DataNotFoundError(f"ImageFolder root {root} holds no images")
    imgs = []
    for path, _ in ds.samples:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.BICUBIC)
            imgs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return (torch.stack(imgs), np.array([t for _, t in ds.samples], dtype=np.int64), ds.classes,
            [p for p, _ in ds.samples])


def load_imagefolder_shift(id_root, ood_roots, size: int = 96, seed: int = 0, val_frac: float = 0.15,
                           test_frac: float = 0.15, hflip: bool = True, name: str = "imagefolder") -> ShiftData:
    """ID / OOD from ImageFolder trees: ``id_root`` and ``ood_roots`` (dict name -> root, or list).

    Every tree must have the same class folders.
    """
    id_root = Path(id_root)
    if not isinstance(ood_roots, dict):
        ood_roots = {Path(r).name: r for r in ood_roots}
    x, y, classes, files = _load_folder(id_root, size)
    tr, va, te = _id_splits(np.arange(len(y)), y, seed, val_frac, test_frac)
    ood, splits = {}, {"id_train": tr, "id_val": va, "id_test": te}
    for dname, root in ood_roots.items():
        ox, oy, oclasses, _ = _load_folder(Path(root), size)
        if oclasses != classes:
            raise ValueError(f"OOD tree {root} has classes {oclasses}, ID tree {id_root} has {classes}: "
                             "every domain needs the same class folders")
        ood[dname] = ImageSet(ox, torch.from_numpy(oy), dname)
        splits[f"ood/{dname}"] = np.arange(len(oy))

    def mk(idx, n):
        return ImageSet(x[torch.from_numpy(idx)], torch.from_numpy(y[idx]), n)

    return ShiftData(name=name, classes=classes, id_train=mk(tr, "id_train"), id_val=mk(va, "id_val"),
                     id_test=mk(te, "id_test"), ood=ood, splits=splits, hflip=hflip,
                     meta={"id_root": str(id_root), "ood_roots": {k: str(v) for k, v in ood_roots.items()},
                           "size": size, "split_seed": seed})


STL_TO_CIFAR = {"airplane": "airplane", "bird": "bird", "car": "automobile", "cat": "cat", "deer": "deer",
                "dog": "dog", "horse": "horse", "ship": "ship", "truck": "truck"}
#: STL-10's class order (``stl10_binary/class_names.txt``; labels in the files are 1-based)
STL_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
STL_FILES = ("test_X.bin", "test_y.bin")


def _cifar_stl_dirs(root) -> tuple[Path, Path]:
    """(cifar-10-batches-py, stl10_binary) under ``root`` or ``root/torchvision``; a clear error naming
    every missing file otherwise."""
    root = Path(root)
    for base in (root, root / "torchvision"):
        c, s = base / "cifar-10-batches-py", base / "stl10_binary"
        if all((c / f).is_file() for f in CIFAR_BATCHES) and all((s / f).is_file() for f in STL_FILES):
            return c, s
    missing = [str(root / "cifar-10-batches-py" / f) for f in CIFAR_BATCHES
               if not (root / "cifar-10-batches-py" / f).is_file()]
    missing += [str(root / "stl10_binary" / f) for f in STL_FILES if not (root / "stl10_binary" / f).is_file()]
    raise DataNotFoundError(
        "cifar-stl needs CIFAR-10 and STL-10 on disk in torchvision's formats; missing: "
        + ", ".join(missing) + f" (also looked under {root / 'torchvision'}). Get them with "
        "torchvision.datasets.CIFAR10(root, download=True) and STL10(root, split='test', download=True) "
        "on a machine with internet, then pass data_dir / --data-dir = that root (or set TWOLAYER_DATA).")


def read_cifar10_batches(folder, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels of CIFAR-10 python batches (``cifar-10-batches-py``).

    These files are Python pickles (torchvision reads them the same way): only read
    files from a source you trust.
    """
    import pickle

    xs, ys = [], []
    for n in names:
        with open(Path(folder) / n, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        data = d.get("data", d.get(b"data"))
        labels = d.get("labels", d.get(b"labels"))
        if data is None or labels is None:
            raise DataNotFoundError(f"{Path(folder) / n} is not a CIFAR-10 python batch (no 'data' / 'labels')")
        xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(labels, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def read_stl10_binary(folder, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 96, 96) uint8 and 0-based labels of ``stl10_binary/<split>_X.bin`` / ``_y.bin``.

    The binary format stores each image channel-major and column-major (Matlab order),
    labels 1..10 as uint8.
    """
    folder = Path(folder)
    x = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    if x.size % (3 * 96 * 96):
        raise DataNotFoundError(f"{folder / f'{split}_X.bin'} has {x.size} bytes, not a multiple of 3*96*96")
    x = x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    y = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    if len(y) != len(x):
        raise DataNotFoundError(f"{folder}: {len(x)} STL-10 images but {len(y)} labels")
    return np.ascontiguousarray(x), y


def load_cifar_stl(root=None, download: bool = False, seed: int = 0, val_frac: float = 0.1,
                   size: int | None = 32, data_dir=None, max_per_class: int | None = None) -> ShiftData:
    """CIFAR-10 -> STL-10 (the paper's shift; the 9 shared classes, labels in ``STL_TO_CIFAR`` order).

    ID: CIFAR-10 train (seeded, stratified train / val split) and the official test
    set; OOD ``stl10``: the STL-10 test split. Files are read from the torchvision
    on-disk formats under ``root`` (alias ``data_dir``; default: the resolved data
    directory), directly or under ``<root>/torchvision``. ``size``: every image is
    resized to this (32 keeps CIFAR and shrinks STL to CIFAR's resolution; None keeps
    the native 32 / 96 px and leaves resizing to the network's ``input_size``, e.g.
    224 for ImageNet backbones). ``download=True`` first fetches the datasets with
    torchvision (online only). ``max_per_class`` caps every set per class (tests).
    """
    root = Path(root if root is not None else resolve_data_dir(data_dir))
    if download:  # pragma: no cover - needs the internet
        from torchvision import datasets
        datasets.CIFAR10(str(root), train=True, download=True)
        datasets.STL10(str(root), split="test", download=True)
    cdir, sdir = _cifar_stl_dirs(root)
    xtr, ytr = read_cifar10_batches(cdir, CIFAR_BATCHES[:5])
    xte, yte = read_cifar10_batches(cdir, CIFAR_BATCHES[5:])
    sx, sy = read_stl10_binary(sdir, "test")
    keep = [CIFAR10_CLASSES.index(c) for c in STL_TO_CIFAR.values()]
    skeep = [STL_CLASSES.index(c) for c in STL_TO_CIFAR]
    rng = np.random.default_rng([seed, 1])

    def pick(y, kept):
        idx = np.flatnonzero(np.isin(y, kept))
        idx = _cap_per_class(idx, y, max_per_class, rng)
        return idx, np.array([kept.index(t) for t in y[idx]], dtype=np.int64)

    def to_t(x, chw=False):
        t = torch.from_numpy(np.ascontiguousarray(x))
        t = t if chw else t.permute(0, 3, 1, 2).contiguous()
        return _resize(t, size) if size is not None and t.shape[-1] != size else t

    itr, ltr = pick(ytr, keep)
    ite, lte = pick(yte, keep)
    isx, lsx = pick(sy, skeep)
    val, tr = _split_indices(len(ltr), [val_frac], np.random.default_rng(seed), ltr)
    xtr_t = to_t(xtr[itr])
    return ShiftData(
        name="cifar-stl", classes=list(STL_TO_CIFAR.values()),
        id_train=ImageSet(xtr_t[torch.from_numpy(tr)], torch.from_numpy(ltr[tr]), "id_train"),
        id_val=ImageSet(xtr_t[torch.from_numpy(val)], torch.from_numpy(ltr[val]), "id_val"),
        id_test=ImageSet(to_t(xte[ite]), torch.from_numpy(lte), "id_test"),
        ood={"stl10": ImageSet(to_t(sx[isx], chw=True), torch.from_numpy(lsx), "stl10")},
        splits={"id_train": itr[tr], "id_val": itr[val], "id_test": ite, "ood/stl10": isx},
        hflip=True, meta={"root": str(root), "cifar_dir": str(cdir), "stl_dir": str(sdir), "split_seed": seed,
                          "val_frac": val_frac, "test_frac": 0.0, "fixed_test": True, "size": size,
                          "max_per_class": max_per_class})


def _load_cifar10c(data_dir=None, cache_dir=None, **kwargs) -> ShiftData:
    """``corruptions.load_cifar10c`` (imported lazily: it needs ``imagecorruptions``)."""
    from .corruptions import load_cifar10c
    return load_cifar10c(data_dir=data_dir, cache_dir=cache_dir, **kwargs)


DATASETS: dict[str, Callable[..., ShiftData]] = {
    "pacs": load_pacs,
    "cifar10c": _load_cifar10c,
    "cifar-subpop": load_cifar_subpop,
    "digits": load_digits,
    "cifar-stl": load_cifar_stl,
    "imagefolder": load_imagefolder_shift,
}


def load_shift(name: str, **kwargs) -> ShiftData:
    """Load a registered ID / OOD shift by name (see the module docstring)."""
    try:
        fn = DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None
    return fn(**kwargs)
