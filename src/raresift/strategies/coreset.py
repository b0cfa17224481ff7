"""CoreSet (Sener & Savarese): greedy k-center over the labeled items and the batch so far.

Distances are computed in blocks against the labeled set and then against one new center at a
time, so memory stays O(n) beyond one (n x block) tile; never an n x n matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from raresift.errors import ValidationError
from raresift.kernels import centred_rows, row_centre
from raresift.models.base import model_provides, require_capability
from raresift.params import Interval, Options
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy

REPRESENTATIONS = ("auto", "penultimate", "embedding")


def item_features(state: SelectionState, ids: np.ndarray, kind: str = "auto") -> np.ndarray:
    """Representation for distance-based strategies, float32 (n, D).

    ``"penultimate"``: the model's penultimate features; ``"embedding"``: the pool's embeddings;
    ``"auto"``: penultimate when the model has it, else embeddings.
    """
    if kind == "penultimate":
        require_capability(state.model, "penultimate", "representation='penultimate'")
    has_penultimate = state.model is not None and "penultimate" in model_provides(state.model)
    if kind != "embedding" and has_penultimate:
        return np.asarray(state.model.penultimate(state.inputs(ids)), dtype=np.float32)
    return np.asarray(state.pool.embeddings_of(ids), dtype=np.float32)


def greedy_k_center(
    distances_to: Callable[[int], np.ndarray],
    n: int,
    k: int,
    rng: np.random.Generator,
    nearest: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (farthest first): ``k`` of ``n`` items, each the farthest from its nearest
    centre so far; the one k-center of raresift (CoreSet, Fisher's validation matching).

    ``distances_to(i)`` gives every item's distance (any monotone dissimilarity) to item ``i``;
    ``nearest`` is each item's distance to centres chosen before (updated in place; missing or
    all infinite: no centres yet, and the first pick is random). Ties go to the lowest position.
    Returns the positions and each one's distance to its nearest centre when it was picked (0
    for a random first pick), in ``nearest``'s dtype.

    >>> pts = np.array([0.0, 0.1, 5.0, 10.0])
    >>> picks, _ = greedy_k_center(lambda i: abs(pts - pts[i]), 4, 3, np.random.default_rng(0))
    >>> np.sort(picks).tolist()
    [0, 2, 3]
    """
    if not 0 < k <= n:
        raise ValidationError(f"k-center needs 0 < k <= n, got k={k}, n={n}")
    nearest = np.full(n, np.inf) if nearest is None else nearest
    random_first = not np.isfinite(nearest).any()
    picks = np.empty(k, dtype=np.int64)
    at_pick = np.empty(k, dtype=nearest.dtype)
    for step in range(k):
        if step == 0 and random_first:
            pick, at_pick[step] = int(rng.integers(n)), 0.0
        else:
            pick = int(np.argmax(nearest))
            at_pick[step] = nearest[pick]
        picks[step] = pick
        np.minimum(nearest, distances_to(pick), out=nearest)
        nearest[picks[: step + 1]] = -np.inf  # picked items are never picked again
    return picks, at_pick


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
        picks, d2 = greedy_k_center(
            lambda i: _squared_distances(points, norms, points[i : i + 1])[:, 0],
            ids.size,
            budget,
            state.rng,
            nearest=nearest,
        )
        scores = np.sqrt(d2).astype(np.float64)
        reasons = [f"coreset: {s:.4g} from the nearest labeled or picked item" for s in scores]
        return Batch(ids[picks], scores, self.name, state.round, reasons)
