"""Candidate pools: which unlabeled items are eligible for selection this round.

The loop calls ``start`` once with the seed labels, ``select`` every round, and ``update`` with
the ids labeled since. ``select`` defaults to running the strategy on :meth:`candidates`;
pools that grow while a batch is chosen (SEALS, per item) override it.
"""

from __future__ import annotations

import numpy as np

from raresift.pool import Labels, Pool, as_ids
from raresift.strategies.base import Batch, SelectionState, Strategy


class CandidatePool:
    """Base class: subclasses keep their own bookkeeping of eligible ids."""

    pool: Pool
    labels: Labels

    def start(self, pool: Pool, labels: Labels) -> None:
        """Begin with ``labels`` (the seed) already known."""
        self.pool, self.labels = pool, labels

    def candidates(self) -> np.ndarray:
        """Eligible unlabeled ids now (int64, ascending)."""
        raise NotImplementedError

    def update(self, newly_labeled_ids) -> None:
        """Take note of items labeled since the last call."""

    def __len__(self) -> int:
        return int(self.candidates().size)

    def select(self, strategy: Strategy, state: SelectionState, budget: int) -> Batch:
        """Choose ``budget`` items with ``strategy`` among the eligible ones."""
        return strategy.select(state, self.candidates(), budget)


class AllCandidates(CandidatePool):
    """Every unlabeled item in the pool is eligible (the "-All" baselines)."""

    def start(self, pool: Pool, labels: Labels) -> None:
        super().start(pool, labels)
        self._unlabeled = np.ones(len(pool), dtype=bool)
        self.update(labels.ids)

    def update(self, newly_labeled_ids) -> None:
        ids = as_ids(newly_labeled_ids)
        if ids.size:
            self._unlabeled[self.pool.positions(ids)] = False

    def candidates(self) -> np.ndarray:
        return np.sort(self.pool.ids[self._unlabeled])

    def __len__(self) -> int:
        return int(self._unlabeled.sum())
