"""What one job of a study is made of: its data, scenario, model, strategy and candidate pool."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from raresift.errors import ConfigError, ValidationError
from raresift.simulate.config import StrategySpec, StudyConfig, check_known_keys
from raresift.simulate.scenarios import BUILDERS, Scenario


@lru_cache(maxsize=4)
def _load_dataset(name: str) -> tuple:
    from raresift import datasets

    if name == "fashion-mnist":
        train, test = datasets.load_fashion_mnist("train"), datasets.load_fashion_mnist("test")
        return train.X, train.y, test.X, test.y, train.class_names, 255.0
    data = datasets.load_mnist5k() if name == "mnist5k" else datasets.load_digits()
    return data.X, data.y, None, None, data.class_names, 255.0 if name == "mnist5k" else 16.0


def load_study_data(spec: dict[str, Any]) -> tuple:
    """``(X, y, test_X, test_y, class_names)`` for a ``[dataset]`` table; pixels scaled to [0, 1].

    Data sets without a test split (mnist5k, digits) hold out ``test_per_class`` items per class
    (default 100) with a fixed generator, the same for every seed.
    """
    X, y, test_X, test_y, names, scale = _load_dataset(spec["name"])
    rng = np.random.default_rng(12345)
    test_per_class = spec.get("test_per_class")
    if test_X is None:
        from raresift.simulate.scenarios import take_per_class

        n_classes = int(y.max()) + 1
        test_idx = take_per_class(y, np.full(n_classes, test_per_class or 100), rng)
        keep = np.ones(y.size, dtype=bool)
        keep[test_idx] = False
        test_X, test_y, X, y = X[test_idx], y[test_idx], X[keep], y[keep]
    elif test_per_class is not None:
        from raresift.simulate.scenarios import take_per_class

        n_classes = int(test_y.max()) + 1
        test_idx = np.sort(take_per_class(test_y, np.full(n_classes, test_per_class), rng))
        test_X, test_y = test_X[test_idx], test_y[test_idx]
    if spec.get("train_subset") is not None and spec["train_subset"] < y.size:
        subset = np.sort(rng.permutation(y.size)[: spec["train_subset"]])
        X, y = X[subset], y[subset]
    inv = np.float32(1.0 / scale)
    return (
        X.astype(np.float32) * inv,
        y,
        test_X.astype(np.float32) * inv,
        test_y,
        names,
    )


def build_scenario(config: StudyConfig, seed: int) -> Scenario:
    """The study's scenario for one seed."""
    X, y, test_X, test_y, names = load_study_data(config.dataset)
    params = {k: v for k, v in config.scenario.items() if k != "kind"}
    try:
        return BUILDERS[config.scenario["kind"]](
            X, y, test_X, test_y, class_names=names, seed=seed, **params
        )
    except ValidationError as exc:
        raise ConfigError(f"[scenario]: {exc}") from None


def build_model(model: dict[str, Any], scenario: Scenario, seed: int):
    """A fresh model adapter for one job from a ``[model]`` table (retrained from scratch at
    every fit)."""
    spec = dict(model)
    kind = spec.pop("kind")
    n_classes = scenario.n_classes
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        from raresift.models import SklearnModel

        estimator = LogisticRegression(
            C=spec.get("C", 1.0),
            max_iter=spec.get("max_iter", 500),
            class_weight=spec.get("class_weight"),
        )
        return SklearnModel(estimator, n_classes)
    from raresift.models import MLP, LeNet, TorchModel

    train = {k: spec.pop(k) for k in list(spec) if k not in ("hidden", "dropout")}
    if kind == "mlp":
        net = MLP(
            scenario.pool.dim,
            hidden=spec.get("hidden", 128),
            n_classes=n_classes,
            dropout=spec.get("dropout", 0.2),
        )
    else:
        side = int(round(np.sqrt(scenario.pool.dim)))
        if side * side != scenario.pool.dim or side != 28:
            raise ConfigError("the lenet model needs 28 x 28 images (fashion-mnist, mnist5k)")
        net = LeNet(n_classes=n_classes, dropout=spec.get("dropout", 0.5))
    return TorchModel(net, n_classes, device="cpu", seed=seed, **train)


CANDIDATE_KEYS = {
    "all": {"kind"},
    "seals": {"kind", "k", "expand", "index"},
    "random": {"kind", "fraction"},
}


def build_candidates(spec: Any, scenario: Scenario | None = None, seed: int = 0):
    """A candidate pool from a name or table.

    ``"all"`` (every unlabeled item); ``{kind = "seals", k = 100, expand = "item", index =
    "Flat"}`` (SEALS: k-NN of the labeled items, with a Faiss index of that factory string built
    over the scenario's pool; without ``index``, the scenario's own index if it has one, else
    "Flat"); ``{kind = "random", fraction = 0.1}`` (a fixed random subset).
    Without ``scenario`` only the spec is checked.
    """
    from raresift import candidates as cand

    name, params = (spec, {}) if isinstance(spec, str) else (spec.get("kind"), dict(spec))
    if name not in CANDIDATE_KEYS:
        raise ConfigError(
            f"unknown candidate pool {name!r}; choose one of: {', '.join(CANDIDATE_KEYS)}"
        )
    check_known_keys(params, CANDIDATE_KEYS[name], f"candidates (kind {name!r})")
    params.pop("kind", None)
    if name == "all":
        return cand.AllCandidates()
    wanted = {"seals": "SEALSCandidates", "random": "RandomCandidates"}[name]
    if not hasattr(cand, wanted):
        raise ConfigError(f"this raresift has no {wanted}; candidate pool {name!r} is unavailable")
    if scenario is None:
        return None
    if name == "random":
        return cand.RandomCandidates(params.get("fraction", 0.1), seed=seed)
    factory = params.pop("index", None)
    index = scenario.index
    if factory is not None or index is None:
        from raresift.index import NeighborIndex

        index = NeighborIndex(factory or "Flat", progress=False).fit(scenario.pool)
    return cand.SEALSCandidates(index, **params)


def build_strategy(spec: StrategySpec):
    """The strategy object for a spec."""
    from raresift.strategies import make_strategy

    return make_strategy(spec.name, **spec.params)


def check_study(config: StudyConfig, only: list[str] | None = None) -> Scenario:
    """Check strategy names, candidate pools and budgets; returns the first seed's scenario.

    ``only`` restricts the strategy checks to these labels.
    """
    import raresift.strategies as strategies

    known = set(strategies.strategy_names())
    for spec in config.strategies:
        if only is not None and spec.label not in only:
            continue
        if spec.name not in known:
            raise ConfigError(
                f"unknown strategy {spec.name!r} (in {spec.label!r}); choose one of: "
                f"{', '.join(sorted(known))}"
            )
        build_candidates(spec.candidates)
    scenario = build_scenario(config, config.seeds[0])
    needed = config.rounds * config.budget
    if needed > scenario.n_unlabeled:
        raise ConfigError(
            f"{config.rounds} rounds x budget {config.budget} = {needed} labels, but the scenario "
            f"has only {scenario.n_unlabeled} unlabeled items; lower rounds or budget"
        )
    return scenario
