"""SEALS' within-batch expansion (papers/002, Algorithm 2), done by the strategy, pure.

Over a SEALS pool with ``expand="item"``, a scoring strategy picks one item at a time: the best
eligible item is taken, its k nearest neighbours become eligible for the rest of the batch
(scored by the same model, no retraining), and so on. :func:`select_expanding` does this over
a :class:`~raresift.candidates.CandidateView` without changing the pool: the neighbours it adds
live in the batch's own working buffer, and the pool only grows when the picks are labeled
(``CandidatePool.update``). In a simulation, where every pick is labeled, pool and batch are
exactly Algorithm 2's.

Every k-NN request of a batch goes through ``candidates.neighbors``: one call for the
neighbours of the current top ``budget`` candidates (searched ahead), then one per later pick
outside that set. The view's ``search_ahead`` (3 for a local index, more for index actors,
whose calls cost more) lets each of those calls also take the items most likely picked next:
a round makes a few calls instead of one per pick, and only what is fetched depends on that
guess, never a pick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.density import normalize_rows
from raresift.errors import BudgetError, ValidationError
from raresift.pool import check_budget
from raresift.strategies.base import Batch, SelectionState


def _checked_values(strategy, value, state: SelectionState, ids: np.ndarray) -> np.ndarray:
    """``value(state, ids)`` (a strategy's scores or informativeness), checked."""
    if ids.size == 0:
        return np.empty(0)
    scores = np.asarray(value(state, ids), dtype=np.float64)
    if scores.shape != ids.shape or not np.all(np.isfinite(scores)):
        raise ValidationError(f"strategy {strategy.name!r} produced invalid scores")
    return scores


def select_expanding(strategy: Any, state: SelectionState, candidates: Any, budget: int) -> Batch:
    """Algorithm 2's inner loop for a scoring strategy: pick the best, add its neighbours, repeat.

    The picks are exactly those of rescoring the growing pool after every step, but the work is
    batched: the neighbours of the current top ``budget`` candidates are requested in one call
    and their newcomers scored in one model call (later picks outside that set are searched and
    their newcomers scored one at a time); members that cannot be among the picks leave the
    working buffer at once; scores live in append-only buffers and the batch's bookkeeping in
    small dicts and sets. For a density-weighted strategy (``informativeness`` and
    ``density_weights``) the informativeness is computed once per item and the density weights
    follow the growing pool (:class:`RunningDensity`). Ties are broken with ``state.rng``.
    With ``candidates.search_ahead`` = a > 0, a pick that has no neighbour row yet is searched
    together with the a best-valued items without one (live members of the buffer and scored
    outsiders): fewer calls, the same picks.
    """
    members = candidates.ids
    n = members.size
    budget = check_budget(budget, max(n, 1), "candidates in the SEALS pool")
    weighted = callable(getattr(strategy, "density_weights", None))
    value = strategy.informativeness if weighted else strategy.score
    cap = n + budget * candidates.k
    ids = np.empty(cap, dtype=np.int64)
    base = np.full(cap, -np.inf)
    ids[:n] = members
    base[:n] = _checked_values(strategy, value, state, members)
    if weighted:
        density = RunningDensity(strategy, normalize_rows(state.pool.embeddings_of(members)), cap)
    elif budget < n:
        # members' scores stay fixed during the batch, so only the top `budget` of them (and
        # those tied with the last) can ever be picked: drop the rest from the buffer
        keep = np.flatnonzero(base[:n] >= np.partition(base[:n], n - budget)[n - budget])
        ids[: keep.size], base[: keep.size] = ids[keep], base[keep]
        n = keep.size

    lookahead = int(getattr(candidates, "search_ahead", 0))
    rows: dict[int, list[int]] = {}  # neighbour rows requested during this batch
    outside: dict[int, float] = {}  # values of scored items that could join the pool

    def fetch(queries: np.ndarray) -> None:
        """Request the neighbours of ``queries`` and score their newcomers, one call each."""
        found = candidates.neighbors(queries)
        rows.update(zip(queries.tolist(), found.tolist(), strict=True))
        fresh = np.unique(found[found >= 0])
        fresh = fresh[candidates.joinable(fresh)]
        fresh = fresh[[i not in outside for i in fresh.tolist()]]
        values = _checked_values(strategy, value, state, fresh)
        outside.update(zip(fresh.tolist(), values.tolist(), strict=True))

    def searched_with(pick: int) -> np.ndarray:
        """``pick`` and the ``search_ahead`` best-valued items without a row (a guess at the
        next picks; every pick has a row, so none of them is among these)."""
        live = np.flatnonzero(base[:n] > -np.inf)
        if weighted:  # the buffer's scores as ranked ahead; outsiders' densities are unknown
            known, values = ids[live], density.scores(base)[live]
        else:
            scored = np.fromiter(outside.values(), np.float64, len(outside))
            known = np.concatenate([ids[live], np.fromiter(outside, np.int64, len(outside))])
            values = np.concatenate([base[live], scored])
        # the taken are both live and outsiders; `rows` holds every other item to skip
        top = min(values.size, lookahead + 1 + len(rows) + len(taken))
        order = np.argpartition(-values, top - 1)[:top] if top < values.size else values.argsort()
        chosen = {pick: None}
        for i in known[order[np.argsort(-values[order], kind="stable")]].tolist():
            if len(chosen) > lookahead:
                break
            if i not in rows:
                chosen.setdefault(i)
        return np.array(list(chosen), dtype=np.int64)

    # speculative batch: the neighbours of today's top `budget` (no draws from state.rng,
    # so the picks cannot depend on what was fetched ahead)
    scores = density.scores(base) if weighted else base[:n]
    ahead = np.argpartition(-scores, budget - 1)[:budget] if budget < n else np.arange(n)
    fetch(np.sort(ids[ahead]))
    taken: set[int] = set()  # newcomers of this batch
    picks, pick_scores = [], []
    for _ in range(budget):
        # every item that could be the best right now, with its exact score
        where, scores = density.contenders(base) if weighted else (None, base[:n])
        best = scores.max(initial=-np.inf)
        if not np.isfinite(best):
            raise BudgetError(
                f"the SEALS pool ran out after {len(picks)} of {budget} picks; lower the "
                "batch size or raise k"
            )
        tied = np.flatnonzero(scores == best)
        j = int(tied[0] if tied.size == 1 else tied[state.rng.integers(tied.size)])
        pick_scores.append(scores[j])
        j = j if where is None else int(where[j])  # position in the buffer
        pick = int(ids[j])
        picks.append(pick)
        base[j] = -np.inf
        if weighted:
            density.remove(j)
        if pick not in rows:
            fetch(searched_with(pick) if lookahead else np.array([pick]))
        new = [i for i in dict.fromkeys(rows[pick]) if i in outside and i not in taken]
        if not new:
            continue
        new_ids = np.array(new, dtype=np.int64)
        ids[n : n + new_ids.size] = new_ids
        base[n : n + new_ids.size] = [outside[i] for i in new]
        if weighted:
            density.add(normalize_rows(state.pool.embeddings_of(new_ids)))
        n += new_ids.size
        taken.update(new)
    reasons = [strategy.reason(s) for s in pick_scores]
    return Batch(
        np.array(picks, dtype=np.int64), np.array(pick_scores), strategy.name, state.round, reasons
    )


class RunningDensity:
    """Density-weighted scores of SEALS' per-item buffer while the pool changes under it.

    Item i's density is ``u_i . total / count`` (``total`` the sum of the pool's unit vectors).
    Recomputing every ``u_i . total`` after each pick costs O(|P| d); instead the dot products
    with a reference sum ``ref`` are kept (float32, with their rounding error bounded), and
    since ``|u_i . total - u_i . ref| <= |total - ref|`` for unit ``u_i`` they bound every score
    from above and below in O(|P|). Only the items whose upper bound reaches the best lower
    bound (the contenders) are scored exactly (float64); when they grow too many, the reference
    is refreshed (one float32 O(|P| d) pass). The argmax and its ties are exactly those of full
    float64 recomputation.
    """

    def __init__(self, strategy: Any, units: np.ndarray, capacity: int):
        self.strategy = strategy
        self.n = units.shape[0]
        self.units = np.empty((capacity, units.shape[1]), dtype=np.float32)
        self.units[: self.n] = units
        self.total = units.sum(axis=0, dtype=np.float64)
        self.count = self.n
        self.dots = np.empty(capacity, dtype=np.float32)
        self._refresh()

    def _refresh(self) -> None:
        self.ref = self.total.copy()
        ref32 = self.ref.astype(np.float32)
        self.dots[: self.n] = self.units[: self.n] @ ref32
        # float32 rounding of ref and of the d-term dot products (unit rows), generously
        self.rounding = 4 * (self.units.shape[1] + 2) * 2.0**-24 * float(np.abs(self.ref).sum())

    def add(self, units: np.ndarray) -> None:
        """New pool members (rows appended to the buffer)."""
        lo, self.n = self.n, self.n + units.shape[0]
        self.units[lo : self.n] = units
        self.dots[lo : self.n] = units @ self.ref.astype(np.float32)
        self.total += units.sum(axis=0, dtype=np.float64)
        self.count += units.shape[0]

    def remove(self, position: int) -> None:
        """Buffer row ``position`` left the pool."""
        self.total -= self.units[position]
        self.count -= 1

    def _weighted(self, base: np.ndarray, dots: np.ndarray) -> np.ndarray:
        return base * self.strategy.density_weights(dots / max(self.count, 1))

    def scores(self, base: np.ndarray) -> np.ndarray:
        """Scores of the whole buffer from the stored dot products (float32 precision and the
        drift since the last refresh; ``base``: -inf once picked). For ranking ahead only."""
        out = np.full(self.n, -np.inf)
        alive = np.flatnonzero(base[: self.n] > -np.inf)
        out[alive] = self._weighted(base[alive], self.dots[alive].astype(np.float64))
        return out

    def _bounded(self, base: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Positions among ``alive`` whose score may be the largest."""
        slack = np.linalg.norm(self.total - self.ref) * (1 + 1e-6) + self.rounding
        b, dots = base[alive], self.dots[alive].astype(np.float64)
        high, low = self._weighted(b, dots + slack), self._weighted(b, dots - slack)
        return alive[np.maximum(high, low) >= np.minimum(high, low).max()]

    def contenders(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Buffer positions that may hold the best score now, and their exact scores."""
        alive = np.flatnonzero(base[: self.n] > -np.inf)
        if alive.size == 0:
            return np.zeros(1, dtype=np.int64), np.full(1, -np.inf)
        where = self._bounded(base, alive)
        if where.size > max(64, alive.size // 8):
            self._refresh()
            where = self._bounded(base, alive)
        exact = self.units[where].astype(np.float64) @ self.total
        return where, self._weighted(base[where], exact)
