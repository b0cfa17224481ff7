"""Acquisition strategies, constructible by name through :func:`make_strategy`."""

from raresift.strategies import (  # noqa: F401  (importing a module registers its strategies)
    badge,
    binary,
    coreset,
    fisher,
    importance,
    mc_dropout,
    similar,
    uncertainty,
)
from raresift.strategies.base import (
    Batch,
    RandomStrategy,
    ScoringStrategy,
    SelectionState,
    Strategy,
    make_strategy,
    register_strategy,
    strategy_names,
)

__all__ = [
    "Batch",
    "RandomStrategy",
    "ScoringStrategy",
    "SelectionState",
    "Strategy",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]
