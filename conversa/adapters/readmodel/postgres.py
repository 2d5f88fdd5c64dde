"""``conversa_messages`` on PostgreSQL, written with its tracking position in one transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier, Placeholder
from psycopg.types.json import Jsonb

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

TRACKING_TABLE = "conversa_messages_tracking"

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id uuid PRIMARY KEY,
    channel text NOT NULL,
    recipient text NOT NULL,
    sender text,
    driver text NOT NULL,
    status text NOT NULL,
    body text,
    template jsonb,
    provider_message_id text,
    attempts integer NOT NULL,
    error_code text,
    error_message text,
    idempotency_key text,
    meta jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version integer NOT NULL,
    next_attempt_at timestamptz
)
"""
# Tables made by an earlier version lack the columns added since.
UPGRADES = ("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz",)


class PostgresMessagesView(PostgresTrackingRecorder, MessagesView):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        kwargs.setdefault("tracking_table_name", TRACKING_TABLE)
        super().__init__(datastore, **kwargs)
        self.table = Identifier(self.datastore.schema, TABLE)
        self.sql_create_statements.append(SQL(CREATE_TABLE).format(table=self.table))
        for upgrade in UPGRADES:
            self.sql_create_statements.append(SQL(upgrade).format(table=self.table))
        for name, columns in {**INDEXES, DUE_INDEX: DUE_INDEX_COLUMNS}.items():
            self.sql_create_statements.append(
                SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (" + columns + ")").format(
                    name=Identifier(name), table=self.table
                )
            )
        updates = SQL(", ").join(
            SQL("{0} = EXCLUDED.{0}").format(Identifier(c)) for c in COLUMNS if c != "id"
        )
        self.upsert = SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) "
            "ON CONFLICT (id) DO UPDATE SET {updates}"
        ).format(
            table=self.table,
            columns=SQL(", ").join(map(Identifier, COLUMNS)),
            values=SQL(", ").join(map(Placeholder, COLUMNS)),
            updates=updates,
        )

    def load(self, ids: Collection[UUID]) -> dict[UUID, MessageRow]:
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {table} WHERE id = ANY(%s)").format(table=self.table),
                (list(ids),),
            )
            return {r.id: r for r in map(row_from_record, curs.fetchall())}

    def store(
        self, rows: Sequence[MessageRow], tracking: Tracking, removed: Collection[UUID] = ()
    ) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            if rows:
                curs.executemany(self.upsert, [_adapt(row) for row in rows])
            if removed:
                curs.execute(
                    SQL("DELETE FROM {table} WHERE id = ANY(%s)").format(table=self.table),
                    (list(removed),),
                )

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

    def reset(self, application_name: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {tracking} WHERE application_name = %s").format(
                    tracking=Identifier(self.datastore.schema, self.tracking_table_name)
                ),
                (application_name,),
            )
            curs.execute(SQL("TRUNCATE {table}").format(table=self.table))

    def get(self, message_id: UUID) -> MessageRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {table} WHERE id = %s").format(table=self.table), (message_id,)
            )
            record = curs.fetchone()
        return None if record is None else row_from_record(record)

    def query(self, query: MessageQuery) -> MessagePage:
        filters = query_filters(query)
        where: Composed | SQL = SQL("")
        if filters:
            where = SQL(" WHERE ") + SQL(" AND ").join(
                SQL("{} = {}").format(Identifier(c), Placeholder(c)) for c in filters
            )
        params: dict[str, Any] = {
            **filters,
            "limit": query.per_page,
            "offset": (query.page - 1) * query.per_page,
        }
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {table}").format(table=self.table)
                + where
                + SQL(" ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"),
                params,
            )
            rows = [row_from_record(r) for r in curs.fetchall()]
            curs.execute(
                SQL("SELECT count(*) AS n FROM {table}").format(table=self.table) + where, params
            )
            total = curs.fetchone()
        return MessagePage(rows=rows, total=int(total["n"]) if total else 0)

    def all_rows(self) -> list[MessageRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {table} ORDER BY id").format(table=self.table))
            return [row_from_record(r) for r in curs.fetchall()]


def _adapt(row: MessageRow) -> dict[str, Any]:
    params = row_params(row)
    params["meta"] = Jsonb(params["meta"])
    params["template"] = None if params["template"] is None else Jsonb(params["template"])
    return params
