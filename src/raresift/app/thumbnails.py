"""Thumbnails of item images, made once on the server and cached on disk.

A thumbnail's longer side is the size asked for, whatever the source's: a large image is
reduced, a small one enlarged, so every card shows its image at a size the eye can read. An
image enlarged two times or more (a 28 px digit in a 148 px card) is enlarged pixel by pixel
(nearest neighbour, stored as PNG so its edges stay sharp) rather than smoothed into a blur;
enlargement stops at :data:`MAX_ENLARGED` pixels (the item view asks for 1024 px images).

A thumbnail is keyed by the source file's resolved path, size and modification time and by the
thumbnail size, so a changed image gets a new thumbnail and an unchanged one is read back. A file
that is missing, not an image, truncated or too large gives a :class:`ThumbnailFailure` for that
item only; the server answers it with a placeholder.

>>> import tempfile, PIL.Image
>>> folder = Path(tempfile.mkdtemp())
>>> PIL.Image.new("RGB", (640, 480), "red").save(folder / "red.png")
>>> thumbs = Thumbnailer(folder / "cache")
>>> path = thumbs.get(folder / "red.png", 160)
>>> PIL.Image.open(path).size
(160, 120)
>>> thumbs.get(folder / "red.png", 160) == path  # the second call reads the cache
True
>>> thumbs.jpeg(folder / "red.png", 160) == thumbs.in_memory(folder / "red.png", 160)
True
>>> PIL.Image.new("L", (28, 28), 0).save(folder / "tiny.png")
>>> tiny = PIL.Image.open(thumbs.get(folder / "tiny.png", 148))
>>> tiny.size, tiny.format
((148, 148), 'PNG')
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("raresift")

MAX_FILE_BYTES = 64 * 2**20
MAX_PIXELS = 80_000_000
MEMORY_BYTES = 64 * 2**20
MAX_ENLARGED = 448  # small images are enlarged up to this many pixels (longer side), no further
PIXELATED_FROM = 2.0  # enlarged this many times or more: nearest neighbour (sharp pixels), PNG
_KEY_VERSION = "fit-2"  # in the cache key: thumbnails made by an older rule are made again


class ThumbnailFailure(Exception):
    """An item's image cannot be shown; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def media_type(data: bytes) -> str:
    """The image type of thumbnail bytes (PNG for pixel-enlarged images, else JPEG).

    >>> media_type(b"\\x89PNG\\r\\n\\x1a\\n..."), media_type(b"\\xff\\xd8\\xff...")
    ('image/png', 'image/jpeg')
    """
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


def fitted(width: int, height: int, size: int) -> tuple[int, int, bool]:
    """The thumbnail's width and height for a ``width`` x ``height`` source, and whether it is
    enlarged pixel by pixel: the longer side becomes ``size`` (reduced), or
    ``min(size, MAX_ENLARGED)`` (enlarged).

    >>> fitted(640, 480, 160), fitted(28, 28, 148), fitted(100, 50, 148), fitted(28, 28, 1024)
    ((160, 120, False), (148, 148, True), (148, 74, False), (448, 448, True))
    """
    longer = max(width, height)
    target = size if longer >= size else max(longer, min(size, MAX_ENLARGED))
    scale = target / longer
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return w, h, scale >= PIXELATED_FROM


class Thumbnailer:
    """Make and cache thumbnails whose longer side is ``size`` pixels (JPEG; PNG for small
    images enlarged pixel by pixel).

    Parameters
    ----------
    cache_dir : folder for the cached files (created on first use).
    max_file_bytes, max_pixels : larger sources are refused (a placeholder is shown instead), so
        a stray 2 GB TIFF or a decompression bomb cannot stall or exhaust the server.
    memory_bytes : the most recently served thumbnails are also kept in memory, up to this many
        bytes, so a batch page's images are answered without touching the disk.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pixels: int = MAX_PIXELS,
        memory_bytes: int = MEMORY_BYTES,
    ):
        self.cache_dir = Path(cache_dir)
        self.max_file_bytes = int(max_file_bytes)
        self.max_pixels = int(max_pixels)
        self.memory_bytes = int(memory_bytes)
        self._memory: OrderedDict[tuple[str, int], tuple[int, int, bytes]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def in_memory(self, source: str | os.PathLike, size: int) -> bytes | None:
        """The thumbnail's bytes if held in memory and the source is unchanged, else None
        (a ``stat`` of the source, no other work: fit to call from an event loop)."""
        key = (str(source), int(size))
        with self._lock:
            held = self._memory.get(key)
        if held is None:
            return None
        try:
            stat = os.stat(source)
        except OSError:
            return None
        if (stat.st_mtime_ns, stat.st_size) != held[:2]:
            return None
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
        return held[2]

    def cached_jpeg(self, source: str | os.PathLike, size: int) -> bytes | None:
        """The thumbnail's bytes if made before (in memory or on disk), else None; never
        makes one."""
        held = self.in_memory(source, size)
        if held is not None:
            return held
        try:
            made = self.cached_path(source, size).is_file()
        except OSError:
            return None
        return self.jpeg(source, size) if made else None

    def jpeg(self, source: str | os.PathLike, size: int) -> bytes:
        """The thumbnail's bytes, JPEG or PNG (:func:`media_type`), from memory, the disk
        cache, or made now."""
        held = self.in_memory(source, size)
        if held is not None:
            return held
        try:  # before making it: a source changed meanwhile then fails the next in_memory check
            stat = os.stat(source)
        except OSError:
            stat = None
        data = self.get(source, size).read_bytes()
        if stat is not None:
            self._remember((str(source), int(size)), (stat.st_mtime_ns, stat.st_size, data))
        return data

    def _remember(self, key: tuple[str, int], value: tuple[int, int, bytes]) -> None:
        with self._lock:
            old = self._memory.pop(key, None)
            self._held -= len(old[2]) if old else 0
            self._memory[key] = value
            self._held += len(value[2])
            while self._held > self.memory_bytes and self._memory:
                _, dropped = self._memory.popitem(last=False)
                self._held -= len(dropped[2])

    def cached_path(self, source: str | os.PathLike, size: int) -> Path:
        """Where the thumbnail of ``source`` at ``size`` lives (whether or not it exists yet)."""
        source = Path(source).resolve()
        stat = source.stat()
        key = f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}\0{int(size)}\0{_KEY_VERSION}"
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.thumb"

    def get(self, source: str | os.PathLike, size: int) -> Path:
        """The cached thumbnail of ``source``, made now if needed; raises ThumbnailFailure."""
        try:
            target = self.cached_path(source, size)
            if target.exists():
                return target
            if Path(source).stat().st_size > self.max_file_bytes:
                raise ThumbnailFailure(f"file over {self.max_file_bytes // 2**20} MiB")
        except FileNotFoundError:
            raise ThumbnailFailure("image file missing") from None
        except (PermissionError, IsADirectoryError, NotADirectoryError):
            raise ThumbnailFailure("image file unreadable") from None
        image, pixelated = self._open(Path(source), size)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                if pixelated:
                    image.save(out, "PNG", optimize=True)
                else:
                    image.save(out, "JPEG", quality=85)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def _open(self, source: Path, size: int):
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(source) as image:
                    width, height = image.size
                    if width * height > self.max_pixels:
                        raise ThumbnailFailure(f"image of {width}x{height} pixels is too large")
                    image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
                    image = ImageOps.exif_transpose(image)
                    w, h, pixelated = fitted(*image.size, size)
                    if (w, h) == image.size:
                        return _flatten(image), False
                    if w < image.size[0]:
                        image.thumbnail((size, size), Image.Resampling.LANCZOS)
                        return _flatten(image), False
                    image = _flatten(image)  # enlarge in RGB: palettes do not interpolate
                    method = Image.Resampling.NEAREST if pixelated else Image.Resampling.BICUBIC
                    return image.resize((w, h), method), pixelated
        except UnidentifiedImageError:
            raise ThumbnailFailure("not an image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ThumbnailFailure("image too large") from None
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or malformed files
            log.warning("cannot read image %s: %s", source, exc)
            raise ThumbnailFailure("damaged image") from None


def _flatten(image):
    """RGB on white, whatever the mode (palette, alpha, 16-bit grey)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode == "I;16" or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def placeholder_svg(reason: str, size: int) -> bytes:
    """A grey square naming why the image is missing (the text is escaped).

    >>> b"&lt;b&gt;" in placeholder_svg("<b>", 100)
    True
    """
    text = html.escape(reason, quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}"><rect width="100%" height="100%" fill="#e6e6e6"/>'
        f'<text x="50%" y="50%" font-family="sans-serif" font-size="{max(10, size // 12)}" '
        f'fill="#666" text-anchor="middle" dominant-baseline="middle">{text}</text></svg>'
    ).encode()
