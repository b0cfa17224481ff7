"""Efficient nonmyopic active search (ENS; Jiang et al., ICML 2017; batch: NeurIPS 2018).

Active search wants as many positives as possible within a labeling budget. Greedy search
("mlp") picks the item most likely positive now; ENS also counts what a label would teach. With
``t`` labels left, ENS scores an unlabeled candidate ``x`` by

    ENS(x) = p(x) + E_y[ sum of the top (t - 1) of p(z | D, x = y) over the other candidates z ],

the expected number of positives if ``x`` is labeled now and the remaining ``t - 1`` labels were
then spent all at once on the most likely items (the paper's approximation of the optimal
``t``-step policy). ``t`` is ``horizon``: a session does not know when it will end.

The model is the paper's k-NN model: with ``A(x)`` the neighbours of ``x`` in the symmetrised
k-NN graph (``z`` is a neighbour of ``x`` if either is among the other's ``k`` nearest, by cosine),

    p(y = 1 | x, D) = (prior + positives labeled in A(x)) / (1 + items labeled in A(x)),

so labeling ``x`` changes only the probabilities of ``x``'s neighbours. Each candidate's
lookahead is therefore computed from its own neighbourhood: the top ``t - 1`` of the others are
the top of the unchanged sorted probabilities with ``x`` and its neighbours struck out, merged
with the neighbours' conditioned probabilities; all candidates at once, in row blocks. (The
paper's pruning bound only skips candidates a Python loop would otherwise visit; vectorised,
every candidate costs the same small row, so no pruning is done.)

The graph is built over the candidates and the labeled items with the exact brute-force search of
:func:`raresift.kernels.knn_kernel` (over a SEALS pool, the pool and its labeled seeds), so a
round costs O(n^2 d) for n = candidates + labels: meant for SEALS pools and session-sized sets.

A batch is chosen greedily with fictional labels (the simple variant of the batch paper's
sequential simulation): pick the best ENS score, condition on the pick's expected label
``y = p(pick)`` (a soft count in its neighbours' numerators, a full count in their
denominators), shorten the horizon by one, score again, repeat.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from raresift.errors import ValidationError
from raresift.kernels import knn_kernel
from raresift.params import Interval
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, Strategy, register_strategy, top_scores
from raresift.strategies.binary import ClassList

_ROW_BLOCK = 2048  # candidates whose lookahead is computed at once


def knn_graph(embeddings: np.ndarray, k: int) -> sp.csr_matrix:
    """Symmetrised, unweighted k-NN graph of the rows of ``embeddings`` by cosine similarity:
    ``A[i, j] = 1`` if ``j`` is among the ``k`` nearest of ``i`` or ``i`` among those of ``j``;
    no self loops.

    >>> x = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], dtype=np.float32)
    >>> knn_graph(x, 1).toarray().astype(int).tolist()
    [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    n = embeddings.shape[0]
    k = min(int(k), n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float64)
    # the symmetric ("union") k-NN kernel of each item and its k nearest, as a 0/1 pattern
    a = knn_kernel(embeddings, k + 1, metric="cosine").matrix.tocoo()
    off = a.row != a.col
    return sp.csr_matrix(
        (np.ones(int(off.sum())), (a.row[off], a.col[off])), shape=(n, n), dtype=np.float64
    )


def knn_probabilities(
    graph: sp.csr_matrix, hits: np.ndarray, counts: np.ndarray, prior: float
) -> np.ndarray:
    """The k-NN model's ``p(y = 1)`` of every node: ``(prior + A @ hits) / (1 + A @ counts)``,
    where ``hits`` is each node's (possibly fictional, fractional) positive label and
    ``counts`` 1 where a node is labeled, else 0."""
    return (prior + graph @ hits) / (1.0 + graph @ counts)


def _padded_rows(graph: sp.csr_matrix) -> np.ndarray:
    """The column indices of each row of a CSR matrix as a (rows, max degree) array, -1 padded."""
    deg = np.diff(graph.indptr)
    width = int(deg.max()) if deg.size else 0
    out = np.full((graph.shape[0], width), -1, dtype=np.int64)
    rows = np.repeat(np.arange(graph.shape[0]), deg)
    offsets = np.arange(graph.indices.size) - np.repeat(graph.indptr[:-1], deg)
    out[rows, offsets] = graph.indices
    return out


def ens_scores(
    graph: sp.csr_matrix,
    hits: np.ndarray,
    counts: np.ndarray,
    candidates: np.ndarray,
    prior: float,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """ENS scores of the ``candidates`` (node positions of ``graph``) with ``horizon`` labels
    left, and their probabilities ``p``; the lookahead ranges over the other candidates.

    ``hits`` / ``counts`` are as :func:`knn_probabilities` takes them. With ``horizon == 1``
    the score is ``p``: greedy search.
    """
    p_all = knn_probabilities(graph, hits, counts, prior)
    p = p_all[candidates]
    n = candidates.size
    ahead = min(int(horizon) - 1, n - 1)
    if ahead <= 0:
        return p.copy(), p
    # the neighbours of each candidate among the candidates (local positions 0..n-1)
    local = np.full(graph.shape[0], -1, dtype=np.int64)
    local[candidates] = np.arange(n)
    sub = graph[candidates][:, candidates].tocsr()
    nbrs = _padded_rows(sub)  # (n, D), -1 padded
    width = nbrs.shape[1]
    valid = nbrs >= 0
    safe = np.where(valid, nbrs, 0)
    # a label on x adds one count to each neighbour z (and y to its hits)
    num = prior + (graph @ hits)[candidates]
    den = 1.0 + (graph @ counts)[candidates]
    q_pos = np.where(valid, (num[safe] + 1.0) / (den[safe] + 1.0), -np.inf)
    q_neg = np.where(valid, num[safe] / (den[safe] + 1.0), -np.inf)
    # the top of the others: never deeper than `ahead` plus the struck-out x and neighbours
    order = np.argsort(-p, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    depth = min(n, ahead + width + 1)
    top = p[order[:depth]]
    future = np.empty((2, n))
    for lo in range(0, n, _ROW_BLOCK):
        hi = min(n, lo + _ROW_BLOCK)
        b = hi - lo
        kept = np.broadcast_to(top, (b, depth)).copy()
        struck = np.column_stack([rank[lo:hi], np.where(valid[lo:hi], rank[safe[lo:hi]], depth)])
        rows = np.broadcast_to(np.arange(b)[:, None], struck.shape)
        inside = struck < depth
        kept[rows[inside], struck[inside]] = -np.inf
        for j, q in enumerate((q_neg, q_pos)):
            merged = np.concatenate([kept, q[lo:hi]], axis=1)
            best = -np.partition(-merged, ahead - 1, axis=1)[:, :ahead]
            future[j, lo:hi] = best.sum(axis=1)
    return p + p * future[1] + (1.0 - p) * future[0], p


@register_strategy("ens")
class ENSStrategy(Strategy):
    """Efficient nonmyopic active search over a k-NN graph of the candidates (see the module).

    Parameters
    ----------
    positive : int or list of int
        The positive class index, or several (a class session's rare classes: any of them).
    horizon : int
        Labels assumed left when the batch is chosen (the paper's remaining budget ``t``);
        1 is greedy search under the k-NN model.
    k : int
        Nearest neighbours per item before symmetrising.
    prior : float
        The model's pseudo-count: ``p(y = 1)`` of an item with no labeled neighbour.
    """

    requirements = frozenset()
    parameter_constraints = {
        "positive": [Interval(int, 0, None), ClassList()],
        "horizon": [Interval(int, 1, None)],
        "k": [Interval(int, 1, None)],
        "prior": [Interval(float, 0, 1, closed="neither")],
    }

    def __init__(self, positive=1, horizon: int = 100, k: int = 20, prior: float = 0.05):
        self.positive = positive
        self.horizon = horizon
        self.k = k
        self.prior = prior

    def select(self, state, candidates, budget: int) -> Batch:
        cand_ids = as_ids(candidates, "candidates")
        budget = check_budget(budget, cand_ids.size, "candidates")
        labeled = as_ids(state.labels.ids)
        nodes = np.union1d(cand_ids, labeled)
        if np.intersect1d(cand_ids, labeled).size:
            raise ValidationError("a candidate is already labeled")
        graph = knn_graph(state.pool.embeddings_of(nodes), self.k)
        wanted = np.atleast_1d(np.asarray(self.positive))
        hits = np.zeros(nodes.size)
        counts = np.zeros(nodes.size)
        at = np.searchsorted(nodes, labeled)
        counts[at] = 1.0
        hits[at] = np.isin(np.asarray(state.labels.values), wanted)
        left = np.searchsorted(nodes, cand_ids)
        picks, scores, reasons = [], [], []
        for j in range(budget):
            horizon = max(1, self.horizon - j)
            score, p = ens_scores(graph, hits, counts, left, self.prior, horizon)
            best = int(top_scores(score, 1, state.rng)[0])
            node = left[best]
            picks.append(nodes[node])
            scores.append(score[best])
            reasons.append(
                f"ens {score[best]:.3g} expected positives in {horizon} labels; p={p[best]:.2f}"
            )
            counts[node], hits[node] = 1.0, p[best]  # the fictional label: its expectation
            left = np.delete(left, best)
        return Batch(np.array(picks), np.array(scores), self.name, state.round, reasons)
