"""Fisher-kernel acquisition for biased pools (papers/001, Gudovskiy et al., CVPR 2020).

Select the unlabeled items most similar to a labeled validation set that stands for the test
distribution. Similarity compares pooled multi-scale descriptors z and Fisher scores g of the task
model (:mod:`raresift.models.pooled`):

- ``"pearson"``: R_z = sum over scales of the Pearson correlation of z (the paper's PCC, eq. 6);
- ``"product"``: R_zg = R_z * R_g elementwise (the practical Fisher kernel, eq. 12; default);
- ``"sum"``: R_z + R_g, the dot product of the concatenated [z; g] that the authors' code used.

Strategies: ``"fisher"`` (every validation item), ``"fisher-weak"`` (Alg. 1: only the validation
items the model misclassifies) and ``"pcc"`` (R_z only, misclassified validation items). When
there are more validation items than the budget P, P of them are chosen by greedy k-center
(farthest-first) in the kernel's similarity; then the (validation item, candidate) pairs are taken
best first, and each candidate counts once, until P distinct candidates are chosen. "Best first"
is rank by rank by default (every matched validation item's nearest candidate, then every one's
second nearest, ...), so the batch spreads over the matched items; ``pairing="similarity"``
orders all pairs by similarity alone.

Pseudo-labels for the candidates' Fisher scores (``pseudo_label``): ``"argmax"`` (the model's
prediction), ``"nearest-validation"`` (the label of the most similar validation item by R_z, the
paper's p(y, z)), ``"mc-trace"`` and ``"mc-mi"`` (Monte Carlo over small random perturbations of the
input: the class maximising tr(C_zg), or the Gaussian mutual information I(z; g)), and ``"true"``
(an oracle ablation: true labels passed as ``true_labels``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from raresift.errors import ConfigError, ValidationError
from raresift.models.base import require_capability
from raresift.models.pooled import PooledFeatures, perturb, pooled_features, standardize_segments
from raresift.params import Instance, Interval, Options
from raresift.pool import Labels, as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy
from raresift.strategies.coreset import greedy_k_center

logger = logging.getLogger("raresift")

KERNELS = ("product", "sum", "pearson")
PSEUDO_LABELS = ("argmax", "nearest-validation", "mc-trace", "mc-mi", "true")
_BLOCK = 8192  # candidates per similarity block


# --------------------------------------------------------------------------- kernels
def _segment_scale(segments: Sequence[tuple[int, int]], width: int) -> np.ndarray:
    """Column weights 1/sqrt(L_j): a dot product of scaled standardised rows = sum_j Pearson_j."""
    w = np.zeros(width, dtype=np.float32)
    for start, stop in segments:
        w[start:stop] = 1.0 / np.sqrt(stop - start)
    return w


def pearson_similarity(a: np.ndarray, b: np.ndarray, segments) -> np.ndarray:
    """R between rows of ``a`` (m, L) and ``b`` (n, L): the sum over segments of the Pearson
    correlation (rows must be standardised per segment, see ``standardize_segments``).

    >>> seg = [(0, 3)]
    >>> a = standardize_segments(np.array([[1.0, 2.0, 3.0]]), seg)
    >>> b = standardize_segments(np.array([[3.0, 2.0, 1.0], [2.0, 4.0, 6.0]]), seg)
    >>> pearson_similarity(a, b, seg).round(6).tolist()
    [[-1.0, 1.0]]
    """
    w = _segment_scale(segments, a.shape[1])
    return (a * w) @ (b * w).T


class FisherKernel:
    """The similarity between two sets of pooled features (``PooledFeatures`` or (z, g) pairs).

    ``combine`` is "product" (R_z * R_g, the paper), "sum" (R_z + R_g, the authors' code) or
    "pearson" (R_z alone).
    """

    def __init__(self, segments: Sequence[tuple[int, int]], combine: str = "product"):
        if combine not in KERNELS:
            raise ConfigError(f"kernel must be one of {KERNELS}, not {combine!r}")
        self.segments = list(segments)
        self.combine = combine

    @property
    def uses_scores(self) -> bool:
        """Whether the kernel needs Fisher scores (a backward pass) at all."""
        return self.combine != "pearson"

    def __call__(self, za, ga, zb, gb) -> np.ndarray:
        r = pearson_similarity(za, zb, self.segments)
        if self.combine == "pearson":
            return r
        rg = pearson_similarity(ga, gb, self.segments)
        return r * rg if self.combine == "product" else r + rg


# --------------------------------------------------------------------------- selection
def best_pairs(
    similarity_blocks: Callable[[int, int], np.ndarray],
    n_rows: int,
    n_candidates: int,
    budget: int,
    order: str = "rank",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Take (row, candidate) pairs best first, each candidate once, until ``budget`` candidates.

    ``similarity_blocks(start, stop)`` gives the (n_rows, stop - start) similarities of all rows
    to candidates start..stop-1. ``order="rank"`` (default) goes rank by rank: every row's best
    candidate first (higher similarity first), then every row's second best, and so on (a row
    whose k-th candidate is already taken adds nothing at rank k), so the validation items get
    their nearest candidates in turn; ``order="similarity"`` sorts all pairs by
    similarity alone (one validation item may then take the whole batch). In both orders only the
    top ``budget`` candidates of each row can ever be used (a row's first ``budget`` pairs already
    hold ``budget`` distinct candidates), so that is all that is kept. Returns candidate
    positions, their pair similarity and the row they were matched to.

    >>> sim = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.7]])
    >>> best_pairs(lambda a, b: sim[:, a:b], 2, 3, 2, order="similarity")[0].tolist()
    [0, 1]
    >>> best_pairs(lambda a, b: sim[:, a:b], 2, 3, 2, order="rank")[0].tolist()
    [0, 2]
    """
    if order not in ("rank", "similarity"):
        raise ConfigError(f"order must be 'rank' or 'similarity', not {order!r}")
    k = min(budget, n_candidates)
    top_sim = np.full((n_rows, 0), -np.inf, dtype=np.float32)
    top_pos = np.zeros((n_rows, 0), dtype=np.int64)
    for start in range(0, n_candidates, _BLOCK):
        stop = min(start + _BLOCK, n_candidates)
        block = np.asarray(similarity_blocks(start, stop), dtype=np.float32)
        sims = np.concatenate([top_sim, block], axis=1)
        pos = np.concatenate([top_pos, np.broadcast_to(np.arange(start, stop), block.shape)], 1)
        if sims.shape[1] > k:
            keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(sims, keep, 1)
            pos = np.take_along_axis(pos, keep, 1)
        top_sim, top_pos = sims, pos
    # rank of each kept pair within its row (0 = the row's best candidate)
    rank = np.argsort(np.argsort(-top_sim, axis=1, kind="stable"), axis=1, kind="stable")
    flat_sim, flat_pos, flat_rank = top_sim.ravel(), top_pos.ravel(), rank.ravel()
    flat_row = np.repeat(np.arange(n_rows), top_sim.shape[1])
    keys = (flat_row, flat_pos, -flat_sim) + ((flat_rank,) if order == "rank" else ())
    sort = np.lexsort(keys)  # last key is primary; ties deterministic
    flat_sim, flat_pos, flat_row = flat_sim[sort], flat_pos[sort], flat_row[sort]
    _, first = np.unique(flat_pos, return_index=True)
    first = np.sort(first)[:budget]
    return flat_pos[first], flat_sim[first].astype(np.float64), flat_row[first]


# --------------------------------------------------------------------------- MC estimators
def _centre_and_scale(x: torch.Tensor) -> torch.Tensor:
    """Centre samples (axis -2) and scale so that the mean per-feature variance is one."""
    x = x - x.mean(dim=-2, keepdim=True)
    k = x.shape[-2]
    var = (x * x).sum(dim=(-2, -1), keepdim=True) / ((k - 1) * x.shape[-1])
    return x / torch.sqrt(torch.clamp(var, min=1e-12))


def trace_cross_covariance(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """tr(C_zg) over samples: ``z`` and ``g`` are (..., K, L) (leading axes broadcast)."""
    zt = torch.as_tensor(z, dtype=torch.float64)
    gt = torch.as_tensor(g, dtype=torch.float64)
    k = zt.shape[-2]
    zc = zt - zt.mean(dim=-2, keepdim=True)
    gc = gt - gt.mean(dim=-2, keepdim=True)
    return ((zc * gc).sum(dim=(-2, -1)) / (k - 1)).numpy()


def _logdet_covariance(x: torch.Tensor, ridge: float) -> torch.Tensor:
    """log |X^T X / (K-1) + ridge I_L| for samples x (..., K, L), via the smaller of K and L."""
    k, width = x.shape[-2], x.shape[-1]
    if k < width:  # |X^T X + rI_L| = r^(L-K) |X X^T + rI_K|
        gram = x @ x.transpose(-1, -2) / (k - 1)
        eye = ridge * torch.eye(k, dtype=x.dtype)
        return torch.linalg.slogdet(gram + eye)[1] + (width - k) * np.log(ridge)
    cov = x.transpose(-1, -2) @ x / (k - 1)
    return torch.linalg.slogdet(cov + ridge * torch.eye(width, dtype=x.dtype))[1]


def gaussian_mutual_information(z: np.ndarray, g: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Gaussian I(z; g) = 0.5 log(|C_zz| |C_gg| / |C_[zg][zg]|) from K samples (..., K, L).

    Leading axes broadcast (z of shape (n, 1, K, L) against g of shape (n, D, K, L)). Each block
    is centred and scaled to unit mean variance (I is invariant to that), then ``ridge`` * I is
    added to every covariance so that K < L samples still give finite values. Determinants go
    through K x K Gram matrices when K < L, so few samples of long descriptors stay cheap.
    """
    if ridge <= 0:
        raise ConfigError(f"ridge must be positive, got {ridge}")
    zt = _centre_and_scale(torch.as_tensor(z, dtype=torch.float64))
    gt = _centre_and_scale(torch.as_tensor(g, dtype=torch.float64))
    if zt.shape[-2] < 2:
        raise ValidationError("mutual information needs at least two samples per item")
    lead = torch.broadcast_shapes(zt.shape[:-2], gt.shape[:-2])
    joint = torch.cat([zt.expand(*lead, *zt.shape[-2:]), gt.expand(*lead, *gt.shape[-2:])], dim=-1)
    logdet = _logdet_covariance(zt, ridge) + _logdet_covariance(gt, ridge)
    return (0.5 * (logdet - _logdet_covariance(joint, ridge))).numpy()


def monte_carlo_labels(
    network,
    x: torch.Tensor,
    layers,
    *,
    estimator: str = "mc-mi",
    n_perturbations: int = 8,
    generator: torch.Generator,
    max_degrees: float = 5.0,
    noise_std: float = 0.05,
    ridge: float = 1e-3,
    chunk_size: int = 256,
) -> np.ndarray:
    """Pseudo-labels maximising tr(C_zg) (``"mc-trace"``) or I(z; g) (``"mc-mi"``) per item.

    Each item is perturbed ``n_perturbations`` times (:func:`raresift.models.pooled.perturb`);
    for every perturbed copy z_k and the Fisher scores g_k(d) under every class d are pooled and
    standardised; the class with the largest estimate wins. Cost: K forward and K x D backward
    passes per item.
    """
    if estimator not in ("mc-trace", "mc-mi"):
        raise ConfigError(f"estimator must be 'mc-trace' or 'mc-mi', not {estimator!r}")
    if n_perturbations < 2:
        raise ConfigError("Monte Carlo pseudo-labels need n_perturbations >= 2")
    zs, gs = [], []
    for _ in range(n_perturbations):
        feats = pooled_features(
            network,
            perturb(x, generator, max_degrees=max_degrees, noise_std=noise_std),
            layers,
            labels="all",
            chunk_size=chunk_size,
        )
        zs.append(feats.z)
        gs.append(feats.g)
    z = np.stack(zs, axis=1)  # (n, K, L)
    g = np.stack(gs, axis=2)  # (n, D, K, L)
    if estimator == "mc-trace":  # z[:, None] broadcasts over the classes
        scores = trace_cross_covariance(z[:, None], g)
    else:
        scores = gaussian_mutual_information(z[:, None], g, ridge=ridge)
    return np.argmax(scores, axis=1).astype(np.int64)


# --------------------------------------------------------------------------- strategy
def network_inputs(state: SelectionState, ids: np.ndarray, input_shape=None) -> torch.Tensor:
    """The network's input tensor for ``ids``, from the model's ``network_inputs`` (the
    ``pooled_fisher`` capability: its checks, reshaping, scaling and device); flat rows are
    reshaped to ``input_shape`` first when it is given."""
    x = np.asarray(state.inputs(ids))
    if input_shape is not None and x.shape[1:] != tuple(input_shape):
        x = x.reshape(len(ids), *input_shape)
    return state.model.network_inputs(x)


def validation_labels(state: SelectionState) -> tuple[np.ndarray, np.ndarray]:
    """The validation ids and their labels (from ``state.labels``), checked."""
    if state.validation_ids is None or len(state.validation_ids) == 0:
        raise ValidationError(
            "this strategy needs a labeled validation set; pass validation_ids to the learner"
        )
    ids = as_ids(state.validation_ids, "validation_ids")
    known = state.labels.mask(ids)
    if not known.all():
        raise ValidationError(
            f"{int((~known).sum())} validation item(s) have no label, e.g. "
            f"{ids[~known][:5].tolist()}; add their labels before selecting"
        )
    return ids, state.labels.of(ids)


class FisherKernelStrategy(Strategy):
    """Select the candidates most similar to (misclassified) validation items under R_z / R_zg.

    Parameters
    ----------
    kernel : "product", "sum" or "pearson"
    validation : "all" or "misclassified"
        Which validation items to match: all of them, or (weak supervision, Alg. 1) those the
        model gets wrong; if none is misclassified, all are used.
    pseudo_label : one of ``PSEUDO_LABELS``
        How the candidates' Fisher scores get their label (see the module docstring).
    layers : list of module names, optional
        The layers pooled into the descriptor ("penultimate" = the classifier's input); default
        :func:`raresift.models.pooled.default_layers` (LeNet: conv1 + conv2 + fc1, L = 80).
    true_labels : Labels or callable ids -> labels, optional
        Needed for ``pseudo_label="true"`` only (oracle ablation).
    input_shape : tuple, optional
        Reshape the pool's inputs to (n, *input_shape) for the network, e.g. (1, 28, 28).
    pairing : "rank" or "similarity"
        How matched validation items share the batch (see :func:`best_pairs`); "rank" (default)
        gives each its nearest candidates in turn.
    n_perturbations, max_degrees, noise_std, ridge : Monte Carlo estimator settings.
    chunk_size : items per forward/backward pass.
    """

    def __init__(
        self,
        kernel: str = "product",
        validation: str = "all",
        pseudo_label: str = "argmax",
        layers: Sequence[str] | None = None,
        true_labels: Labels | Callable[[np.ndarray], Any] | None = None,
        input_shape: Sequence[int] | None = None,
        pairing: str = "rank",
        n_perturbations: int = 8,
        max_degrees: float = 5.0,
        noise_std: float = 0.05,
        ridge: float = 1e-3,
        chunk_size: int = 256,
    ):
        if pseudo_label == "true" and true_labels is None:
            raise ConfigError("pseudo_label='true' (oracle ablation) needs true_labels")
        self.kernel = kernel
        self.validation = validation
        self.pseudo_label = pseudo_label
        self.layers = layers
        self.true_labels = true_labels
        self.input_shape = input_shape
        self.pairing = pairing
        self.n_perturbations = n_perturbations
        self.max_degrees = max_degrees
        self.noise_std = noise_std
        self.ridge = ridge
        self.chunk_size = chunk_size

    requirements = frozenset({"pooled_fisher"})
    parameter_constraints = {
        "kernel": [Options(*KERNELS)],
        "validation": [Options("all", "misclassified")],
        "pseudo_label": [Options(*PSEUDO_LABELS)],
        "layers": [Instance(list, tuple, None)],
        "input_shape": [Instance(tuple, list, None)],
        "pairing": [Options("rank", "similarity")],
        "n_perturbations": [Interval(int, 2, None)],
        "max_degrees": [Interval(float, 0, None)],
        "noise_std": [Interval(float, 0, None)],
        "ridge": [Interval(float, 0, None, "neither")],
        "chunk_size": [Interval(int, 1, None)],
    }

    # -- pieces
    def _features(self, network, x, labels) -> PooledFeatures:
        return pooled_features(network, x, self.layers, labels, chunk_size=self.chunk_size)

    def _oracle(self, ids: np.ndarray) -> np.ndarray:
        if isinstance(self.true_labels, Labels):
            return self.true_labels.of(ids)
        return np.asarray(self.true_labels(ids), dtype=np.int64)

    def _candidate_features(self, state, network, ids, x, val: PooledFeatures, val_y):
        uses_g = self.kernel != "pearson"
        if not uses_g:
            return self._features(network, x, None)
        if self.pseudo_label == "argmax":
            return self._features(network, x, "argmax")
        if self.pseudo_label == "true":
            return self._features(network, x, self._oracle(ids))
        if self.pseudo_label == "nearest-validation":
            z_only = self._features(network, x, None)
            guess = np.empty(len(ids), dtype=np.int64)
            for start in range(0, len(ids), _BLOCK):
                sim = pearson_similarity(z_only.z[start : start + _BLOCK], val.z, val.segments)
                guess[start : start + _BLOCK] = val_y[np.argmax(sim, axis=1)]
            return self._features(network, x, guess)
        generator = torch.Generator().manual_seed(int(state.rng.integers(2**63 - 1)))
        guess = monte_carlo_labels(
            network,
            x,
            self.layers,
            estimator=self.pseudo_label,
            n_perturbations=self.n_perturbations,
            generator=generator,
            max_degrees=self.max_degrees,
            noise_std=self.noise_std,
            ridge=self.ridge,
            chunk_size=self.chunk_size,
        )
        return self._features(network, x, guess)

    # -- the strategy
    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        require_capability(state.model, "pooled_fisher", f"strategy {self.name!r}")
        network = state.model.network
        val_ids, val_y = validation_labels(state)
        uses_g = self.kernel != "pearson"
        val_x = network_inputs(state, val_ids, self.input_shape)
        val = self._features(network, val_x, val_y if uses_g else None)
        keep = np.arange(val_ids.size)
        if self.validation == "misclassified":
            wrong = np.flatnonzero(np.argmax(val.proba, axis=1) != val_y)
            if wrong.size:
                keep = wrong
            else:
                logger.info("%s: no misclassified validation item; matching all", self.name)
        kern = FisherKernel(val.segments, self.kernel)
        vz, vg = val.z[keep], (val.g[keep] if uses_g else None)
        if keep.size > budget:

            def sim_to(i):
                return kern(vz[i : i + 1], None if vg is None else vg[i : i + 1], vz, vg)[0]

            # farthest first in the kernel's similarity (distance: its negation)
            centres = greedy_k_center(lambda i: -sim_to(i), keep.size, budget, state.rng)[0]
            keep, vz = keep[centres], vz[centres]
            vg = vg[centres] if vg is not None else None
        cand = self._candidate_features(
            state, network, ids, network_inputs(state, ids, self.input_shape), val, val_y
        )
        cg = cand.g

        def block(start, stop):
            return kern(vz, vg, cand.z[start:stop], None if cg is None else cg[start:stop])

        pos, sims, rows = best_pairs(block, keep.size, ids.size, budget, self.pairing)
        matched = val_ids[keep[rows]]
        reasons = [
            f"{self.name}: similarity {s:.3g} to validation item {int(v)} (label {int(y)})"
            for s, v, y in zip(sims, matched, val_y[keep[rows]], strict=True)
        ]
        logger.info(
            "%s: matched %d validation items to %d candidates", self.name, keep.size, ids.size
        )
        return Batch(ids[pos], sims, self.name, state.round, reasons)


@register_strategy("fisher")
class FisherStrategy(FisherKernelStrategy):
    """Practical Fisher kernel R_zg against the whole validation set."""


@register_strategy("fisher-weak")
class WeakFisherStrategy(FisherKernelStrategy):
    """Practical Fisher kernel against the misclassified validation items (papers/001, Alg. 1)."""

    def __init__(self, validation: str = "misclassified", **params):
        super().__init__(validation=validation, **params)


@register_strategy("pcc")
class PearsonStrategy(FisherKernelStrategy):
    """Pearson correlation of pooled descriptors (R_z) against misclassified validation items."""

    def __init__(self, kernel: str = "pearson", validation: str = "misclassified", **params):
        super().__init__(kernel=kernel, validation=validation, **params)


__all__ = [
    "FisherKernel",
    "FisherKernelStrategy",
    "best_pairs",
    "gaussian_mutual_information",
    "monte_carlo_labels",
    "pearson_similarity",
    "standardize_segments",
    "trace_cross_covariance",
]
