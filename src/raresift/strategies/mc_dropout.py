"""Bayesian uncertainty from MC-dropout samples: BALD and the variation ratio.

Both need a model with ``mc_dropout_proba(X, n_samples, seed) -> (S, n, K)``, such as
:class:`~raresift.models.TorchModel` over a network with dropout.
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.models.base import require_capability
from raresift.params import Interval
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy
from raresift.strategies.uncertainty import UNCERTAIN, entropy_scores


def bald_scores(samples: np.ndarray) -> np.ndarray:
    """Mutual information between prediction and weights: H(mean p) - mean H(p), shape (n,).

    High when the dropout samples disagree, not merely when each is unsure.

    >>> unsure = [[0.5, 0.5], [0.5, 0.5]]
    >>> split = [[1.0, 0.0], [0.0, 1.0]]
    >>> bald_scores(np.array([unsure, split]).transpose(1, 0, 2)).round(4).tolist()
    [0.0, 0.6931]
    """
    s, n, k = samples.shape
    mean_entropy = entropy_scores(samples.reshape(s * n, k)).reshape(s, n).mean(axis=0)
    return np.maximum(entropy_scores(samples.mean(axis=0)) - mean_entropy, 0.0)


def variation_ratio_scores(samples: np.ndarray) -> np.ndarray:
    """One minus the share of dropout samples that vote for the modal class, shape (n,).

    >>> votes = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.7, 0.3]], [[0.6, 0.4]]])
    >>> variation_ratio_scores(votes).tolist()
    [0.25]
    """
    s, _, k = samples.shape
    votes = samples.argmax(axis=2)  # (S, n)
    counts = (votes[:, :, None] == np.arange(k)).sum(axis=0)  # (n, K)
    return 1.0 - counts.max(axis=1) / s


class _MCDropoutStrategy(ScoringStrategy):
    """Score candidates in chunks from ``n_samples`` dropout masks seeded by the round's rng."""

    requirements = frozenset({"dropout_samples"})
    reason_format = UNCERTAIN

    parameter_constraints = {
        "n_samples": [Interval(int, 2, None)],
        "chunk_size": [Interval(int, 1, None)],
    }

    def __init__(self, n_samples: int = 20, chunk_size: int = 4096):
        self.n_samples = n_samples
        self.chunk_size = chunk_size

    def _scores_of(self, samples: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        model = state.model
        require_capability(model, "dropout_samples", f"strategy {self.name!r}")
        seed = int(state.rng.integers(2**31))
        out = np.empty(ids.size, dtype=np.float64)
        for i, start in enumerate(range(0, ids.size, self.chunk_size)):
            chunk = ids[start : start + self.chunk_size]
            inputs = state.inputs(chunk)
            samples = np.asarray(
                model.mc_dropout_proba(inputs, n_samples=self.n_samples, seed=seed + i), np.float64
            )
            if samples.shape[:2] != (self.n_samples, chunk.size) or not np.isfinite(samples).all():
                raise ValidationError("the model's mc_dropout_proba returned an invalid array")
            out[start : start + chunk.size] = self._scores_of(samples)
        return out


@register_strategy("bald")
class BALDStrategy(_MCDropoutStrategy):
    """BALD: pick the items whose MC-dropout predictions disagree most (mutual information)."""

    def _scores_of(self, samples):
        return bald_scores(samples)


@register_strategy("variation-ratio")
class VariationRatioStrategy(_MCDropoutStrategy):
    """Pick the items whose MC-dropout votes are split most (1 - modal share)."""

    def _scores_of(self, samples):
        return variation_ratio_scores(samples)
