"""Store errors, in the one hierarchy of ``core.errors``; URLs are redacted in every message."""

from __future__ import annotations

from core.errors import NonRetryableError, RetryableError
from core.redaction import scrub
from daemon.store.urls import shown_url


class StoreUnavailable(RetryableError):
    """The database cannot be reached (down, refused, bad credentials, unwritable file)."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = shown_url(url)
        self.problem = scrub(problem)  # driver messages name users, databases, hosts
        super().__init__(f"database {self.url} unreachable: {self.problem}")


class SchemaNotCurrent(NonRetryableError):
    """The database schema is not at the revision this code expects."""

    def __init__(self, url: str, current: str | None, expected: str) -> None:
        self.url = shown_url(url)
        self.current = current
        self.expected = expected
        at = "has no schema" if current is None else f"is at schema revision {current}"
        super().__init__(
            f"database {self.url} {at}, this version needs {expected}: "
            "run `crossmargin migrate -c CONFIG`"
        )


class MigrationFailed(NonRetryableError):
    """A migration could not be applied (unknown revision, failing DDL)."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = shown_url(url)
        super().__init__(f"migrating {self.url} failed: {scrub(problem)}")
