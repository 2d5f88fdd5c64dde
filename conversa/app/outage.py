"""What a database outage looks like to the application."""

from __future__ import annotations

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError


class DatabaseUnavailable(PersistenceError):
    """The database could not be reached within ``CONVERSA_DB_TIMEOUT_SECONDS``.

    Deliberately not an ``OperationalError``: the event store retries those, and this one
    says that the time for retrying is over.
    """

    def __init__(self, message: str = "the database is unavailable") -> None:
        super().__init__(message)


#: Errors that mean "the database cannot be reached now", as opposed to a bug or bad data.
#: An operation that fails with one of them may or may not have been committed.
DATABASE_OUTAGE: tuple[type[PersistenceError], ...] = (
    DatabaseUnavailable,
    OperationalError,
    InterfaceError,
)
