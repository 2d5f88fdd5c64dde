"""The short-lived content store used when ``CONVERSA_STORE_BODY`` is false.

The event store never sees the body or the template variables; they wait here, in a plain
table, for as long as the message may still be retried, and are deleted when it has an
outcome (or, at the latest, when its retry window has passed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from conversa.domain.content import Body, Content, Template

TABLE = "conversa_payloads"


def _encode(content: Content) -> dict[str, Any]:
    return content.as_dict()


def _decode(data: dict[str, Any]) -> Content:
    if "body" in data:
        return Body(data["body"])
    template = data["template"]
    return Template(template["name"], tuple(template["variables"]))


class PostgresPayloadStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.table = Identifier(datastore.schema, TABLE)

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {table} (message_id uuid PRIMARY KEY, "
                    "content jsonb NOT NULL, expires_at timestamptz NOT NULL)"
                ).format(table=self.table)
            )
            curs.execute(
                SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)").format(
                    index=Identifier("conversa_payloads_expiry_idx"), table=self.table
                )
            )

    def put(self, message_id: UUID, content: Content, expires_at: datetime) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {table} VALUES (%s, %s, %s) ON CONFLICT (message_id) DO NOTHING"
                ).format(table=self.table),
                (message_id, Jsonb(_encode(content)), expires_at),
            )

    def get(self, message_id: UUID) -> Content | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT content FROM {table} WHERE message_id = %s").format(table=self.table),
                (message_id,),
            )
            row = curs.fetchone()
        return None if row is None else _decode(row["content"])

    def delete(self, message_id: UUID) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {table} WHERE message_id = %s").format(table=self.table),
                (message_id,),
            )

    def purge_expired(self, now: datetime) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {table} WHERE expires_at <= %s").format(table=self.table), (now,)
            )
            return int(curs.rowcount)


class SQLitePayloadStore:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (message_id TEXT PRIMARY KEY, "
                "content TEXT NOT NULL, expires_at TEXT NOT NULL)"
            )
            curs.execute(
                f"CREATE INDEX IF NOT EXISTS conversa_payloads_expiry_idx ON {TABLE} (expires_at)"
            )

    def put(self, message_id: UUID, content: Content, expires_at: datetime) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {TABLE} VALUES (?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                (str(message_id), json.dumps(_encode(content)), _text(expires_at)),
            )

    def get(self, message_id: UUID) -> Content | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT content FROM {TABLE} WHERE message_id = ?", (str(message_id),))
            row = curs.fetchone()
        return None if row is None else _decode(json.loads(row[0]))

    def delete(self, message_id: UUID) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"DELETE FROM {TABLE} WHERE message_id = ?", (str(message_id),))

    def purge_expired(self, now: datetime) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"SELECT count(*) FROM {TABLE} WHERE expires_at <= ?", (_text(now),))
            count = int(curs.fetchone()[0])
            curs.execute(f"DELETE FROM {TABLE} WHERE expires_at <= ?", (_text(now),))
        return count


def _text(moment: datetime) -> str:
    # Fixed-width UTC timestamps compare correctly as text.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
