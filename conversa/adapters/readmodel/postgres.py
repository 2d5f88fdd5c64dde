"""``conversa_messages`` on PostgreSQL, written with its counters and its tracking position
in one transaction.

A batch of events is one transaction of a few statements whatever its size: the new rows
in one ``INSERT ... SELECT FROM unnest(...)``, the changed ones in one ``UPDATE ... FROM
unnest(...)`` of the columns events change, the counters in one upsert. A rebuild COPYs
every row into a new table, indexes it, and swaps it for the old one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier, Placeholder
from psycopg.types.json import Jsonb, set_json_dumps

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

log = logging.getLogger(__name__)

TRACKING_TABLE = "conversa_messages_tracking"
EVENTS_TABLE = f"{ConversaApp.name}_events"
#: The table a rebuild fills before it takes the place of ``conversa_messages``.
REBUILD_TABLE = f"{TABLE}_rebuild"

#: Stored events fetched at a time by a rebuild.
READ_CHUNK = 10_000

TYPES = {
    "id": "uuid",
    "channel": "text",
    "recipient": "text",
    "sender": "text",
    "driver": "text",
    "status": "text",
    "body": "text",
    "template": "jsonb",
    "provider_message_id": "text",
    "attempts": "integer",
    "error_code": "text",
    "error_message": "text",
    "idempotency_key": "text",
    "meta": "jsonb",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "version": "integer",
    "next_attempt_at": "timestamptz",
    "direction": "text",
    "conversation_id": "uuid",
    "media": "jsonb",
    "reply_to": "uuid",
    "category": "text",
    "scheduled_at": "timestamptz",
}
NOT_NULL = {
    "id",
    "channel",
    "recipient",
    "driver",
    "status",
    "attempts",
    "meta",
    "created_at",
    "updated_at",
    "version",
    "direction",
}


def _create_table(*, primary_key: bool) -> str:
    columns = [
        f"{name} {TYPES[name]}"
        + (" PRIMARY KEY" if name == "id" and primary_key else "")
        + (" NOT NULL" if name in NOT_NULL and not (name == "id" and primary_key) else "")
        for name in COLUMNS
    ]
    return "CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(columns) + "\n)"


# Tables made by an earlier version lack the columns added since.
UPGRADES = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS direction text NOT NULL DEFAULT 'outbound'",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS conversation_id uuid",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS media jsonb",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS reply_to uuid",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS category text",
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS scheduled_at timestamptz",
)
CREATE_CONVERSATIONS = """CREATE TABLE {conversations} (
    id uuid PRIMARY KEY,
    channel text NOT NULL,
    contact text NOT NULL,
    business_number text,
    last_message_at timestamptz NOT NULL,
    last_inbound_at timestamptz,
    inbound_count bigint NOT NULL,
    outbound_count bigint NOT NULL
)"""
FILL_CONVERSATIONS = (
    "INSERT INTO {conversations} ("
    + ", ".join(CONVERSATION_COLUMNS)
    + ") "
    + SELECT_CONVERSATIONS.replace("{messages}", "{table}")
    + UPSERT_SUFFIX
)
CREATE_COUNTS = (
    "CREATE TABLE {counts} ("
    + ", ".join(f"{c} text NOT NULL" for c in COUNTED)
    + ", n bigint NOT NULL, PRIMARY KEY ("
    + ", ".join(COUNTED)
    + "))"
)
FILL_COUNTS = (
    "INSERT INTO {counts} ("
    + ", ".join(COUNTED)
    + ", n) SELECT "
    + ", ".join(COUNTED)
    + ", count(*) FROM {table} GROUP BY "
    + ", ".join(COUNTED)
)


class PostgresMessagesView(PostgresTrackingRecorder, MessagesView):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        kwargs.setdefault("tracking_table_name", TRACKING_TABLE)
        super().__init__(datastore, **kwargs)
        schema = self.datastore.schema
        self.table = Identifier(schema, TABLE)
        self.counts = Identifier(schema, COUNTS_TABLE)
        self.tracking = Identifier(schema, self.tracking_table_name)
        self.events = Identifier(schema, EVENTS_TABLE)
        self.conversations_table = Identifier(schema, CONVERSATIONS)
        self.hourly_table = hourly_sql.pg_table(schema)
        self.sql_create_statements.append(
            SQL(_create_table(primary_key=True)).format(table=self.table)
        )
        for upgrade in UPGRADES:
            self.sql_create_statements.append(SQL(upgrade).format(table=self.table))
        self.sql_create_statements.extend(
            _index(name, columns, self.table) for name, columns in _all_indexes().items()
        )
        self.sql_create_statements.append(hourly_sql.pg_create(self.hourly_table))
        self.insert = SQL(
            "INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (id) DO NOTHING"
        ).format(
            table=self.table,
            columns=SQL(", ").join(map(Identifier, COLUMNS)),
            arrays=_arrays(COLUMNS),
        )
        self.update = SQL(
            "UPDATE {table} AS t SET {set} FROM unnest({arrays}) AS u ({columns}) WHERE t.id = u.id"
        ).format(
            table=self.table,
            set=SQL(", ").join(SQL("{0} = u.{0}").format(Identifier(c)) for c in MUTABLE),
            arrays=_arrays(("id", *MUTABLE)),
            columns=SQL(", ").join(map(Identifier, ("id", *MUTABLE))),
        )
        self.count = SQL(
            "INSERT INTO {counts} ({columns}, n) SELECT * FROM unnest({arrays}, %b::bigint[]) "
            "ON CONFLICT ({columns}) DO UPDATE SET n = {counts}.n + EXCLUDED.n"
        ).format(
            counts=self.counts,
            columns=SQL(", ").join(map(Identifier, COUNTED)),
            arrays=SQL(", ").join(SQL("%b::text[]") for _ in COUNTED),
        )

    def create_table(self) -> None:
        super().create_table()
        # The counters start as the rows there are; made once, with writers kept out
        # meanwhile (SHARE ROW EXCLUSIVE conflicts with itself: one migrate at a time).
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self.table))
            curs.execute(
                "SELECT to_regclass(%s) AS found", (f'"{self.datastore.schema}"."{COUNTS_TABLE}"',)
            )
            curs.execute(
                "SELECT array_agg(column_name::text ORDER BY ordinal_position) AS columns "
                "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (self.datastore.schema or "public", COUNTS_TABLE),
            )
            found = curs.fetchone()
            columns = (found or {}).get("columns") or []
            if columns[:-1] != list(COUNTED):
                # None yet, or counting other columns: made (again) from the rows.
                curs.execute(SQL("DROP TABLE IF EXISTS {}").format(self.counts))
                curs.execute(SQL(CREATE_COUNTS).format(counts=self.counts))
                curs.execute(SQL(FILL_COUNTS).format(counts=self.counts, table=self.table))
            curs.execute(
                "SELECT to_regclass(%s) AS found",
                (f'"{self.datastore.schema}"."{CONVERSATIONS}"',),
            )
            found = curs.fetchone()
            if found is None or found["found"] is None:
                curs.execute(
                    SQL(CREATE_CONVERSATIONS).format(conversations=self.conversations_table)
                )
                for name, columns_sql in CONVERSATION_INDEXES.items():
                    curs.execute(_index(name, columns_sql, self.conversations_table))
                curs.execute(self._fill_conversations(""))

    def load(self, ids: Iterable[UUID]) -> dict[UUID, MessageRow]:
        ids = list(ids)
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {table} WHERE id = ANY(%s)").format(table=self.table), (ids,)
            )
            return {r.id: r for r in map(row_from_record, curs.fetchall())}

    def store(self, changes: RowChanges, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            if changes.created:
                curs.execute(self.insert, _columns(changes.created, COLUMNS))
                if curs.rowcount != len(changes.created):
                    raise ProjectionOutOfSequence(
                        f"{len(changes.created) - curs.rowcount} message(s) queued twice"
                    )
            if changes.updated:
                curs.execute(self.update, _columns(changes.updated, ("id", *MUTABLE)))
                _check_found(curs, len(changes.updated))
            if changes.removed:
                curs.execute(
                    SQL("DELETE FROM {table} WHERE id = ANY(%s)").format(table=self.table),
                    (changes.removed,),
                )
                _check_found(curs, len(changes.removed))
            if changes.counts:
                keys = list(changes.counts)
                curs.execute(
                    self.count,
                    [
                        *([key[i] for key in keys] for i in range(len(COUNTED))),
                        list(changes.counts.values()),
                    ],
                )
            hourly_sql.pg_add(curs, self.hourly_table, changes.hourly)
            touched = sorted(changes.conversations)
            if touched:
                # Computed again from their rows (one that has none left goes).
                curs.execute(
                    SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self.conversations_table),
                    (touched,),
                )
                curs.execute(
                    self._fill_conversations(" AND conversation_id = ANY(%(ids)s)"),
                    {"ids": touched},
                )

    def _fill_conversations(self, where: str) -> Composed:
        return SQL(FILL_CONVERSATIONS.replace("{where}", where)).format(
            conversations=self.conversations_table, table=self.table
        )

    def events_after(self, position: int, limit: int) -> list[tuple[int, StoredRecord]]:
        # The library's select_notifications builds an object per event and reads text;
        # this reads the same rows, in binary, as tuples.
        with (
            self.datastore.transaction(commit=False) as curs,
            curs.connection.cursor(row_factory=tuple_row, binary=True) as cursor,
        ):
            cursor.execute(
                SQL(
                    "SELECT notification_id, originator_id::uuid, originator_version::bigint, "
                    "topic, state FROM {events} WHERE notification_id > %s "
                    "ORDER BY notification_id LIMIT %s"
                ).format(events=self.events),
                (position, limit),
            )
            return [(n, (i, v, t, s)) for n, i, v, t, s in cursor.fetchall()]

    def stored_events(self, upto: int) -> Iterator[list[StoredRecord]]:
        # A server-side cursor in binary, fetched in chunks: the rows are built in C, and
        # this is the cheapest way here to read a million (a binary COPY costs more CPU).
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(force_rollback=True),
            conn.cursor(name="conversa_rebuild", row_factory=tuple_row, binary=True) as cursor,
        ):
            # In the primary key's order, read through its index: sorting a million
            # stored states instead spills hundreds of megabytes to disk first.
            conn.execute("SET LOCAL enable_sort = off")
            cursor.execute(
                SQL(
                    "SELECT originator_id::uuid, originator_version::bigint, topic, state "
                    "FROM {events} WHERE notification_id <= %s "
                    "ORDER BY originator_id, originator_version"
                ).format(events=self.events),
                (upto,),
            )
            while chunk := cursor.fetchmany(READ_CHUNK):
                yield chunk

    def replace_all(
        self,
        rows: Iterable[MessageRow],
        tracking: Tracking | None,
        hourly: Mapping[HourKey, int] | None = None,
    ) -> int:
        new = Identifier(self.datastore.schema, REBUILD_TABLE)
        written = 0
        started = time.perf_counter()
        with self.datastore.transaction(commit=True) as curs:
            # Building the indexes after the rows are in is several times faster than
            # keeping them up to date row by row; more memory makes each build one pass.
            curs.execute("SET LOCAL maintenance_work_mem = '256MB'")
            curs.execute(SQL("DROP TABLE IF EXISTS {}").format(new))
            curs.execute(SQL(_create_table(primary_key=False)).format(table=new))
            with curs.copy(
                SQL("COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)").format(
                    table=new, columns=SQL(", ").join(map(Identifier, COLUMNS))
                )
            ) as copy:
                # Binary: the server parses no text (timestamps, uuids); fixed dumpers,
                # and JSON written by orjson.
                copy.set_types([TYPES[c] for c in COLUMNS])
                set_json_dumps(orjson.dumps, context=curs)
                for row in rows:
                    copy.write_row(_copy_values(row))
                    written += 1
            filled = time.perf_counter()
            curs.execute(
                SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (id)").format(
                    new, Identifier(f"{REBUILD_TABLE}_pkey")
                )
            )
            for name, columns in _all_indexes().items():
                curs.execute(_index(f"{name}_rebuild", columns, new))
            indexed = time.perf_counter()
            # The swap: readers wait for it (briefly) and then read the new table.
            curs.execute(SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(self.table))
            curs.execute(SQL("DROP TABLE {}").format(self.table))
            curs.execute(SQL("ALTER TABLE {} RENAME TO {}").format(new, Identifier(TABLE)))
            curs.execute(
                SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                    self.table, Identifier(f"{REBUILD_TABLE}_pkey"), Identifier(f"{TABLE}_pkey")
                )
            )
            for name in _all_indexes():
                curs.execute(
                    SQL("ALTER INDEX {} RENAME TO {}").format(
                        Identifier(self.datastore.schema, f"{name}_rebuild"), Identifier(name)
                    )
                )
            curs.execute(SQL("DELETE FROM {}").format(self.counts))
            curs.execute(SQL(FILL_COUNTS).format(counts=self.counts, table=self.table))
            curs.execute(SQL("DELETE FROM {}").format(self.conversations_table))
            curs.execute(self._fill_conversations(""))
            hourly_sql.pg_replace(curs, self.hourly_table, hourly)
            curs.execute(
                SQL("DELETE FROM {tracking} WHERE application_name = %s").format(
                    tracking=self.tracking
                ),
                (ConversaApp.name if tracking is None else tracking.application_name,),
            )
            if tracking is not None:
                self._insert_tracking(curs, tracking)
        done = time.perf_counter()
        log.info(
            "rebuilt %s: %d rows folded and copied in %.1f s, indexed in %.1f s, "
            "swapped in and committed in %.1f s",
            TABLE,
            written,
            filled - started,
            indexed - filled,
            done - indexed,
        )
        return written

    def due(self, now: datetime, limit: int) -> list[UUID]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT id FROM {table} WHERE next_attempt_at IS NOT NULL "
                    "AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s"
                ).format(table=self.table),
                (now, limit),
            )
            return [record["id"] for record in curs.fetchall()]

    def next_due(self, now: datetime) -> datetime | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT min(next_attempt_at) AS at FROM {table} WHERE next_attempt_at > %s"
                ).format(table=self.table),
                (now,),
            )
            record = curs.fetchone()
        return None if record is None else record["at"]

    def get(self, message_id: UUID) -> MessageRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {table} WHERE id = %s").format(table=self.table), (message_id,)
            )
            record = curs.fetchone()
        return None if record is None else row_from_record(record)

    def query(self, query: MessageQuery) -> MessagePage:
        (rows_sql, total_sql), params = self._list_statements(query)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(rows_sql, params)
            rows = [row_from_record(r) for r in curs.fetchall()]
            curs.execute(total_sql, params)
            total = curs.fetchone()
        return bounded_page(rows, int(total["n"]) if total else 0, query)

    def plans(self, query: MessageQuery) -> list[str]:
        """The plans of the list's two statements, with the planner told to avoid table
        scans and sorts wherever an index allows (what a big table gets anyway)."""
        statements, params = self._list_statements(query)
        plans = []
        with self.datastore.transaction(commit=False) as curs:
            for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
                curs.execute(SQL("SET LOCAL {} = off").format(Identifier(setting)))
            for statement in statements:
                curs.execute(SQL("EXPLAIN ") + statement, params)
                plans.append("\n".join(str(next(iter(r.values()))) for r in curs.fetchall()))
        return plans

    def _list_statements(
        self, query: MessageQuery
    ) -> tuple[tuple[Composed, Composed], dict[str, Any]]:
        filters = query_filters(query)
        ranges = query_ranges(query)
        params: dict[str, Any] = {
            **filters,
            **ranges,
            "limit": query.per_page,
            "offset": (query.page - 1) * query.per_page,
            "count_limit": (query.count_limit or 0) + 1,
        }
        # The page's ids first, then their rows (a "deferred join"): the ids come from an
        # index-only scan of the filter's index, so a deep page skips its offset over the
        # index alone instead of fetching every skipped row from the table (page 2,000 of
        # 50 rows: 0.7 s before, a few tens of ms after, with a million messages).
        rows = (
            SQL("SELECT t.* FROM (SELECT id, created_at FROM {table}").format(table=self.table)
            + _where(filters, ranges)
            + SQL(
                " ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s) AS page"
                " JOIN {table} AS t ON t.id = page.id"
                " ORDER BY page.created_at DESC, page.id DESC"
            ).format(table=self.table)
        )
        counted = counted_filters(query)
        if counted is not None:
            # The exact counters, kept with the rows: a sum over a few of them.
            total = SQL("SELECT coalesce(sum(n), 0) AS n FROM {counts}").format(
                counts=self.counts
            ) + _where(counted)
        else:
            # A recipient's messages: counted over the recipient index, which holds few
            # rows per number. A driver or a time range can match many: counted up to
            # the query's limit when it has one.
            total = SQL("SELECT count(*) AS n FROM {table}").format(table=self.table) + _where(
                filters, ranges
            )
            if query.count_limit is not None:
                total = (
                    SQL("SELECT count(*) AS n FROM (SELECT 1 FROM {table}").format(table=self.table)
                    + _where(filters, ranges)
                    + SQL(" LIMIT %(count_limit)s) AS bounded")
                )
        return (rows, total), params

    def counters(self) -> dict[tuple[str, ...], int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {counts} WHERE n <> 0").format(counts=self.counts))
            return {tuple(r[c] for c in COUNTED): int(r["n"]) for r in curs.fetchall()}

    def hourly(self, since: int) -> dict[HourKey, int]:
        with self.datastore.transaction(commit=False) as curs:
            return hourly_sql.pg_read(curs, self.hourly_table, since)

    def all_rows(self) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {table} ORDER BY id").format(table=self.table))
            return [row_from_record(r) for r in curs.fetchall()]

    def conversations(self, query: ConversationQuery) -> ConversationPage:
        filters = conversation_filters(query)
        params: dict[str, Any] = {
            **filters,
            "limit": query.per_page,
            "offset": (query.page - 1) * query.per_page,
        }
        table = self.conversations_table
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {}").format(table)
                + _where(filters)
                + SQL(" ORDER BY last_message_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"),
                params,
            )
            rows = [conversation_from_record(r) for r in curs.fetchall()]
            curs.execute(
                SQL("SELECT count(*) AS n FROM {}").format(table) + _where(filters), params
            )
            total = curs.fetchone()
        return ConversationPage(rows=rows, total=int(total["n"]) if total else 0)

    def conversation(self, conversation_id: UUID) -> ConversationRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {} WHERE id = %s").format(self.conversations_table),
                (conversation_id,),
            )
            record = curs.fetchone()
        return None if record is None else conversation_from_record(record)

    def thread(self, conversation_id: UUID, page: int, per_page: int) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT * FROM {} WHERE conversation_id = %s "
                    "ORDER BY created_at, id LIMIT %s OFFSET %s"
                ).format(self.table),
                (conversation_id, per_page, (page - 1) * per_page),
            )
            return [row_from_record(r) for r in curs.fetchall()]

    def all_conversations(self) -> list[ConversationRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {} ORDER BY id").format(self.conversations_table))
            return [conversation_from_record(r) for r in curs.fetchall()]


def _all_indexes() -> dict[str, str]:
    return {**INDEXES, DUE_INDEX: DUE_INDEX_COLUMNS}


def _index(name: str, columns: str, table: Identifier) -> Composed:
    return SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (" + columns + ")").format(
        name=Identifier(name), table=table
    )


def _arrays(columns: Sequence[str]) -> Composable:
    return SQL(", ").join(SQL("%b::" + TYPES[c] + "[]") for c in columns)


def _where(filters: dict[str, str], ranges: Mapping[str, datetime] | None = None) -> Composed:
    conditions = [SQL("{} = {}").format(Identifier(c), Placeholder(c)) for c in filters]
    conditions.extend(
        SQL("created_at " + RANGE_OPERATORS[bound] + " {}").format(Placeholder(bound))
        for bound in ranges or {}
    )
    if not conditions:
        return Composed([])
    return SQL(" WHERE ") + SQL(" AND ").join(conditions)


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_GETTERS: dict[str, Callable[[MessageRow], Any]] = {
    "recipient": lambda row: row.to,
    "template": lambda row: _jsonb(row.template),
    "meta": lambda row: _jsonb(row.meta),
    "media": lambda row: _jsonb(row.media),
}


def _columns(rows: Sequence[MessageRow], columns: Sequence[str]) -> list[list[Any]]:
    """The rows' values column by column: one array parameter each."""
    arrays = []
    for column in columns:
        getter = _GETTERS.get(column)
        if getter is None:
            arrays.append([getattr(row, column) for row in rows])
        else:
            arrays.append([getter(row) for row in rows])
    return arrays


def _copy_values(row: MessageRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.channel,
        row.to,
        row.sender,
        row.driver,
        row.status,
        row.body,
        row.template,
        row.provider_message_id,
        row.attempts,
        row.error_code,
        row.error_message,
        row.idempotency_key,
        row.meta,
        row.created_at,
        row.updated_at,
        row.version,
        row.next_attempt_at,
        row.direction,
        row.conversation_id,
        row.media,
        row.reply_to,
        row.category,
        row.scheduled_at,
    )


def _check_found(curs: Cursor[DictRow], expected: int) -> None:
    if curs.rowcount != expected:
        raise ProjectionOutOfSequence(
            f"{expected - curs.rowcount} message(s) changed by events have no row"
        )
