"""Sending a message, told as one story, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import pytest

from conversa.adapters.providers.log import LogDriver
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.ports import DriverResult, OutboundMessage
from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.errors import (
    IdempotencyKeyMismatch,
    InvalidContent,
    InvalidPhoneNumber,
    InvalidRequest,
    UnknownChannel,
)
from conversa.domain.message import Message
from tests.support import make_settings


class CountingDriver(LogDriver):
    """The log driver, counting its calls (from any thread)."""

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


@pytest.fixture(params=[100, 1], ids=["group-commit", "direct"])
def counted_service(
    settings: Settings, driver: CountingDriver, request: pytest.FixtureRequest
) -> Iterator[ConversaService]:
    """On each store, with the group commit (the default) and with each write alone."""
    settings = settings.model_copy(update={"write_batch_size": request.param})
    migrate(settings)
    drivers = {Channel.SMS: driver, Channel.WHATSAPP: driver}
    with bootstrap(settings, drivers=drivers) as service:
        yield service


def event_types(service: ConversaService, message_id: UUID) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(message_id)]


def test_a_sent_message_is_recorded_and_shows_in_the_log(counted_service: ConversaService) -> None:
    service = counted_service
    result = service.send("sms", "+1 (555) 123-4567", {"body": "Your code is 123456"})

    assert result.ok and not result.replayed
    assert result.status == "sent"
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("log-")
    assert result.message.to == "+15551234567"
    assert event_types(service, result.message_id) == ["Queued", "Sent"]

    template = service.send(
        "whatsapp", "+447911123456", {"template": {"name": "order_shipped", "variables": ["1Z9"]}}
    )
    assert template.ok
    assert template.message.template == {"name": "order_shipped", "variables": ["1Z9"]}

    # The read model trails the event store until the projection has caught up.
    assert service.list_messages(MessageQuery()).total == 0
    assert service.projector().catch_up() == 4
    page = service.list_messages(MessageQuery())
    assert [row.id for row in page.rows] == [template.message_id, result.message_id]
    sms = service.view.get(result.message_id)
    assert sms is not None
    assert (sms.status, sms.to, sms.body, sms.attempts) == (
        "sent",
        "+15551234567",
        "Your code is 123456",
        1,
    )
    assert sms.provider_message_id == result.provider_message_id

    assert service.list_messages(MessageQuery(channel="whatsapp")).total == 1
    assert service.list_messages(MessageQuery(to="+447911123456")).total == 1
    assert service.list_messages(MessageQuery(status="sent", per_page=1, page=2)).rows[0].id == (
        result.message_id
    )
    assert service.list_messages(MessageQuery(status="delivered")).total == 0
    assert service.projector().status().lag == 0


def test_one_idempotency_key_sends_once_across_twenty_threads(
    counted_service: ConversaService, driver: CountingDriver
) -> None:
    service = counted_service
    barrier = threading.Barrier(20)
    results = []
    errors: list[BaseException] = []

    def send() -> None:
        barrier.wait()
        try:
            results.append(
                service.send(
                    "sms", "+15551234567", {"body": "Shipped"}, {"idempotency_key": "o-4711"}
                )
            )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(driver.calls) == 1
    message_id = results[0].message_id
    assert event_types(service, message_id) == ["Queued", "Sent"]

    # Later replays return the outcome; a different request under the same key is refused.
    replay = service.send("sms", "+15551234567", {"body": "Shipped"}, {"idempotency_key": "o-4711"})
    assert replay.replayed and replay.ok and replay.status == "sent"
    head = service.app.recorder.max_notification_id()
    with pytest.raises(IdempotencyKeyMismatch) as refused:
        service.send("sms", "+15551234567", {"body": "Cancelled"}, {"idempotency_key": "o-4711"})
    assert refused.value.code == "idempotency_key_mismatch"
    assert service.app.recorder.max_notification_id() == head
    assert len(driver.calls) == 1


@pytest.mark.parametrize(
    ("channel", "to", "payload", "error", "field"),
    [
        ("sms", "+1 555", {"body": "x"}, InvalidPhoneNumber, "to"),
        ("sms", "12345", {"body": "x"}, InvalidPhoneNumber, "to"),
        ("fax", "+15551234567", {"body": "x"}, UnknownChannel, "channel"),
        ("sms", "+15551234567", {}, InvalidContent, "body"),
        (
            "sms",
            "+15551234567",
            {"body": "x", "template": {"name": "t"}},
            InvalidContent,
            "template",
        ),
        ("sms", "+15551234567", {"body": "x" * 1601}, InvalidContent, "body"),
    ],
)
def test_invalid_requests_are_refused_and_store_nothing(
    counted_service: ConversaService,
    driver: CountingDriver,
    channel: str,
    to: str,
    payload: dict[str, object],
    error: type[InvalidRequest],
    field: str,
) -> None:
    with pytest.raises(error) as refused:
        counted_service.send(channel, to, payload)
    assert refused.value.field == field
    assert refused.value.message
    assert not counted_service.app.recorder.max_notification_id()
    assert driver.calls == []


def test_an_unavailable_driver_records_a_failed_message(settings: Settings) -> None:
    # Twilio chosen for SMS, with none of its credentials set.
    twilio = make_settings(settings.database_url, sms_driver="twilio")
    migrate(twilio)
    with bootstrap(twilio) as service:
        result = service.send("sms", "+15551234567", {"body": "hello"})
        assert not result.ok
        assert result.status == "failed"
        assert result.error is not None and result.error["code"] == "driver_unavailable"
        assert "CONVERSA_TWILIO_SID" in result.error["message"]
        message: object = service.app.repository.get(result.message_id)
        assert isinstance(message, Message)
        assert message.attempts == 0
        assert event_types(service, result.message_id) == ["Queued", "Failed"]
