"""What the model adapters share: their capabilities, label validation and the last-layer
gradient embedding.

The representation stage: an adapter declares what it can give a strategy in ``provides``
(names of :data:`CAPABILITIES`); a strategy declares what it needs in ``requires()``; the
:class:`~raresift.loop.ActiveLearner` compares the two when it is built, so a mismatch is one
clear :class:`~raresift.errors.ConfigError` before any round, not an error mid-round.

>>> from sklearn.linear_model import LogisticRegression
>>> from raresift.models import SklearnModel
>>> sorted(model_provides(SklearnModel(LogisticRegression(), 2)))
['gradient_embeddings', 'gradient_factors', 'probabilities', 'trusted_probabilities']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.errors import ConfigError, ValidationError

#: What a model adapter may provide, and the method (or attribute) a strategy then calls. The
#: pool's own embeddings need no model and are always there.
CAPABILITIES = {
    "probabilities": "class probabilities, predict_proba(X)",
    "trusted_probabilities": "class probabilities of rows the pool already validated, "
    "predict_proba_trusted(X)",
    "penultimate": "penultimate features, penultimate(X)",
    "gradient_embeddings": "last-layer gradient embeddings, gradient_embeddings(X, labels)",
    "gradient_factors": "the two factors of the gradient embeddings, gradient_factors(X, labels)",
    "pooled_fisher": "pooled multi-scale descriptors and Fisher scores (a torch .network and "
    "network_inputs(X))",
    "dropout_samples": "MC-dropout samples, mc_dropout_proba(X, n_samples, seed)",
}
_HINTS = {
    "probabilities": "wrap estimators in SklearnModel and networks in TorchModel",
    "trusted_probabilities": "use SklearnModel",
    "penultimate": "use a TorchModel",
    "gradient_embeddings": "use SklearnModel or TorchModel (or representation='embedding' "
    "where the strategy has it)",
    "gradient_factors": "use SklearnModel or TorchModel",
    "pooled_fisher": "use a TorchModel",
    "dropout_samples": "use a TorchModel over a network with dropout, e.g. MLP(..., dropout=0.2)",
}
_METHODS = {
    "probabilities": "predict_proba",
    "trusted_probabilities": "predict_proba_trusted",
    "penultimate": "penultimate",
    "gradient_embeddings": "gradient_embeddings",
    "gradient_factors": "gradient_factors",
    "dropout_samples": "mc_dropout_proba",
}


def model_provides(model: Any) -> frozenset[str]:
    """The capabilities of ``model``: its declared ``provides``, else what its methods offer."""
    declared = getattr(model, "provides", None)
    if declared is not None:
        unknown = set(declared) - set(CAPABILITIES)
        if unknown:
            raise ConfigError(
                f"{type(model).__name__}.provides names unknown capabilities {sorted(unknown)}; "
                f"use names from {sorted(CAPABILITIES)}"
            )
        return frozenset(declared)
    found = {cap for cap, method in _METHODS.items() if callable(getattr(model, method, None))}
    if callable(getattr(getattr(model, "network", None), "named_modules", None)) and callable(
        getattr(model, "network_inputs", None)
    ):
        found.add("pooled_fisher")
    return frozenset(found)


def provides(model: Any, capability: str) -> bool:
    """Whether ``model`` provides ``capability`` (an optional one a strategy can use when it is
    there, e.g. ``gradient_factors``)."""
    return capability in model_provides(model)


def require_capability(model: Any, capability: str, who: str) -> None:
    """Raise :class:`ValidationError` unless ``model`` is fitted-and-given and provides
    ``capability``: the one check strategies make before they call a model method."""
    if model is None:
        raise ValidationError(
            f"{who} needs a fitted model with {CAPABILITIES[capability]}; fit the learner first"
        )
    if capability not in model_provides(model):
        raise ValidationError(
            f"{who} needs {CAPABILITIES[capability]}, which {type(model).__name__} does not "
            f"provide; {_HINTS[capability]}"
        )


def check_capabilities(who: str, required: frozenset[str], model: Any) -> None:
    """Raise :class:`ConfigError` if ``model`` lacks a capability ``who`` (a strategy) needs."""
    missing = sorted(set(required) - model_provides(model))
    if missing:
        raise ConfigError(
            f"{who} needs {'; '.join(CAPABILITIES[c] for c in missing)}, which "
            f"{type(model).__name__} does not provide; {'; '.join(_HINTS[c] for c in missing)}"
        )


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
