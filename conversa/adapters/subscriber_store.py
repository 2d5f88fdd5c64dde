"""Subscribers' positions in the lifecycle feed, and their dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from conversa.app.ports import DeadLetter

POSITIONS = "conversa_subscriber_positions"
DEAD_LETTERS = "conversa_dead_letters"


class PostgresSubscriberStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.positions = Identifier(datastore.schema, POSITIONS)
        self.letters = Identifier(datastore.schema, DEAD_LETTERS)

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} (subscriber text PRIMARY KEY, "
                    "position bigint NOT NULL)"
                ).format(self.positions)
            )
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} (id bigserial PRIMARY KEY, "
                    "subscriber text NOT NULL, event jsonb NOT NULL, error text NOT NULL, "
                    "attempts integer NOT NULL, created_at timestamptz NOT NULL)"
                ).format(self.letters)
            )

    def position(self, subscriber: str) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT position FROM {0} WHERE subscriber = %s").format(self.positions),
                (subscriber,),
            )
            row = curs.fetchone()
        return int(row["position"]) if row else 0

    def save_position(self, subscriber: str, position: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {0} VALUES (%s, %s) ON CONFLICT (subscriber) "
                    "DO UPDATE SET position = EXCLUDED.position"
                ).format(self.positions),
                (subscriber, position),
            )

    def start_at(self, subscriber: str, position: int) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("INSERT INTO {0} VALUES (%s, %s) ON CONFLICT (subscriber) DO NOTHING").format(
                    self.positions
                ),
                (subscriber, position),
            )
            curs.execute(
                SQL("SELECT position FROM {0} WHERE subscriber = %s").format(self.positions),
                (subscriber,),
            )
            row = curs.fetchone()
        assert row is not None
        return int(row["position"])

    def add_dead_letter(
        self, subscriber: str, event: dict[str, Any], error: str, attempts: int
    ) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {0} (subscriber, event, error, attempts, created_at) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id"
                ).format(self.letters),
                (subscriber, Jsonb(event), error, attempts, datetime.now(UTC)),
            )
            row = curs.fetchone()
        assert row is not None
        return int(row["id"])

    def dead_letters(self, subscriber: str | None = None) -> list[DeadLetter]:
        query = SQL("SELECT * FROM {0}").format(self.letters)
        params: tuple[str, ...] = ()
        if subscriber is not None:
            query += SQL(" WHERE subscriber = %s")
            params = (subscriber,)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query + SQL(" ORDER BY id"), params)
            return [
                DeadLetter(
                    id=r["id"],
                    subscriber=r["subscriber"],
                    event=r["event"],
                    error=r["error"],
                    attempts=r["attempts"],
                    created_at=r["created_at"],
                )
                for r in curs.fetchall()
            ]

    def remove_dead_letter(self, dead_letter_id: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {0} WHERE id = %s").format(self.letters), (dead_letter_id,)
            )


class SQLiteSubscriberStore:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITIONS} (subscriber TEXT PRIMARY KEY, "
                "position INTEGER NOT NULL)"
            )
            curs.execute(
                f"CREATE TABLE IF NOT EXISTS {DEAD_LETTERS} (id INTEGER PRIMARY KEY "
                "AUTOINCREMENT, subscriber TEXT NOT NULL, event TEXT NOT NULL, "
                "error TEXT NOT NULL, attempts INTEGER NOT NULL, created_at TEXT NOT NULL)"
            )

    def position(self, subscriber: str) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT position FROM {POSITIONS} WHERE subscriber = ?", (subscriber,))
            row = curs.fetchone()
        return int(row[0]) if row else 0

    def save_position(self, subscriber: str, position: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {POSITIONS} VALUES (?, ?) ON CONFLICT (subscriber) "
                "DO UPDATE SET position = excluded.position",
                (subscriber, position),
            )

    def start_at(self, subscriber: str, position: int) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {POSITIONS} VALUES (?, ?) ON CONFLICT (subscriber) DO NOTHING",
                (subscriber, position),
            )
            curs.execute(f"SELECT position FROM {POSITIONS} WHERE subscriber = ?", (subscriber,))
            row = curs.fetchone()
        return int(row[0])

    def add_dead_letter(
        self, subscriber: str, event: dict[str, Any], error: str, attempts: int
    ) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {DEAD_LETTERS} (subscriber, event, error, attempts, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (subscriber, json.dumps(event), error, attempts, datetime.now(UTC).isoformat()),
            )
            return int(curs.lastrowid)

    def dead_letters(self, subscriber: str | None = None) -> list[DeadLetter]:
        where, params = ("", ()) if subscriber is None else (" WHERE subscriber = ?", (subscriber,))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT * FROM {DEAD_LETTERS}{where} ORDER BY id", params)
            return [
                DeadLetter(
                    id=r["id"],
                    subscriber=r["subscriber"],
                    event=json.loads(r["event"]),
                    error=r["error"],
                    attempts=r["attempts"],
                    created_at=datetime.fromisoformat(r["created_at"]),
                )
                for r in curs.fetchall()
            ]

    def remove_dead_letter(self, dead_letter_id: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"DELETE FROM {DEAD_LETTERS} WHERE id = ?", (dead_letter_id,))
