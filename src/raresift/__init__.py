"""raresift: active learning and active search for rare cases in large, skewed pools.

The names below load on first use, so ``import raresift`` and the command line start quickly
(torch and scikit-learn are imported only when a model, strategy or loop is needed).

>>> import raresift
>>> raresift.Pool.__name__
'Pool'
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ActiveLearner": "raresift.loop",
    "AllCandidates": "raresift.candidates",
    "ArrayOracle": "raresift.loop",
    "Batch": "raresift.strategies",
    "CandidatePool": "raresift.candidates",
    "Labels": "raresift.pool",
    "LeNet": "raresift.models",
    "MLP": "raresift.models",
    "NeighborIndex": "raresift.index",
    "Pool": "raresift.pool",
    "RandomCandidates": "raresift.candidates",
    "RaresiftError": "raresift.errors",
    "ResNet18": "raresift.models",
    "SEALSCandidates": "raresift.candidates",
    "SelectionState": "raresift.strategies",
    "SklearnModel": "raresift.models",
    "TorchModel": "raresift.models",
    "make_strategy": "raresift.strategies",
    "strategy_names": "raresift.strategies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raresift' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
