"""Fingerprints of files: what a session or a saved index records of a file it depends on, and
the checks against it.

A fingerprint holds the size, the modification time, a SHA-256 of 66 blocks of 64 KiB spread
evenly through the file (first and last included) and the SHA-256 of the whole file. The
everyday check (:func:`file_change`, every open) reads the size, the time and the sampled
blocks only: milliseconds even for a 10 GB memmap. A change in place of the same size is
caught there when it touches a sampled block; the full check (``full=True``, at init and on
demand) reads the whole file and catches any change.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "x.bin")
...     _ = open(p, "wb").write(b"abc" * 1000)
...     recorded = file_fingerprint(p)
...     same = file_change(p, recorded)
...     _ = open(p, "wb").write(b"abd" * 1000)
...     same, file_change(p, recorded)
(None, 'its sampled blocks differ from the recorded ones')
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

BLOCK = 1 << 16  # bytes per sampled block
SAMPLES = 64  # sampled blocks between the first and the last
#: :func:`file_change`'s answer when only the modification time moved (sampled check)
RETIMED = "a new modification time, the same size and sampled blocks"


def sampled_sha256(path: str | os.PathLike, size: int) -> str:
    """SHA-256 of the size and of ``SAMPLES + 2`` evenly spaced blocks of ``BLOCK`` bytes (the
    whole file when it is smaller than that)."""
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as fh:
        if size <= BLOCK * (SAMPLES + 2):
            digest.update(fh.read())
        else:
            step = (size - BLOCK) // (SAMPLES + 1)
            for i in range(SAMPLES + 2):
                fh.seek(min(i * step, size - BLOCK))
                digest.update(fh.read(BLOCK))
    return digest.hexdigest()


def full_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the whole file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size, mtime, sampled and full SHA-256 of ``path`` (reads the whole file)."""
    st = os.stat(path)
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sample_sha256": sampled_sha256(path, st.st_size),
        "sha256": full_sha256(path),
    }


def file_change(
    path: str | os.PathLike, recorded: dict[str, Any], full: bool = False
) -> str | None:
    """How ``path`` differs from its ``recorded`` fingerprint, in words; None if it does not.

    The sampled check (default) compares the size, the sampled blocks and then the time: a
    moved time alone answers :data:`RETIMED` (the contents may have changed between samples),
    unless the file is small enough to be sampled whole.
    ``full=True`` compares the whole file's SHA-256 instead of the time; a record without
    ``mtime_ns`` (a saved index's settings) skips the time. The file must exist.
    """
    st = os.stat(path)
    if st.st_size != recorded["size"]:
        return f"its size is {st.st_size} bytes, not the {recorded['size']} recorded"
    if sampled_sha256(path, st.st_size) != recorded["sample_sha256"]:
        return "its sampled blocks differ from the recorded ones"
    if full:
        if full_sha256(path) != recorded["sha256"]:
            return "its contents differ from the recorded ones (whole-file SHA-256)"
        return None
    if recorded.get("mtime_ns") is not None and st.st_mtime_ns != recorded["mtime_ns"]:
        return None if st.st_size <= BLOCK * (SAMPLES + 2) else RETIMED  # small: all sampled
    return None
