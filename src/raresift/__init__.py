"""raresift: active learning and active search for rare cases in large, skewed pools."""

from raresift.errors import RaresiftError
from raresift.pool import Labels, Pool
from raresift.strategies import Batch, SelectionState, make_strategy, strategy_names

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Labels",
    "Pool",
    "RaresiftError",
    "SelectionState",
    "make_strategy",
    "strategy_names",
]
