"""CoreSet (Sener & Savarese): greedy k-center over the labeled items and the batch so far.

Distances are computed in blocks against the labeled set and then against one new center at a
time, so memory stays O(n) beyond one (n x block) tile; never an n x n matrix.
"""

from __future__ import annotations

import numpy as np

from raresift.errors import ValidationError
from raresift.kernels import centred_rows, row_centre
from raresift.params import Interval, Options
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy

REPRESENTATIONS = ("auto", "penultimate", "embedding")


def item_features(state: SelectionState, ids: np.ndarray, kind: str = "auto") -> np.ndarray:
    """Representation for distance-based strategies, float32 (n, D).

    ``"penultimate"``: the model's penultimate features; ``"embedding"``: the pool's embeddings;
    ``"auto"``: penultimate when the model has it, else embeddings.
    """
    has_penultimate = state.model is not None and callable(
        getattr(state.model, "penultimate", None)
    )
    if kind == "penultimate" and not has_penultimate:
        raise ValidationError(
            "representation='penultimate' needs a fitted model with penultimate() (TorchModel); "
            "use representation='embedding'"
        )
    if kind != "embedding" and has_penultimate:
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
    representation : {"auto", "penultimate", "embedding"}
        ``auto`` uses the model's penultimate features when it has them, else the embeddings.
    chunk_size : int
        Labeled items compared with all candidates at once.

    Scores are the distance from the picked item to its nearest center when it was picked. With
    no labeled items, the first pick is random (score 0).
    """

    parameter_constraints = {
        "representation": [Options(*REPRESENTATIONS)],
        "chunk_size": [Interval(int, 1, None)],
    }

    def __init__(self, representation: str = "auto", chunk_size: int = 1024):
        self.representation = representation
        self.chunk_size = chunk_size

    def requires(self) -> frozenset[str]:
        return frozenset({"penultimate"} if self.representation == "penultimate" else ())

    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        # distances around the candidates' mean row: shifting the data changes no pick
        points = item_features(state, ids, self.representation)
        centre = row_centre(points)
        points, norms = centred_rows(points, centre)
        nearest = np.full(ids.size, np.inf, dtype=np.float32)
        centers = state.labels.ids
        for start in range(0, centers.size, self.chunk_size):
            chunk = centers[start : start + self.chunk_size]
            block = item_features(state, chunk, self.representation)
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
