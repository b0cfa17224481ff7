"""Candidate pools: which unlabeled items are eligible for selection this round.

The loop calls ``start`` once with the seed labels, ``select`` every round, and ``update`` with
the ids labeled since. ``select`` defaults to running the strategy on :meth:`candidates`;
pools that grow while a batch is chosen (SEALS, per item) override it.

Every pool also answers :meth:`CandidatePool.density`: the mean cosine similarity of items to the
current candidates, which information density weighs uncertainty by. Because cosine similarity is
a dot product of unit vectors, the mean similarity of ``z`` to a set ``P`` is ``z . s / |P|``
with ``s`` the sum of the unit vectors of ``P``; pools keep ``s`` up to date as items join and
leave (O(d) per item), so density never needs the |P| x |P| (or |U| x |U|) similarity matrix.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from raresift.errors import BudgetError, ConfigError, ValidationError
from raresift.idsets import contains_ids, insert_ids, remove_ids
from raresift.index import ROW_BLOCK, NeighborIndex, normalize_rows, unit_vector_sum
from raresift.pool import Labels, Pool, as_ids, check_budget
from raresift.strategies.base import Batch, ScoringStrategy, SelectionState, Strategy
from raresift.strategies.binary import DensityWeightedStrategy

log = logging.getLogger("raresift")


class CandidatePool:
    """Base class: subclasses keep their own bookkeeping of eligible ids.

    Subclasses that call :meth:`_joined` / :meth:`_left` whenever their candidate set changes
    set ``_tracks_density = True`` and get incremental densities; the others get densities
    recomputed from :meth:`candidates` on every call.
    """

    pool: Pool
    labels: Labels
    _tracks_density = False

    def start(self, pool: Pool, labels: Labels) -> None:
        """Begin with ``labels`` (the seed) already known."""
        self.pool, self.labels = pool, labels
        self._unit_sum: np.ndarray | None = None

    def candidates(self) -> np.ndarray:
        """Eligible unlabeled ids now (int64, ascending)."""
        raise NotImplementedError

    def update(self, newly_labeled_ids) -> None:
        """Take note of items labeled since the last call."""

    def __len__(self) -> int:
        return int(self.candidates().size)

    def select(self, strategy: Strategy, state: SelectionState, budget: int) -> Batch:
        """Choose ``budget`` items with ``strategy`` among the eligible ones."""
        state = dataclasses.replace(state, candidate_pool=self)
        return strategy.select(state, self.candidates(), budget)

    # ------------------------------------------------------------------ density
    def density(self, ids) -> np.ndarray:
        """Mean cosine similarity of each of ``ids`` to the current candidates.

        >>> import numpy as np
        >>> from raresift.pool import Labels, Pool
        >>> cands = AllCandidates()
        >>> cands.start(Pool(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])), Labels([2], [0]))
        >>> cands.density([0, 1]).round(3).tolist()
        [0.5, 0.5]
        """
        ids = as_ids(ids)
        n = len(self)
        if n == 0:
            raise ValidationError("the candidate pool is empty; density is undefined")
        if self._tracks_density:
            if self._unit_sum is None:
                self._unit_sum = unit_vector_sum(
                    self.pool, self.candidates(), progress=n > 1_000_000
                )
            total = self._unit_sum
        else:
            total = unit_vector_sum(self.pool, self.candidates())
        mean = total / n
        out = np.empty(ids.size)
        for lo in range(0, ids.size, ROW_BLOCK):  # bounded temporaries for 10^8 ids
            rows = normalize_rows(self.pool.embeddings_of(ids[lo : lo + ROW_BLOCK]))
            out[lo : lo + rows.shape[0]] = rows @ mean
        return out

    def _joined(self, ids: np.ndarray) -> None:
        """Keep the density sum current: ``ids`` became candidates."""
        if self._unit_sum is not None and ids.size:
            self._unit_sum += unit_vector_sum(self.pool, ids)

    def _left(self, ids: np.ndarray) -> None:
        """Keep the density sum current: ``ids`` stopped being candidates."""
        if self._unit_sum is not None and ids.size:
            self._unit_sum -= unit_vector_sum(self.pool, ids)


class AllCandidates(CandidatePool):
    """Every unlabeled item in the pool is eligible (the "-All" baselines)."""

    _tracks_density = True

    def start(self, pool: Pool, labels: Labels) -> None:
        super().start(pool, labels)
        self._unlabeled = np.ones(len(pool), dtype=bool)
        self._candidates: np.ndarray | None = None
        self.update(labels.ids)

    def update(self, newly_labeled_ids) -> None:
        ids = np.unique(as_ids(newly_labeled_ids))
        if ids.size:
            pos = self.pool.positions(ids)
            left = ids[self._unlabeled[pos]]
            self._unlabeled[pos] = False
            self._left(left)
            self._candidates = None

    def candidates(self) -> np.ndarray:
        if self._candidates is None:  # cached until the next update; read-only
            self._candidates = np.sort(self.pool.ids[self._unlabeled])
            self._candidates.flags.writeable = False
        return self._candidates

    def __len__(self) -> int:
        return int(self._unlabeled.sum())


class RandomCandidates(CandidatePool):
    """A fixed random ``fraction`` of the pool, minus labeled items (RandPool, papers/002 A.5).

    The subset is drawn once in :meth:`start` with ``seed``; labeled items leave it.
    """

    _tracks_density = True

    def __init__(self, fraction: float = 0.1, seed: int = 0):
        self.fraction = fraction
        self.seed = seed

    def start(self, pool: Pool, labels: Labels) -> None:
        if not 0.0 < float(self.fraction) <= 1.0:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction!r}")
        super().start(pool, labels)
        size = max(1, round(self.fraction * len(pool)))
        picked = np.random.default_rng(self.seed).choice(len(pool), size=size, replace=False)
        self._members = np.sort(pool.ids[picked])
        self.update(labels.ids)

    def update(self, newly_labeled_ids) -> None:
        ids = np.unique(as_ids(newly_labeled_ids))
        left = ids[contains_ids(self._members, ids)]
        self._members = remove_ids(self._members, left)
        self._left(left)

    def candidates(self) -> np.ndarray:
        return self._members

    def __len__(self) -> int:
        return int(self._members.size)


class SEALSCandidates(CandidatePool):
    """SEALS: the unlabeled k nearest neighbours of the labeled items (papers/002-003).

    The pool starts as the union of the ``k`` nearest neighbours of every labeled item. With
    ``expand="item"`` (the paper's Algorithm 2) each selected item leaves the pool and its ``k``
    neighbours join it before the next item of the same batch is chosen; the newcomers are scored
    with the same model (no retraining within a batch). This needs a :class:`ScoringStrategy`;
    other strategies fall back to ``expand="batch"``, where the neighbours of the whole batch join
    after it is chosen. Labeled items (and items picked but not yet labeled) never are in the pool.

    Bookkeeping is incremental: sorted id arrays, no structure of the size of the whole pool, so
    one round costs O(|P| + b k) plus the k-NN searches. ``knn_seconds`` and ``knn_queries``
    accumulate the search cost.

    Parameters
    ----------
    index : NeighborIndex
        Built over the same pool (same ids).
    k : int
        Neighbours added per labeled item.
    expand : {"item", "batch"}
    """

    _tracks_density = True

    def __init__(self, index: NeighborIndex, k: int = 100, expand: str = "item"):
        self.index = index
        self.k = k
        self.expand = expand

    def start(self, pool: Pool, labels: Labels) -> None:
        if self.expand not in ("item", "batch"):
            raise ConfigError(f"expand must be 'item' or 'batch', got {self.expand!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k <= 0:
            raise ConfigError(f"k must be a positive integer, got {self.k!r}")
        self.index.check_pool(pool)  # the same ids and vectors, not only the dimension
        super().start(pool, labels)
        empty = np.empty(0, dtype=np.int64)
        self._members = empty  # candidate ids, ascending
        self._excluded = empty  # labeled or picked-and-pending ids, ascending
        self._pending = empty  # picked by select, not labeled yet
        self._expanded = empty  # ids whose neighbours have joined
        self.knn_seconds = 0.0
        self.knn_queries = 0
        self.update(labels.ids)

    def candidates(self) -> np.ndarray:
        return self._members

    def __len__(self) -> int:
        return int(self._members.size)

    # ------------------------------------------------------------------ bookkeeping
    def _neighbors(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), k) neighbour ids, -1 padded; timed."""
        start = time.perf_counter()
        rows = self.index.neighbors(ids, self.k, pool=self.pool)
        self.knn_seconds += time.perf_counter() - start
        self.knn_queries += int(ids.size)
        return rows

    def _join(self, ids: np.ndarray) -> np.ndarray:
        """Add the eligible ones of ``ids`` to the pool; return those that joined."""
        ids = np.unique(ids[ids >= 0])
        ids = ids[~contains_ids(self._members, ids) & ~contains_ids(self._excluded, ids)]
        if ids.size:
            self._members = insert_ids(self._members, ids)
            self._joined(ids)
        return ids

    def _exclude(self, ids: np.ndarray) -> None:
        """``ids`` are labeled or picked: out of the pool for good (until restored)."""
        ids = np.unique(ids)
        left = ids[contains_ids(self._members, ids)]
        self._members = remove_ids(self._members, left)
        self._left(left)
        self._excluded = insert_ids(self._excluded, ids[~contains_ids(self._excluded, ids)])

    def _expand(self, ids: np.ndarray, neighbors: np.ndarray | None = None) -> np.ndarray:
        """Let the neighbours of ``ids`` (not expanded before) join; return the newcomers."""
        ids = np.unique(ids)
        ids = ids[~contains_ids(self._expanded, ids)]
        if not ids.size:
            return ids
        if neighbors is None:
            neighbors = self._neighbors(ids)
        self._expanded = insert_ids(self._expanded, ids)
        return self._join(neighbors.ravel())

    def update(self, newly_labeled_ids) -> None:
        """Labeled items leave the pool (for good) and their neighbours join it."""
        ids = np.unique(as_ids(newly_labeled_ids))
        self._pending = remove_ids(self._pending, ids)
        self._exclude(ids)
        self._expand(ids)

    def _sync(self) -> None:
        """Catch up with labels added behind our back; return unlabeled pending picks."""
        labeled = np.unique(self.labels.ids)
        missed = labeled[
            ~contains_ids(self._excluded, labeled) | contains_ids(self._pending, labeled)
        ]
        if missed.size:
            self.update(missed)
        if self._pending.size:
            back, self._pending = self._pending, self._pending[:0]
            self._excluded = remove_ids(self._excluded, back)
            self._join(back)

    # ------------------------------------------------------------------ selection
    def select(self, strategy: Strategy, state: SelectionState, budget: int) -> Batch:
        self._sync()
        state = dataclasses.replace(state, candidate_pool=self)
        if self.expand == "item" and isinstance(strategy, ScoringStrategy):
            batch = self._select_per_item(strategy, state, budget)
        else:
            if self.expand == "item":
                log.info(
                    "strategy %r chooses whole sets, not items one by one: SEALS expands the "
                    "pool after the batch instead of after each item",
                    strategy.name,
                )
            batch = strategy.select(state, self._members, budget)
            self._exclude(batch.ids)
            self._expand(batch.ids)
        self._pending = insert_ids(
            self._pending, batch.ids[~contains_ids(self._pending, batch.ids)]
        )
        return batch

    def _select_per_item(
        self, strategy: ScoringStrategy, state: SelectionState, budget: int
    ) -> Batch:
        """Algorithm 2's inner loop: pick the best, swap it for its neighbours, repeat.

        The picks are exactly those of rescoring the pool after every step, but the work is
        batched: the neighbours of the current top ``budget`` candidates are searched in one
        call and their newcomers scored in one model call (later picks outside that set are
        searched and their newcomers scored one at a time); members that cannot be among the
        picks leave the working buffer at once; scores live in append-only buffers,
        the batch's own bookkeeping in small dicts and sets, and the pool's sorted arrays are
        updated once at the end. For a :class:`DensityWeightedStrategy` the informativeness is
        computed once per item and the density weights follow the pool as it changes
        (:class:`_RunningDensity`).
        """
        budget = check_budget(budget, max(len(self), 1), "candidates in the SEALS pool")
        weighted = isinstance(strategy, DensityWeightedStrategy)
        value = strategy.informativeness if weighted else strategy.score
        members = self._members
        n = members.size
        cap = n + budget * self.k
        ids = np.empty(cap, dtype=np.int64)
        base = np.full(cap, -np.inf)
        ids[:n] = members
        base[:n] = self._values(strategy, value, state, members)
        if weighted:
            density = _RunningDensity(
                strategy, normalize_rows(self.pool.embeddings_of(members)), cap
            )
        elif budget < n:
            # members' scores stay fixed during the batch, so only the top `budget` of them (and
            # those tied with the last) can ever be picked: drop the rest from the buffer
            keep = np.flatnonzero(base[:n] >= np.partition(base[:n], n - budget)[n - budget])
            ids[: keep.size], base[: keep.size] = ids[keep], base[keep]
            n = keep.size

        rows: dict[int, list[int]] = {}  # neighbour rows searched during this batch
        outside: dict[int, float] = {}  # values of scored items outside the pool and exclusions

        def fetch(queries: np.ndarray) -> None:
            """Search the neighbours of ``queries`` and score their newcomers, one call each."""
            found = self._neighbors(queries)
            rows.update(zip(queries.tolist(), found.tolist(), strict=True))
            fresh = np.unique(found[found >= 0])
            fresh = fresh[~contains_ids(members, fresh) & ~contains_ids(self._excluded, fresh)]
            fresh = fresh[[i not in outside for i in fresh.tolist()]]
            values = self._values(strategy, value, state, fresh)
            outside.update(zip(fresh.tolist(), values.tolist(), strict=True))

        # speculative batch: the neighbours of today's top `budget` (no draws from state.rng,
        # so the picks cannot depend on what was fetched ahead)
        scores = density.scores(base) if weighted else base[:n]
        ahead = np.argpartition(-scores, budget - 1)[:budget] if budget < n else np.arange(n)
        fetch(np.sort(ids[ahead]))
        taken: set[int] = set()  # newcomers of this batch
        picks, pick_scores, joined = [], [], []
        for _ in range(budget):
            # every item that could be the best right now, with its exact score
            where, scores = density.contenders(base) if weighted else (None, base[:n])
            best = scores.max(initial=-np.inf)
            if not np.isfinite(best):
                raise BudgetError(
                    f"the SEALS pool ran out after {len(picks)} of {budget} picks; lower the "
                    "batch size or raise k"
                )
            tied = np.flatnonzero(scores == best)
            j = int(tied[0] if tied.size == 1 else tied[state.rng.integers(tied.size)])
            pick_scores.append(scores[j])
            j = j if where is None else int(where[j])  # position in the buffer
            pick = int(ids[j])
            picks.append(pick)
            base[j] = -np.inf
            if weighted:
                density.remove(j)
            if pick not in rows:
                fetch(np.array([pick]))
            new = [i for i in dict.fromkeys(rows[pick]) if i in outside and i not in taken]
            if not new:
                continue
            new_ids = np.array(new, dtype=np.int64)
            ids[n : n + new_ids.size] = new_ids
            base[n : n + new_ids.size] = [outside[i] for i in new]
            if weighted:
                density.add(normalize_rows(self.pool.embeddings_of(new_ids)))
            n += new_ids.size
            taken.update(new)
            joined.append(new_ids)
        picks = np.array(picks, dtype=np.int64)
        self._exclude(picks)
        self._expanded = insert_ids(self._expanded, picks[~contains_ids(self._expanded, picks)])
        if joined:
            self._join(np.concatenate(joined))
        return Batch(picks, np.array(pick_scores), strategy.name, state.round)

    @staticmethod
    def _values(strategy, value, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        """``value(state, ids)`` (a strategy's scores or informativeness), checked."""
        if ids.size == 0:
            return np.empty(0)
        scores = np.asarray(value(state, ids), dtype=np.float64)
        if scores.shape != ids.shape or not np.all(np.isfinite(scores)):
            raise ValidationError(f"strategy {strategy.name!r} produced invalid scores")
        return scores


class _RunningDensity:
    """Density-weighted scores of SEALS' per-item buffer while the pool changes under it.

    Item i's density is ``u_i . total / count`` (``total`` the sum of the pool's unit vectors).
    Recomputing every ``u_i . total`` after each pick costs O(|P| d); instead the dot products
    with a reference sum ``ref`` are kept (float32, with their rounding error bounded), and
    since ``|u_i . total - u_i . ref| <= |total - ref|`` for unit ``u_i`` they bound every score
    from above and below in O(|P|). Only the items whose upper bound reaches the best lower
    bound (the contenders) are scored exactly (float64); when they grow too many, the reference
    is refreshed (one float32 O(|P| d) pass). The argmax and its ties are exactly those of full
    float64 recomputation.
    """

    def __init__(self, strategy: DensityWeightedStrategy, units: np.ndarray, capacity: int):
        self.strategy = strategy
        self.n = units.shape[0]
        self.units = np.empty((capacity, units.shape[1]), dtype=np.float32)
        self.units[: self.n] = units
        self.total = units.sum(axis=0, dtype=np.float64)
        self.count = self.n
        self.dots = np.empty(capacity, dtype=np.float32)
        self._refresh()

    def _refresh(self) -> None:
        self.ref = self.total.copy()
        ref32 = self.ref.astype(np.float32)
        self.dots[: self.n] = self.units[: self.n] @ ref32
        # float32 rounding of ref and of the d-term dot products (unit rows), generously
        self.rounding = 4 * (self.units.shape[1] + 2) * 2.0**-24 * float(np.abs(self.ref).sum())

    def add(self, units: np.ndarray) -> None:
        """New pool members (rows appended to the buffer)."""
        lo, self.n = self.n, self.n + units.shape[0]
        self.units[lo : self.n] = units
        self.dots[lo : self.n] = units @ self.ref.astype(np.float32)
        self.total += units.sum(axis=0, dtype=np.float64)
        self.count += units.shape[0]

    def remove(self, position: int) -> None:
        """Buffer row ``position`` left the pool."""
        self.total -= self.units[position]
        self.count -= 1

    def _weighted(self, base: np.ndarray, dots: np.ndarray) -> np.ndarray:
        return base * self.strategy.density_weights(dots / max(self.count, 1))

    def scores(self, base: np.ndarray) -> np.ndarray:
        """Scores of the whole buffer from the stored dot products (float32 precision and the
        drift since the last refresh; ``base``: -inf once picked). For ranking ahead only."""
        out = np.full(self.n, -np.inf)
        alive = np.flatnonzero(base[: self.n] > -np.inf)
        out[alive] = self._weighted(base[alive], self.dots[alive].astype(np.float64))
        return out

    def _bounded(self, base: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Positions among ``alive`` whose score may be the largest."""
        slack = np.linalg.norm(self.total - self.ref) * (1 + 1e-6) + self.rounding
        b, dots = base[alive], self.dots[alive].astype(np.float64)
        high, low = self._weighted(b, dots + slack), self._weighted(b, dots - slack)
        return alive[np.maximum(high, low) >= np.minimum(high, low).max()]

    def contenders(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Buffer positions that may hold the best score now, and their exact scores."""
        alive = np.flatnonzero(base[: self.n] > -np.inf)
        if alive.size == 0:
            return np.zeros(1, dtype=np.int64), np.full(1, -np.inf)
        where = self._bounded(base, alive)
        if where.size > max(64, alive.size // 8):
            self._refresh()
            where = self._bounded(base, alive)
        exact = self.units[where].astype(np.float64) @ self.total
        return where, self._weighted(base[where], exact)
