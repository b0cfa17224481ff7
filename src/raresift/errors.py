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


class ConfigError(RaresiftError):
    """A configuration (strategy name, parameter, TOML file) is invalid."""


class StudyFailedError(RaresiftError):
    """A study ran, but some of its jobs failed; the report lists them at the top.

    The command line exits with :attr:`exit_code` 1 (not 2: the input was valid).
    """

    exit_code = 1
