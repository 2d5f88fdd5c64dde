"""The event store's SQLite infrastructure: the library's, with conditional saves.

A save may carry conditions (:mod:`conversa.app.unchanged`): after its rows are inserted,
inside the same transaction, each named aggregate's latest version is compared with the
expected one, and the transaction is rolled back (``StaleRead``) when one differs. The
insert has taken SQLite's write lock by then (one writer at a time, in this process and
across processes), and a write transaction always works on the latest snapshot, so the
check sees every commit before this one and none can come between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory

from conversa.app.unchanged import StaleRead, conditions


class ConditionalSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        for condition in conditions(kwargs):
            originator_id = condition.originator_id
            key = originator_id.hex if isinstance(originator_id, UUID) else originator_id
            c.execute(
                f"SELECT MAX(originator_version) FROM {self.events_table_name} "
                "WHERE originator_id = ?",
                (key,),
            )
            row = c.fetchone()
            version = (row[0] if row is not None else None) or 0
            if version != condition.version:
                raise StaleRead
        return ids


class ConversaSQLiteFactory(SQLiteFactory):
    application_recorder_class = ConditionalSQLiteApplicationRecorder
