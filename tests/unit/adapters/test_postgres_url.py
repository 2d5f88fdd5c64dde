"""Reading CONVERSA_DATABASE_URL for PostgreSQL: every libpq parameter is kept."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from conversa.adapters.persistence import PostgresBackend
from conversa.adapters.postgres_store import CONNINFO_KEY
from conversa.adapters.postgres_url import PostgresConnection
from conversa.app.settings import SettingsError

TLS_URL = (
    "postgresql://app:s3cret@db.example.com:6432/conversa"
    "?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/client.pem"
    "&sslkey=/etc/client.key&target_session_attrs=read-write"
    "&options=-c%20statement_timeout%3D5000&schema=messaging"
)


def test_every_libpq_parameter_reaches_the_connection_string() -> None:
    connection = PostgresConnection.from_url(TLS_URL)
    params = conninfo_to_dict(connection.conninfo())

    assert params == {
        "host": "db.example.com",
        "port": "6432",
        "user": "app",
        "password": "s3cret",
        "dbname": "conversa",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "sslcert": "/etc/client.pem",
        "sslkey": "/etc/client.key",
        "target_session_attrs": "read-write",
        "options": "-c statement_timeout=5000",
        "application_name": "conversa",
    }
    assert connection.schema == "messaging"


def test_the_event_store_connects_with_the_whole_connection_string() -> None:
    env = PostgresBackend(TLS_URL).application_env(create_tables=False)

    params = conninfo_to_dict(env[CONNINFO_KEY])
    assert params["sslmode"] == "verify-full"
    assert params["sslkey"] == "/etc/client.key"
    assert params["target_session_attrs"] == "read-write"
    assert env["POSTGRES_SCHEMA"] == "messaging"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///conversa?host=/var/run/postgresql",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/conversa",
    ],
)
def test_a_socket_directory_is_the_host(url: str) -> None:
    params = conninfo_to_dict(PostgresConnection.from_url(url).conninfo())

    assert params["host"] == "/var/run/postgresql"
    assert params["dbname"] == "conversa"


def test_an_empty_host_is_left_to_libpq_not_replaced_by_localhost() -> None:
    params = PostgresConnection.from_url("postgresql:///conversa").params

    assert "host" not in params  # libpq's default: the Unix socket, or PGHOST


def test_a_percent_encoded_password_is_decoded_once() -> None:
    url = "postgresql://app:p%40ss%3Aw%2Frd%20%25%3F%26%3D%23@h/db"

    params = conninfo_to_dict(PostgresConnection.from_url(url).conninfo())

    assert params["password"] == "p@ss:w/rd %?&=#"


def test_the_url_may_name_the_application_and_the_connect_timeout() -> None:
    url = "postgresql://h/db?application_name=billing&connect_timeout=3"

    params = PostgresConnection.from_url(url, connect_timeout=5).params

    assert params["application_name"] == "billing"
    assert params["connect_timeout"] == "3"


def test_the_connect_timeout_defaults_to_the_database_timeout() -> None:
    params = PostgresConnection.from_url("postgresql://h/db", connect_timeout=7.5).params

    assert params["connect_timeout"] == "8"


def test_an_unknown_parameter_is_refused_naming_it_and_not_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        PostgresBackend("postgresql://app:s3cret@h/db?sslmod=require")

    message = str(caught.value)
    assert message.startswith("CONVERSA_DATABASE_URL:")
    assert "sslmod" in message
    assert "s3cret" not in message
