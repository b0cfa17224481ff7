"""What the model adapters share: label validation and the last-layer gradient embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.errors import ValidationError

#: The most classes a model infers from its labels (``n_classes=None``); more must be declared.
MAX_INFERRED_CLASSES = 100_000


def check_labels(y: Any, n_items: int, n_classes: int | None = None) -> np.ndarray:
    """Return ``y`` as int64 class indices, one per item, each in ``[0, n_classes)``."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n_items:
        raise ValidationError(
            f"labels must be a 1-d array with one entry per item ({n_items}), got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.bool_) or (
            np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise ValidationError(f"labels must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValidationError("labels must be non-negative class indices")
    if n_classes is None and arr.size and arr.max() >= MAX_INFERRED_CLASSES:
        raise ValidationError(
            f"label {int(arr.max())} would make the model infer {int(arr.max()) + 1} classes "
            f"(one probability column each); labels are class indices 0..K-1: map them to "
            f"0..K-1, or pass n_classes= if there really are more than {MAX_INFERRED_CLASSES:,}"
        )
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise ValidationError(
            f"label {int(arr.max())} is out of range for a model with {n_classes} classes; "
            f"use labels 0..{n_classes - 1} or build the model with more classes"
        )
    return arr


def last_layer_residuals(proba: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """``p - onehot(y)`` per item (float32), with ``y`` the argmax of ``p`` when ``labels`` is None.

    This is the cross-entropy gradient w.r.t. the logits, i.e. w.r.t. the last layer's bias.
    """
    residual = proba.astype(np.float32, copy=True)
    y = proba.argmax(axis=1) if labels is None else labels
    residual[np.arange(proba.shape[0]), y] -= 1.0
    return residual


def gradient_layout(residuals: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Assemble gradient embeddings ``[r, r_0 e, ..., r_{K-1} e]`` from their two factors.

    The row is the bias gradient followed by the weight gradient in the layer's (K, D) row-major
    order: K (D + 1) values. Inner products need not build it:
    ``<g_i, g_j> = (r_i . r_j) (1 + e_i . e_j)``.
    """
    n = residuals.shape[0]
    weights = residuals[:, :, None] * features.astype(np.float32, copy=False)[:, None, :]
    return np.concatenate([residuals, weights.reshape(n, -1)], axis=1)


def last_layer_gradients(
    proba: np.ndarray, features: np.ndarray, labels: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of the cross-entropy w.r.t. a final linear layer, one row per item.

    With softmax ``p`` (K classes), penultimate features ``e`` (D values) and label ``y`` (the
    argmax of ``p`` when ``labels`` is None), the row is
    ``[p - onehot(y), (p_0 - [y = 0]) e, ..., (p_{K-1} - [y = K-1]) e]``, K (D + 1) values: the
    bias gradient followed by the weight gradient in the layer's (K, D) row-major order.

    >>> g = last_layer_gradients(np.array([[0.75, 0.25]]), np.array([[2.0]]))
    >>> g.tolist()
    [[-0.25, 0.25, -0.5, 0.5]]
    """
    return gradient_layout(last_layer_residuals(proba, labels), features)
