"""Joining a Ray cluster, and the small pieces every distributed step shares.

:func:`connect` starts or joins Ray once per process; :func:`gather` waits for Ray tasks and
re-raises a raresift error a worker raised as itself (not wrapped in Ray's task error), so the
command line still prints one line; :class:`PoolRows` tells workers where to read pool rows
without sending the whole pool with every task.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

from raresift.errors import ConfigError, DatasetNotInstalledError, RaresiftError
from raresift.idsets import is_run
from raresift.pool import Pool

log = logging.getLogger("raresift")

INSTALL = "pip install 'raresift[ray]'"


def import_ray():
    """The ``ray`` module, or a :class:`DatasetNotInstalledError` naming the install command."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise DatasetNotInstalledError(
            f"the distributed engine needs Ray, which is not installed; run {INSTALL}"
        ) from None


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None):
    """Join the Ray cluster at ``address`` (``"auto"``, ``"ray://host:10001"``), or start a
    local one with ``num_cpus`` / ``num_gpus`` when ``address`` is None. Does nothing when Ray
    is already initialised in this process. Returns the ``ray`` module.

    Worker processes inherit ``OMP_NUM_THREADS`` and friends from Ray (one thread per CPU a
    task holds), so BLAS never oversubscribes a node.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise ConfigError(
            "num_cpus / num_gpus describe a local Ray; an existing cluster at --address has "
            "its own resources"
        )
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ConfigError(
            f"cannot start {where}: {str(exc).strip().splitlines()[-1]}; check the address "
            "(`ray status` on a cluster node) or start one with `ray start --head`"
        ) from None
    resources = ray.cluster_resources()
    log.info("Ray: %s CPUs, %s GPUs", int(resources.get("CPU", 0)), int(resources.get("GPU", 0)))
    return ray


def cluster_gpus() -> int:
    """GPUs the connected cluster has (0 on a CPU-only cluster)."""
    return int(import_ray().cluster_resources().get("GPU", 0))


def gather(refs: list, progress_bar=None) -> list:
    """``ray.get`` of ``refs`` in order; a :class:`RaresiftError` raised in a task is re-raised
    as itself, so callers see the same error as on one machine."""
    ray = import_ray()
    try:
        if progress_bar is None:
            return ray.get(refs)
        pending, done = list(refs), {}
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done[ready[0]] = ray.get(ready[0])
            progress_bar.update(1)
        return [done[r] for r in refs]
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, RaresiftError):
            raise cause from None
        raise


class PoolRows:
    """Where workers read a pool's embedding rows and ids.

    A pool memmapped from a whole ``.npy`` file is read by path
    (:class:`raresift.index.MemmapSource`, as the sharded index build does; every node must see
    the file: a shared filesystem on a cluster); any other array is put into Ray's object store
    once and read zero-copy by the workers of each node. The ids go to the object store once
    (nothing when they are contiguous: an offset).

    ``span(lo, hi)`` is a :class:`~raresift.pool.Pool` over rows ``lo:hi`` read in place (a
    slice of the memmap or of the stored array: no copy, no re-validation; the driver's pool
    was validated); ``read(positions)`` gathers the rows at ``positions`` into memory.
    """

    def __init__(self, pool: Pool):
        from raresift.index import _memmap_source

        ray = import_ray()
        embeddings = pool.embeddings
        self.source = _memmap_source(embeddings)
        self.ref = None if self.source is not None else ray.put(np.ascontiguousarray(embeddings))
        ids = pool.ids
        contiguous = is_run(ids)
        self.first_id = int(ids[0]) if contiguous else None
        self.ids_ref = None if contiguous else ray.put(ids)

    @property
    def path(self) -> str | None:
        return None if self.source is None else self.source.filename

    def _array(self) -> np.ndarray:
        return self.source.open() if self.source is not None else import_ray().get(self.ref)

    def span(self, lo: int, hi: int) -> Pool:
        """Rows ``lo:hi`` and their ids as a pool, read in place."""
        if self.first_id is not None:
            ids = np.arange(self.first_id + lo, self.first_id + hi, dtype=np.int64)
        else:
            ids = import_ray().get(self.ids_ref)[lo:hi]
        return Pool(self._array()[lo:hi], ids=ids, values_checked=True)

    def read(self, positions: np.ndarray) -> np.ndarray:
        array = self._array()
        positions = np.asarray(positions, dtype=np.int64)
        if is_run(positions):  # one slice, no gather
            return np.array(array[positions[0] : positions[-1] + 1])
        return np.asarray(array[positions])
