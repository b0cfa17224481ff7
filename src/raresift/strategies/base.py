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

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        if getattr(candidates, "expand", None) == "item":
            from raresift.strategies.seals import select_expanding

            return select_expanding(self, state, candidates, budget)
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
