"""Adapter for scikit-learn classifiers on embeddings (logistic regression is SEALS' model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from raresift.errors import ValidationError
from raresift.models.base import check_labels, gradient_layout, last_layer_residuals
from raresift.params import HasMethods, Instance, Interval, Parameterized
from raresift.pool import check_matrix

_WIDEN_ROWS = 1024  # float16 rows widened to float32 at a time (stays in cache)


def _widener(buffer: np.ndarray):
    """``widen(rows)``: ``rows`` (float16) copied into the head of the float32 ``buffer``, which
    is returned. Through torch when it is installed (its half-to-float copy is vectorised, about
    three times numpy's), else numpy."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed with raresift's extras

        def widen(rows):
            out = buffer[: rows.shape[0]]
            np.copyto(out, rows, casting="same_kind")
            return out

        return widen
    target = torch.from_numpy(buffer)

    def widen(rows):
        target[: rows.shape[0]].copy_(torch.from_numpy(np.ascontiguousarray(rows)))
        return buffer[: rows.shape[0]]

    return widen


class SklearnModel(Parameterized):
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

    provides = frozenset(
        {"probabilities", "trusted_probabilities", "gradient_embeddings", "gradient_factors"}
    )
    parameter_constraints = {
        "estimator": [
            HasMethods(
                "fit",
                "predict_proba",
                what="a probabilistic classifier such as LogisticRegression() (or "
                "SVC(probability=True))",
            )
        ],
        "n_classes": [Interval(int, 1, None), Instance(None)],
    }

    def __init__(self, estimator: Any, n_classes: int | None = None):
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
        return self._proba(self._check_input(X))

    def predict_proba_trusted(self, X: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` for rows already validated (a :class:`~raresift.pool.Pool`'s
        embeddings, which the pool checked once when it was built): no finiteness pass, and
        float16 rows are widened a cache-sized block at a time, never as a whole copy."""
        if not hasattr(self, "n_classes_"):
            raise ValidationError("this model is not fitted yet; call fit(X, y) first")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValidationError(
                f"X has shape {X.shape}, expected (n, {self.n_features_in_}) features"
            )
        return self._proba(X)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], self.n_classes_), dtype=np.float64)
        if self.estimator_ is None:
            out[:, self.classes_[0]] = 1.0
        elif type(self.estimator_) is LogisticRegression and self.estimator_.classes_.size == 2:
            # scikit-learn's own formula without its per-call validation (X is checked by the
            # caller), which dominates when SEALS scores a few dozen newcomers at a time
            positive = expit(self._decision(X))
            out[:, self.estimator_.classes_[0]] = 1 - positive
            out[:, self.estimator_.classes_[1]] = positive
        else:
            if X.dtype == np.float16:
                X = X.astype(np.float32)
            out[:, self.estimator_.classes_] = self.estimator_.predict_proba(X)
        return out

    def _decision(self, X: np.ndarray) -> np.ndarray:
        """Binary logistic regression's ``X w + b`` (float64, (n,)). Float64 rows are scored
        as scikit-learn scores them; float32 rows by one float32 matrix-vector product (a
        single read of X, no float64 copy); float16 rows through a reused cache-sized float32
        buffer."""
        coef, intercept = self.estimator_.coef_, self.estimator_.intercept_
        if X.dtype == np.float64:
            return (X @ coef.T + intercept).ravel()
        w = coef.ravel().astype(np.float32)
        if X.dtype == np.float32:
            z = (X @ w).astype(np.float64)
        else:
            z = np.empty(X.shape[0], dtype=np.float64)
            step = _WIDEN_ROWS
            buffer = np.empty((min(step, X.shape[0]), X.shape[1]), dtype=np.float32)
            widen = _widener(buffer)
            for lo in range(0, X.shape[0], step):
                part = widen(X[lo : lo + step])
                z[lo : lo + part.shape[0]] = part @ w
        z += intercept[0]
        return z

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
