"""Uncertainty sampling: entropy, least confidence and margin of the model's class probabilities.

For a binary concept, entropy is SEALS' MaxEnt.
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy

PROBA_BLOCK = 16_384  # items per model call: bounded temporaries, cache-sized input blocks


def predict_proba(state: SelectionState, ids: np.ndarray) -> np.ndarray:
    """The fitted model's class probabilities for ``ids``, checked for shape and finiteness.

    The model sees ``PROBA_BLOCK`` items at a time, so scoring 10^8 candidates never gathers
    all their embeddings at once.
    """
    if state.model is None:
        raise ValidationError("this strategy needs a fitted model; fit the learner first")
    blocks = []
    for lo in range(0, max(len(ids), 1), PROBA_BLOCK):
        part = ids[lo : lo + PROBA_BLOCK]
        proba = np.asarray(state.model.predict_proba(state.inputs(part)), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != len(part) or not np.all(np.isfinite(proba)):
            raise ValidationError("the model's predict_proba returned an invalid array")
        blocks.append(proba)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def entropy_scores(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities.

    >>> entropy_scores(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    p = np.clip(proba, 1e-12, 1.0)
    return np.abs((proba * np.log(p)).sum(axis=1))


def least_confidence_scores(proba: np.ndarray) -> np.ndarray:
    """One minus the top class probability."""
    return 1.0 - proba.max(axis=1)


def margin_scores(proba: np.ndarray) -> np.ndarray:
    """Negative gap between the two most probable classes (small gap, high score)."""
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


@register_strategy("entropy")
class EntropyStrategy(ScoringStrategy):
    """Pick the items whose predicted class distribution has the highest entropy (MaxEnt)."""

    def score(self, state, ids):
        return entropy_scores(predict_proba(state, ids))


@register_strategy("least-confidence")
class LeastConfidenceStrategy(ScoringStrategy):
    """Pick the items whose most likely class is least likely."""

    def score(self, state, ids):
        return least_confidence_scores(predict_proba(state, ids))


@register_strategy("margin")
class MarginStrategy(ScoringStrategy):
    """Pick the items with the smallest gap between the two most likely classes."""

    def score(self, state, ids):
        return margin_scores(predict_proba(state, ids))
