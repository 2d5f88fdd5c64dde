"""Every parameter of CONVERSA_DATABASE_URL reaches every connection Conversa makes: the
event store's pool, the lock and LISTEN connections, and migrate's."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.outage import DATABASE_OUTAGE, DatabaseUnavailable
from tests.pgcluster import throwaway_cluster
from tests.support import conversa, make_settings

pytestmark = pytest.mark.postgres

SOCKET_DIR = "/var/run/postgresql"


def _with(url: str, query: str) -> str:
    return f"{url}&{query}" if "?" in url else f"{url}?{query}"


def test_sslmode_require_against_a_server_without_tls_fails_instead_of_going_plain(
    postgres_url: str,
) -> None:
    # The test server has no TLS: libpq must refuse rather than fall back to plain text.
    migrate(make_settings(postgres_url))
    required = _with(postgres_url, "sslmode=require")

    with pytest.raises(DatabaseUnavailable, match="SSL"):
        bootstrap(make_settings(required))
    with pytest.raises(DATABASE_OUTAGE, match="SSL"):
        migrate(make_settings(required))


def test_the_cli_says_the_database_is_unavailable_and_why(
    postgres_url: str, tmp_path: Path
) -> None:
    done = conversa("migrate", url=_with(postgres_url, "sslmode=require"), cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr.startswith("conversa: database unavailable: ")
    assert "SSL was required" in done.stderr
    assert "Traceback" not in done.stderr


def test_application_name_is_on_the_pool_the_lock_and_the_listen_connections(
    postgres_database: str, postgres_url: str
) -> None:
    name = f"conversa-test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(_with(postgres_url, f"application_name={name}"))
    migrate(settings)
    with (
        psycopg.connect(postgres_database, autocommit=True) as admin,
        bootstrap(settings) as service,
    ):
        result = service.send("sms", "+15551234567", {"body": "hi"})
        assert result.ok
        signal = service.backend.event_signal()
        try:
            with service.backend.lock("probe") as acquired:
                assert acquired
                rows = admin.execute(
                    "SELECT a.pid, a.query, l.locktype FROM pg_stat_activity a"
                    " LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory'"
                    " WHERE a.application_name = %s",
                    (name,),
                ).fetchall()
        finally:
            signal.close()

    assert any(locktype == "advisory" for _pid, _query, locktype in rows), rows
    assert any(query.startswith("LISTEN") for _pid, query, _locktype in rows), rows
    # And the event store's own pool: more connections than the lock and LISTEN ones.
    assert len({pid for pid, _query, _locktype in rows}) >= 3, rows


@pytest.mark.skipif(
    not Path(SOCKET_DIR).is_dir(), reason=f"no PostgreSQL socket directory {SOCKET_DIR}"
)
@pytest.mark.parametrize("form", ["host parameter", "encoded host"])
def test_a_unix_socket_url_connects_over_the_socket(
    postgres_database: str, postgres_url: str, form: str
) -> None:
    parts = urlsplit(postgres_url)
    port = parts.port or 5432
    if not Path(SOCKET_DIR, f".s.PGSQL.{port}").exists():
        pytest.skip(f"the test server has no socket in {SOCKET_DIR}")
    user = parts.username or "postgres"
    if form == "host parameter":
        url = f"postgresql://{user}@{parts.path}?host={SOCKET_DIR}&port={port}&{parts.query}"
    else:
        url = f"postgresql://{user}@{quote(SOCKET_DIR, safe='')}:{port}{parts.path}?{parts.query}"
    settings = make_settings(url)
    migrate(settings)

    with bootstrap(settings) as service:
        sent = service.send("sms", "+15551234567", {"body": "over the socket"})
        assert service.get_message(sent.message_id).body == "over the socket"
        datastore = service.app.factory.datastore  # type: ignore[attr-defined]
        with datastore.get_connection() as conn:
            row = conn.execute("SELECT inet_client_addr() AS address").fetchone()

    assert row == {"address": None}  # a Unix-socket session has no client address


@pytest.mark.slow
def test_a_password_with_special_characters_works_percent_encoded(tmp_path: Path) -> None:
    password = "p@ss:w/rd %?&=#'\"\\"
    with throwaway_cluster(password=password) as cluster:
        url = cluster.url(query="schema=conversa")
        assert quote(password, safe="") in url
        settings = make_settings(url)
        migrate(settings)
        with bootstrap(settings) as service:
            sent = service.send("sms", "+15551234567", {"body": "authenticated"})
            assert service.get_message(sent.message_id).status == "sent"

        wrong = url.replace(quote(password, safe=""), "wrong")
        with pytest.raises(DatabaseUnavailable, match="password authentication failed"):
            bootstrap(make_settings(wrong))
        done = conversa("token", "list", url=wrong, cwd=tmp_path)
        assert done.returncode == 1
        assert "database unavailable" in done.stderr
        assert password not in done.stderr


def test_options_in_the_url_reach_the_server(postgres_url: str) -> None:
    backend = PostgresBackend(
        _with(postgres_url, "application_name=shared&options=-c%20work_mem%3D7MB")
    )

    with psycopg.connect(backend.conninfo()) as conn:
        row = conn.execute(
            "SELECT current_setting('work_mem'), current_setting('application_name')"
        ).fetchone()

    assert row == ("7MB", "shared")
