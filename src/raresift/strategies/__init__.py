"""Acquisition strategies, constructible by name through :func:`make_strategy`."""

from raresift.strategies import fisher, importance, uncertainty  # noqa: F401  (they register)
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
