"""Text embeddings: the bundled MiniLM model, the verified cache and resuming after a crash."""

import json

import numpy as np
import pytest

from raresift import embed
from raresift.errors import CorruptFileError, ValidationError

TEXTS = [
    "corn exports rose sharply this quarter",
    "maize shipments increased strongly",
    "the striker scored twice in the final",
]


def fake_encode(texts, batch_size=64, device="cpu", progress=False):
    rows = np.array([[len(t), sum(map(ord, t)) % 97, i] for i, t in enumerate(texts)], float)
    out = np.zeros((len(texts), embed.DIM), dtype=np.float32)
    out[:, :3] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def test_minilm_embeds_offline_and_similar_texts_are_close(tmp_path):
    x = embed.embed_texts(TEXTS, progress=False)
    assert x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sims = x @ x.T
    assert sims[0, 1] > 0.5 > sims[0, 2]  # corn ~ maize, not football
    cached = embed.embed_texts(TEXTS, cache=tmp_path, progress=False)
    np.testing.assert_allclose(cached, x, atol=1e-6)
    again = embed.embed_texts(TEXTS, cache=tmp_path, progress=False)
    assert isinstance(again, np.memmap)  # read back, not recomputed
    np.testing.assert_array_equal(again, cached)


def test_interrupted_embedding_resumes_where_it_stopped(tmp_path, monkeypatch):
    texts = [f"text number {i}" for i in range(10)]
    calls = []

    def crashing(batch, batch_size=64, device="cpu", progress=False):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_encode(batch, batch_size)

    monkeypatch.setattr(embed, "encode_texts", crashing)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_texts(texts, cache=tmp_path, block_size=3, progress=False)
    assert not list(tmp_path.glob("*-????????????????.npy"))  # no finished cache yet
    calls.clear()

    def counting(batch, batch_size=64, device="cpu", progress=False):
        calls.append(len(batch))
        return fake_encode(batch, batch_size)

    monkeypatch.setattr(embed, "encode_texts", counting)
    x = embed.embed_texts(texts, cache=tmp_path, block_size=3, progress=False)
    assert calls == [3, 1]  # blocks 0-5 were kept; only 6-9 were embedded again
    expected = np.vstack([fake_encode(texts[i : i + 3], 0, 0) for i in range(0, 10, 3)])
    np.testing.assert_array_equal(x, expected)
    assert not list(tmp_path.glob("*partial*")) and not list(tmp_path.glob("*tmp*"))


def test_cache_is_keyed_by_content_and_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "encode_texts", fake_encode)
    a = embed.embed_texts(["x", "y"], cache=tmp_path, progress=False)
    b = embed.embed_texts(["y", "x"], cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not np.array_equal(a, b)
    sidecar = next(tmp_path.glob("*.json"))
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "count": 5}))
    with pytest.raises(CorruptFileError, match="delete it"):
        for texts in (["x", "y"], ["y", "x"]):
            embed.embed_texts(texts, cache=tmp_path, progress=False)
    sidecar.write_text("{not json")
    with pytest.raises(CorruptFileError, match="cannot read"):
        for texts in (["x", "y"], ["y", "x"]):
            embed.embed_texts(texts, cache=tmp_path, progress=False)


def test_bad_input():
    with pytest.raises(ValidationError, match="empty"):
        embed.embed_texts([])
    with pytest.raises(ValidationError, match=r"texts\[1\] is a int"):
        embed.embed_texts(["a", 3])
    with pytest.raises(ValidationError, match="positive"):
        embed.embed_texts(["a"], batch_size=0)
