"""The uncertainty strategies and random work with both model adapters."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy, uncertainty
from raresift.strategies.base import top_scores

# labeled points on both sides of 0; candidates far left, on the boundary, far right
TRAIN_X = np.array([[-3.0], [-2.5], [-2.0], [2.0], [2.5], [3.0]], dtype=np.float32)
TRAIN_Y = np.array([0, 0, 0, 1, 1, 1])
CANDIDATES = np.array([[-6.0], [0.0], [6.0]], dtype=np.float32)


def fitted(adapter):
    if adapter == "sklearn":
        return SklearnModel(LogisticRegression(), n_classes=2).fit(TRAIN_X, TRAIN_Y)
    net = MLP(1, 16, 2, dropout=0.0)
    return TorchModel(net, epochs=300, lr=0.05, target_accuracy=1.0, device="cpu").fit(
        TRAIN_X, TRAIN_Y
    )


@pytest.mark.parametrize("adapter", ["sklearn", "torch"])
@pytest.mark.parametrize("name", ["entropy", "margin", "least-confidence"])
def test_uncertainty_takes_the_boundary_item(adapter, name):
    model = fitted(adapter)
    pool = Pool(np.r_[TRAIN_X, CANDIDATES], ids=np.arange(9) + 100)
    state = SelectionState(pool, Labels(pool.ids[:6], TRAIN_Y), model)
    batch = make_strategy(name).select(state, pool.ids[6:], 1)
    assert batch.ids.tolist() == [107]


@pytest.mark.parametrize("adapter", ["sklearn", "torch"])
def test_random_with_both_adapters(adapter):
    model = fitted(adapter)
    pool = Pool(np.r_[TRAIN_X, CANDIDATES])
    state = SelectionState(pool, Labels(np.arange(6), TRAIN_Y), model, np.random.default_rng(2))
    assert sorted(make_strategy("random").select(state, [6, 7, 8], 3).ids.tolist()) == [6, 7, 8]


def test_top_scores_takes_the_best_and_breaks_boundary_ties_at_random():
    scores = np.array([0.3, 0.9, 0.5, 0.5, 0.1, 0.5])
    picks = {tuple(top_scores(scores, 3, np.random.default_rng(s)).tolist()) for s in range(40)}
    assert all(p[0] == 1 and set(p[1:]) <= {2, 3, 5} and len(set(p)) == 3 for p in picks)
    assert len(picks) == 6  # every ordered pair of the three tied items turns up
    same = top_scores(scores, 3, np.random.default_rng(7))
    assert np.array_equal(same, top_scores(scores, 3, np.random.default_rng(7)))
    assert top_scores(scores, 10, np.random.default_rng(0)).size == scores.size


def test_probabilities_are_computed_in_blocks(monkeypatch, rng):
    x = rng.normal(size=(50, 3)).astype(np.float32)
    pool = Pool(x)
    model = SklearnModel(LogisticRegression(), n_classes=2).fit(x, (x[:, 0] > 0).astype(int))
    state = SelectionState(pool, Labels(), model)
    ids = rng.permutation(50)
    whole = uncertainty.predict_proba(state, ids)
    seen = []
    original = model.predict_proba_trusted
    monkeypatch.setattr(
        model, "predict_proba_trusted", lambda X: seen.append(len(X)) or original(X)
    )
    monkeypatch.setattr(uncertainty, "PROBA_BLOCK", 16)
    assert np.array_equal(uncertainty.predict_proba(state, ids), whole)
    assert seen == [16, 16, 16, 2]
    # all but a few ids, ascending: contiguous pool rows, the extra ones scored and dropped
    seen.clear()
    dense = np.delete(np.arange(50), [3, 20])
    np.testing.assert_allclose(
        uncertainty.predict_proba(state, dense), whole[np.argsort(ids)][dense]
    )
    assert seen == [16, 16, 16, 2]
