"""The contract every registered strategy keeps with every candidate pool.

For each name ``raresift strategies`` lists and each pool (all, SEALS per item, SEALS per batch,
a random subset), through :class:`~raresift.loop.ActiveLearner`: the strategy is constructible
with its defaults (plus a cheaper autoencoder for the distance strategies); ``query`` returns
``budget`` distinct, unlabeled pool ids; asking again returns the same batch and leaves the
candidate pool as it was; a second learner with the same seed picks the same items; and after
teaching, the next round works and no labeled item stays a candidate.
"""

import numpy as np
import pytest

from raresift.candidates import AllCandidates, RandomCandidates, SEALSCandidates
from raresift.index import NeighborIndex
from raresift.loop import ActiveLearner
from raresift.models import MLP, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy, strategy_names

N, DIM, CLASSES, BUDGET = 240, 6, 3, 6
CHEAP = {"ae_epochs": 2, "max_fit_items": 200}  # the distance strategies' autoencoder
POOLS = ("all", "seals-item", "seals-batch", "random")


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((CLASSES, DIM)) * 2
    y = rng.integers(0, CLASSES, N)
    x = (centers[y] + rng.standard_normal((N, DIM))).astype(np.float32)
    pool = Pool(x, ids=np.arange(N) * 3 + 11)  # ids are not positions
    seed = np.concatenate([np.flatnonzero(y == c)[:6] for c in range(CLASSES)])
    return pool, y, pool.ids[seed], NeighborIndex(progress=False).fit(pool)


def make_pool(kind, index):
    if kind == "all":
        return AllCandidates()
    if kind == "random":
        return RandomCandidates(0.5, seed=1)
    return SEALSCandidates(index, k=8, expand=kind.split("-")[1])


def make_learner(name, kind, world, seed=3):
    pool, y, seed_ids, index = world
    labels = Labels(seed_ids, y[pool.positions(seed_ids)])
    params = CHEAP if name in ("ibal-d", "entropy-d") else {}
    model = TorchModel(MLP(DIM, hidden=16, n_classes=CLASSES, dropout=0.3), CLASSES,
                       epochs=5, device="cpu", seed=seed)  # fmt: skip
    return ActiveLearner(
        pool,
        model,
        make_strategy(name, **params),
        make_pool(kind, index),
        labels,
        query_ids=seed_ids[:3],
        conditioning_ids=seed_ids[6:9],
        validation_ids=seed_ids[-3:],
        seed=seed,
    )


def test_the_contract_covers_every_name_the_cli_lists(capsys):
    from raresift.cli import main

    assert main(["strategies", "--names"]) == 0
    listed = set(capsys.readouterr().out.split())
    assert listed == set(strategy_names())  # the contract below is parametrized by these


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("name", strategy_names())
def test_strategy_keeps_the_contract_on_every_candidate_pool(name, kind, world):
    pool = world[0]
    learner = make_learner(name, kind, world)
    before = learner.candidates.candidates().copy()
    first = learner.query(BUDGET)
    again = learner.query(BUDGET)
    # the requested size, distinct, unlabeled, from the pool
    assert len(first) == BUDGET and np.unique(first.ids).size == BUDGET
    assert not learner.labels.mask(first.ids).any()
    pool.positions(first.ids)
    # pure: the same batch again, the candidate pool unchanged
    np.testing.assert_array_equal(first.ids, again.ids)
    np.testing.assert_array_equal(first.scores, again.scores)
    np.testing.assert_array_equal(learner.candidates.candidates(), before)
    # same seed, same picks (a fresh learner, model and pool)
    np.testing.assert_array_equal(make_learner(name, kind, world).query(BUDGET).ids, first.ids)
    # teaching is the only writer: labeled items leave the pool, the next round works
    y = world[1]
    learner.teach(first.ids, y[pool.positions(first.ids)])
    assert not np.isin(learner.candidates.candidates(), learner.labels.ids).any()
    second = learner.query(BUDGET)
    assert not learner.labels.mask(second.ids).any()


# ------------------------------------------------------------------ the parameter contract
def bad_value(constraint):
    """A value the constraint rejects."""
    from raresift.params import Interval, Options

    if isinstance(constraint, Options):
        return "no-such-option"
    if isinstance(constraint, Interval):
        return (constraint.low - 1) if constraint.low is not None else "not a number"
    return object()  # Instance, HasMethods and the adapters' own constraints


UNCONSTRAINED = {"true_labels"}  # Labels or any callable: checked where it is used


def assert_keeps_the_parameter_contract(cls, build):
    """Every constructor parameter of ``cls`` is declared, ``build(**overrides)`` (required
    arguments filled in, the rest defaults) meets the contract, and each declared parameter
    given a value its constraints reject fails at construction with the one message format."""
    import inspect

    from raresift.errors import ConfigError

    constraints = cls.all_constraints()
    params = {
        p.name
        for klass in cls.__mro__
        if "__init__" in vars(klass) and klass.__module__.startswith("raresift")
        for p in list(inspect.signature(klass.__init__).parameters.values())[1:]
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    undeclared = params - UNCONSTRAINED - set(constraints)
    assert not undeclared, f"{cls.__name__}: undeclared {undeclared}"
    build()  # the defaults meet the contract
    checked = 0
    for param, allowed in constraints.items():
        value = bad_value(allowed[0])
        if param not in params or any(c.holds(value) for c in allowed):
            continue
        with pytest.raises(ConfigError, match=rf"^{cls.__name__}: {param}=.* is invalid; it must"):
            build(**{param: value})
        checked += 1
    assert checked >= min(1, len(constraints))


@pytest.mark.parametrize("name", strategy_names())
def test_every_parameter_is_declared_and_bad_values_fail_at_construction(name):
    from raresift.strategies import strategy_class

    cls = strategy_class(name)
    assert_keeps_the_parameter_contract(cls, lambda **kw: make_strategy(name, **kw))


def _adapters():
    """Every model adapter and network of raresift.models, with its required arguments."""
    from sklearn.linear_model import LogisticRegression

    from raresift.models import LeNet, ResNet18, SklearnModel
    from raresift.models.autoencoder import Autoencoder
    from raresift.models.representer import RepresenterPoints

    return {
        "SklearnModel": (SklearnModel, lambda: {"estimator": LogisticRegression()}),
        "TorchModel": (TorchModel, lambda: {"network": MLP(4, 8, 2), "device": "cpu"}),
        "Autoencoder": (Autoencoder, dict),
        "RepresenterPoints": (RepresenterPoints, dict),
        "MLP": (MLP, lambda: {"in_dim": 4}),
        "LeNet": (LeNet, dict),
        "ResNet18": (ResNet18, lambda: {"width": 2}),
    }


@pytest.mark.parametrize(
    "name",
    ["SklearnModel", "TorchModel", "Autoencoder", "RepresenterPoints", "MLP", "LeNet", "ResNet18"],
)
def test_every_model_adapter_keeps_the_parameter_contract(name):
    cls, required = _adapters()[name]
    assert_keeps_the_parameter_contract(cls, lambda **kw: cls(**{**required(), **kw}))


@pytest.mark.parametrize("kind", ["AllCandidates", "RandomCandidates", "SEALSCandidates", "index"])
def test_every_candidate_pool_and_the_index_keep_the_parameter_contract(kind, world):
    cls, required = {
        "AllCandidates": (AllCandidates, {}),
        "RandomCandidates": (RandomCandidates, {}),
        "SEALSCandidates": (SEALSCandidates, {"index": world[3]}),
        "index": (NeighborIndex, {}),
    }[kind]
    assert_keeps_the_parameter_contract(cls, lambda **kw: cls(**{**required, **kw}))


def test_an_optimizer_typo_fails_when_the_strategy_is_built():
    from raresift.errors import ConfigError

    with pytest.raises(
        ConfigError, match="optimizer='lazyy' is invalid; it must be one of 'naive'"
    ):
        make_strategy("flqmi", optimizer="lazyy")


def test_candidate_pools_check_their_parameters_when_built(world):
    from raresift.errors import ConfigError

    with pytest.raises(ConfigError, match="SEALSCandidates: k=0 is invalid"):
        SEALSCandidates(world[3], k=0)
    with pytest.raises(ConfigError, match="SEALSCandidates: expand='sometimes' is invalid"):
        SEALSCandidates(world[3], expand="sometimes")
    with pytest.raises(ConfigError, match="RandomCandidates: fraction=0.0 is invalid"):
        RandomCandidates(0.0)


# ------------------------------------------------------------------ the representation stage
@pytest.mark.parametrize(
    ("name", "params", "missing"),
    [
        ("bald", {}, "MC-dropout samples"),
        ("fisher", {}, "pooled multi-scale descriptors"),
        ("ibal", {}, "penultimate features"),
        ("coreset", {"representation": "penultimate"}, "penultimate features"),
    ],
)
def test_a_model_that_cannot_give_what_the_strategy_needs_fails_when_the_learner_is_built(
    name, params, missing, world
):
    from sklearn.linear_model import LogisticRegression

    from raresift.errors import ConfigError
    from raresift.models import SklearnModel

    pool, y, seed_ids, _ = world
    model = SklearnModel(LogisticRegression(), CLASSES)
    with pytest.raises(ConfigError, match=f"strategy '{name}' needs {missing}.*SklearnModel"):
        ActiveLearner(pool, model, make_strategy(name, **params))


def test_what_a_strategy_needs_follows_its_parameters(world):
    from sklearn.linear_model import LogisticRegression

    from raresift.errors import ConfigError
    from raresift.models import SklearnModel

    class ProbabilitiesOnly:  # any adapter: capabilities come from its methods
        def __init__(self):
            self.inner = SklearnModel(LogisticRegression(), CLASSES)

        def fit(self, x, y):
            self.inner.fit(x, y)
            return self

        def predict_proba(self, x):
            return self.inner.predict_proba(x)

    pool = world[0]
    with pytest.raises(ConfigError, match="gradient embeddings"):
        ActiveLearner(pool, ProbabilitiesOnly(), make_strategy("flqmi"))
    ActiveLearner(pool, ProbabilitiesOnly(), make_strategy("flqmi", representation="embedding"))
    ActiveLearner(pool, ProbabilitiesOnly(), make_strategy("coreset"))  # auto: embeddings


KEYWORDS = {  # how the registry's `needs` text names each capability
    "probabilities": ("model",),
    "gradient_embeddings": ("gradient",),
    "penultimate": ("penultimate",),
    "pooled_fisher": ("TorchModel",),
    "dropout_samples": ("dropout",),
}


@pytest.mark.parametrize("name", strategy_names())
def test_the_registry_listing_names_what_the_strategy_declares(name):
    from raresift.strategies import strategy_info

    needs = strategy_info(name).needs.lower()
    for capability in make_strategy(name).requires():
        words = KEYWORDS[capability]
        assert any(word.lower() in needs for word in words), (name, capability, needs)


def test_the_parameter_contract_covers_every_adapter_and_pool_class():
    import raresift.candidates as candidates
    import raresift.models as models

    exported = {n for n in models.__all__ if isinstance(getattr(models, n), type)}
    assert exported <= set(_adapters())
    pools = {
        name
        for name, obj in vars(candidates).items()
        if isinstance(obj, type)
        and issubclass(obj, candidates.CandidatePool)
        and obj is not candidates.CandidatePool
    }
    assert pools == {"AllCandidates", "RandomCandidates", "SEALSCandidates"}
