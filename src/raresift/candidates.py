"""Candidate pools: which unlabeled items are eligible for selection this round.

A pool changes membership in two places only: :meth:`CandidatePool.start` (the seed labels) and
:meth:`CandidatePool.update` (items labeled since). Strategies never see the pool itself: the
loop hands them :meth:`CandidatePool.view`, a read-only :class:`CandidateView` of the eligible
ids that also answers the pool statistics a strategy may need (the density of items with
respect to the candidates; for SEALS, the k nearest neighbours of items and which of them could
join). Asking a view anything changes no membership, so selecting twice gives the same batch.

Densities: the mean cosine similarity of items to the candidates (:mod:`raresift.density`);
pools keep the sum of their members' unit vectors current as members join and leave (O(d) per
item), so density never needs the |P| x |P| (or |U| x |U|) similarity matrix.

>>> from raresift.pool import Labels, Pool
>>> cands = AllCandidates()
>>> cands.start(Pool(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])), Labels([2], [0]))
>>> view = cands.view()
>>> view.ids.tolist(), view.density([0, 1]).round(3).tolist()
([0, 1], [0.5, 0.5])
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from raresift.density import mean_cosine, unit_vector_sum
from raresift.errors import ValidationError
from raresift.idsets import contains_ids, insert_ids, remove_ids
from raresift.params import HasMethods, Instance, Interval, Options, Parameterized
from raresift.pool import Labels, Pool, as_ids

if TYPE_CHECKING:  # the index module imports Faiss; pools only call the object they are given
    from raresift.index import NeighborIndex

log = logging.getLogger("raresift")

EXPANSIONS = ("item", "batch")
SEARCH_AHEAD = 3  # queries a SEALS search may take ahead, for an index that does not say


class CandidateView:
    """What a strategy may read of a candidate pool: the eligible ids and pool statistics.

    ``ids`` is read-only (int64, ascending); ``np.asarray(view)``, indexing and iteration give
    it too, so a view goes wherever an id array does. ``expand`` is SEALS' within-batch
    expansion mode ("item" or "batch"), None for pools that do not grow; ``k`` the neighbours
    per item; ``search_ahead`` how many more queries a strategy may add to a neighbour search
    it makes anyway (0 for pools without an index; for SEALS, the index's ``search_ahead``,
    else :data:`SEARCH_AHEAD`).
    """

    def __init__(self, source: CandidatePool):
        self._source = source
        self._ids: np.ndarray | None = None
        self.expand: str | None = getattr(source, "expand", None)
        self.k: int | None = getattr(source, "k", None)
        self.search_ahead: int = getattr(source, "search_ahead", 0)

    @property
    def ids(self) -> np.ndarray:
        """The eligible ids, made on first use (a -All round streamed over
        :meth:`eligible_mask` never makes them)."""
        if self._ids is None:
            ids = self._source.candidates().view()
            ids.flags.writeable = False
            self._ids = ids
        return self._ids

    def eligible_mask(self) -> np.ndarray | None:
        """Read-only boolean mask over the pool's rows (positions, not ids) of the eligible
        items, for pools that keep one (:class:`AllCandidates`); else None."""
        mask = self._source.eligible_mask()
        if mask is None:
            return None
        mask = mask.view()
        mask.flags.writeable = False
        return mask

    def __len__(self) -> int:
        return len(self._source)

    def __array__(self, dtype=None, copy=None):
        if copy or (dtype is not None and np.dtype(dtype) != self.ids.dtype):
            return self.ids.astype(self.ids.dtype if dtype is None else dtype)  # a fresh array
        return self.ids

    def __getitem__(self, key):
        return self.ids[key]

    def __iter__(self):
        return iter(self.ids)

    def __repr__(self) -> str:
        return f"CandidateView({type(self._source).__name__}, {len(self)} ids)"

    def density(self, ids: Any) -> np.ndarray:
        """Mean cosine similarity of each of ``ids`` to the candidates."""
        return self._source.density(ids)

    def unit_sum(self) -> np.ndarray:
        """Sum of the candidates' unit vectors (float64, read-only): the density of a unit
        vector z is ``z . unit_sum() / len(view)`` (what workers of a distributed round need)."""
        total = self._source.unit_sum().view()
        total.flags.writeable = False
        return total

    def neighbors(self, ids: Any) -> np.ndarray:
        """(len(ids), k) ids of the nearest neighbours of ``ids``, -1 padded (SEALS only)."""
        if self.expand is None:
            raise ValidationError(
                f"{type(self._source).__name__} has no neighbour index; use SEALSCandidates"
            )
        return self._source.neighbors(as_ids(ids))

    def joinable(self, ids: Any) -> np.ndarray:
        """Mask of ``ids`` that are neither candidates nor labeled (could join the pool)."""
        ids = as_ids(ids)
        return ~contains_ids(self.ids, ids) & ~self._source.is_labeled(ids)


class CandidatePool(Parameterized):
    """Base class: subclasses keep their own bookkeeping of eligible ids.

    Constructor parameters are checked when the pool is built (:mod:`raresift.params`).

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
        """Take note of items labeled since the last call: the only change of membership."""

    def eligible_mask(self) -> np.ndarray | None:
        """Boolean mask over the pool's rows of the eligible items, where the pool keeps one."""
        return None

    def is_labeled(self, ids: np.ndarray) -> np.ndarray:
        """Mask of ``ids`` that are labeled."""
        return self.labels.mask(ids)

    def view(self) -> CandidateView:
        """The read-only view a strategy selects from."""
        return CandidateView(self)

    def __len__(self) -> int:
        return int(self.candidates().size)

    # ------------------------------------------------------------------ density
    def density(self, ids) -> np.ndarray:
        """Mean cosine similarity of each of ``ids`` to the current candidates."""
        ids = as_ids(ids)
        n = len(self)
        if n == 0:
            raise ValidationError("the candidate pool is empty; density is undefined")
        return mean_cosine(self.pool, ids, self.unit_sum(), n)

    def unit_sum(self) -> np.ndarray:
        """Sum of the current candidates' unit vectors (float64)."""
        if not self._tracks_density:
            return unit_vector_sum(self.pool, self.candidates())
        if self._unit_sum is None:  # a cache of the members' unit-vector sum, kept current
            n = len(self)
            self._unit_sum = unit_vector_sum(self.pool, self.candidates(), progress=n > 1_000_000)
        return self._unit_sum

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

    def eligible_mask(self) -> np.ndarray:
        return self._unlabeled

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
    parameter_constraints = {
        "fraction": [Interval(float, 0, 1, "right")],
        "seed": [Interval(int, 0, None)],
    }

    def __init__(self, fraction: float = 0.1, seed: int = 0):
        self.fraction = fraction
        self.seed = seed

    def start(self, pool: Pool, labels: Labels) -> None:
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


class NeighborRows:
    """The neighbour rows an index gave for pool items so far, kept across rounds: the k-NN
    graph of the labeled neighbourhoods, built incrementally as items are labeled (and as a
    round searches ahead). A row is what ``index.neighbors([i], k)`` returned (a search of one
    item does not depend on the other items searched with it), so a row read back here is the
    row a new search would give; :class:`SEALSCandidates` searches only the items it lacks.
    ``take_new`` hands over the rows added since it was last called (for a store to keep).

    >>> rows = NeighborRows(k=2)
    >>> rows.add(np.array([7]), np.array([[3, 5]]))
    >>> rows.get(7).tolist(), rows.get(8), [a.tolist() for a in rows.take_new()]
    ([3, 5], None, [[7], [[3, 5]]])
    """

    def __init__(self, k: int, rows: dict[int, np.ndarray] | None = None):
        self.k = int(k)
        self._rows: dict[int, np.ndarray] = dict(rows or {})
        self._new: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, item: int) -> np.ndarray | None:
        return self._rows.get(item)

    def add(self, ids: np.ndarray, rows: np.ndarray) -> None:
        for i, row in zip(ids.tolist(), rows, strict=True):
            self._rows[i] = self._new[i] = row

    def take_new(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter(self._new, np.int64, len(self._new))
        rows = np.array(list(self._new.values()), dtype=np.int64).reshape(ids.size, self.k)
        self._new = {}
        return ids, rows


class SEALSCandidates(CandidatePool):
    """SEALS: the unlabeled k nearest neighbours of the labeled items (papers/002-003).

    The pool is the union of the ``k`` nearest neighbours of every labeled item, minus the
    labeled items: it starts from the seed labels and grows in :meth:`update` as labels arrive.
    ``expand`` says how a batch is chosen from it: ``"item"`` (the paper's Algorithm 2: after each
    pick, the pick's neighbours are eligible for the rest of the batch, scored by the same model)
    or ``"batch"`` (the batch is chosen from the pool as it is). Item expansion is done by the
    strategy (:func:`raresift.strategies.seals.select_expanding`), which asks the view for
    neighbours; the pool itself only grows when the picks are labeled, so in a simulation, where
    every pick is labeled, the pool after a round is exactly Algorithm 2's.

    Bookkeeping is incremental: sorted id arrays, no structure of the size of the whole pool, so
    one round costs O(|P| + b k) plus the k-NN searches. Neighbour rows searched during a round
    are kept until the next :meth:`update` (which consumes the labeled picks' rows), so asking
    for a batch again searches nothing twice. ``knn_seconds``, ``knn_queries`` and ``knn_calls``
    accumulate the search cost.

    Parameters
    ----------
    index : NeighborIndex
        Built over the same pool (same ids).
    k : int
        Neighbours added per labeled item.
    expand : {"item", "batch"}
    graph : NeighborRows, optional
        Rows this index gave before (for this ``k``), e.g. in earlier rounds of a session:
        read instead of searched, and every new search is added to it. ``looked_up`` lists
        the items whose rows were asked for since :meth:`start` (searched or read).
    """

    _tracks_density = True
    parameter_constraints = {
        "index": [
            HasMethods("neighbors", "check_pool", what="a NeighborIndex (or RemoteNeighborIndex)")
        ],
        "k": [Interval(int, 1, None)],
        "expand": [Options(*EXPANSIONS)],
        "graph": [Instance(NeighborRows, None)],
    }

    def __init__(
        self,
        index: NeighborIndex,
        k: int = 100,
        expand: str = "item",
        graph: NeighborRows | None = None,
    ):
        self.index = index
        self.k = k
        self.expand = expand
        self.graph = graph

    def start(self, pool: Pool, labels: Labels) -> None:
        self.index.check_pool(pool)  # the same ids and vectors the index was built over
        super().start(pool, labels)
        empty = np.empty(0, dtype=np.int64)
        self._members = empty  # candidate ids, ascending
        self._labeled = empty  # labeled ids seen by update, ascending
        self._expanded = empty  # ids whose neighbours have joined
        self._rows: dict[int, np.ndarray] = {}  # neighbour rows searched since the last update
        if self.graph is not None and self.graph.k != self.k:
            raise ValidationError(
                f"the neighbour rows hold {self.graph.k} neighbours an item, SEALS asks for "
                f"{self.k}; pass rows searched with k={self.k}"
            )
        self.knn_seconds = 0.0
        self.knn_queries = 0
        self.knn_calls = 0
        self.looked_up: dict[int, None] = {}
        self.update(labels.ids)

    @property
    def search_ahead(self) -> int:
        """Queries a search of a round may take ahead (the neighbours of the items most likely
        picked next, in the same call): the index's ``search_ahead`` if it has one (an index
        on Ray, whose calls cost more), else :data:`SEARCH_AHEAD`. Only what is searched
        depends on it, never a pick."""
        return int(getattr(self.index, "search_ahead", SEARCH_AHEAD))

    def candidates(self) -> np.ndarray:
        return self._members

    def __len__(self) -> int:
        return int(self._members.size)

    def is_labeled(self, ids: np.ndarray) -> np.ndarray:
        return contains_ids(self._labeled, ids)

    def neighbors(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), k) neighbour ids, -1 padded: one timed search for those not searched since
        the last update. Every k-NN search of a round goes through here."""
        missing = [i for i in dict.fromkeys(ids.tolist()) if i not in self._rows]
        self.looked_up.update(dict.fromkeys(missing))
        if self.graph is not None:
            known = {i: self.graph.get(i) for i in missing}
            self._rows.update((i, row) for i, row in known.items() if row is not None)
            missing = [i for i, row in known.items() if row is None]
        if missing:
            query = np.array(missing, dtype=np.int64)
            start = time.perf_counter()
            found = self.index.neighbors(query, self.k, pool=self.pool)
            self.knn_seconds += time.perf_counter() - start
            self.knn_queries += int(query.size)
            self.knn_calls += 1
            self._rows.update(zip(missing, found, strict=True))
            if self.graph is not None:
                self.graph.add(query, found)
        if ids.size == 0:
            return np.empty((0, self.k), dtype=np.int64)
        return np.stack([self._rows[i] for i in ids.tolist()])

    def update(self, newly_labeled_ids) -> None:
        """Labeled items leave the pool (for good) and their neighbours join it."""
        ids = np.unique(as_ids(newly_labeled_ids))
        ids = ids[~contains_ids(self._labeled, ids)]
        self._labeled = insert_ids(self._labeled, ids)
        left = ids[contains_ids(self._members, ids)]
        self._members = remove_ids(self._members, left)
        self._left(left)
        ids = ids[~contains_ids(self._expanded, ids)]
        if ids.size:
            self._expanded = insert_ids(self._expanded, ids)
            found = np.unique(self.neighbors(ids).ravel())
            found = found[found >= 0]
            found = found[~contains_ids(self._members, found) & ~contains_ids(self._labeled, found)]
            if found.size:
                self._members = insert_ids(self._members, found)
                self._joined(found)
        self._rows.clear()
