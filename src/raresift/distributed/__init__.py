"""The optional Ray path: embedding, sharded index build and selection rounds on a cluster.

Install it with ``pip install 'raresift[ray]'``. Nothing here is imported by ``import raresift``
or by the single-machine commands; Ray itself is imported only when one of these names is used.

- :func:`connect` joins a cluster (``address="auto"`` or ``"ray://host:10001"``) or starts a
  local Ray.
- :func:`embed_parquet` embeds Parquet shards of texts with Ray Data (``map_batches`` over an
  actor pool of embedders, GPUs requested when the cluster has them); finished shards are
  skipped, so an interrupted run resumes. :func:`write_text_shards` and
  :func:`read_embedding_shards` go from texts to shards and from shards to a pool.
- :func:`ray_map_shards` runs the shard builds of
  :func:`raresift.index.build_sharded_index` as Ray tasks (a killed worker's shard is redone);
  :class:`RemoteNeighborIndex` serves k-NN searches from index actors, so a
  :class:`~raresift.candidates.SEALSCandidates` pool built on it sends its searches there.
- :class:`RayStrategy` wraps a strategy so its rounds run on the cluster: scoring strategies
  over all candidates score shards on workers and the driver merges their top candidates;
  SIMILAR's partition trick solves one partition per worker. The picks equal the local ones
  for the same seed (ties included).

Example (a round of entropy sampling over all unlabeled items, scored on a local Ray)::

    from raresift import ActiveLearner, make_strategy
    from raresift.distributed import RayStrategy, connect

    connect(num_cpus=4)  # or connect("auto") on a cluster node
    strategy = RayStrategy(make_strategy("entropy"))
    learner = ActiveLearner(pool, model, strategy, labels=seed)
    batch = learner.query(100)  # the same batch as with make_strategy("entropy")
"""

import importlib

_EXPORTS = {
    "connect": "raresift.distributed.cluster",
    "embed_parquet": "raresift.distributed.embed",
    "read_embedding_shards": "raresift.distributed.embed",
    "write_text_shards": "raresift.distributed.embed",
    "RayStrategy": "raresift.distributed.rounds",
    "RemoteNeighborIndex": "raresift.distributed.index",
    "ray_map_shards": "raresift.distributed.index",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raresift.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
