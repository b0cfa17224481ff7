"""Representer points (Yeh et al., 2018) and the IBAL importance score (papers/004).

A classifier whose last layer is linear, phi = f W, trained with loss (1/n) sum_i L(phi_i, y_i) +
lambda ||W||^2, satisfies at its optimum W = sum_i f_i alpha_i^T with
alpha_i = -1/(2 lambda n) dL/dphi_i, so every logit decomposes over the training items:

    phi(x_t) = sum_i alpha_i (f_i . f_t).

As the public representer-point code does, :class:`RepresenterPoints` refits the last layer on
the network's penultimate features f with the network's own softmax outputs as soft targets
(cross-entropy), so that the decomposition is exact for a model that behaves like the network.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from raresift.errors import ValidationError
from raresift.params import Instance, Interval, Parameterized
from raresift.pool import check_matrix

logger = logging.getLogger("raresift")


class RepresenterPoints(Parameterized):
    """Refit the last layer with L2 weight ``lam`` and keep each training item's alpha.

    Parameters
    ----------
    lam : float
        L2 weight lambda of the refitted layer (0.003 as in the representer-point reference).
    bias_feature : bool
        Append a constant 1 to the features so the refitted layer has an (also regularised) bias;
        the decomposition stays exact because the bias is just one more weight row.
    max_iter, tol : L-BFGS settings (float64).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(30, 4))
    >>> p = np.exp(f[:, :3]); p /= p.sum(1, keepdims=True)
    >>> rep = RepresenterPoints().fit(f, p)
    >>> np.allclose(rep.representer_logits(f[:2]), rep.logits(f[:2]), atol=1e-6)
    True
    """

    parameter_constraints = {
        "lam": [Interval(float, 0, None, "neither")],
        "bias_feature": [Instance(bool)],
        "max_iter": [Interval(int, 1, None)],
        "tol": [Interval(float, 0, None, "neither")],
    }

    def __init__(
        self, lam: float = 0.003, bias_feature: bool = True, max_iter: int = 500, tol: float = 1e-9
    ):
        self.lam = lam
        self.bias_feature = bias_feature
        self.max_iter = max_iter
        self.tol = tol

    def _augment(self, features) -> np.ndarray:
        f = np.asarray(features, dtype=np.float64)
        if self.bias_feature:
            f = np.hstack([f, np.ones((f.shape[0], 1))])
        return f

    def fit(self, features, target_proba) -> RepresenterPoints:
        """Refit W on ``features`` (n, D_f) against soft targets ``target_proba`` (n, C).

        Minimises (1/n) sum_i CE(softmax(f_i W), target_i) + lam ||W||^2 (convex) with
        L-BFGS in float64, starting from W = 0.
        """
        features = check_matrix(features, "features")
        targets = check_matrix(target_proba, "target_proba")
        if targets.shape[0] != features.shape[0]:
            raise ValidationError("features and target_proba need one row per item each")
        f = self._augment(features)
        y = np.asarray(targets, dtype=np.float64)
        n, shape = f.shape[0], (f.shape[1], y.shape[1])

        def objective(flat):
            w = flat.reshape(shape)
            logits = f @ w
            logp = logits - logsumexp(logits, axis=1, keepdims=True)
            loss = -(y * logp).sum() / n + self.lam * (w * w).sum()
            grad = f.T @ (np.exp(logp) - y) / n + 2 * self.lam * w
            return loss, grad.ravel()

        result = minimize(
            objective, np.zeros(shape[0] * shape[1]), jac=True, method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-15},
        )  # fmt: skip
        grad_norm = float(np.abs(result.jac).max())
        if grad_norm > 1e-6:
            logger.warning(
                "representer refit stopped with gradient %.2g; alphas are approximate", grad_norm
            )
        self.weight_ = result.x.reshape(shape)
        self.n_ = n
        self.features_ = f
        # alpha_i = -1/(2 lambda n) dL/dphi_i, and dL/dphi_i = softmax(phi_i) - target_i
        self.alpha_ = -(softmax(f @ self.weight_, axis=1) - y) / (2 * self.lam * n)
        return self

    def _check_fitted(self):
        if not hasattr(self, "weight_"):
            raise ValidationError("RepresenterPoints is not fitted; call fit(features, proba)")

    def logits(self, features) -> np.ndarray:
        """Logits of the refitted last layer, f W."""
        self._check_fitted()
        return self._augment(features) @ self.weight_

    def proba(self, features) -> np.ndarray:
        """Softmax of the refitted last layer."""
        return softmax(self.logits(features), axis=1)

    def representer_logits(self, features) -> np.ndarray:
        """The decomposition sum_i alpha_i (f_i . f_t) per target row; equals :meth:`logits`."""
        self._check_fitted()
        return (self._augment(features) @ self.features_.T) @ self.alpha_

    def representer_values(self, features) -> np.ndarray:
        """Per-item contributions: (n_targets, n_train, n_classes), summing to the logits."""
        self._check_fitted()
        sim = self._augment(features) @ self.features_.T
        return sim[:, :, None] * self.alpha_[None]

    def importance(self, features, proba, target_features) -> np.ndarray:
        """IBAL(x_i) = sum_{t} sum_y p(y | x_i) k(x_t, x_i, alpha_i | y) (papers/004, eq. 2).

        ``features`` and ``proba`` describe the unlabeled items x_i, ``target_features`` the
        labeled items x_t. raresift's reading of the open choices:

        - alpha_i | y is the alpha x_i would have as a training item with label y in the refit,
          -1/(2 lambda n) (s_i - onehot(y)) with s_i the refitted layer's softmax and n the number
          of items it was refitted on (``n_``);
        - k(x_t, x_i, alpha_i | y) is the representer value for class y, the y-th entry
          alpha_iy | y (f_i . f_t) = (1 - s_iy) / (2 lambda n) (f_i . f_t), signed (not absolute);
        - the sum over t is (f_i . sum_t f_t), so the cost is linear in both sets.

        Low values mark items least consistent with (least supported by) the labeled set.
        """
        self._check_fitted()
        f = self._augment(features)
        p = np.asarray(proba, dtype=np.float64)
        if p.shape != (f.shape[0], self.weight_.shape[1]):
            raise ValidationError(
                f"proba must be (n_items, {self.weight_.shape[1]}), got {tuple(p.shape)}"
            )
        s = softmax(f @ self.weight_, axis=1)
        weight = (p * (1 - s)).sum(axis=1) / (2 * self.lam * self.n_)
        return weight * (f @ self._augment(target_features).sum(axis=0))
