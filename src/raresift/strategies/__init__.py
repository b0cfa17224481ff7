"""Acquisition strategies, constructible by name through :func:`make_strategy`.

Importing this package imports no strategy family: :func:`make_strategy` loads the module a name
needs (see :mod:`raresift.strategies.registry`), so torch is imported only by the strategies
that use it.
"""

from raresift.strategies.base import (
    Batch,
    RandomStrategy,
    ScoringStrategy,
    SelectionState,
    Strategy,
)
from raresift.strategies.registry import (
    STRATEGIES,
    StrategyInfo,
    make_strategy,
    register_strategy,
    strategy_class,
    strategy_info,
    strategy_names,
)

__all__ = [
    "STRATEGIES",
    "Batch",
    "RandomStrategy",
    "ScoringStrategy",
    "SelectionState",
    "Strategy",
    "StrategyInfo",
    "make_strategy",
    "register_strategy",
    "strategy_class",
    "strategy_info",
    "strategy_names",
]
