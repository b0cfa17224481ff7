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

_WIDEN_ELEMENTS = 1 << 18  # float16 values widened at a time (a 1 MiB float32 block: in cache)
# float16 -> float32 by bits: a half's sign, exponent and mantissa shifted into a float32's
# places (the int16 widened with its sign, shifted left by 13, the copies of the sign in bits
# 28-30 cleared) is the value times 2^-112, exactly, subnormals included
_HALF_BITS = np.int32(np.uint32(0x8FFFE000).view(np.int32))
_HALF_SCALE = np.float32(2.0**112)


def widen_rows(rows: np.ndarray) -> int:
    """Rows widened at a time by :class:`LinearScorer` (``2**18`` values: 4096 rows of 64)."""
    return max(1, _WIDEN_ELEMENTS // max(1, rows.shape[1]))


class LinearScorer:
    """``X @ w`` in float32 for float16 or float32 rows, each row's dot product on its own
    (``np.einsum("ij,j->i", X, w)``): a row scores the same to the last bit in any block, alone
    or among millions, gathered or sliced (BLAS' matrix-vector product does not promise that:
    its tail rows take other kernels).

    Float16 rows are widened without torch and without numpy's half-to-float cast (scalar,
    about 1.3 ns a value) through one reused buffer: three integer passes over the block's bits
    give the exact float32 values scaled by 2^-112 (finite rows only, as every pool's are), and
    the weights carry the 2^112, so each product, and so every sum, is bit for bit what
    the same dot products over ``rows.astype(np.float32)`` give.

    >>> rows = np.array([[1.5, -2.0], [6e-8, 65504.0]], dtype=np.float16)
    >>> scorer = LinearScorer(np.array([2.0, 1.0], dtype=np.float32))
    >>> widened = np.einsum("ij,j->i", rows.astype(np.float32), scorer.w)
    >>> scorer.decide(rows).tolist() == widened.tolist()
    True
    """

    def __init__(self, w: np.ndarray):
        self.w = np.ascontiguousarray(w, dtype=np.float32).ravel()
        with np.errstate(over="ignore"):
            scaled = self.w * _HALF_SCALE
        # weights beyond 2^16 would overflow once scaled: scale the widened block instead
        self._scaled = scaled if np.all(np.isfinite(scaled)) else None
        self._bits: np.ndarray | None = None

    def decide(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``rows @ w`` (float32, (len(rows),)) for float16 or float32 ``rows``; written into
        ``out`` when given."""
        n = rows.shape[0]
        if out is None:
            out = np.empty(n, dtype=np.float32)
        if rows.dtype != np.float16:
            return np.einsum("ij,j->i", rows, self.w, out=out)
        step = widen_rows(rows)
        if self._bits is None or self._bits.shape[1] != rows.shape[1]:
            self._bits = np.empty((min(step, max(n, 1)), rows.shape[1]), dtype=np.int32)
        for lo in range(0, n, step):
            half = rows[lo : lo + step].view(np.int16)
            if half.shape[0] > self._bits.shape[0]:
                self._bits = np.empty((half.shape[0], rows.shape[1]), dtype=np.int32)
            bits = self._bits[: half.shape[0]]
            np.copyto(bits, half)  # the sign copied into bits 15-31
            np.left_shift(bits, 13, out=bits)
            np.bitwise_and(bits, _HALF_BITS, out=bits)
            values = bits.view(np.float32)
            if self._scaled is None:
                np.multiply(values, _HALF_SCALE, out=values)
                np.einsum("ij,j->i", values, self.w, out=out[lo : lo + half.shape[0]])
            else:
                np.einsum("ij,j->i", values, self._scaled, out=out[lo : lo + half.shape[0]])
        return out


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
        as scikit-learn scores them; float32 and float16 rows by float32 dot products
        (:class:`LinearScorer`: a single read of X, no float64 copy)."""
        coef, intercept = self.estimator_.coef_, self.estimator_.intercept_
        if X.dtype == np.float64:
            return (X @ coef.T + intercept).ravel()
        z = self.linear_scorer().decide(X).astype(np.float64)
        z += intercept[0]
        return z

    def linear_scorer(self) -> LinearScorer | None:
        """For a binary logistic regression, the :class:`LinearScorer` of its weights: the
        probability of class ``estimator_.classes_[1]`` of float16/float32 rows ``X`` is then
        ``expit(float64(scorer.decide(X)) + estimator_.intercept_[0])``, exactly as
        :meth:`predict_proba` computes it. None for any other model (or before two classes)."""
        if (
            getattr(self, "estimator_", None) is None
            or type(self.estimator_) is not LogisticRegression
            or self.estimator_.classes_.size != 2
        ):
            return None
        return LinearScorer(self.estimator_.coef_.ravel())

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
