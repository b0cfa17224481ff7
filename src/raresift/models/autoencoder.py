"""A small autoencoder and the distance score D of papers/004.

Images (n, C, H, W) get a convolutional autoencoder with two conv layers on each side; vectors an
MLP autoencoder. D(x_i) = min over labeled x_t of the Euclidean distance between latent codes,
divided by its maximum over the scored items.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from raresift.errors import ValidationError
from raresift.params import Instance, Interval, Parameterized

logger = logging.getLogger("raresift")


class ConvAutoencoder(nn.Module):
    """Two strided conv layers down, two transposed conv layers up; latent = flattened map."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (16, 8)):
        super().__init__()
        c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, in_channels, 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


class MLPAutoencoder(nn.Module):
    """d -> hidden -> latent -> hidden -> d."""

    def __init__(self, in_features: int, hidden: int = 64, latent_dim: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_features)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Autoencoder(Parameterized):
    """Train a small autoencoder on items and encode them (seeded, CPU-sized).

    Parameters
    ----------
    input_shape : tuple (C, H, W), optional
        Reshape flat rows to images and use :class:`ConvAutoencoder`; 4-d inputs use it anyway.
        Otherwise an :class:`MLPAutoencoder` on standardised features.
    latent_dim, hidden : MLP sizes; channels : the conv layers' widths.
    epochs, batch_size, lr : Adam training settings.
    seed : int
        Seeds initialisation and batch order: same seed, same codes.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    >>> Autoencoder(latent_dim=2, epochs=2).fit(x).encode(x[:3]).shape
    (3, 2)
    """

    parameter_constraints = {
        "input_shape": [Instance(tuple, list, None)],
        "latent_dim": [Interval(int, 1, None)],
        "hidden": [Interval(int, 1, None)],
        "channels": [Instance(tuple, list)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, "neither")],
        "seed": [Interval(int, 0, None)],
        "progress": [Instance(bool)],
    }

    def __init__(
        self,
        input_shape: Sequence[int] | None = None,
        latent_dim: int = 8,
        hidden: int = 64,
        channels: Sequence[int] = (16, 8),
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = False,
    ):
        self.input_shape = input_shape
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.progress = progress

    def _prepare(self, x) -> torch.Tensor:
        arr = np.asarray(x)
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        t = torch.as_tensor(arr.astype(np.float32) / scale)
        if self.input_shape is not None:
            t = t.reshape(t.shape[0], *tuple(self.input_shape))
        if t.dim() == 2:
            t = (t - self.mean_) / self.std_
        elif t.dim() != 4:
            raise ValidationError(f"autoencoder inputs must be 2-d or 4-d, got {t.dim()}-d")
        return t

    def fit(self, x) -> Autoencoder:
        arr = np.asarray(x)
        if arr.shape[0] < 2:
            raise ValidationError("the autoencoder needs at least two items to train on")
        flat = torch.as_tensor(arr.reshape(arr.shape[0], -1).astype(np.float32))
        self.mean_ = flat.mean(0)
        self.std_ = flat.std(0).clamp(min=1e-6)
        t = self._prepare(arr)
        torch.manual_seed(self.seed)
        if t.dim() == 4:
            self.module_ = ConvAutoencoder(t.shape[1], tuple(self.channels))
        else:
            self.module_ = MLPAutoencoder(t.shape[1], self.hidden, self.latent_dim)
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        self.module_.train()
        for _ in tqdm(range(self.epochs), desc="autoencoder", disable=not self.progress):
            for batch in torch.randperm(t.shape[0], generator=gen).split(self.batch_size):
                opt.zero_grad()
                loss = F.mse_loss(self.module_(t[batch]), t[batch])
                loss.backward()
                opt.step()
        self.module_.eval()
        self.loss_ = float(loss.detach())
        logger.info("autoencoder trained on %d items, last batch loss %.4g", t.shape[0], self.loss_)
        return self

    def encode(self, x) -> np.ndarray:
        """Latent codes (n, latent) as float32."""
        if not hasattr(self, "module_"):
            raise ValidationError("the autoencoder is not fitted; call fit(items) first")
        with torch.no_grad():
            t = self._prepare(x)
            return (
                torch.cat([self.module_.encode(b) for b in t.split(4096)])
                .numpy()
                .astype(np.float32)
            )


def distance_scores(
    codes: np.ndarray, labeled_codes: np.ndarray, chunk_size: int = 4096
) -> np.ndarray:
    """D = (min Euclidean distance of each code to the labeled codes) / (its maximum).

    >>> distance_scores(np.array([[0.0], [1.0], [4.0]]), np.array([[0.0], [2.0]])).tolist()
    [0.0, 0.5, 1.0]
    """
    codes = np.asarray(codes, dtype=np.float32)
    labeled = torch.as_tensor(np.asarray(labeled_codes, dtype=np.float32))
    if labeled.shape[0] == 0:
        raise ValidationError("the distance score needs at least one labeled item")
    nearest = np.concatenate(
        [
            torch.cdist(torch.as_tensor(codes[s : s + chunk_size]), labeled)
            .min(dim=1)
            .values.numpy()
            for s in range(0, codes.shape[0], chunk_size)
        ]
    )
    top = float(nearest.max()) if nearest.size else 0.0
    return (nearest / top if top > 0 else np.zeros_like(nearest)).astype(np.float64)
