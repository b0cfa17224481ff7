"""Output folders, checked before any work starts (a long run must not fail at its last step)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
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


def check_output_file(
    path: str | Path, option: str = "--out", protected: Iterable[Path] = ()
) -> Path:
    """Raise :class:`ValidationError` unless a file can be written at ``path``: its folder
    exists and is writable, it is no folder, and it is none of the ``protected`` files (nor a
    link to one: a project's database and the files it depends on). Creates nothing.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_output_file(folder / "missing" / "a.csv")
    Traceback (most recent call last):
    ...
    raresift.errors.ValidationError: cannot write ...: the folder ... does not exist; ...
    >>> (folder / "session.db").write_text("x")
    1
    >>> check_output_file(folder / "session.db", protected=[folder / "session.db"])
    Traceback (most recent call last):
    ...
    raresift.errors.ValidationError: cannot write ...: it is a file of the project ...
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise ValidationError(f"cannot write {path}: it is a folder; name a file with {option}")
    check_output_folder(parent, option)
    if not parent.is_dir():
        raise ValidationError(
            f"cannot write {path}: the folder {parent} does not exist; create it or choose "
            f"another {option}"
        )
    if path.exists() or path.is_symlink():
        try:
            st = path.stat()
        except OSError:
            st = None
        target = path.resolve()
        for other in protected:
            other = Path(other)
            same = other.resolve() == target
            if not same and st is not None and other.exists():
                ost = other.stat()
                same = (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino)
            if same:
                raise ValidationError(
                    f"cannot write {path}: it is a file of the project ({other}), and writing "
                    f"over it would destroy the session; choose another {option}"
                )
    return path


def reserve_disk(path: str | Path) -> None:
    """Allocate the blocks of the (sparse) file ``path`` now, so that a disk too small for it
    raises ``OSError(ENOSPC)`` here instead of killing the process with SIGBUS when a memory
    map writes into a hole later."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)
