"""Fingerprints of the files a session depends on (embeddings, index).

A fingerprint holds the size, the modification time, a SHA-256 of 66 blocks of 64 KiB spread
evenly through the file (first and last included) and, when the file was recorded, the SHA-256 of
the whole file. Opening a session checks size and sampled hash (milliseconds even for a 10 GB
memmap); where the modification time moved, it also recomputes the full hash, so a file rewritten
with the same bytes is accepted and a changed one refused.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "x.bin")
...     _ = open(p, "wb").write(b"abc" * 1000)
...     fp = fingerprint(p)
...     check_fingerprint(p, fp, "test file")
...     _ = open(p, "wb").write(b"abd" * 1000)
...     check_fingerprint(p, fp, "test file")
Traceback (most recent call last):
...
raresift.session.errors.FingerprintError: test file ... changed since the session recorded it ...
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from raresift.session.errors import FingerprintError

_BLOCK = 1 << 16
_SAMPLES = 64


def _sampled_sha256(path: str, size: int) -> str:
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as fh:
        if size <= _BLOCK * (_SAMPLES + 2):
            digest.update(fh.read())
        else:
            step = (size - _BLOCK) // (_SAMPLES + 1)
            for i in range(_SAMPLES + 2):
                fh.seek(min(i * step, size - _BLOCK))
                digest.update(fh.read(_BLOCK))
    return digest.hexdigest()


def full_sha256(path: str) -> str:
    """SHA-256 of the whole file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size, mtime, sampled and full SHA-256 of ``path``."""
    path = os.fspath(path)
    st = os.stat(path)
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sample_sha256": _sampled_sha256(path, st.st_size),
        "sha256": full_sha256(path),
    }


def check_fingerprint(path: str | os.PathLike, recorded: dict[str, Any], what: str) -> None:
    """Raise :class:`FingerprintError` unless ``path`` still has the ``recorded`` contents."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FingerprintError(
            f"{what} {path} is missing; put the original file back there (the session refers "
            "to it, it holds no copy)"
        )
    st = os.stat(path)
    changed = (
        st.st_size != recorded["size"]
        or _sampled_sha256(path, st.st_size) != recorded["sample_sha256"]
        or (st.st_mtime_ns != recorded["mtime_ns"] and full_sha256(path) != recorded["sha256"])
    )
    if changed:
        raise FingerprintError(
            f"{what} {path} changed since the session recorded it (size {st.st_size} bytes, "
            f"recorded {recorded['size']}); restore the original file, or start a new session "
            "on the new one and import this session's answers (raresift export / import)"
        )
