"""The one-round-trip recorder: the same rows, notifications and conflicts as the library's,
a failed transaction rolled back before its connection is reused, and one wait for the
server per insert."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder

from conversa.adapters.postgres_recorder import OneTripApplicationRecorder
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.messages import load_message
from conversa.app.service import ConversaService
from tests.support import make_settings, queued_message

pytestmark = pytest.mark.postgres


@pytest.fixture
def service(postgres_url: str) -> Iterator[ConversaService]:
    settings = make_settings(postgres_url, write_batch_size="1")
    migrate(settings)
    with bootstrap(settings) as built:
        yield built


def stored_count(service: ConversaService) -> int:
    return len(service.app.recorder.select_notifications(start=None, limit=1000))


def test_inserts_conflicts_and_the_connection_after_a_conflict(
    service: ConversaService, caplog: pytest.LogCaptureFixture
) -> None:
    app = service.app
    assert isinstance(app.recorder, OneTripApplicationRecorder)
    before = stored_count(service)
    first, second = queued_message(key="a"), queued_message(key="b")
    recordings = app.save(first, second)
    ids = [r.notification.id for r in recordings]
    assert ids[1] == ids[0] + 1 and ids[0] > (app.recorder.max_notification_id() or 0) - 2

    # A duplicate: the INSERT's conflict, nothing of the transaction stored.
    third = queued_message(key="c")
    with caplog.at_level(logging.WARNING), pytest.raises(IntegrityError):
        app.save(third, queued_message(key="a"))
    assert "rolling back" not in caplog.text  # the pool got its connection back idle
    assert stored_count(service) == before + 2
    # Every connection of the pool works (none left in a failed transaction).
    for n in range(5):
        service.writer.save(queued_message(key=f"after-{n}"))
    assert stored_count(service) == before + 7
    assert load_message(app, first.id).version == 1


def test_fewer_waits_for_the_server_than_the_library(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's recorder waits for the pipeline's results, then for its COMMIT; this
    one waits once."""
    app = service.app
    waits = 0
    original = psycopg.Connection.wait

    def counting(conn: psycopg.Connection[object], *args: object, **kwargs: object) -> object:
        nonlocal waits
        waits += 1
        return original(conn, *args, **kwargs)  # type: ignore[arg-type]

    def waits_of(insert: object, key: str) -> int:
        nonlocal waits
        events = queued_message(key=key).collect_events()
        stored = [app.mapper.to_stored_event(event) for event in events]
        waits = 0
        insert(app.recorder, stored)  # type: ignore[operator]
        return waits

    monkeypatch.setattr(psycopg.Connection, "wait", counting)
    mine = waits_of(OneTripApplicationRecorder.insert_events, "mine")
    library = waits_of(PostgresApplicationRecorder.insert_events, "library")
    assert mine < library, (mine, library)
