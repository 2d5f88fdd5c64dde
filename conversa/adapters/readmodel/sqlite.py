"""``conversa_messages`` on SQLite, in the event store's own file.

The library's SQLite tracking table is always named ``tracking``; the messages projection
is its only user in this file.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteTrackingRecorder

from conversa.adapters.readmodel.columns import (
    COLUMNS,
    DUE_INDEX,
    DUE_INDEX_COLUMNS,
    INDEXES,
    TABLE,
    query_filters,
    row_from_record,
    row_params,
)
from conversa.app.projection import MessagePage, MessageQuery, MessageRow, MessagesView

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender TEXT,
    driver TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT,
    template TEXT,
    provider_message_id TEXT,
    attempts INTEGER NOT NULL,
    error_code TEXT,
    error_message TEXT,
    idempotency_key TEXT,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    next_attempt_at TEXT
)
"""

UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
)

CHUNK = 500  # stays under SQLite's limit of bound parameters per statement


class SQLiteMessagesView(SQLiteTrackingRecorder, MessagesView):
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(CREATE_TABLE)
        statements.extend(
            f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} ({columns})"
            for name, columns in {**INDEXES, DUE_INDEX: DUE_INDEX_COLUMNS}.items()
        )
        return statements

    def create_table(self) -> None:
        # Tables made by an earlier version lack the columns added since; SQLite has no
        # ADD COLUMN IF NOT EXISTS, so look first.
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"PRAGMA table_info({TABLE})")
            present = {row[1] for row in curs.fetchall()}
            if present and "next_attempt_at" not in present:
                curs.execute(f"ALTER TABLE {TABLE} ADD COLUMN next_attempt_at TEXT")
        super().create_table()

    def load(self, ids: Collection[UUID]) -> dict[UUID, MessageRow]:
        keys = [str(i) for i in ids]
        found: dict[UUID, MessageRow] = {}
        with self.datastore.transaction(commit=False) as curs:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                curs.execute(
                    f"SELECT * FROM {TABLE} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                found.update((r.id, r) for r in map(_row, curs.fetchall()))
        return found

    def store(
        self, rows: Sequence[MessageRow], tracking: Tracking, removed: Collection[UUID] = ()
    ) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            if rows:
                curs.executemany(UPSERT, [_params(row) for row in rows])
            keys = [str(i) for i in removed]
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                curs.execute(
                    f"DELETE FROM {TABLE} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )

    def due(self, now: datetime, limit: int) -> list[UUID]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT id FROM {TABLE} WHERE next_attempt_at IS NOT NULL "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (_timestamp(now), limit),
            )
            return [UUID(record[0]) for record in curs.fetchall()]

    def reset(self, application_name: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM tracking WHERE application_name = ?", (application_name,))
            curs.execute(f"DELETE FROM {TABLE}")

    def get(self, message_id: UUID) -> MessageRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (str(message_id),))
            record = curs.fetchone()
        return None if record is None else _row(record)

    def query(self, query: MessageQuery) -> MessagePage:
        filters = query_filters(query)
        where = (" WHERE " + " AND ".join(f"{c} = :{c}" for c in filters)) if filters else ""
        params: dict[str, Any] = {
            **filters,
            "limit": query.per_page,
            "offset": (query.page - 1) * query.per_page,
        }
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT * FROM {TABLE}{where} "
                "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset",
                params,
            )
            rows = [_row(r) for r in curs.fetchall()]
            curs.execute(f"SELECT count(*) FROM {TABLE}{where}", params)
            total = curs.fetchone()[0]
        return MessagePage(rows=rows, total=int(total))

    def all_rows(self) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {TABLE} ORDER BY id")
            return [_row(r) for r in curs.fetchall()]


def _params(row: MessageRow) -> dict[str, Any]:
    params = row_params(row)
    params["id"] = str(row.id)
    params["meta"] = json.dumps(row.meta, separators=(",", ":"))
    params["template"] = None if row.template is None else json.dumps(row.template)
    params["created_at"] = _timestamp(row.created_at)
    params["updated_at"] = _timestamp(row.updated_at)
    params["next_attempt_at"] = (
        None if row.next_attempt_at is None else _timestamp(row.next_attempt_at)
    )
    return params


def _timestamp(moment: datetime) -> str:
    # Fixed-width UTC timestamps sort and compare correctly as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _row(record: Any) -> MessageRow:
    values = dict(record)
    values["meta"] = json.loads(values["meta"])
    values["template"] = None if values["template"] is None else json.loads(values["template"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    values["updated_at"] = datetime.fromisoformat(values["updated_at"])
    if values["next_attempt_at"] is not None:
        values["next_attempt_at"] = datetime.fromisoformat(values["next_attempt_at"])
    return row_from_record(values)
