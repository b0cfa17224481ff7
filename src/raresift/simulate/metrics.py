"""Per-round metrics of a simulated study.

Accuracy figures score the model on the scenario's test set; selection counts are cumulative over
every item picked since the start (the initial labeled set does not count).

Examples
--------
>>> import numpy as np
>>> proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
>>> predictions(proba, eval_classes=np.array([0, 1])).tolist()
[0, 1, 1]
>>> round(float(mean_class_accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]), [0])), 2)
0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from raresift.errors import ValidationError


def predictions(proba: np.ndarray, eval_classes: np.ndarray | None = None) -> np.ndarray:
    """Predicted class per row: the argmax over ``eval_classes`` columns only (all by default).

    The OOD scenario passes the in-distribution classes, so the "OOD" output is ignored at test
    time as in papers/000 section 4.3.
    """
    proba = np.asarray(proba)
    if proba.ndim != 2 or not np.all(np.isfinite(proba)):
        raise ValidationError("class probabilities must be a finite 2-d array")
    if eval_classes is None:
        return proba.argmax(axis=1)
    return np.asarray(eval_classes)[proba[:, eval_classes].argmax(axis=1)]


def accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    """Fraction of correct predictions."""
    return float(np.mean(predicted == y)) if y.size else float("nan")


def class_accuracies(predicted: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Accuracy per class (NaN for classes absent from ``y``)."""
    total = np.bincount(y, minlength=n_classes).astype(np.float64)
    correct = np.bincount(y[predicted == y], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def mean_class_accuracy(predicted: np.ndarray, y: np.ndarray, classes: Any) -> float:
    """Average of the per-class accuracies over ``classes`` (SIMILAR's "rare-class accuracy")."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0:
        return float("nan")
    n = int(max(y.max(initial=0), predicted.max(initial=0), classes.max())) + 1
    per_class = class_accuracies(predicted, y, n)[classes]
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")


def binary_average_precision(proba: np.ndarray, y: np.ndarray) -> float:
    """Average precision of the positive-class probability (column 1) for a binary concept."""
    if proba.shape[1] != 2:
        raise ValidationError("average precision needs a binary model (2 probability columns)")
    if not (y == 1).any():
        return float("nan")
    return float(average_precision_score(y == 1, proba[:, 1]))


def selection_counts(
    selected_ids: np.ndarray,
    oracle_labels: np.ndarray,
    origin: np.ndarray,
    rare_classes: np.ndarray,
    in_distribution_classes: np.ndarray | None,
) -> dict[str, int]:
    """Cumulative counts over everything selected so far.

    ``oracle_labels`` and ``origin`` are aligned with ``selected_ids``. Returns ``n_selected``,
    ``n_rare_selected`` (items of a rare class), ``n_unique_selected`` (distinct original items,
    so duplicates count once) and ``n_in_distribution_selected``.

    >>> selection_counts(np.array([3, 4, 5]), np.array([1, 1, 2]), np.array([7, 7, 8]),
    ...                  np.array([2]), np.array([1]))["n_unique_selected"]
    2
    """
    counts = {
        "n_selected": int(selected_ids.size),
        "n_rare_selected": int(np.isin(oracle_labels, rare_classes).sum()),
        "n_unique_selected": int(np.unique(origin).size),
    }
    if in_distribution_classes is not None:
        counts["n_in_distribution_selected"] = int(
            np.isin(oracle_labels, in_distribution_classes).sum()
        )
    return counts


def positive_recall(labeled_positive: int, total_positive: int) -> float:
    """Share of the pool's positives that have been labeled (SEALS' recall)."""
    return float(labeled_positive / total_positive) if total_positive else float("nan")


def labels_to_reach(n_labeled: np.ndarray, values: np.ndarray, target: float) -> float:
    """Fewest labels at which ``values`` first reaches ``target``; NaN if it never does.

    ``n_labeled`` and ``values`` describe one learning curve, in round order.

    >>> labels_to_reach(np.array([10, 20, 30]), np.array([0.5, 0.7, 0.9]), 0.7)
    20.0
    """
    reached = np.flatnonzero(np.asarray(values) >= target)
    return float(np.asarray(n_labeled)[reached[0]]) if reached.size else float("nan")


def evaluate(learner: Any, scenario: Any, selected: np.ndarray) -> dict[str, float | int]:
    """One round's figures: test accuracy (rare-class accuracy, average precision and recall
    where the scenario has them) and the cumulative counts of what ``selected`` holds."""
    proba = np.asarray(learner.model.predict_proba(scenario.test_X))
    predicted = predictions(proba, scenario.eval_classes)
    out: dict[str, Any] = {"accuracy": accuracy(predicted, scenario.test_y)}
    if scenario.rare_classes.size:
        out["rare_accuracy"] = mean_class_accuracy(
            predicted, scenario.test_y, scenario.rare_classes
        )
    positions = scenario.pool.positions(selected)
    selected_labels = scenario.oracle.labels[positions]
    in_distribution = scenario.eval_classes if scenario.kind == "out-of-distribution" else None
    out.update(
        selection_counts(
            selected, selected_labels, scenario.origin[positions], scenario.rare_classes,
            in_distribution,
        )
    )  # fmt: skip
    if scenario.n_classes == 2:
        out["average_precision"] = binary_average_precision(proba, scenario.test_y)
        positives = int((scenario.oracle(scenario.unlabeled_ids) == 1).sum())
        out["recall"] = positive_recall(int((selected_labels == 1).sum()), positives)
    if scenario.kind != "rare-classes":
        out.pop("n_rare_selected")
    if scenario.kind != "redundancy":
        out.pop("n_unique_selected")
    return out


def training_facts(model: Any) -> dict[str, Any]:
    """Training accuracy and epochs of torch models (did the fit reach its target?)."""
    facts = {}
    if hasattr(model, "train_accuracy_"):
        facts["train_accuracy"] = float(model.train_accuracy_)
    if hasattr(model, "n_epochs_"):
        facts["n_epochs"] = int(model.n_epochs_)
    return facts
