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
from scipy.special import expit

from raresift.density import mean_cosine, unit_vector_sum
from raresift.errors import ValidationError
from raresift.params import Instance, Interval
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy
from raresift.strategies.uncertainty import entropy_scores, predict_proba


def positive_proba(state: SelectionState, ids: np.ndarray, positive=1) -> np.ndarray:
    """p(y = positive) for ``ids`` under the state's fitted model; ``positive`` is one class
    index or several (a class session's rare classes), whose probabilities add up: the
    probability that the item belongs to any of them.

    Columns follow the model's ``classes_`` when there is one per column (scikit-learn);
    otherwise column ``positive`` is class ``positive`` (raresift's adapters, which keep a column
    for every class, seen or not). A model that cannot know the positive class gives 0.
    """
    proba = predict_proba(state, ids)
    if isinstance(positive, (list, tuple, np.ndarray)):
        return sum(
            (_column(state, proba, int(c)) for c in positive), np.zeros(len(ids), np.float64)
        )
    return _column(state, proba, positive)


def _column(state: SelectionState, proba: np.ndarray, positive: int) -> np.ndarray:
    n = proba.shape[0]
    classes = getattr(state.model, "classes_", None)
    if classes is not None and len(classes) == proba.shape[1]:
        hits = np.flatnonzero(np.asarray(classes) == positive)
        return proba[:, hits[0]] if hits.size else np.zeros(n)
    if 0 <= positive < proba.shape[1]:
        return proba[:, positive]
    if classes is not None:
        return np.zeros(n)
    raise ValidationError(
        f"the model's probabilities have {proba.shape[1]} columns and no classes_; cannot find "
        f"class {positive}"
    )


class ClassList:
    """A non-empty list (or tuple) of distinct class indices >= 0."""

    def holds(self, value) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and len(set(value)) == len(value)
            and all(Interval(int, 0, None).holds(v) for v in value)
        )

    def __str__(self) -> str:
        return "a non-empty list of distinct class indices >= 0"


@register_strategy("mlp")
class MostLikelyPositiveStrategy(ScoringStrategy):
    """Pick the items most likely to be positive (active search; argmax p(y=1)).

    ``positive`` is the positive class index, or a list of them: a class session passes its
    rare classes, and the score is the probability of any of them.
    """

    requirements = frozenset({"probabilities"})
    parameter_constraints = {"positive": [Interval(int, 0, None), ClassList()]}

    def __init__(self, positive: int = 1):
        self.positive = positive

    def reason(self, score: float) -> str:
        """The pick's words; its score, p(positive), stands beside them in the batch."""
        return "most likely rare class" if isinstance(self.positive, (list, tuple)) \
            else "most likely positive"  # fmt: skip

    def score(self, state, ids):
        return positive_proba(state, ids, self.positive)

    def streamed_scoring(self, state):
        """A binary logistic regression (:meth:`SklearnModel.linear_scorer
        <raresift.models.sklearn_model.SklearnModel.linear_scorer>`) whose second class is
        sought and whose first is not, over float16 or float32 embeddings: p(positive) is
        ``expit(z + intercept)`` of its decision ``z``, so a round over the whole pool streams
        it (any other model or dtype: None)."""
        if state.pool.embeddings.dtype not in (np.float16, np.float32):
            return None  # float64 rows are scored as scikit-learn scores them
        linear_scorer = getattr(state.model, "linear_scorer", None)
        scorer = linear_scorer() if callable(linear_scorer) else None
        if scorer is None:
            return None
        sought = set(self.positive) if isinstance(self.positive, (list, tuple)) \
            else {self.positive}  # fmt: skip
        negative, positive = (int(c) for c in state.model.estimator_.classes_)
        if positive not in sought or negative in sought:
            return None
        intercept = state.model.estimator_.intercept_[0]

        def to_scores(z):  # SklearnModel._proba's arithmetic, to the last bit
            z = z.astype(np.float64)
            z += intercept
            return expit(z)

        return scorer, to_scores


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
    """Information density (Settles & Craven 2008): entropy weighted by density, beta = 1.

    With ``positive`` (a class index or a list, as :class:`MostLikelyPositiveStrategy` takes
    it; a class session passes its rare classes) the entropy is that of "any positive class"
    against the rest, so the uncertainty is about the classes sought.
    """

    reason_format = "uncertain and typical of the pool (density-weighted {score:.3g})"

    parameter_constraints = {
        "positive": [Interval(int, 0, None), ClassList(), Instance(None)],
    }

    def __init__(self, beta: float = 1.0, positive=None):
        super().__init__(beta)
        self.positive = positive

    def informativeness(self, state, ids):
        if self.positive is None:
            return entropy_scores(predict_proba(state, ids))
        p = np.clip(positive_proba(state, ids, self.positive), 0.0, 1.0)
        return entropy_scores(np.column_stack([1.0 - p, p]))
