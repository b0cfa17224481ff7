"""Acquisition strategies, constructible by name through :func:`make_strategy`."""

from raresift.strategies import binary, uncertainty  # noqa: F401  (register their strategies)
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
