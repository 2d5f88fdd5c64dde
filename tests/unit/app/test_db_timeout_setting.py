"""CONVERSA_DB_TIMEOUT_SECONDS: how long an operation keeps trying to reach the database."""

from __future__ import annotations

import pytest

from conversa.adapters.persistence import PostgresBackend
from conversa.adapters.postgres_store import UNAVAILABLE_AFTER_KEY
from conversa.app.settings import Settings, SettingsError


def test_it_defaults_to_five_seconds() -> None:
    assert Settings.from_environ({}).db_timeout_seconds == 5.0


@pytest.mark.parametrize("value", ["0", "0.5", "-1", "301", "soon"])
def test_a_bad_value_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^CONVERSA_DB_TIMEOUT_SECONDS: "):
        Settings.from_environ({"CONVERSA_DB_TIMEOUT_SECONDS": value})


def test_it_bounds_the_event_store_and_each_new_connection() -> None:
    env = PostgresBackend("postgresql://h/db", db_timeout=2.5).application_env(create_tables=False)

    assert env[UNAVAILABLE_AFTER_KEY] == "2.5"
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "3"  # the pool's wait, in the library's whole seconds
    assert "connect_timeout=3" in env["POSTGRES_CONNINFO"]
