"""Embeddings computed once per user: a second ``init`` over the same texts or images, in
another project and from another folder, reads the shared cache instead of embedding again;
the project keeps its own link to the file; progress reads as lines in a log."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from raresift import embed
from raresift import embed_images as image_model
from raresift.session import Session

from .test_embed import fake_encode


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache of this test's own (fake vectors must not reach the shared one)."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("RARESIFT_EMBEDDINGS_CACHE", str(folder))
    return folder


@pytest.fixture
def calls(monkeypatch):
    """How many items each encoder was asked to embed (fake, deterministic encoders)."""
    counted = {"texts": 0, "images": 0}

    def texts(batch, batch_size=64, device="cpu", progress=False):
        counted["texts"] += len(batch)
        return fake_encode(batch)

    def images(pixels):
        counted["images"] += len(pixels)
        flat = pixels.reshape(len(pixels), -1)[:, : image_model.DIM].astype(np.float32)
        out = np.zeros((len(pixels), image_model.DIM), np.float32)
        out[:, : flat.shape[1]] = flat
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    monkeypatch.setattr(embed, "encode_texts", texts)
    monkeypatch.setattr(image_model, "encode", images)
    return counted


def write_texts(path, n=30):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows((f"t{i}", f"report {i} on corn and wheat") for i in range(n))
    return path


def test_a_second_init_over_the_same_texts_reuses_their_embeddings(tmp_path, cache, calls):
    first = Session.create(
        tmp_path / "a", texts=write_texts(tmp_path / "a.csv"), text_column="text", progress=False
    )
    assert calls["texts"] == 30
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "a.csv", elsewhere / "same.csv")
    second = Session.create(
        tmp_path / "b", texts=elsewhere / "same.csv", text_column="text", progress=False
    )
    assert calls["texts"] == 30  # read from the user's cache, not embedded again
    np.testing.assert_array_equal(second.pool().embeddings, first.pool().embeddings)
    assert len(list(cache.glob("all-MiniLM-L6-v2-*.npy"))) == 1

    own = second.root / second.config["embeddings"]["path"]
    assert own.parent == second.root  # the project holds its embeddings (a link, no copy)
    second.close()
    shutil.rmtree(cache)  # the user empties the cache: the projects keep working
    with Session.open(tmp_path / "b") as again:
        assert len(again.next(budget=5)) == 5


def test_a_second_init_over_the_same_images_reuses_them_and_tiny_images_are_not_blown_up(
    tmp_path, cache, calls
):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    first = Session.create(tmp_path / "a", images=folder, progress=False)
    assert first.config["source"]["image_size"] == 64  # chosen from 28 px images, not 224
    assert calls["images"] == 12
    moved = shutil.copytree(folder, tmp_path / "moved" / "photos")
    second = Session.create(tmp_path / "b", images=moved, progress=False)
    assert calls["images"] == 12  # same contents elsewhere: the same cached embeddings
    np.testing.assert_array_equal(second.pool().embeddings, first.pool().embeddings)

    Image.new("L", (28, 28), 255).save(moved / "3.png")  # one image changed: embed again
    Session.create(tmp_path / "c", images=moved, progress=False)
    assert calls["images"] == 24


def test_embedding_progress_is_lines_with_the_time_left_in_a_log(tmp_path, cache, calls, capsys):
    Session.create(tmp_path / "a", texts=write_texts(tmp_path / "a.csv", 12), text_column="text")
    err = capsys.readouterr().err  # captured: not a terminal, as under nohup or in CI
    assert "\r" not in err
    assert "embedding: 12/12 texts in " in err and "texts/s)" in err
