"""``conversa_messages`` on SQLite, in the event store's own file.

The library's SQLite tracking table is always named ``tracking``; the messages projection
is its only user in this file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteTrackingRecorder

from conversa.adapters.readmodel import hourly as hourly_sql
from conversa.adapters.readmodel.columns import (
    COLUMNS,
    COUNTS_TABLE,
    DUE_INDEX,
    DUE_INDEX_COLUMNS,
    INDEXES,
    MUTABLE,
    RANGE_OPERATORS,
    TABLE,
    bounded_page,
    counted_filters,
    query_filters,
    query_ranges,
    row_from_record,
    row_params,
)
from conversa.adapters.readmodel.conversations import (
    CONVERSATION_COLUMNS,
    CONVERSATION_INDEXES,
    CONVERSATIONS,
    SELECT_CONVERSATIONS,
    UPSERT_SUFFIX,
    conversation_filters,
    conversation_from_record,
)
from conversa.app.application import ConversaApp
from conversa.app.conversations import ConversationPage, ConversationQuery, ConversationRow
from conversa.app.projection import (
    COUNTED,
    HourKey,
    MessagePage,
    MessageQuery,
    MessageRow,
    MessagesView,
    ProjectionOutOfSequence,
    RowChanges,
    StoredRecord,
)

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
    next_attempt_at TEXT,
    direction TEXT NOT NULL DEFAULT 'outbound',
    conversation_id TEXT,
    media TEXT,
    reply_to TEXT,
    category TEXT,
    scheduled_at TEXT
)
"""
#: Columns added since the table was first made, and their definitions.
ADDED_COLUMNS = {
    "next_attempt_at": "TEXT",
    "direction": "TEXT NOT NULL DEFAULT 'outbound'",
    "conversation_id": "TEXT",
    "media": "TEXT",
    "reply_to": "TEXT",
    "category": "TEXT",
    "scheduled_at": "TEXT",
}
CREATE_CONVERSATIONS = f"""
CREATE TABLE IF NOT EXISTS {CONVERSATIONS} (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    contact TEXT NOT NULL,
    business_number TEXT,
    last_message_at TEXT NOT NULL,
    last_inbound_at TEXT,
    inbound_count INTEGER NOT NULL,
    outbound_count INTEGER NOT NULL
)
"""
FILL_CONVERSATIONS = (
    f"INSERT INTO {CONVERSATIONS} ({', '.join(CONVERSATION_COLUMNS)}) "
    + SELECT_CONVERSATIONS.format(messages=TABLE, where="{where}")
    + UPSERT_SUFFIX
)

INSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
UPDATE = f"UPDATE {TABLE} SET {', '.join(f'{c} = :{c}' for c in MUTABLE)} WHERE id = :id"
CREATE_COUNTS = (
    f"CREATE TABLE {COUNTS_TABLE} ("
    + ", ".join(f"{c} TEXT NOT NULL" for c in COUNTED)
    + f", n INTEGER NOT NULL, PRIMARY KEY ({', '.join(COUNTED)}))"
)
FILL_COUNTS = (
    f"INSERT INTO {COUNTS_TABLE} ({', '.join(COUNTED)}, n) "
    f"SELECT {', '.join(COUNTED)}, count(*) FROM {TABLE} GROUP BY {', '.join(COUNTED)}"
)
COUNT = (
    f"INSERT INTO {COUNTS_TABLE} ({', '.join(COUNTED)}, n) "
    f"VALUES ({', '.join('?' for _ in COUNTED)}, ?) "
    f"ON CONFLICT ({', '.join(COUNTED)}) DO UPDATE SET n = n + excluded.n"
)
#: The event store's table (the library's fixed name on SQLite).
EVENTS_TABLE = "stored_events"
CHUNK = 500  # stays under SQLite's limit of bound parameters per statement
#: Rows fetched at a time when a rebuild reads the event store.
READ_CHUNK = 5000


class SQLiteMessagesView(SQLiteTrackingRecorder, MessagesView):
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(CREATE_TABLE)
        statements.extend(
            f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} ({columns})"
            for name, columns in {**INDEXES, DUE_INDEX: DUE_INDEX_COLUMNS}.items()
        )
        statements.append(hourly_sql.SQLITE_CREATE)
        return statements

    def create_table(self) -> None:
        # Tables made by an earlier version lack the columns added since; SQLite has no
        # ADD COLUMN IF NOT EXISTS, so look first.
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"PRAGMA table_info({TABLE})")
            present = {row[1] for row in curs.fetchall()}
            for column, definition in ADDED_COLUMNS.items():
                if present and column not in present:
                    curs.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} {definition}")
        super().create_table()
        # The counters start as the rows there are; made once, and made again when the
        # counted columns changed.
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"PRAGMA table_info({COUNTS_TABLE})")
            counted = [row[1] for row in curs.fetchall()]
            if counted[:-1] != list(COUNTED):
                curs.execute(f"DROP TABLE IF EXISTS {COUNTS_TABLE}")
                curs.execute(CREATE_COUNTS)
                curs.execute(FILL_COUNTS)
            curs.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (CONVERSATIONS,)
            )
            if curs.fetchone() is None:
                curs.execute(CREATE_CONVERSATIONS)
                for name, columns in CONVERSATION_INDEXES.items():
                    curs.execute(f"CREATE INDEX {name} ON {CONVERSATIONS} ({columns})")
                curs.execute(FILL_CONVERSATIONS.format(where=""))

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

    def store(self, changes: RowChanges, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            curs = _raw(cursor)
            if changes.created:
                curs.executemany(INSERT, [_params(row) for row in changes.created])
                if curs.rowcount != len(changes.created):
                    raise ProjectionOutOfSequence(
                        f"{len(changes.created) - curs.rowcount} message(s) queued twice"
                    )
            if changes.updated:
                curs.executemany(UPDATE, [_params(row) for row in changes.updated])
                _check_found(curs.rowcount, len(changes.updated))
            keys = [str(i) for i in changes.removed]
            deleted = 0
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                curs.execute(
                    f"DELETE FROM {TABLE} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                deleted += curs.rowcount
            _check_found(deleted, len(keys))
            if changes.counts:
                curs.executemany(COUNT, [(*key, n) for key, n in changes.counts.items()])
            hourly_sql.sqlite_add(curs, changes.hourly)
            touched = sorted(str(i) for i in changes.conversations)
            for start in range(0, len(touched), CHUNK):
                chunk = touched[start : start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                # Computed again from their rows (one that has none left goes).
                curs.execute(f"DELETE FROM {CONVERSATIONS} WHERE id IN ({marks})", chunk)
                curs.execute(
                    FILL_CONVERSATIONS.format(where=f" AND conversation_id IN ({marks})"), chunk
                )

    def events_after(self, position: int, limit: int) -> list[tuple[int, StoredRecord]]:
        with self.datastore.transaction(commit=False) as cursor:
            curs = _raw(cursor)
            curs.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {EVENTS_TABLE} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (position, limit),
            )
            return [(n, (UUID(i), v, t, bytes(s))) for n, i, v, t, s in curs.fetchall()]

    def stored_events(self, upto: int) -> Iterator[list[StoredRecord]]:
        with self.datastore.transaction(commit=False) as cursor:
            curs = _raw(cursor)
            curs.execute(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {EVENTS_TABLE} WHERE rowid <= ? "
                "ORDER BY originator_id, originator_version",
                (upto,),
            )
            while records := curs.fetchmany(READ_CHUNK):
                yield [
                    (UUID(i), version, topic, bytes(state)) for i, version, topic, state in records
                ]

    def replace_all(
        self,
        rows: Iterable[MessageRow],
        tracking: Tracking | None,
        hourly: Mapping[HourKey, int] | None = None,
    ) -> int:
        written = 0

        def params() -> Iterator[dict[str, Any]]:
            nonlocal written
            for row in rows:
                written += 1
                yield _params(row)

        # One transaction: readers see the old rows until it commits (WAL).
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"DELETE FROM {TABLE}")
            curs.executemany(INSERT, params())
            curs.execute(f"DELETE FROM {COUNTS_TABLE}")
            curs.execute(FILL_COUNTS)
            curs.execute(f"DELETE FROM {CONVERSATIONS}")
            curs.execute(FILL_CONVERSATIONS.format(where=""))
            hourly_sql.sqlite_replace(curs, hourly)
            curs.execute(
                "DELETE FROM tracking WHERE application_name = ?",
                (ConversaApp.name if tracking is None else tracking.application_name,),
            )
            if tracking is not None:
                self._insert_tracking(curs, tracking)
        return written

    def due(self, now: datetime, limit: int) -> list[UUID]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT id FROM {TABLE} WHERE next_attempt_at IS NOT NULL "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (_timestamp(now), limit),
            )
            return [UUID(record[0]) for record in curs.fetchall()]

    def next_due(self, now: datetime) -> datetime | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT min(next_attempt_at) FROM {TABLE} WHERE next_attempt_at > ?",
                (_timestamp(now),),
            )
            record = curs.fetchone()
        return None if record is None or record[0] is None else datetime.fromisoformat(record[0])

    def get(self, message_id: UUID) -> MessageRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (str(message_id),))
            record = curs.fetchone()
        return None if record is None else _row(record)

    def query(self, query: MessageQuery) -> MessagePage:
        (rows_sql, total_sql), params = _list_statements(query)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(rows_sql, params)
            rows = [_row(r) for r in curs.fetchall()]
            curs.execute(total_sql, params)
            total = curs.fetchone()[0]
        return bounded_page(rows, int(total), query)

    def plans(self, query: MessageQuery) -> list[str]:
        """The query plans of the list's two statements."""
        statements, params = _list_statements(query)
        with self.datastore.transaction(commit=False) as curs:
            plans = []
            for statement in statements:
                curs.execute("EXPLAIN QUERY PLAN " + statement, params)
                plans.append("\n".join(str(r[-1]) for r in curs.fetchall()))
        return plans

    def hourly(self, since: int) -> dict[HourKey, int]:
        with self.datastore.transaction(commit=False) as curs:
            return hourly_sql.sqlite_read(curs, since)

    def counters(self) -> dict[tuple[str, ...], int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT {', '.join(COUNTED)}, n FROM {COUNTS_TABLE} WHERE n <> 0")
            return {tuple(r[:-1]): int(r[-1]) for r in curs.fetchall()}

    def all_rows(self) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {TABLE} ORDER BY id")
            return [_row(r) for r in curs.fetchall()]

    def conversations(self, query: ConversationQuery) -> ConversationPage:
        filters = conversation_filters(query)
        params: dict[str, Any] = {
            **filters,
            "limit": query.per_page,
            "offset": (query.page - 1) * query.per_page,
        }
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT * FROM {CONVERSATIONS}{_where(filters)} "
                "ORDER BY last_message_at DESC, id DESC LIMIT :limit OFFSET :offset",
                params,
            )
            rows = [_conversation(r) for r in curs.fetchall()]
            curs.execute(f"SELECT count(*) FROM {CONVERSATIONS}{_where(filters)}", params)
            total = curs.fetchone()[0]
        return ConversationPage(rows=rows, total=int(total))

    def conversation(self, conversation_id: UUID) -> ConversationRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {CONVERSATIONS} WHERE id = ?", (str(conversation_id),))
            record = curs.fetchone()
        return None if record is None else _conversation(record)

    def thread(self, conversation_id: UUID, page: int, per_page: int) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT * FROM {TABLE} WHERE conversation_id = ? "
                "ORDER BY created_at, id LIMIT ? OFFSET ?",
                (str(conversation_id), per_page, (page - 1) * per_page),
            )
            return [_row(r) for r in curs.fetchall()]

    def all_conversations(self) -> list[ConversationRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {CONVERSATIONS} ORDER BY id")
            return [_conversation(r) for r in curs.fetchall()]


def _list_statements(query: MessageQuery) -> tuple[tuple[str, str], dict[str, Any]]:
    filters = query_filters(query)
    ranges = query_ranges(query)
    params: dict[str, Any] = {
        **filters,
        **{bound: _timestamp(moment) for bound, moment in ranges.items()},
        "limit": query.per_page,
        "offset": (query.page - 1) * query.per_page,
        "count_limit": (query.count_limit or 0) + 1,
    }
    where = _where(filters, ranges)
    rows = (
        f"SELECT * FROM {TABLE}{where} "
        "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"
    )
    counted = counted_filters(query)
    if counted is not None:
        total = f"SELECT coalesce(sum(n), 0) FROM {COUNTS_TABLE}{_where(counted)}"
    elif query.count_limit is not None:
        total = f"SELECT count(*) FROM (SELECT 1 FROM {TABLE}{where} LIMIT :count_limit)"
    else:
        total = f"SELECT count(*) FROM {TABLE}{where}"
    return (rows, total), params


def _raw(cursor: Any) -> sqlite3.Cursor:
    """The sqlite3 cursor inside the library's wrapper (which hides ``rowcount``)."""
    return cast(sqlite3.Cursor, cursor.sqlite_cursor)


def _where(filters: dict[str, str], ranges: Mapping[str, datetime] | None = None) -> str:
    conditions = [f"{c} = :{c}" for c in filters]
    conditions.extend(f"created_at {RANGE_OPERATORS[b]} :{b}" for b in ranges or {})
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def _check_found(found: int, expected: int) -> None:
    if found != expected:
        raise ProjectionOutOfSequence(
            f"{expected - found} message(s) changed by events have no row"
        )


def _params(row: MessageRow) -> dict[str, Any]:
    params = row_params(row)
    params["id"] = str(row.id)
    params["meta"] = orjson.dumps(row.meta).decode()
    params["template"] = None if row.template is None else orjson.dumps(row.template).decode()
    params["created_at"] = _timestamp(row.created_at)
    params["updated_at"] = _timestamp(row.updated_at)
    params["next_attempt_at"] = (
        None if row.next_attempt_at is None else _timestamp(row.next_attempt_at)
    )
    params["conversation_id"] = None if row.conversation_id is None else str(row.conversation_id)
    params["reply_to"] = None if row.reply_to is None else str(row.reply_to)
    params["media"] = None if row.media is None else orjson.dumps(row.media).decode()
    params["scheduled_at"] = None if row.scheduled_at is None else _timestamp(row.scheduled_at)
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
    values["media"] = None if values["media"] is None else json.loads(values["media"])
    if values["scheduled_at"] is not None:
        values["scheduled_at"] = datetime.fromisoformat(values["scheduled_at"])
    return row_from_record(values)


def _conversation(record: Any) -> ConversationRow:
    values = dict(record)
    values["last_message_at"] = datetime.fromisoformat(values["last_message_at"])
    if values["last_inbound_at"] is not None:
        values["last_inbound_at"] = datetime.fromisoformat(values["last_inbound_at"])
    return conversation_from_record(values)
