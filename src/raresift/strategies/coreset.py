"""CoreSet (Sener & Savarese): greedy k-center over the labeled items and the batch so far.

Distances are computed in blocks against the labeled set and then against one new center at a
time, so memory stays O(n) beyond one (n x block) tile; never an n x n matrix.
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.kernels import centred_rows, row_centre
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy

_FEATURE_CHOICES = ("auto", "penultimate", "embeddings")


def item_features(state: SelectionState, ids: np.ndarray, kind: str = "auto") -> np.ndarray:
    """Representation for distance-based strategies, float32 (n, D).

    ``"penultimate"``: the model's penultimate features; ``"embeddings"``: the pool's embeddings;
    ``"auto"``: penultimate when the model has it, else embeddings.
    """
    has_penultimate = state.model is not None and callable(
        getattr(state.model, "penultimate", None)
    )
    if kind == "penultimate" and not has_penultimate:
        raise ValidationError(
            "features='penultimate' needs a fitted model with penultimate() (TorchModel); "
            "use features='embeddings'"
        )
    if kind != "embeddings" and has_penultimate:
        return np.asarray(state.model.penultimate(state.inputs(ids)), dtype=np.float32)
    return np.asarray(state.pool.embeddings_of(ids), dtype=np.float32)


def _squared_distances(points: np.ndarray, norms: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances, clipped at 0 against rounding."""
    d2 = norms[:, None] + np.einsum("ij,ij->i", others, others)[None, :] - 2.0 * points @ others.T
    return np.maximum(d2, 0.0, out=d2)


@register_strategy("coreset")
class CoreSetStrategy(Strategy):
    """Greedy k-center: repeatedly pick the candidate farthest from every labeled and picked item.

    Parameters
    ----------
    features : {"auto", "penultimate", "embeddings"}
        Representation; ``auto`` uses the model's penultimate features when it has them.
    block_size : int
        Labeled items compared with all candidates at once.

    Scores are the distance from the picked item to its nearest center when it was picked. With
    no labeled items, the first pick is random (score 0).
    """

    def __init__(self, features: str = "auto", block_size: int = 1024):
        if features not in _FEATURE_CHOICES:
            raise ValidationError(f"features must be one of {_FEATURE_CHOICES}, got {features!r}")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValidationError(f"block_size must be a positive integer, got {block_size!r}")
        self.features = features
        self.block_size = block_size

    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        # distances around the candidates' mean row: shifting the data changes no pick
        points = item_features(state, ids, self.features)
        centre = row_centre(points)
        points, norms = centred_rows(points, centre)
        nearest = np.full(ids.size, np.inf, dtype=np.float32)
        centers = state.labels.ids
        for start in range(0, centers.size, self.block_size):
            block = item_features(state, centers[start : start + self.block_size], self.features)
            block = centred_rows(block, centre)[0]
            np.minimum(nearest, _squared_distances(points, norms, block).min(axis=1), out=nearest)
        picks = np.empty(budget, dtype=np.int64)
        scores = np.empty(budget, dtype=np.float64)
        for step in range(budget):
            if step == 0 and centers.size == 0:
                pick, score = int(state.rng.integers(ids.size)), 0.0
            else:
                pick = int(np.argmax(nearest))
                score = float(np.sqrt(nearest[pick]))
            picks[step], scores[step] = pick, score
            new = _squared_distances(points, norms, points[pick : pick + 1])[:, 0]
            np.minimum(nearest, new, out=nearest)
            nearest[picks[: step + 1]] = -np.inf  # picked items are never picked again
        reasons = [f"coreset: {s:.4g} from the nearest labeled or picked item" for s in scores]
        return Batch(ids[picks], scores, self.name, state.round, reasons)
