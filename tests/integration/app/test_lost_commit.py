"""A send whose commit went through while its answer was lost (the database went down in
between): the event store's retry meets the send's own write, and the send must see that
it is its own, not an idempotent replay of an earlier request, and make the attempt.

And sends that an outage interrupted half-way: stored, but not attempted, or attempted
but their outcome not stored. The process finishes them once the database is back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from conversa.adapters.persistence import backend_from_url
from conversa.adapters.providers.log import LogDriver
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.outage import DatabaseUnavailable
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
    assert state.pop("class_version") == 5
    assert state.pop("nonce") is not None
    assert state.pop("attempt_by") == "request"  # version 3; version 1 had neither
    assert state.pop("reply_to") is None  # version 4, as quote
    assert state.pop("quote") is None
    assert state.pop("category") == "transactional"  # version 5, as the two below
    assert state.pop("consent_override") is False
    assert state.pop("scheduled_at") is None
    state["idempotency_key"] = "legacy-1"
    legacy_id = message_id_for(LOCAL_SCOPE, "legacy-1")
    service.app.recorder.insert_events(
        [StoredEvent(legacy_id, 1, queued.topic, json.dumps(state).encode())]
    )

    legacy: object = service.app.repository.get(legacy_id)
    replay = service.send(*request, {"idempotency_key": "legacy-1"})

    assert isinstance(legacy, Message)
    assert legacy.nonce is None
    assert legacy.attempt_by == "request"
    assert legacy.reply_to is None and legacy.quote is None
    assert (legacy.category, legacy.consent_override, legacy.scheduled_at) == (
        "transactional",
        False,
        None,
    )
    assert legacy.fingerprint == state["fingerprint"]
    assert replay.replayed
    assert replay.message_id == legacy_id
    assert replay.status == "queued"


def wait_for_events(service: ConversaService, message_id: UUID, expected: list[str]) -> None:
    deadline = time.monotonic() + 10
    while event_types(service, message_id) != expected:
        assert time.monotonic() < deadline, event_types(service, message_id)
        time.sleep(0.1)


def test_an_outcome_the_database_could_not_take_is_recorded_once_it_is_back(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    recorder: Any = losing_service.app.recorder
    recorder.go_down(after=1)  # Queued is stored; then the database is gone

    result = losing_service.send("sms", "+15551234567", {"body": "hi"}, {"idempotency_key": "k"})

    # The provider took it: the caller is told so, and it is not sent a second time.
    assert result.status == "sent" and not result.replayed
    assert driver.calls == [result.message_id]
    assert recorder.losing.refused >= 1
    assert event_types(losing_service, result.message_id) == ["Queued"]

    recorder.come_back()
    wait_for_events(losing_service, result.message_id, ["Queued", "Sent"])
    replay = losing_service.send("sms", "+15551234567", {"body": "hi"}, {"idempotency_key": "k"})
    assert replay.replayed and replay.status == "sent"
    assert driver.calls == [result.message_id]
    assert losing_service.dispatcher.unfinished.pending() == 0


def test_a_replay_after_the_outage_records_the_outcome_first(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    recorder: Any = losing_service.app.recorder
    recorder.go_down(after=1)
    first = losing_service.send("sms", "+15551234567", {"body": "hi"}, {"idempotency_key": "r"})
    recorder.come_back()

    replay = losing_service.send("sms", "+15551234567", {"body": "hi"}, {"idempotency_key": "r"})

    assert replay.replayed and replay.message_id == first.message_id
    assert replay.status == "sent"
    assert event_types(losing_service, first.message_id) == ["Queued", "Sent"]
    assert driver.calls == [first.message_id]


def test_a_queued_whose_answer_was_lost_in_the_outage_is_attempted_once_back(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    losing = lose_next_commit_answer(losing_service)
    losing.outage = True  # the retries ran out: nobody knows whether it was committed
    key = {"idempotency_key": "unknown"}

    with pytest.raises(DatabaseUnavailable):
        losing_service.send("sms", "+15551234567", {"body": "hi"}, key)

    message_id = message_id_for(LOCAL_SCOPE, "unknown")
    wait_for_events(losing_service, message_id, ["Queued", "AttemptStarted", "Sent"])
    assert driver.calls == [message_id]
    replay = losing_service.send("sms", "+15551234567", {"body": "hi"}, key)
    assert replay.replayed and replay.status == "sent"
    assert driver.calls == [message_id]


def test_a_send_the_outage_refused_stores_nothing_and_its_key_stays_free(
    losing_service: ConversaService, driver: CountingDriver
) -> None:
    recorder: Any = losing_service.app.recorder
    recorder.go_down()
    key = {"idempotency_key": "refused"}

    with pytest.raises(DatabaseUnavailable):
        losing_service.send("sms", "+15551234567", {"body": "hi"}, key)
    recorder.come_back()
    time.sleep(1.5)  # what the process finishes after an outage, it finishes within this

    message_id = message_id_for(LOCAL_SCOPE, "refused")
    assert event_types(losing_service, message_id) == []
    assert driver.calls == []
    again = losing_service.send("sms", "+15551234567", {"body": "hi"}, key)
    assert not again.replayed and again.status == "sent"
    assert losing_service.dispatcher.unfinished.pending() == 0
