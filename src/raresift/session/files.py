"""Fingerprints of the files a session depends on (embeddings, index), checked with the
session's errors (:mod:`raresift.filehash` holds the fingerprint itself).

Opening a session checks each file's size, modification time and sampled blocks (milliseconds
even for a 10 GB memmap); the whole file is hashed when it is recorded (init, the index's first
build) and on demand by ``raresift verify PROJECT`` (``Session.open(path, full=True)``), which
also records the new time of a file whose contents are unchanged (a copy, a touch).

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

import os
from typing import Any

from raresift.filehash import RETIMED, file_change
from raresift.filehash import file_fingerprint as fingerprint  # noqa: F401  (re-exported)
from raresift.session.errors import FingerprintError


def check_fingerprint(
    path: str | os.PathLike,
    recorded: dict[str, Any],
    what: str,
    full: bool = False,
    project: str | os.PathLike = "PROJECT",
) -> bool:
    """Raise :class:`FingerprintError` unless ``path`` still has the ``recorded`` contents.

    The sampled check (default) refuses a file whose time moved, naming ``raresift verify
    project``; ``full=True`` hashes the whole file and returns whether only its time moved
    (the caller then records the new time)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FingerprintError(
            f"{what} {path} is missing; put the original file back there (the session refers "
            "to it, it holds no copy)"
        )
    change = file_change(path, recorded, full=full)
    if change == RETIMED:
        raise FingerprintError(
            f"{what} {path} was touched since the session recorded it ({RETIMED}); run "
            f"raresift verify {project} to hash the whole file: if its contents are unchanged, "
            "verify records the new time"
        )
    if change is not None:
        raise FingerprintError(
            f"{what} {path} changed since the session recorded it ({change}); restore the "
            "original file, or start a new session on the new one and import this session's "
            "answers (raresift export / import)"
        )
    return full and os.stat(path).st_mtime_ns != recorded["mtime_ns"]
