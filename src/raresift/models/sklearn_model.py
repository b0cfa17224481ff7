"""Adapter for scikit-learn classifiers on embeddings (logistic regression is SEALS' model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from raresift.errors import ValidationError
from raresift.models.base import check_labels, gradient_layout, last_layer_residuals
from raresift.pool import check_matrix


class SklearnModel:
    """Wrap any estimator with ``predict_proba`` so it always answers over ``n_classes`` columns.

    Parameters
    ----------
    estimator : scikit-learn classifier
        Cloned afresh at every :meth:`fit`, so the given object is never modified.
    n_classes : int, optional
        Number of classes. Columns of :meth:`predict_proba` are class indices ``0..n_classes-1``
        even when some classes have no labels yet (their probability is 0). Defaults to the
        largest label seen plus one.

    While only one class has been labeled, the model predicts that class with probability 1
    instead of failing as most estimators would.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = SklearnModel(LogisticRegression(), n_classes=3)
    >>> X = np.array([[0.0], [1.0], [4.0], [5.0]])
    >>> model.fit(X, [0, 0, 2, 2]).predict_proba(X).shape
    (4, 3)
    >>> float(model.predict_proba(X)[:, 1].max())
    0.0
    """

    provides = frozenset({"probabilities", "gradient_embeddings"})

    def __init__(self, estimator: Any, n_classes: int | None = None):
        if not hasattr(estimator, "fit") or not hasattr(estimator, "predict_proba"):
            raise ValidationError(
                f"{type(estimator).__name__} has no fit/predict_proba; pass a probabilistic "
                "classifier such as LogisticRegression() (or SVC(probability=True))"
            )
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 1):
            raise ValidationError(f"n_classes must be a positive integer, got {n_classes!r}")
        self.estimator = estimator
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any) -> SklearnModel:
        """Fit a fresh clone of the estimator on ``X`` (n, d) and integer labels ``y``."""
        X = check_matrix(X, "X")
        y = check_labels(y, X.shape[0], self.n_classes)
        self.n_classes_ = self.n_classes if self.n_classes is not None else int(y.max()) + 1
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        if self.classes_.size == 1:
            self.estimator_ = None
        else:
            self.estimator_ = clone(self.estimator).fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns aligned to class index."""
        X = self._check_input(X)
        out = np.zeros((X.shape[0], self.n_classes_), dtype=np.float64)
        if self.estimator_ is None:
            out[:, self.classes_[0]] = 1.0
        elif type(self.estimator_) is LogisticRegression and self.estimator_.classes_.size == 2:
            # scikit-learn's own formula without its per-call validation (X is checked above),
            # which dominates when SEALS scores a few dozen newcomers at a time
            positive = expit((X @ self.estimator_.coef_.T + self.estimator_.intercept_).ravel())
            out[:, self.estimator_.classes_[0]] = 1 - positive
            out[:, self.estimator_.classes_[1]] = positive
        else:
            out[:, self.estimator_.classes_] = self.estimator_.predict_proba(X)
        return out

    def gradient_factors(self, X: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The two factors of :meth:`gradient_embeddings`: residuals ``p - onehot(y)`` (n, K)
        and features (here the inputs themselves, (n, d)), both float32."""
        X = self._check_input(X)
        if labels is not None:
            labels = check_labels(labels, X.shape[0], self.n_classes_)
        residuals = last_layer_residuals(self.predict_proba(X), labels)
        return residuals, np.asarray(X, dtype=np.float32)

    def gradient_embeddings(self, X: Any, labels: Any = None) -> np.ndarray:
        """Last-layer gradient embeddings with the inputs themselves as features.

        Exact for a multinomial linear softmax model (logistic regression); for other estimators
        it is the gradient a linear softmax head on ``X`` would see. Layout as in
        :func:`~raresift.models.base.last_layer_gradients`: (n, K (d + 1)); labels default to
        the hypothesised (argmax) ones.
        """
        return gradient_layout(*self.gradient_factors(X, labels))

    def _check_input(self, X: Any) -> np.ndarray:
        if not hasattr(self, "n_classes_"):
            raise ValidationError("this model is not fitted yet; call fit(X, y) first")
        return check_matrix(X, "X", dim=self.n_features_in_, allow_empty=True)

    def __repr__(self) -> str:
        return f"SklearnModel({self.estimator!r}, n_classes={self.n_classes!r})"
