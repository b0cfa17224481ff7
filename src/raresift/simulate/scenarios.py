"""Realistic active-learning scenarios built from any labeled data set (SIMILAR, papers/000).

Each builder draws, for one seed, the initial labeled set, the unlabeled pool, the query /
conditioning / validation sets and the test set, and returns a :class:`Scenario` that the runner
drives. Same inputs and seed, same scenario. Sizes follow papers/000 Tables 3-5 (scaled down by
default so that a study runs on a laptop CPU):

- :func:`standard_scenario`: balanced labeled and unlabeled sets, no query set.
- :func:`rare_classes_scenario` (Table 3): rare classes have ``imbalance`` times fewer unlabeled
  items; the query set R is a small held-out set of rare-class examples (held out of training).
- :func:`redundancy_scenario` (Table 4): a fraction of the unique unlabeled items appears
  ``redundancy`` times each; copies get their own ids but share ``origin``. The conditioning set is
  the labeled set and grows with it (SIMILAR's SCG recipe).
- :func:`out_of_distribution_scenario` (Table 5): the first classes are in-distribution, the rest
  map to one extra "OOD" model class that is ignored at test time. The query set I starts as a
  small labeled validation set of in-distribution items, the conditioning set O starts empty; after
  every round I grows with the newly labeled in-distribution items and O with the OOD ones.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X, y = rng.random((600, 4)), np.repeat(np.arange(6), 100)
>>> s = rare_classes_scenario(X, y, X, y, rare_classes=[4, 5], labeled_per_class=5,
...                           labeled_per_rare_class=1, unlabeled_per_class=40, imbalance=10,
...                           query_per_rare_class=2, seed=0)
>>> s.n_unlabeled, len(s.query_ids), s.unlabeled_class_counts().tolist()
(168, 4, [40, 40, 40, 40, 4, 4])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raresift.errors import ValidationError
from raresift.loop import ArrayOracle
from raresift.models.base import check_labels
from raresift.pool import Labels, Pool, as_ids

SCENARIO_KINDS = ("standard", "rare-classes", "redundancy", "out-of-distribution")


@dataclass
class Scenario:
    """One simulated active-learning problem.

    Attributes
    ----------
    kind : str
        One of :data:`SCENARIO_KINDS` (the class studies), or "binary-concept"
        (:meth:`raresift.simulate.concepts.BinaryConcept.scenario`: one rare concept, 0/1).
    pool : Pool
        Every item the learner sees (initial labeled, held-out query items and unlabeled items);
        in the class studies its ids are ``0 .. n-1``.
    oracle : ArrayOracle
        Answers queries with the model-class label of pool items: ``oracle(ids)``;
        ``oracle.labels`` holds every item's label, aligned with ``pool.ids``.
    labels : Labels
        What is known at the start: the initial labeled set plus the validation / query items.
    unlabeled_ids : np.ndarray
        The pool items the strategies may pick.
    test_X, test_y : np.ndarray
        Test inputs (same feature space as the pool) and their model-class labels.
    n_classes : int
        Output classes of the model (one more than the data's in the OOD scenario).
    class_names : list of str
        Names of the model classes.
    eval_classes : np.ndarray
        Model classes scored at test time (the in-distribution classes for OOD, else all);
        predictions are the argmax over these columns only.
    rare_classes : np.ndarray
        Model classes that count as rare (for rare-class accuracy and selection counts).
    origin : np.ndarray or None
        For each pool item, the index of the data item it copies (redundancy); "unique items
        selected" counts distinct origins. None when items copy nothing (binary concepts).
    query_ids, conditioning_ids, validation_ids : np.ndarray or None
        SIMILAR's Q and P, and the labeled items held out of training.
    query_growth, conditioning_growth : np.ndarray of bool, shape (n_classes,)
        After every round, newly labeled items of class c join Q if ``query_growth[c]`` and P if
        ``conditioning_growth[c]``.
    index : NeighborIndex or None
        A k-NN index over ``pool`` that SEALS candidate pools use (binary concepts share one
        across tasks); without it a SEALS pool builds its own.
    info : dict
        The sizes, for reports.
    """

    kind: str
    pool: Pool
    oracle: ArrayOracle
    labels: Labels
    unlabeled_ids: np.ndarray
    test_X: np.ndarray
    test_y: np.ndarray
    n_classes: int
    class_names: list[str]
    eval_classes: np.ndarray
    rare_classes: np.ndarray
    origin: np.ndarray | None
    query_ids: np.ndarray | None = None
    conditioning_ids: np.ndarray | None = None
    validation_ids: np.ndarray | None = None
    query_growth: np.ndarray | None = None
    conditioning_growth: np.ndarray | None = None
    index: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_unlabeled(self) -> int:
        """Number of items the strategies may pick from at the start."""
        return int(self.unlabeled_ids.size)

    def unlabeled_class_counts(self) -> np.ndarray:
        """Items per model class in the unlabeled pool."""
        return np.bincount(self.oracle(self.unlabeled_ids), minlength=self.n_classes)

    def growth(self, ids: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        """Which of the newly labeled ``ids`` join the query set and which the conditioning set."""
        ids, labels = as_ids(ids), np.asarray(labels, dtype=np.int64)
        empty = np.empty(0, dtype=np.int64)
        to_query = ids[self.query_growth[labels]] if self.query_growth is not None else empty
        to_cond = (
            ids[self.conditioning_growth[labels]] if self.conditioning_growth is not None else empty
        )
        return to_query, to_cond


# --------------------------------------------------------------------------- helpers
def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_data(X: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValidationError(
            f"{name}: need X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}"
        )
    try:
        return X, check_labels(y, X.shape[0])
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc}") from None


def _n_classes(y: np.ndarray, test_y: np.ndarray, n_classes: int | None) -> int:
    found = int(max(y.max(initial=-1), test_y.max(initial=-1))) + 1
    if n_classes is None:
        return found
    if n_classes < found:
        raise ValidationError(f"n_classes={n_classes} but the labels go up to {found - 1}")
    return int(n_classes)


def take_per_class(
    y: np.ndarray, counts: np.ndarray, rng: np.random.Generator, available: np.ndarray | None = None
) -> np.ndarray:
    """Draw ``counts[c]`` distinct indices of class ``c`` for every class, without replacement.

    Raises :class:`ValidationError` naming the first class that has too few (available) items.

    >>> take_per_class(np.array([0, 0, 1, 1, 1]), np.array([1, 2]), np.random.default_rng(0)).size
    3
    """
    keys = rng.random(y.size)
    if available is not None:
        keys[~available] = np.inf
    order = np.lexsort((keys, y))  # by class, then by random key: unavailable items last
    starts = np.searchsorted(y[order], np.arange(counts.size))
    chosen = []
    for c, n in enumerate(counts.tolist()):
        if n == 0:
            continue
        block = order[starts[c] : starts[c] + n]
        if block.size < n or not np.isfinite(keys[block]).all() or (y[block] != c).any():
            have = int(((y == c) & (available if available is not None else True)).sum())
            raise ValidationError(
                f"class {c} has {have} items left but the scenario needs {n}; "
                "lower the per-class sizes or use a larger data set"
            )
        chosen.append(block)
    return np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)


def _class_mask(classes: Any, n_classes: int, name: str) -> np.ndarray:
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if classes.size and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValidationError(f"{name} must be class indices in [0, {n_classes}), got {classes}")
    if np.unique(classes).size != classes.size:
        raise ValidationError(f"{name} lists a class twice: {classes.tolist()}")
    mask = np.zeros(n_classes, dtype=bool)
    mask[classes] = True
    return mask


def _assemble(
    kind: str,
    X: np.ndarray,
    y_model: np.ndarray,
    parts: dict[str, np.ndarray],
    test_X: np.ndarray,
    test_y: np.ndarray,
    n_classes: int,
    class_names: list[str],
    rng: np.random.Generator,
    copies: int | np.ndarray = 1,
    **extra: Any,
) -> Scenario:
    """Build the pool from data indices: ``parts`` maps a role to indices into ``X``.

    Roles: "labeled" (initial training labels), "validation" (labeled, held out of training),
    "unlabeled" (repeated ``copies`` times each). Pool order is shuffled so that ids carry no
    information about roles or classes.
    """
    labeled, validation, unlabeled = parts["labeled"], parts["validation"], parts["unlabeled"]
    unlabeled_origin = np.repeat(unlabeled, copies)
    origin = np.concatenate([labeled, validation, unlabeled_origin])
    role = np.repeat([0, 1, 2], [labeled.size, validation.size, unlabeled_origin.size])
    perm = rng.permutation(origin.size)
    origin, role = origin[perm], role[perm]
    ids = np.arange(origin.size, dtype=np.int64)
    features = np.ascontiguousarray(X[origin], dtype=np.float32)
    pool = Pool(features, ids=ids)
    answers = y_model[origin]
    known = ids[role < 2]
    labels = Labels(known, answers[known])
    validation_ids = ids[role == 1]
    return Scenario(
        kind=kind,
        pool=pool,
        oracle=ArrayOracle(answers, ids=ids),
        labels=labels,
        unlabeled_ids=ids[role == 2],
        test_X=np.ascontiguousarray(test_X, dtype=np.float32),
        test_y=test_y,
        n_classes=n_classes,
        class_names=class_names,
        origin=origin,
        validation_ids=validation_ids if validation_ids.size else None,
        **extra,
    )


def _names(class_names: list[str] | None, n_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(n_classes)]
    if len(class_names) < n_classes:
        raise ValidationError(f"need {n_classes} class names, got {len(class_names)}")
    return list(class_names[:n_classes])


# --------------------------------------------------------------------------- builders
def standard_scenario(
    X: Any,
    y: Any,
    test_X: Any,
    test_y: Any,
    labeled_per_class: int = 10,
    unlabeled_per_class: int = 200,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> Scenario:
    """Balanced labeled and unlabeled sets; no query or conditioning set."""
    X, y = _check_data(X, y, "data")
    test_X, test_y = _check_data(test_X, test_y, "test data")
    n_classes = _n_classes(y, test_y, None)
    rng = np.random.default_rng(seed)
    labeled = take_per_class(
        y, np.full(n_classes, _check_count(labeled_per_class, "labeled_per_class", 1)), rng
    )
    left = np.ones(y.size, dtype=bool)
    left[labeled] = False
    n_unl = _check_count(unlabeled_per_class, "unlabeled_per_class", 1)
    unlabeled = take_per_class(y, np.full(n_classes, n_unl), rng, left)
    scenario = _assemble(
        "standard", X, y,
        {"labeled": labeled, "validation": np.empty(0, np.int64), "unlabeled": unlabeled},
        test_X, test_y, n_classes, _names(class_names, n_classes), rng,
        eval_classes=np.arange(n_classes), rare_classes=np.empty(0, np.int64),
    )  # fmt: skip
    scenario.info = {"labeled": int(labeled.size), "unlabeled": int(unlabeled.size)}
    return scenario


def rare_classes_scenario(
    X: Any,
    y: Any,
    test_X: Any,
    test_y: Any,
    rare_classes: Any = None,
    labeled_per_class: int = 22,
    labeled_per_rare_class: int = 3,
    unlabeled_per_class: int = 800,
    imbalance: int = 20,
    query_per_rare_class: int = 5,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> Scenario:
    """SIMILAR's rare-classes setting (papers/000 section 4.1, Table 3).

    Common classes get ``labeled_per_class`` labeled and ``unlabeled_per_class`` unlabeled items;
    rare classes ``labeled_per_rare_class`` and ``unlabeled_per_class // imbalance``. The query set
    R holds ``query_per_rare_class`` further items of every rare class: labeled, held out of
    training, and passed as both ``query_ids`` and ``validation_ids``. ``rare_classes`` defaults to
    the upper half of the classes (MNIST's 5..9 in the paper).
    """
    X, y = _check_data(X, y, "data")
    test_X, test_y = _check_data(test_X, test_y, "test data")
    n_classes = _n_classes(y, test_y, None)
    if rare_classes is None:
        rare_classes = np.arange(n_classes // 2, n_classes)
    rare = _class_mask(rare_classes, n_classes, "rare_classes")
    if not rare.any() or rare.all():
        raise ValidationError("rare_classes must name at least one class and leave one common")
    imbalance = _check_count(imbalance, "imbalance", 1)
    n_unl = _check_count(unlabeled_per_class, "unlabeled_per_class", 1)
    if n_unl // imbalance < 1:
        raise ValidationError(
            f"unlabeled_per_class={n_unl} with imbalance={imbalance} leaves no unlabeled rare "
            "items; raise unlabeled_per_class or lower imbalance"
        )
    rng = np.random.default_rng(seed)
    n_lab = np.where(
        rare,
        _check_count(labeled_per_rare_class, "labeled_per_rare_class"),
        _check_count(labeled_per_class, "labeled_per_class", 1),
    )
    labeled = take_per_class(y, n_lab, rng)
    left = np.ones(y.size, dtype=bool)
    left[labeled] = False
    n_query = _check_count(query_per_rare_class, "query_per_rare_class", 1)
    query = take_per_class(y, np.where(rare, n_query, 0), rng, left)
    left[query] = False
    unlabeled = take_per_class(y, np.where(rare, n_unl // imbalance, n_unl), rng, left)
    scenario = _assemble(
        "rare-classes", X, y, {"labeled": labeled, "validation": query, "unlabeled": unlabeled},
        test_X, test_y, n_classes, _names(class_names, n_classes), rng,
        eval_classes=np.arange(n_classes), rare_classes=np.flatnonzero(rare),
    )  # fmt: skip
    scenario.query_ids = scenario.validation_ids
    scenario.info = {
        "rare_classes": np.flatnonzero(rare).tolist(),
        "imbalance": imbalance,
        "labeled": int(labeled.size),
        "labeled_per_class": [int(labeled_per_class), int(labeled_per_rare_class)],
        "query_set": int(query.size),
        "unlabeled": int(unlabeled.size),
        "unlabeled_per_class": [n_unl, n_unl // imbalance],
    }
    return scenario


def redundancy_scenario(
    X: Any,
    y: Any,
    test_X: Any,
    test_y: Any,
    labeled: int = 50,
    unique_unlabeled: int = 500,
    duplicate_fraction: float = 0.2,
    redundancy: int = 10,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> Scenario:
    """SIMILAR's redundancy setting (papers/000 section 4.2, Table 4).

    ``labeled`` and ``unique_unlabeled`` items are drawn at random (disjoint); a
    ``duplicate_fraction`` of the unique unlabeled items then appears ``redundancy`` times each,
    so the pool holds ``unique * (1 - f) + unique * f * redundancy`` unlabeled items (the paper's
    5,000 unique, 20 %, 10x give 4,000 + 10,000). The conditioning set P is the labeled set and
    grows with every newly labeled item.
    """
    X, y = _check_data(X, y, "data")
    test_X, test_y = _check_data(test_X, test_y, "test data")
    n_classes = _n_classes(y, test_y, None)
    n_lab = _check_count(labeled, "labeled", 1)
    n_unique = _check_count(unique_unlabeled, "unique_unlabeled", 1)
    redundancy = _check_count(redundancy, "redundancy", 1)
    if not 0.0 <= float(duplicate_fraction) <= 1.0:
        raise ValidationError(f"duplicate_fraction must be in [0, 1], got {duplicate_fraction}")
    if n_lab + n_unique > y.size:
        raise ValidationError(
            f"labeled + unique_unlabeled = {n_lab + n_unique} exceeds the {y.size} data items"
        )
    rng = np.random.default_rng(seed)
    drawn = rng.permutation(y.size)[: n_lab + n_unique]
    labeled_idx, unlabeled_idx = drawn[:n_lab], drawn[n_lab:]
    n_dup = int(round(float(duplicate_fraction) * n_unique))
    copies = np.ones(n_unique, dtype=np.int64)
    copies[rng.permutation(n_unique)[:n_dup]] = redundancy
    scenario = _assemble(
        "redundancy", X, y,
        {"labeled": labeled_idx, "validation": np.empty(0, np.int64), "unlabeled": unlabeled_idx},
        test_X, test_y, n_classes, _names(class_names, n_classes), rng, copies=copies,
        eval_classes=np.arange(n_classes), rare_classes=np.empty(0, np.int64),
        conditioning_growth=np.ones(n_classes, dtype=bool),
    )  # fmt: skip
    scenario.conditioning_ids = scenario.labels.ids.copy()
    scenario.info = {
        "labeled": n_lab,
        "unique_unlabeled": n_unique,
        "duplicated_items": n_dup,
        "redundancy": redundancy,
        "unlabeled": int(copies.sum()),
    }
    return scenario


def out_of_distribution_scenario(
    X: Any,
    y: Any,
    test_X: Any,
    test_y: Any,
    n_in_distribution: int = 8,
    labeled_per_class: int = 5,
    validation_per_class: int = 2,
    unlabeled_per_class: int = 50,
    unlabeled_per_ood_class: int = 1000,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> Scenario:
    """SIMILAR's out-of-distribution setting (papers/000 section 4.3, Table 5).

    Classes ``0 .. n_in_distribution - 1`` are in-distribution (ID); all others become one model
    class ``n_in_distribution`` ("OOD"), so the model has ``n_in_distribution + 1`` outputs. The
    labeled set holds only ID items; the validation set (``validation_per_class`` per ID class,
    held out of training) is the initial query set I; the conditioning set O starts empty. After
    every round, newly labeled ID items join I and OOD items join O. The test set keeps ID items
    only and predictions ignore the OOD output.
    """
    X, y = _check_data(X, y, "data")
    test_X, test_y = _check_data(test_X, test_y, "test data")
    n_data_classes = _n_classes(y, test_y, None)
    n_id = _check_count(n_in_distribution, "n_in_distribution", 1)
    if n_id >= n_data_classes:
        raise ValidationError(
            f"n_in_distribution={n_id} leaves no OOD class among {n_data_classes} classes"
        )
    rng = np.random.default_rng(seed)
    is_id = np.arange(n_data_classes) < n_id
    labeled = take_per_class(
        y, np.where(is_id, _check_count(labeled_per_class, "labeled_per_class", 1), 0), rng
    )
    left = np.ones(y.size, dtype=bool)
    left[labeled] = False
    n_val = _check_count(validation_per_class, "validation_per_class", 1)
    validation = take_per_class(y, np.where(is_id, n_val, 0), rng, left)
    left[validation] = False
    n_unl = np.where(
        is_id,
        _check_count(unlabeled_per_class, "unlabeled_per_class"),
        _check_count(unlabeled_per_ood_class, "unlabeled_per_ood_class"),
    )
    unlabeled = take_per_class(y, n_unl, rng, left)
    y_model = np.minimum(y, n_id)
    keep = test_y < n_id
    names = _names(class_names, n_data_classes)[:n_id] + ["OOD"]
    id_mask = np.arange(n_id + 1) < n_id
    scenario = _assemble(
        "out-of-distribution", X, y_model,
        {"labeled": labeled, "validation": validation, "unlabeled": unlabeled},
        test_X[keep], test_y[keep], n_id + 1, names, rng,
        eval_classes=np.arange(n_id), rare_classes=np.empty(0, np.int64),
        query_growth=id_mask, conditioning_growth=~id_mask,
    )  # fmt: skip
    scenario.query_ids = scenario.validation_ids
    scenario.conditioning_ids = np.empty(0, dtype=np.int64)
    scenario.info = {
        "in_distribution_classes": list(range(n_id)),
        "labeled": int(labeled.size),
        "validation": int(validation.size),
        "unlabeled_in_distribution": int(n_unl[is_id].sum()),
        "unlabeled_ood": int(n_unl[~is_id].sum()),
        "unlabeled": int(unlabeled.size),
    }
    return scenario


BUILDERS = {
    "standard": standard_scenario,
    "rare-classes": rare_classes_scenario,
    "redundancy": redundancy_scenario,
    "out-of-distribution": out_of_distribution_scenario,
}
