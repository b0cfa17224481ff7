"""SEALS candidate pools and within-batch expansion: Algorithm 2 step by step, the never-labeled
invariant, expansion modes, pure selection."""

import logging

import numpy as np
import pytest

from raresift.candidates import SEALSCandidates
from raresift.density import normalize_rows
from raresift.errors import BudgetError
from raresift.index import NeighborIndex
from raresift.pool import Labels, Pool
from raresift.strategies import Batch, SelectionState, Strategy, make_strategy
from raresift.strategies.seals import RunningDensity
from raresift.strategies.uncertainty import entropy_scores


class AngleModel:
    """p(y=1) grows with the angle of the first two coordinates (no ties, no training)."""

    classes_ = np.array([0, 1])

    def fit(self, x, y):
        return self

    def predict_proba(self, x):
        p = 0.001 + 0.998 * (np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi) + 0.5)
        return np.column_stack([1 - p, p])


class FirstIds(Strategy):
    """A set-based strategy: not a ScoringStrategy."""

    name = "first-ids"

    def select(self, state, candidates, budget):
        return Batch(candidates[:budget], np.zeros(budget), self.name, state.round)


def arc_pool(n=60, spread=1.4):
    theta = np.linspace(0, spread, n)
    return Pool(np.column_stack([np.cos(theta), np.sin(theta)]).astype(np.float32))


def clustered_points(rng, n, n_centers, dim, spread):
    """``n`` float32 points around ``n_centers`` random centres (Gaussian noise of ``spread``)."""
    centers = rng.standard_normal((n_centers, dim))
    members = centers[rng.integers(n_centers, size=n)]
    return (members + spread * rng.standard_normal((n, dim))).astype(np.float32)


def state_for(pool, labels, seed=0, model=None):
    return SelectionState(
        pool, labels, model=model or AngleModel(), rng=np.random.default_rng(seed)
    )


def label(cands, labels, batch, answers=None):
    """Teach a batch's picks (all 1s by default) and tell the pool, as ActiveLearner.teach does."""
    labels.add(batch.ids, np.ones(len(batch), int) if answers is None else answers)
    cands.update(batch.ids)


def test_item_expansion_walks_where_batch_expansion_cannot():
    pool = arc_pool()
    index = NeighborIndex(progress=False).fit(pool)
    labels = Labels([0], [1])
    item = SEALSCandidates(index, k=4, expand="item")
    item.start(pool, labels)
    batch = SEALSCandidates(index, k=4, expand="batch")
    batch.start(pool, labels)
    assert item.candidates().tolist() == [1, 2, 3, 4]
    mlp = make_strategy("mlp")
    # per item: 4 is best; its neighbours 5, 6 join before the next pick, then 6's 7, 8 ...
    picked = mlp.select(state_for(pool, labels), item.view(), 3)
    assert picked.ids.tolist() == [4, 6, 8]
    assert item.candidates().tolist() == [1, 2, 3, 4]  # selecting changed nothing
    # per batch: only the initial pool is ranked; neighbours join once the picks are labeled
    picked_batch = mlp.select(state_for(pool, labels), batch.view(), 3)
    assert picked_batch.ids.tolist() == [4, 3, 2]
    label(batch, labels.copy(), picked_batch)
    assert batch.candidates().tolist() == [1, 5, 6]
    label(item, labels, picked)  # labeling the picks gives Algorithm 2's pool
    assert item.candidates().tolist() == [1, 2, 3, 5, 7, 9, 10]


def reference_algorithm2(pool, labeled, score, k, budget):
    """Algorithm 2's inner loop with Python sets and exact brute-force neighbours."""
    unit = normalize_rows(pool.embeddings)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    nbrs = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    taken = set(labeled)
    cand = set(nbrs[list(labeled)].ravel().tolist()) - taken
    picks = []
    for _ in range(budget):
        ids = np.array(sorted(cand))
        z = int(ids[np.argmax(score(ids, ids))])
        picks.append(z)
        cand.remove(z)
        taken.add(z)
        cand |= set(nbrs[z].tolist()) - taken
    return picks, sorted(cand)


@pytest.mark.parametrize("strategy", ["mlp", "entropy", "information-density"])
def test_per_item_selection_matches_reference_algorithm2(rng, strategy):
    x = rng.standard_normal((300, 5)).astype(np.float32)
    pool = Pool(x)
    model = AngleModel()
    labeled = rng.choice(300, 6, replace=False)
    labels = Labels(labeled, [1, 0, 0, 0, 0, 0])
    cands = SEALSCandidates(NeighborIndex(progress=False).fit(pool), k=7)
    cands.start(pool, labels)
    unit = normalize_rows(x)

    def score(ids, pool_ids):
        proba = model.predict_proba(x[ids])
        if strategy == "mlp":
            return proba[:, 1]
        ent = entropy_scores(proba)
        if strategy == "entropy":
            return ent
        return ent * np.clip((unit[ids] @ unit[pool_ids].T).mean(axis=1), 0, None)

    expected_picks, expected_pool = reference_algorithm2(pool, labeled, score, 7, 12)
    batch = make_strategy(strategy).select(state_for(pool, labels, model=model), cands.view(), 12)
    assert batch.ids.tolist() == expected_picks
    label(cands, labels, batch)
    assert cands.candidates().tolist() == expected_pool


@pytest.mark.parametrize("expand", ["item", "batch"])
@pytest.mark.parametrize("strategy", ["random", "entropy", "information-density", "first-ids"])
def test_labeled_items_never_enter_or_stay_in_the_pool(rng, expand, strategy):
    n = 500
    x = clustered_points(rng, n, 8, 4, 0.4)
    pool = Pool(x, ids=np.arange(n) * 2 + 5)
    index = NeighborIndex(progress=False).fit(pool)
    k = 6
    seed_ids = rng.choice(pool.ids, 4, replace=False)
    labels = Labels(seed_ids, [1, 0, 0, 0])
    cands = SEALSCandidates(index, k=k, expand=expand)
    cands.start(pool, labels)
    strat = FirstIds() if strategy == "first-ids" else make_strategy(strategy)
    expanded = set(seed_ids.tolist())
    for round_ in range(12):
        budget = int(rng.integers(1, 8))
        before = cands.candidates().copy()
        batch = strat.select(state_for(pool, labels, seed=round_), cands.view(), budget)
        assert len(batch) == budget and len(set(batch.ids.tolist())) == budget
        assert not np.isin(batch.ids, labels.ids).any()
        np.testing.assert_array_equal(cands.candidates(), before)  # selecting is pure
        # some rounds the oracle answers only part of the batch: the rest stay eligible, and
        # only labeled items bring their neighbours in
        answered = batch.ids if round_ % 3 else batch.ids[: max(1, budget // 2)]
        expanded |= set(answered.tolist())
        labels.add(answered, rng.integers(0, 2, answered.size))
        cands.update(answered)
        cand = cands.candidates()
        assert np.all(np.diff(cand) > 0)
        assert not np.isin(cand, labels.ids).any()
        nbrs = index.neighbors(np.array(sorted(expanded)), k).ravel()
        expected = np.setdiff1d(nbrs[nbrs >= 0], labels.ids)
        np.testing.assert_array_equal(cand, expected)
        probe = cand[:: max(1, cand.size // 7)]
        unit = normalize_rows(pool.embeddings)
        direct = (unit[pool.positions(probe)] @ unit[pool.positions(cand)].T).mean(axis=1)
        np.testing.assert_allclose(cands.density(probe), direct, atol=1e-6)


def test_set_based_strategy_expands_after_the_batch_and_says_so(caplog):
    from raresift.loop import ActiveLearner

    pool = arc_pool()
    cands = SEALSCandidates(NeighborIndex(progress=False).fit(pool), k=4, expand="item")
    with caplog.at_level(logging.INFO, logger="raresift"):
        learner = ActiveLearner(pool, AngleModel(), FirstIds(), cands, Labels([0], [1]))
    assert "after the batch" in caplog.text
    batch = learner.query(3)
    assert batch.ids.tolist() == [1, 2, 3]
    learner.teach(batch.ids, [0, 0, 0])
    assert cands.candidates().tolist() == [4, 5]


def test_unanswered_picks_stay_eligible_and_bring_no_neighbours():
    pool = arc_pool()
    labels = Labels([0], [1])
    cands = SEALSCandidates(NeighborIndex(progress=False).fit(pool), k=4)
    cands.start(pool, labels)
    first = make_strategy("mlp").select(state_for(pool, labels), cands.view(), 3)
    assert first.ids.tolist() == [4, 6, 8]
    labels.add(first.ids[:1], [1])  # only 4 answered
    cands.update(first.ids[:1])
    assert cands.candidates().tolist() == [1, 2, 3, 5, 6]  # 6 stays, 8 never joined
    second = make_strategy("mlp").select(state_for(pool, labels), cands.view(), 1)
    assert second.ids.tolist() == [6]


def test_running_density_contenders_hold_the_exact_best(rng):
    """After picks and arrivals, the lazily bounded scores single out the same best items (and
    exact scores) as recomputing every density from scratch."""
    shift = np.zeros(6)
    shift[0] = 3.0  # arrivals come from elsewhere, so the pool's mean direction drifts
    x = normalize_rows(
        rng.standard_normal((3000, 6)) + np.where(np.arange(3000) < 2000, 0, 1)[:, None] * shift
    )
    base = np.full(3000, -np.inf)
    base[:2000] = 0.5 + np.round(rng.random(2000), 1) / 10  # coarse values: many exact ties
    density = RunningDensity(make_strategy("information-density"), x[:2000], 3000)
    n, exact_calls = 2000, 0
    for _ in range(60):
        gone = int(rng.choice(np.flatnonzero(base[:n] > -np.inf)))
        base[gone] = -np.inf
        density.remove(gone)
        new = rng.integers(0, 16)
        base[n : n + new] = 0.5 + np.round(rng.random(new), 1) / 10
        density.add(x[n : n + new])
        n += new
        alive = np.flatnonzero(base[:n] > -np.inf)
        full = np.full(n, -np.inf)
        unit = x[alive].astype(np.float64)
        full[alive] = base[alive] * np.clip(unit @ unit.sum(0) / alive.size, 0, None)
        where, scores = density.contenders(base)
        exact_calls += where.size < alive.size
        best = np.flatnonzero(np.isclose(full, full.max(), rtol=0, atol=1e-12))
        assert set(best) <= set(where.tolist())
        np.testing.assert_allclose(scores, full[where], rtol=1e-9)
        assert set(where[np.isclose(scores, scores.max(), rtol=0, atol=1e-12)]) == set(best)
    assert exact_calls > 30  # most steps score only a few contenders exactly


@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_flqmi_over_a_seals_pool_with_the_labeled_positives_as_query(rng, kernel):
    """A SIMILAR strategy on a SEALS pool: every pick comes from the pool it was offered, the
    query set (labeled positives) grows, and it finds more positives than random picks do."""
    from sklearn.linear_model import LogisticRegression

    from raresift.loop import ActiveLearner
    from raresift.models import SklearnModel
    from raresift.simulate.synthetic import make_synthetic_concepts

    data = make_synthetic_concepts(
        n=4000, dim=16, n_concepts=1, prevalence=(0.02, 0.02), progress=False, seed=3
    )
    pool, y = Pool(data.train), data.labels(0).astype(int)
    index = NeighborIndex(progress=False).fit(pool)
    seed_ids = np.concatenate([np.flatnonzero(y == 1)[:3], np.flatnonzero(y == 0)[:27]])
    found = {}
    for name, params in [
        ("flqmi", dict(representation="embedding", kernel=kernel, k=10)),
        ("random", {}),
    ]:
        labels = Labels(seed_ids, y[seed_ids])
        cands = SEALSCandidates(index, k=20)
        learner = ActiveLearner(
            pool,
            SklearnModel(LogisticRegression(class_weight="balanced"), n_classes=2),
            make_strategy(name, **params),
            cands,
            labels,
            query_ids=seed_ids[y[seed_ids] == 1],
            seed=0,
        )
        for _ in range(4):
            offered = cands.candidates().copy()
            batch = learner.query(20)
            if name == "flqmi":  # a set function: the pool grows after the batch, not during
                assert np.isin(batch.ids, offered).all()
            assert not np.isin(cands.candidates(), learner.labels.ids).any()
            learner.teach(batch.ids, y[batch.ids])
            learner.query_ids = learner.labels.ids[learner.labels.values == 1]
        found[name] = int(y[learner.labels.ids].sum())
    assert found["flqmi"] > 3 * found["random"]


def test_an_exhausted_pool_raises_a_budget_error():
    pool = arc_pool(n=3)
    labels = Labels([0, 1, 2], [1, 0, 0])  # everything labeled: the pool is empty
    cands = SEALSCandidates(NeighborIndex(progress=False).fit(pool), k=2)
    cands.start(pool, labels)
    assert len(cands) == 0
    with pytest.raises(BudgetError, match="ran out after 0 of 1"):
        make_strategy("mlp").select(state_for(pool, labels), cands.view(), 1)


@pytest.mark.parametrize("strategy", ["entropy", "mlp", "information-density"])
def test_a_precomputed_knn_graph_gives_the_same_rounds_without_searching(rng, tmp_path, strategy):
    n = 800
    x = clustered_points(rng, n, 10, 6, 0.5)
    pool = Pool(x, ids=np.arange(n) * 3 + 1)
    seed_ids = rng.choice(pool.ids, 5, replace=False)
    runs = []
    for graph in (False, True):
        index = NeighborIndex(progress=False).fit(pool)
        if graph:
            index.build_graph(12, tmp_path / "graph.npy")
        searches = []

        def counted(*args, _search=index.search, _searches=searches, **kwargs):
            _searches.append(1)
            return _search(*args, **kwargs)

        index.search = counted
        labels = Labels(seed_ids, [1, 0, 0, 0, 0])
        cands = SEALSCandidates(index, k=8)
        cands.start(pool, labels)
        picks, pools = [], []
        for round_ in range(6):
            batch = make_strategy(strategy).select(
                state_for(pool, labels, seed=round_), cands.view(), 9
            )
            picks.append(batch.ids.tolist())
            label(cands, labels, batch, (batch.ids % 2).astype(int))
            pools.append(cands.candidates().tolist())
        runs.append((picks, pools, len(searches)))
    assert runs[0][:2] == runs[1][:2]
    assert runs[0][2] > 0 and runs[1][2] == 0


class SteppedAngleModel(AngleModel):
    """AngleModel with p(y=1) rounded to 0.05: many ties, so picks draw on state.rng."""

    def predict_proba(self, x):
        p = np.clip(np.round(super().predict_proba(x)[:, 1] / 0.05) * 0.05, 0.001, 0.999)
        return np.column_stack([1 - p, p])


@pytest.mark.parametrize("model", [AngleModel, SteppedAngleModel])
@pytest.mark.parametrize("strategy", ["mlp", "entropy", "information-density"])
def test_searching_ahead_saves_calls_and_never_changes_a_pick(rng, strategy, model):
    n = 1_500
    x = clustered_points(rng, n, 12, 6, 0.5)
    pool = Pool(x, ids=np.arange(n) * 2 + 5)
    seed_ids = rng.choice(pool.ids, 6, replace=False)
    index = NeighborIndex(progress=False).fit(pool)
    calls = []

    def counted(ids, *args, _neighbors=index.neighbors, **kwargs):
        calls.append(len(ids))
        return _neighbors(ids, *args, **kwargs)

    index.neighbors = counted
    runs = []
    for ahead in (0, 3, 40):
        index.search_ahead = ahead  # what a RemoteNeighborIndex says; a NeighborIndex says 3
        calls.clear()
        labels = Labels(seed_ids, [1, 0, 0, 0, 0, 0])
        cands = SEALSCandidates(index, k=10)
        cands.start(pool, labels)
        assert cands.view().search_ahead == ahead
        picks = []
        for round_ in range(4):
            state = state_for(pool, labels, seed=round_, model=model())
            batch = make_strategy(strategy).select(state, cands.view(), 15)
            picks.append((batch.ids.tolist(), batch.scores.tolist()))
            label(cands, labels, batch, (batch.ids % 3 == 0).astype(int))
        runs.append((picks, cands.candidates().tolist(), len(calls), sum(calls)))
    assert runs[0][:2] == runs[1][:2] == runs[2][:2]
    assert runs[0][2] > runs[1][2] > runs[2][2], "searching ahead must save calls"
    assert runs[0][3] <= runs[1][3] <= runs[2][3]
    del index.search_ahead
    assert SEALSCandidates(index).search_ahead == 3  # the default for an index that says nothing
