import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.errors import ValidationError
from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy

# id 0 is labeled at the origin; candidates 1..4
POINTS = np.array([[0, 0], [1, 0], [5, 0], [0, 10], [0, 9.5]], dtype=np.float32)


def state_for(points, labeled=(0,), model=None, seed=0):
    labels = Labels(list(labeled), [0] * len(labeled))
    return SelectionState(Pool(points), labels, model, rng=np.random.default_rng(seed))


def test_takes_the_farthest_point_then_covers_the_gap():
    batch = make_strategy("coreset").select(state_for(POINTS), [1, 2, 3, 4], 2)
    # farthest from the origin first (3), then the one farthest from {0, 3}: 2, not 4
    assert batch.ids.tolist() == [3, 2]
    np.testing.assert_allclose(batch.scores, [10.0, 5.0], rtol=1e-6)


def test_blocked_distances_match_one_block(rng):
    points = rng.normal(size=(300, 6)).astype(np.float32)
    labeled = tuple(range(0, 300, 7))
    candidates = np.setdiff1d(np.arange(300), labeled)
    state = state_for(points, labeled)
    one = make_strategy("coreset", chunk_size=1000).select(state, candidates, 15)
    tiny = make_strategy("coreset", chunk_size=3).select(state, candidates, 15)
    np.testing.assert_array_equal(one.ids, tiny.ids)
    assert not np.isin(one.ids, labeled).any()
    # k-center property: each pick is the farthest remaining candidate from all centers so far
    centers = list(labeled)
    for pick in one.ids:
        d = np.linalg.norm(points[candidates][:, None] - points[centers][None], axis=2).min(1)
        d[np.isin(candidates, centers)] = -1
        assert candidates[np.argmax(d)] == pick
        centers.append(pick)


def test_without_labels_starts_at_random_and_never_repeats():
    points = np.zeros((6, 2), dtype=np.float32)  # all duplicates: every distance is 0
    batch = make_strategy("coreset").select(state_for(points, labeled=()), np.arange(6), 6)
    assert sorted(batch.ids.tolist()) == list(range(6))


def test_uses_penultimate_features_of_a_torch_model(rng):
    X = rng.normal(size=(80, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = TorchModel(MLP(3, 8, 2), epochs=3, device="cpu").fit(X[:20], y[:20])
    state = state_for(X, labeled=range(20), model=model)
    auto = make_strategy("coreset").select(state, np.arange(20, 80), 5)
    pen = make_strategy("coreset", representation="penultimate").select(state, np.arange(20, 80), 5)
    emb = make_strategy("coreset", representation="embedding").select(state, np.arange(20, 80), 5)
    np.testing.assert_array_equal(auto.ids, pen.ids)
    # the embedding version is plain k-center on X
    assert emb.ids[0] == 20 + np.argmax(np.linalg.norm(X[20:, None] - X[None, :20], axis=2).min(1))


def test_penultimate_needs_a_model_that_has_it(rng):
    X = rng.normal(size=(30, 3)).astype(np.float32)
    model = SklearnModel(LogisticRegression(), 2).fit(X[:10], np.arange(10) % 2)
    state = state_for(X, labeled=range(10), model=model)
    with pytest.raises(ValidationError, match="penultimate"):
        make_strategy("coreset", representation="penultimate").select(state, np.arange(10, 30), 2)
    assert len(make_strategy("coreset").select(state, np.arange(10, 30), 2)) == 2
