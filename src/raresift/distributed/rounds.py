"""Selection rounds over all unlabeled items, run on a Ray cluster.

:class:`RayCandidates` is :class:`~raresift.candidates.AllCandidates` (the "-All" pool) with
its rounds spread over Ray workers:

- a :class:`~raresift.strategies.base.ScoringStrategy` (entropy, margin, mlp, information
  density, ...) scores the candidates in shards, one Ray task each. A task returns only its
  shard's contenders: the items scoring at least the shard's ``budget``-th best score (ties
  kept). Every item of the global top ``budget`` (and every item tied with the last of them)
  is a contender of its shard, so the driver's :func:`~raresift.strategies.base.top_scores`
  over the merged contenders, kept in candidate order, draws the same tie-break keys for the
  same items as the local run: the picks are identical for the same seed.
  Shards start at multiples of :data:`raresift.index.ROW_BLOCK` rows, so the model sees the
  same blocks of rows as on one machine and the scores agree bit for bit.
- a SIMILAR strategy with ``partitions=p`` (the partition trick) solves each partition in its
  own Ray task, with the partition plan, seeds and per-part objective of the local run
  (:meth:`~raresift.strategies.similar.SubmodularStrategy.select_part`): the same picks.
- any other strategy (BADGE, Core-Set, Fisher, ...) selects on the driver, as locally.

The round's cost on the driver is the merge, O(shards x budget); the scoring and the
partitions scale with the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
from tqdm.auto import tqdm

from raresift.candidates import AllCandidates
from raresift.distributed.cluster import PoolRows, connect, gather, import_ray
from raresift.errors import ConfigError, ValidationError
from raresift.index import ROW_BLOCK, normalize_rows, unit_vector_sum
from raresift.pool import Pool, check_budget
from raresift.strategies.base import Batch, ScoringStrategy, SelectionState, Strategy, top_scores
from raresift.strategies.binary import DensityWeightedStrategy
from raresift.strategies.similar import SubmodularStrategy, concat_batches

log = logging.getLogger("raresift")


class RayCandidates(AllCandidates):
    """Every unlabeled item is eligible; each round's scoring runs on Ray workers.

    Parameters
    ----------
    shard_size : int
        Candidates scored per Ray task (rounded up to a multiple of
        :data:`raresift.index.ROW_BLOCK`).
    address : str, optional
        A Ray cluster to join (``"auto"``, ``"ray://host:10001"``); without it, the Ray already
        initialised in this process, or a local one.
    num_cpus : float
        CPUs each scoring or partition task holds.
    progress : bool
        Show a tqdm bar over the tasks of a round.

    Workers read the pool's rows by file path when its embeddings are a memmapped ``.npy``
    (every node must see the file), otherwise from Ray's object store, where the array is put
    once. Pools whose strategies need raw items (``use_items``) select on the driver.
    """

    def __init__(
        self,
        shard_size: int = 1_048_576,
        address: str | None = None,
        num_cpus: float = 1,
        progress: bool = True,
    ):
        self.shard_size = shard_size
        self.address = address
        self.num_cpus = num_cpus
        self.progress = progress

    def start(self, pool: Pool, labels) -> None:
        if isinstance(self.shard_size, bool) or not isinstance(self.shard_size, int):
            raise ConfigError(f"shard_size must be a positive integer, got {self.shard_size!r}")
        if self.shard_size <= 0:
            raise ConfigError(f"shard_size must be a positive integer, got {self.shard_size}")
        connect(self.address)
        super().start(pool, labels)
        self._rows: PoolRows | None = None
        self._tasks: dict[str, object] = {}

    @property
    def rows(self) -> PoolRows:
        """Where workers read this pool's rows (put into the object store on first use)."""
        if self._rows is None:
            self._rows = PoolRows(self.pool.embeddings)
        return self._rows

    def _remote(self, fn):
        if fn.__name__ not in self._tasks:
            ray = import_ray()
            self._tasks[fn.__name__] = ray.remote(num_cpus=self.num_cpus, max_retries=3)(fn)
        return self._tasks[fn.__name__]

    # ------------------------------------------------------------------ selection
    def select(self, strategy: Strategy, state: SelectionState, budget: int) -> Batch:
        state = dataclasses.replace(state, candidate_pool=self)
        ids = self.candidates()
        if state.use_items:
            log.info("use_items: %r selects on the driver (raw items stay there)", strategy.name)
            return strategy.select(state, ids, budget)
        if isinstance(strategy, ScoringStrategy):
            return self._select_scoring(strategy, state, ids, budget)
        if isinstance(strategy, SubmodularStrategy) and strategy.partitions > 1:
            return self._select_partitions(strategy, state, ids, budget)
        log.info(
            "strategy %r selects on the driver (it does not split over workers)", strategy.name
        )
        return strategy.select(state, ids, budget)

    def _shards(self, n: int) -> list[tuple[int, int]]:
        size = math.ceil(self.shard_size / ROW_BLOCK) * ROW_BLOCK
        return [(lo, min(n, lo + size)) for lo in range(0, n, size)]

    def _worker_state(self, state: SelectionState, strategy: Strategy) -> dict:
        """What every task needs of the round's state (the model unwrapped from the loop's
        timing proxy; the density mean when the strategy weighs by density)."""
        model = state.model
        model = getattr(model, "_model", model)  # ActiveLearner's _TimedModel proxy
        mean = None
        if isinstance(strategy, DensityWeightedStrategy):
            if self._unit_sum is None:
                self._unit_sum = unit_vector_sum(
                    self.pool, self.candidates(), progress=len(self) > 1_000_000
                )
            mean = self._unit_sum / len(self)
        return {
            "labels": state.labels,
            "model": model,
            "round": state.round,
            "query_ids": state.query_ids,
            "conditioning_ids": state.conditioning_ids,
            "validation_ids": state.validation_ids,
            "density_mean": mean,
        }

    def _select_scoring(
        self, strategy: ScoringStrategy, state: SelectionState, ids: np.ndarray, budget: int
    ) -> Batch:
        budget = check_budget(budget, ids.size, "candidates")
        ray = import_ray()
        shared = ray.put((strategy, self._worker_state(state, strategy)))
        positions = self.pool.positions(ids)
        task = self._remote(_score_shard)
        shards = self._shards(ids.size)
        refs = [
            task.remote(shared, self.rows, positions[lo:hi], ids[lo:hi], budget)
            for lo, hi in shards
        ]
        with tqdm(
            total=len(refs),
            desc=f"scoring ({strategy.name})",
            unit="shard",
            disable=not self.progress,
        ) as bar:
            results = gather(refs, bar)
        offsets = np.concatenate(
            [lo + keep for (lo, _), (keep, _) in zip(shards, results, strict=True)]
        )
        scores = np.concatenate([s for _, s in results])
        order = top_scores(scores, budget, state.rng)
        picked = offsets[order]
        log.info(
            "%s: %d candidates scored in %d shards, %d contenders merged",
            strategy.name,
            ids.size,
            len(shards),
            scores.size,
        )
        return Batch(ids[picked], scores[order], strategy.name, state.round)

    def _select_partitions(
        self, strategy: SubmodularStrategy, state: SelectionState, ids: np.ndarray, budget: int
    ) -> Batch:
        budget = check_budget(budget, ids.size, "candidates")
        ray = import_ray()
        objective = strategy.objective(state)
        side = strategy.side_features(state, objective)
        plan = strategy.plan(state, ids.size, budget)
        shared = ray.put((strategy, self._worker_state(state, strategy), objective, side))
        positions = self.pool.positions(ids)
        task = self._remote(_select_partition)
        refs = [
            task.remote(shared, self.rows, positions[members], ids[members], part_budget, seed)
            for members, part_budget, seed in plan
        ]
        with tqdm(
            total=len(refs),
            desc=f"partitions ({strategy.name})",
            unit="part",
            disable=not self.progress,
        ) as bar:
            parts = gather(refs, bar)
        return concat_batches(parts, strategy.name, state.round)


class _MeanDensity:
    """A worker's stand-in for the driver's candidate pool: ``density(ids)`` from the mean unit
    vector of the candidates, computed blockwise exactly as
    :meth:`~raresift.candidates.CandidatePool.density` does."""

    def __init__(self, pool: Pool, mean: np.ndarray):
        self.pool, self.mean = pool, mean

    def density(self, ids) -> np.ndarray:
        out = np.empty(len(ids))
        for lo in range(0, len(ids), ROW_BLOCK):
            rows = normalize_rows(self.pool.embeddings_of(ids[lo : lo + ROW_BLOCK]))
            out[lo : lo + rows.shape[0]] = rows @ self.mean
        return out


def _local_state(shared: dict, rows: PoolRows, positions: np.ndarray, ids: np.ndarray):
    """A worker's SelectionState over its own rows (ids kept, so strategies see the same ids)."""
    pool = Pool(rows.read(positions), ids=ids)
    mean = shared["density_mean"]
    return SelectionState(
        pool=pool,
        labels=shared["labels"],
        model=shared["model"],
        rng=np.random.default_rng(0),
        round=shared["round"],
        query_ids=shared["query_ids"],
        conditioning_ids=shared["conditioning_ids"],
        validation_ids=shared["validation_ids"],
        candidate_pool=None if mean is None else _MeanDensity(pool, mean),
    )


def _score_shard(shared, rows: PoolRows, positions: np.ndarray, ids: np.ndarray, budget: int):
    """Ray task: score one shard; return the positions (in the shard) and scores of the items
    at or above the shard's ``budget``-th best score."""
    strategy, fields = shared
    state = _local_state(fields, rows, positions, ids)
    drawn = state.rng.bit_generator.state
    scores = np.asarray(strategy.score(state, ids), dtype=np.float64)
    if state.rng.bit_generator.state != drawn:
        raise ConfigError(
            f"strategy {strategy.name!r} draws random numbers while scoring, so its picks on "
            "Ray workers would differ from a local run; select with it locally"
        )
    if scores.shape != ids.shape or not np.all(np.isfinite(scores)):
        raise ValidationError(f"strategy {strategy.name!r} produced invalid scores")
    if budget >= scores.size:
        keep = np.arange(scores.size)
    else:
        threshold = np.partition(scores, scores.size - budget)[scores.size - budget]
        keep = np.flatnonzero(scores >= threshold)
    return keep, scores[keep]


def _select_partition(shared, rows: PoolRows, positions, ids, budget: int, seed: int) -> Batch:
    """Ray task: one part of SIMILAR's partition trick."""
    strategy, fields, objective, side = shared
    state = _local_state(fields, rows, positions, ids)
    return strategy.select_part(state, ids, budget, seed, objective, side)
