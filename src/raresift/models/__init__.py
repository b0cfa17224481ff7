"""Model adapters: scikit-learn estimators on embeddings and small torch networks."""

from raresift.models.base import last_layer_gradients
from raresift.models.networks import MLP, LeNet, ResNet18
from raresift.models.sklearn_model import SklearnModel
from raresift.models.torch_model import TorchModel, resolve_device

__all__ = [
    "MLP",
    "LeNet",
    "ResNet18",
    "SklearnModel",
    "TorchModel",
    "last_layer_gradients",
    "resolve_device",
]
