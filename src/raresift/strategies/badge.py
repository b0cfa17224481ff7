"""BADGE (Ash et al.): k-means++ seeding on hypothesised last-layer gradient embeddings.

Large gradients mean uncertain items; k-means++ spreads the batch over distinct gradient
directions. Works with any model that has ``gradient_embeddings(X)`` (both adapters do); with
``gradient_factors(X)`` (both adapters) distances cost O(K + D) per item instead of O(K D).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from raresift.errors import ValidationError
from raresift.models.base import provides, require_capability
from raresift.params import Interval
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy

Gram = tuple[np.ndarray, Callable[[int], np.ndarray]]


def gradient_gram(state: SelectionState, ids: np.ndarray, chunk_size: int) -> Gram:
    """Squared norms of the hypothesised gradient embeddings of ``ids``, and a function giving
    every item's inner product with item ``i``.

    Uses the model's ``gradient_factors`` when it provides them (never building the
    K (D + 1)-wide rows), else its ``gradient_embeddings``.
    """
    model = state.model
    require_capability(model, "gradient_embeddings", "BADGE")
    factored = provides(model, "gradient_factors")
    chunks = [ids[i : i + chunk_size] for i in range(0, ids.size, chunk_size)]
    if factored:
        parts = [model.gradient_factors(state.inputs(chunk)) for chunk in chunks]
        residuals = np.concatenate([np.asarray(r, np.float32) for r, _ in parts])
        features = np.concatenate([np.asarray(e, np.float32) for _, e in parts])
        _check_rows(residuals, ids.size)
        _check_rows(features, ids.size)
        r2 = np.einsum("ij,ij->i", residuals, residuals).astype(np.float64)
        e2 = np.einsum("ij,ij->i", features, features).astype(np.float64)

        def inner(i: int) -> np.ndarray:
            return (residuals @ residuals[i]) * (1.0 + features @ features[i])

        return r2 * (1.0 + e2), inner
    points = np.concatenate(
        [np.asarray(model.gradient_embeddings(state.inputs(c)), np.float32) for c in chunks]
    )
    _check_rows(points, ids.size)
    return dense_gram(points)


def _check_rows(arr: np.ndarray, n: int) -> None:
    if arr.ndim != 2 or arr.shape[0] != n or not np.isfinite(arr).all():
        raise ValidationError("the model returned invalid gradient embeddings")


def dense_gram(points: np.ndarray) -> Gram:
    """Squared norms and inner-product function of explicit row vectors."""
    norms = np.einsum("ij,ij->i", points, points).astype(np.float64)
    return norms, lambda i: points @ points[i]


def kmeans_plus_plus(gram: Gram, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding: the largest-norm point first, then D^2 sampling.

    ``gram`` is ``(squared norms, i -> inner products with point i)``. Returns the chosen
    indices and each one's squared distance to the nearest earlier choice (its squared norm for
    the first). Points at distance 0 from every choice are taken only when nothing else is left
    (then uniformly).
    """
    norms, inner = gram
    n = norms.shape[0]
    chosen = np.empty(k, dtype=np.int64)
    d2_at_pick = np.empty(k, dtype=np.float64)
    chosen[0] = int(np.argmax(norms))
    d2_at_pick[0] = float(norms[chosen[0]])
    nearest = np.full(n, np.inf, dtype=np.float64)
    for step in range(1, k):
        last = int(chosen[step - 1])
        d2 = norms + norms[last] - 2.0 * inner(last)
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

    requirements = frozenset({"gradient_embeddings"})

    parameter_constraints = {"chunk_size": [Interval(int, 1, None)]}

    def __init__(self, chunk_size: int = 4096):
        self.chunk_size = chunk_size

    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        picks, d2 = kmeans_plus_plus(gradient_gram(state, ids, self.chunk_size), budget, state.rng)
        return Batch(ids[picks], d2, self.name, state.round)
