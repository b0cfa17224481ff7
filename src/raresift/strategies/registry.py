"""The strategy registry: every built-in strategy by name, listed without importing it.

:data:`STRATEGIES` says, for each name, which module defines it, its family, what it is for and
what it needs. Listing names (``raresift strategies``, config checks) reads this table only, so
it loads neither torch nor Faiss; :func:`make_strategy` imports the one module it needs, whose
``@register_strategy(name)`` class then builds the strategy. A test keeps the table and the
registered classes in step.

>>> strategy_info("flqmi").family
'SIMILAR: submodular mutual information'
>>> make_strategy("margin").name
'margin'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from raresift.errors import ConfigError


@dataclass(frozen=True)
class StrategyInfo:
    """One row of the registry: where a strategy lives and what it is for."""

    name: str
    module: str
    family: str
    purpose: str
    needs: str


_BASE = "raresift.strategies.base"
_UNCERTAINTY = "raresift.strategies.uncertainty"
_DROPOUT = "raresift.strategies.mc_dropout"
_SIMILAR = "raresift.strategies.similar"
_BINARY = "raresift.strategies.binary"
_RARE = "raresift.strategies.rare"
_FISHER = "raresift.strategies.fisher"
_IMPORTANCE = "raresift.strategies.importance"

_SMI = "SIMILAR: submodular mutual information"
_SCG = "SIMILAR: conditional gain"
_SCMI = "SIMILAR: conditional mutual information"
_SUBMODULAR = "SIMILAR: plain submodular"
_GRADIENTS = "gradient embeddings (a TorchModel or SklearnModel), or representation='embedding'"

_ROWS = [
    StrategyInfo(
        "random",
        _BASE,
        "baseline",
        "uniform random picks, the reference every study compares against",
        "nothing",
    ),
    StrategyInfo(
        "entropy",
        _UNCERTAINTY,
        "uncertainty",
        "highest predictive entropy (SEALS' MaxEnt)",
        "a fitted model (predict_proba)",
    ),
    StrategyInfo(
        "margin",
        _UNCERTAINTY,
        "uncertainty",
        "smallest gap between the two most likely classes",
        "a fitted model (predict_proba)",
    ),
    StrategyInfo(
        "least-confidence",
        _UNCERTAINTY,
        "uncertainty",
        "lowest probability of the most likely class",
        "a fitted model (predict_proba)",
    ),
    StrategyInfo(
        "bald",
        _DROPOUT,
        "uncertainty (MC dropout)",
        "MC-dropout predictions disagree most (mutual information)",
        "a model with dropout (TorchModel)",
    ),
    StrategyInfo(
        "variation-ratio",
        _DROPOUT,
        "uncertainty (MC dropout)",
        "MC-dropout votes split most",
        "a model with dropout (TorchModel)",
    ),
    StrategyInfo(
        "coreset",
        "raresift.strategies.coreset",
        "diversity",
        "greedy k-center: farthest from everything labeled or picked",
        "embeddings, or a TorchModel's penultimate features",
    ),
    StrategyInfo(
        "badge",
        "raresift.strategies.badge",
        "diversity and uncertainty",
        "k-means++ over hypothesised last-layer gradients",
        "gradient embeddings (a TorchModel or SklearnModel)",
    ),
    StrategyInfo(
        "fl", _SIMILAR, _SUBMODULAR, "representative batch (facility location)", _GRADIENTS
    ),
    StrategyInfo(
        "gc", _SIMILAR, _SUBMODULAR, "representative, diverse batch (graph cut)", _GRADIENTS
    ),
    StrategyInfo("logdet", _SIMILAR, _SUBMODULAR, "diverse batch (log-determinant)", _GRADIENTS),
    StrategyInfo(
        "flvmi",
        _SIMILAR,
        _SMI,
        "items like the query set that also represent the pool (FL over V)",
        f"query_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "flqmi",
        _SIMILAR,
        _SMI,
        "items that cover the query set, rare classes (FL over Q)",
        f"query_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "gcmi", _SIMILAR, _SMI, "items like the query set (graph cut)", f"query_ids; {_GRADIENTS}"
    ),
    StrategyInfo(
        "logdetmi",
        _SIMILAR,
        _SMI,
        "items like the query set, diverse among themselves (log-det)",
        f"query_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "flcg",
        _SIMILAR,
        _SCG,
        "items unlike the conditioning set: redundancy, known junk (FL)",
        f"conditioning_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "gccg",
        _SIMILAR,
        _SCG,
        "items unlike the conditioning set (graph cut)",
        f"conditioning_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "logdetcg",
        _SIMILAR,
        _SCG,
        "items unlike the conditioning set (log-det)",
        f"conditioning_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "flcmi",
        _SIMILAR,
        _SCMI,
        "like the query set, unlike the conditioning set: OOD (FL)",
        f"query_ids and conditioning_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "logdetcmi",
        _SIMILAR,
        _SCMI,
        "like the query set, unlike the conditioning set (log-det)",
        f"query_ids and conditioning_ids; {_GRADIENTS}",
    ),
    StrategyInfo(
        "mlp",
        _BINARY,
        "active search (SEALS)",
        "most likely positive: find as many positives as possible",
        "a binary model",
    ),
    StrategyInfo(
        "ens",
        "raresift.strategies.ens",
        "active search (nonmyopic)",
        "efficient nonmyopic search: p(positive) plus the positives a label would reveal "
        "within the remaining budget (horizon), under a k-NN model",
        "embeddings only (its own k-NN model)",
    ),
    StrategyInfo(
        "information-density",
        _BINARY,
        "active search (SEALS)",
        "entropy weighted by similarity to the candidate pool",
        "a binary model",
    ),
    StrategyInfo(
        "rare-search",
        _RARE,
        "rare classes (sessions)",
        "a class session's default: coverage and random picks until a rare item is known, then "
        "the items most likely in any rare class, with a share exploring for the others",
        "positive= (the rare classes); a model with predict_proba once two classes are answered",
    ),
    StrategyInfo(
        "galaxy",
        "raresift.strategies.imbalance",
        "imbalance",
        "GALAXY: bisect the shortest path between opposite labels in the K margin orders",
        "a fitted model (predict_proba) and labeled items",
    ),
    StrategyInfo(
        "direct",
        "raresift.strategies.imbalance",
        "imbalance",
        "DIRECT: items nearest each class's best 1-D threshold, rare classes first",
        "a fitted model (predict_proba) and labeled items",
    ),
    StrategyInfo(
        "coverage",
        _RARE,
        "rare classes (sessions)",
        "ProbCover cold start: the items covering most of what no answer covers yet",
        "embeddings only",
    ),
    StrategyInfo(
        "fisher",
        _FISHER,
        "Fisher kernel",
        "items like the validation set, by the practical Fisher kernel",
        "a TorchModel and validation_ids",
    ),
    StrategyInfo(
        "fisher-weak",
        _FISHER,
        "Fisher kernel",
        "items like the misclassified validation items (Fisher kernel)",
        "a TorchModel and validation_ids",
    ),
    StrategyInfo(
        "pcc",
        _FISHER,
        "Fisher kernel",
        "Pearson correlation of pooled features with misclassified validation items",
        "a TorchModel and validation_ids",
    ),
    StrategyInfo(
        "ibal",
        _IMPORTANCE,
        "importance (representer points)",
        "least important to the labeled set: what the model has not yet explained",
        "a TorchModel (penultimate features)",
    ),
    StrategyInfo(
        "ibal-d",
        _IMPORTANCE,
        "importance (representer points)",
        "IBAL plus an autoencoder's distance to the labeled items",
        "a TorchModel (penultimate features); raw items for the autoencoder",
    ),
    StrategyInfo(
        "entropy-d",
        _IMPORTANCE,
        "importance (representer points)",
        "entropy plus an autoencoder's distance to the labeled items",
        "a fitted model; raw items for the autoencoder",
    ),
]

#: Every built-in strategy, by name.
STRATEGIES: dict[str, StrategyInfo] = {info.name: info for info in _ROWS}

_REGISTRY: dict[str, type] = {}


def register_strategy(name: str):
    """Class decorator that makes a strategy constructible by name (CLI, configs).

    Built-in strategies are also listed in :data:`STRATEGIES`; one registered from elsewhere is
    constructible once its module has been imported.
    """

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"strategy name {name!r} is registered twice")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def strategy_names() -> list[str]:
    """Sorted names of every strategy: the built-in ones and any registered since."""
    return sorted(STRATEGIES.keys() | _REGISTRY.keys())


def strategy_info(name: str) -> StrategyInfo:
    """The registry row of a built-in strategy."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; choose one of: {', '.join(strategy_names())}"
        ) from None


def strategy_class(name: str) -> type:
    """The class registered as ``name``, importing its module first if it is a built-in."""
    if name not in _REGISTRY:
        importlib.import_module(strategy_info(name).module)
    if name not in _REGISTRY:
        raise ConfigError(
            f"{STRATEGIES[name].module} does not register strategy {name!r}; "
            "the registry table in raresift.strategies.registry is out of date"
        )
    return _REGISTRY[name]


def make_strategy(name: str, **params: Any):
    """Build a strategy from its name and parameters.

    >>> make_strategy("random").name
    'random'
    """
    cls = strategy_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for strategy {name!r}: {exc}") from None
