"""Selection rounds whose work runs on a Ray cluster.

:class:`RayStrategy` wraps a strategy (as the papers' PartitionStrategy wraps one) and runs its
``select`` on Ray workers where the work splits; the loop calls it like any strategy:

- a :class:`~raresift.strategies.base.ScoringStrategy` (entropy, margin, mlp, information
  density, ...) over all candidates ("-All") scores them in shards, one Ray task each. A task
  returns only its shard's contenders: the items scoring at least the shard's ``budget``-th
  best score (ties kept). Every item of the global top ``budget`` (and every item tied with the
  last of them) is a contender of its shard, so the driver's
  :func:`~raresift.strategies.base.top_scores` over the merged contenders, kept in candidate
  order, draws the same tie-break keys for the same items as the local run: the picks are
  identical for the same seed. Shards start at multiples of :data:`raresift.density.ROW_BLOCK`
  rows, so the model and the density see the same blocks of rows as on one machine and the
  scores agree bit for bit; density-weighted strategies get the candidates' unit-vector sum
  from the view.
- a SIMILAR strategy with ``partitions=p`` (the partition trick) solves each partition in its
  own Ray task, with the partition plan, seeds and per-part objective of the local run
  (:meth:`~raresift.strategies.similar.SubmodularStrategy.select_part`): the same picks.
- anything else (SEALS' per-item expansion, whose pool is small and whose k-NN searches go to
  :class:`~raresift.distributed.RemoteNeighborIndex` actors; BADGE, Core-Set, Fisher) selects
  on the driver, as locally.

The driver's share of a round is the merge, O(shards x budget); scoring and partitions scale
with the workers.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from tqdm.auto import tqdm

from raresift.density import ROW_BLOCK, mean_cosine, unit_vector_sum
from raresift.distributed.cluster import PoolRows, connect, gather, import_ray
from raresift.errors import ConfigError, ValidationError
from raresift.pool import Pool, as_ids, check_budget
from raresift.strategies.base import Batch, ScoringStrategy, SelectionState, Strategy, top_scores
from raresift.strategies.binary import DensityWeightedStrategy
from raresift.strategies.similar import SubmodularStrategy, concat_batches

log = logging.getLogger("raresift")


class RayStrategy(Strategy):
    """``strategy`` with its selection spread over Ray workers; the same picks as ``strategy``.

    Parameters
    ----------
    strategy : Strategy
        The strategy to run (its ``name`` is this wrapper's name).
    shard_size : int
        Candidates scored per Ray task (rounded up to a multiple of
        :data:`raresift.density.ROW_BLOCK`).
    address : str, optional
        A Ray cluster to join (``"auto"``, ``"ray://host:10001"``); without it, the Ray already
        initialised in this process, or a local one.
    num_cpus : float
        CPUs each scoring or partition task holds.
    progress : bool
        Show a tqdm bar over the tasks of a round.

    Workers read the pool's rows by file path when its embeddings are a memmapped ``.npy``
    (every node must see the file), otherwise from Ray's object store, where the array is put
    once per pool. Strategies that need raw items (``use_items``) select on the driver.
    """

    def __init__(
        self,
        strategy: Strategy,
        shard_size: int = 1_048_576,
        address: str | None = None,
        num_cpus: float = 1,
        progress: bool = True,
    ):
        if not callable(getattr(strategy, "select", None)):
            raise ConfigError("RayStrategy wraps a strategy object (make_strategy(name))")
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size <= 0:
            raise ConfigError(f"shard_size must be a positive integer, got {shard_size!r}")
        self.strategy = strategy
        self.shard_size = shard_size
        self.address = address
        self.num_cpus = num_cpus
        self.progress = progress
        self.name = strategy.name
        self._rows: tuple[Pool, PoolRows] | None = None
        self._tasks: dict[str, object] = {}

    def rows(self, pool: Pool) -> PoolRows:
        """Where workers read ``pool``'s rows (put into the object store on first use)."""
        if self._rows is None or self._rows[0] is not pool:
            self._rows = (pool, PoolRows(pool))
        return self._rows[1]

    def _map(self, fn, shared, calls: list[tuple], desc: str) -> list:
        """``fn(shared, *call)`` for every call, as Ray tasks (a task whose worker dies is run
        again), results in call order."""
        if fn.__name__ not in self._tasks:
            ray = import_ray()
            self._tasks[fn.__name__] = ray.remote(num_cpus=self.num_cpus, max_retries=3)(fn)
        task = self._tasks[fn.__name__]
        refs = [task.remote(shared, *call) for call in calls]
        with tqdm(total=len(refs), desc=desc, unit="task", disable=not self.progress) as bar:
            return gather(refs, bar)

    # ------------------------------------------------------------------ selection
    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        strategy = self.strategy
        expanding = getattr(candidates, "expand", None) == "item"
        if state.use_items or expanding:
            return strategy.select(state, candidates, budget)
        connect(self.address)
        if isinstance(strategy, ScoringStrategy):
            return self._select_scoring(strategy, state, candidates, budget)
        if isinstance(strategy, SubmodularStrategy) and strategy.partitions > 1:
            return self._select_partitions(strategy, state, as_ids(candidates), budget)
        log.info("strategy %r selects on the driver (its work does not split)", strategy.name)
        return strategy.select(state, candidates, budget)

    def _shards(self, n: int) -> list[tuple[int, int]]:
        size = math.ceil(self.shard_size / ROW_BLOCK) * ROW_BLOCK
        return [(lo, min(n, lo + size)) for lo in range(0, n, size)]

    @staticmethod
    def _worker_state(state: SelectionState, strategy: Strategy, candidates) -> dict:
        """What every task needs of the round's state: the model (unwrapped from the loop's
        timing proxy) and, for a density-weighted strategy, the candidates' unit-vector sum and
        count (the view's own, kept current by its pool; for plain ids, theirs)."""
        model = getattr(state.model, "_model", state.model)  # ActiveLearner's _TimedModel
        density = None
        if isinstance(strategy, DensityWeightedStrategy):
            view_sum = getattr(candidates, "unit_sum", None)
            if view_sum is not None:
                density = (np.array(view_sum()), len(candidates))
            else:
                ids = as_ids(candidates)
                density = (unit_vector_sum(state.pool, ids), ids.size)
        return {
            "labels": state.labels,
            "model": model,
            "round": state.round,
            "query_ids": state.query_ids,
            "conditioning_ids": state.conditioning_ids,
            "validation_ids": state.validation_ids,
            "density": density,
        }

    def _select_scoring(
        self, strategy: ScoringStrategy, state: SelectionState, candidates, budget: int
    ) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        ray = import_ray()
        shared = ray.put((strategy, self._worker_state(state, strategy, candidates)))
        rows = self.rows(state.pool)
        shards = self._shards(ids.size)
        calls = [(rows, _rows_of(state.pool, ids[lo:hi]), budget) for lo, hi in shards]
        results = self._map(_score_shard, shared, calls, f"scoring ({strategy.name})")
        offsets = np.concatenate(
            [lo + keep for (lo, _), (keep, _) in zip(shards, results, strict=True)]
        )
        scores = np.concatenate([s for _, s in results])
        order = top_scores(scores, budget, state.rng)
        log.info(
            "%s: %d candidates scored in %d shards, %d contenders merged",
            strategy.name,
            ids.size,
            len(shards),
            scores.size,
        )
        return Batch(ids[offsets[order]], scores[order], strategy.name, state.round)

    def _select_partitions(
        self, strategy: SubmodularStrategy, state: SelectionState, ids: np.ndarray, budget: int
    ) -> Batch:
        budget = check_budget(budget, ids.size, "candidates")
        ray = import_ray()
        objective = strategy.objective(state)
        side = strategy.side_features(state, objective)
        plan = strategy.plan(state, ids.size, budget)
        shared = ray.put((strategy, self._worker_state(state, strategy, ids), objective, side))
        positions = state.pool.positions(ids)
        rows = self.rows(state.pool)
        calls = [(rows, (positions[m], ids[m]), part_budget, seed) for m, part_budget, seed in plan]
        parts = self._map(_select_partition, shared, calls, f"partitions ({strategy.name})")
        return concat_batches(parts, objective, state.round)

    def __repr__(self) -> str:
        return f"RayStrategy({self.strategy!r}, shard_size={self.shard_size})"


class _ShardCandidates:
    """A worker's stand-in for the round's candidate view: ``density(ids)`` from the
    candidates' unit-vector sum, through the same :func:`~raresift.density.mean_cosine`."""

    def __init__(self, pool: Pool, total: np.ndarray, count: int):
        self.pool, self.total, self.count = pool, total, count

    def density(self, ids) -> np.ndarray:
        return mean_cosine(self.pool, as_ids(ids), self.total, self.count)


def _rows_of(pool: Pool, ids: np.ndarray) -> tuple:
    """What a worker is told of the rows of ``ids``: ``(lo, hi, gaps)`` when their positions
    ascend and fill at least half of the span ``lo:hi`` (a shard of candidates in id order:
    all of U but the labeled): the worker reads the span in place and drops the ``gaps``
    (offsets of the span's rows that are not among ``ids``), so neither rows nor ids travel;
    else ``(positions, ids)``, gathered by the worker."""
    positions = pool.positions(ids)
    if ids.size and bool(np.all(positions[1:] > positions[:-1])):
        lo, hi = int(positions[0]), int(positions[-1]) + 1
        if hi - lo <= 2 * ids.size:
            gaps = np.ones(hi - lo, dtype=bool)
            gaps[positions - lo] = False
            return lo, hi, np.flatnonzero(gaps)
    return positions, ids


def _local_state(shared: dict, rows: PoolRows, where: tuple) -> tuple[SelectionState, np.ndarray]:
    """A worker's SelectionState over the rows ``where`` (:func:`_rows_of`) and the ids it
    holds there (the driver's ids, so strategies see the same ids)."""
    if len(where) == 3:
        lo, hi, gaps = where
        pool = rows.span(lo, hi)
        ids = np.delete(pool.ids, gaps) if gaps.size else pool.ids
    else:
        positions, ids = where
        pool = Pool(rows.read(positions), ids=ids, values_checked=True)
    state = SelectionState(
        pool=pool,
        labels=shared["labels"],
        model=shared["model"],
        rng=np.random.default_rng(0),
        round=shared["round"],
        query_ids=shared["query_ids"],
        conditioning_ids=shared["conditioning_ids"],
        validation_ids=shared["validation_ids"],
    )
    return state, ids


def _score_shard(shared, rows: PoolRows, where: tuple, budget: int):
    """Ray task: score one shard; return the positions (in the shard) and scores of the items
    at or above the shard's ``budget``-th best score."""
    strategy, fields = shared
    state, ids = _local_state(fields, rows, where)
    density = fields["density"]
    candidates = ids if density is None else _ShardCandidates(state.pool, *density)
    drawn = state.rng.bit_generator.state
    scores = np.asarray(strategy.scores_among(state, ids, candidates), dtype=np.float64)
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


def _select_partition(shared, rows: PoolRows, where: tuple, budget: int, seed: int) -> Batch:
    """Ray task: one part of SIMILAR's partition trick."""
    strategy, fields, objective, side = shared
    state, ids = _local_state(fields, rows, where)
    return strategy.select_part(state, ids, budget, seed, objective, side)
