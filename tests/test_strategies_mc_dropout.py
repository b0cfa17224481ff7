import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.errors import ValidationError
from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy
from raresift.strategies.mc_dropout import bald_scores, variation_ratio_scores


class ConstructedDropout:
    """Returns fixed dropout samples per item; the item index sits in embedding column 0."""

    def __init__(self, samples):
        self.samples = np.asarray(samples, dtype=np.float64)  # (S, n_items, K)
        self.seeds = []

    def predict_proba(self, X):
        return self.samples.mean(0)[X[:, 0].astype(int)]

    def mc_dropout_proba(self, X, n_samples, seed):
        self.seeds.append(seed)
        return self.samples[:n_samples, X[:, 0].astype(int)]


def constructed_state(samples, seed=0):
    n = np.asarray(samples).shape[1]
    pool = Pool(np.c_[np.arange(n), np.zeros(n)].astype(np.float32))
    model = ConstructedDropout(samples)
    return SelectionState(pool, Labels(), model, rng=np.random.default_rng(seed)), model


# samples for 3 items over 4 dropout masks:
# 0 unsure but consistent, 1 confident but split, 2 confident and consistent
SAMPLES = np.array(
    [
        [[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]],
        [[0.5, 0.5], [0.0, 1.0], [0.9, 0.1]],
        [[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]],
        [[0.5, 0.5], [0.0, 1.0], [0.9, 0.1]],
    ]
)


def test_bald_prefers_disagreement_over_plain_uncertainty():
    scores = bald_scores(SAMPLES)
    np.testing.assert_allclose(scores, [0.0, np.log(2), 0.0], atol=1e-9)
    state, _ = constructed_state(SAMPLES)
    batch = make_strategy("bald", n_samples=4).select(state, [0, 1, 2], 1)
    assert batch.ids.tolist() == [1]
    # entropy cannot tell items 0 and 1 apart: both average to (0.5, 0.5)
    entropy = make_strategy("entropy").score(state, np.array([0, 1]))
    assert entropy[0] == pytest.approx(entropy[1])


def test_variation_ratio_counts_split_votes():
    np.testing.assert_allclose(variation_ratio_scores(SAMPLES), [0.0, 0.5, 0.0])
    three_way = np.array([[[1, 0, 0]], [[0, 1, 0]], [[0, 0, 1]], [[1, 0, 0]]], dtype=float)
    np.testing.assert_allclose(variation_ratio_scores(three_way), [0.5])
    state, _ = constructed_state(SAMPLES)
    assert make_strategy("variation-ratio", n_samples=4).select(state, [0, 1, 2], 1).ids[0] == 1


def test_chunks_get_distinct_seeds_and_same_scores():
    rng = np.random.default_rng(0)
    samples = rng.dirichlet([1, 1, 1], size=(5, 50))
    state, model = constructed_state(samples, seed=3)
    whole = make_strategy("bald", n_samples=5).score(state, np.arange(50))
    state, model = constructed_state(samples, seed=3)
    chunked = make_strategy("bald", n_samples=5, chunk_size=7).score(state, np.arange(50))
    np.testing.assert_allclose(whole, chunked)
    assert len(model.seeds) == 8 and len(set(model.seeds)) == 8


def test_needs_a_model_with_dropout_samples(rng):
    X = rng.normal(size=(30, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = SklearnModel(LogisticRegression(), 2).fit(X, y)
    state = SelectionState(Pool(X), Labels(), model)
    with pytest.raises(ValidationError, match="MC-dropout"):
        make_strategy("bald").select(state, np.arange(30), 2)
    with pytest.raises(ValidationError, match="fitted model"):
        make_strategy("variation-ratio").select(SelectionState(Pool(X), Labels()), [0, 1], 1)
    with pytest.raises(Exception, match="n_samples"):
        make_strategy("bald", n_samples=1)


@pytest.mark.parametrize("name", ["bald", "variation-ratio"])
def test_with_torch_model_is_deterministic(rng, name):
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = TorchModel(MLP(4, 32, 2, dropout=0.5), epochs=10, device="cpu").fit(X[:40], y[:40])
    strategy = make_strategy(name, n_samples=8)
    pool, candidates = Pool(X), np.arange(40, 120)
    states = [SelectionState(pool, Labels(), model, np.random.default_rng(1)) for _ in range(2)]
    picks = [strategy.select(state, candidates, 6).ids for state in states]
    np.testing.assert_array_equal(picks[0], picks[1])
    assert np.unique(picks[0]).size == 6 and np.all(picks[0] >= 40)
