"""Errors of labeling sessions (all :class:`~raresift.errors.RaresiftError` subclasses)."""

from __future__ import annotations

from raresift.errors import ConfigError, CorruptFileError, RaresiftError, ValidationError


class SessionError(RaresiftError):
    """A session cannot be created or opened as asked (missing folder, exists already, ...)."""


class SessionCorruptError(CorruptFileError):
    """The session database is unreadable, truncated, or not a raresift session."""


class FingerprintError(SessionError):
    """A file the session depends on (embeddings, index) is missing or its contents changed."""


class SchemaError(SessionError):
    """The session was written by an incompatible raresift (older or newer schema)."""


class ConflictError(SessionError):
    """Another writer answered the item after the version the caller expected."""


class LabelStudioError(RaresiftError):
    """Label Studio could not be reached, refused the token, or refused a request."""


class AnswerError(ValidationError):
    """Some answers were refused; ``problems`` lists ``(line, message)`` pairs.

    ``line`` is the 1-based line of the input file (the header is line 1) or, for answers given
    in code, the 1-based position in the list.
    """

    def __init__(
        self, source: str, problems: list[tuple[int, str]], n_good: int = 0, unit: str = "line"
    ):
        self.source = source
        self.problems = problems
        self.n_good = n_good
        head = f"{source}: {len(problems)} bad answer(s), nothing written"
        if n_good:
            head += f" (pass --partial / partial=True to keep the {n_good} good ones)"
        # one problem per clause, so the message still reads on the CLI's single line
        shown = [f"{unit} {line}: {message}" for line, message in problems[:50]]
        if len(problems) > 50:
            shown.append(f"... and {len(problems) - 50} more")
        super().__init__(f"{head}: " + "; ".join(shown))


__all__ = [
    "AnswerError",
    "ConfigError",
    "ConflictError",
    "FingerprintError",
    "LabelStudioError",
    "SchemaError",
    "SessionCorruptError",
    "SessionError",
]
