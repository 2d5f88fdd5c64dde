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

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of these aggregates, by aggregate then version, in few queries."""
        found: list[StoredEvent] = []
        ids = [i.hex for i in originator_ids]
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), _IN_LIMIT):
                chunk = ids[start : start + _IN_LIMIT]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "SELECT originator_id, originator_version, topic, state FROM "
                    f"{self.events_table_name} WHERE originator_id IN ({marks}) "
                    "ORDER BY originator_id, originator_version",
                    chunk,
                )
                found.extend(
                    StoredEvent(
                        originator_id=UUID(row[0]),
                        originator_version=row[1],
                        topic=row[2],
                        state=row[3],
                    )
                    for row in c.fetchall()
                )
        return found


#: Parameters of one IN list (SQLite allows at least 999).
_IN_LIMIT = 900


class ConversaSQLiteFactory(SQLiteFactory):
    application_recorder_class = ConditionalSQLiteApplicationRecorder
