"""BADGE (Ash et al.): k-means++ seeding on hypothesised last-layer gradient embeddings.

Large gradients mean uncertain items; k-means++ spreads the batch over distinct gradient
directions. Works with any model that has ``gradient_embeddings(X)`` (both adapters do).
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy


def gradient_embeddings(state: SelectionState, ids: np.ndarray, chunk_size: int) -> np.ndarray:
    """Hypothesised-label gradient embeddings of ``ids`` from the state's model, float32."""
    model = state.model
    if model is None or not callable(getattr(model, "gradient_embeddings", None)):
        raise ValidationError(
            "this strategy needs a fitted model with gradient_embeddings() "
            "(SklearnModel or TorchModel); fit the learner first"
        )
    parts = [
        np.asarray(model.gradient_embeddings(state.inputs(ids[i : i + chunk_size])), np.float32)
        for i in range(0, ids.size, chunk_size)
    ]
    out = np.concatenate(parts, axis=0)
    if out.ndim != 2 or out.shape[0] != ids.size or not np.isfinite(out).all():
        raise ValidationError("the model's gradient_embeddings returned an invalid array")
    return out


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: the largest-norm point first, then D^2 sampling. Returns (indices, D^2).

    Points at distance 0 from every chosen center are only chosen once every point is (then
    uniformly among the rest).
    """
    n = points.shape[0]
    norms = np.einsum("ij,ij->i", points, points)
    chosen = np.empty(k, dtype=np.int64)
    d2_at_pick = np.empty(k, dtype=np.float64)
    chosen[0] = int(np.argmax(norms))
    d2_at_pick[0] = float(norms[chosen[0]])
    nearest = np.full(n, np.inf, dtype=np.float64)
    for step in range(1, k):
        last = points[chosen[step - 1]]
        d2 = norms + norms[chosen[step - 1]] - 2.0 * (points @ last)
        np.minimum(nearest, np.maximum(d2, 0.0), out=nearest)
        nearest[chosen[:step]] = 0.0
        total = nearest.sum()
        if total > 0:
            pick = int(np.searchsorted(np.cumsum(nearest), rng.random() * total, side="right"))
            pick = min(pick, n - 1)
        else:
            remaining = np.setdiff1d(np.arange(n), chosen[:step])
            pick = int(rng.choice(remaining))
        chosen[step], d2_at_pick[step] = pick, nearest[pick]
    return chosen, d2_at_pick


@register_strategy("badge")
class BadgeStrategy(Strategy):
    """Pick a batch of diverse, large hypothesised gradients by k-means++ seeding.

    Scores are the squared distance to the nearest earlier pick at the time of picking (the
    squared gradient norm for the first).
    """

    def __init__(self, chunk_size: int = 4096):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValidationError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.chunk_size = chunk_size

    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        embeddings = gradient_embeddings(state, ids, self.chunk_size)
        picks, d2 = kmeans_plus_plus(embeddings, budget, state.rng)
        return Batch(ids[picks], d2, self.name, state.round)
