"""A -All round streamed over the pool (no per-candidate arrays) picks what scoring every
candidate id picks: the same items, scores, order and reasons, ties broken the same way."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import raresift.strategies.base as base
from raresift.candidates import AllCandidates
from raresift.models import SklearnModel
from raresift.models.sklearn_model import LinearScorer
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy
from raresift.strategies.base import SelectionState, least_reaching, stream_top_scores


def tied_pool(rng, n=3000, dtype=np.float16):
    """Rows with exact duplicates (tied scores) and far-out rows (p(positive) saturated at 1),
    under shuffled, non-contiguous ids."""
    x = rng.standard_normal((n, 64)).astype(np.float32)
    x[rng.choice(n, 400, replace=False)] = x[rng.choice(n, 400)]  # duplicates
    x[rng.choice(n, 50, replace=False), 0] = 900.0  # saturated: expit(z) == 1.0
    ids = rng.permutation(n).astype(np.int64) * 7 + 5
    return Pool(x.astype(dtype), ids=ids)


def both_ways(pool, strategy, model_labels, labeled, budget, seed):
    """The batch through the streamed path (a view with an eligible mask) and through the
    scored ids (the same view's ids), from generators in the same state."""
    model = SklearnModel(LogisticRegression(C=10.0, max_iter=1000), n_classes=4)
    model.fit(pool.embeddings_of(labeled).astype(np.float32), model_labels)
    labels = Labels(labeled, model_labels)
    cands = AllCandidates()
    cands.start(pool, labels)
    batches = []
    for candidates in (cands.view(), np.array(cands.view().ids)):
        state = SelectionState(pool, labels, model, rng=np.random.default_rng(seed))
        batches.append(strategy.select(state, candidates, budget))
    return model, batches


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("rows", [100, 1 << 16])
@pytest.mark.parametrize("positive", [1, [1], [3, 1]])
def test_streamed_all_round_equals_scoring_every_candidate(rng, monkeypatch, dtype, rows, positive):
    monkeypatch.setattr(base, "STREAM_ROWS", rows)
    pool = tied_pool(rng, dtype=dtype)
    # the first and last rows labeled: the scored path's blocks start and end elsewhere
    labeled = pool.ids[np.r_[0, len(pool) - 1, rng.choice(np.arange(1, len(pool) - 1), 58, False)]]
    y = (pool.embeddings_of(labeled)[:, 0] > 0.5).astype(int)
    strategy = make_strategy("mlp", positive=positive)
    streamed = []
    monkeypatch.setattr(
        base.ScoringStrategy,
        "_select_streamed",
        lambda self, *a, f=base.ScoringStrategy._select_streamed: streamed.append(1) or f(self, *a),
    )
    for budget in (1, 10, 70, 200, len(pool) - labeled.size):  # the last: every score
        for seed in (0, 1):
            model, (fast, slow) = both_ways(pool, strategy, y, labeled, budget, seed)
            assert np.array_equal(fast.ids, slow.ids)
            assert np.array_equal(fast.scores, slow.scores)
            assert fast.reasons == slow.reasons
    assert len(streamed) == 10  # every batch above went through the streamed path once
    assert np.sum(fast.scores == 1.0) > 0  # saturated ties were among the picks


def test_streamed_round_breaks_every_tie_as_scoring_does(rng):
    """Every candidate tied: the streamed path keeps them all and draws the same tie-break."""
    pool = Pool(np.ones((500, 4), dtype=np.float16))
    labeled = pool.ids[:2]
    model = SklearnModel(LogisticRegression(), n_classes=2)
    model.fit(np.array([[1.0] * 4, [2.0] * 4]), [0, 1])
    strategy = make_strategy("mlp")
    labels = Labels(labeled, [0, 1])
    cands = AllCandidates()
    cands.start(pool, labels)
    out = []
    for candidates in (cands.view(), np.array(cands.view().ids)):
        state = SelectionState(pool, labels, model, rng=np.random.default_rng(3))
        out.append(strategy.select(state, candidates, 20))
    assert np.array_equal(out[0].ids, out[1].ids)
    assert out[0].reasons == out[1].reasons and "uniformly random" in out[0].reasons[0]


def test_models_without_a_linear_decision_score_every_candidate(rng):
    """A class sought on the negative side, a multiclass model: the scored path, same picks."""
    pool = tied_pool(rng, n=600, dtype=np.float32)
    labeled = pool.ids[:30]
    y = np.arange(30) % 3
    strategy = make_strategy("mlp", positive=1)
    model, (a, b) = both_ways(pool, strategy, y, labeled, 15, 0)
    state = SelectionState(pool, Labels(labeled, y), model)
    assert strategy.streamed_scoring(state) is None
    assert np.array_equal(a.ids, b.ids)
    binary = SklearnModel(LogisticRegression(max_iter=1000), n_classes=2).fit(
        pool.embeddings_of(labeled), (y > 0).astype(int)
    )
    state = SelectionState(pool, Labels(labeled, (y > 0).astype(int)), binary)
    assert make_strategy("mlp", positive=0).streamed_scoring(state) is None
    assert make_strategy("mlp", positive=[0, 1]).streamed_scoring(state) is None
    assert make_strategy("mlp", positive=1).streamed_scoring(state) is not None
    wide = Pool(pool.embeddings.astype(np.float64), ids=pool.ids)  # scored as sklearn does
    state = SelectionState(wide, Labels(labeled, (y > 0).astype(int)), binary)
    assert make_strategy("mlp", positive=1).streamed_scoring(state) is None
    model, (a, b) = both_ways(wide, make_strategy("mlp"), (y > 0).astype(int), labeled, 15, 0)
    assert np.array_equal(a.ids, b.ids)


@pytest.mark.parametrize("budget", [1, 5, 40])
def test_stream_top_scores_keeps_exactly_the_rows_tied_with_or_above_the_kth(rng, budget):
    """Integer decisions (ties everywhere), small blocks: many floors are raised on the way."""
    x = rng.integers(0, 30, size=(5000, 1)).astype(np.float16)
    eligible = rng.random(5000) > 0.1
    pos, scores = stream_top_scores(x, eligible, LinearScorer([1.0]), np.float64, budget, rows=16)
    values = np.where(eligible, x[:, 0].astype(np.float64), -np.inf)
    kth = np.sort(values)[-budget]
    assert pos.tolist() == np.flatnonzero(values >= kth).tolist()
    assert np.array_equal(scores, values[pos])


def test_least_reaching_is_the_exact_float32_floor():
    from scipy.special import expit as to_scores

    for bar in (0.3, 0.5, 0.999999, 1.0):
        floor = least_reaching(to_scores, bar)
        below = np.nextafter(np.float32(floor), np.float32(-np.inf))
        assert to_scores(np.array([floor], np.float32))[0] >= bar
        assert to_scores(np.array([below], np.float32))[0] < bar
    assert least_reaching(to_scores, 0.0) == -np.inf
