"""Strategies for one binary concept (SEALS, papers/002-003).

MaxEnt is the "entropy" strategy of :mod:`raresift.strategies.uncertainty`. This module adds
most-likely positive ("mlp", active search) and information density ("information-density"):
uncertainty weighted by how typical an item is of the candidate pool,

    ID(z) = entropy(z) * max(0, mean cosine similarity of z to the candidates) ** beta.

The mean similarity comes from the candidate pool (``state.candidate_pool.density``), which each
pool keeps current as items join and leave: over all of U for the "-All" baseline, over the SEALS
pool for SEALS. Without a candidate pool in the state, the ids being scored are the pool.
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.idsets import contains_ids
from raresift.index import normalize_rows, unit_vector_sum
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy
from raresift.strategies.uncertainty import entropy_scores, predict_proba


def positive_proba(state: SelectionState, ids: np.ndarray, positive: int = 1) -> np.ndarray:
    """p(y = positive) for ``ids`` under the state's fitted model.

    Columns follow the model's ``classes_`` when there is one per column (scikit-learn);
    otherwise column ``positive`` is class ``positive`` (raresift's adapters, which keep a column
    for every class, seen or not). A model that cannot know the positive class gives 0.
    """
    proba = predict_proba(state, ids)
    classes = getattr(state.model, "classes_", None)
    if classes is not None and len(classes) == proba.shape[1]:
        hits = np.flatnonzero(np.asarray(classes) == positive)
        return proba[:, hits[0]] if hits.size else np.zeros(len(ids))
    if 0 <= positive < proba.shape[1]:
        return proba[:, positive]
    if classes is not None:
        return np.zeros(len(ids))
    raise ValidationError(
        f"the model's probabilities have {proba.shape[1]} columns and no classes_; cannot find "
        f"class {positive}"
    )


@register_strategy("mlp")
class MostLikelyPositiveStrategy(ScoringStrategy):
    """Pick the items most likely to be positive (active search; argmax p(y=1))."""

    def __init__(self, positive: int = 1):
        self.positive = positive

    def score(self, state, ids):
        return positive_proba(state, ids, self.positive)


@register_strategy("information-density")
class InformationDensityStrategy(ScoringStrategy):
    """Entropy times (mean cosine similarity to the candidate pool) ** beta (Settles & Craven).

    Negative mean similarities count as 0. Scores depend on the whole candidate pool
    (``depends_on_candidates``), so SEALS rescores every candidate after each pick; entropies are
    memoised per fitted model and round, so that costs lookups, not predictions.
    """

    depends_on_candidates = True

    def __init__(self, beta: float = 1.0):
        self.beta = beta
        self._memo_key: tuple | None = None
        self._memo_ids = np.empty(0, dtype=np.int64)
        self._memo_entropy = np.empty(0)

    def _entropy(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        key = (id(state.model), state.round)
        if key != self._memo_key:
            self._memo_key = key
            self._memo_ids, self._memo_entropy = np.empty(0, dtype=np.int64), np.empty(0)
        missing = np.unique(ids[~contains_ids(self._memo_ids, ids)])
        if missing.size:
            values = entropy_scores(predict_proba(state, missing))
            ids_all = np.concatenate([self._memo_ids, missing])
            order = np.argsort(ids_all, kind="stable")
            self._memo_ids = ids_all[order]
            self._memo_entropy = np.concatenate([self._memo_entropy, values])[order]
        return self._memo_entropy[np.searchsorted(self._memo_ids, ids)]

    def score(self, state, ids):
        if not np.isfinite(self.beta) or self.beta < 0:
            raise ValidationError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if state.candidate_pool is not None:
            density = state.candidate_pool.density(ids)
        else:
            unit = normalize_rows(state.pool.embeddings_of(ids)).astype(np.float64)
            density = unit @ unit_vector_sum(state.pool, ids) / ids.size
        return self._entropy(state, ids) * np.clip(density, 0.0, None) ** self.beta
