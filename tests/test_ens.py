"""ENS (efficient nonmyopic active search): the lookahead against a plain reading of its
definition, a graph where greedy and nonmyopic search disagree, horizon 1 = greedy, seeds and
parameters."""

import numpy as np
import pytest
import scipy.sparse as sp

from raresift.errors import ConfigError
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy
from raresift.strategies.base import SelectionState
from raresift.strategies.ens import ens_scores, knn_graph, knn_probabilities

PRIOR = 0.05


def graph_of(edges, n):
    rows, cols = np.array(edges).T
    a = sp.csr_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))
    return a.maximum(a.T).tocsr()


def ens_by_definition(graph, hits, counts, cands, prior, horizon):
    """ENS(x) = p(x) + sum_y p(y) * top (horizon-1) of the others' p after labeling x = y,
    item by item from the model's definition."""
    out = []
    for x in cands:
        p = knn_probabilities(graph, hits, counts, prior)
        total = p[x]
        for y, weight in ((1.0, p[x]), (0.0, 1.0 - p[x])):
            h, c = hits.copy(), counts.copy()
            h[x], c[x] = y, 1.0
            q = knn_probabilities(graph, h, c, prior)[[z for z in cands if z != x]]
            total += weight * np.sort(q)[::-1][: horizon - 1].sum()
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("horizon", [1, 2, 5, 40])
def test_vectorised_lookahead_matches_the_definition(horizon):
    rng = np.random.default_rng(0)
    n = 60
    x = rng.standard_normal((n, 4)).astype(np.float32)
    graph = knn_graph(x, 4)
    counts = np.zeros(n)
    labeled = rng.choice(n, 12, replace=False)
    counts[labeled] = 1.0
    hits = np.zeros(n)
    hits[labeled[:5]] = 1.0
    hits[labeled[5]] = 0.3  # a fictional (soft) label, as within a batch
    cands = np.setdiff1d(np.arange(n), labeled)
    scores, p = ens_scores(graph, hits, counts, cands, PRIOR, horizon)
    np.testing.assert_allclose(p, knn_probabilities(graph, hits, counts, PRIOR)[cands])
    want = ens_by_definition(graph, hits, counts, cands, PRIOR, horizon)
    np.testing.assert_allclose(scores, want, rtol=1e-12)
    if horizon == 1:
        np.testing.assert_array_equal(scores, p)


def test_nonmyopic_pick_reveals_a_cluster_greedy_misses():
    # node 0: labeled positive. Node 1 (a) hangs off it alone: p = (0.05 + 1) / 2.
    # Node 2 (b) touches the positive and a labeled negative (node 3): p = 1.05 / 3, lower,
    # but b is the hub of ten unlabeled nodes 4..13, each of which a positive b would lift
    # from 0.05 to 0.525.
    edges = [(0, 1), (0, 2), (3, 2)] + [(2, j) for j in range(4, 14)]
    graph = graph_of(edges, 14)
    hits, counts = np.zeros(14), np.zeros(14)
    counts[[0, 3]] = 1.0
    hits[0] = 1.0
    cands = np.array([1, 2, *range(4, 14)])
    myopic, p = ens_scores(graph, hits, counts, cands, PRIOR, 1)
    assert cands[np.argmax(p)] == 1 and cands[np.argmax(myopic)] == 1
    nonmyopic, _ = ens_scores(graph, hits, counts, cands, PRIOR, 12)
    assert cands[np.argmax(nonmyopic)] == 2


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((5, 8)) * 3
    y = np.repeat(np.arange(5), 40)
    x = (centers[y] + rng.standard_normal((y.size, 8))).astype(np.float32)
    pool = Pool(x, ids=np.arange(y.size) * 2 + 5)
    seed = np.array([0, 1, 40, 80, 120, 160])  # two of class 0 (positive), one of each other
    return pool, (y == 0).astype(int), seed


def test_horizon_one_is_greedy_under_the_knn_model(blobs):
    pool, y, seed = blobs
    labels = Labels(pool.ids[seed], y[seed])
    cands = np.setdiff1d(pool.ids, pool.ids[seed])
    state = SelectionState(pool, labels, rng=np.random.default_rng(1))
    pick = make_strategy("ens", horizon=1, k=5).select(state, cands, 1)
    nodes = np.union1d(cands, pool.ids[seed])
    graph = knn_graph(pool.embeddings_of(nodes), 5)
    hits, counts = np.zeros(nodes.size), np.zeros(nodes.size)
    at = np.searchsorted(nodes, pool.ids[seed])
    counts[at], hits[at] = 1.0, y[seed]
    p = knn_probabilities(graph, hits, counts, PRIOR)[np.searchsorted(nodes, cands)]
    assert pick.scores[0] == pytest.approx(p.max())
    assert p[np.searchsorted(cands, pick.ids[0])] == p.max()


def test_batches_find_positives_and_repeat_with_the_seed(blobs):
    pool, y, seed = blobs
    labels = Labels(pool.ids[seed], y[seed])
    cands = np.setdiff1d(pool.ids, pool.ids[seed])
    strategy = make_strategy("ens", horizon=30, k=6)
    a = strategy.select(SelectionState(pool, labels, rng=np.random.default_rng(4)), cands, 10)
    b = strategy.select(SelectionState(pool, labels, rng=np.random.default_rng(4)), cands, 10)
    assert a.ids.tolist() == b.ids.tolist() and len(set(a.ids.tolist())) == 10
    assert np.isin(a.ids, cands).all()
    found = y[pool.positions(a.ids)].sum()
    assert found >= 8  # class 0's blob: 38 unlabeled positives among 194 candidates


@pytest.mark.parametrize(
    "params",
    [{"horizon": 0}, {"k": 0}, {"prior": 0.0}, {"prior": 1.5}, {"positive": -1}, {"horizon": 2.5}],
)
def test_bad_parameters_raise_config_errors(params):
    with pytest.raises(ConfigError):
        make_strategy("ens", **params)


def test_a_class_session_seeks_its_rare_classes():
    from raresift.strategies.rare import session_strategy

    assert session_strategy("ens", kind="classes", positive=[2, 4]).positive == [2, 4]
    assert session_strategy("ens", kind="concept", positive=[1]).positive == 1
