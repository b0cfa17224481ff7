import numpy as np
import pytest
from scipy.sparse import csr_matrix

from raresift.errors import ValidationError
from raresift.index import NeighborIndex
from raresift.pool import Pool
from raresift.structure import concept_structure, graph_structure, positive_graph


def adjacency(n, edges):
    rows, cols = zip(*edges, strict=True)
    return csr_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))


def test_hand_made_graph_components_and_paths():
    # chain 0 -> 1 -> 2 -> 3 plus 3 -> 2, and a separate pair 4 <-> 5, and 6 alone
    g = adjacency(7, [(0, 1), (1, 2), (2, 3), (3, 2), (4, 5), (5, 4)])
    n_comp, largest, avg, sources = graph_structure(g)
    assert n_comp == 3 and largest.tolist() == [0, 1, 2, 3]
    # undirected path 0-1-2-3: distances 1,2,3,1,1,2 over 12 ordered pairs -> 20 / 12
    assert avg == pytest.approx(20 / 12) and sources == 4
    n_comp, largest, avg, _ = graph_structure(g, directed=True)
    # strongly connected: {2, 3}, {4, 5}, {0}, {1}, {6}; largest is the first of size 2
    assert n_comp == 5 and largest.size == 2 and avg == pytest.approx(1.0)


def test_directed_paths_are_longer_than_symmetrised_ones():
    # a directed ring 0 -> 1 -> 2 -> 3 -> 0: directed mean 2, undirected mean 4/3
    g = adjacency(4, [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert graph_structure(g, directed=True)[2] == pytest.approx(2.0)
    assert graph_structure(g)[2] == pytest.approx(4 / 3)


def test_sampled_sources_are_seeded_and_close_to_exact():
    n = 200
    g = adjacency(n, [(i, i + 1) for i in range(n - 1)])
    exact = graph_structure(g)[2]
    a = graph_structure(g, max_sources=60, seed=1)
    assert a[2] == graph_structure(g, max_sources=60, seed=1)[2] and a[3] == 60
    assert a[2] != graph_structure(g, max_sources=60, seed=2)[2]
    assert abs(a[2] - exact) / exact < 0.15


def test_positive_graph_keeps_only_edges_between_positives():
    neighbors = np.array([[30, 99, 10], [20, -1, 77], [10, 30, 5]])
    g = positive_graph(neighbors, np.array([20, 10, 30]))
    assert g.toarray().astype(int).tolist() == [[0, 1, 1], [1, 0, 0], [0, 1, 0]]


def test_concept_structure_on_two_separated_blobs(rng):
    blob_a = rng.normal(0, 0.05, (30, 3)) + [1, 0, 0]
    blob_b = rng.normal(0, 0.05, (10, 3)) + [0, 1, 0]
    other = rng.normal(0, 0.05, (60, 3)) + [0, 0, 1]
    pool = Pool(np.vstack([blob_a, blob_b, other]).astype(np.float32), ids=np.arange(100) + 500)
    index = NeighborIndex(progress=False).fit(pool)
    result = concept_structure(index, pool.ids[:40], k=5, concept="ab")
    assert result.n_positives == 40 and result.largest_component == 30
    assert result.largest_share == pytest.approx(0.75) and result.n_components >= 2
    assert result.edges == "symmetrised" and 1.0 <= result.avg_shortest_path < 5
    directed = concept_structure(index, pool.ids[:40], k=5, directed=True)
    assert directed.edges == "directed" and directed.largest_component <= 30
    with pytest.raises(ValidationError):
        concept_structure(index, [])
