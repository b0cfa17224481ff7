"""The uncertainty strategies and random work with both model adapters."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy

from .torch_threads import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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
