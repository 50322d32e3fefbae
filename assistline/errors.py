"""The root of every error assistline raises on purpose.

Each class's docstring is its default message and says what to do about it,
so ``str(error)`` is always useful to an operator. Card data never goes into
a message: callers pass only field names and sanitised values.
"""

from __future__ import annotations


class AssistlineError(Exception):
    """assistline failed; the log line before this one says where."""

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            doc = (type(self).__doc__ or "").strip()
            message = doc.splitlines()[0] if doc else type(self).__name__
        super().__init__(message)


class ConfigurationError(AssistlineError, ValueError):
    """The configuration is invalid; fix the named setting and start again."""


class StoreError(AssistlineError):
    """The database could not be used; check DATABASE_URL or the data directory."""


class EmbeddedPostgresError(StoreError):
    """The embedded PostgreSQL server failed; its log in the data directory says why."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer assistline; upgrade assistline, never downgrade data."""


class MigrationError(StoreError):
    """A schema migration failed and was rolled back; fix it and start again."""
