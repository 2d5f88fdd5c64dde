"""Event-store recorders that lose the answer to one commit, as when the database goes
down between committing and answering, or that are cut off from the database for a
while. Chosen with ``APPLICATION_RECORDER_TOPIC``.

After ``lose_next_commit_answer()``, the next insert commits and then raises the
library's ``OperationalError``; the retry around ``insert_events`` then inserts the same
events again and meets the unique key: what a send saw during a PostgreSQL outage. With
``outage=True`` it raises ``DatabaseUnavailable`` instead: the retries ran out before the
database came back, so the caller cannot know whether it was committed.

After ``go_down(after=n)``, the inserts after the next ``n`` fail with
``DatabaseUnavailable`` (nothing committed) until ``come_back()``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import retry

from conversa.app.outage import DatabaseUnavailable

LOST = "server closed the connection unexpectedly (the commit went through)"


class _LosingAnswers:
    """Wraps a datastore: while an insert is armed, the connection (or transaction) it
    takes commits, and then its answer is lost once."""

    def __init__(self, datastore: Any) -> None:
        self._datastore = datastore
        self.armed = False
        self.outage = False
        self.lost = 0
        self.down_after: int | None = None
        self.refused = 0
        self._inserting = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._datastore, name)

    @contextlib.contextmanager
    def inserting(self) -> Iterator[None]:
        if self.down_after is not None:
            if self.down_after == 0:
                self.refused += 1
                raise DatabaseUnavailable("the database is down (test)")
            self.down_after -= 1
        self._inserting.active = True
        try:
            yield
        finally:
            self._inserting.active = False

    def _lose_answer(self) -> None:
        if self.armed and getattr(self._inserting, "active", False):
            self.armed = False
            self.lost += 1
            raise DatabaseUnavailable(LOST) if self.outage else OperationalError(LOST)

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[Any]:
        with self._datastore.get_connection() as conn:
            yield conn
        self._lose_answer()  # the transaction inside has committed

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Any]:
        with self._datastore.transaction(commit=commit) as cursor:
            yield cursor
        self._lose_answer()


class PostgresLosingOneAnswer(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.losing = _LosingAnswers(datastore)
        self.datastore = self.losing  # type: ignore[assignment]

    def lose_next_commit_answer(self, *, outage: bool = False) -> None:
        self.losing.armed = True
        self.losing.outage = outage

    def go_down(self, *, after: int = 0) -> None:
        self.losing.down_after = after

    def come_back(self) -> None:
        self.losing.down_after = None

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The library's own insert, with its own retry (10 attempts on OperationalError).
        with self.losing.inserting():
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids


class SQLiteLosingOneAnswer(SQLiteApplicationRecorder):
    """SQLite's recorder does not retry (a local file does not lose answers), so this one
    wraps its insert in the very retry the PostgreSQL recorder has, to replay the same
    sequence on both stores."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.losing = _LosingAnswers(datastore)
        self.datastore = self.losing  # type: ignore[assignment]

    def lose_next_commit_answer(self, *, outage: bool = False) -> None:
        self.losing.armed = True
        self.losing.outage = outage

    def go_down(self, *, after: int = 0) -> None:
        self.losing.down_after = after

    def come_back(self) -> None:
        self.losing.down_after = None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.losing.inserting():
            return super().insert_events(stored_events, **kwargs)
