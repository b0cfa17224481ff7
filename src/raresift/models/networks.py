"""Small networks for :class:`~raresift.models.TorchModel`: an MLP, LeNet and a narrow ResNet-18.

Every network exposes ``features(x)`` (the penultimate representation, shape ``(n, D)``),
``classifier`` (the final ``nn.Linear``; ``forward(x) == classifier(features(x))``) and
``input_shape`` (one item's shape: inputs are checked against it, and flat rows such as 784 pixels
are reshaped to it for image networks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from raresift.params import Interval, Parameterized

_POSITIVE = [Interval(int, 1, None)]
_DROPOUT = [Interval(float, 0, 1, "left")]


class _Widths:
    """The constraint on an MLP's hidden widths: a positive integer or a non-empty sequence
    of them."""

    def holds(self, value) -> bool:
        widths = (value,) if isinstance(value, int) else value
        return (
            isinstance(widths, (tuple, list))
            and len(widths) > 0
            and all(Interval(int, 1, None).holds(w) for w in widths)
        )

    def __str__(self) -> str:
        return "a positive integer or a non-empty sequence of them"


class MLP(Parameterized, nn.Module):
    """Fully connected ReLU network on embedding vectors, with dropout after each hidden layer.

    >>> net = MLP(8, hidden=(16, 4), n_classes=3)
    >>> net(torch.zeros(2, 8)).shape, net.features(torch.zeros(2, 8)).shape
    (torch.Size([2, 3]), torch.Size([2, 4]))
    """

    parameter_constraints = {
        "in_dim": _POSITIVE,
        "hidden": [_Widths()],
        "n_classes": _POSITIVE,
        "dropout": _DROPOUT,
    }

    def __init__(
        self,
        in_dim: int,
        hidden: int | Sequence[int] = 128,
        n_classes: int = 2,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.in_dim, self.hidden, self.n_classes, self.dropout = in_dim, hidden, n_classes, dropout
        self.check_parameters()  # before any layer is built from them
        self.hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.input_shape = (self.in_dim,)
        layers: list[nn.Module] = []
        width_in = self.in_dim
        for width in self.hidden:
            layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(self.dropout)]
            width_in = width
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width_in, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(Parameterized, nn.Module):
    """LeNet for 28 x 28 images: conv(10) - pool - conv(20) - pool - fc(50) - classifier.

    Attribute names ``conv1``, ``conv2``, ``fc1`` are stable: multi-scale descriptors (Fisher
    kernel) read activations from them. Dropout follows ``conv2`` and ``fc1``, so MC dropout works.

    >>> LeNet(n_classes=10)(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 10])
    """

    parameter_constraints = {"n_classes": _POSITIVE, "in_channels": _POSITIVE, "dropout": _DROPOUT}

    def __init__(self, n_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__()
        self.n_classes, self.in_channels, self.dropout = n_classes, in_channels, dropout
        self.check_parameters()  # before any layer is built from them
        self.input_shape = (self.in_channels, 28, 28)
        self.conv1 = nn.Conv2d(self.in_channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(self.dropout)
        self.fc1 = nn.Linear(320, 50)
        self.fc1_drop = nn.Dropout(self.dropout)
        self.classifier = nn.Linear(50, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x), 2))
        x = torch.relu(nn.functional.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        return self.fc1_drop(torch.relu(self.fc1(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Parameterized, nn.Module):
    """ResNet-18 for small images (28-32 px): 3x3 stem without max-pool, four stages of two blocks.

    ``width`` is the first stage's channel count (64 in the paper; 16 keeps it CPU-sized); the
    penultimate features have ``8 * width`` values. ``dropout`` before the classifier enables MC
    dropout (0 disables it).

    >>> net = ResNet18(n_classes=4, in_channels=1, width=4, image_size=28)
    >>> net.features(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 32])
    """

    parameter_constraints = {
        "n_classes": _POSITIVE,
        "in_channels": _POSITIVE,
        "width": _POSITIVE,
        "dropout": _DROPOUT,
        "image_size": _POSITIVE,
    }

    def __init__(
        self,
        n_classes: int = 10,
        in_channels: int = 3,
        width: int = 16,
        dropout: float = 0.0,
        image_size: int = 32,
    ):
        super().__init__()
        self.n_classes, self.in_channels, self.width = n_classes, in_channels, width
        self.dropout, self.image_size = dropout, image_size
        self.check_parameters()  # before any layer is built from them
        self.input_shape = (self.in_channels, image_size, image_size)
        self.stem = nn.Sequential(
            nn.Conv2d(self.in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head_drop = nn.Dropout(self.dropout)
        self.classifier = nn.Linear(c_in, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head_drop(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
