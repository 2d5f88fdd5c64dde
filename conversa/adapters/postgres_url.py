"""``CONVERSA_DATABASE_URL`` for PostgreSQL: a libpq connection URI, read by libpq itself.

Every libpq parameter of the URL (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``,
``host=/socket/dir``, ``application_name``, ``connect_timeout``, ``target_session_attrs``,
``options``...) reaches every connection Conversa opens, with libpq's own meaning: an empty
host is the default Unix socket, a missing user is the operating-system user, ``PG*``
environment variables fill in what the URL leaves out. The one parameter of Conversa's
own, ``schema``, is taken out before libpq sees the URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: Conversa's own query parameter: the PostgreSQL schema of its tables.
SCHEMA_PARAMETER = "schema"
DEFAULT_SCHEMA = "public"
#: Shown in ``pg_stat_activity`` unless the URL names the application itself.
DEFAULT_APPLICATION_NAME = "conversa"
#: libpq waits at least this long for a connection, whatever ``connect_timeout`` says.
LIBPQ_MIN_CONNECT_TIMEOUT = 2


class InvalidDatabaseUrl(ValueError):
    """The URL is not one libpq accepts; the message never repeats the URL (it may hold
    a password)."""


@dataclass(frozen=True, slots=True)
class PostgresConnection:
    """What a PostgreSQL URL asks for: libpq parameters, and Conversa's schema."""

    params: Mapping[str, str] = field(repr=False)  # holds the password: never shown
    schema: str = DEFAULT_SCHEMA

    @classmethod
    def from_url(cls, url: str, *, connect_timeout: float | None = None) -> PostgresConnection:
        """Read ``url``. ``connect_timeout`` (seconds) applies unless the URL sets its own,
        and Conversa names itself in ``application_name`` unless the URL does."""
        # Taken apart by hand, not re-encoded: libpq decodes the rest itself.
        base, _, query = url.partition("?")
        kept: list[str] = []
        schema = DEFAULT_SCHEMA
        for item in query.split("&") if query else []:
            name, _, value = item.partition("=")
            if unquote(name) == SCHEMA_PARAMETER:
                schema = unquote(value) or DEFAULT_SCHEMA
            else:
                kept.append(item)
        libpq_url = f"{base}?{'&'.join(kept)}" if kept else base
        try:
            parsed = conninfo_to_dict(libpq_url)
        except psycopg.Error as error:
            # libpq's message names the parameter and never the password.
            raise InvalidDatabaseUrl(str(error).strip()) from None
        params = {k: str(v) for k, v in parsed.items() if v is not None}
        params.setdefault("application_name", DEFAULT_APPLICATION_NAME)
        if connect_timeout is not None:
            seconds = max(LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(connect_timeout))
            params.setdefault("connect_timeout", str(seconds))
        return cls(params=MappingProxyType(params), schema=schema)

    def conninfo(self, **overrides: str) -> str:
        """The libpq connection string, with ``overrides`` on top."""
        return make_conninfo(**{**self.params, **overrides})

    def describe(self) -> str:
        """Where the database is, without credentials: for logs and ``diagnose``."""
        host = self.params.get("host") or self.params.get("hostaddr") or "(default socket)"
        port = self.params.get("port", "")
        dbname = self.params.get("dbname", "")
        return f"{host}{':' + port if port else ''}/{dbname} schema {self.schema}"
