import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.candidates import AllCandidates
from raresift.errors import BudgetError, ConfigError, UnknownIdError, ValidationError
from raresift.loop import ActiveLearner, ArrayOracle
from raresift.models import MLP, LeNet, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy


def make_data(rng, n=300, dim=4):
    X = rng.normal(size=(n, dim)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    ids = np.arange(n) * 3 + 1000  # ids are not positions
    return Pool(X, ids=ids), y


def learner(pool, y, strategy="entropy", seed=0, **kw):
    seed_ids = pool.ids[np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]]
    labels = Labels(seed_ids, ArrayOracle(y, pool.ids)(seed_ids))
    model = SklearnModel(LogisticRegression(), n_classes=2)
    return ActiveLearner(pool, model, strategy, labels=labels, seed=seed, **kw)


@pytest.mark.parametrize("strategy", ["random", "entropy", "margin"])
def test_same_seed_same_batches(rng, strategy):
    pool, y = make_data(rng)
    runs = [learner(pool, y, strategy, seed=s).run(y, rounds=4, budget=7) for s in (5, 5, 6)]
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a["batch_ids"], b["batch_ids"])
    if strategy == "random":
        assert any(
            not np.array_equal(a["batch_ids"], c["batch_ids"])
            for a, c in zip(runs[0], runs[2], strict=True)
        )


def test_query_labels_nothing_and_repeats(rng):
    pool, y = make_data(rng)
    al = learner(pool, y, "random")
    before = (len(al.labels), len(al.candidates), al.round)
    first = al.query(10)
    assert (len(al.labels), len(al.candidates), al.round) == before
    np.testing.assert_array_equal(al.query(10).ids, first.ids)
    assert not al.labels.mask(first.ids).any()
    assert np.isin(first.ids, pool.ids).all()


def test_teach_records_and_updates_candidates(rng):
    pool, y = make_data(rng)
    al = learner(pool, y)
    batch = al.query(5)
    oracle = ArrayOracle(y, pool.ids)
    new = al.teach(batch.ids, oracle(batch.ids))
    np.testing.assert_array_equal(new, batch.ids)
    assert al.round == 1 and len(al.labels) == 11
    assert not np.isin(batch.ids, al.candidates.candidates()).any()
    assert not al.is_fitted
    again = al.teach(batch.ids[:2], oracle(batch.ids[:2]))  # same answers: nothing new
    assert again.size == 0 and al.round == 1


def test_teach_validation_errors(rng):
    pool, y = make_data(rng)
    al = learner(pool, y)
    with pytest.raises(UnknownIdError):
        al.teach([1001], [0])  # not an id of this pool
    labeled = al.labels.ids[0]
    with pytest.raises(ValidationError, match="already labeled"):
        al.teach([labeled], [1 - al.labels[labeled]])
    with pytest.raises(ValidationError, match="one label per id"):
        al.teach(pool.ids[20:23], [0, 1])
    with pytest.raises(ValidationError, match="duplicates"):
        al.teach([pool.ids[20], pool.ids[20]], [0, 0])
    with pytest.raises(ValidationError, match="out of range"):
        al.teach(pool.ids[20:22], [0, 2])  # the model has 2 classes
    assert len(al.labels) == 6


def test_budget_and_construction_errors(rng):
    pool, y = make_data(rng, n=20)
    al = learner(pool, y)
    with pytest.raises(BudgetError, match="14 eligible"):
        al.query(15)
    with pytest.raises(BudgetError):
        al.query(0)
    assert len(al.query(14)) == 14
    with pytest.raises(ConfigError, match="unknown strategy"):
        learner(pool, y, "no-such-strategy")
    with pytest.raises(ValidationError, match="must be labeled"):
        learner(pool, y, query_ids=pool.ids[-2:])
    with pytest.raises(UnknownIdError):
        ActiveLearner(pool, SklearnModel(LogisticRegression()), labels=Labels([5], [0]))
    with pytest.raises(ValidationError, match="no labeled items"):
        ActiveLearner(pool, SklearnModel(LogisticRegression())).fit()


def test_query_and_conditioning_sets_grow(rng):
    pool, y = make_data(rng)
    al = learner(pool, y, "random")
    al.query_ids = al.labels.ids[:2]
    batch = al.query(4)
    al.teach(batch.ids, y[pool.positions(batch.ids)])
    al.add_query_ids(batch.ids[:2])
    al.add_conditioning_ids(batch.ids[2:])
    assert set(al.query_ids.tolist()) == set(al.labels.ids[:2].tolist()) | set(batch.ids[:2])
    np.testing.assert_array_equal(al.conditioning_ids, np.sort(batch.ids[2:]))
    seen = {}
    random_strategy = make_strategy("random")

    class Spy:
        name = "spy"

        def select(self, state, candidates, budget):
            seen["query"], seen["conditioning"] = state.query_ids, state.conditioning_ids
            return random_strategy.select(state, candidates, budget)

    al.strategy = Spy()
    al.query(3)
    np.testing.assert_array_equal(seen["query"], al.query_ids)
    np.testing.assert_array_equal(seen["conditioning"], al.conditioning_ids)


def test_strategies_see_the_model_type_through_the_timer(rng):
    pool, y = make_data(rng)
    al = learner(pool, y, "random")
    seen = {}
    random_strategy = make_strategy("random")

    class Spy:
        name = "spy"

        def select(self, state, candidates, budget):
            seen["is_sklearn"] = isinstance(state.model, SklearnModel)
            seen["proba"] = state.model.predict_proba(state.inputs(candidates[:2]))
            return random_strategy.select(state, candidates, budget)

    al.strategy = Spy()
    al.query(2)
    assert seen["is_sklearn"] and seen["proba"].shape == (2, 2)
    assert al.last_query_seconds["features"] > 0


def test_validation_items_are_held_out_of_training(rng):
    pool, y = make_data(rng)
    fitted = {}

    class Recorder(SklearnModel):
        def fit(self, X, y):
            fitted["n"] = X.shape[0]
            return super().fit(X, y)

    val = pool.ids[200:210]
    labels = Labels(np.r_[pool.ids[:6], val], y[np.r_[0:6, 200:210]])
    al = ActiveLearner(
        pool,
        Recorder(LogisticRegression(), 2),
        "entropy",
        labels=labels,
        validation_ids=val,
    )
    al.query(3)
    assert fitted["n"] == 6
    assert not np.isin(val, al.candidates.candidates()).any()


def test_run_records_and_callback(rng):
    pool, y = make_data(rng)
    al = learner(pool, y)

    def accuracy(learner_, batch):
        assert learner_.is_fitted
        proba = learner_.model.predict_proba(pool.embeddings)
        return {"accuracy": float(np.mean(proba.argmax(1) == y)), "picked": len(batch)}

    records = al.run(lambda ids: y[pool.positions(ids)], rounds=3, budget=10, callback=accuracy)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert [r["n_labeled"] for r in records] == [16, 26, 36]
    assert [r["n_candidates"] for r in records] == [294, 284, 274]
    for r in records:
        assert r["picked"] == 10 and 0.5 < r["accuracy"] <= 1
        assert min(r["seconds_training"], r["seconds_features"], r["seconds_selection"]) >= 0
        np.testing.assert_array_equal(r["batch_labels"], y[pool.positions(r["batch_ids"])])
    assert records[0]["seconds_features"] > 0  # entropy calls predict_proba
    all_ids = np.concatenate([r["batch_ids"] for r in records])
    assert np.unique(all_ids).size == 30


def test_candidate_pool_limits_the_picks(rng):
    pool, y = make_data(rng)

    class Window(AllCandidates):
        def candidates(self):
            return super().candidates()[:25]

    al = learner(pool, y, candidates=Window())
    records = al.run(y, rounds=2, budget=10)
    assert np.isin(records[0]["batch_ids"], pool.ids[:31]).all()


def test_loop_with_torch_model(rng):
    pool, y = make_data(rng, n=200)
    model = TorchModel(MLP(4, 16, 2), epochs=20, lr=0.05, device="cpu")
    seeds = pool.ids[:10]
    for strategy in ("entropy", "least-confidence", "margin", "random"):
        al = ActiveLearner(pool, model, strategy, labels=Labels(seeds, y[:10]), seed=1)
        records = al.run(y, rounds=2, budget=5)
        assert [r["n_labeled"] for r in records] == [15, 20]


def test_array_oracle_rejects_unknown_ids():
    oracle = ArrayOracle([0, 1, 1], ids=[7, 8, 9])
    with pytest.raises(UnknownIdError):
        oracle([10])


def test_use_items_feeds_raw_inputs_to_the_model(rng):
    images = rng.random((60, 1, 28, 28)).astype(np.float32)
    y = np.arange(60) % 3
    images[y == 1, :, :14] += 1.0  # a visible difference between the classes
    pool = Pool(rng.normal(size=(60, 2)), items=lambda ids: images[ids])
    model = TorchModel(LeNet(3), epochs=2, device="cpu")
    al = ActiveLearner(pool, model, "bald", labels=Labels(np.arange(9), y[:9]), use_items=True)
    records = al.run(y, rounds=2, budget=4)
    assert [r["n_labeled"] for r in records] == [13, 17]
    assert model.penultimate(images[:2]).shape == (2, 50)


def test_strategies_see_model_attributes_unwrapped_and_methods_timed():
    from raresift.strategies import Batch, Strategy

    seen = {}

    class Probe(Strategy):
        def select(self, state, candidates, budget):
            seen["network"] = state.model.network
            state.model.predict_proba(state.inputs(candidates[:budget]))
            return Batch(candidates[:budget], np.zeros(budget), "probe", state.round)

    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    model = TorchModel(MLP(3, 4, n_classes=2), epochs=1)
    learner = ActiveLearner(Pool(X), model, Probe(), labels=Labels([0, 1], [0, 1]))
    learner.query(2)
    assert seen["network"] is model.network
    assert learner.last_query_seconds["features"] > 0
