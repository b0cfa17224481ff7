"""The active-learning loop: fit, query a batch, teach the answers, repeat.

:class:`ActiveLearner` serves both a person (``query`` then ``teach`` whenever answers arrive) and
a simulation (``run`` with an oracle). ``query`` never labels anything; only ``teach`` does.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.candidates import AllCandidates, CandidatePool, SEALSCandidates
from raresift.errors import BudgetError, ValidationError
from raresift.models.base import check_capabilities, check_labels
from raresift.pool import IdIndex, Labels, Pool, as_ids, check_budget
from raresift.strategies.base import (
    Batch,
    ScoringStrategy,
    SelectionState,
    Strategy,
    make_strategy,
)

logger = logging.getLogger("raresift")


class ArrayOracle:
    """Answer queries from known labels: ``ArrayOracle(y)(ids) == y[positions of ids]``.

    ``y`` holds one label per pool item, aligned with ``pool.ids`` (or with ``ids`` if given).

    >>> oracle = ArrayOracle([5, 6, 7], ids=[10, 20, 30])
    >>> oracle([30, 10]).tolist()
    [7, 5]
    """

    def __init__(self, labels: Any, ids: Any = None):
        self.labels = np.asarray(labels)
        if self.labels.ndim != 1:
            raise ValidationError(f"oracle labels must be 1-d, got shape {self.labels.shape}")
        index_ids = np.arange(self.labels.size) if ids is None else as_ids(ids, "oracle ids")
        if index_ids.size != self.labels.size:
            raise ValidationError(
                f"the oracle has {self.labels.size} labels for {index_ids.size} pool items; "
                "pass one label per item, aligned with pool.ids"
            )
        self._index = IdIndex(index_ids, "oracle ids")

    def __call__(self, ids: Any) -> np.ndarray:
        return self.labels[self._index.positions(ids, "the oracle")]


class _TimedModel:
    """Forward every attribute to the model, adding the time spent in its methods to a clock.

    Only bound methods are timed; other attributes (``network``, ``classes_``) pass through as
    they are.

    ``isinstance(proxy, TorchModel)`` still holds: ``__class__`` reports the model's class.
    """

    def __init__(self, model: Any):
        self._model = model
        self.seconds = 0.0

    @property
    def __class__(self):  # isinstance checks see the wrapped model's type
        return type(self._model)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        if name.startswith("_") or not inspect.ismethod(attr):
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def _union(current: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    return new if current is None else np.concatenate([current, new])


def _round_rng(seed: int, round_index: int) -> np.random.Generator:
    """The generator for one round, derived from the learner's seed and the round number."""
    return np.random.default_rng(np.random.SeedSequence([seed, round_index]))


class ActiveLearner:
    """Pool-based active learning with any model adapter, strategy and candidate pool.

    Parameters
    ----------
    pool : Pool
        The items.
    model : object
        A model adapter (:class:`~raresift.models.SklearnModel`,
        :class:`~raresift.models.TorchModel` or anything with ``fit(X, y)`` and
        ``predict_proba(X)``). It is fitted on every labeled item except ``validation_ids``.
        Strategies see it through a thin proxy that times its method calls (``seconds_features``).
    strategy : Strategy or str
        A strategy object, or a registered name such as ``"entropy"``.
    candidates : CandidatePool, optional
        Which unlabeled items are eligible; defaults to :class:`~raresift.candidates.AllCandidates`.
    labels : Labels, optional
        Seed labels (copied). Items in ``query_ids``, ``conditioning_ids`` and ``validation_ids``
        must be labeled.
    query_ids, conditioning_ids : array-like of ids, optional
        SIMILAR's query set Q and conditioning set P; both may grow between rounds
        (:meth:`add_query_ids`, :meth:`add_conditioning_ids`, or assign the properties).
    validation_ids : array-like of ids, optional
        Labeled items held out of training (Fisher's validation set; a held-out query set).
    seed : int
        Round ``r`` selects with a generator seeded by ``(seed, r)``: same seed, same batches.
    use_items : bool
        Feed the model the pool's raw items instead of its embeddings.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from raresift.models import SklearnModel
    >>> X = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> learner = ActiveLearner(Pool(X), SklearnModel(LogisticRegression(), 2), "entropy",
    ...                         labels=Labels([0, 1, 2, 3], y[:4]))
    >>> records = learner.run(ArrayOracle(y), rounds=3, budget=5)
    >>> [r["n_labeled"] for r in records]
    [9, 14, 19]
    """

    def __init__(
        self,
        pool: Pool,
        model: Any,
        strategy: Strategy | str = "entropy",
        candidates: CandidatePool | None = None,
        labels: Labels | None = None,
        query_ids: Any = None,
        conditioning_ids: Any = None,
        validation_ids: Any = None,
        seed: int = 0,
        use_items: bool = False,
    ):
        if not isinstance(pool, Pool):
            raise ValidationError(f"pool must be a raresift Pool, got {type(pool).__name__}")
        if not hasattr(model, "fit") or not hasattr(model, "predict_proba"):
            raise ValidationError(
                "model needs fit(X, y) and predict_proba(X); wrap estimators in SklearnModel "
                "and networks in TorchModel"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError(f"seed must be a non-negative integer, got {seed!r}")
        self.pool = pool
        self.model = model
        self.strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
        if not callable(getattr(self.strategy, "select", None)):
            raise ValidationError("strategy must be a name or an object with select()")
        requires = getattr(self.strategy, "requires", None)
        if callable(requires):
            name = getattr(self.strategy, "name", type(self.strategy).__name__)
            check_capabilities(f"strategy {name!r}", requires(), model)
        self.candidates = AllCandidates() if candidates is None else candidates
        self.seed = int(seed)
        self.use_items = use_items
        self.labels = Labels() if labels is None else Labels.coerce(labels)
        if len(self.labels):
            pool.positions(self.labels.ids)  # unknown seed ids raise here
            self._check_label_range(self.labels.values)
        self.round = 0
        self._fitted_on: int | None = None  # Labels.version the model was last fitted at
        self.last_query_seconds: dict[str, float] = {}
        self._validation_ids = self._labeled_subset(validation_ids, "validation_ids")
        self._query_ids = self._labeled_subset(query_ids, "query_ids")
        self._conditioning_ids = self._labeled_subset(conditioning_ids, "conditioning_ids")
        self.candidates.start(pool, self.labels)
        if getattr(self.candidates, "expand", None) == "item" and not isinstance(
            self.strategy, ScoringStrategy
        ):
            logger.info(
                "strategy %r chooses whole sets, not items one by one: the SEALS pool grows "
                "after the batch is labeled, not after each pick",
                getattr(self.strategy, "name", type(self.strategy).__name__),
            )

    # ------------------------------------------------------------ id sets
    def _labeled_subset(self, ids: Any, name: str) -> np.ndarray | None:
        if ids is None:
            return None
        ids = np.unique(as_ids(ids, name))
        self.pool.positions(ids)
        unlabeled = ids[~self.labels.mask(ids)]
        if unlabeled.size:
            raise ValidationError(
                f"{name} must be labeled items, but {unlabeled.size} are not "
                f"(e.g. {unlabeled[:5].tolist()}); pass their labels in labels= or teach() them"
            )
        return ids

    @property
    def query_ids(self) -> np.ndarray | None:
        """SIMILAR's query set Q (labeled ids), or None."""
        return self._query_ids

    @query_ids.setter
    def query_ids(self, ids: Any) -> None:
        self._query_ids = self._labeled_subset(ids, "query_ids")

    @property
    def conditioning_ids(self) -> np.ndarray | None:
        """SIMILAR's conditioning set P (labeled ids), or None."""
        return self._conditioning_ids

    @conditioning_ids.setter
    def conditioning_ids(self, ids: Any) -> None:
        self._conditioning_ids = self._labeled_subset(ids, "conditioning_ids")

    @property
    def validation_ids(self) -> np.ndarray | None:
        """Labeled ids held out of training, or None."""
        return self._validation_ids

    def add_query_ids(self, ids: Any) -> None:
        """Grow the query set (e.g. newly labeled in-distribution items in SIMILAR's OOD setup)."""
        self.query_ids = _union(self._query_ids, as_ids(ids, "query_ids"))

    def add_conditioning_ids(self, ids: Any) -> None:
        """Grow the conditioning set (e.g. newly labeled OOD items)."""
        self.conditioning_ids = _union(self._conditioning_ids, as_ids(ids, "conditioning_ids"))

    # ------------------------------------------------------------ training
    @property
    def training_ids(self) -> np.ndarray:
        """Labeled ids the model is fitted on (all labeled items but the validation set)."""
        ids = self.labels.ids
        if self._validation_ids is not None:
            ids = ids[~np.isin(ids, self._validation_ids)]
        return ids

    def _state(self, rng: np.random.Generator, model: Any = None) -> SelectionState:
        return SelectionState(
            pool=self.pool,
            labels=self.labels,
            model=model,
            rng=rng,
            round=self.round,
            query_ids=self._query_ids,
            conditioning_ids=self._conditioning_ids,
            validation_ids=self._validation_ids,
            use_items=self.use_items,
        )

    def fit(self) -> ActiveLearner:
        """Fit the model on the training labels; returns self."""
        ids = self.training_ids
        if ids.size == 0:
            raise ValidationError(
                "no labeled items to train on; pass seed labels or teach() some first"
            )
        inputs = self._state(_round_rng(self.seed, self.round)).inputs(ids)
        self.model.fit(inputs, self.labels.of(ids))
        self._fitted_on = self.labels.version
        return self

    @property
    def is_fitted(self) -> bool:
        """Whether the model reflects every label taught so far, relabelings included."""
        return self._fitted_on == self.labels.version

    # ------------------------------------------------------------ the round
    def query(self, budget: int) -> Batch:
        """Choose ``budget`` eligible items to label next. Labels nothing.

        Fits the model first if labels arrived since the last fit. The strategy selects from a
        read-only view of the candidate pool, so calling it any number of times without teaching
        returns the same batch and changes no pool. Afterwards :attr:`last_query_seconds` holds
        the seconds spent on ``training``, model ``features`` (any model method a strategy
        called) and the rest of ``selection``.
        """
        return self._query(budget)[0]

    def _query(self, budget: int) -> tuple[Batch, dict[str, float]]:
        if isinstance(self.candidates, SEALSCandidates) and not len(self.labels):
            raise BudgetError(
                "SEALS draws its candidates from the labeled items' nearest neighbours, and "
                "nothing is labeled yet; pass seed labels (labels=...) or teach() some first"
            )
        budget = check_budget(budget, len(self.candidates), "eligible candidates")
        seconds = {"training": 0.0, "features": 0.0, "selection": 0.0}
        if not self.is_fitted and self.training_ids.size:
            start = time.perf_counter()
            self.fit()
            seconds["training"] = time.perf_counter() - start
        timed = _TimedModel(self.model) if self.is_fitted else None
        state = self._state(_round_rng(self.seed, self.round), timed)
        start = time.perf_counter()
        batch = self.strategy.select(state, self.candidates.view(), budget)
        elapsed = time.perf_counter() - start
        seconds["features"] = timed.seconds if timed is not None else 0.0
        seconds["selection"] = elapsed - seconds["features"]
        self._check_batch(batch, budget)
        self.last_query_seconds = seconds
        logger.debug("round %d: %s picked %d items", self.round, batch.strategy, len(batch))
        return batch, seconds

    def _check_batch(self, batch: Batch, budget: int) -> None:
        name = getattr(self.strategy, "name", type(self.strategy).__name__)
        if len(batch) != budget or np.unique(batch.ids).size != budget:
            raise ValidationError(
                f"strategy {name!r} returned {len(batch)} ids ({np.unique(batch.ids).size} "
                f"distinct) for a budget of {budget}"
            )
        self.pool.positions(batch.ids)
        if self.labels.mask(batch.ids).any():
            raise ValidationError(f"strategy {name!r} picked items that are already labeled")

    def _check_label_range(self, labels: Any) -> None:
        """Labels must be class indices the model has, 0..n_classes-1 (the adapters' check)."""
        n_classes = getattr(self.model, "n_classes", None)
        values = np.asarray(labels)
        if isinstance(n_classes, int) and values.ndim == 1:
            check_labels(values, values.size, n_classes)

    def teach(self, ids: Any, labels: Any, overwrite: bool = False) -> np.ndarray:
        """Record answers for ``ids``; returns the ids that were new.

        Raises :class:`~raresift.errors.UnknownIdError` for ids outside the pool and
        :class:`~raresift.errors.ValidationError` for an item already labeled differently,
        unless ``overwrite=True`` (a correction: the next :meth:`query` refits). Re-teaching an
        item its existing label is allowed and changes nothing.
        """
        ids = as_ids(ids)
        self.pool.positions(ids)
        self._check_label_range(labels)
        new = ~self.labels.mask(ids)
        self.labels.add(ids, labels, overwrite=overwrite)  # shape, duplicates, conflicts
        new_ids = ids[new]
        if new_ids.size:
            self.candidates.update(new_ids)
            self.round += 1
        return new_ids

    def run(
        self,
        oracle: Callable[[np.ndarray], Any] | Any,
        rounds: int,
        budget: int,
        callback: Callable[[ActiveLearner, Batch], dict | None] | None = None,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Simulate ``rounds`` rounds: query ``budget`` items, ask the oracle, teach, refit.

        ``oracle`` maps ids to labels (or is an array of labels aligned with ``pool.ids``).
        ``callback(learner, batch)`` runs after the refit; the dict it returns joins the record.

        Returns one record per round with ``round``, ``n_labeled``, ``n_candidates``,
        ``batch_ids``, ``batch_labels`` (the oracle's answers), ``selected_by`` (the batch's
        ``strategy``: the function that chose it), ``seconds_training``,
        ``seconds_features``, ``seconds_selection``. When fewer than ``budget`` candidates are
        left, the run stops there with a warning and returns the rounds it finished.
        """
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
            raise ValidationError(f"rounds must be a non-negative integer, got {rounds!r}")
        check_budget(budget, len(self.pool))
        if not callable(oracle):
            oracle = ArrayOracle(oracle, ids=self.pool.ids)
        records = []
        for _ in tqdm(range(rounds), desc="active learning", disable=not progress):
            round_index = self.round
            n_candidates = len(self.candidates)
            if records and n_candidates < budget:
                logger.warning(
                    "stopping after %d of %d rounds: %d candidates left for a budget of %d",
                    len(records), rounds, n_candidates, budget,
                )  # fmt: skip
                break
            batch, seconds = self._query(budget)
            answers = np.asarray(oracle(batch.ids))
            self.teach(batch.ids, answers)
            start = time.perf_counter()
            self.fit()
            seconds["training"] += time.perf_counter() - start
            record: dict[str, Any] = {
                "round": round_index,
                "n_labeled": len(self.labels),
                "n_candidates": n_candidates,
                "batch_ids": batch.ids.copy(),
                "batch_labels": answers.copy(),
                "selected_by": batch.strategy,
                **{f"seconds_{k}": v for k, v in seconds.items()},
            }
            if callback is not None:
                metrics = callback(self, batch)
                if metrics:
                    record.update(metrics)
            records.append(record)
        return records
