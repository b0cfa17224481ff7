"""Uncertainty sampling: entropy, least confidence and margin of the model's class probabilities.

For a binary concept, entropy is SEALS' MaxEnt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.errors import ValidationError
from raresift.models.base import provides
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy

PROBA_BLOCK = 16_384  # items per model call: bounded temporaries, cache-sized input blocks


def predict_proba(state: SelectionState, ids: np.ndarray) -> np.ndarray:
    """The fitted model's class probabilities for ``ids``, checked for shape and finiteness.

    The model sees ``PROBA_BLOCK`` pool rows at a time, so scoring 10^8 candidates never gathers
    all their embeddings at once. Rows come straight from the pool (contiguous slices where the
    ids allow, :meth:`Pool.row_blocks`); a model with ``predict_proba_trusted`` gets them
    without re-checking what the pool validated when it was built.
    """
    if state.model is None:
        raise ValidationError("this strategy needs a fitted model; fit the learner first")
    ids = np.asarray(ids)
    if state.use_items or not len(ids):
        blocks = [(0, len(ids), state.inputs(ids), None)]
        predict = state.model.predict_proba
    else:
        blocks = state.pool.row_blocks(ids, PROBA_BLOCK)
        trusted = provides(state.model, "trusted_probabilities")  # no second validation pass
        predict = state.model.predict_proba_trusted if trusted else state.model.predict_proba
    out = None
    for start, stop, rows, take in blocks:
        proba = np.asarray(predict(rows), dtype=np.float64)
        if take is not None and proba.ndim == 2 and proba.shape[0] == rows.shape[0]:
            proba = proba[take]
        check_proba(proba, "the model's predict_proba")
        if proba.shape[0] != stop - start:
            raise ValidationError(
                f"the model's predict_proba returned {proba.shape[0]} rows for {stop - start} items"
            )
        if out is None:
            out = np.empty((len(ids), proba.shape[1]), dtype=np.float64)
        out[start:stop] = proba
    return out


_FEW_COLUMNS = 16  # up to this many classes, row-wise work runs column by column
_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; 1e-3 catches logits


def check_proba(proba: Any, name: str = "probabilities") -> np.ndarray:
    """``proba`` as a float array of shape (n_items, n_classes) whose rows are distributions
    (entries in [0, 1], each row summing to 1); otherwise :class:`ValidationError`.

    >>> check_proba([[0.2, 0.8]]).shape
    (1, 2)
    """
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValidationError(
            f"{name} must be 2-d (n_items x n_classes), got shape {arr.shape}; average MC "
            "samples or ensemble members first"
        )
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name} contain NaN or infinite values")
    sums = across_columns(np.add, arr)
    bad = (across_columns(np.minimum, arr) < -_SUM_TOLERANCE) | (
        np.abs(sums - 1.0) > _SUM_TOLERANCE
    )
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"{name} are not probabilities: row {row} sums to {sums[row]:.4g} (entries must lie "
            "in [0, 1] and sum to 1); apply a softmax to logits first"
        )
    return arr


def across_columns(ufunc: np.ufunc, arr: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(arr, axis=1)``, column by column when there are few columns (numpy's
    row-wise reduction of a handful of entries pays its inner-loop set-up on every row).

    >>> across_columns(np.add, np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [3.0, 7.0]
    """
    if arr.shape[1] > _FEW_COLUMNS or arr.shape[1] == 0:
        return ufunc.reduce(arr, axis=1)
    out = arr[:, 0].copy()
    for j in range(1, arr.shape[1]):
        ufunc(out, arr[:, j], out=out)
    return out


def entropy_scores(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities.

    >>> entropy_scores(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    proba = check_proba(proba)
    if proba.shape[1] > _FEW_COLUMNS:
        return np.abs((proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1))
    total = np.zeros(proba.shape[0])
    for j in range(proba.shape[1]):
        p = proba[:, j]
        total += p * np.log(np.clip(p, 1e-12, 1.0))
    return np.abs(total)


def least_confidence_scores(proba: np.ndarray) -> np.ndarray:
    """One minus the top class probability.

    >>> least_confidence_scores(np.array([[0.3, 0.7]])).round(2).tolist()
    [0.3]
    """
    return 1.0 - check_proba(proba).max(axis=1)


def margin_scores(proba: np.ndarray) -> np.ndarray:
    """One minus the gap between the two most probable classes, in [0, 1] (small gap, high
    score): scikit-activeml's convention; 0 for a single class.

    >>> margin_scores(np.array([[0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])).round(2).tolist()
    [1.0, 0.2, 0.0]
    """
    proba = check_proba(proba)
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


UNCERTAIN = "most uncertain ({name} {score:.3g})"  # the reason of an uncertainty pick


@register_strategy("entropy")
class EntropyStrategy(ScoringStrategy):
    """Pick the items whose predicted class distribution has the highest entropy (MaxEnt)."""

    reason_format = UNCERTAIN

    requirements = frozenset({"probabilities"})

    def score(self, state, ids):
        return entropy_scores(predict_proba(state, ids))


@register_strategy("least-confidence")
class LeastConfidenceStrategy(ScoringStrategy):
    """Pick the items whose most likely class is least likely."""

    reason_format = UNCERTAIN

    requirements = frozenset({"probabilities"})

    def score(self, state, ids):
        return least_confidence_scores(predict_proba(state, ids))


@register_strategy("margin")
class MarginStrategy(ScoringStrategy):
    """Pick the items with the smallest gap between the two most likely classes."""

    reason_format = UNCERTAIN

    requirements = frozenset({"probabilities"})

    def score(self, state, ids):
        return margin_scores(predict_proba(state, ids))
