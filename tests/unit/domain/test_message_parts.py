"""A message the provider split into parts (Vonage's long SMS) is delivered once each part
is, whatever the order of the parts' receipts and of the driver's answer."""

from __future__ import annotations

from itertools import permutations

from conversa.domain.message import Message
from conversa.domain.status import Status
from tests.support import queued_message
from tests.unit.domain.test_message import replay

PARTS = ("P1", "P2", "P3")


def status_of(message: Message) -> Status:
    """Read through a call, so mypy keeps no earlier narrowing of the attribute."""
    return message.status


def types(message: Message) -> list[str]:
    return [type(e).__name__ for e in message.collect_events()]


def test_delivered_when_the_last_part_is() -> None:
    message = queued_message()
    message.record_accepted("P1", None, parts=PARTS)
    assert message.parts == PARTS
    assert message.record_report(Status.DELIVERED, provider_message_id="P2", part="P2")
    assert status_of(message) is Status.SENT
    assert not message.record_report(Status.DELIVERED, provider_message_id="P2", part="P2")
    assert message.record_report(Status.DELIVERED, provider_message_id="P1", part="P1")
    assert status_of(message) is Status.SENT
    assert message.record_report(Status.DELIVERED, provider_message_id="P3", part="P3")
    assert status_of(message) is Status.DELIVERED
    events = message.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Queued",
        "Sent",
        "PartsAccepted",
        "PartDelivered",
        "PartDelivered",
        "Delivered",
    ]
    assert replay(events).status is Status.DELIVERED


def test_receipts_before_the_drivers_answer_wait_for_its_parts() -> None:
    for order in permutations(["P1", "P2", "P3", "sent"]):
        message = queued_message()
        for step in order:
            if step == "sent":
                message.record_accepted("P1", None, parts=PARTS)
            else:
                message.record_report(Status.DELIVERED, provider_message_id=step, part=step)
        assert status_of(message) is Status.DELIVERED, order
        assert types(message).count("Delivered") == 1


def test_a_single_part_and_a_failed_part() -> None:
    single = queued_message()
    single.record_accepted("P1", None, parts=("P1",))
    assert single.record_report(Status.DELIVERED, provider_message_id="P1", part="P1")
    assert status_of(single) is Status.DELIVERED
    assert "PartsAccepted" not in types(single)

    failed = queued_message()
    failed.record_accepted("P1", None, parts=PARTS)
    failed.record_report(Status.DELIVERED, provider_message_id="P1", part="P1")
    failed.record_report(
        Status.UNDELIVERED, provider_message_id="P2", error_code="vonage_dlr_2", part="P2"
    )
    assert status_of(failed) is Status.UNDELIVERED
    assert not failed.record_report(Status.DELIVERED, provider_message_id="P3", part="P3")
