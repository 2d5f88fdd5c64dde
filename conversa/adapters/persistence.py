"""The storage backends: PostgreSQL in production, SQLite as the embedded default."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import select
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import psycopg
from eventsourcing.persistence import OperationalError, PersistenceError, ProgrammingError
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import get_topic
from psycopg import sql

from conversa.adapters.payloads import PostgresPayloadStore, SQLitePayloadStore
from conversa.adapters.postgres_store import (
    CONNINFO_KEY,
    UNAVAILABLE_AFTER_KEY,
    ConversaPostgresFactory,
)
from conversa.adapters.postgres_url import InvalidDatabaseUrl, PostgresConnection
from conversa.adapters.readmodel.postgres import PostgresMessagesView
from conversa.adapters.readmodel.sqlite import SQLiteMessagesView
from conversa.adapters.sqlite_store import ConversaSQLiteFactory
from conversa.adapters.subscriber_store import PostgresSubscriberStore, SQLiteSubscriberStore
from conversa.app.application import ConversaApp
from conversa.app.outage import DatabaseUnavailable
from conversa.app.ports import StorageBackend
from conversa.app.settings import DEFAULT_DB_TIMEOUT, SettingsError


class _Table(Protocol):
    def create_table(self) -> None: ...


TableT = TypeVar("TableT", bound=_Table)


def _attached(app: ConversaApp, make: Callable[[Any], TableT]) -> TableT:
    """A store on the application's own datastore (one pool per process), with its tables
    created when the application was built to create tables (``conversa migrate``)."""
    factory = cast(PostgresFactory | SQLiteFactory, app.factory)
    store = make(factory.datastore)
    if factory.env_create_table():
        store.create_table()
    return store


def backend_from_url(url: str, *, db_timeout: float = DEFAULT_DB_TIMEOUT) -> StorageBackend:
    """The backend ``url`` names. ``db_timeout`` (seconds): how long one operation keeps
    trying to reach PostgreSQL before it fails with ``DatabaseUnavailable``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, db_timeout=db_timeout)
    if url.startswith("sqlite:///"):
        return SQLiteBackend(Path(url.removeprefix("sqlite:///")))
    msg = f"unsupported database URL scheme: {url.split(':', 1)[0]}"
    raise ValueError(msg)


class PostgresBackend:
    kind = "postgresql"

    def __init__(self, url: str, *, db_timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        try:
            self.connection = PostgresConnection.from_url(url, connect_timeout=db_timeout)
        except InvalidDatabaseUrl as error:
            raise SettingsError(f"CONVERSA_DATABASE_URL: {error}") from None
        self.schema = self.connection.schema
        self.db_timeout = db_timeout

    def conninfo(self, **overrides: str) -> str:
        """The libpq connection string of every connection Conversa makes: the event
        store's pool, locks, LISTEN, ``migrate`` and the health probe."""
        return self.connection.conninfo(**overrides)

    def application_env(self, *, create_tables: bool) -> dict[str, str]:
        params = self.connection.params
        return {
            "PERSISTENCE_MODULE": get_topic(ConversaPostgresFactory),
            "CREATE_TABLE": "y" if create_tables else "n",
            # Every connection of the pool is made from the whole connection string, so
            # that every parameter of the URL applies (TLS, sockets, application_name...).
            CONNINFO_KEY: self.conninfo(),
            UNAVAILABLE_AFTER_KEY: str(self.db_timeout),
            # The library's factory insists on these; the connections do not use them.
            "POSTGRES_DBNAME": params.get("dbname", ""),
            "POSTGRES_HOST": params.get("host", ""),
            "POSTGRES_USER": params.get("user", ""),
            "POSTGRES_PASSWORD": "",
            "POSTGRES_SCHEMA": self.schema,
            # Inserts take an EXCLUSIVE table lock so that commit order equals notification
            # order (what followers rely on); never wait for it forever.
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "10",
            # How long a caller waits for a pooled connection (whole seconds, the library's
            # unit); no longer than an operation may take in all.
            "POSTGRES_CONNECT_TIMEOUT": str(math.ceil(self.db_timeout)),
            # No round trip to test each connection taken from the pool: a broken one fails
            # its statement, which the event store retries on another connection, and the
            # datastore then tests the idle ones at once (OutageAwareDatastore).
            "POSTGRES_PRE_PING": "n",
            # The function-based insert path skips the table lock and can hide events from
            # followers under concurrent writes; keep it off.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }

    def prepare(self) -> None:
        with _translated_errors(), psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    def tables(self) -> set[str]:
        with _translated_errors(), psycopg.connect(self.conninfo(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.schema,),
            ).fetchall()
        return {row[0] for row in rows}

    def messages_view(self, app: ConversaApp) -> PostgresMessagesView:
        return _attached(app, PostgresMessagesView)

    def payload_store(self, app: ConversaApp) -> PostgresPayloadStore:
        return _attached(app, PostgresPayloadStore)

    def subscriber_store(self, app: ConversaApp) -> PostgresSubscriberStore:
        return _attached(app, PostgresSubscriberStore)

    def projection_lock(self) -> contextlib.AbstractContextManager[AdvisoryLock]:
        return self.lock("projection")

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[AdvisoryLock]:
        # A session-level advisory lock lives as long as this connection: if the process
        # dies, PostgreSQL releases it and a standby takes over. The same happens when the
        # connection alone is lost, so the holder keeps asking (AdvisoryLock.held).
        with (
            _translated_errors(),
            psycopg.connect(self.conninfo(), autocommit=True, **LOCK_KEEPALIVES) as conn,
        ):
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                (f"conversa:{self.schema}", name),
            ).fetchone()
            yield AdvisoryLock(conn, acquired=bool(row and row[0]))

    def event_signal(self) -> PostgresEventSignal:
        with _translated_errors():
            return PostgresEventSignal(self.conninfo(), channel=f"{ConversaApp.name}_events")

    def health_probe(self) -> PostgresHealthProbe:
        return PostgresHealthProbe(self)


#: The lock connection is idle for hours; without keepalives a peer that vanished (a
#: failover, a network cut) would only be noticed when the kernel gives up, many minutes
#: later. With these, a check of a dead connection fails within about 30 s.
LOCK_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


class AdvisoryLock:
    """A session-level advisory lock, held while its connection lives."""

    def __init__(self, conn: psycopg.Connection[Any], *, acquired: bool) -> None:
        self._conn = conn
        self.acquired = acquired

    def __bool__(self) -> bool:
        return self.acquired

    def held(self) -> bool:
        """One round trip on the lock's own connection: a session that answers still holds
        its session-level locks; one that does not has lost them."""
        if not self.acquired:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.acquired = False
        return self.acquired


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    """Raise the event store's own OperationalError for connection trouble, as the
    library does, so that the application handles one kind of outage."""
    try:
        yield
    except psycopg.OperationalError as error:
        raise OperationalError(str(error)) from error


class PostgresEventSignal:
    """LISTEN on the channel the event store NOTIFYs on every insert."""

    def __init__(self, conninfo: str, *, channel: str) -> None:
        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout: float) -> bool:
        """Return once notified (true) or after ``timeout`` seconds (false)."""
        notified = False
        with _translated_errors():
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                notified = True
            # Drain whatever else arrived meanwhile: one wake-up covers them all.
            for _ in self._conn.notifies(timeout=0.001):
                notified = True
        return notified

    def close(self) -> None:
        self._conn.close()


class PostgresHealthProbe:
    """Whether the event store answers, over one connection of its own: the readiness
    check neither waits for nor takes a connection of the pool that requests use."""

    #: libpq's minimum connect timeout; the caller bounds the whole check more tightly.
    CONNECT_TIMEOUT = "2"
    #: Give up on a connection whose packets go unanswered (a host that went away).
    TCP_USER_TIMEOUT_MS = "2000"

    def __init__(self, backend: PostgresBackend) -> None:
        overrides = {
            "connect_timeout": self.CONNECT_TIMEOUT,
            "tcp_user_timeout": self.TCP_USER_TIMEOUT_MS,
            "application_name": f"{backend.connection.params['application_name']} health",
        }
        self._conninfo = backend.conninfo(**overrides)
        self._query = sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
            sql.Identifier(backend.schema), sql.Identifier(f"{ConversaApp.name}_events")
        )
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def check(self) -> None:
        """Return when the database answers; raise ``DatabaseUnavailable`` when it cannot
        be reached, another ``PersistenceError`` when it answers with an error."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute("SET statement_timeout = 2000")
            self._conn.execute(self._query)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self.close()
            raise DatabaseUnavailable(str(error).strip().splitlines()[0]) from error
        except psycopg.Error as error:
            self.close()
            raise PersistenceError(str(error).strip().splitlines()[0]) from error

    def interrupted(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return True
        return bool(readable)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class SQLiteBackend:
    kind = "sqlite"

    #: How often a follower looks for new events; SQLite cannot notify other processes.
    POLL_INTERVAL = 0.05

    def __init__(self, path: Path) -> None:
        self.path = path

    def application_env(self, *, create_tables: bool) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": get_topic(ConversaSQLiteFactory),
            "CREATE_TABLE": "y" if create_tables else "n",
            "SQLITE_DBNAME": str(self.path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def tables(self) -> set[str]:
        if not self.path.exists():
            return set()
        # Read-only: listing never creates the file.
        with contextlib.closing(
            sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        return {row[0] for row in rows}

    def messages_view(self, app: ConversaApp) -> SQLiteMessagesView:
        return _attached(app, SQLiteMessagesView)

    def payload_store(self, app: ConversaApp) -> SQLitePayloadStore:
        return _attached(app, SQLitePayloadStore)

    def subscriber_store(self, app: ConversaApp) -> SQLiteSubscriberStore:
        return _attached(app, SQLiteSubscriberStore)

    def projection_lock(self) -> contextlib.AbstractContextManager[FileLock]:
        return self.lock("projection")

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[FileLock]:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        lock_path = self.path.with_name(f"{self.path.name}.{safe}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield FileLock(acquired=False)
                return
            yield FileLock(acquired=True)
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def event_signal(self) -> PollingSignal:
        return PollingSignal(self.POLL_INTERVAL)

    def health_probe(self) -> SQLiteHealthProbe:
        return SQLiteHealthProbe(self.path)


class SQLiteHealthProbe:
    """Whether the event store's file answers a read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self) -> None:
        if not self.path.exists():
            raise ProgrammingError(f"no such table: stored_events ({self.path} does not exist)")
        try:
            # Read-only: a check must not create a missing file.
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as conn:
                conn.execute("SELECT 1 FROM stored_events LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise DatabaseUnavailable(str(error)) from error

    def interrupted(self) -> bool:
        return False

    def close(self) -> None:
        pass


class FileLock:
    """An flock on a file beside the database: held until this process closes it or dies;
    nothing else can take it away."""

    def __init__(self, *, acquired: bool) -> None:
        self.acquired = acquired

    def __bool__(self) -> bool:
        return self.acquired

    def held(self) -> bool:
        return self.acquired


class PollingSignal:
    def __init__(self, interval: float) -> None:
        self.interval = interval

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, self.interval))

    def close(self) -> None:
        pass
