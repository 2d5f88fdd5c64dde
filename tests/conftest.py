"""Shared fixtures: one scratch PostgreSQL database per test run, one schema per test,
and a temporary SQLite file per test. Scenarios take ``backend_url`` and run on both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from tests.support import make_settings

SERVER_URL = os.environ.get(
    "CONVERSA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database made for this test run, dropped at its end."""
    name = f"conversa_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(SERVER_URL, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.exit(
            f"PostgreSQL is not reachable at {SERVER_URL} ({error}); run scripts/ensure-postgres "
            "or set CONVERSA_TEST_DATABASE_URL",
            returncode=1,
        )
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = SERVER_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A new, empty schema in the run's database, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_database}?schema={schema}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: a SQLite file, or a new schema in the run's database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conversa.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(backend_url: str) -> Settings:
    return make_settings(backend_url)


@pytest.fixture
def service(settings: Settings) -> Iterator[ConversaService]:
    migrate(settings)
    with bootstrap(settings) as service:
        yield service
