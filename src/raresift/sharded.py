"""The sharded build of a :class:`~raresift.index.NeighborIndex` too large for one pass: a
quantiser trained once, shards of rows added in parallel (locally, or as Ray tasks by
:func:`raresift.distributed.ray_map_shards`) and merged into on-disk inverted lists.
:mod:`raresift.index` re-exports :func:`build_sharded_index`; import it from there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from raresift.density import normalize_rows
from raresift.errors import ConfigError, CorruptFileError, ValidationError
from raresift.index import NeighborIndex, _make_faiss_index, _train, ivf_nlist
from raresift.params import Interval, check_parameters
from raresift.pool import Pool, as_ids, check_matrix, fingerprint

log = logging.getLogger("raresift")


@dataclasses.dataclass(frozen=True)
class MemmapSource:
    """Where a worker can reopen a C-ordered embedding memmap (instead of receiving its rows)."""

    filename: str
    dtype: str
    shape: tuple[int, int]
    offset: int

    def open(self) -> np.ndarray:
        return np.memmap(self.filename, self.dtype, "r", self.offset, self.shape)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` read into memory (a plain read, not a mapping: the pages read stay
        page cache and never count in this process's resident memory)."""
        dim = self.shape[1]
        itemsize = np.dtype(self.dtype).itemsize
        rows = np.fromfile(
            self.filename, self.dtype, (hi - lo) * dim, offset=self.offset + lo * dim * itemsize
        )
        return rows.reshape(hi - lo, dim)


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One shard of a sharded build: rows ``lo:hi`` of ``source`` (an array, or a
    :class:`MemmapSource`) added to the trained empty index at ``trained_path``, written to
    ``shard_path``. Small and picklable, so ``map_shards`` may run it anywhere that sees the
    files."""

    trained_path: str
    shard_path: str
    source: Any
    lo: int
    hi: int
    ids: np.ndarray
    chunk_size: int = 65_536


def build_shard(task: ShardTask) -> int:
    """Run one :class:`ShardTask`; returns the number of rows it added. A shard whose file
    exists already (an interrupted build run again) is not built twice."""
    if os.path.exists(task.shard_path):
        return int(faiss.read_index(task.shard_path, faiss.IO_FLAG_MMAP).ntotal)
    source = task.source
    index = faiss.read_index(task.trained_path)
    for lo in range(task.lo, task.hi, task.chunk_size):
        hi = min(task.hi, lo + task.chunk_size)
        rows = source.read(lo, hi) if isinstance(source, MemmapSource) else source[lo:hi]
        index.add_with_ids(normalize_rows(rows), task.ids[lo - task.lo : hi - task.lo])
    faiss.write_index(index, task.shard_path + ".part")
    os.replace(task.shard_path + ".part", task.shard_path)
    return int(index.ntotal)


def _memmap_source(x: np.ndarray) -> MemmapSource | None:
    """The file behind ``x`` if ``x`` is a whole C-ordered memmap of it (not a slice)."""
    if not isinstance(x, np.memmap) or not x.filename or not x.flags.c_contiguous:
        return None
    if os.path.getsize(x.filename) != x.offset + x.nbytes:
        return None
    return MemmapSource(os.fspath(x.filename), x.dtype.str, tuple(x.shape), int(x.offset))


def _local_map(fn: Callable[[Any], Any], tasks: Sequence[Any], progress: bool = True) -> list:
    return [fn(t) for t in tqdm(tasks, desc="index shards", unit="shard", disable=not progress)]


def build_sharded_index(
    embeddings: Pool | Any,
    factory: str,
    directory: str | os.PathLike,
    *,
    ids: Any = None,
    shard_size: int = 1_000_000,
    train_size: int = 100_000,
    seed: int = 0,
    search_params: str = "",
    map_shards: Callable[[Callable[[ShardTask], int], list[ShardTask]], list[int]] | None = None,
    progress: bool = True,
) -> NeighborIndex:
    """Build an IVF index too large for RAM: train once, add shards, merge onto disk.

    The coarse quantiser (and PQ/SQ codec) of ``factory`` (an IVF factory string such as
    ``"IVF40000,PQ16"``) is trained once on ``train_size`` seeded rows; each ``shard_size`` rows
    are added to a copy of the trained empty index and written as a shard file
    (``map_shards(build_shard, tasks)`` runs them: a local loop by default; a distributed
    runner passes its own map); the shards' inverted lists are then merged into one
    ``index.ivfdata`` file of on-disk inverted lists and the shards deleted. The result,
    ``directory/index.faiss``, loads with :meth:`NeighborIndex.load` and is searched through
    memory-mapped lists, so RAM holds only the quantiser.

    ``embeddings`` is a :class:`Pool` (already validated) or an (n, d) array/memmap (checked in
    chunks) with ``ids``. A memmap that is a whole file is reopened by each shard task rather
    than shipped to it.
    """
    if isinstance(embeddings, Pool):
        x, ids = embeddings.embeddings, embeddings.ids
    else:
        x = check_matrix(embeddings, "embeddings")
        ids = np.arange(x.shape[0], dtype=np.int64) if ids is None else as_ids(ids)
    n, dim = x.shape
    if ids.size != n:
        raise ValidationError(f"got {ids.size} ids for {n} embedding rows; pass one id per row")
    check_parameters(
        "build_sharded_index",
        {"shard_size": shard_size, "train_size": train_size},
        {"shard_size": [Interval(int, 1, None)], "train_size": [Interval(int, 1, None)]},
    )
    empty = _make_faiss_index(factory, dim)
    ivf = faiss.try_extract_index_ivf(empty)
    if ivf is None:
        raise ConfigError(
            f"a sharded on-disk build needs an IVF index, not {factory!r}; use a factory string "
            f"such as 'IVF{ivf_nlist(n)},PQ{max(1, dim // 4)}' or 'IVF{ivf_nlist(n)},SQ8'"
        )
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    start = time.perf_counter()
    pool_fingerprint = fingerprint(ids, x)
    trained_path = os.path.join(directory, "trained.faiss")
    empty = _trained_or_resumed(
        empty,
        trained_path,
        {
            "factory": factory,
            "n": n,
            "train_size": train_size,
            "seed": seed,
            "shard_size": shard_size,
            "pool": pool_fingerprint,
        },
        lambda: _train(empty, x, factory, train_size, seed),
    )
    source = _memmap_source(x)
    tasks = []
    for number, lo in enumerate(range(0, n, shard_size)):
        hi = min(n, lo + shard_size)
        tasks.append(
            ShardTask(
                trained_path,
                os.path.join(directory, f"shard-{number:05d}.faiss"),
                source if source is not None else x[lo:hi],
                0 if source is None else lo,
                hi - lo if source is None else hi,
                np.ascontiguousarray(ids[lo:hi]),
            )
        )
    if map_shards is None:
        counts = _local_map(build_shard, tasks, progress)
    else:
        counts = list(map_shards(build_shard, tasks))
    if sum(counts) != n:
        raise CorruptFileError(f"the shards hold {sum(counts)} rows, expected {n}; rebuild")
    index = _merge_on_disk(empty, [t.shard_path for t in tasks], directory)
    path = os.path.join(directory, "index.faiss")
    out = NeighborIndex(factory, search_params, train_size=train_size, seed=seed)
    out.progress = progress
    out._index = index
    out.pool_fingerprint = pool_fingerprint
    out._apply_search_params()
    out.save(path)
    for t in tasks:
        os.remove(t.shard_path)
    os.remove(trained_path)
    os.remove(trained_path + ".json")
    out.build_seconds = time.perf_counter() - start
    if isinstance(embeddings, Pool):
        out.attach(embeddings)
    else:
        out._embeddings, out._ids = x, ids
    log.info("built sharded %r over %d items in %.1f s", factory, n, out.build_seconds)
    return out


def _trained_or_resumed(
    empty: faiss.Index, trained_path: str, settings: dict, train: Callable[[], None]
) -> faiss.Index:
    """The trained empty index of a sharded build: read back from ``trained_path`` when an
    interrupted build with the same ``settings`` left it there (its finished shards are then
    kept, see :func:`build_shard`), else trained now and written there with its settings
    (stale shards of another build removed)."""
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back
    settings_path = trained_path + ".json"
    if os.path.exists(trained_path) and os.path.exists(settings_path):
        with open(settings_path, encoding="utf-8") as fh:
            if json.load(fh) == settings:
                log.info("resuming the sharded build in %s", os.path.dirname(trained_path))
                return faiss.read_index(trained_path)
    folder = os.path.dirname(trained_path)
    for name in os.listdir(folder):
        if name.startswith("shard-") and name.endswith(".faiss"):
            os.remove(os.path.join(folder, name))
    train()
    faiss.write_index(empty, trained_path)
    with open(settings_path, "w", encoding="utf-8") as fh:
        json.dump(settings, fh)
    return empty


def _merge_on_disk(trained: faiss.Index, shard_paths: list[str], directory: str) -> faiss.Index:
    """Merge the inverted lists of ``shard_paths`` into on-disk lists under ``directory``."""
    lists = faiss.InvertedListsPtrVector()
    keep = []  # the shard indexes own their lists: keep them alive until merged
    for path in shard_paths:
        shard = faiss.read_index(path, faiss.IO_FLAG_MMAP)
        keep.append(shard)
        lists.push_back(faiss.extract_index_ivf(shard).invlists)
    ivf = faiss.extract_index_ivf(trained)
    data_path = os.path.join(directory, "index.ivfdata")
    if os.path.exists(data_path):
        os.remove(data_path)  # OnDiskInvertedLists appends to an existing file
    on_disk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, data_path)
    total = on_disk.merge_from_multiple(lists.data(), lists.size(), False)
    ivf.ntotal = trained.ntotal = total
    ivf.replace_invlists(on_disk, True)
    on_disk.this.disown()
    del keep
    return trained
