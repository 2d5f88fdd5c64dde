"""Every send path checks consent first, on both stores: to a recipient opted out on the
channel, the message is recorded and failed at once with ``recipient_opted_out`` and the
driver is never called; on the other channel, or after an opt-in, it goes out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conversa.app.service import ConversaService
from conversa.domain.status import Status
from tests.integration.app.test_async_sends import CountingDriver, open_service

TO = "+15557654321"


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


@pytest.fixture
def service(backend_url: str, driver: CountingDriver) -> Iterator[ConversaService]:
    with open_service(backend_url, driver) as service:
        yield service


def test_a_synchronous_send_to_an_opted_out_recipient_fails_without_a_provider_call(
    service: ConversaService, driver: CountingDriver
) -> None:
    service.consent.change(TO, "opted_out", "sms", "all", "api", by="ops")
    refused = service.send("sms", TO, {"body": "hello"})
    assert not refused.ok
    assert refused.status == "failed"
    assert refused.error is not None
    assert refused.error["code"] == "recipient_opted_out"
    assert driver.calls[str(refused.message_id)] == 0
    _state, events = service.message_history(refused.message_id)
    assert [e["type"] for e in events] == ["queued", "failed"]

    other_channel = service.send("whatsapp", TO, {"body": "hello"})
    assert other_channel.ok
    assert driver.calls[str(other_channel.message_id)] == 1

    service.consent.change(TO, "opted_in", "sms", "all", "keyword", keyword="START")
    again = service.send("sms", TO, {"body": "hello again"})
    assert again.ok
    assert driver.calls[str(again.message_id)] == 1


def test_async_and_batch_sends_are_refused_when_recorded_and_when_attempted(
    service: ConversaService, driver: CountingDriver
) -> None:
    service.consent.change(TO, "opted_out", "all", "all", "api")
    queued = service.queue("sms", TO, {"body": "hi"})
    assert queued.status == "failed"
    batch = service.send_batch(
        [
            {"channel": "sms", "to": TO, "body": "a"},
            {"channel": "sms", "to": "+15550001111", "body": "b"},
        ]
    )
    assert [item.result.status for item in batch if item.result] == ["failed", "queued"]

    service.consent.change(TO, "opted_in", "all", "all", "api")
    later = service.queue("sms", TO, {"body": "queued before the opt-out"})
    assert later.status == "queued"
    # The opt-out commits after the Queued, before the dispatcher's attempt: it wins.
    service.consent.change(TO, "opted_out", "sms", "all", "keyword", keyword="STOP")
    with service.running():
        deadline = time.monotonic() + 20
        while service.get_message(later.message_id).status == Status.QUEUED.value:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    stored = service.get_message(later.message_id)
    assert stored.status == "failed"
    assert stored.error is not None and stored.error["code"] == "recipient_opted_out"
    assert driver.calls[str(later.message_id)] == 0
