"""Importance-based active learning (papers/004, Pezeshkpour, Zhao and Singh).

- ``"ibal"``: pick the items with the smallest IBAL score (eq. 2), the representer-point importance
  an unlabeled item would have for the labeled items, weighted by the model's belief in each label
  (see :meth:`raresift.models.representer.RepresenterPoints.importance` for the exact reading).
- ``"ibal-d"``: pick the smallest IBAL - gamma D (eq. 4), D the max-normalised latent distance to
  the nearest labeled item under an autoencoder trained once on all items.
- ``"entropy-d"``: pick the largest Entropy + gamma D.

IBAL's scale depends on the feature norms and on 1/(2 lambda n); raresift divides it by its
largest absolute value over the candidates (``normalize=True``) so that gamma weighs two scores in
[-1, 1] and [0, 1]; the paper tunes gamma on a validation set instead.

The labeled set is every labeled item except the validation items (they are not training data).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from raresift.errors import ValidationError
from raresift.models.autoencoder import Autoencoder, distance_scores
from raresift.models.base import require_capability
from raresift.models.representer import RepresenterPoints
from raresift.params import Instance, Interval
from raresift.strategies.base import ScoringStrategy, SelectionState, register_strategy
from raresift.strategies.uncertainty import entropy_scores, predict_proba

logger = logging.getLogger("raresift")


def training_ids(state: SelectionState) -> np.ndarray:
    """Labeled ids that are training data (the validation items left out)."""
    ids = state.labels.ids
    if state.validation_ids is not None and len(state.validation_ids):
        ids = ids[~np.isin(ids, np.asarray(state.validation_ids))]
    if ids.size == 0:
        raise ValidationError("this strategy needs at least one labeled item; seed the learner")
    return ids


def ibal_scores(
    state: SelectionState, ids: np.ndarray, lam: float = 0.003, normalize: bool = True
) -> np.ndarray:
    """IBAL score of each candidate (low = least consistent with the labeled items)."""
    model = state.model
    require_capability(model, "penultimate", "IBAL")
    train = training_ids(state)
    train_f = np.asarray(model.penultimate(state.inputs(train)), dtype=np.float64)
    train_p = predict_proba(state, train)
    rep = RepresenterPoints(lam=lam).fit(train_f, train_p)
    cand_f = np.asarray(model.penultimate(state.inputs(ids)), dtype=np.float64)
    scores = rep.importance(cand_f, predict_proba(state, ids), train_f)
    if normalize:
        top = float(np.abs(scores).max())
        scores = scores / top if top > 0 else scores
    return scores


class _DistanceScore:
    """The autoencoder distance score D, with the autoencoder trained once per pool."""

    def __init__(self, input_shape, latent_dim, epochs, max_fit_items, seed):
        self.input_shape = input_shape
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.max_fit_items = max_fit_items
        self.seed = seed
        self._fitted_for = None

    def autoencoder(self, state: SelectionState) -> Autoencoder:
        key = (id(state.pool), len(state.pool))
        if self._fitted_for != key:
            all_ids = state.pool.ids
            if all_ids.size > self.max_fit_items:
                rng = np.random.default_rng(self.seed)
                all_ids = np.sort(rng.choice(all_ids, self.max_fit_items, replace=False))
            self._autoencoder = Autoencoder(
                input_shape=self.input_shape,
                latent_dim=self.latent_dim,
                epochs=self.epochs,
                seed=self.seed,
            ).fit(state.inputs(all_ids))
            self._fitted_for = key
        return self._autoencoder

    def distance(self, state: SelectionState, ids: np.ndarray) -> np.ndarray:
        ae = self.autoencoder(state)
        return distance_scores(
            ae.encode(state.inputs(ids)), ae.encode(state.inputs(training_ids(state)))
        )


@register_strategy("ibal")
class IBALStrategy(ScoringStrategy):
    """Pick the items with the smallest IBAL importance (papers/004, eq. 2).

    Parameters
    ----------
    lam : float
        L2 weight of the refitted last layer (0.003, the representer-point reference).
    normalize : bool
        Divide IBAL by its largest absolute value over the candidates.
    """

    requirements = frozenset({"penultimate", "probabilities"})
    parameter_constraints = {
        "lam": [Interval(float, 0, None, "neither")],
        "normalize": [Instance(bool)],
    }

    def __init__(self, lam: float = 0.003, normalize: bool = True):
        self.lam = lam
        self.normalize = normalize

    def score(self, state, ids):
        return -ibal_scores(state, ids, self.lam, self.normalize)


class DistanceBonusStrategy(ScoringStrategy):
    """``informativeness + gamma D``, D the autoencoder distance score (papers/004, eqs. 4-5).

    Parameters
    ----------
    gamma : float
        Weight of the distance score.
    input_shape : tuple, optional
        (C, H, W) of the raw items for a convolutional autoencoder; vectors use an MLP one.
    latent_dim, ae_epochs, max_fit_items, seed : autoencoder settings (trained once per pool on
        at most ``max_fit_items`` items drawn with ``seed``).
    """

    parameter_constraints = {
        "gamma": [Interval(float, 0, None)],
        "input_shape": [Instance(tuple, list, None)],
        "latent_dim": [Interval(int, 1, None)],
        "ae_epochs": [Interval(int, 1, None)],
        "max_fit_items": [Interval(int, 1, None)],
        "seed": [Interval(int, 0, None)],
    }

    def __init__(
        self,
        gamma: float = 1.0,
        input_shape: Sequence[int] | None = None,
        latent_dim: int = 8,
        ae_epochs: int = 10,
        max_fit_items: int = 10000,
        seed: int = 0,
    ):
        self.gamma = gamma
        self.input_shape = input_shape
        self.latent_dim = latent_dim
        self.ae_epochs = ae_epochs
        self.max_fit_items = max_fit_items
        self.seed = seed
        self._distance = _DistanceScore(input_shape, latent_dim, ae_epochs, max_fit_items, seed)

    def informativeness(self, state, ids) -> np.ndarray:
        raise NotImplementedError

    def score(self, state, ids):
        return self.informativeness(state, ids) + self.gamma * self._distance.distance(state, ids)


@register_strategy("ibal-d")
class IBALDistanceStrategy(DistanceBonusStrategy):
    """Pick the items with the smallest IBAL - gamma D (papers/004, eqs. 4-5).

    ``lam`` and ``normalize`` are IBAL's (see :class:`IBALStrategy`); the rest as in
    :class:`DistanceBonusStrategy`.
    """

    def __init__(
        self,
        gamma: float = 1.0,
        lam: float = 0.003,
        normalize: bool = True,
        input_shape: Sequence[int] | None = None,
        latent_dim: int = 8,
        ae_epochs: int = 10,
        max_fit_items: int = 10000,
        seed: int = 0,
    ):
        super().__init__(gamma, input_shape, latent_dim, ae_epochs, max_fit_items, seed)
        self.lam = lam
        self.normalize = normalize

    requirements = frozenset({"penultimate", "probabilities"})
    parameter_constraints = IBALStrategy.parameter_constraints

    def informativeness(self, state, ids):
        return -ibal_scores(state, ids, self.lam, self.normalize)


@register_strategy("entropy-d")
class EntropyDistanceStrategy(DistanceBonusStrategy):
    """Pick the items with the largest Entropy + gamma D (papers/004, the CIFAR-100 baseline)."""

    requirements = frozenset({"probabilities"})

    def informativeness(self, state, ids):
        return entropy_scores(predict_proba(state, ids))
