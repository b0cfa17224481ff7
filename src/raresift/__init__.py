"""raresift: active learning and active search for rare cases in large, skewed pools.

The names below load on first use, so ``import raresift`` and the command line start quickly:
torch, Faiss and scikit-learn are imported only by the parts that use them.

>>> import raresift
>>> raresift.Pool.__name__
'Pool'
"""

from raresift._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
