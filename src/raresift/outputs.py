"""Output folders, checked before any work starts (a long run must not fail at its last step)."""

from __future__ import annotations

import os
from pathlib import Path

from raresift.errors import ValidationError


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """Raise :class:`ValidationError` unless folder ``path`` exists or can be created: no file
    in the way and its nearest existing ancestor writable. Creates nothing.

    >>> import tempfile
    >>> a_file = tempfile.mkstemp()[1]
    >>> check_output_folder(Path(a_file) / "report")
    Traceback (most recent call last):
    ...
    raresift.errors.ValidationError: cannot write into ... is a file; choose another --out
    """
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValidationError(
                    f"cannot write into {path}: {folder} is a file; choose another {option}"
                )
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValidationError(
                    f"cannot write into {path}: {folder} is not writable; choose another {option}"
                )
            break
    return path


def make_output_folder(path: str | Path, option: str = "--out") -> Path:
    """:func:`check_output_folder`, then create the folder (and its parents) if needed.

    >>> import tempfile
    >>> make_output_folder(Path(tempfile.mkdtemp()) / "a" / "b").is_dir()
    True
    """
    path = check_output_folder(path, option)
    path.mkdir(parents=True, exist_ok=True)
    return path
