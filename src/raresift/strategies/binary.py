"""Strategies for one binary concept (SEALS, papers/002-003).

MaxEnt is the "entropy" strategy of :mod:`raresift.strategies.uncertainty`. This module adds
most-likely positive ("mlp", active search) and information density ("information-density"):
uncertainty weighted by how typical an item is of the candidate pool,

    ID(z) = entropy(z) * max(0, mean cosine similarity of z to the candidates) ** beta.

The mean similarity is to the candidates (``CandidateView.density``, which each pool keeps
current as items join and leave): over all of U for the "-All" baseline, over the SEALS pool for
SEALS. Given plain ids instead of a view, the ids being scored are the candidates.
"""

from __future__ import annotations

import numpy as np

from raresift.density import mean_cosine, unit_vector_sum
from raresift.errors import ValidationError
from raresift.params import Interval
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

    requirements = frozenset({"probabilities"})
    parameter_constraints = {"positive": [Interval(int, 0, None)]}

    def __init__(self, positive: int = 1):
        self.positive = positive

    def score(self, state, ids):
        return positive_proba(state, ids, self.positive)


class DensityWeightedStrategy(ScoringStrategy):
    """``informativeness(z) * max(0, mean cosine similarity of z to the candidates) ** beta``.

    Subclasses implement :meth:`informativeness`, which must not depend on the candidate pool;
    the density weight does. SEALS' per-item selection relies on that split: it computes
    informativeness once per item and keeps the densities current itself as the batch's pool
    grows.
    """

    requirements = frozenset({"probabilities"})
    parameter_constraints = {"beta": [Interval(float, 0, None)]}

    def __init__(self, beta: float = 1.0):
        self.beta = beta

    def informativeness(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def density_weights(self, density: np.ndarray) -> np.ndarray:
        """``max(0, density) ** beta``."""
        return np.clip(density, 0.0, None) ** self.beta

    def scores_among(self, state, ids, candidates):
        if callable(getattr(candidates, "density", None)):
            density = candidates.density(ids)
        else:
            density = mean_cosine(state.pool, ids, unit_vector_sum(state.pool, ids), ids.size)
        return self.informativeness(state, ids) * self.density_weights(density)

    def score(self, state, ids):
        """Density with respect to ``ids`` themselves."""
        return self.scores_among(state, ids, ids)


@register_strategy("information-density")
class InformationDensityStrategy(DensityWeightedStrategy):
    """Information density (Settles & Craven 2008): entropy weighted by density, beta = 1."""

    def informativeness(self, state, ids):
        return entropy_scores(predict_proba(state, ids))
