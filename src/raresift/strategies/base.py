"""What every acquisition strategy shares: the selection state, the batch it returns, the registry.

A strategy is an object with ``select(state, candidates, budget) -> Batch``: ``candidates`` is
the eligible ids, a read-only :class:`~raresift.candidates.CandidateView` when the loop calls
(or any id array). Selecting changes nothing: not the state, not the candidate pool. Strategies
that rank items one by one subclass :class:`ScoringStrategy` and implement only ``score``; over
a SEALS pool with ``expand="item"`` they choose their batch with the pool growing after every
pick (:func:`raresift.strategies.seals.select_expanding`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from raresift.errors import ValidationError
from raresift.params import Parameterized
from raresift.pool import Labels, Pool, as_ids, check_budget
from raresift.strategies.registry import (  # noqa: F401  (re-exported: strategy modules register here)
    make_strategy,
    register_strategy,
    strategy_names,
)

logger = logging.getLogger("raresift")


@dataclass
class Batch:
    """The items a strategy chose, best first.

    ``scores`` are the strategy's own figures (uncertainty, marginal gain, ...); ``reasons`` is a
    short human-readable note per item.
    """

    ids: np.ndarray
    scores: np.ndarray
    strategy: str
    round: int = 0
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.ids = as_ids(self.ids)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != self.ids.shape:
            raise ValidationError("a Batch needs one score per id")
        if not self.reasons:
            self.reasons = [f"{self.strategy} score {s:.4g}" for s in self.scores]

    def __len__(self) -> int:
        return self.ids.size


@dataclass
class SelectionState:
    """Everything a strategy may look at when it selects.

    ``model`` is a fitted adapter (``predict_proba`` at least); ``query_ids`` and
    ``conditioning_ids`` feed SIMILAR's SMI / SCG / SCMI; ``validation_ids`` are held-out labeled
    items (Fisher kernel); ``rng`` is the round's seeded generator.
    """

    pool: Pool
    labels: Labels
    model: Any = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    round: int = 0
    query_ids: np.ndarray | None = None
    conditioning_ids: np.ndarray | None = None
    validation_ids: np.ndarray | None = None
    use_items: bool = False

    def inputs(self, ids: Any) -> Any:
        """The model's inputs for ``ids``: raw items if ``use_items`` else embeddings."""
        return self.pool.items(ids) if self.use_items else self.pool.embeddings_of(ids)


class Strategy(Parameterized):
    """Base class: subclasses implement ``select`` and declare what they need of the model.

    Constructor parameters are checked once, when the strategy is built, against the class's
    ``parameter_constraints`` (:mod:`raresift.params`). ``requires()`` names the model
    capabilities (:data:`raresift.models.base.CAPABILITIES`) the strategy will call with its
    current parameters; the learner checks them when it is built.
    """

    name: ClassVar[str] = "strategy"
    requirements: ClassVar[frozenset[str]] = frozenset()

    def requires(self) -> frozenset[str]:
        """Model capabilities this strategy needs (default: its class's ``requirements``)."""
        return self.requirements

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class ScoringStrategy(Strategy):
    """A strategy that ranks items independently: higher score, earlier pick.

    Ties are broken at random with the state's generator, so equal scores never favour low ids.
    Each pick's reason is :meth:`reason` of its score (``reason_format``), so a batch explains
    itself wherever it is shown.
    """

    reason_format: ClassVar[str] = "{name} score {score:.4g}"

    def reason(self, score: float) -> str:
        """Why an item with this score was picked, in words."""
        return self.reason_format.format(name=self.name, score=score)

    def score(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def scores_among(self, state: SelectionState, ids: np.ndarray, candidates: Any) -> np.ndarray:
        """Scores of ``ids`` when ``candidates`` are the eligible items (default: ``score``)."""
        return self.score(state, ids)

    def streamed_scoring(self, state: SelectionState) -> tuple[Any, Callable] | None:
        """For a round over a whole pool: ``(scorer, to_scores)`` when this strategy's score of
        an item is ``to_scores(scorer.decide(rows))``, elementwise and non-decreasing in the
        decision (a :class:`~raresift.models.sklearn_model.LinearScorer`); None (the default)
        scores the candidates by :meth:`scores_among`."""
        return None

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        if getattr(candidates, "expand", None) == "item":
            from raresift.strategies.seals import select_expanding

            return select_expanding(self, state, candidates, budget)
        mask = getattr(candidates, "eligible_mask", lambda: None)()
        if mask is not None and not state.use_items:  # a pool that keeps a mask (-All)
            streamed = self.streamed_scoring(state)
            if streamed is not None:
                return self._select_streamed(state, mask, len(candidates), budget, *streamed)
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        scores = np.asarray(self.scores_among(state, ids, candidates), dtype=np.float64)
        if scores.shape != ids.shape or not np.all(np.isfinite(scores)):
            raise ValidationError(f"strategy {self.name!r} produced invalid scores")
        order = top_scores(scores, budget, state.rng)
        reasons = _all_tied_reasons(self, state, scores, budget) or [
            self.reason(s) for s in scores[order]
        ]
        return Batch(ids[order], scores[order], self.name, state.round, reasons)

    def _select_streamed(self, state, mask, n_eligible, budget, scorer, to_scores) -> Batch:
        """:meth:`select` over the eligible rows of ``mask`` in one pass over the embeddings
        (:func:`stream_top_scores`): the same picks, ties broken the same way, as scoring every
        candidate id, but no per-candidate arrays."""
        budget = check_budget(budget, n_eligible, "candidates")
        positions, scores = stream_top_scores(
            state.pool.embeddings, mask, scorer, to_scores, budget, rows=STREAM_ROWS
        )
        ids = state.pool.ids[positions]
        by_id = np.argsort(ids, kind="stable")  # candidates are ascending ids
        ids, scores = ids[by_id], scores[by_id]
        order = top_scores(scores, budget, state.rng)
        everyone = scores if scores.size == n_eligible else scores[:0]  # else not all tied
        reasons = _all_tied_reasons(self, state, everyone, budget) or [
            self.reason(s) for s in scores[order]
        ]
        return Batch(ids[order], scores[order], self.name, state.round, reasons)


STREAM_ROWS = 1 << 16  # pool rows scored per step of a streamed round


def stream_top_scores(
    embeddings: np.ndarray,
    eligible: np.ndarray,
    scorer: Any,
    to_scores: Callable[[np.ndarray], np.ndarray],
    budget: int,
    rows: int = STREAM_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ascending) and scores of the ``eligible`` rows tied with or above the
    ``budget``-th best score (the rows :func:`top_scores` would order), in one pass over
    ``embeddings``.

    Each block of ``rows`` is scored by ``scorer.decide`` (float32); only rows at or above the
    running floor (the least decision whose score reaches the ``budget``-th best so far; scores
    are non-decreasing in the decision) get ``to_scores``. Memory: the survivors, not the pool.

    >>> from raresift.models.sklearn_model import LinearScorer
    >>> x = np.array([[0.0], [3.0], [1.0], [3.0], [2.0]], dtype=np.float32)
    >>> eligible = np.array([True, True, True, False, True])
    >>> pos, scores = stream_top_scores(x, eligible, LinearScorer([1.0]), np.float64, 2, rows=2)
    >>> pos.tolist(), scores.tolist()
    ([1, 4], [3.0, 2.0])
    """
    found_pos: list[np.ndarray] = []
    found_scores: list[np.ndarray] = []
    n_found, bar, floor = 0, None, -np.inf
    decisions = np.empty(min(rows, embeddings.shape[0]), dtype=np.float32)
    for lo in range(0, embeddings.shape[0], rows):
        block = embeddings[lo : lo + rows]
        z = scorer.decide(block, out=decisions[: block.shape[0]])
        hit = np.greater_equal(z, floor)
        hit &= eligible[lo : lo + block.shape[0]]
        pos = np.flatnonzero(hit)
        if not pos.size:
            continue
        scores = np.asarray(to_scores(z[pos]), dtype=np.float64)
        if bar is not None:
            keep = scores >= bar
            pos, scores = pos[keep], scores[keep]
        found_pos.append(pos + lo)
        found_scores.append(scores)
        n_found += pos.size
        if n_found >= 2 * budget + 1024 or len(found_pos) > 64:
            found_pos, found_scores, bar = _best(found_pos, found_scores, budget)
            n_found = found_pos[0].size
            if bar is not None:
                floor = least_reaching(to_scores, bar)
    found_pos, found_scores, _ = _best(found_pos, found_scores, budget)
    return found_pos[0], found_scores[0]


def _best(positions: list, scores: list, budget: int):
    """The rows of ``positions``/``scores`` (lists of parts) tied with or above the
    ``budget``-th best score, as one part each, and that score (None with ``budget`` or fewer)."""
    pos = np.concatenate(positions) if positions else np.empty(0, dtype=np.int64)
    values = np.concatenate(scores) if scores else np.empty(0, dtype=np.float64)
    if values.size <= budget:
        return [pos], [values], None
    bar = values[np.argpartition(values, -budget)[-budget]]
    keep = values >= bar
    return [pos[keep]], [values[keep]], bar


def least_reaching(to_scores: Callable[[np.ndarray], np.ndarray], bar: float) -> float:
    """The least float32 ``z`` with ``to_scores(z) >= bar`` (``to_scores`` non-decreasing), by
    bisection over the float32 values in order; -inf when every float32 reaches it.

    >>> least_reaching(np.float64, 2.5)
    2.5
    """

    def value(rank: int) -> np.ndarray:  # the float32 of a rank in the order of values
        bits = rank if rank >= 0 else (-rank) | 0x80000000
        return np.array([bits], dtype=np.uint32).view(np.float32)

    def reaches(rank: int) -> bool:
        return bool(np.asarray(to_scores(value(rank)))[0] >= bar)

    lo, hi = -0x7F7FFFFF, 0x7F7FFFFF  # ranks of -max and +max float32
    if reaches(lo):
        return -np.inf
    if not reaches(hi):
        return np.inf
    while hi - lo > 1:  # reaches(hi), not reaches(lo)
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return float(value(hi)[0])


def _all_tied_reasons(strategy: Strategy, state: SelectionState, scores, budget: int) -> list:
    """When every candidate scores the same, the picks are the random tie-break, not the
    strategy's choice: warn, and say so in each pick's reason (``[]``: the default reasons).

    The usual cause is a model fitted on one class (active search before the first positive):
    every entropy is 0 and every p(positive) the same.
    """
    if isinstance(strategy, RandomStrategy) or scores.size < 2 or np.ptp(scores) > 0:
        return []
    classes = np.unique(state.labels.values) if len(state.labels) else np.empty(0)
    cause = (
        f"the model was fitted on one class only (class {int(classes[0])})"
        if classes.size == 1
        else "the model cannot tell the candidates apart"
    )
    note = f"every candidate's {strategy.name} score is {scores[0]:.4g}: {cause}"
    logger.warning("%s; these %d picks are uniformly random", note, budget)
    return [f"uniformly random pick ({note})"] * budget


def top_scores(scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``budget`` highest ``scores``, best first, ties in random order.

    Linear in ``len(scores)``: only the items tied with or above the ``budget``-th best are
    sorted (with random tie-break keys drawn for those alone).

    >>> top_scores(np.array([0.1, 0.9, 0.5, 0.9]), 3, np.random.default_rng(0)).tolist()
    [3, 1, 2]
    """
    if budget <= 0:
        return np.empty(0, dtype=np.int64)
    if budget < scores.size:
        threshold = np.partition(scores, scores.size - budget)[scores.size - budget]
        contenders = np.flatnonzero(scores >= threshold)
    else:
        contenders = np.arange(scores.size)
    order = np.lexsort((rng.random(contenders.size), -scores[contenders]))
    return contenders[order[:budget]]


@register_strategy("random")
class RandomStrategy(ScoringStrategy):
    """Uniform random picks (the baseline every paper compares against)."""

    reason_format = "random pick (baseline)"

    def score(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        return state.rng.random(ids.size)
