"""The index on Ray: shard builds as Ray tasks, k-NN searches served by index actors.

:func:`ray_map_shards` is the ``map_shards`` of :func:`raresift.index.build_sharded_index`: it
runs each shard build as a Ray task, so shards are added in parallel, and a shard whose worker
dies (killed, out of memory, node lost) is run again by Ray's task retries; a shard task writes
its file under a temporary name and renames it, so a retry never sees half a shard.

:class:`RemoteNeighborIndex` loads a saved index (``NeighborIndex.load``; an on-disk IVF index
is memory-mapped, so the actors of one node share its lists through the page cache) in
``workers`` Ray actors and answers :meth:`neighbors` by splitting the queries over them. It has
the two members :class:`~raresift.candidates.SEALSCandidates` uses (``dim`` and
``neighbors``), so a SEALS pool built on it sends every k-NN search of a round to the index
workers, with the results of the local index.

Example
-------
>>> from raresift.candidates import SEALSCandidates
>>> def seals_on_ray(path):  # an index saved by NeighborIndex.save or build_sharded_index
...     return SEALSCandidates(RemoteNeighborIndex(path, workers=4), k=100)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.distributed.cluster import connect, gather, import_ray
from raresift.errors import ConfigError, ValidationError
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
    """A Ray actor holding one loaded copy of the index."""

    def __init__(self, path: str):
        from raresift.index import NeighborIndex

        self.index = NeighborIndex.load(path, progress=False)

    def dim(self) -> int:
        return self.index.dim

    def size(self) -> int:
        return len(self.index)

    def neighbors(self, ids: np.ndarray, rows: np.ndarray, k: int, exclude: np.ndarray):
        # the local index's own neighbors(): a pool of just the queries supplies their rows
        return self.index.neighbors(ids, k, exclude=exclude, pool=Pool(rows, ids=ids))


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
        Queries below this many go to one actor (splitting tiny batches costs more than it
        saves).
    """

    def __init__(
        self, path: str | os.PathLike, workers: int = 2, num_cpus: float = 1, min_batch: int = 256
    ):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers <= 0:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.exists(self.path):
            raise ValidationError(
                f"no saved index at {self.path!r}; build one with NeighborIndex(...).save(path) "
                "or build_sharded_index"
            )
        connect()
        ray = import_ray()
        actor = ray.remote(num_cpus=num_cpus, max_restarts=2, max_task_retries=2)(_IndexWorker)
        self._actors = [actor.remote(self.path) for _ in range(workers)]
        self.dim = int(gather([self._actors[0].dim.remote()])[0])
        self._size = int(gather([self._actors[0].size.remote()])[0])
        self.min_batch = min_batch
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"RemoteNeighborIndex({self.path!r}, workers={len(self._actors)}, n={self._size})"

    def neighbors(
        self, ids: Any, k: int, exclude: Any = None, pool: Pool | None = None, **_: Any
    ) -> np.ndarray:
        """Ids of the ``k`` nearest neighbours of pool items ``ids``, themselves excluded:
        (m, k), -1 padded; the same as :meth:`raresift.index.NeighborIndex.neighbors`."""
        if pool is None:
            raise ValidationError("pass pool= so the index workers get the query embeddings")
        ids = as_ids(ids)
        excluded = np.unique(as_ids([] if exclude is None else exclude, "exclude"))
        if ids.size == 0:
            return np.full((0, k), -1, np.int64)
        ray = import_ray()
        parts = max(1, min(len(self._actors), ids.size // self.min_batch))
        chunks = np.array_split(np.arange(ids.size), parts)
        excluded_ref = ray.put(excluded)
        refs = []
        for chunk in chunks:
            actor = self._actors[self._next % len(self._actors)]
            self._next += 1
            part = ids[chunk]
            refs.append(actor.neighbors.remote(part, pool.embeddings_of(part), k, excluded_ref))
        return np.concatenate(gather(refs))

    def close(self) -> None:
        """Stop the index actors."""
        ray = import_ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
