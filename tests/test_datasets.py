import gzip

import numpy as np
import pytest

from raresift import datasets
from raresift.errors import CorruptFileError, DatasetNotInstalledError, ValidationError

from .conftest import load_or_skip

pytestmark = pytest.mark.realdata


def test_fashion_mnist_train_and_test():
    train = load_or_skip(datasets.load_fashion_mnist, "train")
    test = datasets.load_fashion_mnist("test")
    assert train.X.shape == (60000, 784) and train.X.dtype == np.uint8
    assert test.X.shape == (10000, 784)
    assert train.class_counts().tolist() == [6000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    assert train.class_names[9] == "Ankle boot" and train.image_shape == (28, 28)
    # Known values: the first training item is an ankle boot, the first test item too.
    assert train.y[0] == 9 and test.y[0] == 9
    assert 0 < train.X[0].mean() < 255


def test_mnist5k():
    data = load_or_skip(datasets.load_mnist5k)
    assert data.X.shape == (5000, 784) and data.X.max() == 255
    assert data.class_counts().tolist() == [500] * 10


def test_digits():
    data = datasets.load_digits()
    assert data.X.shape == (1797, 64) and data.X.max() == 16
    assert data.class_counts().sum() == 1797


@pytest.mark.parametrize(
    ("topic", "split", "n", "positives"),
    [("corn", "train", 1554, 45), ("corn", "test", 604, 24),
     ("grain", "train", 1554, 103), ("grain", "test", 604, 57)],
)  # fmt: skip
def test_reuters(topic, split, n, positives):
    data = load_or_skip(datasets.load_reuters, topic, split)
    assert len(data) == n and data.y.sum() == positives
    assert data.class_names == [f"not {topic}", topic]
    assert all(isinstance(t, str) and t for t in data.X)
    if topic == "corn" and split == "train":
        assert data.X[0].startswith("BAHIA COCOA REVIEW")
        assert "\n" in data.X[0]  # escapes decoded


def test_wordnet():
    data = load_or_skip(datasets.load_wordnet)
    assert len(data) == 117659 and len(data.class_names) == 45
    counts = dict(zip(data.class_names, data.class_counts().tolist(), strict=True))
    noun_counts = sorted(v for k, v in counts.items() if k.startswith("noun."))
    assert noun_counts[:2] == [42, 51]
    assert data.info["words"][0] == "entity" and data.X[0].startswith("that which is perceived")


def test_missing_data_names_the_install_command(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotInstalledError, match="apt-get install -y dataset-fashion-mnist"):
        datasets.load_fashion_mnist(path=tmp_path)
    with pytest.raises(DatasetNotInstalledError, match="wordnet-base"):
        datasets.load_wordnet(path=tmp_path)
    monkeypatch.setenv("RARESIFT_CACHE", str(tmp_path))
    with pytest.raises(DatasetNotInstalledError, match="make data"):
        datasets.load_reuters("corn")


def test_bad_arguments():
    with pytest.raises(ValidationError, match="split"):
        datasets.load_fashion_mnist("validation")
    with pytest.raises(ValidationError, match="topic"):
        datasets.load_reuters("wheat")


def test_corrupted_idx_files(tmp_path):
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") * 3 + b"\x00" * 50)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"garbage")
    with pytest.raises(CorruptFileError, match="truncated"):
        datasets.load_fashion_mnist(path=tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorruptFileError, match="cannot read"):
        datasets.load_fashion_mnist(path=tmp_path)


def test_corrupted_arff(tmp_path):
    bad = tmp_path / "x.arff"
    bad.write_text("@data\n'fine text',1\nbroken line without quotes\n")
    with pytest.raises(CorruptFileError, match="x.arff:3"):
        datasets.parse_arff_texts(bad)


def test_data_dir_variable_hides_or_relocates_the_system_data_sets(tmp_path, monkeypatch):
    system = load_or_skip(datasets.load_fashion_mnist, "test")
    monkeypatch.setenv("RARESIFT_DATA_DIR", str(tmp_path))
    for load in (datasets.load_fashion_mnist, datasets.load_wordnet, datasets.load_reuters):
        with pytest.raises(DatasetNotInstalledError, match="RARESIFT_DATA_DIR is set") as exc:
            load()
        assert str(tmp_path) in str(exc.value) and "make data" in str(exc.value)
    # a copy elsewhere, in the documented layout, is what the loaders read
    (tmp_path / "fashion-mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "fashion-mnist" / name).symlink_to(datasets.FASHION_MNIST_DIR / name)
    moved = datasets.load_fashion_mnist("test")
    assert moved.info["source"] == str(tmp_path / "fashion-mnist")
    np.testing.assert_array_equal(moved.X, system.X)
    (tmp_path / "reuters").mkdir()
    arff = datasets.reuters_dir()
    assert arff == tmp_path / "reuters"
    monkeypatch.delenv("RARESIFT_DATA_DIR")
    assert datasets.reuters_dir() != arff
