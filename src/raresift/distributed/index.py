"""The index on Ray: shard builds as Ray tasks, k-NN searches served by index actors.

:func:`ray_map_shards` is the ``map_shards`` of :func:`raresift.index.build_sharded_index`: it
runs each shard build as a Ray task, so shards are added in parallel, and a shard whose worker
dies (killed, out of memory, node lost) is run again by Ray's task retries; a shard task writes
its file under a temporary name and renames it, so a retry never sees half a shard.

:class:`RemoteNeighborIndex` loads a saved index (``NeighborIndex.load``; an on-disk IVF index
is memory-mapped, so the actors of one node share its lists through the page cache) in
``workers`` Ray actors and answers :meth:`neighbors` by splitting the queries over them. It has
the members :class:`~raresift.candidates.SEALSCandidates` uses (``dim``, ``check_pool``,
``neighbors``, ``search_ahead``), so a SEALS pool built on it sends every k-NN search of a
round to the index workers, with the results of the local index. Like ``NeighborIndex`` it
refuses a pool the index was not built over (:meth:`RemoteNeighborIndex.check_pool`, from the
fingerprint saved beside the index; the actors check the file's SHA-256 when they load it),
and it has SEALS rounds search ahead more than a local index does, since a call costs more
than a query.

Example
-------
>>> from raresift.candidates import SEALSCandidates
>>> def seals_on_ray(path):  # an index saved by NeighborIndex.save or build_sharded_index
...     return SEALSCandidates(RemoteNeighborIndex(path, workers=4), k=100)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.distributed.cluster import connect, gather, import_ray
from raresift.errors import ConfigError, CorruptFileError, RaresiftError, ValidationError
from raresift.pool import Pool, as_ids

log = logging.getLogger("raresift")


def ray_map_shards(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    num_cpus: float = 1,
    max_retries: int = 3,
    progress: bool = True,
) -> list:
    """``[fn(t) for t in tasks]`` as Ray tasks (``num_cpus`` each), results in task order.

    A task whose worker process dies is retried up to ``max_retries`` times by Ray; ``fn``
    must be idempotent (a shard build is: it rewrites its own file atomically). Pass it as
    ``build_sharded_index(..., map_shards=ray_map_shards)``.
    """
    connect()
    ray = import_ray()
    remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(_apply)
    fn_ref = ray.put(fn)
    refs = [remote.remote(fn_ref, t) for t in tasks]
    with tqdm(
        total=len(refs), desc="index shards (Ray)", unit="shard", disable=not progress
    ) as bar:
        return gather(refs, bar)


def _apply(fn: Callable[[Any], Any], task: Any) -> Any:
    return fn(task)


class _IndexWorker:
    """A Ray actor holding one loaded copy of the index (``NeighborIndex.load`` checks the
    file against its SHA-256). A load that fails is raised by :meth:`size`, so the driver
    gets the raresift error itself rather than Ray's report of a dead actor."""

    def __init__(self, path: str):
        from raresift.index import NeighborIndex

        self.error: RaresiftError | None = None
        try:
            self.index = NeighborIndex.load(path, progress=False)
        except RaresiftError as exc:
            self.error = exc

    def neighbors(self, ids: np.ndarray, rows: np.ndarray, k: int, exclude: np.ndarray):
        # the local index's own neighbors(): a pool of just the queries supplies their rows
        pool = Pool(rows, ids=ids, values_checked=True)
        return self.index.neighbors(ids, k, exclude=exclude, pool=pool)

    def size(self) -> int:
        if self.error is not None:
            raise self.error
        return len(self.index)


class RemoteNeighborIndex:
    """A saved :class:`~raresift.index.NeighborIndex` searched by ``workers`` Ray actors.

    Parameters
    ----------
    path : path
        The index file (with its ``.json`` beside it), readable from every node.
    workers : int
        Index actors; each holds a loaded copy (an on-disk IVF index maps its lists).
    num_cpus : float
        CPUs each actor holds.
    min_batch : int
        Queries per actor at least: a search of fewer than ``workers * min_batch`` queries
        goes to fewer actors (raise it for an index whose searches cost less than a Ray call,
        such as a small Flat one).
    search_ahead : int, optional
        How many more queries a SEALS round may add to a search it has to make anyway (the
        neighbours of the items it will most likely pick next, fetched in the same call; see
        :attr:`raresift.candidates.SEALSCandidates.search_ahead`). Default
        ``4 * workers - 1``: calls of up to 4 queries per actor, since a Ray call costs about
        as much as a query.
    pool : Pool, optional
        Check at once that the index was built over this pool (:meth:`check_pool`).

    The settings beside the index (its ``.json``) give the dimension, size and the fingerprint
    of the pool it was built over, so :meth:`check_pool` (which
    :class:`~raresift.candidates.SEALSCandidates` calls when it starts) refuses another pool
    with the error of :meth:`raresift.index.NeighborIndex.check_pool`; each actor checks the
    index file against its SHA-256 when it loads it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        workers: int = 2,
        num_cpus: float = 1,
        min_batch: int = 1,
        search_ahead: int | None = None,
        pool: Pool | None = None,
    ):
        for name, value in (("workers", workers), ("min_batch", min_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        search_ahead = 4 * workers - 1 if search_ahead is None else search_ahead
        if isinstance(search_ahead, bool) or not isinstance(search_ahead, int) or search_ahead < 0:
            raise ConfigError(f"search_ahead must be a non-negative integer, got {search_ahead!r}")
        self.path = os.path.abspath(os.fspath(path))
        meta = _saved_settings(self.path)
        self.dim = int(meta["dim"])
        self.pool_fingerprint: dict[str, Any] | None = meta.get("pool")
        self._size = int(meta["ntotal"])
        self.min_batch = min_batch
        self.search_ahead = search_ahead
        if pool is not None:
            self.check_pool(pool)
        connect()
        ray = import_ray()
        actor = ray.remote(num_cpus=num_cpus, max_restarts=2, max_task_retries=2)(_IndexWorker)
        self._actors = [actor.remote(self.path) for _ in range(workers)]
        try:  # every actor has loaded the index, or its load's error is raised here
            gather([a.size.remote() for a in self._actors])
        except RaresiftError:
            self.close()
            raise
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"RemoteNeighborIndex({self.path!r}, workers={len(self._actors)}, n={self._size})"

    def check_pool(self, pool: Pool) -> None:
        """Raise :class:`ValidationError` unless the index was built over ``pool`` (the same
        check as :meth:`raresift.index.NeighborIndex.check_pool`)."""
        from raresift.index import NeighborIndex

        NeighborIndex.check_pool(self, pool)

    def neighbors(
        self, ids: Any, k: int, exclude: Any = None, pool: Pool | None = None, **_: Any
    ) -> np.ndarray:
        """Ids of the ``k`` nearest neighbours of pool items ``ids``, themselves excluded:
        (m, k), -1 padded; the same as :meth:`raresift.index.NeighborIndex.neighbors`.

        The queries are split over the actors (at least ``min_batch`` each), one Ray call per
        actor; a single query goes to the next actor in turn.
        """
        if pool is None:
            raise ValidationError("pass pool= so the index workers get the query embeddings")
        ids = as_ids(ids)
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        if ids.size == 0:
            return np.full((0, k), -1, np.int64)
        parts = max(1, min(len(self._actors), ids.size // self.min_batch))
        if parts > 1 and excluded.nbytes > 1 << 16:  # shared by the calls: stored once
            excluded = import_ray().put(excluded)
        refs = []
        for chunk in np.array_split(ids, parts):
            actor = self._actors[self._next % len(self._actors)]
            self._next += 1
            refs.append(actor.neighbors.remote(chunk, pool.embeddings_of(chunk), k, excluded))
        found = gather(refs)
        return found[0] if parts == 1 else np.concatenate(found)

    def close(self) -> None:
        """Stop the index actors."""
        ray = import_ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


def _saved_settings(path: str) -> dict[str, Any]:
    """The settings ``NeighborIndex.save`` wrote beside the index at ``path``."""
    settings = path + ".json"
    if not os.path.exists(path) or not os.path.exists(settings):
        raise ValidationError(
            f"no saved index at {path!r} (need both {path!r} and {settings!r}); build one with "
            "NeighborIndex(...).save(path) or build_sharded_index"
        )
    try:
        with open(settings, encoding="utf-8") as fh:
            meta = json.load(fh)
        if not isinstance(meta, dict) or "dim" not in meta or "ntotal" not in meta:
            raise ValueError("they lack the dimension or the size")
    except ValueError as exc:
        raise CorruptFileError(
            f"cannot read the settings of the index at {path!r} ({exc}); rebuild it with "
            "NeighborIndex(...).fit(pool).save(path)"
        ) from None
    return meta
