"""Finding the items of rare classes in a labeling session: cold start, search, fallbacks.

``coverage``
    A cold start that needs no model (ProbCover, Yehuda et al. NeurIPS 2022): every item covers
    the items within cosine similarity ``delta`` of it in the fixed embeddings; greedily pick the
    item covering most items that no labeled item or earlier pick covers. The first picks land
    on the pool's dense regions (the common classes); once those are covered, the largest
    uncovered mass is what nobody has labeled yet, where the rare classes are. ``delta`` is set
    so that an item's ball holds ``ball`` items on average.
``rare-search``
    The class session's search for the rare classes (``positive``: their class indices). While
    no rare item is known, half of each batch is ``coverage`` and half uniformly random (the
    replay study: coverage alone finds rare items early on texts and late on pixels, random
    the other way round; half of each beat random at 100 labels on every data set). Once some
    are known, most of the batch goes to the items most likely to belong to any rare class (the
    model's summed probability; by cosine similarity to the known rare items while the answers
    hold no other class), and a share ``explore`` (``explore_found`` once every rare class has
    an item) keeps covering unexplored regions, where rare classes not found yet are. Each
    pick's reason says which.
:class:`EqualGainFallback`
    Wraps a strategy whose scores can all be equal (SIMILAR's gains over gradient embeddings of
    a confident model): such a batch is the tie-break's, so it says so and the fallback picks.
:func:`session_strategy`
    The strategy a session builds from a name: the rare classes as ``positive``, SIMILAR's
    representation and fallback.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from raresift.params import Instance, Interval, Options
from raresift.pool import as_ids, check_budget
from raresift.strategies.base import Batch, SelectionState, Strategy, register_strategy, top_scores

log = logging.getLogger("raresift")

#: Items a coverage step looks at: a larger candidate set is sampled down to this many.
COVERAGE_SAMPLE = 4_000
#: SIMILAR's item representation in a session (chosen from the replay study,
#: docs/results/replay-sessions).
SESSION_REPRESENTATION = "embedding"
#: Average ball sizes (items) ProbCover's radius is chosen among, and the purity it keeps.
BALLS = (5, 10, 20, 40, 80, 160, 320)
PURITY = 0.95
#: Relative spread under which a batch's scores count as all equal.
EQUAL_GAINS = 1e-9


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def coverage_radii(units: np.ndarray, sims: np.ndarray, clusters: int, rng) -> list[float]:
    """ProbCover's ball radius (as a cosine similarity) and the finer ones below it, coarsest
    first: the largest ball that stays pure, i.e. for at least :data:`PURITY` of the points
    every item in its ball falls in its own k-means cluster (``clusters`` clusters), then the
    radii of the smaller average ball sizes of :data:`BALLS`."""
    from sklearn.cluster import KMeans

    m = units.shape[0]
    k = int(min(max(2, clusters), m - 1))
    labels = KMeans(k, n_init=1, random_state=int(rng.integers(2**31))).fit_predict(units)
    other = labels[:, None] != labels[None, :]
    ordered = -np.sort(-sims, axis=1)  # each row: similarities, highest first
    radii = []
    for ball in BALLS:
        if ball >= m:
            break
        delta = float(np.median(ordered[:, ball]))
        if radii and np.any((sims >= delta) & other, axis=1).mean() > 1 - PURITY:
            break
        radii.append(delta)
    return radii[::-1] or [1.0]


def coverage_picks(
    state: SelectionState, candidates: np.ndarray, budget: int, clusters: int = 10
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """ProbCover's greedy max-coverage picks among ``candidates``: ids, the number of newly
    covered items each pick brought (of the sample) and a reason per pick. The ball radius is
    the first of :func:`coverage_radii` (``clusters``: a class session's classes); once every
    item is covered at one radius the picks go on at the next, finer one."""
    rng = state.rng
    cands = as_ids(candidates, "candidates")
    budget = check_budget(budget, cands.size, "candidates")
    sample = cands if cands.size <= COVERAGE_SAMPLE else np.sort(
        rng.choice(cands, COVERAGE_SAMPLE, replace=False)
    )  # fmt: skip
    labeled = state.labels.ids
    if labeled.size > COVERAGE_SAMPLE // 2:  # what covers: a sample of the answers
        labeled = np.sort(rng.choice(labeled, COVERAGE_SAMPLE // 2, replace=False))
    points = np.concatenate([sample, labeled])
    units = _unit(state.pool.embeddings_of(points))
    sims = units @ units.T
    m, n = points.size, sample.size
    radii = coverage_radii(units, sims, clusters, rng) if m > 2 else [1.0]
    chosen, brought, reasons = [], [], []
    taken = np.zeros(n, dtype=bool)
    for delta in radii:
        adjacency = sims >= delta
        covers = np.concatenate([np.flatnonzero(taken), np.arange(n, m)])
        covered = adjacency[covers].any(axis=0) if covers.size else np.zeros(m, dtype=bool)
        gains = adjacency[:n][:, ~covered].sum(axis=1).astype(np.float64)
        while len(chosen) < budget:
            open_gains = np.where(taken, -1.0, gains)
            if open_gains.max() <= 0:
                break
            i = int(top_scores(open_gains, 1, rng)[0])
            newly = adjacency[i] & ~covered
            chosen.append(i)
            brought.append(float(gains[i]))
            reasons.append(
                f"covers {int(gains[i])} items no answer or earlier pick covers (coverage: "
                f"ball of cosine >= {delta:.2f})"
            )
            covered |= newly
            taken[i] = True
            gains -= adjacency[:n][:, newly].sum(axis=1)
        if len(chosen) >= budget:
            break
    ids = sample[np.asarray(chosen, dtype=np.int64)]
    if ids.size < budget:  # everything covered at the finest radius: the rest at random
        rest = np.setdiff1d(cands, ids)
        extra = rng.choice(rest, budget - ids.size, replace=False)
        ids = np.concatenate([ids, extra])
        brought += [0.0] * extra.size
        reasons += ["random: every item is covered by an answer or a pick"] * extra.size
    return ids, np.asarray(brought), reasons


@register_strategy("coverage")
class CoverageStrategy(Strategy):
    """ProbCover's max-coverage cold start over the fixed embeddings (needs no model)."""

    parameter_constraints = {"clusters": [Interval(int, 2, None)]}

    def __init__(self, clusters: int = 10):
        self.clusters = clusters

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        ids, scores, reasons = coverage_picks(state, as_ids(candidates), budget, self.clusters)
        return Batch(ids, scores, self.name, state.round, reasons)


def _class_list(positive) -> list[int]:
    return [int(positive)] if np.isscalar(positive) else [int(c) for c in positive]


@register_strategy("rare-search")
class RareSearchStrategy(Strategy):
    """Search for the items of rare classes (see the module docstring).

    Parameters
    ----------
    positive : int or list of int
        The rare classes (class indices); a class session passes those named at init.
    explore : float
        Share of the batch that covers unexplored regions while some rare class has no
        labeled item.
    explore_found : float
        That share once every rare class has a labeled item.
    clusters : int
        Clusters ProbCover's purity is judged by (a class session: its number of classes).
    start : {"coverage", "random", "mixed"}
        How it picks while no rare item is known (the cold start): coverage, uniformly random,
        or half of each batch coverage and half random.
    """

    requirements = frozenset({"probabilities"})
    parameter_constraints = {
        "explore": [Interval(float, 0, 1)],
        "explore_found": [Interval(float, 0, 1)],
        "clusters": [Interval(int, 2, None)],
        "positive": [Interval(int, 0, None), Instance(list, tuple)],
        "start": [Options("coverage", "random", "mixed")],
    }

    def __init__(
        self,
        positive=1,
        explore: float = 0.2,
        explore_found: float = 0.1,
        clusters: int = 10,
        start: str = "mixed",
    ):
        self.positive = positive
        self.explore = explore
        self.explore_found = explore_found
        self.clusters = clusters
        self.start = start

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        from raresift.strategies.binary import positive_proba

        cands = as_ids(candidates, "candidates")
        budget = check_budget(budget, cands.size, "candidates")
        rare = _class_list(self.positive)
        labels = state.labels
        values = labels.values if len(labels) else np.empty(0, dtype=np.int64)
        is_rare = np.isin(values, rare)
        known = labels.ids[is_rare]
        if known.size == 0:
            return self._cold(state, cands, budget)
        missing = [c for c in rare if not np.any(values == c)]
        share = self.explore if missing else self.explore_found
        n_explore = int(round(share * budget))
        n_exploit = budget - n_explore
        model_ranks = (
            state.model is not None and np.unique(values).size >= 2 and bool(np.any(~is_rare))
        )
        if model_ranks:
            scores = positive_proba(state, cands, rare)
            how = "p(any rare class) {:.3f}"
        else:
            units = _unit(state.pool.embeddings_of(known))
            scores = (_unit(state.pool.embeddings_of(cands)) @ units.T).max(axis=1)
            scores = scores.astype(np.float64)
            how = "cosine {:.2f} to a known rare item (no other class answered yet)"
        order = top_scores(scores, n_exploit, state.rng)
        ids = cands[order]
        out_scores = list(scores[order])
        reasons = [f"most likely rare: {how.format(s)}" for s in out_scores]
        if n_explore:
            rest = np.setdiff1d(cands, ids)
            more, more_scores, more_reasons = coverage_picks(state, rest, n_explore, self.clusters)
            why = (f"exploring for rare classes with no item yet ({len(missing)} of {len(rare)})"
                   if missing else "exploring")  # fmt: skip
            ids = np.concatenate([ids, more])
            out_scores += list(more_scores)
            reasons += [f"{why}: {r}" for r in more_reasons]
        return Batch(ids, np.asarray(out_scores), self.name, state.round, reasons)

    def _cold(self, state: SelectionState, cands: np.ndarray, budget: int) -> Batch:
        """No rare item known: coverage picks, random picks, or half of each ("mixed")."""
        share = {"coverage": 1.0, "random": 0.0, "mixed": 0.5}[self.start]
        n_cover = int(round(share * budget))
        ids, scores, reasons = (
            coverage_picks(state, cands, n_cover, self.clusters)
            if n_cover
            else (np.empty(0, np.int64), np.empty(0), [])
        )
        reasons = [f"no rare item known yet: {r}" for r in reasons]
        if n_cover < budget:
            rest = np.setdiff1d(cands, ids)
            more = rest[top_scores(state.rng.random(rest.size), budget - n_cover, state.rng)]
            ids = np.concatenate([ids, more])
            scores = np.concatenate([scores, np.zeros(more.size)])
            reasons += ["no rare item known yet: uniformly random pick"] * more.size
        return Batch(ids, scores, self.name, state.round, reasons)


class EqualGainFallback(Strategy):
    """``strategy``, unless all its picks score the same: then the scores cannot tell the
    candidates apart (the batch would be the tie-break's, e.g. one common class), so the batch
    says so and ``fallback`` picks instead."""

    def __init__(self, strategy: Strategy, fallback: Strategy):
        self.strategy = strategy
        self.fallback = fallback
        self.name = strategy.name

    def requires(self) -> frozenset[str]:
        return self.strategy.requires() | self.fallback.requires()

    def select(self, state: SelectionState, candidates: Any, budget: int) -> Batch:
        batch = self.strategy.select(state, candidates, budget)
        scores = batch.scores
        if scores.size < 2 or np.ptp(scores) > EQUAL_GAINS * max(1.0, float(np.abs(scores).max())):
            return batch
        note = (
            f"every {batch.strategy} gain of this batch is {scores[0]:.4g}, so they cannot tell "
            f"the candidates apart; {self.fallback.name} picks instead"
        )
        log.warning("%s", note)
        other = self.fallback.select(state, candidates, budget)
        reasons = [f"{note}: {r}" for r in other.reasons]
        return Batch(other.ids, other.scores, other.strategy, state.round, reasons)


def session_strategy(
    name: str,
    *,
    kind: str,
    positive: list[int],
    params: dict[str, Any] | None = None,
    n_classes: int | None = None,
) -> Strategy:
    """The strategy a session runs for ``name``: in a class session (``kind="classes"``) the
    concept strategies seek the rare classes ``positive`` (class indices); SIMILAR functions use
    :data:`SESSION_REPRESENTATION` and fall back to ``mlp`` (or ``coverage`` with no rare item
    known) when every gain is equal."""
    from raresift.strategies import make_strategy
    from raresift.submodular.objectives import OBJECTIVES

    params = dict(params or {})
    target = positive if kind == "classes" else 1
    if name in ("mlp", "information-density", "rare-search", "ens"):
        params.setdefault("positive", list(target) if isinstance(target, list) else target)
    if name in ("rare-search", "coverage") and n_classes:
        params.setdefault("clusters", max(2, n_classes))
    if name in OBJECTIVES:
        params.setdefault("representation", SESSION_REPRESENTATION)
        strategy = make_strategy(name, **params)
        fallback = make_strategy(
            "rare-search", positive=target, explore=0.0, clusters=max(2, n_classes or 10)
        )
        return EqualGainFallback(strategy, fallback)
    return make_strategy(name, **params)
