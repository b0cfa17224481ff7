"""Nearest-neighbour search, backed by Faiss: the one k-NN path of raresift.

:class:`NeighborIndex` searches a :class:`Pool` (or a plain matrix) by one of
:data:`INDEX_METRICS`: ``"cosine"`` (the default: rows are L2-normalised while they are added,
so inner product is cosine similarity), ``"dot"`` (inner product of the rows as given) or
``"euclidean"`` (L2 distance). Any Faiss factory string names the index ("Flat", "HNSW32",
"IVF1024,Flat", "IVF1024,PQ32", "LSH"); indexes that need training (IVF, PQ) are trained on a
seeded sample. Faiss positions are mapped to the pool's stable ids, so every result is an id,
never a position. :func:`flat_search` is the exact brute-force search without an index object
(what SEALS' calibration, :func:`exact_search`, and the sparse k-NN kernels of
:mod:`raresift.kernels` run on).

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

import hashlib
import json
import logging
import math
import os
import time
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from raresift.density import ROW_BLOCK, normalize_rows  # noqa: F401  (re-exported)
from raresift.errors import ConfigError, CorruptFileError, StorageError, ValidationError
from raresift.exact import (  # noqa: F401  (the exact search, re-exported: import it from here)
    INDEX_METRICS,
    _faiss_metric,
    exact_search,
    flat_search,
    prepare_rows,
)
from raresift.params import (
    Instance,
    Interval,
    Options,
    Parameterized,
    positive_int,
)
from raresift.pool import Pool, as_ids, check_matrix, fingerprint, fingerprint_mismatch

log = logging.getLogger("raresift")

_FORMAT = "raresift-neighbor-index/1"
_PARALLEL_QUERIES = 16  # fewer queries than this are searched on one thread
TWO_LEVEL_LISTS = 8192  # from this many inverted lists on, the quantiser trains in two levels
CODEC_TRAIN_ROWS = 262_144  # rows that train the codec after a two-level quantiser
_SHARDED = ("MemmapSource", "ShardTask", "build_shard", "build_sharded_index", "_memmap_source")


def __getattr__(name: str):
    """The sharded build lives in :mod:`raresift.sharded` (which imports this module)."""
    if name in _SHARDED:
        import raresift.sharded

        return getattr(raresift.sharded, name)
    raise AttributeError(f"module 'raresift.index' has no attribute {name!r}")


def ivf_nlist(n: int) -> int:
    """Inverted lists for an IVF index over ``n`` items: about ``4 sqrt(n)``, never fewer than
    39 training rows per list (Faiss' own lower bound for k-means).

    >>> ivf_nlist(1_000_000), ivf_nlist(100_000_000), ivf_nlist(100)
    (4000, 40000, 2)
    """
    if n <= 0:
        raise ValidationError(f"need a positive number of items, got {n}")
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def _make_faiss_index(factory: str, dim: int, metric: str = "cosine") -> faiss.Index:
    """Build the index a factory string names for ``metric``: L2 for euclidean, inner product
    for dot; for cosine inner product where the type allows it, else L2 (LSH), which ranks
    unit vectors the same way.
    """
    if not isinstance(factory, str) or not factory.strip():
        raise ConfigError("factory must be a non-empty Faiss factory string such as 'HNSW32'")
    faiss_metrics = {
        "cosine": (faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2),
        "dot": (faiss.METRIC_INNER_PRODUCT,),
        "euclidean": (faiss.METRIC_L2,),
    }[metric]
    errors = []
    for faiss_metric in faiss_metrics:
        try:
            return faiss.index_factory(dim, factory, faiss_metric)
        except RuntimeError as exc:
            errors.append(str(exc).strip().splitlines()[-1])
    raise ConfigError(
        f"Faiss cannot build index {factory!r} for {dim}-d vectors and the {metric} metric "
        f"({errors[0]}); use a factory string such as 'Flat', 'HNSW32', 'IVF1024,Flat', "
        "'IVF1024,PQ32' or (cosine only) 'LSH'"
    )


class NeighborIndex(Parameterized):
    """k-NN search over a :class:`Pool`'s embeddings (or the rows of a matrix).

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
        Seed of the training sample (and of the calibration queries).
    recall_target : float, optional
        After building, pick the smallest ``nprobe`` (IVF) or ``efSearch`` (HNSW) whose
        recall@``calibration_k`` against exact search, on ``calibration_queries`` sampled pool
        items, reaches this target (overrides ``search_params``). ``recall_`` holds the
        recall measured at the chosen setting.
    progress : bool
        Show a tqdm bar while adding.
    metric : {"cosine", "dot", "euclidean"}
        Cosine similarity (rows L2-normalised as they are added and searched), inner product
        or Euclidean distance of the rows as given. Scores are higher-is-closer: the cosine,
        the inner product, or minus the squared distance.

    Attributes
    ----------
    build_seconds, calibration_seconds : float
    recall_ : float or None
        Recall of the neighbours against exact search (set by calibration or
        :meth:`measure_recall`).
    """

    parameter_constraints = {
        "factory": [Instance(str)],
        "search_params": [Instance(str)],
        "train_size": [Interval(int, 1, None)],
        "chunk_size": [Interval(int, 1, None)],
        "seed": [Interval(int, 0, None)],
        "recall_target": [Interval(float, 0, 1, "right"), Instance(None)],
        "calibration_queries": [Interval(int, 1, None)],
        "calibration_k": [Interval(int, 1, None)],
        "progress": [Instance(bool)],
        "metric": [Options(*INDEX_METRICS)],
    }

    def __init__(
        self,
        factory: str = "Flat",
        search_params: str = "",
        train_size: int = 100_000,
        chunk_size: int = 65_536,
        seed: int = 0,
        recall_target: float | None = None,
        calibration_queries: int = 200,
        calibration_k: int = 10,
        progress: bool = True,
        metric: str = "cosine",
    ):
        self.factory = factory
        self.search_params = search_params
        self.train_size = train_size
        self.chunk_size = chunk_size
        self.seed = seed
        self.recall_target = recall_target
        self.calibration_queries = calibration_queries
        self.calibration_k = calibration_k
        self.progress = progress
        self.metric = metric
        self._index: faiss.Index | None = None
        self._pool: Pool | None = None
        self._embeddings: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self.graph: KnnGraph | None = None
        self._checked_pool: Pool | None = None  # the last pool check_pool accepted
        self.pool_fingerprint: dict[str, Any] | None = None  # of the vectors added (fit / load)
        self.build_seconds = 0.0
        self.calibration_seconds = 0.0
        self.recall_: float | None = None

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
        start = time.perf_counter()
        n, dim = embeddings.shape
        index = faiss.IndexIDMap2(_make_faiss_index(self.factory, dim, self.metric))
        _train(index, embeddings, self.factory, self.train_size, self.seed, self.metric)
        for lo in tqdm(
            range(0, n, self.chunk_size),
            desc=f"indexing ({self.factory})",
            unit="chunk",
            disable=not self.progress,
        ):
            hi = min(n, lo + self.chunk_size)
            index.add_with_ids(prepare_rows(embeddings[lo:hi], self.metric), ids[lo:hi])
        self._index = index
        self._embeddings, self._ids = embeddings, ids
        self.pool_fingerprint = fingerprint(ids, embeddings)
        self._apply_search_params()
        self.build_seconds = time.perf_counter() - start
        log.info("built %r over %d items in %.1f s", self.factory, n, self.build_seconds)
        if self.recall_target is not None:
            self.calibrate(self.recall_target)
        return self

    # ------------------------------------------------------------------ recall
    def _calibration_set(self, n_queries: int, k: int, seed: int):
        """Sampled query rows (positions), their embeddings and exact neighbours (self dropped)."""
        if self._embeddings is None:
            raise ValidationError(
                "the index does not know its embeddings; fit it, or attach(pool) after load"
            )
        n = self._embeddings.shape[0]
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=min(n, n_queries), replace=False))
        queries = prepare_rows(self._embeddings[rows], self.metric)
        found, _ = exact_search(self._embeddings, queries, k + 1, self.metric)
        exact = np.array([[p for p in r if p != q][:k] for r, q in zip(found, rows, strict=True)])
        return rows, queries, self._ids[exact]

    def measure_recall(self, k: int = 10, n_queries: int = 200, seed: int | None = None) -> float:
        """Mean recall@``k`` of :meth:`neighbors` against exact search, over ``n_queries``
        sampled pool items (seeded); stored in ``recall_``."""
        rows, _, exact = self._calibration_set(n_queries, k, self.seed if seed is None else seed)
        self.recall_ = _recall(self._approximate(rows, k), exact)
        return self.recall_

    def _approximate(self, rows: np.ndarray, k: int) -> np.ndarray:
        queries = prepare_rows(self._embeddings[rows], self.metric)
        found, _ = self.search(queries, k + 1)
        own = self._ids[rows]
        return np.array([[i for i in r if i != q][:k] for r, q in zip(found, own, strict=True)])

    def calibrate(self, target: float, max_scan: int | None = None) -> str:
        """Smallest search setting reaching recall@``calibration_k`` ``target``; returns and
        applies the chosen ``search_params``.

        Works for any factory string: an IVF index (also inside a pre-transform or refine
        wrapper) tunes ``nprobe``, doubled from 1 (with an HNSW coarse quantiser its
        ``quantizer_efSearch`` follows, never below ``nprobe``); an HNSW index tunes
        ``efSearch``; anything else (Flat, PQ, LSH) has nothing to tune and only its recall is
        measured. ``max_scan`` caps the codes an IVF query scans (``nprobe * n / nlist``): the
        setting stops at the cap even below the target, so a round's searches stay within
        their time (``recall_`` says what was reached).
        """
        start = time.perf_counter()
        k, n_queries = self.calibration_k, self.calibration_queries
        rows, _, exact = self._calibration_set(n_queries, k, self.seed)
        settings = _search_settings(self.index, self.factory, len(self), max_scan)
        recall = None if settings else _recall(self._approximate(rows, k), exact)
        for setting in settings:
            self.search_params = setting
            self._apply_search_params()
            recall = _recall(self._approximate(rows, k), exact)
            if recall >= target:
                break
        self.recall_ = recall
        self.calibration_seconds = time.perf_counter() - start
        log.info(
            "calibrated %r: %s, recall@%d %.3f (target %.3f) in %.1f s",
            self.factory,
            self.search_params or "no search parameter",
            k,
            recall,
            target,
            self.calibration_seconds,
        )
        return self.search_params

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
        """Faiss distances as higher-is-closer scores: the cosine (exact IP and L2 indexes over
        unit rows), the inner product, or minus the squared L2 distance."""
        inner = self.index
        if isinstance(inner, faiss.IndexIDMap2):
            inner = faiss.downcast_index(inner.index)
        if isinstance(inner, faiss.IndexLSH):
            return -distances  # Hamming distance between codes
        if self.index.metric_type == faiss.METRIC_L2:
            if self.metric == "euclidean":
                return -distances
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
        k = positive_int(k, "k")
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        depth = min(len(self), k + excluded.size)
        m = queries.shape[0]
        if m == 0 or depth == 0:
            return np.full((m, k), -1, np.int64), np.full((m, k), -np.inf, np.float32)
        distances, found = self._faiss_search(prepare_rows(queries, self.metric), depth)
        scores = self._scores(distances).astype(np.float32, copy=False)
        keep = found >= 0
        if excluded.size:
            pos = np.minimum(np.searchsorted(excluded, found), excluded.size - 1)
            keep &= excluded[pos] != found
        if keep.all():  # nothing to drop (a self-join of a whole matrix): the rows as found
            out_ids, out_scores = found[:, :k], scores[:, :k]
        else:  # stable compaction: the kept entries of each row move to its front, in order
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
        chunk_size: int = 4096,
    ) -> np.ndarray:
        """Ids of the ``k`` nearest neighbours of pool items ``ids``, themselves excluded: (m, k).

        Query embeddings come from ``pool`` (default: the pool the index was fitted on or
        attached to). Queries run in chunks of ``chunk_size``; rows are padded with -1 where
        fewer than ``k`` neighbours qualify. With a :class:`KnnGraph` attached (see
        :meth:`build_graph`) that is at least ``k`` deep, nothing excluded and the attached
        pool asked, the rows come from the graph and no search runs.
        """
        ids = as_ids(ids)
        k = positive_int(k, "k")
        pool = pool if pool is not None else self._pool
        if pool is None:
            raise ValidationError("pass pool= so the index can look up the query embeddings")
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        graph = self.graph
        if graph is not None and not excluded.size and k <= graph.k and pool is self._pool:
            return graph.neighbors(pool.positions(ids), k)
        out = np.full((ids.size, k), -1, np.int64)
        for lo in range(0, ids.size, chunk_size):
            chunk = ids[lo : lo + chunk_size]
            found, _ = self.search(pool.embeddings_of(chunk), k + 1, exclude=excluded)
            not_self = found != chunk[:, None]
            order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
            rows = np.take_along_axis(found, order, axis=1)
            rows[~np.take_along_axis(not_self, order, axis=1)] = -1
            out[lo : lo + chunk.size] = rows
        return out

    def build_graph(self, k: int, path: str | os.PathLike, chunk_size: int = 16_384) -> KnnGraph:
        """Search every item's ``k`` neighbours once (in batches, with a progress bar), write
        them as an int32 ``.npy`` at ``path`` and attach the graph; ``graph.build_seconds``
        says how long it took."""
        if self._pool is None:
            raise ValidationError("fit(pool) or attach(pool) before building a k-NN graph")
        k = positive_int(k, "k")
        pool, path = self._pool, os.fspath(path)
        start = time.perf_counter()
        self.graph = None
        part = path + ".part.npy"
        out = np.lib.format.open_memmap(part, mode="w+", dtype=np.int32, shape=(len(pool), k))
        for lo in tqdm(
            range(0, len(pool), chunk_size),
            desc="k-NN graph",
            unit="batch",
            disable=not self.progress,
        ):
            found = self.neighbors(pool.ids[lo : lo + chunk_size], k)
            rows = np.full(found.shape, -1, np.int32)
            valid = found >= 0
            rows[valid] = pool.positions(found[valid])
            out[lo : lo + found.shape[0]] = rows
        out.flush()
        del out
        os.replace(part, path)
        self.graph = KnnGraph(path, pool.ids, time.perf_counter() - start)
        log.info(
            "built a %d-NN graph over %d items in %.1f s", k, len(pool), self.graph.build_seconds
        )
        return self.graph

    def attach_graph(self, path: str | os.PathLike) -> KnnGraph:
        """Attach a graph written by :meth:`build_graph` for the attached pool."""
        if self._pool is None:
            raise ValidationError("attach(pool) before attaching its k-NN graph")
        self.graph = KnnGraph(path, self._pool.ids)
        return self.graph

    def check_pool(self, pool: Pool) -> None:
        """Raise :class:`ValidationError` unless the index was built over ``pool``: the same
        dimension and, where the index knows its pool's fingerprint (ids and a sample of rows,
        :func:`raresift.pool.fingerprint`), the same ids and vectors. A pool checked once
        is not checked again (a long-lived session checks it at its first round only)."""
        if pool is getattr(self, "_checked_pool", None):  # (an index actor's proxy has none)
            return
        if pool.dim != self.dim:
            raise ValidationError(
                f"the pool has {pool.dim}-d embeddings but the index holds {self.dim}-d vectors"
            )
        if self.pool_fingerprint is not None:
            differs = fingerprint_mismatch(self.pool_fingerprint, pool.fingerprint())
            if differs:
                raise ValidationError(
                    f"the index was built over another pool ({differs}); rebuild it from this "
                    "pool with NeighborIndex(...).fit(pool)"
                )
        self._checked_pool = pool

    def attach(self, pool: Pool) -> NeighborIndex:
        """Remember ``pool`` so :meth:`neighbors` can look up query embeddings by id; the pool
        must be the one the index was built over (:meth:`check_pool`)."""
        self.check_pool(pool)
        if self.graph is not None and not np.array_equal(self.graph.ids, pool.ids):
            self.graph = None  # built for another pool
        self._pool = pool
        self._embeddings, self._ids = pool.embeddings, pool.ids
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the Faiss index to ``path`` and its settings to ``path + '.json'``: the factory,
        the fingerprint of the pool it was built over and a SHA-256 of the index file, which
        :meth:`load` checks."""
        path = os.fspath(path)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise ValidationError(
                f"cannot save the index to {path!r}: folder {folder!r} does not exist; create it "
                "first"
            )
        try:
            faiss.write_index(self.index, path)
        except RuntimeError as exc:  # Faiss reports a full or read-only disk this way
            raise StorageError(
                f"cannot write the index to {path!r} "
                f"({str(exc).strip().splitlines()[-1]}); free some space or choose a writable "
                "folder"
            ) from None
        meta = {
            "format": _FORMAT,
            "factory": self.factory,
            "search_params": self.search_params,
            "dim": self.dim,
            "ntotal": len(self),
            "seed": self.seed,
            "metric": self.metric,
            "recall": self.recall_,
            "recall_k": self.calibration_k,
            "pool": self.pool_fingerprint,
            "on_disk": _has_on_disk_lists(self.index),
            "sha256": _file_sha256(path),
        }
        with open(path + ".json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        pool: Pool | None = None,
        progress: bool = True,
        verify: bool = True,
    ):
        """Read an index written by :meth:`save`; with ``pool``, check it matches and attach it.

        Inverted lists are memory-mapped, not read (an IVF index over 10^8 items opens in
        milliseconds and costs page cache, not RAM); on-disk lists (``index.ivfdata``) are
        looked up beside ``path``, so a folder holding both may move. ``verify=False`` skips
        the SHA-256 of the whole file, for a caller that has checked the file itself (a
        session checks its size and a sampled hash on every open).
        """
        path = os.fspath(path)
        if not os.path.exists(path) or not os.path.exists(path + ".json"):
            raise ValidationError(
                f"no saved index at {path!r} (need both {path!r} and {path + '.json'!r}); "
                "build one with NeighborIndex(...).fit(pool).save(path)"
            )
        try:
            with open(path + ".json", encoding="utf-8") as fh:
                meta = json.load(fh)
            if not isinstance(meta, dict):
                raise ValueError(f"its settings are a JSON {type(meta).__name__}, not an object")
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown format {meta.get('format')!r}")
            lacking = [key for key in _REQUIRED_META if key not in meta]
            if lacking:
                raise ValueError(f"its settings lack {', '.join(lacking)}")
            if verify and meta.get("sha256") is not None and _file_sha256(path) != meta["sha256"]:
                raise ValueError("the index file does not match its checksum: it is garbled")
            on_disk = meta.get("on_disk", os.path.exists(_ivfdata_beside(path)))
            index = faiss.read_index(
                path, faiss.IO_FLAG_ONDISK_SAME_DIR if on_disk else faiss.IO_FLAG_MMAP
            )
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
        self = cls(
            meta["factory"],
            meta["search_params"],
            seed=meta["seed"],
            progress=progress,
            metric=meta.get("metric", "cosine"),  # files written before metrics were cosine
        )
        self._index = index
        self.pool_fingerprint = meta.get("pool")
        self.recall_ = meta.get("recall")
        self.calibration_k = meta.get("recall_k", self.calibration_k)
        self._apply_search_params()
        if pool is not None:
            self.attach(pool)
        return self


_REQUIRED_META = ("factory", "search_params", "dim", "ntotal", "seed")


def _ivfdata_beside(path: str) -> str:
    return os.path.join(os.path.dirname(path), "index.ivfdata")


def _has_on_disk_lists(index: faiss.Index) -> bool:
    """Whether ``index`` keeps its inverted lists in a separate ``.ivfdata`` file."""
    ivf = faiss.try_extract_index_ivf(index)
    return ivf is not None and isinstance(
        faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists
    )


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _search_settings(index: faiss.Index, factory: str, n: int, max_scan: int | None) -> list:
    """The search settings :meth:`NeighborIndex.calibrate` tries, cheapest first.

    >>> _search_settings(faiss.index_factory(8, "IVF4_HNSW8,Flat"), "IVF4_HNSW8,Flat", 100, 50)
    ['nprobe=1,quantizer_efSearch=16', 'nprobe=2,quantizer_efSearch=16']
    >>> _search_settings(faiss.index_factory(8, "PQ4"), "PQ4", 100, None)
    []
    """
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        limit = int(ivf.nlist)
        if max_scan is not None and n > 0:
            limit = max(1, min(limit, int(max_scan * ivf.nlist // n)))
        hnsw = isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW)
        out, value = [], 1
        while True:
            out.append(
                f"nprobe={value}" + (f",quantizer_efSearch={max(16, value)}" if hnsw else "")
            )
            if value >= limit:
                return out
            value = min(limit, value * 2)
    if "HNSW" in factory:
        return [f"efSearch={2**i}" for i in range(4, 13)]
    return []


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row of ``exact`` that ``found`` contains."""
    k = exact.shape[1]
    return float(np.mean([np.isin(e, f).sum() / k for f, e in zip(found, exact, strict=True)]))


def _train(
    index: faiss.Index,
    embeddings: np.ndarray,
    factory: str,
    size: int,
    seed: int,
    metric: str = "cosine",
) -> None:
    """Train ``index`` (if it needs it) on a seeded sample of ``size`` rows (prepared for
    ``metric``: unit rows for cosine)."""
    if index.is_trained:
        return
    n = embeddings.shape[0]
    m = min(n, size)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    log.info("training Faiss index %r on %d sampled rows", factory, m)
    try:
        rows = prepare_rows(embeddings[sample], metric)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None and ivf.nlist >= TWO_LEVEL_LISTS and ivf.quantizer.ntotal == 0:
            _train_two_level(ivf, rows, metric, seed)
            rows = rows[:: -(-rows.shape[0] // CODEC_TRAIN_ROWS)]  # the codec needs fewer
        index.train(rows)  # the coarse quantiser (unless trained above) and the codec
    except RuntimeError as exc:
        raise ConfigError(
            f"training Faiss index {factory!r} on {m} rows failed: "
            f"{str(exc).strip().splitlines()[-1]}; use fewer lists / codes or more rows"
        ) from None


def _train_two_level(ivf: faiss.IndexIVF, rows: np.ndarray, metric: str, seed: int) -> None:
    """Train the coarse quantiser of ``ivf`` by two-level k-means (sqrt(nlist) clusters, each
    split in proportion to its size): about sqrt(nlist) times less work than one k-means into
    nlist centroids, which at 65,536 lists would take hours on two cores."""
    from faiss.contrib.clustering import two_level_clustering

    first = int(math.sqrt(ivf.nlist))
    centroids, _ = two_level_clustering(rows, first, int(ivf.nlist), seed=seed)
    if metric == "cosine":  # unit rows, unit centroids (spherical k-means)
        centroids = normalize_rows(centroids)
    ivf.quantizer.train(centroids)
    ivf.quantizer.add(centroids)


# ---------------------------------------------------------------------- recall probe
class RecallProbe:
    """recall@k of an index's neighbour rows against exact search, for a few query items.

    The rows the index gave (``found``: (m, k) ids, the queries themselves left out) are
    compared with the exact top ``k`` of each query (itself left out) over every row of the
    pool. The exact scan runs in slices of rows (:meth:`advance`), so it can be spread over
    time (a background thread, several processes: the state round-trips through
    :meth:`as_dict`); :attr:`recall` is None until every row has been scanned.

    >>> x = np.array([[1, 0], [0.9, 0.1], [0.5, 0.5], [0, 1]], dtype=np.float32)
    >>> probe = RecallProbe(np.array([0]), np.array([[1, 3]]), round_index=1)  # exact: 1, 2
    >>> probe.advance(x, max_rows=3), probe.recall, probe.advance(x, max_rows=3)
    (False, None, True)
    >>> probe.recall, RecallProbe.from_dict(probe.as_dict()).recall
    (0.5, 0.5)
    """

    def __init__(self, queries: np.ndarray, found: np.ndarray, round_index: int = 0):
        self.queries = np.asarray(queries, dtype=np.int64)
        self.found = np.asarray(found, dtype=np.int64)
        self.round = int(round_index)
        self.k = int(self.found.shape[1])
        self.cursor = 0
        self.top_ids = np.full((self.queries.size, self.k), -1, np.int64)
        self.top_scores = np.full((self.queries.size, self.k), -np.inf, np.float32)
        self.seconds = 0.0

    @property
    def done(self) -> bool:
        return self.cursor < 0

    @property
    def recall(self) -> float | None:
        """Mean share of each query's exact top k that the index found (None: scanning)."""
        return _recall(self.found, self.top_ids) if self.done else None

    def advance(
        self,
        embeddings: np.ndarray,
        max_rows: int,
        ids: np.ndarray | None = None,
        metric: str = "cosine",
        stop: Any = None,
        positions: np.ndarray | None = None,
    ) -> bool:
        """Scan the next ``max_rows`` rows of the pool (``ids``: its ids, default positions;
        ``positions``: the queries' rows, needed with ``ids``), or fewer if ``stop()``
        (checked between blocks of rows) turns true; True once every row is scanned."""
        if self.done:
            return True
        start = time.perf_counter()
        n = embeddings.shape[0]
        pos = self.queries if ids is None else np.asarray(positions, dtype=np.int64)
        q = prepare_rows(embeddings[pos], metric)
        hi = min(n, self.cursor + max_rows)
        for lo in range(self.cursor, hi, ROW_BLOCK):
            if stop is not None and stop():
                hi = lo
                break
            block = embeddings[lo : min(hi, lo + ROW_BLOCK)]
            rows = prepare_rows(block, metric)
            scores = (q @ rows.T).astype(np.float32)
            block_pos = np.arange(lo, lo + rows.shape[0])
            scores[block_pos[None, :] == pos[:, None]] = -np.inf  # a query is not its neighbour
            block_ids = block_pos if ids is None else ids[block_pos]
            self._merge(np.broadcast_to(block_ids, scores.shape), scores)
        self.cursor = -1 if hi >= n else hi
        self.seconds += time.perf_counter() - start
        return self.done

    def _merge(self, ids: np.ndarray, scores: np.ndarray) -> None:
        all_ids = np.concatenate([self.top_ids, ids], axis=1)
        all_scores = np.concatenate([self.top_scores, scores], axis=1)
        k = min(self.k, all_scores.shape[1])
        best = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(-all_scores, best, axis=1).argsort(axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        self.top_ids = np.take_along_axis(all_ids, best, axis=1)
        self.top_scores = np.take_along_axis(all_scores, best, axis=1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "k": self.k,
            "queries": self.queries.tolist(),
            "found": self.found.tolist(),
            "cursor": self.cursor,
            "top_ids": self.top_ids.tolist(),
            "top_scores": [[float(v) for v in row] for row in self.top_scores],
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RecallProbe:
        probe = cls(np.array(state["queries"]), np.array(state["found"]), state["round"])
        probe.cursor = int(state["cursor"])
        probe.top_ids = np.array(state["top_ids"], dtype=np.int64).reshape(probe.top_ids.shape)
        probe.top_scores = np.array(state["top_scores"], dtype=np.float32).reshape(
            probe.top_ids.shape
        )
        probe.seconds = float(state.get("seconds", 0.0))
        return probe


# ---------------------------------------------------------------------- k-NN graph
class KnnGraph:
    """Each pool item's ``k`` nearest neighbours (itself excluded), precomputed once.

    Stored as an (n, k) int32 ``.npy`` of pool *positions* (-1 where fewer qualified), opened
    memory-mapped, so a graph over 10^8 items costs page cache, not RAM. Build it with
    :meth:`NeighborIndex.build_graph`; :meth:`NeighborIndex.neighbors` answers from it whenever
    it is attached, deep enough and nothing is excluded.
    """

    def __init__(self, path: str | os.PathLike, ids: np.ndarray, build_seconds: float = 0.0):
        self.path = os.fspath(path)
        try:
            self.positions = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CorruptFileError(
                f"cannot read the k-NN graph at {self.path!r} ({exc}); rebuild it with "
                "NeighborIndex.build_graph"
            ) from None
        if self.positions.ndim != 2 or self.positions.dtype != np.int32:
            raise CorruptFileError(f"{self.path!r} is not an (n, k) int32 k-NN graph; rebuild it")
        if self.positions.shape[0] != ids.size:
            raise ValidationError(
                f"the k-NN graph at {self.path!r} has {self.positions.shape[0]} rows but the pool "
                f"has {ids.size} items; rebuild it for this pool"
            )
        self.ids = ids
        self.build_seconds = build_seconds

    @property
    def k(self) -> int:
        return int(self.positions.shape[1])

    def neighbors(self, positions: np.ndarray, k: int) -> np.ndarray:
        """Neighbour ids of pool rows ``positions``: (m, k), -1 padded."""
        rows = np.asarray(self.positions[positions, :k], dtype=np.int64)
        out = np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)
        return out
