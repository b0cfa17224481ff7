import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift import Labels, Pool
from raresift.errors import ConfigError, ValidationError
from raresift.loop import ActiveLearner
from raresift.models import SklearnModel
from raresift.strategies import SelectionState, make_strategy
from raresift.submodular import objective_names


def clustered_pool(seed=0, per_cluster=40, dim=8):
    """Three tight clusters around orthogonal directions; cluster c holds ids c*per_cluster+..."""
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[:3] * 5
    X = np.concatenate([c + 0.3 * rng.normal(size=(per_cluster, dim)) for c in centers])
    return Pool(X.astype(np.float32)), np.repeat(np.arange(3), per_cluster)


def state_for(pool, labeled, query=None, conditioning=None, seed=0):
    labels = Labels(labeled, np.zeros(len(labeled), dtype=int))
    return SelectionState(
        pool, labels, rng=np.random.default_rng(seed),
        query_ids=None if query is None else np.asarray(query),
        conditioning_ids=None if conditioning is None else np.asarray(conditioning),
    )  # fmt: skip


def unlabeled(pool, labeled):
    return np.setdiff1d(pool.ids, labeled)


@pytest.mark.parametrize("name", ["flvmi", "flqmi", "gcmi", "logdetmi"])
def test_smi_picks_items_near_the_query_set(name):
    pool, cluster = clustered_pool()
    query = [0, 1, 2]  # labeled members of cluster 0
    state = state_for(pool, query, query=query)
    strategy = make_strategy(name, representation="embedding", metric="euclidean")
    batch = strategy.select(state, unlabeled(pool, query), 8)  # FLVMI saturates a little later
    assert len(batch) == 8
    assert np.all(cluster[batch.ids] == 0), cluster[batch.ids]
    assert batch.reasons[0].startswith(f"{name} marginal gain")


@pytest.mark.parametrize("name", ["flcg", "logdetcg", "gccg"])
def test_scg_avoids_near_duplicates_of_the_conditioning_set(name):
    rng = np.random.default_rng(1)
    labeled = rng.normal(size=(10, 6))
    duplicates = labeled + 1e-3 * rng.normal(size=labeled.shape)  # ids 10..19
    fresh = rng.normal(size=(10, 6)) + 4 * np.eye(6)[0]  # ids 20..29, far from the labeled set
    pool = Pool(np.concatenate([labeled, duplicates, fresh]).astype(np.float32))
    state = state_for(pool, np.arange(10), conditioning=np.arange(10))
    strategy = make_strategy(name, representation="embedding", metric="euclidean")
    batch = strategy.select(state, np.arange(10, 30), 5)
    assert np.all(batch.ids >= 20), batch.ids


def test_scmi_without_conditioning_falls_back_to_smi():
    pool, _ = clustered_pool()
    query = [40, 41]
    state = state_for(pool, query, query=query)
    cands = unlabeled(pool, query)
    scmi = make_strategy("flcmi", representation="embedding").select(state, cands, 6)
    smi = make_strategy("flvmi", representation="embedding").select(
        state_for(pool, query, query), cands, 6
    )
    np.testing.assert_array_equal(scmi.ids, smi.ids)
    assert scmi.strategy == "flvmi" and scmi.reasons[0].startswith("flvmi")  # who chose it


@pytest.mark.parametrize(("name", "instead"), [("flqmi", "'fl'"), ("logdetmi", "'logdet'")])
def test_mi_without_query_set_says_what_to_use(name, instead):
    pool, _ = clustered_pool()
    with pytest.raises(ValidationError, match=f"needs a query set.*use {instead}"):
        make_strategy(name, representation="embedding").select(
            state_for(pool, [0]), pool.ids[1:], 3
        )


def test_cg_without_conditioning_set_says_what_to_use():
    pool, _ = clustered_pool()
    with pytest.raises(ValidationError, match="needs a conditioning set.*use 'fl'"):
        make_strategy("flcg", representation="embedding").select(
            state_for(pool, [0]), pool.ids[1:], 3
        )


def test_bad_parameters_and_missing_model():
    with pytest.raises(ConfigError, match="representation"):
        make_strategy("fl", representation="pixels")
    pool, _ = clustered_pool()
    with pytest.raises(ValidationError, match="gradient_embeddings"):
        make_strategy("fl").select(state_for(pool, [0]), pool.ids[1:], 3)


def test_every_objective_is_a_strategy():
    for name in objective_names():
        assert make_strategy(name).name == name


def test_gradient_representation_through_the_loop_is_reproducible():
    pool, cluster = clustered_pool(per_cluster=60)
    seed_ids = np.array([0, 1, 60, 61, 120, 121])
    labels = Labels(seed_ids, cluster[seed_ids])

    def batches(seed):
        learner = ActiveLearner(
            pool, SklearnModel(LogisticRegression(max_iter=500), n_classes=3),
            make_strategy("logdetcmi", partitions=2), labels=labels,
            query_ids=[0, 1], conditioning_ids=[60, 61], seed=seed,
        )  # fmt: skip
        return [r["batch_ids"] for r in learner.run(cluster, rounds=2, budget=8)]

    first, again, other = batches(3), batches(3), batches(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert all(len(set(b.tolist())) == 8 for b in first)


def test_a_batch_says_when_lazier_ran_stochastic_greedy_on_a_non_submodular_objective():
    pool, _ = clustered_pool()
    query = [0, 1, 2]
    state = state_for(pool, query, query=query)
    batch = make_strategy("logdetmi", representation="embedding", optimizer="lazier").select(
        state, unlabeled(pool, query), 5
    )
    assert all("stochastic greedy: logdetmi is not submodular" in r for r in batch.reasons)
    exact = make_strategy("logdetmi", representation="embedding", optimizer="stochastic")
    np.testing.assert_array_equal(
        exact.select(state_for(pool, query, query=query), unlabeled(pool, query), 5).ids,
        batch.ids,
    )
