"""Errors raised by raresift.

Every mistake a user can make (bad shapes, non-finite values, unknown ids, impossible budgets,
missing data sets, corrupted files) raises a :class:`RaresiftError` whose message says what is
wrong and what to do. The command line turns these into one readable line and exit code 2.
"""


class RaresiftError(Exception):
    """Base class of every error raresift raises on purpose."""


class ValidationError(RaresiftError, ValueError):
    """An argument has the wrong shape, type, range, or contains non-finite values."""


class UnknownIdError(ValidationError):
    """An item id is not in the pool (or not where it was expected)."""


class BudgetError(ValidationError):
    """A budget is not a positive integer or exceeds what is eligible."""


class DatasetNotInstalledError(RaresiftError):
    """A data set's files are missing; the message names the command that installs them."""


class CorruptFileError(RaresiftError):
    """A file exists but cannot be parsed."""


class StorageError(RaresiftError):
    """The disk or file system refused a read or write (full, read-only, no permission); the
    data already stored is intact."""


def storage_error(exc: OSError, doing: str) -> StorageError:
    """A :class:`StorageError` saying what the operating system refused and what to do.

    >>> import errno
    >>> print(storage_error(OSError(errno.ENOSPC, "No space left on device", "/p/x"), "write"))
    cannot write /p/x: the disk is full; free some space and run the command again (what was ...
    """
    import errno

    where = f" {exc.filename}" if exc.filename else ""
    what = {
        errno.ENOSPC: "the disk is full; free some space and run the command again",
        errno.EDQUOT: "the disk quota is exhausted; free some space and run the command again",
        errno.EROFS: "the file system is read-only; copy the project to a writable place",
        errno.EACCES: "permission denied; check the file's and its folder's permissions",
        errno.EPERM: "the operation is not permitted (an immutable or locked file?); check the "
        "file's attributes and permissions",
        errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
        errno.EISDIR: "it is a folder; name a file",
        errno.ENOENT: "no such file or folder",
        errno.EEXIST: "it exists already; choose another path",
    }.get(exc.errno, exc.strerror or str(exc))
    return StorageError(f"cannot {doing}{where}: {what} (what was stored before is intact)")


class ConfigError(RaresiftError):
    """A configuration (strategy name, parameter, TOML file) is invalid."""


class StudyFailedError(RaresiftError):
    """A study ran, but some of its jobs failed; the report lists them at the top.

    The command line exits with :attr:`exit_code` 1 (not 2: the input was valid).
    """

    exit_code = 1
