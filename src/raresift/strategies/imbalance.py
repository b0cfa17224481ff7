"""Active learning made for class imbalance: GALAXY and DIRECT, vectorised over the candidates.

Both look at the model's per-class margin ``d_k(x) = p_k(x) - max_{j != k} p_j(x)`` and sort the
items (labeled and candidates; over a SEALS pool, only those) by it, once per class: K linear
orders in which the labeled items of class k sit at one end and the others at the other. The
boundary of class k in its order is where a labeled item of class k meets one of another class.

``galaxy`` (Zhang, Katz-Samuels & Nowak, ICML 2022)
    The K orders form a graph of K paths. S2-style bisection: the shortest path between two
    oppositely labeled nodes with only unlabeled nodes in between (over all K paths) is cut in
    the middle, the node there is queried. Within a batch the labels of the picks are unknown, so
    both halves of a bisected path stay candidates: every path is bisected once (shortest first)
    before any half is, then the halves, and so on; when no path is left the batch is filled
    with the smallest margins (closest to a boundary).
``direct`` (Nuggehalli, Zhang, Jain & Nowak, 2023)
    Per class, the threshold in its order that best separates the labeled items of the class
    from the rest (fewest labeled items on the wrong side: a 1-D agnostic threshold, robust to
    some label noise); the picks are the unlabeled items nearest each class's threshold,
    alternately on either side, the classes taken in turn (those with the fewest labels first,
    so rare classes lead).

Both need a fitted model with ``predict_proba`` and at least one labeled item.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy
from raresift.strategies.uncertainty import predict_proba


def class_margins(proba: np.ndarray) -> np.ndarray:
    """``d_k = p_k - max_{j != k} p_j`` for every item and class, (n, K).

    >>> class_margins(np.array([[0.7, 0.2, 0.1]])).round(2).tolist()
    [[0.5, -0.5, -0.6]]
    """
    top2 = -np.sort(-proba, axis=1)[:, :2] if proba.shape[1] > 1 else np.c_[proba, proba * 0]
    best_other = np.where(proba >= top2[:, :1], top2[:, 1:2], top2[:, :1])
    return proba - best_other


def _nodes(state: SelectionState, candidates: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node ids (labeled first, then candidates), their labels (-1: unlabeled) and margins."""
    cands = as_ids(candidates, "candidates")
    labeled = state.labels.ids
    ids = np.concatenate([labeled, cands])
    labels = np.concatenate([state.labels.of(labeled), np.full(cands.size, -1)]).astype(np.int64)
    return ids, labels, class_margins(predict_proba(state, ids))


def _fill(chosen: list[int], reasons: list[str], unlabeled: np.ndarray, margins, budget, rng):
    """Complete a batch with the unlabeled nodes of smallest |margin| (nearest a boundary)."""
    taken = np.zeros(margins.shape[0], dtype=bool)
    taken[chosen] = True
    free = unlabeled[~taken[unlabeled]]
    closeness = np.abs(margins[free]).min(axis=1)
    order = np.lexsort((rng.random(free.size), closeness))[: budget - len(chosen)]
    for node in free[order]:
        chosen.append(int(node))
        reasons.append(f"nearest a class boundary (margin {np.abs(margins[node]).min():.3f})")


@register_strategy("galaxy")
class GalaxyStrategy(Strategy):
    """GALAXY: bisection of the shortest path between oppositely labeled items over the K
    margin-sorted orders (see the module docstring)."""

    requirements = frozenset({"probabilities"})

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        ids, labels, margins = _nodes(state, candidates)
        n_lab = int((labels >= 0).sum())
        budget = check_budget(budget, ids.size - n_lab, "candidates")
        heap: list[tuple[int, int, float, int, int, int]] = []  # depth, length, tie, k, a, b
        orders = np.argsort(margins, axis=0, kind="stable")  # (n, K): node at each rank
        rng = state.rng
        for k in range(margins.shape[1]):
            order = orders[:, k]
            ranks = np.flatnonzero(labels[order] >= 0)  # labeled positions along path k
            if ranks.size < 2:
                continue
            side = labels[order[ranks]] == k
            cut = np.flatnonzero(side[1:] != side[:-1])  # consecutive labeled, opposite labels
            for a, b in zip(ranks[cut], ranks[cut + 1], strict=True):
                if b - a > 1:
                    heapq.heappush(heap, (0, int(b - a), float(rng.random()), k, int(a), int(b)))
        chosen: list[int] = []
        reasons: list[str] = []
        taken = np.zeros(ids.size, dtype=bool)
        while heap and len(chosen) < budget:
            depth, length, _, k, a, b = heapq.heappop(heap)
            mid = (a + b) // 2
            node = int(orders[mid, k])
            if not taken[node]:
                taken[node] = True
                chosen.append(node)
                reasons.append(
                    f"galaxy: middle of a path of {length - 1} unlabeled items between opposite "
                    f"labels of class {k}"
                )
            for lo, hi in ((a, mid), (mid, b)):
                if hi - lo > 1:
                    heapq.heappush(heap, (depth + 1, hi - lo, float(rng.random()), k, lo, hi))
        if len(chosen) < budget:
            _fill(chosen, reasons, np.arange(n_lab, ids.size), margins, budget, rng)
        picked = np.asarray(chosen, dtype=np.int64)
        scores = -np.abs(margins[picked]).min(axis=1)
        return Batch(ids[picked], scores, self.name, state.round, reasons)


def best_thresholds(sorted_labels: np.ndarray, k: int) -> tuple[int, int]:
    """The threshold rank ``t`` (items at ranks >= t are called class ``k``) that misplaces
    the fewest labeled items of ``sorted_labels`` (-1: unlabeled, ignored), and that count.

    >>> best_thresholds(np.array([0, -1, 0, -1, 2, -1, 2]), 2)
    (4, 0)
    """
    pos = (sorted_labels == k).astype(np.int64)
    neg = ((sorted_labels >= 0) & (sorted_labels != k)).astype(np.int64)
    # errors(t) = positives below t + negatives at or above t, t = 0..n
    below = np.concatenate([[0], np.cumsum(pos)])
    above = neg.sum() - np.concatenate([[0], np.cumsum(neg)])
    errors = below + above
    best = np.flatnonzero(errors == errors.min())
    t = int(best[best.size // 2])  # the middle of the optimal run
    return t, int(errors[t])


@register_strategy("direct")
class DirectStrategy(Strategy):
    """DIRECT: the unlabeled items nearest each class's best 1-D threshold in its margin order,
    classes in turn, fewest labels first (see the module docstring)."""

    requirements = frozenset({"probabilities"})

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        ids, labels, margins = _nodes(state, candidates)
        n_lab = int((labels >= 0).sum())
        budget = check_budget(budget, ids.size - n_lab, "candidates")
        n_classes = margins.shape[1]
        counts = np.bincount(labels[labels >= 0], minlength=n_classes)
        class_order = np.lexsort((state.rng.random(n_classes), counts))
        queues = []
        for k in class_order:
            order = np.argsort(margins[:, k], kind="stable")
            t, errors = best_thresholds(labels[order], k)
            free = np.flatnonzero(labels[order] < 0)
            right, left = free[free >= t], free[free < t][::-1]
            walk = np.empty(right.size + left.size, dtype=np.int64)  # alternate sides
            m = min(right.size, left.size)
            walk[: 2 * m : 2], walk[1 : 2 * m : 2] = right[:m], left[:m]
            walk[2 * m :] = right[m:] if right.size > m else left[m:]
            queues.append((int(k), order[walk], errors))
        chosen: list[int] = []
        reasons: list[str] = []
        taken = np.zeros(ids.size, dtype=bool)
        heads = [0] * len(queues)
        while len(chosen) < budget:
            progressed = False
            for q, (k, queue, errors) in enumerate(queues):
                while heads[q] < queue.size and taken[queue[heads[q]]]:
                    heads[q] += 1
                if heads[q] >= queue.size or len(chosen) >= budget:
                    continue
                node = int(queue[heads[q]])
                taken[node] = True
                chosen.append(node)
                reasons.append(
                    f"direct: {heads[q] + 1}. nearest the class-{k} threshold "
                    f"({errors} labeled item(s) on the wrong side)"
                )
                progressed = True
            if not progressed:
                break
        picked = np.asarray(chosen, dtype=np.int64)
        scores = -np.abs(margins[picked]).min(axis=1)
        return Batch(ids[picked], scores, self.name, state.round, reasons)
