"""Model adapters: scikit-learn estimators on embeddings and small torch networks.

The names load on first use: ``SklearnModel`` needs no torch.
"""

from raresift._lazy import lazy_exports

_EXPORTS = {
    "MLP": "raresift.models.networks",
    "LeNet": "raresift.models.networks",
    "ResNet18": "raresift.models.networks",
    "SklearnModel": "raresift.models.sklearn_model",
    "TorchModel": "raresift.models.torch_model",
    "gradient_layout": "raresift.models.base",
    "last_layer_gradients": "raresift.models.base",
    "last_layer_residuals": "raresift.models.base",
    "resolve_device": "raresift.models.torch_model",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
