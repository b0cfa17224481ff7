import numpy as np
import pytest

from raresift.candidates import AllCandidates, RandomCandidates, SEALSCandidates
from raresift.density import normalize_rows
from raresift.errors import ConfigError, ValidationError
from raresift.index import NeighborIndex
from raresift.pool import Labels, Pool


def direct_density(pool, ids, candidates):
    """Mean cosine similarity by the full pairwise matrix (the definition)."""
    unit = normalize_rows(pool.embeddings)
    sims = unit[pool.positions(ids)] @ unit[pool.positions(candidates)].T
    return sims.mean(axis=1)


@pytest.fixture
def pool(rng):
    x = rng.standard_normal((400, 6)).astype(np.float32) * rng.uniform(0.2, 5, (400, 1))
    return Pool(x + 0.5, ids=np.arange(400) * 3 + 11)


def test_all_candidates_density_is_mean_similarity_to_unlabeled(pool):
    labels = Labels(pool.ids[:5], [1, 0, 0, 0, 0])
    cands = AllCandidates()
    cands.start(pool, labels)
    ids = pool.ids[[7, 50, 300]]
    np.testing.assert_allclose(
        cands.density(ids), direct_density(pool, ids, cands.candidates()), atol=1e-6
    )
    cands.update(pool.ids[5:40])  # incremental: the cached sum loses the newly labeled
    assert len(cands) == 360
    np.testing.assert_allclose(
        cands.density(ids), direct_density(pool, ids, cands.candidates()), atol=1e-6
    )


def test_random_candidates_fixed_seeded_subset_without_labeled(pool):
    labels = Labels(pool.ids[:50], np.zeros(50, int))
    a, b = RandomCandidates(0.25, seed=3), RandomCandidates(0.25, seed=3)
    a.start(pool, labels)
    b.start(pool, labels)
    np.testing.assert_array_equal(a.candidates(), b.candidates())
    assert not np.isin(a.candidates(), labels.ids).any()
    assert 100 - 50 <= len(a) <= 100 and len(a) < 100  # 100 drawn, some of them labeled
    before = a.candidates().copy()
    a.update(before[:10])
    np.testing.assert_array_equal(a.candidates(), before[10:])
    np.testing.assert_allclose(
        a.density(before[10:13]), direct_density(pool, before[10:13], a.candidates()), atol=1e-6
    )
    c = RandomCandidates(0.25, seed=4)
    c.start(pool, labels)
    assert not np.array_equal(c.candidates(), a.candidates())
    with pytest.raises(ConfigError):
        RandomCandidates(0.0).start(pool, labels)


def test_seals_starts_with_neighbors_of_labeled(pool):
    index = NeighborIndex(progress=False).fit(pool)
    labeled = pool.ids[[3, 90, 200]]
    cands = SEALSCandidates(index, k=10)
    cands.start(pool, Labels(labeled, [1, 0, 0]))
    expected = np.setdiff1d(index.neighbors(labeled, 10).ravel(), labeled)
    np.testing.assert_array_equal(cands.candidates(), expected)
    assert len(cands) == expected.size and cands.knn_queries == 3


def test_seals_rejects_bad_settings(pool, rng):
    index = NeighborIndex(progress=False).fit(pool)
    with pytest.raises(ConfigError):
        SEALSCandidates(index, expand="sometimes").start(pool, Labels())
    with pytest.raises(ConfigError):
        SEALSCandidates(index, k=0).start(pool, Labels())
    other = Pool(rng.standard_normal((10, 4)).astype(np.float32))
    with pytest.raises(ValidationError, match="-d"):
        SEALSCandidates(index).start(other, Labels())


def test_a_view_is_read_only_and_copies_are_the_callers(pool):
    cands = AllCandidates()
    cands.start(pool, Labels(pool.ids[:3], [0, 1, 0]))
    view = cands.view()
    with pytest.raises(ValueError, match="read-only"):
        view.ids[0] = -1
    mine = np.array(view)
    mine[0] = -1  # a copy: the pool does not see it
    assert cands.candidates()[0] == pool.ids[3] and len(view) == len(pool) - 3
    assert view[:2].tolist() == pool.ids[3:5].tolist() and list(view)[-1] == pool.ids[-1]
    with pytest.raises(ValidationError, match="no neighbour index"):
        view.neighbors(pool.ids[3:4])
