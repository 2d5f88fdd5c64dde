"""The event store's PostgreSQL infrastructure, as Conversa needs it.

eventsourcing's ``PostgresFactory`` builds its connection pool from a handful of
``POSTGRES_*`` keys (host, port, user, password, database) and drops everything else a
libpq URL can say. This factory, chosen through ``PERSISTENCE_MODULE``, keeps the
library's recorders and settings and changes three things:

- every connection is made from the whole libpq connection string (``POSTGRES_CONNINFO``,
  Conversa's own key), so ``sslmode``, ``host=/socket/dir``, ``application_name``... apply;
- an operation gives up after ``POSTGRES_UNAVAILABLE_AFTER`` seconds of failing to reach
  the database, with :class:`~conversa.app.outage.DatabaseUnavailable`, instead of the
  library's ten retries of a ten-second pool wait (about 100 s);
- the pool tries to reconnect at least every second during an outage (psycopg_pool
  doubles its wait each time, up to minutes), so that it is back soon after the database;
- its events are inserted in one round trip per transaction (:mod:`.postgres_recorder`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from time import monotonic
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from eventsourcing.postgres import ConnectionPool, PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool.base import AttemptWithBackoff

from conversa.adapters.postgres_recorder import OneTripApplicationRecorder
from conversa.app.outage import DatabaseUnavailable

#: Conversa's keys in the event store's environment.
CONNINFO_KEY = "POSTGRES_CONNINFO"
UNAVAILABLE_AFTER_KEY = "POSTGRES_UNAVAILABLE_AFTER"
DEFAULT_UNAVAILABLE_AFTER = 5.0

#: Failures of one operation are at most the library's retry wait (0.2 s) apart; a failure
#: older than this belongs to an earlier operation and does not count against this one.
_STREAK_GAP = 1.0


class ConversaPostgresFactory(PostgresFactory):
    """``PostgresFactory`` whose datastore is an :class:`OutageAwareDatastore`, and whose
    application recorder inserts events as columns, in one round trip
    (:mod:`.postgres_insert`, :mod:`.postgres_recorder`)."""

    application_recorder_class = OneTripApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        # The library reads and checks its own keys and builds a datastore whose pool is
        # not opened yet (no connection made); ours takes over its settings.
        super().__init__(env)
        conninfo = self.env.get(CONNINFO_KEY)
        if not conninfo:
            msg = f"Postgres connection string not found in environment with key {CONNINFO_KEY!r}"
            raise OSError(msg)
        unavailable_after = float(self.env.get(UNAVAILABLE_AFTER_KEY) or DEFAULT_UNAVAILABLE_AFTER)
        library_datastore = self.datastore
        self.datastore = OutageAwareDatastore.replacing(
            library_datastore, conninfo=conninfo, unavailable_after=unavailable_after
        )
        library_datastore.close()


class OutageAwareDatastore(PostgresDatastore):
    """A datastore connecting with a full libpq connection string, and bounding how long
    one operation keeps trying to reach the database."""

    def __init__(self, *, conninfo: str, unavailable_after: float, **kwargs: Any) -> None:
        super().__init__(dbname="", host="", port="", user="", password="", **kwargs)
        self.unavailable_after = unavailable_after
        self._streaks = _FailureStreaks(unavailable_after)
        self._suspect = threading.Event()
        self._purging = threading.Lock()
        library_pool = self.pool
        self.pool = PromptPool(
            conninfo,
            streaks=self._streaks,
            connection_class=Connection[DictRow],
            kwargs={"row_factory": dict_row},
            min_size=library_pool.min_size,
            max_size=library_pool.max_size,
            open=False,
            configure=self.after_connect_func(),
            timeout=library_pool.timeout,
            max_waiting=library_pool.max_waiting,
            max_lifetime=library_pool.max_lifetime,
            check=ConnectionPool.check_connection if self.pre_ping else None,
        )
        library_pool.close()

    @classmethod
    def replacing(
        cls, datastore: PostgresDatastore, *, conninfo: str, unavailable_after: float
    ) -> OutageAwareDatastore:
        """This datastore with ``datastore``'s settings (as the library read them)."""
        pool = datastore.pool
        return cls(
            conninfo=conninfo,
            unavailable_after=unavailable_after,
            # The pool waits for a connection no longer than an operation may take.
            connect_timeout=min(pool.timeout, math.ceil(unavailable_after)),
            idle_in_transaction_session_timeout=datastore.idle_in_transaction_session_timeout,
            pool_size=pool.min_size,
            max_overflow=pool.max_size - pool.min_size,
            max_waiting=pool.max_waiting,
            conn_max_age=pool.max_lifetime,
            pre_ping=datastore.pre_ping,
            lock_timeout=datastore.lock_timeout,
            schema=datastore.schema,
            pool_open_timeout=datastore.pool_open_timeout,
            single_row_tracking=datastore.single_row_tracking,
            originator_id_type="text" if datastore.originator_id_type == "text" else "uuid",
            enable_db_functions=datastore.enable_db_functions,
        )

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[Connection[DictRow]]:
        started = monotonic()
        self._streaks.raise_if_exhausted(started)
        self._purge_broken_connections()
        try:
            with super().get_connection() as conn:
                yield conn
        except (OperationalError, InterfaceError) as error:
            self._suspect.set()
            if self._streaks.failed(started, monotonic()):
                raise DatabaseUnavailable(
                    f"the database did not answer within {self.unavailable_after:g} s "
                    f"({_first_line(error)})"
                ) from error
            raise
        except PersistenceError:
            self._streaks.answered()  # a conflict or a bad query: the database answered
            raise
        else:
            self._streaks.answered()

    def _purge_broken_connections(self) -> None:
        """After a connection failed, test the idle ones at once: after a restart they are
        all broken, and the pool would otherwise find that out one per second."""
        if not self._suspect.is_set() or not self._purging.acquire(blocking=False):
            return
        try:
            self._suspect.clear()
            with contextlib.suppress(Exception):
                self.pool.check()
        finally:
            self._purging.release()


class _FailureStreaks(threading.local):
    """Per thread: since when the current operation has been failing to reach the
    database. The library retries each call up to ten times; this ends the retries once
    they have taken ``limit`` seconds."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None
        self.last = 0.0

    def remaining(self, now: float) -> float:
        if self.since is None or now - self.last > _STREAK_GAP:
            return self.limit
        return self.limit - (now - self.since)

    def raise_if_exhausted(self, now: float) -> None:
        if self.remaining(now) <= 0:
            self.answered()
            raise DatabaseUnavailable(f"the database did not answer within {self.limit:g} s")

    def failed(self, started: float, now: float) -> bool:
        """Count a failed attempt; True when the operation should give up."""
        if self.since is None or started - self.last > _STREAK_GAP:
            self.since = started
        self.last = now
        if now - self.since >= self.limit:
            self.answered()
            return True
        return False

    def answered(self) -> None:
        self.since = None


class PromptPool(ConnectionPool[Any]):
    """The library's pool, with two differences: a caller waits for a connection only as
    long as its operation has left, and reconnection attempts during an outage are at
    most a second apart."""

    def __init__(self, conninfo: str, *, streaks: _FailureStreaks, **kwargs: Any) -> None:
        super().__init__(conninfo, **kwargs)
        self._streaks = streaks

    def getconn(self, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = min(self.timeout, max(self._streaks.remaining(monotonic()), 0.01))
        return super().getconn(timeout)

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        # psycopg_pool's private hook (as eventsourcing's pool overrides ``_connect``): the
        # attempt object carries the backoff from one reconnection try to the next.
        super()._add_connection(attempt or _PromptBackoff(timeout=self.reconnect_timeout), growing)


class _PromptBackoff(AttemptWithBackoff):
    INITIAL_DELAY = 0.5
    MAX_DELAY = 1.0

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
