"""A send whose commit went through while its answer was lost (the database went down in
between): the event store's retry meets the send's own write, and the send must see that
it is its own, not an idempotent replay of an earlier request, and make the attempt."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from conversa.adapters.persistence import backend_from_url
from conversa.adapters.providers.log import LogDriver
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.ports import DriverResult, OutboundMessage
from conversa.app.service import LOCAL_SCOPE, ConversaService
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.message import Message, message_id_for
from tests.fakes.recorders import PostgresLosingOneAnswer, SQLiteLosingOneAnswer


class CountingDriver(LogDriver):
    def __init__(self) -> None:
        super().__init__(log_text=False)
        self.calls: list[UUID] = []
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> DriverResult:
        with self._lock:
            self.calls.append(message.message_id)
        return super().send(message)


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


@pytest.fixture
def losing_service(
    settings: Settings, driver: CountingDriver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ConversaService]:
    """The real event store, whose application recorder can lose one commit's answer."""
    migrate(settings)
    backend = backend_from_url(settings.database_url)
    recorder = PostgresLosingOneAnswer if backend.kind == "postgresql" else SQLiteLosingOneAnswer
    plain_env = backend.application_env

    def application_env(*, create_tables: bool) -> dict[str, str]:
        return {
            **plain_env(create_tables=create_tables),
            "APPLICATION_RECORDER_TOPIC": get_topic(recorder),
        }

    monkeypatch.setattr(backend, "application_env", application_env)
    drivers = {Channel.SMS: driver, Channel.WHATSAPP: driver}
    with bootstrap(settings, drivers=drivers, backend=backend) as service:
        yield service


def lose_next_commit_answer(service: ConversaService) -> Any:
    recorder: Any = service.app.recorder
    recorder.lose_next_commit_answer()
    return recorder.losing


def event_types(service: ConversaService, message_id: UUID) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(message_id)]


def test_a_keyed_send_whose_answer_was_lost_is_attempted_not_replayed(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    losing = lose_next_commit_answer(losing_service)

    result = losing_service.send(
        "sms", "+15551234567", {"body": "code 123456"}, {"idempotency_key": "order-1"}
    )

    assert losing.lost == 1  # the scenario happened: a commit, its answer lost, a retry
    assert not result.replayed
    assert result.status == "sent"
    assert driver.calls == [result.message_id]
    assert event_types(losing_service, result.message_id) == ["Queued", "Sent"]


def test_a_send_without_key_whose_answer_was_lost_is_attempted_not_an_error(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    losing = lose_next_commit_answer(losing_service)

    result = losing_service.send("sms", "+15551234567", {"body": "no key"})

    assert losing.lost == 1
    assert result.status == "sent"
    assert driver.calls == [result.message_id]
    assert event_types(losing_service, result.message_id) == ["Queued", "Sent"]


def test_a_real_replay_is_still_a_replay(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    first = losing_service.send(
        "sms", "+15551234567", {"body": "once"}, {"idempotency_key": "order-2"}
    )
    losing = lose_next_commit_answer(losing_service)

    again = losing_service.send(
        "sms", "+15551234567", {"body": "once"}, {"idempotency_key": "order-2"}
    )

    assert losing.lost == 0  # the replay's insert failed on the key: nothing was committed
    assert again.replayed and again.message_id == first.message_id
    assert driver.calls == [first.message_id]


def test_a_message_recorded_before_nonces_still_loads_and_replays(
    service: ConversaService,
) -> None:
    """``Queued`` events stored by earlier versions have no nonce (class version 1)."""
    request = ("sms", "+15551234567", {"body": "from the old days"})
    sent = service.send(*request, {"idempotency_key": "new-1"})
    [queued, *_] = service.app.recorder.select_events(sent.message_id)
    state = json.loads(queued.state)
    assert state.pop("class_version") == 2
    assert state.pop("nonce") is not None
    state["idempotency_key"] = "legacy-1"
    legacy_id = message_id_for(LOCAL_SCOPE, "legacy-1")
    service.app.recorder.insert_events(
        [StoredEvent(legacy_id, 1, queued.topic, json.dumps(state).encode())]
    )

    legacy: object = service.app.repository.get(legacy_id)
    replay = service.send(*request, {"idempotency_key": "legacy-1"})

    assert isinstance(legacy, Message)
    assert legacy.nonce is None
    assert legacy.fingerprint == state["fingerprint"]
    assert replay.replayed
    assert replay.message_id == legacy_id
    assert replay.status == "queued"
