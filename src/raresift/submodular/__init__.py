"""Submodular information measures (SIMILAR, papers/000) and their greedy maximisation.

Twelve objectives, three families, one idea: every objective is a conditional mutual information
``I(A; Q | P)`` of a base function (facility location, graph cut or log-determinant) that loses its
query set ``Q`` (SCG), its conditioning set ``P`` (SMI) or both (plain function). Definitions and
defaults follow submodlib 0.0.3 as SIMILAR ran it (``/work/shared/SIM-CONVENTIONS.md``):

======  ===============  ===============  ============  ================
family  plain            SMI (query Q)    SCG (cond. P)  SCMI (Q and P)
======  ===============  ===============  ============  ================
FL      ``fl``           ``flvmi``,       ``flcg``      ``flcmi``
                         ``flqmi``
GC      ``gc``           ``gcmi``         ``gccg``      --
LogDet  ``logdet``       ``logdetmi``     ``logdetcg``  ``logdetcmi``
======  ===============  ===============  ============  ================

``eta`` scales query similarities, ``nu`` conditioning ones, ``lambda_`` is graph cut's
trade-off and log det's ridge; all default to 1. Similarities default to the shifted cosine
``(s + 1) / 2`` (:mod:`raresift.kernels`).

The API a strategy calls: candidate embeddings, query embeddings, conditioning embeddings and a
budget in; picks (positions into the candidates, in pick order) and their marginal gains out.

>>> import numpy as np
>>> from raresift.submodular import select
>>> rng = np.random.default_rng(0)
>>> candidates = rng.normal(size=(200, 16)).astype(np.float32)
>>> rare_examples = rng.normal(size=(5, 16)).astype(np.float32)     # query set Q
>>> already_labeled = rng.normal(size=(20, 16)).astype(np.float32)  # conditioning set P
>>> sel = select("flcmi", 10, data=candidates, query=rare_examples,
...              conditioning=already_labeled, optimizer="lazy")
>>> sel.indices.shape, sel.gains.shape
((10,), (10,))

For large pools: ``kernel="sparse", k=100`` (k-NN kernel) for the FL and GC families,
``partitions=p`` for the partition trick, ``optimizer="stochastic"`` or ``"lazier"`` with a
``seed``. An objective can also be built once with :func:`make_objective` (from embeddings or
precomputed kernels) and passed to :func:`select`; its ``gains()``, ``add(j)`` and
``evaluate(A)`` are public.
"""

from raresift.submodular.base import SetFunction
from raresift.submodular.facility import FacilityLocationFamily
from raresift.submodular.graphcut import GraphCutFamily
from raresift.submodular.logdet import LogDetFamily
from raresift.submodular.objectives import OBJECTIVES, make_objective, objective_names
from raresift.submodular.optimizers import (
    OPTIMIZERS,
    Selection,
    partition_budgets,
    partition_plan,
    select,
)

__all__ = [
    "OBJECTIVES",
    "OPTIMIZERS",
    "FacilityLocationFamily",
    "GraphCutFamily",
    "LogDetFamily",
    "Selection",
    "SetFunction",
    "make_objective",
    "objective_names",
    "partition_budgets",
    "partition_plan",
    "select",
]
