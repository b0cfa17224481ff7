"""Adapter for small torch networks: retrain from scratch each round, expose what strategies need.

Stable names other modules rely on: :attr:`TorchModel.network` (the trained ``nn.Module``, with
``features`` and ``classifier``), :attr:`TorchModel.device`, :meth:`TorchModel.predict_proba`,
:meth:`TorchModel.penultimate`, :meth:`TorchModel.gradient_embeddings`,
:meth:`TorchModel.gradient_factors`,
:meth:`TorchModel.mc_dropout_proba` and :meth:`TorchModel.as_tensor` (inputs -> device tensor).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from raresift.errors import ConfigError, ValidationError
from raresift.models.base import check_labels, gradient_layout, last_layer_residuals
from raresift.params import Instance, Interval, Parameterized, invalid, positive_int
from raresift.pool import check_finite

logger = logging.getLogger("raresift")

_XAVIER_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings are checked torch devices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but CUDA is not available; use 'auto'")
    return resolved


class _Network:
    """The constraint on a :class:`TorchModel`'s network."""

    def holds(self, value: Any) -> bool:
        return (
            isinstance(value, nn.Module)
            and callable(getattr(value, "features", None))
            and isinstance(getattr(value, "classifier", None), nn.Linear)
        )

    def __str__(self) -> str:
        return (
            "a torch nn.Module that defines features(x) and a final nn.Linear named classifier "
            "(forward = classifier(features(x))); see raresift.models.networks"
        )


class TorchModel(Parameterized):
    """Train a network from scratch on every :meth:`fit` (SIMILAR's recipe) and query it.

    Each ``fit`` re-initialises the weights (Xavier-uniform for linear and convolution weights,
    zero biases, defaults for normalisation layers) and runs SGD with momentum, weight decay and
    per-epoch cosine annealing until the training accuracy of an epoch reaches
    ``target_accuracy`` or ``epochs`` epochs have run. Everything random (initialisation,
    shuffling, dropout) follows ``seed``: the same data and seed give the same model on CPU.

    Parameters
    ----------
    network : nn.Module
        Must define ``features(x) -> (n, D)`` and ``classifier`` (an ``nn.Linear``), with
        ``forward(x) == classifier(features(x))``; see :mod:`raresift.models.networks`.
    n_classes : int, optional
        Defaults to ``network.classifier.out_features`` and must equal it.
    epochs : int
        Epoch cap (the paper uses 150 on a GPU; the CPU-sized default is 30).
    batch_size, lr, momentum, weight_decay, target_accuracy
        Training recipe; defaults are SIMILAR's (lr 0.01, momentum 0.9, weight decay 5e-4, 99 %).
    input_shape : tuple, optional
        Shape of one input, e.g. ``(1, 28, 28)``; flat rows are reshaped to it. Defaults to
        ``network.input_shape`` when the network has one (LeNet, ResNet18).
    input_scale : float
        Inputs are multiplied by this (e.g. ``1/255`` for raw uint8 pixels).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    chunk_size : int
        Rows per forward pass at inference.
    seed : int
    progress : bool
        Show a tqdm bar over epochs.

    Examples
    --------
    >>> from raresift.models.networks import MLP
    >>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))].astype(np.float32)
    >>> y = np.r_[np.zeros(20, int), np.ones(20, int)]
    >>> model = TorchModel(MLP(2, 16, n_classes=2), epochs=200, lr=0.1).fit(X, y)
    >>> model.train_accuracy_ >= 0.99
    True
    >>> model.predict_proba(X).shape, model.gradient_embeddings(X).shape
    ((40, 2), (40, 34))
    """

    parameter_constraints = {
        "network": [_Network()],
        "n_classes": [Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, "neither")],
        "momentum": [Interval(float, 0, 1, "left")],
        "weight_decay": [Interval(float, 0, None)],
        "target_accuracy": [Interval(float, 0, 1, "right")],
        "input_shape": [Instance(tuple, list, None)],
        "input_scale": [Interval(float, 0, None, "neither")],
        "device": [Instance(str, torch.device)],
        "chunk_size": [Interval(int, 1, None)],
        "seed": [Interval(int, 0, None)],
        "progress": [Instance(bool)],
    }

    def __init__(
        self,
        network: nn.Module,
        n_classes: int | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        target_accuracy: float = 0.99,
        input_shape: tuple[int, ...] | None = None,
        input_scale: float = 1.0,
        device: str = "auto",
        chunk_size: int = 1024,
        seed: int = 0,
        progress: bool = False,
    ):
        self.network = network
        outputs = getattr(getattr(network, "classifier", None), "out_features", None)
        self.n_classes = outputs if n_classes is None else n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.target_accuracy = target_accuracy
        self.input_shape = input_shape
        self.input_scale = input_scale
        self.device = device
        self.chunk_size = chunk_size
        self.seed = seed
        self.progress = progress
        self.check_parameters()  # before the network is moved anywhere
        if self.n_classes != outputs:
            raise invalid(
                "TorchModel", "n_classes", n_classes, f"{outputs}, the network's classifier outputs"
            )
        self.device = resolve_device(device)
        self.is_fitted_ = False
        self.network.to(self.device)

    # ---------------------------------------------------------------- inputs
    def _shape(self) -> tuple[int, ...] | None:
        shape = self.input_shape or getattr(self.network, "input_shape", None)
        return tuple(shape) if shape is not None else None

    def _check_inputs(self, X: Any) -> np.ndarray:
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValidationError(f"inputs must be numeric arrays, got dtype {arr.dtype}")
        if arr.ndim < 2:
            raise ValidationError(f"inputs need one row per item, got shape {arr.shape}")
        shape = self._shape()
        if shape is not None:
            if arr.ndim == 2 and arr.shape[1] == math.prod(shape) and len(shape) > 1:
                arr = arr.reshape((arr.shape[0], *shape))
            elif arr.shape[1:] != shape:
                raise ValidationError(
                    f"inputs have shape {arr.shape[1:]} per item; this network expects {shape} "
                    f"(or flat rows of {math.prod(shape)} values)"
                )
        if np.issubdtype(arr.dtype, np.floating):
            check_finite(arr, "inputs")
        return arr

    @property
    def provides(self) -> frozenset[str]:
        """Capabilities (:data:`raresift.models.base.CAPABILITIES`); MC-dropout samples only
        when the network has active dropout."""
        caps = {
            "probabilities",
            "penultimate",
            "gradient_embeddings",
            "gradient_factors",
            "pooled_fisher",
        }
        if any(
            isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in self.network.modules()
        ):
            caps.add("dropout_samples")
        return frozenset(caps)

    def as_tensor(self, X: np.ndarray) -> torch.Tensor:
        """Checked inputs (reshaped, scaled, float32) as a tensor on :attr:`device`."""
        block = np.asarray(X, dtype=np.float32)
        tensor = torch.from_numpy(block).to(self.device)
        return tensor * self.input_scale if self.input_scale != 1.0 else tensor

    def network_inputs(self, X: Any) -> torch.Tensor:
        """Inputs checked and reshaped as :meth:`fit` takes them (flat rows to the network's
        ``input_shape``), scaled, on :attr:`device`: what the network itself is called on."""
        return self.as_tensor(self._check_inputs(X))

    def _batches(self, X: np.ndarray) -> Iterator[tuple[slice, torch.Tensor]]:
        for start in range(0, X.shape[0], self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            yield rows, self.as_tensor(X[rows])

    def _require_fitted(self) -> None:
        if not self.is_fitted_:
            raise ValidationError("this model is not fitted yet; call fit(X, y) first")

    def _forked_rng(self):
        """Context in which seeding torch leaves the caller's global RNG state untouched."""
        devices = [self.device] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    # ---------------------------------------------------------------- training
    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases for linear/conv layers; defaults elsewhere."""
        for module in self.network.modules():
            if isinstance(module, _XAVIER_LAYERS):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif module is not self.network and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def fit(self, X: Any, y: Any) -> TorchModel:
        """Re-initialise and train on inputs ``X`` and integer labels ``y``; returns self."""
        X = self._check_inputs(X)
        y = check_labels(y, X.shape[0], self.n_classes)
        if X.shape[0] == 0:
            raise ValidationError("cannot fit on zero items; label some items first")
        inputs = self.as_tensor(X)
        targets = torch.from_numpy(y).to(self.device)
        n = X.shape[0]
        net = self.network
        with self._forked_rng():
            torch.manual_seed(self.seed)
            self.reset_parameters()
            optimizer = torch.optim.SGD(
                net.parameters(),
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
            loss_fn = nn.CrossEntropyLoss()
            net.train()
            accuracy, n_epochs = 0.0, 0
            bar = tqdm(range(self.epochs), desc="training", disable=not self.progress, leave=False)
            for _ in bar:
                n_epochs += 1
                order = torch.randperm(n, device=self.device)
                correct = 0
                # near-equal batches of at most batch_size: a trailing batch of one or two items
                # takes a full, noisy step and can keep SGD from ever converging
                for rows in torch.tensor_split(order, math.ceil(n / self.batch_size)):
                    logits = net(inputs[rows])
                    loss = loss_fn(logits, targets[rows])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    correct += int((logits.argmax(1) == targets[rows]).sum())
                schedule.step()
                accuracy = correct / n
                bar.set_postfix(accuracy=f"{accuracy:.3f}")
                if accuracy >= self.target_accuracy:
                    break
            bar.close()
        net.eval()
        self.n_epochs_ = n_epochs
        self.train_accuracy_ = accuracy
        self.is_fitted_ = True
        logger.debug(
            "TorchModel trained on %d items: %d epochs, training accuracy %.3f",
            n,
            self.n_epochs_,
            accuracy,
        )
        return self

    # ---------------------------------------------------------------- inference
    def _infer(self, X: Any, fn: Callable[[torch.Tensor], torch.Tensor], width: int) -> np.ndarray:
        self._require_fitted()
        X = self._check_inputs(X)
        out = np.empty((X.shape[0], width), dtype=np.float32)
        self.network.eval()
        with torch.no_grad():
            for rows, batch in self._batches(X):
                out[rows] = fn(batch).cpu().numpy()
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax class probabilities, shape (n, n_classes), float32."""
        return self._infer(X, lambda x: torch.softmax(self.network(x), dim=1), self.n_classes)

    def penultimate(self, X: Any) -> np.ndarray:
        """Penultimate features ``network.features(x)``, shape (n, D), float32."""
        width = self.network.classifier.in_features
        return self._infer(X, self.network.features, width)

    def gradient_factors(self, X: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The two factors of :meth:`gradient_embeddings`: residuals ``p - onehot(y)`` (n, K)
        and penultimate features (n, D), float32, from one forward pass.

        ``<g_i, g_j> = (r_i . r_j) (1 + e_i . e_j)``: strategies can work with gradient
        geometry at O(K + D) per item instead of O(K D).
        """
        self._require_fitted()
        X = self._check_inputs(X)
        if labels is not None:
            labels = check_labels(labels, X.shape[0], self.n_classes)
        residuals = np.empty((X.shape[0], self.n_classes), dtype=np.float32)
        features = np.empty((X.shape[0], self.network.classifier.in_features), dtype=np.float32)
        self.network.eval()
        with torch.no_grad():
            for rows, batch in self._batches(X):
                e = self.network.features(batch)
                proba = torch.softmax(self.network.classifier(e), dim=1).cpu().numpy()
                residuals[rows] = last_layer_residuals(
                    proba, None if labels is None else labels[rows]
                )
                features[rows] = e.cpu().numpy()
        return residuals, features

    def gradient_embeddings(self, X: Any, labels: Any = None) -> np.ndarray:
        """Last-layer gradient embeddings, shape (n, K (D + 1)), float32.

        Labels default to the hypothesised ones (argmax of the prediction), as for unlabeled
        candidates; pass the true ``labels`` for query or conditioning items. Layout: the bias
        gradient ``p - onehot(y)`` then the weight gradient, see
        :func:`~raresift.models.base.last_layer_gradients`.
        """
        return gradient_layout(*self.gradient_factors(X, labels))

    def mc_dropout_proba(self, X: Any, n_samples: int = 20, seed: int = 0) -> np.ndarray:
        """Class probabilities under ``n_samples`` random dropout masks: shape (S, n, K).

        Dropout layers are active, everything else (batch norm) in evaluation mode; the masks
        follow ``seed``. Raises :class:`ValidationError` if the network has no active dropout.
        """
        self._require_fitted()
        n_samples = positive_int(n_samples, "n_samples")
        dropouts = [
            m
            for m in self.network.modules()
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0
        ]
        if not dropouts:
            raise ValidationError(
                "MC dropout needs a network with dropout layers (p > 0); build it with dropout, "
                "e.g. MLP(..., dropout=0.2) or ResNet18(..., dropout=0.3)"
            )
        X = self._check_inputs(X)
        out = np.empty((n_samples, X.shape[0], self.n_classes), dtype=np.float32)
        self.network.eval()
        for module in dropouts:
            module.train()
        try:
            with self._forked_rng(), torch.no_grad():
                torch.manual_seed(seed)
                for rows, batch in self._batches(X):
                    for s in range(n_samples):
                        out[s, rows] = torch.softmax(self.network(batch), dim=1).cpu().numpy()
        finally:
            self.network.eval()
        return out

    def __repr__(self) -> str:
        return (
            f"TorchModel({type(self.network).__name__}, n_classes={self.n_classes}, "
            f"epochs={self.epochs}, device='{self.device}')"
        )
