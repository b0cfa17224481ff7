"""Greedy maximisers (naive, lazy, stochastic, lazier-than-lazy), the partition trick, and
``select``."""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.errors import ConfigError, ValidationError
from raresift.params import positive_int
from raresift.pool import check_budget
from raresift.submodular.base import SetFunction
from raresift.submodular.objectives import make_objective

log = logging.getLogger("raresift")

_ALIASES = {
    "naive": "naive",
    "naivegreedy": "naive",
    "lazy": "lazy",
    "lazygreedy": "lazy",
    "stochastic": "stochastic",
    "stochasticgreedy": "stochastic",
    "lazier": "lazier",
    "lazierthanlazy": "lazier",
    "lazierthanlazygreedy": "lazier",
}
OPTIMIZERS = ("naive", "lazy", "stochastic", "lazier")
#: Each optimizer that trusts stale gains as upper bounds, and its exact counterpart: the same
#: search (the same random samples for "lazier") with every gain it compares fresh.
EXACT_COUNTERPART = {"lazy": "naive", "lazier": "stochastic"}


@dataclass
class Selection:
    """Picks in the order they were made, each with its marginal gain at that moment.

    ``optimizer`` is the one that ran; ``note`` says why, when it is not the one asked for.
    """

    indices: np.ndarray
    gains: np.ndarray
    objective: str = ""
    optimizer: str = ""
    note: str = ""

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def value(self) -> float:
        """``f(picks)``: the sum of the gains."""
        return float(self.gains.sum())


def _last_argmax(values: np.ndarray) -> int:
    """Position of the maximum; among equal maxima the last one (the larger candidate index)."""
    return values.size - 1 - int(np.argmax(values[::-1]))


class _Run:
    """Book-keeping shared by every optimizer: picks, gains, stopping rules, progress."""

    def __init__(self, fn: SetFunction, budget: int, stop_zero: bool, stop_negative: bool, bar):
        self.fn, self.budget, self.bar = fn, budget, bar
        self.stop_zero, self.stop_negative = stop_zero, stop_negative
        self.picks: list[int] = []
        self.gains: list[float] = []
        self.available = np.ones(fn.n, dtype=bool)

    def accept(self, j: int, gain: float) -> bool:
        """Record pick ``j``; False when a stopping rule ends the run instead."""
        if not np.isfinite(gain):
            raise ValidationError(f"{self.fn.name}: marginal gain of candidate {j} is {gain}")
        if (self.stop_zero and gain <= 0) or (self.stop_negative and gain < 0):
            log.info("%s: stopping after %d picks, best gain %.4g", self.fn.name, len(self), gain)
            return False
        self.fn.add(j)
        self.available[j] = False
        self.picks.append(j)
        self.gains.append(float(gain))
        self.bar.update(1)
        return True

    def __len__(self) -> int:
        return len(self.picks)


def _naive(run: _Run, rng: np.random.Generator, epsilon: float) -> None:
    while len(run) < run.budget:
        idx = np.flatnonzero(run.available)
        gains = run.fn.gains(idx)
        best = _last_argmax(gains)
        if not run.accept(int(idx[best]), float(gains[best])):
            return


def _lazy(run: _Run, rng: np.random.Generator, epsilon: float) -> None:
    """Minoux's lazy greedy: stale gains are upper bounds on submodular objectives.

    Stale entries are refreshed in vectorised batches that double while a step keeps finding stale
    tops (1, 2, 4, ... entries), so objectives whose gains all move at once stay fast.
    """
    gains = run.fn.gains()
    heap = list(zip((-gains).tolist(), range(0, -run.fn.n, -1), strict=True))
    heapq.heapify(heap)  # min-heap on (-gain, -index): largest gain, then largest index
    fresh_at = np.zeros(run.fn.n, dtype=np.int64)
    batch = 1
    while len(run) < run.budget:
        neg_gain, neg_j = heap[0]
        if fresh_at[-neg_j] == len(run):
            heapq.heappop(heap)
            if not run.accept(-neg_j, -neg_gain):
                return
            batch = 1
            continue
        popped = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
        stale = np.array([-j for _, j in popped if fresh_at[-j] != len(run)], dtype=np.int64)
        refreshed = dict(zip(stale.tolist(), (-run.fn.gains(stale)).tolist(), strict=True))
        fresh_at[stale] = len(run)
        for neg_gain, neg_j in popped:
            heapq.heappush(heap, (refreshed.get(-neg_j, neg_gain), neg_j))
        batch *= 2


def _sample_size(n: int, budget: int, epsilon: float) -> int:
    return max(1, math.ceil(n / budget * math.log(1 / epsilon)))


def _stochastic(run: _Run, rng: np.random.Generator, epsilon: float) -> None:
    """Stochastic greedy: the best of ``R = ceil(n / B ln(1 / epsilon))`` random remaining items."""
    size = _sample_size(run.fn.n, run.budget, epsilon)
    while len(run) < run.budget:
        idx = np.flatnonzero(run.available)
        sample = np.sort(rng.choice(idx, size=min(size, idx.size), replace=False))
        gains = run.fn.gains(sample)
        best = _last_argmax(gains)
        if not run.accept(int(sample[best]), float(gains[best])):
            return


def _lazier(run: _Run, rng: np.random.Generator, epsilon: float) -> None:
    """Lazier than lazy greedy: the stochastic sample, searched in order of stale upper bounds."""
    size = _sample_size(run.fn.n, run.budget, epsilon)
    bound = np.full(run.fn.n, np.inf)
    fresh_at = np.full(run.fn.n, -1, dtype=np.int64)
    while len(run) < run.budget:
        idx = np.flatnonzero(run.available)
        sample = rng.choice(idx, size=min(size, idx.size), replace=False)
        unseen = sample[np.isinf(bound[sample])]
        if unseen.size:
            bound[unseen] = run.fn.gains(unseen)
            fresh_at[unseen] = len(run)
        order = sample[np.lexsort((-sample, -bound[sample]))]
        best_j, best_gain = -1, -np.inf
        for j in order.tolist():
            if bound[j] < best_gain or (bound[j] == best_gain and j < best_j):
                break  # no stale bound left can beat the best fresh gain
            if fresh_at[j] != len(run):
                bound[j] = float(run.fn.gains([j])[0])
                fresh_at[j] = len(run)
            if bound[j] > best_gain or (bound[j] == best_gain and j > best_j):
                best_j, best_gain = j, bound[j]
        if not run.accept(best_j, best_gain):
            return


_RUNNERS: dict[str, Callable[[_Run, np.random.Generator, float], None]] = {
    "naive": _naive,
    "lazy": _lazy,
    "stochastic": _stochastic,
    "lazier": _lazier,
}


def _check_informative(fn: SetFunction) -> None:
    """Raise when every candidate gains exactly 0 from the empty selection: greedy picks would be
    arbitrary (facility location on a kernel with no positive similarity is the usual cause)."""
    gains = fn.gains()
    if gains.size and not np.any(gains):
        raise ValidationError(
            f"every candidate gains 0 under {fn.name!r}, so any pick would be arbitrary: its "
            "similarities are all <= 0 (facility location counts only positive ones) or eta / "
            "nu zero it out; use the shifted cosine (metric='cosine', values in [0, 1]), a "
            "kernel with positive similarities, or eta > 0"
        )


def partition_budgets(sizes: Any, budget: int) -> np.ndarray:
    """Split ``budget`` over parts in proportion to their ``sizes`` (largest remainders round up);
    the result sums to ``budget`` exactly and never exceeds a part's size.

    >>> partition_budgets([34, 33, 33], 10).tolist()
    [4, 3, 3]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    quota = budget * sizes / sizes.sum()
    out = np.floor(quota).astype(np.int64)
    remainder = budget - int(out.sum())
    out[np.argsort(-(quota - out), kind="stable")[:remainder]] += 1
    return out


def _check_partitions(partitions: Any, n: int) -> None:
    if positive_int(partitions, "partitions") > n:
        raise ValidationError(f"partitions must lie in 1..{n}, got {partitions}")


def partition_plan(
    n: int, partitions: int, budget: int, seed: int | np.random.Generator | None
) -> list[tuple[np.ndarray, int, int]]:
    """The partition trick's split of ``n`` candidates: one ``(members, budget, seed)`` per part
    with a positive budget.

    The candidates are permuted at random with ``seed`` and cut into ``partitions`` parts of
    near-equal size; ``members`` are a part's positions (ascending), the budget is shared in
    proportion to the part sizes (:func:`partition_budgets`) and every part gets its own seed for
    a stochastic optimizer, so the parts can be solved in any order or in parallel (one per
    worker, :mod:`raresift.distributed`) with the same picks.

    >>> [(m.size, b) for m, b, _ in partition_plan(10, 3, 4, seed=0)]
    [(4, 2), (3, 1), (3, 1)]
    """
    _check_partitions(partitions, n)
    rng = np.random.default_rng(seed)
    chunks = np.array_split(rng.permutation(n), partitions)
    budgets = partition_budgets([c.size for c in chunks], budget)
    seeds = rng.integers(2**63, size=partitions)
    return [
        (np.sort(c), int(b), int(s))
        for c, b, s in zip(chunks, budgets, seeds, strict=True)
        if b > 0
    ]


def select(
    objective: str | SetFunction,
    budget: int,
    optimizer: str = "lazy",
    *,
    stop_if_zero_gain: bool = False,
    stop_if_negative_gain: bool = False,
    epsilon: float = 0.1,
    seed: int | np.random.Generator | None = 0,
    partitions: int = 1,
    progress: bool = False,
    **objective_params: Any,
) -> Selection:
    """Greedily pick ``budget`` candidates maximising ``objective`` (starting from an empty
    selection: a :class:`SetFunction` passed in is reset first).

    ``objective`` is a :class:`SetFunction` or a name for :func:`make_objective`, which then gets
    ``objective_params`` (``data=``, ``query=``, ``conditioning=``, ``metric=``, ``eta=`` ...).
    ``optimizer`` is ``"naive"``, ``"lazy"`` (Minoux), ``"stochastic"`` or ``"lazier"`` (both
    sample ``ceil(n / B ln(1 / epsilon))`` items a step, drawn with ``seed``). The lazy ones
    trust stale gains as upper bounds, which holds only for a submodular objective
    (:attr:`SetFunction.submodular`): on any other, ``"lazy"`` runs ``"naive"`` and ``"lazier"``
    runs ``"stochastic"`` (the same samples, every gain fresh), logs so and says so in the
    selection's ``note``. ``"lazy"`` also runs the naive loop, with the same picks, for an
    objective that keeps all its gains current anyway (``all_gains_cheap``: every built-in
    one), where stale bounds save nothing; ``optimizer`` of the result names what ran.
    ``stop_if_zero_gain`` / ``stop_if_negative_gain`` end the run early when the best gain is
    ``<= 0`` / ``< 0``. ``partitions > 1`` applies the partition trick: the
    candidates are split at random into that many parts (:func:`partition_plan`), the budget is
    shared in proportion to the part sizes, each part is solved on its own (the objective
    restricted to it, with the part's own seed) and the picks are concatenated.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 5))
    >>> sel = select("fl", 3, data=X)
    >>> sel.indices.shape, bool(np.all(np.diff(sel.gains) <= 0))
    ((3,), True)
    """
    fn = make_objective(objective, **objective_params) if isinstance(objective, str) else objective
    if not isinstance(fn, SetFunction):
        raise ConfigError(f"objective must be a name or a SetFunction, got {type(fn).__name__}")
    if isinstance(objective, SetFunction) and objective_params:
        raise ConfigError(
            f"objective parameters {sorted(objective_params)} only apply to objectives "
            "given by name"
        )
    key = _ALIASES.get(str(optimizer).lower().replace("_", "").replace("-", ""))
    if key is None:
        raise ConfigError(
            f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
        )
    ran, note = key, ""
    if key in EXACT_COUNTERPART and not fn.submodular:
        ran = EXACT_COUNTERPART[key]
        note = (
            f"{ran} greedy: {fn.name} is not submodular on this kernel, so {key} greedy's "
            "stale bounds would not be exact"
        )
        log.info("%s", note)
    elif key == "lazy" and fn.all_gains_cheap:
        ran = "naive"  # every gain is current anyway: the same picks, no heap
    budget = check_budget(budget, fn.n, "candidates")
    if not (0 < epsilon < 1):
        raise ValidationError(f"epsilon must lie in (0, 1), got {epsilon}")
    _check_partitions(partitions, fn.n)
    stops = (stop_if_zero_gain, stop_if_negative_gain)
    if partitions == 1:
        parts = [(np.arange(fn.n), fn, budget, np.random.default_rng(seed))]
    else:
        parts = [
            (members, None, part_budget, np.random.default_rng(part_seed))
            for members, part_budget, part_seed in partition_plan(fn.n, partitions, budget, seed)
        ]
    picks, gains = [], []
    with tqdm(total=budget, disable=not progress, desc=f"{fn.name} {ran}") as bar:
        for members, part_fn, part_budget, rng in parts:
            if part_fn is None:
                part_fn = fn.restrict(members)
            part_fn.reset()
            if part_fn.all_gains_cheap and not stop_if_zero_gain:
                _check_informative(part_fn)
            run = _Run(part_fn, part_budget, *stops, bar)
            _RUNNERS[ran](run, rng, epsilon)
            picks.append(members[np.asarray(run.picks, dtype=np.int64)])
            gains.append(np.asarray(run.gains, dtype=np.float64))
    indices = np.concatenate(picks).astype(np.int64)
    log.debug("%s/%s picked %d of %d candidates", fn.name, ran, indices.size, fn.n)
    return Selection(indices, np.concatenate(gains), fn.name, ran, note)
