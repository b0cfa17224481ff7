"""Nearest-neighbour index over a pool's embeddings, backed by Faiss.

Embeddings are L2-normalised while they are added, so inner product is cosine similarity. Any
Faiss factory string names the index ("Flat", "HNSW32", "IVF1024,Flat", "IVF1024,PQ32", "LSH");
indexes that need training (IVF, PQ) are trained on a seeded sample. Faiss positions are mapped
to the pool's stable ids, so every result is an id, never a position.

Example
-------
>>> import numpy as np
>>> from raresift.pool import Pool
>>> x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
>>> index = NeighborIndex("Flat", progress=False).fit(Pool(x, ids=np.arange(200) + 1000))
>>> index.neighbors([1000], k=3).shape
(1, 3)
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from raresift.density import normalize_rows
from raresift.errors import ConfigError, CorruptFileError, ValidationError
from raresift.pool import Pool, as_ids, check_matrix

log = logging.getLogger("raresift")

_FORMAT = "raresift-neighbor-index/1"
_PARALLEL_QUERIES = 16  # fewer queries than this are searched on one thread


def _make_faiss_index(factory: str, dim: int) -> faiss.Index:
    """Build the index a factory string names, with inner product where the type allows it.

    Types that only support L2 (LSH) get L2, which ranks unit vectors the same way.
    """
    if not isinstance(factory, str) or not factory.strip():
        raise ConfigError("factory must be a non-empty Faiss factory string such as 'HNSW32'")
    errors = []
    for metric in (faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2):
        try:
            return faiss.index_factory(dim, factory, metric)
        except RuntimeError as exc:
            errors.append(str(exc).strip().splitlines()[-1])
    raise ConfigError(
        f"Faiss cannot build index {factory!r} for {dim}-d vectors ({errors[0]}); use a factory "
        "string such as 'Flat', 'HNSW32', 'IVF1024,Flat', 'IVF1024,PQ32' or 'LSH'"
    )


class NeighborIndex:
    """k-NN search over a :class:`Pool`'s embeddings by cosine similarity.

    Parameters
    ----------
    factory : str
        Faiss index factory string ("Flat" is exact search; "HNSW32", "IVF4096,PQ64", "LSH", ...).
    search_params : str
        Faiss search-time parameters, e.g. ``"nprobe=16"`` (IVF) or ``"efSearch=128"`` (HNSW).
    train_size : int
        Rows sampled (seeded) to train IVF / PQ quantisers.
    chunk_size : int
        Rows read, normalised and added at a time (memmaps are never loaded whole).
    seed : int
        Seed of the training sample.
    progress : bool
        Show a tqdm bar while adding.
    """

    def __init__(
        self,
        factory: str = "Flat",
        search_params: str = "",
        train_size: int = 100_000,
        chunk_size: int = 65_536,
        seed: int = 0,
        progress: bool = True,
    ):
        self.factory = factory
        self.search_params = search_params
        self.train_size = train_size
        self.chunk_size = chunk_size
        self.seed = seed
        self.progress = progress
        self._index: faiss.Index | None = None
        self._pool: Pool | None = None
        self.build_seconds = 0.0

    # ------------------------------------------------------------------ building
    def fit(self, pool: Pool | Any, ids: Any = None) -> NeighborIndex:
        """Add every row of ``pool`` (a :class:`Pool`, or an (n, d) array with ``ids``)."""
        if isinstance(pool, Pool):
            embeddings, ids = pool.embeddings, pool.ids
            self._pool = pool
        else:
            embeddings = check_matrix(pool, "embeddings")
            ids = np.arange(embeddings.shape[0], dtype=np.int64) if ids is None else as_ids(ids)
            if ids.size != embeddings.shape[0]:
                raise ValidationError(
                    f"got {ids.size} ids for {embeddings.shape[0]} embedding rows; pass one id "
                    "per row"
                )
        if self.chunk_size <= 0 or self.train_size <= 0:
            raise ConfigError("chunk_size and train_size must be positive")
        start = time.perf_counter()
        n, dim = embeddings.shape
        base = _make_faiss_index(self.factory, dim)
        index = faiss.IndexIDMap2(base)
        if not index.is_trained:
            rng = np.random.default_rng(self.seed)
            m = min(n, self.train_size)
            sample = np.sort(rng.choice(n, size=m, replace=False))
            log.info("training Faiss index %r on %d sampled rows", self.factory, m)
            try:
                index.train(normalize_rows(embeddings[sample]))
            except RuntimeError as exc:
                raise ConfigError(
                    f"training Faiss index {self.factory!r} on {m} rows failed: "
                    f"{str(exc).strip().splitlines()[-1]}; use fewer lists / codes or more rows"
                ) from None
        for lo in tqdm(
            range(0, n, self.chunk_size),
            desc=f"indexing ({self.factory})",
            unit="chunk",
            disable=not self.progress,
        ):
            hi = min(n, lo + self.chunk_size)
            index.add_with_ids(normalize_rows(embeddings[lo:hi]), ids[lo:hi])
        self._index = index
        self._apply_search_params()
        self.build_seconds = time.perf_counter() - start
        log.info("built %r over %d items in %.1f s", self.factory, n, self.build_seconds)
        return self

    def _apply_search_params(self) -> None:
        if self.search_params:
            try:
                faiss.ParameterSpace().set_index_parameters(self._index, self.search_params)
            except RuntimeError as exc:
                raise ConfigError(
                    f"bad search_params {self.search_params!r} for {self.factory!r}: "
                    f"{str(exc).strip().splitlines()[-1]}"
                ) from None

    # ------------------------------------------------------------------ properties
    @property
    def index(self) -> faiss.Index:
        if self._index is None:
            raise ValidationError("the index is empty; call fit(pool) or NeighborIndex.load(path)")
        return self._index

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"NeighborIndex({self.factory!r}, n={len(self)})"

    def _scores(self, distances: np.ndarray) -> np.ndarray:
        """Faiss distances as higher-is-closer scores (cosine for exact IP and L2 indexes)."""
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexLSH):
            return -distances  # Hamming distance between codes
        if self.index.metric_type == faiss.METRIC_L2:
            return 1.0 - distances / 2.0  # squared L2 between unit vectors
        return distances

    # ------------------------------------------------------------------ search
    def search(self, queries: Any, k: int, exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items to each query row, skipping ids in ``exclude``.

        Returns ``(ids, scores)``, both (m, k), best first; where fewer than ``k`` items qualify
        the row is padded with id -1 and score -inf. Excluded ids are dropped by searching
        ``k + len(exclude)`` deep (never more than the index holds), so exactly ``k`` qualifying
        results come back whenever they exist in the index's reach.
        """
        queries = check_matrix(queries, "queries", allow_empty=True)
        if queries.shape[1] != self.dim:
            raise ValidationError(
                f"queries have {queries.shape[1]} features but the index holds {self.dim}-d "
                "vectors; embed queries with the same model as the pool"
            )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValidationError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        depth = min(len(self), k + excluded.size)
        m = queries.shape[0]
        if m == 0 or depth == 0:
            return np.full((m, k), -1, np.int64), np.full((m, k), -np.inf, np.float32)
        distances, found = self._faiss_search(normalize_rows(queries), depth)
        scores = self._scores(distances).astype(np.float32)
        keep = found >= 0
        if excluded.size:
            pos = np.minimum(np.searchsorted(excluded, found), excluded.size - 1)
            keep &= excluded[pos] != found
        # stable compaction: the kept entries of each row move to its front, in order
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        out_ids = np.take_along_axis(found, order, axis=1)
        out_scores = np.take_along_axis(scores, order, axis=1)
        valid = np.take_along_axis(keep, order, axis=1)
        out_ids[~valid] = -1
        out_scores[~valid] = -np.inf
        if out_ids.shape[1] < k:
            pad = k - out_ids.shape[1]
            out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
            out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return out_ids, out_scores

    def _faiss_search(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Faiss search; a handful of queries run on one thread (OpenMP start-up and contention
        with other processes cost far more than they save there)."""
        if queries.shape[0] >= _PARALLEL_QUERIES:
            return self.index.search(queries, depth)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(queries, depth)
        finally:
            faiss.omp_set_num_threads(threads)

    def neighbors(
        self,
        ids: Any,
        k: int,
        exclude: Any = None,
        pool: Pool | None = None,
        batch_size: int = 4096,
    ) -> np.ndarray:
        """Ids of the ``k`` nearest neighbours of pool items ``ids``, themselves excluded: (m, k).

        Query embeddings come from ``pool`` (default: the pool the index was fitted on or
        attached to). Queries run in batches of ``batch_size``; rows are padded with -1 where
        fewer than ``k`` neighbours qualify.
        """
        ids = as_ids(ids)
        pool = pool if pool is not None else self._pool
        if pool is None:
            raise ValidationError("pass pool= so the index can look up the query embeddings")
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        out = np.full((ids.size, k), -1, np.int64)
        for lo in range(0, ids.size, batch_size):
            chunk = ids[lo : lo + batch_size]
            found, _ = self.search(pool.embeddings_of(chunk), k + 1, exclude=excluded)
            not_self = found != chunk[:, None]
            order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
            rows = np.take_along_axis(found, order, axis=1)
            rows[~np.take_along_axis(not_self, order, axis=1)] = -1
            out[lo : lo + chunk.size] = rows
        return out

    def attach(self, pool: Pool) -> NeighborIndex:
        """Remember ``pool`` so :meth:`neighbors` can look up query embeddings by id."""
        if pool.dim != self.dim:
            raise ValidationError(
                f"the pool has {pool.dim}-d embeddings but the index holds {self.dim}-d vectors"
            )
        self._pool = pool
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the Faiss index to ``path`` and its settings to ``path + '.json'``."""
        path = os.fspath(path)
        faiss.write_index(self.index, path)
        meta = {
            "format": _FORMAT,
            "factory": self.factory,
            "search_params": self.search_params,
            "dim": self.dim,
            "ntotal": len(self),
            "seed": self.seed,
        }
        with open(path + ".json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh)

    @classmethod
    def load(cls, path: str | os.PathLike, pool: Pool | None = None, progress: bool = True):
        """Read an index written by :meth:`save`; with ``pool``, check it matches and attach it."""
        path = os.fspath(path)
        if not os.path.exists(path) or not os.path.exists(path + ".json"):
            raise ValidationError(
                f"no saved index at {path!r} (need both {path!r} and {path + '.json'!r}); "
                "build one with NeighborIndex(...).fit(pool).save(path)"
            )
        try:
            with open(path + ".json", encoding="utf-8") as fh:
                meta = json.load(fh)
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown format {meta.get('format')!r}")
            index = faiss.read_index(path)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise CorruptFileError(
                f"cannot read the index at {path!r} ({str(exc).strip().splitlines()[-1]}); "
                "rebuild it with NeighborIndex(...).fit(pool).save(path)"
            ) from None
        if index.ntotal != meta["ntotal"] or index.d != meta["dim"]:
            raise CorruptFileError(
                f"the index at {path!r} holds {index.ntotal} x {index.d} but its settings say "
                f"{meta['ntotal']} x {meta['dim']}; rebuild it"
            )
        self = cls(meta["factory"], meta["search_params"], seed=meta["seed"], progress=progress)
        self._index = index
        self._apply_search_params()
        if pool is not None:
            self.attach(pool)
        return self
