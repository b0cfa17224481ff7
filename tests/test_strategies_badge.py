import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.errors import ValidationError
from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy
from raresift.strategies.badge import dense_gram, gradient_gram, kmeans_plus_plus


class ConstructedGradients:
    """Returns fixed gradient embeddings per item; the item index sits in embedding column 0."""

    def __init__(self, gradients):
        self.gradients = np.asarray(gradients, dtype=np.float32)

    def predict_proba(self, X):
        return np.full((X.shape[0], 2), 0.5)

    def gradient_embeddings(self, X, labels=None):
        return self.gradients[X[:, 0].astype(int)]


def clustered_gradients(rng, per_cluster=30):
    directions = np.eye(4, dtype=np.float32)[:3] * np.array([[3.0], [2.0], [1.5]])
    cluster = np.repeat(np.arange(3), per_cluster)
    grads = directions[cluster] + rng.normal(scale=1e-3, size=(cluster.size, 4))
    return grads.astype(np.float32), cluster


def state_for(model, n, seed):
    pool = Pool(np.c_[np.arange(n), np.zeros(n)].astype(np.float32))
    return SelectionState(pool, Labels(), model, rng=np.random.default_rng(seed))


def test_spreads_picks_over_distinct_gradient_directions(rng):
    grads, cluster = clustered_gradients(rng)
    model = ConstructedGradients(grads)
    for seed in range(10):
        batch = make_strategy("badge").select(state_for(model, len(grads), seed), np.arange(90), 3)
        assert sorted(cluster[batch.ids].tolist()) == [0, 1, 2]
        assert cluster[batch.ids[0]] == 0  # the largest gradient comes first
    # top-3 by gradient norm would all come from cluster 0
    norms = np.linalg.norm(grads, axis=1)
    assert set(cluster[np.argsort(-norms)[:3]].tolist()) == {0}


def test_seeded_and_duplicate_safe(rng):
    grads, _ = clustered_gradients(rng)
    a, _ = kmeans_plus_plus(dense_gram(grads), 20, np.random.default_rng(4))
    b, _ = kmeans_plus_plus(dense_gram(grads), 20, np.random.default_rng(4))
    c, _ = kmeans_plus_plus(dense_gram(grads), 20, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.unique(a).size == 20
    zeros = np.zeros((5, 3), dtype=np.float32)  # no signal at all: still 5 distinct picks
    picks, d2 = kmeans_plus_plus(dense_gram(zeros), 5, np.random.default_rng(0))
    assert sorted(picks.tolist()) == list(range(5)) and np.all(d2 == 0)


@pytest.mark.parametrize("adapter", ["sklearn", "torch"])
def test_runs_on_both_adapters(rng, adapter):
    X = rng.normal(size=(150, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)
    if adapter == "sklearn":
        model = SklearnModel(LogisticRegression(), 3).fit(X[:50], y[:50])
    else:
        model = TorchModel(MLP(3, 16, 3), epochs=5, device="cpu").fit(X[:50], y[:50])
    state = SelectionState(Pool(X), Labels(), model, rng=np.random.default_rng(0))
    batch = make_strategy("badge", chunk_size=16).select(state, np.arange(50, 150), 10)
    assert np.unique(batch.ids).size == 10 and np.all(batch.ids >= 50)
    g = model.gradient_embeddings(X[batch.ids[:1]])
    np.testing.assert_allclose(batch.scores[0], float((g**2).sum()), rtol=1e-4)


def test_factored_gram_equals_explicit_embeddings(rng):
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.arange(60) % 3
    model = TorchModel(MLP(3, 8, 3), epochs=3, device="cpu").fit(X, y)
    state = SelectionState(Pool(X), Labels(), model)
    norms, inner = gradient_gram(state, np.arange(60), chunk_size=7)
    explicit_norms, explicit_inner = dense_gram(model.gradient_embeddings(X))
    np.testing.assert_allclose(norms, explicit_norms, rtol=1e-4)
    np.testing.assert_allclose(inner(5), explicit_inner(5), rtol=1e-4, atol=1e-6)
    # and BADGE picks the same batch either way
    embeddings_only = ConstructedGradients(model.gradient_embeddings(X))
    a = make_strategy("badge").select(state_for(embeddings_only, 60, 3), np.arange(60), 8)
    indexed = SelectionState(Pool(X), Labels(), model, rng=np.random.default_rng(3))
    b = make_strategy("badge").select(indexed, np.arange(60), 8)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_needs_gradient_embeddings(rng):
    class ProbaOnly:
        def predict_proba(self, X):
            return np.full((len(X), 2), 0.5)

    X = rng.normal(size=(10, 2)).astype(np.float32)
    state = SelectionState(Pool(X), Labels(), ProbaOnly())
    with pytest.raises(ValidationError, match="gradient_embeddings"):
        make_strategy("badge").select(state, np.arange(10), 2)
