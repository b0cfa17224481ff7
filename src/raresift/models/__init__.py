"""Model adapters: scikit-learn estimators on embeddings and small torch networks."""

from raresift.models.base import gradient_layout, last_layer_gradients, last_layer_residuals
from raresift.models.networks import MLP, LeNet, ResNet18
from raresift.models.sklearn_model import SklearnModel
from raresift.models.torch_model import TorchModel, resolve_device

__all__ = [
    "MLP",
    "LeNet",
    "ResNet18",
    "SklearnModel",
    "TorchModel",
    "gradient_layout",
    "last_layer_gradients",
    "last_layer_residuals",
    "resolve_device",
]
