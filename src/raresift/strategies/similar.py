"""SIMILAR's acquisition functions: submodular information measures over item representations.

Each of the twelve objectives of :mod:`raresift.submodular` is a strategy of the same name
("fl", "gc", "logdet", "flvmi", "flqmi", "gcmi", "logdetmi", "flcg", "gccg", "logdetcg",
"flcmi", "logdetcmi"). The candidates are represented by last-layer gradient embeddings with
hypothesised labels (BADGE's, SIMILAR's default) or by the pool's fixed embeddings; the query set
Q and conditioning set P (``SelectionState.query_ids`` / ``conditioning_ids``) are embedded with
their true labels. The picks are the greedy maximiser's, best first, with their marginal gains.

Rare classes: Q = labeled examples of the rare classes, an SMI function ("flqmi", "logdetmi").
Redundancy: P = the labeled set, an SCG function ("flcg", "logdetcg"). Out-of-distribution:
Q = labeled in-distribution items, P = labeled OOD items, an SCMI function ("flcmi", "logdetcmi");
while P is still empty an SCMI strategy selects with the SMI function of its family and logs so.

Examples
--------
>>> from raresift.strategies import make_strategy
>>> make_strategy("flqmi", optimizer="lazy", partitions=2)
FLQMIStrategy(representation='gradient', metric='cosine', eta=1.0, nu=1.0, lambda_=1.0, \
optimizer='lazy', partitions=2, kernel='auto', k=100, epsilon=0.1)
"""

from __future__ import annotations

import logging

import numpy as np

from raresift.errors import ValidationError
from raresift.kernels import DEFAULT_METRIC, METRICS
from raresift.models.base import require_capability
from raresift.params import Interval, Options
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy
from raresift.submodular import OBJECTIVES, OPTIMIZERS, objective_names, partition_plan, select
from raresift.submodular.objectives import objective_without

log = logging.getLogger("raresift")

REPRESENTATIONS = ("gradient", "embedding")


class SubmodularStrategy(Strategy):
    """Greedy maximisation of the objective named like the strategy.

    Parameters
    ----------
    representation : {"gradient", "embedding"}
        Last-layer gradient embeddings from the model (needs ``gradient_embeddings``), or the
        pool's embeddings.
    metric : str
        Similarity (:data:`raresift.kernels.METRICS`); the default is the shifted cosine
        ``(s + 1) / 2`` SIMILAR used.
    eta, nu, lambda_ : float
        Query magnification, conditioning hardness, graph-cut trade-off / log-det ridge.
    optimizer : {"naive", "lazy", "stochastic", "lazier"}
        Greedy maximiser (:func:`raresift.submodular.select`). ``"lazy"`` (the default) is
        Minoux's lazy greedy, but every built-in objective keeps all its marginal gains current
        (``all_gains_cheap``), where stale bounds save nothing, so for them ``"lazy"`` runs the
        naive greedy loop: the same picks as ``"naive"``, at the same cost. The lazy ones are
        exact only on a submodular objective; on one that is not (``logdetmi``, ``logdetcmi``;
        graph cut on a kernel with negative similarities), ``"lazier"`` runs ``"stochastic"``
        and each pick's reason says so.
    partitions : int
        SIMILAR's partition trick (the papers' PartitionStrategy): split the candidates into
        this many random parts, build each part's objective from its own representations (so
        no kernel over all candidates is ever held) and share the budget by part size.
    kernel : {"auto", "dense", "sparse", "features"}, k : int
        How candidate-candidate similarities are held (:func:`raresift.submodular.make_objective`).
        SIMILAR's experiments used dense kernels; ``"sparse"`` (``"auto"`` above 32,768
        candidates) is a k-NN kernel keeping ``s_ij`` when either item is among the other's
        ``k`` nearest, as submodlib's ``mode="sparse"``.
    epsilon : float
        Sampling accuracy of the stochastic optimizers.
    """

    parameter_constraints = {
        "representation": [Options(*REPRESENTATIONS)],
        "metric": [Options(*METRICS)],
        "eta": [Interval(float, 0, None)],
        "nu": [Interval(float, 0, None)],
        "lambda_": [Interval(float, 0, None)],
        "optimizer": [Options(*OPTIMIZERS)],
        "partitions": [Interval(int, 1, None)],
        "kernel": [Options("auto", "dense", "sparse", "features")],
        "k": [Interval(int, 1, None)],
        "epsilon": [Interval(float, 0, 1, "neither")],
    }

    def __init__(
        self,
        representation: str = "gradient",
        metric: str = DEFAULT_METRIC,
        eta: float = 1.0,
        nu: float = 1.0,
        lambda_: float = 1.0,
        optimizer: str = "lazy",
        partitions: int = 1,
        kernel: str = "auto",
        k: int = 100,
        epsilon: float = 0.1,
    ):
        self.representation = representation
        self.metric = metric
        self.eta, self.nu, self.lambda_ = eta, nu, lambda_
        self.optimizer = optimizer
        self.partitions = partitions
        self.kernel = kernel
        self.k = k
        self.epsilon = epsilon

    def requires(self) -> frozenset[str]:
        return frozenset({"gradient_embeddings"} if self.representation == "gradient" else ())

    def _features(self, state: SelectionState, ids: np.ndarray, true_labels: bool) -> np.ndarray:
        if self.representation == "embedding":
            return state.pool.embeddings_of(ids)
        require_capability(state.model, "gradient_embeddings", f"strategy {self.name!r}")
        labels = state.labels.of(ids) if true_labels else None
        return state.model.gradient_embeddings(state.inputs(ids), labels=labels)

    def objective(self, state: SelectionState) -> str:
        """The objective that selects in this state: the strategy's own, or, for SCMI while the
        conditioning set is empty, the SMI function of its family (SCMI with P empty is SMI)."""
        spec = OBJECTIVES[self.name]
        missing = lambda ids: ids is None or len(ids) == 0  # noqa: E731
        if spec.query and missing(state.query_ids):
            raise ValidationError(
                f"strategy {self.name!r} needs a query set (query_ids); without one use "
                f"{objective_without(self.name, 'query')!r}"
            )
        if spec.conditioning and missing(state.conditioning_ids):
            if spec.query:  # SCMI with no conditioning items yet: SIMILAR's round-one fallback
                fallback = objective_without(self.name, "conditioning")
                log.info("%s: conditioning set empty, selecting with %s", self.name, fallback)
                return fallback
            raise ValidationError(
                f"strategy {self.name!r} needs a conditioning set (conditioning_ids); without "
                f"one use {objective_without(self.name, 'conditioning')!r}"
            )
        return self.name

    def side_features(self, state: SelectionState, objective: str) -> dict[str, np.ndarray]:
        """The query / conditioning representations ``objective`` needs (true labels)."""
        spec = OBJECTIVES[objective]
        side = {}
        if spec.query:
            side["query"] = self._features(state, as_ids(state.query_ids), true_labels=True)
        if spec.conditioning:
            side["conditioning"] = self._features(
                state, as_ids(state.conditioning_ids), true_labels=True
            )
        return side

    def plan(self, state: SelectionState, n: int, budget: int) -> list:
        """The partition trick's parts of ``n`` candidates (:func:`partition_plan`), drawn with
        the round's generator: one ``(positions, budget, seed)`` per part."""
        return partition_plan(n, self.partitions, budget, int(state.rng.integers(2**63)))

    def select_part(
        self,
        state: SelectionState,
        ids: np.ndarray,
        budget: int,
        seed: int,
        objective: str,
        side: dict[str, np.ndarray],
    ) -> Batch:
        """Greedy picks among ``ids`` alone, the objective built from their representations.

        One part of the partition trick; :mod:`raresift.distributed` runs it on a worker.
        """
        picked = select(
            objective,
            budget,
            self.optimizer,
            epsilon=self.epsilon,
            seed=seed,
            metric=self.metric,
            eta=self.eta,
            nu=self.nu,
            lambda_=self.lambda_,
            kernel=self.kernel,
            k=self.k,
            data=self._features(state, ids, true_labels=False),
            **side,
        )
        note = f" ({picked.note})" if picked.note else ""
        reasons = [f"{objective} marginal gain {g:.4g}{note}" for g in picked.gains]
        # the batch names the function that chose it (flvmi for flcmi in round one)
        return Batch(ids[picked.indices], picked.gains, objective, state.round, reasons)

    def select(self, state: SelectionState, candidates, budget: int) -> Batch:
        ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, ids.size, "candidates")
        objective = self.objective(state)
        side = self.side_features(state, objective)
        if self.partitions == 1:
            seed = int(state.rng.integers(2**63))
            return self.select_part(state, ids, budget, seed, objective, side)
        parts = [
            self.select_part(state, ids[members], part_budget, seed, objective, side)
            for members, part_budget, seed in self.plan(state, ids.size, budget)
        ]
        return concat_batches(parts, objective, state.round)


def concat_batches(parts: list[Batch], objective: str, round_index: int) -> Batch:
    """The partition trick's batch: the parts' picks one after the other, named by the
    objective that chose them."""
    return Batch(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.scores for p in parts]),
        objective,
        round_index,
        [r for p in parts for r in p.reasons],
    )


for _objective in objective_names():
    register_strategy(_objective)(
        type(
            f"{_objective.upper()}Strategy",
            (SubmodularStrategy,),
            {"__doc__": f"SIMILAR acquisition with the {_objective!r} objective."},
        )
    )
