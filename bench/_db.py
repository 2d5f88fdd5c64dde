"""Scratch PostgreSQL databases and settings for the benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from conversa.app.settings import Settings

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVER_URL_VARIABLE = "CONVERSA_TEST_DATABASE_URL"
DATABASE_PREFIX = "conversa_bench_"


def server_url() -> str:
    """The server to create scratch databases on (``CONVERSA_TEST_DATABASE_URL``)."""
    return os.environ.get(SERVER_URL_VARIABLE) or DEFAULT_SERVER_URL


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _libpq_url(url: str) -> str:
    """``url`` without the ``schema`` parameter, which only Conversa understands."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """Create an empty database ``conversa_bench_<hex>``, yield its URL, then drop it.

    The database is dropped ``WITH (FORCE)``, so connections a benchmark left open (a
    pool not yet closed) do not keep it alive.
    """
    base = server_url()
    name = DATABASE_PREFIX + secrets.token_hex(6)
    _admin(base, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(base, name)
    finally:
        _admin(
            base, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _admin(base: str, statement: sql.Composed) -> None:
    # A connection per statement: a long benchmark must not depend on an idle one surviving.
    with psycopg.connect(_libpq_url(base), autocommit=True, connect_timeout=10) as admin:
        admin.execute(statement)


def bench_settings(database_url: str, *, store_body: bool | None = None) -> Settings:
    """Settings for ``database_url`` with the ``log`` driver on both channels.

    ``store_body`` left as None keeps ``CONVERSA_STORE_BODY`` at its default. Only the
    given mapping is read: neither the process environment nor a ``.env`` file.
    """
    environ = {
        "CONVERSA_DATABASE_URL": database_url,
        "CONVERSA_SMS_DRIVER": "log",
        "CONVERSA_WHATSAPP_DRIVER": "log",
    }
    if store_body is not None:
        environ["CONVERSA_STORE_BODY"] = "true" if store_body else "false"
    return Settings.from_environ(environ)
