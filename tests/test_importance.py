"""IBAL, IBAL-D and Entropy-D strategies, the autoencoder and the distance score."""

import numpy as np
import pytest

from raresift.errors import ConfigError, ValidationError
from raresift.models.autoencoder import Autoencoder, distance_scores
from raresift.models.representer import RepresenterPoints
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy
from raresift.strategies.uncertainty import entropy_scores


class LinearModel:
    """penultimate = relu(x A), logits = penultimate B: enough of a TorchModel for IBAL."""

    def __init__(self, dim=4, hidden=6, n_classes=3, seed=0):
        rng = np.random.default_rng(seed)
        self.a = rng.normal(size=(dim, hidden))
        self.b = rng.normal(size=(hidden, n_classes))

    def penultimate(self, x):
        return np.maximum(np.asarray(x) @ self.a, 0)

    def predict_proba(self, x):
        logits = self.penultimate(x) @ self.b
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def _state(n=80, seed=0, n_labeled=10, validation=()):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    labeled = np.arange(n_labeled)
    labels = Labels(labeled, rng.integers(0, 3, n_labeled))
    if len(validation):
        labels.add(validation, rng.integers(0, 3, len(validation)))
    return SelectionState(
        Pool(x), labels, LinearModel(), rng=np.random.default_rng(seed),
        validation_ids=np.asarray(validation, dtype=np.int64) if len(validation) else None,
    )  # fmt: skip


def _expected_ibal(state, cand, train):
    model, x = state.model, state.pool.embeddings
    rep = RepresenterPoints().fit(model.penultimate(x[train]), model.predict_proba(x[train]))
    raw = rep.importance(
        model.penultimate(x[cand]), model.predict_proba(x[cand]), model.penultimate(x[train])
    )
    return raw / np.abs(raw).max()


def test_ibal_picks_the_smallest_importance_and_ignores_validation_items():
    state = _state(validation=[70, 71, 72, 73])
    cand = np.arange(10, 70)
    expected = _expected_ibal(state, cand, np.arange(10))  # validation items are not training
    batch = make_strategy("ibal").select(state, cand, 5)
    np.testing.assert_array_equal(batch.ids, cand[np.argsort(expected)[:5]])
    np.testing.assert_allclose(batch.scores, -np.sort(expected)[:5])


def test_ibal_d_trades_importance_for_distance():
    state = _state()
    cand = np.arange(10, 80)
    far = make_strategy("ibal-d", gamma=1e6, ae_epochs=5).select(state, cand, 6)
    ae = Autoencoder(latent_dim=8, epochs=5, seed=0).fit(state.pool.embeddings)
    d = distance_scores(
        ae.encode(state.pool.embeddings[cand]), ae.encode(state.pool.embeddings[:10])
    )
    assert set(far.ids.tolist()) == set(cand[np.argsort(-d)[:6]].tolist())
    plain = make_strategy("ibal-d", gamma=0.0, ae_epochs=5).select(state, cand, 6)
    np.testing.assert_array_equal(plain.ids, make_strategy("ibal").select(state, cand, 6).ids)


def test_entropy_d_adds_the_distance_to_entropy():
    state = _state()
    cand = np.arange(10, 80)
    entropy = entropy_scores(state.model.predict_proba(state.pool.embeddings[cand]))
    plain = make_strategy("entropy-d", gamma=0.0, ae_epochs=3).select(state, cand, 4)
    np.testing.assert_array_equal(plain.ids, cand[np.argsort(-entropy)[:4]])
    mixed = make_strategy("entropy-d", gamma=0.5, ae_epochs=3)
    batch = mixed.select(state, cand, 4)
    d = distance_scores(
        mixed._distance.autoencoder(state).encode(state.pool.embeddings[cand]),
        mixed._distance.autoencoder(state).encode(state.pool.embeddings[:10]),
    )
    np.testing.assert_allclose(np.sort(batch.scores)[::-1], np.sort(entropy + 0.5 * d)[::-1][:4])


def test_importance_strategies_validate():
    state = _state(n_labeled=0)
    with pytest.raises(ValidationError, match="at least one labeled"):
        make_strategy("ibal").select(state, np.arange(10), 2)
    with pytest.raises(ConfigError, match="gamma"):
        make_strategy("ibal-d", gamma=-1)
    with pytest.raises(ValidationError, match="fitted model"):
        make_strategy("ibal").select(
            SelectionState(state.pool, Labels([0], [1])), np.arange(1, 5), 2
        )


def test_autoencoder_is_seeded_learns_and_handles_images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype(np.float32) @ rng.normal(size=(6, 6)).astype(np.float32)
    a = Autoencoder(latent_dim=3, epochs=3, seed=1).fit(x).encode(x)
    b = Autoencoder(latent_dim=3, epochs=3, seed=1).fit(x).encode(x)
    np.testing.assert_array_equal(a, b)
    short = Autoencoder(latent_dim=3, epochs=1, seed=1).fit(x).loss_
    long = Autoencoder(latent_dim=3, epochs=20, seed=1).fit(x).loss_
    assert long < short
    imgs = (rng.random(size=(32, 1 * 12 * 12)) * 255).astype(np.uint8)
    ae = Autoencoder(input_shape=(1, 12, 12), channels=(4, 2), epochs=1).fit(imgs)
    assert ae.encode(imgs[:5]).shape == (5, 2 * 3 * 3)


def test_distance_scores_blockwise_and_validated():
    rng = np.random.default_rng(2)
    codes, labeled = rng.normal(size=(50, 3)), rng.normal(size=(7, 3))
    brute = np.linalg.norm(codes[:, None] - labeled[None], axis=2).min(1)
    np.testing.assert_allclose(distance_scores(codes, labeled, chunk_size=8), brute / brute.max(),
                               rtol=1e-5)  # fmt: skip
    with pytest.raises(ValidationError):
        distance_scores(codes, np.zeros((0, 3)))


@pytest.mark.parametrize("name", ["ibal", "ibal-d", "entropy-d"])
def test_importance_strategies_run_in_the_active_learner(name):
    from raresift.loop import ActiveLearner
    from raresift.models import MLP, TorchModel

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = (rng.normal(size=(120, 2)) + 2 * np.eye(3)[y][:, :2]).astype(np.float32)
    model = TorchModel(MLP(2, 16, n_classes=3), epochs=20, lr=0.1, device="cpu")
    params = {} if name == "ibal" else {"ae_epochs": 2}
    learner = ActiveLearner(Pool(x), model, make_strategy(name, **params),
                            labels=Labels(np.arange(9), y[:9]), seed=0)  # fmt: skip
    records = learner.run(y, rounds=2, budget=5)
    picked = np.concatenate([r["batch_ids"] for r in records])
    assert np.unique(picked).size == 10 and picked.min() >= 9
