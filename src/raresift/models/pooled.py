"""Multi-scale pooled descriptors and Fisher scores from a torch network (papers/001).

For each named layer j the output tensor Z^j is captured with a forward hook and pooled by
phi(): global average over the spatial axes of a conv map (n, C, H, W) -> (n, C), vectors as
they are. The descriptor z is the concatenation of the pooled layers; ``segments`` records where
each layer's block starts and ends. The Fisher score g is phi() of the gradient of the
cross-entropy loss -log p(y | x) with respect to the same tensors, for a chosen label y.

Gradients are batched: the loss summed over a batch gives every item's own gradient because items
do not interact in eval mode (dropout off, batch-norm on running statistics). The network is put
in eval mode for the computation and restored afterwards.

Standardisation (per item and per segment: subtract the mean, divide by the standard deviation)
makes ``z_a^j . z_b^j / L_j`` the Pearson correlation of the two items' j-th segments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raresift.errors import ConfigError, ValidationError

logger = logging.getLogger("raresift")

_STD_FLOOR = 1e-8


@dataclass
class PooledFeatures:
    """Descriptors ``z`` (n, L), Fisher scores ``g`` (n, L) or (n, n_classes, L), and segments.

    ``segments`` is a list of (start, stop) column ranges, one per hooked layer. ``labels`` are the
    labels the Fisher scores were taken under (None when ``g`` holds every class); ``proba`` the
    network's class probabilities from the same forward pass.
    """

    z: np.ndarray
    g: np.ndarray | None
    segments: list[tuple[int, int]]
    proba: np.ndarray
    labels: np.ndarray | None = None


def network_device(network: nn.Module) -> torch.device:
    """The device of the network's first parameter (CPU for a network without parameters)."""
    for p in network.parameters():
        return p.device
    return torch.device("cpu")


PENULTIMATE = "penultimate"


def default_layers(network: nn.Module) -> list[str]:
    """The multi-scale layers papers/001 pools, for raresift's networks and others.

    - LeNet (``conv1``, ``conv2``, ``fc1``): conv1 (10) + conv2 (20) + the penultimate fc1
      features (50), the paper's L = 80. Conv maps are hooked at the conv output (before
      max-pool and ReLU, which LeNet applies functionally), so their Fisher scores are taken
      before the nonlinearity, as the paper's eq. (11) writes them.
    - ResNet18 (``stages``): the outputs of the last two stages (resblock3, 4; the paper's
      two-scale SVHN/ImageNet descriptor).
    - Anything else: the output of every ``nn.ReLU`` module (an MLP's hidden layers), or the
      penultimate features when there is none.
    """
    modules = dict(network.named_modules())
    if all(name in modules for name in ("conv1", "conv2", "fc1")):
        return ["conv1", "conv2", PENULTIMATE]
    stages = modules.get("stages")
    if isinstance(stages, nn.Sequential) and len(stages) >= 4:
        n = len(stages)
        return [f"stages.{n // 2 + n // 4 - 1}", f"stages.{n - 1}"]
    relus = [name for name, m in modules.items() if isinstance(m, nn.ReLU)]
    return relus or [PENULTIMATE]


def resolve_layers(network: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """Check the layer names against ``network.named_modules()``.

    ``"penultimate"`` names the input of ``network.classifier`` (the penultimate features); None
    means :func:`default_layers`.
    """
    modules = dict(network.named_modules())
    if layers is None:
        layers = default_layers(network)
    layers = [str(name) for name in layers]
    if not layers:
        raise ConfigError("layers is empty; name at least one module to pool")
    unknown = [name for name in layers if name not in modules and name != PENULTIMATE]
    if unknown:
        raise ConfigError(
            f"unknown layer name(s) {unknown}; choose among "
            f"{[PENULTIMATE] + [n for n in modules if n]}"
        )
    if PENULTIMATE in layers and not isinstance(modules.get("classifier"), nn.Module):
        raise ConfigError("'penultimate' needs a network whose last layer is named classifier")
    return layers


def _pool(t: torch.Tensor) -> torch.Tensor:
    """phi(): global average pooling over every axis after the channel axis."""
    if t.dim() == 2:
        return t
    if t.dim() < 2:
        raise ValidationError(f"cannot pool a layer output of shape {tuple(t.shape)}")
    return t.flatten(2).mean(dim=2)


def standardize_segments(x: np.ndarray, segments: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per row and per segment: subtract the mean and divide by the standard deviation.

    Works on the last axis, so (n, L) and (n, K, L) arrays both work. A constant segment becomes
    zeros (it correlates with nothing).

    >>> standardize_segments(np.array([[1.0, 3.0, 5.0, 5.0]]), [(0, 2), (2, 4)]).tolist()
    [[-1.0, 1.0, 0.0, 0.0]]
    """
    out = np.empty_like(x, dtype=np.float32)
    for start, stop in segments:
        block = np.asarray(x[..., start:stop], dtype=np.float32)
        centred = block - block.mean(axis=-1, keepdims=True)
        std = centred.std(axis=-1, keepdims=True)
        out[..., start:stop] = np.where(std > _STD_FLOOR, centred / np.maximum(std, _STD_FLOOR), 0)
    return out


def _as_batch_tensor(x, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if not torch.is_floating_point(t):
        t = t.float()
    return t.to(device=device, dtype=torch.float32)


class _Hooks:
    """Forward hooks that keep the outputs of the named modules of the current forward pass."""

    def __init__(self, network: nn.Module, layers: list[str]):
        modules = dict(network.named_modules())
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []
        for name in layers:
            if name == PENULTIMATE:  # the classifier's input
                hook = self._keep(name)
                self._handles.append(
                    modules["classifier"].register_forward_pre_hook(
                        lambda m, inputs, hook=hook: hook(m, inputs, inputs[0])
                    )
                )
            else:
                self._handles.append(modules[name].register_forward_hook(self._keep(name)))
        self.layers = layers

    def _keep(self, name):
        def hook(_module, _inputs, output):
            if not torch.is_tensor(output):
                raise ConfigError(f"layer {name!r} does not return a single tensor; pick another")
            self.outputs[name] = output

        return hook

    def tensors(self) -> list[torch.Tensor]:
        return [self.outputs[name] for name in self.layers]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def pooled_features(
    network: nn.Module,
    x,
    layers: Sequence[str] | None = None,
    labels: np.ndarray | str | None = "argmax",
    *,
    standardize: bool = True,
    chunk_size: int = 256,
) -> PooledFeatures:
    """Pooled descriptors and Fisher scores of ``x`` (array or tensor, the network's input shape).

    Parameters
    ----------
    labels : "argmax", array of int, "all" or None
        The label y of each item's Fisher score: the network's argmax (pseudo-label), given labels
        (one per item), every class ("all": ``g`` has shape (n, n_classes, L)), or None for
        descriptors only (one forward pass per item, no backward pass).
    standardize : bool
        Per-item, per-segment standardisation of z and g (see :func:`standardize_segments`).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> out = pooled_features(net, np.ones((5, 3), np.float32), layers=["1"])
    >>> out.z.shape, out.g.shape, out.segments
    ((5, 4), (5, 4), [(0, 4)])
    """
    names = resolve_layers(network, layers)
    device = network_device(network)
    x_all = _as_batch_tensor(x, device)
    n = x_all.shape[0]
    if n == 0:
        raise ValidationError("pooled_features got no items; pass at least one")
    given = None
    if isinstance(labels, str):
        if labels not in ("argmax", "all"):
            raise ConfigError(f"labels must be 'argmax', 'all', an array or None, not {labels!r}")
    elif labels is not None:
        given = np.asarray(labels)
        if given.shape != (n,) or not np.issubdtype(given.dtype, np.integer):
            raise ValidationError(f"labels must be {n} integer class indices, one per item")
    want_g = labels is not None
    was_training = network.training
    network.eval()
    hooks = _Hooks(network, names)
    z_parts, g_parts, label_parts, proba_parts = [], [], [], []
    widths: list[int] = []
    try:
        for start in range(0, n, chunk_size):
            xb = x_all[start : start + chunk_size]
            if not want_g:
                with torch.no_grad():
                    proba_parts.append(torch.softmax(network(xb), dim=1).cpu())
                    pooled = [_pool(t) for t in hooks.tensors()]
                widths = [t.shape[1] for t in pooled]
                z_parts.append(torch.cat(pooled, 1).cpu())
                continue
            xb = xb.detach().requires_grad_(True)  # so hooked outputs join the graph
            with torch.enable_grad():
                logits = network(xb)
                acts = hooks.tensors()
                pooled = [_pool(t.detach()) for t in acts]
                widths = [t.shape[1] for t in pooled]
                z_parts.append(torch.cat(pooled, 1).cpu())
                proba = torch.softmax(logits.detach(), dim=1)
                proba_parts.append(proba.cpu())
                if isinstance(labels, str) and labels == "all":
                    g_parts.append(_all_class_scores(logits, acts, proba))
                else:
                    if given is None:
                        yb = proba.argmax(dim=1)
                    else:
                        yb = torch.as_tensor(given[start : start + chunk_size], device=device)
                    if int(yb.max()) >= logits.shape[1]:
                        raise ValidationError(
                            f"a label exceeds the network's {logits.shape[1]} classes"
                        )
                    label_parts.append(yb.cpu())
                    # d(-log softmax_y)/d logits = p - onehot(y): one backward pass per batch
                    grad_logits = proba - F.one_hot(yb, logits.shape[1]).to(proba.dtype)
                    grads = torch.autograd.grad(logits, acts, grad_outputs=grad_logits)
                    g_parts.append(torch.cat([_pool(t) for t in grads], 1).cpu())
    finally:
        hooks.close()
        network.train(was_training)
    z = torch.cat(z_parts).numpy().astype(np.float32)
    bounds = np.cumsum([0, *widths]).tolist()
    segments = list(zip(bounds[:-1], bounds[1:], strict=True))
    g = torch.cat(g_parts).numpy().astype(np.float32) if want_g else None
    if standardize:
        z = standardize_segments(z, segments)
        g = standardize_segments(g, segments) if g is not None else None
    used = torch.cat(label_parts).numpy() if label_parts else None
    proba = torch.cat(proba_parts).numpy().astype(np.float64)
    return PooledFeatures(z=z, g=g, segments=segments, proba=proba, labels=used)


def _all_class_scores(logits: torch.Tensor, acts: list[torch.Tensor], proba: torch.Tensor):
    """Fisher scores under every class: (b, n_classes, L), one backward pass per class."""
    n_classes = logits.shape[1]
    eye = torch.eye(n_classes, dtype=proba.dtype, device=proba.device)
    per_class = []
    for d in range(n_classes):
        grads = torch.autograd.grad(
            logits, acts, grad_outputs=proba - eye[d], retain_graph=d < n_classes - 1
        )
        per_class.append(torch.cat([_pool(t) for t in grads], 1))
    return torch.stack(per_class, dim=1).cpu()


def perturb(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_degrees: float = 5.0,
    noise_std: float = 0.05,
) -> torch.Tensor:
    """One random perturbation of each item: a small rotation (images) and Gaussian noise.

    Images (n, C, H, W) are rotated by an angle uniform in +-``max_degrees`` about their centre
    (``affine_grid`` / ``grid_sample``, zero padding). Then noise with standard deviation
    ``noise_std`` times the batch's overall standard deviation is added (any shape).
    """
    out = x
    if x.dim() == 4 and max_degrees > 0:
        n = x.shape[0]
        angles = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
        cos, sin = torch.cos(angles), torch.sin(angles)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    if noise_std > 0:
        scale = float(x.std()) if x.numel() > 1 else 1.0
        noise = torch.randn(out.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        out = out + noise * (noise_std * scale)
    return out
