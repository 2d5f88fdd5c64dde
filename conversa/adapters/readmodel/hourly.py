"""``conversa_messages_hourly``: the hourly counters of :mod:`conversa.app.hourly`, on
PostgreSQL and SQLite.

Written by the projection in the transaction of the rows it counts (an upsert that adds),
replaced whole by a rebuild, and read over its primary key, which starts with the hour:
the overview's last 24 hours are a range of the index, however many messages there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from conversa.app.projection import HourKey

HOURLY_TABLE = "conversa_messages_hourly"
KEY_COLUMNS = ("hour", "kind", "channel", "driver", "detail")

# --- PostgreSQL ----------------------------------------------------------------------

PG_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} (hour integer NOT NULL, kind text NOT NULL, "
    "channel text NOT NULL, driver text NOT NULL, detail text NOT NULL, n bigint NOT NULL, "
    "PRIMARY KEY (hour, kind, channel, driver, detail))"
)
PG_ADD = (
    "INSERT INTO {table} (hour, kind, channel, driver, detail, n) "
    "SELECT * FROM unnest(%s::integer[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::bigint[]) ON CONFLICT (hour, kind, channel, driver, detail) "
    "DO UPDATE SET n = {table}.n + EXCLUDED.n"
)


def pg_table(schema: str) -> Identifier:
    return Identifier(schema, HOURLY_TABLE) if schema else Identifier(HOURLY_TABLE)


def pg_create(table: Identifier) -> Any:
    return SQL(PG_CREATE).format(table=table)


def pg_add(curs: Cursor[Any], table: Identifier, changes: Mapping[HourKey, int]) -> None:
    if not changes:
        return
    # In key order: concurrent writers then take the rows' locks in one order.
    keys = sorted(changes)
    curs.execute(
        SQL(PG_ADD).format(table=table),
        [*([key[i] for key in keys] for i in range(len(KEY_COLUMNS))), [changes[k] for k in keys]],
    )


def pg_replace(curs: Cursor[Any], table: Identifier, counts: Mapping[HourKey, int] | None) -> None:
    curs.execute(SQL("DELETE FROM {}").format(table))
    pg_add(curs, table, {k: n for k, n in (counts or {}).items() if n})


def pg_read(curs: Cursor[Any], table: Identifier, since: int) -> dict[HourKey, int]:
    curs.execute(
        SQL(
            "SELECT hour, kind, channel, driver, detail, n FROM {} WHERE hour >= %s AND n <> 0"
        ).format(table),
        (since,),
    )
    return {_key(r): int(_get(r, "n", 5)) for r in curs.fetchall()}


# --- SQLite --------------------------------------------------------------------------

SQLITE_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {HOURLY_TABLE} (hour INTEGER NOT NULL, kind TEXT NOT NULL, "
    "channel TEXT NOT NULL, driver TEXT NOT NULL, detail TEXT NOT NULL, n INTEGER NOT NULL, "
    "PRIMARY KEY (hour, kind, channel, driver, detail))"
)
SQLITE_ADD = (
    f"INSERT INTO {HOURLY_TABLE} (hour, kind, channel, driver, detail, n) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hour, kind, channel, driver, detail) "
    "DO UPDATE SET n = n + excluded.n"
)


def sqlite_add(curs: Any, changes: Mapping[HourKey, int]) -> None:
    if changes:
        curs.executemany(SQLITE_ADD, [(*key, n) for key, n in sorted(changes.items())])


def sqlite_replace(curs: Any, counts: Mapping[HourKey, int] | None) -> None:
    curs.execute(f"DELETE FROM {HOURLY_TABLE}")
    sqlite_add(curs, {k: n for k, n in (counts or {}).items() if n})


def sqlite_read(curs: Any, since: int) -> dict[HourKey, int]:
    curs.execute(
        f"SELECT hour, kind, channel, driver, detail, n FROM {HOURLY_TABLE} "
        "WHERE hour >= ? AND n <> 0",
        (since,),
    )
    return {_key(r): int(_get(r, "n", 5)) for r in curs.fetchall()}


def _get(record: Any, name: str, index: int) -> Any:
    if isinstance(record, Mapping):
        return record[name]
    return record[index]


def _key(record: Any) -> HourKey:
    return (
        int(_get(record, "hour", 0)),
        str(_get(record, "kind", 1)),
        str(_get(record, "channel", 2)),
        str(_get(record, "driver", 3)),
        str(_get(record, "detail", 4)),
    )
