"""The library used from a plain script, on SQLite and on PostgreSQL: ``from_env`` on a new
store, subscribers run inside the script's own process with ``service.running()``, and
when a new subscriber starts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conversa import ConversaService
from conversa.app.bootstrap import SchemaMissing
from conversa.events import LifecycleEvent, MessageSent


def environ(url: str) -> dict[str, str]:
    return {"CONVERSA_DATABASE_URL": url}


#: The group commit's thread lives as long as the service (closing it stops it), not as
#: long as running().
SERVICE_THREADS = {"conversa-writer"}


def conversa_threads(*, service_too: bool = False) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("conversa-") and (service_too or t.name not in SERVICE_THREADS)
    ]


def test_a_script_subscribes_sends_and_receives_inside_running(backend_url: str) -> None:
    received: list[LifecycleEvent] = []
    # What a script does, and nothing more: no worker, no `conversa migrate` beforehand.
    with ConversaService.from_env(environ(backend_url), migrate=True) as conversa:
        conversa.subscribe(MessageSent, received.append, name="script")
        with conversa.running():
            result = conversa.send("sms", "+15551234567", {"body": "hello"})
        # Leaving the block handed over what the block recorded, then stopped.
        assert conversa_threads() == []
        assert [(type(e), e.message_id) for e in received] == [(MessageSent, result.message_id)]
        # The projection ran too: the message log has the message.
        row = conversa.view.get(result.message_id)
        assert row is not None and row.status == "sent"
    # Closing the service stopped the rest.
    assert conversa_threads(service_too=True) == []

    # The next run of the script resumes after what it took: nothing twice.
    again: list[LifecycleEvent] = []
    with ConversaService.from_env(environ(backend_url)) as conversa:
        conversa.subscribe(MessageSent, again.append, name="script")
        with conversa.running():
            second = conversa.send("sms", "+15551234567", {"body": "again"})
    assert [e.message_id for e in again] == [second.message_id]


def test_a_new_subscriber_starts_now_or_from_the_beginning(backend_url: str) -> None:
    with ConversaService.from_env(environ(backend_url), migrate=True) as conversa:
        before = conversa.send("sms", "+15551234567", {"body": "before"}).message_id
        from_now: list[LifecycleEvent] = []
        from_start: list[LifecycleEvent] = []
        conversa.subscribe(LifecycleEvent, from_now.append, name="now")  # the default
        conversa.subscribe(LifecycleEvent, from_start.append, name="beginning", start="beginning")
        with conversa.running():
            after = conversa.send("sms", "+15551234567", {"body": "after"}).message_id
        assert [e.message_id for e in from_now] == [after]
        assert [e.message_id for e in from_start] == [before, after]

    # A stored position always wins over `start`: a restart never re-reads history.
    with ConversaService.from_env(environ(backend_url)) as conversa:
        late = conversa.send("sms", "+15551234567", {"body": "while away"}).message_id
        resumed: list[LifecycleEvent] = []
        conversa.subscribe(LifecycleEvent, resumed.append, name="now", start="beginning")
        with conversa.running():
            pass
        assert [e.message_id for e in resumed] == [late]
        with pytest.raises(ValueError, match="start"):
            conversa.subscribe(LifecycleEvent, print, name="x", start="yesterday")  # type: ignore[arg-type]


def test_running_refuses_late_subscribers_and_stops_at_once_on_an_error(
    backend_url: str,
) -> None:
    with ConversaService.from_env(environ(backend_url), migrate=True) as conversa:
        with pytest.raises(KeyError), conversa.running():
            with pytest.raises(RuntimeError, match="before"):
                conversa.subscribe(LifecycleEvent, print, name="late")
            with pytest.raises(RuntimeError, match="already"), conversa.running():
                pass
            raise KeyError("the script failed")
        assert conversa_threads() == []
        # And it can run again afterwards.
        with conversa.running():
            assert conversa_threads() != []
        assert conversa_threads() == []


def test_from_env_creates_the_embedded_store_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'conversa.sqlite3'}"
    with ConversaService.from_env(environ(url)) as conversa:
        assert conversa.send("sms", "+15551234567", {"body": "hi"}).ok
    with ConversaService.from_env(environ(url)) as conversa:  # and uses it from then on
        assert conversa.projector().status().head == 2


@pytest.mark.postgres
def test_from_env_on_postgresql_migrates_only_when_asked(postgres_url: str) -> None:
    with pytest.raises(SchemaMissing, match="conversa migrate"):
        ConversaService.from_env(environ(postgres_url))
    with ConversaService.from_env(environ(postgres_url), migrate=True) as conversa:
        assert conversa.send("sms", "+15551234567", {"body": "hi"}).ok
    with ConversaService.from_env(environ(postgres_url)) as conversa:
        assert conversa.projector().status().head == 2
