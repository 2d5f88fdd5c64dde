"""The event store's PostgreSQL recorder, inserting in one round trip.

eventsourcing's recorder pipelines ``BEGIN``, ``SET LOCAL lock_timeout``, ``LOCK TABLE``,
``NOTIFY`` and the ``INSERT``, waits for their results (so that a conflict shows as the
``INSERT``'s error), then sends ``COMMIT`` and waits again: two round trips per
transaction, and the table lock, which serialises every writer of every process, is held
across both. This recorder sends the same statements, ``COMMIT`` included, in one pipeline
and waits once. A conflict still raises the ``INSERT``'s ``IntegrityError`` (PostgreSQL
skips the rest of a pipeline after an error, ``COMMIT`` included), and the failed
transaction is rolled back before its connection goes back to the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.pq import TransactionStatus

from conversa.adapters.postgres_insert import ColumnarApplicationRecorder
from conversa.app.unchanged import StaleRead, conditions


class OneTripApplicationRecorder(ColumnarApplicationRecorder):
    """The columnar insert (:mod:`.postgres_insert`), sent with its COMMIT in one trip."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.datastore.enable_db_functions or not stored_events:
            # Off in Conversa (see persistence.py); nothing to insert: the library's way.
            library = PostgresApplicationRecorder.insert_events.__wrapped__
            ids: Sequence[int] | None = library(self, stored_events, **kwargs)
            return ids
        unchanged = conditions(kwargs)
        with self.datastore.get_connection() as conn:
            locking = conn.cursor()
            inserting = conn.cursor()
            try:
                with conn.pipeline(), conn.transaction():
                    self._lock_table(locking)
                    self._notify_channel(locking)
                    self._insert_rows(inserting, stored_events, unchanged)
                # The pipeline has been synchronised and committed: the rows are there
                # (none when a condition did not hold: the INSERT inserted nothing).
                ids = self._fetch_ids_after_insert_events(inserting, stored_events, **kwargs)
                if unchanged and ids is not None and len(ids) < len(stored_events):
                    raise StaleRead
                return ids
            except psycopg.Error:
                # A conflict leaves the transaction failed (its COMMIT skipped): end it
                # here, so that the pool gets the connection back idle.
                if conn.info.transaction_status == TransactionStatus.INERROR:
                    conn.rollback()
                raise
            finally:
                locking.close()
                inserting.close()
